// The Ableton Link session (--link) [control, audio]: tempo, beat and phase shared with every
// Link peer on the network. The one file that includes Link (link_session.cpp; Debian's
// header-only ableton-link-dev with standalone Asio): nothing else in stemd sees its API.
//
// Two sides, as Link intends:
//  * the audio thread (on_period, a PeriodListener the engine calls at the start of every
//    callback) captures Link's real-time session state — lock-free, no allocation (tests/rt
//    checks it) — and publishes, sequence-locked, which beat the period's first frame is HEARD
//    on: its render time on the stream clock's line plus the output latency, in Link's clock;
//  * the control thread reads that grid (grid()) to put quantised starts on the session's beats
//    and to follow the session tempo, and sets the tempo through the app session state.
// Times: Link's clock is CLOCK_MONOTONIC_RAW (µs); the stream clock is CLOCK_MONOTONIC (ns): the
// two are related by reading both at the moment of use. Frames are engine (output) frames.
#pragma once

#include "stemd/metrics.hpp"

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace stemd::control {

// Where the session's beat grid is on the engine's frames, as of the latest callback.
struct LinkGrid {
  std::int64_t frame = 0;            // an engine frame…
  double beat = 0;                   // …is heard on this beat of the session (quantum-relative, see below)
  double bpm = 120;                  // the session tempo then
  double quantum = 4;                // the quantum `beat` was taken with: phases agree modulo it
  double frames_per_second = 48000;  // the device's measured rate (the stream clock's)

  double frames_per_beat() const { return frames_per_second * 60.0 / bpm; }
  double beat_at(std::int64_t f) const { return beat + static_cast<double>(f - frame) / frames_per_beat(); }
};

class LinkSession final : public engine::PeriodListener {
 public:
  // Joins the session at `bpm` (the session's tempo wins once a peer is found). output_latency_s:
  // how long after the callback renders a frame the device plays it (PortAudio's outputLatency).
  // join = false keeps the session to this process (tests: they must not move a real session).
  LinkSession(double bpm, double output_latency_s, bool join = true);
  ~LinkSession();
  LinkSession(const LinkSession&) = delete;
  LinkSession& operator=(const LinkSession&) = delete;

  // [audio] See PeriodListener: captures the real-time session state, publishes the grid.
  void on_period(std::int64_t frame, std::uint64_t mono_ns, double ns_per_frame) noexcept override;

  // [control] The latest grid the audio thread published; false before the first callback.
  bool grid(LinkGrid& g) const noexcept;
  // [control] Peers in the session (not counting this one).
  std::size_t peers() const;
  // [control] The session tempo now (the app session state).
  double tempo() const;
  // [control] Sets the session tempo for every peer, from now on (the beat carries on).
  void set_tempo(double bpm);

  // [control] Is the session's timeline absurd (outside pass 26, M2)? A forged peer can hand the
  // session a beat origin of 2^63−1 µbeats (Link then adopts it, and its own tempo changes
  // overflow and lose to it: the tempo cannot be changed any more), or a clock ~10^18 µs ahead
  // (its beat arithmetic overflows: the beat stops). Both put the session's beat count — beats
  // since the session's beat 0, read as the phase in a 2^40-beat quantum — beyond anything a real
  // session reaches (2^36 beats: 130 years at 999 bpm) or make it disagree with itself. Checked
  // now; "" when sane, else what was found.
  std::string absurd_session() const;
  // [control] Leaves the session and joins afresh: a new Link with a new timeline at `bpm`, on
  // which `beat` is heard now (this box's beat count carries on)
  // (Link's own leave and rejoin, enable(false/true), keeps the old timeline's beat origin). The
  // audio thread moves to it at its next callback; the old one is disabled at once and freed
  // once no callback can be using it. False (nothing done) while a callback is still inside the
  // session the previous rejoin left.
  bool rejoin(double bpm, double beat);
  // [control] After rejoin(): the new session looks for peers. The caller waits ~0.5 s first, so
  // that the other stemd boxes, which found the same absurd timeline within ~50 ms, have left the
  // old session too: a new session that heard one of them still in the old one would join it
  // (Link joins the session whose clock is furthest ahead: the old one) and be absurd again.
  void join();
  // [control] Sessions left by rejoin().
  std::uint64_t rejoins() const { return rejoins_; }
  // [test] absurd_session() on the timeline Link would give this box after adopting a session
  // timeline (bpm, beat origin in µbeats, time origin in ghost µs) measured with the ghost clock
  // `ghost_intercept_us` ahead of the host's, at host time `now_us`.
  static std::string absurd_timeline_for_test(double bpm, std::int64_t beat_origin_ubeats, std::int64_t time_origin_us,
                                              std::int64_t ghost_intercept_us, std::int64_t now_us);
  // [control] The quantum beats are taken with (phase agrees across peers modulo it): the
  // quantize step when it is set, else the meter. Read by the audio thread.
  void set_quantum(double beats) noexcept { quantum_.store(beats > 0 ? beats : 4.0, std::memory_order_relaxed); }
  double quantum() const noexcept { return quantum_.load(std::memory_order_relaxed); }
  // [any] The output latency compensated (seconds).
  void set_output_latency(double seconds) noexcept {
    latency_ns_.store(static_cast<std::int64_t>(seconds * 1e9), std::memory_order_relaxed);
  }
  double output_latency_s() const noexcept { return latency_ns_.load(std::memory_order_relaxed) * 1e-9; }

 private:
  struct Impl;
  void reap() noexcept;
  std::unique_ptr<Impl> impl_;        // [control] the session in use
  std::atomic<Impl*> live_{nullptr};  // the one the audio thread uses (impl_, or its predecessor until a callback)
  std::unique_ptr<Impl> retired_;     // left by rejoin(), freed once no callback can be inside it
  std::uint32_t retired_at_ = 0;      // in_period_ when it was retired
  std::atomic<std::uint32_t> in_period_{0};  // odd while on_period runs
  bool join_ = true;
  std::uint64_t rejoins_ = 0;
  std::atomic<double> quantum_{4.0};
  std::atomic<std::int64_t> latency_ns_{0};
  // The grid, sequence-locked (one writer: the audio thread).
  std::atomic<std::uint32_t> seq_{0};
  std::atomic<std::int64_t> g_frame_{0};
  std::atomic<double> g_beat_{0}, g_bpm_{120}, g_quantum_{4}, g_fps_{48000};
};

}  // namespace stemd::control
