// Sources the state file names whose files are missing at start (a USB stick not mounted at
// boot) show wherever a technician looks while they wait: the keeper's count and line (the
// status's sources_waiting / sources_waiting_for, the health line and systemd's STATUS=, the web
// page) and stemctl's status and list. Before, everything showed an empty, healthy daemon and only
// a warning at start said why nothing played (new-user pass 29, M2). The daemon's wiring (status,
// list, /api/status, the health line) is checked end to end by tests/integration/media_root_late.sh.
//
// Threads: the test thread is [control].
#include "app/service_notify.hpp"
#include "ctl/format.hpp"
#include "state_test_util.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <thread>

namespace stemd::app {
namespace {

using namespace state_test;

TEST(StateWaiting, TheKeeperCountsAndSaysTheSourcesWaitingUntilTheirFilesAreThere) {
  test::TempDir dir;
  const std::string stick = dir.file("stick");
  const std::string path = dir.file("state");
  Restored s(path,
             "stemd-state 1\n/stemd/load 1 \"" + stick + "/a.wav\" \"a\"\n/stemd/load 2 \"" + stick +
                 "/b.wav\" \"b\"\n/stemd/play 1 1 true 0 frames 1\nend\n",
             {.retry_s = 0.0});
  const auto waiting = s.keeper.waiting();
  EXPECT_EQ(waiting->count.load(), 2);
  EXPECT_EQ(waiting->text(), "2 sources waiting for their files in " + stick + " (the first: " + stick +
                                 "/a.wav: No such file or directory; tried again every 0 s)");
  // The stick is mounted with one of them: one waits.
  std::filesystem::create_directories(stick);
  test::make_wav(stick + "/a.wav", 48'000, 1);
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));  // poll() looks once a second
  s.keeper.poll(s.rig.ctl, s.rig.router);
  ASSERT_NE(s.rig.ctl.source(1), nullptr) << s.log.text();
  EXPECT_EQ(waiting->count.load(), 1);
  EXPECT_EQ(waiting->text(),
            "1 source waiting for its file: " + stick + "/b.wav: No such file or directory (tried again every 0 s)");
  // A client unloads the other: nothing waits, nothing is said.
  EXPECT_EQ(s.rig.send(msg("/stemd/unload", OscArg::Int(2))).address, "/done");
  EXPECT_EQ(waiting->count.load(), 0);
  EXPECT_EQ(waiting->text(), "");
}

// The waiting line is built from every held path: built at each hold, a restore of N missing
// sources did N builds of up to N paths (the largest state the limits allow: 0.49 → 6.3 s, and
// past TSan's time-out in CI). Counted, not timed: one build for the whole restore.
TEST(StateWaiting, TheLineIsBuiltOncePerRestoreNotOncePerSource) {
  test::TempDir dir;
  const std::string stick = dir.file("stick");
  std::string text = "stemd-state 1\n";
  constexpr int kSources = 40;
  for (int i = 1; i <= kSources; ++i) {
    text += "/stemd/load " + std::to_string(i) + " \"" + stick + "/" + std::to_string(i) + ".wav\" \"s\"\n";
  }
  Restored s(dir.file("state"), text + "end\n", {.retry_s = 0.0});
  const auto waiting = s.keeper.waiting();
  EXPECT_EQ(waiting->count.load(), kSources);
  EXPECT_EQ(waiting->updates.load(), 1u) << "the waiting line was built per held source";
}

// Outside pass 30, F3: a client's file name with a newline went raw into the waiting line — the
// health log line split, and systemd's STATUS= got a line "WATCHDOG=trigger" of its own (systemd
// then restarts the service as if its watchdog had expired).
TEST(StateWaiting, AClientsPathCannotSplitTheLineOrSystemdsStatus) {
  const std::string bad = "/m/inj/x\nWATCHDOG=trigger\nSTATUS=\x1b[31minjected.wav";
  for (const std::string& line :
       {waiting_text({bad}, bad + ": No such file or directory", 5), waiting_text({bad, "/m/inj/y\n/b.wav"}, "", 5)}) {
    EXPECT_EQ(line.find('\n'), std::string::npos) << line;
    EXPECT_EQ(line.find('\x1b'), std::string::npos) << line;
    EXPECT_NE(line.find("WATCHDOG=trigger"), std::string::npos) << "the name is shown, escaped: " << line;
  }
  // STATUS= is one line whatever a caller passes (a second guard)
  const std::string status = notify_status_line("playing\nWATCHDOG=trigger\r\x7f\x01" + std::string(600, 'a'));
  EXPECT_EQ(status.find_first_of("\n\r\x7f\x01"), std::string::npos) << status;
  EXPECT_EQ(status.rfind("playing WATCHDOG=trigger", 0), 0u) << status;
  EXPECT_EQ(status.size(), 512u);
}

// Outside pass 30, F1: a device loss dropped the sources waiting for their files — the hand-over
// did not carry them and the new image (which does not restore the state file) neither waited
// for them nor wrote them again. Now the hand-over carries them (add_held) and the new image's
// keeper holds them as it reads the hand-over (what DaemonRun::resume_session does), with their
// retries' outcomes observed: once the file is there the source loads and its voice plays.
TEST(StateWaiting, ASourceWaitingAcrossAHandOverIsWaitedForByTheNewImage) {
  test::TempDir dir;
  const std::string stick = dir.file("stick");
  const std::string load2 = "/stemd/load 2 \"" + stick + "/b.wav\" \"n\"\n";
  Restored old(dir.file("state"), "stemd-state 1\n" + load2 + "/stemd/play 2 0.5 true 4800 frames 1\nend\n",
               {.retry_s = 0.0});
  ASSERT_EQ(old.keeper.waiting()->count.load(), 1);
  DaemonState handed;
  old.keeper.add_held(handed);
  ASSERT_EQ(handed.held.size(), 3u) << "a comment, the load and the voice line";
  const std::string handover = dir.file("handover");
  spit(handover, format_state(handed, "test"));
  std::vector<StateMessage> msgs;
  std::string err;
  ASSERT_EQ(read_state_file(handover, msgs, err, std::size_t{1} << 20), StateRead::kOk) << err;
  // The new image: loads on opener threads (the server runs), the keeper of the same state file.
  LogCapture log;
  Rig rig;
  rig.router.enable_async_loads(nullptr);
  StateKeeper keeper({dir.file("state"), true, 5.0, "test", 0.0});
  for (const StateMessage& sm : msgs) {
    if (keeper.hold_voice(sm)) continue;
    const control::Reply r = rig.router.handle_reply(sm.message, control::Peer{});
    if (!r.ok) EXPECT_TRUE(keeper.hold_resumed(rig.router, sm, r.kind, r.reason)) << r.reason;
  }
  EXPECT_EQ(keeper.waiting()->count.load(), 1);
  EXPECT_NE(keeper.waiting()->text().find(stick + "/b.wav"), std::string::npos) << keeper.waiting()->text();
  keeper.capture_now(rig.ctl, rig.router);
  ASSERT_TRUE(keeper.flush());
  EXPECT_NE(slurp(dir.file("state")).find(load2), std::string::npos)
      << "kept in the state file: " << slurp(dir.file("state"));
  std::filesystem::create_directories(stick);
  test::make_wav(stick + "/b.wav", 96'000, 2);
  for (int i = 0; i < 3 && rig.ctl.voice_info(rig.router.player(2)).position != 4800; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1100));  // poll() looks once a second
    keeper.poll(rig.ctl, rig.router);
    ASSERT_TRUE(rig.settle_loads());
    keeper.poll(rig.ctl, rig.router);
  }
  ASSERT_NE(rig.ctl.source(2), nullptr) << log.text();
  EXPECT_EQ(rig.ctl.voice_info(rig.router.player(2)).position, 4800) << "its voice came with it: " << log.text();
  EXPECT_EQ(log.text().find("no longer waited for"), std::string::npos) << log.text();
  EXPECT_EQ(keeper.waiting()->count.load(), 0);
}

TEST(StateWaiting, NoneWaitingSaysNothing) {
  EXPECT_EQ(waiting_text({}, "", 5), "");
  EXPECT_EQ(waiting_text({"/m/s/a.wav", "/m/t/b.wav"}, "/m/s/a.wav: No such file or directory", 5),
            "2 sources waiting for their files in /m (the first: /m/s/a.wav: No such file or directory; tried again "
            "every 5 s)");
}

ctl::StatusFields waiting_status(int n, const std::string& text) {
  control::OscMessage m{"/done", {OscArg::Str("/stemd/status")}};
  for (auto [k, v] : {std::pair<std::string, OscArg>{"sources", OscArg::Int(0)},
                      {"sources_waiting", OscArg::Int(n)},
                      {"sources_waiting_for", OscArg::Str(text)}}) {
    m.args.push_back(OscArg::Str(k));
    m.args.push_back(v);
  }
  return ctl::status_fields(m);
}

TEST(StateWaiting, StemctlStatusAndListSayWhatWaits) {
  const std::string why =
      "1 source waiting for its file: /media/stick/a.wav: No such file or directory (tried "
      "again every 5 s)";
  const std::string summary = ctl::status_summary(waiting_status(1, why));
  EXPECT_NE(summary.find("  sources waiting"), std::string::npos) << summary;
  EXPECT_NE(summary.find(why), std::string::npos) << summary;
  EXPECT_EQ(ctl::list_waiting_line(waiting_status(1, why)), "waiting: " + why + "\n");
  // None waiting: no row, no line.
  EXPECT_EQ(ctl::status_summary(waiting_status(0, "")).find("sources waiting"), std::string::npos);
  EXPECT_EQ(ctl::list_waiting_line(waiting_status(0, "")), "");
}

}  // namespace
}  // namespace stemd::app
