// Sources the state file names whose files are missing at start (a USB stick not mounted at
// boot) show wherever a technician looks while they wait: the keeper's count and line (the
// status's sources_waiting / sources_waiting_for, the health line and systemd's STATUS=, the web
// page) and stemctl's status and list. Before, everything showed an empty, healthy daemon and only
// a warning at start said why nothing played (new-user pass 29, M2). The daemon's wiring (status,
// list, /api/status, the health line) is checked end to end by tests/integration/media_root_late.sh.
//
// Threads: the test thread is [control].
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
