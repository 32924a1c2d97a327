// The control side of the mixer: the source table, voice allocation and the engine's queues.
//
// Everything here runs on one control thread [control] (app/instance.hpp says which thread
// that is when). It owns everything that allocates: sources, streams,
// the voice table's bookkeeping. The audio thread only ever sees pointers handed to it in
// commands, and hands them back through the retire queue, which service() drains; a source
// that is unloaded while a voice still plays it is freed only when that voice retires.
#pragma once

#include "base/heap_trim.hpp"
#include "base/log_guard.hpp"
#include "heard.hpp"
#include "io/loader_thread.hpp"
#include "io/source.hpp"
#include "engine/bus_rule.hpp"
#include "stemd/engine.hpp"

#include <array>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace stemd::control {

// The engine frame a command applies at when it is not timed: as soon as possible.
inline constexpr std::int64_t kNow = -1;

struct VoiceHandle {
  engine::VoiceId id = 0;
  std::uint32_t generation = 0;  // 0 = invalid
  bool valid() const noexcept { return generation != 0; }
};

struct PlayOptions {
  float volume = 1.0f;
  bool loop = false;
  std::int64_t start_frame = 0;
  int deck = 0;       // 0..engine::kNumDecks-1
  float rate = 1.0f;  // playback rate (speed and pitch), 0.25..4
  // Loop region [loop_start, loop_end) in file frames (loop_end 0 = the file's end). Without
  // `loop` the voice ends at loop_end (a section). loop_count: passes in all (0 = forever).
  std::int64_t loop_start = 0;
  std::int64_t loop_end = 0;
  std::uint32_t loop_count = 0;
  float tempo = 1.0f;  // time-stretch (speed without pitch), 0.25..4; 1 = none
  // Starts paused: silent, holding its first frame (a pause that waited behind the play's stream
  // open is part of its start: Router::paused_behind).
  bool paused = false;
};

struct VoiceInfo {
  VoiceHandle handle;
  int slot = 0;
  std::string name;
  bool loop = false;
  float volume = 1.0f;
  std::uint64_t underruns = 0;
  int deck = 0;
  bool paused = false;  // as heard: a pause timed for later is not yet (paused_set: as sent)
  bool paused_set = false;
  // Stopped: a stop sent for now or a time passed (or a play of its id that replaced it, a load
  // of its id), its fade under way. As heard, the engine's own state may say so a period later.
  bool stopping = false;
  // Stopped because a play or a load of its id took its place (stop's `replaced`): it ends "replaced".
  bool replaced = false;
  std::uint8_t engine_state = 0;  // the audio thread's VoiceTelemetry::state; 0 before it started
  // The volume as heard (volume above is as last set, which may be a timed command still to
  // come): `level` now, going to `level_target` (= level with no fade) with `fade_frames_left`
  // OUTPUT frames to go along `fade_curve`. Before the voice's first block: volume.
  float level = 1.0f;
  float level_target = 1.0f;
  std::uint32_t fade_frames_left = 0;
  engine::Curve fade_curve = engine::Curve::kLinear;
  std::int64_t position = 0;  // file frames, as the audio thread last published it
  std::int64_t total_frames = 0;
  int sample_rate = 0;  // the file's own rate: file frames / sample_rate = file seconds
  std::uint32_t ring_fill_permille = 1000;
  bool streamed = false;
  // The declick envelope as heard (a stop's or a pause's fade, a start's or a seek's declick):
  // what is heard is level × envelope.
  float envelope = 1.0f;
  std::uint32_t envelope_frames_left = 0;
  // What a state file needs to start the voice again (src/app/state.cpp). As heard: a command
  // timed for later changes them from its frame on (rate_set: the rate last sent).
  float rate = 1.0f;  // as sent to the engine (× the router's tempo ratio)
  float rate_set = 1.0f;
  float pan = 0.0f;
  float tempo = 1.0f;
  std::int64_t loop_start = 0, loop_end = 0;
  std::uint32_t loop_count = 0;
  // What /stemd/voices and the web status list: "stopping" (stopping wins), "paused", else as
  // the audio thread has it: "starting", "playing", "starved".
  const char* state_name() const noexcept;
  // Output seconds until its start, for a play waiting in the schedule (a quantised or timed
  // start); -1 when started, or starting at once. `start_at`: the engine frame (OUTPUT frames of
  // this image's stream clock) it starts at then; -1 likewise.
  double starts_in_s = -1;
  std::int64_t start_at = -1;
  // The state as a user reads it: state_name(), and when a waiting start comes ("starting in
  // 1.3 s", output seconds). /stemd/voices, stemctl voices and the web page list this.
  std::string state_text() const;
  // Whether it plays a section: it ends at loop_end, before its file's end (a region played once,
  // or a loop with a count of passes). Its natural end is then "end of section", not of the file.
  bool plays_section() const noexcept { return loop_end > 0 && (total_frames <= 0 || loop_end < total_frames); }
};

// Why a voice ended, as the log and /stemd/voice/ended say it: the engine's reason
// (engine::to_string: "end of file", "stopped", "error"), except "end of section" for a voice that
// reached the end of its section (VoiceInfo::plays_section) and "replaced" for one stopped because
// a play or a load of its id took its place.
const char* end_reason_text(engine::EndReason reason, const VoiceInfo& v) noexcept;

// A master or deck level: as last set (`target`: perhaps a timed command still to come) and as
// heard: `now`, going to `heard_target` (= now with no fade) with `frames_left` OUTPUT frames to
// go along `curve`. Before the first callback the heard values are the set ones.
struct LevelInfo {
  float target = 1.0f;
  float now = 1.0f;
  float heard_target = 1.0f;
  std::uint32_t frames_left = 0;
  engine::Curve curve = engine::Curve::kLinear;
};

struct SourceInfo {
  int slot = 0;
  std::string name;
  std::string path;
  std::int64_t frames = 0;
  bool streamed = false;
  std::size_t memory_bytes = 0;
  int sample_rate = 0;  // the file's own rate: frames / sample_rate = file seconds
};

class Controller {
 public:
  using EventHandler = std::function<void(const engine::Event&, const VoiceInfo&)>;
  // What a slot holds changed: `source` is what it holds now, nullptr when it was unloaded.
  using SourceHandler = std::function<void(int slot, const io::Source* source)>;

  Controller(engine::Engine& engine, io::LoaderThread& loader, const io::LoadOptions& load_opts);
  ~Controller();
  Controller(const Controller&) = delete;
  Controller& operator=(const Controller&) = delete;

  // Every call that sends the engine a command takes, first, the engine frame it applies at
  // (output frames, sample-accurate; see Engine), or kNow: as soon as possible. A handler
  // passes its message's frame (Call::at) or one computed from it; nothing else decides it.
  // Each returns false and sets `error` to a reason a user can act on; on failure nothing changed.
  // load/install/unload/load_generated: the players of what the slot held stop at `at`.
  bool load(std::int64_t at, int slot, const std::string& path, const std::string& name, std::string& error);
  // Puts a source loaded elsewhere (an opener thread: io::load_source) into `slot`, replacing
  // (and stopping the players of) what it held.
  void install(std::int64_t at, int slot, std::unique_ptr<io::Source> source);
  const io::LoadOptions& load_options() const noexcept { return load_opts_; }
  bool unload(std::int64_t at, int slot, std::string& error);
  // A streamed source's voice needs a stream (a decoder opened, seeked, prefilled: file reads).
  // `opened`, when given, is that stream, opened elsewhere (an opener thread) from
  // stream_request() of the same slot and options; without it the stream is opened here.
  bool play(std::int64_t at, int slot, const PlayOptions& opts, VoiceHandle& out, std::string& error,
            std::unique_ptr<io::LoaderThread::Opened> opened = nullptr);
  // What a play of `slot` with `opts` must open first: false when it opens nothing (not loaded,
  // or held in memory).
  bool stream_request(int slot, const PlayOptions& opts, io::LoaderThread::StreamRequest& req) const;
  // The source of `slot` (null: none), kept alive for as long as the pointer is held, whatever
  // happens to the slot meanwhile — for a job on another thread.
  std::shared_ptr<const io::Source> source_ref(int slot) const;
  // `replaced`: a play or a cue of its id takes its place — its end is reported "replaced", not
  // "stopped", unless a stop was sent for it before (a load into its id marks its voices so itself).
  bool stop(std::int64_t at, VoiceHandle v, double fade_seconds, std::string& error,
            engine::Curve curve = engine::Curve::kLinear, bool replaced = false);
  // A play of its id replaces `v`, which waits in the schedule for a start at or after `at` (a
  // quantised or timed start the engine has not made): it is dropped at once — the engine takes
  // its play off the schedule and hands its voice and stream back, and its slot of the period is
  // free again. False (nothing sent) when `v` has started or starts before `at`: then stop it at
  // `at`. A flood of plays of one id held a voice, a stream and two timed commands per play until
  // the bar, and filled the bar's kMaxTimedPerPeriod (outside pass 29, attack L5).
  // Also false when its start is within two periods of now (cancel_horizon()): the audio thread may
  // reach its frame before it takes a command sent now — the callback running now renders up to a
  // period ahead of now_frame() — so it is stopped at `at` like a voice heard, with a declick
  // (edge29's race: a "cancel" the audio thread had already started). Either way, a replaced play
  // that had not started when it was replaced says at its end which it was (the engine's events
  // decide, not this guess): "cancelled before it sounded" (debug) or "had started: faded out"
  // (info, at most 5 lines a second); replaced_waiting() counts them.
  bool drop_waiting(VoiceHandle v, std::int64_t at);
  // The engine frame from which a play's start is sure to be cancelled by a stop sent now (now plus
  // two periods, the largest callback the engine has rendered; before the first: its largest block).
  std::int64_t cancel_horizon() const;
  struct ReplacedWaiting {
    std::uint64_t cancelled = 0;  // taken off the schedule: never sounded
    std::uint64_t faded = 0;      // the engine had started it: stopped with a declick
  };
  ReplacedWaiting replaced_waiting() const noexcept { return replaced_waiting_; }
  bool seek(std::int64_t at, VoiceHandle v, std::int64_t frame, std::string& error,
            std::unique_ptr<io::LoaderThread::Opened> opened = nullptr);
  // What a seek of `v` to `frame` must open first, and the voice's source (kept alive by the
  // pointer): false when it opens nothing (no such voice, or its source is in memory).
  bool seek_request(VoiceHandle v, std::int64_t frame, io::LoaderThread::StreamRequest& req,
                    std::shared_ptr<const io::Source>& source) const;
  bool set_volume(std::int64_t at, VoiceHandle v, float volume, double ramp_seconds, std::string& error,
                  engine::Curve curve = engine::Curve::kLinear);
  bool set_loop(std::int64_t at, VoiceHandle v, bool loop, std::string& error);
  // `from` ≥ 0: the level jumps there first and the ramp starts from it (a fade restored where it
  // was heard); < 0: the ramp starts where the level is.
  bool set_master(std::int64_t at, float gain, double ramp_seconds, std::string& error, float from = -1.0f);
  bool stop_all(std::int64_t at, double fade_seconds, std::string& error);
  bool pause(std::int64_t at, VoiceHandle v, double fade_seconds, std::string& error);
  bool resume(std::int64_t at, VoiceHandle v, double fade_seconds, std::string& error);
  bool set_pan(std::int64_t at, VoiceHandle v, float pan, double ramp_seconds, std::string& error);
  // Playback rate 0.25..4 (speed and pitch, vinyl-style), gliding over ramp_seconds.
  bool set_rate(std::int64_t at, VoiceHandle v, float rate, double ramp_seconds, std::string& error);
  // Time-stretch tempo 0.25..4 (speed without pitch). A voice's first tempo ≠ 1 takes one of
  // the engine's stretchers until it ends.
  bool set_stretch(std::int64_t at, VoiceHandle v, float tempo, std::string& error);
  bool set_deck_level(std::int64_t at, int deck, float level, double ramp_seconds, std::string& error,
                      engine::Curve curve = engine::Curve::kLinear, float from = -1.0f);  // ramp < 0: jump
  // Deck EQ band (0 low, 1 mid, 2 high) to a linear gain (0 = kill, 1 = flat, ≤ 4).
  bool set_deck_eq(std::int64_t at, int deck, int band, float gain, double ramp_seconds, std::string& error);
  float deck_eq(int deck, int band) const {
    return deck_eq_[static_cast<std::size_t>(deck)][static_cast<std::size_t>(band)];
  }
  float deck_level(int deck) const { return deck_levels_[static_cast<std::size_t>(deck)]; }
  float master_level() const { return master_; }
  LevelInfo deck_heard(int deck) const;
  LevelInfo master_heard() const;
  double output_seconds(std::uint32_t frames) const;  // OUTPUT frames → output seconds
  // A source made of generated audio (interleaved stereo at the output rate), e.g. a test tone.
  bool load_generated(std::int64_t at, int slot, const std::string& name, std::vector<float> stereo,
                      std::string& error);
  // Unloads every source, stops every voice (faded) and the test tone, drops every scheduled
  // command.
  void clear(double fade_seconds);
  // The test tone: a sine of `hz` at peak `level` (linear, ≤ 1) for `seconds` (output seconds),
  // with 10 ms fades, on the direct bus; replaces a tone still sounding. An oscillator in the
  // engine: nothing is allocated, however long it lasts. Callers check the ranges the user sees
  // (limits.hpp); this only refuses what the engine cannot do.
  bool tone(std::int64_t at, double hz, double level, double seconds, std::string& error);
  // Drops every command waiting for its time (plays scheduled but not started end, stopped);
  // `cleared` = how many were waiting. Applies at once.
  bool clear_schedule(std::size_t& cleared, std::string& error);
  // Timed commands sent and not yet applied, cancelled or cleared (≤ Engine::kMaxScheduled),
  // and how many were refused because that many were waiting ("schedule full").
  std::size_t scheduled() const noexcept;
  std::uint64_t schedule_refused() const noexcept { return schedule_refused_; }
  VoiceInfo voice_info(VoiceHandle v) const;
  io::LoaderThread& loader() noexcept { return loader_; }
  // True when `n` commands can be queued now to apply at `at` (a frame: the schedule must hold
  // them too): requests that send several check first, so a "busy" answer never leaves half of
  // them applied.
  bool can_send(std::int64_t at, std::size_t n) const noexcept;
  // Why can_send(n) is false, for the "/fail … busy" answer.
  std::string busy_reason(std::int64_t at, std::size_t n) const;
  // How many requests were refused for want of a resource that frees itself (the command queue,
  // the schedule, resamplers, time-stretchers): a call that failed while this grew was refused
  // "busy" (try again), any other failure is the request's own fault. Typed, never read out of
  // the reason's text.
  std::uint64_t busy_refusals() const noexcept { return busy_refusals_; }
  // [control] Counts what can change the voices' list or their state: every voice command sent to
  // the engine (not master, deck or EQ levels), every event and retiree taken back. Equal twice: nothing of that
  // changed between.
  std::uint64_t changes() const noexcept { return changes_; }

  // The engine frame being rendered about now, from the stream clock (0 before the stream runs).
  std::int64_t now_frame() const;
  // The engine frame rendered at a CLOCK_MONOTONIC time (past or future).
  std::int64_t frame_at_monotonic(std::uint64_t mono_ns) const;
  // Its inverse: the CLOCK_MONOTONIC time (ns) engine frame `frame` is rendered at, through the
  // same line — -1 before the stream has run. Extrapolated when the stream has stopped (a lost
  // device): when the frame would have been rendered.
  double monotonic_at_frame(std::int64_t frame) const;
  // True once the stream has run (before that, times map to frame 0).
  bool clock_running() const;
  int sample_rate() const noexcept { return engine_.config().sample_rate; }

  // Drains the engine's events and retirees. Call at least ten times a second.
  void service();
  // [control, ONLY before the stream starts: then the audio thread is the command queue's one
  // consumer] Applies what was sent so far as the first callback would, and takes its events
  // (service()): the queue's room back. The state file's restore routes more than it holds.
  void apply_before_stream();
  void set_event_handler(EventHandler h) { on_event_ = std::move(h); }
  // Called on every install (loads, from any client or the start-up flags), unload and clear.
  void set_source_handler(SourceHandler h) { on_source_ = std::move(h); }
  // The router's limits on lines a client can cause: a load's line at most 5 a second (none:
  // every line, as for the start-up flags' loads).
  void set_log_limit(base::LogLimiter* limit) { log_limit_ = limit; }

  // Voices in use: playing, paused, starting or fading out (the status's `voices`).
  std::size_t voices_playing() const noexcept { return voices_in_use_; }
  // Of those, the paused ones, as heard now (a pause timed for later is not yet; one stopping is
  // not counted).
  std::size_t voices_paused() const;
  std::size_t sources_loaded() const noexcept { return table_.size(); }
  // Loaded sources whose file is cut short: fewer frames than its header declares, or (an Ogg
  // without its last page) no length at all. Their load logged a warning each.
  std::size_t sources_cut_short() const;
  // What loads hold: decoded audio (a copy shared by several ids counted once), stream rings and
  // decoders, as charged to the memory budget (--max-memory-mb), plus generated audio.
  std::size_t memory_bytes() const;
  std::int64_t memory_limit_bytes() const noexcept { return load_opts_.budget ? load_opts_.budget->limit() : 0; }
  std::vector<VoiceInfo> voices() const;
  std::vector<SourceInfo> sources() const;
  const io::Source* source(int slot) const;
  // Which load of `slot` is in it now (0 = none): changes on every (re)load, never reused.
  std::uint64_t load_serial(int slot) const {
    auto it = table_.find(slot);
    return it == table_.end() ? 0 : it->second->serial;
  }
  bool voice_alive(VoiceHandle v) const;
  // The resampling and stretching budgets (--max-resampled-voices, --max-stretched-voices units;
  // work_budget.hpp: a converter at a ratio k > 1.25 costs k units), counted in thousandths of a
  // unit. What set_rate(v, rate) / set_stretch(v, tempo) would add to the voice's charge, and what
  // is free: a change of many voices that must all follow or none (/set_tempo) adds up the needs
  // with these before anything is sent. A voice's charge falls (a lower rate or tempo) only once
  // the change is heard and its glide is over; the free counts take those falls in first.
  // Stretch buses (controller_buses.cpp) are charged as what they run: one stretcher (and one
  // resampler for another source rate) per bus, however many voices ride it; a change of tempo for
  // many voices at once (set_stretch_all, work_for_tempos) keeps a bus whose members all follow.
  // `slots`: stretched voices added (each holds a stretcher of the pool, --max-stretched-voices
  // of them, on a bus or not: leaving a bus never waits for one).
  struct WorkNeed {
    std::uint64_t resample = 0, stretch = 0;
    std::uint32_t slots = 0;
  };
  WorkNeed work_for_rate(VoiceHandle v, float rate) const;
  WorkNeed work_for_tempo(VoiceHandle v, float tempo) const;
  WorkNeed work_for_tempos(const std::vector<VoiceHandle>& vs, float tempo) const;
  // Every voice of `vs` to `tempo`, all or none (their budget checked first).
  bool set_stretch_all(std::int64_t at, const std::vector<VoiceHandle>& vs, float tempo, std::string& error);
  std::uint64_t resample_units_free();
  std::uint64_t stretch_units_free();
  std::uint32_t stretch_slots_free() const noexcept;
  std::uint64_t resample_units_used() const noexcept;
  std::uint64_t stretch_units_used() const noexcept;
  // Times the control thread looked at every voice slot because the engine's stretch buses' riders
  // differed from the ones it charges (reconcile_buses; tests).
  std::uint64_t bus_scans() const noexcept { return bus_scans_; }
  std::uint64_t resample_budget() const noexcept;
  std::uint64_t stretch_budget() const noexcept;
  // "busy: resampling budget: …" for a change that needs `need` more than is free (stretch: the
  // stretching budget); `what` says what asked ("rate 4", "/set_tempo 480: 64 players").
  std::string budget_reason(bool stretch, std::uint64_t need, const std::string& what);
  // "busy: stretching budget: … needs N more stretched voices": the pool of stretchers is held.
  std::string slots_reason(std::uint32_t need, const std::string& what) const;

  engine::Engine& engine() noexcept { return engine_; }

 private:
  struct Entry {
    std::unique_ptr<io::Source> source;
    std::uint64_t serial = 0;  // which load this is (a reload of the slot gets a new one)
  };
  struct VoiceSlot {
    bool used = false;
    std::uint32_t generation = 0;
    int slot = 0;
    std::shared_ptr<Entry> entry;  // keeps the source alive while the audio thread reads it
    bool loop = false;
    float volume = 1.0f;
    bool streamed = false;
    std::uint64_t underruns = 0;
    int deck = 0;
    double base_ratio = 1.0;      // file rate / output rate
    int src_rate = 0;             // the file's rate, Hz
    int bus = -1;                 // the stretch bus it rides (buses_), -1: none (its charge is its own)
    std::int64_t start_at = -1;   // the engine frame its play was sent for (-1: at once)
    std::int64_t changed_at = 0;  // engine frame its last rate or tempo change is heard by (the model's check waits)
    std::int64_t loop_start = 0, loop_end = 0;
    std::uint32_t loop_count = 0;
    // Its charge on the resampling and stretching budgets, in thousandths of a unit (0: it holds no
    // resampler / stretcher; once it holds one it keeps it, and ≥ a unit, until it ends), for the
    // highest rate and tempo in play: heard, gliding, or timed for later. From engine frame
    // settle_at (0: nothing to settle) the charge falls to what its final rate and tempo cost.
    std::uint32_t rs_units = 0, st_units = 0;
    float peak_rate = 1.0f, peak_tempo = 1.0f;
    std::int64_t settle_at = 0;
    std::int64_t start_frame = 0;  // file frames: the position until the audio thread publishes one
    std::int64_t volume_at = 0;    // the engine frame its last volume command applies at (0: at once)
    // As last sent, and as heard until a command timed for later reaches its frame (heard.hpp).
    Heard<bool> paused{false};
    Heard<bool> stopping{false};
    bool replaced = false;  // a play or a load of its id took its place (stop's `replaced`)
    // Its play was replaced before the control thread saw it start (drop_waiting): its end says
    // whether it was cancelled or had sounded (`sounded`: the engine's kVoiceStarted came).
    bool replaced_waiting = false;
    bool sounded = false;
    // The last seek sent: its number (0: none), the file frame it goes to and the engine frame it
    // is heard from (0: at once). Until the audio thread has made it, it is the position listed.
    std::uint32_t seek_seq = 0;
    std::int64_t seek_to = 0, seek_at = 0;
    Heard<float> rate{1.0f};
    Heard<float> tempo{1.0f};
    Heard<float> pan{0.0f};
  };

  // Seconds of OUTPUT (fades, ramps: wall-clock durations) → output frames. Never for a
  // position in a file: those are file frames, file seconds × the file's own rate.
  std::uint32_t frames_for(double seconds) const;
  void lend_stretcher(VoiceSlot& vs, std::int64_t at, std::uint32_t fade_frames);
  VoiceSlot* lookup(VoiceHandle v, std::string& error);
  // The charge a voice would hold after a change of its rate (or tempo) to `rate` (`tempo`).
  struct Charges {
    std::uint32_t rs = 0, st = 0;
  };
  Charges charges_for_rate(const VoiceSlot& vs, float rate) const;
  Charges charges_for_tempo(const VoiceSlot& vs, float tempo) const;
  Stream* make_stream(const io::Source& src, std::int64_t frame, bool loop, std::string& error,
                      std::int64_t loop_start = 0, std::int64_t loop_end = 0, std::uint32_t loop_count = 0);
  // `replaced`: a load into the id takes their place (their end is "replaced"); else an unload.
  void stop_voices_of(std::int64_t at, const std::shared_ptr<Entry>& e, bool replaced = false);
  void free_voice(engine::VoiceId id);
  // Queues `c` to apply at engine frame `at` (kNow: at once); false (reason in send_error_) when
  // the command queue is full or, for a timed command, when kMaxScheduled are already waiting or
  // `at`'s period is full (limits::kMaxTimedPerPeriod).
  bool send_cmd(std::int64_t at, engine::Command& c);
  bool jump_first(std::int64_t at, engine::Command c, float from, std::string& error);
  std::string schedule_full_reason(std::int64_t at) const;
  // True when `n` more timed commands fit in the period of frame `at` (limits::kMaxTimedPerPeriod).
  bool period_has_room(std::int64_t at, std::size_t n) const;
  void refuse_busy(std::string& error, std::string why);  // error = why, counted in busy_refusals_
  bool send_voice_command(std::int64_t at, VoiceHandle v, engine::CommandType type, float value, std::uint32_t frames,
                          std::string& error);
  VoiceInfo info_of(engine::VoiceId id) const;
  void report_replaced(engine::VoiceId id);  // a replaced waiting play ended (drop_waiting)
  void learn_period();                       // period_frames_ from the engine's clock and frame count
  std::int64_t period_frames_ = 0;           // the largest callback seen (0: none yet)
  ReplacedWaiting replaced_waiting_;

  engine::Engine& engine_;
  io::LoaderThread& loader_;
  io::LoadOptions load_opts_;
  EventHandler on_event_;
  SourceHandler on_source_;
  base::LogLimiter* log_limit_ = nullptr;
  std::map<int, std::shared_ptr<Entry>> table_;
  std::vector<VoiceSlot> voices_;
  std::vector<engine::VoiceId> free_ids_;
  std::size_t voices_in_use_ = 0;
  std::uint32_t next_generation_ = 1;
  std::uint64_t next_serial_ = 1;
  std::uint32_t next_seek_seq_ = 0;  // seeks sent (0 is never one: VoiceSlot::seek_seq)
  std::vector<engine::Retired> retired_scratch_;
  base::HeapTrim heap_trim_;  // gives the heap back once what the budget held was freed (heap_trim.hpp)
  // Timed commands sent per period of limits::kTimedPeriodFrames output frames (key: frame / 64).
  mutable std::map<std::int64_t, std::size_t> period_load_;
  std::uint64_t scheduled_sent_ = 0;    // commands sent with a frame (see Metrics::schedule_done)
  std::uint64_t schedule_refused_ = 0;  // timed commands refused: the schedule was full
  std::uint64_t busy_refusals_ = 0;     // see busy_refusals()
  std::uint64_t changes_ = 0;           // see changes()
  std::string send_error_ = "busy: the command queue is full";
  // The budgets' use (thousandths of a unit: the sum of the voices' rs_units / st_units), and the
  // voices whose charge falls at a frame still to come (VoiceSlot::settle_at).
  std::uint64_t rs_units_used_ = 0;
  std::uint64_t st_units_used_ = 0;
  std::vector<engine::VoiceId> settling_;
  // [control] Takes the voices' charges down to what their rate and tempo cost now that their
  // changes are heard (settle_at passed). Called by service() and before every budget check.
  void settle_work();
  // Sets the voice's charge for a change of its rate or tempo heard from `at` (kNow: the next
  // callback), gliding over `glide` output frames: `rs`/`st` (≥ its charge now) from now on, its
  // final rate's and tempo's cost once it is heard and the glide is over.
  void charge(VoiceSlot& vs, std::uint32_t rs, std::uint32_t st, std::int64_t at, std::uint32_t glide);
  void uncharge(VoiceSlot& vs);
  // The engine's stretch buses as the budget plans them (controller_buses.cpp, with the engine's
  // rule: engine/bus_rule.hpp): same order as the engine's (VoiceTelemetry::bus - 1, BusTelemetry).
  // A voice booked as riding one charges nothing of its own to the budgets' work (rs_units_used_ /
  // st_units_used_ count the others), only its slots. A bus's charge is the higher of the plan's and
  // what the engine last published it ran.
  struct BusModel {
    int rate = 0;             // the source rate it serves, Hz
    double ratio = 1.0;       // rate / output rate: its resampler's step (none when 1)
    int deck = 0;             // its voices' deck (unused when shared)
    float tempo = 1.0f;       // its members' tempo as last sent
    float peak_tempo = 1.0f;  // the highest in play until settle_at
    std::uint32_t members = 0;
    std::uint64_t tags = 0;       // the sum of the bus_rule::member_tag of the voices booked as riding it
    std::int64_t busy_until = 0;  // engine frame: its tail plays until then once its last member left
    std::int64_t settle_at = 0;
    std::int64_t heard_at = 0;  // engine frame by which what was last sent to it is heard (then tags compare)
    // Plays sent onto it while it runs are handed over (an own stretcher and resampler for their
    // first L / ρ, stretch_bus.hpp): groups charged until ho_until; plays at one frame share one.
    std::uint32_t ho_groups = 0;
    std::int64_t ho_at = -1, ho_until = 0;
  };
  struct TempoPlan;
  std::vector<BusModel> buses_;
  std::uint32_t st_slots_ = 0;  // stretched voices (own stretcher or on a bus)
  void make_bus_model();
  void book(const VoiceSlot& vs, bool add);  // its part in the totals and slots, in or out
  struct BusWork {
    std::uint64_t rs = 0, st = 0;
  };
  BusWork bus_work(const std::vector<BusModel>& buses) const;
  int bus_for(const std::vector<BusModel>& buses, const VoiceSlot& vs, float tempo, bool fresh_only) const;
  bool plan_runs(const BusModel& b, std::size_t i, std::int64_t now) const;
  engine::bus_rule::Bus rule_view(const std::vector<BusModel>& buses, std::size_t i, bool fresh_only) const;
  void plan_handover(BusModel& b, std::int64_t at) const;  // a play onto it while it runs
  void scan_riders(std::int64_t now);                      // reconcile_buses's look at every voice
  void bus_drop(VoiceSlot& vs, std::int64_t at);           // off its bus (an end, a lent stretcher, a leave)
  // One more member of buses[i] at `tempo`; `starting`: a play (at `at`), handed over onto it if it runs.
  void join_bus(std::vector<BusModel>& buses, std::size_t i, int deck, float tempo, std::int64_t at,
                bool starting) const;
  // A play's check against the budgets (refused: false, error); `bus`: the bus it will ride, or -1.
  bool play_fits(std::int64_t at, const PlayOptions& opts, int src_rate, std::uint32_t rs_units, std::uint32_t st_units,
                 int& bus, std::string& error);
  TempoPlan plan_tempos(const std::vector<VoiceHandle>& vs, float tempo) const;
  void settle_buses(std::int64_t now);
  // [control] (service()) When a bus's riders as the engine publishes them differ from the booked
  // ones, looks at what each voice rides (VoiceTelemetry::bus) — at most every kScanSeconds.
  void reconcile_buses();
  std::int64_t next_scan_ = 0;
  // Own resamplers of voices booked onto a bus by a change timed for later: (engine frame it is heard
  // by, units), charged until then (their sum: rs_held_units_).
  std::vector<std::pair<std::int64_t, std::uint32_t>> rs_held_;
  std::uint64_t rs_held_units_ = 0;
  void hold_resampler(std::uint32_t units, std::int64_t until);
  void release_held(std::int64_t now);
  std::uint64_t bus_scans_ = 0;
  std::array<float, engine::kNumDecks> deck_levels_{1.0f, 1.0f, 1.0f, 1.0f};
  // The engine frame each level's last command applies at (0: at once): a command due by now but
  // not yet heard counts as heard (it is in the queue), one timed for later does not.
  std::array<std::int64_t, engine::kNumDecks> deck_at_{};
  std::int64_t master_at_ = 0;
  std::array<std::array<float, 3>, engine::kNumDecks> deck_eq_{{{1, 1, 1}, {1, 1, 1}, {1, 1, 1}, {1, 1, 1}}};
  float master_ = 1.0f;
};

}  // namespace stemd::control
