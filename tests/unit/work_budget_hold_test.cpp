// The players held within the work budgets (router_work.cpp). A state saved while the players were held within the work
// budgets (status tempo_held_bpm: a Link session or the movement at a tempo the budgets could not take) comes back held
// (src/app/state_restore.cpp, Router::restore_tempo). Before, its /set_tempo was routed first, as a
// client's, with no players to check, and then each restored player was refused at the full ratio
// once the budget was spent: the first two of eight came back at rate 4, the other six not at all.
//
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

}  // namespace
}  // namespace stemd::app
