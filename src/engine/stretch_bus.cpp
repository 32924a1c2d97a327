// Stretch buses [audio] (see stretch_bus.hpp for what they are and their timing): joining and
// leaving, and one block of every running bus — its members rendered at their source rate into
// the stretcher's pull (a shared bus: per deck, through copies of the deck's EQ and fader), the
// stretcher, the resampler, the deck's bus (a shared bus: the direct bus, into the master). Real-time rules as in
// engine.cpp: nothing here allocates (member lists have max_voices of capacity), every loop is
// bounded by the members or the block. Built with -O3, like every engine file.
#include "stretch_bus.hpp"

#include "bus_rule.hpp"
#include "mix.hpp"
#include "stemd/stream.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>

namespace stemd::engine {

// Source frames the bus has pulled but not yet played (see L in stretch_bus.hpp).
double Engine::bus_lookahead(const StretchBus& b) noexcept {
  double l = b.st->lookahead_frames();
  if (b.rs != nullptr) l += b.rs->lookahead_frames() * b.st->tempo();
  return std::max(0.0, l);
}

// The tempo a running bus plays at from this block on: its members' when they all agree —
// render_buses moves it there after the voices, so a voice whose tempo changed with theirs in this
// block (a tempo of 1 before: it joins at the bottom of its switch fade) finds it — else its own.
double Engine::bus_tempo_now(const StretchBus& b) const noexcept {
  double t = 0;
  for (std::uint32_t i = 0; i < b.count; ++i) {
    const Voice& m = voices_[b.members[i]];
    if (m.state == Voice::State::kStopping) continue;  // as render_buses: fading out, it does not count
    if (t == 0) t = m.tempo;
    if (m.tempo != t) return b.tempo;
  }
  return t == 0 ? b.tempo : t;
}

// The source rate a voice's frames are at (its file's).
int Engine::rate_of(const Voice& v) const noexcept {
  return v.src != nullptr && v.src->sample_rate > 0 ? v.src->sample_rate : cfg_.sample_rate;
}

// A bus as bus_rule sees it when a voice joins: a running bus takes the tempo its members play at
// from this block on (bus_tempo_now).
bus_rule::Bus Engine::rule_view(const StretchBus& b) const noexcept {
  return {.rate = b.rate,
          .running = b.running,
          .shared = b.shared,
          .deck = b.deck,
          .tempo = b.running ? bus_tempo_now(b) : 0.0};
}

// `v` joins a bus, `offset` output frames into the block (the bus renders the whole block after
// the voices); `starting`: it starts now (a play), so a running bus hands it over (its attack is
// not lost: stretch_bus_handover.cpp). False: no bus for it (the caller gives it a stretcher of
// its own).
bool Engine::bus_join(Voice& v, std::uint32_t offset, bool starting) noexcept {
  const bus_rule::Rider r{
      .tempo = v.tempo, .rate_one = v.ratio == v.base_ratio, .src_rate = rate_of(v), .deck = v.deck};
  if (buses_.empty() || v.bus != nullptr || !bus_rule::may_ride(r, cfg_.stretch_bus_share)) return false;
  const int i = bus_rule::pick(
      buses_.size(), [this](std::size_t k) { return rule_view(*buses_[k]); }, r);
  if (i < 0) return false;
  StretchBus* b = buses_[static_cast<std::size_t>(i)].get();
  const bool fresh = !b->running;
  if (fresh) bus_start(*b, v);
  b->tail_left = 0;
  b->members[b->count++] = id_of(v);
  v.bus = b;
  release_resampler(v);  // the bus converts the rate
  v.rs_switch = v.st_switch = v.st_wait = false;
  v.leave_bus = false;
  v.hold_off = 0;
  // Where its next frame goes in: heard L/ρ output frames after the block's start on a running
  // bus (0 on a fresh one), while the grid wants its current frame heard `offset` frames in.
  const double rho = b->tempo * b->ratio;
  const double skip = (fresh ? 0.0 : bus_lookahead(*b)) - offset * rho;
  if (!fresh && starting && offset == 0 && skip > 0 && ho_begin(v, *b, skip)) {
    v.bus_skip = 0;  // in its tap: the bus reads it from `skip` on, its own stretcher from 0
    v.bus_delay = 0;
    return true;
  }
  v.bus_skip = skip > 0 ? std::llround(skip) : 0;
  v.bus_delay = skip < 0 ? static_cast<std::uint32_t>(std::llround(-skip)) : 0;
  if (v.bus_skip > 0 && v.env.target() > 0.0f) {  // mid-sound now: fade in
    v.env.jump(0.0f);
    v.env.set(1.0f, declick_frames_);
  }
  return true;
}

// An idle bus starts afresh for `v`'s deck and tempo: reset, so that its first input frame is heard at
// once (start compensated), and primed when it first renders.
void Engine::bus_start(StretchBus& b, const Voice& v) noexcept {
  b.running = true;
  b.split_since = 0;
  b.deck = v.deck;
  b.tempo = v.tempo;
  b.st->reset();
  b.st->set_tempo(v.tempo);
  if (b.rs != nullptr) {
    b.rs->reset();
    b.rs->set_ratio(b.ratio, 0);
  }
  if (b.shared) bus_sync_decks(b);
}

// Takes `v` off its bus's member list; the bus plays out its tail once the last one has gone.
void Engine::bus_leave(Voice& v) noexcept {
  StretchBus* b = v.bus;
  if (b == nullptr) return;
  ho_drop(v);
  const VoiceId id = id_of(v);
  for (std::uint32_t i = 0; i < b->count; ++i) {
    if (b->members[i] != id) continue;
    b->members[i] = b->members[--b->count];
    break;
  }
  v.bus = nullptr;
  v.bus_skip = 0;
  v.bus_delay = 0;
  if (b->count == 0) {
    const double rho = b->tempo * b->ratio;
    b->tail_left = static_cast<std::int64_t>(std::ceil(bus_lookahead(*b) / rho)) + 64;
  }
}

// A member must go its own way (another tempo, a rate ≠ 1): fade out at the bus's input first.
void Engine::bus_request_leave(Voice& v) noexcept {
  if (v.leave_bus) return;
  v.leave_bus = true;
  fade_through(v);  // playing: Seeking, env → 0; paused or starved: silent already
}

// The bottom of a leaving member's fade: off the bus, onto a stretcher (and resampler) of its
// own, silent while the bus plays out what it holds of it, then faded in.
void Engine::bus_settle_leave(Voice& v) noexcept {
  const StretchBus& b = *v.bus;
  const double rho = b.tempo * b.ratio;
  const auto hold = static_cast<std::uint32_t>(std::ceil(bus_lookahead(b) / rho));
  bus_leave(v);
  v.leave_bus = false;
  // Attached at 1, then set to the ratio: it glides there over its first 256 frames, which puts
  // its frames 128 · (1 − 1/ratio) output frames off. A start now attaches at the ratio (on time
  // to a frame); here the glide stays for now: with it the member's own path sums with the bus
  // it left at 0.86 of the coherent level while split off, without it at 0.46
  // (StretchBusRejoin.AMemberThatSplitOffComesBackWhenItsTempoMatchesAgain). Open (eighteenth
  // session): where the leave's hold puts the own path against the bus.
  if (v.ratio != 1.0 && attach_resampler(v)) v.rs->set_ratio(v.ratio, 0);
  if (!attach_stretcher(v) || (v.ratio != 1.0 && v.rs == nullptr)) {
    end_voice(v, EndReason::kError);  // none left (only without the control thread's budget)
    return;
  }
  v.hold_off = hold;
  if (v.jump_pending) return;  // a seek: render_voice settles it (Seeking at silence)
  if (v.state == Voice::State::kSeeking) {
    v.state = v.hold ? Voice::State::kPaused : Voice::State::kPlaying;
    if (!v.hold) v.env.set(1.0f, declick_frames_);
  }
}

// Drops `frames` source frames of the voice (a copy, then forgotten). Returns how many it could.
std::int64_t Engine::skip_source(Voice& v, std::int64_t frames) noexcept {
  std::int64_t done = 0;
  while (done < frames) {
    const auto k = static_cast<std::uint32_t>(std::min<std::int64_t>(frames - done, cfg_.max_block_frames));
    Frames f;
    const std::uint32_t got = fetch(v, scratch_.data(), k, &f);
    if (got == 0) break;
    done += got;
  }
  return done;
}

// One member's next `frames` source frames, with its ramps, added into the bus's input.
void Engine::render_member(Voice& v, float* out, std::uint32_t frames) noexcept {
  if (v.state == Voice::State::kRetiring || v.state == Voice::State::kFree) return;
  if (v.bus_delay > 0) {
    const std::uint32_t d = std::min(v.bus_delay, frames);
    v.bus_delay -= d;
    out += static_cast<std::size_t>(d) * 2;
    frames -= d;
    if (frames == 0) return;
  }
  if (v.bus_skip > 0 && v.state == Voice::State::kPlaying) {
    v.bus_skip -= skip_source(v, v.bus_skip);
    // Short of data: wait (silent) for the loader, unless the data has ended for good.
    if (v.bus_skip > 0 && v.src->streamed && v.stream != nullptr && !v.stream->finished()) return;
    v.bus_skip = 0;
  }
  // A handover's tap (stretch_bus_handover.cpp) holds the skip. Short of it (a streamed voice whose
  // ring has not reached L yet): silent here but on the grid — its cursor moves on, the own
  // stretcher plays these frames, and the crossfade's ramp keeps time.
  if (v.ho != nullptr && v.ho->bus_on && v.state == Voice::State::kPlaying && v.src->streamed && v.stream != nullptr &&
      !v.stream->finished() && ho_fill(v, *v.ho, v.ho->bus + frames) < frames) {
    v.ho->bus += frames;
    for (std::uint32_t k = 0; k < frames && v.env.active(); ++k) v.env.next();
    return;
  }
  render_voice(v, out, frames);
}

// A shared bus that starts: its copies of the decks' EQs and faders take the decks' settings.
void Engine::bus_sync_decks(StretchBus& b) noexcept {
  const double rho = b.tempo * b.ratio;
  for (int d = 0; d < kNumDecks; ++d) {
    b.eq[d].jump_to(deck_eq_[d]);
    const Ramp& g = deck_gain_[d];
    b.gain[d].jump(g.value());
    if (g.active()) b.gain[d].set(g.target(), static_cast<std::uint32_t>(std::llround(g.remaining() * rho)), g.curve());
  }
}

// A deck command (fader, EQ band) applied now: the running shared buses' copies get it too,
// its ramp in source frames so that it lasts as long when heard.
void Engine::bus_mirror_deck(const Command& c) noexcept {
  if (c.deck >= kNumDecks) return;
  for (auto& p : buses_) {
    StretchBus& b = *p;
    if (!b.shared || !b.running) continue;
    const auto frames = static_cast<std::uint32_t>(std::llround(c.frames * b.tempo * b.ratio));
    if (c.type == CommandType::kDeckGain) {
      b.gain[c.deck].set(c.value, frames, static_cast<Curve>(c.curve & 3));
    } else if (c.type == CommandType::kDeckEq && c.band < 3) {
      b.eq[c.deck].set_band_gain(c.band, c.value, frames);
    }
  }
}

// A shared bus's input: each deck's members mixed into a deck input of their own, that through
// the bus's copies of the deck's EQ and fader (as sum_decks does at the output rate), the decks
// then added in deck order.
void Engine::bus_mix_decks(StretchBus& b, float* out, std::uint32_t frames) noexcept {
  const std::size_t stride = static_cast<std::size_t>(cfg_.max_block_frames) * 2;
  bool used[kNumDecks] = {};
  for (std::uint32_t i = 0; i < b.count; ++i) {
    Voice& v = voices_[b.members[i]];
    float* in = bus_decks_.data() + stride * v.deck;  // < kNumDecks: bus_join
    if (!used[v.deck]) {
      std::memset(in, 0, sizeof(float) * 2 * frames);
      used[v.deck] = true;
    }
    render_member(v, in, frames);
  }
  std::memset(out, 0, sizeof(float) * 2 * frames);
  for (int d = 0; d < kNumDecks; ++d) {
    Ramp& g = b.gain[d];
    if (!used[d]) {
      for (std::uint32_t f = 0; f < frames && g.active(); ++f) g.next();  // a ramp keeps time when idle
      b.eq[d].skip(frames);
      continue;
    }
    float* in = bus_decks_.data() + stride * static_cast<std::size_t>(d);
    b.eq[d].process(in, frames);
    if (cfg_.monitor) meter_block(meter_sum_[d], in, frames, g.value());
    add_through(out, in, g, frames);
  }
}

namespace {
struct BusCtx {
  Engine* engine;
  void* bus;
};
}  // namespace

// The stretcher's input: every member's next frames, mixed (silence when none sounds).
std::uint32_t Engine::bus_st_pull(void* ctx, float* scratch, std::uint32_t max_frames, const float** frames) noexcept {
  auto* c = static_cast<BusCtx*>(ctx);
  Engine& e = *c->engine;
  StretchBus& b = *static_cast<StretchBus*>(c->bus);
  const std::uint32_t n = std::min(max_frames, e.cfg_.max_block_frames);
  *frames = scratch;
  if (b.shared) {
    e.bus_mix_decks(b, scratch, n);
    return n;
  }
  std::memset(scratch, 0, sizeof(float) * 2 * n);
  for (std::uint32_t i = 0; i < b.count; ++i) e.render_member(e.voices_[b.members[i]], scratch, n);
  return n;
}

// The resampler's input: the stretcher's output.
std::uint32_t Engine::bus_rs_pull(void* ctx, float* scratch, std::uint32_t max_frames, const float** frames) noexcept {
  auto* c = static_cast<BusCtx*>(ctx);
  StretchBus& b = *static_cast<StretchBus*>(c->bus);
  const std::uint32_t n = b.st->process(scratch, max_frames, &Engine::bus_st_pull, ctx);
  *frames = scratch;
  return n;
}

// One block of every running bus into its deck's bus (after the voices, before the decks sum).
void Engine::render_buses(std::uint32_t frames, bool* deck_used) noexcept {
  const std::size_t stride = static_cast<std::size_t>(cfg_.max_block_frames) * 2;
  for (auto& p : buses_) {
    StretchBus& b = *p;
    if (!b.running) continue;
    // A tempo change: all members at one new tempo → the bus glides there; members at a tempo
    // of their own (or a rate ≠ 1) leave.
    // Members fading out after a stop do not count (the router no longer sends them tempi) and
    // never leave: the control thread has lent their stretcher budget to a restart.
    std::uint32_t first = 0;
    while (first < b.count && voices_[b.members[first]].state == Voice::State::kStopping) ++first;
    if (first < b.count) {
      const double t = voices_[b.members[first]].tempo;
      bool same = true;
      double sig = t;
      for (std::uint32_t i = first + 1; i < b.count; ++i) {
        const Voice& m = voices_[b.members[i]];
        if (m.state == Voice::State::kStopping) continue;
        same = same && m.tempo == t;
        sig += m.tempo * (i + 1);
      }
      const std::uint64_t callback = metrics_.callbacks.load(std::memory_order_relaxed) + 1;
      if (same) {
        b.split_since = 0;
        if (t != b.tempo) {
          b.tempo = t;
          b.st->set_tempo(t);
        }
      } else if (b.split_since == 0 || sig != b.split_sig) {
        // Maybe /set_tempo half applied: wait a callback. A split that changes from callback to
        // callback is tempo changes still arriving (a flood of /set_tempo lands half applied in
        // every callback): the wait restarts, or every member would leave, each priming a
        // stretcher of its own on this thread, and come back.
        b.split_since = callback;
        b.split_sig = sig;
      } else if (callback - b.split_since >= 2) {
        for (std::uint32_t i = 0; i < b.count; ++i) {
          Voice& v = voices_[b.members[i]];
          if (v.tempo != b.tempo && v.state != Voice::State::kStopping) bus_request_leave(v);
        }
      }
    }
    const int to = b.shared ? kDirectBus : b.deck;  // shared: past the decks' EQs and faders
    float* deck = decks_.data() + stride * static_cast<std::size_t>(to);
    if (!deck_used[to]) {
      std::memset(deck, 0, sizeof(float) * 2 * frames);
      deck_used[to] = true;
    }
    BusCtx ctx{this, &b};
    if (!b.st->primed()) ++bus_primes_;
    bus_rendering_ = true;
    const std::uint32_t got = b.rs != nullptr ? b.rs->process(bus_out_.data(), frames, &Engine::bus_rs_pull, &ctx)
                                              : b.st->process(bus_out_.data(), frames, &Engine::bus_st_pull, &ctx);
    bus_rendering_ = false;
    mix_add(deck, bus_out_.data(), got);
    // Members at the bottom of a leave's fade go their own way.
    for (std::uint32_t i = 0; i < b.count;) {
      Voice& v = voices_[b.members[i]];
      if (v.leave_bus && !v.env.active() && v.env.value() == 0.0f && v.state != Voice::State::kRetiring) {
        bus_settle_leave(v);  // swaps the last member into slot i
        continue;
      }
      ++i;
    }
    if (b.count == 0) {
      b.tail_left -= frames;
      if (b.tail_left <= 0) b.running = false;  // reset when it next starts
    }
  }
  render_handovers(frames, deck_used);  // voices started on a running bus: their own stretchers
}

// What each bus ran in this callback, for the control thread's budgets (BusTelemetry), and the
// gauges. Bounded by the members, the buses and the handover groups.
void Engine::publish_buses() noexcept {
  std::uint32_t running = 0, voices = 0;
  for (const auto& p : buses_) {
    const StretchBus& b = *p;
    BusTelemetry& t = bus_telemetry_[b.index];
    std::uint64_t tags = 0;
    std::uint32_t groups = 0;
    for (std::uint32_t i = 0; i < b.count; ++i)
      tags += bus_rule::member_tag(b.members[i], voices_[b.members[i]].generation);
    for (const auto& g : groups_) groups += g->active && g->bus == &b ? 1 : 0;
    t.running.store(b.running ? 1 : 0, std::memory_order_relaxed);
    t.members.store(b.count, std::memory_order_relaxed);
    t.tags.store(tags, std::memory_order_relaxed);
    t.tempo.store(static_cast<float>(std::max(b.tempo, b.st->tempo())), std::memory_order_relaxed);
    t.deck.store(b.deck, std::memory_order_relaxed);
    t.groups.store(static_cast<std::uint8_t>(std::min<std::uint32_t>(groups, 255)), std::memory_order_relaxed);
    running += b.running ? 1 : 0;
    voices += b.count;
  }
  metrics_.stretch_buses_running.store(running, std::memory_order_relaxed);
  metrics_.stretch_bus_voices.store(voices, std::memory_order_relaxed);
}

}  // namespace stemd::engine
