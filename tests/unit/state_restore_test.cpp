// The state file's restore at start (src/app/state_restore.cpp): its loads run on the router's
// opener threads with --load-timeout (a file system that does not answer costs the timeout, its
// source is kept and tried again), a stop signal ends the wait and leaves the file as it was,
// more commands than the engine's queue holds are all applied, and an id that does not fit an int
// is not taken for another id.
//
// Threads: the test thread is [control] and, before any render, the engine's queue's consumer
// (Controller::apply_before_stream, as before the stream starts); opener threads and the loader
// are real.
#include "common/stall_reads.hpp"
#include "state_test_util.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <functional>
#include <thread>

namespace stemd::app {
namespace {

using namespace state_test;
using Clock = std::chrono::steady_clock;

using StallReads = test::StallFirstRead;

// a.wav, and slow.wav whose first read stalls 2 s (a file system that does not answer).
struct TwoFiles {
  explicit TwoFiles(test::TempDir& dir) {
    test::make_wav(dir.file("a.wav"), 48'000, 1);
    test::make_wav(dir.file("slow.wav"), 48'000, 2);
  }
  StallReads stall{"slow.wav", std::chrono::milliseconds(2000)};
  io::ScopedFaultInjector scoped{stall};
};

// The stalled opener thread has come back (it read the fault injector: it must not outlive it).
bool opener_back(control::Router& router) {
  const auto until = Clock::now() + std::chrono::seconds(5);
  while (Clock::now() < until) {
    router.poll_loads();
    const OscMessage st = router.handle(OscMessage{"/stemd/status", {}}, control::Peer{});
    bool lost = false;
    for (std::size_t i = 1; i + 1 < st.args.size(); i += 2) {
      if (st.args[i].s == "loads_lost" && st.args[i + 1].i != 0) lost = true;
    }
    if (!lost && !router.anything_in_flight()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

std::string load_line(int id, const std::string& path) {
  return "/stemd/load " + std::to_string(id) + " \"" + path + "\" \"n\"\n";
}

// The outside pass: a state file naming a file on a network share that did not answer held the
// whole start-up in open() for as long as the share was down (no OSC, no web, SIGTERM not acted
// on), whatever --load-timeout said; when the share came back the daemon started and wrote the
// state without that source. Now the load gives up after the timeout, the rest is restored, and
// the source is kept in the file and tried again.
TEST(StateRestore, ALoadThatDoesNotAnswerGivesUpAfterTheTimeoutAndIsKept) {
  test::TempDir dir;
  TwoFiles files(dir);
  const std::string path = dir.file("state");
  const auto t0 = Clock::now();
  // Its loads on opener threads, as the daemon's restore's.
  Restored s(path,
             "stemd-state 1\n" + load_line(1, dir.file("slow.wav")) + load_line(2, dir.file("a.wav")) +
                 "/stemd/play 2 1 true 0 frames 1\n/stemd/play 1 1 true 0 frames 1\nend\n",
             {.async = true, .ic = Rig::ic(false, 32, 0.3)});
  const double took = std::chrono::duration<double>(Clock::now() - t0).count();
  EXPECT_LT(took, 1.5) << "waited for the stalled file instead of --load-timeout";
  EXPECT_EQ(s.report.sources, 1);
  EXPECT_EQ(s.report.voices, 1);
  EXPECT_FALSE(s.report.interrupted);
  EXPECT_EQ(s.rig.ctl.source(1), nullptr);
  ASSERT_NE(s.rig.ctl.source(2), nullptr);
  EXPECT_EQ(s.rig.ctl.voices_playing(), 1u);
  EXPECT_NE(s.log.text().find(
                ":2: source 1 not restored yet: timed out: the file system did not answer for 0.3 s (--load-timeout)"),
            std::string::npos)
      << s.log.text();
  s.keeper.capture_now(s.rig.ctl, s.rig.router);
  ASSERT_TRUE(s.keeper.flush());
  const std::string text = slurp(path);
  EXPECT_NE(text.find(load_line(1, dir.file("slow.wav")) + "/stemd/play 1 1 true 0 \"frames\" 1\n"), std::string::npos)
      << text;
  EXPECT_TRUE(opener_back(s.rig.router));
}

// SIGTERM while the restore waits on a file system: the wait ends at once, and the file is not
// written again (it keeps everything for the next start; a state written now would lack what
// had not been restored yet).
TEST(StateRestore, AStopWhileLoadsAreInFlightEndsTheWaitAndLeavesTheFileAsItWas) {
  test::TempDir dir;
  TwoFiles files(dir);
  const std::string path = dir.file("state");
  const std::string before = "stemd-state 1\n/stemd/master 0.5 0\n" + load_line(1, dir.file("slow.wav")) +
                             load_line(2, dir.file("a.wav")) + "/stemd/play 2 1 true 0 frames 1\nend\n";
  spit(path, before);
  Rig rig(Rig::ic(false, 32, 30.0));
  rig.router.enable_async_loads(nullptr);
  StateKeeper keeper({path, true, 5.0, "test"});
  RestoreHooks hooks;
  const auto t0 = Clock::now();
  int waits = 0;
  hooks.wait = [&](int ms) {
    ++waits;
    std::this_thread::sleep_for(std::chrono::milliseconds(ms));
    return Clock::now() - t0 < std::chrono::milliseconds(200);  // the signal comes at 0.2 s
  };
  const RestoreReport r = keeper.restore(rig.router, hooks);
  EXPECT_TRUE(r.interrupted);
  EXPECT_GT(waits, 0);
  EXPECT_LT(std::chrono::duration<double>(Clock::now() - t0).count(), 1.5);
  keeper.capture_now(rig.ctl, rig.router);
  EXPECT_TRUE(keeper.flush());
  EXPECT_EQ(slurp(path), before);
  EXPECT_TRUE(opener_back(rig.router));
}

// The outside pass: a state file the daemon wrote itself with 2,100 voices (each playing, panned,
// paused) came back with 2,047: the restore routes every line before the stream starts, nothing
// drained the engine's 8,192-command queue, and the rest was refused "busy: the command queue is
// full" — and then missing from the next state written. The restore now makes room first.
TEST(StateRestore, MoreCommandsThanTheEnginesQueueHoldsAreAllRestored) {
  test::TempDir dir;
  test::make_wav(dir.file("a.wav"), 4'800, 1);
  constexpr int kVoices = 2'400;  // × 4 commands: more than Engine::kCommandQueue
  std::string text = "stemd-state 1\n";
  for (int id = 1; id <= kVoices; ++id) text += load_line(id, dir.file("a.wav"));
  for (int id = 1; id <= kVoices; ++id) {
    const std::string i = std::to_string(id);
    text += "/stemd/play " + i + " 0.5 true 10 frames 1\n/stemd/fade " + i + " 1 30 linear\n/stemd/pan " + i +
            " 0.5 0\n/stemd/pause " + i + " 0\n";
  }
  const std::string path = dir.file("state");
  spit(path, text + "end\n");
  LogCapture log;
  Rig rig(Rig::ic(false, kVoices + 8));
  StateKeeper keeper({path, true, 5.0, "test"});
  RestoreHooks hooks;
  hooks.make_room = [&] {
    if (rig.e.command_space() <= engine::Engine::kMaxCommandsPerCallback * 2) rig.ctl.apply_before_stream();
  };
  const RestoreReport r = keeper.restore(rig.router, hooks);
  EXPECT_EQ(r.failed, 0) << log.text().substr(0, 2000);
  EXPECT_EQ(r.voices, kVoices);
  rig.render(256);
  EXPECT_EQ(rig.ctl.voices_playing(), static_cast<std::size_t>(kVoices));
  const DaemonState s = capture_state(rig.ctl, rig.router, true);
  ASSERT_EQ(s.voices.size(), static_cast<std::size_t>(kVoices));
  EXPECT_TRUE(s.voices.back().paused);
  EXPECT_FLOAT_EQ(s.voices.back().pan, 0.5f);
}

// An id that does not fit an int is refused by the router, and the restore does not take it for
// another: /stemd/load 4294967297 was logged as "source 1 not restored", and source 1's voice was
// then skipped though source 1 had loaded.
TEST(StateRestore, AnIdBeyondAnIntIsNotTakenForAnother) {
  test::TempDir dir;
  test::make_wav(dir.file("a.wav"), 48'000, 1);
  const std::string path = dir.file("state");
  Restored s(path, "stemd-state 1\n" + load_line(1, dir.file("a.wav")) + "/stemd/load 4294967297 \"" +
                       dir.file("a.wav") + "\" \"x\"\n/stemd/play 1 1 true 0 frames 1\nend\n");
  EXPECT_EQ(s.report.voices, 1);
  EXPECT_EQ(s.rig.ctl.voices_playing(), 1u);
  EXPECT_EQ(s.log.text().find("source 1 not restored"), std::string::npos) << s.log.text();
  EXPECT_NE(s.log.text().find(":3: /stemd/load 4294967297"), std::string::npos) << s.log.text();
}

// Two load lines for one id: the later wins, also when both files are missing and the first was
// held while the second waited behind its load (the restore's loads run on opener threads).
TEST(StateRestore, OfTwoLoadsOfAnIdTheLaterIsTheOneKept) {
  test::TempDir dir;
  const std::string path = dir.file("state");
  Restored s(path,
             "stemd-state 1\n" + load_line(1, dir.file("gone/first.wav")) + load_line(1, dir.file("gone/second.wav")) +
                 "end\n",
             {.async = true});
  s.keeper.capture_now(s.rig.ctl, s.rig.router);
  ASSERT_TRUE(s.keeper.flush());
  const std::string text = slurp(path);
  EXPECT_EQ(text.find("first.wav"), std::string::npos) << text;
  EXPECT_NE(text.find("second.wav"), std::string::npos) << text;
}

// A load that finishes later, on an opener thread, is settled by its typed outcome (the router's
// outcome observer) at the restore and at the held source's retries alike: missing at start, the
// source is held; tried again while still missing (the retry's load fails on an opener thread) it
// stays held, silently; once its file is there the retry's outcome restores it, with its voice.
TEST(StateRestore, ALaterLoadsOutcomeSettlesTheRestoreAndTheHeldRetryAlike) {
  test::TempDir dir;
  const std::string late = dir.file("media/late.wav");
  const std::string path = dir.file("state");
  Restored s(path, "stemd-state 1\n" + load_line(1, late) + "/stemd/play 1 0.5 true 4800 frames 1\nend\n",
             {.retry_s = 0.0, .async = true});
  EXPECT_EQ(s.report.sources, 0);
  EXPECT_EQ(s.report.failed, 1);
  EXPECT_NE(s.log.text().find(":2: source 1 not restored yet: " + late + ": No such file or directory — kept"),
            std::string::npos)
      << s.log.text();
  const std::size_t log_size = s.log.text().size();
  s.keeper.poll(s.rig.ctl, s.rig.router);  // the first look: at once
  EXPECT_TRUE(s.rig.router.load_in_flight(1)) << "the retry's load runs on an opener thread";
  ASSERT_TRUE(s.rig.settle_loads());
  EXPECT_EQ(s.rig.ctl.source(1), nullptr);
  std::filesystem::create_directories(dir.file("media"));
  test::make_wav(late, 96'000, 2);
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));  // poll() looks once a second
  s.keeper.poll(s.rig.ctl, s.rig.router);                        // the failed retry's outcome: still held; tried again
  EXPECT_EQ(s.log.text().size(), log_size) << s.log.text().substr(log_size);
  EXPECT_TRUE(s.rig.router.load_in_flight(1));
  ASSERT_TRUE(s.rig.settle_loads());
  ASSERT_NE(s.rig.ctl.source(1), nullptr);
  // Its voice lines go with the load's outcome, at the keeper's next look (every server pass),
  // fitted to the file as it is then (a shorter edit: state_shorter_test.cpp).
  s.keeper.poll(s.rig.ctl, s.rig.router);
  EXPECT_EQ(s.rig.ctl.voice_info(s.rig.router.player(1)).position, 4800) << "its voice line ran with its outcome";
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  s.keeper.poll(s.rig.ctl, s.rig.router);  // the retry's outcome: restored
  EXPECT_NE(s.log.text().find("state file " + path + ": source 1 restored: " + late + " is there now (1 voice lines"),
            std::string::npos)
      << s.log.text();
  EXPECT_EQ(s.log.text().find("no longer waited for"), std::string::npos) << s.log.text();
  EXPECT_TRUE(s.rig.router.stats().bad.empty()) << "the daemon's own loads are no client's bad input";
  s.keeper.capture_now(s.rig.ctl, s.rig.router);
  ASSERT_TRUE(s.keeper.flush());
  EXPECT_EQ(slurp(path).find("# source 1"), std::string::npos) << slurp(path);
}

// A state file of one load, of the file `make` makes in a fresh directory, restored on the
// restore's thread and on an opener thread: the load fails, and its source is not held (not kept
// in the file to be tried again).
void expect_failed_and_not_held(const std::function<std::string(test::TempDir&)>& make) {
  for (const bool async : {false, true}) {
    SCOPED_TRACE(async ? "on an opener thread" : "on the restore's thread");
    test::TempDir dir;
    const std::string file = make(dir);
    const std::string path = dir.file("state");
    Restored s(path, "stemd-state 1\n" + load_line(1, file) + "end\n", {.async = async});
    EXPECT_EQ(s.report.failed, 1);
    EXPECT_NE(s.log.text().find(":2: source 1 not restored: "), std::string::npos) << s.log.text();
    EXPECT_EQ(s.log.text().find("not restored yet"), std::string::npos) << s.log.text();
    s.keeper.capture_now(s.rig.ctl, s.rig.router);
    ASSERT_TRUE(s.keeper.flush());
    EXPECT_EQ(slurp(path).find(file), std::string::npos) << "not kept: " << slurp(path);
  }
}

// Whether a source is kept to be tried again is decided by its load's kind, not by words in its
// reason: a file that opened but is no sound file (kFile) is not held, though its name carries an
// errno's words — whether its load ran on the restore's thread or on an opener thread. The
// restore took every later failure for a path's (kPath) from the answer it parsed: with its loads
// on opener threads such a file was held and tried again for as long as the daemon ran.
TEST(StateRestore, AFileThatOpenedButIsNoSoundFileIsNotHeldWhateverItsReasonSays) {
  expect_failed_and_not_held([](test::TempDir& dir) {
    const std::string junk = dir.file("No such file or directory.wav");
    spit(junk, "not a sound file, only text");
    return junk;
  });
}

// Whether a source is kept because its load was given up is its reply's kind (kGivenUp, set where
// the router gives a load up: router_expire.cpp), not the words of its reason. A path that cannot
// be opened for a reason that does not pass (a symlink loop: ELOOP) is not held, though the reason
// names --load-timeout (the path does): before, any kPath reason with "--load-timeout" in it was
// taken for a give-up, and the source was kept and tried again for as long as the daemon ran.
TEST(StateRestore, APathThatNamesLoadTimeoutIsNotTakenForAGiveUp) {
  expect_failed_and_not_held([](test::TempDir& dir) {
    const std::string loop = dir.file("take --load-timeout 2.wav");
    std::filesystem::create_symlink(loop, loop);  // open: ELOOP
    return loop;
  });
}

// The rule itself (state.hpp): a give-up is kept by its kind, however its reason is worded — a
// router that words it otherwise, or not at all, still has its source kept; and words are no
// give-up: a reason that names --load-timeout under any other kind is judged as that kind.
TEST(StateHeld, AGiveUpIsKeptByItsKindAndNotByItsWords) {
  using control::ErrorKind;
  EXPECT_TRUE(file_may_come_back(ErrorKind::kGivenUp, "given up: the share went away"));
  EXPECT_TRUE(file_may_come_back(ErrorKind::kGivenUp, ""));
  EXPECT_FALSE(file_may_come_back(ErrorKind::kPath, "/m/take --load-timeout 2.wav: Too many levels of symbolic links"));
  EXPECT_FALSE(
      file_may_come_back(ErrorKind::kFile, "timed out: the file system did not answer for 1 s (--load-timeout)"));
  EXPECT_FALSE(file_may_come_back(ErrorKind::kBusy, "busy: 2 loads are stuck in the file system past --load-timeout"));
  EXPECT_TRUE(file_may_come_back(ErrorKind::kPath, "/m/a.wav: No such file or directory"));  // a disk not there yet
}

}  // namespace
}  // namespace stemd::app
