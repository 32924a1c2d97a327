// The Link session (see link_session.hpp): the one file that includes Ableton Link. [control, audio]
#include "link_session.hpp"

#include <ableton/Link.hpp>
#include <time.h>

#include <fmt/format.h>

#include <chrono>
#include <cmath>

namespace stemd::control {

struct LinkSession::Impl {
  explicit Impl(double bpm) : link(bpm), clock(link.clock()) {}
  ableton::Link link;
  ableton::Link::Clock clock;  // CLOCK_MONOTONIC_RAW on Linux, in µs
};

namespace {

// The session's beat count is read as its phase in two quanta of ~2^40 beats: a real session's
// (beats since its beat 0: at most 2^36) comes back whole from both, an absurd one does not.
constexpr double kQuantumA = 1099511627776.0;      // 2^40
constexpr double kQuantumB = 1099510579200.0;      // 2^40 − 2^20
constexpr double kMaxSessionBeat = 68719476736.0;  // 2^36 beats: 130 years at 999 bpm

std::string check_timeline(const ableton::Link::SessionState& s, std::chrono::microseconds now) {
  const double a = s.beatAtTime(now, kQuantumA), b = s.beatAtTime(now, kQuantumB);
  const double later = s.beatAtTime(now + std::chrono::seconds(1), kQuantumA);
  const double want = s.tempo() / 60.0;  // beats in that second
  if (std::isfinite(a) && std::isfinite(b) && std::isfinite(later) && std::fabs(a) <= kMaxSessionBeat &&
      std::fabs(a - b) < 1e-3 && std::fabs((later - a) - want) <= 0.01 * want + 1e-3) {
    return {};
  }
  return fmt::format(
      "the session's beat count is {:.6g} (or {:.6g}) and runs {:.4g} beats a second at {:.2f} bpm: a real session has "
      "counted fewer than 2^36 beats, at its tempo",
      a, b, later - a, s.tempo());
}

std::int64_t mono_now_ns() noexcept {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);  // vDSO: no system call, never blocks
  return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

}  // namespace

LinkSession::LinkSession(double bpm, double output_latency_s, bool join)
    : impl_(std::make_unique<Impl>(bpm)), join_(join) {
  set_output_latency(output_latency_s);
  g_bpm_.store(bpm);
  live_.store(impl_.get());
  impl_->link.enable(join);
}

LinkSession::~LinkSession() {
  impl_->link.enable(false);
  if (retired_) retired_->link.enable(false);
}

void LinkSession::join() { impl_->link.enable(join_); }

std::string LinkSession::absurd_session() const {
  return check_timeline(impl_->link.captureAppSessionState(), impl_->clock.micros());
}

bool LinkSession::rejoin(double bpm, double beat) {
  reap();
  if (retired_) return false;  // a callback is still inside the session the last rejoin left
  auto fresh = std::make_unique<Impl>(bpm);
  auto state = fresh->link.captureAppSessionState();
  state.forceBeatAtTime(beat, fresh->clock.micros() + std::chrono::microseconds(latency_ns_.load() / 1000),
                        quantum_.load());
  fresh->link.commitAppSessionState(state);
  impl_->link.enable(false);
  live_.store(fresh.get());  // seq_cst with on_period's count: see reap()
  retired_at_ = in_period_.load();
  retired_ = std::move(impl_);
  impl_ = std::move(fresh);  // joins at join(): once every stemd of the old session has left it
  ++rejoins_;
  reap();
  return true;
}

// The retired session may go once no callback can still be using it: none was inside on_period
// when it was retired (each later one loads live_ after its count, so sees the new session), or
// the one inside has ended since.
void LinkSession::reap() noexcept {
  if (retired_ && ((retired_at_ & 1) == 0 || in_period_.load() != retired_at_)) retired_.reset();
}

std::string LinkSession::absurd_timeline_for_test(double bpm, std::int64_t beat_origin_ubeats,
                                                  std::int64_t time_origin_us, std::int64_t ghost_intercept_us,
                                                  std::int64_t now_us) {
  namespace al = ableton::link;
  using us = std::chrono::microseconds;
  const al::Timeline session{al::Tempo{bpm}, al::Beats{beat_origin_ubeats}, us{time_origin_us}};
  const al::Timeline client{al::Tempo{120.0}, al::Beats{INT64_C(0)}, us{0}};
  const auto adopted =
      al::updateClientTimelineFromSession(client, session, us{now_us}, al::GhostXForm{1.0, us{ghost_intercept_us}});
  return check_timeline(ableton::Link::SessionState(al::ApiState{adopted, al::ApiStartStopState{}}, true), us{now_us});
}

void LinkSession::on_period(std::int64_t frame, std::uint64_t mono_ns, double ns_per_frame) noexcept {
  in_period_.fetch_add(1);  // odd: inside (rejoin() frees a retired session only outside)
  Impl* const im = live_.load();
  // When the period's first frame is heard, in Link's clock: its render time on the stream
  // clock's line, plus the output latency, moved from CLOCK_MONOTONIC to Link's clock by
  // reading both now (they differ by an offset and NTP's slew: ppm over the µs between them).
  const std::int64_t link_now_us = im->clock.micros().count();
  const std::int64_t mono_now = mono_now_ns();
  const std::int64_t heard_mono = static_cast<std::int64_t>(mono_ns) + latency_ns_.load(std::memory_order_relaxed);
  const auto heard = std::chrono::microseconds(link_now_us + (heard_mono - mono_now) / 1000);
  const double q = quantum_.load(std::memory_order_relaxed);
  const auto state = im->link.captureAudioSessionState();  // lock-free (Link's triple buffer)
  const double beat = state.beatAtTime(heard, q);
  const double bpm = state.tempo();
  const std::uint32_t s = seq_.load(std::memory_order_relaxed);
  seq_.store(s + 1, std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_release);
  g_frame_.store(frame, std::memory_order_relaxed);
  g_beat_.store(beat, std::memory_order_relaxed);
  g_bpm_.store(bpm, std::memory_order_relaxed);
  g_quantum_.store(q, std::memory_order_relaxed);
  g_fps_.store(ns_per_frame > 0 ? 1e9 / ns_per_frame : 0.0, std::memory_order_relaxed);
  seq_.store(s + 2, std::memory_order_release);
  in_period_.fetch_add(1);
}

bool LinkSession::grid(LinkGrid& g) const noexcept {
  for (int i = 0; i < 1000; ++i) {
    const std::uint32_t a = seq_.load(std::memory_order_acquire);
    if (a & 1) continue;
    g.frame = g_frame_.load(std::memory_order_relaxed);
    g.beat = g_beat_.load(std::memory_order_relaxed);
    g.bpm = g_bpm_.load(std::memory_order_relaxed);
    g.quantum = g_quantum_.load(std::memory_order_relaxed);
    g.frames_per_second = g_fps_.load(std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_acquire);
    if (seq_.load(std::memory_order_relaxed) == a) return a != 0 && g.frames_per_second > 0 && g.bpm > 0;
  }
  return false;
}

std::size_t LinkSession::peers() const { return impl_->link.numPeers(); }

double LinkSession::tempo() const { return impl_->link.captureAppSessionState().tempo(); }

void LinkSession::set_tempo(double bpm) {
  auto state = impl_->link.captureAppSessionState();
  if (std::fabs(state.tempo() - bpm) < 1e-6) return;  // the same tempo: nothing to tell the peers
  state.setTempo(bpm, impl_->clock.micros());
  impl_->link.commitAppSessionState(state);
}

}  // namespace stemd::control
