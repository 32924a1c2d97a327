// A lost device's hand-over to a fresh image of stemd carries the glitch totals and when the
// device was lost (outside pass 26, user M1: after the return the status said 0 underflows, and
// a week-long show that lost its DAC and glitched read as clean).
#include "app/daemon_run.hpp"
#include "control/device_status.hpp"
#include "stemd/metrics.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <thread>

namespace stemd {
namespace {

TEST(GlitchCarry, TheNextImageCountsOnFromThePreviousTotals) {
  engine::Metrics before;
  before.device_underflows = 13;
  before.voice_underruns = 2;
  before.last_device_underflow_ns = 5'000'000'000;
  before.last_voice_underrun_ns = 4'000'000'000;
  const engine::GlitchTotals g = before.glitch_totals();
  engine::Metrics after;  // the new image's: one underflow on the return already
  after.device_underflows = 1;
  after.last_device_underflow_ns = 9'000'000'000;
  after.carry(g);
  EXPECT_EQ(after.device_underflows.load(), 14u);
  EXPECT_EQ(after.voice_underruns.load(), 2u);
  EXPECT_EQ(after.last_device_underflow_ns.load(), 9'000'000'000u) << "the newer one is the last";
  EXPECT_EQ(after.last_voice_underrun_ns.load(), 4'000'000'000u) << "the previous image's is the last";
}

TEST(GlitchCarry, TheHandOversEnvironmentHoldsTheTotalsAndTheLoss) {
  app::Resume r;
  r.active = true;
  r.state_path = "/tmp/stemd-resume-test.state";
  r.rate = 44100;
  r.losses = 2;
  r.reason = "the output stream is no longer active";
  r.started_ns = 123;
  r.lost_at_ns = 987'654'321'000;
  r.glitches = {3, 13, 1'000'000'000'000, 18'446'744'073'709'551'000u};
  app::put_resume_env(r);
  const app::Resume back = app::take_resume_env();
  EXPECT_TRUE(back.active);
  EXPECT_EQ(back.rate, 44100);
  EXPECT_EQ(back.losses, 2u);
  EXPECT_EQ(back.reason, r.reason);
  EXPECT_EQ(back.lost_at_ns, r.lost_at_ns);
  EXPECT_EQ(back.glitches, r.glitches);
  EXPECT_EQ(app::take_resume_env().active, false) << "taken once: the variables are cleared";
}

TEST(GlitchCarry, TheLastLossSaysWhenItBeganAndHowLongItLasted) {
  control::DeviceStatus d;
  double ago = 0, lasted = 0;
  EXPECT_FALSE(d.last_loss(ago, lasted)) << "never lost";
  // The resumed image: lost since a moment of the previous image's (0.3 s ago), then back.
  const auto lost_at = std::chrono::steady_clock::now() - std::chrono::milliseconds(300);
  d.resume_lost(2, "gone", std::chrono::duration_cast<std::chrono::nanoseconds>(lost_at.time_since_epoch()).count());
  EXPECT_GE(d.lost_for_seconds(), 0.3) << "lost since the previous image lost it, not since the exec";
  EXPECT_FALSE(d.last_loss(ago, lasted)) << "still lost";
  d.set_running();
  ASSERT_TRUE(d.last_loss(ago, lasted));
  EXPECT_GE(lasted, 0.3);
  EXPECT_GE(ago, lasted);
  EXPECT_EQ(d.losses(), 2u);
  // A device waited for at start is not a loss.
  control::DeviceStatus w;
  w.set_waiting("not there");
  w.set_running();
  EXPECT_FALSE(w.last_loss(ago, lasted));
}

}  // namespace
}  // namespace stemd
