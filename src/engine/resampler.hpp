// Resampler: one voice's sample-rate converter and varispeed — interleaved stereo float in,
// stereo float out at the device rate, with a ratio that may change every block and glides
// without clicks. A wrapper around libsamplerate's sinc converters; resampler.cpp is the only
// file that includes <samplerate.h>.
//
// Threads:
//   [control] create() and the destructor — they allocate and free (the library's state, the
//             filter buffer, the pull scratch). A Resampler is created per voice slot (or per
//             pool entry) before the stream starts, never on the audio thread.
//   [audio]   everything else: reset(), set_ratio(), process(), drain() and the accessors.
//             No allocation, locks, I/O or unbounded loops (tests/rt/resampler_rt_test.cpp
//             runs them under the tripwire). One audio thread per Resampler.
//
// Input is pulled on demand through a plain function pointer with the shape of Engine::fetch:
// the callback either points *frames at memory it owns (an in-memory file: no copy) or copies
// frames into `scratch` (a ring) and points *frames there. The pointed-to frames must stay
// valid until the next pull or reset(): the Resampler may keep part of them for its next call
// (scratch belongs to the Resampler, so ring data copied there is safe).
//
// Timing: output frame k is centred on source position k × ratio (libsamplerate's sinc has no
// group delay: it reads ahead instead). The read-ahead — frames pulled but not yet played —
// is lookahead_frames(); the playing position of a voice is (frames pulled) − lookahead_frames().
#pragma once

#include <cstdint>
#include <memory>
#include <string>

namespace stemd::engine {

// SNR of a −1 dBFS sine, 44.1 → 48 kHz (1 kHz / 16 kHz / 19 kHz), and the gain at 19 kHz;
// cost per stereo output frame in tests/bench/bench_resample.cpp.
enum class ResamplerQuality : std::uint8_t {
  kFast,    // SRC_SINC_FASTEST:        119 / 97 / 91 dB, −10.9 dB at 19 kHz — stemd's default
  kMedium,  // SRC_SINC_MEDIUM_QUALITY: 142 / 121 / 118 dB, flat to 19 kHz, ~2× kFast's cost
  kBest,    // SRC_SINC_BEST_QUALITY:   149 / 141 / 140 dB, ~7× kFast's cost
};

const char* to_string(ResamplerQuality q) noexcept;

class Resampler {
 public:
  // Source frames consumed per output frame = source_rate / device_rate × playback rate.
  // Outside [kMinRatio, kMaxRatio] set_ratio() clamps.
  static constexpr double kMinRatio = 1.0 / 64.0;
  static constexpr double kMaxRatio = 64.0;
  // Shortest glide: a ratio jump (glide_frames = 0, or any shorter glide) is spread over this
  // many output frames, so a step in pitch never becomes a step in the waveform's slope.
  static constexpr std::uint32_t kMinGlideFrames = 256;
  // The ratio is updated every kGlideStepFrames output frames while gliding (libsamplerate
  // interpolates linearly within each step), so a glide is piecewise linear and continuous.
  static constexpr std::uint32_t kGlideStepFrames = 32;
  // Most frames one pull asks for (the size of the scratch the Resampler owns).
  static constexpr std::uint32_t kPullFrames = 1024;

  // Input callback [audio]: at most max_frames frames; returns how many, with *frames pointing
  // at them (in the caller's memory or in `scratch`). 0 = nothing now (end of data or an empty
  // ring): process() then returns early and the caller decides — drain() at end of file, starve
  // on an underrun (the Resampler keeps its state and continues when called again).
  using PullFn = std::uint32_t (*)(void* ctx, float* scratch, std::uint32_t max_frames, const float** frames) noexcept;

  // [control] Allocates. Null with `error` set when the library refuses.
  static std::unique_ptr<Resampler> create(ResamplerQuality q, std::string& error);
  ~Resampler();
  Resampler(const Resampler&) = delete;
  Resampler& operator=(const Resampler&) = delete;

  ResamplerQuality quality() const noexcept { return quality_; }

  // [audio] Forget all history and input (a new voice, or a seek after its fade-out). The
  // ratio jumps to its target: there is no sound to glide.
  void reset() noexcept;

  // [audio] Glide linearly (in ratio) from the current ratio to `ratio` over
  // max(glide_frames, kMinGlideFrames) output frames. The first call after create()/reset()
  // (before any process()) sets the ratio at once; later ones glide — so switching a voice from
  // the ratio-1 bypass to the Resampler is reset(); set_ratio(1, 0); set_ratio(new, glide).
  void set_ratio(double ratio, std::uint32_t glide_frames) noexcept;
  double ratio() const noexcept { return ratio_; }  // now (mid-glide: the current value)
  double target_ratio() const noexcept { return target_; }
  bool gliding() const noexcept { return glide_left_ > 0; }

  // [audio] Writes (does not add) up to `frames` stereo frames to `out`. Returns `frames`
  // unless pull() returned 0 — then the frames that could be made from the input so far.
  std::uint32_t process(float* out, std::uint32_t frames, PullFn pull, void* ctx) noexcept;

  // [audio] After the input has ended for good (end of file): the remaining output — the frames
  // whose source positions lie before the last pulled frame — fed with silence. Returns how
  // many were written (< frames once the tail is out; 0 afterwards). reset() before reuse.
  std::uint32_t drain(float* out, std::uint32_t frames) noexcept;

  // [audio] Source frames pulled but not yet played (the read-ahead, ≈ half the sinc length /
  // min(ratio, 1) plus what the library buffered). Fractional: the output sits between frames.
  double lookahead_frames() const noexcept { return pulled_ - position_; }
  // [audio] Output frames of delay between the input and the output: 0 (see Timing above).
  std::uint32_t latency_frames() const noexcept { return 0; }

 private:
  struct State;
  Resampler(ResamplerQuality q, State* s) noexcept;
  std::uint32_t run(float* out, std::uint32_t frames, PullFn pull, void* ctx, bool draining) noexcept;

  ResamplerQuality quality_;
  State* state_;        // the library's state + buffers, owned
  double ratio_ = 1.0;  // source frames per output frame, now
  double target_ = 1.0;
  double glide_step_ = 0.0;  // ratio change per output frame while gliding
  std::uint32_t glide_left_ = 0;
  bool fresh_ = true;               // nothing processed since create()/reset()
  double pulled_ = 0.0;             // source frames handed to the library (since reset)
  double position_ = 0.0;           // source position of the next output frame
  const float* pending_ = nullptr;  // pulled frames the library has not taken yet
  std::uint32_t pending_frames_ = 0;
};

}  // namespace stemd::engine
