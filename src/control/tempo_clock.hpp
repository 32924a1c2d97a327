// The tempo clock: bpm, meter, the beat count, /stemd/quantize's grid and the movement-driven
// tempo glide [control]. Pure bookkeeping: it sends nothing; the router applies a tempo change
// to the players (Router::apply_tempo). Frames are engine (output) frames; glide times and
// time constants are output (wall-clock) seconds. Thread: the control thread only.
#pragma once

#include <chrono>
#include <cstdint>

namespace stemd::control {

class TempoClock {
 public:
  using Clock = std::chrono::steady_clock;

  // base_bpm: the tempo at which players run at their own rate (--bpm); rise_s / fall_s: the
  // movement glide's time constants (--tempo-rise-s, --tempo-fall-s).
  TempoClock(double base_bpm, int meter, int sample_rate, double rise_s, double fall_s);

  double bpm() const { return bpm_; }
  // Whether anyone uses the tempo: one was given (--bpm, mark_in_use), set (change), followed (a
  // Link session, the movement), or the beat grid is (quantised starts, /print_clock, /set_meter).
  // Until then the clock ticks at --bpm's default and nobody hears it: status need not show it.
  bool in_use() const { return in_use_ || quantum_beats_ > 0 || movement_active_ || print_; }
  void mark_in_use() { in_use_ = true; }
  double base_bpm() const { return base_bpm_; }
  int meter() const { return meter_; }
  // How much faster than their own rate players run: bpm / base bpm.
  double ratio() const { return bpm_ / base_bpm_; }
  void set_meter(int beats) {
    meter_ = beats;
    in_use_ = true;
  }

  // The beat count at engine frame `frame` (from the origin: /reset's t0, or 0).
  double beats_at(std::int64_t frame) const;
  // The beat count restarts from 0 at `frame` (/reset).
  void restart(std::int64_t frame);
  // The beat count is `beats` at `frame` and goes on from there (a previous image's, carried
  // across a device's hand-over).
  void carry(std::int64_t frame, double beats) {
    origin_frame_ = frame;
    origin_beats_ = beats;
  }
  // A new tempo from frame `now` on: the beat count carries on (the old server restarted it).
  void change(double bpm, std::int64_t now);

  // Follow an outside beat grid (the Link session's): engine frame `frame` is on beat `beats`
  // at `bpm`, the device running at `frames_per_second` (its measured rate). beats_at() and
  // quantized() then use it, until the next call or change().
  void follow_grid(std::int64_t frame, double beats, double bpm, double frames_per_second);

  // /stemd/quantize: starts round up to the next multiple of this many beats (0 = off).
  double quantum_beats() const { return quantum_beats_; }
  void set_quantum(double beats) { quantum_beats_ = beats; }
  // `frame` rounded up to the next quantum of the beat clock (unchanged when quantize is off).
  std::int64_t quantized(std::int64_t frame) const;

  // The movement detector drives the tempo toward `target` bpm (clamped to 0.25–4 × base);
  // returns the clamped target. An explicit tempo (/set_tempo) stops it.
  double follow_movement(double target);
  void stop_movement() { movement_active_ = false; }
  // Whether advance() or beat_to_print() has work that wants frequent passes.
  bool busy() const { return movement_active_ || print_; }
  // Called every server pass: advances the movement glide. True when the tempo should change
  // now, to `bpm`, gliding over `glide_s` output seconds (the caller applies it: change()).
  bool advance(Clock::time_point now, double& bpm, double& glide_s);

  // /print_clock: once per beat, the beat to print (false when off or still the same beat).
  void set_print(bool on) {
    print_ = on;
    last_beat_printed_ = -1;
  }
  bool beat_to_print(std::int64_t now_frame, std::int64_t& beat);

  // The movement glide over `dt` seconds: toward `target` with time constant `rise_s` when
  // rising, `fall_s` when falling (exact exponential: independent of the step size).
  static double glide(double current, double target, double dt, double rise_s, double fall_s);

 private:
  double base_bpm_;
  int sample_rate_;
  double rise_s_, fall_s_;
  int meter_;
  double bpm_;
  double fps_;  // frames per second of the beat clock: the sample rate, or the device's measured rate
  std::int64_t origin_frame_ = 0;  // beats_at() = origin beats + tempo × time since origin frame
  double origin_beats_ = 0;
  double quantum_beats_ = 0;
  bool movement_active_ = false;
  double movement_target_ = 0, movement_bpm_ = 0;
  Clock::time_point last_tick_ = Clock::now();
  Clock::time_point last_apply_{};
  bool print_ = false;
  std::int64_t last_beat_printed_ = -1;
  bool in_use_ = false;
};

}  // namespace stemd::control
