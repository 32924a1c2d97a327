// Plays of streamed files open their streams off the control thread (issue 18, item 1): while
// the disk holds every read of the file, the plays wait and another client is answered; when
// the disk answers, the plays answer /done in order and play. Group starts keep the frame they
// were given, or say how late they are. Through the in-process daemon of osc_harness.hpp.
#include "common/stall_reads.hpp"
#include "io/sound_file.hpp"
#include "osc_harness.hpp"

#include <gtest/gtest.h>

#include <condition_variable>
#include <ctime>
#include <mutex>
#include <string>
#include <thread>

namespace stemd::test::osc {
namespace {

// Holds every read of long.wav while closed (a disk or NFS server that stopped answering).
using Gate = test::HoldReads;

class StreamOpen : public ::testing::Test {
 protected:
  void SetUp() override {
    write_long_wav16(media_.path("long.wav"), 48000 * 60, 31);  // 23 MB decoded: streamed
  }
  void start(double load_timeout_s = 10.0) {
    DaemonOptions o;
    o.load_timeout_s = load_timeout_s;
    d_ = std::make_unique<Daemon>(o);
    ASSERT_TRUE(d_->ok()) << d_->error();
    c_ = std::make_unique<Client>(d_->udp());
    ASSERT_TRUE(c_->ok());
  }
  Client& c() { return *c_; }
  std::vector<OscMessage> replies(std::size_t n) {
    std::vector<OscMessage> got;
    for (std::size_t i = 0; i < n; ++i) {
      auto r = c().next_reply(std::chrono::milliseconds(12000));
      if (!r) break;
      got.push_back(*r);
    }
    return got;
  }
  Media media_;
  Gate gate_ = Gate::ending("long.wav");
  std::unique_ptr<Daemon> d_;
  std::unique_ptr<Client> c_;
};

// A bundle of plays while the disk holds the file's reads: another client's ping is answered
// while every play still waits (before: the control thread sat in the first play's open, and
// the ping waited for the disk); then the plays answer /done, in order with the /stemd/stop
// behind them on the same id, and play.
TEST_F(StreamOpen, PlaysWaitingForTheDiskDoNotHoldUpOtherClients) {
  io::ScopedFaultInjector scoped(gate_);
  start();
  for (int id = 1; id <= 4; ++id) EXPECT_DONE(c().send("/stemd/load", id, media_.path("long.wav")), "/stemd/load");
  for (const auto& s : sources(c())) EXPECT_TRUE(s.streamed) << s.id;
  gate_.close();
  c().post_raw(bundle({serialise(msg("/stemd/play", 1)), serialise(msg("/stemd/play", 2)),
                       serialise(msg("/stemd/play", 3)), serialise(msg("/stemd/play", 4)),
                       serialise(msg("/stemd/play", 1, 0.5)), serialise(msg("/stemd/stop", 1))}));
  ASSERT_TRUE(eventually([&] { return gate_.held() > 0; }));  // an open waits for the disk
  Client other(d_->udp());
  const OscMessage ping = other.send("/stemd/ping");
  EXPECT_DONE(ping, "/stemd/ping");
  EXPECT_EQ(status_map(other.send("/stemd/status")).at("plays_opening").i, 4);  // the 2nd play of 1 waits behind
  EXPECT_FALSE(c().next_reply(std::chrono::milliseconds(0)).has_value()) << "a play answered before its stream opened";
  gate_.open();
  const auto got = replies(6);
  ASSERT_EQ(got.size(), 6u);
  EXPECT_FALSE(gate_.gave_up());
  std::vector<std::string> of1;
  for (const auto& r : got) {
    EXPECT_TRUE(is_done(r, r.args.empty() ? "" : r.args[0].s)) << r.to_string();
    if (r.args.size() > 1 && r.args[1].i == 1) of1.push_back(r.args[0].s);
  }
  EXPECT_EQ(of1, (std::vector<std::string>{"/stemd/play", "/stemd/play", "/stemd/stop"}));
  ASSERT_TRUE(eventually([&] {
    const auto v = voices(c());
    return v.size() == 3 && v[0].slot != 1 && v[1].slot != 1 && v[2].slot != 1;
  }));
}

// A crowdstream group timed 1.5 s ahead whose streams open in time starts on that frame, both
// decks, and says so (/done with the frame); the ping of another client meanwhile is answered.
TEST_F(StreamOpen, AGroupStartWaitsForItsStreamsAndKeepsItsFrame) {
  io::ScopedFaultInjector scoped(gate_);
  start();
  EXPECT_DONE(c().send("/cue", "A", media_.path("long.wav")), "/cue");
  EXPECT_DONE(c().send("/cue", "B", media_.path("long.wav")), "/cue");
  // Timetags map to frames once the stream clock runs.
  ASSERT_TRUE(eventually([&] { return status_map(c().send("/stemd/status")).at("frames").i > 0; }));
  gate_.close();
  timespec rt{};
  clock_gettime(CLOCK_REALTIME, &rt);
  const double in = static_cast<double>(rt.tv_sec) + rt.tv_nsec * 1e-9 + 1.5;
  c().post_raw(bundle({serialise(msg("/start_group", 0.0, "A", "B"))}, control::unix_seconds_to_ntp(in)));
  ASSERT_TRUE(eventually([&] { return gate_.held() > 0; }));
  Client other(d_->udp());
  EXPECT_DONE(other.send("/stemd/ping"), "/stemd/ping");
  EXPECT_FALSE(c().next_reply(std::chrono::milliseconds(0)).has_value());
  const auto frame_then = status_map(other.send("/stemd/status")).at("frames").i;
  gate_.open();
  const auto got = replies(1);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_DONE(got[0], "/start_group");
  ASSERT_GE(got[0].args.size(), 4u);
  EXPECT_GT(got[0].args[1].i, frame_then + 48000);  // still its frame, about 1.5 s after it was sent
  ASSERT_TRUE(eventually([&] { return voices(c()).size() == 2; }, std::chrono::milliseconds(5000)));
}

// The same group, untimed, whose streams open only after its frame has passed (the disk held
// them): both decks start together at once, and the answer says how late, and why.
TEST_F(StreamOpen, AGroupWhoseStreamsOpenTooLateSaysHowLate) {
  io::ScopedFaultInjector scoped(gate_);
  start();
  EXPECT_DONE(c().send("/cue", "A", media_.path("long.wav")), "/cue");
  EXPECT_DONE(c().send("/cue", "B", media_.path("long.wav")), "/cue");
  gate_.close();
  c().post(msg("/start_group", 0.0, "A", "B"));
  ASSERT_TRUE(eventually([&] { return gate_.held() > 0; }));
  std::this_thread::sleep_for(std::chrono::milliseconds(100));  // its frame (≈ 7 ms after arrival) passes
  gate_.open();
  const auto got = replies(1);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_FAIL(got[0], "/start_group");
  EXPECT_TRUE(contains_ci(reason(got[0]), "late by")) << reason(got[0]);
  EXPECT_TRUE(contains_ci(reason(got[0]), "to open (started at once)")) << reason(got[0]);
  ASSERT_TRUE(eventually([&] { return voices(c()).size() == 2; }));
}

// A seek of a streamed voice opens its new stream off the control thread too: while the disk
// holds it, another client is answered; then the seek answers /done and the voice is there.
TEST_F(StreamOpen, ASeekWaitingForTheDiskDoesNotHoldUpOtherClients) {
  io::ScopedFaultInjector scoped(gate_);
  start();
  EXPECT_DONE(c().send("/stemd/load", 1, media_.path("long.wav")), "/stemd/load");
  EXPECT_DONE(c().send("/stemd/play", 1), "/stemd/play");
  gate_.close();
  c().post(msg("/stemd/seek", 1, 30.0));
  ASSERT_TRUE(eventually([&] { return gate_.held() > 0; }));
  Client other(d_->udp());
  EXPECT_DONE(other.send("/stemd/ping"), "/stemd/ping");
  EXPECT_FALSE(c().next_reply(std::chrono::milliseconds(0)).has_value()) << "the seek answered before its stream";
  gate_.open();
  const auto got = replies(1);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_DONE(got[0], "/stemd/seek");
  EXPECT_FALSE(gate_.gave_up());
  ASSERT_TRUE(eventually([&] {
    const auto v = voices(c());
    return v.size() == 1 && v[0].position >= 30.0;
  }));
}

// Plays of a streamed file whose stream open is stuck past --load-timeout: every later play of a
// file on that file system answers busy at once instead of losing an opener thread each (outside
// pass 21, finding 5: 8 retried plays of one id took all 8 threads, then every load and streamed
// play answered busy, from any disk). Once the read returns, the file plays again.
TEST_F(StreamOpen, PlaysOfAFileWhoseStreamOpenIsStuckAnswerBusyInsteadOfLosingThreads) {
  io::ScopedFaultInjector scoped(gate_);
  start(0.3);
  EXPECT_DONE(c().send("/stemd/load", 1, media_.path("long.wav")), "/stemd/load");
  EXPECT_DONE(c().send("/stemd/load", 2, media_.path("long.wav")), "/stemd/load");
  gate_.close();
  const OscMessage first = c().send("/stemd/play", 1);
  EXPECT_FAIL(first, "/stemd/play");
  EXPECT_EQ(first.args.empty() ? "" : first.args.back().s,
            "timed out: the file system did not answer for 0.3 s (--load-timeout)");
  EXPECT_EQ(status_map(c().send("/stemd/status")).at("loads_lost").i, 1);
  for (int id : {1, 1, 2, 1}) {
    const OscMessage r = c().send("/stemd/play", id);
    EXPECT_FAIL(r, "/stemd/play");
    const std::string why = r.args.empty() ? "" : r.args.back().s;
    EXPECT_NE(why.find("busy: the file system of "), std::string::npos) << why;
  }
  EXPECT_EQ(status_map(c().send("/stemd/status")).at("loads_lost").i, 1);  // no second thread lost
  EXPECT_EQ(gate_.held(), 1);
  gate_.open();
  ASSERT_TRUE(eventually([&] { return status_map(c().send("/stemd/status")).at("loads_lost").i == 0; },
                         std::chrono::milliseconds(6000)));
  EXPECT_DONE(c().send("/stemd/play", 1), "/stemd/play");
}

}  // namespace
}  // namespace stemd::test::osc
