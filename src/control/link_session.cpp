// The Link session (see link_session.hpp): the one file that includes Ableton Link. [control, audio]
#include "link_session.hpp"

#include <ableton/Link.hpp>
#include <time.h>

#include <chrono>
#include <cmath>

namespace stemd::control {

struct LinkSession::Impl {
  explicit Impl(double bpm) : link(bpm), clock(link.clock()) {}
  ableton::Link link;
  ableton::Link::Clock clock;  // CLOCK_MONOTONIC_RAW on Linux, in µs
};

namespace {

std::int64_t mono_now_ns() noexcept {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);  // vDSO: no system call, never blocks
  return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

}  // namespace

LinkSession::LinkSession(double bpm, double output_latency_s, bool join) : impl_(std::make_unique<Impl>(bpm)) {
  set_output_latency(output_latency_s);
  g_bpm_.store(bpm);
  impl_->link.enable(join);
}

LinkSession::~LinkSession() { impl_->link.enable(false); }

void LinkSession::on_period(std::int64_t frame, std::uint64_t mono_ns, double ns_per_frame) noexcept {
  // When the period's first frame is heard, in Link's clock: its render time on the stream
  // clock's line, plus the output latency, moved from CLOCK_MONOTONIC to Link's clock by
  // reading both now (they differ by an offset and NTP's slew: ppm over the µs between them).
  const std::int64_t link_now_us = impl_->clock.micros().count();
  const std::int64_t mono_now = mono_now_ns();
  const std::int64_t heard_mono = static_cast<std::int64_t>(mono_ns) + latency_ns_.load(std::memory_order_relaxed);
  const auto heard = std::chrono::microseconds(link_now_us + (heard_mono - mono_now) / 1000);
  const double q = quantum_.load(std::memory_order_relaxed);
  const auto state = impl_->link.captureAudioSessionState();  // lock-free (Link's triple buffer)
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
