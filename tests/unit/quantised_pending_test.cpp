// Commands sent between a quantised play and its start (outside pass 28, user H1). With
// /stemd/quantize the play waits in the engine's schedule for the next bar; a pause sent
// meanwhile was dropped by the engine (the voice was not found) while the control thread marked
// the voice paused, and the start at the bar then played it: the output sounded and the position
// ran while `voices` and the status said "paused". Each command here is sent before the bar; the
// output after the bar and the voice's report must agree with what was sent. The source is DC at
// 0.25 (10 s at 48 kHz, the output rate), so a sample is 0 exactly when nothing plays; the
// default tempo is 120 bpm, so a bar of 4 beats is 2 s.
#include "app/daemon_run.hpp"
#include "router_rig.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstdint>
#include <string>
#include <vector>

namespace stemd::test {
namespace {

using control::OscArg;
using control::OscMessage;

constexpr int kRate = 48000;

struct Rig : RouterRig {
  Rig() {
    std::string err;
    EXPECT_TRUE(ctl.load_generated(control::kNow, 2, "dc", std::vector<float>(10 * kRate * 2, 0.25f), err)) << err;
    ok("/stemd/quantize", {OscArg::Float(4.0f)});
    play_for(0.5);  // off the grid: the next bar is 1.5 s away (frame 96000)
  }
  // Plays id 2 (quantised); the output frame it starts at, from the answer's wait (from the
  // controller's now: the last block's first frame).
  std::int64_t play() {
    const control::Reply r = ok("/stemd/play", {OscArg::Int(2)});
    EXPECT_EQ(r.values.size(), 4u) << "id voice starts_in_s quantum";
    if (r.values.size() < 4) return 0;
    const std::int64_t at = ctl.now_frame() + std::llround(r.values[2].as_double() * kRate);
    EXPECT_GT(at, frame + kRate) << "the start waits for the bar";
    return at;
  }
  // Renders `seconds` of output (appended to `out`) and takes the engine's events.
  void play_for(double seconds) {
    const auto n = static_cast<std::size_t>(seconds * kRate);
    const std::vector<float> o = render(n);
    out.insert(out.end(), o.begin(), o.end());
    frame += static_cast<std::int64_t>(n);
    ctl.service();
  }
  // The largest |sample| of output frames [from, to) (channel 0, 1, or both: -1).
  float peak(std::int64_t from, std::int64_t to, int channel = -1) const {
    float m = 0;
    for (std::int64_t f = from; f < to && f * 2 + 1 < static_cast<std::int64_t>(out.size()); ++f) {
      for (int ch = 0; ch < 2; ++ch) {
        if (channel < 0 || channel == ch) m = std::max(m, std::fabs(out[static_cast<std::size_t>(f * 2 + ch)]));
      }
    }
    return m;
  }
  control::VoiceInfo voice() {
    const auto vs = ctl.voices();
    EXPECT_EQ(vs.size(), 1u);
    return vs.empty() ? control::VoiceInfo{} : vs.front();
  }
  std::vector<float> out;
  std::int64_t frame = 0;
};

TEST(QuantisedPending, APauseBeforeTheBarHoldsTheVoiceSilentAtItsFirstFrame) {
  Rig rig;
  const std::int64_t at = rig.play();
  rig.ok("/stemd/pause", {OscArg::Int(2)});
  rig.play_for(3.0);  // the bar, and 1.5 s after it
  ASSERT_GT(rig.frame, at + kRate);
  EXPECT_EQ(rig.peak(0, rig.frame), 0.0f) << "a paused voice sounded after its quantised start";
  control::VoiceInfo v = rig.voice();
  EXPECT_STREQ(v.state_name(), "paused");
  EXPECT_EQ(v.position, 0) << "the paused voice's position ran on";
  EXPECT_EQ(rig.status("voices_paused"), 1);
  // A resume plays it from its first frame.
  rig.ok("/stemd/resume", {OscArg::Int(2)});
  const std::int64_t resumed = rig.frame;
  rig.play_for(0.5);
  EXPECT_GT(rig.peak(resumed, rig.frame), 0.2f);
  v = rig.voice();
  EXPECT_STREQ(v.state_name(), "playing");
  EXPECT_GT(v.position, kRate / 4);
  EXPECT_LE(v.position, kRate / 2);
}

// A start waiting for the bar was listed "starting" without when (session 28's "Left", quant28):
// /stemd/voices (stemctl voices) and the web page say "starting in 1.5 s", output seconds until it.
TEST(QuantisedPending, AWaitingStartIsListedWithWhenItStarts) {
  Rig rig;
  const std::int64_t at = rig.play();
  auto listed = [&rig] {
    const control::Reply r = rig.ok("/stemd/voices");
    for (const OscArg& a : r.values) {
      if (a.is_string() && a.s.rfind("starting", 0) == 0) return a.s;
      if (a.is_string() && a.s == "playing") return a.s;
    }
    return std::string("(no state)");
  };
  auto want = [&rig, at] {
    char text[48];
    std::snprintf(text, sizeof text, "starting in %.1f s", static_cast<double>(at - rig.ctl.now_frame()) / kRate);
    return std::string(text);
  };
  EXPECT_EQ(want(), "starting in 1.5 s");
  EXPECT_EQ(listed(), want());
  EXPECT_EQ(rig.voice().state_text(), want()) << "what the web page lists";
  rig.play_for(1.0);
  EXPECT_EQ(listed(), "starting in 0.5 s");
  rig.play_for(1.0);
  EXPECT_EQ(listed(), "playing");
}

TEST(QuantisedPending, APauseAndAResumeBeforeTheBarStartOnTheBar) {
  Rig rig;
  const std::int64_t at = rig.play();
  rig.ok("/stemd/pause", {OscArg::Int(2)});
  rig.ok("/stemd/resume", {OscArg::Int(2)});
  rig.play_for(2.0);
  EXPECT_EQ(rig.peak(0, at), 0.0f) << "sounded before the bar";
  EXPECT_GT(rig.peak(at + 64, rig.frame), 0.2f) << "did not sound from the bar on";
  EXPECT_STREQ(rig.voice().state_name(), "playing");
}

TEST(QuantisedPending, AStopBeforeTheBarMeansNoStart) {
  Rig rig;
  rig.play();
  rig.ok("/stemd/stop", {OscArg::Int(2)});
  rig.play_for(2.0);
  EXPECT_EQ(rig.peak(0, rig.frame), 0.0f);
  EXPECT_TRUE(rig.ctl.voices().empty());
}

TEST(QuantisedPending, AVolumeOrAFadeBeforeTheBarIsTheStartsOwn) {
  {
    Rig rig;
    const std::int64_t at = rig.play();
    rig.ok("/stemd/volume", {OscArg::Int(2), OscArg::Float(0.0f)});
    rig.play_for(2.0);
    EXPECT_EQ(rig.peak(0, rig.frame), 0.0f) << "volume 0 before the bar: it sounded from the bar";
    control::VoiceInfo v = rig.voice();
    EXPECT_STREQ(v.state_name(), "playing");
    EXPECT_FLOAT_EQ(v.volume, 0.0f);
    EXPECT_FLOAT_EQ(v.level, 0.0f) << "the level heard";
    EXPECT_GT(v.position, rig.frame - at - 1100) << "it plays (silently) from the bar";
  }
  {
    Rig rig;
    const std::int64_t at = rig.play();
    // A fade to 0 over 3 s sent 1.5 s before the bar runs from when it was sent, as for a voice
    // playing: the voice starts half-way down it and is silent 1.5 s later.
    const std::int64_t sent = rig.ctl.now_frame();
    rig.ok("/stemd/fade", {OscArg::Int(2), OscArg::Float(0.0f), OscArg::Float(3.0f)});
    rig.play_for(3.5);
    const double at_bar = 1.0 - static_cast<double>(at - sent) / (3 * kRate);
    ASSERT_GT(at_bar, 0.4);
    EXPECT_EQ(rig.peak(0, at), 0.0f);
    EXPECT_NEAR(rig.peak(at, at + 1), 0.25 * at_bar, 0.01) << "where the fade is at the bar";
    EXPECT_NEAR(rig.peak(at + kRate / 2, at + kRate / 2 + 1), 0.25 * (at_bar - 1.0 / 6), 0.01);
    EXPECT_EQ(rig.peak(sent + 3 * kRate + 1024, rig.frame), 0.0f) << "the fade is over 3 s after it was sent";
  }
}

TEST(QuantisedPending, APanBeforeTheBarIsTheStartsOwn) {
  Rig rig;
  const std::int64_t at = rig.play();
  rig.ok("/stemd/pan", {OscArg::Int(2), OscArg::Float(-1.0f)});
  rig.play_for(2.0);
  EXPECT_GT(rig.peak(at, rig.frame, 0), 0.2f) << "left";
  EXPECT_EQ(rig.peak(at, rig.frame, 1), 0.0f) << "right: panned hard left before the bar";
}

TEST(QuantisedPending, ASeekBeforeTheBarStartsThereOnTheBar) {
  Rig rig;
  const std::int64_t at = rig.play();
  rig.ok("/stemd/seek", {OscArg::Int(2), OscArg::Float(5.0f)});
  EXPECT_EQ(rig.voice().position, 5 * kRate) << "listed where it goes";
  rig.play_for(2.0);
  EXPECT_EQ(rig.peak(0, at), 0.0f) << "sounded before the bar";
  EXPECT_GT(rig.peak(at + 1024, rig.frame), 0.2f);
  const std::int64_t played = rig.frame - at;
  const control::VoiceInfo v = rig.voice();
  EXPECT_GE(v.position, 5 * kRate + played - 1024) << "did not start at the seek's position";
  EXPECT_LE(v.position, 5 * kRate + played);
}

// A hand-over's replay sends a paused voice's play and its pause one after the other (without
// quantize, or with the resume's starts not quantised): both reach the engine in one pass, and
// the voice faded out from its first frame — heard for the pause's fade, its position moved.
TEST(QuantisedPending, APlayAndItsPauseInOnePassAreNeverHeard) {
  Rig rig;
  rig.ok("/stemd/quantize", {OscArg::Float(0.0f)});
  const std::int64_t from = rig.frame;
  rig.ok("/stemd/play", {OscArg::Int(2)});
  rig.ok("/stemd/pause", {OscArg::Int(2)});
  rig.play_for(0.5);
  EXPECT_EQ(rig.peak(from, rig.frame), 0.0f) << "the paused voice was heard";
  const control::VoiceInfo v = rig.voice();
  EXPECT_STREQ(v.state_name(), "paused");
  EXPECT_EQ(v.position, 0);
}

// A play of an id whose quantised start still waits for the bar held one more voice, its stream and
// two schedule entries (the play, and a stop timed for the bar) per play until the bar; a flood of
// them took the bar's 256 timed-command slots, and other clients' plays on that bar were refused
// "busy: period full" (outside pass 29, attack L5). The waiting play never started: a new play of
// its id drops it at once (voice, stream, schedule entry and its slot of the bar).
TEST(QuantisedPending, APlayOfAnIdWaitingForItsBarDropsTheWaitingPlayAtOnce) {
  Rig rig;
  std::string err;
  ASSERT_TRUE(rig.ctl.load_generated(control::kNow, 3, "dc3", std::vector<float>(2 * kRate * 2, 0.25f), err)) << err;
  std::vector<float> block(64 * 2);
  const std::int64_t at = rig.play();
  for (int i = 0; i < 300; ++i) {  // 300 more plays of id 2, 64 output frames apart, all before its bar
    EXPECT_NEAR(static_cast<double>(rig.play()), static_cast<double>(at), 1.0);
    rig.e.process(block.data(), 64);
    rig.out.insert(rig.out.end(), block.begin(), block.end());
    rig.frame += 64;
    rig.ctl.service();
    ASSERT_EQ(rig.ctl.voices().size(), 1u) << "after play " << i + 2;
    ASSERT_EQ(rig.e.scheduled(), 1u) << "after play " << i + 2 << ": only the last play waits";
  }
  ASSERT_LT(rig.frame, at) << "the plays were all before the bar";
  const control::Reply r = rig.ok("/stemd/play", {OscArg::Int(3)});  // another id's play on that bar
  ASSERT_EQ(r.values.size(), 4u);
  EXPECT_NEAR(static_cast<double>(rig.ctl.now_frame()) + r.values[2].as_double() * kRate, static_cast<double>(at), 1.0)
      << "on the same bar";
  rig.play_for(2.0);
  const auto vs = rig.ctl.voices();
  ASSERT_EQ(vs.size(), 2u) << "id 2 once, and id 3";
  for (const auto& v : vs) EXPECT_STREQ(v.state_name(), "playing");
}

// Outside pass 28, user L7: without Link the beat restarted at 0 after a device's hand-over. The
// previous image's beat and its time cross in STEMD_RESUME_BEAT; the new image's beat goes on
// from them at the tempo (120 bpm here: 2 beats a second).
TEST(BeatCarry, TheBeatGoesOnFromThePreviousImagesAtTheTempo) {
  Rig rig;  // 0.5 s rendered: beat 1.0 before the carry
  const auto two_s_ago = std::chrono::steady_clock::now() - std::chrono::seconds(2);
  rig.router.carry_beat(100.25, two_s_ago);
  const std::int64_t now = rig.ctl.now_frame();
  EXPECT_NEAR(rig.router.tempo().beats_at(now), 104.25, 0.05) << "4 beats in the 2 s since";
  EXPECT_NEAR(rig.router.tempo().beats_at(now + kRate / 2), 105.25, 0.05) << "and on with the frames";
}

// While no callback comes (a stall, a lost device, a hand-over's image waiting for it) the engine's
// frames stand still, and so did the beat: the status showed it frozen, and a stall that recovered
// in the same image left the grid behind the wall clock by the stall's length. A club's other gear
// kept going: the beat runs on with wall time, and back, the grid goes on in phase with it.
TEST(BeatCarry, WhileTheDeviceIsAwayTheBeatRunsOnWithWallTime) {
  Rig rig;  // 0.5 s rendered at 120 bpm: beat 1.0
  rig.router.beat_away(10.0, std::chrono::steady_clock::now() - std::chrono::seconds(2));
  EXPECT_NEAR(rig.status("beat"), 14.0, 0.05) << "4 beats in the 2 s away, the frames standing still";
  rig.router.beat_back();  // callbacks again: the grid goes on from there, with the frames
  EXPECT_NEAR(rig.router.tempo().beats_at(rig.ctl.now_frame()), 14.0, 0.05);
  rig.play_for(0.5);
  EXPECT_NEAR(rig.router.tempo().beats_at(rig.ctl.now_frame()), 15.0, 0.05);
}

TEST(BeatCarry, TheHandOverEnvironmentCarriesTheBeatAndDropsGarbage) {
  const auto ns = [](std::chrono::steady_clock::time_point t) {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
  };
  app::Resume r;
  r.state_path = app::handoff_path();
  r.beat = -3.5;  // a /reset timed for later: before its t0
  r.beat_ns = ns(std::chrono::steady_clock::now());
  app::put_resume_env(r);
  app::Resume back = app::take_resume_env();
  EXPECT_TRUE(back.active);
  EXPECT_DOUBLE_EQ(back.beat, -3.5);
  EXPECT_EQ(back.beat_ns, r.beat_ns);
  EXPECT_TRUE(back.ignored.empty());
  EXPECT_EQ(std::getenv("STEMD_RESUME_BEAT"), nullptr) << "cleared";
  const std::string future = std::to_string(ns(std::chrono::steady_clock::now() + std::chrono::hours(1)));
  for (const std::string& bad : std::vector<std::string>{"nan 5", "1e300 5", "12", "12 x", "12 " + future}) {
    setenv("STEMD_RESUME_STATE", app::handoff_path().c_str(), 1);
    setenv("STEMD_RESUME_BEAT", bad.c_str(), 1);
    back = app::take_resume_env();
    EXPECT_EQ(back.beat_ns, 0) << bad;
    EXPECT_EQ(back.beat, 0.0) << bad;
    EXPECT_EQ(back.ignored.size(), 1u) << bad;
  }
}

}  // namespace
}  // namespace stemd::test
