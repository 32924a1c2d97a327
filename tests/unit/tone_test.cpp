// The test tone really sounds: /stemd/tone and /test_tone play a sine of the asked frequency,
// level and length on the direct bus, even with every deck muted. It is an oscillator in the
// engine (issue 10, item 1): however long, it holds no memory, and a bad length is refused.
#include "common/engine_driver.hpp"

#include "router_rig.hpp"

#include <gtest/gtest.h>

#include <cmath>

namespace stemd::test {
namespace {

TEST(TestTone, SoundsAtItsFrequencyLevelAndLength) {
  RouterRig rig;
  auto send = [&](const control::OscMessage& m) { return rig.send(m); };
  // every deck muted: the tone does not care
  control::OscMessage mute{
      "/deck_levels",
      {control::OscArg::Float(0), control::OscArg::Float(0), control::OscArg::Float(0), control::OscArg::Float(0)}};
  ASSERT_EQ(send(mute).address, "/done");
  control::OscMessage tone{"/stemd/tone",
                           {control::OscArg::Float(1000), control::OscArg::Float(-6), control::OscArg::Float(0.5)}};
  const auto reply = send(tone);
  ASSERT_EQ(reply.address, "/done") << reply.to_string();
  const std::vector<float> out = rig.render(48000);
  float peak = 0;
  std::size_t last = 0, crossings = 0;
  for (std::size_t i = 0; i < 48000; ++i) {
    peak = std::max(peak, std::fabs(out[2 * i]));
    if (out[2 * i] != 0.0f) last = i;
    if (i > 0 && i < 24000 && (out[2 * i - 2] < 0) != (out[2 * i] < 0)) ++crossings;
  }
  EXPECT_NEAR(peak, 0.501f, 0.002f) << "−6 dBFS";
  EXPECT_NEAR(static_cast<double>(last), 24000.0, 2.0) << "0.5 s long";
  EXPECT_NEAR(static_cast<double>(crossings) / 2 / 0.5, 1000.0, 4.0) << "1 kHz";
  EXPECT_EQ(out[2 * 30000], 0.0f);
  // bad arguments answer /fail and play nothing new
  control::OscMessage bad{"/stemd/tone", {control::OscArg::Float(30000)}};
  EXPECT_EQ(send(bad).address, "/fail");
}

using ToneRig = RouterRig;

control::OscMessage tone_msg(double hz, double db, double seconds) {
  return control::OscMessage{"/stemd/tone",
                             {control::OscArg::Float(hz), control::OscArg::Float(db), control::OscArg::Float(seconds)}};
}

// Twelve 600 s tones (the 448-byte bundle that took 2.7 GB when a tone was a rendered buffer)
// and an hour-long one: no source, no memory, one tone sounding.
TEST(TestTone, LongTonesHoldNoMemory) {
  ToneRig rig;
  const std::size_t held = rig.ctl.memory_bytes();
  for (int i = 0; i < 12; ++i) ASSERT_EQ(rig.send(tone_msg(440, -60, 600)).address, "/done");
  EXPECT_EQ(rig.ctl.sources_loaded(), 0u) << "a tone is not a source";
  EXPECT_EQ(rig.ctl.memory_bytes(), held) << "a tone holds no buffer";
  rig.render(1024);
  EXPECT_TRUE(rig.e.tone_active());
  EXPECT_EQ(rig.ctl.voices_playing(), 0u) << "nor a voice";
  ASSERT_EQ(rig.send(tone_msg(440, -60, 3600)).address, "/done");
  EXPECT_EQ(rig.ctl.memory_bytes(), held);
}

// Lengths outside 0.05..3600 s — negative, zero, NaN, infinite (from the configuration: OSC
// refuses non-finite numbers before this), absurd — answer /fail naming the length, and nothing
// sounds.
TEST(TestTone, BadLengthsAreRefused) {
  for (const double bad : {std::nan(""), HUGE_VAL, -HUGE_VAL, -1.0, 0.0, 0.01, 3601.0, 1e300}) {
    SCOPED_TRACE(bad);
    control::RouterConfig rc;
    rc.tone_seconds = bad;
    ToneRig rig(rc);
    const auto r = rig.send(control::OscMessage{"/test_tone", {}});
    ASSERT_EQ(r.address, "/fail") << r.to_string();
    EXPECT_NE(r.to_string().find("length"), std::string::npos) << r.to_string();
    if (std::isfinite(bad)) {
      const auto r2 = rig.send(tone_msg(440, -12, bad));
      ASSERT_EQ(r2.address, "/fail") << r2.to_string();
      EXPECT_NE(r2.to_string().find("length"), std::string::npos) << r2.to_string();
    }
    const auto out = rig.render(4096);
    for (float s : out) ASSERT_EQ(s, 0.0f);
    EXPECT_FALSE(rig.e.tone_active());
  }
  ToneRig rig;
  for (const double db : {1.0, -61.0}) EXPECT_EQ(rig.send(tone_msg(440, db, 1)).address, "/fail") << db;
}

// A new tone replaces one still sounding without a click: the old one fades out (declick), the
// new one fades in, and afterwards only the new frequency is heard.
TEST(TestTone, ANewToneReplacesTheOldWithoutAClick) {
  ToneRig rig;
  ASSERT_EQ(rig.send(tone_msg(1000, -6, 1.0)).address, "/done");
  auto a = rig.render(12000);
  ASSERT_EQ(rig.send(tone_msg(500, -6, 0.5)).address, "/done");
  auto b = rig.render(36000);
  a.insert(a.end(), b.begin(), b.end());
  float step = 0;
  for (std::size_t i = 1; i < a.size() / 2; ++i) step = std::max(step, std::fabs(a[2 * i] - a[2 * i - 2]));
  // 1 kHz at 0.5 peak moves at most 2π·1000/48000·0.5 ≈ 0.065 per frame; a cut would jump ~0.5.
  EXPECT_LT(step, 0.1f) << "a click where the tone was replaced";
  std::size_t crossings = 0;  // from 0.3 s to 0.7 s: the 500 Hz tone alone
  for (std::size_t i = 14400; i < 33600; ++i) crossings += (a[2 * i - 2] < 0) != (a[2 * i] < 0);
  EXPECT_NEAR(static_cast<double>(crossings) / 2 / 0.4, 500.0, 5.0);
  std::size_t last = 0;
  for (std::size_t i = 0; i < a.size() / 2; ++i)
    if (a[2 * i] != 0.0f) last = i;
  EXPECT_NEAR(static_cast<double>(last), 12000.0 + 24000.0, 1024.0) << "the new tone lasts its 0.5 s";
}

// Stop-all (and so /mixer_cleanup) fades the tone out.
TEST(TestTone, StopAllFadesTheToneOut) {
  ToneRig rig;
  ASSERT_EQ(rig.send(tone_msg(440, -12, 60)).address, "/done");
  rig.render(4800);
  ASSERT_EQ(rig.send(control::OscMessage{"/mixer_cleanup", {}}).address, "/done");
  const auto out = rig.render(4800);
  for (std::size_t i = 2 * 2400; i < out.size(); ++i) ASSERT_EQ(out[i], 0.0f) << "still sounding at " << i / 2;
  EXPECT_FALSE(rig.e.tone_active());
}

}  // namespace
}  // namespace stemd::test
