// The inner loops of the mixer [audio]. Interleaved stereo; `frames` counts frames. The bus is
// float; a voice's frames are float, or int16 straight from a 16-bit file's ring, converted here
// as they are mixed (x / 32768: the float libsndfile's own read gives, so the sum is the same bit
// for bit). Kept free of branches inside the loops so the compiler vectorises them (-O3).
#pragma once

#include <cstdint>

namespace stemd::engine {

inline float sample(float x) noexcept { return x; }
inline float sample(std::int16_t x) noexcept { return static_cast<float>(x) * (1.0f / 32768.0f); }

// One voice's frames: float or int16, exactly one of the two set.
struct Frames {
  const float* f = nullptr;
  const std::int16_t* s = nullptr;
  Frames() = default;
  Frames(const float* p) noexcept : f(p) {}         // NOLINT: a float pointer is a Frames
  Frames(const std::int16_t* p) noexcept : s(p) {}  // NOLINT
};

// out = in as float (a resampler's or stretcher's input: they keep float frames across calls)
template <typename T>
inline void to_float(float* __restrict out, const T* __restrict in, std::uint32_t frames) noexcept {
  const std::uint32_t n = frames * 2;
  for (std::uint32_t i = 0; i < n; ++i) out[i] = sample(in[i]);
}

// out += in
template <typename T>
inline void mix_add(float* __restrict out, const T* __restrict in, std::uint32_t frames) noexcept {
  const std::uint32_t n = frames * 2;
  for (std::uint32_t i = 0; i < n; ++i) out[i] += sample(in[i]);
}

// out += in * g
template <typename T>
inline void mix_gain(float* __restrict out, const T* __restrict in, std::uint32_t frames, float g) noexcept {
  const std::uint32_t n = frames * 2;
  for (std::uint32_t i = 0; i < n; ++i) out[i] += sample(in[i]) * g;
}

// The two loops a steady voice runs (unity, or a constant gain), also built for AVX2 where the
// compiler targets x86-64: the baseline build vectorises them 4 samples wide with SSE2 (int16
// widened by unpack and compare); AVX2 widens 8 at once (vpmovsxwd). The same operations on
// each sample in the same order — AVX2 without FMA, so nothing is contracted — hence the same
// bits (MixKernels.Avx2BuildsGiveTheBaselineBitsForEverySample). Chosen once per Engine by
// cpu_has_avx2(); `simd` false or another architecture: the baseline.
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define STEMD_MIX_AVX2 1
template <typename T>
[[gnu::target("avx2")]] [[gnu::noinline]] void mix_add_avx2(float* __restrict out, const T* __restrict in,
                                                            std::uint32_t frames) noexcept {
  const std::uint32_t n = frames * 2;
  for (std::uint32_t i = 0; i < n; ++i) out[i] += sample(in[i]);
}
template <typename T>
[[gnu::target("avx2")]] [[gnu::noinline]] void mix_gain_avx2(float* __restrict out, const T* __restrict in,
                                                             std::uint32_t frames, float g) noexcept {
  const std::uint32_t n = frames * 2;
  for (std::uint32_t i = 0; i < n; ++i) out[i] += sample(in[i]) * g;
}
inline bool cpu_has_avx2() noexcept { return __builtin_cpu_supports("avx2") != 0; }
#else
inline bool cpu_has_avx2() noexcept { return false; }
#endif

template <typename T>
inline void mix_add(bool simd, float* __restrict out, const T* __restrict in, std::uint32_t frames) noexcept {
#ifdef STEMD_MIX_AVX2
  if (simd) return mix_add_avx2(out, in, frames);
#else
  (void)simd;
#endif
  mix_add(out, in, frames);
}

template <typename T>
inline void mix_gain(bool simd, float* __restrict out, const T* __restrict in, std::uint32_t frames, float g) noexcept {
#ifdef STEMD_MIX_AVX2
  if (simd) return mix_gain_avx2(out, in, frames, g);
#else
  (void)simd;
#endif
  mix_gain(out, in, frames, g);
}

// out += in * gains[frame]
template <typename T>
inline void mix_gains(float* __restrict out, const T* __restrict in, const float* __restrict gains,
                      std::uint32_t frames) noexcept {
  for (std::uint32_t f = 0; f < frames; ++f) {
    out[2 * f] += sample(in[2 * f]) * gains[f];
    out[2 * f + 1] += sample(in[2 * f + 1]) * gains[f];
  }
}

// out += in * (left gains, right gains)[frame]
template <typename T>
inline void mix_gains_lr(float* __restrict out, const T* __restrict in, const float* __restrict gl,
                         const float* __restrict gr, std::uint32_t frames) noexcept {
  for (std::uint32_t f = 0; f < frames; ++f) {
    out[2 * f] += sample(in[2 * f]) * gl[f];
    out[2 * f + 1] += sample(in[2 * f + 1]) * gr[f];
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
