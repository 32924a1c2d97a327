// The old crowdstream server's --bpm-config FILE: its movement → tempo table, in JSON [main].
//
//   {"movement_bpm": {"movement_max_value": 0.6,
//                     "thresholds": {"very_very_low": 0.02, "very_low": 0.05, "low": 0.10, "medium": 0.10},
//                     "bpm_targets": {"very_very_low": 105, "very_low": 110, "low": 115, "medium": 118,
//                                     "high_max": 130},
//                     "smoothing": {"transition_time_seconds": 30, "audio_loop_rate_hz": 100,
//                                   "smoothing_factor_down": 0.92, "smoothing_factor_up": 0.96}}}
//
// Every key is optional (the old server's defaults, as above). The old server applied its
// smoothing once per audio chunk — 1024 frames at 44.1 kHz with its production launch line —
// so its time constants in seconds are:
//   falling: transition_time_seconds × audio_loop_rate_hz chunks = 3000 × 23.22 ms = 69.66 s
//   rising:  −23.22 ms / ln(smoothing_factor_down) = 0.2785 s
// (smoothing_factor_up was read but never used by the old server; it is ignored here too).
#pragma once

#include <string>

namespace stemd::app {

// The old server's chunk: its default --buffer-size at its fixed 44.1 kHz.
inline constexpr double kOldServerChunkSeconds = 1024.0 / 44100.0;

struct BpmConfig {
  double movement_max = 0.6;
  double thresholds[3] = {0.02, 0.05, 0.10};     // very_very_low, very_low, low
  double tempos[5] = {105, 110, 115, 118, 130};  // very_very_low, very_low, low, medium, high_max
  double fall_seconds = 0;                       // τ of a falling tempo (derived, see above)
  double rise_seconds = 0;                       // τ of a rising tempo
};

// The old server's smoothing as time constants in seconds (see above).
double old_server_fall_seconds(double transition_time_seconds, double audio_loop_rate_hz);
double old_server_rise_seconds(double smoothing_factor_down);

// Reads FILE. False with the reason (file, JSON error, or a value stemd cannot honour — e.g. a
// "medium" threshold different from "low", a band stemd's table does not have).
bool read_bpm_config(const std::string& path, BpmConfig& out, std::string& error);
// The same for FILE's text, already read (at start: through the helper, read_start_file).
bool parse_bpm_config(const std::string& path, const std::string& text, BpmConfig& out, std::string& error);

}  // namespace stemd::app
