// The daemon's health [main]: once a second the state file is written when it changed, the
// counters are compared, glitches are logged with advice, and the health line (--watch,
// --health-interval) and systemd's status are written. Also the real-time policy line.
#include "daemon_run.hpp"

#include "glitch_advice.hpp"
#include "rt_priority.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdio>
#include <cstring>

#include <pthread.h>
#include <sched.h>
#include <sys/resource.h>
#include <unistd.h>

namespace stemd::app {

namespace {

// Resident memory of the process (VmRSS), from /proc/self/statm.
std::uint64_t resident_bytes() {
  std::FILE* f = std::fopen("/proc/self/statm", "r");
  if (f == nullptr) return 0;
  unsigned long size = 0, resident = 0;
  const int n = std::fscanf(f, "%lu %lu", &size, &resident);
  std::fclose(f);
  return n == 2 ? static_cast<std::uint64_t>(resident) * static_cast<std::uint64_t>(sysconf(_SC_PAGESIZE)) : 0;
}

// The whole process's CPU time (every thread: audio, loader, control), in seconds.
double process_cpu_seconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1e-6;
}

}  // namespace

std::string fmt_us(std::uint64_t ns) { return fmt::format("{:.0f} µs", ns / 1e3); }

void DaemonRun::init_health() {
  hist_prev_ = inst_->engine().metrics().callback_ns.snapshot();
  const auto now = Clock::now();
  next_health_ = now + std::chrono::seconds(1);
  next_health_line_ = now + std::chrono::seconds(1);
  health_prev_t_ = now;
  health_prev_cpu_ = process_cpu_seconds();
  health_prev_cb_ns_ = 0;
  t_start_ = Clock::now();
  fds_line_t_ = now;
  next_fd_measure_ = now;  // the first tick measures what the running stream holds
}

void DaemonRun::health_tick(Clock::time_point now) {
  if (now < next_health_) return;
  next_health_ = now + std::chrono::seconds(1);
  if (state_) state_->flush();  // --state-file: written if the state changed (never from the audio thread)
  // What is open besides media files (fd_budget.hpp): a listing of /proc/self/fd, 2–40 ms with 4,000 open.
  // Again at once after a streamed load was refused: what else is open may have grown (Link).
  if (fds_ && (now >= next_fd_measure_ || fds_->take_remeasure())) {
    fds_->measure();
    next_fd_measure_ = now + std::chrono::seconds(10);
  }
  auto& m = inst_->engine().metrics();
  const auto ls = inst_->loader().stats();
  const HealthCounters c{m.voice_underruns.load(), m.device_underflows.load(), m.events_dropped.load(), ls.read_errors,
                         ls.truncated};
  const auto hist = m.callback_ns.snapshot();
  const std::uint32_t min_fill = m.take_min_ring_fill();
  // The whole process's CPU over the last second, the audio callback's share of its budget,
  // what is resident, the real-time policy.
  const double cpu_s = process_cpu_seconds();
  const double wall_s = std::chrono::duration<double>(now - health_prev_t_).count();
  const double cpu_pct = wall_s > 0 ? 100.0 * (cpu_s - health_prev_cpu_) / wall_s : 0.0;
  const std::uint64_t cb_ns = m.callback_ns_total.load(std::memory_order_relaxed);
  const double cb_pct = wall_s > 0 ? 100.0 * static_cast<double>(cb_ns - health_prev_cb_ns_) / (wall_s * 1e9) : 0.0;
  health_prev_cpu_ = cpu_s;
  health_prev_cb_ns_ = cb_ns;
  health_prev_t_ = now;
  HealthLine h;
  h.voices = m.voices_active.load();
  h.cpu_pct = cpu_pct;
  h.callback_pct = cb_pct;
  h.rt_policy = device_.rt_policy_known();
  h.lowest_ring_fill_pct = min_fill / 10;
  h.voice_underruns = c.voice_underruns;
  h.device_underflows = c.device_underflows;
  h.resident_bytes = static_cast<double>(resident_bytes());
  h.device = device_.describe();
  h.device_running = device_.state() == control::DeviceState::kRunning;
  h.device_waiting = device_.state() == control::DeviceState::kWaiting;
  h.device_away_s = device_.lost_for_seconds();
  h.device_reason = device_.reason();
  h.device_attempts = device_.attempts();
  h.device_name = o_.device;
  h.link_peers = inst_->router().link_peers_now();  // -1 without --link
  if (fds_) {  // streamed loads refused for descriptors since the last health line (or the start)
    h.fds_open = fds_->in_use();
    h.fds_limit = fds_->limit();
    h.fds_reserve = fds_->reserve();
    h.fds_refused = fds_->refused() - fds_refused_at_line_;
    h.fds_refused_window_s = std::chrono::duration<double>(now - fds_line_t_).count();
  }
  std::string summary = health_summary(h);
  if (const std::string t = state_ ? state_->trouble() : std::string(); !t.empty()) summary += ", " + t;
  if (const std::string w = state_ ? state_->waiting()->text() : std::string(); !w.empty()) summary += ", " + w;
  if (o_.watch || (o_.health_interval > 0 && now >= next_health_line_)) {
    spdlog::info("health: {}", summary);
    if (fds_) fds_refused_at_line_ = fds_->refused();
    fds_line_t_ = now;
    next_health_line_ = now + std::chrono::milliseconds(static_cast<int>(o_.health_interval * 1000));
  }
  if (!(c == last_)) log_glitches(c, hist, min_fill);
  hist_prev_ = hist;
  if (systemd_.active() && device_.state() == control::DeviceState::kRunning) {
    systemd_.status(fmt::format("{}, callback p99 {}", summary,
                                fmt_us(engine::DurationHistogram::percentile_ns(
                                    hist, 0.99, inst_->engine().metrics().callback_max_ns.load()))));
  }
}

// New underruns, underflows, read errors…: one warning with the last second's callback times
// and advice that depends on whose time ran out (stemd's callback, or the device's deadline).
void DaemonRun::log_glitches(const HealthCounters& c, const engine::DurationHistogram::Snapshot& hist,
                             std::uint32_t min_fill) {
  auto& m = inst_->engine().metrics();
  auto window = hist;
  for (std::size_t i = 0; i < window.size(); ++i) window[i] -= hist_prev_[i];
  const std::uint64_t max_ns = m.callback_max_ns.load();  // since start: caps the window's bin edges
  const auto p50 = engine::DurationHistogram::percentile_ns(window, 0.5, max_ns);
  const auto p99 = engine::DurationHistogram::percentile_ns(window, 0.99, max_ns);
  GlitchWindow gw;
  gw.voice_underruns = c.voice_underruns - last_.voice_underruns;
  gw.device_underflows = c.device_underflows - last_.device_underflows;
  gw.callback_p99_ns = p99;
  gw.callback_max_ns = engine::DurationHistogram::percentile_ns(window, 1.0, max_ns);  // the window's slowest
  gw.buffer_size = o_.buffer_size;
  gw.budget_ms = budget_ms_;
  gw.device = bc_.kind == "portaudio" ? "the device (" + backend_->describe() + ")" : "the " + bc_.kind + " output";
  gw.clock_paced = bc_.kind == "null";
  const io::LoaderStats ls = inst_->loader().stats();
  const io::LoaderConfig& lc = inst_->loader().config();
  gw.stuck_reads = ls.stuck_threads;
  gw.ring_ms = lc.sample_rate > 0 ? 1e3 * static_cast<double>(lc.ring_frames) / lc.sample_rate : 0;
  if (const double slowest = std::max(ls.read_ms_now, ls.read_ms_max); slowest > gw.ring_ms) gw.slow_read_ms = slowest;
  // A stall the log only counts (StallLog, device_probe.cpp) brings device underflows when the
  // server runs again: they go into its summary, not a warning each (a server stalling every 2 s
  // wrote one every 2 s). Anything else new with them is warned of as always.
  const bool quiet_stall = (stalled_ && !stall_loud_) || stall_log_.quiet_stalls() != health_quiet_stalls_;
  health_quiet_stalls_ = stall_log_.quiet_stalls();
  if (quiet_stall && gw.device_underflows > 0 && gw.voice_underruns == 0 && c.read_errors == last_.read_errors &&
      c.truncated == last_.truncated && c.events_dropped == last_.events_dropped) {
    stall_log_.add_underflows(gw.device_underflows);
    spdlog::debug("health: device underflows +{} (total {}) after a stall of the audio server (counted with it)",
                  gw.device_underflows, c.device_underflows);
    last_ = c;
    return;
  }
  const std::string advice =
      advice_repeat_.next(glitch_advice(gw), std::chrono::duration<double>(Clock::now().time_since_epoch()).count());
  // The null backend's pacing late, and nothing else new: information (nothing is heard or lost).
  const bool info = only_pacing_late(gw) && c.read_errors == last_.read_errors && c.truncated == last_.truncated &&
                    c.events_dropped == last_.events_dropped;
  spdlog::log(info ? spdlog::level::info : spdlog::level::warn,
              "health: voice underruns +{} (total {}), device underflows +{} (total {}), read errors {}, "
              "truncated streams {}, dropped events {}; {}; lowest ring fill {}%; {} voice{}{}",
              c.voice_underruns - last_.voice_underruns, c.voice_underruns,
              c.device_underflows - last_.device_underflows, c.device_underflows, c.read_errors, c.truncated,
              c.events_dropped, callback_times(gw, p50, max_ns), min_fill / 10, m.voices_active.load(),
              m.voices_active.load() == 1 ? "" : "s", advice);
  last_ = c;
}

namespace {

bool read_sched(pthread_t tid, ThreadSched& out) {
  int policy = 0;
  sched_param sp{};
  if (pthread_getschedparam(tid, &policy, &sp) != 0) return false;
  out.realtime = policy == SCHED_FIFO || policy == SCHED_RR;
  out.round_robin = policy == SCHED_RR;
  out.priority = out.realtime ? sp.sched_priority : 0;
  return true;
}

}  // namespace

bool raise_audio_thread(std::uint64_t thread, PolicyReport& r) {
  const auto tid = static_cast<pthread_t>(thread);
  if (tid == 0 || !read_sched(tid, r.before)) return false;
  r.now = r.before;
  rlimit rl{};
  getrlimit(RLIMIT_RTPRIO, &rl);
  const long limit = rl.rlim_cur == RLIM_INFINITY ? 99 : static_cast<long>(rl.rlim_cur);
  for (const int p : audio_raise_steps(r.before, r.wanted, limit)) {
    sched_param sp{};
    sp.sched_priority = p;
    if (const int rc = pthread_setschedparam(tid, SCHED_FIFO, &sp); rc != 0) {
      if (r.refused.empty()) r.refused = fmt::format("SCHED_FIFO {}: {}", p, std::strerror(rc));
      continue;
    }
    read_sched(tid, r.now);
    break;
  }
  return true;
}

// The real-time policy the audio thread runs with, once it has run: raised to the priority stemd
// means it to have where stemd owns the thread (PortAudio's ALSA thread starts at 1), from this
// thread — never from the audio thread; the loader capped below it; both logged as they are
// (rt_priority.hpp).
void DaemonRun::log_policy() {
  const std::uint64_t tid = inst_->engine().metrics().audio_thread.load();
  if (tid == 0) return;
  policy_logged_ = true;
  PolicyReport r;
  r.wanted = bc_.kind == "render" ? 0 : backend_->wanted_rt_priority();
  r.owner = backend_->rt_priority_owner();
  if (!raise_audio_thread(tid, r)) return;
  device_.set_rt_policy(r.now.text());
  r.loader_configured = o_.loader_priority;
  r.loader_now = inst_->loader().stats().rt_priority;
  if (bc_.kind != "render") inst_->loader().cap_rt_priority(loader_priority_cap(r.now));
  const std::string line = policy_line(r);
  if (r.now.realtime) {
    spdlog::info("audio thread: {}", line);
  } else if (bc_.kind != "render") {
    spdlog::warn(
        "audio thread: SCHED_OTHER (not real-time): real-time scheduling was not permitted — under systemd "
        "the unit's LimitRTPRIO=95 allows it; otherwise give the user an rtprio limit (group audio, "
        "/etc/security/limits.d){}{}",
        bc_.kind == "portaudio" ? "; with JACK, the JACK server decides (jackd -R)" : "", line);
  }
}

}  // namespace stemd::app
