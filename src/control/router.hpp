// The OSC router: every message of both dialects in, exactly one reply out [control].
//
// handle_packet() takes a raw datagram (or TCP frame) from a peer: it is checked structurally
// (osc_packet.hpp), handed to liblo (osc.hpp), and each message inside is routed by address,
// through one HandlerTable (router_types.hpp), to a handler of the crowdstream dialect
// (crowdstream.cpp, unchanged from the Python server's) or the native one (native.cpp, under
// /stemd/) — see dialects.hpp. The router holds what both share: the players of each id, loads
// (router_loads.cpp), the tempo clock (tempo_clock.hpp), the notifier (notifier.hpp), status
// and bad-input accounting. A handler validates *all* its arguments before it changes
// anything, so a bad message changes no state; it answers
//   /done <address> [values…]          or          /fail <address> [values…] <reason>
// Bad input is counted per kind and logged at most once a second per kind.
// Events from the engine become notifications for subscribers (/stemd/notify 1).
// Thread: the control thread only — the one that owns the Controller.
#pragma once

#include "address_validation.hpp"
#include "controller.hpp"
#include "dialects.hpp"
#include "base/log_guard.hpp"
#include "link_grid_check.hpp"
#include "link_report.hpp"
#include "load_pool.hpp"
#include "media_policy.hpp"
#include "net.hpp"
#include "osc.hpp"
#include "notifier.hpp"
#include "osc_packet.hpp"
#include "router_types.hpp"
#include "stuck_opens.hpp"
#include "tempo_clock.hpp"

#include <chrono>
#include <array>
#include <atomic>
#include <deque>
#include <memory>
#include <optional>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <unordered_map>
#include <vector>

namespace stemd::control {

class LinkSession;

class Router {
 public:
  using Reply = control::Reply;  // the typed reply of a handler (router_types.hpp)

  Router(Controller& ctl, const RouterConfig& cfg, const MediaPolicy& media);
  ~Router();
  Router(const Router&) = delete;
  Router& operator=(const Router&) = delete;

  // One packet from `from`; replies (one per message, or one /fail for a bad packet) appended.
  // From a UDP source that is neither exempt nor validated, replies adding up to more than 3×
  // the packet's size are replaced by one `/stemd/cookie <token>` (or nothing, when even that
  // is over 3×).
  void handle_packet(const std::uint8_t* data, std::size_t size, const Peer& from, std::vector<Outgoing>& out);
  // One message; returns the reply message (tests use this directly). Loads run synchronously
  // here, on the caller's thread, whatever enable_async_loads() said.
  OscMessage handle(const OscMessage& m, const Peer& from);
  // The same, with the handler's typed reply (what handle() serialises): tests read the kind.
  Reply handle_reply(const OscMessage& m, const Peer& from);

  // From now on, loads that arrive through handle_packet() run on opener threads (load_pool.hpp)
  // and are answered when done: poll_loads() (the server loop) installs what finished, answers
  // it and runs the messages that waited behind it, and take_replies() hands those answers out.
  // A message touching an id (or a crowdstream deck's base id) whose load is in flight waits
  // behind that load, in arrival order; anything else is answered at once. `wake` is called
  // from an opener thread when a load finished; called again, it only replaces `wake`.
  void enable_async_loads(std::function<void()> wake);
  void poll_loads();
  // [control; the state file's restore at start] One message as handle_reply() handles it, except
  // that a load or a play's stream open it starts runs on an opener thread once
  // enable_async_loads() was called (kDeferred: its answer comes later, from poll_loads() through
  // take_replies()), so a file system that does not answer costs --load-timeout, not the caller's
  // thread. For a message that does not wait behind a load (waits_behind_load() false).
  Reply handle_async(const OscMessage& m, const Peer& from);
  // `m` touches an id (or every id) whose load or play's stream open is in flight.
  bool waits_behind_load(const OscMessage& m) const;
  // A message with a timetag (a state line's waiting timed start: app/state.hpp) whose time maps
  // to a frame the engine can still start it on — the stream runs, and the time is not past the
  // soonest frame nor more than a day ahead. False for an untimed message.
  bool timetag_ahead(const OscMessage& m);
  bool anything_in_flight() const { return any_in_flight(); }
  void take_replies(std::vector<Outgoing>& out);
  // [control] Called with the typed outcome (router_types.hpp) of every message answered later —
  // after the load or the play's stream open it started or waited behind, a timed-out one too —
  // as its answer is queued for take_replies(), whoever sent it. Called again, it replaces the
  // observer. It runs inside poll_loads(): it must not call into the router.
  void set_outcome_observer(std::function<void(const Outcome&)> f) { outcome_observer_ = std::move(f); }
  const std::function<void(const Outcome&)>& outcome_observer() const { return outcome_observer_; }
  // [control] Sources the daemon waits for (the state file's sources whose files are missing):
  // `forget(id)` gives id up (id < 0: all) and says whether it was waited for. /stemd/unload of
  // such an id and /mixer_cleanup give them up — before, they came back (and played) on their own
  // once their disk was mounted, whatever a client had cleared since.
  void set_waiting_sources(std::function<bool(int id)> forget) { forget_waiting_ = std::move(forget); }
  bool forget_waiting(int id) { return forget_waiting_ && forget_waiting_(id); }
  // [control] A streamed player whose file stopped reading mid-play (a USB stick pulled, a share
  // gone, its file rewritten in another format) ended with an error: `lost` is called with the voice
  // as last heard (id, position, loop, levels), from the engine's event inside Controller::service(),
  // so it must not call into the router (the state keeper queues it: the voice waits for its file
  // from its next poll). `stopped` (a client's stop of an id so waiting) gives up; true: there was one.
  void set_lost_voices(std::function<void(const VoiceInfo&)> lost, std::function<bool(int id)> stopped) {
    voice_lost_ = std::move(lost);
    forget_lost_ = std::move(stopped);
  }
  bool forget_lost_voice(int id) { return forget_lost_ && forget_lost_(id); }
  std::size_t loads_in_flight() const { return pending_.size(); }
  // Messages whose plays wait for their streams to open (router_streams.cpp).
  std::size_t plays_opening() const { return pending_plays_.size(); }
  std::size_t messages_waiting() const { return deferred_.size(); }
  struct LoadDone;         // a finished load (router_loads.cpp)
  struct OpenedStream;     // a stream opened for a play (router_streams.cpp)
  struct StreamsDone;      // the streams one message's plays needed
  struct LoadCompletions;  // finished loads, shared with the opener threads
  // One message taking effect at engine frame `frame`, as if in a bundle timed for it
  // (--script: a scripted session renders deterministically).
  OscMessage handle_at(const OscMessage& m, std::int64_t frame);

  // Engine events → notifications for subscribers.
  void on_event(const engine::Event& e, const VoiceInfo& v);
  // The per-kind log limits of lines clients can cause (at most 5 a second each, the rest
  // counted); the kinds name themselves. Flushed by log_bad_input() at every control pass, so a
  // layer above (the daemon's engine-event lines) can share it.
  base::LogLimiter& log_limit() { return log_limit_; }
  void on_source(int slot, const io::Source* s) { notifier_.source(slot, s); }
  void notify_device(const std::string& what, const std::vector<OscArg>& values) { notifier_.device(what, values); }
  void take_notifications(std::vector<Outgoing>& out) { notifier_.take(out); }
  void drop_subscriber(const Peer& p) { notifier_.drop(p); }
  std::size_t subscribers() const { return notifier_.size(); }
  std::vector<Peer> subscriber_peers() const { return notifier_.peers(); }
  // Drops subscriptions not renewed within --subscription-ttl (called by tick()).
  void expire_subscribers(std::chrono::steady_clock::time_point now) { notifier_.expire(now); }
  // Whether replies to `p` are limited (a UDP source neither exempt nor validated now).
  bool unvalidated(const Peer& p, std::chrono::steady_clock::time_point now) const;
  AddressValidator& validator() { return validator_; }

  // [control] Voices waiting for the device (the daemon's recovery: app/recovery.cpp): those of a
  // previous image, for the lost device to come back, and the start-up flags' (--play, --a…), for
  // a configured device not there yet at start. Counted in the status (voices_waiting) and listed
  // by /stemd/voices with their state until they play (empty list).
  struct WaitingVoice {
    int id = 0;
    std::int64_t position = 0;                    // in the file's frames
    const char* state = "waiting (device lost)";  // or "waiting (device not there yet)"
  };
  void set_waiting_voices(std::vector<WaitingVoice> v) { waiting_voices_ = std::move(v); }
  // [control] While set, starts are not quantised (/stemd/quantize stays as it is): the voices of
  // a previous image continue from their saved frames at once, not on the next bar (outside pass
  // 28, user M1). Whether a start waits for the quantum now.
  void set_unquantised(bool on) { unquantised_ = on; }
  // [control] Without --link: the beat count goes on from a previous image's, `beats` at `at`
  // (its steady clock), at the tempo now, from the engine frame now; the beat restarted at 0 at
  // a device's hand-over (outside pass 28, user L7). With --link the session's grid rules.
  void carry_beat(double beats, std::chrono::steady_clock::time_point at);
  // [control] Without --link, while no callback comes (a stall, a lost device, a hand-over's image
  // waiting for it): the beat goes on with wall time from the last callback's (the engine's frames
  // stand still), as the status says; back (beat_back), the grid is carried on from it, so it keeps
  // its phase with the wall clock — a club's other gear kept going (quant28 left it standing).
  void beat_away();
  void beat_away(double beats, std::chrono::steady_clock::time_point at);
  void beat_back();
  // The beat now: away, the wall clock's; else the engine's, as heard.
  double beat_now() const;
  bool quantising() const { return tempo_.quantum_beats() > 0 && !unquantised_; }
  const std::vector<WaitingVoice>& waiting_voices() const { return waiting_voices_; }
  // [control] The device's output latency, once it is known (a device that opened after the
  // start, or came back: another device, another latency): status and Link's compensation.
  void set_output_latency(double seconds);
  // [control] The device's frames per callback, when it reopened at another (the JACK server's
  // period, followed): the status's buffer latency.
  void set_buffer_size(std::uint32_t frames) { cfg_.buffer_size = frames; }
  // [control] When the service started: uptime_s counts from it (a fresh image after a lost
  // device keeps the first image's start).
  void set_started(std::chrono::steady_clock::time_point t) { started_ = t; }
  std::chrono::steady_clock::time_point started() const { return started_; }

  // [control] Did the last handle_packet() refuse a typed (JSON) message's value of the wrong JSON
  // type (OscMessage::typed)? The web API answers those 400, not 422.
  bool refused_a_json_type() const { return type_refused_; }
  // Any thread: the opener threads' jobs running now, by path, the lost ones marked ("" when none).
  std::string openers_running() const { return pool_ ? pool_->running() : std::string(); }
  // [control] The web monitor's listing threads lost in the file system (status: listings_lost).
  void set_listings_lost(std::function<std::size_t()> count) { listings_lost_ = std::move(count); }
  // Extra status fields from the server (sockets, drops…), appended to every status reply.
  void set_status_extra(std::function<void(std::vector<OscArg>&)> f) { status_extra_ = std::move(f); }
  // Extra fields of the native /stemd/status only (the daemon's: the state file's), after the
  // others; /get_status keeps the crowdstream server's.
  void set_native_status_extra(std::function<void(std::vector<OscArg>&)> f) { native_status_extra_ = std::move(f); }
  std::vector<OscArg> status_fields();
  // [control] The totals of the images before a device hand-over (carried_totals.hpp: name →
  // count), added from now on to this image's in every status reply: totals since the service
  // started. `stream_frames` stays this image's (the stream clock: /ws/audio's frame numbers).
  void set_carried_totals(std::vector<std::pair<std::string, std::uint64_t>> totals) {
    carried_totals_ = std::move(totals);
  }
  // [control] Status fields f[from…] (name, value pairs) with the carried totals added.
  void add_carried_totals(std::vector<OscArg>& f, std::size_t from) const;
  // [control] This image's totals with the carried ones (for the next image, at a hand-over):
  // of the reply to a native /stemd/status (`fields`, name, value pairs).
  static std::vector<std::pair<std::string, std::uint64_t>> totals_of(const std::vector<OscArg>& fields);
  static bool repeatable_query(const std::string& address);

  const RouterStats& stats() const { return stats_; }
  // Logs a summary of bad input at most once a second per kind (call from the loop).
  void log_bad_input();

  // The voice playing a buffer id (crowdstream's one player per id), if any.
  VoiceHandle player(int id) const;

  // Called by the server loop every pass: the clock printout (/print_clock).
  void tick();
  // [control] How long the server loop may sleep when no packet comes, in milliseconds of wall
  // time: about one audio period (10–50 ms) while anything moves (loads in flight, a tempo glide,
  // the clock printout, a Link session; playing voices too when `voices_need_passes`: nothing
  // else tells the loop of their events), so these are serviced once per callback; `idle_ms`
  // when nothing does.
  int wait_ms(bool voices_need_passes = true, int idle_ms = 100) const;

  // What a state file keeps of the router's own bookkeeping (src/app/state.cpp) [control].
  const std::map<int, VoiceHandle>& players() const { return players_; }
  // The player id's waiting player takes over from at its start (heard until then), or none.
  VoiceHandle outgoing(int id) const {
    const auto it = outgoing_.find(id);
    return it == outgoing_.end() ? VoiceHandle{} : it->second;
  }
  // A load or a play's stream open for `id` is in flight (answered when it is done).
  bool load_in_flight(int id) const { return in_flight(id); }
  // What `id` holds (null: nothing loaded): a restored voice line is fitted to its file's length.
  const io::Source* source(int id) const { return ctl_.source(id); }
  float player_rate(int id) const {  // the player's own rate, before the tempo ratio
    auto it = player_rate_.find(id);
    return it == player_rate_.end() ? 1.0f : it->second;
  }
  double bpm() const { return tempo_.bpm(); }
  // A saved tempo at start (the state file, after its voices): applied as a Link session's is, the
  // players held within the work budgets. False (why) when /set_tempo would refuse the number.
  bool restore_tempo(double bpm, std::string& why);
  // [control] The Link session's tempo (`peers` other boxes in it) reaching the clock and the
  // players: each sync_tick() that finds it changed.
  void follow_session_tempo(double bpm, std::size_t peers);
  // The tempo ratio the players follow: the tempo clock's, or the one they are held at when a
  // tempo the work budgets cannot take came from Link or the movement (router_work.cpp); and that
  // held tempo in bpm (0: none held).
  double players_ratio() const { return held_ratio_ > 0 ? held_ratio_ : tempo_.ratio(); }
  double held_bpm() const { return held_ratio_ > 0 ? held_ratio_ * tempo_.base_bpm() : 0.0; }
  int meter() const { return tempo_.meter(); }
  double quantum_beats() const { return tempo_.quantum_beats(); }
  const TempoClock& tempo() const { return tempo_; }
  // [control] /stemd/quantize's beats (0 = off), as the daemon's own: the state restore holds
  // --quantize's off while the voices before the file's /stemd/quantize line start at once.
  void set_quantum(double beats) { tempo_.set_quantum(beats); }
  const RouterConfig& config() const { return cfg_; }
  const HandlerTable& handlers() const { return table_; }
  // Called first thing in every tick() — on the control thread, every server pass.
  void set_tick_hook(std::function<void()> f) { tick_hook_ = std::move(f); }

  // The Link session (--link), or null.
  const LinkSession* link() const { return link_.get(); }
  // [any thread] The Link session's peers as of the last control pass; -1 without --link (the
  // daemon's health line, on the main thread: Link's own count takes a lock, never the audio thread's).
  int link_peers_now() const { return link_peers_now_.load(std::memory_order_relaxed); }

  // The movement tempo's glide (TempoClock::glide).
  static double glide_tempo(double current, double target, double dt, double rise_s, double fall_s) {
    return TempoClock::glide(current, target, dt, rise_s, fall_s);
  }

  // Bytes answered to one packet beyond which paged answers (/stemd/list, /stemd/voices) are
  // refused, so one datagram cannot keep the control thread building 150 MB of lists.
  static constexpr std::size_t kMaxPacketAnswer = 1 << 20;

 private:
  friend class CrowdstreamDialect;
  friend class NativeDialect;

  void route_packet(const std::uint8_t* data, std::size_t size, const Peer& from, std::vector<Outgoing>& out);
  OscMessage make_reply(const std::string& address, const Reply& r) const;
  void count_bad(ErrorKind kind, const std::string& reason, const std::string& address, const Peer& from);
  // The frame a bundle's timetag means, and how late (ms) or far ahead (s) of the soonest it is.
  std::int64_t bundle_frame(const OscMessage& m, double& late_ms, double& ahead_s);
  Reply route(const Call& c, double ahead_s);

  // --- what the dialects share (friends) ---
  // Starts `opts` as `id`'s player at engine frame `at` (-1: at once), replacing (declicked)
  // the one it had; the rate sent is the player's own × the tempo ratio. A streamed source's
  // stream is opened first, off the control thread (prepare_streams): the message is answered
  // when it has opened, and starts at the `at` decided now.
  Reply start_player(int id, const PlayOptions& opts, std::int64_t at);
  // `old`, id's player, replaced by a play at `at`: a play still waiting for a later start is
  // dropped (it never starts: Controller::drop_waiting), one heard by then is stopped at `at`
  // (declicked). A new play waiting for its start takes over from `old` then: `old` is id's
  // outgoing player until it (outgoing_).
  void replace_player(int id, VoiceHandle old, std::int64_t at, bool waits);
  // The player a waiting play of `id` was to take over from at its start (stopped then, heard until
  // then) is stopped from `at` instead: the waiting play was dropped or stopped — by a play or a
  // stop of the id — so what plays of the id until its start is no longer anyone's to stop (a
  // /stemd/stop left it sounding until the dropped play's time).
  void stop_outgoing(int id, std::int64_t at, double fade, engine::Curve curve, bool replaced);
  // A stop of id's player sent (/stemd/stop, /stop_stem): id has none from now, nor an outgoing one.
  void end_player(int id, std::int64_t at, double fade, engine::Curve curve) {
    stop_outgoing(id, at, fade, curve, false);
    players_.erase(id);
  }
  // Every play of `plays` whose source is streamed gets its stream opened on an opener thread,
  // in one job; the message is deferred (kDeferred) and re-run when they are open, its plays
  // then starting at `at` — all of them on that frame, or, when the opens finished after it,
  // together at once and answered /fail "late by …". Done (nothing to wait for): the sources
  // are in memory, the streams are already open (the re-run), or loads are synchronous here.
  Reply prepare_streams(const std::vector<std::pair<int, PlayOptions>>& plays, std::int64_t at);
  // The same for a seek of `id`'s player `v` to `frame` (a streamed source's voice needs a new
  // stream from there): the re-run's Controller::seek takes it (take_stream).
  Reply prepare_seek(int id, VoiceHandle v, std::int64_t frame, std::int64_t at);
  struct StreamWant {  // one stream to open on an opener thread
    int id = 0;
    std::uint64_t serial = 0;
    std::shared_ptr<const io::Source> source;
    io::LoaderThread::StreamPlan plan;
    io::LoaderThread::StreamRequest request;
  };
  Reply open_streams(std::vector<StreamWant> wants, std::int64_t at);
  // A message the old server ignored: counted, logged at debug, answered /done.
  Reply ignored(const OscMessage& m, const char* why);
  // A position in a file is in the FILE's own seconds (file frames / the file's rate), whatever
  // the output rate; durations of wall-clock things (fades, ramps, start_at) are output seconds.
  int file_rate(const io::Source& src) const {
    return src.info.sample_rate > 0 ? src.info.sample_rate : cfg_.sample_rate;
  }
  double file_seconds(std::int64_t file_frames, int rate) const {
    return static_cast<double>(file_frames) / (rate > 0 ? rate : cfg_.sample_rate);
  }
  // The frame a relative start time means: `seconds` (output seconds) after the call's time
  // (its bundle's timetag, or now plus a period's margin so every command of a group is queued
  // in time; for a message resumed after a load, its arrival, never the past).
  std::int64_t frame_after(const Call& c, double seconds) const;
  // A start_at (output seconds) in 0..a day, and with its bundle's time no more than a day ahead.
  bool start_at_in_range(const Call& c, double start_at, std::string& error) const;
  // The test tone (/test_tone, /stemd/tone) at frame `at`: `level` linear peak, `seconds` output
  // seconds; every argument range-checked here (limits.hpp), then an oscillator in the engine.
  Reply test_tone(double freq, double level, double seconds, std::int64_t at);
  // A player's own rate × the tempo ratio, held to the engine's range (limits::kMinRate..kMaxRate).
  float effective_rate(double own) const;  // × players_ratio(): the tempo's, or the one held
  // A player's own /stemd/rate as the engine is told it: × players_ratio() where the tempo moves
  // players by their rate (vinyl); as given where it stretches them (time_stretch: the tempo is
  // their stretch, not their rate as well) or does not move them.
  float player_rate(double own) const;
  static float clamped_rate(double rate);  // held to the engine's range
  // A tempo change: the beat count carries on, every player follows (commands at `at`),
  // gliding over glide_s. Returns how many players could not follow (no resampler left). With
  // `why` (a client's /set_tempo): -1 and nothing changed when the schedule cannot take a command
  // per player at `at`; the reason goes into *why (the last player's, when some could not follow).
  int apply_tempo(double bpm, double glide_s, std::int64_t at, std::string* why = nullptr);
  std::string tempo_change_problem(double bpm, std::int64_t at) const;  // why not every player could follow

  // The players and the work budgets (router_work.cpp). A tempo that is not a client's command (a
  // Link peer's, the movement glide) cannot be refused: when the resampling (stretching) budget
  // cannot take every player at its ratio, the players are held at the nearest ratio it can take
  // (held_ratio_) while the tempo clock — the beat grid, quantised starts — follows the tempo. The
  // players then drift from the grid until the tempo comes back within the budget (retried every
  // second: voices that end free units).
  // Every player to its rate (or stretch) at the tempo clock's ratio — held, when `hold`, at the
  // nearest the budgets take on the way from `from` (the ratio they were at); how many could not
  // follow (the last one's reason in *why).
  int move_players(double from, double glide_s, std::int64_t at, bool hold, std::string* why);
  void retry_held_players();                       // every tick: while held, once a second
  std::vector<VoiceHandle> alive_players() const;  // the players whose voices still play
  // What every player following `ratio` would add to the budgets (thousandths of a unit).
  Controller::WorkNeed players_need(double ratio) const;
  bool players_fit(double ratio);
  double reachable_ratio(double from, double target);
  double held_ratio_ = 0;     // > 0: the players' ratio instead of tempo_.ratio()
  std::string hold_context_;  // what moves the players now, for move_players' line ("" : "tempo X bpm")
  bool hold_logged_ = false;  // move_players said the hold's change (follow_session_tempo says no more)
  std::chrono::steady_clock::time_point hold_retry_{};

  // Sync (router_sync.cpp): the Link session and the stream clock's line.
  void start_link();
  void stop_link();
  // Every tick: the players follow the session tempo; the link quantum follows /stemd/quantize.
  void sync_tick();
  // The tempo clock takes the session's latest beat grid (when --link); then quantized() is on it.
  void sync_grid();
  // `frame` moved to the next quantum of the beat clock (the session's with --link), when
  // /stemd/quantize is set; unchanged otherwise.
  std::int64_t quantized_start(std::int64_t frame);
  // Frames the device plays a rendered frame after (its output latency, at the output rate).
  std::int64_t output_latency_frames() const;
  void sync_status(std::vector<OscArg>& f);
  std::unique_ptr<LinkSession> link_;
  double link_bpm_applied_ = 0;  // the session tempo the players were last set to
  // Outside pass 26 (M2, M3): the session's grid is checked before it is followed, and a session
  // whose timeline is absurd is left and joined afresh (router_sync.cpp).
  void link_probe();
  std::string link_tempo_problem();  // why /set_tempo cannot set the session's tempo ("" if it can)
  LinkGridCheck link_grid_;
  std::string link_absurd_;  // the last probe's finding ("" while sane)
  std::chrono::steady_clock::time_point link_next_probe_{}, link_rejoin_after_{};
  double link_backoff_s_ = 10;
  std::optional<std::chrono::steady_clock::time_point> link_join_at_;  // when the new session joins
  // New-user pass 26 (M3, L1): the peer count and the session tempo told in the log, in few lines
  // (link_report.hpp), and whether an interface can carry Link's multicast (looked at again every
  // 5 s while none can).
  void link_report(std::chrono::steady_clock::time_point now);
  std::optional<ChangeBurst> link_peers_told_, link_tempo_told_;
  LinkReach link_reach_ = LinkReach::kNetwork;
  std::chrono::steady_clock::time_point link_reach_next_{};
  std::atomic<int> link_peers_now_{-1};

  // Async loads (router_loads.cpp)
  // What one packet may still be answered with. A message that waits behind a load is answered
  // later, but within the limits of the packet it came in: from an unvalidated source, 3× the
  // packet's size in all (then the cookie, once); at most kMaxPacketAnswer bytes of pages.
  struct PacketBudget {
    bool unvalidated = false;      // the source had not echoed a cookie when the packet came
    std::size_t allowed = 0;       // AddressValidator::kAmplification × the packet's size
    std::size_t sent = 0;          // bytes answered to it so far (counted while unvalidated)
    bool withheld = false;         // an answer was withheld: the rest are too
    std::size_t answer_bytes = 0;  // every answer's bytes, for kMaxPacketAnswer
  };
  struct PendingLoad {
    std::uint64_t token = 0;
    OscMessage message;
    Peer from;
    std::int64_t arrival_base = -1;
    std::shared_ptr<PacketBudget> packet;           // null: not from a packet (no limits)
    std::uint64_t ticket = 0;                       // the pool's, for abandon()
    std::chrono::steady_clock::time_point since{};  // sent (its job queued)
    std::string path;
    std::shared_ptr<OpenTrail> trail;  // where its job is, and its progress (set by the job)
  };
  struct Deferred {
    OscMessage message;
    Peer from;
    std::vector<int> slots;
    bool all = false;  // waits for every load in flight (/mixer_cleanup)
    std::int64_t arrival_base = -1;
    std::shared_ptr<PacketBudget> packet;
    io::Charge charge;  // what it holds while it waits, on the memory budget
  };
  // Runs a message that waited (behind a load) as part of the packet it came in, and queues its
  // answer for take_replies() within that packet's budget.
  void answer_later(const OscMessage& m, const Peer& from, const std::shared_ptr<PacketBudget>& packet);
  // Queues `r` for take_replies() within the packet's budget (limited: its source unvalidated).
  void queue_answer(const Peer& from, const std::shared_ptr<PacketBudget>& packet, const OscMessage& r, bool limited);
  // Tells the outcome observer, if any, what `m` from `from` was answered.
  void observe(const OscMessage& m, const Peer& from, const Reply& r) const;
  std::function<void(const Outcome&)> outcome_observer_;
  std::function<bool(int)> forget_waiting_;
  std::function<void(const VoiceInfo&)> voice_lost_;  // set_lost_voices, and forget_lost_
  std::function<bool(int)> forget_lost_;
  // A message that waited answered with a failure it did not run for (a timed-out load).
  void answer_failed(const OscMessage& m, const Peer& from, const std::shared_ptr<PacketBudget>& packet,
                     const Reply& r);
  // Loads and stream opens given up (router_expire.cpp): stuck — started, and no answer from the
  // file system for --load-timeout —, on a file system where one is stuck, or too slow for the
  // bound every load is answered within. Answered /fail, their ids freed, their jobs abandoned
  // together (abandon_expired: ticket → the reason).
  void expire_loads(std::chrono::steady_clock::time_point now);
  void abandon_expired(const std::map<std::uint64_t, std::string>& gone);
  std::string lost_note(bool lost) const;  // for the log: what a lost opener thread means
  // What a message waiting behind a load is charged to the memory budget.
  static std::size_t waiting_bytes(const OscMessage& m);
  // The ids a message touches (for ordering behind loads in flight); all = every id.
  void touched_slots(const OscMessage& m, std::vector<int>& slots, bool& all) const;
  bool blocked(const std::vector<int>& slots, bool all) const;
  void route_async(const OscMessage& m, const Peer& from, std::vector<Outgoing>& out);
  void drain_deferred();
  // True while a load or a play's stream open touching `id` is in flight.
  bool in_flight(int id) const { return pending_.count(id) != 0 || stream_ids_.count(id) != 0; }
  bool any_in_flight() const { return !pending_.empty() || !pending_plays_.empty(); }
  // Re-runs the messages whose streams opened (poll_loads).
  void resume_plays(std::vector<StreamsDone>& done);
  // In a re-run: the stream opened for `id` (left null when it needs none); a failure when its
  // open failed or the id was reloaded meanwhile.
  Reply take_stream(int id, std::unique_ptr<io::LoaderThread::Opened>& opened);
  std::string late_play_reason() const;
  // A resumed play (its stream open) of `id` whose next waiting message is an untimed pause of it:
  // it starts paused, as the engine makes a scheduled start of a pause sent before it
  // (engine_pending.cpp). Sent apart, the pause could reach the engine a callback after the start:
  // heard for a period and the pause's fade (session 28's "Left", quant28).
  bool paused_behind(int id) const;
  // In a re-run: a failure when any stream of `plays` failed to open (or its id was reloaded).
  Reply check_streams(const std::vector<std::pair<int, PlayOptions>>& plays) const;
  const OscMessage* current_msg_ = nullptr;  // the message being handled (handle_reply)
  const Peer* current_from_ = nullptr;
  // Open and load `path` into `id` (ensure: keep it when the id already holds that very file),
  // installing at the call's frame — synchronously, from the result of a finished job when the
  // message is being resumed, or by starting a job (reply deferred: kind kDeferred).
  Reply load_file(const Call& c, int id, const std::string& path, const std::string& name, bool ensure);
  std::int64_t arrival_base() const;
  std::unique_ptr<LoadPool> pool_;
  std::shared_ptr<LoadCompletions> completions_;
  std::map<int, PendingLoad> pending_;  // id → its load in flight
  // Opens (loads, plays' stream opens) that timed out with their opener thread still stuck: while
  // one is, an open on the same file system (its mount, file_system.hpp — found without touching
  // it) answers busy at once instead of losing another thread. Keyed by path, a state file or a
  // client with several files on one dead share lost a thread per file until all 8 were lost and
  // every load from any disk answered busy (outside pass 21, findings 2 and 5). One entry per lost
  // thread, keyed by where its open really was (stuck_opens.hpp: a load's path is walked on its
  // opener thread, which asks the same guard before each step). Shared with the opener threads.
  std::shared_ptr<StuckOpens> stuck_ = std::make_shared<StuckOpens>();
  std::function<std::size_t()> listings_lost_;  // set_listings_lost
  bool type_refused_ = false;                   // refused_a_json_type
  // The busy reason for an open of absolute `path` while its file system holds a lost thread, or
  // "" (entries whose thread came back go).
  std::string still_stuck(const std::string& path);
  std::deque<Deferred> deferred_;  // messages waiting behind a load, in arrival order
  std::vector<Outgoing> replies_;  // answers of resumed messages, for take_replies()
  std::uint64_t next_token_ = 1;
  bool async_now_ = false;          // the message being handled may start a job
  bool reply_deferred_ = false;     // …and did: no reply now
  LoadDone* resume_ = nullptr;      // the finished job the message being re-run consumes
  std::int64_t arrival_base_ = -1;  // a resumed message's arrival (Call::arrival)
  // Plays waiting for their streams (router_streams.cpp).
  struct PendingPlay {
    OscMessage message;
    Peer from;
    std::int64_t arrival_base = -1;
    std::int64_t at = -1;  // the frame decided when it arrived (-1: as soon as possible)
    std::vector<int> ids;
    std::shared_ptr<PacketBudget> packet;
    std::uint64_t ticket = 0;
    std::chrono::steady_clock::time_point since{};  // sent (its job queued)
    std::vector<std::string> paths;                 // the files its job opens, in order
    // Which of them the job is at (set by the job): the one stuck when it times out.
    std::shared_ptr<std::atomic<std::size_t>> opening;
    std::shared_ptr<OpenTrail> trail;  // its progress; finished when its job returns
  };
  struct PlayResume {  // the message being re-run with its streams open
    std::int64_t at = -1;
    double late_ms = 0;  // > 0: the opens finished after `at`; the plays start at once
    double open_ms = 0;
    std::vector<OpenedStream>* streams = nullptr;
  };
  std::map<std::uint64_t, PendingPlay> pending_plays_;  // token → the message
  std::map<int, int> stream_ids_;                       // id → plays of it waiting for streams
  PlayResume* play_resume_ = nullptr;

  Controller& ctl_;
  RouterConfig cfg_;
  const MediaPolicy& media_;
  HandlerTable table_;
  TempoClock tempo_;
  Notifier notifier_;
  CrowdstreamDialect crowdstream_;
  NativeDialect native_;
  // "did you mean" for unknown addresses: at most kSuggestPerSecond a second (~3–10 µs each), so
  // a flood of unknown addresses costs the control thread well under a millisecond a second.
  static constexpr unsigned kSuggestPerSecond = 64;
  std::chrono::steady_clock::time_point suggest_window_{};
  unsigned suggested_in_window_ = 0;
  std::string suggest_address(const std::string& address);
  std::map<int, VoiceHandle> players_;  // buffer id → its player
  // buffer id → the player its waiting player takes over from at its start (replace_player)
  std::map<int, VoiceHandle> outgoing_;
  std::map<int, float> player_rate_;  // each player's own rate, before the tempo ratio
  AddressValidator validator_;
  bool unvalidated_ = false;  // the packet being handled comes from an unvalidated UDP source
  // Bytes answered so far to the packet being handled (see kMaxPacketAnswer).
  std::size_t packet_answer_bytes_ = 0;
  std::shared_ptr<PacketBudget> packet_;  // the packet being handled, or a waiting message's
  std::function<void(std::vector<OscArg>&)> status_extra_;
  std::function<void(std::vector<OscArg>&)> native_status_extra_;
  std::vector<std::pair<std::string, std::uint64_t>> carried_totals_;  // set_carried_totals
  std::vector<WaitingVoice> waiting_voices_;
  bool unquantised_ = false;  // set_unquantised
  struct BeatAway {
    double beats = 0;
    std::chrono::steady_clock::time_point at{};
  };
  std::optional<BeatAway> away_;  // beat_away
  std::function<void()> tick_hook_;
  RouterStats stats_;
  struct BadLog {
    std::uint64_t since_log = 0;
    std::string last_reason, last_address;
    std::chrono::steady_clock::time_point last{};
  };
  std::map<std::string, BadLog> bad_log_;
  base::LogLimiter log_limit_;  // per-kind limits of lines a client can cause (/dummy…)
  std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
  std::int64_t forced_frame_ = -1;  // handle_at()
  // The frames the latest timetags mapped to: a timetag seen again (another bundle for the same
  // instant — a group sent as several packets) maps to the same frame, whatever the stream
  // clock's jitter since. A small ring of (timetag, frame).
  std::array<std::pair<std::uint64_t, std::int64_t>, 64> timetag_frames_{};
  std::size_t timetag_next_ = 0;
  // CPU load window
  std::uint64_t cpu_prev_ns_ = 0;
  std::chrono::steady_clock::time_point cpu_prev_t_ = std::chrono::steady_clock::now();
  double cpu_load_ = 0.0;
};

}  // namespace stemd::control
