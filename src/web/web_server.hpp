// The web monitor (issue 16): the page, a JSON API and the live mix over WebSockets, served
// with Boost.Beast on a network thread of its own. Off unless --http-port is given.
//
//   GET  /, /app.js, /worklet.js, /style.css   the page (files of --web-root, read at start)
//   GET  /api/status[?page=ID]                 status as JSON: /stemd/status's fields, voices,
//                                              decks, meters (peaks held per page), the
//                                              callback histogram, the monitor's own counters
//   GET  /api/files?dir=REL                    a directory of --media-root (the file browser)
//   POST /api/osc  {"address":…,"args":[…]}    one OSC message through the Router, answered
//                                              {"reply":"/done"|"/fail","address":…,"args":[…]}
//   GET  /ws/audio                             WebSocket: a text header, then binary chunks
//                                              (8-byte LE stream frame + int16 LE stereo)
//   GET  /ws/events[?since=SEQ]                WebSocket: notifications as JSON text, each
//                                              numbered ("seq"); with `since`, the kept ones
//                                              after SEQ first (event_backlog.hpp)
// HEAD is answered on every GET path as the GET (no body); refusals are JSON {"error": reason}.
//
// Threads: [network] the server's own thread runs every socket; what the Router and the
// Controller own is reached only by posting work to the control thread (`post`), whose
// replies come back through deliver(). [files] two more threads list directories of the media
// root for GET /api/files (a listing past --load-timeout is answered 504 and its thread lost;
// meanwhile listings on its file system answer 504 at once, and an entry there is listed
// unreachable without being looked at).
// [audio] only writes the engine's MonitorTap.
// Budgets: connections (--http-max-clients, one address at most its share), audio listeners (--http-max-listeners),
// request head 8 KiB and body 16 KiB, a per-listener queue of chunks (oldest dropped and counted),
// the bytes of answers not yet written (WebConfig::max_answer_bytes, max_answers_bytes: 503).
#pragma once

#include "control/controller.hpp"
#include "control/file_system.hpp"
#include "control/media_policy.hpp"
#include "control/net.hpp"
#include "control/router.hpp"
#include "web/event_backlog.hpp"
#include "web/web_host.hpp"

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace stemd::web {

// The page: the files of its directory (not below it) whose names end in one of page_types(),
// at most kMaxPageBytes in all, and an index.html.
inline constexpr std::size_t kMaxPageBytes = 4u << 20;
const std::vector<std::string>& page_types();

struct WebConfig {
  std::string bind = "127.0.0.1";
  std::uint16_t port = 0;  // 0: any free port (local_port() tells which)
  std::string allow;       // CIDRs allowed beyond loopback (--allow, as for OSC)
  // --http-host: names beyond the built-in ones (addresses, localhost, the host name alone,
  // NAME.local) that a request's Host may give: this machine's DNS names on the LAN ("pi.lan").
  std::vector<std::string> hosts;
  std::string root;  // the page's directory (for messages; and read here when `page` is empty)
  // The page's files as read (name, bytes): the daemon reads --web-root through its helper
  // process before it opens the server (app::read_page_dir), so a share that stopped answering
  // holds the helper, not the start. Empty: open() reads `root` itself (tests).
  std::vector<std::pair<std::string, std::string>> page;
  std::size_t max_clients = 32;
  std::size_t max_clients_per_address = 0;  // 0: half of max_clients (at least 1); loopback: all
  std::size_t max_listeners = 4;
  std::size_t listener_queue_ms = 500;  // per audio listener, then the oldest is dropped
  std::size_t max_body = 16 * 1024;
  double request_timeout_s = 10.0;
  double listing_timeout_s = 10.0;  // wall seconds a GET /api/files listing may take (--load-timeout)
  int sample_rate = 48000;          // the output's (stream frames are in its frames)
  double subscription_ttl_s = 60.0;
  // A WebSocket (events or audio) from which nothing arrives for this long is closed: it is
  // pinged at half of it, and a browser answers pings by itself (a page open on a quiet daemon
  // stays). A peer gone without a word (a phone out of Wi-Fi range) is noticed within it.
  double ws_idle_timeout_s = 40.0;
  // HTTP answers handed to connections and not yet written (a client that does not read holds
  // its answer until the write time-out, request_timeout_s): one connection's at most, all of
  // them at most; past either a request is answered 503 with the reason (answers_refused).
  // 31 clients that sent GET /api/status and read nothing held 0.46 GB (outside pass 25 N4).
  std::size_t max_answer_bytes = 4u << 20;
  std::size_t max_answers_bytes = 8u << 20;
};

struct WebStats {
  std::atomic<std::uint64_t> connections{0};  // open now (HTTP and WebSocket)
  std::atomic<std::uint64_t> accepted{0};
  std::atomic<std::uint64_t> refused{0};  // outside the allow-list, over max_clients or an address's share
  std::atomic<std::uint64_t> requests{0};
  std::atomic<std::uint64_t> bad_requests{0};
  std::atomic<std::uint64_t> listeners{0};          // /ws/audio open now
  std::atomic<std::uint64_t> listeners_refused{0};  // over max_listeners
  std::atomic<std::uint64_t> audio_messages{0};     // binary messages sent
  std::atomic<std::uint64_t> audio_dropped{0};      // chunks dropped from listeners' queues
  std::atomic<std::uint64_t> event_clients{0};
  std::atomic<std::uint64_t> listeners_held{0};   // entries in the broadcast lists, closed ones not yet pruned
  std::atomic<std::uint64_t> voices_built{0};     // /api/status voice lists built (the rest were reused)
  std::atomic<std::uint64_t> voices_build_ns{0};  // what the last one cost the control thread
  std::atomic<std::uint64_t> answers_refused{0};  // 503: over the answers' byte budget (WebConfig)
  std::atomic<std::uint64_t> ws_timed_out{0};     // WebSockets closed: nothing from them for ws_idle_timeout_s
  std::atomic<std::uint64_t> events_behind{0};    // /ws/events listeners closed: over their queue's bytes
  std::atomic<std::uint64_t> accept_failures{0};  // accept() failed out of descriptors (then backed off)
};

struct Shared;

class WebServer {
 public:
  using Post = std::function<void(std::function<void()>)>;
  // `post` runs work on the control thread (app::Instance::post).
  // `media`: what GET /api/files lists (the daemon's --media-root policy, copied).
  WebServer(const WebConfig& cfg, control::Controller& ctl, control::Router& router, const control::MediaPolicy& media,
            Post post);
  ~WebServer();
  WebServer(const WebServer&) = delete;
  WebServer& operator=(const WebServer&) = delete;

  bool open(std::string& error);  // [main] reads the page, binds; false with the reason
  void start();                   // [main] the network thread starts
  void stop();                    // [main] closes every connection, joins it
  std::uint16_t local_port() const;
  // [main] A new allow-list (SIGHUP), for connections accepted from now on. False with the
  // reason when it does not parse, or is empty while bound beyond loopback; the old one stays.
  bool set_allow(const std::string& cidrs, std::string& error);
  const std::string& allow() const { return allow_text_; }
  std::string describe() const;
  // [control] A reply or notification for an in-process peer (control::Peer::local).
  void deliver(const control::Outgoing& o);
  // The same as a function for app::Instance::set_local_sink (safe to call after stop()).
  std::function<void(const control::Outgoing&)> sink() const;
  const WebStats& stats() const;
  // [main] The events kept (event_backlog.hpp), oldest first: after stop(), for the hand-over.
  std::vector<PastEvent> past_events() const;
  // [main] Before start(): those of the previous image (a hand-over), kept as if broadcast here;
  // the numbers go on from theirs, in its run (a valid token; "" or invalid: this image's own).
  // Those out of order or too long are left out.
  void carry_events(const std::vector<PastEvent>& events, const std::string& run = {});
  // [main] The run's token (EventBacklog::run): for the hand-over.
  std::string events_run() const;
  // [main] The file browser's listings running now, by folder, the lost ones marked ("" when none).
  std::string listings_running() const;
  // [main] Tests only, before start(): no flag, config key or request reaches it. Called on the
  // network thread once a WebSocket's handshake answer (the 101) has been written; the
  // connection goes on when the hook calls `resume` (from any thread). A test holds a connection
  // there, as a busy network thread can, to see what a client that has read the 101 gets.
  using HandshakeHook = std::function<void(std::function<void()> resume)>;
  void set_handshake_hook(HandshakeHook h);
  // [main] Tests only, before start(), as the above: called on the thread that formats a GET
  // /api/status answer as JSON, before it does (a test holds it there to see that the control
  // thread is free meanwhile).
  void set_status_hook(std::function<void()> h);
  // [main] Tests only, before start(), as the above: the mount table the file browser's stuck
  // listings are keyed by, and a call on a listing thread before each path it looks at (a path
  // the walk lstats, the listed folder before it is read, an entry before its lstat) — where a
  // dead share blocks the thread: a test blocks there instead.
  struct ListingHooks {
    std::function<control::MountTable()> mounts;
    std::function<void(const std::string& path)> looking_at;
  };
  void set_listing_hooks(ListingHooks h);

 private:
  std::shared_ptr<Shared> sh_;
  std::thread thread_;
  std::string allow_text_;  // [main] as given
  bool bind_loopback_ = true;
  bool parse_allow(const std::string& cidrs, control::AllowList& out, std::string& error) const;
};

}  // namespace stemd::web
