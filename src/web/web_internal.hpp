// The web monitor's insides (web_server.cpp, web_session.cpp, web_json.cpp) [network] unless
// a comment says otherwise. Everything a session needs lives in Shared, held by shared_ptr, so
// a handler still queued when the server stops, or work the control thread runs late, never
// reaches freed memory.
#pragma once

#include "web_server.hpp"

#include "base/log_guard.hpp"
#include "control/accept_backoff.hpp"
#include "control/bind_watch.hpp"
#include "control/load_pool.hpp"
#include "control/media_policy.hpp"
#include "control/net.hpp"
#include "control/osc.hpp"
#include "control/stuck_opens.hpp"
#include "stemd/metrics.hpp"
#include "stemd/monitor_tap.hpp"

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>

#include <array>
#include <chrono>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace stemd::web {

namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
namespace net = boost::asio;
using tcp = net::ip::tcp;

using Bytes = std::shared_ptr<const std::string>;

// An open connection (stop() closes them all).
class Session {
 public:
  virtual ~Session() = default;
  virtual void close() = 0;
};

// A WebSocket client that receives what the server broadcasts (audio or events).
class Listener : public Session {
 public:
  virtual void push(Bytes msg) = 0;  // queued; the oldest dropped past the queue's bound
};

struct StaticFile {
  std::string body;
  std::string type;
};

// [control] One page's meters: the peaks the audio thread held since that page last asked.
struct PagePeaks {
  std::array<float, engine::Metrics::kMeters> peak{};
  std::chrono::steady_clock::time_point used;
};

// [control → network] GET /api/status's voices as the control thread took them: numbers, and
// names cut to kMaxNameBytes (a name is a client's choice, up to --max-string bytes, and a
// control byte is 6 in JSON: 4,000 voices of 1,024 were a 25.5 MB answer built on the control
// thread, outside pass 25 N4). The first kMaxVoices by id; `total` counts them all. Formatted
// as JSON on the network thread (status_json), once per snapshot.
struct VoiceRow {
  int id = 0;
  std::string name;                                                  // cut: at most kMaxNameBytes, then "…"
  bool name_cut = false;                                             // the whole name: /stemd/voices or /stemd/list
  double position_s = 0, duration_s = 0, ring_fill = 0, fade_s = 0;  // file seconds; fade: output seconds
  bool streamed = false, loop = false, waiting = false;
  std::uint64_t underruns = 0;
  std::string deck;
  float volume = 0, volume_now = 0;
  std::string state;
};
struct VoicesSnapshot {
  static constexpr std::size_t kMaxVoices = 500;
  static constexpr std::size_t kMaxNameBytes = 64;
  std::vector<VoiceRow> rows;  // by id (a stopping voice before its id's new one)
  std::size_t total = 0;
  std::chrono::nanoseconds built{0};  // what taking it cost the control thread
};
// [control → network] Everything else of a status answer: small, taken on each request.
struct StatusSnapshot {
  std::vector<control::OscArg> status;  // /stemd/status's key, value pairs
  std::shared_ptr<const VoicesSnapshot> voices;
  struct Level {
    float level = 0, level_now = 0;
    double fade_s = 0;
    std::array<float, 3> eq{};
    float peak = 0, rms = 0;
  };
  std::array<Level, engine::Metrics::kMeters> levels{};  // decks A–D, then the master
  bool eq_enabled = true;
  std::string eq_off_reason;                                  // when EQ is off: why (RouterConfig::eq_off_reason)
  std::vector<std::pair<std::uint64_t, std::uint64_t>> hist;  // [upper_ns, count], the non-empty bins
};

struct Shared : std::enable_shared_from_this<Shared> {
  WebConfig cfg;
  control::Controller& ctl;
  control::Router& router;
  WebServer::Post post;
  net::io_context ioc{1};
  tcp::acceptor acceptor{ioc};
  net::steady_timer pump{ioc};
  net::steady_timer renew{ioc};
  control::AllowList allow;
  control::BindWatch bind_watch;  // whether the machine has --http-bind's address [network thread]
  // --http-bind's interface while the machine has none of that name (a link-local address's
  // adapter not up yet): bound once it is there [network thread; main before start()].
  std::string waiting_interface;
  std::string interface_error;  // the last bind error once it was there (said once)
  std::chrono::steady_clock::time_point interface_checked{};
  WebStats stats;
  base::LogLimiter log_limit;  // refusals, time-outs, listeners behind: 5 lines a second per kind [network]
  // accept() out of descriptors: tried again after a back-off, not at once (control::AcceptBackoff).
  net::steady_timer accept_retry{ioc};
  control::AcceptBackoff accept_backoff;
  std::map<std::string, StaticFile> files;  // target → file
  engine::MonitorTap* tap = nullptr;
  std::vector<std::weak_ptr<Listener>> audio, events;
  // [network] The last events broadcast (event_backlog.hpp): a page connecting with ?since=SEQ
  // gets those after SEQ first. Carried across a device hand-over (WebServer::carry_events).
  EventBacklog backlog;
  std::vector<std::weak_ptr<Session>> sessions;  // every open connection (stop() closes them)
  // Open connections per client address (HTTP and WebSocket): one address may hold at most its
  // share of max_clients, so one client cannot lock everyone else out. Counted on accept
  // (network thread); a session's last owner may be a job on the control thread, so the count
  // is given back under the mutex.
  std::mutex per_address_mutex;
  std::map<std::string, std::size_t> per_address;
  std::string audio_header;  // the first text message of /ws/audio
  // POST /api/osc waiting for the control thread: local peer number → completion.
  // `bad`: a value of the wrong JSON type was refused (400, not 422).
  std::map<std::uint64_t, std::function<void(std::string, bool bad)>> pending;
  std::atomic<std::uint64_t> next_local{2};  // 1 is the event subscription
  static constexpr std::uint64_t kEventsPeer = control::kWebMonitorPeer;
  // An event broadcast to /ws/events at most (a /stemd/list answer to a page, 266 KB with long
  // names, was sent whole to every listener: outside pass 24); a longer one is cut (event_json).
  static constexpr std::size_t kMaxEventBytes = 16 * 1024;
  static constexpr std::size_t kStampBytes = 64;  // {"seq":…,"time_ms":…, at most
  bool stopping = false;
  // [control] GET /api/status's voices, kept for pollers asking within kVoicesKeepMs while
  // nothing was sent to the engine or came back from it (Controller::changes()), and in any case
  // for kBuildsApart times what the last one cost (taking it and formatting it): however many
  // pages poll, lists take at most a fifth of the control thread (a 25.5-MB list took 0.7 s,
  // longer than the 100 ms it was kept: every poll built it again; outside pass 25 N4).
  std::shared_ptr<const VoicesSnapshot> voices;
  std::uint64_t voices_changes = ~std::uint64_t{0};
  std::chrono::steady_clock::time_point voices_at{};
  static constexpr int kVoicesKeepMs = 100;
  static constexpr int kBuildsApart = 5;
  // [network] The kept list as JSON, formatted once per snapshot; what that took (the control
  // thread reads it for the next keep time).
  std::shared_ptr<const VoicesSnapshot> voices_formatted_of;
  std::string voices_text;
  std::atomic<std::int64_t> voices_format_ns{0};
  // [network] Bytes of HTTP answers handed to connections and not yet written (a client that
  // does not read holds its answer until the write time-out): at most cfg.max_answer_bytes for
  // one, cfg.max_answers_bytes for all; past either a request is answered 503 (answers_refused).
  // Atomic: a session let go at the server's stop may give its share back on another thread.
  std::atomic<std::size_t> answer_bytes{0};
  // Tests only (WebServer::set_status_hook): called on the thread that formats a status answer.
  std::function<void()> status_hook;
  // GET /api/files: listings run on threads of their own (a slow disk never stalls the network
  // or the control thread), at most kMaxListings at once, each given up after
  // cfg.listing_timeout_s (504). A listing given up on leaves its thread lost until the file
  // system answers (at most kMaxLostListings; beyond, every listing answers busy), and is kept
  // in stuck_listings by the file system it was stuck on (the mount of the path its trail was
  // at: control/stuck_opens.hpp): meanwhile a listing of a folder there answers 504 at once (no
  // thread), and an entry there (a share's mount point, a symlink into it) is listed unreachable
  // without being looked at, so a dead share costs one thread, not one per folder clicked. The
  // pool's counts are read by the control thread (listings_lost).
  control::MediaPolicy media;
  std::shared_ptr<control::LoadPool> lister;
  // [network] adds; the listing threads ask it as they walk (thread-safe).
  std::shared_ptr<control::StuckOpens> stuck_listings = std::make_shared<control::StuckOpens>();
  std::function<void(const std::string&)> looking_at;  // tests only (WebServer::set_listing_hooks)
  static constexpr std::size_t kMaxListings = 2;
  static constexpr std::size_t kMaxLostListings = 4;
  static constexpr std::size_t kMaxListed = 1000;
  // [control] Peaks held per page (GET /api/status?page=ID), at most kMaxPages, the least
  // recently asked dropped first; "" is every request that names no page.
  std::map<std::string, PagePeaks> pages;
  static constexpr std::size_t kMaxPages = 64;
  WebServer::HandshakeHook handshake_hook;  // tests only (WebServer::set_handshake_hook)

  Shared(const WebConfig& c, control::Controller& ct, control::Router& r, const control::MediaPolicy& m,
         WebServer::Post p)
      : cfg(c), ctl(ct), router(r), post(std::move(p)), media(m) {}
  // [control] see WebServer::deliver; `bad`: a JSON type refused (Router::refused_a_json_type).
  void deliver(const control::Outgoing& o, bool bad = false);
  void broadcast_audio(Bytes msg);
  // `json` ({"event":…}) numbered and stamped, sent to every events listener and kept in the
  // backlog (`small`: the same cut to EventBacklog::kMaxBytes when `json` is longer).
  void broadcast_event(const std::string& json, const std::string& small);
  std::size_t live(std::vector<std::weak_ptr<Listener>>& v);  // prunes closed ones
  std::size_t listener_queue_chunks() const;
  // One more connection from `host`, unless it holds its share already (then false).
  bool take_address_slot(const std::string& host, bool loopback);
  void give_address_slot(const std::string& host);
};

// One accepted connection: HTTP/1.1 requests, or the upgrade to a WebSocket.
void start_session(const std::shared_ptr<Shared>& sh, tcp::socket socket, const control::Endpoint& peer);

// web_json.cpp
// {"address":"/x","args":[1,2.5,"s",true,null]} → an OSC message. False with the reason.
bool message_from_json(const std::string& body, control::OscMessage& m, std::string& error);
// A reply packet → {"reply":"/done","address":…,"args":[…]} (or a notification → {"event":…}).
std::string reply_json(const std::vector<std::uint8_t>& packet, bool event);
// The same as an event for /ws/events of at most about `max_bytes`: {"event": ADDRESS, "args"},
// or with `api` a reply as {"event": "api", "reply", "address", "args"[, "reason"]}. The args
// that do not fit are left out, counted in "args_cut"; a long address or reason is cut.
std::string event_json(const std::vector<std::uint8_t>& packet, bool api, std::size_t max_bytes);
// The whole status: /stemd/status's fields, voices, decks and master with meters
// (peaks since `page` last asked), the callback's duration histogram, whether the EQ is applied.
// `take_peaks` false (a HEAD): the page's peaks stay held for its next request.
// Taken on the control thread: small (the voices' snapshot is kept, above), then formatted on
// the network thread (status_json): the control thread never formats what a client sized.
StatusSnapshot status_snapshot(Shared& sh, const std::string& page, bool take_peaks = true);
// [network]
std::string status_json(Shared& sh, const StatusSnapshot& snap);
std::string error_json(const std::string& reason);
// Why a request must be refused as a browser's on another site's behalf (403), or empty: a Host
// that is not this machine's address or name (DNS rebinding: host_problem; `hosts`: --http-host's
// names, normalised by normalise_hosts), or a POST or WebSocket upgrade whose Origin is not the
// Host it was sent to (another page in the visitor's browser: origin_problem).
std::string host_problem(const http::request<http::string_body>& req, const std::vector<std::string>& hosts);
std::string origin_problem(const http::request<http::string_body>& req);
// Why a WebSocket upgrade cannot be accepted (RFC 6455 §4.2.1: no Host, no or a bad
// Sec-WebSocket-Key, no Sec-WebSocket-Version → 400; a version other than 13 → 426), or an empty
// reason. Beast's accept would answer these with a plain-text 400 of its own.
std::pair<http::status, std::string> websocket_problem(const http::request<http::string_body>& req);

// web_files.cpp
// The query of a request target ("/x?a=1&b=%2F" → {a: 1, b: /}), percent-decoded. False with
// the reason when it is malformed (a bad escape, a NUL, a key twice).
bool url_query(std::string_view target, std::map<std::string, std::string>& out, std::string& error);
// What a listing's thread walks with (its job holds them): where it is, which file systems have
// a stuck listing, and the tests' hook (Shared::looking_at).
struct ListingGuard {
  control::OpenTrail& trail;
  control::StuckOpens& stuck;
  const std::function<void(const std::string&)>& looking_at;
};
// [files] GET /api/files?dir=REL: the HTTP status and the JSON answer. With a guard, the folder's
// path is walked first from the root's real path (each step told to the trail; one onto a file
// system with a stuck listing is not taken: 504 busy), and each entry is asked before it is
// looked at: one on such a file system is listed unreachable (ListWatch), never touched.
std::pair<http::status, std::string> files_answer(const control::MediaPolicy& media, const std::string& dir,
                                                  const ListingGuard* guard = nullptr);
// The folder `dir` names, as listings are labelled ("./a//b/" → "a/b"; "" the root).
std::string listing_key(const std::string& dir);
// [network] Why `key`'s listing is not tried (its path, by its text, is on a file system where a
// listing is stuck: 504), or why no listing can start now (every slot taken, or too many
// threads lost: 503); an empty reason when one can.
std::pair<http::status, std::string> listing_refusal(Shared& sh, const std::string& key);
// [network] A listing of `key` given up after the time-out: the 504's reason, logged; `lost`:
// its thread is still inside the file system (then its file system — where `trail` is — is
// held as stuck until the trail finishes).
std::string listing_timed_out(Shared& sh, const std::string& key, const std::shared_ptr<control::OpenTrail>& trail,
                              bool lost, std::chrono::steady_clock::time_point since);

}  // namespace stemd::web
