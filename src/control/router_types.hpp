// What the router's parts share: its configuration, peers and counters, the typed reply of a
// handler, the call it answers (with its scheduled frame) and the table of handlers [control].
#pragma once

#include "address_validation.hpp"
#include "net.hpp"
#include "osc.hpp"
#include "osc_packet.hpp"

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace stemd::control {

struct RouterConfig {
  int sample_rate = 48000;
  std::uint32_t buffer_size = 1024;
  double output_latency_s = 0.0;
  std::string backend = "null";
  std::string version = "unknown";  // "stemd 0.1.0 (git e156c9816722)": the status's `version`
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
  bool bpm_set = false;             // --bpm given (flag or config file): a tempo is in use from the start
  int meter = 4;                    // beats per bar (--meter)
  double quantum = 0;               // --quantize: /stemd/quantize's beats at start (0 = off)
  // --link: join the Ableton Link session (link_session.hpp): the tempo clock follows it,
  // /set_tempo sets it, quantised starts land on its beats. (Link's start/stop sync is not used.)
  bool link = false;
  bool time_stretch = false;  // --stretch-method time_stretch: tempo without pitch
  bool equal_power = false;   // --crossfade-law equal_power: /crossfade_levels levels l → sin(l·π/2)
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
  // Why EQ is off, as said in the log and the web page: "--disable-filters", or crowdstream mode's
  // default (--port without a filter flag, as the old server ran).
  std::string eq_off_reason = "--disable-filters";
  // --disable-time-stretch with --stretch-method pyrubberband|audiotsm: the tempo clock moves
  // but no player's rate or stretch follows it (the old server then played at rate 1).
  bool tempo_moves_players = true;
  // OSC loads off the control thread (enable_async_loads): opener threads, and how many loads
  // may be queued or running at once before a load answers "busy".
  std::size_t load_threads = 2;
  std::size_t max_loads_in_flight = 16;
  // --load-timeout: a load (or a play's stream open) that the file system has not answered for
  // this many seconds (wall clock) — counted from when its job started on an opener thread, then
  // from each step of it that returned — answers /fail "timed out"; its opener thread is abandoned
  // (load_pool.hpp). One that keeps being answered, or waits behind such, is given up
  // load_bound_factor × this after it was sent (router_expire.cpp; no flag: tests set it lower).
  double load_timeout_s = 10.0;
  double load_bound_factor = 12.0;
};

// Where a reply goes: a UDP peer, a TCP connection (by fd), or an in-process client (local ≠ 0:
// the web API's request or event subscription of that number; endpoint = its HTTP client, so
// the media policy sees where it came from). The server hands replies to local peers to its
// local sink (OscServer::set_local_sink) instead of a socket.
struct Peer {
  Endpoint endpoint;
  int tcp_fd = -1;
  std::uint64_t local = 0;
  bool typed = false;  // a JSON client (the web API): its messages are OscMessage::typed
  bool operator==(const Peer& o) const {
    return local == o.local && tcp_fd == o.tcp_fd && (tcp_fd >= 0 || local != 0 || endpoint == o.endpoint);
  }
};

// An in-process peer for the daemon's own messages that retry something on their own (the state
// file's sources whose files were missing, tried again until they are there): their refusals are
// neither counted as clients' bad input nor logged, and their replies go nowhere.
constexpr std::uint64_t kQuietPeer = std::uint64_t{1} << 62;
// The web monitor's own event subscription (web_server.cpp): counted apart in the status, so that
// `event subscribers 1` with no client connected is not read as one (outside pass 26, user L7).
constexpr std::uint64_t kWebMonitorPeer = 1;

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
  std::uint64_t queries_repeated = 0;        // a packet's repeats of a status query: its answer copied
  std::uint64_t timed = 0;                   // messages of bundles with a time (on time or late)
  std::map<std::string, std::uint64_t> bad;  // kind → count
  // Messages the old server ignored and stemd accepts as no-ops (address → count): detector
  // pose frames, sc-engine example addresses, /stem_volume of an id not loaded, EQ with
  // --disable-filters, /memory_cleanup.
  std::map<std::string, std::uint64_t> ignored;
};

// Why a message was refused. The reply carries it as text (to_string) only for the log and
// the counters (RouterStats::bad); code decides on the kind, never on the reason's text.
enum class ErrorKind {
  kArguments,       // wrong count or type of arguments
  kRange,           // a value outside its range (limits.hpp)
  kUnknownId,       // no such buffer id, deck not cued, not playing
  kUnknownAddress,  // no handler
  kMalformed,       // not OSC
  kBusy,            // a resource that frees itself (queue, schedule, resamplers): try again
  kFile,            // the file cannot be used (not regular, decode, budget)
  kPath,            // the path is refused by the media policy or cannot be opened
  kLimit,           // a client budget (--max-sources, --max-subscribers, answer bytes)
  kLate,            // ran, but after its time
  kCookie,          // the source must prove its address first
  kGivenUp,         // a load or a play's stream open given up under --load-timeout (router_expire.cpp):
                    // its file system did not answer in time (it may answer later)
  kDeferred,        // internal: a load is in flight, the answer comes later (never sent)
};

const char* to_string(ErrorKind k);

// A handler's answer: /done <address> values… or /fail <address> values… <reason>.
struct Reply {
  bool ok = true;
  std::vector<OscArg> values;
  ErrorKind kind = ErrorKind::kArguments;  // when !ok
  std::string reason;                      // when !ok: what the client reads
  // A refusal that is no client's mistake (stopping a loaded id that is not playing): answered
  // /fail as any, but neither counted as bad input nor logged as a warning.
  bool quiet = false;

  static Reply done(std::vector<OscArg> values = {}) {
    Reply r;
    r.values = std::move(values);
    return r;
  }
  static Reply fail(ErrorKind kind, std::string reason, std::vector<OscArg> values = {}) {
    Reply r;
    r.ok = false;
    r.kind = kind;
    r.reason = std::move(reason);
    r.values = std::move(values);
    return r;
  }
};

// The outcome of a message answered later — once the load or the play's stream open it started,
// or waited behind, is done or has timed out (Router::poll_loads) — typed, for the code in the
// process that sent it (the state file's restore and its retries: Router::set_outcome_observer),
// so that nobody parses the serialised answer. `reply` is what the answer said (/done or /fail
// with its kind and reason).
struct Outcome {
  std::string address;  // the message's
  int id = 0;           // the id it names first, when has_id
  bool has_id = false;
  Peer from;  // who sent it
  Reply reply;
};

// One message being handled. `at` is the engine frame (output frames) it takes effect at: its
// bundle's timetag (or handle_at()'s frame), or -1 = as soon as possible. `arrival` is, for a
// message resumed after a load it waited for, the frame "now" meant when it arrived (relative
// start times count from there), else -1. Handlers send their engine commands at `at` (or at
// a frame they compute from it), explicitly.
struct Call {
  const OscMessage& m;
  const Peer& from;
  std::int64_t at = -1;
  std::int64_t arrival = -1;
};

// One address of a dialect: its argument count (checked by the table, before the handler
// runs), its handler, and when it acts.
struct HandlerSpec {
  static constexpr std::size_t kAny = static_cast<std::size_t>(-1);
  // kOnArrival: it acts on arrival whatever its bundle's time — loads and unloads (README: a
  // source must be ready before its timed play) and what only asks or answers. Such a message in
  // a late bundle ran as it would have on time: answered /done, not "late by" (the soak's oracle
  // asks this too); nor is it refused for a bundle more than a day ahead.
  enum class Timing { kTimed, kOnArrival };
  std::size_t min_args = 0;
  std::size_t max_args = kAny;  // kAny: the handler reads what it gets
  std::function<Reply(const Call&)> fn;
  Timing timing = Timing::kTimed;
};

// Address → handler, for both dialects. dispatch() checks the argument count and calls the
// handler; an unknown address is not an error here (the router decides what to answer).
class HandlerTable {
 public:
  void add(const std::string& address, std::size_t min_args, std::size_t max_args, std::function<Reply(const Call&)> fn,
           HandlerSpec::Timing timing = HandlerSpec::Timing::kTimed);
  // Every address starting with `prefix` that has no handler of its own (the movement
  // detector's /dance/…), any arguments.
  void add_prefix(const std::string& prefix, std::function<Reply(const Call&)> fn);
  const HandlerSpec* find(const std::string& address) const;
  // The arity check, then the handler. The spec must come from find().
  static Reply dispatch(const HandlerSpec& spec, const Call& c);
  // The address has a handler that acts on arrival (HandlerSpec::Timing::kOnArrival).
  bool acts_on_arrival(const std::string& address) const;
  const std::unordered_map<std::string, HandlerSpec>& all() const { return map_; }

 private:
  std::unordered_map<std::string, HandlerSpec> map_;
  std::vector<std::pair<std::string, HandlerSpec>> prefixes_;
};

}  // namespace stemd::control
