// The test tone really sounds: /stemd/tone and /test_tone play a sine of the asked frequency,
// level and length on the direct bus, even with every deck muted.
#include "test_util.hpp"

#include "control/router.hpp"

#include <gtest/gtest.h>

#include <cmath>

namespace stemd::test {
namespace {

TEST(TestTone, SoundsAtItsFrequencyLevelAndLength) {
  engine::EngineConfig ec;
  ec.max_voices = 8;
  ec.max_block_frames = 1024;
  engine::Engine e(ec);
  io::LoaderThread loader(io::LoaderConfig{});
  control::Controller ctl(e, loader, io::LoadOptions{});
  control::MediaPolicy media;
  std::string err;
  ASSERT_TRUE(media.configure("", true, err));
  control::Router router(ctl, control::RouterConfig{}, media);
  const control::Peer peer{};
  auto send = [&](control::OscMessage m) { return router.handle(m, peer); };
  // every deck muted: the tone does not care
  control::OscMessage mute{
      "/deck_levels",
      {control::OscArg::Float(0), control::OscArg::Float(0), control::OscArg::Float(0), control::OscArg::Float(0)}};
  ASSERT_EQ(send(mute).address, "/done");
  control::OscMessage tone{"/stemd/tone",
                           {control::OscArg::Float(1000), control::OscArg::Float(-6), control::OscArg::Float(0.5)}};
  const auto reply = send(tone);
  ASSERT_EQ(reply.address, "/done") << reply.to_string();
  std::vector<float> out(48000 * 2);
  for (std::size_t f = 0; f < 48000; f += 1024) {
    e.process(out.data() + f * 2, static_cast<std::uint32_t>(std::min<std::size_t>(1024, 48000 - f)));
  }
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

}  // namespace
}  // namespace stemd::test
