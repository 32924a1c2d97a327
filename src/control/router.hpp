// The OSC router: every message of both dialects in, exactly one reply out [control].
//
// handle_packet() takes a raw datagram (or TCP frame) from a peer: it is checked structurally
// (osc_packet.hpp), handed to liblo (osc.hpp), and each message inside is routed by address to
// a handler of the crowdstream dialect (crowdstream.cpp, unchanged from the Python server's)
// or the native one (native.cpp, under /stemd/). A handler validates *all* its arguments
// before it changes anything, so a bad message changes no state; it answers
//   /done <address> [values…]          or          /fail <address> [values…] <reason>
// Bad input is counted per kind and logged at most once a second per kind.
// Events from the engine become notifications for subscribers (/stemd/notify 1).
// Thread: the control thread only — the one that owns the Controller.
#pragma once

#include "address_validation.hpp"
#include "controller.hpp"
#include "log_guard.hpp"
#include "load_pool.hpp"
#include "media_policy.hpp"
#include "net.hpp"
#include "osc.hpp"
#include "osc_packet.hpp"

#include <chrono>
#include <array>
#include <deque>
#include <memory>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <unordered_map>
#include <vector>

namespace stemd::control {

struct RouterConfig {
  int sample_rate = 48000;
  std::uint32_t buffer_size = 1024;
  double output_latency_s = 0.0;
  std::string backend = "null";
  PacketLimits limits;
  std::size_t max_sources = 4096;
  std::size_t max_subscribers = 16;
  // A subscription lasts this long (seconds of wall time) unless renewed by /stemd/notify 1.
  double subscription_ttl_s = 60.0;
  // UDP sources exempt from the cookie exchange (their address cannot be forged from outside
  // the host): loopback by default. See address_validation.hpp.
  AllowList cookie_exempt = AllowList::loopback();
  // Bytes of rows in one /stemd/list or /stemd/voices page (the rest: the next page).
  std::size_t page_bytes = 48000;
  double tone_frequency = 440.0;  // /test_tone defaults
  double tone_level = 0.25;       // linear peak (−12 dBFS)
  double tone_seconds = 2.0;
  double crowdstream_volume = 0.8;  // /play_stem's default volume
  double level_ramp_s = 0.02;       // deck/volume changes glide over this
  double bpm = 120.0;               // base tempo (--bpm)
  int meter = 4;                    // beats per bar (--meter)
  bool time_stretch = false;        // --stretch-method time_stretch: tempo without pitch
  bool equal_power = false;         // --crossfade-law equal_power: /crossfade_levels levels l → sin(l·π/2)
  // The movement → tempo table (--movement-thresholds, --movement-tempos): below each threshold
  // its tempo; above the last, from tempos[3] rising linearly to tempos[4] (see movement_max).
  double movement_thresholds[3] = {0.02, 0.05, 0.10};
  double movement_tempos[5] = {105, 110, 115, 118, 130};
  // Movement above 1 is divided by this before clamping to 0–1 (the old server's
  // movement_max_value, --bpm-config); above the last threshold the tempo rises over a span of
  // movement of 0.6 − that threshold (0.5 by default), as the old server's did.
  double movement_max = 0.6;
  // How the movement-driven tempo glides toward its target: time constants in seconds of output
  // (wall-clock) time, rising and falling. stemd's own default 0.3 / 30; crowdstream mode (any
  // flag only the old server had) 0.279 / 69.7, what the old server did at its 1024-frame chunk.
  double tempo_rise_s = 0.3;
  double tempo_fall_s = 30.0;
  // --disable-filters: /deck_eq, /deck_eq_all and /deck_filter are checked, answered /done and
  // change nothing (the old server's production mode).
  bool eq_enabled = true;
  // --disable-time-stretch with --stretch-method pyrubberband|audiotsm: the tempo clock moves
  // but no player's rate or stretch follows it (the old server then played at rate 1).
  bool tempo_moves_players = true;
  // OSC loads off the control thread (enable_async_loads): opener threads, and how many loads
  // may be queued or running at once before a load answers "busy".
  std::size_t load_threads = 2;
  std::size_t max_loads_in_flight = 16;
};

// Where a reply goes: a UDP peer, or a TCP connection (by fd).
struct Peer {
  Endpoint endpoint;
  int tcp_fd = -1;
  bool operator==(const Peer& o) const { return tcp_fd == o.tcp_fd && (tcp_fd >= 0 || endpoint == o.endpoint); }
};

struct Outgoing {
  Peer to;
  std::vector<std::uint8_t> data;
};

// Counters of what came in, for status and the health line.
struct RouterStats {
  std::uint64_t packets = 0;
  std::uint64_t messages = 0;
  std::uint64_t done = 0;
  std::uint64_t failed = 0;
  std::uint64_t replies_withheld = 0;        // to unvalidated UDP sources: over 3× their request
  std::uint64_t cookies_sent = 0;            // /stemd/cookie in their place
  std::map<std::string, std::uint64_t> bad;  // kind → count
  // Messages the old server ignored and stemd accepts as no-ops (address → count): detector
  // pose frames, sc-engine example addresses, /stem_volume of an id not loaded, EQ with
  // --disable-filters, /memory_cleanup.
  std::map<std::string, std::uint64_t> ignored;
};

class Router {
 public:
  struct Reply {
    bool ok = true;
    std::vector<OscArg> values;
    std::string kind;  // of failure: arguments, range, unknown_id, unknown_address, malformed, busy, file,
                       // path, not_yet, limit
    std::string reason;
  };

  Router(Controller& ctl, const RouterConfig& cfg, const MediaPolicy& media);
  ~Router();

  // One packet from `from`; replies (one per message, or one /fail for a bad packet) appended.
  // From a UDP source that is neither exempt nor validated, replies adding up to more than 3×
  // the packet's size are replaced by one `/stemd/cookie <token>` (or nothing, when even that
  // is over 3×).
  void handle_packet(const std::uint8_t* data, std::size_t size, const Peer& from, std::vector<Outgoing>& out);
  // One message; returns the reply message (tests use this directly). Loads run synchronously
  // here, on the caller's thread, whatever enable_async_loads() said.
  OscMessage handle(const OscMessage& m, const Peer& from);

  // From now on, loads that arrive through handle_packet() run on opener threads (load_pool.hpp)
  // and are answered when done: poll_loads() (the server loop) installs what finished, answers
  // it and runs the messages that waited behind it, and take_replies() hands those answers out.
  // A message touching an id (or a crowdstream deck's base id) whose load is in flight waits
  // behind that load, in arrival order; anything else is answered at once. `wake` is called
  // from an opener thread when a load finished.
  void enable_async_loads(std::function<void()> wake);
  void poll_loads();
  void take_replies(std::vector<Outgoing>& out);
  std::size_t loads_in_flight() const { return pending_.size(); }
  std::size_t messages_waiting() const { return deferred_.size(); }
  struct LoadDone;         // a finished load (router_loads.cpp)
  struct LoadCompletions;  // finished loads, shared with the opener threads
  // One message taking effect at engine frame `frame`, as if in a bundle timed for it
  // (--script: a scripted session renders deterministically).
  OscMessage handle_at(const OscMessage& m, std::int64_t frame);

  // Engine events → notifications for subscribers.
  void on_event(const engine::Event& e, const VoiceInfo& v);
  void notify_device(const std::string& what, const std::vector<OscArg>& values);
  void take_notifications(std::vector<Outgoing>& out);
  void drop_subscriber(const Peer& p);
  std::size_t subscribers() const { return subscribers_.size(); }
  std::vector<Peer> subscriber_peers() const;
  // Drops subscriptions not renewed within --subscription-ttl (called by tick()).
  void expire_subscribers(std::chrono::steady_clock::time_point now);
  // Whether replies to `p` are limited (a UDP source neither exempt nor validated now).
  bool unvalidated(const Peer& p, std::chrono::steady_clock::time_point now) const;
  AddressValidator& validator() { return validator_; }

  // Extra status fields from the server (sockets, drops…), appended to every status reply.
  void set_status_extra(std::function<void(std::vector<OscArg>&)> f) { status_extra_ = std::move(f); }
  std::vector<OscArg> status_fields();

  const RouterStats& stats() const { return stats_; }
  // Logs a summary of bad input at most once a second per kind (call from the loop).
  void log_bad_input();

  // The voice playing a buffer id (crowdstream's one player per id), if any.
  VoiceHandle player(int id) const;

  // Called by the server loop every pass: the clock printout (/print_clock).
  void tick();
  // A player started outside OSC (the --a/--b/--c/--d flags) becomes its id's player.
  void adopt_player(int id, VoiceHandle h) { players_[id] = h; }

  // What a state file keeps of the router's own bookkeeping (src/app/state.cpp) [control].
  const std::map<int, VoiceHandle>& players() const { return players_; }
  float player_rate(int id) const {  // the player's own rate, before the tempo ratio
    auto it = player_rate_.find(id);
    return it == player_rate_.end() ? 1.0f : it->second;
  }
  double bpm() const { return bpm_; }
  int meter() const { return meter_; }
  double quantum_beats() const { return quantum_beats_; }
  const RouterConfig& config() const { return cfg_; }
  // Called first thing in every tick() — on the control thread, every server pass.
  void set_tick_hook(std::function<void()> f) { tick_hook_ = std::move(f); }

 private:
  using Handler = Reply (Router::*)(const OscMessage&, const Peer&);
  void register_crowdstream();
  void register_native();
  void route_packet(const std::uint8_t* data, std::size_t size, const Peer& from, std::vector<Outgoing>& out);
  Reply fail(std::string kind, std::string reason, std::vector<OscArg> values = {});
  static Reply done(std::vector<OscArg> values = {});
  OscMessage make_reply(const std::string& address, const Reply& r) const;
  void count_bad(const std::string& kind, const std::string& reason, const std::string& address);

  // shared helpers
  bool resolve_path(const std::string& requested, std::string& resolved, std::string& error) const;
  Reply load(int id, const std::string& path, const std::string& name);
  bool playing(int id, VoiceHandle& h, Reply& r);
  Reply start_player(int id, const PlayOptions& opts);
  int deck_of_id(int id) const;
  static bool parse_deck(const std::string& name, int& deck);
  // A position in a file is in the FILE's own seconds (file frames / the file's rate), whatever
  // the output rate; durations of wall-clock things (fades, ramps, start_at) are output seconds.
  int file_rate(const io::Source& src) const {
    return src.info.sample_rate > 0 ? src.info.sample_rate : cfg_.sample_rate;
  }
  double file_seconds(std::int64_t file_frames, int rate) const {
    return static_cast<double>(file_frames) / (rate > 0 ? rate : cfg_.sample_rate);
  }
  // The frame a relative start time means: `seconds` after this message's time (its bundle's
  // timetag, or now plus a period's margin so every command of a group is queued in time).
  std::int64_t frame_after(double seconds) const;
  Reply ensure_loaded(int id, const std::string& path);
  // The test tone (/test_tone, /stemd/tone): `level` linear peak, `seconds` output seconds;
  // every argument range-checked here (limits.hpp), then an oscillator in the engine.
  Reply test_tone(double freq, double level, double seconds);
  double tempo_ratio() const { return bpm_ / cfg_.bpm; }
  double beats_now() const;
  int apply_tempo(double bpm, double glide_s);

  // Async loads (router_loads.cpp)
  struct PendingLoad {
    std::uint64_t token = 0;
    OscMessage message;
    Peer from;
    std::int64_t arrival_base = -1;
  };
  struct Deferred {
    OscMessage message;
    Peer from;
    std::vector<int> slots;
    bool all = false;  // waits for every load in flight (/mixer_cleanup)
    std::int64_t arrival_base = -1;
  };
  // The ids a message touches (for ordering behind loads in flight); all = every id.
  void touched_slots(const OscMessage& m, std::vector<int>& slots, bool& all) const;
  bool blocked(const std::vector<int>& slots, bool all) const;
  void route_async(const OscMessage& m, const Peer& from, std::vector<Outgoing>& out);
  void drain_deferred();
  // load()/ensure_loaded(): open and load `path` into `id` — synchronously, from the result of a
  // finished job when the message is being resumed, or by starting a job (reply deferred).
  Reply load_file(int id, const std::string& path, const std::string& name, bool ensure);
  std::int64_t arrival_base() const;
  std::unique_ptr<LoadPool> pool_;
  std::shared_ptr<LoadCompletions> completions_;
  std::map<int, PendingLoad> pending_;  // id → its load in flight
  std::deque<Deferred> deferred_;       // messages waiting behind a load, in arrival order
  std::vector<Outgoing> replies_;       // answers of resumed messages, for take_replies()
  std::uint64_t next_token_ = 1;
  bool async_now_ = false;       // the message being handled may start a job
  bool reply_deferred_ = false;  // …and did: no reply now
  LoadDone* resume_ = nullptr;   // the finished job the message being re-run consumes
  const OscMessage* current_message_ = nullptr;
  const Peer* current_from_ = nullptr;
  std::int64_t arrival_base_ = -1;  // a resumed immediate message's frame_after() origin

  // crowdstream handlers (crowdstream.cpp)
  Reply cs_load_buffer(const OscMessage&, const Peer&);
  Reply cs_play_stem(const OscMessage&, const Peer&);
  Reply cs_play_stem_section(const OscMessage&, const Peer&);
  Reply cs_stop_stem(const OscMessage&, const Peer&);
  Reply cs_stem_volume(const OscMessage&, const Peer&);
  Reply cs_crossfade_levels(const OscMessage&, const Peer&);
  Reply cs_deck_levels(const OscMessage&, const Peer&);
  Reply cs_get_status(const OscMessage&, const Peer&);
  Reply cs_test_tone(const OscMessage&, const Peer&);
  Reply cs_mixer_cleanup(const OscMessage&, const Peer&);
  Reply cs_deck_eq(const OscMessage&, const Peer&);
  Reply cs_deck_eq_all(const OscMessage&, const Peer&);
  Reply cs_deck_filter(const OscMessage&, const Peer&);
  Reply cs_set_tempo(const OscMessage&, const Peer&);
  Reply cs_total_movement(const OscMessage&, const Peer&);
  Reply cs_set_meter(const OscMessage&, const Peer&);
  Reply cs_print_clock(const OscMessage&, const Peer&);
  Reply cs_reset(const OscMessage&, const Peer&);
  Reply cs_play(const OscMessage&, const Peer&);
  Reply cs_cue(const OscMessage&, const Peer&);
  Reply cs_start_group(const OscMessage&, const Peer&);
  Reply cs_fade(const OscMessage&, const Peer&);
  Reply cs_schedule_c_at(const OscMessage&, const Peer&);
  Reply cs_dummy(const OscMessage&, const Peer&);
  Reply cs_dance(const OscMessage&, const Peer&);
  Reply cs_ignored(const OscMessage&, const Peer&);
  // A message the old server ignored: counted, logged at debug, answered /done.
  Reply ignored(const OscMessage& m, const char* why);

 public:
  // The movement tempo's glide over `dt` seconds: toward `target` with time constant `rise_s`
  // when rising, `fall_s` when falling (exact exponential: independent of the step size).
  static double glide_tempo(double current, double target, double dt, double rise_s, double fall_s);

 private:
  // native handlers (native.cpp)
  Reply n_unload(const OscMessage&, const Peer&);
  Reply n_play(const OscMessage&, const Peer&);
  Reply n_play_region(const OscMessage&, const Peer&);
  Reply n_stop(const OscMessage&, const Peer&);
  Reply n_pause(const OscMessage&, const Peer&);
  Reply n_resume(const OscMessage&, const Peer&);
  Reply pause_or_resume(const OscMessage& m, bool pause);
  Reply n_seek(const OscMessage&, const Peer&);
  Reply n_volume(const OscMessage&, const Peer&);
  Reply n_fade(const OscMessage&, const Peer&);
  Reply n_pan(const OscMessage&, const Peer&);
  Reply n_rate(const OscMessage&, const Peer&);
  Reply n_master(const OscMessage&, const Peer&);
  Reply n_deck(const OscMessage&, const Peer&);
  Reply n_list(const OscMessage&, const Peer&);
  Reply n_voices(const OscMessage&, const Peer&);
  Reply n_status(const OscMessage&, const Peer&);
  Reply n_notify(const OscMessage&, const Peer&);
  Reply n_ping(const OscMessage&, const Peer&);
  Reply n_cookie(const OscMessage&, const Peer&);
  Reply n_tone(const OscMessage&, const Peer&);
  Reply n_stretch(const OscMessage&, const Peer&);
  Reply n_quantize(const OscMessage&, const Peer&);
  Reply n_clear_schedule(const OscMessage&, const Peer&);
  // Rounds a start frame up to the next quantum of the beat clock (/stemd/quantize), if set.
  std::int64_t quantized(std::int64_t frame) const;

  Controller& ctl_;
  RouterConfig cfg_;
  const MediaPolicy& media_;
  OscDispatcher dispatcher_;
  std::unordered_map<std::string, Handler> handlers_;
  // "did you mean" for unknown addresses: at most kSuggestPerSecond a second (~3–10 µs each), so
  // a flood of unknown addresses costs the control thread well under a millisecond a second.
  static constexpr unsigned kSuggestPerSecond = 64;
  std::chrono::steady_clock::time_point suggest_window_{};
  unsigned suggested_in_window_ = 0;
  std::string suggest_address(const std::string& address);
  std::map<int, VoiceHandle> players_;  // buffer id → its player
  struct Subscriber {
    Peer peer;
    std::chrono::steady_clock::time_point expires;
  };
  std::vector<Subscriber> subscribers_;
  AddressValidator validator_;
  bool unvalidated_ = false;  // the packet being handled comes from an unvalidated UDP source
  // Bytes answered so far to the packet being handled: big answers (pages) stop at
  // kMaxPacketAnswer, so one datagram cannot keep the control thread building 150 MB of lists.
  std::size_t packet_answer_bytes_ = 0;
  static constexpr std::size_t kMaxPacketAnswer = 1 << 20;
  std::vector<Outgoing> notifications_;
  std::function<void(std::vector<OscArg>&)> status_extra_;
  std::function<void()> tick_hook_;
  RouterStats stats_;
  struct BadLog {
    std::uint64_t since_log = 0;
    std::string last_reason, last_address;
    std::chrono::steady_clock::time_point last{};
  };
  std::map<std::string, BadLog> bad_log_;
  LogLimiter log_limit_;  // per-kind limits of lines a client can cause (/dummy…)
  std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
  std::int64_t t0_frame_ = 0;  // /reset's timeline origin
  int meter_ = 4;
  double bpm_ = 120.0;                  // the tempo clock
  std::int64_t beat_origin_frame_ = 0;  // beats_now() = origin beats + tempo × time since origin frame
  double beat_origin_beats_ = 0;
  std::map<int, float> player_rate_;  // each player's own rate, before the tempo ratio
  bool movement_active_ = false;      // /dance/total_movement drives the tempo
  double movement_target_ = 0, movement_bpm_ = 0;
  std::chrono::steady_clock::time_point last_tick_ = std::chrono::steady_clock::now();
  std::chrono::steady_clock::time_point last_tempo_apply_{};
  bool print_clock_ = false;
  double quantum_beats_ = 0;  // /stemd/quantize: plays start on the next multiple of this many beats
  std::int64_t last_beat_printed_ = -1;
  std::int64_t message_frame_ = -1;     // the current message's bundle time as a frame, or -1
  std::int64_t forced_frame_ = -1;      // handle_at()
  bool warned_start_past_end_ = false;  // /play_stem start ≥ 1: warned once
  // The frames the latest timetags mapped to: a timetag seen again (another bundle for the same
  // instant — a group sent as several packets) maps to the same frame, whatever the stream
  // clock's jitter since. A small ring of (timetag, frame).
  std::array<std::pair<std::uint64_t, std::int64_t>, 64> timetag_frames_{};
  std::size_t timetag_next_ = 0;
  struct Armed {
    bool armed = false;
    int id = 0;
    std::int64_t start_frame = 0;
    std::uint64_t load = 0;  // which load was cued (Controller::load_serial): a reload disarms
  };
  Armed armed_[engine::kNumDecks];
  // CPU load window
  std::uint64_t cpu_prev_ns_ = 0;
  std::chrono::steady_clock::time_point cpu_prev_t_ = std::chrono::steady_clock::now();
  double cpu_load_ = 0.0;
};

}  // namespace stemd::control
