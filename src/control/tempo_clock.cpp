// The tempo clock (see tempo_clock.hpp). [control]
#include "tempo_clock.hpp"

#include <algorithm>
#include <cmath>

namespace stemd::control {

TempoClock::TempoClock(double base_bpm, int meter, int sample_rate, double rise_s, double fall_s)
    : base_bpm_(base_bpm),
      sample_rate_(sample_rate),
      rise_s_(rise_s),
      fall_s_(fall_s),
      meter_(meter),
      bpm_(base_bpm),
      fps_(sample_rate) {}

double TempoClock::beats_at(std::int64_t frame) const {
  const double seconds = static_cast<double>(frame - origin_frame_) / fps_;
  return origin_beats_ + std::max(0.0, seconds) * bpm_ / 60.0;
}

void TempoClock::restart(std::int64_t frame) {
  origin_frame_ = frame;
  origin_beats_ = 0;
  last_beat_printed_ = -1;
}

void TempoClock::change(double bpm, std::int64_t now) {
  origin_beats_ = beats_at(now);
  origin_frame_ = now;
  bpm_ = bpm;
  in_use_ = true;
}

std::int64_t TempoClock::quantized(std::int64_t frame) const {
  if (quantum_beats_ <= 0) return frame;
  const double frames_per_beat = 60.0 * fps_ / bpm_;
  const double q = quantum_beats_ * frames_per_beat;
  const double since = static_cast<double>(frame - origin_frame_) + origin_beats_ * frames_per_beat;
  // A grid of less than a frame (a denormal quantum: since / q was inf, and llround(inf) undefined
  // behaviour, LLONG_MIN on x86 — outside pass 29, L4), or a start beyond any frame: as asked.
  constexpr double kFarthest = 0x1p62;  // frames: no start is ever this far
  if (!std::isfinite(q) || q < 1.0 || !std::isfinite(since)) return frame;
  const double n = std::ceil(since / q - 1e-9);
  const double offset = n * q - origin_beats_ * frames_per_beat;
  if (!std::isfinite(offset) || std::fabs(offset) >= kFarthest) return frame;
  const std::int64_t at = origin_frame_ + static_cast<std::int64_t>(std::llround(offset));
  return at < frame - 1 ? frame : at;  // never earlier than asked (rounding aside)
}

void TempoClock::follow_grid(std::int64_t frame, double beats, double bpm, double frames_per_second) {
  if (!(bpm > 0) || !(frames_per_second > 0)) return;
  origin_frame_ = frame;
  origin_beats_ = beats;
  bpm_ = bpm;
  fps_ = frames_per_second;
  in_use_ = true;
}

double TempoClock::follow_movement(double target) {
  if (!movement_active_) movement_bpm_ = bpm_;
  movement_active_ = true;
  movement_target_ = std::clamp(target, base_bpm_ * 0.25, base_bpm_ * 4);
  return movement_target_;
}

bool TempoClock::advance(Clock::time_point now, double& bpm, double& glide_s) {
  const double dt = std::chrono::duration<double>(now - last_tick_).count();
  last_tick_ = now;
  if (!movement_active_ || dt <= 0 || dt >= 1.0) return false;
  // Rising fast, falling slowly (--tempo-rise-s, --tempo-fall-s), whatever the buffer size.
  movement_bpm_ = glide(movement_bpm_, movement_target_, dt, rise_s_, fall_s_);
  const double since = std::chrono::duration<double>(now - last_apply_).count();
  if (std::fabs(movement_bpm_ - bpm_) <= 0.05 || since < 0.05) return false;
  bpm = movement_bpm_;
  glide_s = since;
  last_apply_ = now;
  return true;
}

bool TempoClock::beat_to_print(std::int64_t now_frame, std::int64_t& beat) {
  if (!print_) return false;
  beat = static_cast<std::int64_t>(std::floor(beats_at(now_frame)));
  if (beat == last_beat_printed_) return false;
  last_beat_printed_ = beat;
  return true;
}

double TempoClock::glide(double current, double target, double dt, double rise_s, double fall_s) {
  const double tau = target > current ? rise_s : fall_s;
  if (tau <= 0) return target;
  return current + (target - current) * (1.0 - std::exp(-dt / tau));
}

}  // namespace stemd::control
