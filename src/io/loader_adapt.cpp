// LoaderThread's adaptive prefetch: fill targets from the measured wait, which rings need a read
// (consider), and its log line (see loader_thread.hpp).
#include "loader_reader.hpp"

#include "base/log_guard.hpp"

#include <spdlog/spdlog.h>

#include <pthread.h>
#include <sched.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <ctime>

namespace stemd::io {

namespace {
std::uint64_t thread_cpu_ns() {
  timespec t{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return static_cast<std::uint64_t>(t.tv_sec) * 1'000'000'000ull + static_cast<std::uint64_t>(t.tv_nsec);
}
}  // namespace

// [loader] SCHED_FIFO at rt_wanted() (on, and it is > 0), or normal scheduling at
// rt_fallback_nice (the nice only when permitted). Returns 0, or pthread_setschedparam's error.
int LoaderThread::set_fifo(bool on) {
  const int want = rt_wanted();
  on = on && want > 0;
  sched_param sp{};
  sp.sched_priority = on ? std::clamp(want, sched_get_priority_min(SCHED_FIFO), sched_get_priority_max(SCHED_FIFO)) : 0;
  const int rc = pthread_setschedparam(pthread_self(), on ? SCHED_FIFO : SCHED_OTHER, &sp);
  if (rc != 0) return rc;
  if (!on) setpriority(PRIO_PROCESS, static_cast<id_t>(gettid()), cfg_.rt_fallback_nice);  // best effort
  fifo_ = on;
  std::lock_guard lock(mutex_);
  stats_.rt_priority = on ? sp.sched_priority : 0;
  return 0;
}

// [loader] The real-time priority asked for, when permitted; logged either way.
void LoaderThread::set_priority() {
  gov_wall_ns_ = mono_ns();
  gov_cpu_ns_ = thread_cpu_ns();
  seen_cap_ = rt_cap_.load(std::memory_order_relaxed);
  if (cfg_.rt_priority <= 0) return;
  if (const int rc = set_fifo(true); rc != 0) {
    spdlog::info(
        "loader thread: normal scheduling (SCHED_FIFO {} not permitted: {}; under systemd the unit's "
        "LimitRTPRIO allows it)",
        rt_wanted(), std::strerror(rc));
    return;
  }
  if (!fifo_) return;  // capped to normal scheduling below the audio thread (a loader thread after a stuck one)
  // A thread that replaces a given-up one (a slow share: one every slow read) says it at debug.
  const bool replacement = [this] {
    std::lock_guard lock(mutex_);
    return stats_.stuck_reads > 0;
  }();
  // Kept below the audio thread: once that runs, its "audio thread:" line says where both stand.
  spdlog::log(replacement ? spdlog::level::debug : spdlog::level::info,
              "loader thread: SCHED_FIFO priority {} (to stay below the audio thread's)", rt_wanted());
}

// [loader] A new cap (the audio thread's priority became known): SCHED_FIFO at the capped
// priority, or normal scheduling. A loader demoted for its CPU comes back under the cap.
void LoaderThread::follow_cap() {
  const int cap = rt_cap_.load(std::memory_order_relaxed);
  if (cap == seen_cap_) return;
  seen_cap_ = cap;
  if (cfg_.rt_priority <= 0 || demoted_) return;
  set_fifo(true);  // not permitted: it stays as it is (normal scheduling, said at its start)
}

// [loader] Once per window (kAdaptEveryNs of wall time): the loader's CPU over the window, and
// the SCHED_FIFO governor (LoaderConfig::rt_cpu_high). A demotion is logged once per episode.
void LoaderThread::govern_priority(std::uint64_t now) {
  follow_cap();  // every pass: a cap applies at the pass cap_rt_priority() woke
  if (now - gov_wall_ns_ < kAdaptEveryNs) return;
  const std::uint64_t cpu = thread_cpu_ns();
  const double used = static_cast<double>(cpu - gov_cpu_ns_) / static_cast<double>(now - gov_wall_ns_);
  gov_wall_ns_ = now;
  gov_cpu_ns_ = cpu;
  {
    std::lock_guard lock(mutex_);
    stats_.cpu_fraction = used;
  }
  if (cfg_.rt_priority <= 0) return;
  if (fifo_ && used > cfg_.rt_cpu_high && set_fifo(false) == 0) {
    demoted_ = true;
    ++demotions_;
    {
      std::lock_guard lock(mutex_);
      stats_.rt_demotions = demotions_;
    }
    // Logged at the first demotion and then at most every 10 s (it may come and go at each window).
    if (demotions_ == 1 || now - demote_logged_ns_ >= 10 * 1'000'000'000ull) {
      demote_logged_ns_ = now;
      spdlog::warn(
          "loader thread: used {:.0f} % of a core over {} ms, at normal priority until it uses less than {:.0f} % (a "
          "real-time thread that does not sleep stalls the audio callback on its CPU); the streams need about as "
          "much CPU as this machine has to spare: if voices underrun, play fewer streamed voices at once or let more "
          "files play from memory (--preload-limit-mb; FLAC, Ogg and MP3 cost more to decode than WAV) ({} time{} "
          "so far)",
          used * 100, kAdaptEveryNs / 1'000'000, cfg_.rt_cpu_low * 100, demotions_, demotions_ == 1 ? "" : "s");
    }
  } else if (demoted_ && used < cfg_.rt_cpu_low && set_fifo(true) == 0) {
    demoted_ = false;
  }
}

void LoaderThread::adapt(Reader& r, std::uint64_t now_ns, bool dry) {
  if (!adaptive() || r.done) return;
  const ReadJitter& j = *r.jitter;
  const double wait_s = j.seeded ? j.mean_s + kSigma * std::sqrt(std::max(j.var_s, 0.0)) : 0.0;
  const double cover_s =
      wait_s + static_cast<double>(cfg_.period_frames) / cfg_.sample_rate + cfg_.wake_timeout_ms * 1e-3;
  r.need = static_cast<std::int64_t>(std::ceil(cover_s * r.rate()));
  std::int64_t want = r.need + cfg_.chunk_frames / 2;
  const std::int64_t old = r.target;
  const std::int64_t cap = r.capacity();
  if (dry) {
    want = std::max(want, 2 * old);  // it underran: whatever the estimate says, double
  }
  want = std::clamp(want, min_frames_, max_frames_);
  std::int64_t next = old;
  if (want > old) {
    next = std::min(want, cap);
    if (next > old) r.grown_ns = now_ns;
  } else if (want<old&& static_cast<double>(now_ns - r.grown_ns) * 1e-9> cfg_.shrink_hold_s && r.adapted_ns != 0) {
    const double dt = static_cast<double>(now_ns - r.adapted_ns) * 1e-9;
    const auto step = static_cast<std::int64_t>(static_cast<double>(old - want) *
                                                std::min(1.0, dt / std::max(cfg_.shrink_tau_s, 1e-3)));
    next = std::max(want, old - std::max<std::int64_t>(step, 1));
  }
  r.adapted_ns = now_ns;
  r.target = next;
  publish_low_water(r);
  const bool capped = want > cap;
  // What the next stream of this source starts with (its ring sized for it).
  r.jitter->target_frames.store(capped ? want : next, std::memory_order_relaxed);

  const double moved = std::abs(static_cast<double>(next - r.logged_target)) / std::max<double>(r.logged_target, 1);
  // A dry ring is logged even for a small change; one at a target that cannot move (its ring's
  // full size) once a stream, not every second a slow disk keeps it dry (its underruns say that).
  const bool unmoved = next == r.logged_target;
  if (moved >= kLogStep || (dry && !change_pending_ && !(unmoved && r.dry_told))) {
    if (dry && unmoved) r.dry_told = true;
    if (next > r.logged_target) ++grow_count_;
    if (next < r.logged_target) ++shrink_count_;
    const double change_size = std::abs(static_cast<double>(next - r.logged_target));
    if (!change_pending_ || change_size > std::abs(static_cast<double>(change_.to - change_.from))) {
      const int more = change_pending_ ? change_.more + 1 : 0;
      change_ =
          Change{r.path, r.logged_target, next, cap, j.mean_s, std::sqrt(std::max(j.var_s, 0.0)), dry, capped, more};
    } else {
      ++change_.more;
    }
    change_pending_ = true;
    r.logged_target = next;
  }
}

void LoaderThread::adapt_all(std::uint64_t now_ns) {
  double tmin = 0, tmax = 0, tsum = 0, wmean = 0, wsd = 0;
  std::uint64_t bytes = 0;
  std::int64_t hint = 0;
  std::size_t n = 0;
  for (Reader* r : readers_) {
    bytes += static_cast<std::uint64_t>(r->ring_bytes());
    if (r->done) continue;
    // Consumption since the last sweep: frames written minus frames still in the ring.
    const auto fill = static_cast<std::uint64_t>(r->capacity()) - r->ring().writable_frames();
    const std::uint64_t consumed = r->written - std::min(fill, r->written);
    if (r->drain_ns != 0 && now_ns > r->drain_ns) {
      const double fps = static_cast<double>(consumed - std::min(r->drain_written, consumed)) /
                         (static_cast<double>(now_ns - r->drain_ns) * 1e-9);
      r->drain_fps = r->drain_fps == 0 ? fps : r->drain_fps + 0.25 * (fps - r->drain_fps);
    }
    r->drain_written = consumed;
    r->drain_ns = now_ns;
    adapt(*r, now_ns, false);
    const double ms = 1e3 * static_cast<double>(r->target) / r->rate();
    tmin = n == 0 ? ms : std::min(tmin, ms);
    tmax = std::max(tmax, ms);
    tsum += ms;
    hint = std::max(hint, r->target);
    if (r->jitter->seeded && r->jitter->mean_s * 1e3 >= wmean) {
      wmean = r->jitter->mean_s * 1e3;
      wsd = std::sqrt(std::max(r->jitter->var_s, 0.0)) * 1e3;
    }
    ++n;
  }
  if (adaptive()) hint_frames_.store(hint, std::memory_order_relaxed);
  std::lock_guard lock(mutex_);
  stats_.rings_ran_dry = dry_count_;
  stats_.ring_looks = looks_;
  stats_.sweep_looks = sweep_looks_;
  stats_.bells = bells_answered_;
  stats_.target_grows = grow_count_;
  stats_.target_shrinks = shrink_count_;
  stats_.target_ms_min = tmin;
  stats_.target_ms_max = tmax;
  stats_.target_ms_mean = n > 0 ? tsum / static_cast<double>(n) : 0;
  stats_.wait_ms_mean = wmean;
  stats_.wait_ms_sd = wsd;
  read_peak_s_ = std::max(read_max_s_, read_peak_s_ * 0.93);  // decays by half in ≈ 1 s
  stats_.read_ms_max = read_peak_s_ * 1e3;
  stats_.ring_bytes = bytes;
  read_max_s_ = 0;
}

void LoaderThread::log_changes(std::uint64_t now_ns) {
  if (!change_pending_ || now_ns - last_log_ns_ < kLogEveryNs) return;
  const Change& c = change_;
  const double rate = cfg_.sample_rate;
  spdlog::info(
      "prefetch: {} ring target {:.0f} → {:.0f} ms ({}wait for data {:.1f} ms, σ {:.1f} ms; ring holds "
      "{:.0f} ms{}){}",
      base::log_escape(c.path), 1e3 * c.from / rate, 1e3 * c.to / rate, c.dry ? "it ran dry; " : "",
      c.wait_mean_s * 1e3, c.wait_sd_s * 1e3, 1e3 * c.capacity / rate,
      c.capped ? ", too small: the next streams of this file get larger rings" : "",
      c.more > 0 ? fmt::format(" (and {} more)", c.more) : std::string());
  change_pending_ = false;
  last_log_ns_ = now_ns;
}

// [loader] Whether `r` needs a read now; if so it joins `order` (with how full it is, relative to
// its target, and since when it has waited).
void LoaderThread::consider(Reader* r, std::uint64_t now, Order& order) {
  if (r->done || r->orphaned) return;
  if (r->retry_at_ns != 0) {  // its last read was given up and brought nothing: backing off
    if (now < r->retry_at_ns) return;
    r->retry_at_ns = 0;
  }
  // A call on its file system has not returned: not read (its voice underruns) until it does.
  if (dead_devices_.load(std::memory_order_relaxed) > 0 && on_dead_device(*r)) return;
  ++looks_;
  r->ring().rearm_doorbell();  // before reading the fill: a drop after this read rings again
  const auto cap = r->capacity();
  const auto writable = static_cast<std::int64_t>(r->ring().writable_frames());
  const std::int64_t fill = cap - writable;
  if (fill == 0 && r->primed) {  // the voice drained it: it underran (or is about to)
    r->primed = false;
    ++dry_count_;
    adapt(*r, now, true);
  }
  // Skip rings above their low-water mark.
  const std::int64_t deficit = std::min(writable, r->target - fill);
  const std::int64_t min_read = r->target - r->low_water(cfg_.chunk_frames, adaptive());
  if (deficit <= 0 || deficit < min_read) {
    r->needy_since_ns = 0;
    return;
  }
  if (r->needy_since_ns == 0) {
    // It crossed the threshold between passes: date the crossing from its drain rate, so a
    // pass spent in other streams' slow reads counts as waiting.
    const double late_s = static_cast<double>(deficit - min_read) / r->rate();
    const auto late_ns = static_cast<std::uint64_t>(late_s * 1e9);
    // Never before its last write or its target's last growth (a new deficit, not a wait).
    r->needy_since_ns = std::max({r->last_write_ns, r->grown_ns, now > late_ns ? now - late_ns : 0});
    if (r->needy_since_ns == 0) r->needy_since_ns = now;
  }
  const auto fill_permille = static_cast<std::uint32_t>(std::max<std::int64_t>(fill, 0) * 1000 / r->target);
  r->dry_at_ns =
      now + static_cast<std::uint64_t>(static_cast<double>(std::max<std::int64_t>(fill, 0)) * 1e9 / r->rate());
  order.emplace_back(fill_permille, r, r->needy_since_ns);
}

// [loader]/[control] The fill at or below which the ring's consumer rings its doorbell: where
// the pass would start refilling it (Reader::low_water).
void LoaderThread::publish_low_water(Reader& r) noexcept {
  r.ring().set_low_water(
      static_cast<std::size_t>(std::max<std::int64_t>(0, r.low_water(cfg_.chunk_frames, adaptive()))));
}

}  // namespace stemd::io
