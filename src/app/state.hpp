// The state file (--state-file PATH): what was loaded, the levels and — with --restore-voices —
// what was playing survive a restart (a crash, a lost device and Restart=on-failure, a reboot).
//
// The file is text: a version line, one OSC message per line, and an `end` line:
//
//   # comments
//   stemd-state 1
//   /stemd/master 0.9 0
//   /stemd/deck A 1 0
//   /stemd/load 100 "/srv/stems/drums.wav" "drums"
//   /stemd/play 100 0.8 true 123456 frames 1
//   end
//
// At start the messages are routed through the Router, in order, exactly as if a client had
// sent them: the same validation as live control, and the router's own bookkeeping (which
// voice is an id's player, tempo, quantize) ends up as it was. Strings are in "double quotes"
// (\" \\ \n \t \xHH escaped); bare words are numbers, true/false, or strings (A, frames…).
//
// Threads: capture_state(), StateKeeper::poll()/capture_now() and restore() run on the control
// thread [control] (the OSC server's thread while it runs — through Router::set_tick_hook —,
// the main thread before and after): poll() takes a snapshot there, never the text.
// StateKeeper::flush() and save() make the text and write the file from the main thread
// [main] — in the daemon through a helper process (Config::helper, state_io.hpp), so
// a file system that stops answering holds neither the start nor the main loop nor the exit.
// Nothing here runs on, or waits for, the audio thread: voice positions come from the
// telemetry the engine publishes through atomics.
#pragma once

#include "control/controller.hpp"
#include "control/osc.hpp"
#include "control/router.hpp"
#include "safe_file.hpp"
#include "state_io.hpp"

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace stemd::app {

constexpr int kStateVersion = 1;

struct StateSource {
  int id = 0;
  std::string path, name;
  bool operator==(const StateSource&) const = default;
};

// A fade under way when the state was taken: the level heard then, and the OUTPUT seconds it had
// left to its target (the voice's volume, the master or deck level) along its curve. Restored as
// the level now, then the same fade over the time it had left (seconds 0: none).
struct StateFade {
  float now = 0.0f;
  double seconds = 0.0;
  engine::Curve curve = engine::Curve::kLinear;
  bool operator==(const StateFade&) const = default;
};

struct StateVoice {
  int id = 0;           // the buffer id whose player it is
  float volume = 1.0f;  // where its volume goes (as set); a fade under way: `fade` (below)
  bool loop = false;
  std::int64_t position = 0;  // file frames
  float rate = 1.0f;          // the player's own rate, before the tempo ratio
  float pan = 0.0f;
  float stretch = 0.0f;  // a /stemd/stretch tempo to apply again; 0 = none
  bool paused = false;
  std::int64_t region_start = 0, region_end = 0;  // a loop region or section (end 0 = none)
  std::uint32_t region_count = 0;
  // The deck it plays on (0 = A … 3 = D; -1 = its id's own, deck_of_id): written only when it is
  // not its id's own (a --play file, id 1, plays on deck A: /stemd/play's deck argument).
  int deck = -1;
  StateFade fade{};
  // Its start still waits in the schedule (a quantised start: /stemd/voices lists it `starting`):
  // not heard yet, so written after /stemd/quantize — restored, it starts on the next bar of the
  // beat, not at once and off the grid (outside pass 29, M1). Its position is where it will start.
  bool starting = false;
  // A start timed without a quantum (a bundle's timetag, start_at, /start_group, /schedule_c_at)
  // still waiting: WALL-CLOCK time (CLOCK_REALTIME, Unix seconds) at which its first frame is
  // heard — the timetag's own kind of seconds. 0: none (started, at once, or on its bar). Engine
  // frames do not survive a restart or a hand-over (the new image's stream clock counts from 0),
  // wall time does: its play line is written "@TIME /stemd/play …", routed with that time as its
  // timetag, and the new image maps it to its own frames through its stream clock (session 30:
  // such a start was replayed at once).
  double start_unix = 0;
};

struct DaemonState {
  float master = 1.0f;
  std::array<float, 4> decks{1.0f, 1.0f, 1.0f, 1.0f};
  std::array<std::array<float, 3>, 4> eq{{{1, 1, 1}, {1, 1, 1}, {1, 1, 1}, {1, 1, 1}}};
  StateFade master_fade;  // master and decks: the level set; a fade under way here
  std::array<StateFade, 4> deck_fades{};
  double bpm = 0;           // the clock's tempo; written when it differs from base_bpm
  double base_bpm = 0;      // --bpm (not written)
  int meter = 0;            // beats per bar; written when it differs from base_meter
  int base_meter = 0;       // --meter (not written)
  double quantum = 0;       // /stemd/quantize beats
  double base_quantum = 0;  // --quantize (not written)
  std::vector<StateSource> sources;
  std::vector<StateVoice> voices;
  // Sources the state file named whose files were missing at start (a disk mounted late), with
  // their voice lines: written on as they were read, and tried again until they load.
  std::vector<std::string> held;
  // The voice lines of a device hand-over that the new image has not replayed yet (it waits for
  // its device to run: recovery.cpp), as they were read: no callback played them, so their
  // positions, pauses and levels are still theirs. A second loss, or a state file written
  // meanwhile, keeps them (outside pass 29, H1). `unplayed_starting`: those that came after
  // /stemd/quantize (voices still waiting for their bar), written after it again.
  std::vector<std::string> unplayed, unplayed_starting;
};

// The state as the controller and router hold it now [control]. Voices only when with_voices.
DaemonState capture_state(const control::Controller& ctl, const control::Router& router, bool with_voices);

// One voice as the state keeps it, from what the controller says of it (ctl.voice_info: as heard)
// — a live player's, or one that ended because its file stopped reading (state_lost.cpp) —, and
// its lines in the file (/stemd/play or /stemd/play_region, then seek, fade, pan, stretch, pause).
StateVoice state_voice(const control::Controller& ctl, const control::Router& router, int id,
                       const control::VoiceInfo& vi);
std::string voice_lines(const StateVoice& v);

// How b differs from a. kStructure: what was loaded, which voices play and how (loop, region,
// deck, pause), the meter, the quantum, the sources kept for later — written within a second.
// kContinuous: only what a client moves continuously or what moves by itself — levels, EQ, a
// voice's volume, rate, pan and stretch, fades, positions, the tempo — written at most every
// --state-interval (a crossfade's steps are not each a write: outside pass 25, N3).
enum class StateChange { kNone, kContinuous, kStructure };
StateChange state_change(const DaemonState& a, const DaemonState& b);
inline bool differs_in_structure(const DaemonState& a, const DaemonState& b) {
  return state_change(a, b) == StateChange::kStructure;
}

// The file's text. `writer` goes into the comment at the top (e.g. "stemd 0.1.0").
std::string format_state(const DaemonState& s, const std::string& writer);

struct StateMessage {
  int line = 0;
  control::OscMessage message;
};
// Text → messages. False with "LINE: reason" for the first problem: no or another version
// line, a line that is not an OSC message, a bad quote or escape, no `end` line (truncated).
bool parse_state(const std::string& text, std::vector<StateMessage>& out, std::string& error);

// A message as a state file's line (strings quoted, numbers in full precision); one with a
// timetag (a waiting timed start, StateVoice::start_unix) starts "@UNIX_SECONDS ".
std::string state_line(const control::OscMessage& m);
// The wall-clock time (Unix seconds) engine frame `frame` is HEARD at: through the stream clock's
// line (extrapolated when the device is lost), plus the output latency compensated — the inverse
// of a bundle's timetag. 0 before the stream has run.
double heard_unix_time(const control::Controller& ctl, const control::Router& router, std::int64_t frame);
// "@1765135800.123456 " (microseconds: a twentieth of a frame at 48 kHz).
std::string time_prefix(double unix_s);
// A line's "@TIME " taken off `line` into `timetag` (NTP; kOscImmediately when it has none).
// False with a reason for a malformed or non-positive time.
bool take_time_prefix(std::string& line, std::uint64_t& timetag, std::string& error);
// A state line routed again: its timetag is kept when its time is still ahead (Router::
// timetag_ahead); one that passed — the device was away past it, the stream does not run yet (a
// restore at start) — is dropped, and the line starts at once. True when it was dropped.
bool drop_time_passed(control::OscMessage& m, control::Router& router);
// A load refused with this kind and reason may succeed later, so the state file's source is kept
// and tried again: it was given up under --load-timeout (kGivenUp: a share that does not answer,
// whatever the reason says), or its path could not be opened (kPath) because the file or its
// directory is missing or unreadable now (a disk not mounted yet: the errno's words). A file that
// opened and could not be used (kFile), a limit, a policy refusal, a busy one: not.
bool file_may_come_back(control::ErrorKind kind, const std::string& reason);

// Messages that start or change a voice: restored only with --restore-voices.
bool is_voice_message(const control::OscMessage& m);

// A voice line of a state file fitted to its file as it is now, `total` FILE frames (a new,
// shorter edit under the same name): a LOOPING voice saved at or past the file's end restarts
// where it would be in its loop — its position modulo the loop's length, in file frames of the
// new file — and a looping region that runs past the end is cut at it (one that starts past it
// becomes the whole file). `loops` carries each id's loop [start, end) (file frames) from its
// play line to its seek line. True when the line was changed, `note` saying how; false with a
// `note` for a voice that does not loop and is past the end (it is refused as before: not
// restored), or with none when the line fits.
struct RestoreLoop {
  std::int64_t start = 0, end = 0;
};
bool fit_voice_to_file(control::OscMessage& m, std::int64_t total, std::map<int, RestoreLoop>& loops,
                       std::string& note);

enum class StateRead { kOk, kMissing, kBad };
// Reads and parses PATH. kBad with "PATH:LINE: reason" (or "PATH: reason"). kMissing: `error`
// is state_dir_missing(DIR) (state_io.hpp) when PATH's directory does not exist either.

// Files larger than max_bytes are refused (kBad) unread: see state_bytes_bound().
StateRead read_state_file(const std::string& path, std::vector<StateMessage>& out, std::string& error,
                          std::size_t max_bytes = std::size_t{16} << 20);
// The most a state file written by a daemon with these limits can hold (every source with a
// path and a name of max_string bytes, each byte escaped, and its voice), and never under
// 16 MiB: what stemd wrote, it reads back; anything larger is not its own file.
std::size_t state_bytes_bound(std::size_t max_sources, std::size_t max_string);

// Writing PATH: write_file_atomic() (safe_file.hpp): mkstemp in PATH's directory, fsync, rename
// over PATH, fsync of the directory. On failure PATH is untouched and the temporary removed.

struct RestoreReport {
  int messages = 0;       // routed
  int sources = 0;        // loaded
  int voices = 0;         // started
  int failed = 0;         // answered /fail (each logged)
  int skipped_voice = 0;  // voice lines not routed: --restore-voices is off
  // A stop signal came while it waited on loads: the rest was not restored, and this process
  // writes no state file (the file stays as it was, for the next start).
  bool interrupted = false;
};

// What the restore at start may do besides routing [main, before the stream starts].
struct RestoreHooks {
  // Waits up to `ms` milliseconds for a stop (SIGTERM, SIGINT) while loads are in flight; false:
  // stop now. Without it, a plain sleep.
  std::function<bool(int ms)> wait;
  // Called before each message is routed: makes room in the engine's command queue (8,192
  // commands), which nothing else drains before the stream starts — a state file of a few
  // thousand voices fills it.
  std::function<void()> make_room;
};

// The sources kept because their files were missing at start [any thread]: `count` of them, and
// `text` — "1 source waiting for its file: PATH: REASON (tried again every 5 s)", or for several
// "N sources waiting for their files in DIR (the first: …)" — "" when none wait.
struct WaitingSources {
  std::atomic<int> count{0};
  // How often the line was built and set: once per restore, not once per source held (each
  // build reads every held path — per hold, the largest state's restore went quadratic).
  std::atomic<std::uint64_t> updates{0};
  std::string text() const {
    std::lock_guard<std::mutex> lock(mu);
    return text_;
  }
  void set(int n, std::string t) {
    std::lock_guard<std::mutex> lock(mu);
    text_ = std::move(t);
    count.store(n);
    updates.fetch_add(1);
  }

 private:
  mutable std::mutex mu;
  std::string text_;
};
// The line of WaitingSources for `paths` and the first one's `reason`, tried every `retry_s`.
std::string waiting_text(const std::vector<std::string>& paths, const std::string& reason, double retry_s);

// What the keeper has written, for /stemd/status (state_bytes, state_writes) [any thread].
struct StateCounters {
  std::atomic<std::uint64_t> writes{0};  // the file written (successfully) since start
  std::atomic<std::uint64_t> bytes{0};   // its size at the last write (escaped names included)
  std::atomic<std::uint64_t> held{0};    // writes held back by the write budget (then written)
};

// The most the state file is written in a minute, by default (Config::budget_bytes_per_min): a
// few kB a write in normal use is never held; a state a client made megabytes large is written
// every few minutes instead of every second (an SD card's wear).
inline constexpr std::size_t kStateWriteBudgetPerMin = std::size_t{4} << 20;

// Keeps PATH up to date with the daemon's state.
class StateKeeper {
 public:
  struct Config {
    std::string path;
    bool restore_voices = false;  // save and restore playing voices
    double interval_s = 5.0;      // continuous changes (StateChange) are written at most this often
    std::string writer = "stemd";
    double retry_s = 5.0;  // a source whose file was missing at start: tried again this often
    // The state file's own read and writes. Empty: on the calling thread (tests). Else the helper
    // process to run ({"/proc/self/exe", kStateIoFlag} in the daemon), given up on after
    // io_timeout_s seconds (--load-timeout: how long a file system may take to answer).
    std::vector<std::string> helper{};
    double io_timeout_s = 10.0;
    // flush() writes at most this many bytes a minute (a token bucket of a minute's worth: a
    // state larger than that is written once the minute's bytes it took have come back); the
    // newest state waits meanwhile. save() (shutdown, a device hand-over) is not held.
    std::size_t budget_bytes_per_min = kStateWriteBudgetPerMin;
    // Test hook: called on the thread that formats the state's text (flush(), never poll()).
    std::function<void()> on_format{};
  };
  explicit StateKeeper(Config c);

  // [control, before the stream starts] Reads PATH and routes its messages through the router.
  // Missing: one info line. Unreadable, corrupt or another version: one warning naming the
  // file, the line and the problem; the file is renamed PATH.bad and stemd starts empty. A
  // message that fails (a file that has gone): a warning, the rest is restored. Loads and stream
  // opens run on the router's opener threads (when enable_async_loads() was called) with
  // --load-timeout, the messages of an id waiting for its load: a file system that does not
  // answer costs that timeout (the source is then kept and tried again, as a missing file is),
  // and a stop signal ends the wait (hooks.wait).
  RestoreReport restore(control::Router& router, const RestoreHooks& hooks = {});

  // [control] Called often (every server pass): at most once a second, looks at the state and
  // queues it when it changed (continuous changes: at most every interval_s). Only a snapshot is
  // taken here: the text is made by flush() on the main thread.
  // Sources whose files were missing at start are tried again here every retry_s (off the control
  // thread: a load through the router's opener threads, so a hung mount blocks no one), their
  // voice lines behind them; one that loads is logged, one a client loaded something else into is
  // dropped.
  void poll(const control::Controller& ctl, control::Router& router);
  // [control] Queues the state as it is now, changed or not (at shutdown).
  void capture_now(const control::Controller& ctl, const control::Router& router);
  // [control, or before the control thread starts] What capture() adds to the state it takes from
  // the controller and router, with --restore-voices: a hand-over's voices not replayed yet
  // (DaemonState::unplayed). Empty: nothing.
  void set_add_unplayed(std::function<void(DaemonState&)> add) { add_unplayed_ = std::move(add); }
  // [control] The sources waiting for their files, with their voice lines, into `s` (its held
  // lines): the state file's, and a device hand-over's — a loss dropped them before (outside pass
  // 30, F1: the new image neither waited for them nor wrote them to the state file again).
  void add_held(DaemonState& s) const;
  // [control, before the control thread starts] A resumed image's source whose load failed as a
  // missing file fails (file_may_come_back: the previous image's waiting ones, or a file gone with
  // the device — a USB hub that took both): kept and tried again, as at a start. True when kept.
  // Its retries' outcomes come through the router's outcome observer, set here (a resumed image
  // has no restore() that set it: a retry's load was then taken for a client's and its voices
  // dropped).
  bool hold_resumed(control::Router& router, const StateMessage& load, control::ErrorKind kind,
                    const std::string& reason);
  // [control] A voice line of a source kept: waits with it (true), else false.
  bool hold_voice(const StateMessage& m);
  // [main] Formats and writes what was queued, if anything — within the write budget
  // (Config::budget_bytes_per_min; held back: said once, and the newest state waits). A failure
  // is logged (once until it changes or succeeds again) and retried at the next flush; the
  // previous file stays intact. True when nothing is left to write. With a helper it never
  // waits: it starts the write and the next flush looks at how it went. One write at a time:
  // while one has not returned (a file system that does not answer: logged once after
  // io_timeout_s) the newest state waits behind it, replacing what waited before — never a
  // second helper.
  bool flush();
  // [main] flush() — not held to the write budget —, then waits up to max_wait_s (steady clock)
  // for the write: true when the state queued is in the file. False — logged, "not saved" —
  // when it failed or did not finish in time (at shutdown: the process exits all the same; a
  // helper still stuck is killed).
  bool save(double max_wait_s);
  // The file could not be read at start (its file system did not answer within io_timeout_s):
  // this run never writes it, so what it holds is there for the next start.
  bool unread() const { return unread_; }
  void keep_unread() {
    unread_ = true;
    save_failing_->store(true);
  }
  // [main] Why the state is not being saved, in a few words for the health line and systemd's
  // STATUS= ("" when it is): not read at start, a write that has not answered, one that failed.
  std::string trouble() const;  // [main, before poll() runs] a device hand-over's new image
  // [any thread] True while the state is not being saved (what trouble() says, as a flag): a
  // write failed (its directory missing, the disk full…) or has not answered, or the file was not
  // read at start; false once a write succeeds. Shared: /stemd/status's `state_save_failing`
  // reads it on the control and web threads, whatever outlives what.
  std::shared_ptr<const std::atomic<bool>> save_failing() const { return save_failing_; }
  // [any thread] What was written (status: state_bytes, state_writes).
  std::shared_ptr<const StateCounters> counters() const { return counters_; }

  const std::string& path() const { return cfg_.path; }
  // [any thread] The sources the state file named whose files are still missing (a disk not
  // mounted yet): how many, and in a line, for /stemd/status, stemctl status and list, the health
  // line and the web page — the only other trace was a warning at start (new-user pass 29, M2).
  std::shared_ptr<const WaitingSources> waiting() const { return waiting_; }

 private:
  void queue(DaemonState s);
  bool flush_within(bool budget);  // flush(), held to the budget or not (save())
  bool budget_allows(std::chrono::steady_clock::time_point now);
  void spend(std::size_t bytes);
  DaemonState capture(const control::Controller& ctl, const control::Router& router) const;
  // A source the file named whose file is missing: kept (state_held.cpp).
  struct Held {
    int id = 0;
    std::string path;
    std::string reason;                  // why its load failed (the errno's words, or the give-up)
    std::vector<StateMessage> messages;  // its load, then its voice lines
    // A voice whose file stopped reading mid-play (a stick pulled, a share gone, the file rewritten
    // in another format: state_lost.cpp) rather than a file missing at start: the id still holds
    // the source it played (load serial `serial`); `voice` is the player that ended, `position`
    // where it stopped (file frames), `since` when.
    bool lost = false;
    std::uint64_t serial = 0;
    control::VoiceHandle voice{};
    std::int64_t position = 0;
    int rate = 0;  // the file's own rate (file frames / rate = file seconds)
    std::string name;
    std::chrono::steady_clock::time_point since{};
  };
  void hold(const StateMessage& load, const std::string& reason);
  bool held(int id) const;
  // Gives up waiting for held source `id` (< 0: all), as a client asked (Router::set_waiting_sources).
  bool forget_held(int id);
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);  // for the router's hooks
  void add_to_held(const StateMessage& m);
  void publish_held();  // held_ as waiting() says it
  std::shared_ptr<WaitingSources> waiting_ = std::make_shared<WaitingSources>();
  void retry_held(const control::Controller& ctl, control::Router& router);
  // Lost voices (state_lost.cpp): the router's ends of streamed players whose files stopped reading,
  // queued by its hook (inside Controller::service()) and made held sources at the next poll().
  void watch_voices(control::Router& router);
  void take_lost(const control::Controller& ctl, const control::Router& router);
  void lose(const control::Controller& ctl, const control::Router& router, const control::VoiceInfo& v);
  bool forget_lost(int id);  // a client's stop of its id (Router::set_lost_voices)
  void check_resumed();      // a resumed voice whose play was refused later: said, not waited for
  // A held entry that a client took over meanwhile: its id played again, or loaded with another file.
  bool taken_over(const Held& h, const control::Controller& ctl, const control::Router& router) const;
  void log_lost_resumed(const Held& h, const control::Router& router);  // and keeps where (resumed_)
  std::shared_ptr<std::vector<control::VoiceInfo>> lost_ = std::make_shared<std::vector<control::VoiceInfo>>();
  bool watching_ = false;
  // Where each id's lost voice was last started again (file frames), and when: the same file failing
  // again at the same place (a file damaged there, not a disk gone) is not waited for a second time.
  struct Resumed {
    std::int64_t position = 0;
    std::chrono::steady_clock::time_point at{};
  };
  std::map<int, Resumed> resumed_;
  void retry_held_now(const control::Controller& ctl, control::Router& router);
  // A held source's retry: its load, then — loaded at once — its voice lines; loading, they go
  // when its outcome comes (retry_held_now). True when it loaded at once.
  bool retry(Held& h, control::Router& router);
  void log_restored(const Held& h, const control::Router& router);
  // The typed outcomes of this keeper's own messages answered later (loads, streamed plays, what
  // waited behind them): the router's outcome observer (set by restore()) appends them [control],
  // the restore's waits and the held sources' retries take them. Shared with the observer, which
  // holds it weakly: a router that outlives the keeper appends nowhere.
  void observe(control::Router& router);
  std::vector<control::Outcome> take_outcomes();
  std::shared_ptr<std::vector<control::Outcome>> outcomes_ = std::make_shared<std::vector<control::Outcome>>();
  // The restore's steps (state_restore.cpp).
  struct RestoreRun;
  void restore_message(RestoreRun& run, control::Router& router, std::size_t i);
  void restore_tempo(RestoreRun& run, control::Router& router);
  // A voice line fitted to `src` as it is now (fit_voice_to_file), a warning saying how. True: the
  // voice does not loop and is past the end of the file as it is now — it had ended there: its lines
  // are not routed (said once, not counted as failures), and the state file no longer has it.
  bool fit_line(RestoreRun& run, const control::Router& router, std::size_t i, int id);
  bool fit_logged(StateMessage& sm, const io::Source& src, int id, std::map<int, RestoreLoop>& loops) const;
  void route_held_voices(const Held& h, control::Router& router);
  void restore_outcome(RestoreRun& run, std::size_t i, const control::Reply& reply);
  bool restore_pump(RestoreRun& run, control::Router& router);
  bool interrupted_ = false;  // the restore was stopped: nothing is written (queue())
  // In restore(): held sources are published once at its end, not at each hold (the waiting line
  // is built from every held path: once per hold made the largest state's restore quadratic,
  // 0.5 → 6.3 s, and past TSan's time-out).
  bool restoring_ = false;
  std::vector<Held> held_;
  std::chrono::steady_clock::time_point last_retry_{};

  Config cfg_;
  std::function<void(DaemonState&)> add_unplayed_;  // set_add_unplayed
  // control thread
  std::shared_ptr<const DaemonState> last_;  // what was queued last (shared with pending_)
  std::chrono::steady_clock::time_point last_poll_{}, last_queued_{};
  // shared: control → main (a snapshot: formatted by flush())
  std::mutex mu_;
  std::shared_ptr<const DaemonState> pending_;
  // main thread
  std::string retry_text_;  // a write that failed, tried again while nothing newer is queued
  bool have_retry_ = false;
  double tokens_ = 0;  // the write budget's bytes left (a token bucket; below 0: in debt)
  std::chrono::steady_clock::time_point tokens_at_{};
  bool tokens_started_ = false, held_logged_ = false;
  std::size_t last_bytes_ = 0;  // the size of the last text made: what the next write will take
  std::shared_ptr<StateCounters> counters_ = std::make_shared<StateCounters>();
  std::string last_error_;
  std::uint64_t failures_ = 0;
  std::string last_failure_;  // writes that failed (written(false)): save() says why, not "not finished"
  // The state file's read or write under way in the helper (state_save.cpp), and the text it
  // writes (put back to retry when it fails and nothing newer waits).
  // The file's read at start (state_restore.cpp): nullopt when it was not read — its file system
  // did not answer within io_timeout_s (unread_ set), or a stop signal came meanwhile.
  std::optional<StateRead> read_file(std::vector<StateMessage>& out, const RestoreHooks& hooks, std::size_t max,
                                     std::string& error);
  bool settle_job();  // false: a job is still running
  void written(bool ok, std::string text, const std::string& error);
  std::unique_ptr<FileJob> job_;
  bool job_reads_ = false, stuck_logged_ = false, helper_failed_ = false;
  std::string job_text_;
  bool unread_ = false;  // set by restore() before the control thread starts
  std::shared_ptr<std::atomic<bool>> save_failing_ = std::make_shared<std::atomic<bool>>(false);
  // [main] A file is at the path (false: the start found none and nothing has been written yet):
  // a failed write then says that nothing is saved, not that "the previous file is unchanged".
  bool file_there_ = true;
};

}  // namespace stemd::app
