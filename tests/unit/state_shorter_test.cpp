// A state file restored against a file that is shorter now than when the state was saved (an
// artist's new edit copied over the old one, then the box rebooted: new-user pass 29, M1). A
// looping voice restarts where it would be in its loop — its saved position modulo the loop's
// length, in FILE frames of the new file — and is logged as such; a voice that does not loop and
// is past the new end had ended: reported once and not restored (state_lost_test.cpp). Before,
// the looping voice was refused ("position is outside the file (skipped)") and the state file
// rewritten without it, so every later start was silent too.
//
// Threads: the test thread is [control] (and, before any render, the engine queue's consumer).
#include "state_test_util.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <thread>

namespace stemd::app {
namespace {

using namespace state_test;

std::string shorter_state(test::TempDir& dir) {
  // Each file is 48,000 frames now; the positions were saved against 120-s files.
  for (const char* f : {"a.wav", "b.wav", "c.wav"}) test::make_wav(dir.file(f), 48'000, 1);
  return "stemd-state 1\n"
         "/stemd/load 1 \"" +
         dir.file("a.wav") + "\" \"a\"\n/stemd/load 2 \"" + dir.file("b.wav") + "\" \"b\"\n/stemd/load 3 \"" +
         dir.file("c.wav") +
         "\" \"c\"\n"
         "/stemd/play 1 1 true 100000 frames 1\n"
         "/stemd/play 2 1 false 100000 frames 1\n"
         "/stemd/play_region 3 40000 90000 true 0 1 frames\n"
         "/stemd/seek 3 70000 frames\n"
         "end\n";
}

TEST(StateShorterFile, ALoopingVoiceRestartsWrappedIntoTheNewFileAndStaysInTheStateFile) {
  test::TempDir dir;
  const std::string path = dir.file("state");
  Restored s(path, shorter_state(dir));
  control::Controller& ctl = s.rig.ctl;
  control::Router& router = s.rig.router;
  ASSERT_NE(ctl.source(1), nullptr);
  // The looping play: 100,000 mod 48,000 file frames.
  ASSERT_TRUE(router.players().count(1) != 0) << s.log.text();
  EXPECT_EQ(ctl.voice_info(router.player(1)).position, 100'000 % 48'000);
  // The looping region [40000, 90000) is cut at the file's end; its seek wraps into it.
  ASSERT_TRUE(router.players().count(3) != 0) << s.log.text();
  // The one that does not loop is past the end: reported, not restored.
  EXPECT_EQ(router.players().count(2), 0u);
  EXPECT_EQ(s.report.voices, 2) << s.log.text();
  const std::string log = s.log.text();
  EXPECT_NE(log.find("warning state file " + path + ":5: /stemd/play 1 1 true 100000 \"frames\" 1: source 1 (" +
                     dir.file("a.wav") +
                     "): its file is shorter now (48000 file frames) than where its looping voice was saved (file "
                     "frame 100000): it restarts at file frame 4000"),
            std::string::npos)
      << log;
  EXPECT_NE(log.find("it loops [40000, 48000) instead"), std::string::npos) << log;
  EXPECT_NE(log.find("it goes on at file frame 46000, the position wrapped into its loop [40000, 48000)"),
            std::string::npos)
      << log;
  EXPECT_NE(log.find("source 2 (" + dir.file("b.wav") +
                     "): saved at file frame 100000, past the end of its file as it is now (48000 file frames, "
                     "shorter than when the state was saved): a voice that does not loop had ended there — not "
                     "restored, and no longer kept in the state file"),
            std::string::npos)
      << log;
  for (int i = 0; i < 4; ++i) s.rig.render(256);
  const control::VoiceInfo region = ctl.voice_info(router.player(3));
  EXPECT_EQ(region.loop_start, 40'000);
  EXPECT_EQ(region.loop_end, 48'000);
  EXPECT_GE(region.position, 46'000);
  EXPECT_LT(region.position, 48'000);

  // The state file written now keeps both looping voices, so the next start has them too.
  s.keeper.capture_now(ctl, router);
  ASSERT_TRUE(s.keeper.flush());
  const std::string text = slurp(path);
  EXPECT_NE(text.find("/stemd/play 1 1 true "), std::string::npos) << text;
  EXPECT_NE(text.find("/stemd/play_region 3 40000 48000 true 0 1 frames"), std::string::npos) << text;
  Restored again(dir.file("state"), "");
  EXPECT_EQ(again.report.voices, 2) << again.log.text();
  EXPECT_EQ(again.report.failed, 0) << again.log.text();
}

// A source waiting for its disk (state_held.cpp) whose file came back as a shorter edit: its
// looping voice is fitted to it as at start — whether its load answers at once or later (an
// opener thread's: the voice lines then wait for its outcome rather than queue behind it).
TEST(StateShorterFile, AHeldSourceThatComesBackShorterKeepsItsLoopingVoice) {
  for (const bool async : {false, true}) {
    SCOPED_TRACE(async ? "loads on opener threads" : "loads at once");
    test::TempDir dir;
    const std::string late = dir.file("stick/a.wav");
    Restored s(dir.file("state"),
               "stemd-state 1\n/stemd/load 1 \"" + late + "\" \"a\"\n/stemd/play 1 1 true 100000 frames 1\nend\n",
               {.retry_s = 0.0, .async = async});
    ASSERT_EQ(s.rig.ctl.source(1), nullptr);
    std::filesystem::create_directories(dir.file("stick"));
    test::make_wav(late, 48'000, 1);
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (s.rig.router.players().count(1) == 0 && std::chrono::steady_clock::now() < until) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      s.rig.router.poll_loads();
      s.keeper.poll(s.rig.ctl, s.rig.router);  // looks once a second
    }
    ASSERT_EQ(s.rig.router.players().count(1), 1u) << s.log.text();
    EXPECT_EQ(s.rig.ctl.voice_info(s.rig.router.player(1)).position, 100'000 % 48'000);
    EXPECT_NE(s.log.text().find("it restarts at file frame 4000"), std::string::npos) << s.log.text();
    EXPECT_EQ(s.keeper.waiting()->count.load(), 0);
  }
}

// The fitting itself: a line that fits is left as it is (no note); a seek with no loop behind it
// is not wrapped; positions and regions are FILE frames of the file as it is now.
TEST(StateShorterFile, OnlyLinesPastTheEndOfALoopAreChanged) {
  std::map<int, RestoreLoop> loops;
  std::string note;
  OscMessage play = msg("/stemd/play", OscArg::Int(1), OscArg::Float(1), OscArg::Bool(true), OscArg::Int(47'999),
                        OscArg::Str("frames"), OscArg::Float(1));
  EXPECT_FALSE(fit_voice_to_file(play, 48'000, loops, note));
  EXPECT_TRUE(note.empty()) << note;
  EXPECT_EQ(play.args[3].i, 47'999);
  play.args[3] = OscArg::Int(48'000);
  EXPECT_TRUE(fit_voice_to_file(play, 48'000, loops, note));
  EXPECT_EQ(play.args[3].i, 0);
  OscMessage seek = msg("/stemd/seek", OscArg::Int(2), OscArg::Int(50'000), OscArg::Str("frames"));
  EXPECT_FALSE(fit_voice_to_file(seek, 48'000, loops, note));  // id 2 has no loop here
  EXPECT_EQ(seek.args[1].i, 50'000);
  OscMessage region = msg("/stemd/play_region", OscArg::Int(2), OscArg::Int(60'000), OscArg::Int(70'000),
                          OscArg::Bool(true), OscArg::Int(0), OscArg::Float(1), OscArg::Str("frames"));
  EXPECT_TRUE(fit_voice_to_file(region, 48'000, loops, note));  // starts past the end: the whole file
  EXPECT_EQ(region.args[1].i, 0);
  EXPECT_EQ(region.args[2].i, 48'000);
  EXPECT_TRUE(fit_voice_to_file(seek, 48'000, loops, note));
  EXPECT_EQ(seek.args[1].i, 50'000 % 48'000);
}

}  // namespace
}  // namespace stemd::app
