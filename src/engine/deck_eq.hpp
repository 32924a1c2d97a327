// DeckEq: the 3-band DJ isolator on one deck's stereo bus, plus crowdstream's percent → gain maps.
//
// Threads:
//   [control] constructor, assignment (allocates nothing: the whole object is plain data, so the
//             engine can hold one per deck by value and build it in its own constructor).
//   [audio]   set_band_gain(), process(), skip(), reset() and the getters. noexcept, no
//             allocation, no locks, no syscalls.
//
// The split is a phase-compensated Linkwitz-Riley tree (LR8 by default, LR4 optional):
//   low  = AP(f_hi)( LP(f_lo) x )        AP = the allpass an LR pair at f_hi sums to
//   mid  = LP(f_hi)( HP(f_lo) x )
//   high = HP(f_hi)( HP(f_lo) x )
// so low + mid + high = AP(f_lo)·AP(f_hi)·x: flat magnitude at every frequency, and a band at gain
// 0 is removed with the full slope of the crossovers (LR8: 48 dB/octave). Each LR filter is a
// Butterworth filter squared, built from trapezoidal state-variable sections (Simper's SVF) in
// double precision: they behave at 250 Hz / 48 kHz where float biquads get noisy, and their
// response is exactly the bilinear transform of the analog prototype (what the unit tests check).
// Left and right run side by side in one two-lane vector.
//
// The tree only sums to an *allpass*, not to the input, so "flat" is a true bypass: when every
// gain sits exactly at 1 the buffer is left untouched (bit-identical) and the filters do not run
// (a flat deck costs nothing: at 1024 streaming voices the bank running on a flat deck was 4 %
// of the daemon's CPU). Leaving bypass first warms the filters up on the input for warm_frames()
// — 16 time constants of the slowest pole (the low crossover's high-Q section; 27 ms at 250 Hz,
// LR8), after which the state differs from a bank that ran all along by less than −110 dB — with
// the output still dry and the gains' ramps not yet started (so the whole change is heard that
// much later, as it was sent); then it crossfades dry → filtered (at least kMinFadeMs, or the
// gain ramp's length when longer). Returning waits until the gains have sat at 1 for kFlatHoldMs
// (so a burst of cut/flat messages does not toggle the bypass on each one) and then crossfades
// back over kBypassFadeMs. Both signals are continuous, so the crossfade adds no step to the
// output (it passes through a brief partial dip at the crossover frequencies, where the allpass
// is out of phase with the dry signal — never a click).
//
// Measured (deck_eq_test): kill depth LR8 −112 dB @ 50 Hz, −64 dB @ 1 kHz, −74 dB @ 790 Hz,
// −87 dB @ 8 kHz; LR4 −56 / −31 / −34 / −44 dB. Cost (bench_eq, -O3): LR8 ≈ 29 ns per stereo
// frame active; LR4 ≈ 12; bypassed, nothing (the warm-up costs what active does, once).
//
// Header-only on purpose: the engine includes it, and engine.cpp is built -O3 in every build type.
#pragma once

#include "stemd/ramp.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numbers>

namespace stemd::engine {

inline constexpr float kMaxBandGain = 4.0f;  // +12 dB: the most a band may boost (/deck_filter)

// /deck_eq, /deck_eq_all: cut-only DJ EQ percent. p ≤ 0 → 0 (kill), p ≥ 50 → 1 (flat), between
// 10^(((p/50) − 1)·24/20) (p = 25 → −12 dB). Non-finite → 0, as /deck_filter treats it.
inline float crowdstream_eq_gain(double percent) noexcept {
  if (!std::isfinite(percent) || percent <= 0.0) return 0.0f;
  if (percent >= 50.0) return 1.0f;
  return static_cast<float>(std::pow(10.0, (percent / 50.0 - 1.0) * 24.0 / 20.0));
}

// /deck_filter: linear gain; negative or non-finite → 0, capped at kMaxBandGain.
inline float crowdstream_filter_gain(double g) noexcept {
  if (!std::isfinite(g) || g <= 0.0) return 0.0f;
  return g >= static_cast<double>(kMaxBandGain) ? kMaxBandGain : static_cast<float>(g);
}

enum class EqSlope : std::uint8_t {
  kLr4 = 1,  // 24 dB/octave; value = Butterworth sections per half of the LR filter
  kLr8 = 2,  // 48 dB/octave
};

struct DeckEqConfig {
  double sample_rate = 48000.0;
  double low_hz = 250.0;    // low | mid crossover
  double high_hz = 2500.0;  // mid | high crossover
  EqSlope slope = EqSlope::kLr8;
};

class DeckEq {
 public:
  enum Band : int { kLow = 0, kMid = 1, kHigh = 2 };
  static constexpr int kBands = 3;
  static constexpr double kMinFadeMs = 10.0;     // shortest dry → filtered crossfade
  static constexpr double kFlatHoldMs = 250.0;   // gains at 1 this long before bypassing
  static constexpr double kBypassFadeMs = 30.0;  // filtered → dry crossfade

  DeckEq() noexcept : DeckEq(DeckEqConfig{}) {}
  explicit DeckEq(double sample_rate) noexcept : DeckEq(DeckEqConfig{sample_rate}) {}
  explicit DeckEq(const DeckEqConfig& cfg) noexcept : cfg_(cfg) {
    if (!(cfg_.sample_rate > 0.0) || !std::isfinite(cfg_.sample_rate)) cfg_.sample_rate = 48000.0;
    const double nyq = 0.45 * cfg_.sample_rate;
    cfg_.low_hz = std::clamp(std::isfinite(cfg_.low_hz) ? cfg_.low_hz : 250.0, 10.0, nyq);
    cfg_.high_hz = std::clamp(std::isfinite(cfg_.high_hz) ? cfg_.high_hz : 2500.0, cfg_.low_hz, nyq);
    sections_ = cfg_.slope == EqSlope::kLr4 ? 1 : 2;
    for (int i = 0; i < sections_; ++i) {
      const double k = butterworth_k(sections_, i);
      lo_[i] = Svf::make(cfg_.low_hz, k, cfg_.sample_rate);
      hi_[i] = Svf::make(cfg_.high_hz, k, cfg_.sample_rate);
    }
    const auto ms = [&](double v) { return static_cast<std::uint32_t>(std::lround(v * cfg_.sample_rate / 1000.0)); };
    min_fade_frames_ = std::max<std::uint32_t>(1, ms(kMinFadeMs));
    hold_frames_ = ms(kFlatHoldMs);
    bypass_fade_frames_ = std::max<std::uint32_t>(1, ms(kBypassFadeMs));
    // The slowest pole: the low crossover's highest-Q section (the lowest k). A 2-pole section
    // decays with τ = 2Q/ω₀ (ω₀ pre-warped as the bilinear transform does); the LR pairs repeat
    // their poles, so the error goes as (t/τ)·e^(−t/τ): 16 τ leave ≈ 2e-6.
    double k_min = 2.0;
    for (int i = 0; i < sections_; ++i) k_min = std::min(k_min, lo_[i].k);
    const double w0 = 2.0 * cfg_.sample_rate * std::tan(std::numbers::pi * cfg_.low_hz / cfg_.sample_rate);
    warm_frames_ = static_cast<std::uint32_t>(std::ceil(16.0 * (2.0 / k_min) / w0 * cfg_.sample_rate));
    reset();
  }

  const DeckEqConfig& config() const noexcept { return cfg_; }

  // [audio] Ramp `band` (kLow/kMid/kHigh; others ignored) to `linear_gain` over `ramp_frames`
  // (0 = at once). Negative or non-finite → 0; above kMaxBandGain → kMaxBandGain.
  void set_band_gain(int band, float linear_gain, std::uint32_t ramp_frames) noexcept {
    if (band < 0 || band >= kBands) return;
    float g = linear_gain;
    if (!std::isfinite(g) || g <= 0.0f) g = 0.0f;
    if (g > kMaxBandGain) g = kMaxBandGain;
    if (!warming_ && bypassed() && g != 1.0f) {  // the filters are idle: warm them up first
      warming_ = true;
      warmed_ = 0;
      clear_state();
      for (int b = 0; b < kBands; ++b) pending_[b] = Pending{};
    }
    if (warming_) {  // the change waits for the warm-up, then starts as it was sent
      pending_[band] = Pending{g, ramp_frames};
      bool flat = true;
      for (const Pending& p : pending_) flat = flat && p.gain == 1.0f;
      if (flat) warming_ = false;  // flat again before it was heard: stay bypassed
      return;
    }
    gain_[band].set(g, ramp_frames);
    if (!gains_flat()) {
      flat_frames_ = 0;
      if (wet_.target() != 1.0f) wet_.set(1.0f, std::max(ramp_frames, min_fade_frames_));
    }
  }

  // [audio] Filter `frames` interleaved stereo frames in place.
  void process(float* interleaved_stereo, std::uint32_t frames) noexcept {
    if (frames == 0 || bypassed()) return;  // flat: untouched, and the filters idle
    if (warming_) {                         // the filters run on the input, the output stays dry (it is the input)
      run_bank<false>(interleaved_stereo, frames);
      sanitize_state();
      warm(frames);
      return;
    }
    run_bank<true>(interleaved_stereo, frames);
    settle(frames);
    sanitize_state();
  }

  // Frames of input the filters run on, the output dry, before leaving bypass.
  std::uint32_t warm_frames() const noexcept { return warm_frames_; }
  bool warming() const noexcept { return warming_; }

  // [audio] The deck was silent for `frames` frames and process() was not called: ramps keep
  // time, the filters forget (a silent input would have let them decay).
  void skip(std::uint32_t frames) noexcept {
    clear_state();
    // Silence in: cleared filters are exactly what any length of it leaves, so a warm-up is done.
    if (warming_) warm(warm_frames_);
    while (frames > 0 && !bypassed()) {
      const std::uint32_t n = std::min<std::uint32_t>(frames, 64);
      for (std::uint32_t f = 0; f < n; ++f) {
        for (Ramp& g : gain_) g.next();
        wet_.next();
      }
      settle(n);
      frames -= n;
    }
  }

  // [audio] Take `o`'s gains and dry/wet where they are heading, at once (a ramp in flight lands
  // on its target), filters cleared: a copy at another rate that starts mid-set (a shared stretch
  // bus's source-rate copy of a deck's EQ, stretch_bus.hpp).
  void jump_to(const DeckEq& o) noexcept {
    // (A copy starts with its input: cleared filters are exact, so it needs no warm-up, and
    // takes what `o` is warming up to as set.)
    for (int b = 0; b < kBands; ++b) gain_[b].jump(o.band_target(b));
    wet_.jump(o.warming_ ? 1.0f : o.wet_.target());
    warming_ = false;
    flat_frames_ = 0;
    clear_state();
  }

  // [audio] Flat at once, bypassed, filters cleared.
  void reset() noexcept {
    for (Ramp& g : gain_) g.jump(1.0f);
    wet_.jump(0.0f);
    warming_ = false;
    flat_frames_ = 0;
    clear_state();
  }

  // True while process() leaves the buffer untouched and the filters idle (not warming up).
  bool bypassed() const noexcept { return !warming_ && wet_.value() == 0.0f && !wet_.active() && gains_flat(); }
  float band_gain(int band) const noexcept { return band >= 0 && band < kBands ? gain_[band].value() : 0.0f; }
  float band_target(int band) const noexcept {
    if (band < 0 || band >= kBands) return 0.0f;
    return warming_ ? pending_[band].gain : gain_[band].target();
  }
  float wet() const noexcept { return wet_.value(); }  // 0 = dry (bypass) … 1 = filter bank

  // k = 1/Q of Butterworth section i (lowest Q first) for a Butterworth filter of 2·sections poles.
  static double butterworth_k(int sections, int i) noexcept {
    const int n = 2 * sections;
    return 2.0 * std::sin(static_cast<double>(2 * (sections - 1 - i) + 1) * std::numbers::pi / (2.0 * n));
  }

 private:
  using V2 = double __attribute__((vector_size(16)));  // left, right

  // One trapezoidal SVF section's coefficients: g = tan(π f / fs), k = 1/Q.
  struct Svf {
    double k = 0, a1 = 0, a2 = 0, a3 = 0;
    static Svf make(double hz, double k, double fs) noexcept {
      const double g = std::tan(std::numbers::pi * hz / fs);
      Svf s;
      s.k = k;
      s.a1 = 1.0 / (1.0 + g * (g + k));
      s.a2 = g * s.a1;
      s.a3 = g * s.a2;
      return s;
    }
  };
  struct State {
    V2 ic1, ic2;
  };
  // Per crossover: 1 shared section + (2S − 1) on each path; plus S allpass sections.
  static constexpr int kMaxSections = 2;
  static constexpr int kXoverStates = 4 * kMaxSections - 1;
  static constexpr int kStates = 2 * kXoverStates + kMaxSections;

  // Advances one section; v1 = band-pass, v2 = low-pass (high = x − k·v1 − v2).
  static inline void tick(const Svf& c, State& s, V2 x, V2& v1, V2& v2) noexcept {
    const V2 v3 = x - s.ic2;
    v1 = c.a1 * s.ic1 + c.a2 * v3;
    v2 = s.ic2 + c.a2 * s.ic1 + c.a3 * v3;
    s.ic1 = 2.0 * v1 - s.ic1;
    s.ic2 = 2.0 * v2 - s.ic2;
  }

  // LR(2·2S) split of x: one shared first section, then each path's remaining 2S − 1 sections.
  template <int S>
  static inline void crossover(const Svf* c, State* st, V2 x, V2& lp, V2& hp) noexcept {
    V2 v1, v2;
    tick(c[0], st[0], x, v1, v2);
    V2 l = v2;
    V2 h = x - c[0].k * v1 - v2;
    for (int i = 1; i < 2 * S; ++i) {
      tick(c[i % S], st[i], l, v1, v2);
      l = v2;
    }
    for (int i = 1; i < 2 * S; ++i) {
      tick(c[i % S], st[2 * S - 1 + i], h, v1, v2);
      h = h - c[i % S].k * v1 - v2;
    }
    lp = l;
    hp = h;
  }

  template <bool kWrite>
  void run_bank(float* buf, std::uint32_t frames) noexcept {
    if (sections_ == 1) {
      run<1, kWrite>(buf, frames);
    } else {
      run<2, kWrite>(buf, frames);
    }
  }

  template <int S, bool kWrite>
  void run(float* buf, std::uint32_t frames) noexcept {
    constexpr std::ptrdiff_t kPerXover = 4 * S - 1;
    State* st_lo = state_;
    State* st_hi = state_ + kPerXover;
    State* st_ap = state_ + 2 * kPerXover;
    const bool ramping = ramps_active();
    float gl = gain_[kLow].value(), gm = gain_[kMid].value(), gh = gain_[kHigh].value(), w = wet_.value();
    for (std::size_t i = 0; i < 2 * static_cast<std::size_t>(frames); i += 2) {
      const V2 x = {static_cast<double>(buf[i]), static_cast<double>(buf[i + 1])};
      V2 l1, h1, mid, high;
      crossover<S>(lo_, st_lo, x, l1, h1);
      crossover<S>(hi_, st_hi, h1, mid, high);
      V2 low = l1;
      for (int j = 0; j < S; ++j) {
        V2 v1, v2;
        tick(hi_[j], st_ap[j], low, v1, v2);
        low = low - 2.0 * hi_[j].k * v1;
      }
      if constexpr (kWrite) {
        if (ramping) {
          gl = gain_[kLow].next();
          gm = gain_[kMid].next();
          gh = gain_[kHigh].next();
          w = wet_.next();
        }
        const V2 y = static_cast<double>(gl) * low + static_cast<double>(gm) * mid + static_cast<double>(gh) * high;
        const V2 out = x + static_cast<double>(w) * (y - x);
        buf[i] = static_cast<float>(out[0]);
        buf[i + 1] = static_cast<float>(out[1]);
      }
    }
  }

  bool gains_flat() const noexcept {
    for (const Ramp& g : gain_) {
      if (g.value() != 1.0f || g.active()) return false;
    }
    return true;
  }
  bool ramps_active() const noexcept {
    return gain_[0].active() || gain_[1].active() || gain_[2].active() || wet_.active();
  }

  // Warm-up progress: once the filters have run warm_frames_, the crossfade to them starts.
  void warm(std::uint32_t frames) noexcept {
    warmed_ += frames;
    if (warmed_ < warm_frames_) return;
    warming_ = false;
    flat_frames_ = 0;
    std::uint32_t fade = min_fade_frames_;
    for (int b = 0; b < kBands; ++b) {
      gain_[b].set(pending_[b].gain, pending_[b].ramp);
      fade = std::max(fade, pending_[b].ramp);
    }
    wet_.set(1.0f, fade);
  }

  // After rendering while not bypassed: once the gains have sat flat for the hold time, fade the
  // filter bank out.
  void settle(std::uint32_t frames) noexcept {
    if (!gains_flat()) {
      flat_frames_ = 0;
      return;
    }
    if (wet_.target() == 0.0f) return;  // already fading out
    flat_frames_ += frames;
    if (flat_frames_ >= hold_frames_) wet_.set(0.0f, bypass_fade_frames_);
  }

  // Once per block: flush decaying tails before they turn denormal (whatever the FPU mode), and
  // recover from a non-finite input instead of carrying NaN forever.
  void sanitize_state() noexcept {
    bool bad = false;
    const auto check = [&bad](V2& v) noexcept {
      for (int ch = 0; ch < 2; ++ch) {
        const double a = std::fabs(v[ch]);
        if (!(a < 1e30)) bad = true;
        if (a < 1e-30) v[ch] = 0.0;
      }
    };
    for (State& s : state_) {
      check(s.ic1);
      check(s.ic2);
    }
    if (bad) clear_state();
  }
  void clear_state() noexcept {
    for (State& s : state_) s = State{V2{0.0, 0.0}, V2{0.0, 0.0}};
  }

  DeckEqConfig cfg_;
  int sections_ = 2;
  Svf lo_[kMaxSections];
  Svf hi_[kMaxSections];
  State state_[kStates];
  Ramp gain_[kBands];
  Ramp wet_{0.0f};
  std::uint32_t flat_frames_ = 0;
  std::uint32_t min_fade_frames_ = 1;
  std::uint32_t hold_frames_ = 0;
  std::uint32_t bypass_fade_frames_ = 1;
  std::uint32_t warm_frames_ = 0;
  bool warming_ = false;      // leaving bypass: the filters run, the output stays dry
  std::uint32_t warmed_ = 0;  // frames the filters have run since the warm-up began
  struct Pending {
    float gain = 1.0f;
    std::uint32_t ramp = 0;
  };
  Pending pending_[kBands];  // while warming: each band's last set_band_gain(), applied once warm
};

}  // namespace stemd::engine
