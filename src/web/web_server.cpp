// The web monitor's server [network]: the listening socket, the allow-list and connection
// budget, the page's files, the pump that moves the master from the engine's MonitorTap to the
// audio listeners, and the event subscription renewed on the control thread.
#include "web_internal.hpp"

#include <spdlog/spdlog.h>

#include <fcntl.h>
#include <sys/resource.h>

#include <bit>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace stemd::web {

static_assert(std::endian::native == std::endian::little, "the audio stream is little-endian as it is in memory");

namespace {

constexpr auto kPumpPeriod = std::chrono::milliseconds(10);
constexpr auto kIdlePumpPeriod = std::chrono::milliseconds(100);  // no listener: only drains
constexpr std::size_t kMaxChunksPerMessage = 16;
struct PageType {
  const char* ext;
  const char* mime;
};
constexpr PageType kPageTypes[] = {{".html", "text/html; charset=utf-8"},
                                   {".js", "text/javascript; charset=utf-8"},
                                   {".css", "text/css; charset=utf-8"},
                                   {".png", "image/png"},
                                   {".svg", "image/svg+xml"}};

const char* mime(const std::string& ext) {
  for (const PageType& t : kPageTypes) {
    if (ext == t.ext) return t.mime;
  }
  return nullptr;
}

// The page as read by the daemon's helper (WebConfig::page): the files of a known type.
void take_page(const std::vector<std::pair<std::string, std::string>>& page, std::map<std::string, StaticFile>& files) {
  for (const auto& [name, bytes] : page) {
    if (const char* type = mime(std::filesystem::path(name).extension().string())) {
      files["/" + name] = StaticFile{bytes, type};
    }
  }
}

// The page read here, on the calling thread (tests; the daemon gives WebConfig::page).
bool load_files(const std::string& root, std::map<std::string, StaticFile>& files, std::string& error) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::is_regular_file(fs::path(root) / "index.html", ec)) {
    error = "--web-root " + root + ": no index.html there";
    return false;
  }
  std::uintmax_t total = 0;
  for (const auto& e : fs::directory_iterator(root, ec)) {
    const char* type = mime(e.path().extension().string());
    if (!type || !e.is_regular_file(ec)) continue;
    total += e.file_size(ec);
    if (total > kMaxPageBytes) {
      error = "--web-root " + root + ": over 4 MiB of files";
      return false;
    }
    std::ifstream in(e.path(), std::ios::binary);
    std::ostringstream text;
    text << in.rdbuf();
    files["/" + e.path().filename().string()] = StaticFile{text.str(), type};
  }
  return true;
}

control::Endpoint to_endpoint(const tcp::endpoint& e) {
  control::Endpoint out;
  std::memcpy(&out.addr, e.data(), e.size());
  out.len = static_cast<socklen_t>(e.size());
  return out;
}

// accept() failed for want of a descriptor or of kernel memory: trying again at once finds the
// same pending connection and fails again (the thread spun, 0.53 of a core: outside pass 24).
bool out_of_resources(const beast::error_code& ec) {
  return ec == net::error::no_descriptors || ec == boost::system::errc::too_many_files_open_in_system ||
         ec == net::error::no_buffer_space || ec == net::error::no_memory;
}

// The process's limit of open files, for the log (counting them would need a descriptor).
std::string descriptor_limit() {
  rlimit r{};
  if (::getrlimit(RLIMIT_NOFILE, &r) != 0) return "unknown";
  return r.rlim_cur == RLIM_INFINITY ? "unlimited" : std::to_string(r.rlim_cur);
}

void accept_next(const std::shared_ptr<Shared>& sh);

// The pending connection waits in the listen queue; accept is tried again after the back-off.
void accept_later(const std::shared_ptr<Shared>& sh, const beast::error_code& ec) {
  sh->stats.accept_failures.fetch_add(1, std::memory_order_relaxed);
  bool first = false;
  sh->accept_retry.expires_after(sh->accept_backoff.failed(std::chrono::steady_clock::now(), first));
  if (first) {
    spdlog::warn(
        "web monitor: cannot accept connections: {} (this process may open {} files, RLIMIT_NOFILE): new "
        "connections wait and are tried again every 0.1-1 s (streamed sources each keep their file open)",
        ec.message(), descriptor_limit());
  }
  sh->accept_retry.async_wait([sh](beast::error_code e) {
    if (!e && !sh->stopping) accept_next(sh);
  });
}

void accept_next(const std::shared_ptr<Shared>& sh) {
  sh->acceptor.async_accept([sh](beast::error_code ec, tcp::socket s) {
    if (ec) {
      if (sh->stopping) return;
      if (out_of_resources(ec)) return accept_later(sh, ec);
      return accept_next(sh);  // that client gave up (ECONNABORTED …): the next one
    }
    sh->accept_backoff.succeeded();
    beast::error_code e2;
    const control::Endpoint peer = to_endpoint(s.remote_endpoint(e2));
    if (e2 || !sh->allow.allows(peer) || sh->stats.connections.load() >= sh->cfg.max_clients ||
        !sh->take_address_slot(peer.host(), peer.is_loopback())) {
      sh->stats.refused.fetch_add(1);
      s.close(e2);
    } else {
      sh->stats.accepted.fetch_add(1);
      std::erase_if(sh->sessions, [](const std::weak_ptr<Session>& w) { return w.expired(); });
      start_session(sh, std::move(s), peer);
    }
    accept_next(sh);
  });
}

// "web monitor on http://ADDR:PORT/ (allow …; page from …)", once bound.
std::string describe_bound(Shared& sh) {
  beast::error_code ec;
  const auto ep = sh.acceptor.local_endpoint(ec);
  std::string host = ep.address().to_string();
  if (ep.address().is_v6()) host = "[" + host + "]";
  return "web monitor on http://" + host + ":" + std::to_string(ep.port()) + "/ (allow " + sh.allow.to_string() +
         "; page from " + sh.cfg.root + ")";
}

// Binds and listens on `at` (an address not configured yet is bound all the same: IP_FREEBIND,
// and watched). False with the reason.
bool bind_acceptor(Shared& sh, const control::Endpoint& at, std::string& error) {
  tcp::endpoint ep(net::ip::make_address(at.host()), sh.cfg.port);
  beast::error_code ec;
  auto& a = sh.acceptor;
  a.open(ep.protocol(), ec);
  if (!ec) a.set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) a.bind(ep, ec);
  bool pending = false;  // an address the machine does not have yet: as --osc-bind (OscServer::open)
  if (ec == boost::system::errc::address_not_available && control::set_freebind(a.native_handle(), at.family())) {
    ec.clear();
    a.bind(ep, ec);
    pending = !ec;
  }
  if (!ec) a.listen(net::socket_base::max_listen_connections, ec);
  if (ec) {
    error = "web monitor: cannot listen on " + at.to_string() + ": " + ec.message();
    return false;
  }
  sh.bind_watch = control::BindWatch("--http-bind", sh.cfg.bind, at, "the web monitor answers", pending);
  if (pending) {
    spdlog::warn(
        "--http-bind {}: no network interface has this address yet (the network may still be coming up); "
        "listening on it anyway: the monitor answers once it is configured. If it never is, check the address "
        "(`ip -brief address` lists this machine's)",
        sh.cfg.bind);
  }
  ::fcntl(a.native_handle(), F_SETFD, FD_CLOEXEC);  // not inherited by a hand-over image
  return true;
}

// [network] --http-bind's interface, looked for once a second while it is missing: bound and
// accepting as soon as it is there. A bind that fails then (the port taken meanwhile) is said
// once, and tried again.
void await_interface(const std::shared_ptr<Shared>& sh) {
  const auto now = std::chrono::steady_clock::now();
  if (sh->waiting_interface.empty() || now - sh->interface_checked < std::chrono::seconds(1)) return;
  sh->interface_checked = now;
  std::string error, zone;
  const auto at = control::parse_endpoint(sh->cfg.bind, sh->cfg.port, error, &zone);
  if (!at || !zone.empty()) return;  // not there yet
  if (!bind_acceptor(*sh, *at, error)) {
    if (error != sh->interface_error) {
      spdlog::error("--http-bind {}: interface \"{}\" is there, but {}: trying again", sh->cfg.bind,
                    sh->waiting_interface, error);
    }
    sh->interface_error = error;
    beast::error_code ec;
    sh->acceptor.close(ec);
    return;
  }
  spdlog::info("--http-bind {}: network interface \"{}\" is there now: {}", sh->cfg.bind, sh->waiting_interface,
               describe_bound(*sh));
  sh->waiting_interface.clear();
  accept_next(sh);
}

// Every 10 ms: the chunks the audio thread handed over, consecutive ones in one message
// (every 100 ms while no one listens: the tap is off then, nothing arrives).
void pump(const std::shared_ptr<Shared>& sh) {
  sh->pump.expires_after(sh->live(sh->audio) > 0 ? kPumpPeriod : kIdlePumpPeriod);
  sh->pump.async_wait([sh](beast::error_code ec) {
    if (ec || sh->stopping) return;
    sh->log_limit.flush([&sh](const std::string& kind, std::uint64_t n) {
      spdlog::log(sh->log_limit.informational(kind) ? spdlog::level::info : spdlog::level::warn,
                  "web monitor {}: … and {} more suppressed (at most 5 lines a second)", kind, n);
    });
    std::uint64_t failed = 0;
    if (double over = 0; sh->accept_backoff.ended(std::chrono::steady_clock::now(), failed, over)) {
      spdlog::info("web monitor: no accept has failed for 10 s ({} tries failed over {:.1f} s before)", failed, over);
    }
    await_interface(sh);                                     // --http-bind's interface, while it is missing
    sh->bind_watch.check(control::BindWatch::Clock::now());  // the address's comings and goings
    engine::MonitorTap::Chunk c;
    const bool anyone = sh->live(sh->audio) > 0;
    if (!anyone) sh->tap->set_enabled(false);
    std::string msg;
    std::int64_t next = -1;
    std::size_t chunks = 0;
    auto flush = [&] {
      if (!msg.empty()) sh->broadcast_audio(std::make_shared<const std::string>(std::move(msg)));
      msg.clear();
      chunks = 0;
    };
    while (sh->tap->read(c)) {
      if (!anyone) continue;
      if (c.frame != next || chunks == kMaxChunksPerMessage) flush();
      if (msg.empty()) msg.append(reinterpret_cast<const char*>(&c.frame), 8);
      msg.append(reinterpret_cast<const char*>(c.samples), sizeof c.samples);
      next = c.frame + engine::MonitorTap::kChunkFrames;
      ++chunks;
    }
    flush();
    pump(sh);
  });
}

// The event subscription (/stemd/notify 1 from the in-process peer 1), renewed at a third of
// its lifetime on the control thread.
void renew(const std::shared_ptr<Shared>& sh) {
  sh->post([sh] {
    control::Peer p;
    std::string e;
    p.endpoint = *control::parse_endpoint("127.0.0.1", 0, e);
    p.local = Shared::kEventsPeer;
    const control::OscMessage r =
        sh->router.handle(control::osc_message("/stemd/notify", {control::OscArg::Int(1)}), p);
    if (r.address != "/done") spdlog::warn("web monitor: no event subscription: {}", r.to_string());
  });
  sh->renew.expires_after(std::chrono::milliseconds(static_cast<long>(sh->cfg.subscription_ttl_s * 1000 / 3)));
  sh->renew.async_wait([sh](beast::error_code ec) {
    if (!ec && !sh->stopping) renew(sh);
  });
}

}  // namespace

const std::vector<std::string>& page_types() {
  static const std::vector<std::string> types = [] {
    std::vector<std::string> out;
    for (const PageType& t : kPageTypes) out.emplace_back(t.ext);
    return out;
  }();
  return types;
}

std::size_t Shared::live(std::vector<std::weak_ptr<Listener>>& v) {
  std::erase_if(v, [](const std::weak_ptr<Listener>& w) { return w.expired(); });
  stats.listeners_held.store(audio.size() + events.size());
  return v.size();
}

bool Shared::take_address_slot(const std::string& host, bool loopback) {
  // The default share (half) keeps one remote address from locking the others out. Loopback is
  // every local page, tab and tool at once, and local processes have full control anyway
  // (docs/security.md): by default it may use every slot; an explicit share applies to it too.
  const std::size_t share = cfg.max_clients_per_address > 0 ? cfg.max_clients_per_address
                            : loopback                      ? cfg.max_clients
                                                            : std::max<std::size_t>(1, cfg.max_clients / 2);
  std::lock_guard lock(per_address_mutex);
  std::size_t& n = per_address[host];
  if (n >= share) return false;
  ++n;
  return true;
}

void Shared::give_address_slot(const std::string& host) {
  std::lock_guard lock(per_address_mutex);
  auto it = per_address.find(host);
  if (it != per_address.end() && --it->second == 0) per_address.erase(it);
}

std::size_t Shared::listener_queue_chunks() const {
  return std::max<std::size_t>(4, cfg.listener_queue_ms / static_cast<std::size_t>(kPumpPeriod.count()));
}

void Shared::broadcast_audio(Bytes msg) {
  for (auto& w : audio) {
    if (auto l = w.lock()) l->push(msg);
  }
}

void Shared::broadcast_event(const std::string& json, const std::string& small) {
  const std::int64_t now_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
          .count();
  const std::uint64_t seq = backlog.take_seq();
  const std::string& run = backlog.run();
  auto msg = std::make_shared<const std::string>(EventBacklog::stamp(json, now_ms, seq, run));
  // A long one is kept cut (`small`); one whose address and reason alone are too long, as a mark.
  if (!backlog.add(seq, now_ms, small.empty() ? *msg : EventBacklog::stamp(small, now_ms, seq, run)))
    backlog.add(seq, now_ms, EventBacklog::stamp(R"x({"event":"(too long to keep)","args":[]})x", now_ms, seq, run));
  if (live(events) == 0) return;
  for (auto& w : events) {
    if (auto l = w.lock()) l->push(msg);
  }
}

// [control] Only the packet is copied here: its JSON (a /stemd/list answer with long names is
// hundreds of KB of it) is made on the network thread.
void Shared::deliver(const control::Outgoing& o, bool bad) {
  net::post(ioc, [self = shared_from_this(), id = o.to.local, bad, data = o.data]() mutable {
    const bool event = id == kEventsPeer;
    if (!event && self->pending.count(id) == 0) return;  // its connection is gone
    std::string json = reply_json(data, event);
    // What every events listener gets: the notification, or what a page did (its answer), cut to
    // kMaxEventBytes (built again, capped, only when longer).
    std::string broadcast;
    if (json.size() + 16 <= kMaxEventBytes) {
      broadcast = event ? json : R"({"event":"api",)" + json.substr(1);
    } else {
      broadcast = event_json(data, !event, kMaxEventBytes);
    }
    // What the backlog keeps of a long one (its seq and time take ≈ 50 bytes more).
    const std::string small = broadcast.size() + kStampBytes <= EventBacklog::kMaxBytes
                                  ? std::string()
                                  : event_json(data, !event, EventBacklog::kMaxBytes - kStampBytes);
    if (event) return self->broadcast_event(broadcast, small);
    auto it = self->pending.find(id);
    auto done = std::move(it->second);
    self->pending.erase(it);
    self->broadcast_event(broadcast, small);  // what a page did, for every page's log
    done(std::move(json), bad);
  });
}

WebServer::WebServer(const WebConfig& cfg, control::Controller& ctl, control::Router& router,
                     const control::MediaPolicy& media, Post post)
    : sh_(std::make_shared<Shared>(cfg, ctl, router, media, std::move(post))) {
  sh_->tap = ctl.engine().monitor_tap();
  sh_->audio_header = R"({"sample_rate":)" + std::to_string(cfg.sample_rate) +
                      R"(,"channels":2,"format":"s16le","chunk_frames":)" +
                      std::to_string(engine::MonitorTap::kChunkFrames) + "}";
}

WebServer::~WebServer() { stop(); }

bool WebServer::open(std::string& error) {
  if (!sh_->tap) {
    error = "web monitor: the engine was built without its monitor tap";
    return false;
  }
  if (!sh_->cfg.page.empty()) {
    take_page(sh_->cfg.page, sh_->files);
    sh_->cfg.page = {};  // held once, as the files
  } else if (!load_files(sh_->cfg.root, sh_->files, error)) {
    return false;
  }
  for (const auto& h : sh_->cfg.hosts) {
    if (const std::string why = host_name_problem(h); !why.empty()) {
      error = "--http-host: " + why;
      return false;
    }
  }
  sh_->cfg.hosts = normalise_hosts(sh_->cfg.hosts);
  std::string zone;  // an interface this machine has no interface of yet
  auto at = control::parse_endpoint(sh_->cfg.bind, sh_->cfg.port, error, &zone);
  if (!at) {
    error = "--http-bind " + sh_->cfg.bind + ": " + error;
    return false;
  }
  if (const std::string why = zone.empty() ? control::listen_address_problem(*at) : ""; !why.empty()) {
    error = "web monitor: cannot listen on " + at->to_string() + ": " + why;
    return false;
  }
  bind_loopback_ = at->is_loopback();
  if (!parse_allow(sh_->cfg.allow, sh_->allow, error)) return false;
  allow_text_ = sh_->cfg.allow;
  if (!zone.empty()) {
    // A link-local address's interface not there yet (a USB or Wi-Fi adapter, a bridge made later
    // at boot): bound once it appears (await_interface), as --osc-bind is.
    sh_->waiting_interface = zone;
    spdlog::warn(
        "--http-bind {}: no network interface \"{}\" yet (it may still be coming up): the web monitor is bound "
        "once it appears, and answers once the address is configured. If it never does, check the name (`ip "
        "-brief link` lists this machine's interfaces)",
        sh_->cfg.bind, zone);
    return true;
  }
  return bind_acceptor(*sh_, *at, error);
}

bool WebServer::parse_allow(const std::string& cidrs, control::AllowList& out, std::string& error) const {
  if (cidrs.empty()) {
    if (!bind_loopback_) {
      error = "--http-bind " + sh_->cfg.bind + " is not loopback: give --allow (who may connect)";
      return false;
    }
    out = control::AllowList::loopback();
    return true;
  }
  control::AllowList next;
  if (!next.parse(cidrs, error)) {
    error = "--allow: " + error;
    return false;
  }
  out = std::move(next);
  return true;
}

bool WebServer::set_allow(const std::string& cidrs, std::string& error) {
  control::AllowList next;
  if (!parse_allow(cidrs, next, error)) return false;
  allow_text_ = cidrs;
  if (!thread_.joinable()) {
    sh_->allow = std::move(next);
    return true;
  }
  net::post(sh_->ioc, [sh = sh_, next = std::move(next)]() mutable { sh->allow = std::move(next); });
  return true;
}

std::uint16_t WebServer::local_port() const {
  beast::error_code ec;
  return sh_->acceptor.local_endpoint(ec).port();
}

std::string WebServer::describe() const {
  if (!sh_->waiting_interface.empty()) {
    return "web monitor on --http-bind " + sh_->cfg.bind + " (waiting for its network interface \"" +
           sh_->waiting_interface + "\") (allow " + sh_->allow.to_string() + "; page from " + sh_->cfg.root + ")";
  }
  return describe_bound(*sh_);
}

void WebServer::start() {
  if (thread_.joinable()) return;
  const bool bound = sh_->waiting_interface.empty();
  sh_->lister = std::make_shared<control::LoadPool>(Shared::kMaxListings, Shared::kMaxListings,
                                                    Shared::kMaxLostListings, "listing", "listing");
  // /stemd/status's listings_lost (the control thread reads the pool's count; after stop(), 0)
  sh_->post([sh = sh_, pool = std::weak_ptr<control::LoadPool>(sh_->lister)] {
    sh->router.set_listings_lost([pool] {
      const auto p = pool.lock();
      return p ? p->lost() : std::size_t{0};
    });
  });
  if (bound) accept_next(sh_);  // else once its interface is there (await_interface)
  pump(sh_);
  renew(sh_);
  thread_ = std::thread([sh = sh_] { sh->ioc.run(); });
}

void WebServer::stop() {
  if (!thread_.joinable()) return;
  net::post(sh_->ioc, [sh = sh_] {
    sh->stopping = true;
    beast::error_code ec;
    sh->acceptor.close(ec);
    sh->pump.cancel();
    sh->renew.cancel();
    sh->accept_retry.cancel();
    sh->pending.clear();
    for (auto& w : sh->sessions) {
      if (auto s = w.lock()) s->close();
    }
    if (sh->tap) sh->tap->set_enabled(false);
  });
  thread_.join();  // run() returns once every connection's handlers have finished
  // A listing under way gets at most 1 s to finish (its answer is not sent); a thread lost in the
  // file system is left there (LoadPool's destructor).
  sh_->lister.reset();
}

void WebServer::deliver(const control::Outgoing& o) { sh_->deliver(o); }

std::function<void(const control::Outgoing&)> WebServer::sink() const {
  return [sh = sh_](const control::Outgoing& o) { sh->deliver(o); };
}

const WebStats& WebServer::stats() const { return sh_->stats; }

std::vector<PastEvent> WebServer::past_events() const { return sh_->backlog.after(0); }

void WebServer::carry_events(const std::vector<PastEvent>& events, const std::string& run) {
  if (!run.empty()) sh_->backlog.set_run(run);
  for (const PastEvent& e : events) sh_->backlog.add(e.seq, e.unix_ms, e.json);
}

std::string WebServer::events_run() const { return sh_->backlog.run(); }

std::string WebServer::listings_running() const { return sh_->lister ? sh_->lister->running() : std::string(); }

void WebServer::set_handshake_hook(HandshakeHook h) { sh_->handshake_hook = std::move(h); }

void WebServer::set_status_hook(std::function<void()> h) { sh_->status_hook = std::move(h); }

void WebServer::set_listing_hooks(ListingHooks h) {
  if (h.mounts) sh_->stuck_listings = std::make_shared<control::StuckOpens>(std::move(h.mounts));
  sh_->looking_at = std::move(h.looking_at);
}

}  // namespace stemd::web
