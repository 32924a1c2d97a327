// The ranges of every argument of both OSC dialects, in one place [control].
//
// Each argument is checked once, by the handler that reads it, against these; nothing later
// clamps or re-checks what a client sent (the engine's own checks are a second line, never hit
// by a checked message).
//
// Whose seconds: fades, ramps, glides, the test tone and start times are OUTPUT seconds (time
// at the device: a 2 s fade takes 2 s to hear, whatever the voice's rate); a section's length
// (/play_stem_section duration) is in the FILE's own seconds (the part of the file it covers).
// A value outside its range — negative, NaN, ±inf, absurdly large — is refused with
// "/fail … <argument> must be lo..hi s, got v" and changes nothing.
#pragma once

#include <cstddef>
#include <cstdio>
#include <string>

namespace stemd::control::limits {

// Fades, ramps and glides (crowdstream /fade duration; native stop/pause/resume fades, volume,
// pan, rate, master and deck ramps, /stemd/fade seconds): 0 (a declick) .. 1 hour.
inline constexpr double kMaxFadeSeconds = 3600.0;
// How far ahead anything can be timed: start_at (/play, /fade, /start_group), /schedule_c_at's
// seconds since t0, and a bundle's timetag: up to a day.
inline constexpr double kMaxAheadSeconds = 86400.0;
// Timed commands for one instant all run in one callback: at most this many may be waiting for
// one period of kTimedPeriodFrames OUTPUT frames (frames [k·64, (k+1)·64) of the engine's
// clock); the next timed message for that period is refused "/fail … busy: … period full",
// and changes nothing. Sized from the measured cost of a due entry (stemd_bench
// schedule/due: ~0.05 µs each with the schedule full, 0.13 µs when 8,192 fall due at once), so
// a full period adds ~12 µs: under 1 % of a 64-frame callback at 48 kHz (1,333 µs), leaving
// room for costlier entries (a play). A callback of N frames meets at most N/64 + 1 periods.
inline constexpr long long kTimedPeriodFrames = 64;
inline constexpr std::size_t kMaxTimedPerPeriod = 256;
// The test tone's length (/test_tone, /stemd/tone): an oscillator, so a long one costs nothing.
inline constexpr double kMinToneSeconds = 0.05;
inline constexpr double kMaxToneSeconds = 3600.0;
// /play_stem_section duration, in the file's seconds (0 = to the end of the file).
inline constexpr double kMaxSectionSeconds = 86400.0;

// Linear gains: a player's volume, a deck's or the master level (1 = unity).
inline constexpr double kMaxVolume = 4.0;
// A player's own playback rate (/play_stem, /play_stem_section, /stemd/play, /stemd/rate) and a
// time-stretch tempo (/stemd/stretch): 0.25..4 (what the engine's resampler and stretcher do).
// The rate a player runs at is its own rate × the tempo ratio (bpm / --bpm), which itself is
// 0.25..4 (kMinTempoRatio..kMaxTempoRatio); that product is held to 0.25..4 where it is made
// (Router::start_player, Router::apply_tempo), never a client's number.
inline constexpr double kMinRate = 0.25;
inline constexpr double kMaxRate = 4.0;
// /set_tempo: bpm > 0, ≤ kMaxBpm, and within 0.25–4 × the base tempo (--bpm).
inline constexpr double kMaxBpm = 999.0;
inline constexpr double kMinTempoRatio = 0.25;
inline constexpr double kMaxTempoRatio = 4.0;
// /set_meter: beats per bar.
inline constexpr int kMaxMeter = 64;
// /stemd/quantize: beats of the grid (0 = off).
inline constexpr double kMaxQuantumBeats = 256.0;
// The finest non-zero grid: below it a quantum is refused (a denormal made the start undefined).
inline constexpr double kMinQuantumBeats = 1.0 / 64;
// /stemd/play_region: passes of the loop (0 = forever).
inline constexpr long long kMaxLoopCount = 1000000;
// /stemd/tone level, dBFS.
inline constexpr double kMinToneDb = -60.0;
// The test tone's frequency: from 20 Hz to below Nyquist (the output rate's half).
inline constexpr double kMinToneHz = 20.0;

// The rate message both dialects answer: "rate must be 0.25..4".
inline constexpr const char* kRateRange = "rate must be 0.25..4";

// True when lo ≤ v ≤ hi (false for NaN); else `error` = "<name> must be lo..hi s, got v".
inline bool seconds_in_range(double v, double lo, double hi, const char* name, std::string& error) {
  if (v >= lo && v <= hi) return true;
  char buf[160];
  std::snprintf(buf, sizeof buf, "%s must be %g..%g s, got %.10g", name, lo, hi, v);  // 3600.001, not 3600
  error = buf;
  return false;
}

// True for a player's own rate in kMinRate..kMaxRate (false for NaN).
inline bool rate_in_range(double r) { return r >= kMinRate && r <= kMaxRate; }

}  // namespace stemd::control::limits
