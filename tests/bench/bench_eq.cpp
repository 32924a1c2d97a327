// Deck EQ cost: engine::DeckEq::process() on one deck's stereo bus, in place.
//
//   eq/flat/<slope>     all gains at 1: bypassed — the buffer is untouched and the filters idle
//                       (leaving flat warms them up first: DeckEq::warm_frames()); ≈ nothing
//   eq/active/<slope>   gains 0 / −12 dB / 1: the filter bank and the per-band mix
//   eq/ramping/<slope>  every band and the dry/filtered crossfade ramping (worst case)
//
// Counter ns_per_frame: one stereo frame of one deck. Every call filters fresh noise, never its
// own output.
#include "common/bench_files.hpp"

#include "engine/deck_eq.hpp"

#include <benchmark/benchmark.h>

#include <cstring>
#include <string>
#include <vector>

namespace stemd::bench {
namespace {

using engine::DeckEq;
using engine::DeckEqConfig;
using engine::EqSlope;

enum class Mode { kFlat, kActive, kRamping };

void bm_eq(benchmark::State& state, Mode mode, EqSlope slope) {
  const auto frames = static_cast<std::uint32_t>(state.range(0));
  DeckEq eq(DeckEqConfig{48000.0, 250.0, 2500.0, slope});
  if (mode == Mode::kActive) {
    eq.set_band_gain(DeckEq::kLow, 0.0f, 0);
    eq.set_band_gain(DeckEq::kMid, engine::crowdstream_eq_gain(25), 0);
  }
  // Fresh noise for every call: walk through one second of it in place, restoring it (clock
  // paused) only when the walk wraps — PauseTiming on every call would cost more than the EQ.
  constexpr std::size_t kSpan = 48000;
  const std::vector<float> src = noise_frames(kSpan, 42);
  std::vector<float> buf = src;
  std::size_t at = 0, calls = 0;
  for (auto _ : state) {
    if (at + frames > kSpan) {
      state.PauseTiming();
      std::memcpy(buf.data(), src.data(), src.size() * sizeof(float));
      at = 0;
      state.ResumeTiming();
    }
    if (mode == Mode::kRamping) {  // new targets every call: ramps never finish
      const float g = (calls++ & 1) != 0 ? 0.0f : 0.5f;
      eq.set_band_gain(DeckEq::kLow, g, frames * 4);
      eq.set_band_gain(DeckEq::kMid, 0.5f - g, frames * 4);
      eq.set_band_gain(DeckEq::kHigh, g * 2.0f, frames * 4);
    }
    eq.process(buf.data() + 2 * at, frames);
    benchmark::DoNotOptimize(buf.data());
    benchmark::ClobberMemory();
    at += frames;
  }
  state.counters["ns_per_frame"] = benchmark::Counter(
      static_cast<double>(frames) * 1e-9, benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
}

void register_all() {
  struct M {
    const char* name;
    Mode mode;
  };
  for (const M m : {M{"flat", Mode::kFlat}, M{"active", Mode::kActive}, M{"ramping", Mode::kRamping}}) {
    for (const EqSlope slope : {EqSlope::kLr8, EqSlope::kLr4}) {
      const std::string name = std::string("eq/") + m.name + (slope == EqSlope::kLr8 ? "/lr8" : "/lr4");
      benchmark::RegisterBenchmark(name.c_str(), bm_eq, m.mode, slope)->ArgName("block")->Arg(256)->Arg(1024);
    }
  }
}

const int registered = (register_all(), 0);

}  // namespace
}  // namespace stemd::bench
