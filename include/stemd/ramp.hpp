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
//
// Cost: a frame of any curve is a few multiply-adds. The exponential and equal-power curves are
// recurrences (a constant ratio; a rotation by a constant angle) in double precision, set back on
// the exact formula every kAnchorFrames frames, so no frame calls pow/sin/cos: a thousand voices
// fading along a curve cost the callback about what linear fades do (they cost 20–85 × more when
// every frame called pow or sin — an outside test pass's finding).
#pragma once

#include <algorithm>
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
    inv_total_ = 1.0 / static_cast<double>(frames);
    if (curve_ == Curve::kExponential) {
      du_ = std::pow(floored(target_) / floored(start_), 1.0 / static_cast<double>(total_));
    } else if (curve_ == Curve::kEqualPower) {
      const double theta = M_PI / 2 / static_cast<double>(total_);
      du_ = std::sin(theta);
      dv_ = std::cos(theta);
    }
    anchor(0);
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
    const std::uint32_t k = total_ - remaining_;
    if (remaining_ == 0) {
      value_ = target_;
    } else if (curve_ == Curve::kLinear) {
      value_ = start_ + step_ * static_cast<float>(k);  // no drift over long fades
    } else if (curve_ == Curve::kSCurve) {
      value_ = shaped(static_cast<double>(k) * inv_total_);  // a polynomial: cheap
    } else {
      if (k % kAnchorFrames == 0) {
        anchor(k);
      } else if (curve_ == Curve::kExponential) {
        u_ *= du_;
      } else {  // equal power: (sin, cos) of k·θ, rotated by θ
        const double s = u_ * dv_ + v_ * du_, c = v_ * dv_ - u_ * du_;
        u_ = s;
        v_ = c;
      }
      value_ = from_state();
    }
    return value_;
  }

  // The next n gains into out[] — what n calls of next() return (bit for bit for linear and
  // s_curve; the other curves' recurrence runs in four lanes here, so up to double rounding) —
  // in loops the compiler vectorizes: the mixer's per-block path.
  void fill(float* out, std::uint32_t n) noexcept {
    if (n == 0) return;
    std::uint32_t j = 0;
    if (remaining_ > 1) {
      const std::uint32_t m = std::min(n, remaining_ - 1);  // frames before the landing one
      const std::uint32_t k0 = total_ - remaining_;
      if (curve_ == Curve::kLinear) {
        for (std::uint32_t i = 0; i < m; ++i) out[i] = start_ + step_ * static_cast<float>(k0 + 1 + i);
      } else if (curve_ == Curve::kSCurve) {
        for (std::uint32_t i = 0; i < m; ++i) out[i] = shaped(static_cast<double>(k0 + 1 + i) * inv_total_);
      } else {
        fill_curve(out, k0, m);
      }
      remaining_ -= m;
      value_ = out[m - 1];
      j = m;
    }
    if (j < n && remaining_ == 1) {
      remaining_ = 0;
      value_ = target_;
      out[j++] = target_;
    }
    for (; j < n; ++j) out[j] = value_;
  }
  // out[i] *= the next n gains.
  void apply(float* out, std::uint32_t n) noexcept {
    if (remaining_ == 0) {
      if (value_ != 1.0f)
        for (std::uint32_t i = 0; i < n; ++i) out[i] *= value_;
      return;
    }
    float g[kApplyChunk];
    for (std::uint32_t i = 0; i < n; i += kApplyChunk) {
      const std::uint32_t c = std::min(kApplyChunk, n - i);
      fill(g, c);
      for (std::uint32_t k = 0; k < c; ++k) out[i + k] *= g[k];
    }
  }

  // The value `x` (0..1) of the way along the current ramp: the formula each curve follows.
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
      case Curve::kExponential:
        return static_cast<float>(floored(a) * std::pow(floored(b) / floored(a), x));  // the last frame lands on b
    }
    return target_;
  }

  static constexpr std::uint32_t kAnchorFrames = 256;
  static constexpr std::uint32_t kApplyChunk = 256;

 private:
  static double floored(double v) noexcept { return v < kExpFloor ? kExpFloor : v; }
  // The recurrence's state at frame k of the ramp, from the formula itself.
  void anchor(std::uint32_t k) noexcept {
    const double x = static_cast<double>(k) / static_cast<double>(total_);
    if (curve_ == Curve::kExponential) {
      u_ = floored(start_) * std::pow(floored(target_) / floored(start_), x);
    } else if (curve_ == Curve::kEqualPower) {
      u_ = std::sin(x * M_PI / 2);
      v_ = std::cos(x * M_PI / 2);
    }
  }
  // Frames k0+1 … k0+m of an exponential or equal-power ramp (never its last) into out[]: the
  // recurrence in four interleaved lanes (each steps by four frames), set back on the formula at
  // every multiple of kAnchorFrames — the same values next() gives, up to double rounding.
  void fill_curve(float* out, std::uint32_t k0, std::uint32_t m) noexcept {
    const bool expo = curve_ == Curve::kExponential;
    const double a = start_, d = static_cast<double>(target_) - a;
    const bool up = target_ > start_;
    auto value = [&](double sv, double cv) { return static_cast<float>(expo ? sv : a + d * (up ? sv : 1.0 - cv)); };
    std::uint32_t j = 0;
    while (j < m) {
      const std::uint32_t k = k0 + j;  // u_, v_ hold frame k
      const std::uint32_t seg = std::min(m - j, kAnchorFrames - k % kAnchorFrames);
      double s[4] = {}, c[4] = {}, s4 = 0, c4 = 0;
      if (expo) {  // u·r^(1…4), then each lane times r^4
        const double r2 = du_ * du_;
        s[0] = u_ * du_;
        s[1] = u_ * r2;
        s[2] = s[1] * du_;
        s[3] = s[1] * r2;
        s4 = r2 * r2;
      } else {  // (sin, cos) of (k+1…k+4)·θ from those of k·θ and of θ…4θ; each lane rotated by 4θ
        const double s1 = du_, c1 = dv_, s2 = 2 * s1 * c1, c2 = c1 * c1 - s1 * s1;
        const double sn[4] = {s1, s2, s2 * c1 + c2 * s1, 2 * s2 * c2};
        const double cn[4] = {c1, c2, c2 * c1 - s2 * s1, c2 * c2 - s2 * s2};
        for (int l = 0; l < 4; ++l) {
          s[l] = u_ * cn[l] + v_ * sn[l];
          c[l] = v_ * cn[l] - u_ * sn[l];
        }
        s4 = sn[3];
        c4 = cn[3];
      }
      float* o = out + j;
      std::uint32_t i = 0;
      for (; i + 4 < seg; i += 4) {  // strictly: 1…4 frames are left for the tail below
        for (int l = 0; l < 4; ++l) {
          o[i + l] = value(s[l], c[l]);
          const double ns = expo ? s[l] * s4 : s[l] * c4 + c[l] * s4;
          c[l] = expo ? 0.0 : c[l] * c4 - s[l] * s4;
          s[l] = ns;
        }
      }
      const std::uint32_t r = seg - i;  // 1…4
      for (std::uint32_t l = 0; l < r; ++l) o[i + l] = value(s[l], c[l]);
      u_ = s[r - 1];  // the state at frame k+seg
      v_ = c[r - 1];
      if ((k + seg) % kAnchorFrames == 0) {
        anchor(k + seg);
        o[seg - 1] = from_state();
      }
      j += seg;
    }
  }
  float from_state() const noexcept {
    if (curve_ == Curve::kExponential) return static_cast<float>(u_);
    const double a = start_, b = target_;
    return static_cast<float>(a + (b - a) * (b > a ? u_ : 1.0 - v_));
  }

  double inv_total_ = 0.0;      // 1 / total_
  double u_ = 0.0, v_ = 0.0;    // exponential: the value; equal power: sin and cos of k·θ
  double du_ = 0.0, dv_ = 0.0;  // exponential: the ratio per frame; equal power: sin θ, cos θ
  float value_;
  float target_;
  float start_ = 0.0f;
  float step_ = 0.0f;
  std::uint32_t total_ = 0;
  std::uint32_t remaining_ = 0;
  Curve curve_ = Curve::kLinear;
};

}  // namespace stemd::engine
