// One connection of the web monitor [network]: HTTP/1.1 requests (Boost.Beast parses them, with
// the head and body limits), or, after an upgrade, a WebSocket listener that gets the audio or
// the events through a bounded queue: a client that stops reading loses the oldest messages
// (counted), never holds more than the queue, and slows no one else. An events listener more
// than kMaxEventQueueBytes behind is closed; a WebSocket that sends nothing, not even the answer
// to a ping, for WebConfig::ws_idle_timeout_s is closed (a peer gone without a word).
#include "web_internal.hpp"

#include "base/log_guard.hpp"

#include <spdlog/spdlog.h>

#include <chrono>

namespace stemd::web {

namespace {

constexpr std::uint32_t kHeaderLimit = 8 * 1024;
constexpr int kSendBuffer = 32 * 1024;  // a WebSocket's kernel send buffer (the kernel doubles it)
// An HTTP connection's kernel send buffer: fixed, as a WebSocket's, not autotuned to 4 MB (tcp_wmem's
// maximum: 30 clients that do not read held 120 MB of kernel memory that way); what does not fit
// waits in its answer, charged to the answers' budget (WebConfig::max_answers_bytes). 128 KiB
// (doubled) carries a status answer to a phone 50 ms away at ≈ 2.6 MB/s.
constexpr int kHttpSendBuffer = 64 * 1024;
// An events listener's queue, in bytes (and at most kEventQueueMessages, the oldest dropped):
// past it the listener is that far behind and is closed (a page reconnects). An audio
// listener's queue is bounded in time (WebConfig::listener_queue_ms) of messages of at most
// kMaxChunksPerMessage chunks: ≈ 0.8 MB at most.
constexpr std::size_t kMaxEventQueueBytes = 1 << 20;
constexpr std::size_t kEventQueueMessages = 256;

// A WebSocket that only sends: what the server broadcasts, queued up to `cap` messages.
class WsListener : public Listener, public std::enable_shared_from_this<WsListener> {
 public:
  WsListener(std::shared_ptr<Shared> sh, tcp::socket&& s, std::string host, bool audio, std::size_t cap)
      : sh_(std::move(sh)), ws_(std::move(s)), host_(std::move(host)), audio_(audio), cap_(cap) {}
  ~WsListener() override {
    sh_->stats.connections.fetch_sub(1);
    sh_->give_address_slot(host_);
    (audio_ ? sh_->stats.listeners : sh_->stats.event_clients).fetch_sub(1);
  }

  // `since`: the events after this number (of run `run`, when given) are sent first (an events
  // listener that asked: ?since=SEQ&run=RUN; -1 none).
  void accept(http::request<http::string_body> req, std::string first, std::int64_t since = -1,
              const std::string& run = {}) {
    (audio_ ? sh_->stats.listeners : sh_->stats.event_clients).fetch_add(1);
    // Pinged after half the idle time-out without a frame from the client, closed after the whole
    // (Beast: any frame read, a pong included, restarts it). Before, an idle events socket had no
    // time-out at all: a phone gone out of range held its slot until restart (outside pass 24).
    auto t = websocket::stream_base::timeout::suggested(beast::role_type::server);
    t.idle_timeout = std::chrono::duration_cast<std::chrono::steady_clock::duration>(
        std::chrono::duration<double>(sh_->cfg.ws_idle_timeout_s));
    t.keep_alive_pings = true;
    ws_.set_option(t);
    ws_.read_message_max(1024);
    ws_.auto_fragment(false);  // one frame per message: a chunk's stamp heads its frame
    // A fixed kernel buffer (no autotuning to megabytes, 4 MB each at tcp_wmem's maximum): a
    // stalled reader holds ≈ 0.3 s of audio in the kernel, then its queue drops the oldest.
    beast::error_code ec;
    beast::get_lowest_layer(ws_).socket().set_option(net::socket_base::send_buffer_size(kSendBuffer), ec);
    // An event listener joins before its handshake is answered, so every event broadcast once the
    // client can have read the 101 is queued for it (and written once the handshake is done).
    // Joining in the completion handler lost the events broadcast between the 101's write and
    // the handler's turn on this thread, though the client had read the 101 and acted on it.
    if (!audio_) {
      open_ = true;
      sh_->live(sh_->events);  // the closed ones go first: a quiet daemon broadcasts nothing that prunes them
      sh_->events.push_back(shared_from_this());
      sh_->stats.listeners_held.store(sh_->events.size() + sh_->audio.size());
      if (since >= 0) {  // what it missed, first (and before any event broadcast from now on)
        for (PastEvent& e : sh_->backlog.after(static_cast<std::uint64_t>(since), run))
          push(std::make_shared<const std::string>(std::move(e.json)));
      }
    }
    ws_.async_accept(req, [self = shared_from_this(), first = std::move(first)](beast::error_code ec) {
      if (ec) return;
      const auto& hook = self->sh_->handshake_hook;
      if (!hook) return self->accepted(first);
      hook([self, first] { net::post(self->sh_->ioc, [self, first] { self->accepted(first); }); });
    });
  }

  // The handshake is answered (the 101 written): what was queued meanwhile goes out.
  void accepted(const std::string& first) {
    open_ = accepted_ = true;
    if (!first.empty()) {
      send(std::make_shared<const std::string>(first), false);
    } else if (!queue_.empty()) {
      write_next();
    }
    if (audio_) sh_->audio.push_back(shared_from_this());
    sh_->sessions.push_back(shared_from_this());
    if (audio_ && sh_->tap) sh_->tap->set_enabled(true);
    read();
  }

  void push(Bytes msg) override {
    if (!open_) return;
    if (!audio_ && queued_bytes_ + msg->size() > kMaxEventQueueBytes) return behind(msg->size());
    if (queue_.size() >= cap_) {
      queued_bytes_ -= queue_.front()->size();
      queue_.pop_front();
      if (audio_) sh_->stats.audio_dropped.fetch_add(1, std::memory_order_relaxed);
    }
    queued_bytes_ += msg->size();
    queue_.push_back(std::move(msg));
    if (!writing_ && accepted_) write_next();
  }
  void close() override {
    if (!open_) return;
    open_ = false;
    queue_.clear();  // what it held is let go now, not when its last handler has run
    queued_bytes_ = 0;
    beast::error_code ec;
    beast::get_lowest_layer(ws_).socket().close(ec);
  }

 private:
  void send(Bytes msg, bool binary) {
    writing_ = true;
    inflight_ = std::move(msg);
    ws_.binary(binary);
    ws_.async_write(net::buffer(*inflight_), [self = shared_from_this()](beast::error_code ec, std::size_t) {
      self->writing_ = false;
      self->inflight_.reset();
      if (ec) {
        self->close();
        return;
      }
      if (self->audio_) self->sh_->stats.audio_messages.fetch_add(1, std::memory_order_relaxed);
      if (!self->queue_.empty()) self->write_next();
    });
  }
  void write_next() {
    Bytes m = std::move(queue_.front());
    queue_.pop_front();
    queued_bytes_ -= m->size();
    send(std::move(m), audio_);
  }
  // An events listener a megabyte behind (one that stopped reading, with large `api` events
  // coming: 70 MB were held for one before, outside the memory budget; outside pass 24): closed,
  // said once for it. A page reconnects, its log missing what came meanwhile.
  void behind(std::size_t more) {
    sh_->stats.events_behind.fetch_add(1, std::memory_order_relaxed);
    std::uint64_t skipped = 0;
    if (sh_->log_limit.allow("events behind", skipped)) {
      spdlog::warn(
          "web monitor: closing the /ws/events listener at {}: it is too far behind ({} events, {} KiB waiting, {} "
          "more bytes coming; at most {} KiB): it reads slower than events come, or stopped reading{}",
          host_, queue_.size(), queued_bytes_ / 1024, more, kMaxEventQueueBytes / 1024, base::suppressed_note(skipped));
    }
    close();
  }
  // What a client sends is read and ignored (so pings and the close handshake are answered).
  // Nothing for the idle time-out, not even a pong: the peer is gone (or never reads), closed.
  void read() {
    ws_.async_read(in_, [self = shared_from_this()](beast::error_code ec, std::size_t) {
      if (ec) {
        if (ec == beast::error::timeout && self->open_) self->timed_out();
        self->close();
        return;
      }
      self->in_.consume(self->in_.size());
      self->read();
    });
  }

  void timed_out() {
    sh_->stats.ws_timed_out.fetch_add(1, std::memory_order_relaxed);
    std::uint64_t skipped = 0;
    if (sh_->log_limit.allow_info("websocket timed out", skipped)) {
      spdlog::info(
          "web monitor: closing the {} WebSocket of {}: nothing from it for {} s, not even the answer to a ping "
          "(a peer gone without a word: a phone out of range, a sleeping laptop){}",
          audio_ ? "/ws/audio" : "/ws/events", host_, sh_->cfg.ws_idle_timeout_s, base::suppressed_note(skipped));
    }
  }

  std::shared_ptr<Shared> sh_;
  websocket::stream<beast::tcp_stream> ws_;
  std::string host_;  // the client's address: its connection slot is given back at the end
  bool audio_;
  std::size_t cap_;
  bool open_ = false, writing_ = false;
  bool accepted_ = false;  // the handshake is done: messages may be written
  std::deque<Bytes> queue_;
  std::size_t queued_bytes_ = 0;  // of queue_'s messages
  Bytes inflight_;
  beast::flat_buffer in_;
};

class HttpSession : public Session, public std::enable_shared_from_this<HttpSession> {
 public:
  HttpSession(std::shared_ptr<Shared> sh, tcp::socket&& s, const control::Endpoint& peer)
      : sh_(std::move(sh)), stream_(std::move(s)), peer_(peer) {}
  ~HttpSession() override {
    release();
    if (!counted_) return;
    sh_->stats.connections.fetch_sub(1);
    sh_->give_address_slot(peer_.host());
  }
  void close() override {
    listing_timer_.cancel();  // a listing awaited: the server stops without waiting for its time-out
    stream_.close();
  }
  void run() {
    beast::error_code ec;
    stream_.socket().set_option(net::socket_base::send_buffer_size(kHttpSendBuffer), ec);
    counted_ = true;
    sh_->sessions.push_back(shared_from_this());
    read();
  }

 private:
  using Response = http::response<http::string_body>;

  void read() {
    parser_.emplace();
    parser_->header_limit(kHeaderLimit);
    parser_->body_limit(sh_->cfg.max_body);
    stream_.expires_after(std::chrono::milliseconds(static_cast<long>(sh_->cfg.request_timeout_s * 1000)));
    http::async_read(stream_, buffer_, *parser_,
                     [self = shared_from_this()](beast::error_code ec, std::size_t) { self->on_read(ec); });
  }

  void on_read(beast::error_code ec) {
    if (ec == http::error::end_of_stream || ec == beast::error::timeout || ec == net::error::operation_aborted) {
      return shut();
    }
    // A HEAD is answered as its GET without the body, whatever the answer (write()): a body
    // would be read as the start of the next answer on this connection (RFC 9110 §9.3.2).
    head_ = parser_->is_header_done() && parser_->get().method() == http::verb::head;
    if (ec) {  // malformed, or over a limit: a clear answer, then the connection closes
      sh_->stats.bad_requests.fetch_add(1);
      const bool big = ec == http::error::body_limit || ec == http::error::header_limit;
      keep_alive_ = false;
      return reply(big ? http::status::payload_too_large : http::status::bad_request,
                   error_json(big ? "request too large (" + ec.message() + ")" : "bad request: " + ec.message()));
    }
    sh_->stats.requests.fetch_add(1);
    auto& req = parser_->get();
    keep_alive_ = req.keep_alive();
    stream_.expires_never();
    if (const std::string why = host_problem(req, sh_->cfg.hosts); !why.empty()) {
      sh_->stats.bad_requests.fetch_add(1);
      keep_alive_ = false;
      std::uint64_t skipped = 0;
      if (sh_->log_limit.allow("host refused", skipped)) {
        spdlog::warn("web monitor: refused a request from {} (403): {}{}", peer_.host(), why,
                     base::suppressed_note(skipped));
      }
      return reply(http::status::forbidden, error_json(why));
    }
    if (const std::string why = origin_problem(req); !why.empty()) {
      sh_->stats.bad_requests.fetch_add(1);
      keep_alive_ = false;
      return reply(http::status::forbidden, error_json(why));
    }
    if (websocket::is_upgrade(req)) return upgrade();
    route(req);
  }

  void upgrade() {
    const auto& req = parser_->get();
    const std::string target(req.target().substr(0, req.target().find('?')));  // a query is ignored, as for HTTP
    const bool audio = target == "/ws/audio";
    if (!audio && target != "/ws/events")
      return reply(http::status::not_found, error_json("no WebSocket at " + target));
    // What Beast's accept would refuse with a plain-text 400: refused here as every error is.
    if (const auto [st, why] = websocket_problem(req); !why.empty()) {
      sh_->stats.bad_requests.fetch_add(1);
      keep_alive_ = false;
      auto res = make(st, error_json(why));
      if (st == http::status::upgrade_required) res->set(http::field::sec_websocket_version, "13");
      return write(res);
    }
    if (audio && sh_->stats.listeners.load() >= sh_->cfg.max_listeners) {
      sh_->stats.listeners_refused.fetch_add(1);
      keep_alive_ = false;
      return reply(http::status::service_unavailable, error_json("too many audio listeners (--http-max-listeners " +
                                                                 std::to_string(sh_->cfg.max_listeners) + ")"));
    }
    // /ws/events?since=SEQ&run=RUN: the kept events after SEQ of run RUN come first
    // (event_backlog.hpp; another run's: all of them).
    std::int64_t since = -1;
    std::string run;
    if (!audio) {
      std::map<std::string, std::string> q;
      std::string error;
      if (!url_query(std::string_view(req.target().data(), req.target().size()), q, error)) return bad_request(error);
      if (auto it = q.find("since"); it != q.end()) {
        const std::string& v = it->second;
        if (v.empty() || v.size() > 18 || v.find_first_not_of("0123456789") != std::string::npos)
          return bad_request("since: the number of the last event seen (digits)");
        since = std::stoll(v);
      }
      if (auto it = q.find("run"); it != q.end()) {
        if (!EventBacklog::valid_run(it->second))
          return bad_request("run: the run of the last event seen (its \"run\": up to 32 hex digits)");
        run = it->second;
      }
    }
    counted_ = false;  // the connection's count moves to the WebSocket
    const std::size_t cap = audio ? sh_->listener_queue_chunks() : kEventQueueMessages;
    auto ws = std::make_shared<WsListener>(sh_, stream_.release_socket(), peer_.host(), audio, cap);
    ws->accept(parser_->release(), audio ? sh_->audio_header : std::string(), since, run);
  }

  void route(const http::request<http::string_body>& req) {
    const std::string target(req.target().substr(0, req.target().find('?')));
    const bool get = req.method() == http::verb::get || head_;  // HEAD: the GET's answer, no body
    if (target == "/api/status" || target == "/api/files") {
      if (!get) return method_not_allowed("GET, HEAD");
      std::map<std::string, std::string> q;
      std::string error;
      if (!url_query(std::string_view(req.target().data(), req.target().size()), q, error)) return bad_request(error);
      if (target == "/api/files") return list_files(q["dir"]);
      const std::string page = q["page"];
      if (page.size() > 64 ||
          page.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-") !=
              std::string::npos) {
        return bad_request("page: at most 64 letters, digits, '_' or '-'");
      }
      // No room for an answer: refused before the control thread does any work for it.
      if (const std::string why = over_budget(0); !why.empty()) return refuse_answer(why);
      status(page);
      return;
    }
    if (target == "/api/osc") {
      if (req.method() != http::verb::post) return method_not_allowed("POST");
      // JSON only: a form or a text/plain body is what another site's page can send without
      // asking (no preflight), and stemd answers no preflight.
      if (const auto ct = req.find(http::field::content_type);
          ct == req.end() || !beast::iequals(ct->value().substr(0, 16), "application/json")) {
        sh_->stats.bad_requests.fetch_add(1);
        const std::string given = ct == req.end() ? "none" : std::string(ct->value().substr(0, 100));
        return reply(http::status::unsupported_media_type,
                     error_json("POST /api/osc takes Content-Type: application/json (given: " + given +
                                "; with curl: -H 'Content-Type: application/json')"));
      }
      return post_osc(req.body());
    }
    if (target == "/ws/events" || target == "/ws/audio") {  // a WebSocket asked for without the upgrade
      sh_->stats.bad_requests.fetch_add(1);
      auto res =
          make(http::status::upgrade_required, error_json(target + " is a WebSocket: connect with ws://HOST" + target));
      res->set(http::field::upgrade, "websocket");
      res->set(http::field::connection, keep_alive_ ? "Upgrade" : "Upgrade, close");  // a close asked for stays
      return write(res);
    }
    auto f = sh_->files.find(target == "/" ? "/index.html" : target);
    if (f == sh_->files.end()) return reply(http::status::not_found, error_json("not found: " + target));
    if (!get) return method_not_allowed("GET, HEAD");
    reply(http::status::ok, f->second.body, f->second.type);
  }

  void bad_request(const std::string& reason) {
    sh_->stats.bad_requests.fetch_add(1);
    reply(http::status::bad_request, error_json(reason));
  }

  // On the listing threads, at most Shared::kMaxListings at once; the answer comes back here, or
  // the time-out's 504 does first (listing_timed_out), whichever comes first is sent (listing_).
  // The job holds only Shared, its trail and a weak pointer to this session: a thread lost for
  // hours keeps no connection open. Its trail says where it is (a lost one is kept as stuck on
  // that file system until the trail finishes, as the job returns).
  void list_files(const std::string& dir) {
    const std::string key = listing_key(dir);
    if (auto [st, why] = listing_refusal(*sh_, key); !why.empty()) return reply(st, std::move(why));
    const std::uint64_t n = ++listings_;
    std::weak_ptr<HttpSession> weak = shared_from_this();
    auto trail = std::make_shared<control::OpenTrail>();
    auto job = [sh = sh_, weak, n, dir, trail]() -> control::LoadPool::Publish {
      const ListingGuard guard{*trail, *sh->stuck_listings, sh->looking_at};
      auto answer = files_answer(sh->media, dir, &guard);
      trail->finish();  // before the pool hears it returned: its stuck entry, if any, goes
      return [sh, weak, n, answer = std::move(answer)]() mutable {
        net::post(sh->ioc, [weak, n, answer = std::move(answer)]() mutable {
          auto self = weak.lock();
          if (!self || self->listing_ != n) return;  // timed out: answered already
          self->listing_ = 0;
          self->listing_timer_.cancel();
          self->reply(answer.first, std::move(answer.second));
        });
      };
    };
    std::string why;
    const std::uint64_t ticket = sh_->lister->submit(std::move(job), why, "/" + base::log_escape(key, 300));
    if (ticket == 0) return reply(http::status::service_unavailable, error_json(why));
    listing_ = n;
    const auto since = std::chrono::steady_clock::now();
    listing_timer_.expires_after(std::chrono::duration_cast<std::chrono::steady_clock::duration>(
        std::chrono::duration<double>(sh_->cfg.listing_timeout_s)));
    listing_timer_.async_wait([self = shared_from_this(), n, key, ticket, trail, since](beast::error_code ec) {
      if (ec || self->listing_ != n) return;  // answered, or the connection closed
      self->listing_ = 0;
      const bool lost = self->sh_->lister->abandon(ticket);
      self->reply(http::status::gateway_timeout, error_json(listing_timed_out(*self->sh_, key, trail, lost, since)));
    });
  }

  void method_not_allowed(const char* allowed) {
    sh_->stats.bad_requests.fetch_add(1);
    auto res = make(http::status::method_not_allowed, error_json(std::string("method not allowed: use ") + allowed));
    res->set(http::field::allow, allowed);
    write(res);
  }

  // The control thread takes the status's snapshot (small: numbers, the kept voices with their
  // names cut); its JSON is made here, on the network thread. A HEAD leaves the page's peaks held
  // for its next GET.
  void status(const std::string& page) {
    sh_->post([self = shared_from_this(), page, take = !head_] {
      auto snap = std::make_shared<StatusSnapshot>(status_snapshot(*self->sh_, page, take));
      net::post(self->sh_->ioc, [self, snap] { self->reply(http::status::ok, status_json(*self->sh_, *snap)); });
    });
  }

  // Why an answer of `bytes` more cannot be held now (the answers' byte budget), or empty.
  std::string over_budget(std::size_t bytes) const {
    const WebConfig& c = sh_->cfg;
    if (bytes > c.max_answer_bytes) {
      return "this answer is " + std::to_string(bytes) + " bytes, over the " + std::to_string(c.max_answer_bytes) +
             " one connection may be sent at once";
    }
    const std::size_t held = sh_->answer_bytes.load(std::memory_order_relaxed);
    if (held + bytes > c.max_answers_bytes || (bytes == 0 && held >= c.max_answers_bytes)) {
      return "busy: answers of " + std::to_string(held) + " bytes wait for clients to read them (" +
             std::to_string(c.max_answers_bytes) + " at most, all connections): try again shortly";
    }
    return {};
  }
  // 503 with the reason, counted and logged (5 lines a second).
  void refuse_answer(const std::string& why) {
    sh_->stats.answers_refused.fetch_add(1, std::memory_order_relaxed);
    std::uint64_t skipped = 0;
    if (sh_->log_limit.allow("answer refused", skipped)) {
      spdlog::warn("web monitor: refused an answer to {} (503): {}{}", peer_.host(), why,
                   base::suppressed_note(skipped));
    }
    write(make(http::status::service_unavailable, error_json(why)), false);
  }

  void post_osc(const std::string& body) {
    control::OscMessage m;
    std::string error;
    if (!message_from_json(body, m, error)) {
      sh_->stats.bad_requests.fetch_add(1);
      return reply(http::status::bad_request, error_json(error));
    }
    // A subscription would go to a request that is answered and gone, and hold one of the
    // --max-subscribers slots OSC clients need: the page's events come from /ws/events.
    if (m.address == "/stemd/notify" || m.address == "/stemd/cookie") {
      sh_->stats.bad_requests.fetch_add(1);
      return reply(http::status::bad_request, error_json(m.address + " is for OSC clients: events are on /ws/events"));
    }
    const std::uint64_t id = sh_->next_local.fetch_add(1);
    sh_->pending[id] = [self = shared_from_this()](std::string json, bool bad) {
      const bool done = json.rfind("{\"reply\":\"/done\"", 0) == 0;
      if (bad) self->sh_->stats.bad_requests.fetch_add(1);
      self->reply(done  ? http::status::ok
                  : bad ? http::status::bad_request
                        : http::status::unprocessable_entity,
                  std::move(json));
    };
    auto packet = std::make_shared<std::vector<std::uint8_t>>(control::osc_serialise(m));
    sh_->post([sh = sh_, id, packet, from = peer_] {
      control::Peer p;
      p.endpoint = from;
      p.local = id;
      p.typed = true;  // JSON said what each value is: no OSC coercion
      std::vector<control::Outgoing> out;
      sh->router.handle_packet(packet->data(), packet->size(), p, out);
      for (const auto& o : out) sh->deliver(o, sh->router.refused_a_json_type());
    });
  }

  std::shared_ptr<Response> make(http::status st, std::string body, const std::string& type = "application/json") {
    auto res = std::make_shared<Response>(st, 11);
    res->set(http::field::server, "stemd");
    res->set(http::field::content_type, type);
    res->set(http::field::cache_control, "no-store");
    res->keep_alive(keep_alive_);
    res->body() = std::move(body);
    res->prepare_payload();
    return res;
  }
  void reply(http::status st, std::string body, const std::string& type = "application/json") {
    write(make(st, std::move(body), type));
  }
  // Every answer goes out here. To a HEAD without its body: its Content-Length (make() set it)
  // still states the GET's. Its body is charged to the answers' byte budget until it is written
  // (or the connection closes); one over it is replaced by a 503 (`budgeted` false: that 503,
  // a few hundred bytes, always goes).
  void write(std::shared_ptr<Response> res, bool budgeted = true) {
    if (head_) res->body().clear();
    const std::size_t bytes = res->body().size();
    if (budgeted) {
      if (const std::string why = over_budget(bytes); !why.empty()) return refuse_answer(why);
    }
    held_ = bytes;
    sh_->answer_bytes.fetch_add(bytes, std::memory_order_relaxed);
    stream_.expires_after(std::chrono::milliseconds(static_cast<long>(sh_->cfg.request_timeout_s * 1000)));
    http::async_write(stream_, *res, [self = shared_from_this(), res](beast::error_code ec, std::size_t) {
      self->release();
      if (ec || !res->keep_alive()) return self->shut();
      self->read();
    });
  }
  void release() {
    sh_->answer_bytes.fetch_sub(held_, std::memory_order_relaxed);
    held_ = 0;
  }
  void shut() {
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
    stream_.close();
  }

  std::shared_ptr<Shared> sh_;
  beast::tcp_stream stream_;
  control::Endpoint peer_;
  beast::flat_buffer buffer_{kHeaderLimit};
  std::optional<http::request_parser<http::string_body>> parser_;
  bool keep_alive_ = true;
  bool counted_ = false;
  bool head_ = false;                                        // the request being answered is a HEAD
  std::size_t held_ = 0;                                     // of Shared::answer_bytes: the answer being written
  net::steady_timer listing_timer_{stream_.get_executor()};  // the awaited listing's time-out
  std::uint64_t listings_ = 0;                               // listings asked for on this connection
  std::uint64_t listing_ = 0;                                // the one awaited (0: none)
};

}  // namespace

void start_session(const std::shared_ptr<Shared>& sh, tcp::socket socket, const control::Endpoint& peer) {
  sh->stats.connections.fetch_add(1);
  std::make_shared<HttpSession>(sh, std::move(socket), peer)->run();
}

}  // namespace stemd::web
