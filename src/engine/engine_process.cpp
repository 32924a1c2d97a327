// The audio callback's block loop [audio]: commands applied, the block split where a scheduled
// command is due, every voice rendered into its deck's bus (engine_voice.cpp), the decks summed
// into the master through their EQ and level, then the limiter or soft clip, and the metrics.
// Real-time rules as in engine.cpp. Built with -O3, like every engine file.
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

std::uint64_t now_ns() noexcept {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);  // vDSO: no syscall, never blocks
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000ull + static_cast<std::uint64_t>(ts.tv_nsec);
}

// [audio] A level as heard now, for the control thread (status, the state file).
void publish_level(LevelTelemetry& t, const Ramp& g) noexcept {
  t.gain.store(g.value(), std::memory_order_relaxed);
  t.target.store(g.target(), std::memory_order_relaxed);
  t.frames_left.store(g.remaining(), std::memory_order_relaxed);
  t.curve.store(static_cast<std::uint8_t>(g.curve()), std::memory_order_relaxed);
}

}  // namespace

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

void Engine::add_through(float* out, const float* in, Ramp& g, std::uint32_t frames) noexcept {
  if (g.active()) {
    for (std::uint32_t f = 0; f < frames; ++f) gains_[f] = g.next();
    mix_gains(out, in, gains_.data(), frames);
  } else if (g.value() == 1.0f) {
    mix_add(out, in, frames);
  } else if (g.value() != 0.0f) {
    mix_gain(out, in, frames, g.value());
  }
}

// One block's decks summed into the master (block), then the master level and the output stage.
void Engine::sum_decks(float* block, std::uint32_t n, const bool* deck_used) noexcept {
  const std::size_t stride = static_cast<std::size_t>(cfg_.max_block_frames) * 2;
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
    if (d < kNumDecks && cfg_.monitor) meter_block(meter_sum_[d], bus, n, g.value());
    add_through(block, bus, g, n);
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
  if (cfg_.monitor) meter_block(meter_sum_[kNumDecks], block, n, 1.0f);
  static_assert(kNumDecks + 1 == Metrics::kMeters);
  for (int d = 0; d <= kNumDecks; ++d) publish_level(metrics_.levels[d], d < kNumDecks ? deck_gain_[d] : master_);
}

// A block's peak and sum of squares into a meter (deck buses: × the level the block ends at).
void Engine::meter_block(MeterSum& m, const float* block, std::uint32_t frames, float gain) noexcept {
  float peak = 0.0f;
  double sumsq = 0.0;
  for (std::uint32_t i = 0; i < frames * 2; ++i) {
    const float x = block[i];
    peak = std::max(peak, std::fabs(x));
    sumsq += static_cast<double>(x) * x;
  }
  const float g = std::fabs(gain);
  m.peak = std::max(m.peak, peak * g);
  m.sumsq += sumsq * g * g;
}

// One callback's meters published (RMS over the callback, both channels; peak held until read).
void Engine::publish_meters(std::uint32_t frames) noexcept {
  for (int i = 0; i < Metrics::kMeters; ++i) {
    BusMeter& b = metrics_.meters[i];
    MeterSum& s = meter_sum_[i];
    const float rms = frames ? static_cast<float>(std::sqrt(s.sumsq / (2.0 * frames))) : 0.0f;
    b.rms.store(rms, std::memory_order_relaxed);
    if (s.peak > b.peak.load(std::memory_order_relaxed)) b.peak.store(s.peak, std::memory_order_relaxed);
    s = MeterSum{};
  }
}

// A retiring voice at active_[i]: its end reported once, its stream handed back and its slot
// freed (active_[i] then holds another voice). False when the retire queue is full: retried
// next block.
bool Engine::reap(std::uint32_t i) noexcept {
  const VoiceId id = active_[i];
  Voice& v = voices_[id];
  // Report the end, then hand the stream back and free the slot (the event goes first so
  // the control thread sees it before the slot can be reused). Retire queue full: retry
  // next block.
  if (!v.ended_reported) {
    push_event(Event{EventType::kVoiceEnded, v.retire_reason, id, v.generation, v.underruns, frame_});
    metrics_.voices_ended.fetch_add(1, std::memory_order_relaxed);
    v.ended_reported = true;
  }
  if (!retire(v.stream, id, v.generation, true)) return false;
  v.stream = nullptr;
  release_resampler(v);
  bus_leave(v);
  if (v.st != nullptr) {
    st_free_.push_back(v.st);  // capacity == pool size: never allocates
    v.st = nullptr;
  }
  v.state = Voice::State::kFree;
  telemetry_[id].state.store(0, std::memory_order_relaxed);
  active_[i] = active_[--active_count_];
  return true;
}

// The stream clock: the DLL's line through this callback's start (frame_dll.hpp), published for
// the control thread, its error counted, and the period listener (Link) told.
void Engine::track_clock(std::uint64_t t0, std::uint32_t frames) noexcept {
  const std::uint64_t resets = dll_.resets();
  // An underflow (a late callback: JACK's "client was not finished") loses that period's sound
  // but not the frame ↔ time relation, so it does not restart the loop; a real jump of the
  // device's timeline shows in the stamps and restarts it there (frame_dll.hpp). When it moved
  // forward (frames lost: a skipped server cycle) the frame counter follows, so what is
  // scheduled keeps its wall-clock time.
  frame_ += dll_.update(frame_, t0, frames);
  if (dll_.resets() != resets) metrics_.clock_resets.fetch_add(1, std::memory_order_relaxed);
  const double err = dll_.error_ns();
  metrics_.clock_error_ns.store(static_cast<std::int64_t>(err), std::memory_order_relaxed);
  metrics_.clock_locked_ms.store(static_cast<std::uint32_t>(std::min(dll_.locked_seconds(), 4e6) * 1e3),
                                 std::memory_order_relaxed);
  metrics_.clock_error_max.note(static_cast<std::uint64_t>(std::fabs(err)), frame_ / cfg_.sample_rate);
  const auto line = static_cast<std::uint64_t>(std::max(0.0, dll_.time0_ns()));
  metrics_.clock.publish(frame_, line, dll_.ns_per_frame());
  if (PeriodListener* l = period_listener_.load(std::memory_order_acquire))
    l->on_period(frame_, line, dll_.ns_per_frame());
}

// [audio] A voice's telemetry for the control thread: the position heard (the resampler's or the
// stretch bus's read-ahead taken off), its ring's fill, its state and its volume as heard.
void Engine::publish_voice(VoiceId id, const Voice& v, std::uint32_t fill) noexcept {
  VoiceTelemetry& t = telemetry_[id];
  std::int64_t heard = v.pos;
  const double ahead = v.bus != nullptr ? bus_lookahead(*v.bus) : v.rs != nullptr ? v.rs->lookahead_frames() : 0.0;
  if (ahead > 0.0) {
    heard -= static_cast<std::int64_t>(std::lround(ahead));
    if (heard < 0 && v.src->total_frames > 0) heard += v.src->total_frames;
  }
  t.position.store(std::max<std::int64_t>(0, heard), std::memory_order_relaxed);
  t.ring_fill_permille.store(fill, std::memory_order_relaxed);
  t.generation.store(v.generation, std::memory_order_relaxed);
  t.state.store(telemetry_state(v), std::memory_order_relaxed);
  t.bus.store(v.bus != nullptr ? static_cast<std::uint8_t>(v.bus->index + 1) : 0, std::memory_order_relaxed);
  publish_level(t.level, v.gain);
  publish_level(t.envelope, v.env);
}

// The wake-ups a callback ends with: the control thread's relay when it has news (the bell: events,
// retirees, a device underflow for /stemd/device/underflow), the loader when streams consumed.
void Engine::wake_after(bool streams_consumed, bool device_underflow) noexcept {
  if (rang_ || device_underflow) {
    control_bell_.store(true, std::memory_order_release);  // before the wake that passes it on
    if (news_fn_ != nullptr) news_fn_(news_ctx_);
    rang_ = false;
  }
  if (streams_consumed && wake_fn_ != nullptr) wake_fn_(wake_ctx_);
}

void Engine::process(float* out, std::uint32_t frames, bool device_underflow) noexcept {
  const std::uint64_t t0 = now_ns();
  metrics_.last_callback_ns.store(t0, std::memory_order_relaxed);
  track_clock(t0, frames);
  metrics_.audio_thread.store(static_cast<unsigned long>(pthread_self()), std::memory_order_relaxed);
  ScopedFlushDenormals no_denormals;
  if (device_underflow) {
    metrics_.device_underflows.fetch_add(1, std::memory_order_relaxed);
    metrics_.last_device_underflow_ns.store(t0, std::memory_order_relaxed);
  }

  apply_commands();  // a start on a running bus may take a prime already (stretch_bus_handover.cpp)

  bool streams_consumed = false;
  std::uint32_t min_fill = 1000;
  std::uint32_t streams = 0;

  std::uint32_t offset = 0;
  std::size_t due = 0;  // scheduled commands applied in this callback
  while (offset < frames) {
    due += apply_due();
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
      if (!deck_used[v.deck] && (v.bus == nullptr || !v.bus->shared)) {  // a shared bus's: not via the deck
        std::memset(bus, 0, sizeof(float) * 2 * n);
        deck_used[v.deck] = true;
      }
      prefetch_ahead(i, n);
      if (v.state != Voice::State::kRetiring) render_voice(v, bus, n);
      if (v.state == Voice::State::kRetiring) {
        if (!reap(i)) ++i;  // a freed slot now holds another voice: look at it next
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
      publish_voice(id, v, fill);
      ++i;
    }

    render_buses(n, deck_used);  // the stretch buses' members were skipped above

    if (tone_active()) {  // the test tone: straight to the master, through the direct bus
      float* bus = decks_.data() + stride * kDirectBus;
      if (!deck_used[kDirectBus]) {
        std::memset(bus, 0, sizeof(float) * 2 * n);
        deck_used[kDirectBus] = true;
      }
      render_tones(bus, n);
    }

    sum_decks(block, n, deck_used);
    frame_ += n;
    offset += n;
  }

  if (cfg_.monitor) {
    publish_meters(frames);
    tap_->write(out, frames, frame_ - frames);
  }
  if (due > metrics_.schedule_due_max.load(std::memory_order_relaxed)) {
    metrics_.schedule_due_max.store(due, std::memory_order_relaxed);
  }
  metrics_.voices_active.store(active_count_, std::memory_order_relaxed);
  metrics_.streams_active.store(streams, std::memory_order_relaxed);
  publish_buses();
  if (const std::uint32_t primes = primes_ + bus_primes_; primes > 0) {
    metrics_.stretch_primes.fetch_add(primes, std::memory_order_relaxed);
    if (primes > metrics_.stretch_primes_max.load(std::memory_order_relaxed)) {
      metrics_.stretch_primes_max.store(primes, std::memory_order_relaxed);
    }
  }
  end_prime_round();  // the next callback's budget, the longest waiters first
  rejoins_ = 0;
  reform_wait_ = ~VoiceId{0};
  if (min_fill < metrics_.min_ring_fill_permille.load(std::memory_order_relaxed)) {
    metrics_.min_ring_fill_permille.store(min_fill, std::memory_order_relaxed);
  }
  metrics_.frames.store(static_cast<std::uint64_t>(frame_), std::memory_order_relaxed);
  metrics_.callbacks.fetch_add(1, std::memory_order_relaxed);
  wake_after(streams_consumed, device_underflow);

  const std::uint64_t dt = now_ns() - t0;
  metrics_.callback_ns.record(dt);
  metrics_.callback_ns_total.fetch_add(dt, std::memory_order_relaxed);
  if (dt > metrics_.callback_max_ns.load(std::memory_order_relaxed)) {
    metrics_.callback_max_ns.store(dt, std::memory_order_relaxed);
  }
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

}  // namespace stemd::engine
