// Time-stretch inside the engine: a stretched voice keeps its pitch and plays 1/tempo as long;
// switching a playing voice into the stretcher does not click; no stretcher left → the play
// ends with an error.
#include "common/engine_driver.hpp"

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

engine::EngineConfig config(std::uint32_t stretchers) {
  engine::EngineConfig ec;
  ec.max_voices = 4;
  ec.max_block_frames = 1024;
  ec.max_stretched_voices = stretchers;
  return ec;
}

TEST(EngineStretch, KeepsPitchAndScalesDuration) {
  const auto src = sine(48000 * 2, 440.0, 0.5f);
  engine::VoiceSource vs{src.data(), 96000, 96000, false, 0};
  engine::Engine e(config(1));
  auto c = play_command(0, 1, &vs, nullptr, 0);
  c.play.tempo = 1.25f;
  ASSERT_TRUE(e.send(c));
  std::vector<float> out(48000 * 3 * 2);
  for (std::size_t f = 0; f < 48000 * 3; f += 500) e.process(out.data() + f * 2, 500);
  std::size_t last = 0, crossings = 0;
  for (std::size_t i = 1; i < 48000 * 3; ++i) {
    if (std::fabs(out[2 * i]) > 1e-4f) last = i;
    if (i > 4800 && i < 52800 && (out[2 * i - 2] < 0) != (out[2 * i] < 0)) ++crossings;
  }
  EXPECT_NEAR(static_cast<double>(crossings) / 2.0, 440.0, 4.4) << "pitch kept (±1 %)";
  EXPECT_NEAR(static_cast<double>(last), 96000.0 / 1.25, 96000.0 / 1.25 * 0.02) << "duration × 1/tempo (±2 %)";
}

TEST(EngineStretch, NoStretcherLeftEndsThePlayWithAnError) {
  const auto src = sine(4800, 440.0, 0.5f);
  engine::VoiceSource vs{src.data(), 4800, 4800, false, 0};
  engine::Engine e(config(0));
  auto c = play_command(0, 1, &vs, nullptr, 0);
  c.play.tempo = 1.5f;
  ASSERT_TRUE(e.send(c));
  std::vector<float> out(1024 * 2);
  e.process(out.data(), 1024);
  Drained d;
  d.drain(e);
  ASSERT_NE(d.find(engine::EventType::kVoiceEnded), nullptr);
  EXPECT_EQ(d.find(engine::EventType::kVoiceEnded)->reason, engine::EndReason::kError);
}

TEST(EngineStretch, SwitchingIntoTheStretcherFadesInsteadOfClicking) {
  const auto src = sine(48000 * 3, 440.0, 0.5f);
  engine::VoiceSource vs{src.data(), 144000, 144000, false, 0};
  engine::Engine e(config(1));
  ASSERT_TRUE(e.send(play_command(0, 1, &vs, nullptr, 0)));
  std::vector<float> out(48000 * 2 * 2);
  for (std::size_t f = 0; f < 12000; f += 512) e.process(out.data() + f * 2, 512);
  engine::Command t{};
  t.type = engine::CommandType::kSetTempo;
  t.voice = 0;
  t.generation = 1;
  t.value = 0.8f;
  ASSERT_TRUE(e.send(t));
  for (std::size_t f = 12288; f < 96000; f += 512) {
    e.process(out.data() + f * 2, static_cast<std::uint32_t>(std::min<std::size_t>(512, 96000 - f)));
  }
  // No step larger than a 440 Hz sine at 0.5 makes (plus slack for the stretcher's own start).
  const double sine_step = 0.5 * 2 * M_PI * 440 / 48000;
  double max_step = 0;
  for (std::size_t i = 1; i < 96000; ++i)
    max_step = std::max(max_step, static_cast<double>(std::fabs(out[2 * i] - out[2 * i - 2])));
  EXPECT_LT(max_step, 2.0 * sine_step);
  double late = 0;
  for (std::size_t i = 80000; i < 96000; ++i) late = std::max(late, static_cast<double>(std::fabs(out[2 * i])));
  EXPECT_GT(late, 0.4) << "the voice plays on, stretched";
}

}  // namespace
}  // namespace stemd::test
