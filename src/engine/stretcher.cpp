// Stretcher over Rubber Band's real-time mode (see stretcher.hpp). The only file that includes
// <rubberband/RubberBandStretcher.h>.
//
// Options and why (Debian 12 ships Rubber Band 3.1.2: both engines, built-in FFT, no FFTW):
//   OptionProcessRealTime   ratios may change while running; no study pass.
//   Engine: R3 with OptionWindowShort (kFiner, the default). Measured on a 440 Hz sine
//     (tests/unit/stretcher_test.cpp and throwaway harnesses during evaluation):
//       R3 short      pitch 440.00 Hz at every steady tempo; most tempo steps (1→1.04, 1→1.25,
//                     1→0.8, 1→2, 2→1, 0.6→0.8, 0.8→1.25, 1.25→1.1) keep the level within −1 dB
//                     and the pitch within 1.5 %. Known exception: a step from above 1 to 1 or
//                     below (1.25→1.0, 1.25→0.8, 1.1→1.0) dips a steady tone 3–13 dB with a
//                     pitch blip for 50–100 ms (1.25→1.001 is clean) — a library behaviour
//                     around time ratio 1; music with transients masks it better than a sine.
//       R2 Crisp      (R2's default) phase resets make a steady sine wobble 430–450 Hz: audible.
//       R2 Mixed      steady pitch exact, but any step away from exactly 1.0, and steps of
//                     ~0.1 below tempo 1, dip the level −4…−12 dB with a pitch blip of 2–5 %
//                     for ~100 ms; gliding the tempo helps only partly. The movement-to-tempo
//                     glide changes the tempo all the time, so R2 is kept as an option only.
//       R3 standard   (multi-resolution window) ~4× the cost of R3 short: not worth it per voice.
//     Cost (bench_stretch.cpp): R3 short ≈ R2 Mixed at tempo ≠ 1, ~0.4–0.7 µs per frame.
//   OptionTransientsMixed   (R2 only; R3 ignores it) phase resets outside the fundamentals' range.
//   OptionPitchHighSpeed    pitch scale stays 1, so no internal resampler is ever run
//                           (HighConsistency would run one on every block for nothing).
//   OptionChannelsTogether  stems are stereo mixes: mid/side processing keeps the image.
//   OptionThreadingNever    the library never starts a thread of its own.
//   A silent Logger, debug level 0: the default logger writes to std::cerr on errors, which is
//   not RT-safe; ours drops messages and counts them.
//
// RT-safety: the library documents real-time mode as allocation- and lock-free after
// construction, provided no process() call exceeds setMaxProcessSize() and ratios do not jump
// between extremes. Its output buffers grow with the time ratio, though, so create() runs one
// warm-up at each end of [kMinTempo, kMaxTempo] and then resets: after that every buffer has
// its final size and process()/set_tempo()/reset()/drain() run clean under the tripwire
// (tests/rt/stretcher_rt_test.cpp). Without the warm-up R2 calls operator new on the audio
// thread at its first tempo changes (measured); R3 is clean either way.
//
// [control] create()/~Stretcher(); [audio] the rest. Every loop is bounded: each pass either
// takes output, or hands the library input, or returns.
#include "stretcher.hpp"

#include <rubberband/RubberBandStretcher.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <vector>

namespace stemd::engine {

namespace RB = RubberBand;

const char* to_string(StretcherEngine e) noexcept {
  switch (e) {
    case StretcherEngine::kFaster:
      return "faster";
    case StretcherEngine::kFiner:
      return "finer";
  }
  return "?";
}

namespace {

// The library's messages at debug level 0 are errors only; dropping them keeps the audio thread
// off std::cerr. Counted so a test could notice one.
struct SilentLogger final : RB::RubberBandStretcher::Logger {
  std::atomic<long> messages{0};
  void log(const char*) override { messages.fetch_add(1, std::memory_order_relaxed); }
  void log(const char*, double) override { messages.fetch_add(1, std::memory_order_relaxed); }
  void log(const char*, double, double) override { messages.fetch_add(1, std::memory_order_relaxed); }
};

RB::RubberBandStretcher::Options options_of(StretcherEngine e) noexcept {
  using S = RB::RubberBandStretcher;
  S::Options o = S::OptionProcessRealTime | S::OptionTransientsMixed | S::OptionDetectorCompound |
                 S::OptionPhaseLaminar | S::OptionThreadingNever | S::OptionSmoothingOff | S::OptionFormantShifted |
                 S::OptionPitchHighSpeed | S::OptionChannelsTogether;
  if (e == StretcherEngine::kFiner) {
    o |= S::OptionEngineFiner | S::OptionWindowShort;
  } else {
    o |= S::OptionEngineFaster | S::OptionWindowStandard;
  }
  return o;
}

std::uint32_t pull_stretch_zeros(void* ctx, float*, std::uint32_t max_frames, const float** frames) noexcept {
  *frames = static_cast<const float*>(ctx);
  return std::min(max_frames, Stretcher::kPullFrames);
}

constexpr std::uint32_t kChunk = Stretcher::kPullFrames;

}  // namespace

struct Stretcher::State {
  std::shared_ptr<SilentLogger> logger;
  std::unique_ptr<RB::RubberBandStretcher> rb;
  std::vector<float> scratch;             // kChunk stereo frames: the pull callback's copy target
  std::vector<float> zeros;               // kChunk stereo frames of silence: priming and drain()'s input
  std::array<std::vector<float>, 2> in;   // kChunk frames per channel: planar input
  std::array<std::vector<float>, 2> out;  // kChunk frames per channel: planar output
  std::array<float*, 2> in_ptr{};
  std::array<float*, 2> out_ptr{};
  std::array<const float*, 2> zero_ptr{};
};

std::unique_ptr<Stretcher> Stretcher::create(int sample_rate, std::string& error, StretcherEngine engine) {
  if (sample_rate < 8000 || sample_rate > 192000) {
    error = "rubberband: sample rate " + std::to_string(sample_rate) + " outside 8000–192000";
    return nullptr;
  }
  auto s = std::make_unique<State>();
  s->logger = std::make_shared<SilentLogger>();
  s->rb = std::make_unique<RB::RubberBandStretcher>(static_cast<std::size_t>(sample_rate), 2, s->logger,
                                                    options_of(engine), 1.0, 1.0);
  s->rb->setDebugLevel(0);
  s->rb->setMaxProcessSize(kChunk);
  const int want = engine == StretcherEngine::kFiner ? 3 : 2;
  if (s->rb->getEngineVersion() != want) {
    error = "rubberband: engine R" + std::to_string(want) + " not available";
    return nullptr;
  }
  s->scratch.assign(static_cast<std::size_t>(kChunk) * 2, 0.0f);
  s->zeros.assign(static_cast<std::size_t>(kChunk) * 2, 0.0f);
  for (int c = 0; c < 2; ++c) {
    s->in[c].assign(kChunk, 0.0f);
    s->out[c].assign(kChunk, 0.0f);
    s->in_ptr[c] = s->in[c].data();
    s->out_ptr[c] = s->out[c].data();
    s->zero_ptr[c] = s->zeros.data();
  }
  std::unique_ptr<Stretcher> st(new Stretcher(engine, s.release()));

  // Warm-up: the slowest tempo (largest time ratio: the output buffers' largest size), the
  // fastest, and a sweep between, on a little noise so every code path runs; then back to
  // a clean state. What the library allocates here it keeps.
  std::vector<float> out(static_cast<std::size_t>(kChunk) * 2);
  struct Noise {
    std::vector<float> buf;
    std::uint32_t seed = 1;
    static std::uint32_t pull(void* ctx, float*, std::uint32_t max_frames, const float** frames) noexcept {
      auto& n = *static_cast<Noise*>(ctx);
      for (float& x : n.buf) {
        n.seed = n.seed * 1664525u + 1013904223u;
        x = (static_cast<float>(n.seed >> 8) / 16777216.0f - 0.5f) * 0.1f;
      }
      *frames = n.buf.data();
      return std::min<std::uint32_t>(max_frames, kChunk);
    }
  } noise{std::vector<float>(static_cast<std::size_t>(kChunk) * 2)};
  const double tempos[] = {kMinTempo, kMaxTempo, kMinTempo, 1.0, kMaxTempo, 0.5, 2.0, 1.0};
  for (double t : tempos) {
    st->set_tempo(t);
    for (int b = 0; b < 24; ++b) st->process(out.data(), b % 2 == 0 ? 64 : kChunk, &Noise::pull, &noise);
  }
  st->set_tempo(1.0);
  st->reset();
  return st;
}

Stretcher::Stretcher(StretcherEngine e, State* s) noexcept : engine_(e), state_(s) {}

Stretcher::~Stretcher() { delete state_; }

void Stretcher::reset() noexcept {
  state_->rb->reset();
  primed_ = false;
  discard_ = 0;
  draining_ = false;
  pulled_ = 0.0;
  position_ = 0.0;
  drain_left_ = 0.0;
}

void Stretcher::set_tempo(double tempo_ratio) noexcept {
  if (std::isnan(tempo_ratio)) tempo_ratio = 1.0;
  tempo_ratio = std::clamp(tempo_ratio, kMinTempo, kMaxTempo);
  if (tempo_ratio == tempo_) return;
  tempo_ = tempo_ratio;
  state_->rb->setTimeRatio(1.0 / tempo_ratio);  // duration ratio: the inverse of tempo
}

std::uint32_t Stretcher::start_delay_frames() const noexcept {
  return static_cast<std::uint32_t>(state_->rb->getStartDelay());
}

// The library's recipe for real-time mode: feed getPreferredStartPad() frames of silence before
// the first real input, and drop getStartDelay() frames from the start of the output.
void Stretcher::prime() noexcept {
  State& s = *state_;
  primed_ = true;
  auto pad = static_cast<std::uint32_t>(s.rb->getPreferredStartPad());
  discard_ = static_cast<std::uint32_t>(s.rb->getStartDelay());
  while (pad > 0) {
    const std::uint32_t n = std::min(pad, kChunk);
    s.rb->process(s.zero_ptr.data(), n, false);
    pad -= n;
  }
}

std::uint32_t Stretcher::process(float* out_stereo, std::uint32_t frames, PullFn pull, void* ctx) noexcept {
  if (draining_) return 0;  // the input ended: only drain() or reset() make sense now
  return run(out_stereo, frames, pull, ctx, false);
}

std::uint32_t Stretcher::drain(float* out_stereo, std::uint32_t frames) noexcept {
  if (!draining_) {
    draining_ = true;
    drain_left_ = primed_ ? std::ceil((pulled_ - position_) / tempo_) : 0.0;
  }
  const auto n = static_cast<std::uint32_t>(std::min<double>(frames, drain_left_));
  if (n == 0) return 0;
  const std::uint32_t got = run(out_stereo, n, pull_stretch_zeros, state_->zeros.data(), true);
  drain_left_ -= got;
  return got;
}

std::uint32_t Stretcher::run(float* out, std::uint32_t frames, PullFn pull, void* ctx, bool draining) noexcept {
  State& s = *state_;
  RB::RubberBandStretcher& rb = *s.rb;
  if (!primed_) prime();
  std::uint32_t done = 0;
  // Each pass retrieves output or feeds input (≥ 1 frame, which yields output within a hop),
  // or returns; the guard only catches a library that stops doing either.
  for (std::uint32_t guard = 0; done < frames && guard < 4 * frames + 256; ++guard) {
    const int avail = rb.available();
    if (avail > 0) {
      if (discard_ > 0) {  // the start delay: retrieve and drop
        const auto n = std::min({static_cast<std::uint32_t>(avail), discard_, kChunk});
        discard_ -= static_cast<std::uint32_t>(rb.retrieve(s.out_ptr.data(), n));
        continue;
      }
      const auto n = std::min({static_cast<std::uint32_t>(avail), frames - done, kChunk});
      const auto got = static_cast<std::uint32_t>(rb.retrieve(s.out_ptr.data(), n));
      const float* l = s.out[0].data();
      const float* r = s.out[1].data();
      float* o = out + static_cast<std::size_t>(done) * 2;
      for (std::uint32_t i = 0; i < got; ++i) {
        o[2 * i] = l[i];
        o[2 * i + 1] = r[i];
      }
      done += got;
      position_ += got * tempo_;
      continue;
    }
    if (avail < 0) break;  // "finished": only after a final block, which we never send

    // The library needs input: what it asks for (at least a frame, at most a chunk).
    const auto req = static_cast<std::uint32_t>(rb.getSamplesRequired());
    const std::uint32_t want = std::clamp<std::uint32_t>(req, 1, kChunk);
    const float* p = nullptr;
    const std::uint32_t got = std::min(pull(ctx, s.scratch.data(), want, &p), want);
    if (got == 0 || p == nullptr) break;
    float* l = s.in[0].data();
    float* r = s.in[1].data();
    for (std::uint32_t i = 0; i < got; ++i) {
      l[i] = p[2 * i];
      r[i] = p[2 * i + 1];
    }
    rb.process(s.in_ptr.data(), got, false);
    if (!draining) pulled_ += got;
  }
  return done;
}

}  // namespace stemd::engine
