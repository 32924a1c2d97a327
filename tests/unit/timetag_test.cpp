// OSC bundle timetags: a bundle timed in the future takes effect at the engine frame its time
// maps to (through the stream clock); one already past runs at once and is answered
// "/fail … late by N ms".
#include "common/engine_driver.hpp"

#include "router_rig.hpp"

#include <gtest/gtest.h>

#include <ctime>

namespace stemd::test {
namespace {

double unix_now() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<double>(ts.tv_sec) + ts.tv_nsec * 1e-9;
}

// The daemon's owner object (the router test rig), a DC source in id 1.
struct Rig : RouterRig {
  TempDir dir;
  std::vector<float> dc = std::vector<float>(48000 * 2, 0.25f);
  static engine::EngineConfig config() {
    engine::EngineConfig ec;
    ec.max_voices = 4;
    ec.max_block_frames = 256;
    return ec;
  }
  Rig() : RouterRig(instance_config({}, config())) {
    std::string err;
    ctl.load_generated(control::kNow, 1, "dc", dc, err);
  }
  std::vector<control::OscMessage> send_bundle(const control::OscMessage& m, double at_unix) {
    const auto bytes = control::osc_serialise_bundle({m}, control::unix_seconds_to_ntp(at_unix));
    std::vector<control::Outgoing> out;
    router.handle_packet(bytes.data(), bytes.size(), control::Peer{}, out);
    std::vector<control::OscMessage> replies;
    for (const auto& o : out) {
      control::OscMessage r;
      std::string error;
      if (control::osc_parse(o.data.data(), o.data.size(), r, error)) replies.push_back(r);
    }
    return replies;
  }
};

TEST(Timetag, FutureBundleStartsOnItsFrame) {
  Rig rig;
  std::vector<float> out(256 * 2);
  rig.e.process(out.data(), 256);  // the stream clock now maps frame 0 to (about) now
  const control::OscMessage play{"/stemd/play", {control::OscArg::Int(1)}};
  const double t0 = unix_now();
  const auto replies = rig.send_bundle(play, t0 + 0.1);  // 0.1 s ahead = 4,800 frames
  ASSERT_EQ(replies.size(), 1u);
  EXPECT_EQ(replies[0].address, "/done") << replies[0].to_string();
  std::int64_t first = -1;
  for (std::int64_t f = 256; f < 48000 && first < 0; f += 256) {
    rig.e.process(out.data(), 256);
    for (int i = 0; i < 256; ++i) {
      if (out[2 * i] != 0.0f) {
        first = f + i;
        break;
      }
    }
  }
  // The clock maps frame 0 to the first process() call; the bundle's time was taken just
  // after it, so the start lands at 4,800 frames plus that gap (µs here, ms under sanitizers).
  EXPECT_GE(first, 4800 - 48);
  EXPECT_LE(first, 4800 + 960);
  EXPECT_EQ(rig.e.metrics().commands_late.load(), 0u);
}

// A group sent as separate bundles for the same instant starts on one sample, even when the
// stream clock moved between them (here: the engine ran without real-time pacing, so the
// frame ↔ time mapping shifted by hundreds of frames between the two packets).
TEST(Timetag, BundlesWithTheSameTimetagStartOnTheSameFrame) {
  Rig rig;
  std::string err;
  std::vector<float> half(48000 * 2, 0.5f);
  ASSERT_TRUE(rig.ctl.load_generated(control::kNow, 2, "half", half, err)) << err;
  std::vector<float> out(256 * 2);
  rig.e.process(out.data(), 256);
  const double at = unix_now() + 0.2;
  auto r1 = rig.send_bundle(control::OscMessage{"/stemd/play", {control::OscArg::Int(1)}}, at);
  ASSERT_EQ(r1.size(), 1u);
  EXPECT_EQ(r1[0].address, "/done") << r1[0].to_string();
  timespec pause{0, 30'000'000};
  nanosleep(&pause, nullptr);      // 30 ms pass (1,440 frames of time)…
  rig.e.process(out.data(), 256);  // …but the stream advanced 256: its clock now maps differently
  auto r2 = rig.send_bundle(control::OscMessage{"/stemd/play", {control::OscArg::Int(2)}}, at);
  ASSERT_EQ(r2.size(), 1u);
  EXPECT_EQ(r2[0].address, "/done") << r2[0].to_string();
  std::int64_t first = -1;
  float first_value = 0;
  for (std::int64_t f = 512; f < 96000 && first < 0; f += 256) {
    rig.e.process(out.data(), 256);
    for (int i = 0; i < 256; ++i) {
      if (out[2 * i] != 0.0f) {
        first = f + i;
        first_value = out[2 * i];
        break;
      }
    }
  }
  ASSERT_GE(first, 0) << "nothing started";
  EXPECT_EQ(first_value, 0.75f) << "both voices must start on the same sample (0.25 + 0.5)";
}

TEST(Timetag, LateBundleRunsAtOnceAndSaysHowLate) {
  Rig rig;
  std::vector<float> out(256 * 2);
  rig.e.process(out.data(), 256);
  const control::OscMessage play{"/stemd/play", {control::OscArg::Int(1)}};
  const auto replies = rig.send_bundle(play, unix_now() - 0.5);
  ASSERT_EQ(replies.size(), 1u);
  EXPECT_EQ(replies[0].address, "/fail");
  EXPECT_NE(replies[0].to_string().find("late by"), std::string::npos) << replies[0].to_string();
  rig.e.process(out.data(), 256);
  EXPECT_EQ(out[0], 0.25f) << "it ran at once";
  EXPECT_GE(rig.router.stats().bad.at("late"), 1u);
  // It ran: counted as late, not among the bad messages (it was counted refused and logged
  // "messages refused" by the eighteenth session's outside pass).
  const control::OscMessage st = rig.router.handle(control::OscMessage{"/stemd/status", {}}, control::Peer{});
  std::int64_t bad = -1, late = -1;
  for (std::size_t i = 1; i + 1 < st.args.size(); i += 2) {
    if (st.args[i].s == "bad_messages") bad = st.args[i + 1].i;
    if (st.args[i].s == "late_messages") late = st.args[i + 1].i;
  }
  EXPECT_EQ(bad, 0) << st.to_string();
  EXPECT_EQ(late, 1) << st.to_string();
}

// Before the first callback there is no clock to map a timetag through: such a bundle runs at
// once ("late") and its mapping is not remembered. Once the stream runs, another bundle with the
// same timetag is scheduled on its own frame (it used to reuse the cached frame 0 and run late).
TEST(Timetag, ABundleBeforeTheStreamRunsDoesNotPoisonItsTimetag) {
  Rig rig;
  const double at = unix_now() + 0.5;
  const auto r1 = rig.send_bundle(control::OscMessage{"/stemd/master", {control::OscArg::Float(1.0)}}, at);
  ASSERT_EQ(r1.size(), 1u);
  EXPECT_EQ(r1[0].address, "/fail") << "no clock yet: it ran at once, late";
  std::vector<float> out(256 * 2);
  rig.e.process(out.data(), 256);
  const auto r2 = rig.send_bundle(control::OscMessage{"/stemd/play", {control::OscArg::Int(1)}}, at);
  ASSERT_EQ(r2.size(), 1u);
  EXPECT_EQ(r2[0].address, "/done") << r2[0].to_string();
  EXPECT_EQ(rig.ctl.scheduled(), 1u) << "waiting for its frame, not run at once";
}

// The outside pass: a bundle timed in 1900 (NTP timetag 2) was answered "late by 36580955 ms" —
// the machine's uptime, since the frame a time before boot maps to stops at 0. It says how late
// it really is, in seconds when that is many.
TEST(Timetag, AnAncientTimetagSaysHowLateItReallyIs) {
  Rig rig;
  std::vector<float> out(256 * 2);
  rig.e.process(out.data(), 256);
  const control::OscMessage play{"/stemd/play", {control::OscArg::Int(1)}};
  const auto bytes = control::osc_serialise_bundle({play}, 2);
  std::vector<control::Outgoing> raw;
  rig.router.handle_packet(bytes.data(), bytes.size(), control::Peer{}, raw);
  ASSERT_EQ(raw.size(), 1u);
  control::OscMessage r;
  std::string error;
  ASSERT_TRUE(control::osc_parse(raw[0].data.data(), raw[0].data.size(), r, error)) << error;
  const std::string reason = r.args.back().s;
  double late_s = 0;
  ASSERT_EQ(std::sscanf(reason.c_str(), "late by %lf s (ran at once)", &late_s), 1) << reason;
  EXPECT_GT(late_s, unix_now() + 2208988800.0 - 10) << reason;  // since 1900
}

// The outside pass: /fade A 1000 in a bundle 86,000 s ahead was accepted, 87,000 s ahead, though
// nothing is timed more than a day ahead. The bundle's time and start_at add up.
TEST(Timetag, AStartAtAfterABundleIsNoMoreThanADayAhead) {
  Rig rig;
  std::vector<float> out(256 * 2);
  rig.e.process(out.data(), 256);
  const control::OscMessage fade{"/fade",
                                 {control::OscArg::Str("A"), control::OscArg::Float(1000), control::OscArg::Float(2)}};
  auto replies = rig.send_bundle(fade, unix_now() + 86'000);
  ASSERT_EQ(replies.size(), 1u);
  EXPECT_EQ(replies[0].address, "/fail") << replies[0].to_string();
  EXPECT_NE(replies[0].to_string().find("s ahead: nothing is timed more than a day (86400 s) ahead"), std::string::npos)
      << replies[0].to_string();
  replies = rig.send_bundle(fade, unix_now() + 80'000);  // 81,000 s: within the day
  ASSERT_EQ(replies.size(), 1u);
  EXPECT_EQ(replies[0].address, "/done") << replies[0].to_string();
}

// A value just out of range is shown as sent: "got 3600.001", not the rounded "got 3600".
TEST(Timetag, ARangeRefusalShowsTheValueAsSent) {
  Rig rig;
  const control::OscMessage play{"/stemd/play", {control::OscArg::Int(1)}};
  ASSERT_EQ(rig.router.handle(play, control::Peer{}).address, "/done");
  const control::OscMessage fade{
      "/stemd/fade", {control::OscArg::Int(1), control::OscArg::Float(0.5), control::OscArg::Double(3600.001)}};
  const control::OscMessage r = rig.router.handle(fade, control::Peer{});
  EXPECT_NE(r.to_string().find("got 3600.001"), std::string::npos) << r.to_string();
}

}  // namespace
}  // namespace stemd::test
