// A lost device's hand-over to a fresh image of stemd carries the glitch totals and when the
// device was lost (outside pass 26, user M1: after the return the status said 0 underflows, and
// a week-long show that lost its DAC and glitched read as clean).
#include "app/daemon_run.hpp"
#include "control/device_status.hpp"
#include "stemd/metrics.hpp"

#include <gtest/gtest.h>

#include <fmt/format.h>

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <thread>

#include <sys/wait.h>
#include <unistd.h>

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
  r.state_path = app::handoff_path();
  r.rate = 44100;
  r.losses = 2;
  r.reason = "the output stream is no longer active";
  const auto now_ns =
      static_cast<std::uint64_t>(std::chrono::nanoseconds(std::chrono::steady_clock::now().time_since_epoch()).count());
  r.started_ns = 123;
  r.lost_at_ns = static_cast<std::int64_t>(now_ns / 3);
  r.glitches.voice_underruns = 3;
  r.glitches.device_underflows = 13;
  r.glitches.last_voice_underrun_ns = now_ns - 1;  // past times of the steady clock
  r.glitches.last_device_underflow_ns = now_ns / 2;
  r.glitches.callback_ns[0] = 1;
  r.glitches.callback_ns[100] = 123'456'789'012;
  r.glitches.callback_ns[engine::DurationHistogram::kBins - 1] = 7;
  r.glitches.callback_max_ns = 4'321'000;
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

// The callbacks' histogram and longest callback restarted with the new image (session 27's
// closing note): a week's p99 and max read as the minutes since the DAC came back.
TEST(GlitchCarry, TheCallbacksHistogramAndLongestAreCountedOn) {
  engine::Metrics before;
  for (int i = 0; i < 99; ++i) before.callback_ns.record(500'000);
  before.callback_ns.record(9'000'000);
  before.callback_max_ns = 9'000'000;
  app::Resume r;
  r.active = true;
  r.state_path = app::handoff_path();
  r.glitches = before.glitch_totals();
  app::put_resume_env(r);
  const app::Resume back = app::take_resume_env();
  engine::Metrics after;  // the new image: 100 short callbacks since the return
  for (int i = 0; i < 100; ++i) after.callback_ns.record(400'000);
  after.callback_max_ns = 450'000;
  after.carry(back.glitches);
  const auto h = after.callback_ns.snapshot();
  std::uint64_t total = 0;
  for (auto c : h) total += c;
  EXPECT_EQ(total, 200u);
  EXPECT_EQ(after.callback_max_ns.load(), 9'000'000u) << "the longest since the service started";
  EXPECT_GE(engine::DurationHistogram::percentile_ns(h, 1.0), 9'000'000u);
  EXPECT_LT(engine::DurationHistogram::percentile_ns(h, 0.5), 500'000u);
}

TEST(GlitchCarry, AGarbledCallbacksVariableIsIgnoredWhereItIsGarbled) {
  setenv("STEMD_RESUME_STATE", app::handoff_path().c_str(), 1);
  setenv("STEMD_RESUME_CALLBACKS", "77 5:3 999999:4 18446744073709551616:1 7:x 9:2", 1);
  const app::Resume back = app::take_resume_env();
  EXPECT_EQ(back.glitches.callback_max_ns, 77u);
  EXPECT_EQ(back.glitches.callback_ns[5], 3u);
  std::uint64_t total = 0;
  for (auto c : back.glitches.callback_ns) total += c;
  EXPECT_EQ(total, 3u) << "a bin out of range is skipped, and the list ends where it is garbled";
  EXPECT_EQ(std::getenv("STEMD_RESUME_CALLBACKS"), nullptr);
}

// Outside pass 28, A2: the hand-over environment was trusted. A PID named there was SIGKILLed
// (adopted as a helper), the file named there deleted, "-1" read as 2^64 − 1 underruns.
TEST(ResumeEnv, AnotherProcesssFileIsNeitherReadNorTaken) {
  setenv("STEMD_RESUME_STATE", "/tmp/somebody-elses.state", 1);
  setenv("STEMD_RESUME_LOSSES", "3", 1);
  const app::Resume r = app::take_resume_env();
  EXPECT_FALSE(r.active);
  EXPECT_TRUE(r.state_path.empty()) << "so that nothing removes it";
  ASSERT_EQ(r.ignored.size(), 1u);
  EXPECT_NE(r.ignored[0].find("not this process's hand-over file"), std::string::npos) << r.ignored[0];
  EXPECT_EQ(std::getenv("STEMD_RESUME_LOSSES"), nullptr) << "cleared all the same";
}

TEST(ResumeEnv, OnlyThisProcesssChildrenAreAdoptedAsHelpers) {
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    pause();
    _exit(0);
  }
  setenv("STEMD_RESUME_STATE", app::handoff_path().c_str(), 1);
  setenv("STEMD_RESUME_HELPERS", fmt::format("{} 1 {} 999999999 x", getppid(), child).c_str(), 1);
  const app::Resume r = app::take_resume_env();
  kill(child, SIGKILL);
  waitpid(child, nullptr, 0);
  ASSERT_EQ(r.helpers.size(), 1u);
  EXPECT_EQ(r.helpers[0], child);
  EXPECT_EQ(r.ignored.size(), 3u) << "the parent, init and a pid that does not exist";
}

TEST(ResumeEnv, CountsAndTimesOutOfRangeAreDropped) {
  setenv("STEMD_RESUME_STATE", app::handoff_path().c_str(), 1);
  setenv("STEMD_RESUME_LOSSES", "-1", 1);
  setenv("STEMD_RESUME_RATE", "44100x", 1);
  setenv("STEMD_RESUME_STARTED", "99999999999999999999", 1);
  setenv("STEMD_RESUME_LOST_AT", "-5", 1);
  setenv("STEMD_RESUME_GLITCHES", "-1 2 0 0", 1);
  setenv("STEMD_RESUME_REASON", std::string(5000, 'x').c_str(), 1);
  const app::Resume r = app::take_resume_env();
  EXPECT_TRUE(r.active);
  EXPECT_EQ(r.losses, 0u);
  EXPECT_EQ(r.rate, 0);
  EXPECT_EQ(r.started_ns, 0) << "uptime counts from now, not from a time in the future";
  EXPECT_EQ(r.lost_at_ns, 0);
  EXPECT_EQ(r.glitches.voice_underruns, 0u);
  EXPECT_EQ(r.glitches.device_underflows, 0u) << "the four go together";
  EXPECT_EQ(r.reason.size(), 1000u);
  EXPECT_EQ(r.ignored.size(), 3u);
}

// Outside pass 28, L7: the buffer size a JACK server's period gave the first image (no
// --buffer-size) is the next image's too; a size --buffer-size could not give is dropped.
TEST(ResumeEnv, TheBufferSizeIsCarriedWithinRange) {
  app::Resume out;
  out.active = true;
  out.state_path = app::handoff_path();
  out.buffer = 1024;
  app::put_resume_env(out);
  EXPECT_EQ(app::take_resume_env().buffer, 1024u);
  setenv("STEMD_RESUME_STATE", app::handoff_path().c_str(), 1);
  setenv("STEMD_RESUME_BUFFER", "9000", 1);
  EXPECT_EQ(app::take_resume_env().buffer, 0u);
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
