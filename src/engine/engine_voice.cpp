// One voice's rendering [audio] (see engine.cpp for the voice's states): its frames fetched from
// memory or its ring, through its resampler and stretcher, mixed into its deck's bus with its
// ramps. Real-time rules as in engine.cpp. Built with -O3, like every engine file.
#include "engine_voice.hpp"
#include "stretch_bus.hpp"

#include "deck_eq.hpp"
#include "denormals.hpp"
#include "mix.hpp"
#include "resampler.hpp"
#include "schedule.hpp"
#include "stretcher.hpp"
#include "stemd/stream.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <ctime>
#include <pthread.h>

namespace stemd::engine {

namespace {
struct PullCtx {
  Engine* engine;
  void* voice;
};
}  // namespace

// The stretcher's input: the voice's frames at the engine rate (through its resampler if any).
std::uint32_t Engine::stretch_pull(void* ctx, float* scratch, std::uint32_t max_frames, const float** frames) noexcept {
  auto* c = static_cast<PullCtx*>(ctx);
  Voice& v = *static_cast<Voice*>(c->voice);
  if (v.rs != nullptr) {
    const std::uint32_t n = v.rs->process(scratch, max_frames, &Engine::pull_thunk, ctx);
    *frames = scratch;
    return n;
  }
  Frames f;  // with a scratch to copy into, fetch() gives float frames
  const std::uint32_t n = c->engine->fetch(v, scratch, max_frames, &f);
  *frames = f.f;
  return n;
}

// Source frames a voice needs to produce `out_frames` output frames (with the resampler's
// look-ahead margin).
std::int64_t Engine::source_frames_for(const Voice& v, std::uint32_t out_frames) const noexcept {
  double frames = out_frames;
  std::int64_t margin = 0;
  if (v.bus != nullptr) {  // in the bus's pull, frames are source frames; outside, output frames
    if (bus_rendering_) return out_frames;
    // A handover's tap must first reach the bus's cursor (L on: stretch_bus_handover.cpp).
    if (v.ho != nullptr && v.ho->bus_on) margin = std::max<std::int64_t>(0, v.ho->bus - v.ho->filled);
    return static_cast<std::int64_t>(std::ceil(frames * v.tempo * v.base_ratio)) + 1300 + Stretcher::kPullFrames +
           margin;
  }
  if (v.st != nullptr) {  // the stretcher reads ahead (most after a reset)
    frames *= std::max(v.tempo, 1.0);
    margin += 1300;
  }
  if (v.rs != nullptr) {
    frames *= std::max(v.rs->ratio(), v.rs->target_ratio());
    margin += 8;
  }
  return static_cast<std::int64_t>(std::ceil(frames)) + margin;
}

std::uint32_t Engine::pull_thunk(void* ctx, float* scratch, std::uint32_t max_frames, const float** frames) noexcept {
  auto* c = static_cast<PullCtx*>(ctx);
  Frames f;  // with a scratch to copy into, fetch() gives float frames
  const std::uint32_t n = c->engine->fetch(*static_cast<Voice*>(c->voice), scratch, max_frames, &f);
  *frames = f.f;
  return n;
}

// The voice's next frames at the engine's rate: straight from its source, or through its
// resampler (which pulls from the source as it needs).
std::uint32_t Engine::produce(Voice& v, float* dst, std::uint32_t frames, Frames* src) noexcept {
  if (v.st != nullptr) {
    *src = st_out_.data();
    if (v.draining) return v.st->drain(st_out_.data(), frames);
    if (!v.st->primed()) {
      ++primes_;
      if (prime_reserved_for(v)) ++prime_reserved_used_;
      if (v.deferred > 0) {  // heard from now on, `deferred` output frames late (after a start, seek or switch)
        push_event(Event{EventType::kVoiceDeferred, EndReason::kError, id_of(v), v.generation, v.deferred, frame_});
        metrics_.stretch_starts_deferred.fetch_add(1, std::memory_order_relaxed);
        v.deferred = 0;
      }
    }
    PullCtx ctx{this, &v};
    return v.st->process(st_out_.data(), frames, &Engine::stretch_pull, &ctx);
  }
  if (v.ho != nullptr && v.ho->bus_on && bus_rendering_) return ho_read_bus(v, nullptr, frames, src);  // its tap
  if (v.rs == nullptr) return fetch(v, nullptr, frames, src);  // mixed at once: read in place
  if (v.draining) {
    const std::uint32_t n = v.rs->drain(rs_out_.data(), frames);
    *src = rs_out_.data();
    return n;
  }
  PullCtx ctx{this, &v};
  const std::uint32_t n = v.rs->process(rs_out_.data(), frames, &Engine::pull_thunk, &ctx);
  *src = rs_out_.data();
  return n;
}

// Produces up to `frames` frames of the voice's source; *src points at them (in the source's
// memory; in the ring when `dst` is null — valid until mix_segment consumes it, and int16 when
// the ring is; else copied from the ring into `dst` as float). Returns 0 at end of data or when
// the ring is empty. A short in-memory loop comes as its repeats in one piece (fetch_tiled).
std::uint32_t Engine::fetch(Voice& v, float* dst, std::uint32_t frames, Frames* src) noexcept {
  const VoiceSource& s = *v.src;
  // `n` frames from memory at v.pos: in place, or (int16 with a scratch to fill) as float in dst.
  const auto from_memory = [&](std::uint32_t n) {
    if (s.frames16 == nullptr) {
      *src = s.frames + v.pos * 2;
    } else if (dst == nullptr) {
      *src = s.frames16 + v.pos * 2;
    } else {
      to_float(dst, s.frames16 + v.pos * 2, n);
      *src = dst;
    }
    v.pos += n;
    return n;
  };
  if (!s.streamed) {
    if (v.pos >= v.loop_end) {
      if (!v.loop || v.loop_end <= v.loop_start) return 0;
      if (v.passes_left > 0 && --v.passes_left == 0) return 0;  // the last pass is over
      v.pos = v.loop_start;  // sample-exact seam: the next frame is the region's first
    }
    if (const std::int64_t len = v.loop_end - v.loop_start;
        v.loop && len > 0 && len < kTileLoopsBelow && v.pos >= v.loop_start && frames > v.loop_end - v.pos) {
      return fetch_tiled(v, dst, frames, src);
    }
    return from_memory(static_cast<std::uint32_t>(std::min<std::int64_t>(frames, v.loop_end - v.pos)));
  }
  if (v.reading_memory) {
    if (v.pos < s.memory_frames) {
      return from_memory(static_cast<std::uint32_t>(std::min<std::int64_t>(frames, s.memory_frames - v.pos)));
    }
    v.reading_memory = false;
  }
  if (v.stream == nullptr) return 0;
  std::uint32_t n = 0;
  if (dst == nullptr) {
    // In place: the frames up to the ring's wrap point, left in the ring (the loader cannot
    // reuse them) until mix_segment has mixed them and calls release_ring().
    SampleRing& ring = v.stream->ring();
    if (ring.format() == SampleFormat::kInt16) {
      const auto span = ring.read_spans_i16(frames);
      n = static_cast<std::uint32_t>(span.first_frames);
      *src = span.first;
    } else {
      const auto span = ring.read_spans(frames);
      n = static_cast<std::uint32_t>(span.first_frames);
      *src = span.first;
    }
    v.ring_held = n;
  } else {  // a resampler or stretcher keeps its input across calls: it gets a copy
    n = static_cast<std::uint32_t>(v.stream->ring().read(dst, frames));
    *src = dst;
  }
  v.pos += n;
  if (v.loop_end > v.loop_start && v.pos >= v.loop_end) {  // the loader looped (or the section ended)
    v.pos = v.loop_start + (v.pos - v.loop_end) % (v.loop_end - v.loop_start);
  }
  return n;
}

std::uint8_t Engine::telemetry_state(const Voice& v) noexcept {
  switch (v.state) {
    case Voice::State::kPlaying:
    case Voice::State::kSeeking:
      return 1;
    case Voice::State::kStarved:
      return 2;
    case Voice::State::kStopping:
    case Voice::State::kRetiring:
      return 3;
    case Voice::State::kPausing:
    case Voice::State::kPaused:
      return 4;
    default:
      return 0;
  }
}

// Fetches and mixes up to `count` frames with the voice's current ramps; fewer only when the
// data runs out. Each pass makes progress or stops, so the loop is bounded by `count`.
std::uint32_t Engine::mix_segment(Voice& v, float* out, std::uint32_t count) noexcept {
  std::uint32_t done = 0;
  while (done < count) {
    Frames f;
    const std::uint32_t n = produce(v, scratch_.data(), count - done, &f);
    if (n == 0) break;
    ++segments_mixed_;
    float* o = out + static_cast<std::size_t>(done) * 2;
    if (f.s != nullptr) {
      mix_frames(v, o, f.s, n);
    } else {
      mix_frames(v, o, f.f, n);
    }
    if (v.ring_held != 0) {  // mixed: the frames fetch() lent in place go back to the loader
      v.stream->ring().consume(v.ring_held);
      v.ring_held = 0;
    }
    done += n;
  }
  return done;
}

// Mixes `n` frames of the voice into `o` with its ramps (T: float, or int16 from its ring).
template <typename T>
void Engine::mix_frames(Voice& v, float* o, const T* p, std::uint32_t n) noexcept {
  if (v.pan.active() || v.pan.value() != 0.0f) {
    // Balance: the far side attenuates linearly, the near side stays at unity (a centred
    // stereo source is untouched).
    for (std::uint32_t i = 0; i < n; ++i) {
      const float g = v.gain.next() * v.env.next();
      const float p_ = v.pan.next();
      gains_[i] = g * std::min(1.0f, 1.0f - p_);
      gains_r_[i] = g * std::min(1.0f, 1.0f + p_);
    }
    mix_gains_lr(o, p, gains_.data(), gains_r_.data(), n);
  } else if (v.gain.active() || v.env.active()) {
    v.gain.fill(gains_.data(), n);  // block loops, no call per frame (ramp.hpp)
    v.env.apply(gains_.data(), n);
    mix_gains(o, p, gains_.data(), n);
  } else {
    const float g = v.gain.value() * v.env.value();
    if (g == 1.0f) {
      mix_add(simd_, o, p, n);  // unity: bit-exact copy of the source into the bus
    } else if (g != 0.0f) {
      mix_gain(simd_, o, p, n, g);
    }
  }
}

void Engine::starve(Voice& v) noexcept {
  v.env.jump(0.0f);
  v.state = Voice::State::kStarved;
  ++v.underruns;
  metrics_.note_voice_underrun();
  push_event(Event{EventType::kVoiceUnderrun, EndReason::kError, id_of(v), v.generation, v.underruns, frame_});
}

// The fade of a seek (or a rate/tempo switch) has reached silence: jump to the new position,
// attach what was waiting, and fade back in. False when the voice stays silent this block.
bool Engine::settle_seek(Voice& v, std::uint32_t offset) noexcept {
  if (v.bus != nullptr && v.leave_bus) return false;  // off the bus after its block (bus_settle_leave)
  // The old position has faded out: jump (or, for a rate/tempo switch alone, stay).
  const bool jump = v.jump_pending;
  // (Not made when the retire queue is full: silent this block, tried again next one.)
  if (jump && !take_pending_seek(v)) return false;
  if (v.bus != nullptr && jump) {  // skip ahead by the bus's lookahead: on the grid (stretch_bus.hpp)
    ho_seal(v);                    // a handover's tap holds the old position: the bus reads anew
    v.bus_skip = std::llround(bus_lookahead(*v.bus));
    v.bus_skip -= skip_source(v, v.bus_skip);
    if (v.bus_skip > 0 && !v.hold) {  // the new stream is short yet: the rest before it sounds
      v.state = Voice::State::kPlaying;
      v.env.set(1.0f, declick_frames_);
      return false;
    }
  }
  if (v.st_switch && bus_join(v, offset)) {  // into a stretch bus: rendered there from now on
    if (v.hold) {
      v.state = Voice::State::kPaused;
    } else {
      v.state = Voice::State::kPlaying;
      v.env.set(1.0f, declick_frames_);
    }
    return false;
  }
  if (v.rs_switch && attach_resampler(v)) v.rs->set_ratio(v.ratio, v.rate_glide);
  v.rs_switch = false;
  if (v.st_switch) attach_stretcher(v);
  v.st_switch = false;
  if (v.st != nullptr && jump) {
    v.st->reset();
    v.st->set_tempo(v.tempo);
  }
  if (v.rs != nullptr && jump) {  // new position: no history to keep
    v.rs->reset();
    v.rs->set_ratio(v.ratio, 0);
  }
  if (v.hold) {  // a paused voice stays paused at its new position
    v.state = Voice::State::kPaused;
    return false;
  }
  v.state = Voice::State::kPlaying;
  v.env.set(1.0f, declick_frames_);
  return true;
}

// mix_segment() ran out of data before the segment's end. True: render on (a seek jumps now,
// a resampler's or stretcher's tail plays out, the last frames just landed); false: the voice
// is silent for the rest of the block, or has ended.
bool Engine::out_of_data(Voice& v) noexcept {
  if (v.state == Voice::State::kSeeking) {  // nothing left at the old position: jump now
    v.env.jump(0.0f);
    return true;
  }
  if (v.draining) {  // the resampler's tail is out: the end
    end_voice(v, v.src->streamed && v.stream != nullptr ? v.stream->end_reason() : EndReason::kEndOfFile);
    return false;
  }
  if (v.state == Voice::State::kPausing && v.src->streamed && v.stream != nullptr && !v.stream->finished()) {
    v.env.jump(0.0f);  // the ring ran dry during the pause fade: paused now
    v.state = Voice::State::kPaused;
    return false;
  }
  if (v.state == Voice::State::kStopping) {
    end_voice(v, EndReason::kStopped);
    return false;
  }
  if (!v.src->streamed) {
    if ((v.rs != nullptr || v.st != nullptr) && v.state != Voice::State::kStopping) {  // play out the tail first
      v.draining = true;
      return true;
    }
    end_voice(v, EndReason::kEndOfFile);
    return false;
  }
  if (v.stream == nullptr) {
    end_voice(v, EndReason::kError);
    return false;
  }
  if (!v.stream->finished()) {  // the loader fell behind between our check and the read
    starve(v);
    return false;
  }
  if (v.stream->ring().readable_frames() > 0) return true;  // last frames landed just now
  if ((v.rs != nullptr || v.st != nullptr) && v.state != Voice::State::kStopping) {
    v.draining = true;
    return true;
  }
  end_voice(v, v.stream->end_reason());
  return false;
}

// A voice fading out after a stop holds a stretcher of its own: it is free once the fade is over.
bool Engine::stretcher_fading() const noexcept {
  for (std::uint32_t i = 0; i < active_count_; ++i) {
    const Voice& v = voices_[active_[i]];
    if (v.state == Voice::State::kStopping && v.st != nullptr) return true;
  }
  return false;
}

// This callback's prime budget is spent and `v`'s own stretcher is not primed (a start, a seek, a
// switch into the stretcher): `v` stays silent for `frames` output frames while its source moves
// on as if they had been played — tempo × ratio source frames each, so it stays on the grid — and
// it fades in once it primes, in a later callback (kVoiceDeferred then says how late). False: it
// will not sound (stopping or pausing before it was ever heard, or out of data).
// One of the last callback's longest waiters, with its reserved prime not taken yet.
bool Engine::prime_reserved_for(const Voice& v) const noexcept {
  return v.deferred > 0 && v.deferred >= prime_threshold_ && prime_reserved_used_ < prime_reserved_;
}

// Whether `v`'s stretcher may prime in this callback: the budget, less what is kept for the
// longest waiters of the last callback unless `v` is one of them.
bool Engine::may_prime(const Voice* v) const noexcept {
  const std::uint32_t budget = cfg_.stretch_primes_per_callback;
  if (v != nullptr && prime_reserved_for(*v)) return primes_ < budget;
  return primes_ + (prime_reserved_ - prime_reserved_used_) < budget;
}

// `v` was refused a prime in this callback: its wait joins the ranking (once per callback;
// insertion into at most kPrimeRanks entries).
void Engine::note_prime_wait(Voice& v) noexcept {
  const std::uint64_t cb = metrics_.callbacks.load(std::memory_order_relaxed);
  if (v.prime_wait_cb == cb) return;
  v.prime_wait_cb = cb;
  std::uint32_t i = std::min(prime_rank_n_, kPrimeRanks - 1);
  if (prime_rank_n_ == kPrimeRanks && prime_rank_[i] >= v.deferred) return;  // shorter than every one kept
  for (; i > 0 && prime_rank_[i - 1] < v.deferred; --i) prime_rank_[i] = prime_rank_[i - 1];
  prime_rank_[i] = v.deferred;
  prime_rank_n_ = std::min(prime_rank_n_ + 1, kPrimeRanks);
}

// [audio] At the end of a callback: the next one's budget, and what it keeps for this one's waiters.
void Engine::end_prime_round() noexcept {
  const std::uint32_t budget = cfg_.stretch_primes_per_callback;
  const std::uint32_t r = budget <= kPrimeRanks ? std::min(prime_rank_n_, budget) : 0;
  prime_reserved_ = r;
  prime_threshold_ = r > 0 ? prime_rank_[r - 1] : 0;
  prime_reserved_used_ = 0;
  prime_rank_n_ = 0;
  primes_ = bus_primes_ = 0;  // its commands count against it
}

bool Engine::defer_prime(Voice& v, std::uint32_t frames) noexcept {
  if (v.state == Voice::State::kStopping) {
    end_voice(v, v.retire_reason);
    return false;
  }
  if (v.state == Voice::State::kPausing) {
    v.env.jump(0.0f);
    v.state = Voice::State::kPaused;
    return false;
  }
  const double want = frames * v.tempo * v.ratio + v.defer_frac;
  const auto skip = static_cast<std::int64_t>(want);
  v.defer_frac = want - static_cast<double>(skip);
  const std::int64_t got = skip_source(v, skip);
  v.deferred += frames;
  note_prime_wait(v);
  v.env.jump(0.0f);
  v.env.set(1.0f, declick_frames_);
  if (got == skip) return true;
  if (v.src->streamed && v.stream != nullptr && !v.stream->finished()) {
    starve(v);  // the loader is behind: resumes (and primes) once it has caught up
  } else {
    end_voice(v, v.src->streamed && v.stream != nullptr ? v.stream->end_reason() : EndReason::kEndOfFile);
  }
  return false;
}

void Engine::render_voice(Voice& v, float* out, std::uint32_t frames) noexcept {
  std::uint32_t done = 0;
  // A stretcher of its own at a running bus's tempo again: back onto the bus, rendered there.
  if (v.st != nullptr && v.bus == nullptr && !buses_.empty() && bus_rejoin(v)) return;
  // Each pass renders one segment; a block has at most a handful (fade end, seek jump, resume),
  // so the bound only guards against a logic error.
  for (int guard = 0; done < frames && guard < 16; ++guard) {
    if (v.state == Voice::State::kRetiring || v.state == Voice::State::kFree) return;
    if (v.bus != nullptr && !bus_rendering_) return;  // a stretch bus's member: rendered in its pull
    if (v.hold_off > 0) {  // just left a bus: silent while the bus plays out what it held of it
      const std::uint32_t k = std::min(v.hold_off, frames - done);
      v.hold_off -= k;
      done += k;
      continue;
    }

    if (v.state == Voice::State::kSeeking && !v.env.active() && v.env.value() == 0.0f && !settle_seek(v, done)) {
      return;
    }
    if (v.state == Voice::State::kPausing && !v.env.active() && v.env.value() == 0.0f) v.state = Voice::State::kPaused;
    if ((v.rs_switch || v.st_switch) && v.env.value() == 0.0f && !v.env.active() &&
        (v.state == Voice::State::kPaused || v.state == Voice::State::kStarved)) {
      if (v.st_switch && bus_join(v, done)) return;  // silent now: into a stretch bus at once
      if (v.rs_switch && attach_resampler(v)) v.rs->set_ratio(v.ratio, v.rate_glide);  // silent now: switch at once
      if (v.st_switch) attach_stretcher(v);
      v.rs_switch = v.st_switch = false;
    }
    if (v.state == Voice::State::kPaused) return;  // holds its position, consumes nothing
    if (v.state == Voice::State::kStopping && !v.env.active() && v.env.value() == 0.0f) {
      end_voice(v, v.retire_reason);
      return;
    }
    if (v.state == Voice::State::kStarved) {
      // Resume once the loader has caught up by a comfortable margin, with a fade in.
      const std::size_t readable = v.stream->ring().readable_frames();
      const std::size_t resume_at = std::min<std::size_t>(v.stream->ring().capacity_frames() / 2, 4u * frames);
      if (readable < resume_at && !v.stream->finished()) return;  // silent for the rest of the block
      v.state = Voice::State::kPlaying;
      v.env.set(1.0f, declick_frames_);
    }

    if (v.st_wait && (v.tempo == 1.0 || v.bus != nullptr)) v.st_wait = false;  // needs none any more
    if (v.st_wait) {  // every stretcher is with voices fading out after a stop: silent, on the grid
      if (attach_stretcher(v)) {
        v.st_wait = false;  // primes below, heard late (kVoiceDeferred)
      } else if (!stretcher_fading()) {
        end_voice(v, EndReason::kError);  // none will come free (only without the control thread's budget)
        return;
      } else {
        if (!defer_prime(v, frames - done)) return;
        done = frames;
        continue;
      }
    }
    if (v.st != nullptr && !v.draining && !v.st->primed() && !may_prime(&v)) {
      if (v.state == Voice::State::kSeeking) {  // fading out what was never heard: at the bottom now
        v.env.jump(0.0f);
        continue;
      }
      if (!defer_prime(v, frames - done)) return;
      done = frames;
      continue;
    }

    std::uint32_t want = frames - done;
    if ((v.state == Voice::State::kStopping || v.state == Voice::State::kSeeking ||
         v.state == Voice::State::kPausing) &&
        v.env.active()) {
      want = std::min(want, v.env.remaining());  // stop exactly where the fade ends
    }

    if (v.src->streamed && v.stream != nullptr && v.state == Voice::State::kPlaying && !v.stream->finished()) {
      const std::int64_t head = v.reading_memory ? std::max<std::int64_t>(0, v.src->memory_frames - v.pos) : 0;
      const std::int64_t avail = head + static_cast<std::int64_t>(v.stream->ring().readable_frames());
      if (avail < source_frames_for(v, want)) {
        // Underrun: play what there is, fading it to silence so the gap never clicks.
        std::int64_t out_avail = avail;
        if (v.rs != nullptr) {
          out_avail = static_cast<std::int64_t>(
                          std::floor(static_cast<double>(avail) / std::max(v.rs->ratio(), v.rs->target_ratio()))) -
                      4;
        }
        const auto have = static_cast<std::uint32_t>(std::clamp<std::int64_t>(out_avail, 0, want));
        const std::uint32_t fade = std::min(have, declick_frames_);
        done += mix_segment(v, out + static_cast<std::size_t>(done) * 2, have - fade);
        v.env.set(0.0f, fade);
        done += mix_segment(v, out + static_cast<std::size_t>(done) * 2, fade);
        starve(v);
        return;
      }
    }

    const std::uint32_t n = mix_segment(v, out + static_cast<std::size_t>(done) * 2, want);
    done += n;
    if (n == want) continue;

    if (!out_of_data(v)) return;  // out of data before `want`
  }
}

// A pipeline over the voices after active_[i], so their misses overlap this one's mixing: the
// voice slot four ahead, the lines its pointers lead to two ahead (they say where its frames
// are), and the next voice's frames themselves — a ring was written half a second ago and no
// cache holds it any more.
void Engine::prefetch_ahead(std::uint32_t i, std::uint32_t frames) const noexcept {
  if (i + 4 < active_count_) {
    const char* slot = reinterpret_cast<const char*>(&voices_[active_[i + 4]]);
    for (std::size_t at = 0; at < sizeof(Voice); at += 64) __builtin_prefetch(slot + at, 1, 3);
  }
  if (i + 2 < active_count_) prefetch_voice_state(active_[i + 2]);
  if (i + 1 < active_count_) prefetch_voice(voices_[active_[i + 1]], frames);
}

// A hint one step earlier: the cache lines prefetch_voice() and the mix then read through the
// voice's pointers (its source, its stream's ring indices and flags) and its telemetry slot,
// which the audio thread writes. Without it each voice costs several dependent misses in a row
// (the stream's ring indices are written by the loader on another core). Reads only the voice.
void Engine::prefetch_voice_state(VoiceId id) const noexcept {
  const Voice& v = voices_[id];
  __builtin_prefetch(&telemetry_[id], 1, 3);  // (its source's view is in the slot: own_src)
  if (v.stream == nullptr) return;
  const char* p = reinterpret_cast<const char*>(v.stream);
  for (std::size_t at = 0; at < sizeof(Stream); at += 64) __builtin_prefetch(p + at, 0, 3);
}

// A hint to the memory system: the bytes the voice's next `frames` frames come from (its ring's
// readable span, or its source's memory), one prefetch per cache line. Reads two atomics, never
// changes state; a wrong guess costs only the bandwidth.
void Engine::prefetch_voice(const Voice& v, std::uint32_t frames) const noexcept {
  if (v.state != Voice::State::kPlaying || v.src == nullptr) return;
  const char* p = nullptr;
  std::size_t bytes = 0;
  const VoiceSource& s = *v.src;
  if (!s.streamed || (v.reading_memory && v.pos < s.memory_frames)) {
    const std::int64_t end = s.streamed ? s.memory_frames : v.loop_end;
    if ((s.frames == nullptr && s.frames16 == nullptr) || v.pos >= end) return;
    const auto n = static_cast<std::size_t>(std::min<std::int64_t>(frames, end - v.pos));
    if (s.frames16 != nullptr) {
      p = reinterpret_cast<const char*>(s.frames16 + v.pos * 2);
      bytes = n * 2 * sizeof(std::int16_t);
    } else {
      p = reinterpret_cast<const char*>(s.frames + v.pos * 2);
      bytes = n * 2 * sizeof(float);
    }
  } else if (v.stream != nullptr) {
    const SampleRing& ring = v.stream->ring();
    if (ring.format() == SampleFormat::kInt16) {
      const auto span = ring.read_spans_i16(frames);
      p = reinterpret_cast<const char*>(span.first);
      bytes = span.first_frames * SampleRing::bytes_per_frame(SampleFormat::kInt16);
    } else {
      const auto span = ring.read_spans(frames);
      p = reinterpret_cast<const char*>(span.first);
      bytes = span.first_frames * SampleRing::bytes_per_frame(SampleFormat::kFloat);
    }
  }
  for (std::size_t at = 0; at < bytes; at += 64) __builtin_prefetch(p + at, 0, 0);
}

bool Engine::streams_ready(std::uint32_t frames) const noexcept {
  for (std::uint32_t i = 0; i < active_count_; ++i) {
    const Voice& v = voices_[active_[i]];
    if (v.state == Voice::State::kRetiring || !v.src->streamed || v.stream == nullptr) continue;
    const std::int64_t need = source_frames_for(v, frames);
    std::int64_t from_memory = v.reading_memory ? std::max<std::int64_t>(0, v.src->memory_frames - v.pos) : 0;
    if (from_memory >= need) continue;
    if (v.stream->finished()) continue;
    if (static_cast<std::int64_t>(v.stream->ring().readable_frames()) + from_memory < need) return false;
  }
  return true;
}

}  // namespace stemd::engine
