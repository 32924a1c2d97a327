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
//
// This file: set-up, the command queue, the schedule, the test tone and apply(); one voice's
// rendering is in engine_voice.cpp, the block loop (process()) in engine_process.cpp.
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

Engine::Engine(const EngineConfig& cfg)
    : cfg_(cfg),
      declick_frames_(
          std::max<std::uint32_t>(1, static_cast<std::uint32_t>(std::lround(cfg.declick_ms * 1e-3 * cfg.sample_rate)))),
      voices_(new Voice[cfg.max_voices]),
      telemetry_(new VoiceTelemetry[cfg.max_voices]),
      decks_(static_cast<std::size_t>(cfg.max_block_frames) * 2 * kNumBuses),
      scratch_(static_cast<std::size_t>(cfg.max_block_frames) * 2),
      tile_(static_cast<std::size_t>(cfg.max_block_frames) * 2),
      gains_(cfg.max_block_frames),
      gains_r_(cfg.max_block_frames),
      schedule_(std::make_unique<Schedule>(kMaxScheduled)),
      sched_play_(cfg.max_voices, Schedule::kNone),
      sched_play_ids_(cfg.max_voices),
      sched_play_pos_(cfg.max_voices) {
  dll_ = FrameDll(cfg.sample_rate);
  simd_ = cfg.simd && cpu_has_avx2();
  active_.resize(cfg.max_voices);
  deck_eq_ = std::make_unique<DeckEq[]>(kNumDecks);
  for (int d = 0; d < kNumDecks; ++d) deck_eq_[d] = DeckEq(DeckEqConfig{static_cast<double>(cfg.sample_rate)});
  rs_out_.resize(static_cast<std::size_t>(cfg.max_block_frames) * 2);
  master_ = Ramp{cfg.master};
  if (cfg.monitor) tap_ = std::make_unique<MonitorTap>();
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
    auto st = Stretcher::create(cfg.sample_rate, error,
                                cfg.stretch_faster ? StretcherEngine::kFaster : StretcherEngine::kFiner);
    if (!st) break;
    st_free_.push_back(st.get());
    st_pool_.push_back(std::move(st));
  }
  cfg_.max_stretched_voices = static_cast<std::uint32_t>(st_pool_.size());
  make_buses();
}

// The stretch buses (stretch_bus.hpp): cfg_.stretch_buses for each distinct rate, each with a
// stretcher made for that rate and, for a rate other than the output's, a resampler.
void Engine::make_buses() {
  bus_out_.resize(static_cast<std::size_t>(cfg_.max_block_frames) * 2);
  if (cfg_.stretch_bus_share) bus_decks_.resize(static_cast<std::size_t>(cfg_.max_block_frames) * 2 * kNumDecks);
  const auto q = static_cast<ResamplerQuality>(std::clamp(cfg_.resample_quality, 0, 2));
  for (int k = 0; k < 2; ++k) {
    const int rate = cfg_.stretch_bus_rates[k] > 0 ? cfg_.stretch_bus_rates[k] : cfg_.sample_rate;
    if (k == 1 && rate == (cfg_.stretch_bus_rates[0] > 0 ? cfg_.stretch_bus_rates[0] : cfg_.sample_rate)) break;
    for (std::uint32_t i = 0; i < cfg_.stretch_buses; ++i) {
      auto b = std::make_unique<StretchBus>();
      std::string error;
      b->st = Stretcher::create(rate, error, cfg_.stretch_faster ? StretcherEngine::kFaster : StretcherEngine::kFiner);
      if (!b->st) break;
      if (rate != cfg_.sample_rate) {
        b->rs = Resampler::create(q, error);
        if (!b->rs) break;
      }
      b->rate = rate;
      b->ratio = static_cast<double>(rate) / cfg_.sample_rate;
      b->shared = cfg_.stretch_bus_share;
      b->index = static_cast<std::uint8_t>(buses_.size());
      for (int d = 0; d < kNumDecks; ++d) {  // source-rate copies of the decks' EQs (shared buses)
        DeckEqConfig eq = deck_eq_[d].config();
        eq.sample_rate = rate;
        b->eq[d] = DeckEq(eq);
      }
      b->members.assign(cfg_.max_voices, 0);
      b->engine = this;
      buses_.push_back(std::move(b));
    }
  }
  bus_telemetry_ = std::make_unique<BusTelemetry[]>(buses_.size());
  make_handovers();
}

Engine::~Engine() = default;

int Engine::stretch_bus_rate(std::uint32_t i) const noexcept { return buses_[i]->rate; }

bool Engine::attach_stretcher(Voice& v) noexcept {
  if (v.st != nullptr) return true;
  if (st_free_.empty()) ho_reclaim();  // a handover's own stretcher, if one is lent out
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

bool Engine::attach_resampler(Voice& v, double ratio) noexcept {
  if (v.rs != nullptr) return true;
  if (rs_free_.empty()) ho_reclaim();  // a handover's own resampler, if one is lent out
  if (rs_free_.empty()) {
    metrics_.events_dropped.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  v.rs = rs_free_.back();
  rs_free_.pop_back();  // capacity reserved: never allocates
  v.rs->reset();
  v.rs->set_ratio(ratio, 0);  // at once: the first set after a reset does not glide
  return true;
}

void Engine::release_resampler(Voice& v) noexcept {
  if (v.rs == nullptr) return;
  rs_free_.push_back(v.rs);  // capacity == pool size: never allocates
  v.rs = nullptr;
}

Engine::Voice* Engine::find(VoiceId id, std::uint32_t gen) noexcept {
  if (id >= cfg_.max_voices) return nullptr;
  Voice& v = voices_[id];
  if (v.state == Voice::State::kFree || v.state == Voice::State::kRetiring || v.generation != gen) return nullptr;
  return &v;
}

void Engine::push_event(const Event& e) noexcept {
  rang_ = true;
  if (!events_.push(e)) metrics_.events_dropped.fetch_add(1, std::memory_order_relaxed);
}

bool Engine::retire(Stream* s, VoiceId id, std::uint32_t gen, bool voice_ended) noexcept {
  rang_ = true;
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

// Everything scheduled is dropped: the plays and streamed seeks are handed back (at most the
// voices plus those seeks), everything else goes at once — O(held), not O(n log n). Should the
// retire queue lack room for them (it does not happen: its capacity exceeds the voices and the
// schedule together), nothing is dropped rather than leak.
void Engine::clear_schedule() noexcept {
  if (retired_.write_available() < schedule_->held()) {
    metrics_.events_dropped.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  std::size_t held = 0;
  const std::size_t n = schedule_->clear([&](const Command& c) {
    if (c.type == CommandType::kPlay) unschedule_play(c.voice);
    refuse_scheduled(c, EndReason::kStopped);  // counts itself done
    ++held;
  });
  metrics_.schedule_done.fetch_add(n - held, std::memory_order_relaxed);
}

std::size_t Engine::apply_due() noexcept {
  // What is due at this frame: O(log n) each. The control thread admits at most
  // kMaxTimedPerPeriod (control/limits.hpp) for one 64-frame period, so this stays small.
  std::size_t applied = 0;
  while (!schedule_->empty() && schedule_->top_frame() <= frame_) {
    const Command c = schedule_->pop();
    if (c.type == CommandType::kPlay) unschedule_play(c.voice);
    apply(c);
    metrics_.commands_applied.fetch_add(1, std::memory_order_relaxed);
    metrics_.schedule_done.fetch_add(1, std::memory_order_relaxed);
    ++applied;
  }
  return applied;
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
  v.own_src = *c.play.source;
  v.src = &v.own_src;
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
  start_gain(v, c.play);
  v.pan.jump(std::clamp(c.play.pan, -1.0f, 1.0f));
  v.deck = c.play.deck < kNumBuses ? c.play.deck : kNumDecks - 1;
  v.rs = nullptr;
  v.rs_switch = false;
  v.draining = false;
  v.base_ratio = v.src->sample_rate > 0 ? static_cast<double>(v.src->sample_rate) / cfg_.sample_rate : 1.0;
  v.ratio = v.base_ratio * static_cast<double>(c.play.rate > 0 ? c.play.rate : 1.0f);
  v.st = nullptr;
  v.st_switch = false;
  v.bus = nullptr;
  v.bus_skip = 0;
  v.bus_delay = 0;
  v.leave_bus = false;
  v.hold_off = 0;
  v.ho = nullptr;
  v.deferred = 0;
  v.defer_frac = 0.0;
  v.prime_wait_cb = ~std::uint64_t{0};
  v.st_wait = false;
  v.tempo = std::clamp(static_cast<double>(c.play.tempo > 0 ? c.play.tempo : 1.0f), 0.25, 4.0);
  // A stretch bus of its deck, tempo and rate; else its own. One starting paused is not handed
  // over (stretch_bus_handover.cpp: a tap for a voice heard at once): it joins as a paused one.
  if (!bus_join(v, 0, !c.play.paused)) {
    // Fresh at its ratio: was attached at 1 and set to the ratio after, which glided from 1 over
    // 256 frames and put every later frame 128 · (1 − 1/ratio) output frames off.
    if (v.ratio != 1.0) attach_resampler(v, v.ratio);
    if (v.tempo != 1.0) attach_stretcher(v);
  }
  v.hold = false;
  v.underruns = 0;
  v.seek_stream = nullptr;
  v.jump_pending = false;
  v.ended_reported = false;
  // Entering mid-file — or a running stretch bus, which skips its start — fades in; the very
  // start of a file plays as authored. A handover (v.ho) has set its envelopes already.
  if (v.ho != nullptr) {
  } else if (v.pos > 0 || v.bus_skip > 0) {
    v.env.jump(0.0f);
    v.env.set(1.0f, declick_frames_);
  } else {
    v.env.jump(1.0f);
  }
  if (c.play.seek_seq != 0) telemetry_[c.voice].seek_heard.store(c.play.seek_seq, std::memory_order_relaxed);
  v.started_at = frame_;
  if (c.play.paused) {  // paused before its start (apply_to_scheduled_play): silent, holding its first frame
    v.hold = true;
    v.state = Voice::State::kPaused;
    v.env.jump(0.0f);
  }
  active_[active_count_++] = c.voice;
  metrics_.voices_active.store(active_count_, std::memory_order_relaxed);
  push_event(Event{EventType::kVoiceStarted, EndReason::kEndOfFile, c.voice, c.generation, 0, frame_});
  if (v.bus == nullptr && (v.ratio == 1.0 || v.rs != nullptr) && v.tempo != 1.0 && v.st == nullptr &&
      stretcher_fading()) {
    v.st_wait = true;  // a stopped voice's, once its fade is over (render_voice)
    return;
  }
  if (v.bus == nullptr && ((v.ratio != 1.0 && v.rs == nullptr) || (v.tempo != 1.0 && v.st == nullptr))) {
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
      bus_mirror_deck(c);
      return;
    case CommandType::kDeckEq:
      if (c.deck < kNumDecks && c.band < 3) deck_eq_[c.deck].set_band_gain(c.band, c.value, c.frames);
      bus_mirror_deck(c);
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
  // A play still scheduled takes it: it starts paused, at the level, pan, position, tempo… of then.
  if (v == nullptr && apply_to_scheduled_play(c)) return;
  if (v == nullptr) {
    // Stale id (the voice already ended). A seek carries a fresh stream that must go back.
    if (c.type == CommandType::kSeek && c.play.stream != nullptr) retire(c.play.stream, c.voice, c.generation, false);
    push_event(Event{EventType::kCommandDropped, EndReason::kError, c.voice, c.generation, 0, frame_});
    return;
  }
  apply_to_voice(*v, c);
}

// A command for one voice, found live (apply()).
void Engine::apply_to_voice(Voice& v, const Command& c) noexcept {
  switch (c.type) {
    case CommandType::kStop:
      drop_pending_seek(v);
      v.state = Voice::State::kStopping;
      v.retire_reason = EndReason::kStopped;
      // Always a fade, however short the request: a stop never clicks.
      v.env.set(0.0f, std::max(c.frames, std::min<std::uint32_t>(declick_frames_, 64)),
                static_cast<Curve>(c.curve & 3));
      return;
    case CommandType::kSetGain:
      v.gain.set(c.value, c.frames, static_cast<Curve>(c.curve & 3));
      return;
    case CommandType::kSetPan:
      v.pan.set(std::clamp(c.value, -1.0f, 1.0f), c.frames);
      return;
    case CommandType::kSetTempo: {
      v.tempo = std::clamp(static_cast<double>(c.value), 0.25, 4.0);
      if (v.bus != nullptr) return;  // the bus follows when all its voices agree (render_buses)
      if (v.st != nullptr) {
        v.st->set_tempo(v.tempo);
      } else if (v.tempo != 1.0) {
        // Into the stretcher: fade out, attach, fade in (as for a rate switch).
        v.st_switch = true;
        fade_through(v);
      }
      return;
    }
    case CommandType::kSetRate: {
      const double rate = std::clamp(static_cast<double>(c.value), 0.25, 4.0);
      v.ratio = v.base_ratio * rate;
      v.rate_glide = c.frames;
      if (v.bus != nullptr) {  // a bus plays its voices at rate 1: off it, with a resampler
        if (v.ratio != v.base_ratio && v.state != Voice::State::kStopping) bus_request_leave(v);
        return;
      }
      if (v.rs != nullptr) {
        v.rs->set_ratio(v.ratio, c.frames);
      } else if (v.ratio != 1.0) {
        // Leaving the bit-exact path: fade out, attach a resampler with no history, fade in —
        // a resampler started mid-signal would click.
        v.rs_switch = true;
        fade_through(v);
      }
      return;
    }
    case CommandType::kPause:
      v.hold = true;
      if ((v.state == Voice::State::kPlaying || v.state == Voice::State::kStarved) && v.started_at == frame_ &&
          v.ho == nullptr) {
        v.state = Voice::State::kPaused;  // not heard yet: no fade (it was heard for the fade's length)
        v.env.jump(0.0f);
      } else if (v.state == Voice::State::kPlaying || v.state == Voice::State::kStarved) {
        v.state = Voice::State::kPausing;
        v.env.set(0.0f, std::max<std::uint32_t>(c.frames, 1));
      }
      return;
    case CommandType::kResume:
      v.hold = false;
      if (v.state == Voice::State::kPaused || v.state == Voice::State::kPausing) {
        v.state = Voice::State::kPlaying;
        v.env.set(1.0f, std::max<std::uint32_t>(c.frames, 1));
      }
      return;
    case CommandType::kSetLoop:
      v.loop = c.flag;
      if (v.stream != nullptr) v.stream->set_loop(c.flag);
      if (v.seek_stream != nullptr) v.seek_stream->set_loop(c.flag);
      return;
    case CommandType::kSeek:
      if (v.state == Voice::State::kStopping) {  // too late: the voice is going away
        if (c.play.stream != nullptr) retire(c.play.stream, c.voice, v.generation, false);
        return;
      }
      drop_pending_seek(v);  // a newer seek replaces a pending one
      v.jump_pending = true;
      v.seek_stream = c.play.stream;
      v.seek_pos = std::max<std::int64_t>(0, c.play.position);
      v.seek_seq = c.frames;
      if (v.state == Voice::State::kStarved || v.state == Voice::State::kPaused) {
        v.env.jump(0.0f);
      } else {
        v.env.set(0.0f, declick_frames_);
      }
      v.state = Voice::State::kSeeking;
      return;
    default:
      return;
  }
}

// A pending seek is abandoned (stop, stop-all, a newer seek): its stream goes back.
void Engine::drop_pending_seek(Voice& v) noexcept {
  if (v.seek_stream != nullptr) retire(v.seek_stream, id_of(v), v.generation, false);
  v.seek_stream = nullptr;
  v.jump_pending = false;
}

// The fade of a pending seek has reached silence: the voice moves to its new position (and
// stream), and its telemetry says which seek it made (the control thread lists the position a
// seek was sent to until then). False when the old stream cannot go back yet (retire queue full).
bool Engine::take_pending_seek(Voice& v) noexcept {
  if (v.stream != nullptr && !retire(v.stream, id_of(v), v.generation, false)) return false;
  v.stream = v.seek_stream;
  v.pos = v.seek_pos;
  v.reading_memory = v.src->streamed && v.pos < v.src->memory_frames && v.loop_end >= v.src->memory_frames;
  v.seek_stream = nullptr;
  v.jump_pending = false;
  telemetry_[id_of(v)].seek_heard.store(v.seek_seq, std::memory_order_relaxed);
  return true;
}

// Fades a playing voice to silence and back, doing what is pending (a seek's jump, attaching
// a resampler or stretcher) at the bottom. A paused or starved voice is silent already: its
// switch happens at once (render_voice).
void Engine::fade_through(Voice& v) noexcept {
  if (v.state != Voice::State::kPlaying) return;
  v.state = Voice::State::kSeeking;
  v.env.set(0.0f, declick_frames_);
}

}  // namespace stemd::engine
