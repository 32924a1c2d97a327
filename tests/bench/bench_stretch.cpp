// Time-stretch cost: engine::Stretcher::process() per stereo output frame of one voice, at 256
// and 1024 frames per block, tempo 1.0 / 1.25 / 0.8, both engines:
//
//   stretch/<engine>/tempo:<t>   a steady tempo
//   stretch/<engine>/fader       tempo ~1.1, re-targeted every block (a tempo fader moving)
//
// Input comes from memory (pointers, no copy) over noise, as an in-memory voice's would.
// Counter ns_per_voice_frame compares directly with the mixer's (bench_mix.cpp, ≈0.3 ns) and
// the resampler's (bench_resample.cpp, ≈90 ns for libsamplerate fastest). Rubber Band works in
// hops, so a block's cost is lumpy (a block that completes a hop pays for an FFT frame); the
// mean is what the budget needs, the lumps are why a voice's worst block costs more.
//
// Evaluation figures (x86-64 Xeon, 2 vCPU, load ~4 from concurrent builds; ns per stereo output
// frame, median of 3, 256 / 1024 frames per block):
//                        tempo 1.0    tempo 1.25   tempo 0.8    fader
//   finer (R3 short)     586 / 595    696 / 685    612 / 604    634 / 646   ← default
//   faster (R2 mixed)    222 / 219    644 / 632    644 / 654    542 / 550
//   (R3 standard window ~4× R3 short: not offered.)
//   For scale: mixer ≈0.3 ns, libsamplerate fastest ≈94 ns — a stretched voice ≈ 7 resamplers.
// Per-block lumps (R3, 256 frames, tempo 1.25, thread CPU time): mean 177 µs, p99 353 µs, max
// 430 µs; the first block after reset() (priming) ≈ 1.1 ms.
#include "engine/stretcher.hpp"

#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

namespace stemd::bench {
namespace {

using engine::Stretcher;
using engine::StretcherEngine;

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

void stretch(benchmark::State& state, StretcherEngine e, double tempo, bool fader) {
  std::string error;
  auto st = Stretcher::create(48000, error, e);
  if (!st) {
    state.SkipWithError(error.c_str());
    return;
  }
  const auto frames = static_cast<std::uint32_t>(state.range(0));
  std::vector<float> out(static_cast<std::size_t>(frames) * 2);
  Looping src{noise().data()};
  st->set_tempo(tempo);
  for (int i = 0; i < 64; ++i) st->process(out.data(), frames, &Looping::pull, &src);  // past the priming
  std::uint64_t block = 0;
  for (auto _ : state) {
    if (fader) st->set_tempo(tempo * (1.0 + 0.01 * static_cast<double>(++block % 8)));
    st->process(out.data(), frames, &Looping::pull, &src);
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  state.counters["ns_per_voice_frame"] = benchmark::Counter(
      static_cast<double>(frames) * 1e-9, benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
  state.SetLabel(engine::to_string(e));
}

void register_all() {
  for (auto e : {StretcherEngine::kFaster, StretcherEngine::kFiner}) {
    const std::string base = std::string("stretch/") + engine::to_string(e);
    struct T {
      const char* name;
      double tempo;
      bool fader;
    };
    const T ts[] = {
        {"/tempo:1.0", 1.0, false}, {"/tempo:1.25", 1.25, false}, {"/tempo:0.8", 0.8, false}, {"/fader", 1.1, true}};
    for (const T& x : ts) {
      benchmark::RegisterBenchmark((base + x.name).c_str(),
                                   [e, x](benchmark::State& s) { stretch(s, e, x.tempo, x.fader); })
          ->Arg(256)
          ->Arg(1024);
    }
    // The tempo sweep (the stretching budget's unit): the whole range a voice can reach.
    for (const double tempo : {0.25, 0.5, 2.0, 3.0, 4.0}) {
      std::string t = std::to_string(tempo);
      t.erase(t.find_last_not_of('0') + 1);
      if (t.back() == '.') t.pop_back();
      benchmark::RegisterBenchmark((base + "/sweep:" + t).c_str(), [e, tempo](benchmark::State& s) {
        stretch(s, e, tempo, false);
      })->Arg(1024);
    }
  }
}

const bool registered = (register_all(), true);

}  // namespace
}  // namespace stemd::bench
