// What a lost device's hand-over to a fresh image of stemd carries besides the state (outside
// pass 28, user L2, L4, L7): the web monitor's last events (the page's Events never showed the
// /stemd/device/lost of a loss that re-execs), the status totals since the service started (they
// restarted at 0 with each image) and the measured output latency (the new image's Link join
// line said 0.0 ms) — in the carry file beside the hand-over file, checked as the environment is.
#include "app/daemon_run.hpp"
#include "control/carried_totals.hpp"
#include "router_rig.hpp"
#include "web/event_backlog.hpp"

#include <gtest/gtest.h>

#include <fmt/format.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include <unistd.h>

namespace stemd {
namespace {

using web::EventBacklog;

std::string ev(std::uint64_t seq, const std::string& address = "/stemd/voice/started") {
  return EventBacklog::stamp(fmt::format(R"({{"event":"{}","args":[{}]}})", address, seq), 1000 + seq, seq);
}

void broadcast(EventBacklog& b, const std::string& address = "/stemd/voice/started") {
  const std::uint64_t seq = b.take_seq();
  ASSERT_TRUE(b.add(seq, 1000 + seq, ev(seq, address)));
}

TEST(EventBacklog, KeepsTheLast64InOrderInFixedRoom) {
  EventBacklog b;
  for (int i = 0; i < 100; ++i) broadcast(b);
  EXPECT_EQ(b.size(), EventBacklog::kCapacity);
  const auto all = b.after(0);
  ASSERT_EQ(all.size(), 64u);
  for (std::size_t i = 0; i < all.size(); ++i) {
    EXPECT_EQ(all[i].seq, 37 + i) << "the oldest went first";
    EXPECT_EQ(all[i].json, ev(37 + i));
    EXPECT_EQ(all[i].unix_ms, static_cast<std::int64_t>(1037 + i));
  }
  EXPECT_EQ(b.next_seq(), 101u);
}

TEST(EventBacklog, APageGetsOnlyWhatItHasNotSeen) {
  EventBacklog b;
  for (int i = 0; i < 10; ++i) broadcast(b);
  const auto missed = b.after(7);
  ASSERT_EQ(missed.size(), 3u);
  EXPECT_EQ(missed[0].seq, 8u);
  EXPECT_EQ(missed[2].seq, 10u);
  EXPECT_TRUE(b.after(10).empty()) << "up to date";
  EXPECT_EQ(b.after(500).size(), 10u) << "a number of another run (stemd restarted): everything kept";
}

// A service restart begins the numbers again: a page that had seen 10 events of the last run and
// reconnects once the new one has broadcast 30 asked for those after 10 and missed the new run's
// first 10 (closing note 29). With the run it saw, it gets everything kept.
TEST(EventBacklog, APageOfAnotherRunGetsEverythingKept) {
  EventBacklog b;
  for (int i = 0; i < 30; ++i) broadcast(b);
  ASSERT_TRUE(EventBacklog::valid_run(b.run())) << b.run();
  EXPECT_EQ(b.after(10, b.run()).size(), 20u) << "this run's page: what it has not seen";
  const EventBacklog other;
  ASSERT_NE(other.run(), b.run()) << "each start makes its own";
  const auto all = b.after(10, other.run());
  ASSERT_EQ(all.size(), 30u) << "another run's page: the new run's first events too";
  EXPECT_EQ(all.front().seq, 1u);
  EXPECT_EQ(b.after(10).size(), 20u) << "no run given (an older page): as before";
  // The token is taken from a hand-over only when valid.
  EventBacklog c;
  EXPECT_FALSE(c.set_run("ZZ"));
  EXPECT_FALSE(c.set_run(std::string(33, 'a')));
  EXPECT_TRUE(c.set_run(b.run()));
  EXPECT_EQ(c.run(), b.run());
}

TEST(EventBacklog, StampedEventsSayTheirNumberAndTime) {
  EXPECT_EQ(EventBacklog::stamp(R"({"event":"/x","args":[1]})", 1765000000123, 42, "0123456789abcdef"),
            R"({"seq":42,"time_ms":1765000000123,"run":"0123456789abcdef","event":"/x","args":[1]})");
  EXPECT_EQ(EventBacklog::stamp(R"({"event":"/x","args":[1]})", 1765000000123, 42),
            R"({"seq":42,"time_ms":1765000000123,"event":"/x","args":[1]})");
}

TEST(EventBacklog, TooLongOrOutOfOrderIsNotKept) {
  EventBacklog b;
  EXPECT_FALSE(b.add(1, 0, std::string(EventBacklog::kMaxBytes + 1, 'x')));
  EXPECT_TRUE(b.add(5, 0, ev(5)));
  EXPECT_FALSE(b.add(5, 0, ev(5))) << "twice";
  EXPECT_FALSE(b.add(3, 0, ev(3))) << "older than the last";
  EXPECT_TRUE(b.add(6, 0, std::string(EventBacklog::kMaxBytes, 'x')));
  EXPECT_EQ(b.size(), 2u);
  EXPECT_EQ(b.next_seq(), 7u) << "a carried event's number: the next goes on from it";
}

app::Resume carried() {
  app::Resume r;
  r.totals = {{"messages", 115}, {"frames", 6479403}, {"state_writes", 43}, {"loader_reads", 670}};
  r.output_latency_s = 0.0427;
  r.events_run = "00c0ffee12345678";
  for (std::uint64_t s = 1; s <= 3; ++s) r.events.push_back({s, static_cast<std::int64_t>(1000 + s), ev(s)});
  r.events.push_back({4, 1004, ev(4, "/stemd/device/lost")});
  return r;
}

TEST(HandoverCarry, TotalsEventsAndLatencyComeThrough) {
  app::Resume in = carried();
  app::Resume out;
  app::parse_carry(app::format_carry(in), out);
  EXPECT_TRUE(out.ignored.empty()) << out.ignored[0];
  EXPECT_EQ(out.totals, in.totals);
  EXPECT_NEAR(out.output_latency_s, 0.0427, 1e-9);
  EXPECT_EQ(out.events_run, "00c0ffee12345678") << "the page's numbers go on in the same run";
  ASSERT_EQ(out.events.size(), 4u);
  EXPECT_EQ(out.events[3].json, ev(4, "/stemd/device/lost"));
  EXPECT_EQ(out.events[3].unix_ms, 1004);
}

TEST(HandoverCarry, WhatIsNotValidIsLeftOutAndSaid) {
  std::string text = app::format_carry(carried());
  text += "total voices 3\n";                                              // a figure of now, not a total
  text += "total messages 1\n";                                            // twice
  text += "total frames -1\n";                                             // not a count
  text += "latency_ns 5000000000\n";                                       // 5 s
  text += "event 9 1009 {\"seq\":8,\"time_ms\":1009,\"event\":\"/x\"}\n";  // its own number differs
  std::string esc = ev(10);
  esc.insert(esc.size() - 1, ",\"a\":\"\x1b[2J\"");
  text += "event 10 1010 " + esc + "\n";   // a control character
  text += "event 3 1003 " + ev(3) + "\n";  // out of order
  std::string big = ev(11);
  big.insert(big.size() - 1, ",\"pad\":\"" + std::string(3000, 'a') + "\"");
  text += "event 11 1011 " + big + "\n";  // too long
  text += "run 0123\n";                   // twice
  text += "run ../../x\n";                // not hex
  text += "rm -rf /\n";
  app::Resume out;
  app::parse_carry(text, out);
  EXPECT_EQ(out.totals.size(), 4u);
  EXPECT_EQ(out.totals[0], (std::pair<std::string, std::uint64_t>{"messages", 115}));
  EXPECT_NEAR(out.output_latency_s, 0.0427, 1e-9);
  EXPECT_EQ(out.events.size(), 4u);
  ASSERT_EQ(out.ignored.size(), 1u);
  EXPECT_NE(out.ignored[0].find("11 lines not taken"), std::string::npos) << out.ignored[0];
  EXPECT_EQ(out.events_run, "00c0ffee12345678");
  app::Resume wrong;
  app::parse_carry("stemd-state 1\ntotal messages 5\n", wrong);
  EXPECT_TRUE(wrong.totals.empty()) << "not a carry file: nothing taken";
}

TEST(HandoverCarry, AtMost64EventsTheLastOnes) {
  std::string text = "stemd-carry 1\n";
  for (std::uint64_t s = 1; s <= 200; ++s) text += fmt::format("event {} {} {}\n", s, 1000 + s, ev(s));
  app::Resume out;
  app::parse_carry(text, out);
  ASSERT_EQ(out.events.size(), EventBacklog::kCapacity);
  EXPECT_EQ(out.events.front().seq, 137u);
  EXPECT_EQ(out.events.back().seq, 200u);
}

TEST(HandoverCarry, TheFileIsReadOnlyWithThisProcesssHandOverAndThenRemoved) {
  std::string e;
  ASSERT_TRUE(app::write_file_atomic(app::carry_path(app::handoff_path()), app::format_carry(carried()), e)) << e;
  setenv("STEMD_RESUME_STATE", "/tmp/somebody-elses.state", 1);
  EXPECT_TRUE(app::take_resume_env().totals.empty()) << "not this process's hand-over";
  setenv("STEMD_RESUME_STATE", app::handoff_path().c_str(), 1);
  const app::Resume r = app::take_resume_env();
  EXPECT_EQ(r.totals.size(), 4u);
  EXPECT_EQ(r.events.size(), 4u);
  EXPECT_NE(access(app::carry_path(app::handoff_path()).c_str(), F_OK), 0) << "removed once read";
}

// The new image's status counts on from the previous images' totals; the stream clock does not.
TEST(HandoverCarry, TheStatusTotalsCountFromTheServicesStart) {
  test::RouterRig rig;
  rig.render(4096);
  rig.router.set_carried_totals({{"messages", 115}, {"frames", 6479403}});
  EXPECT_EQ(rig.status("frames"), 6479403 + 4096);
  EXPECT_EQ(rig.status("stream_frames"), 4096) << "this image's: /ws/audio's frame numbers";
  const double messages = rig.status("messages");
  EXPECT_GE(messages, 116);
  EXPECT_LT(messages, 130);
  const auto totals = control::Router::totals_of(rig.ok("/stemd/status").values);
  ASSERT_FALSE(totals.empty());
  for (const auto& [k, n] : totals) EXPECT_TRUE(control::is_carried_total(k)) << k;
}

}  // namespace
}  // namespace stemd
