// The one gain ramp, used for volume, fades, start, stop, seek and underrun declicking.
//
// Linear in amplitude, sample-accurate, no allocation. Owned and advanced by the audio thread
// [audio]; other threads only send targets through commands.
#pragma once

#include <cstdint>

namespace stemd::engine {

class Ramp {
 public:
  explicit Ramp(float value = 1.0f) noexcept : value_(value), target_(value) {}

  // Move to `target` over `frames` frames (0 = at once).
  void set(float target, std::uint32_t frames) noexcept {
    target_ = target;
    if (frames == 0 || target == value_) {
      value_ = target;
      remaining_ = 0;
      step_ = 0.0f;
    } else {
      remaining_ = frames;
      step_ = (target - value_) / static_cast<float>(frames);
    }
  }
  void jump(float v) noexcept { set(v, 0); }

  bool active() const noexcept { return remaining_ != 0; }
  float value() const noexcept { return value_; }
  float target() const noexcept { return target_; }
  std::uint32_t remaining() const noexcept { return remaining_; }

  // The gain for the next frame; lands exactly on the target at the ramp's last frame.
  float next() noexcept {
    if (remaining_ == 0) return value_;
    --remaining_;
    value_ = remaining_ == 0 ? target_ : value_ + step_;
    return value_;
  }

 private:
  float value_;
  float target_;
  float step_ = 0.0f;
  std::uint32_t remaining_ = 0;
};

}  // namespace stemd::engine
