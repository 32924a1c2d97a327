// Helpers of the stretch-bus tests (stretch_bus_test.cpp, stretch_bus_share_test.cpp): 44.1 kHz
// test signals, an engine with buses, stretched plays, and the standalone reference a bus must
// equal bit for bit.
#pragma once

#include "common/engine_driver.hpp"
#include "engine/resampler.hpp"
#include "engine/stretcher.hpp"

#include <cmath>
#include <string>
#include <vector>

namespace stemd::test::stretch_bus {

inline constexpr int kSrcRate = 44100;
inline constexpr float kTempo = 1.05f;

// A chord-like stereo test signal (different per `seed`), at 44.1 kHz.
inline std::vector<float> signal(std::size_t frames, int seed) {
  std::vector<float> v(frames * 2);
  const double f1 = 220.0 * (1 + seed * 0.25), f2 = 1870.0 + seed * 110, f3 = 5300.0 - seed * 270;
  for (std::size_t i = 0; i < frames; ++i) {
    const double t = static_cast<double>(i) / kSrcRate;
    const double x = 0.2 * std::sin(2 * M_PI * f1 * t) + 0.1 * std::sin(2 * M_PI * f2 * t) +
                     0.05 * std::sin(2 * M_PI * f3 * t + seed);
    v[2 * i] = static_cast<float>(x);
    v[2 * i + 1] = static_cast<float>(0.8 * x + 0.03 * std::sin(2 * M_PI * 330.0 * t));
  }
  return v;
}

inline engine::EngineConfig config(std::uint32_t buses, std::uint32_t stretchers) {
  engine::EngineConfig ec;
  ec.max_voices = 8;
  ec.max_block_frames = 1024;
  ec.max_stretched_voices = stretchers;
  ec.stretch_buses = buses;
  ec.stretch_bus_rates[0] = kSrcRate;
  ec.stretch_bus_rates[1] = kSrcRate;  // one rate only
  return ec;
}

inline engine::Command stretched_play(engine::VoiceId id, const engine::VoiceSource* vs, float gain,
                                      std::uint8_t deck = 0, std::int64_t pos = 0) {
  auto c = play_command(id, id + 1, vs, nullptr, pos, gain);
  c.play.tempo = kTempo;
  c.play.deck = deck;
  return c;
}

inline engine::Command voice_command(engine::CommandType t, engine::VoiceId id, float value) {
  engine::Command c{};
  c.type = t;
  c.voice = id;
  c.generation = id + 1;
  c.value = value;
  return c;
}

inline void render(engine::Engine& e, std::vector<float>& out, std::size_t from, std::size_t frames,
                   std::uint32_t block) {
  for (std::size_t f = from; f < from + frames; f += block) {
    e.process(out.data() + f * 2, static_cast<std::uint32_t>(std::min<std::size_t>(block, from + frames - f)));
  }
}

inline double rms(const float* x, std::size_t frames) {
  double s = 0;
  for (std::size_t i = 0; i < frames * 2; ++i) s += static_cast<double>(x[i]) * x[i];
  return std::sqrt(s / static_cast<double>(frames * 2));
}

// What one standalone Stretcher made for 44.1 kHz (at kTempo) and one Resampler to 48 kHz play,
// fed `sum` (source frames), `out_frames` output frames pulled `block` at a time. Empty: no
// stretcher or resampler could be made.
inline std::vector<float> stretched_reference(const std::vector<float>& sum, std::size_t out_frames,
                                              std::uint32_t block) {
  std::string error;
  auto st = engine::Stretcher::create(kSrcRate, error);
  auto rs = engine::Resampler::create(engine::ResamplerQuality::kFast, error);
  if (st == nullptr || rs == nullptr) return {};
  st->reset();
  st->set_tempo(kTempo);
  rs->reset();
  rs->set_ratio(static_cast<double>(kSrcRate) / 48000.0, 0);
  struct Feed {
    const std::vector<float>* sum;
    std::size_t pos = 0;
    engine::Stretcher* st;
    static std::uint32_t src(void* ctx, float*, std::uint32_t max, const float** frames) noexcept {
      auto& f = *static_cast<Feed*>(ctx);
      *frames = f.sum->data() + f.pos * 2;
      f.pos += max;
      return max;
    }
    static std::uint32_t stretched(void* ctx, float* scratch, std::uint32_t max, const float** frames) noexcept {
      auto& f = *static_cast<Feed*>(ctx);
      const std::uint32_t n = f.st->process(scratch, max, &Feed::src, ctx);
      *frames = scratch;
      return n;
    }
  } feed{&sum, 0, st.get()};
  std::vector<float> want(out_frames * 2);
  for (std::size_t f = 0; f < out_frames; f += block) {
    if (rs->process(want.data() + f * 2, block, &Feed::stretched, &feed) != block) return {};
  }
  return want;
}

}  // namespace stemd::test::stretch_bus
