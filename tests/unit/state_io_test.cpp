// The state file's read and writes through a helper process (app/state_io.hpp, the keeper's
// flush()/save()/restore() with Config::helper): a helper that hangs — as one on a file system
// that stops answering does — holds neither the caller nor a second helper. The helper here is a
// shell script standing in for `stemd --internal-state-io` (the real one: state_stall.sh).
#include "app/daemon_run.hpp"
#include "app/state.hpp"
#include "app/state_io.hpp"
#include "state_test_util.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <fstream>
#include <thread>

namespace stemd::app {
namespace {

using control::OscArg;
using namespace state_test;
using Clock = std::chrono::steady_clock;

double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

int lines(const std::string& path) {
  const std::string s = slurp(path);
  return static_cast<int>(std::count(s.begin(), s.end(), '\n'));
}

// A helper: `sh -c SCRIPT sh MODE PATH [MAX]`; each start appends a line to `starts`.
std::vector<std::string> helper(const test::TempDir& dir, const std::string& script) {
  return {"/bin/sh", "-c", "echo \"$1\" >> '" + dir.file("starts") + "'; " + script, "sh"};
}

StateKeeper::Config config(const std::string& path, std::vector<std::string> h, double timeout_s) {
  StateKeeper::Config c{path, false, 5.0, "test"};
  c.helper = std::move(h);
  c.io_timeout_s = timeout_s;
  return c;
}

TEST(FileJob, AnswersTheHelpersOutcomeAndOutput) {
  test::TempDir dir;
  std::string e;
  auto ok = FileJob::start({"/bin/sh", "-c", "cat; printf ' out'"}, "in", e);
  ASSERT_NE(ok, nullptr) << e;
  EXPECT_EQ(ok->wait(5.0), FileJob::Status::kOk);
  EXPECT_EQ(ok->output(), "in out");
  auto missing = FileJob::start({"/bin/sh", "-c", "printf gone; exit 3"}, "", e);
  EXPECT_EQ(missing->wait(5.0), FileJob::Status::kMissing);
  EXPECT_EQ(missing->output(), "gone");
  auto failed = FileJob::start({"/bin/sh", "-c", "printf 'x: cannot read it'; exit 1"}, "", e);
  EXPECT_EQ(failed->wait(5.0), FileJob::Status::kFailed);
  EXPECT_EQ(failed->output(), "x: cannot read it");
  // The helper itself failing says nothing about the file (a corrupt file is set aside; this not).
  auto broken = FileJob::start({"/bin/sh", "-c", "printf partial; kill -9 $$"}, "", e);
  EXPECT_EQ(broken->wait(5.0), FileJob::Status::kBroken);
  EXPECT_EQ(broken->output(), "the helper process was killed (signal 9)");
  EXPECT_EQ(FileJob::start({dir.file("no-such-helper")}, "", e), nullptr);
  EXPECT_NE(e.find("cannot start"), std::string::npos) << e;
}

TEST(FileJob, AHungHelperIsGivenUpOnInTimeAndKilledWithItsJob) {
  std::string e;
  auto job = FileJob::start({"/bin/sh", "-c", "exec sleep 30"}, "", e);
  ASSERT_NE(job, nullptr) << e;
  const auto t0 = Clock::now();
  EXPECT_EQ(job->wait(0.2), FileJob::Status::kRunning);
  EXPECT_LT(since(t0), 1.0);
  bool stopped = false;
  EXPECT_EQ(job->wait(
                30.0, [](int) { return false; }, &stopped),
            FileJob::Status::kRunning);
  EXPECT_TRUE(stopped);  // a stop signal ends the wait
  job.reset();           // killed: no late write after its owner gave up
}

// Before, flush() wrote on the calling thread (the main loop): a write that hung held it — no
// stop signal acted on, no watchdog ping. Now it starts the write and returns; one at a time.
TEST(StateKeeperIo, AWriteThatHangsHoldsNeitherTheMainLoopNorASecondHelper) {
  test::TempDir dir;
  LogCapture log;
  Rig rig;
  StateKeeper keeper(config(dir.file("state"), helper(dir, "exec sleep 30"), 0.2));
  const auto t0 = Clock::now();
  for (int i = 0; i < 30; ++i) {  // 0.6 s of main-loop passes, a new state each
    keeper.capture_now(rig.ctl, rig.router);
    EXPECT_FALSE(keeper.flush());
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_LT(since(t0), 1.5);
  EXPECT_EQ(lines(dir.file("starts")), 1);  // the newest state waits; no helper piles up
  const auto t1 = Clock::now();
  EXPECT_FALSE(keeper.save(0.3));  // the shutdown's save: bounded, says so
  EXPECT_LT(since(t1), 1.0);
  const std::string text = log.text();
  const auto first = text.find("its write has not answered after 0.2 s");
  EXPECT_NE(first, std::string::npos) << text;
  EXPECT_EQ(text.find("its write has not answered", first + 1), std::string::npos) << text;  // once
  EXPECT_NE(text.find("the state was NOT saved"), std::string::npos) << text;
  EXPECT_FALSE(exists(dir.file("state")));
}

// The shutdown's save when the write fails at once (its directory was removed): the warning gives
// the failure's own reason. Before, the save retried until its deadline and blamed a file system
// that does not answer: "its write has not finished after 0.0 s" (outside pass 26, user L5).
TEST(StateKeeperIo, ASaveWhoseWriteFailsSaysWhyNotThatItHung) {
  test::TempDir dir;
  LogCapture log;
  Rig rig;
  // The helper fails at once, as `stemd --internal-state-io write` does in a missing directory.
  StateKeeper keeper(config(dir.file("gone/state"),
                            helper(dir, "echo \"cannot create gone/state: No such file or directory\"; exit 1"), 5.0));
  keeper.capture_now(rig.ctl, rig.router);
  const auto t0 = Clock::now();
  EXPECT_FALSE(keeper.save(1.0));
  EXPECT_LT(since(t0), 0.9) << "not retried until the deadline";
  const std::string text = log.text();
  EXPECT_NE(text.find("the state was NOT saved — cannot create gone/state: No such file or directory"),
            std::string::npos)
      << text;
  EXPECT_EQ(text.find("has not finished"), std::string::npos) << text;
}

TEST(StateKeeperIo, TheNewestStateWaitsBehindASlowWriteAndIsWrittenAfterIt) {
  test::TempDir dir;
  test::make_wav(dir.file("a.wav"), 4'800, 1);
  LogCapture log;
  Rig rig;
  const std::string path = dir.file("state");
  StateKeeper keeper(config(path, helper(dir, "sleep 0.3; cat > \"$2\""), 5.0));
  keeper.capture_now(rig.ctl, rig.router);
  EXPECT_FALSE(keeper.flush());  // under way
  rig.send(msg("/stemd/load", OscArg::Int(4), OscArg::Str(dir.file("a.wav"))));
  keeper.capture_now(rig.ctl, rig.router);
  keeper.flush();
  rig.send(msg("/stemd/load", OscArg::Int(5), OscArg::Str(dir.file("a.wav"))));
  keeper.capture_now(rig.ctl, rig.router);  // replaces the one with 4 alone
  EXPECT_TRUE(keeper.save(5.0)) << log.text();
  EXPECT_EQ(lines(dir.file("starts")), 2);  // the first, then the newest: the middle one never
  const std::string text = slurp(path);
  EXPECT_NE(text.find("/stemd/load 4"), std::string::npos) << text;
  EXPECT_NE(text.find("/stemd/load 5"), std::string::npos) << text;
}

// Before, restore() read the file on the main thread: a file system that did not answer held
// the start. Now it gives up after io_timeout_s — and this run never writes the file it could not
// read (the worst outcome would be the user's saved state replaced by an empty one).
TEST(StateKeeperIo, AFileThatDoesNotAnswerAtStartIsNotRestoredAndNeverWritten) {
  test::TempDir dir;
  LogCapture log;
  Rig rig;
  const std::string path = dir.file("state");
  const std::string saved = "stemd-state 1\n/stemd/master 0.25 0\nend\n";
  spit(path, saved);
  StateKeeper keeper(config(path, helper(dir, "[ \"$1\" = read ] && exec sleep 30; cat > \"$2\""), 0.3));
  const auto t0 = Clock::now();
  const RestoreReport rep = keeper.restore(rig.router);
  EXPECT_LT(since(t0), 1.5);
  EXPECT_FALSE(rep.interrupted);
  EXPECT_TRUE(keeper.unread());
  EXPECT_NE(log.text().find("state file " + path + " did not answer within 0.3 s"), std::string::npos) << log.text();
  for (int i = 0; i < 3; ++i) {
    keeper.capture_now(rig.ctl, rig.router);
    keeper.flush();
  }
  EXPECT_FALSE(keeper.save(0.2));
  EXPECT_NE(log.text().find("not saved — it could not be read at start"), std::string::npos) << log.text();
  EXPECT_EQ(slurp(path), saved);
  EXPECT_EQ(lines(dir.file("starts")), 1);  // the read alone: no write was tried
}

TEST(StateKeeperIo, AStopSignalWhileTheReadWaitsStopsTheRestoreAndWritesNothing) {
  test::TempDir dir;
  LogCapture log;
  Rig rig;
  const std::string path = dir.file("state");
  StateKeeper keeper(config(path, helper(dir, "[ \"$1\" = read ] && exec sleep 30; cat > \"$2\""), 30.0));
  RestoreHooks hooks;
  int waited = 0;
  hooks.wait = [&](int) { return ++waited < 5; };  // the fifth look: SIGTERM
  const RestoreReport rep = keeper.restore(rig.router, hooks);
  EXPECT_TRUE(rep.interrupted);
  keeper.capture_now(rig.ctl, rig.router);
  keeper.flush();
  EXPECT_FALSE(exists(path));
  EXPECT_NE(log.text().find("stopped by a signal while its read waited"), std::string::npos) << log.text();
}

// A helper that dies (killed, out of memory) tells nothing about the file: it is read here
// instead, never set aside as .bad (which would leave the next save to replace the user's state).
TEST(StateKeeperIo, AHelperThatDiesWhileReadingDoesNotSetTheFileAside) {
  test::TempDir dir;
  LogCapture log;
  Rig rig;
  const std::string path = dir.file("state");
  spit(path, "stemd-state 1\n/stemd/master 0.25 0\nend\n");
  StateKeeper keeper(config(path, helper(dir, "kill -9 $$"), 5.0));
  const RestoreReport rep = keeper.restore(rig.router);
  EXPECT_EQ(rep.messages, 1) << log.text();
  EXPECT_FALSE(exists(path + ".bad"));
  EXPECT_NE(log.text().find("killed (signal 9) — reading it without a helper"), std::string::npos) << log.text();
}

TEST(StateKeeperIo, TheHelpersReadIsRestoredAsTheFileWouldBe) {
  test::TempDir dir;
  LogCapture log;
  Rig rig;
  const std::string path = dir.file("state");
  spit(path, "stemd-state 1\n/stemd/master 0.25 0\nend\n");
  StateKeeper keeper(config(path, helper(dir, "[ \"$1\" = read ] && exec cat \"$2\"; cat > \"$2\""), 5.0));
  const RestoreReport rep = keeper.restore(rig.router);
  EXPECT_EQ(rep.messages, 1) << log.text();
  EXPECT_FALSE(keeper.unread());
  EXPECT_FLOAT_EQ(capture_state(rig.ctl, rig.router, false).master, 0.25f);
}

// A helper that cannot be started (a sandbox refusing memfd_create or exec): the state is
// written from the caller, as before, rather than never.
TEST(StateKeeperIo, AHelperThatCannotStartLeavesTheWriteToTheCaller) {
  test::TempDir dir;
  LogCapture log;
  Rig rig;
  const std::string path = dir.file("state");
  StateKeeper keeper(config(path, {dir.file("no-such-helper")}, 5.0));
  keeper.capture_now(rig.ctl, rig.router);
  EXPECT_TRUE(keeper.flush());
  EXPECT_NE(slurp(path).find("stemd-state 1"), std::string::npos);
  keeper.capture_now(rig.ctl, rig.router);
  EXPECT_TRUE(keeper.save(1.0));
  const std::string text = log.text();
  const auto first = text.find("writing it from the main loop instead");
  EXPECT_NE(first, std::string::npos) << text;
  EXPECT_EQ(text.find("writing it from the main loop instead", first + 1), std::string::npos) << text;
}

// A device hand-over re-executes stemd: a state file the first image could not read stays
// unwritten by the new one (StateKeeper::keep_unread()), which learns it from the environment.
TEST(StateKeeperIo, AHandOverTellsTheNewImageTheStateFileWasNotRead) {
  setenv("STEMD_RESUME_STATE", handoff_path().c_str(), 1);
  setenv("STEMD_RESUME_STATE_UNREAD", "1", 1);
  Resume r = take_resume_env();
  EXPECT_TRUE(r.active);
  EXPECT_TRUE(r.state_unread);
  EXPECT_EQ(std::getenv("STEMD_RESUME_STATE_UNREAD"), nullptr);  // not passed on to what it starts
  setenv("STEMD_RESUME_STATE", handoff_path().c_str(), 1);
  setenv("STEMD_RESUME_STATE_UNREAD", "0", 1);
  r = take_resume_env();
  EXPECT_FALSE(r.state_unread);
  test::TempDir dir;
  StateKeeper keeper(config(dir.file("state"), helper(dir, "cat > \"$2\""), 5.0));
  keeper.keep_unread();
  Rig rig;
  keeper.capture_now(rig.ctl, rig.router);
  EXPECT_FALSE(keeper.save(0.5));
  EXPECT_FALSE(exists(dir.file("state")));
}

}  // namespace
}  // namespace stemd::app
