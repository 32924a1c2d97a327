// The one gain ramp, used for volume, fades, start, stop, seek and underrun declicking.
//
// Sample-accurate, no allocation. Linear in amplitude by default; fades can take a curve:
//   linear       straight line in amplitude
//   exponential  straight line in decibels (down to −60 dB, where it lands on 0 / leaves 0)
//   equal_power  quarter sine: a fade-out and a fade-in of two sources keep constant power
//   s_curve      smoothstep 3x² − 2x³: gentle at both ends
// Every curve starts exactly at the current value and lands exactly on the target on the
// ramp's last frame. Owned and advanced by the audio thread [audio]; other threads only send
// targets through commands.
#pragma once

#include <cmath>
#include <cstdint>

namespace stemd::engine {

enum class Curve : std::uint8_t { kLinear, kExponential, kEqualPower, kSCurve };

inline const char* to_string(Curve c) noexcept {
  switch (c) {
    case Curve::kLinear:
      return "linear";
    case Curve::kExponential:
      return "exponential";
    case Curve::kEqualPower:
      return "equal_power";
    case Curve::kSCurve:
      return "s_curve";
  }
  return "?";
}

class Ramp {
 public:
  static constexpr float kExpFloor = 0.001f;  // −60 dB: where an exponential fade meets silence

  explicit Ramp(float value = 1.0f) noexcept : value_(value), target_(value) {}

  // Move to `target` over `frames` frames (0 = at once), along `curve`.
  void set(float target, std::uint32_t frames, Curve curve = Curve::kLinear) noexcept {
    target_ = target;
    if (frames == 0 || target == value_) {
      value_ = target;
      remaining_ = 0;
      step_ = 0.0f;
      return;
    }
    curve_ = curve;
    start_ = value_;
    total_ = frames;
    remaining_ = frames;
    step_ = (target - value_) / static_cast<float>(frames);
  }
  void jump(float v) noexcept { set(v, 0); }

  bool active() const noexcept { return remaining_ != 0; }
  float value() const noexcept { return value_; }
  float target() const noexcept { return target_; }
  std::uint32_t remaining() const noexcept { return remaining_; }
  Curve curve() const noexcept { return curve_; }

  // The gain for the next frame; lands exactly on the target at the ramp's last frame.
  float next() noexcept {
    if (remaining_ == 0) return value_;
    --remaining_;
    if (remaining_ == 0) {
      value_ = target_;
    } else if (curve_ == Curve::kLinear) {
      value_ = start_ + step_ * static_cast<float>(total_ - remaining_);  // no drift over long fades
    } else {
      value_ = shaped(static_cast<double>(total_ - remaining_) / static_cast<double>(total_));
    }
    return value_;
  }

  // The value `x` (0..1) of the way along the current ramp (tests compare with this).
  float shaped(double x) const noexcept {
    const double a = start_, b = target_;
    switch (curve_) {
      case Curve::kLinear:
        return static_cast<float>(a + (b - a) * x);
      case Curve::kSCurve:
        return static_cast<float>(a + (b - a) * (x * x * (3.0 - 2.0 * x)));
      case Curve::kEqualPower: {
        const double s = b > a ? std::sin(x * M_PI / 2) : 1.0 - std::cos(x * M_PI / 2);
        return static_cast<float>(a + (b - a) * s);
      }
      case Curve::kExponential: {
        const double lo = kExpFloor;
        const double fa = a < lo ? lo : a, fb = b < lo ? lo : b;
        return static_cast<float>(fa * std::pow(fb / fa, x));  // the last frame lands on b itself
      }
    }
    return target_;
  }

 private:
  float value_;
  float target_;
  float start_ = 0.0f;
  float step_ = 0.0f;
  std::uint32_t total_ = 0;
  std::uint32_t remaining_ = 0;
  Curve curve_ = Curve::kLinear;
};

}  // namespace stemd::engine
