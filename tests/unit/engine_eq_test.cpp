// The deck EQ inside the engine: a kill command removes its band from that deck only, glides
// (no step), and a flat EQ leaves the mix bit-exact.
#include "common/engine_driver.hpp"

#include "engine/deck_eq.hpp"

#include <gtest/gtest.h>

#include <cmath>

namespace stemd::test {
namespace {

std::vector<float> sine(std::size_t frames, double hz, float amp) {
  std::vector<float> v(frames * 2);
  for (std::size_t i = 0; i < frames; ++i) {
    v[2 * i] = v[2 * i + 1] = amp * static_cast<float>(std::sin(2 * M_PI * hz * static_cast<double>(i) / 48000.0));
  }
  return v;
}

double rms(const std::vector<float>& v, std::size_t from, std::size_t to) {
  double s = 0;
  for (std::size_t i = from; i < to; ++i) s += static_cast<double>(v[i]) * v[i];
  return std::sqrt(s / static_cast<double>(to - from));
}

TEST(EngineEq, KillLowOnOneDeckOnly) {
  const auto low = sine(48000 * 2, 50.0, 0.5f);
  engine::VoiceSource a{low.data(), 96000, 96000, false};
  engine::VoiceSource b{low.data(), 96000, 96000, false};
  engine::EngineConfig ec;
  ec.max_voices = 4;
  ec.max_block_frames = 1024;
  engine::Engine e(ec);
  auto pa = play_command(0, 1, &a, nullptr, 0);
  pa.play.deck = 0;
  auto pb = play_command(1, 2, &b, nullptr, 0);
  pb.play.deck = 1;
  ASSERT_TRUE(e.send(pa));
  ASSERT_TRUE(e.send(pb));
  engine::Command kill{};
  kill.type = engine::CommandType::kDeckEq;
  kill.deck = 0;
  kill.band = 0;
  kill.value = 0.0f;
  kill.frames = 2400;  // 50 ms glide
  ASSERT_TRUE(e.send(kill));
  std::vector<float> out(96000 * 2);
  for (std::size_t f = 0; f < 96000; f += 1024)
    e.process(out.data() + f * 2, static_cast<std::uint32_t>(std::min<std::size_t>(1024, 96000 - f)));
  // After the glide only deck B's 50 Hz remains: half the level of both decks (−6 dB).
  const double both = 2 * rms(low, 0, low.size());
  const double after = rms(out, 48000, 96000 * 2);
  EXPECT_NEAR(20 * std::log10(after / both), -6.02, 0.1);
  // The glide is smooth: no sample-to-sample step larger than the sines' own.
  double max_step = 0;
  for (std::size_t i = 2; i < 9600; i += 2)
    max_step = std::max(max_step, static_cast<double>(std::fabs(out[i] - out[i - 2])));
  EXPECT_LT(max_step, 2 * 0.5 * 2 * M_PI * 50 / 48000 * 1.5);
}

TEST(EngineEq, FlatEqIsBitExact) {
  const auto s = sine(30000, 1000.0, 0.25f);
  engine::VoiceSource a{s.data(), 30000, 30000, false};
  engine::EngineConfig ec;
  ec.max_voices = 4;
  ec.max_block_frames = 1024;
  engine::Engine e(ec);
  ASSERT_TRUE(e.send(play_command(0, 1, &a, nullptr, 0)));
  engine::Command flat{};  // an explicit "flat" command must not disturb the signal either
  flat.type = engine::CommandType::kDeckEq;
  flat.deck = 0;
  flat.band = 1;
  flat.value = 1.0f;
  flat.frames = 100;
  ASSERT_TRUE(e.send(flat));
  std::vector<float> out(30000 * 2);
  for (std::size_t f = 0; f < 30000; f += 1000) e.process(out.data() + f * 2, 1000);
  EXPECT_EQ(first_mismatch(out.data(), s.data(), s.size()), -1);
}

}  // namespace
}  // namespace stemd::test
