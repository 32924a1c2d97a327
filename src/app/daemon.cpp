// The daemon's main thread [main]: wires engine, loader, controller and backend together,
// handles signals, logs the start-up line, the health line and the final summary.
//
// Threads started here: the loader thread, the backend's audio thread and the OSC server's
// thread, which is the control thread while it runs (before it starts and after it stops, the
// main thread is). SIGINT/SIGTERM are blocked in every thread and taken synchronously here with
// sigtimedwait(), so no code runs in a signal handler.
#include "daemon.hpp"

#include "glitch_advice.hpp"

#include "audio/backend.hpp"
#include "control/device_status.hpp"
#include "control/controller.hpp"
#include "control/media_policy.hpp"
#include "control/net.hpp"
#include "control/osc_server.hpp"
#include "control/deck_ids.hpp"
#include "control/router.hpp"
#include "io/loader_thread.hpp"
#include "io/sound_file.hpp"
#include "loader_sizing.hpp"
#include "logging.hpp"
#include "options.hpp"
#include "script.hpp"
#include "state.hpp"
#include "service_notify.hpp"

#include <spdlog/spdlog.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <set>
#include <thread>

#include <pthread.h>
#include <sched.h>
#include <linux/close_range.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#ifndef STEMD_VERSION
#define STEMD_VERSION "0.0.0"
#endif

namespace stemd::app {

namespace {

struct Counters {
  std::uint64_t voice_underruns = 0, device_underflows = 0, events_dropped = 0, read_errors = 0, truncated = 0;
  bool operator==(const Counters&) const = default;
};

std::string fmt_us(std::uint64_t ns) { return fmt::format("{:.0f} µs", ns / 1e3); }

// Resident memory of the process (VmRSS), from /proc/self/statm.
std::uint64_t resident_bytes() {
  std::FILE* f = std::fopen("/proc/self/statm", "r");
  if (f == nullptr) return 0;
  unsigned long size = 0, resident = 0;
  const int n = std::fscanf(f, "%lu %lu", &size, &resident);
  std::fclose(f);
  return n == 2 ? static_cast<std::uint64_t>(resident) * static_cast<std::uint64_t>(sysconf(_SC_PAGESIZE)) : 0;
}

// Device recovery by a fresh process image. When the output device is lost, PortAudio cannot
// be reset in-process: on a dead JACK server its 19.6 JACK host API waits 10 minutes inside
// Pa_AbortStream/Pa_CloseStream/Pa_Terminate for a process callback that never comes, then
// asserts, and Pa_Initialize only counts up while a session is open. So stemd writes its whole
// state (sources, levels, EQ, tempo, playing voices with their positions, subscribers) to a
// hand-over file and exec()s itself — same PID, so systemd and the watchdog see one service —
// and the new image restores the state, answers OSC, and retries the device with backoff.
struct Resume {
  bool active = false;
  std::string state_path;
  int rate = 0;
  std::uint64_t losses = 0;
  std::string reason;
};

Resume take_resume_env() {
  Resume r;
  const char* path = std::getenv("STEMD_RESUME_STATE");
  if (path == nullptr || *path == '\0') return r;
  r.active = true;
  r.state_path = path;
  if (const char* v = std::getenv("STEMD_RESUME_RATE")) r.rate = std::atoi(v);
  if (r.rate < 8000 || r.rate > 384000) r.rate = 0;  // as --sample-rate: 0 = the device's rate
  if (const char* v = std::getenv("STEMD_RESUME_LOSSES")) r.losses = std::strtoull(v, nullptr, 10);
  if (const char* v = std::getenv("STEMD_RESUME_REASON")) r.reason = v;
  for (const char* k : {"STEMD_RESUME_STATE", "STEMD_RESUME_RATE", "STEMD_RESUME_LOSSES", "STEMD_RESUME_REASON"}) {
    unsetenv(k);
  }
  return r;
}

std::string handoff_path() {
  const char* dir = std::getenv("RUNTIME_DIRECTORY");  // systemd's RuntimeDirectory=
  if (dir == nullptr || *dir == '\0') dir = std::getenv("TMPDIR");
  if (dir == nullptr || *dir == '\0') dir = "/tmp";
  std::string d = dir;
  if (const auto colon = d.find(':'); colon != std::string::npos) d.resize(colon);  // several dirs
  return d + "/stemd-resume-" + std::to_string(getpid()) + ".state";
}

// Replaces the process image with a fresh stemd (same argv, same PID). Returns only on failure.
void reexec(char** argv, const Resume& r, std::string& error) {
  setenv("STEMD_RESUME_STATE", r.state_path.c_str(), 1);
  setenv("STEMD_RESUME_RATE", std::to_string(r.rate).c_str(), 1);
  setenv("STEMD_RESUME_LOSSES", std::to_string(r.losses).c_str(), 1);
  setenv("STEMD_RESUME_REASON", r.reason.c_str(), 1);
  // Every descriptor but stdio closes on exec: sockets, the dead device's, sound files.
  close_range(3, ~0U, CLOSE_RANGE_CLOEXEC);
  std::fflush(nullptr);
  execv("/proc/self/exe", argv);
  error = std::string("exec /proc/self/exe: ") + std::strerror(errno);
}

// The shutdown is bounded: from SIGTERM/SIGINT (or any other end of the main loop) stemd is gone
// within --shutdown-fade-ms + 2 s, whatever the audio API does. PortAudio's JACK host API waits
// forever in Pa_StopStream when the server died at the moment the signal arrived (both stopped
// by a system shutdown), and other steps could stall too. A watcher thread holds the deadline;
// the main thread names each step as it starts. If the deadline passes, the watcher logs which
// step did not finish, writes the last state queued for --state-file if the main thread had not
// saved it yet, and ends the process with _exit() and the status stemd would have returned.
class ShutdownDeadline {
 public:
  using Expired = std::function<void(const char* step, double seconds)>;
  ShutdownDeadline(std::chrono::milliseconds budget, Expired on_expiry)
      : budget_(budget), on_expiry_(std::move(on_expiry)) {
    thread_ = std::thread([this] { watch(); });
  }
  ~ShutdownDeadline() { disarm(); }
  ShutdownDeadline(const ShutdownDeadline&) = delete;
  ShutdownDeadline& operator=(const ShutdownDeadline&) = delete;

  void step(const char* what) { step_.store(what, std::memory_order_release); }
  const char* current() const { return step_.load(std::memory_order_acquire); }
  void disarm() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      done_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
  }

 private:
  void watch() {
    const auto start = std::chrono::steady_clock::now();
    std::unique_lock<std::mutex> lock(mu_);
    if (cv_.wait_until(lock, start + budget_, [this] { return done_; })) return;
    lock.unlock();
    on_expiry_(current(), std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }

  std::chrono::milliseconds budget_;
  Expired on_expiry_;
  std::atomic<const char*> step_{"starting the shutdown"};
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
  std::thread thread_;
};

// While the audio device is stopped and closed: PortAudio's JACK host API asserts (abort())
// when the server dies in the middle of Pa_StopStream/Pa_CloseStream ("CleanUpStream:
// Assertion `err == 0' failed"). The state is saved by then; the abort becomes the exit stemd
// was about to make, with one line saying why. Only async-signal-safe calls in the handler.
volatile sig_atomic_t g_abort_exit_status = 0;
extern "C" void exit_on_abort(int) {
  static const char kMsg[] =
      "stemd: the audio library aborted while the device was being closed (its server or interface went away "
      "meanwhile); the state was saved, exiting\n";
  [[maybe_unused]] const ssize_t n = write(2, kMsg, sizeof kMsg - 1);
  _exit(g_abort_exit_status);
}

}  // namespace

int run(int argc, char** argv) {
  Options o;
  if (int rc = parse_options(argc, argv, o); rc >= 0) return rc;
  setup_logging(o.log_level);
  spdlog::info("{}", o.config_source);
  for (const auto& w : o.config_warnings) spdlog::warn("{}", w);
  if (!o.device.empty() && (o.backend == "null" || o.backend == "render")) {
    spdlog::warn("--device '{}' is ignored: the {} backend has no device (--backend portaudio or auto uses it)",
                 o.device, o.backend);
  }
  // A daemon never starts a JACK server of its own (libjack would, when none is running).
  setenv("JACK_NO_START_SERVER", "1", 0);
  const Resume resume = take_resume_env();
  if (resume.active) {
    spdlog::warn("resuming after the audio device was lost ({}): restoring the state from {}", resume.reason,
                 resume.state_path);
  }
  control::DeviceStatus device;
  if (resume.active) device.resume_lost(resume.losses, resume.reason);
  if (resume.active) {  // what the start-up flags did is in the hand-over state: not again
    o.play.clear();
    for (auto& f : o.deck_files) f.clear();
    o.levels.clear();
    o.ab.clear();
    o.script.clear();
    o.c_preload.clear();  // deck C is in the hand-over state; reloading it would stop its player
    o.dummy_after = -1;   // the simulated /dummy happened in the first image
  }

  if (o.list_devices) {
    const auto devices = audio::list_output_devices(o.log_level != "trace" && o.log_level != "debug");
    std::printf("PortAudio output devices (%s):\n%s", audio::portaudio_version().c_str(),
                audio::format_device_list(devices).c_str());
    return 0;
  }

  // Signals are taken by sigtimedwait below; block them before any thread starts.
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGTERM);
  sigaddset(&sigs, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);

  // Every loaded file holds one descriptor: raise the soft fd limit to the hard one, and say so
  // when even that cannot hold --max-sources plus a margin (sockets, the audio API's own).
  if (rlimit nofile{}; getrlimit(RLIMIT_NOFILE, &nofile) == 0) {
    if (nofile.rlim_cur < nofile.rlim_max) {
      const rlim_t was = nofile.rlim_cur;
      nofile.rlim_cur = nofile.rlim_max;
      if (setrlimit(RLIMIT_NOFILE, &nofile) != 0) nofile.rlim_cur = was;
    }
    if (nofile.rlim_cur != RLIM_INFINITY && nofile.rlim_cur < static_cast<rlim_t>(o.max_sources) + 64) {
      spdlog::warn(
          "open-file limit {} is below --max-sources {} + 64: loads will fail with 'Too many open files' "
          "before that; raise LimitNOFILE (systemd) or nofile in limits.conf, or lower --max-sources",
          static_cast<unsigned long long>(nofile.rlim_cur), o.max_sources);
    }
  }

  // ---- backend first: it settles the sample rate the engine is built for
  audio::BackendConfig bc;
  bc.kind = o.backend;
  bc.device = o.device;
  bc.sample_rate = resume.active && resume.rate > 0 ? resume.rate : o.sample_rate;
  bc.buffer_size = o.buffer_size;
  bc.render_path = o.render_to;
  bc.render_seconds = o.duration;
  bc.quiet_alsa = o.log_level != "trace" && o.log_level != "debug";

  io::LoaderConfig lc;
  std::unique_ptr<io::LoaderThread> loader;  // created once the rate is known
  std::unique_ptr<audio::Backend> backend;
  std::string err;
  // The render backend needs the loader; build it after the loader exists (rate from flags).
  // A configured device (--device, or --backend portaudio) is waited for when it is not there
  // at start (a USB DAC that appears late, a JACK server started after stemd): never null.
  const bool device_configured = !o.device.empty() || o.backend == "portaudio";
  if (o.backend == "auto") {
    if (!o.device.empty()) {
      bc.kind = "portaudio";
    } else if (audio::list_output_devices(bc.quiet_alsa).empty()) {
      spdlog::warn(
          "PortAudio has no output device: using the null backend (no sound). "
          "Use --backend portaudio to insist, or --list-devices to see what PortAudio sees.");
      bc.kind = "null";
    } else {
      bc.kind = "portaudio";
    }
  }
  if (bc.kind == "portaudio") {
    backend = audio::make_portaudio_backend(bc);
  } else if (bc.kind == "null") {
    backend = audio::make_null_backend(bc);
  }
  bool device_open = true;
  bool waiting = false;  // for a configured device that is not there yet
  const std::string wanted = o.device.empty() ? std::string("the default output device") : "'" + o.device + "'";
  if (backend && !backend->open(err)) {
    if (!resume.active && !device_configured) {
      spdlog::error("{}", err);
      return 2;
    }
    device_open = false;
    if (resume.active) {
      // Resuming: the device is not back yet. Everything else starts; the main loop retries.
      spdlog::warn("the audio device is not back yet: {}", err);
    } else {
      waiting = true;
      device.set_waiting(err);
      spdlog::warn(
          "waiting for the audio device {}: {} — stemd answers OSC meanwhile, retries every 0.5 s doubling to 5 s "
          "and plays as soon as it appears (no fallback to the null backend: a device is configured)",
          wanted, err);
      // The engine is built for one rate: the device is opened at it when it appears.
      if (bc.sample_rate == 0) {
        bc.sample_rate = 48000;
        backend = audio::make_portaudio_backend(bc);
        spdlog::info("while waiting, the output rate is {} Hz (no --sample-rate): the device must run at it", 48000);
      }
    }
  }
  if (resume.active && device_open) device.set_running();
  const int rate = backend && device_open ? backend->sample_rate() : bc.sample_rate > 0 ? bc.sample_rate : 48000;

  lc = loader_config(o.ring_ms, o.ring_min_ms, o.ring_max_ms, o.buffer_size, rate);
  loader = std::make_unique<io::LoaderThread>(lc);
  if (bc.kind == "render") {
    std::vector<std::string> inputs = o.play;  // a render must not overwrite what it reads
    inputs.insert(inputs.end(), std::begin(o.deck_files), std::end(o.deck_files));
    inputs.push_back(o.script);
    inputs.push_back(o.config_path);
    if (!audio::render_target_is_free(bc.render_path, inputs, err)) {
      spdlog::error("{}", err);
      return 2;
    }
    backend = audio::make_render_backend(bc, loader.get());
    if (!backend->open(err)) {
      spdlog::error("{}", err);
      return 2;
    }
  }

  engine::EngineConfig ec;
  ec.sample_rate = rate;
  ec.max_block_frames = std::max<std::uint32_t>(o.buffer_size, 4096);
  ec.max_voices = o.max_voices;
  ec.max_resampled_voices = o.max_resampled_voices;
  ec.max_stretched_voices =
      o.stretch_method == "time_stretch" ? std::max<std::uint32_t>(o.max_stretched_voices, 8) : o.max_stretched_voices;
  ec.limiter = o.limiter == "true";
  ec.soft_clip = o.limiter == "soft_clip";
  ec.master = static_cast<float>(o.master);
  ec.limiter_threshold = static_cast<float>(std::pow(10.0, o.limiter_threshold_db / 20.0));
  ec.resample_quality = o.resample_quality == "best" ? 2 : o.resample_quality == "medium" ? 1 : 0;
  engine::Engine engine(ec);
  engine.set_loader_wakeup(&io::LoaderThread::wake_cb, loader.get());

  io::LoadOptions lo;
  lo.output_rate = rate;
  lo.preload_limit_bytes = static_cast<std::int64_t>(o.preload_limit_mb * 1024 * 1024);
  lo.head_frames = static_cast<std::int64_t>(o.head_ms * 1e-3 * rate);
  lo.max_channels = static_cast<int>(o.max_channels);
  lo.budget = std::make_shared<io::MemoryBudget>(static_cast<std::int64_t>(o.max_memory_mb) << 20);
  control::Controller ctl(engine, *loader, lo);

  // ---- OSC: policy, router, sockets (bound now: a port in use is a start-up error)
  control::MediaPolicy media;
  control::RouterConfig rc;
  rc.sample_rate = rate;
  rc.buffer_size = o.buffer_size;
  rc.output_latency_s = backend && device_open ? backend->output_latency_seconds() : 0.0;
  rc.backend = bc.kind;
  rc.max_sources = o.max_sources;
  rc.max_subscribers = o.max_subscribers;
  rc.subscription_ttl_s = o.subscription_ttl;
  if (o.cookie_exempt == "none") {
    rc.cookie_exempt = control::AllowList{};
  } else if (std::string e3; !rc.cookie_exempt.parse(o.cookie_exempt, e3)) {
    spdlog::error("--cookie-exempt: {}", e3);
    return 2;
  }
  rc.limits.max_string = o.max_string;
  rc.bpm = o.bpm;
  rc.time_stretch = o.stretch_method == "time_stretch";
  rc.equal_power = o.crossfade_law == "equal_power";
  for (int i = 0; i < 3; ++i) rc.movement_thresholds[i] = o.movement_thresholds[static_cast<std::size_t>(i)];
  for (int i = 0; i < 5; ++i) rc.movement_tempos[i] = o.movement_tempos[static_cast<std::size_t>(i)];
  rc.tone_level = std::pow(10.0, o.tone_level_db / 20.0);
  rc.tone_seconds = o.tone_seconds;
  rc.meter = o.meter;
  rc.eq_enabled = !o.disable_filters;
  rc.tempo_rise_s = o.tempo_rise_s;
  rc.tempo_fall_s = o.tempo_fall_s;
  rc.movement_max = o.movement_max;
  rc.tempo_moves_players =
      !(o.disable_time_stretch && (o.stretch_method_given == "pyrubberband" || o.stretch_method_given == "audiotsm"));
  {
    std::string e2;
    auto bind_at = control::parse_endpoint(o.osc_bind, o.osc_port, e2);
    if (!o.no_osc && !bind_at) {
      spdlog::error("--osc-bind {}: {}", o.osc_bind, e2);
      return 2;
    }
    if (!media.configure(o.media_root, o.no_osc || bind_at->is_loopback(), err)) {
      spdlog::error("{}", err);
      return 2;
    }
  }
  control::Router router(ctl, rc, media);
  control::OscServerConfig oc;
  oc.bind = o.osc_bind;
  oc.port = o.osc_port;
  oc.tcp = o.osc_tcp_port >= 0;
  oc.tcp_port = static_cast<std::uint16_t>(o.osc_tcp_port < 0 ? 0 : o.osc_tcp_port);
  oc.allow = o.allow;
  oc.max_tcp_clients = o.max_tcp_clients;
  oc.max_tcp_clients_per_address = o.max_tcp_clients_per_address;
  oc.tcp_idle_timeout_s = o.tcp_idle_timeout;
  oc.tcp_frame_timeout_s = o.tcp_frame_timeout;
  oc.device = &device;
  control::OscServer server(ctl, router, oc);
  if (!o.no_osc && !server.open(err)) {
    spdlog::error("{}", err);
    return 2;
  }

  ctl.set_event_handler([&router](const engine::Event& e, const control::VoiceInfo& v) {
    router.on_event(e, v);
    switch (e.type) {
      case engine::EventType::kVoiceStarted:
        spdlog::debug("voice {} started (slot {} '{}')", e.voice, v.slot, control::log_escape(v.name));
        break;
      case engine::EventType::kVoiceEnded:
        if (e.reason == engine::EndReason::kError) {
          spdlog::warn("voice {} (slot {} '{}') ended: {}", e.voice, v.slot, control::log_escape(v.name),
                       engine::to_string(e.reason));
        } else {
          spdlog::info("voice {} (slot {} '{}') ended: {}", e.voice, v.slot, control::log_escape(v.name),
                       engine::to_string(e.reason));
        }
        break;
      case engine::EventType::kVoiceUnderrun:
        spdlog::debug("voice {} underrun #{}", e.voice, e.count);
        break;
      case engine::EventType::kCommandLate:
        spdlog::debug("scheduled command for voice {} applied {} frames late", e.voice, e.count);
        break;
      case engine::EventType::kCommandDropped:
        spdlog::debug("command for voice {} ignored: it is no longer playing", e.voice);
        break;
    }
  });

  // ---- --state-file: what was loaded (and playing) comes back, routed like live control, before
  // the flags below (which apply on top) and before the stream and the OSC server start. Then
  // the control thread looks at the state once a second (router tick, or the main loop without
  // OSC) and the main loop writes the file when it changed.
  std::unique_ptr<StateKeeper> state;
  if (!o.state_file.empty()) {
    state = std::make_unique<StateKeeper>(
        StateKeeper::Config{o.state_file, o.restore_voices, o.state_interval, std::string("stemd ") + STEMD_VERSION});
    if (!resume.active) state->restore(router);  // resuming: the hand-over is newer
    router.set_tick_hook([&state, &ctl, &router] { state->poll(ctl, router); });
  }

  // ---- resuming after a lost device: sources, levels, tempo and subscribers now; the voices
  // once the device runs again (so they continue from where they were heard last).
  std::vector<StateMessage> resume_voices;
  if (resume.active) {
    std::vector<StateMessage> msgs;
    std::string e;
    if (read_state_file(resume.state_path, msgs, e) != StateRead::kOk) {
      spdlog::error("cannot resume the previous session: {}", e);
    } else {
      int restored = 0, failed = 0;
      for (StateMessage& sm : msgs) {
        if (is_voice_message(sm.message)) {
          resume_voices.push_back(std::move(sm));
          continue;
        }
        const control::OscMessage reply = router.handle(sm.message, control::Peer{});
        if (reply.address == "/done") {
          ++restored;
        } else {
          ++failed;
          spdlog::warn("resume: {} → {}", control::log_escape(sm.message.to_string(), 600),
                       control::log_escape(reply.to_string(), 600));
        }
      }
      spdlog::info("resume: {} settings and sources restored ({} failed), {} voices to restart", restored, failed,
                   resume_voices.size());
    }
    std::remove(resume.state_path.c_str());
    if (const char* subs = std::getenv("STEMD_RESUME_SUBSCRIBERS")) {
      std::string list = subs;
      unsetenv("STEMD_RESUME_SUBSCRIBERS");
      std::size_t start = 0;
      while (start < list.size()) {
        std::size_t end = list.find(' ', start);
        if (end == std::string::npos) end = list.size();
        const std::string ep = list.substr(start, end - start);
        start = end + 1;
        const auto colon = ep.rfind(':');
        if (colon == std::string::npos) continue;
        std::string host = ep.substr(0, colon);
        if (host.size() > 2 && host.front() == '[') host = host.substr(1, host.size() - 2);
        std::string pe;
        const auto at =
            control::parse_endpoint(host, static_cast<std::uint16_t>(std::atoi(ep.c_str() + colon + 1)), pe);
        if (!at) continue;
        control::OscMessage sub;
        sub.address = "/stemd/notify";
        sub.args = {control::OscArg::Int(1)};
        router.handle(sub, control::Peer{*at, -1});
      }
    }
  }
  auto restart_resumed_voices = [&router, &resume_voices] {
    int ok = 0;
    for (const StateMessage& sm : resume_voices) {
      const control::OscMessage reply = router.handle(sm.message, control::Peer{});
      if (reply.address == "/done") {
        ++ok;
        spdlog::debug("resume: {}", control::log_escape(sm.message.to_string(), 600));
      } else {
        spdlog::warn("resume: {} → {}", control::log_escape(sm.message.to_string(), 600),
                     control::log_escape(reply.to_string(), 600));
      }
    }
    if (!resume_voices.empty()) spdlog::info("resume: {} of {} voices playing again", ok, resume_voices.size());
    resume_voices.clear();
  };

  // ---- --play files: loaded before the stream starts; any failure is fatal at start
  int slot = 1;
  std::vector<int> slots;
  for (const auto& path : o.play) {
    const std::string name = std::filesystem::path(path).stem().string();
    if (!ctl.load(slot, path, name, err)) {
      spdlog::error("cannot play {}", err);
      return 1;
    }
    slots.push_back(slot++);
  }
  if (bc.kind == "render" && o.duration <= 0 && !o.script.empty()) {
    spdlog::error("--render-to with --script needs --duration (voices start at the script's times)");
    return 2;
  }
  if (bc.kind == "render" && o.duration <= 0 && o.loop && !o.play.empty()) {
    spdlog::error("--render-to with --loop needs --duration (a loop never ends)");
    return 2;
  }
  // The old server's --a/--b/--c/--d: a deck's base id, looped, at --vol.
  for (int d = 0; d < 4; ++d) {
    if (o.deck_files[d].empty()) continue;
    const std::string name = std::filesystem::path(o.deck_files[d]).stem().string();
    if (!ctl.load(control::kDeckBase[d], o.deck_files[d], name, err)) {
      spdlog::error("cannot play {}", err);
      return 1;
    }
  }
  // --c_preload: deck C loaded, not started (/schedule_c_at or --dummy_after start it).
  if (!o.c_preload.empty() && o.deck_files[2].empty()) {
    const std::string name = std::filesystem::path(o.c_preload).stem().string();
    if (!ctl.load(control::kDeckBase[2], o.c_preload, name, err)) {
      spdlog::error("--c_preload: cannot load {}", err);
      return 1;
    }
  }
  if (!o.deck_files[2].empty() && o.c_at < 0) {
    spdlog::info("--c {}: loaded into buffer 2100, not started (the old server's meaning): /schedule_c_at X or --c_at",
                 o.deck_files[2]);
  }
  std::vector<float> deck_levels;
  if (!o.levels.empty()) deck_levels = o.levels;
  if (!o.ab.empty()) {
    deck_levels.resize(std::max<std::size_t>(deck_levels.size(), 2), 1.0f);
    deck_levels[0] = o.ab[0];
    deck_levels[1] = o.ab[1];
  }
  for (std::size_t d = 0; d < deck_levels.size(); ++d)
    ctl.set_deck_level(static_cast<int>(d), deck_levels[d], -1.0, err);
  // --script: every line routed now, at its exact frame (the engine holds them until then).
  if (!o.script.empty()) {
    std::vector<ScriptLine> lines;
    if (!load_script(o.script, lines, err)) {
      spdlog::error("--script {}", err);
      return 2;
    }
    for (const ScriptLine& l : lines) {
      const auto frame = static_cast<std::int64_t>(std::llround(l.seconds * rate));
      const control::OscMessage reply = router.handle_at(l.message, frame);
      if (reply.address == "/fail") {
        spdlog::error("--script {}:{}: {} → {}", o.script, l.line, control::log_escape(l.message.to_string(), 600),
                      control::log_escape(reply.to_string(), 600));
        return 2;
      }
    }
    spdlog::info("--script {}: {} messages scheduled", o.script, lines.size());
  }
  loader->start();
  // Offline and null output: queue the plays before the first block, so they start at frame 0.
  const bool real_device = bc.kind == "portaudio";
  auto play_all = [&]() -> bool {
    for (int s : slots) {
      control::VoiceHandle h;
      control::PlayOptions po;
      po.loop = o.loop;
      po.volume = o.volume;
      if (!ctl.play(s, po, h, err)) {
        spdlog::error("cannot play slot {}: {}", s, err);
        return false;
      }
      router.adopt_player(s, h);  // its slot's player, as if started over OSC (state, recovery)
    }
    for (int d = 0; d < 4; ++d) {
      if (o.deck_files[d].empty()) continue;
      if (d == 2 && o.c_at < 0) continue;  // --c without --c_at: loaded only
      control::VoiceHandle h;
      control::PlayOptions po;
      po.loop = true;
      po.volume = o.deck_volume;
      po.deck = d;
      po.rate = static_cast<float>(o.rate);
      // --c_at: deck C starts that many seconds (of output) after the start.
      const std::int64_t at = d == 2 ? (real_device ? ctl.now_frame() : 0) + std::llround(o.c_at * rate) : -1;
      control::Controller::ScheduleScope when(ctl, at);
      if (!ctl.play(control::kDeckBase[d], po, h, err)) {
        spdlog::error("cannot play buffer {}: {}", control::kDeckBase[d], err);
        return false;
      }
      router.adopt_player(control::kDeckBase[d], h);
    }
    // --dummy_after: /dummy <--dummy_args> taking effect that many seconds after the start (its
    // /schedule_c_at, if any, starts deck C no earlier than then).
    if (o.dummy_after >= 0) {
      control::OscMessage dm;
      dm.address = "/dummy";
      for (const auto& a : o.dummy_args) dm.args.push_back(control::OscArg::Str(a));
      const std::int64_t at = (real_device ? ctl.now_frame() : 0) + std::llround(o.dummy_after * rate);
      const control::OscMessage reply = router.handle_at(dm, at);
      if (reply.address != "/done") spdlog::warn("--dummy_after: {} → {}", dm.to_string(), reply.to_string());
    }
    return true;
  };
  if (!real_device && !play_all()) return 1;

  if (device_open && !backend->start(engine, err)) {
    if (!resume.active && !device_configured) {
      spdlog::error("{}", err);
      loader->stop();
      return 2;
    }
    if (resume.active) {
      spdlog::warn("the audio device is not back yet: {}", err);
    } else {
      waiting = true;
      device.set_waiting(err);
      spdlog::warn("waiting for the audio device {}: {}", wanted, err);
    }
    device_open = false;
  }
  if (real_device && device_open) {
    // A device's first periods can go nowhere while its connections settle (JACK connects
    // PortAudio's ports after activation): start the --play files once the stream has run a few.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
    while (engine.metrics().callbacks.load() < 4 && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    if (!play_all()) {
      backend->stop();
      loader->stop();
      return 1;
    }
    restart_resumed_voices();
  }
  if (!o.no_osc) {
    spdlog::info(
        "{}{}", server.describe(),
        media.root().empty() ? " (no --media-root: any readable file on loopback)" : ", media root " + media.root());
    server.start();  // from here on the server's thread is the control thread
  }
  const double budget_ms = 1000.0 * o.buffer_size / rate;
  ServiceNotifier systemd;  // READY only now: the device is open and the OSC socket bound
  if (waiting) {            // READY all the same: OSC answers, and a unit that waits does not hit a start timeout
    systemd.ready(fmt::format("waiting for device {} ({}), retrying{}", wanted, device.reason(),
                              o.no_osc ? std::string() : "; " + server.describe()));
  } else {
    systemd.ready(fmt::format("playing on {} at {} Hz, {} frames ({:.1f} ms){}", backend->describe(), rate,
                              o.buffer_size, budget_ms, o.no_osc ? std::string() : ", " + server.describe()));
  }
  spdlog::info("buffer size {} frames from {}", o.buffer_size, o.preset_reason);
  if (o.mlock) {
    if (mlockall(MCL_CURRENT | MCL_FUTURE) == 0) {
      spdlog::info("memory locked (mlockall)");
    } else {
      spdlog::warn("--mlock: mlockall failed: {} — raise LimitMEMLOCK (systemd) or memlock in limits.conf",
                   std::strerror(errno));
    }
  }
  spdlog::info(
      "stemd {} started: {}, {} Hz, buffer {} frames = {:.1f} ms (output latency {:.1f} ms), "
      "max {} voices, ring {:.0f} ms (kept ≥ {:.0f}, up to {:.0f} when the disk is slow), head {:.0f} ms, "
      "preload ≤ {:.0f} MB, limiter {}, libsndfile {}",
      STEMD_VERSION, backend->describe(), rate, o.buffer_size, budget_ms, backend->output_latency_seconds() * 1000.0,
      o.max_voices, o.ring_ms, o.ring_min_ms, o.ring_max_ms, o.head_ms, o.preload_limit_mb,
      o.limiter == "true"        ? fmt::format("at {:.1f} dBFS", o.limiter_threshold_db)
      : o.limiter == "soft_clip" ? std::string("soft clip 0.9·tanh(0.9·x)")
                                 : std::string("off"),
      io::sndfile_version());
  if (o.crowdstream_mode) {
    spdlog::info(
        "crowdstream mode (an old-server flag was given): master {:.2f}, limiter {}, deck EQ {}, movement tempo "
        "glide rising τ {:.4g} s / falling τ {:.4g} s",
        o.master, o.limiter, o.disable_filters ? "ignored (--disable-filters)" : "applied", o.tempo_rise_s,
        o.tempo_fall_s);
  }
  for (const auto& note : o.notes) spdlog::info("{}", note);

  // ---- the real-time policy the audio thread actually runs with (logged once it has run)
  bool policy_logged = false;
  auto log_policy = [&] {
    const auto tid = static_cast<pthread_t>(engine.metrics().audio_thread.load());
    if (tid == 0) return;
    policy_logged = true;
    int policy = 0;
    sched_param sp{};
    if (pthread_getschedparam(tid, &policy, &sp) != 0) return;
    device.set_rt_policy(policy == SCHED_FIFO ? fmt::format("SCHED_FIFO {}", sp.sched_priority)
                         : policy == SCHED_RR ? fmt::format("SCHED_RR {}", sp.sched_priority)
                                              : std::string("SCHED_OTHER"));
    if (policy == SCHED_FIFO || policy == SCHED_RR) {
      spdlog::info("audio thread: {} priority {}", policy == SCHED_FIFO ? "SCHED_FIFO" : "SCHED_RR", sp.sched_priority);
    } else if (bc.kind != "render") {
      spdlog::warn(
          "audio thread: SCHED_OTHER (not real-time): real-time scheduling was not permitted — under systemd "
          "the unit's LimitRTPRIO=95 allows it; otherwise give the user an rtprio limit (group audio, "
          "/etc/security/limits.d){}",
          bc.kind == "portaudio" ? "; with JACK, the JACK server decides (jackd -R)" : "");
    }
  };

  // ---- main loop: service the controller, health line, signals
  Counters last{};
  auto hist_prev = engine.metrics().callback_ns.snapshot();
  auto next_health = std::chrono::steady_clock::now() + std::chrono::seconds(1);
  auto next_health_line = std::chrono::steady_clock::now() + std::chrono::seconds(1);
  auto health_prev_t = std::chrono::steady_clock::now();
  double health_prev_cpu = 0;
  {
    rusage ru0{};
    getrusage(RUSAGE_SELF, &ru0);
    health_prev_cpu = static_cast<double>(ru0.ru_utime.tv_sec + ru0.ru_stime.tv_sec) +
                      static_cast<double>(ru0.ru_utime.tv_usec + ru0.ru_stime.tv_usec) * 1e-6;
  }
  std::uint64_t health_prev_cb_ns = 0;
  const auto t_start = std::chrono::steady_clock::now();
  int exit_code = 0;
  std::string stop_reason = "finished";
  std::uint64_t stall_callbacks = 0;
  auto stall_since = std::chrono::steady_clock::now();
  // Device recovery (resumed image): attempts at 0.5 s, then doubling to every 5 s.
  double backoff_s = 0.5;
  std::uint64_t attempts = 0;
  auto next_attempt = std::chrono::steady_clock::now() + std::chrono::milliseconds(500);
  std::uint64_t reopened_at_callbacks = 0;
  bool voices_pending = !resume_voices.empty();
  bool plays_pending = waiting;  // --play files of a start that waited for its device
  // The device is lost: tell everyone, hand the whole state over to a fresh image of stemd,
  // and exec it. Returns only when that failed (then stemd exits 3 for the service manager).
  auto hand_over = [&](const std::string& why) {
    device.set_lost(why);
    if (o.on_device_loss == "exit") {
      spdlog::error("the audio device stopped: {} — exiting (--on-device-loss exit)", why);
      backend->mark_lost();
      return;
    }
    spdlog::error(
        "the audio device stopped: {} — keeping the state; stemd restarts its audio side and retries the "
        "device every 0.5 s, doubling to 5 s",
        why);
    systemd.status("audio device lost (" + why + "), retrying");
    std::this_thread::sleep_for(std::chrono::milliseconds(30));  // subscribers hear /stemd/device/lost
    backend->mark_lost();
    server.stop();  // the main thread is the control thread again
    ctl.service();
    Resume r;
    r.active = true;
    r.state_path = handoff_path();
    r.rate = rate;
    r.losses = device.losses();
    r.reason = why;
    std::string e;
    if (!write_file_atomic(r.state_path,
                           format_state(capture_state(ctl, router, true),
                                        std::string("stemd ") + STEMD_VERSION + " (device hand-over)"),
                           e)) {
      spdlog::error("cannot write the hand-over state: {} — exiting instead", e);
      return;
    }
    if (state) {  // the state file too, in case the new image cannot start
      state->capture_now(ctl, router);
      state->flush();
    }
    std::string subs;
    for (const control::Peer& p : router.subscriber_peers()) {
      if (p.tcp_fd < 0) subs += (subs.empty() ? "" : " ") + p.endpoint.to_string();
    }
    setenv("STEMD_RESUME_SUBSCRIBERS", subs.c_str(), 1);
    spdlog::default_logger()->flush();
    reexec(argv, r, e);
    spdlog::error("cannot restart the audio side: {} — exiting", e);
    std::remove(r.state_path.c_str());
  };
  // SIGHUP (systemctl reload): the flags and --config file are read again. What can change
  // live does — log level, the OSC allow-list, deck levels, the volumes of the start-up
  // voices —; anything else that changed is named as needing a restart. A config that does
  // not parse is reported (file, line, key) and the running configuration stays.
  std::string live_allow = o.allow;
  std::vector<float> live_levels = deck_levels;
  float live_volume = o.volume, live_vol = o.deck_volume;
  auto reload = [&] {
    Options n;
    std::string e;
    if (parse_options(argc, argv, n, &e) >= 0) {
      spdlog::error("SIGHUP: configuration not reloaded, the running one stays: {}", e);
      return;
    }
    if (control::AllowList check; !n.allow.empty() && !check.parse(n.allow, e)) {
      spdlog::error("SIGHUP: configuration not reloaded, the running one stays: allow = \"{}\": {}", n.allow, e);
      return;
    }
    for (const auto& w : n.config_warnings) spdlog::warn("SIGHUP: {}", w);
    const std::string from = o.config_path.empty() ? "the command line (no --config)" : o.config_path;
    std::vector<std::string> applied, restart;
    // What changes live: compared with the value in force now.
    if (spdlog::default_logger()->level() != spdlog::level::from_str(n.log_level)) {
      spdlog::default_logger()->set_level(spdlog::level::from_str(n.log_level));
      applied.push_back("log-level " + n.log_level);
    }
    if (n.allow != live_allow && !o.no_osc) {
      live_allow = n.allow;
      server.post([&server, allow = n.allow] {
        std::string pe;
        if (server.set_allow(allow, pe)) {
          spdlog::info("SIGHUP: OSC now allows {}", allow.empty() ? std::string("loopback only") : allow);
        } else {
          spdlog::error("SIGHUP: allow = \"{}\" not applied, the previous allow-list stays: {}", allow, pe);
        }
      });
      applied.push_back("allow");
    }
    std::vector<float> lv = n.levels;
    if (!n.ab.empty()) {
      lv.resize(std::max<std::size_t>(lv.size(), 2), 1.0f);
      lv[0] = n.ab[0];
      lv[1] = n.ab[1];
    }
    if (lv != live_levels) {
      live_levels = lv;
      std::vector<float> to = lv;
      to.resize(4, 1.0f);  // a deck the config no longer names goes back to unity
      server.post([&ctl, to] {
        std::string de;
        for (std::size_t d = 0; d < 4; ++d) ctl.set_deck_level(static_cast<int>(d), to[d], 0.05, de);
      });
      applied.push_back("levels");
    }
    for (const bool decks : {false, true}) {
      const float v = decks ? n.deck_volume : n.volume;
      float& live = decks ? live_vol : live_volume;
      if (v == live) continue;
      live = v;
      std::vector<int> ids = slots;
      if (decks) ids.assign(std::begin(control::kDeckBase), std::end(control::kDeckBase));
      server.post([&ctl, &router, ids, v] {
        std::string ve;
        for (int id : ids) {
          if (const control::VoiceHandle h = router.player(id); h.valid()) ctl.set_volume(h, v, 0.05, ve);
        }
      });
      applied.push_back(decks ? "vol" : "volume");
    }
    if (n.watch != o.watch) {
      o.watch = n.watch;
      applied.push_back(n.watch ? "watch on" : "watch off");
    }
    static const std::set<std::string> kLive{"log-level", "allow", "levels", "ab", "volume", "vol", "watch"};
    for (const std::string& k : changed_keys(o, n)) {
      if (kLive.count(k) == 0) restart.push_back(k);
    }
    auto join = [](const std::vector<std::string>& v) {
      std::string out;
      for (const auto& x : v) out += (out.empty() ? "" : ", ") + x;
      return out;
    };
    spdlog::info("SIGHUP: reloaded {}: {}{}", from, applied.empty() ? "nothing to apply" : "applied " + join(applied),
                 restart.empty()
                     ? std::string()
                     : "; changed but only taking effect after a restart (systemctl restart stemd): " + join(restart));
  };
  for (;;) {
    timespec timeout{0, 20'000'000};  // 20 ms: service often enough for the retire queue
    const int sig = sigtimedwait(&sigs, nullptr, &timeout);
    if (sig == SIGINT || sig == SIGTERM) {
      stop_reason = sig == SIGINT ? "SIGINT" : "SIGTERM";
      break;
    }
    if (sig == SIGHUP) reload();
    if (o.no_osc) ctl.service();                                             // otherwise the OSC server's thread does
    const bool lost_now = device.state() != control::DeviceState::kRunning;  // lost, or waiting for it
    systemd.tick(engine.metrics().callbacks.load(std::memory_order_relaxed), lost_now);
    if (!policy_logged && !lost_now) log_policy();
    if (backend->finished()) break;
    // The output device: a stream that stopped calling back (its server died, the USB interface
    // went away) is lost — hand over to a fresh image, which retries it with backoff.
    if (bc.kind == "portaudio") {
      const std::uint64_t cb = engine.metrics().callbacks.load(std::memory_order_relaxed);
      const auto now_t = std::chrono::steady_clock::now();
      if (!lost_now) {
        std::string why;
        if (cb != stall_callbacks) {
          stall_callbacks = cb;
          stall_since = now_t;
        } else if (cb > reopened_at_callbacks && now_t - stall_since > std::chrono::seconds(1)) {
          why = "no callback for 1 s (device unplugged? audio server gone?)";
        }
        if (why.empty()) backend->lost(why);
        if (!why.empty()) {
          hand_over(why);  // returns only if stemd cannot carry on
          exit_code = 3;
          stop_reason = "device lost";
          break;
        }
        if (plays_pending && cb >= reopened_at_callbacks + 4) {
          plays_pending = false;  // the device appeared: the --play/--a… files start now
          if (o.no_osc) {
            play_all();
          } else {
            server.post([&play_all] { play_all(); });
          }
        }
        if (voices_pending && cb >= reopened_at_callbacks + 4) {
          voices_pending = false;  // the device runs again: the voices continue where they were
          server.post(restart_resumed_voices);
        }
      } else if (now_t >= next_attempt) {
        device.set_attempts(++attempts);
        std::string e;
        if (backend->open(e) && backend->start(engine, e)) {
          const double was_lost = device.lost_for_seconds();
          const bool was_waiting = device.state() == control::DeviceState::kWaiting;
          device.set_running();
          reopened_at_callbacks = cb;
          stall_callbacks = cb;
          stall_since = now_t;
          policy_logged = false;
          if (was_waiting) {
            spdlog::info("audio device {} appeared after {:.1f} s ({} attempt{}): playing on {}", wanted, was_lost,
                         attempts, attempts == 1 ? "" : "s", backend->describe());
            systemd.status(fmt::format("playing on {} at {} Hz, {} frames ({:.1f} ms)", backend->describe(), rate,
                                       o.buffer_size, budget_ms));
          } else {
            spdlog::warn("audio device back after {:.1f} s ({} attempt{}): {}", was_lost, attempts,
                         attempts == 1 ? "" : "s", backend->describe());
            systemd.status("audio device back: " + backend->describe());
          }
          attempts = 0;
          backoff_s = 0.5;
        } else {
          if (attempts == 1 || attempts % 12 == 0) {
            spdlog::info("audio device {} (attempt {}): {}; next attempt in {:.1f} s",
                         device.state() == control::DeviceState::kWaiting ? "not there yet" : "not back yet", attempts,
                         e, std::min(backoff_s, 5.0));
          }
          if (device.state() == control::DeviceState::kWaiting) {
            device.set_waiting(e);
            systemd.status(fmt::format("waiting for device {} ({}), attempt {}", wanted, e, attempts));
          }
          next_attempt = now_t + std::chrono::milliseconds(static_cast<int>(backoff_s * 1000));
          backoff_s = std::min(backoff_s * 2, 5.0);
        }
      }
    }
    if (backend->failed() && bc.kind != "portaudio") {
      spdlog::error("{}", backend->failure());
      exit_code = 3;
      stop_reason = "backend failure";
      break;
    }
    if (bc.kind != "render" && o.duration > 0 &&
        engine.metrics().frames.load(std::memory_order_relaxed) >= static_cast<std::uint64_t>(o.duration * rate)) {
      stop_reason = "--duration reached";
      break;
    }
    const auto now = std::chrono::steady_clock::now();
    if (now >= next_health) {
      next_health = now + std::chrono::seconds(1);
      if (state) {  // --state-file: write it if the state changed (never from the audio thread)
        if (o.no_osc) state->poll(ctl, router);  // otherwise the OSC server's thread does
        state->flush();
      }
      auto& m = engine.metrics();
      const auto ls = loader->stats();
      Counters c{m.voice_underruns.load(), m.device_underflows.load(), m.events_dropped.load(), ls.read_errors,
                 ls.truncated};
      const auto hist = m.callback_ns.snapshot();
      const std::uint32_t min_fill = m.take_min_ring_fill();
      // The whole process's CPU (every thread: audio, loader, control) over the last second,
      // the audio callback's share of its budget, what is resident, the real-time policy.
      rusage ru{};
      getrusage(RUSAGE_SELF, &ru);
      const double cpu_s = static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
                           static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1e-6;
      const double wall_s = std::chrono::duration<double>(now - health_prev_t).count();
      const double cpu_pct = wall_s > 0 ? 100.0 * (cpu_s - health_prev_cpu) / wall_s : 0.0;
      const std::uint64_t cb_ns = m.callback_ns_total.load(std::memory_order_relaxed);
      const double cb_pct = wall_s > 0 ? 100.0 * static_cast<double>(cb_ns - health_prev_cb_ns) / (wall_s * 1e9) : 0.0;
      health_prev_cpu = cpu_s;
      health_prev_cb_ns = cb_ns;
      health_prev_t = now;
      const std::string summary = fmt::format(
          "{} voices, CPU {:.1f}% (audio callback {:.1f}%), {}, lowest ring fill {}%, voice underruns {}, "
          "device underflows {}, memory {:.1f} MB resident, device {}",
          m.voices_active.load(), cpu_pct, cb_pct, device.rt_policy(), min_fill / 10, c.voice_underruns,
          c.device_underflows, static_cast<double>(resident_bytes()) / 1e6, control::to_string(device.state()));
      if (o.watch || (o.health_interval > 0 && now >= next_health_line)) {
        spdlog::info("health: {}", summary);
        next_health_line = now + std::chrono::milliseconds(static_cast<int>(o.health_interval * 1000));
      }
      if (!(c == last)) {
        auto window = hist;
        for (std::size_t i = 0; i < window.size(); ++i) window[i] -= hist_prev[i];
        const auto p50 = engine::DurationHistogram::percentile_ns(window, 0.5);
        const auto p99 = engine::DurationHistogram::percentile_ns(window, 0.99);
        // The advice depends on whose time ran out: stemd's callback, or the device's deadline.
        GlitchWindow gw;
        gw.voice_underruns = c.voice_underruns - last.voice_underruns;
        gw.device_underflows = c.device_underflows - last.device_underflows;
        gw.callback_p99_ns = p99;
        gw.callback_max_ns = engine::DurationHistogram::percentile_ns(window, 1.0);  // the window's slowest
        gw.buffer_size = o.buffer_size;
        gw.budget_ms = budget_ms;
        gw.device = bc.kind == "portaudio" ? "the device (" + backend->describe() + ")" : "the " + bc.kind + " output";
        const std::string advice = glitch_advice(gw);
        spdlog::warn(
            "health: voice underruns +{} (total {}), device underflows +{} (total {}), read errors {}, "
            "truncated streams {}, dropped events {}; callback p50 {} p99 {} max {} of {:.0f} µs budget; "
            "lowest ring fill {}%; {} voices{}",
            c.voice_underruns - last.voice_underruns, c.voice_underruns, c.device_underflows - last.device_underflows,
            c.device_underflows, c.read_errors, c.truncated, c.events_dropped, fmt_us(p50), fmt_us(p99),
            fmt_us(m.callback_max_ns.load()), budget_ms * 1000.0, min_fill / 10, m.voices_active.load(), advice);
        last = c;
      }
      hist_prev = hist;
      if (systemd.active() && device.state() == control::DeviceState::kRunning) {
        systemd.status(
            fmt::format("{}, callback p99 {}", summary, fmt_us(engine::DurationHistogram::percentile_ns(hist, 0.99))));
      }
    }
  }

  // ---- shutdown: fade the master, stop the stream, join threads — within the fade + 2 s
  std::atomic<bool> saving_started{false};
  std::atomic<int> exit_status{exit_code};  // what the watcher exits with
  ShutdownDeadline deadline(
      std::chrono::milliseconds(2000 + static_cast<long>(o.shutdown_fade_ms)), [&](const char* step, double seconds) {
        spdlog::error("shutdown ({}): still {} after {:.1f} s — exiting without waiting for it{}", stop_reason, step,
                      seconds,
                      bc.kind == "portaudio" ? " (the audio device did not stop: its server or interface gone?)" : "");
        // Stuck before the state was saved (in the OSC server's stop): write the last state the
        // control thread queued (at most a second old). Stuck inside the save: not again.
        if (state && !saving_started.load()) {
          if (state->flush()) spdlog::info("state saved to {}", state->path());
        }
        spdlog::default_logger()->flush();
        std::fflush(nullptr);
        _exit(exit_status.load());
      });
  systemd.stopping();
  deadline.step("stopping the OSC server");
  server.stop();  // the main thread is the control thread again
  // --state-file: the state as it is now, before the master fades out
  if (state) {
    deadline.step("saving the state file");
    saving_started = true;
    state->capture_now(ctl, router);
    if (state->flush()) spdlog::info("state saved to {}", state->path());
  }
  const std::uint64_t callbacks_before_fade = engine.metrics().callbacks.load();
  const auto fade_started = std::chrono::steady_clock::now();
  if (stop_reason == "SIGINT" || stop_reason == "SIGTERM" || stop_reason == "--duration reached") {
    deadline.step("fading out");
    if (ctl.set_master(0.0f, o.shutdown_fade_ms / 1000.0, err) && bc.kind != "render") {
      // Wait for the fade to play out (plus a period), bounded by the fade + 250 ms: a device
      // that stopped calling back never plays it.
      const auto frames_then = engine.metrics().frames.load();
      const auto need = static_cast<std::uint64_t>((o.shutdown_fade_ms / 1000.0) * rate) + o.buffer_size;
      const auto until = fade_started + std::chrono::milliseconds(250 + static_cast<long>(o.shutdown_fade_ms));
      while (engine.metrics().frames.load() < frames_then + need && std::chrono::steady_clock::now() < until) {
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
      }
    }
  }
  if (bc.kind == "portaudio" && device.state() == control::DeviceState::kRunning) {
    // A stream whose device has gone (JACK server killed) never returns from Pa_StopStream:
    // give it three periods (at least 100 ms) to call back once; if it does not, leave it.
    const auto probe = std::chrono::milliseconds(std::max<long>(100, static_cast<long>(3000.0 * o.buffer_size / rate)));
    while (engine.metrics().callbacks.load() == callbacks_before_fade &&
           std::chrono::steady_clock::now() < fade_started + probe) {
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    if (engine.metrics().callbacks.load() == callbacks_before_fade) {
      spdlog::warn("shutdown: the audio device stopped calling back ({}): not waiting for it to stop",
                   backend->describe());
      backend->mark_lost();
    }
  }
  g_abort_exit_status = exit_code;
  struct sigaction on_abort {
  }, default_abort{};
  on_abort.sa_handler = exit_on_abort;
  sigemptyset(&on_abort.sa_mask);
  if (bc.kind == "portaudio") sigaction(SIGABRT, &on_abort, &default_abort);
  deadline.step(bc.kind == "portaudio" ? "stopping the audio device (Pa_StopStream)" : "stopping the audio output");
  backend->stop();
  deadline.step("stopping the loader thread");
  loader->stop();
  ctl.service();
  const auto& m = engine.metrics();
  const auto hist = m.callback_ns.snapshot();
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();
  spdlog::info(
      "stopped ({}): {:.1f} s of audio in {:.1f} s, callbacks={} voice_underruns={} device_underflows={} "
      "callback p50={} p99={} max={} (budget {:.0f} µs), loader reads={} read_errors={}",
      stop_reason, static_cast<double>(m.frames.load()) / rate, secs, m.callbacks.load(), m.voice_underruns.load(),
      m.device_underflows.load(), fmt_us(engine::DurationHistogram::percentile_ns(hist, 0.5)),
      fmt_us(engine::DurationHistogram::percentile_ns(hist, 0.99)), fmt_us(m.callback_max_ns.load()),
      budget_ms * 1000.0, loader->stats().reads, loader->stats().read_errors);
  // A failed device, or a render whose output could not replace its target (it does so only now,
  // on success; otherwise it is removed), exits 3 — and so do the shutdown watcher and the abort
  // handler, should closing the device still hang or abort.
  if (exit_code == 0 && (backend->failed() || !backend->commit(err))) {
    spdlog::error("{}", backend->failed() ? backend->failure() : err);
    g_abort_exit_status = exit_status = exit_code = 3;
  }
  deadline.step(bc.kind == "portaudio" ? "closing the audio device (Pa_Terminate)" : "closing the audio output");
  backend.reset();
  if (bc.kind == "portaudio") sigaction(SIGABRT, &default_abort, nullptr);
  deadline.disarm();
  return exit_code;
}

}  // namespace stemd::app
