// The handover onto a running stretch bus [audio] (stretch_bus.hpp, "The handover"): a voice that
// starts on a running bus plays its first L / ρ output frames — its attack — through a stretcher of
// its own (shared by the voices of its deck that start in the same block), while its frames also
// go into the bus L source frames on; when the bus's output reaches it, the own stretcher fades out
// as the bus's part fades in, and goes back to the pool. The voice's source is read once, into a
// tap that both read at their own cursors. Real-time rules as in engine.cpp: the taps and groups
// are made with the buses [control]; here nothing allocates, every loop is bounded by the members,
// the groups or the block.
#include "engine_voice.hpp"
#include "stretch_bus.hpp"

#include "bus_rule.hpp"
#include "mix.hpp"
#include "stemd/stream.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

namespace stemd::engine {

namespace {
constexpr double kHandoverFadeMs = 20.0;  // the crossfade, output time
constexpr std::int64_t kTap = 16384;      // Handover::kTapFrames (private here; checked below)

struct GroupCtx {
  Engine* engine;
  void* group;
};
}  // namespace

static_assert(kTap > 4 * Stretcher::kPullFrames);

// [control] The taps (one per stretcher in the pool, at most 16) and one group per tap.
void Engine::make_handovers() {
  static_assert(Handover::kTapFrames == kTap);
  if (buses_.empty() || cfg_.max_stretched_voices == 0) return;
  const std::uint32_t n = std::min<std::uint32_t>(cfg_.max_stretched_voices, 16);
  for (std::uint32_t i = 0; i < n; ++i) {
    auto h = std::make_unique<Handover>();
    h->ring = std::make_unique<float[]>(static_cast<std::size_t>(kTap) * 2);
    taps_.push_back(std::move(h));
    groups_.push_back(std::make_unique<HandoverGroup>());
  }
}

// A group handing `v`'s deck over onto `b`: its own stretcher heard for `until` output frames, then
// the crossfade (a start's handover, or a rejoin's).
void Engine::ho_arm_group(HandoverGroup& g, StretchBus& b, const Voice& v, std::int64_t until, bool rejoin) noexcept {
  g.bus = &b;
  g.deck = v.deck;
  g.frame = frame_;
  g.elapsed = 0;
  g.until = until;
  g.fade = static_cast<std::uint32_t>(std::lround(kHandoverFadeMs * 1e-3 * cfg_.sample_rate));
  g.count = 0;
  g.active = true;
  g.rejoin = rejoin;
}

// A tap, empty, the bus's cursor `bus` source frames in, the own path starting at `own_level`.
void Engine::ho_arm_tap(Handover& h, std::int64_t bus, float own_level) noexcept {
  h.used = true;
  h.filled = h.own = 0;
  h.bus = bus;
  h.own_on = h.bus_on = true;
  h.sealed = false;
  h.own_env.jump(own_level);
}

// `v` starts on the running bus `b`, to go in `skip` source frames on: hand it over if a tap, a
// prime and a stretcher (and resampler) to spare allow. False: it joins as before (counted).
bool Engine::ho_begin(Voice& v, StretchBus& b, double skip) noexcept {
  const std::int64_t s = std::llround(skip);
  Handover* h = nullptr;
  for (auto& t : taps_) {
    if (!t->used) {
      h = t.get();
      break;
    }
  }
  if (h == nullptr || s + 2 * static_cast<std::int64_t>(Stretcher::kPullFrames) > kTap) {
    metrics_.stretch_joins_lost.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  const double rho = b.tempo * b.ratio;
  HandoverGroup* g = nullptr;
  for (auto& p : groups_) {  // the voices of a deck that start in one block share one
    if (p->active && !p->rejoin && p->bus == &b && p->deck == v.deck && p->frame == frame_ &&
        p->count < HandoverGroup::kMembers) {
      g = p.get();
      break;
    }
  }
  if (g == nullptr) {
    // One stretcher (and resampler) stays free for every bus member: leaving a bus never fails.
    std::uint32_t members = 0, resampled = 0;
    for (const auto& p : buses_) {
      members += p->count;
      if (p->rs != nullptr) resampled += p->count;
    }
    const bool rs_ok = b.rs == nullptr || rs_free_.size() > resampled;
    for (auto& p : groups_) {
      if (!p->active && g == nullptr) g = p.get();
    }
    if (g == nullptr || !may_prime(nullptr) || st_free_.size() <= members || !rs_ok) {
      metrics_.stretch_joins_lost.fetch_add(1, std::memory_order_relaxed);
      return false;
    }
    ++primes_;  // its first process() primes it, in this callback
    g->st = st_free_.back();
    st_free_.pop_back();
    g->st->reset();
    g->st->set_tempo(b.tempo);
    g->rs = nullptr;
    if (b.rs != nullptr) {
      g->rs = rs_free_.back();
      rs_free_.pop_back();
      g->rs->reset();
      g->rs->set_ratio(b.ratio, 0);
    }
    ho_arm_group(*g, b, v, std::llround(skip / rho), false);
  }
  ho_arm_tap(*h, s, v.pos > 0 ? 0.0f : 1.0f);  // mid-file: fades in, as a voice of its own would
  if (v.pos > 0) h->own_env.set(1.0f, declick_frames_);
  h->group = g;
  g->members[g->count] = h;
  g->voices[g->count++] = id_of(v);
  v.ho = h;
  // The bus's part fades in (at its input: source frames) as the own stretcher fades out; equal
  // power, not equal gain: the two stretchers carry the same music but not the same phases (each
  // has its own history), and an equal-gain crossfade dipped a steady chord to 0.46 × its level in
  // 5 ms windows (this one: 0.62 ×; stretch_bus_handover_test.cpp).
  v.env.jump(0.0f);
  v.env.set(1.0f, static_cast<std::uint32_t>(std::max<std::int64_t>(1, std::llround(g->fade * rho))),
            Curve::kEqualPower);
  metrics_.stretch_handovers.fetch_add(1, std::memory_order_relaxed);
  return true;
}

// Reads the voice's frames into the tap up to tap frame `upto` (fewer when its data is short, the
// tap is sealed, or full: it never overwrites a frame a cursor has still to read). Returns the
// frames it holds past the bus's cursor (0 while it has not reached it: a streamed voice whose
// ring is short of the skip yet).
std::uint32_t Engine::ho_fill(Voice& v, Handover& h, std::int64_t upto) noexcept {
  if (!h.sealed) {
    const std::int64_t low = h.own_on && h.bus_on ? std::min(h.own, h.bus) : h.own_on ? h.own : h.bus;
    upto = std::min(upto, low + kTap);
    for (int guard = 0; h.filled < upto && guard < 64; ++guard) {
      const std::int64_t at = h.filled % kTap;
      const auto k = static_cast<std::uint32_t>(
          std::min({upto - h.filled, kTap - at, static_cast<std::int64_t>(Stretcher::kPullFrames)}));
      float* dst = h.ring.get() + at * 2;
      Frames f;
      const std::uint32_t got = fetch(v, dst, k, &f);  // with a scratch: float frames
      if (got == 0) break;
      if (f.f != dst) std::memcpy(dst, f.f, sizeof(float) * 2 * got);
      h.filled += got;
      if (got < k) break;
    }
  }
  return static_cast<std::uint32_t>(std::clamp<std::int64_t>(h.filled - h.bus, 0, kTap));
}

// The bus's read of a member being handed over (produce(), inside the bus's pull): from the tap
// (in place, or copied into `dst`), until it has caught up and the own path is done.
std::uint32_t Engine::ho_read_bus(Voice& v, float* dst, std::uint32_t frames, Frames* src) noexcept {
  Handover& h = *v.ho;
  if (h.bus >= h.filled && !h.own_on) {
    // All read: the tap goes, the voice reads its source again — past what the bus's cursor moved
    // over while data was short (render_member), to stay on the grid.
    const std::int64_t ahead = h.bus - h.filled;
    ho_free_tap(v);
    if (ahead > 0) skip_source(v, ahead);
    return fetch(v, dst, frames, src);
  }
  ho_fill(v, h, h.bus + frames);
  if (h.filled - h.bus < frames && h.own_on && !h.sealed && h.filled - h.own >= kTap) {
    h.own_on = false;  // the own path lags a whole tap behind (cannot happen by the sizes): the bus wins
    ho_fill(v, h, h.bus + frames);
  }
  const std::int64_t at = h.bus % kTap;
  const auto n = static_cast<std::uint32_t>(
      std::clamp<std::int64_t>(std::min({static_cast<std::int64_t>(frames), h.filled - h.bus, kTap - at}), 0, frames));
  const float* p = h.ring.get() + at * 2;
  if (dst != nullptr && n > 0) {
    std::memcpy(dst, p, sizeof(float) * 2 * n);
    p = dst;
  }
  *src = p;
  h.bus += n;
  return n;
}

// The voice's source moved (a seek's jump): the bus reads it directly from now on; the own path
// plays out what the tap holds, fading out.
void Engine::ho_seal(Voice& v) noexcept {
  if (v.ho == nullptr) return;
  v.ho->sealed = true;
  v.ho->bus_on = false;
  if (!v.ho->own_on) ho_free_tap(v);
}

// The voice is off its bus (ended, or leaving): its tap goes at once.
void Engine::ho_drop(Voice& v) noexcept {
  if (v.ho == nullptr) return;
  v.ho->own_on = v.ho->bus_on = false;
  ho_free_tap(v);
}

void Engine::ho_free_tap(Voice& v) noexcept {
  Handover& h = *v.ho;
  v.ho = nullptr;
  h.used = false;
  h.own_on = h.bus_on = false;
  HandoverGroup* g = h.group;
  h.group = nullptr;
  if (g == nullptr) return;
  for (std::uint32_t i = 0; i < g->count; ++i) {
    if (g->members[i] != &h) continue;
    --g->count;
    g->members[i] = g->members[g->count];
    g->voices[i] = g->voices[g->count];
    break;
  }
  if (g->count == 0) ho_end_group(*g);
}

// The crossfade is over (or no member is left): the stretcher and resampler go back to the pool;
// a member's tap stays while the bus still reads through it.
void Engine::ho_end_group(HandoverGroup& g) noexcept {
  if (!g.active) return;
  g.active = false;
  st_free_.push_back(g.st);  // capacity == pool size: never allocates
  g.st = nullptr;
  if (g.rs != nullptr) rs_free_.push_back(g.rs);
  g.rs = nullptr;
  const std::uint32_t count = g.count;
  g.count = 0;
  for (std::uint32_t i = 0; i < count; ++i) {
    Handover& h = *g.members[i];
    h.group = nullptr;
    h.own_on = false;
    Voice& v = voices_[g.voices[i]];
    if (!h.bus_on && v.ho == &h) {
      v.ho = nullptr;
      h.used = false;
    }
  }
}

// A voice needs a stretcher or resampler (attach_*: a start, a switch, leaving a bus) and none is
// free: a handover gives its own back, its own path cut. ho_begin keeps one free for every bus
// member, so this takes a burst of leaves and starts within one handover. False: none to give.
bool Engine::ho_reclaim() noexcept {
  for (auto& p : groups_) {
    if (!p->active) continue;
    ho_end_group(*p);
    return true;
  }
  return false;
}

// One block of the group's members at their source rate into `out`, each with its gain and pan as
// they are now and its own envelope.
void Engine::ho_mix_members(HandoverGroup& g, float* out, std::uint32_t frames) noexcept {
  std::memset(out, 0, sizeof(float) * 2 * frames);
  for (std::uint32_t i = 0; i < g.count; ++i) {
    Handover& h = *g.members[i];
    if (!h.own_on) continue;
    Voice& v = voices_[g.voices[i]];
    ho_fill(v, h, h.own + frames);
    const auto n = static_cast<std::uint32_t>(std::clamp<std::int64_t>(h.filled - h.own, 0, frames));
    const float gain = g.rejoin ? 1.0f : v.gain.value();  // a rejoin's: after the stretch
    const float pan = g.rejoin ? 0.0f : v.pan.value();
    for (std::uint32_t k = 0; k < n; ++k) {
      const float e = gain * h.own_env.next();
      gains_[k] = e * std::min(1.0f, 1.0f - pan);
      gains_r_[k] = e * std::min(1.0f, 1.0f + pan);
    }
    for (std::uint32_t done = 0; done < n;) {  // at most two spans (the tap's wrap)
      const std::int64_t at = h.own % kTap;
      const auto k = static_cast<std::uint32_t>(std::min<std::int64_t>(n - done, kTap - at));
      mix_gains_lr(out + static_cast<std::size_t>(done) * 2, h.ring.get() + at * 2, gains_.data() + done,
                   gains_r_.data() + done, k);
      h.own += k;
      done += k;
    }
    // Short of data (a streamed voice's ring behind, not its end): silent, but its cursor keeps the grid.
    if (n < frames && !h.sealed && v.src->streamed && v.stream != nullptr && !v.stream->finished()) {
      h.own += frames - n;
    }
    if (!h.own_env.active() && h.own_env.value() == 0.0f && h.own_env.target() == 0.0f) h.own_on = false;
  }
}

std::uint32_t Engine::ho_src_pull(void* ctx, float* scratch, std::uint32_t max_frames, const float** frames) noexcept {
  auto* c = static_cast<GroupCtx*>(ctx);
  const std::uint32_t n = std::min({max_frames, Stretcher::kPullFrames, c->engine->cfg_.max_block_frames});
  c->engine->ho_mix_members(*static_cast<HandoverGroup*>(c->group), scratch, n);
  *frames = scratch;
  return n;
}

std::uint32_t Engine::ho_rs_pull(void* ctx, float* scratch, std::uint32_t max_frames, const float** frames) noexcept {
  auto* c = static_cast<GroupCtx*>(ctx);
  const auto& g = *static_cast<HandoverGroup*>(c->group);
  const std::uint32_t n = g.rs->process(scratch, max_frames, &Engine::ho_src_pull, ctx);
  *frames = scratch;
  return n;
}

// One block of every handover (after the buses): the group's own stretcher into its deck's bus,
// at full gain until the bus plays its members, then faded out over the crossfade (cos: equal
// power with the bus's part, which rises as sin); then ended.
void Engine::render_handovers(std::uint32_t frames, bool* deck_used) noexcept {
  const std::size_t stride = static_cast<std::size_t>(cfg_.max_block_frames) * 2;
  for (auto& p : groups_) {
    HandoverGroup& g = *p;
    if (!g.active) continue;
    if (g.st->tempo() != g.bus->tempo) g.st->set_tempo(g.bus->tempo);
    bool any = false;
    for (std::uint32_t i = 0; i < g.count; ++i) {  // stop, pause, seek, leave: the own path fades out
      Handover& h = *g.members[i];
      const Voice& v = voices_[g.voices[i]];
      const bool stopping = v.state == Voice::State::kStopping;
      const bool on = !h.sealed && v.bus == g.bus && !v.leave_bus && (v.state == Voice::State::kPlaying || stopping);
      if (h.own_on && h.own_env.target() > 0.0f && (!on || stopping)) {
        h.own_env.set(0.0f, stopping ? std::max<std::uint32_t>(64, v.env.remaining()) : declick_frames_);
      }
      any = any || h.own_on;
    }
    if (!any || g.elapsed >= g.until + g.fade) {
      ho_end_group(g);
      continue;
    }
    GroupCtx ctx{this, &g};
    const std::uint32_t got =
        g.st->process(bus_out_.data(), frames, g.rs != nullptr ? &Engine::ho_rs_pull : &Engine::ho_src_pull, &ctx);
    for (std::uint32_t k = 0; k < got; ++k) {
      const std::int64_t t = g.elapsed + k - g.until;
      gains_[k] = t < 0 ? 1.0f : t >= g.fade ? 0.0f : std::cos(static_cast<float>(t) / g.fade * 1.57079633f);
    }
    float* deck = decks_.data() + stride * g.deck;
    if (!deck_used[g.deck]) {
      std::memset(deck, 0, sizeof(float) * 2 * frames);
      deck_used[g.deck] = true;
    }
    if (g.rejoin && g.count > 0) {  // its gain and pan after the stretch, as its own stretcher had them
      const Voice& v = voices_[g.voices[0]];
      const float l = v.gain.value() * std::min(1.0f, 1.0f - v.pan.value());
      const float r = v.gain.value() * std::min(1.0f, 1.0f + v.pan.value());
      for (std::uint32_t k = 0; k < got; ++k) {
        gains_r_[k] = gains_[k] * r;
        gains_[k] *= l;
      }
      mix_gains_lr(deck, bus_out_.data(), gains_.data(), gains_r_.data(), got);
    } else {
      mix_gains(deck, bus_out_.data(), gains_.data(), got);
    }
    g.elapsed += frames;
  }
}

// A voice on a stretcher of its own whose tempo (and rate 1) a running bus it may join has again —
// it split off during a tempo change, or started at a tempo no running bus had — goes back onto it
// (stretch_bus.hpp, "Rejoining"), called at the top of its block, before it renders: as a handover,
// its own stretcher (and resampler) carrying on as the group's, with their history (nothing to
// prime), its frames going into the bus where the bus is heard to reach them when its own path is
// heard there, then the equal-power crossfade; then the stretcher goes back to the pool. At most one
// per callback; false (it plays on as it was): not now.
bool Engine::bus_rejoin(Voice& v) noexcept {
  // (At tempo 1 too: a voice keeps the stretcher it has at tempo 1, so voices back at 1 share a bus.)
  if (rejoins_ > 0 || v.state != Voice::State::kPlaying || v.ratio != v.base_ratio || v.draining || v.hold ||
      v.jump_pending || v.st_switch || v.rs_switch || v.leave_bus || v.hold_off > 0 || v.deferred > 0 ||
      v.ho != nullptr || v.env.active() || v.env.value() != 1.0f || v.gain.active() || v.pan.active() ||
      !v.st->primed() || v.st->tempo() != v.tempo || (v.rs != nullptr && v.rs->ratio() != v.rs->target_ratio()) ||
      (cfg_.stretch_bus_share && v.deck >= kNumDecks)) {
    return false;
  }
  const int rate = rate_of(v);
  // bus_rule's choice (as bus_join's), but only onto a running bus whose members agree and whose
  // stretcher has finished gliding: its tempo then is the one to match.
  const auto view = [this](std::size_t k) {
    const StretchBus& p = *buses_[k];
    bus_rule::Bus b = rule_view(p);
    if (b.running && !(p.count > 0 && p.tempo == p.st->tempo() && b.tempo == p.tempo)) {
      b.tempo = std::numeric_limits<double>::quiet_NaN();  // none may rejoin it now
    }
    return b;
  };
  const int pick =
      bus_rule::pick(buses_.size(), view, bus_rule::Rider{.tempo = v.tempo, .src_rate = rate, .deck = v.deck});
  StretchBus* b = pick >= 0 && buses_[static_cast<std::size_t>(pick)]->running
                      ? buses_[static_cast<std::size_t>(pick)].get()
                      : nullptr;
  StretchBus* idle = pick >= 0 && b == nullptr ? buses_[static_cast<std::size_t>(pick)].get() : nullptr;
  // No running bus at its tempo: re-form one on an idle bus — but only for a second voice in this
  // callback that would share it (same rate and tempo, and the same deck unless buses are shared):
  // two stretches become one. A voice alone keeps its stretcher (a move would cost a prime and a
  // crossfade for nothing). The first one waits here; the second starts the bus, the first rejoins
  // it in a later callback (one rejoin a callback).
  const bool fresh = b == nullptr;
  if (fresh) {
    if (idle == nullptr) return false;
    const VoiceId me = id_of(v);
    if (reform_wait_ >= cfg_.max_voices || reform_wait_ == me) {
      reform_wait_ = me;
      return false;
    }
    const Voice& w = voices_[reform_wait_];
    const int w_rate = w.src != nullptr && w.src->sample_rate > 0 ? w.src->sample_rate : cfg_.sample_rate;
    if (w.tempo != v.tempo || w_rate != rate || w.st == nullptr || w.bus != nullptr ||
        (!idle->shared && w.deck != v.deck)) {
      reform_wait_ = me;  // the newest candidate waits instead
      return false;
    }
    b = idle;
  }
  Handover* h = nullptr;
  HandoverGroup* g = nullptr;
  for (auto& t : taps_) {
    if (!t->used && h == nullptr) h = t.get();
  }
  for (auto& p : groups_) {
    if (!p->active && g == nullptr) g = p.get();
  }
  // Source frames pulled but not yet heard: its own path's (a resampler to the output rate, then the
  // stretcher at the output rate) and the bus's. The bus's input now is heard L_bus / ρ on; its own
  // path reaches the voice's next frame L_own / ρ on: the bus reads from L_bus − L_own on (a tap
  // skip), or, when its own path holds more, after that many frames of silence.
  const double l_own =
      v.rs != nullptr ? v.rs->lookahead_frames() + v.st->lookahead_frames() * v.rs->ratio() : v.st->lookahead_frames();
  const double l_bus = fresh ? 0.0 : bus_lookahead(*b);  // a fresh bus is start-compensated: heard at once
  const std::int64_t skip = std::llround(l_bus - l_own);
  if (h == nullptr || g == nullptr || skip + 2 * static_cast<std::int64_t>(Stretcher::kPullFrames) > kTap) return false;
  if (fresh) bus_start(*b, v);
  const double rho = b->tempo * b->ratio;
  const std::int64_t delay = std::max<std::int64_t>(0, -skip);
  g->st = v.st;  // back to the pool when the crossfade is over (ho_end_group)
  g->rs = v.rs;
  v.st = nullptr;
  v.rs = nullptr;
  ho_arm_group(*g, *b, v, std::llround((l_bus + static_cast<double>(delay)) / rho), true);
  ho_arm_tap(*h, std::max<std::int64_t>(0, skip), 1.0f);
  h->group = g;
  g->members[0] = h;
  g->voices[g->count++] = id_of(v);
  v.ho = h;
  b->tail_left = 0;
  b->members[b->count++] = id_of(v);
  v.bus = b;
  v.bus_skip = 0;
  v.bus_delay = static_cast<std::uint32_t>(delay);
  v.env.jump(0.0f);  // the bus's part: in as its own path goes out (render_handovers)
  v.env.set(1.0f, static_cast<std::uint32_t>(std::max<std::int64_t>(1, std::llround(g->fade * rho))),
            Curve::kEqualPower);
  ++rejoins_;
  metrics_.stretch_rejoins.fetch_add(1, std::memory_order_relaxed);
  return true;
}

}  // namespace stemd::engine
