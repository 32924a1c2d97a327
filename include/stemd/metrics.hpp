// Metrics the audio callback publishes and other threads read.
//
// Writers: the audio callback [audio] only, with relaxed atomic stores/increments — never a lock.
// Readers: the control/main thread [control], any time. Callback durations go into a log-scale
// histogram (8 bins per octave of nanoseconds, ≈ 9 % resolution) from which readers compute
// p50/p99 over any window by differencing two snapshots.
#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <cstdint>

namespace stemd::engine {

class DurationHistogram {
 public:
  static constexpr int kSubBits = 3;  // 8 bins per octave
  static constexpr int kBins = 64 << kSubBits;
  using Snapshot = std::array<std::uint64_t, kBins>;

  static int bin_of(std::uint64_t ns) noexcept {
    if (ns < (1u << kSubBits)) return static_cast<int>(ns);
    const int msb = std::bit_width(ns) - 1;
    const int sub = static_cast<int>((ns >> (msb - kSubBits)) & ((1u << kSubBits) - 1));
    return (msb << kSubBits) | sub;
  }
  // Upper edge of a bin, in ns (what a percentile reports).
  static std::uint64_t upper_ns(int bin) noexcept {
    if (bin < (1 << kSubBits)) return static_cast<std::uint64_t>(bin) + 1;
    const int msb = bin >> kSubBits;
    if (msb < kSubBits) return (std::uint64_t{1} << kSubBits);  // bins bin_of() never produces
    const std::uint64_t sub = static_cast<std::uint64_t>(bin & ((1 << kSubBits) - 1));
    const std::uint64_t mant = (std::uint64_t{1} << kSubBits) + sub + 1;  // ≤ 16
    const int shift = msb - kSubBits;
    if (shift >= 60 && mant >= (std::uint64_t{1} << (64 - shift))) return UINT64_MAX;  // top bin: saturate
    return mant << shift;
  }

  void record(std::uint64_t ns) noexcept {  // [audio]
    bins_[static_cast<std::size_t>(bin_of(ns))].fetch_add(1, std::memory_order_relaxed);
  }
  // [main] A previous image's counts, added before the audio starts (a lost device's hand-over).
  void carry(const Snapshot& s) noexcept {
    for (int i = 0; i < kBins; ++i)
      bins_[static_cast<std::size_t>(i)].fetch_add(s[static_cast<std::size_t>(i)], std::memory_order_relaxed);
  }
  Snapshot snapshot() const noexcept {  // [control]
    Snapshot s{};
    for (int i = 0; i < kBins; ++i)
      s[static_cast<std::size_t>(i)] = bins_[static_cast<std::size_t>(i)].load(std::memory_order_relaxed);
    return s;
  }
  // q in [0,1]; counts is a snapshot or the difference of two. Returns 0 when empty. A bin's upper
  // edge is up to 1/16 above what was recorded in it: `at_most` (the largest recorded, when the
  // caller keeps it) caps the answer, so a percentile never reads above the maximum printed beside it.
  static std::uint64_t percentile_ns(const Snapshot& counts, double q, std::uint64_t at_most = UINT64_MAX) noexcept {
    return std::min(percentile_edge_ns(counts, q), at_most);
  }
  static std::uint64_t percentile_edge_ns(const Snapshot& counts, double q) noexcept {
    std::uint64_t total = 0;
    for (auto c : counts) total += c;
    if (total == 0) return 0;
    const auto want = static_cast<std::uint64_t>(q * static_cast<double>(total - 1)) + 1;
    std::uint64_t seen = 0;
    for (int i = 0; i < kBins; ++i) {
      seen += counts[static_cast<std::size_t>(i)];
      if (seen >= want) return upper_ns(i);
    }
    return upper_ns(kBins - 1);
  }

 private:
  std::array<std::atomic<std::uint64_t>, kBins> bins_{};
};

// A level as heard at the end of the last callback ([audio] writes, [control] reads): each voice's
// volume, the master's and each deck's, so a fade under way is reported (and kept by a restart)
// where it is, not where it goes.
struct LevelTelemetry {
  std::atomic<float> gain{1.0f};
  std::atomic<float> target{1.0f};            // where its ramp goes (= gain when none runs)
  std::atomic<std::uint32_t> frames_left{0};  // output frames the ramp has left (0: none)
  std::atomic<std::uint8_t> curve{0};         // engine::Curve
};

// Per-voice telemetry, one per voice slot, written by [audio] once per block for active voices.
struct VoiceTelemetry {
  std::atomic<std::int64_t> position{0};             // file frame of the next frame to play
  std::atomic<std::uint32_t> ring_fill_permille{0};  // 1000 for in-memory voices
  std::atomic<std::uint32_t> generation{0};          // which voice these numbers belong to
  std::atomic<std::uint8_t> state{0};                // 0 free, 1 playing, 2 starved, 3 stopping, 4 paused
  std::atomic<std::uint32_t> seek_heard{0};          // the last seek made: its number (Command::frames)
  std::atomic<std::uint8_t> bus{0};                  // the stretch bus it rides: 0 none, i + 1 bus i (made order)
  LevelTelemetry level;                              // its volume as heard
  LevelTelemetry envelope;                           // its declick envelope (a stop's, a pause's fade)
};

// Per-stretch-bus telemetry (engine/stretch_bus.hpp), one per bus in made order, written by [audio]
// at the end of every callback; the control thread charges the work budgets from it
// (control/controller_buses.cpp). Relaxed snapshots: each field is what ran in the last callback.
struct BusTelemetry {
  std::atomic<std::uint8_t> running{0};   // it has members, or plays out its tail
  std::atomic<std::uint32_t> members{0};  // voices on it (those fading out after a stop too)
  std::atomic<std::uint64_t> tags{0};     // the sum of its members' bus_rule::member_tag
  std::atomic<float> tempo{1.0f};         // the higher of its tempo and its stretcher's (gliding there)
  std::atomic<std::uint8_t> deck{0};      // its members' deck (unused when shared)
  std::atomic<std::uint8_t> groups{0};    // own stretchers (handovers, rejoins) running onto it
};

// The stream's clock: which engine frame is rendered at which CLOCK_MONOTONIC time, and how long
// a frame lasts (ns of that clock: the device's rate as measured against it). [audio] publishes
// the line its delay-locked loop (frame_dll.hpp) keeps through the callbacks' start times, at the
// start of every callback; [control] reads it consistently (sequence-locked) to turn wall-clock
// times (OSC timetags, Link beats) into engine frames. The time is when the callback renders the
// frame: the device plays it an output latency later.
class StreamClock {
 public:
  void publish(std::int64_t frame, std::uint64_t mono_ns, double ns_per_frame = 0) noexcept {  // [audio]
    const std::uint32_t s = seq_.load(std::memory_order_relaxed);
    seq_.store(s + 1, std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_release);
    frame_.store(frame, std::memory_order_relaxed);
    ns_.store(mono_ns, std::memory_order_relaxed);
    ns_per_frame_.store(ns_per_frame, std::memory_order_relaxed);
    seq_.store(s + 2, std::memory_order_release);
  }
  // [control] False when the stream has not run yet. ns_per_frame is 0 when none was published
  // (the caller then uses the nominal rate).
  bool read(std::int64_t& frame, std::uint64_t& mono_ns) const noexcept {
    double unused = 0;
    return read(frame, mono_ns, unused);
  }
  bool read(std::int64_t& frame, std::uint64_t& mono_ns, double& ns_per_frame) const noexcept {
    for (int i = 0; i < 1000; ++i) {
      const std::uint32_t a = seq_.load(std::memory_order_acquire);
      if (a & 1) continue;
      frame = frame_.load(std::memory_order_relaxed);
      mono_ns = ns_.load(std::memory_order_relaxed);
      ns_per_frame = ns_per_frame_.load(std::memory_order_relaxed);
      std::atomic_thread_fence(std::memory_order_acquire);
      if (seq_.load(std::memory_order_relaxed) == a) return a != 0;
    }
    return false;
  }

 private:
  std::atomic<std::uint32_t> seq_{0};
  std::atomic<std::int64_t> frame_{0};
  std::atomic<std::uint64_t> ns_{0};
  std::atomic<double> ns_per_frame_{0};
};

// Told at the start of every callback where the stream is [audio]: `frame` (the period's first
// engine frame) is rendered at `mono_ns` (CLOCK_MONOTONIC, the DLL's line) and each frame lasts
// `ns_per_frame`. The Link session (control/link_session.cpp) is one: it reads Link's real-time
// session state there. Implementations must keep the real-time rules (tests/rt).
class PeriodListener {
 public:
  virtual void on_period(std::int64_t frame, std::uint64_t mono_ns, double ns_per_frame) noexcept = 0;

 protected:
  ~PeriodListener() = default;
};

// Peak and RMS meters of one bus (a deck after its EQ and level, or the master after the output
// stage), linear full scale 1.0. [audio] publishes them once per callback when the engine meters
// (EngineConfig::meters); RMS is over that callback, peak is the highest since a reader took it.
struct BusMeter {
  std::atomic<float> peak{0.0f};
  std::atomic<float> rms{0.0f};
  float take_peak() noexcept { return peak.exchange(0.0f, std::memory_order_relaxed); }  // [control]
};

// The largest |clock error| in the current and the previous second of output frames: kept by the
// audio thread, read by anyone without changing it (a status read that reset it — the web
// monitor polls the status — left `stemctl status` only the errors since the page's last poll).
class ClockErrorWindow {
 public:
  // [audio] `abs_ns` happened in second `second` of the stream (frames / rate).
  void note(std::uint64_t abs_ns, std::int64_t second) noexcept {
    const std::int64_t cur = second_.load(std::memory_order_relaxed);
    std::atomic<std::uint64_t>& slot = max_ns_[second & 1];
    if (second != cur) {
      if (second != cur + 1) max_ns_[(second & 1) ^ 1].store(0, std::memory_order_relaxed);
      slot.store(abs_ns, std::memory_order_relaxed);
      second_.store(second, std::memory_order_relaxed);
    } else if (abs_ns > slot.load(std::memory_order_relaxed)) {
      slot.store(abs_ns, std::memory_order_relaxed);
    }
  }
  // [any] The largest of the last one to two seconds (of the stream's frames: a stopped stream
  // keeps its last figure).
  std::uint64_t recent_ns() const noexcept {
    return std::max(max_ns_[0].load(std::memory_order_relaxed), max_ns_[1].load(std::memory_order_relaxed));
  }

 private:
  std::atomic<std::uint64_t> max_ns_[2] = {};
  std::atomic<std::int64_t> second_{-2};
};

// The glitch totals a lost device's hand-over carries to the next image of stemd (app/recovery.cpp),
// so that status counts them since the service started, as it does its uptime: a week-long show
// that lost its DAC and glitched read as clean after the return (outside pass 26, user M1).
struct GlitchTotals {
  std::uint64_t voice_underruns = 0, device_underflows = 0;
  std::uint64_t last_voice_underrun_ns = 0, last_device_underflow_ns = 0;  // CLOCK_MONOTONIC (0: none yet)
  // The callbacks' durations since the service started: their histogram and the longest (ns).
  DurationHistogram::Snapshot callback_ns{};
  std::uint64_t callback_max_ns = 0;
  bool operator==(const GlitchTotals&) const = default;
};

struct Metrics {
  StreamClock clock;
  // Meters: decks A–D (index 0..3), then the master (index 4).
  static constexpr int kMeters = 5;
  BusMeter meters[kMeters];
  // The levels as heard (decks A–D, then the master), published at the end of each callback.
  LevelTelemetry levels[kMeters];
  // The clock's delay-locked loop (frame_dll.hpp): the last callback's start minus the loop's
  // prediction (ns), the largest |error| of the last one to two seconds of frames, and how often
  // it restarted or re-phased (the device's timeline moved: an xrun, a stream restart).
  std::atomic<std::int64_t> clock_error_ns{0};
  ClockErrorWindow clock_error_max;
  std::atomic<std::uint32_t> clock_locked_ms{0};  // FrameDll::locked_seconds(), in ms
  std::atomic<std::uint64_t> clock_resets{0};
  std::atomic<std::uint64_t> commands_late{0};  // scheduled commands that arrived after their frame
  std::atomic<std::uint64_t> schedule_overflows{
      0};  // scheduled commands refused (never applied): the schedule was full
  // Commands with an at_frame the engine is done with: applied (on time or late), cancelled,
  // cleared or refused. The control thread counts what it sent; the difference is what waits.
  std::atomic<std::uint64_t> schedule_done{0};
  // The most scheduled commands one callback applied (since start): the control thread admits
  // at most kMaxTimedPerPeriod per 64 output frames (control/limits.hpp).
  std::atomic<std::uint64_t> schedule_due_max{0};
  std::atomic<std::uint64_t> callbacks{0};
  std::atomic<std::uint64_t> frames{0};             // engine frame counter (output frames produced)
  std::atomic<std::uint64_t> voice_underruns{0};    // total over all voices
  std::atomic<std::uint64_t> device_underflows{0};  // paOutputUnderflow and friends
  // CLOCK_MONOTONIC (ns) of the callback that counted the last of each (0: none yet): status says
  // how long ago, so a glitch on the first day is not read as a recent one after weeks.
  std::atomic<std::uint64_t> last_voice_underrun_ns{0};
  std::atomic<std::uint64_t> last_device_underflow_ns{0};
  // [audio] One voice's ring ran dry, in the callback that started at last_callback_ns.
  void note_voice_underrun() noexcept {
    voice_underruns.fetch_add(1, std::memory_order_relaxed);
    last_voice_underrun_ns.store(last_callback_ns.load(std::memory_order_relaxed), std::memory_order_relaxed);
  }
  std::atomic<std::uint64_t> commands_applied{0};
  std::atomic<std::uint64_t> events_dropped{0};  // informational events lost to a full queue
  std::atomic<std::uint64_t> voices_ended{0};
  std::atomic<std::uint32_t> voices_active{0};          // gauge
  std::atomic<std::uint32_t> streams_active{0};         // gauge
  std::atomic<std::uint32_t> stretch_buses_running{0};  // gauge: stretch buses with voices (or their tail)
  std::atomic<std::uint32_t> stretch_bus_voices{0};     // gauge: voices time-stretched on a bus
  // Rubber Band primes run on the audio thread (a stretcher's first process() after a reset:
  // about two blocks of extra library work each), in all and most in one callback since start.
  std::atomic<std::uint64_t> stretch_primes{0};
  std::atomic<std::uint32_t> stretch_primes_max{0};
  std::atomic<std::uint64_t> stretch_starts_deferred{0};  // voices past the prime budget (kVoiceDeferred)
  // Voices started on a running stretch bus: handed over (their attack played by a stretcher of
  // their own, then crossfaded onto the bus), or joined without (no prime, stretcher or tap to
  // spare: their first lookahead, ≈ 45 ms, lost). src/engine/stretch_bus.hpp, "The handover".
  std::atomic<std::uint64_t> stretch_handovers{0};
  std::atomic<std::uint64_t> stretch_joins_lost{0};
  // Voices that had split off a bus onto a stretcher of their own (another tempo for a while, or a
  // start at a tempo no running bus had) and went back onto a running bus at its tempo, crossfaded
  // as a handover; their stretchers went back to the pool. stretch_bus.hpp, "Rejoining".
  std::atomic<std::uint64_t> stretch_rejoins{0};
  std::atomic<std::uint64_t> callback_max_ns{0};    // since start
  std::atomic<std::uint64_t> callback_ns_total{0};  // sum of callback durations (CPU load)
  std::atomic<std::uint64_t> limiter_frames{0};     // frames the safety limiter reduced
  std::atomic<unsigned long> audio_thread{0};       // pthread_t of the thread running process()
  std::atomic<float> limiter_min_gain{1.0f};        // deepest reduction since a reader took it
  std::atomic<float> tone_hz{0.0f};                 // the test tone sounding (its frequency), 0 = none
  std::atomic<std::uint64_t> last_callback_ns{0};   // CLOCK_MONOTONIC of the last callback start
  // Lowest ring fill seen (per mille of capacity) since a reader last took it; 1000 = no streams.
  std::atomic<std::uint32_t> min_ring_fill_permille{1000};
  DurationHistogram callback_ns;

  std::uint32_t take_min_ring_fill() noexcept {  // [control]
    return min_ring_fill_permille.exchange(1000, std::memory_order_relaxed);
  }
  GlitchTotals glitch_totals() const noexcept {  // [any]
    return {voice_underruns.load(std::memory_order_relaxed),
            device_underflows.load(std::memory_order_relaxed),
            last_voice_underrun_ns.load(std::memory_order_relaxed),
            last_device_underflow_ns.load(std::memory_order_relaxed),
            callback_ns.snapshot(),
            callback_max_ns.load(std::memory_order_relaxed)};
  }
  // [main] A previous image's totals, added to this one's (its last times kept unless this one
  // already counted one: CLOCK_MONOTONIC runs on across the exec), its callbacks' histogram
  // added and their longest kept if longer (called before the audio starts).
  void carry(const GlitchTotals& g) noexcept {
    callback_ns.carry(g.callback_ns);
    if (g.callback_max_ns > callback_max_ns.load(std::memory_order_relaxed))
      callback_max_ns.store(g.callback_max_ns, std::memory_order_relaxed);
    voice_underruns.fetch_add(g.voice_underruns, std::memory_order_relaxed);
    device_underflows.fetch_add(g.device_underflows, std::memory_order_relaxed);
    std::uint64_t none = 0;
    last_voice_underrun_ns.compare_exchange_strong(none, g.last_voice_underrun_ns, std::memory_order_relaxed);
    none = 0;
    last_device_underflow_ns.compare_exchange_strong(none, g.last_device_underflow_ns, std::memory_order_relaxed);
  }
};

}  // namespace stemd::engine
