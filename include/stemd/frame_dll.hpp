// The frame ↔ clock mapping of the output stream, tracked by a delay-locked loop [audio].
//
// Every callback the audio thread stamps CLOCK_MONOTONIC at its start. Those stamps jitter by
// the scheduler's wake-up latency (tens to hundreds of µs), while the device's frames run at a
// steady (if not exactly nominal) rate. A second-order DLL, as JACK's (after F. Adriaensen,
// "Using a DLL to filter time", 2005), turns the stamps into a smooth line: the time of the
// period's first frame and the length of a frame in ns of CLOCK_MONOTONIC (the device's true
// rate against the system clock). Timetags and Link beats are mapped through that line, so a
// start lands where the device is, not where the last wake-up happened to be.
//
// error_ns(): the last stamp minus the loop's prediction for it (the jitter the loop filters
// out, plus any drift it has not followed yet). A stamp far off the line is mostly a late wake-up
// (the one-sided outlier that also makes a server report an xrun): it moves the loop by at most
// the outlier bound (1 ms, or a quarter period if longer), so one late callback cannot drag the
// line. kJumpPeriods stamps in a row (and kJumpSeconds) off by more than the bound mean the device's timeline
// really moved (the server skipped a cycle, frames were lost): the loop re-phases there — same
// measured rate, still narrow after a second of the wide loop (a JACK dummy server on a busy VM
// steps every few seconds: a full restart each time kept the line from ever settling) — and, when
// the timeline moved forward by less than kMaxJumpNs, update() returns by how many frames, so the
// owner numbers its frames on the device's timeline again (the engine advances its frame counter:
// commands already scheduled keep their wall-clock time). A stamp kMaxJumpNs off or more (the
// stream stopped and restarted, the machine was suspended) restarts the loop at once.
// The loop starts wide (1 Hz for 4 s: locked within a second or two) and then narrows to
// `bandwidth_hz`.
//
// Pure arithmetic: no allocation, no lock, no system call. One owner (the audio thread).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>

namespace stemd::engine {

class FrameDll {
 public:
  static constexpr double kMaxJumpNs = 1e9;     // a stamp 1 s off the line: start again at once
  static constexpr int kJumpPeriods = 16;       // this many in a row past the outlier bound…
  static constexpr double kJumpSeconds = 0.1;   // …over at least this long: the timeline moved
  static constexpr double kRephaseWideS = 1.0;  // the wide loop after a re-phase (see rephase())

  // `rate`: the nominal frame rate (frames per second of the clock); `bandwidth_hz`: how fast
  // the loop follows once settled (lower = smoother, slower to follow the device's drift).
  explicit FrameDll(double rate = 48000, double bandwidth_hz = 0.1) noexcept : rate_(rate), bw_(bandwidth_hz) {}

  // A period of `frames` frames starts now: `frame` is its first frame, `stamp_ns` the clock.
  // Returns 0, or the frames the device's timeline moved forward (see above): the owner adds them
  // to its frame counter (this period's first frame is then frame + the jump).
  std::int64_t update(std::int64_t frame, std::uint64_t stamp_ns, std::uint32_t frames) noexcept {
    const double t = static_cast<double>(stamp_ns);
    if (!running_ || frame != next_frame_ || frames == 0) {
      restart(frame, t, frames);
      return 0;
    }
    const double e_raw = t - t1_;  // the stamp against where the loop expected this period
    const double bound = std::max(1e6, 0.25 * e2_);
    // A run of outliers: all on one side, and how far apart (a moved timeline is a steady step).
    if (std::fabs(e_raw) > bound && (outliers_ == 0 || (e_raw > 0) == (run_lo_ > 0))) {
      if (outliers_ == 0) run_ns_per_frame_ = e2_ / last_frames_;  // the rate before the run
      run_lo_ = outliers_ == 0 ? e_raw : std::min(run_lo_, e_raw);
      run_frames_ = outliers_ == 0 ? frames : run_frames_ + frames;
      tail_[outliers_ % kTail] = e_raw;
      ++outliers_;
    } else {
      outliers_ = std::fabs(e_raw) > bound ? 1 : 0;
      run_lo_ = e_raw;
      run_frames_ = frames;
      tail_[0] = e_raw;
    }
    if (std::fabs(e_raw) >= kMaxJumpNs) {
      ++resets_;
      restart(frame, t, frames);
      return 0;
    }
    // At least kJumpPeriods periods and kJumpSeconds: with tiny periods a stall of the thread
    // (stamps late, then catching up) would otherwise pass for a step.
    if (outliers_ >= kJumpPeriods && run_frames_ >= kJumpSeconds * rate_) {
      ++resets_;
      // Forward, and the run's last kTail stamps steady (within the bound): the timeline moved
      // on — frames were lost, or (a JACK dummy server) re-anchored, maybe several times in a
      // burst of xruns: where it is now is where the tail of the run is, not where the run began
      // (judging the whole run threw a burst's steps away: the frame counter stayed behind by
      // them, and timed starts played that late). Anything else (callbacks arriving early, a
      // stall caught up): the line starts again, the frames stay. The tail's earliest stamp is
      // the one least delayed by a late wake-up: the new timeline is the old line moved by that
      // much (one late stamp would bias it by its lateness, for good).
      const int n = std::min(outliers_, kTail);
      double lo = tail_[0], hi = tail_[0];
      for (int i = 1; i < n; ++i) lo = std::min(lo, tail_[i]), hi = std::max(hi, tail_[i]);
      const bool step = lo > 0 && hi - lo < bound;
      const std::int64_t jump = step ? std::llround(lo * last_frames_ / e2_) : 0;
      rephase(frame + jump, t1_ + (step ? lo : run_lo_), frames);
      return jump;
    }
    error_ns_ = e_raw;
    const double e = std::clamp(e_raw, -bound, bound);
    // The loop's coefficients for this period length (ω = 2π·B·period); B is 1 Hz for the
    // first 4 s after a (re)start (it locks, whatever the first stamp's lateness), then narrows.
    locked_s_ += frames / rate_;
    const double bw = locked_s_ < 4.0 ? 1.0 : std::max(bw_, 1.0 / (locked_s_ - 3.0));
    const double omega = 2.0 * M_PI * bw * frames / rate_;
    const double b = std::sqrt(2.0) * omega, c = omega * omega;
    t0_ = t1_;
    frame0_ = frame;
    // e2_ is the loop's estimate of this period's length; scaled when the period size changes.
    const double period = e2_ * frames / last_frames_;
    t1_ += b * e + period;
    e2_ = period + c * e;
    last_frames_ = frames;
    next_frame_ = frame + frames;
    ++updates_;
    return 0;
  }

  // The owner knows the device's timeline moved (a stream restart): the next update starts the
  // loop again from its stamp.
  void restart_next() noexcept {
    if (running_) ++resets_;
    running_ = false;
  }

  bool running() const noexcept { return running_; }
  // The loop's time of frame0() (ns of the clock) and the length of one frame (ns).
  std::int64_t frame0() const noexcept { return frame0_; }
  double time0_ns() const noexcept { return t0_; }
  // The loop's period estimate, per frame (the device's rate against the clock).
  double ns_per_frame() const noexcept { return last_frames_ > 0 ? e2_ / last_frames_ : 1e9 / rate_; }
  double error_ns() const noexcept { return error_ns_; }
  // Seconds of frames the loop has tracked since it last (re)started, as its narrowing counts
  // them (a re-phase leaves at most 4 − kRephaseWideS): the line is within tens of µs only after
  // several seconds of this — how a box tells that its clock is ready for a synchronised start.
  double locked_seconds() const noexcept { return running_ ? locked_s_ : 0.0; }
  std::uint64_t resets() const noexcept { return resets_; }
  std::uint64_t updates() const noexcept { return updates_; }

 private:
  void restart(std::int64_t frame, double t, std::uint32_t frames) noexcept {
    if (frames == 0) frames = 1;
    running_ = true;
    frame0_ = frame;
    t0_ = t;
    e2_ = 1e9 * frames / rate_;
    t1_ = t + e2_;
    last_frames_ = frames;
    next_frame_ = frame + frames;
    error_ns_ = 0;
    outliers_ = 0;
    locked_s_ = 0;
  }

  // The timeline moved but the device is the same: the line starts again at `t`, keeping the
  // rate it had measured (a restart would fall back to the nominal rate and the wide loop for 4 s:
  // on a server that skips a cycle every few seconds, the line would never settle) and the lock's
  // narrowing, but with kRephaseWideS of the wide loop to take up what the run's earliest stamp
  // left of wake-up lateness.
  void rephase(std::int64_t frame, double t, std::uint32_t frames) noexcept {
    // The rate from before the run: the clamped outliers of the run itself pulled at it.
    const double ns_per_frame = run_ns_per_frame_ > 0 ? run_ns_per_frame_ : e2_ / last_frames_;
    const double locked = locked_s_;
    restart(frame, t, frames);
    e2_ = ns_per_frame * last_frames_;
    t1_ = t + e2_;
    locked_s_ = std::max(0.0, std::min(locked, 4.0 - kRephaseWideS));
  }

  double rate_, bw_;
  bool running_ = false;
  std::int64_t frame0_ = 0, next_frame_ = 0;
  double t0_ = 0, t1_ = 0, e2_ = 0;
  std::uint32_t last_frames_ = 0;
  double error_ns_ = 0;
  int outliers_ = 0;               // stamps in a row past the outlier bound, on one side
  double run_lo_ = 0;              // their smallest error
  double run_frames_ = 0;          // and the frames they cover
  static constexpr int kTail = 8;  // the run's last stamps that say where the timeline is now
  double tail_[kTail] = {};        // their errors (a ring, by outliers_)
  double run_ns_per_frame_ = 0;    // the loop's rate when the run began
  double locked_s_ = 0;            // seconds of frames since the last (re)start
  std::uint64_t resets_ = 0, updates_ = 0;
};

}  // namespace stemd::engine
