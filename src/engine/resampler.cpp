// Resampler over libsamplerate (see resampler.hpp). The only file that includes <samplerate.h>.
//
// Why libsamplerate and not soxr (figures in tests/bench/bench_resample.cpp's header and the
// docs/benchmarks.md): soxr's variable-rate mode allocates inside soxr_process() whenever the ratio moves
// (its FIFOs grow on demand), which the audio thread cannot allow; libsamplerate's src_process()
// never allocates once src_new() returned, and its sinc converters take a new ratio on every
// call, interpolating linearly over that call's output — which is what a glide needs.
//
// [control] create()/~Resampler(); [audio] the rest. Every loop below is bounded by the frames
// requested: each library call either produces output or takes input, and a pull that brings
// nothing ends the call.
#include "resampler.hpp"

#include <samplerate.h>

#include <algorithm>
#include <cmath>
#include <vector>

namespace stemd::engine {

const char* to_string(ResamplerQuality q) noexcept {
  switch (q) {
    case ResamplerQuality::kFast:
      return "fast";
    case ResamplerQuality::kMedium:
      return "medium";
    case ResamplerQuality::kBest:
      return "best";
  }
  return "?";
}

struct Resampler::State {
  SRC_STATE* src = nullptr;
  std::vector<float> scratch;  // kPullFrames stereo frames: the pull callback's copy target
  std::vector<float> zeros;    // kPullFrames stereo frames of silence: drain()'s input
  double lsr_last = 0.0;       // libsamplerate's last_ratio (output/input), 0 = not set yet
  bool draining = false;
  double end = 0.0;  // drain(): source position where the input ended

  ~State() {
    if (src != nullptr) src_delete(src);
  }
};

namespace {

int converter_of(ResamplerQuality q) noexcept {
  switch (q) {
    case ResamplerQuality::kFast:
      return SRC_SINC_FASTEST;
    case ResamplerQuality::kMedium:
      return SRC_SINC_MEDIUM_QUALITY;
    case ResamplerQuality::kBest:
      return SRC_SINC_BEST_QUALITY;
  }
  return SRC_SINC_MEDIUM_QUALITY;
}

std::uint32_t pull_zeros(void* ctx, float*, std::uint32_t max_frames, const float** frames) noexcept {
  *frames = static_cast<const float*>(ctx);
  return std::min(max_frames, Resampler::kPullFrames);
}

}  // namespace

std::unique_ptr<Resampler> Resampler::create(ResamplerQuality q, std::string& error) {
  auto s = std::make_unique<State>();
  int err = 0;
  s->src = src_new(converter_of(q), 2, &err);
  if (s->src == nullptr) {
    error = std::string("libsamplerate: ") + src_strerror(err);
    return nullptr;
  }
  s->scratch.assign(static_cast<std::size_t>(kPullFrames) * 2, 0.0f);
  s->zeros.assign(static_cast<std::size_t>(kPullFrames) * 2, 0.0f);
  return std::unique_ptr<Resampler>(new Resampler(q, s.release()));
}

Resampler::Resampler(ResamplerQuality q, State* s) noexcept : quality_(q), state_(s) {}

Resampler::~Resampler() { delete state_; }

void Resampler::reset() noexcept {
  src_reset(state_->src);  // memset of the filter buffer: no allocation
  state_->lsr_last = 0.0;
  state_->draining = false;
  ratio_ = target_;
  glide_left_ = 0;
  glide_step_ = 0.0;
  fresh_ = true;
  pulled_ = 0.0;
  position_ = 0.0;
  pending_ = nullptr;
  pending_frames_ = 0;
}

void Resampler::set_ratio(double ratio, std::uint32_t glide_frames) noexcept {
  if (!(ratio >= kMinRatio)) ratio = kMinRatio;  // also catches NaN
  if (ratio > kMaxRatio) ratio = kMaxRatio;
  target_ = ratio;
  if (fresh_) {  // nothing has sounded yet: no glide to make (later calls glide from here)
    ratio_ = ratio;
    glide_left_ = 0;
    fresh_ = false;
    return;
  }
  if (ratio == ratio_) {
    glide_left_ = 0;
    return;
  }
  glide_left_ = std::max(glide_frames, kMinGlideFrames);
  glide_step_ = (target_ - ratio_) / glide_left_;
}

std::uint32_t Resampler::process(float* out, std::uint32_t frames, PullFn pull, void* ctx) noexcept {
  if (state_->draining) return 0;  // the input ended: only drain() or reset() make sense now
  return run(out, frames, pull, ctx, false);
}

std::uint32_t Resampler::drain(float* out, std::uint32_t frames) noexcept {
  State& s = *state_;
  if (!s.draining) {
    s.draining = true;
    s.end = pulled_;
  }
  const double tail = s.end - position_;
  if (tail <= 0.0) return 0;
  // Approximate under a glide (the ratio moves while the tail plays): a frame more or less of
  // a signal that is ending anyway.
  const double left = std::ceil(tail / std::max(ratio_, kMinRatio));
  const auto n = static_cast<std::uint32_t>(std::min<double>(frames, left));
  return run(out, n, pull_zeros, s.zeros.data(), true);
}

std::uint32_t Resampler::run(float* out, std::uint32_t frames, PullFn pull, void* ctx, bool draining) noexcept {
  State& s = *state_;
  fresh_ = false;
  std::uint32_t done = 0;
  // Each pass produces output, or hands the library input, or returns; input per pass is at
  // least one frame and the library holds at most its buffer, so this bound is never reached.
  for (std::uint32_t guard = 0; done < frames && guard < 4 * frames + 1024; ++guard) {
    // One library call covers the whole request at a steady ratio, one glide step otherwise.
    std::uint32_t seg = frames - done;
    double r_end = target_;
    if (glide_left_ > 0) {
      seg = std::min({seg, kGlideStepFrames, glide_left_});
      if (seg < glide_left_) r_end = ratio_ + glide_step_ * seg;
    }

    SRC_DATA d{};
    d.data_in = pending_frames_ > 0 ? pending_ : s.zeros.data();
    d.input_frames = pending_frames_;
    d.data_out = out + static_cast<std::size_t>(done) * 2;
    d.output_frames = seg;
    d.src_ratio = 1.0 / r_end;
    d.end_of_input = 0;
    if (src_process(s.src, &d) != 0) return done;  // cannot happen with valid arguments

    const auto gen = static_cast<std::uint32_t>(d.output_frames_gen);
    const auto used = static_cast<std::uint32_t>(d.input_frames_used);
    pending_ += static_cast<std::size_t>(used) * 2;
    pending_frames_ -= used;

    // Mirror the library's ratio interpolation to know where the output is in the source.
    const double target_lsr = d.src_ratio;
    const double last = s.lsr_last < 1.0 / 256.0 ? target_lsr : s.lsr_last;
    if (gen > 0) {
      if (std::fabs(last - target_lsr) > 1e-10) {
        const double slope = (target_lsr - last) / seg;
        for (std::uint32_t k = 0; k < gen; ++k) position_ += 1.0 / (last + k * slope);
        s.lsr_last = last + (gen - 1) * slope;
      } else {
        position_ += gen / target_lsr;
        s.lsr_last = target_lsr;
      }
      if (glide_left_ > 0) {
        if (gen == seg && seg == glide_left_) {
          ratio_ = target_;
          glide_left_ = 0;
        } else {
          ratio_ += glide_step_ * gen;
          glide_left_ -= std::min(gen, glide_left_);
          if (glide_left_ == 0) ratio_ = target_;
        }
      }
    } else if (s.lsr_last < 1.0 / 256.0) {
      s.lsr_last = target_lsr;
    }
    done += gen;
    if (gen == seg) continue;
    if (pending_frames_ > 0) continue;  // the library stopped for its own reasons: call again

    // The library needs more input.
    const double need = std::ceil((frames - done) * std::max(ratio_, target_)) + 16.0;
    const auto want = static_cast<std::uint32_t>(std::min<double>(need, kPullFrames));
    const float* p = nullptr;
    const std::uint32_t got = pull(ctx, s.scratch.data(), want, &p);
    if (got == 0 || p == nullptr) return done;
    pending_ = p;
    pending_frames_ = std::min(got, want);
    if (!draining) pulled_ += pending_frames_;
  }
  return done;
}

}  // namespace stemd::engine
