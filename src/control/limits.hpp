// The ranges of every time argument of both OSC dialects, in one place [control].
//
// Whose seconds: fades, ramps, glides, the test tone and start times are OUTPUT seconds (time
// at the device: a 2 s fade takes 2 s to hear, whatever the voice's rate); a section's length
// (/play_stem_section duration) is in the FILE's own seconds (the part of the file it covers).
// A value outside its range — negative, NaN, ±inf, absurdly large — is refused with
// "/fail … <argument> must be lo..hi s, got v" and changes nothing.
#pragma once

#include <cstdio>
#include <string>

namespace stemd::control::limits {

// Fades, ramps and glides (crowdstream /fade duration; native stop/pause/resume fades, volume,
// pan, rate, master and deck ramps, /stemd/fade seconds): 0 (a declick) .. 1 hour.
inline constexpr double kMaxFadeSeconds = 3600.0;
// How far ahead anything can be timed: start_at (/play, /fade, /start_group), /schedule_c_at's
// seconds since t0, and a bundle's timetag: up to a day.
inline constexpr double kMaxAheadSeconds = 86400.0;
// The test tone's length (/test_tone, /stemd/tone): an oscillator, so a long one costs nothing.
inline constexpr double kMinToneSeconds = 0.05;
inline constexpr double kMaxToneSeconds = 3600.0;
// /play_stem_section duration, in the file's seconds (0 = to the end of the file).
inline constexpr double kMaxSectionSeconds = 86400.0;

// True when lo ≤ v ≤ hi (false for NaN); else `error` = "<name> must be lo..hi s, got v".
inline bool seconds_in_range(double v, double lo, double hi, const char* name, std::string& error) {
  if (v >= lo && v <= hi) return true;
  char buf[160];
  std::snprintf(buf, sizeof buf, "%s must be %g..%g s, got %g", name, lo, hi, v);
  error = buf;
  return false;
}

}  // namespace stemd::control::limits
