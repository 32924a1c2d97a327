// The mixer: voices → stereo master, run inside the audio callback.
//
// Threads:
//   [audio]   process() — the only thread that touches voices and the master. It applies the
//             commands queued since the last call, mixes, advances ramps, publishes metrics and
//             events. Real-time safe: no allocation, locks, I/O, logging or blocking syscalls.
//   [control] send(), poll_event(), poll_retired(), metrics() — one control thread at a time.
// Everything is allocated in the constructor, sized for max_voices and max_block_frames.
// The engine knows no files, no OSC and no audio API: sources are float frames in memory
// (VoiceSource) and streams are rings (stemd/stream.hpp).
#pragma once

#include "stemd/command.hpp"
#include "stemd/frame_dll.hpp"
#include "stemd/metrics.hpp"
#include "stemd/monitor_tap.hpp"
#include "stemd/queue.hpp"
#include "stemd/ramp.hpp"

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

namespace stemd {
class Stream;
}

namespace stemd::engine {

class DeckEq;
struct Frames;
class Resampler;
class Schedule;
class Stretcher;
namespace bus_rule {
struct Bus;
}

// What a voice reads from memory: a whole file, or the head of a streamed one. Interleaved
// stereo float, or int16 (a 16-bit file's head: converted x / 32768 as it is mixed, the float
// libsndfile's own read gives). Immutable while any voice uses it (the control thread guarantees it).
struct VoiceSource {
  const float* frames = nullptr;           // null when frames16 holds the audio
  std::int64_t memory_frames = 0;          // frames available in `frames` (or `frames16`)
  std::int64_t total_frames = 0;           // length of the file
  bool streamed = false;                   // frames beyond memory_frames come from a Stream
  int sample_rate = 0;                     // the file's rate; 0 = the engine's (no conversion)
  const std::int16_t* frames16 = nullptr;  // set instead of `frames`: int16 samples
};

struct EngineConfig {
  int sample_rate = 48000;
  std::uint32_t max_block_frames = 8192;
  std::uint32_t max_voices = 4096;
  // The mixer's steady loops in the widest vector build the CPU runs (AVX2 on x86-64; mix.hpp).
  // The same bits either way; false only to measure or test the baseline build.
  bool simd = true;
  float declick_ms = 5.0f;  // fade used for stop, seek, underrun and mid-file starts
  // Voices that can play at a rate ≠ 1 or from a file at another sample rate at once: each
  // needs a resampler, allocated up front (≈ 134 KiB each at quality 0).
  std::uint32_t max_resampled_voices = 64;
  int resample_quality = 0;  // 0 fast (119 dB SNR), 1 medium (142 dB), 2 best (149 dB)
  // Voices that can be time-stretched at once (Rubber Band, ≈ 600 ns/frame each: opt-in;
  // each takes ≈ 0.1 s to create and warm up, so none unless asked).
  std::uint32_t max_stretched_voices = 0;
  // Voices' own stretchers the audio thread primes in one callback at most (a prime is about two
  // blocks of Rubber Band work: stretcher.hpp). A voice past it stays silent on the grid and primes
  // in a later callback (EventType::kVoiceDeferred tells the client). Buses prime apart from this.
  std::uint32_t stretch_primes_per_callback = 1;
  bool stretch_faster = false;  // Rubber Band's R2 engine (OptionEngineFaster) instead of R3 (finer)
  // Stretch buses (src/engine/stretch_bus.hpp): one Stretcher (+ one Resampler to the output
  // rate) shared by every stretched voice of a deck with the same tempo and source rate —
  // `stretch_buses` of them for each rate in stretch_bus_rates (0 = the output rate), made up
  // front like the stretchers. Voices that find none keep a stretcher of their own.
  std::uint32_t stretch_buses = 0;
  int stretch_bus_rates[2] = {44100, 0};
  // Shared stretch buses (--stretch-bus-share): one bus takes the stretched voices of *every*
  // deck at its tempo and source rate; each deck's part goes through a source-rate copy of that
  // deck's EQ and fader before the one stretch, so a deck's fader and EQ reach its bus voices one
  // lookahead (≈ 45 ms) late. Off: one bus per deck, the deck's EQ and fader act at once.
  bool stretch_bus_share = false;
  // Safety limiter on the master: exactly transparent (gain 1.0) while peaks stay below the
  // threshold; above it the gain drops at once to hold the peak at the threshold and recovers
  // over `limiter_release_ms`, so a sum of full-scale stems never wraps or clips harshly.
  bool limiter = false;              // the daemon turns it on (--limiter, default true)
  float limiter_threshold = 0.891f;  // −1 dBFS
  float limiter_release_ms = 80.0f;
  // The old crowdstream server's output stage instead of the limiter (--limiter soft_clip):
  // every sample becomes 0.9·tanh(0.9·x) — colours everything, never exceeds 0.9.
  bool soft_clip = false;
  // The master's gain at start (--master; the old crowdstream server's was a fixed 0.8).
  float master = 1.0f;
  // The web monitor (issue 16): peak/RMS meters per deck and master (Metrics::meters), and a
  // tap of the master for listeners (monitor_tap()). Off: neither costs anything.
  bool monitor = false;
};

class Engine {
 public:
  static constexpr std::size_t kCommandQueue = 8192;
  static constexpr std::size_t kEventQueue = 8192;
  static constexpr std::size_t kRetireQueue = 16384;
  // Commands waiting for their frame at most. The control thread refuses more ("schedule full",
  // counting what it sent against Metrics::schedule_done); the engine refuses (never applies
  // early) any that still arrive with the schedule full.
  static constexpr std::size_t kMaxScheduled = 8192;
  // Commands applied per callback at most: a flood of control messages delays commands
  // (they wait in the queue, in order) instead of stretching one callback past its budget.
  static constexpr std::size_t kMaxCommandsPerCallback = 512;

  explicit Engine(const EngineConfig& cfg);  // [control] allocates everything
  ~Engine();
  // [control] Resamplers not attached to a voice (a snapshot; the control thread keeps its
  // own count to refuse plays when none is left).
  std::uint32_t max_resampled_voices() const noexcept { return cfg_.max_resampled_voices; }
  std::uint32_t max_stretched_voices() const noexcept { return cfg_.max_stretched_voices; }
  // [control] Stretch buses made at start (all rates together).
  std::uint32_t stretch_buses() const noexcept { return static_cast<std::uint32_t>(buses_.size()); }
  int stretch_bus_rate(std::uint32_t i) const noexcept;  // [control] the source rate bus i (< stretch_buses()) serves
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  const EngineConfig& config() const noexcept { return cfg_; }
  std::uint32_t declick_frames() const noexcept { return declick_frames_; }

  // [control] false when the command queue is full (the caller answers "busy"; nothing waits).
  bool send(const Command& c) noexcept { return commands_.push(c); }
  // [control] Commands that can be sent now without "busy" (for all-or-nothing multi-command
  // requests: check first, then send).
  std::size_t command_space() const noexcept { return commands_.write_available(); }
  // [control, ONLY before the stream starts: once it runs, the audio thread is the queue's one
  // consumer] Applies up to kMaxCommandsPerCallback queued commands as the first callback would
  // (one timed for later goes into the schedule); true while more wait. The state file's restore
  // routes more commands than the queue holds (RestoreHooks::make_room).
  bool apply_commands_before_stream() noexcept {
    apply_commands();
    return commands_.read_available() > 0;
  }
  bool poll_event(Event& e) noexcept { return events_.pop(e); }
  bool poll_retired(Retired& r) noexcept { return retired_.pop(r); }
  Metrics& metrics() noexcept { return metrics_; }
  const Metrics& metrics() const noexcept { return metrics_; }
  // [audio thread, or a test between process() calls] mix_segment's passes since construction: a
  // voice's work per callback (one per piece of source it mixed).
  std::uint64_t segments_mixed() const noexcept { return segments_mixed_; }

  // [control] Called with `ctx` from the audio thread when streams consumed data. Must be
  // real-time safe (e.g. sem_post). Set before the stream starts.
  void set_loader_wakeup(void (*fn)(void*) noexcept, void* ctx) noexcept {
    wake_fn_ = fn;
    wake_ctx_ = ctx;
  }
  // [control] Called with `ctx` from the audio thread after a callback that has news for the
  // control thread (take_control_bell() is then true): it pushed an event or a retiree, or the
  // device reported an underflow. Must be real-time safe (e.g. sem_post). Set before the stream
  // starts.
  void set_news_wakeup(void (*fn)(void*) noexcept, void* ctx) noexcept {
    news_fn_ = fn;
    news_ctx_ = ctx;
  }
  // [any thread but audio] True once after a callback had news: the control thread has something
  // to take (poll_event, poll_retired, the underflow count). The audio thread cannot wake a control
  // thread that sleeps in poll() (a write() may block), so the thread it does wake
  // (set_news_wakeup: app::Instance's relay) passes it on: the control thread then needs no pass
  // every period to learn of a voice's start or end.
  bool take_control_bell() noexcept {
    return control_bell_.load(std::memory_order_relaxed) && control_bell_.exchange(false, std::memory_order_acq_rel);
  }

  // [any thread] Told where the stream is at the start of every callback (see PeriodListener);
  // null = none. The listener must outlive the stream, or be unset while the stream is stopped.
  void set_period_listener(PeriodListener* l) noexcept { period_listener_.store(l, std::memory_order_release); }

  // [audio] Render `frames` (≤ max_block_frames) interleaved stereo frames into `out`.
  // `device_underflow`: the audio API reported that the previous output came too late.
  void process(float* out, std::uint32_t frames, bool device_underflow = false) noexcept;

  // [audio] Applies queued commands without rendering (process() does this itself). Used by
  // the render backend before it checks streams_ready(). Commands with a future at_frame wait
  // in the schedule (a binary heap: O(log n) per command, whatever order they arrive in) and
  // are applied at exactly that frame by process(), which splits the block there.
  void apply_commands() noexcept;

  // [audio] True when every streaming voice can render `frames` frames without waiting for the
  // loader. Offline rendering waits on this so its output never depends on disk timing.
  bool streams_ready(std::uint32_t frames) const noexcept;

  // [audio] Number of voices playing (including fading out).
  std::uint32_t active_voices() const noexcept { return active_count_; }

  std::int64_t frame() const noexcept { return frame_; }  // [audio]
  std::size_t scheduled() const noexcept;                 // [audio] commands waiting for their frame
  std::uint64_t schedule_ops() const noexcept;            // [audio] the schedule's work so far (tests)
  bool tone_active() const noexcept;                      // [audio] the test tone is sounding

  // [control] What the audio thread last published about voice slot `id` (relaxed snapshot).
  const VoiceTelemetry& telemetry(VoiceId id) const noexcept { return telemetry_[id]; }
  // [control] What the audio thread last published about stretch bus `i` (< stretch_buses()).
  const BusTelemetry& bus_telemetry(std::uint32_t i) const noexcept { return bus_telemetry_[i]; }
  // [network] The master's tap for the web monitor; null unless EngineConfig::monitor.
  MonitorTap* monitor_tap() noexcept { return tap_.get(); }

 private:
  struct Voice;
  struct StretchBus;
  void start_voice(const Command& c) noexcept;
  void apply(const Command& c) noexcept;
  void apply_to_voice(Voice& v, const Command& c) noexcept;
  // A command for a voice whose play waits in the schedule changes that play (engine_pending.cpp);
  // false when there is none of its generation, or the command has no meaning before a start.
  bool apply_to_scheduled_play(const Command& c) noexcept;
  void start_gain(Voice& v, const PlayParams& p) noexcept;  // its level: PlayParams::gain_at…
  void schedule(const Command& c) noexcept;
  void refuse_scheduled(const Command& c, EndReason why) noexcept;
  void unschedule_play(VoiceId id) noexcept;
  void clear_schedule() noexcept;
  std::size_t apply_due() noexcept;  // how many scheduled commands it applied
  void start_tone(const Command& c) noexcept;
  void release_tones(std::uint32_t frames) noexcept;
  void render_tones(float* bus, std::uint32_t frames) noexcept;
  // A stop for a voice whose play is still scheduled (not yet due): the play is taken off the
  // schedule, its stream handed back and the voice reported ended (kStopped). any_voice: every
  // scheduled play (stop-all). True if something was cancelled. O(log n) per play cancelled:
  // scheduled plays are found through sched_play_, never by a search.
  bool cancel_scheduled_plays(VoiceId id, std::uint32_t generation, bool any_voice) noexcept;
  void render_voice(Voice& v, float* out, std::uint32_t frames) noexcept;
  void prefetch_voice(const Voice& v, std::uint32_t frames) const noexcept;
  void prefetch_voice_state(VoiceId id) const noexcept;
  void prefetch_ahead(std::uint32_t active_index, std::uint32_t frames) const noexcept;
  bool settle_seek(Voice& v, std::uint32_t offset) noexcept;
  bool out_of_data(Voice& v) noexcept;
  bool reap(std::uint32_t active_index) noexcept;
  void publish_voice(VoiceId id, const Voice& v, std::uint32_t fill) noexcept;
  void sum_decks(float* block, std::uint32_t frames, const bool* deck_used) noexcept;
  // [audio] out += in × the fader `g` (ramping per frame, or one gain; 0 adds nothing).
  void add_through(float* out, const float* in, Ramp& g, std::uint32_t frames) noexcept;
  std::uint32_t mix_segment(Voice& v, float* out, std::uint32_t count) noexcept;
  template <typename T>
  void mix_frames(Voice& v, float* out, const T* frames, std::uint32_t n) noexcept;
  void starve(Voice& v) noexcept;
  std::uint32_t produce(Voice& v, float* dst, std::uint32_t frames, Frames* src) noexcept;
  static std::uint32_t pull_thunk(void* ctx, float* scratch, std::uint32_t max_frames, const float** frames) noexcept;
  // A resampler from the pool for `v` (false: none left), reset and at `ratio` at once (a voice
  // leaving the ratio-1 bypass is attached at 1, then glides). One it has already is kept as is.
  bool attach_resampler(Voice& v, double ratio = 1.0) noexcept;
  bool attach_stretcher(Voice& v) noexcept;
  bool stretcher_fading() const noexcept;
  static std::uint32_t stretch_pull(void* ctx, float* scratch, std::uint32_t max_frames, const float** frames) noexcept;
  void release_resampler(Voice& v) noexcept;
  std::int64_t source_frames_for(const Voice& v, std::uint32_t out_frames) const noexcept;
  VoiceId id_of(const Voice& v) const noexcept;
  void drop_pending_seek(Voice& v) noexcept;
  bool take_pending_seek(Voice& v) noexcept;
  void fade_through(Voice& v) noexcept;
  bool defer_prime(Voice& v, std::uint32_t frames) noexcept;
  bool prime_reserved_for(const Voice& v) const noexcept;
  bool may_prime(const Voice* v) const noexcept;  // null: a start that is not waiting (a handover)
  void note_prime_wait(Voice& v) noexcept;
  void end_prime_round() noexcept;
  static std::uint8_t telemetry_state(const Voice& v) noexcept;
  // Stretch buses (stretch_bus.cpp).
  void make_buses();  // [control]
  bool bus_join(Voice& v, std::uint32_t offset, bool starting = false) noexcept;
  void bus_leave(Voice& v) noexcept;
  void bus_request_leave(Voice& v) noexcept;
  double bus_tempo_now(const StretchBus& b) const noexcept;
  int rate_of(const Voice& v) const noexcept;
  bus_rule::Bus rule_view(const StretchBus& b) const noexcept;
  bool bus_rejoin(Voice& v) noexcept;
  void bus_start(StretchBus& b, const Voice& v) noexcept;
  void bus_settle_leave(Voice& v) noexcept;
  void render_buses(std::uint32_t frames, bool* deck_used) noexcept;
  void publish_buses() noexcept;  // BusTelemetry and the stretch-bus gauges, at the end of a callback
  void bus_sync_decks(StretchBus& b) noexcept;
  void bus_mirror_deck(const Command& c) noexcept;
  void bus_mix_decks(StretchBus& b, float* out, std::uint32_t frames) noexcept;
  void render_member(Voice& v, float* out, std::uint32_t frames) noexcept;
  std::int64_t skip_source(Voice& v, std::int64_t frames) noexcept;
  static double bus_lookahead(const StretchBus& b) noexcept;
  static std::uint32_t bus_st_pull(void* ctx, float* scratch, std::uint32_t max_frames, const float** frames) noexcept;
  static std::uint32_t bus_rs_pull(void* ctx, float* scratch, std::uint32_t max_frames, const float** frames) noexcept;
  // The handover onto a running bus (stretch_bus_handover.cpp).
  struct Handover;
  struct HandoverGroup;
  void make_handovers();  // [control]
  bool ho_begin(Voice& v, StretchBus& b, double skip) noexcept;
  void ho_arm_group(HandoverGroup& g, StretchBus& b, const Voice& v, std::int64_t until, bool rejoin) noexcept;
  void ho_arm_tap(Handover& h, std::int64_t bus, float own_level) noexcept;
  std::uint32_t ho_fill(Voice& v, Handover& h, std::int64_t upto) noexcept;
  std::uint32_t ho_read_bus(Voice& v, float* dst, std::uint32_t frames, Frames* src) noexcept;
  void ho_seal(Voice& v) noexcept;
  void ho_drop(Voice& v) noexcept;
  void ho_end_group(HandoverGroup& g) noexcept;
  void ho_free_tap(Voice& v) noexcept;
  bool ho_reclaim() noexcept;
  void render_handovers(std::uint32_t frames, bool* deck_used) noexcept;
  void ho_mix_members(HandoverGroup& g, float* out, std::uint32_t frames) noexcept;
  static std::uint32_t ho_src_pull(void* ctx, float* scratch, std::uint32_t max_frames, const float** frames) noexcept;
  static std::uint32_t ho_rs_pull(void* ctx, float* scratch, std::uint32_t max_frames, const float** frames) noexcept;
  std::uint32_t fetch(Voice& v, float* dst, std::uint32_t frames, Frames* src) noexcept;
  // An in-memory loop shorter than this (frames) is fetched as its repeats in one piece
  // (fetch_tiled: a copy doubled in place), so a voice's work per callback does not grow with
  // the number of times its loop wraps (an outside pass: 1,000 one-frame loops took 6.8 ms of a
  // 10.7-ms period, 42 × the same voices on a long loop).
  static constexpr std::int64_t kTileLoopsBelow = 256;
  std::uint32_t fetch_tiled(Voice& v, float* dst, std::uint32_t frames, Frames* src) noexcept;
  std::uint64_t segments_mixed_ = 0;  // [audio] mix_segment's passes (tests: the work per voice)
  void end_voice(Voice& v, EndReason why) noexcept;
  bool retire(Stream* s, VoiceId id, std::uint32_t gen, bool voice_ended) noexcept;
  void push_event(const Event& e) noexcept;
  Voice* find(VoiceId id, std::uint32_t gen) noexcept;

  EngineConfig cfg_;
  std::uint32_t declick_frames_;
  SpscQueue<Command, kCommandQueue> commands_;
  SpscQueue<Event, kEventQueue> events_;
  SpscQueue<Retired, kRetireQueue> retired_;
  Metrics metrics_;

  std::unique_ptr<Voice[]> voices_;
  std::unique_ptr<VoiceTelemetry[]> telemetry_;
  std::unique_ptr<BusTelemetry[]> bus_telemetry_;    // one per stretch bus (made with them)
  std::vector<float> decks_;                         // kNumBuses buses of max_block_frames stereo frames
  Ramp deck_gain_[kNumBuses];                        // the direct bus's stays at 1
  std::unique_ptr<DeckEq[]> deck_eq_;                // one per deck (not the direct bus), before the deck level
  std::vector<std::unique_ptr<Resampler>> rs_pool_;  // owned; allocated in the constructor
  std::vector<Resampler*> rs_free_;                  // [audio] free list, capacity fixed
  std::vector<float> rs_out_;                        // a voice's resampled frames (max block)
  std::vector<std::unique_ptr<Stretcher>> st_pool_;  // time-stretchers, allocated up front
  std::vector<Stretcher*> st_free_;
  std::vector<float> st_out_;
  std::vector<std::unique_ptr<StretchBus>> buses_;  // allocated up front; [audio] after that
  std::vector<float> bus_out_;                      // a bus's output block (max block)
  std::vector<float> bus_decks_;                    // a shared bus's per-deck input (kNumDecks × max block)
  bool bus_rendering_ = false;                      // inside a bus's pull: members render there
  bool simd_ = false;                               // the mixer's AVX2 loops (mix.hpp): cfg.simd and the CPU has it
  std::uint32_t primes_ = 0;                        // voices' own stretcher primes in this callback (bounded)
  std::uint32_t bus_primes_ = 0;                    // stretch buses' primes in this callback
  // Fair priming (Engine::may_prime): the voices refused a prime in one callback that waited
  // longest have first claim on the next callback's budget, so a voice re-primed every period (a
  // seek per period) cannot keep the others silent. Waits in output frames (Voice::deferred).
  static constexpr std::uint32_t kPrimeRanks = 16;       // budgets above it are not reserved (no waiting then)
  std::array<std::uint32_t, kPrimeRanks> prime_rank_{};  // this callback's waiters' waits, longest first
  std::uint32_t prime_rank_n_ = 0;
  std::uint32_t prime_reserved_ = 0;             // primes this callback keeps for the last one's longest waiters
  std::uint32_t prime_reserved_used_ = 0;        // of them, taken
  std::uint32_t prime_threshold_ = 0;            // a voice that waited at least this long is one of them
  std::uint32_t rejoins_ = 0;                    // voices back onto a bus in this callback (bounded)
  VoiceId reform_wait_ = ~VoiceId{0};            // this callback: a voice that found no running bus to rejoin
  std::vector<std::unique_ptr<Handover>> taps_;  // handover taps (allocated up front)
  std::vector<std::unique_ptr<HandoverGroup>> groups_;
  std::vector<VoiceId> active_;  // ids of active voices; capacity reserved = max_voices
  std::uint32_t active_count_ = 0;
  std::vector<float> scratch_;          // max_block_frames stereo frames
  std::vector<float> tile_;             // max_block_frames stereo frames: a short loop's repeats (fetch_tiled)
  std::vector<float> gains_;            // max_block_frames per-frame gains
  std::vector<float> gains_r_;          // right-channel gains when a voice is panned
  std::unique_ptr<Schedule> schedule_;  // commands waiting for their frame
  // Per voice id: the handle of its play in the schedule (Schedule::kNone if none), and the ids
  // that have one (sched_play_ids_[0, sched_play_count_), sched_play_pos_ = index in it) so
  // stop-all visits only those.
  std::vector<std::uint32_t> sched_play_;
  std::vector<VoiceId> sched_play_ids_;
  std::vector<std::uint32_t> sched_play_pos_;
  std::uint32_t sched_play_count_ = 0;
  // The test tone: an oscillator on the direct bus (no buffer: costs nothing however long). Two,
  // so a new tone starts while the one it replaces fades out.
  struct Tone {
    bool active = false;
    double phase = 0.0;  // cycles, [0, 1)
    double inc = 0.0;    // cycles per frame
    float level = 0.0f;
    std::int64_t pos = 0, length = 0, fade = 0;      // frames; fade = the 10 ms ramps at both ends
    std::int64_t release_left = 0, release_len = 0;  // > 0: fading out early (replaced, stopped)
  };
  Tone tones_[2];
  Ramp master_{1.0f};
  std::unique_ptr<MonitorTap> tap_;  // EngineConfig::monitor
  // Meter sums of one callback (per deck, then the master): peak, sum of squares (both channels).
  struct MeterSum {
    float peak = 0.0f;
    double sumsq = 0.0;
  };
  MeterSum meter_sum_[Metrics::kMeters];
  static void meter_block(MeterSum& m, const float* block, std::uint32_t frames, float gain) noexcept;
  void publish_meters(std::uint32_t frames) noexcept;
  float limiter_gain_ = 1.0f;
  float limiter_release_ = 0.0f;  // per-frame recovery coefficient
  void limit(float* block, std::uint32_t frames) noexcept;
  static void soft_clip(float* block, std::uint32_t frames) noexcept;
  std::int64_t frame_ = 0;
  FrameDll dll_;  // the stream clock's line (metrics_.clock), through the callbacks' start times
  std::atomic<PeriodListener*> period_listener_{nullptr};
  void track_clock(std::uint64_t t0, std::uint32_t frames) noexcept;
  void (*wake_fn_)(void*) noexcept = nullptr;
  void* wake_ctx_ = nullptr;
  void (*news_fn_)(void*) noexcept = nullptr;
  void* news_ctx_ = nullptr;
  bool rang_ = false;  // [audio] this callback has news for the control thread
  void wake_after(bool streams_consumed, bool device_underflow) noexcept;
  std::atomic<bool> control_bell_{false};
};

}  // namespace stemd::engine
