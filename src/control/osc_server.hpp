// The OSC server: the control thread of a running daemon.
//
// It owns the sockets (UDP, optional TCP), drops datagrams from sources outside the allow-list,
// hands the rest to the Router, sends the replies from the socket they came in on, services the
// Controller (engine events and retirees) at least every 10 ms, and delivers notifications to
// subscribers, dropping those that became unreachable.
//
// Threads: open()/start()/stop() from the main thread [main]; everything else runs on the
// server's own thread, which is the control thread [control] between start() and stop().
#pragma once

#include "device_status.hpp"
#include "base/log_guard.hpp"
#include "accept_backoff.hpp"
#include "bind_watch.hpp"
#include "net.hpp"
#include "router.hpp"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace stemd::control {

struct OscServerConfig {
  std::string bind = "127.0.0.1";
  std::uint16_t port = 57120;  // 0 = any free port (see local_udp())
  std::uint16_t tcp_port = 0;  // 0 = no TCP listener
  bool tcp = false;
  std::string allow;  // CIDR list; empty = loopback only (allowed only on loopback)
  std::size_t max_tcp_clients = 16;
  // At most this many TCP connections from one address (0: half of max_tcp_clients, at least
  // 1), so one address cannot take every slot.
  std::size_t max_tcp_clients_per_address = 0;
  // A TCP connection that completes no packet for this long is closed (seconds).
  double tcp_idle_timeout_s = 300.0;
  // A frame must be complete this long after its first byte, and a new connection must have
  // sent its first packet by then (seconds): half-sent frames cannot hold a slot.
  double tcp_frame_timeout_s = 5.0;
  std::size_t max_packet = 65536;
  // The output device's health (the daemon sets it): lost/restored notifications and status
  // fields. Null = not reported.
  const DeviceStatus* device = nullptr;
  // An eventfd written when the engine has news for the control thread (Engine::take_control_bell,
  // passed on by app::Instance's relay thread, which wires it), or -1. With it, the server's loop sleeps up
  // to idle_wait_ms while voices play; without it, it looks at the engine every period.
  int engine_bell_fd = -1;
  // The longest sleep of the server's loop when nothing needs it sooner (ms of wall time): a
  // glide, a load or Link in flight, or voices playing without a bell, bring it to a period.
  int idle_wait_ms = 100;
};

struct OscServerStats {
  std::atomic<std::uint64_t> datagrams{0};
  std::atomic<std::uint64_t> refused{0};          // sources outside the allow-list
  std::atomic<std::uint64_t> kernel_drops{0};     // the socket's receive buffer overflowed
  std::atomic<std::uint64_t> replies_dropped{0};  // send failed (peer's buffer full)
  std::atomic<std::uint64_t> tcp_clients{0};
  std::atomic<std::uint64_t> tcp_refused{0};          // over --max-tcp-clients or the per-address share
  std::atomic<std::uint64_t> tcp_timed_out{0};        // idle or incomplete-frame time-outs
  std::atomic<std::uint64_t> passes{0};               // of the server's loop (its wake-ups)
  std::atomic<std::uint64_t> tcp_accept_failures{0};  // accept() failed (out of descriptors): backed off
};

class OscServer {
 public:
  OscServer(Controller& ctl, Router& router, const OscServerConfig& cfg);
  ~OscServer();

  bool open(std::string& error);  // [main] binds; the port is in use → error
  void start();                   // [main] the control thread starts
  void stop();                    // [main] joins it; the main thread may then use the Controller
  Endpoint local_udp() const;
  Endpoint local_tcp() const;
  const OscServerStats& stats() const { return stats_; }
  std::string describe() const;  // [any thread]
  // Bound to loopback with an allow-list that does not take loopback (--allow is shared with the
  // web monitor): nothing can reach it.
  bool shut_out() const;
  // Bound to every interface, but --allow leaves out 127.0.0.1: stemctl on this machine is refused.
  bool local_refused() const;
  // [any thread] Runs f on the control thread at its next pass (at once if the server is not
  // running: the caller is then the control thread). The way the main thread changes what the
  // control thread owns: a SIGHUP reload, the voices of a resumed session.
  void post(std::function<void()> f);
  // [control] A new allow-list (SIGHUP reload). False, with the reason, when it does not parse
  // or would open a non-loopback socket to everyone; the old list then stays.
  bool set_allow(const std::string& cidrs, std::string& error);
  // [main, before start()] Where replies and notifications to in-process peers (Peer::local)
  // go, on the control thread: the web API.
  void set_local_sink(std::function<void(const Outgoing&)> f) { local_sink_ = std::move(f); }

 private:
  void run();
  bool bind_sockets(const Endpoint& at, std::string& error);
  void await_interface(std::chrono::steady_clock::time_point now);
  void send(const Outgoing& o);
  void handle_udp();
  void log_refused(const Endpoint& from);
  std::uint64_t refused_unlogged_ = 0;
  std::chrono::steady_clock::time_point refused_logged_at_{};
  void handle_tcp();
  void accept_tcp(std::chrono::steady_clock::time_point now);
  bool tcp_accept_paused(std::chrono::steady_clock::time_point now) const { return now < tcp_accept_resume_; }
  std::size_t per_address_limit() const;

  Controller& ctl_;
  Router& router_;
  OscServerConfig cfg_;
  AllowList allow_;
  std::unique_ptr<UdpSocket> udp_;
  std::unique_ptr<TcpListener> tcp_;
  std::vector<std::unique_ptr<TcpConnection>> conns_;
  std::vector<Outgoing> out_;
  Datagram dgram_;
  std::thread thread_;
  std::atomic<bool> running_{false};
  int wake_fd_ = -1;
  std::mutex posted_mu_;
  std::vector<std::function<void()>> posted_;
  OscServerStats stats_;
  base::LogLimiter log_limit_;
  BindWatch bind_watch_;  // whether the machine has --osc-bind's address (bound before it did, or lost)
  // --osc-bind's interface while the machine has none of that name (no socket until it does).
  std::string waiting_interface_, interface_error_;
  // Held while the control thread binds them late, and by describe() (any thread).
  mutable std::mutex sockets_mu_;
  std::chrono::steady_clock::time_point interface_checked_{};
  std::function<void(const Outgoing&)> local_sink_;
  // accept() out of descriptors: the pending connection keeps the listener readable, so the loop
  // spun (0.65 of a core, outside pass 24). The listener is left out of the poll until
  // tcp_accept_resume_ (control::AcceptBackoff).
  AcceptBackoff tcp_accept_;
  std::chrono::steady_clock::time_point tcp_accept_resume_{};
};

}  // namespace stemd::control
