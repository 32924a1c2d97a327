// What a device hand-over's state (and the state file) keeps of voices that have not sounded yet
// (outside pass 29): a voice waiting for its quantised start is written after /stemd/quantize and
// waits for the bar again when the lines are routed (M1: it was written as a play at frame 0
// before the quantum and started at once, off the grid); and the voice lines of a previous
// hand-over that the new image has not replayed yet are kept as they were read (H1: a second loss
// before the replay, or the state file written meanwhile, had none of them).
//
// Threads: the test thread is [control] (router, controller, keeper) and [audio] (render()).
#include "app/state.hpp"
#include "state_test_util.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace stemd::app {
namespace {

using control::OscArg;
using control::OscMessage;
using namespace state_test;

// The position of `line`'s first occurrence in `text` (npos: none).
std::size_t line_at(const std::string& text, const std::string& line) { return text.find("\n" + line); }

TEST(StateHandover, AVoiceWaitingForItsBarIsWrittenAfterTheQuantumAndWaitsForItAgain) {
  test::TempDir dir;
  test::write_wav16(dir.file("a.wav"), test::make_tone_noise16(48000 * 4, 2, 5), 2);
  std::string text;
  DaemonState before;
  {
    Rig rig;
    auto ok = [&](OscMessage m) { ASSERT_EQ(rig.send(m).address, "/done") << show(m); };
    ok(msg("/stemd/load", OscArg::Int(1), OscArg::Str(dir.file("a.wav"))));
    ok(msg("/stemd/load", OscArg::Int(2), OscArg::Str(dir.file("a.wav"))));
    ok(msg("/stemd/play", OscArg::Int(1)));
    for (int i = 0; i < 8; ++i) rig.render(256);    // voice 1 plays, off the grid
    ok(msg("/stemd/quantize", OscArg::Float(64)));  // 32 s at 120 bpm
    ok(msg("/stemd/play", OscArg::Int(2), OscArg::Float(0.5)));
    for (int i = 0; i < 4; ++i) rig.render(256);
    ASSERT_GE(rig.ctl.voice_info(rig.router.player(2)).starts_in_s, 0.0) << "voice 2 waits for its bar";
    before = capture_state(rig.ctl, rig.router, true);
    text = format_state(before, "test");
  }
  ASSERT_EQ(before.voices.size(), 2u) << text;
  EXPECT_FALSE(before.voices[0].starting) << text;
  EXPECT_TRUE(before.voices[1].starting) << text;
  const std::size_t quantum = line_at(text, "/stemd/quantize 64");
  ASSERT_NE(quantum, std::string::npos) << text;
  EXPECT_LT(line_at(text, "/stemd/play 1 "), quantum) << "a heard voice goes on at once\n" << text;
  EXPECT_GT(line_at(text, "/stemd/play 2 0.5 "), quantum) << "the waiting one after the quantum\n" << text;

  std::vector<StateMessage> msgs;
  std::string err;
  ASSERT_TRUE(parse_state(text, msgs, err)) << err << "\n" << text;
  Rig rig;
  for (int i = 0; i < 8; ++i) rig.render(256);  // off the grid again
  for (const auto& sm : msgs) ASSERT_EQ(rig.send(sm.message).address, "/done") << show(sm.message);
  for (int i = 0; i < 4; ++i) rig.render(256);
  const control::VoiceInfo v1 = rig.ctl.voice_info(rig.router.player(1));
  const control::VoiceInfo v2 = rig.ctl.voice_info(rig.router.player(2));
  EXPECT_LT(v1.starts_in_s, 0.0) << "voice 1 plays at once";
  EXPECT_GT(v1.position, before.voices[0].position);
  EXPECT_GT(v2.starts_in_s, 1.0) << "voice 2 waits for the next bar again, not at once";
  EXPECT_FLOAT_EQ(v2.level_target, 0.5f);
  EXPECT_TRUE(capture_state(rig.ctl, rig.router, true).voices[1].starting);
}

TEST(StateHandover, VoicesNotReplayedYetAreWrittenAsReadInTheirPlaces) {
  DaemonState s;
  s.quantum = 4;
  s.unplayed = {"/stemd/play 3 0.25 false 4800 \"frames\" 1", "/stemd/pause 3 0"};
  s.unplayed_starting = {"/stemd/play 4 1 false 0 \"frames\" 1"};
  const std::string text = format_state(s, "test");
  const std::size_t quantum = line_at(text, "/stemd/quantize 4");
  ASSERT_NE(quantum, std::string::npos) << text;
  EXPECT_LT(line_at(text, s.unplayed[0]), line_at(text, s.unplayed[1])) << text;
  EXPECT_LT(line_at(text, s.unplayed[1]), quantum) << text;
  EXPECT_GT(line_at(text, s.unplayed_starting[0]), quantum) << text;
  std::vector<StateMessage> msgs;
  std::string err;
  EXPECT_TRUE(parse_state(text, msgs, err)) << err << "\n" << text;
  // Which voices wait is the structure: written within a second, not at the next interval.
  DaemonState none = s;
  none.unplayed.clear();
  EXPECT_TRUE(differs_in_structure(s, none));
}

// The state file written while a hand-over's voices wait for the device has them (with
// --restore-voices): a reboot then does not lose them. Without it, voices are not kept at all.
TEST(StateHandover, TheStateFileKeepsTheVoicesNotReplayedYet) {
  test::TempDir dir;
  for (const bool voices : {true, false}) {
    const std::string path = dir.file(voices ? "with" : "without");
    Rig rig;
    StateKeeper keeper({path, voices, 5.0, "test"});
    keeper.set_add_unplayed([](DaemonState& s) { s.unplayed.push_back("/stemd/play 7 1 true 96000 \"frames\" 1"); });
    keeper.capture_now(rig.ctl, rig.router);
    ASSERT_TRUE(keeper.save(5.0));
    const std::string text = slurp(path);
    EXPECT_EQ(text.find("/stemd/play 7 1 true 96000") != std::string::npos, voices) << text;
    keeper.set_add_unplayed({});  // replayed: from the router from now on
    keeper.capture_now(rig.ctl, rig.router);
    ASSERT_TRUE(keeper.save(5.0));
    EXPECT_EQ(slurp(path).find("/stemd/play 7"), std::string::npos);
  }
}

}  // namespace
}  // namespace stemd::app
