// A streamed voice whose file stops reading mid-play (installer pass 29): a USB stick that dies during
// the show (L1), a file overwritten in place with another header (L2). Before, the voice ended with
// an error for good: gone from the voices and from the state file, not started again when the stick
// came back, nor at the next start. Now it waits for its file as a state file's source missing at
// start does (app/state_lost.cpp): shown as a source waiting (the status, the health line, the web
// page), kept in the state file, tried again through the router's opener threads, and it goes on where
// it stopped once the file reads again — fitted to the file as it is then (a new edit). And a voice
// that does not loop, past the end of a shorter edit, had ended: said once, not a failure, and the
// state file agrees (restore29's leftover).
//
// The stick is simulated as the fault tests do (tests/faults: io::FaultInjector): its file's reads
// fail with EIO, and the file is moved away so that an open finds nothing (an empty mount point).
//
// Threads: the test thread is [control] (and renders the engine's periods).
#include "state_test_util.hpp"

#include "io/sound_file.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <regex>
#include <thread>

namespace stemd::app {
namespace {

using namespace state_test;

// A USB stick holding `path`: pulled, its file's reads fail (EIO) and its name is gone.
class Stick : public io::FaultInjector {
 public:
  explicit Stick(std::string path) : path_(std::move(path)) {}
  io::ReadFault on_read(const std::string& path, std::int64_t, std::int64_t) noexcept override {
    io::ReadFault f;
    if (pulled_.load() && path == path_) f.error = EIO;
    return f;
  }
  void pull() {
    pulled_ = true;
    std::filesystem::rename(path_, path_ + ".away");
  }
  void plug() {
    std::filesystem::rename(path_ + ".away", path_);
    pulled_ = false;
  }

 private:
  std::string path_;
  std::atomic<bool> pulled_{false};
};

// A file damaged from byte `from` on: its reads there fail (EIO), always.
class Damaged : public io::FaultInjector {
 public:
  Damaged(std::string path, std::int64_t from) : path_(std::move(path)), from_(from) {}
  io::ReadFault on_read(const std::string& path, std::int64_t offset, std::int64_t bytes) noexcept override {
    io::ReadFault f;
    if (path == path_ && offset + bytes > from_) f.error = EIO;
    return f;
  }

 private:
  std::string path_;
  std::int64_t from_;
};

Restored::Options streamed() {
  Restored::Options o;
  o.retry_s = 0.0;
  o.async = true;  // the daemon's loads: on the opener threads
  o.ic = Rig::ic(true);
  return o;
}

// A period of 1024 frames rendered, the loads polled and the keeper too, as the control thread does.
void step(Restored& s) {
  s.rig.render(1024);
  s.rig.router.poll_loads();
  s.keeper.poll(s.rig.ctl, s.rig.router);
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
}

// step() until `done` or 10 s of wall time.
template <typename F>
bool run_until(Restored& s, F done) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!done()) {
    if (std::chrono::steady_clock::now() > until) return false;
    step(s);
  }
  return true;
}

std::string state_text(Restored& s, const std::string& path) {
  s.keeper.capture_now(s.rig.ctl, s.rig.router);
  EXPECT_TRUE(s.keeper.flush());
  return slurp(path);
}

std::size_t occurrences(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (std::size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

// The position of id's play line in a state file's text (-1: none).
std::int64_t saved_position(const std::string& text, int id) {
  std::smatch m;
  if (!std::regex_search(text, m, std::regex("/stemd/play " + std::to_string(id) + " [0-9.]+ (true|false) ([0-9]+)")))
    return -1;
  return std::stoll(m[2].str());
}

TEST(StateLostVoice, ALoopingVoiceWhoseStickDiesWaitsForItAndGoesOnWhereItStopped) {
  test::TempDir dir;
  const std::string state = dir.file("state"), wav = dir.file("stick.wav");
  test::make_wav(wav, 10 * 48'000, 1);
  Restored s(state, "", streamed());
  Stick stick(wav);
  io::ScopedFaultInjector installed(stick);
  ASSERT_TRUE(s.rig.load_and_play(1, wav));
  ASSERT_TRUE(run_until(s, [&] { return s.rig.ctl.voice_info(s.rig.router.player(1)).position > 48'000; }));

  stick.pull();
  ASSERT_TRUE(run_until(s, [&] { return !s.rig.router.player(1).valid(); })) << s.log.text();
  s.keeper.poll(s.rig.ctl, s.rig.router);
  // It waits, shown as a source waiting (status, health line, web page), with a line in the log.
  const auto waiting = s.keeper.waiting();
  ASSERT_EQ(waiting->count.load(), 1) << s.log.text();
  EXPECT_NE(waiting->text().find(wav), std::string::npos) << waiting->text();
  EXPECT_NE(s.log.text().find("id 1 'stick': its voice stopped at 0:0"), std::string::npos) << s.log.text();
  EXPECT_NE(s.log.text().find("it waits for its file, tried again every 0 s, and goes on from there"),
            std::string::npos)
      << s.log.text();
  // The state file keeps it — its source once, its voice where it stopped —, for a restart meanwhile.
  const std::string text = state_text(s, state);
  EXPECT_EQ(occurrences(text, "/stemd/load 1 "), 1u) << text;
  const std::int64_t stopped = saved_position(text, 1);
  ASSERT_GT(stopped, 48'000) << text;
  EXPECT_NE(text.find("/stemd/play 1 1 true " + std::to_string(stopped) + " \"frames\" 1\n"), std::string::npos)
      << text;

  // Still gone after a few tries: still waiting, the status saying why now.
  const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(2500);
  while (std::chrono::steady_clock::now() < until) step(s);
  EXPECT_EQ(waiting->count.load(), 1);
  EXPECT_NE(waiting->text().find(wav + ": No such file or directory"), std::string::npos) << waiting->text();
  EXPECT_FALSE(s.rig.router.player(1).valid());

  // The stick is back: the voice goes on where it stopped, at once, nothing waits any more.
  stick.plug();
  ASSERT_TRUE(run_until(s, [&] { return s.rig.router.player(1).valid(); })) << s.log.text();
  const control::VoiceInfo v = s.rig.ctl.voice_info(s.rig.router.player(1));
  EXPECT_TRUE(v.loop);
  EXPECT_GE(v.position, stopped);
  EXPECT_LT(v.position, stopped + 48'000);
  EXPECT_EQ(waiting->count.load(), 0);
  EXPECT_NE(s.log.text().find("id 1 'stick': " + wav + " reads again — its voice goes on at"), std::string::npos)
      << s.log.text();
  EXPECT_TRUE(run_until(s, [&] { return s.rig.ctl.voice_info(s.rig.router.player(1)).position > stopped + 4'096; }));
}

TEST(StateLostVoice, AClientsStopGivesTheWaitUp) {
  test::TempDir dir;
  const std::string state = dir.file("state"), wav = dir.file("stick.wav");
  test::make_wav(wav, 10 * 48'000, 1);
  Restored s(state, "", streamed());
  Stick stick(wav);
  io::ScopedFaultInjector installed(stick);
  ASSERT_TRUE(s.rig.load_and_play(1, wav));
  ASSERT_TRUE(run_until(s, [&] { return s.rig.ctl.voice_info(s.rig.router.player(1)).position > 4'800; }));
  stick.pull();
  ASSERT_TRUE(run_until(s, [&] { return s.keeper.waiting()->count.load() == 1; })) << s.log.text();
  EXPECT_EQ(s.rig.send(msg("/stemd/stop", OscArg::Int(1))).address, "/done");
  EXPECT_EQ(s.keeper.waiting()->count.load(), 0);
  EXPECT_EQ(saved_position(state_text(s, state), 1), -1);
  stick.plug();
  const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(2500);  // 2 tries and more
  while (std::chrono::steady_clock::now() < until) step(s);
  EXPECT_FALSE(s.rig.router.player(1).valid()) << s.log.text();
}

// A file that loads again and stops reading again where it did: damaged there, not a disk gone. It is
// waited for once, then not again (it would go on and stop every 5 s, two warnings each time).
TEST(StateLostVoice, AFileDamagedInTheMiddleIsNotWaitedForASecondTime) {
  test::TempDir dir;
  const std::string state = dir.file("state"), wav = dir.file("damaged.wav");
  test::make_wav(wav, 10 * 48'000, 1);
  Restored s(state, "", streamed());
  Damaged damaged(wav, 44 + std::int64_t{48'000} * 4);  // from 1 s in
  io::ScopedFaultInjector installed(damaged);
  ASSERT_TRUE(s.rig.load_and_play(1, wav));
  ASSERT_TRUE(run_until(s, [&] { return s.keeper.waiting()->count.load() == 1; })) << s.log.text();
  ASSERT_TRUE(run_until(s, [&] { return s.log.text().find("the file seems damaged there") != std::string::npos; }))
      << s.log.text();
  EXPECT_EQ(occurrences(s.log.text(), "reads again — its voice goes on"), 1u) << s.log.text();
  EXPECT_EQ(s.keeper.waiting()->count.load(), 0);
  EXPECT_EQ(saved_position(state_text(s, state), 1), -1);
}

// L2: `cp new.wav playing.wav` with another header (here: mono and shorter). The voice stops (its
// frames would be noise), keeps its place in the state file, and comes back with the new file — at
// a restart as when it is retried — its position fitted to the new, shorter file (it loops).
TEST(StateLostVoice, AFileRewrittenWithAnotherHeaderKeepsItsVoiceWhichComesBackWithTheNewFile) {
  test::TempDir dir;
  const std::string state = dir.file("state"), wav = dir.file("replace.wav");
  test::make_wav(wav, 10 * 48'000, 1);
  std::int64_t stopped = -1;
  {
    Restored s(state, "", streamed());
    ASSERT_TRUE(s.rig.load_and_play(1, wav));
    ASSERT_TRUE(run_until(s, [&] { return s.rig.ctl.voice_info(s.rig.router.player(1)).position > 60'000; }));
    test::make_wav(wav, 30'000, 2, 1);  // rewritten in place (the same inode): mono, 30,000 frames
    ASSERT_TRUE(run_until(s, [&] { return s.keeper.waiting()->count.load() == 1; })) << s.log.text();
    // The loader saw a header that changed, or (caught between the truncation and the write) a file cut short.
    const std::string log = s.log.text();
    EXPECT_TRUE(log.find("the file was rewritten while streaming") != std::string::npos ||
                log.find("truncated while streaming") != std::string::npos)
        << log;
    const std::string text = state_text(s, state);
    stopped = saved_position(text, 1);
    ASSERT_GT(stopped, 60'000) << text;
    EXPECT_EQ(occurrences(text, "/stemd/load 1 "), 1u) << text;
  }
  // A restart before it was retried: it comes back with the new file, wrapped into its length.
  Restored again(state, "", streamed());
  EXPECT_EQ(again.report.failed, 0) << again.log.text();
  ASSERT_TRUE(run_until(again, [&] { return again.rig.router.player(1).valid(); })) << again.log.text();
  ASSERT_NE(again.rig.ctl.source(1), nullptr);
  EXPECT_EQ(again.rig.ctl.source(1)->total_frames(), 30'000);
  EXPECT_NE(again.log.text().find("it restarts at file frame " + std::to_string(stopped % 30'000)), std::string::npos)
      << again.log.text();
}

TEST(StateLostVoice, AFileRewrittenWhilePlayingIsLoadedAgainAndItsVoiceGoesOn) {
  test::TempDir dir;
  const std::string state = dir.file("state"), wav = dir.file("replace.wav");
  test::make_wav(wav, 10 * 48'000, 1);
  Restored s(state, "", streamed());
  ASSERT_TRUE(s.rig.load_and_play(1, wav));
  ASSERT_TRUE(run_until(s, [&] { return s.rig.ctl.voice_info(s.rig.router.player(1)).position > 4'800; }));
  test::make_wav(wav, 30'000, 2, 1);
  ASSERT_TRUE(run_until(s, [&] { return s.keeper.waiting()->count.load() == 1; })) << s.log.text();
  ASSERT_TRUE(run_until(s, [&] { return s.rig.router.player(1).valid(); })) << s.log.text();
  EXPECT_EQ(s.rig.ctl.source(1)->total_frames(), 30'000);
  EXPECT_EQ(s.keeper.waiting()->count.load(), 0);
}

// restore29's leftover: a voice that does not loop, saved past the end of a file that is shorter
// now (a new edit), had ended there. The restore says so once — not a failure of its line and of
// every line of its id after it — and the state file written then agrees: its source stays, its
// voice is gone, and the next start restores without a failure either.
TEST(StateLostVoice, ANonLoopingVoicePastTheEndOfAShorterEditHadEndedSaidOnceAndTheStateFileAgrees) {
  test::TempDir dir;
  const std::string state = dir.file("state"), wav = dir.file("b.wav");
  test::make_wav(wav, 48'000, 1);
  Restored s(state, "stemd-state 1\n/stemd/load 2 \"" + wav +
                        "\" \"b\"\n/stemd/play 2 1 false 100000 frames 1\n/stemd/pan 2 0.5 0\nend\n");
  EXPECT_EQ(s.report.failed, 0) << s.log.text();
  EXPECT_EQ(s.report.sources, 1);
  EXPECT_EQ(s.rig.router.players().count(2), 0u);
  EXPECT_EQ(occurrences(s.log.text(), "warning"), 1u) << s.log.text();
  EXPECT_NE(s.log.text().find("a voice that does not loop had ended there — not restored, and no longer kept in the "
                              "state file"),
            std::string::npos)
      << s.log.text();
  const std::string text = state_text(s, state);
  EXPECT_NE(text.find("/stemd/load 2 "), std::string::npos) << text;
  EXPECT_EQ(text.find("/stemd/play 2"), std::string::npos) << text;
  Restored again(state, "");
  EXPECT_EQ(again.report.failed, 0) << again.log.text();
  EXPECT_EQ(again.report.sources, 1);
}

}  // namespace
}  // namespace stemd::app
