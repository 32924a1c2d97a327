// The OSC server loop (see osc_server.hpp).
#include "osc_server.hpp"

#include <spdlog/spdlog.h>

#include <fcntl.h>
#include <poll.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <sys/eventfd.h>
#include <unistd.h>

namespace stemd::control {

OscServer::OscServer(Controller& ctl, Router& router, const OscServerConfig& cfg)
    : ctl_(ctl), router_(router), cfg_(cfg) {
  wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
}

OscServer::~OscServer() {
  stop();
  if (wake_fd_ >= 0) close(wake_fd_);
}

bool OscServer::open(std::string& error) {
  std::string zone;
  auto at = parse_endpoint(cfg_.bind, cfg_.port, error, &zone);
  if (!at) {
    error = "--osc-bind " + cfg_.bind + ": " + error;
    return false;
  }
  if (cfg_.allow.empty()) {
    if (!at->is_loopback()) {
      error = "--allow is required when --osc-bind is not a loopback address (e.g. --allow 192.168.1.0/24)";
      return false;
    }
    allow_ = AllowList::loopback();
  } else if (!allow_.parse(cfg_.allow, error)) {
    error = "--allow: " + error;
    return false;
  }
  if (!zone.empty()) {
    // A link-local address's interface not there yet (a USB or Wi-Fi adapter, a bridge made later
    // at boot): nothing can be bound to it before it exists. Waited for as a late address is
    // (await_interface(), from run()); a malformed address or zone was refused above.
    waiting_interface_ = zone;
    spdlog::warn(
        "--osc-bind {}: no network interface \"{}\" yet (it may still be coming up): OSC is bound once it "
        "appears, and arrives once the address is configured. If it never does, check the name (`ip -brief "
        "link` lists this machine's interfaces)",
        cfg_.bind, zone);
  } else if (!bind_sockets(*at, error)) {
    return false;
  }
  router_.set_status_extra([this](std::vector<OscArg>& f) {
    auto kv = [&](const char* k, std::uint64_t v) {
      f.push_back(OscArg::Str(k));
      f.push_back(OscArg::Int64(static_cast<std::int64_t>(v)));
    };
    kv("datagrams", stats_.datagrams.load());
    kv("refused_sources", stats_.refused.load());
    kv("dropped_datagrams", stats_.kernel_drops.load());
    kv("replies_dropped", stats_.replies_dropped.load());
    kv("tcp_clients", stats_.tcp_clients.load());
    kv("tcp_refused", stats_.tcp_refused.load());
    kv("tcp_timed_out", stats_.tcp_timed_out.load());
    if (const DeviceStatus* d = cfg_.device) {
      f.push_back(OscArg::Str("device"));
      f.push_back(OscArg::Str(to_string(d->state())));
      if (const std::string note = d->output_note(); !note.empty()) {  // the null backend: nothing heard
        f.push_back(OscArg::Str("device_note"));
        f.push_back(OscArg::Str(note));
      }
      if (d->state() == DeviceState::kRunning) {  // since it last opened (uptime_s: since the service started)
        f.push_back(OscArg::Str("device_up_s"));
        f.push_back(OscArg::Float(d->up_seconds()));
      }
      kv("device_losses", d->losses());
      if (double ago = 0, lasted = 0; d->last_loss(ago, lasted)) {  // the last loss, once it runs again
        f.push_back(OscArg::Str("device_last_loss_age_s"));         // since it began (seconds of the system's clock)
        f.push_back(OscArg::Float(ago));
        f.push_back(OscArg::Str("device_last_loss_s"));  // how long the device was away
        f.push_back(OscArg::Float(lasted));
      }
      f.push_back(OscArg::Str("rt_policy"));
      f.push_back(OscArg::Str(d->rt_policy()));
      if (d->state() == DeviceState::kWaiting) {  // a configured device not there yet at start
        f.push_back(OscArg::Str("device_waiting_s"));
        f.push_back(OscArg::Float(d->lost_for_seconds()));
        f.push_back(OscArg::Str("device_error"));
        f.push_back(OscArg::Str(d->reason()));
        kv("device_attempts", d->attempts());
      }
      if (d->state() == DeviceState::kLost) {
        f.push_back(OscArg::Str("device_lost_s"));
        f.push_back(OscArg::Float(d->lost_for_seconds()));
        f.push_back(OscArg::Str("device_error"));
        f.push_back(OscArg::Str(d->reason()));
        kv("device_attempts", d->attempts());
      }
    }
  });
  return true;
}

// The UDP socket (and the TCP listener) on `at`. An address the machine does not have yet is
// listened on anyway (a Pi that boots before its DHCP lease or an IPv6 address still tentative
// would otherwise fail, be restarted and given up on by systemd): a warning now, a line when it
// appears (run()).
bool OscServer::bind_sockets(const Endpoint& at, std::string& error) {
  udp_ = UdpSocket::bind(at, error, /*pending_ok=*/true);
  if (!udp_) {
    error = "OSC UDP " + at.to_string() + ": " + error;
    return false;
  }
  if (cfg_.tcp) {
    auto tat = parse_endpoint(cfg_.bind, cfg_.tcp_port, error);
    if (tat) tcp_ = TcpListener::listen(*tat, error, /*pending_ok=*/true);
    if (!tcp_) {
      error = "OSC TCP " + (tat ? tat->to_string() : cfg_.bind) + ": " + error;
      udp_.reset();
      return false;
    }
  }
  const bool pending = udp_->address_pending() || (tcp_ && tcp_->address_pending());
  bind_watch_ = BindWatch("--osc-bind", cfg_.bind, at, "OSC arrives", pending);
  if (pending) {
    spdlog::warn(
        "--osc-bind {}: no network interface has this address yet (the network may still be coming up); "
        "listening on it anyway: OSC arrives once it is configured. If it never is, check the address "
        "(`ip -brief address` lists this machine's)",
        cfg_.bind);
  }
  return true;
}

// [control] --osc-bind's interface, looked for once a second while it is missing: bound as soon
// as it is there. A bind that fails then (the port taken meanwhile) is said, and tried again.
void OscServer::await_interface(std::chrono::steady_clock::time_point now) {
  if (waiting_interface_.empty() || now - interface_checked_ < std::chrono::seconds(1)) return;
  interface_checked_ = now;
  std::string error, zone;
  const auto at = parse_endpoint(cfg_.bind, cfg_.port, error, &zone);
  if (!at || !zone.empty()) return;  // not there yet
  bool bound = false;
  {
    std::lock_guard<std::mutex> g(sockets_mu_);  // describe() may read them on the main thread
    bound = bind_sockets(*at, error);
  }
  if (!bound) {
    if (error != interface_error_) {
      spdlog::error("--osc-bind {}: interface \"{}\" is there, but {}: trying again", cfg_.bind, waiting_interface_,
                    error);
    }
    interface_error_ = error;
    return;
  }
  spdlog::info("--osc-bind {}: network interface \"{}\" is there now: {}", cfg_.bind, waiting_interface_, describe());
  waiting_interface_.clear();
}

Endpoint OscServer::local_udp() const { return udp_ ? udp_->local() : Endpoint{}; }
Endpoint OscServer::local_tcp() const { return tcp_ ? tcp_->local() : Endpoint{}; }

std::string OscServer::describe() const {
  std::lock_guard<std::mutex> g(sockets_mu_);
  if (!udp_) {
    return "OSC on --osc-bind " + cfg_.bind + " (waiting for its network interface \"" + waiting_interface_ +
           "\"), allowing " + allow_.to_string();
  }
  std::string s = "OSC on udp " + local_udp().to_string();
  if (tcp_) s += " and tcp " + local_tcp().to_string();
  s += ", allowing " + allow_.to_string();
  return s;
}

bool OscServer::shut_out() const {
  const Endpoint at = local_udp();
  return at.is_loopback() && !allow_.allows(at);
}

// Bound to every interface (0.0.0.0, ::) with an allow-list that leaves out 127.0.0.1: clients on
// this machine (stemctl's default host) are refused — a new-user pass followed the README's own
// migration example (allow = "192.168.1.0/24") and got "is stemd running?" from stemctl.
bool OscServer::local_refused() const {
  const Endpoint at = local_udp();
  const std::string host = at.host();
  if (at.len == 0 || (host != "0.0.0.0" && host != "::")) return false;
  std::string error;
  const auto local = parse_endpoint("127.0.0.1", at.port(), error);
  return local && !allow_.allows(*local);
}

void OscServer::start() {
  if (running_.exchange(true)) return;
  std::uint64_t pending = 0;  // a stop() of an earlier run left the wake-up set: clear it
  [[maybe_unused]] auto n = read(wake_fd_, &pending, sizeof pending);
  // OSC loads run on opener threads from now on; one that finishes wakes this loop. The wake-up
  // holds its own descriptor: a job stuck past shutdown never writes to a closed one.
  struct WakeFd {
    int fd = -1;
    ~WakeFd() {
      if (fd >= 0) close(fd);
    }
  };
  auto wake = std::make_shared<WakeFd>();
  wake->fd = fcntl(wake_fd_, F_DUPFD_CLOEXEC, 0);
  router_.enable_async_loads([wake] {
    const std::uint64_t one = 1;
    [[maybe_unused]] auto n = write(wake->fd, &one, sizeof one);
  });
  thread_ = std::thread([this] { run(); });
}

bool OscServer::set_allow(const std::string& cidrs, std::string& error) {
  AllowList next;
  if (cidrs.empty()) {
    if (!udp_ || !udp_->local().is_loopback()) {
      error = "an empty allow-list is only valid on a loopback address";
      return false;
    }
    next = AllowList::loopback();
  } else if (!next.parse(cidrs, error)) {
    return false;
  }
  allow_ = std::move(next);
  cfg_.allow = cidrs;
  return true;
}

void OscServer::post(std::function<void()> f) {
  if (!running_.load()) {
    f();
    return;
  }
  {
    std::lock_guard<std::mutex> g(posted_mu_);
    posted_.push_back(std::move(f));
  }
  const std::uint64_t one = 1;
  [[maybe_unused]] auto n = write(wake_fd_, &one, sizeof one);
}

void OscServer::stop() {
  if (!running_.exchange(false)) return;
  const std::uint64_t one = 1;
  [[maybe_unused]] auto n = write(wake_fd_, &one, sizeof one);
  if (thread_.joinable()) thread_.join();
}

void OscServer::send(const Outgoing& o) {
  if (o.to.local != 0) {
    if (local_sink_) local_sink_(o);
    return;
  }
  bool ok = false;
  if (o.to.tcp_fd >= 0) {
    // The descriptor and the peer's address and port: a client that left may have handed its
    // descriptor to the next one before an answer for it (a load's) was ready.
    for (auto& c : conns_) {
      if (c->fd() == o.to.tcp_fd && c->peer() == o.to.endpoint) ok = c->send_packet(o.data.data(), o.data.size());
    }
  } else if (udp_) {  // (none while --osc-bind's interface is missing)
    ok = udp_->send_to(o.to.endpoint, o.data.data(), o.data.size());
  }
  if (!ok) stats_.replies_dropped.fetch_add(1, std::memory_order_relaxed);
}

// [control] A source outside --allow: no reply, but the log says so — at most one line every 10 s
// (a refused stemctl on this machine, or a client whose address changed, left no trace at all).
void OscServer::log_refused(const Endpoint& from) {
  ++refused_unlogged_;
  const auto now = std::chrono::steady_clock::now();
  if (now - refused_logged_at_ < std::chrono::seconds(10)) return;
  refused_logged_at_ = now;
  spdlog::warn("OSC: refused {} datagram{} from outside --allow {} (the last from {}); no reply is sent",
               refused_unlogged_, refused_unlogged_ == 1 ? "" : "s", allow_.to_string(), from.host());
  refused_unlogged_ = 0;
}

void OscServer::handle_udp() {
  if (!udp_) return;  // --osc-bind's interface is not there yet
  // Bounded per pass so the controller is serviced even under a flood.
  for (int i = 0; i < 512 && udp_->receive(dgram_); ++i) {
    stats_.datagrams.fetch_add(1, std::memory_order_relaxed);
    if (!allow_.allows(dgram_.from)) {
      stats_.refused.fetch_add(1, std::memory_order_relaxed);
      log_refused(dgram_.from);
      continue;  // no reply: strangers learn nothing
    }
    out_.clear();
    router_.handle_packet(dgram_.data.data(), dgram_.data.size(), Peer{dgram_.from, -1}, out_);
    for (const auto& o : out_) send(o);
  }
  stats_.kernel_drops.store(udp_->kernel_drops(), std::memory_order_relaxed);
  for (const Endpoint& gone : udp_->take_unreachable()) router_.drop_subscriber(Peer{gone, -1});
}

std::size_t OscServer::per_address_limit() const {
  if (cfg_.max_tcp_clients_per_address > 0) return cfg_.max_tcp_clients_per_address;
  return std::max<std::size_t>(1, cfg_.max_tcp_clients / 2);
}

// New TCP clients: allowed, within the slots and the address's share, or closed. Out of
// descriptors, accept is tried again after a back-off, not at every pass.
void OscServer::accept_tcp(std::chrono::steady_clock::time_point now) {
  std::uint64_t failed = 0;
  if (double over = 0; tcp_accept_.ended(now, failed, over)) {
    spdlog::info("OSC: no TCP accept has failed for 10 s ({} tries failed over {:.1f} s before)", failed, over);
  }
  if (!tcp_ || tcp_accept_paused(now)) return;
  std::uint64_t skipped = 0;
  int error = 0;
  while (auto c = tcp_->accept(&error)) {
    tcp_accept_.succeeded();
    if (!allow_.allows(c->peer())) {
      stats_.refused.fetch_add(1, std::memory_order_relaxed);
      continue;  // closed by its destructor
    }
    const std::string host = c->peer().host();
    const auto same = static_cast<std::size_t>(
        std::count_if(conns_.begin(), conns_.end(), [&](const auto& o) { return o->peer().host() == host; }));
    const bool full = conns_.size() >= cfg_.max_tcp_clients;
    if (full || same >= per_address_limit()) {
      stats_.tcp_refused.fetch_add(1, std::memory_order_relaxed);
      if (log_limit_.allow("tcp refused", skipped)) {
        spdlog::warn("OSC: refusing TCP client {}: {}{}", c->peer().to_string(),
                     full ? std::to_string(conns_.size()) + " clients already (--max-tcp-clients)"
                          : std::to_string(same) + " clients from " + host + " already (--max-tcp-clients-per-address)",
                     base::suppressed_note(skipped));
      }
      continue;
    }
    conns_.push_back(std::move(c));
  }
  if (error == 0) return;
  stats_.tcp_accept_failures.fetch_add(1, std::memory_order_relaxed);
  bool first = false;
  tcp_accept_resume_ = now + tcp_accept_.failed(now, first);
  if (first) {
    spdlog::warn(
        "OSC: cannot accept TCP clients: {}: new connections wait and are tried again every 0.1-1 s (streamed "
        "sources each keep their file open)",
        std::strerror(error));
  }
}

void OscServer::handle_tcp() {
  const auto now = TcpConnection::Clock::now();
  accept_tcp(now);
  std::uint64_t skipped = 0;
  const auto seconds = [](double s) {
    return std::chrono::duration_cast<TcpConnection::Clock::duration>(std::chrono::duration<double>(s));
  };
  std::vector<std::vector<std::uint8_t>> packets;
  for (std::size_t i = 0; i < conns_.size();) {
    packets.clear();
    std::string error;
    TcpConnection& conn = *conns_[i];
    bool alive = conn.read_packets(packets, cfg_.max_packet, error);
    const Peer peer{conn.peer(), conn.fd()};
    for (const auto& p : packets) {
      stats_.datagrams.fetch_add(1, std::memory_order_relaxed);
      out_.clear();
      router_.handle_packet(p.data(), p.size(), peer, out_);
      for (const auto& o : out_) send(o);
    }
    if (alive) {
      // A slot is for a client that talks: one that sends nothing for the idle time-out, or
      // leaves a frame (or its first packet) unfinished, gives it back.
      char why[96] = "";
      if (now - conn.last_packet() > seconds(cfg_.tcp_idle_timeout_s)) {
        std::snprintf(why, sizeof why, "idle for %g s (--tcp-idle-timeout)", cfg_.tcp_idle_timeout_s);
      } else if ((conn.partial() || !conn.any_packet()) &&
                 now - conn.partial_since() > seconds(cfg_.tcp_frame_timeout_s)) {
        std::snprintf(why, sizeof why, "%s within %g s (--tcp-frame-timeout)",
                      conn.any_packet() ? "frame not completed" : "no packet", cfg_.tcp_frame_timeout_s);
      }
      if (why[0] != '\0') {
        alive = false;
        error = why;
        stats_.tcp_timed_out.fetch_add(1, std::memory_order_relaxed);
      }
    }
    if (!alive) {
      if (error != "closed" && log_limit_.allow("tcp client", skipped)) {
        spdlog::warn("OSC: TCP client {}: {}, closed{}", peer.endpoint.to_string(), error,
                     base::suppressed_note(skipped));
      }
      router_.drop_subscriber(peer);
      conns_.erase(conns_.begin() + static_cast<std::ptrdiff_t>(i));
      continue;
    }
    ++i;
  }
  stats_.tcp_clients.store(conns_.size(), std::memory_order_relaxed);
  log_limit_.flush([](const std::string& kind, std::uint64_t n) {
    spdlog::warn("OSC {}: … and {} more suppressed (at most 5 lines a second)", kind, n);
  });
}

void OscServer::run() {
  std::vector<pollfd> fds;
  std::uint64_t last_underflows = ctl_.engine().metrics().device_underflows.load();
  // A new image after a device loss starts lost: the image that lost it told the subscribers
  // (recovery.cpp), and they hear "restored" from this one.
  DeviceState last_device = cfg_.device ? cfg_.device->state() : DeviceState::kRunning;
  while (running_.load(std::memory_order_relaxed)) {
    fds.clear();
    fds.push_back(pollfd{wake_fd_, POLLIN, 0});
    if (udp_) fds.push_back(pollfd{udp_->fd(), POLLIN, 0});
    // Out of descriptors, a pending connection keeps the listener readable: left out meanwhile.
    if (tcp_ && !tcp_accept_paused(std::chrono::steady_clock::now())) fds.push_back(pollfd{tcp_->fd(), POLLIN, 0});
    for (const auto& c : conns_) fds.push_back(pollfd{c->fd(), POLLIN, 0});
    const bool bell = cfg_.engine_bell_fd >= 0;
    if (bell) fds.push_back(pollfd{cfg_.engine_bell_fd, POLLIN, 0});
    // idle_wait_ms (100 ms) unless something moves with the audio; without the engine's bell,
    // playing voices need a pass every period too (their starts, ends, retirees).
    poll(fds.data(), fds.size(), router_.wait_ms(!bell, cfg_.idle_wait_ms));
    stats_.passes.fetch_add(1, std::memory_order_relaxed);

    std::uint64_t woken = 0;
    [[maybe_unused]] auto nr = read(wake_fd_, &woken, sizeof woken);
    if (bell && (fds.back().revents & POLLIN) != 0) nr = read(cfg_.engine_bell_fd, &woken, sizeof woken);
    std::vector<std::function<void()>> posted;
    {
      std::lock_guard<std::mutex> g(posted_mu_);
      posted.swap(posted_);
    }
    for (auto& f : posted) f();
    handle_udp();
    handle_tcp();
    ctl_.service();  // engine events → logs and router notifications; retirees freed
    // Loads finished on the opener threads: installed, answered, and what waited behind them run.
    router_.poll_loads();
    out_.clear();
    router_.take_replies(out_);
    for (const auto& o : out_) send(o);
    const std::uint64_t underflows = ctl_.engine().metrics().device_underflows.load(std::memory_order_relaxed);
    if (underflows != last_underflows) {
      router_.notify_device("underflow", {OscArg::Int64(static_cast<std::int64_t>(underflows))});
      last_underflows = underflows;
    }
    if (cfg_.device && cfg_.device->state() != last_device) {
      last_device = cfg_.device->state();
      if (last_device == DeviceState::kLost) {
        router_.notify_device("lost", {OscArg::Str(cfg_.device->reason())});
      } else if (last_device == DeviceState::kWaiting) {
        router_.notify_device("waiting", {OscArg::Str(cfg_.device->reason())});
      } else {
        router_.notify_device("restored", {OscArg::Int64(static_cast<std::int64_t>(cfg_.device->losses()))});
      }
    }
    out_.clear();
    router_.take_notifications(out_);
    for (const auto& o : out_) send(o);
    router_.log_bad_input();
    router_.tick();
    await_interface(std::chrono::steady_clock::now());    // --osc-bind's interface, while it is missing
    bind_watch_.check(std::chrono::steady_clock::now());  // the address's comings and goings
  }
}

}  // namespace stemd::control
