// What a voice's resampler and time-stretcher cost the audio thread, in budget units: the
// resampling budget is --max-resampled-voices units, the stretching budget --max-stretched-voices
// units (Controller charges them before a command is sent: controller_work.cpp). [any] Plain
// functions of numbers.
//
// One unit is a converter at an ordinary ratio: a resampler that reads at most 1.25 source frames
// per frame it writes (libsamplerate "fast" ≈ 105 ns per stereo output frame on the 2-vCPU x86-64
// test box; "medium" and "best" cost more per unit, the same units), a Rubber Band stretcher at
// tempo ≤ 1.25 (R3 "finer" ≈ 600–700 ns). Beyond that band the work grows with the ratio — a
// sinc converter that downsamples by k widens its filter by k and reads k× the input — so a
// converter at ratio k > 1.25 costs k units. Measured (`stemd_bench --benchmark_filter=
// 'resample/.*/step|stretch/.*/sweep'`, ns per output frame ÷ the cost at step ≤ 1, fast):
// step 1.5 → 1.3, 2 → 1.8, 3 → 2.7, 4 → 3.3, 6 → 5.8, 8 → 6.5, 16 → 14 (medium and best alike
// within ±10 %); below 1 (upsampling) the cost stays that of step 1. Rubber Band, per output frame
// ÷ its cost at tempo 1.25 in the same run: R3 tempo 2 → 1.3–1.9, 4 → 1.7–2.5; R2 ("faster")
// tempo 2 → 1.6, 3 → 2.4, 4 → 3.2, 0.5 → 1.06 (k units: both inside; an earlier 4.6 for R2 at 4
// divided by a tempo-1.25 figure from another day's run, docs/benchmarks.md). Inside the band the charge is one unit
// whatever the ratio (a resampler at step 1.25 measures ≈ 1.15 units): 44.1 → 48 kHz at rates up to 1.36 and tempos up
// to ±25 % keep costing one unit each, as a deck's stems at a nearby tempo always have.
//
// A voice's resampler writes max(1, tempo) frames per output frame when the voice also has a
// stretcher of its own (the stretcher reads them: source → resampler → stretcher), so its
// charge is the units of max(1, step) × max(1, tempo). A stretch bus (engine/stretch_bus.hpp: the
// stems of a deck at one tempo, stretched once) is charged as the converters it runs — a stretcher
// at its tempo, and a resampler at step (its rate ÷ the output's) after it — and its members charge
// nothing of their own but their place in the pool of stretchers (controller_buses.cpp).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>

namespace stemd::control::work {

// Budgets are counted in thousandths of a unit (exact sums, no drift).
inline constexpr std::uint32_t kUnit = 1000;
// Ratios up to this cost one unit.
inline constexpr double kBand = 1.25;

// The thousandths of a unit a converter at ratio `k` costs (k > 0; never 0).
inline std::uint32_t units(double k) noexcept {
  if (!(k > kBand)) return kUnit;  // NaN too: the engine clamps what it is given
  return static_cast<std::uint32_t>(std::ceil(std::min(k, 1e5) * kUnit));
}

// A voice's resampler: `step` source frames per output frame (its rate × its file's rate / the
// output's), `tempo` its time-stretch (1 = none).
inline std::uint32_t resample_units(double step, double tempo) noexcept {
  return units(std::max(1.0, step) * std::max(1.0, tempo));
}

// A voice's time-stretcher at `tempo`.
inline std::uint32_t stretch_units(double tempo) noexcept { return units(tempo); }

// Thousandths as units for a message: "3.68".
inline std::string describe(std::uint64_t thousandths) {
  const std::uint64_t whole = thousandths / kUnit, part = (thousandths % kUnit + 5) / 10;  // 2 decimals
  if (part >= 100) return std::to_string(whole + 1);
  if (part == 0) return std::to_string(whole);
  std::string p = std::to_string(part);
  if (p.size() == 1) p = "0" + p;
  if (p.back() == '0') p.pop_back();
  return std::to_string(whole) + "." + p;
}

}  // namespace stemd::control::work
