// Is the Link session's beat grid sane? [control] (outside pass 26, M3)
//
// stemd follows the beat grid Link gives it (LinkSession::grid: engine frame F is heard on beat
// B at T bpm). A forged session founder whose clock is ~4·10^18 µs ahead makes Link's int64
// micro-beat arithmetic overflow: the beat it returns stops (or jumps backwards), and quantised
// starts that follow it land nowhere. This checks each grid against the one before: between two
// grids the beat must advance by Δframes × bpm / 60 / fps (output frames at the device's
// measured rate), within 20 ms of beats or 1 %, with bpm anywhere between the two grids' tempos
// (a tempo change in between), and stay within sane magnitudes (|beat| ≤ 2^40).
//
// What Link itself may do: a phase realignment (joining another session, a new quantum) moves
// the beat once, by at most half a quantum (closestPhaseMatch), and the grid then runs on from
// there. So one jump within half a quantum is held (not followed) until the next grid confirms
// it runs true, then followed; a second inconsistent step in a row or within 5 s, a jump beyond
// half a quantum, or an absurd magnitude rejects the grid. A rejected grid is followed again once it has run true
// for 1 s of frames. Pure bookkeeping, no Link: unit tests feed it synthetic grids.
#pragma once

#include "link_session.hpp"

#include <cstdint>
#include <string>

namespace stemd::control {

class LinkGridCheck {
 public:
  // The largest |beat| taken: 2^40 beats is 2,000 years at 999 bpm.
  static constexpr double kMaxBeat = 1099511627776.0;
  // The tolerance: this much of the session's time (seconds), or this share of the advance.
  static constexpr double kToleranceS = 0.020;
  static constexpr double kToleranceShare = 0.01;
  // A rejected grid is followed again after it has run true for this long (output seconds).
  static constexpr double kRecoverS = 1.0;

  // Takes the latest grid; true if the tempo clock may follow it now.
  bool feed(const LinkGrid& g);

  // The grid is rejected (not followed): the status's link_grid_rejected.
  bool rejected() const { return rejected_; }
  // Why it was last rejected ("the beat stood still: 0.000 beats in 500 ms at 170.0 bpm, not 1.417").
  const std::string& reason() const { return reason_; }
  // Times a sane grid was rejected (each episode once).
  std::uint64_t rejections() const { return rejections_; }
  // Set when rejected() changed since the last call (to log each change once); cleared by it.
  bool take_change() {
    const bool c = changed_;
    changed_ = false;
    return c;
  }

 private:
  void reject(std::string why);
  bool sane(const LinkGrid& g) const;

  bool have_ref_ = false;
  LinkGrid ref_;  // the grid the next one is compared with
  std::int64_t last_frame_ = -1;
  bool last_verdict_ = false;
  bool pending_ = false;    // one inconsistent step: held until the next confirms it
  bool have_jump_ = false;  // an inconsistent step was seen, at last_jump_frame_
  std::int64_t last_jump_frame_ = 0;
  bool rejected_ = false;
  bool changed_ = false;
  double true_frames_ = 0;  // frames the grid has run true since its last inconsistent step
  std::uint64_t rejections_ = 0;
  std::string reason_;
};

}  // namespace stemd::control
