// The engine's voice record and the helpers every engine translation unit inlines. Private
// to src/engine (engine.cpp: commands and set-up; engine_voice.cpp: one voice's rendering;
// engine_process.cpp: the block loop). Thread: [audio], as the members it serves.
#pragma once

#include "stemd/engine.hpp"

#include "resampler.hpp"
#include "stretcher.hpp"

#include <cstdint>

namespace stemd::engine {

struct Engine::Voice {
  enum class State : std::uint8_t { kFree, kPlaying, kStarved, kStopping, kSeeking, kRetiring, kPausing, kPaused };

  State state = State::kFree;
  std::uint32_t generation = 0;
  const VoiceSource* src = nullptr;  // &own_src while it plays (null when free)
  // The source's view, copied at start (immutable while a voice uses it): the mix reads it from
  // the voice's own slot, one cache line the slot's prefetch brought, not a line of its own per
  // voice wherever the source was allocated — at 1,024 voices that miss was half the time of
  // Engine::prefetch_voice (perf, 2026-12-04).
  VoiceSource own_src;
  Stream* stream = nullptr;
  std::int64_t pos = 0;         // file frame of the next frame to play
  bool reading_memory = false;  // streamed voice still inside the pre-decoded head
  std::uint32_t ring_held = 0;  // frames fetch() lent in place from the ring, not yet consumed
  bool loop = false;
  Ramp gain{1.0f};  // the user's volume
  Ramp env{1.0f};   // declick envelope: start, stop, seek, pause, underrun
  Ramp pan{0.0f};   // balance: -1 left … +1 right
  std::uint8_t deck = 0;
  bool hold = false;  // paused: stay paused across a seek
  // The engine frame it started at: a pause while it still is (nothing of it rendered yet: its
  // play and pause in one pass, as a hand-over's replay sends them) holds it at once, silent.
  std::int64_t started_at = -1;
  std::uint64_t underruns = 0;
  bool jump_pending = false;      // a seek waits for the fade-out to reach 0
  Stream* seek_stream = nullptr;  // its new stream (null for in-memory sources)
  std::int64_t seek_pos = 0;
  std::uint32_t seek_seq = 0;  // the pending seek's number (Command::frames): told in VoiceTelemetry::seek_heard
  EndReason retire_reason = EndReason::kStopped;
  bool ended_reported = false;
  // Rate conversion: null = the bit-exact path (same rate, rate 1).
  Resampler* rs = nullptr;
  double base_ratio = 1.0;  // source rate / engine rate
  double ratio = 1.0;       // base_ratio × playback rate, the target
  std::uint32_t rate_glide = 0;
  bool rs_switch = false;         // attach a resampler at the bottom of the current fade (no jump)
  bool draining = false;          // end of data reached: playing out the resampler's tail
  std::int64_t loop_start = 0;    // region [loop_start, loop_end) — see PlayParams
  std::int64_t loop_end = 0;      // resolved: never 0 for in-memory sources
  std::uint32_t passes_left = 0;  // 0 = forever; counts down at each wrap
  Stretcher* st = nullptr;        // time-stretch (after the resampler); null = none
  double tempo = 1.0;
  bool st_switch = false;  // attach a stretcher at the bottom of the current fade
  // Stretch bus (stretch_bus.hpp): set = a member, mixed at its source rate into the bus's
  // input (st and rs stay null); its frames and ramps then count in source frames.
  StretchBus* bus = nullptr;
  std::int64_t bus_skip = 0;    // source frames to drop before its next frame goes in (join, seek)
  std::uint32_t bus_delay = 0;  // source frames of silence before its first frame goes in (join)
  bool leave_bus = false;       // leave at the bottom of the current fade (own stretcher)
  std::uint32_t hold_off = 0;   // output frames of silence after leaving: the bus's lookahead plays out
  Handover* ho = nullptr;       // being handed over onto its running bus (stretch_bus.hpp): its tap
  // Own stretcher not primed yet, past the callback's prime budget (Engine::defer_prime): output
  // frames it has stayed silent for (reported when it primes), and the source frame's fraction.
  std::uint32_t deferred = 0;
  double defer_frac = 0.0;
  std::uint64_t prime_wait_cb =
      ~std::uint64_t{0};  // the callback it last counted as waiting in (Engine::note_prime_wait)
  // Started with every pool stretcher held by voices fading out after a stop (the control thread
  // lends their budget to a restart): silent and on the grid, as deferred, until one is free.
  bool st_wait = false;
};

inline VoiceId Engine::id_of(const Voice& v) const noexcept { return static_cast<VoiceId>(&v - voices_.get()); }

inline void Engine::end_voice(Voice& v, EndReason why) noexcept {
  v.retire_reason = why;
  v.state = Voice::State::kRetiring;  // removed from the active list by process() once retired
}

}  // namespace stemd::engine
