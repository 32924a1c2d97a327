// Stretcher: one voice's time-stretch — tempo without pitch change. Interleaved stereo float in,
// stereo float out at the same sample rate, `tempo` source frames consumed per output frame
// (> 1 faster, < 1 slower), pitch unchanged. A wrapper around Rubber Band's real-time mode;
// stretcher.cpp is the only file that includes <rubberband/RubberBandStretcher.h>.
//
// Threads:
//   [control] create() and the destructor — they allocate and free (the library's state, the
//             planar buffers, the pull scratch) and warm the library up (see stretcher.cpp).
//             A Stretcher is created per pool entry before the stream starts, never on the
//             audio thread.
//   [audio]   everything else: reset(), set_tempo(), process(), drain() and the accessors.
//             No allocation, locks, I/O or unbounded loops (tests/rt/stretcher_rt_test.cpp
//             runs them under the tripwire). One audio thread per Stretcher.
//
// Input is pulled on demand with the Resampler's PullFn (same contract): the callback points
// *frames at memory it owns or copies into `scratch`. The Stretcher copies what it pulls into
// its own planar buffers at once, so the pointed-to frames need only live until pull returns.
//
// Timing: Rubber Band delays its output (its analysis window) by start_delay_frames(). process()
// compensates, like a resampler's read-ahead: the first process() after create()/reset() feeds
// the library its preferred start pad of silence and discards the first start-delay frames of
// output, so output frame k is centred on source position k × tempo (exactly at a steady tempo;
// under a tempo change the library moves to the new ratio over a hop or two). That first call
// therefore pulls and processes ~start_delay × tempo more frames than the block needs (a
// one-off cost of about one 2048-frame block). latency_frames() is 0 as for the Resampler; the
// read-ahead — frames pulled but not yet played — is lookahead_frames().
//
// Priming is bounded per callback (the engine, not this class): measured with R3 short at 48 kHz,
// the start pad alone costs nothing (the library only buffers it: no output until real input
// arrives) while the first 1024-frame block after a reset feeds the library ~3,370 source
// frames at tempo 1.05 against ~1,070 in a steady block — so a prime is about two blocks of
// extra work, and it needs the voice's real input (the pad is not where the work is). The
// engine lets EngineConfig::stretch_primes_per_callback voices' own stretchers prime in one
// callback; a voice past it stays silent while its source advances tempo × ratio source frames
// per output frame (so it is heard where the beat grid puts it), primes in a later callback,
// fades in, and EventType::kVoiceDeferred tells the client how many output frames late it is.
// Why not prime off the audio thread: the work is the real input's first window, at the
// voice's start frame and through its resampler (44.1 kHz stems at 48 kHz) — the control thread
// would need the head, a resampler and the stretcher handed over primed, and a seek or a tempo
// switch would still reset on the audio thread. Stretch buses prime apart from the bound: at
// most one prime per bus per start, and a bus restarts only after its tail has played out.
#pragma once

#include "resampler.hpp"

#include <cstdint>
#include <memory>
#include <string>

namespace stemd::engine {

// Cost per stereo output frame and the measured figures: tests/bench/bench_stretch.cpp; the
// choice is argued in stretcher.cpp.
enum class StretcherEngine : std::uint8_t {
  kFiner,   // R3 (OptionEngineFiner) with its short window — stemd's default: steady pitch,
            // clean tempo changes, about R2's cost in this configuration
  kFaster,  // R2 (OptionEngineFaster), mixed transients: crisper drums, but level dips and
            // pitch blips of up to ~100 ms when the tempo steps (see stretcher.cpp)
};

const char* to_string(StretcherEngine e) noexcept;

class Stretcher {
 public:
  // Source frames consumed per output frame. Outside [kMinTempo, kMaxTempo] set_tempo() clamps
  // (the library's buffers are sized for this range in create()).
  static constexpr double kMinTempo = 0.25;
  static constexpr double kMaxTempo = 4.0;
  // Most frames one pull asks for, and most frames one library process() call takes.
  static constexpr std::uint32_t kPullFrames = 1024;

  using PullFn = Resampler::PullFn;

  // [control] Allocates, and runs the library through the whole tempo range once so that its
  // buffers reach their final size. Null with `error` set when the library refuses.
  static std::unique_ptr<Stretcher> create(int sample_rate, std::string& error,
                                           StretcherEngine engine = StretcherEngine::kFiner);
  ~Stretcher();
  Stretcher(const Stretcher&) = delete;
  Stretcher& operator=(const Stretcher&) = delete;

  StretcherEngine engine() const noexcept { return engine_; }

  // [audio] Forget all history and input (a new voice, or a seek after its fade-out). Keeps the
  // tempo. The next process() primes the library again (see Timing).
  void reset() noexcept;

  // [audio] The tempo from now on (the library glides between analysis hops itself: a tempo
  // change never clicks). NaN → 1.
  void set_tempo(double tempo_ratio) noexcept;
  double tempo() const noexcept { return tempo_; }

  // [audio] Writes (does not add) up to `frames` stereo frames to `out_stereo`. Returns `frames`
  // unless pull() returned 0 — then the frames that could be made from the input so far (the
  // Stretcher keeps what it pulled and continues when called again).
  std::uint32_t process(float* out_stereo, std::uint32_t frames, PullFn pull, void* ctx) noexcept;

  // [audio] After the input has ended for good: the remaining output (the stretched tail of the
  // frames already pulled), fed with silence. Returns how many were written (< frames once the
  // tail is out; 0 afterwards). reset() before reuse.
  std::uint32_t drain(float* out_stereo, std::uint32_t frames) noexcept;

  // [audio] Output frames of delay between input and output: 0 (compensated; see Timing).
  std::uint32_t latency_frames() const noexcept { return 0; }
  // [audio] The library's own start delay at the current tempo, in output frames — what
  // process() trims after a reset. For reports and tests.
  std::uint32_t start_delay_frames() const noexcept;
  // [audio] False after create()/reset() until the next process() has primed the library (fed the
  // start pad and trimmed the start delay: about two blocks of extra library work, see Timing).
  bool primed() const noexcept { return primed_; }
  // [audio] Source frames pulled but not yet played (approximate under a tempo change).
  double lookahead_frames() const noexcept { return pulled_ - position_; }

 private:
  struct State;
  Stretcher(StretcherEngine e, State* s) noexcept;
  std::uint32_t run(float* out, std::uint32_t frames, PullFn pull, void* ctx, bool draining) noexcept;
  void prime() noexcept;

  StretcherEngine engine_;
  State* state_;  // the library's stretcher + buffers, owned
  double tempo_ = 1.0;
  bool primed_ = false;        // start pad fed since create()/reset()
  std::uint32_t discard_ = 0;  // output frames still to trim (the start delay)
  bool draining_ = false;
  double pulled_ = 0.0;      // source frames handed to the library (since reset)
  double position_ = 0.0;    // source position of the next output frame
  double drain_left_ = 0.0;  // drain(): output frames of tail still to come
};

}  // namespace stemd::engine
