// --bpm-config (see bpm_config.hpp). The only file that includes nlohmann/json.
#include "bpm_config.hpp"

#include "safe_file.hpp"

#include <nlohmann/json.hpp>

#include <cmath>
#include <cstring>
#include <fstream>

namespace stemd::app {

double old_server_fall_seconds(double transition_time_seconds, double audio_loop_rate_hz) {
  // factor = exp(−1 / (T × R)) per chunk → τ = T × R chunks.
  return transition_time_seconds * audio_loop_rate_hz * kOldServerChunkSeconds;
}

double old_server_rise_seconds(double smoothing_factor_down) {
  return -kOldServerChunkSeconds / std::log(smoothing_factor_down);
}

namespace {

// A number under `key` of `obj`, if there: false with the reason when it is not a finite number.
bool number(const nlohmann::json& obj, const char* key, const std::string& where, double& out, std::string& error) {
  if (!obj.is_object() || !obj.contains(key) || obj[key].is_null()) return true;
  const auto& v = obj[key];
  if (!v.is_number() || !std::isfinite(v.get<double>())) {
    error = where + key + " must be a number, got " + v.dump();
    return false;
  }
  out = v.get<double>();
  return true;
}

}  // namespace

bool read_bpm_config(const std::string& path, BpmConfig& out, std::string& error) {
  // Read without blocking (a FIFO is refused) and bounded: the old server's file is < 1 KB.
  std::string text, why;
  if (read_regular_file(path, 1 << 20, text, why) != ReadResult::kOk) {
    error = "--bpm-config " + why;
    return false;
  }
  return parse_bpm_config(path, text, out, error);
}

bool parse_bpm_config(const std::string& path, const std::string& text, BpmConfig& out, std::string& error) {
  nlohmann::json doc;
  try {
    doc = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    error = "--bpm-config " + path + ": not valid JSON: " + e.what();
    return false;
  }
  const std::string at = "--bpm-config " + path + ": movement_bpm.";
  if (!doc.is_object() || !doc.contains("movement_bpm") || !doc["movement_bpm"].is_object()) {
    error = "--bpm-config " + path + ": no \"movement_bpm\" object (the old server then used its defaults silently)";
    return false;
  }
  const auto& mb = doc["movement_bpm"];
  BpmConfig c;
  double medium = c.thresholds[2];
  double transition = 30.0, loop_rate = 100.0, factor_down = 0.92;
  const nlohmann::json none = nlohmann::json::object();
  const auto& th = mb.contains("thresholds") ? mb["thresholds"] : none;
  const auto& bt = mb.contains("bpm_targets") ? mb["bpm_targets"] : none;
  const auto& sm = mb.contains("smoothing") ? mb["smoothing"] : none;
  const char* names[] = {"very_very_low", "very_low", "low"};
  if (!number(mb, "movement_max_value", at, c.movement_max, error)) return false;
  for (int i = 0; i < 3; ++i) {
    if (!number(th, names[i], at + "thresholds.", c.thresholds[i], error)) return false;
  }
  if (!number(th, "medium", at + "thresholds.", medium, error)) return false;
  const char* targets[] = {"very_very_low", "very_low", "low", "medium", "high_max"};
  for (int i = 0; i < 5; ++i) {
    if (!number(bt, targets[i], at + "bpm_targets.", c.tempos[i], error)) return false;
  }
  if (!number(sm, "transition_time_seconds", at + "smoothing.", transition, error) ||
      !number(sm, "audio_loop_rate_hz", at + "smoothing.", loop_rate, error) ||
      !number(sm, "smoothing_factor_down", at + "smoothing.", factor_down, error)) {
    return false;
  }
  // What stemd can honour.
  if (c.movement_max <= 0) return error = at + "movement_max_value must be > 0", false;
  if (!(0 <= c.thresholds[0] && c.thresholds[0] <= c.thresholds[1] && c.thresholds[1] <= c.thresholds[2] &&
        c.thresholds[2] < 0.6)) {
    return error = at + "thresholds must rise: 0 ≤ very_very_low ≤ very_low ≤ low < 0.6", false;
  }
  if (medium != c.thresholds[2]) {
    return error = at +
                   "thresholds.medium differs from thresholds.low: stemd's table has no constant band between "
                   "them (set medium = low, as the shipped file does)",
           false;
  }
  for (double t : c.tempos) {
    if (t <= 0 || t > 999) return error = at + "bpm_targets must be 0 < bpm ≤ 999", false;
  }
  if (transition <= 0 || loop_rate <= 0) {
    return error = at + "smoothing.transition_time_seconds and audio_loop_rate_hz must be > 0", false;
  }
  if (!(factor_down > 0 && factor_down < 1))
    return error = at + "smoothing.smoothing_factor_down must be 0 < f < 1", false;
  c.fall_seconds = old_server_fall_seconds(transition, loop_rate);
  c.rise_seconds = old_server_rise_seconds(factor_down);
  out = c;
  return true;
}

}  // namespace stemd::app
