// The players held within the work budgets (router_work.cpp). A state saved while the players were held within the work
// budgets (status tempo_held_bpm: a Link session or the movement at a tempo the budgets could not take) comes back held
// (src/app/state_restore.cpp, Router::restore_tempo). Before, its /set_tempo was routed first, as a
// client's, with no players to check, and then each restored player was refused at the full ratio
// once the budget was spent: the first two of eight came back at rate 4, the other six not at all.
//
//
// A Link session tempo beyond the rates' range (0.25–4 × --bpm) that the budgets cannot take either
// is one warning that says both. Before, two: "beyond 0.25–4 × --bpm 120.0, players held at 480.0
// bpm", then "players held at 150.00 bpm: the resampling budget …" — two different holds for one
// change.
//
// Threads: the test thread is [control] and, before any render, the engine's queue's consumer (as
// before the stream starts); opener threads and the loader are real.
#include "state_test_util.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

namespace stemd::app {
namespace {

using namespace state_test;

TEST(WorkBudgetRestore, AStateSavedWithThePlayersHeldComesBackHeld) {
  test::TempDir dir;
  std::string text = "stemd-state 1\n/set_tempo 480\n";  // base 120: ratio 4
  for (int id = 1; id <= 8; ++id) {
    const std::string path = dir.file("s" + std::to_string(id) + ".wav");
    test::make_wav(path, 48'000, static_cast<std::uint32_t>(id));
    text += "/stemd/load " + std::to_string(id) + " \"" + path + "\" \"n\"\n";
  }
  for (int id = 1; id <= 8; ++id) text += "/stemd/play " + std::to_string(id) + " 0.1 true 100 frames 1\n";
  const std::string path = dir.file("state");
  spit(path, text + "end\n");
  LogCapture log;
  InstanceConfig c = Rig::ic(false, 16);
  c.engine.max_resampled_voices = 8;  // 8 units: 8 players at ≤ 1.25, or 2 at 4
  Rig rig(c);
  StateKeeper keeper({path, true, 5.0, "test"});
  RestoreHooks hooks;
  hooks.make_room = [&] { rig.ctl.apply_before_stream(); };
  const RestoreReport r = keeper.restore(rig.router, hooks);
  EXPECT_EQ(r.failed, 0) << log.text().substr(0, 3000);
  EXPECT_EQ(r.voices, 8);
  rig.render(256);
  EXPECT_EQ(rig.ctl.voices_playing(), 8u) << log.text().substr(0, 3000);
  EXPECT_DOUBLE_EQ(rig.router.tempo().bpm(), 480.0) << "the clock keeps the saved tempo";
  EXPECT_NEAR(rig.router.held_bpm(), 150.0, 0.5) << "status: tempo_held_bpm, as when it was saved";
  for (int id = 1; id <= 8; ++id) {
    const control::VoiceInfo vi = rig.ctl.voice_info(rig.router.player(id));
    EXPECT_GT(vi.rate_set, 1.0f) << id;
    EXPECT_LE(vi.rate_set, 1.25f) << "held within the budget: " << id;
  }
  EXPECT_LE(rig.ctl.resample_units_used(), 8000u);
  // Saved again, it says the same: the tempo, and each player's own rate (1).
  const DaemonState s = capture_state(rig.ctl, rig.router, true);
  EXPECT_DOUBLE_EQ(s.bpm, 480.0);
  ASSERT_EQ(s.voices.size(), 8u);
  for (const StateVoice& v : s.voices) EXPECT_FLOAT_EQ(v.rate, 1.0f) << v.id;
}

std::vector<std::string> lines_of(const std::string& text, const char* level) {
  std::vector<std::string> out;
  std::size_t at = 0;
  while (at < text.size()) {
    const std::size_t end = std::min(text.find('\n', at), text.size());
    const std::string line = text.substr(at, end - at);
    if (line.rfind(level, 0) == 0) out.push_back(line);
    at = end + 1;
  }
  return out;
}

TEST(WorkBudgetHold, ASessionTempoBeyondTheRangeAndTheBudgetIsOneWarning) {
  test::TempDir dir;
  InstanceConfig c = Rig::ic(false, 16);
  c.engine.max_resampled_voices = 8;
  Rig rig(c);
  for (int id = 1; id <= 8; ++id) {
    const std::string path = dir.file("s" + std::to_string(id) + ".wav");
    test::make_wav(path, 48'000, static_cast<std::uint32_t>(id));
    ASSERT_TRUE(rig.load_and_play(id, path, 0.1f));
  }
  {
    LogCapture log;
    rig.router.follow_session_tempo(999.0, 2);  // what sync_tick() does with Link's tempo
    const std::vector<std::string> warnings = lines_of(log.text(), "warning ");
    ASSERT_EQ(warnings.size(), 1u) << log.text();
    const std::string& w = warnings[0];
    EXPECT_NE(w.find("link: session tempo 999.00 bpm (2 peers): players held at 1"), std::string::npos) << w;
    EXPECT_NE(w.find("0.25–4 × --bpm 120.0"), std::string::npos) << "the range: " << w;
    EXPECT_NE(w.find("the resampling budget (--max-resampled-voices 8 units)"), std::string::npos) << w;
    EXPECT_TRUE(lines_of(log.text(), "info ").empty()) << log.text();
  }
  EXPECT_NEAR(rig.router.held_bpm(), 150.0, 0.5);
  {
    LogCapture log;  // within the range and the budget again: the players follow, one line
    rig.router.follow_session_tempo(126.0, 2);
    EXPECT_TRUE(lines_of(log.text(), "warning ").empty()) << log.text();
    const std::vector<std::string> infos = lines_of(log.text(), "info ");
    ASSERT_EQ(infos.size(), 1u) << log.text();
    EXPECT_NE(infos[0].find("link: session tempo 126.00 bpm (2 peers): the players follow it again"), std::string::npos)
        << infos[0];
  }
  EXPECT_EQ(rig.router.held_bpm(), 0.0);
}

}  // namespace
}  // namespace stemd::app
