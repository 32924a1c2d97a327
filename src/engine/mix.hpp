// The inner loops of the mixer [audio]. Interleaved stereo float; `frames` counts frames.
// Kept free of branches inside the loops so the compiler vectorises them (-O3).
#pragma once

#include <cstdint>

namespace stemd::engine {

// out += in
inline void mix_add(float* __restrict out, const float* __restrict in, std::uint32_t frames) noexcept {
  const std::uint32_t n = frames * 2;
  for (std::uint32_t i = 0; i < n; ++i) out[i] += in[i];
}

// out += in * g
inline void mix_gain(float* __restrict out, const float* __restrict in, std::uint32_t frames, float g) noexcept {
  const std::uint32_t n = frames * 2;
  for (std::uint32_t i = 0; i < n; ++i) out[i] += in[i] * g;
}

// out += in * gains[frame]
inline void mix_gains(float* __restrict out, const float* __restrict in, const float* __restrict gains,
                      std::uint32_t frames) noexcept {
  for (std::uint32_t f = 0; f < frames; ++f) {
    out[2 * f] += in[2 * f] * gains[f];
    out[2 * f + 1] += in[2 * f + 1] * gains[f];
  }
}

// out += in * (left gains, right gains)[frame]
inline void mix_gains_lr(float* __restrict out, const float* __restrict in, const float* __restrict gl,
                         const float* __restrict gr, std::uint32_t frames) noexcept {
  for (std::uint32_t f = 0; f < frames; ++f) {
    out[2 * f] += in[2 * f] * gl[f];
    out[2 * f + 1] += in[2 * f + 1] * gr[f];
  }
}

// buf *= gains[frame]
inline void apply_gains(float* __restrict buf, const float* __restrict gains, std::uint32_t frames) noexcept {
  for (std::uint32_t f = 0; f < frames; ++f) {
    buf[2 * f] *= gains[f];
    buf[2 * f + 1] *= gains[f];
  }
}

inline void apply_gain(float* buf, std::uint32_t frames, float g) noexcept {
  const std::uint32_t n = frames * 2;
  for (std::uint32_t i = 0; i < n; ++i) buf[i] *= g;
}

}  // namespace stemd::engine
