// Fade cost: engine::Ramp, the gain every voice, deck and the master moves along, one block of a
// long fade at a time — the mixer's per-block path (Ramp::fill) and the per-frame one (next(),
// which the EQ and the stretch buses use).
//
//   fade/fill/<curve>   Ramp::fill() of a block (what a fading voice costs before its mix)
//   fade/next/<curve>   next() frame by frame
//
// Counter ns_per_frame: one gain. A 10-minute fade, so no block reaches its end. The curves'
// figures against fade/fill/linear are guarded in CI (mix_guard.py): an outside test pass found
// the curves 20–85 × the cost of no fade when every frame called pow or sin.
#include "stemd/ramp.hpp"

#include <benchmark/benchmark.h>

#include <string>
#include <vector>

namespace stemd::bench {
namespace {

using engine::Curve;
using engine::Ramp;

constexpr std::uint32_t kFadeFrames = 48000 * 600;

void bm_fade(benchmark::State& state, Curve curve, bool block) {
  const auto frames = static_cast<std::uint32_t>(state.range(0));
  std::vector<float> out(frames);
  Ramp r(1.0f);
  r.set(0.001f, kFadeFrames, curve);
  for (auto _ : state) {
    if (r.remaining() < frames + 1) r.set(r.value() < 0.5f ? 1.0f : 0.001f, kFadeFrames, curve);
    if (block) {
      r.fill(out.data(), frames);
    } else {
      for (std::uint32_t i = 0; i < frames; ++i) out[i] = r.next();
    }
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  state.counters["ns_per_frame"] = benchmark::Counter(
      static_cast<double>(frames) * 1e-9, benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
}

void register_all() {
  for (const Curve c : {Curve::kLinear, Curve::kExponential, Curve::kEqualPower, Curve::kSCurve}) {
    for (const bool block : {true, false}) {
      const std::string name = std::string("fade/") + (block ? "fill/" : "next/") + engine::to_string(c);
      benchmark::RegisterBenchmark(name.c_str(), bm_fade, c, block)->ArgName("block")->Arg(1024);
    }
  }
}

const int registered = (register_all(), 0);

}  // namespace
}  // namespace stemd::bench
