// The mixer (see stemd/engine.hpp). Everything below process() runs on the audio thread [audio]
// and obeys the real-time rules: no allocation, no locks, no I/O, no logging, bounded loops.
// The constructor and destructor run on the control thread [control].
//
// A voice is a small state machine:
//   Playing ──ring short──▶ Starved ──data back──▶ Playing (fade in)
//   Playing ──stop──▶ Stopping ──fade done──▶ ended (retired)
//   Playing ──seek──▶ Seeking ──fade done──▶ Playing at the new position (fade in)
//   Playing ──pause──▶ Pausing ──fade done──▶ Paused ──resume──▶ Playing (fade in)
// and every transition that would be a step in the signal goes through the `env` ramp.
// Voices mix into their deck's bus (A–D); each deck's level ramp is applied as the decks are
// summed into the master.
#include "stemd/engine.hpp"

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

std::uint64_t now_ns() noexcept {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);  // vDSO: no syscall, never blocks
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000ull + static_cast<std::uint64_t>(ts.tv_nsec);
}

}  // namespace

struct Engine::Voice {
  enum class State : std::uint8_t { kFree, kPlaying, kStarved, kStopping, kSeeking, kRetiring, kPausing, kPaused };

  State state = State::kFree;
  std::uint32_t generation = 0;
  const VoiceSource* src = nullptr;
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
  std::uint64_t underruns = 0;
  bool jump_pending = false;      // a seek waits for the fade-out to reach 0
  Stream* seek_stream = nullptr;  // its new stream (null for in-memory sources)
  std::int64_t seek_pos = 0;
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
};

namespace {
struct PullCtx {
  Engine* engine;
  void* voice;
};
}  // namespace

Engine::Engine(const EngineConfig& cfg)
    : cfg_(cfg),
      declick_frames_(
          std::max<std::uint32_t>(1, static_cast<std::uint32_t>(std::lround(cfg.declick_ms * 1e-3 * cfg.sample_rate)))),
      voices_(new Voice[cfg.max_voices]),
      telemetry_(new VoiceTelemetry[cfg.max_voices]),
      decks_(static_cast<std::size_t>(cfg.max_block_frames) * 2 * kNumBuses),
      scratch_(static_cast<std::size_t>(cfg.max_block_frames) * 2),
      gains_(cfg.max_block_frames),
      gains_r_(cfg.max_block_frames),
      schedule_(std::make_unique<Schedule>(kMaxScheduled)),
      sched_play_(cfg.max_voices, Schedule::kNone),
      sched_play_ids_(cfg.max_voices),
      sched_play_pos_(cfg.max_voices) {
  active_.resize(cfg.max_voices);
  deck_eq_ = std::make_unique<DeckEq[]>(kNumDecks);
  for (int d = 0; d < kNumDecks; ++d) deck_eq_[d] = DeckEq(DeckEqConfig{static_cast<double>(cfg.sample_rate)});
  rs_out_.resize(static_cast<std::size_t>(cfg.max_block_frames) * 2);
  master_ = Ramp{cfg.master};
  limiter_release_ = 1.0f - std::exp(-1.0f / (std::max(1.0f, cfg.limiter_release_ms) * 1e-3f * cfg.sample_rate));
  const auto q = static_cast<ResamplerQuality>(std::clamp(cfg.resample_quality, 0, 2));
  rs_pool_.reserve(cfg.max_resampled_voices);
  rs_free_.reserve(cfg.max_resampled_voices);
  for (std::uint32_t i = 0; i < cfg.max_resampled_voices; ++i) {
    std::string error;
    auto r = Resampler::create(q, error);
    if (!r) break;  // out of memory: fewer resampled voices (the control thread counts the pool)
    rs_free_.push_back(r.get());
    rs_pool_.push_back(std::move(r));
  }
  cfg_.max_resampled_voices = static_cast<std::uint32_t>(rs_pool_.size());
  st_out_.resize(static_cast<std::size_t>(cfg.max_block_frames) * 2);
  st_pool_.reserve(cfg.max_stretched_voices);
  st_free_.reserve(cfg.max_stretched_voices);
  for (std::uint32_t i = 0; i < cfg.max_stretched_voices; ++i) {
    std::string error;
    auto st = Stretcher::create(cfg.sample_rate, error);
    if (!st) break;
    st_free_.push_back(st.get());
    st_pool_.push_back(std::move(st));
  }
  cfg_.max_stretched_voices = static_cast<std::uint32_t>(st_pool_.size());
}

bool Engine::attach_stretcher(Voice& v) noexcept {
  if (v.st != nullptr) return true;
  if (st_free_.empty()) {
    metrics_.events_dropped.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  v.st = st_free_.back();
  st_free_.pop_back();
  v.st->reset();
  v.st->set_tempo(v.tempo);
  return true;
}

// The stretcher's input: the voice's frames at the engine rate (through its resampler if any).
std::uint32_t Engine::stretch_pull(void* ctx, float* scratch, std::uint32_t max_frames, const float** frames) noexcept {
  auto* c = static_cast<PullCtx*>(ctx);
  Voice& v = *static_cast<Voice*>(c->voice);
  if (v.rs != nullptr) {
    const std::uint32_t n = v.rs->process(scratch, max_frames, &Engine::pull_thunk, ctx);
    *frames = scratch;
    return n;
  }
  return c->engine->fetch(v, scratch, max_frames, frames);
}

Engine::~Engine() = default;

bool Engine::attach_resampler(Voice& v) noexcept {
  if (v.rs != nullptr) return true;
  if (rs_free_.empty()) {
    metrics_.events_dropped.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  v.rs = rs_free_.back();
  rs_free_.pop_back();  // capacity reserved: never allocates
  v.rs->reset();
  v.rs->set_ratio(1.0, 0);
  return true;
}

void Engine::release_resampler(Voice& v) noexcept {
  if (v.rs == nullptr) return;
  rs_free_.push_back(v.rs);  // capacity == pool size: never allocates
  v.rs = nullptr;
}

// Source frames a voice needs to produce `out_frames` output frames (with the resampler's
// look-ahead margin).
std::int64_t Engine::source_frames_for(const Voice& v, std::uint32_t out_frames) const noexcept {
  double frames = out_frames;
  std::int64_t margin = 0;
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
  return c->engine->fetch(*static_cast<Voice*>(c->voice), scratch, max_frames, frames);
}

// The voice's next frames at the engine's rate: straight from its source, or through its
// resampler (which pulls from the source as it needs).
std::uint32_t Engine::produce(Voice& v, float* dst, std::uint32_t frames, const float** src) noexcept {
  if (v.st != nullptr) {
    *src = st_out_.data();
    if (v.draining) return v.st->drain(st_out_.data(), frames);
    PullCtx ctx{this, &v};
    return v.st->process(st_out_.data(), frames, &Engine::stretch_pull, &ctx);
  }
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

Engine::Voice* Engine::find(VoiceId id, std::uint32_t gen) noexcept {
  if (id >= cfg_.max_voices) return nullptr;
  Voice& v = voices_[id];
  if (v.state == Voice::State::kFree || v.state == Voice::State::kRetiring || v.generation != gen) return nullptr;
  return &v;
}

void Engine::push_event(const Event& e) noexcept {
  if (!events_.push(e)) metrics_.events_dropped.fetch_add(1, std::memory_order_relaxed);
}

bool Engine::retire(Stream* s, VoiceId id, std::uint32_t gen, bool voice_ended) noexcept {
  return retired_.push(Retired{voice_ended, s, id, gen});
}

std::size_t Engine::scheduled() const noexcept { return schedule_->size(); }
std::uint64_t Engine::schedule_ops() const noexcept { return schedule_->ops(); }
bool Engine::tone_active() const noexcept { return tones_[0].active || tones_[1].active; }

void Engine::apply_commands() noexcept {
  // Bounded per call (kMaxCommandsPerCallback); the rest wait for the next callback.
  Command c;
  for (std::size_t i = 0; i < kMaxCommandsPerCallback && commands_.pop(c); ++i) {
    if (c.at_frame > frame_) {
      schedule(c);  // O(log n)
      continue;
    }
    if (c.at_frame >= 0 && c.at_frame < frame_) {
      metrics_.commands_late.fetch_add(1, std::memory_order_relaxed);
      push_event(Event{EventType::kCommandLate, EndReason::kError, c.voice, c.generation,
                       static_cast<std::uint64_t>(frame_ - c.at_frame), frame_});
    }
    apply(c);
    metrics_.commands_applied.fetch_add(1, std::memory_order_relaxed);
    if (c.at_frame >= 0) metrics_.schedule_done.fetch_add(1, std::memory_order_relaxed);
  }
}

// Into the schedule, O(log n); ties on the frame keep their arrival order. A full schedule
// refuses the command: it is never applied early (a play timed for later must not start now).
void Engine::schedule(const Command& c) noexcept {
  const bool play = c.type == CommandType::kPlay;
  if (play && (c.voice >= cfg_.max_voices || sched_play_[c.voice] != Schedule::kNone)) {
    // A second scheduled play for one voice id: a control-thread bug, refused as start_voice
    // refuses a play for a busy slot (stream handed back, no voice ended).
    if (c.play.stream != nullptr && !retire(c.play.stream, c.voice, c.generation, false)) {
      metrics_.events_dropped.fetch_add(1, std::memory_order_relaxed);
    }
    push_event(Event{EventType::kCommandDropped, EndReason::kError, c.voice, c.generation, 0, frame_});
    metrics_.schedule_done.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  const Schedule::Handle h = schedule_->push(c);
  if (h == Schedule::kNone) {
    metrics_.schedule_overflows.fetch_add(1, std::memory_order_relaxed);
    refuse_scheduled(c, EndReason::kError);
    return;
  }
  if (play) {
    sched_play_[c.voice] = h;
    sched_play_pos_[c.voice] = sched_play_count_;
    sched_play_ids_[sched_play_count_++] = c.voice;
  }
}

// A scheduled command that will not be applied (refused, cancelled, cleared): a play's voice is
// reported ended and handed back (so the control thread frees it), a seek's stream goes back.
void Engine::refuse_scheduled(const Command& c, EndReason why) noexcept {
  metrics_.schedule_done.fetch_add(1, std::memory_order_relaxed);
  if (c.type == CommandType::kPlay) {
    push_event(Event{EventType::kVoiceEnded, why, c.voice, c.generation, 0, frame_});
    if (!retire(c.play.stream, c.voice, c.generation, true)) {
      metrics_.events_dropped.fetch_add(1, std::memory_order_relaxed);
    }
    metrics_.voices_ended.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  if (c.type == CommandType::kSeek && c.play.stream != nullptr) retire(c.play.stream, c.voice, c.generation, false);
  if (why == EndReason::kError) {
    push_event(Event{EventType::kCommandDropped, EndReason::kError, c.voice, c.generation, 0, frame_});
  }
}

// Forgets that voice `id` has a play in the schedule (it left the schedule).
void Engine::unschedule_play(VoiceId id) noexcept {
  if (id >= cfg_.max_voices || sched_play_[id] == Schedule::kNone) return;
  const std::uint32_t at = sched_play_pos_[id];
  const VoiceId moved = sched_play_ids_[--sched_play_count_];
  sched_play_ids_[at] = moved;
  sched_play_pos_[moved] = at;
  sched_play_[id] = Schedule::kNone;
}

// Everything scheduled is dropped (O(n log n) once; the schedule is empty afterwards). Should the
// retire queue be full (it does not happen: its capacity exceeds the voices and the schedule
// together), what could not be handed back stays scheduled rather than leak.
void Engine::clear_schedule() noexcept {
  while (!schedule_->empty()) {
    const Command& top = schedule_->top();
    const bool needs_retire =
        top.type == CommandType::kPlay || (top.type == CommandType::kSeek && top.play.stream != nullptr);
    if (needs_retire && retired_.write_available() == 0) {
      metrics_.events_dropped.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    const Command c = schedule_->pop();
    if (c.type == CommandType::kPlay) unschedule_play(c.voice);
    refuse_scheduled(c, EndReason::kStopped);
  }
}

void Engine::apply_due() noexcept {
  // At most kMaxScheduled entries, O(log n) each.
  while (!schedule_->empty() && schedule_->top_frame() <= frame_) {
    const Command c = schedule_->pop();
    if (c.type == CommandType::kPlay) unschedule_play(c.voice);
    apply(c);
    metrics_.commands_applied.fetch_add(1, std::memory_order_relaxed);
    metrics_.schedule_done.fetch_add(1, std::memory_order_relaxed);
  }
}

bool Engine::cancel_scheduled_plays(VoiceId id, std::uint32_t generation, bool any_voice) noexcept {
  bool cancelled = false;
  // The voice's end goes out before its retiree (as for any voice), so the control thread
  // frees it; a full retire queue keeps the play scheduled (cannot happen: its capacity
  // exceeds the voice count).
  auto cancel = [&](VoiceId v) {
    const Schedule::Handle h = sched_play_[v];
    if (h == Schedule::kNone || retired_.write_available() == 0) return false;
    const Command c = schedule_->remove(h);
    unschedule_play(v);
    refuse_scheduled(c, EndReason::kStopped);
    return true;
  };
  if (any_voice) {
    for (std::uint32_t i = sched_play_count_; i-- > 0;) cancelled |= cancel(sched_play_ids_[i]);
    return cancelled;
  }
  if (id < cfg_.max_voices && sched_play_[id] != Schedule::kNone &&
      schedule_->at(sched_play_[id]).generation == generation) {
    cancelled = cancel(id);
  }
  return cancelled;
}

// ---------------------------------------------------------------- the test tone
// A sine from a phase accumulator, with 10 ms linear fades at both ends, added to the direct
// bus. A new tone replaces one still sounding: the old one fades out over the declick time.
void Engine::start_tone(const Command& c) noexcept {
  release_tones(declick_frames_);
  Tone* t = &tones_[0];
  if (t->active) t = &tones_[1];
  if (t->active && tones_[0].release_left < t->release_left) t = &tones_[0];  // both busy: the nearer its end
  const auto length = static_cast<std::int64_t>(c.frames);
  if (length <= 0 || !(c.value > 0.0f) || !(c.tone_hz > 0.0)) {
    return;  // a stop: the sounding tone fades out, nothing new starts
  }
  t->active = true;
  t->phase = 0.0;
  t->inc = c.tone_hz / cfg_.sample_rate;
  t->level = c.value;
  t->pos = 0;
  t->length = length;
  t->fade = std::min<std::int64_t>(length / 2, std::llround(0.01 * cfg_.sample_rate));
  t->release_left = t->release_len = 0;
  metrics_.tone_hz.store(static_cast<float>(c.tone_hz), std::memory_order_relaxed);
}

void Engine::release_tones(std::uint32_t frames) noexcept {
  for (Tone& t : tones_) {
    if (!t.active) continue;
    const std::int64_t n = std::max<std::int64_t>(1, frames);
    const std::int64_t left = std::min(n, t.length - t.pos);
    if (t.release_left > 0 && t.release_left <= left) continue;  // already fading out sooner
    t.release_len = n;
    t.release_left = left;
  }
}

void Engine::render_tones(float* bus, std::uint32_t frames) noexcept {
  constexpr double kTwoPi = 6.283185307179586476925286766559;
  for (Tone& t : tones_) {
    if (!t.active) continue;
    std::uint32_t i = 0;
    for (; i < frames && t.pos < t.length; ++i) {
      double env = 1.0;
      if (t.pos < t.fade) env = static_cast<double>(t.pos) / static_cast<double>(t.fade);
      if (t.length - t.pos < t.fade) env = static_cast<double>(t.length - t.pos) / static_cast<double>(t.fade);
      if (t.release_len > 0) {
        if (t.release_left <= 0) break;
        env *= static_cast<double>(t.release_left) / static_cast<double>(t.release_len);
        --t.release_left;
      }
      const auto s = static_cast<float>(t.level * env * std::sin(kTwoPi * t.phase));
      bus[2 * i] += s;
      bus[2 * i + 1] += s;
      t.phase += t.inc;
      if (t.phase >= 1.0) t.phase -= 1.0;
      ++t.pos;
    }
    if (t.pos >= t.length || (t.release_len > 0 && t.release_left <= 0)) t.active = false;
  }
  if (!tone_active()) metrics_.tone_hz.store(0.0f, std::memory_order_relaxed);
}

void Engine::start_voice(const Command& c) noexcept {
  if (c.voice >= cfg_.max_voices || voices_[c.voice].state != Voice::State::kFree || c.play.source == nullptr) {
    // A control-thread bug, never silently leaked: hand the stream straight back.
    if (c.play.stream != nullptr && !retire(c.play.stream, c.voice, c.generation, false)) {
      // Retire queue full: cannot happen with max_voices < capacity; drop the reference
      // rather than block (counted so tests notice).
      metrics_.events_dropped.fetch_add(1, std::memory_order_relaxed);
    }
    push_event(Event{EventType::kCommandDropped, EndReason::kError, c.voice, c.generation, 0, frame_});
    return;
  }
  Voice& v = voices_[c.voice];
  v.state = Voice::State::kPlaying;
  v.generation = c.generation;
  v.src = c.play.source;
  v.stream = c.play.stream;
  v.pos = std::max<std::int64_t>(0, c.play.position);
  v.reading_memory = false;  // set below, once the loop region is known
  v.loop = c.play.loop;
  v.loop_start = std::clamp<std::int64_t>(c.play.loop_start, 0, std::max<std::int64_t>(0, v.src->total_frames - 1));
  v.loop_end = c.play.loop_end > v.loop_start ? c.play.loop_end : v.src->total_frames;
  if (v.src->total_frames > 0) v.loop_end = std::min(v.loop_end, v.src->total_frames);
  v.passes_left = c.play.loop_count;
  // The head serves a streamed voice unless its region ends inside it (then the stream starts
  // at the voice's first frame: the control thread makes the same decision).
  v.reading_memory = v.src->streamed && v.pos < v.src->memory_frames && v.loop_end >= v.src->memory_frames;
  v.gain.jump(c.play.gain);
  v.pan.jump(0.0f);
  v.deck = c.play.deck < kNumBuses ? c.play.deck : kNumDecks - 1;
  v.rs = nullptr;
  v.rs_switch = false;
  v.draining = false;
  v.base_ratio = v.src->sample_rate > 0 ? static_cast<double>(v.src->sample_rate) / cfg_.sample_rate : 1.0;
  v.ratio = v.base_ratio * static_cast<double>(c.play.rate > 0 ? c.play.rate : 1.0f);
  if (v.ratio != 1.0 && attach_resampler(v)) v.rs->set_ratio(v.ratio, 0);  // the first set applies at once
  v.st = nullptr;
  v.st_switch = false;
  v.tempo = std::clamp(static_cast<double>(c.play.tempo > 0 ? c.play.tempo : 1.0f), 0.25, 4.0);
  if (v.tempo != 1.0) attach_stretcher(v);
  v.hold = false;
  v.underruns = 0;
  v.seek_stream = nullptr;
  v.jump_pending = false;
  v.ended_reported = false;
  if (v.pos > 0) {  // entering mid-file: fade in; the very start of a file plays as authored
    v.env.jump(0.0f);
    v.env.set(1.0f, declick_frames_);
  } else {
    v.env.jump(1.0f);
  }
  active_[active_count_++] = c.voice;
  metrics_.voices_active.store(active_count_, std::memory_order_relaxed);
  push_event(Event{EventType::kVoiceStarted, EndReason::kEndOfFile, c.voice, c.generation, 0, frame_});
  if ((v.ratio != 1.0 && v.rs == nullptr) || (v.tempo != 1.0 && v.st == nullptr)) {
    end_voice(v, EndReason::kError);  // no resampler or stretcher left
  }
}

void Engine::apply(const Command& c) noexcept {
  switch (c.type) {
    case CommandType::kPlay:
      start_voice(c);
      return;
    case CommandType::kMasterGain:
      master_.set(c.value, c.frames);
      return;
    case CommandType::kDeckGain:
      if (c.deck < kNumDecks) deck_gain_[c.deck].set(c.value, c.frames, static_cast<Curve>(c.curve & 3));
      return;
    case CommandType::kDeckEq:
      if (c.deck < kNumDecks && c.band < 3) deck_eq_[c.deck].set_band_gain(c.band, c.value, c.frames);
      return;
    case CommandType::kTone:
      start_tone(c);
      return;
    case CommandType::kClearSchedule:
      clear_schedule();
      return;
    case CommandType::kStopAll:
      cancel_scheduled_plays(0, 0, true);  // and nothing scheduled starts afterwards
      release_tones(std::max<std::uint32_t>(c.frames, 1));
      for (std::uint32_t i = 0; i < active_count_; ++i) {
        Voice& v = voices_[active_[i]];
        if (v.state == Voice::State::kRetiring) continue;
        drop_pending_seek(v);
        v.state = Voice::State::kStopping;
        v.retire_reason = EndReason::kStopped;
        v.env.set(0.0f, std::max<std::uint32_t>(c.frames, 1));
      }
      return;
    default:
      break;
  }

  Voice* v = find(c.voice, c.generation);
  if (v == nullptr && c.type == CommandType::kStop && cancel_scheduled_plays(c.voice, c.generation, false)) return;
  if (v == nullptr) {
    // Stale id (the voice already ended). A seek carries a fresh stream that must go back.
    if (c.type == CommandType::kSeek && c.play.stream != nullptr) retire(c.play.stream, c.voice, c.generation, false);
    push_event(Event{EventType::kCommandDropped, EndReason::kError, c.voice, c.generation, 0, frame_});
    return;
  }
  switch (c.type) {
    case CommandType::kStop:
      drop_pending_seek(*v);
      v->state = Voice::State::kStopping;
      v->retire_reason = EndReason::kStopped;
      // Always a fade, however short the request: a stop never clicks.
      v->env.set(0.0f, std::max(c.frames, std::min<std::uint32_t>(declick_frames_, 64)),
                 static_cast<Curve>(c.curve & 3));
      return;
    case CommandType::kSetGain:
      v->gain.set(c.value, c.frames, static_cast<Curve>(c.curve & 3));
      return;
    case CommandType::kSetPan:
      v->pan.set(std::clamp(c.value, -1.0f, 1.0f), c.frames);
      return;
    case CommandType::kSetTempo: {
      v->tempo = std::clamp(static_cast<double>(c.value), 0.25, 4.0);
      if (v->st != nullptr) {
        v->st->set_tempo(v->tempo);
      } else if (v->tempo != 1.0) {
        // Into the stretcher: fade out, attach, fade in (as for a rate switch).
        v->st_switch = true;
        fade_through(*v);
      }
      return;
    }
    case CommandType::kSetRate: {
      const double rate = std::clamp(static_cast<double>(c.value), 0.25, 4.0);
      v->ratio = v->base_ratio * rate;
      v->rate_glide = c.frames;
      if (v->rs != nullptr) {
        v->rs->set_ratio(v->ratio, c.frames);
      } else if (v->ratio != 1.0) {
        // Leaving the bit-exact path: fade out, attach a resampler with no history, fade in —
        // a resampler started mid-signal would click.
        v->rs_switch = true;
        fade_through(*v);
      }
      return;
    }
    case CommandType::kPause:
      v->hold = true;
      if (v->state == Voice::State::kPlaying || v->state == Voice::State::kStarved) {
        v->state = Voice::State::kPausing;
        v->env.set(0.0f, std::max<std::uint32_t>(c.frames, 1));
      }
      return;
    case CommandType::kResume:
      v->hold = false;
      if (v->state == Voice::State::kPaused || v->state == Voice::State::kPausing) {
        v->state = Voice::State::kPlaying;
        v->env.set(1.0f, std::max<std::uint32_t>(c.frames, 1));
      }
      return;
    case CommandType::kSetLoop:
      v->loop = c.flag;
      if (v->stream != nullptr) v->stream->set_loop(c.flag);
      if (v->seek_stream != nullptr) v->seek_stream->set_loop(c.flag);
      return;
    case CommandType::kSeek:
      if (v->state == Voice::State::kStopping) {  // too late: the voice is going away
        if (c.play.stream != nullptr) retire(c.play.stream, c.voice, v->generation, false);
        return;
      }
      drop_pending_seek(*v);  // a newer seek replaces a pending one
      v->jump_pending = true;
      v->seek_stream = c.play.stream;
      v->seek_pos = std::max<std::int64_t>(0, c.play.position);
      if (v->state == Voice::State::kStarved || v->state == Voice::State::kPaused) {
        v->env.jump(0.0f);
      } else {
        v->env.set(0.0f, declick_frames_);
      }
      v->state = Voice::State::kSeeking;
      return;
    default:
      return;
  }
}

// Produces up to `frames` frames of the voice's source; *src points at them (in the source's
// memory; in the ring when `dst` is null — valid until mix_segment consumes it; else copied from the ring
// into `dst`). Returns 0 at end of data or when the ring is empty.
std::uint32_t Engine::fetch(Voice& v, float* dst, std::uint32_t frames, const float** src) noexcept {
  const VoiceSource& s = *v.src;
  if (!s.streamed) {
    if (v.pos >= v.loop_end) {
      if (!v.loop || v.loop_end <= v.loop_start) return 0;
      if (v.passes_left > 0 && --v.passes_left == 0) return 0;  // the last pass is over
      v.pos = v.loop_start;  // sample-exact seam: the next frame is the region's first
    }
    const auto n = static_cast<std::uint32_t>(std::min<std::int64_t>(frames, v.loop_end - v.pos));
    *src = s.frames + v.pos * 2;
    v.pos += n;
    return n;
  }
  if (v.reading_memory) {
    if (v.pos < s.memory_frames) {
      const auto n = static_cast<std::uint32_t>(std::min<std::int64_t>(frames, s.memory_frames - v.pos));
      *src = s.frames + v.pos * 2;
      v.pos += n;
      return n;
    }
    v.reading_memory = false;
  }
  if (v.stream == nullptr) return 0;
  std::uint32_t n = 0;
  if (dst == nullptr) {
    // In place: the frames up to the ring's wrap point, left in the ring (the loader cannot
    // reuse them) until mix_segment has mixed them and calls release_ring().
    const auto span = v.stream->ring().read_spans(frames);
    n = static_cast<std::uint32_t>(span.first_frames);
    *src = span.first;
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

// The master's safety limiter (see EngineConfig). A block whose peaks stay below the
// threshold while the gain is 1 is not touched at all: bit-transparent.
void Engine::limit(float* block, std::uint32_t frames) noexcept {
  const float t = cfg_.limiter_threshold;
  if (limiter_gain_ == 1.0f) {
    float peak = 0.0f;
    for (std::uint32_t i = 0; i < frames * 2; ++i) peak = std::max(peak, std::fabs(block[i]));
    if (peak <= t) return;
  }
  std::uint64_t reduced = 0;
  float min_gain = limiter_gain_;
  for (std::uint32_t f = 0; f < frames; ++f) {
    const float peak = std::max(std::fabs(block[2 * f]), std::fabs(block[2 * f + 1]));
    float g = limiter_gain_ + (1.0f - limiter_gain_) * limiter_release_;  // recover toward 1
    if (g > 0.999999f) g = 1.0f;
    if (peak * g > t) g = t / peak;  // instant attack: the peak lands on the threshold
    limiter_gain_ = g;
    if (g < 1.0f) {
      block[2 * f] *= g;
      block[2 * f + 1] *= g;
      ++reduced;
      min_gain = std::min(min_gain, g);
    }
  }
  if (reduced) {
    metrics_.limiter_frames.fetch_add(reduced, std::memory_order_relaxed);
    if (min_gain < metrics_.limiter_min_gain.load(std::memory_order_relaxed)) {
      metrics_.limiter_min_gain.store(min_gain, std::memory_order_relaxed);
    }
  }
}

// The old crowdstream server's output stage: y = 0.9·tanh(0.9·x) on every sample (× 0.81 =
// −1.8 dB at small levels, bounded by ±0.9). std::tanh neither allocates nor locks.
void Engine::soft_clip(float* block, std::uint32_t frames) noexcept {
  for (std::uint32_t i = 0; i < frames * 2; ++i) block[i] = 0.9f * std::tanh(0.9f * block[i]);
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

// A pending seek is abandoned (stop, stop-all, a newer seek): its stream goes back.
void Engine::drop_pending_seek(Voice& v) noexcept {
  if (v.seek_stream != nullptr) retire(v.seek_stream, id_of(v), v.generation, false);
  v.seek_stream = nullptr;
  v.jump_pending = false;
}

// Fades a playing voice to silence and back, doing what is pending (a seek's jump, attaching
// a resampler or stretcher) at the bottom. A paused or starved voice is silent already: its
// switch happens at once (render_voice).
void Engine::fade_through(Voice& v) noexcept {
  if (v.state != Voice::State::kPlaying) return;
  v.state = Voice::State::kSeeking;
  v.env.set(0.0f, declick_frames_);
}

VoiceId Engine::id_of(const Voice& v) const noexcept { return static_cast<VoiceId>(&v - voices_.get()); }

void Engine::end_voice(Voice& v, EndReason why) noexcept {
  v.retire_reason = why;
  v.state = Voice::State::kRetiring;  // removed from the active list by process() once retired
}

// Fetches and mixes up to `count` frames with the voice's current ramps; fewer only when the
// data runs out. Each pass makes progress or stops, so the loop is bounded by `count`.
std::uint32_t Engine::mix_segment(Voice& v, float* out, std::uint32_t count) noexcept {
  std::uint32_t done = 0;
  while (done < count) {
    const float* p = nullptr;
    const std::uint32_t n = produce(v, scratch_.data(), count - done, &p);
    if (n == 0) break;
    float* o = out + static_cast<std::size_t>(done) * 2;
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
      for (std::uint32_t i = 0; i < n; ++i) gains_[i] = v.gain.next() * v.env.next();
      mix_gains(o, p, gains_.data(), n);
    } else {
      const float g = v.gain.value() * v.env.value();
      if (g == 1.0f) {
        mix_add(o, p, n);  // unity: bit-exact copy of the source into the bus
      } else if (g != 0.0f) {
        mix_gain(o, p, n, g);
      }
    }
    if (v.ring_held != 0) {  // mixed: the frames fetch() lent in place go back to the loader
      v.stream->ring().consume(v.ring_held);
      v.ring_held = 0;
    }
    done += n;
  }
  return done;
}

void Engine::starve(Voice& v) noexcept {
  v.env.jump(0.0f);
  v.state = Voice::State::kStarved;
  ++v.underruns;
  metrics_.voice_underruns.fetch_add(1, std::memory_order_relaxed);
  push_event(Event{EventType::kVoiceUnderrun, EndReason::kError, id_of(v), v.generation, v.underruns, frame_});
}

void Engine::render_voice(Voice& v, float* out, std::uint32_t frames) noexcept {
  std::uint32_t done = 0;
  // Each pass renders one segment; a block has at most a handful (fade end, seek jump, resume),
  // so the bound only guards against a logic error.
  for (int guard = 0; done < frames && guard < 16; ++guard) {
    if (v.state == Voice::State::kRetiring || v.state == Voice::State::kFree) return;

    if (v.state == Voice::State::kSeeking && !v.env.active() && v.env.value() == 0.0f) {
      // The old position has faded out: jump (or, for a rate/tempo switch alone, stay).
      const bool jump = v.jump_pending;
      if (jump) {
        if (v.stream != nullptr && !retire(v.stream, id_of(v), v.generation, false)) {
          return;  // retire queue full: stay silent this block and try again next one
        }
        v.stream = v.seek_stream;
        v.pos = v.seek_pos;
        v.reading_memory = v.src->streamed && v.pos < v.src->memory_frames && v.loop_end >= v.src->memory_frames;
        v.seek_stream = nullptr;
        v.jump_pending = false;
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
        return;
      }
      v.state = Voice::State::kPlaying;
      v.env.set(1.0f, declick_frames_);
    }
    if (v.state == Voice::State::kPausing && !v.env.active() && v.env.value() == 0.0f) v.state = Voice::State::kPaused;
    if ((v.rs_switch || v.st_switch) && v.env.value() == 0.0f && !v.env.active() &&
        (v.state == Voice::State::kPaused || v.state == Voice::State::kStarved)) {
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

    // Out of data before `want`.
    if (v.state == Voice::State::kSeeking) {  // nothing left at the old position: jump now
      v.env.jump(0.0f);
      continue;
    }
    if (v.draining) {  // the resampler's tail is out: the end
      end_voice(v, v.src->streamed && v.stream != nullptr ? v.stream->end_reason() : EndReason::kEndOfFile);
      return;
    }
    if (v.state == Voice::State::kPausing && v.src->streamed && v.stream != nullptr && !v.stream->finished()) {
      v.env.jump(0.0f);  // the ring ran dry during the pause fade: paused now
      v.state = Voice::State::kPaused;
      return;
    }
    if (v.state == Voice::State::kStopping) {
      end_voice(v, EndReason::kStopped);
      return;
    }
    if (!v.src->streamed) {
      if ((v.rs != nullptr || v.st != nullptr) && v.state != Voice::State::kStopping) {  // play out the tail first
        v.draining = true;
        continue;
      }
      end_voice(v, EndReason::kEndOfFile);
      return;
    }
    if (v.stream == nullptr) {
      end_voice(v, EndReason::kError);
      return;
    }
    if (!v.stream->finished()) {  // the loader fell behind between our check and the read
      starve(v);
      return;
    }
    if (v.stream->ring().readable_frames() > 0) continue;  // last frames landed just now
    if ((v.rs != nullptr || v.st != nullptr) && v.state != Voice::State::kStopping) {
      v.draining = true;
      continue;
    }
    end_voice(v, v.stream->end_reason());
    return;
  }
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

void Engine::process(float* out, std::uint32_t frames, bool device_underflow) noexcept {
  const std::uint64_t t0 = now_ns();
  metrics_.last_callback_ns.store(t0, std::memory_order_relaxed);
  metrics_.clock.publish(frame_, t0);
  metrics_.audio_thread.store(static_cast<unsigned long>(pthread_self()), std::memory_order_relaxed);
  ScopedFlushDenormals no_denormals;
  if (device_underflow) metrics_.device_underflows.fetch_add(1, std::memory_order_relaxed);

  apply_commands();

  bool streams_consumed = false;
  std::uint32_t min_fill = 1000;
  std::uint32_t streams = 0;

  std::uint32_t offset = 0;
  while (offset < frames) {
    apply_due();
    std::uint32_t n = std::min(frames - offset, cfg_.max_block_frames);
    if (!schedule_->empty()) {  // split the block where the next scheduled command is due
      const std::int64_t until = schedule_->top_frame() - frame_;
      if (until > 0 && until < n) n = static_cast<std::uint32_t>(until);
    }
    float* block = out + static_cast<std::size_t>(offset) * 2;
    std::memset(block, 0, sizeof(float) * 2 * n);
    const std::size_t stride = static_cast<std::size_t>(cfg_.max_block_frames) * 2;
    bool deck_used[kNumBuses] = {};

    for (std::uint32_t i = 0; i < active_count_;) {
      const VoiceId id = active_[i];
      Voice& v = voices_[id];
      float* bus = decks_.data() + stride * v.deck;
      if (!deck_used[v.deck]) {
        std::memset(bus, 0, sizeof(float) * 2 * n);
        deck_used[v.deck] = true;
      }
      if (v.state != Voice::State::kRetiring) render_voice(v, bus, n);
      if (v.state == Voice::State::kRetiring) {
        // Report the end, then hand the stream back and free the slot (the event goes first so
        // the control thread sees it before the slot can be reused). Retire queue full: retry
        // next block.
        if (!v.ended_reported) {
          push_event(Event{EventType::kVoiceEnded, v.retire_reason, id, v.generation, v.underruns, frame_});
          metrics_.voices_ended.fetch_add(1, std::memory_order_relaxed);
          v.ended_reported = true;
        }
        if (!retire(v.stream, id, v.generation, true)) {
          ++i;
          continue;
        }
        v.stream = nullptr;
        release_resampler(v);
        if (v.st != nullptr) {
          st_free_.push_back(v.st);  // capacity == pool size: never allocates
          v.st = nullptr;
        }
        v.state = Voice::State::kFree;
        telemetry_[id].state.store(0, std::memory_order_relaxed);
        active_[i] = active_[--active_count_];
        continue;
      }
      std::uint32_t fill = 1000;
      if (v.stream != nullptr) {
        ++streams;
        streams_consumed = true;
        const auto cap = v.stream->ring().capacity_frames();
        fill = static_cast<std::uint32_t>(v.stream->ring().readable_frames() * 1000 / (cap ? cap : 1));
        min_fill = std::min(min_fill, fill);
      }
      VoiceTelemetry& t = telemetry_[id];
      std::int64_t heard = v.pos;
      if (v.rs != nullptr) {
        heard -= static_cast<std::int64_t>(std::lround(v.rs->lookahead_frames()));
        if (heard < 0 && v.src->total_frames > 0) heard += v.src->total_frames;
      }
      t.position.store(std::max<std::int64_t>(0, heard), std::memory_order_relaxed);
      t.ring_fill_permille.store(fill, std::memory_order_relaxed);
      t.generation.store(v.generation, std::memory_order_relaxed);
      t.state.store(telemetry_state(v), std::memory_order_relaxed);
      ++i;
    }

    if (tone_active()) {  // the test tone: straight to the master, through the direct bus
      float* bus = decks_.data() + stride * kDirectBus;
      if (!deck_used[kDirectBus]) {
        std::memset(bus, 0, sizeof(float) * 2 * n);
        deck_used[kDirectBus] = true;
      }
      render_tones(bus, n);
    }

    // Sum the decks into the master, each through its EQ (before the fader, as on a DJ mixer;
    // bit-transparent when flat) and its level ramp.
    for (int d = 0; d < kNumBuses; ++d) {
      Ramp& g = deck_gain_[d];
      if (!deck_used[d]) {
        for (std::uint32_t f = 0; f < n && g.active(); ++f) g.next();  // a ramp keeps time when idle
        if (d < kNumDecks) deck_eq_[d].skip(n);
        continue;
      }
      float* bus = decks_.data() + stride * static_cast<std::size_t>(d);
      if (d < kNumDecks) deck_eq_[d].process(bus, n);
      if (g.active()) {
        for (std::uint32_t f = 0; f < n; ++f) gains_[f] = g.next();
        mix_gains(block, bus, gains_.data(), n);
      } else if (g.value() == 1.0f) {
        mix_add(block, bus, n);
      } else if (g.value() != 0.0f) {
        mix_gain(block, bus, n, g.value());
      }
    }

    if (master_.active()) {
      for (std::uint32_t f = 0; f < n; ++f) gains_[f] = master_.next();
      apply_gains(block, gains_.data(), n);
    } else if (master_.value() != 1.0f) {
      apply_gain(block, n, master_.value());
    }
    if (cfg_.soft_clip) {
      soft_clip(block, n);
    } else if (cfg_.limiter) {
      limit(block, n);
    }
    frame_ += n;
    offset += n;
  }

  metrics_.voices_active.store(active_count_, std::memory_order_relaxed);
  metrics_.streams_active.store(streams, std::memory_order_relaxed);
  if (min_fill < metrics_.min_ring_fill_permille.load(std::memory_order_relaxed)) {
    metrics_.min_ring_fill_permille.store(min_fill, std::memory_order_relaxed);
  }
  metrics_.frames.store(static_cast<std::uint64_t>(frame_), std::memory_order_relaxed);
  metrics_.callbacks.fetch_add(1, std::memory_order_relaxed);
  if (streams_consumed && wake_fn_ != nullptr) wake_fn_(wake_ctx_);

  const std::uint64_t dt = now_ns() - t0;
  metrics_.callback_ns.record(dt);
  metrics_.callback_ns_total.fetch_add(dt, std::memory_order_relaxed);
  if (dt > metrics_.callback_max_ns.load(std::memory_order_relaxed)) {
    metrics_.callback_max_ns.store(dt, std::memory_order_relaxed);
  }
}

}  // namespace stemd::engine
