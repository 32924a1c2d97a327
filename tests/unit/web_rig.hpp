// An Instance with its own control thread (no OSC sockets) and the web monitor on a free
// loopback port, wired as the daemon wires them (app/startup.cpp: open_web), for unit tests that
// talk to the web server over real connections (web_events_test.cpp, web_http_test.cpp), and
// the raw-socket client those tests send their requests with, byte for byte as written.
#pragma once

#include "router_rig.hpp"
#include "web/web_server.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <future>
#include <string>
#include <thread>
#include <utility>

namespace stemd::test {

struct WebRig {
  RouterRig rig;
  web::WebServer web;

  static app::InstanceConfig monitor_config(control::RouterConfig rc = {}) {
    app::InstanceConfig ic = RouterRig::instance_config(std::move(rc));
    ic.engine.monitor = true;  // the web server needs the master's tap
    return ic;
  }
  static web::WebConfig web_config() {
    web::WebConfig wc;
    wc.root = std::string(STEMD_SOURCE_DIR) + "/web";
    return wc;
  }
  explicit WebRig(control::RouterConfig rc = {}, const web::WebConfig& wc = web_config())
      : rig(monitor_config(std::move(rc))),
        web(wc, rig.ctl, rig.router, rig.media, [this](std::function<void()> f) { post(f); }) {}
  ~WebRig() {
    web.stop();
    rig.inst.stop_control();
  }
  void post(std::function<void()> f) { rig.inst.post(std::move(f)); }
  bool start(std::string& error) {
    if (!web.open(error)) return false;
    rig.inst.set_local_sink(web.sink());
    rig.inst.start_control();
    web.start();
    return true;
  }
  // Runs f on the control thread and waits for it.
  void on_control(std::function<void()> f) {
    std::promise<void> done;
    post([&] {
      f();
      done.set_value();
    });
    done.get_future().wait();
  }
  std::size_t subscribers() {
    std::size_t n = 0;
    on_control([&] { n = rig.router.subscribers(); });
    return n;
  }
  // The server's own subscription (/stemd/notify 1 from its in-process peer) is made on start:
  // the count once it is there (1), or what it is after 30 s.
  std::size_t wait_subscribed() {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (subscribers() == 0 && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return subscribers();
  }
  // A device underflow as the OSC server's tick reports one (osc_server.cpp).
  void underflow(std::int64_t total) {
    on_control([&] { rig.router.notify_device("underflow", {control::OscArg::Int64(total)}); });
  }
};

// A TCP connection to 127.0.0.1:port whose reads give up after 10 s without a byte (a hang
// guard), or -1 when it cannot be made. The caller closes it.
inline int loopback_connect(std::uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  timeval tv{10, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// True when all of `bytes` went out on `fd` in one send.
inline bool loopback_send(int fd, const std::string& bytes) {
  return ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(bytes.size());
}

// Sends `request` on a new connection to 127.0.0.1:port and returns every byte the server sends
// until it closes the connection (or until 10 s pass without a byte: a hang guard; then
// `*closed`, when given, is false).
inline std::string loopback_talk(std::uint16_t port, const std::string& request, bool* closed = nullptr) {
  const int fd = loopback_connect(port);
  if (fd < 0) return {};
  std::string out;
  if (loopback_send(fd, request)) {
    char buf[4096];
    ssize_t n;
    while ((n = ::recv(fd, buf, sizeof buf, 0)) > 0) out.append(buf, static_cast<std::size_t>(n));
    if (closed) *closed = n == 0;
  }
  ::close(fd);
  return out;
}

// An HTTP/1.1 request with a loopback Host, `extra` header lines ("Name: value\r\n" each) and
// no body.
inline std::string http_request(const std::string& method, const std::string& target, const std::string& extra = "") {
  return method + " " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\n" + extra + "\r\n";
}

// A WebSocket upgrade of `target` with `headers` (the Sec-WebSocket-* lines the test wants) and
// the Connection header's value `connection`.
inline std::string ws_upgrade(const std::string& target, const std::string& headers,
                              const std::string& connection = "Upgrade, close") {
  return http_request("GET", target, "Upgrade: websocket\r\nConnection: " + connection + "\r\n" + headers);
}

}  // namespace stemd::test
