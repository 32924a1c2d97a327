// Starts timed for later without a quantum (a bundle's timetag, start_at, /start_group,
// /schedule_c_at), session 30:
//  - across a device hand-over or a restart they keep their time (loss29's left: replayed at
//    once). Engine frames are the image's own — the new image's stream clock counts from 0 —, so
//    the state carries the WALL time the start is heard at ("@TIME /stemd/play …"), which the new
//    image maps to its frames through its own stream clock, as it maps a bundle's timetag;
//  - a second play of an id replaces the id's player from its own time: a play of the id still
//    waiting for a later start never starts (the id has one player — the spec's "replacing a
//    running one" — and the waiting play is it: a stop, a volume, a pause reach it), one that
//    starts earlier is heard until then (edge29's left: decided, documented in the README);
//  - a waiting play the audio thread starts before it takes the replacement's cancel (its frame in
//    the callback running then) is not claimed cancelled: it is stopped with a declick, and its end
//    says which it was, as the engine's events have it (edge29's race).
//
// Threads: the test thread is [control] (router, controller) and [audio] (render()).
#include "app/state.hpp"
#include "state_test_util.hpp"

#include <gtest/gtest.h>

#include <ctime>
#include <string>
#include <vector>

namespace stemd::app {
namespace {

using control::OscArg;
using control::OscMessage;
using namespace state_test;

constexpr int kTimedRate = 48000;

double wall_now() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<double>(ts.tv_sec) + ts.tv_nsec * 1e-9;
}

// The message of `msgs` for `address` and id `id` (a failure, and an empty one, when none).
OscMessage timed_find(const std::vector<StateMessage>& msgs, const std::string& address, int id) {
  for (const StateMessage& sm : msgs) {
    if (sm.message.address == address && !sm.message.args.empty() && sm.message.args[0].is_number() &&
        static_cast<int>(sm.message.args[0].as_double()) == id) {
      return sm.message;
    }
  }
  ADD_FAILURE() << "no " << address << " " << id;
  return {};
}

TEST(TimedStart, AStartTimedForLaterKeepsItsWallTimeAcrossAHandOver) {
  test::TempDir dir;
  test::write_wav16(dir.file("a.wav"), test::make_tone_noise16(kTimedRate * 4, 2, 5), 2);
  std::string text;
  DaemonState before;
  double at = 0;
  {
    Rig rig;
    auto ok = [&](const OscMessage& m) { ASSERT_EQ(rig.send(m).address, "/done") << show(m); };
    ok(msg("/stemd/load", OscArg::Int(1), OscArg::Str(dir.file("a.wav"))));
    ok(msg("/stemd/load", OscArg::Int(2), OscArg::Str(dir.file("a.wav"))));
    ok(msg("/stemd/play", OscArg::Int(1)));
    for (int i = 0; i < 8; ++i) rig.render(256);
    OscMessage timed = msg("/stemd/play", OscArg::Int(2), OscArg::Float(0.5));  // a bundle 2 s ahead
    at = wall_now() + 2.0;
    timed.timetag = control::unix_seconds_to_ntp(at);
    ok(timed);  // nothing rendered until the capture: the rig renders faster than real time, which
                // moves the stream clock's line (Timetag.BundlesWithTheSameTimetag…)
    ASSERT_GT(rig.ctl.voice_info(rig.router.player(2)).starts_in_s, 1.0) << "voice 2 waits for its time";
    before = capture_state(rig.ctl, rig.router, true);
    text = format_state(before, "test");
  }
  ASSERT_EQ(before.voices.size(), 2u) << text;
  EXPECT_EQ(before.voices[0].start_unix, 0.0) << "a heard voice has no start time\n" << text;
  EXPECT_TRUE(before.voices[1].starting) << text;
  EXPECT_NEAR(before.voices[1].start_unix, at, 0.02) << "the wall time its start is heard at\n" << text;
  EXPECT_NE(text.find(" /stemd/play 2 0.5 "), std::string::npos) << text;
  EXPECT_EQ(text[text.rfind('\n', text.find(" /stemd/play 2 0.5 ")) + 1], '@') << "its line starts @TIME\n" << text;

  std::vector<StateMessage> msgs;
  std::string err;
  ASSERT_TRUE(parse_state(text, msgs, err)) << err << "\n" << text;
  const OscMessage play2 = timed_find(msgs, "/stemd/play", 2);
  ASSERT_NE(play2.timetag, control::kOscImmediately) << text;
  EXPECT_NEAR(control::ntp_to_unix_seconds(play2.timetag), at, 0.02);
  EXPECT_EQ(timed_find(msgs, "/stemd/play", 1).timetag, control::kOscImmediately);

  // The new image: its frames count from 0 again. Routed as the hand-over's replay routes them
  // (DaemonRun::restart_resumed_voices), once its stream runs.
  Rig rig;
  for (int i = 0; i < 8; ++i) rig.render(256);
  for (StateMessage sm : msgs) {
    EXPECT_FALSE(drop_time_passed(sm.message, rig.router)) << show(sm.message) << ": its time is still ahead";
    ASSERT_EQ(rig.send(sm.message).address, "/done") << show(sm.message);
  }
  const control::VoiceInfo v1 = rig.ctl.voice_info(rig.router.player(1));
  const control::VoiceInfo v2 = rig.ctl.voice_info(rig.router.player(2));
  EXPECT_LT(v1.starts_in_s, 0.0) << "voice 1 plays at once";
  ASSERT_GT(v2.starts_in_s, 0.0) << "voice 2 was started at once, not at its time";
  EXPECT_NEAR(wall_now() + v2.starts_in_s, at, 0.1) << "voice 2 waits for its time (wall seconds)";
  EXPECT_FLOAT_EQ(v2.level_target, 0.5f);
  // Written again (a second loss): the same time.
  const DaemonState again = capture_state(rig.ctl, rig.router, true);
  ASSERT_EQ(again.voices.size(), 2u);
  EXPECT_NEAR(again.voices[1].start_unix, at, 0.1);
}

// Id 2 plays; a play of it timed 2 s later waits to take over from it then. The state has both,
// the heard one first: restored, it plays until the waiting one's time (the router kept only the
// waiting one, and a hand-over left the id silent until then).
TEST(TimedStart, ThePlayerAWaitingPlayTakesOverFromIsWrittenBeforeIt) {
  test::TempDir dir;
  test::write_wav16(dir.file("a.wav"), test::make_tone_noise16(kTimedRate * 4, 2, 5), 2);
  std::string text;
  {
    Rig rig;
    ASSERT_EQ(rig.send(msg("/stemd/load", OscArg::Int(2), OscArg::Str(dir.file("a.wav")))).address, "/done");
    ASSERT_EQ(rig.send(msg("/stemd/play", OscArg::Int(2))).address, "/done");
    for (int i = 0; i < 4; ++i) rig.render(256);
    OscMessage timed = msg("/stemd/play", OscArg::Int(2), OscArg::Float(0.5));
    timed.timetag = control::unix_seconds_to_ntp(wall_now() + 2.0);
    ASSERT_EQ(rig.send(timed).address, "/done");
    const DaemonState s = capture_state(rig.ctl, rig.router, true);
    ASSERT_EQ(s.voices.size(), 2u) << format_state(s, "test");
    EXPECT_FALSE(s.voices[0].starting);
    EXPECT_GT(s.voices[1].start_unix, 0.0);
    text = format_state(s, "test");
  }
  EXPECT_LT(text.find("\n/stemd/play 2 1 "), text.find(" /stemd/play 2 0.5 ")) << text;
  std::vector<StateMessage> msgs;
  std::string err;
  ASSERT_TRUE(parse_state(text, msgs, err)) << err << "\n" << text;
  Rig rig;
  for (int i = 0; i < 8; ++i) rig.render(256);
  for (StateMessage sm : msgs) {
    drop_time_passed(sm.message, rig.router);
    ASSERT_EQ(rig.send(sm.message).address, "/done") << show(sm.message);
  }
  for (int i = 0; i < 4; ++i) rig.render(256);
  const auto vs = rig.ctl.voices();
  ASSERT_EQ(vs.size(), 2u) << "the heard one plays until the waiting one's time";
  EXPECT_STREQ(vs[0].state_name(), "playing");
  EXPECT_GT(vs[1].starts_in_s, 1.0);
}

TEST(TimedStart, AStartWhoseTimePassedMeanwhileStartsAtOnce) {
  Rig rig;
  std::string err;
  ASSERT_TRUE(rig.ctl.load_generated(control::kNow, 2, "dc", std::vector<float>(kTimedRate * 2 * 2, 0.25f), err));
  OscMessage m = msg("/stemd/play", OscArg::Int(2));
  m.timetag = control::unix_seconds_to_ntp(wall_now() + 1.0);
  EXPECT_TRUE(drop_time_passed(m, rig.router)) << "no stream clock yet (a restore at start): at once";
  EXPECT_EQ(m.timetag, control::kOscImmediately);
  for (int i = 0; i < 4; ++i) rig.render(256);
  m.timetag = control::unix_seconds_to_ntp(wall_now() - 5.0);  // the device was away past it
  EXPECT_TRUE(drop_time_passed(m, rig.router));
  ASSERT_EQ(rig.send(m).address, "/done") << "not answered late: it starts now, as the others";
  m.timetag = control::unix_seconds_to_ntp(wall_now() + 1.0);
  EXPECT_FALSE(drop_time_passed(m, rig.router));
  OscMessage untimed = msg("/stemd/play", OscArg::Int(2));
  EXPECT_FALSE(drop_time_passed(untimed, rig.router));
}

TEST(TimedStart, ATimedLineReadsBackAndABadTimeIsRefused) {
  std::vector<StateMessage> msgs;
  std::string err;
  ASSERT_TRUE(parse_state("stemd-state 1\n@1765000000.5 /stemd/play 3 1\nend\n", msgs, err)) << err;
  ASSERT_EQ(msgs.size(), 1u);
  EXPECT_NEAR(control::ntp_to_unix_seconds(msgs[0].message.timetag), 1765000000.5, 1e-6);
  EXPECT_EQ(state_line(msgs[0].message), "@1765000000.500000 /stemd/play 3 1");
  for (const char* bad : {"@x /stemd/play 3", "@-5 /stemd/play 3", "@1765000000", "@1765000000 play 3", "@ /x"}) {
    EXPECT_FALSE(parse_state(std::string("stemd-state 1\n") + bad + "\nend\n", msgs, err)) << bad;
    EXPECT_EQ(err.rfind("2: ", 0), 0u) << bad << ": " << err;
  }
}

// The second play of an id replaces its player from the second play's own time. A rig of 1024-frame
// callbacks with a DC source (0.25) in id 2; plays timed by engine frame (Router::handle_at).
struct TimedReplaceRig : Rig {
  TimedReplaceRig() {
    std::string err;
    EXPECT_TRUE(ctl.load_generated(control::kNow, 2, "dc", std::vector<float>(kTimedRate * 10 * 2, 0.25f), err));
    render(1024);
  }
  std::int64_t frame() const { return static_cast<std::int64_t>(e.metrics().frames.load()); }
  void render_to(std::int64_t until) {
    while (frame() < until) render(1024);
  }
};

// Id 2 plays (0.25); a play of it timed half a second later (0.5) waits to take over from it then;
// an untimed play (1.0) comes meanwhile. It replaces the id's player from now: the waiting play
// never starts, and the one it was to take over from stops now too (it played on, beside the new
// one, until the dropped play's time). A stop of the id likewise stops both.
TEST(TimedStart, AnUntimedPlayReplacesAPlayOfItsIdWaitingForLaterWhichNeverStarts) {
  TimedReplaceRig rig;
  ASSERT_EQ(rig.send(msg("/stemd/play", OscArg::Int(2), OscArg::Float(0.25))).address, "/done");
  rig.render(1024);
  const std::int64_t later = rig.frame() + kTimedRate / 2;
  ASSERT_EQ(rig.router.handle_at(msg("/stemd/play", OscArg::Int(2), OscArg::Float(0.5)), later).address, "/done");
  ASSERT_EQ(rig.ctl.voices().size(), 2u);
  ASSERT_EQ(rig.send(msg("/stemd/play", OscArg::Int(2))).address, "/done");
  const std::int64_t now = rig.frame();
  for (int i = 0; i < 4; ++i) rig.render(1024);
  auto vs = rig.ctl.voices();
  ASSERT_EQ(vs.size(), 1u) << "the waiting play dropped at once, the one it was to replace stopped now";
  EXPECT_FLOAT_EQ(vs[0].level_target, 1.0f);
  // Left in the schedule: the first player's stop timed for the dropped play's start (it finds the
  // voice gone then: nothing happens). The dropped play is not.
  EXPECT_EQ(rig.ctl.scheduled(), 1u);
  rig.render_to(later + kTimedRate / 4);
  vs = rig.ctl.voices();
  ASSERT_EQ(vs.size(), 1u) << "the play timed for later never started";
  EXPECT_FLOAT_EQ(vs[0].level_target, 1.0f) << "the untimed play's";
  EXPECT_GT(vs[0].position, rig.frame() - now - 2048) << "not restarted at the later time";
}

TEST(TimedStart, AStopOfAnIdWhosePlayWaitsForLaterStopsWhatPlaysUntilThen) {
  TimedReplaceRig rig;
  ASSERT_EQ(rig.send(msg("/stemd/play", OscArg::Int(2), OscArg::Float(0.25))).address, "/done");
  rig.render(1024);
  const std::int64_t later = rig.frame() + kTimedRate / 2;
  ASSERT_EQ(rig.router.handle_at(msg("/stemd/play", OscArg::Int(2), OscArg::Float(0.5)), later).address, "/done");
  ASSERT_EQ(rig.send(msg("/stemd/stop", OscArg::Int(2))).address, "/done");
  for (int i = 0; i < 4; ++i) rig.render(1024);
  EXPECT_EQ(rig.ctl.voices().size(), 0u) << "the id's sound goes on until the waiting play's time";
  rig.render_to(later + 4096);
  EXPECT_EQ(rig.ctl.voices().size(), 0u) << "the waiting play started after a stop of its id";
}

TEST(TimedStart, ATimedPlayAfterAnEarlierWaitingOneReplacesItAtItsOwnTime) {
  TimedReplaceRig rig;
  const std::int64_t first = rig.frame() + kTimedRate / 4, second = first + kTimedRate / 4;
  ASSERT_EQ(rig.router.handle_at(msg("/stemd/play", OscArg::Int(2), OscArg::Float(0.5)), first).address, "/done");
  ASSERT_EQ(rig.router.handle_at(msg("/stemd/play", OscArg::Int(2)), second).address, "/done");
  rig.render_to(first + 4096);
  auto vs = rig.ctl.voices();
  ASSERT_EQ(vs.size(), 2u) << "the first plays from its time, the second waits for its own";
  rig.render_to(second + kTimedRate / 4);
  vs = rig.ctl.voices();
  ASSERT_EQ(vs.size(), 1u) << "the first stopped at the second's time";
  EXPECT_FLOAT_EQ(vs[0].level_target, 1.0f);
  EXPECT_NEAR(static_cast<double>(vs[0].position), static_cast<double>(rig.frame() - second), 1024.0);
}

// edge29's race, made deterministic: the rig renders faster than real time, so the engine's frame
// is a callback ahead of now_frame() — as while a callback runs. A play timed inside that callback
// reaches the audio thread after its frame, with the replacement's stop behind it: the engine
// starts it, then stops it with a declick. The controller must not have called that a cancel; its
// end says "had started … faded out" (and a play far ahead is cancelled, and says so).
TEST(TimedStart, AReplacedWaitingPlayTheAudioThreadStartedFirstSaysItFadedOut) {
  LogCapture log;
  TimedReplaceRig rig;
  std::uint64_t started = 0;
  rig.ctl.set_event_handler([&](const engine::Event& e, const control::VoiceInfo&) {
    started += e.type == engine::EventType::kVoiceStarted ? 1 : 0;
  });
  const std::int64_t inside = rig.ctl.now_frame() + 900;  // before the engine's frame (a callback on)
  ASSERT_LT(inside, rig.frame());
  ASSERT_EQ(rig.router.handle_at(msg("/stemd/play", OscArg::Int(2), OscArg::Float(0.5)), inside).address, "/done");
  ASSERT_EQ(rig.send(msg("/stemd/play", OscArg::Int(2))).address, "/done");
  rig.render(1024);
  rig.render(1024);
  EXPECT_EQ(started, 2u) << "the engine started both: the replaced one before its stop";
  EXPECT_EQ(rig.ctl.voices().size(), 1u);
  EXPECT_NE(log.text().find("id 2: its play timed for frame " + std::to_string(inside) + " had started"),
            std::string::npos)
      << log.text();
  EXPECT_EQ(log.text().find("cancelled, never heard"), std::string::npos) << log.text();

  // Far ahead: cancelled, never started, and said so.
  const std::int64_t far = rig.frame() + kTimedRate;
  ASSERT_EQ(rig.router.handle_at(msg("/stemd/play", OscArg::Int(2), OscArg::Float(0.5)), far).address, "/done");
  ASSERT_EQ(rig.send(msg("/stemd/play", OscArg::Int(2))).address, "/done");
  rig.render(1024);
  rig.render(1024);
  EXPECT_EQ(started, 3u) << "only the replacement started";
  EXPECT_NE(log.text().find("id 2: its play waiting for frame " + std::to_string(far) +
                            " was replaced before its start: cancelled, never heard"),
            std::string::npos)
      << log.text();
}

}  // namespace
}  // namespace stemd::app
