// Is the Link session's beat grid sane? (see link_grid_check.hpp) [control]
#include "link_grid_check.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

namespace stemd::control {

namespace {
// A grid is judged true only over at least this much time (output seconds): over shorter steps a
// stopped beat is within the tolerance. Longer than 10 s (a stream that stopped, a device
// restarted), there is nothing to compare: the next grid starts afresh.
constexpr double kMinStepS = 0.25;
constexpr double kMaxStepS = 10.0;
// Link realigns the phase when it joins a session: twice within this long is not that.
constexpr double kJumpWindowS = 5.0;
}  // namespace

bool LinkGridCheck::sane(const LinkGrid& g) const {
  return std::isfinite(g.beat) && std::fabs(g.beat) <= kMaxBeat && std::isfinite(g.bpm) && g.bpm > 0 && g.bpm <= 1000 &&
         std::isfinite(g.frames_per_second) && g.frames_per_second > 0 && std::isfinite(g.quantum) && g.quantum > 0;
}

void LinkGridCheck::reject(std::string why) {
  pending_ = false;
  true_frames_ = 0;
  if (rejected_) return;
  rejected_ = true;
  changed_ = true;
  ++rejections_;
  reason_ = std::move(why);
}

bool LinkGridCheck::feed(const LinkGrid& g) {
  if (have_ref_ && g.frame == last_frame_) return last_verdict_;  // the same callback's grid again
  last_frame_ = g.frame;
  bool& verdict = last_verdict_;
  if (!sane(g)) {
    reject(fmt::format("beat {:.6g} at {:.1f} bpm is beyond any session (|beat| over 2^40, or not a number)", g.beat,
                       g.bpm));
    have_ref_ = false;
    return verdict = false;
  }
  const double fps = g.frames_per_second;
  const double secs = static_cast<double>(g.frame - ref_.frame) / fps;
  if (!have_ref_ || g.quantum != ref_.quantum || secs < 0 || secs > kMaxStepS) {
    ref_ = g;  // nothing to compare with (or a new quantum: Link re-encodes the phase)
    have_ref_ = true;
    pending_ = false;
    true_frames_ = 0;
    return verdict = !rejected_;
  }
  const double lo = secs * std::min(ref_.bpm, g.bpm) / 60.0, hi = secs * std::max(ref_.bpm, g.bpm) / 60.0;
  const double tol = std::max(kToleranceS * std::max(ref_.bpm, g.bpm) / 60.0, kToleranceShare * hi);
  const double db = g.beat - ref_.beat;
  if (db >= lo - tol && db <= hi + tol) {
    if (secs < kMinStepS) return verdict = !rejected_ && !pending_;  // too short to judge: the reference stays
    ref_ = g;
    pending_ = false;  // a jump held is confirmed: the grid runs on from it
    true_frames_ += secs * fps;
    if (rejected_ && true_frames_ >= kRecoverS * fps) {
      rejected_ = false;
      changed_ = true;
    }
    return verdict = !rejected_;
  }
  const double err = db < lo ? db - lo : db - hi;
  const char* what = std::fabs(db) <= tol ? "stood still" : db < 0 ? "ran backwards" : "jumped";
  const std::string why = fmt::format("the beat {}: {:+.3f} beats in {:.0f} ms at {:.1f} bpm, not {:.3f}", what, db,
                                      secs * 1e3, g.bpm, db < lo ? lo : hi);
  ref_ = g;
  true_frames_ = 0;
  const bool recent = have_jump_ && static_cast<double>(g.frame - last_jump_frame_) < kJumpWindowS * fps;
  if (pending_ || recent || std::fabs(err) > g.quantum / 2 + tol) {
    reject(why + (pending_ ? ", twice in a row"
                  : recent ? fmt::format(", {:.0f} s after the last jump", (g.frame - last_jump_frame_) / fps)
                           : std::string(", more than half a quantum")));
  } else {
    pending_ = true;  // Link may realign the phase once: held until the next grid runs true from it
  }
  have_jump_ = true;
  last_jump_frame_ = g.frame;
  return verdict = false;
}

}  // namespace stemd::control
