// LoaderThread's adaptive prefetch: fill targets from the measured wait, and its log line
// (see loader_thread.hpp).
#include "loader_reader.hpp"

#include "base/log_guard.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>

namespace stemd::io {

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
  if (moved >= kLogStep || (dry && !change_pending_)) {
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

// [loader] The real-time priority asked for, when permitted; logged either way.
}  // namespace stemd::io
