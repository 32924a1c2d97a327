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
  EXPECT_EQ(h.last_at(), 1000);
  EXPECT_EQ(h.heard_at(100), 1.0f);
  EXPECT_EQ(h.heard_at(999), 1.0f);
  EXPECT_EQ(h.heard_at(1000), 2.0f);
  EXPECT_EQ(h.heard_at(1001), 2.0f);
}

// kNow (and any frame < 0): at once, also before the engine's clock runs (frame 0).
TEST(TimedHeard, AnUntimedChangeIsHeardAtOnce) {
  Heard<bool> h{false};
  h.set(true, kNow, 0);
  EXPECT_EQ(h.count, 0u);
  EXPECT_TRUE(h.heard_at(0));
  EXPECT_TRUE(h.value);
}

// A second command while the first still waits does not replace it: the engine applies both,
// each at its frame, and so is each heard (before, the first was taken as never heard, and an
// untimed one over a waiting one as heard for good: outside pass 20, attack 6).
TEST(TimedHeard, EveryCommandIsHeardAtItsFrameWhateverCameAfterIt) {
  Heard<float> h{1.0f};
  h.set(2.0f, 1000, 100);
  h.set(3.0f, 2000, 999);    // one frame before the first's: both wait
  EXPECT_EQ(h.value, 3.0f);  // as last sent
  EXPECT_EQ(h.heard_at(999), 1.0f);
  EXPECT_EQ(h.heard_at(1000), 2.0f);
  EXPECT_EQ(h.heard_at(1999), 2.0f);
  EXPECT_EQ(h.heard_at(2000), 3.0f);

  // An untimed one over a waiting one: heard at once, and the waiting one still at its frame.
  Heard<float> g{1.0f};
  g.set(2.0f, 1000, 100);
  g.set(4.0f, kNow, 500);
  EXPECT_EQ(g.value, 4.0f);
  EXPECT_EQ(g.heard_at(500), 4.0f);
  EXPECT_EQ(g.heard_at(999), 4.0f);
  EXPECT_EQ(g.heard_at(1000), 2.0f);

  // Sent out of order: heard in the order of their frames; equal frames in arrival order.
  Heard<float> o{0.0f};
  o.set(3.0f, 3000, 0);
  o.set(1.0f, 1000, 0);
  o.set(2.0f, 2000, 0);
  o.set(2.5f, 2000, 0);
  EXPECT_EQ(o.heard_at(1500), 1.0f);
  EXPECT_EQ(o.heard_at(2000), 2.5f);
  EXPECT_EQ(o.heard_at(3000), 3.0f);
  EXPECT_EQ(o.value, 2.5f);
}

// More changes waiting than it keeps: the one due first is taken as heard (reported early until
// its frame); the later ones stay exact.
TEST(TimedHeard, BeyondItsCapacityTheFirstDueIsTakenAsHeard) {
  Heard<float> h{0.0f};
  for (std::uint32_t i = 1; i <= Heard<float>::kPending + 1; ++i) h.set(static_cast<float>(i), 1000 * i, 0);
  EXPECT_EQ(h.count, Heard<float>::kPending);
  EXPECT_EQ(h.heard_at(0), 1.0f);  // the first: early
  EXPECT_EQ(h.heard_at(2000), 2.0f);
  EXPECT_EQ(h.heard_at(1000 * (Heard<float>::kPending + 1)), static_cast<float>(Heard<float>::kPending + 1));
  // What is heard folds in as the clock passes: room again.
  h.set(42.0f, 100000, 5000);
  EXPECT_EQ(h.heard_at(5000), 5.0f);
  EXPECT_EQ(h.heard_at(100000), 42.0f);
  EXPECT_LT(h.count, Heard<float>::kPending);
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
