// Resampling cost: engine::Resampler::process() per stereo output frame of one voice, at
// 256 and 1024 frames per block, for each quality level and a few ratios:
//
//   resample/<quality>/ratio:0.919  44.1 kHz file on a 48 kHz device (the common case)
//   resample/<quality>/ratio:2      varispeed ×2 (or a 96 kHz file): the sinc widens, cost ×~1.7
//   resample/<quality>/ratio:4      varispeed ×4, the worst case stemd allows
//   resample/<quality>/glide        44.1 kHz at rate ~1, the ratio re-targeted every block
//                                   (a fader moving): glide steps of 32 frames
//
// Input comes from memory (pointers, no copy) over noise, as an in-memory voice's would.
// Counter ns_per_voice_frame compares directly with the mixer's (bench_mix.cpp, ≈0.3 ns).
//
// Evaluation figures (x86-64, 2 vCPU, same harness, 44.1 → 48 kHz, ns per stereo output frame
// at 256 / 1024 frames; SNR of a −1 dBFS 1 kHz sine; RT = tripwire over process/set_ratio):
//   libsamplerate fastest   ~93 / 91     119 dB   RT-safe
//   libsamplerate medium    ~186 / 186   142 dB   RT-safe
//   libsamplerate best      ~636 / 632   149 dB   RT-safe
//   soxr VR (any recipe)    ~116 / 100   116 dB   reallocs in soxr_process() → rejected
//   soxr fixed HQ / VHQ     ~14 / 20     134 / 150 dB  no varispeed; allocates after soxr_clear
#include "engine/resampler.hpp"

#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

namespace stemd::bench {
namespace {

using engine::Resampler;
using engine::ResamplerQuality;

constexpr std::int64_t kSourceFrames = 48000 * 4;

const std::vector<float>& noise() {
  static const std::vector<float> v = [] {
    std::vector<float> n(kSourceFrames * 2);
    std::uint32_t s = 12345;
    for (auto& x : n) {
      s = s * 1664525u + 1013904223u;
      x = (static_cast<float>(s >> 8) / 16777216.0f - 0.5f) * 0.5f;
    }
    return n;
  }();
  return v;
}

struct Looping {
  const float* frames;
  std::int64_t pos = 0;
  static std::uint32_t pull(void* ctx, float*, std::uint32_t max_frames, const float** out) noexcept {
    auto& s = *static_cast<Looping*>(ctx);
    if (s.pos >= kSourceFrames) s.pos = 0;
    const auto n = static_cast<std::uint32_t>(std::min<std::int64_t>(max_frames, kSourceFrames - s.pos));
    *out = s.frames + s.pos * 2;
    s.pos += n;
    return n;
  }
};

void resample(benchmark::State& state, ResamplerQuality q, double ratio, bool glide) {
  std::string error;
  auto r = Resampler::create(q, error);
  if (!r) {
    state.SkipWithError(error.c_str());
    return;
  }
  const auto frames = static_cast<std::uint32_t>(state.range(0));
  std::vector<float> out(static_cast<std::size_t>(frames) * 2);
  Looping src{noise().data()};
  r->set_ratio(ratio, 0);
  for (int i = 0; i < 64; ++i) r->process(out.data(), frames, &Looping::pull, &src);  // fill the read-ahead
  std::uint64_t block = 0;
  for (auto _ : state) {
    if (glide) r->set_ratio(ratio * (1.0 + 0.01 * static_cast<double>(++block % 8)), frames);
    r->process(out.data(), frames, &Looping::pull, &src);
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  const double voice_frames = static_cast<double>(frames);
  state.counters["ns_per_voice_frame"] = benchmark::Counter(
      voice_frames * 1e-9, benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
  state.SetLabel(engine::to_string(q));
}

std::string fmt_step(double r) {
  std::string t = std::to_string(r);
  t.erase(t.find_last_not_of('0') + 1);
  if (t.back() == '.') t.pop_back();
  return t;
}

void register_all() {
  const ResamplerQuality qs[] = {ResamplerQuality::kFast, ResamplerQuality::kMedium, ResamplerQuality::kBest};
  for (auto q : qs) {
    const std::string base = std::string("resample/") + engine::to_string(q);
    struct R {
      const char* name;
      double ratio;
      bool glide;
    };
    const R rs[] = {{"/ratio:0.919", 44100.0 / 48000.0, false},
                    {"/ratio:2", 2.0, false},
                    {"/ratio:4", 4.0, false},
                    {"/glide", 44100.0 / 48000.0, true}};
    for (const R& x : rs) {
      benchmark::RegisterBenchmark((base + x.name).c_str(),
                                   [q, x](benchmark::State& s) { resample(s, q, x.ratio, x.glide); })
          ->Arg(256)
          ->Arg(1024);
    }
    // The step sweep (the resampling budget's unit: Controller's resample cost): the whole range a
    // voice can reach, rate 0.25..4 × a file's rate / the output's (a 96 kHz file at rate 4: 8).
    for (const double ratio : {0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 16.0}) {
      benchmark::RegisterBenchmark((base + "/step:" + fmt_step(ratio)).c_str(), [q, ratio](benchmark::State& s) {
        resample(s, q, ratio, false);
      })->Arg(1024);
    }
  }
}

const bool registered = (register_all(), true);

}  // namespace
}  // namespace stemd::bench
