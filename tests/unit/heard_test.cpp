// control::Heard, the value a timed command changes (control/heard.hpp): what is heard at a
// given engine frame, and what a later command does to one still waiting. Frames are output
// (engine) frames throughout.
#include "control/heard.hpp"

#include "control/controller.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <type_traits>

namespace stemd::control {
namespace {

static_assert(std::is_trivially_copyable_v<Heard<float>>, "copied as plain bytes with its VoiceSlot");
static_assert(std::is_trivially_destructible_v<Heard<bool>>);

TEST(TimedHeard, ASteadyValueIsHeardAtEveryFrame) {
  const Heard<float> h{0.5f};
  EXPECT_EQ(h.value, 0.5f);
  for (const std::int64_t f : {std::int64_t{0}, std::int64_t{1}, std::int64_t{48000}, INT64_MAX}) {
    EXPECT_EQ(h.heard_at(f), 0.5f) << f;
  }
  EXPECT_EQ(Heard<bool>{}.heard_at(0), false);
}

// A change timed for frame 1000, sent at frame 100: the old value up to frame 999, the new one
// from frame 1000 itself on. `value` is the one sent from the start.
TEST(TimedHeard, ATimedChangeIsHeardFromItsFrameOnItsBoundaryIncluded) {
  Heard<float> h{1.0f};
  h.set(2.0f, 1000, 100);
  EXPECT_EQ(h.value, 2.0f);
  EXPECT_EQ(h.at, 1000);
  EXPECT_EQ(h.heard_at(100), 1.0f);
  EXPECT_EQ(h.heard_at(999), 1.0f);
  EXPECT_EQ(h.heard_at(1000), 2.0f);
  EXPECT_EQ(h.heard_at(1001), 2.0f);
}

// kNow (and any frame < 0): at once, also before the engine's clock runs (frame 0).
TEST(TimedHeard, AnUntimedChangeIsHeardAtOnce) {
  Heard<bool> h{false};
  h.set(true, kNow, 0);
  EXPECT_EQ(h.at, 0);
  EXPECT_TRUE(h.heard_at(0));
  EXPECT_TRUE(h.value);
}

// A second command while the first still waits replaces it: the first is never heard, and what
// is heard until the second's frame is still what was heard before the first.
TEST(TimedHeard, ACommandOverOneStillWaitingKeepsWhatWasHeardBeforeIt) {
  Heard<float> h{1.0f};
  h.set(2.0f, 1000, 100);
  h.set(3.0f, 2000, 999);  // one frame before the first's: it is not heard yet
  EXPECT_EQ(h.value, 3.0f);
  EXPECT_EQ(h.heard_at(999), 1.0f);
  EXPECT_EQ(h.heard_at(1500), 1.0f) << "the replaced command was heard";
  EXPECT_EQ(h.heard_at(1999), 1.0f);
  EXPECT_EQ(h.heard_at(2000), 3.0f);

  Heard<float> g{1.0f};
  g.set(2.0f, 1000, 100);
  g.set(4.0f, kNow, 500);  // an untimed one over a waiting one: heard at once
  EXPECT_EQ(g.heard_at(500), 4.0f);
  EXPECT_EQ(g.heard_at(1000), 4.0f);
}

// Sent at the first command's own frame (or after it), the first is what is heard until the
// second's frame.
TEST(TimedHeard, ACommandAtOrAfterTheFirstsFrameKeepsTheFirstUntilItsOwn) {
  for (const std::int64_t sent : {std::int64_t{1000}, std::int64_t{1500}}) {
    SCOPED_TRACE(sent);
    Heard<float> h{1.0f};
    h.set(2.0f, 1000, 100);
    h.set(3.0f, 3000, sent);
    EXPECT_EQ(h.heard_at(sent), 2.0f);
    EXPECT_EQ(h.heard_at(2999), 2.0f);
    EXPECT_EQ(h.heard_at(3000), 3.0f);
  }
  // A pause timed for later, then a resume timed after it once the pause is heard.
  Heard<bool> paused{false};
  paused.set(true, 480, 0);
  EXPECT_FALSE(paused.heard_at(479));
  paused.set(false, 960, 480);
  EXPECT_TRUE(paused.heard_at(480));
  EXPECT_TRUE(paused.heard_at(959));
  EXPECT_FALSE(paused.heard_at(960));
}

}  // namespace
}  // namespace stemd::control
