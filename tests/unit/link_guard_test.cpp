// The Link follower's guards (outside pass 26): the beat grid is checked before it is followed
// (M3: a forged founder's far-ahead clock makes Link's beat stop or run backwards), and a
// session whose timeline is absurd is recognised (M2: a forged beat origin of 2^63−1 locks the
// session's tempo; M3's clock). Synthetic grids and timelines: no network.
#include "control/link_grid_check.hpp"
#include "control/link_session.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>

namespace stemd::control {
namespace {

constexpr double kFps = 48000;

// A grid every `step_s` seconds from `t0_s` on, the beat a function of the time.
struct Feeder {
  LinkGridCheck check;
  double t = 0;
  int followed = 0, held = 0;
  template <class BeatAt>
  void run(double seconds, double step_s, double bpm, BeatAt beat_at, double quantum = 4) {
    for (double end = t + seconds; t < end; t += step_s) {
      LinkGrid g;
      g.frame = std::llround(t * kFps);
      g.beat = beat_at(t);
      g.bpm = bpm;
      g.quantum = quantum;
      g.frames_per_second = kFps;
      (check.feed(g) ? followed : held) += 1;
    }
  }
};

TEST(LinkGridCheck, ATrueGridIsAlwaysFollowed) {
  Feeder f;
  f.run(5.0, 0.005, 120, [](double t) { return 3.25 + t * 2; });  // every callback
  f.run(5.0, 0.7, 120, [](double t) { return 3.25 + t * 2; });    // or seldom
  f.run(2.0, 0.01, 999, [](double t) { return 3.25 + 10 * 2 + (t - 10) * 999 / 60; });
  EXPECT_EQ(f.held, 0);
  EXPECT_FALSE(f.check.rejected());
  EXPECT_EQ(f.check.rejections(), 0u);
}

// Link realigns the phase once (joining another session, within half a quantum), and a tempo
// change between two grids advances the beat at a tempo between theirs: followed, never rejected.
TEST(LinkGridCheck, APhaseRealignmentAndATempoChangeAreTaken) {
  Feeder f;
  f.run(2.0, 0.01, 120, [](double t) { return t * 2; });
  f.run(2.0, 0.01, 120, [](double t) { return t * 2 - 1.5; });  // one jump of −1.5 beats (quantum 4)
  EXPECT_FALSE(f.check.rejected());
  EXPECT_GT(f.held, 0);  // held until the grid ran on from it
  const int held = f.held;
  f.run(1.0, 0.3, 120, [](double t) { return t * 2 - 1.5; });
  const double last = f.t - 0.3;  // the last grid fed
  LinkGrid g;                     // 120 → 150 bpm halfway between it and this one, 0.3 s on
  g.frame = std::llround(f.t * kFps);
  g.beat = last * 2 - 1.5 + 0.15 * 2 + 0.15 * 2.5;
  g.bpm = 150;
  g.frames_per_second = kFps;
  EXPECT_TRUE(f.check.feed(g));
  EXPECT_EQ(f.held, held);
  EXPECT_FALSE(f.check.rejected());
}

// M3: the beat stops (30.776 for 40 s in the attack). Rejected within a second, not followed;
// followed again once it has run true for a second.
TEST(LinkGridCheck, AFrozenBeatIsRejectedThenFollowedAgain) {
  Feeder f;
  f.run(2.0, 0.01, 170, [](double t) { return t * 170 / 60; });
  const int followed = f.followed;
  f.run(1.0, 0.01, 170, [](double) { return 2 * 170 / 60.0; });  // where it was
  EXPECT_TRUE(f.check.rejected());
  EXPECT_NE(f.check.reason().find("stood still"), std::string::npos) << f.check.reason();
  EXPECT_LE(f.followed - followed, 30);  // at most ~0.25 s of it, within the tolerance (20 ms of beats)
  const int after = f.followed;
  f.run(10.0, 0.01, 170, [](double) { return 2 * 170 / 60.0; });
  EXPECT_EQ(f.followed, after);
  EXPECT_EQ(f.check.rejections(), 1u);  // one episode: one warning
  EXPECT_TRUE(f.check.take_change());
  EXPECT_FALSE(f.check.take_change());
  f.run(0.9, 0.01, 170, [](double t) { return 100 + t * 170 / 60; });  // runs true again: not yet 1 s
  EXPECT_TRUE(f.check.rejected());
  f.run(0.5, 0.01, 170, [](double t) { return 100 + t * 170 / 60; });
  EXPECT_FALSE(f.check.rejected());
  EXPECT_TRUE(f.check.take_change());
}

// The beat jumping forwards and back (37.40 → 43.40 → 41.40 in 2 s at 120 bpm), each jump within
// half a quantum, a jump of more than half a quantum, the beat running backwards: rejected.
TEST(LinkGridCheck, BackwardsAndLargeJumpsAreRejected) {
  Feeder f;
  f.run(2.0, 0.01, 120, [](double t) { return 33.4 + t * 2; });
  f.run(0.5, 0.01, 120, [](double t) { return 33.4 + t * 2 + 1; });
  f.run(0.5, 0.01, 120, [](double t) { return 33.4 + t * 2 - 1; });
  EXPECT_TRUE(f.check.rejected());

  Feeder g;
  g.run(2.0, 0.01, 120, [](double t) { return t * 2; });
  g.run(0.1, 0.01, 120, [](double t) { return t * 2 + 3; });  // 3 beats ahead, quantum 4
  EXPECT_TRUE(g.check.rejected());
  EXPECT_NE(g.check.reason().find("jumped"), std::string::npos) << g.check.reason();

  Feeder h;  // steps back by a whole second's worth each grid
  h.run(2.0, 0.01, 120, [](double t) { return t * 2; });
  h.run(1.0, 0.3, 120, [](double t) { return 4 - (t - 2) * 2; });
  EXPECT_TRUE(h.check.rejected());
  EXPECT_NE(h.check.reason().find("backwards"), std::string::npos) << h.check.reason();
}

// Overflowed arithmetic: magnitudes no session reaches, or not a number. Rejected at once.
TEST(LinkGridCheck, OverflowedBeatsAreRejectedAtOnce) {
  for (double bad :
       {9.2e12, -9.2e12, std::numeric_limits<double>::quiet_NaN(), std::numeric_limits<double>::infinity()}) {
    Feeder f;
    f.run(1.0, 0.01, 120, [](double t) { return t * 2; });
    f.run(0.01, 0.01, 120, [bad](double) { return bad; });
    EXPECT_TRUE(f.check.rejected()) << bad;
    EXPECT_EQ(f.held, 1) << bad;
  }
}

// M2 and M3's timelines as Link adopts them, against real ones (host time 11.6 days up).
TEST(LinkAbsurdSession, ForgedTimelinesAreRecognised) {
  constexpr std::int64_t kNow = 1'000'000'000'000;
  constexpr std::int64_t kMax = std::numeric_limits<std::int64_t>::max();
  // Real sessions: begun a week ago (ghost clock 10^12 µs ahead of this host's), at 120 / 999 bpm,
  // after tempo changes (origins where the beat count was then).
  EXPECT_EQ(LinkSession::absurd_timeline_for_test(120, 0, 0, -900'000'000'000, kNow), "");
  EXPECT_EQ(LinkSession::absurd_timeline_for_test(999, 5'000'000'000'000, 300'000'000'000, 1'000'000'000'000, kNow),
            "");
  EXPECT_EQ(LinkSession::absurd_timeline_for_test(20, 0, 0, 1'000'000'000'000'000, kNow), "");  // 31 years
  // M2: beat origin 2^63−1 µbeats (t_link_lock.py); near it.
  EXPECT_NE(LinkSession::absurd_timeline_for_test(125, kMax, 3'000'000'000, -900'000'000'000, kNow), "");
  EXPECT_NE(LinkSession::absurd_timeline_for_test(125, kMax - 5000, 3'000'000'000, 0, kNow), "");
  // M3: a founder's clock 4·10^18 µs ahead (t_link_quant.py), at 170 and 120 bpm.
  EXPECT_NE(LinkSession::absurd_timeline_for_test(170, 0, 0, 4'000'000'000'000'000'000, kNow), "");
  EXPECT_NE(LinkSession::absurd_timeline_for_test(120, 0, 0, 4'000'000'000'000'000'000, kNow), "");
  // Beat origins across the range, at tempos across Link's.
  for (int i = 1; i < 12; ++i) {
    EXPECT_NE(LinkSession::absurd_timeline_for_test(20 + i * 80, kMax / 12 * i, 0, 0, kNow), "") << i;
    EXPECT_NE(LinkSession::absurd_timeline_for_test(20 + i * 80, -(kMax / 12 * i), 0, 0, kNow), "") << i;
  }
}

}  // namespace
}  // namespace stemd::control
