// stemctl's side of the wire: one socket to the daemon, requests and their replies.
//
// UDP (default): a UdpSocket (control/net.hpp) bound to port 0 of the daemon's address family
// — on loopback when the daemon is on loopback — so replies come straight back to it. An ICMP
// "port unreachable" for the daemon's address ends a wait early ("nothing is listening").
// TCP (--tcp): a connected stream with OSC 1.0 framing (int32 big-endian size + packet).
//
// Every request waits for *its* reply: a /done or /fail whose first argument is the address
// sent. A daemon that does not know our address yet (a UDP source beyond loopback) may answer
// with `/stemd/cookie <token>` instead (or `/fail … <token> "cookie required"`): the request is
// then sent again once, in a bundle behind `/stemd/cookie <token>`, which proves that we
// receive at this address. Anything else that arrives meanwhile (event notifications, a late reply to an earlier
// request) is handed to an optional callback and otherwise ignored.
#pragma once

#include "control/net.hpp"
#include "control/osc.hpp"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace stemd::ctl {

using control::OscArg;
using control::OscMessage;
using Clock = std::chrono::steady_clock;

struct ClientOptions {
  std::string host = "127.0.0.1";
  std::uint16_t port = 57120;
  bool tcp = false;
  double timeout_s = 2.0;
};

// What a wait for an incoming message came to.
enum class Wait {
  kMessage,      // `out` holds a message
  kTimeout,      // the deadline passed
  kInterrupted,  // a signal arrived and the interrupt flag is set
  kGone,         // the daemon is not there: port unreachable, connection refused or closed
};

// A request's outcome.
struct Result {
  Wait wait = Wait::kTimeout;  // kMessage when a reply came
  OscMessage reply;            // /done or /fail
  std::string error;           // for kGone: why
  bool done() const { return wait == Wait::kMessage && reply.address == "/done"; }
  bool failed() const { return wait == Wait::kMessage && reply.address == "/fail"; }
};

class Client {
 public:
  // Resolves the host (numeric addresses, "localhost", or a name through the system resolver),
  // opens the socket (TCP: connects within the time-out). Null with a reason on failure;
  // `gone` is set when the failure means "the daemon is not there" (TCP connection refused or
  // timed out) rather than a bad host or a local error.
  static std::unique_ptr<Client> open(const ClientOptions& o, std::string& error, bool& gone);
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // "127.0.0.1:57120", "[::1]:57120" (with " (tcp)" for TCP).
  std::string where() const;
  const ClientOptions& options() const { return opts_; }

  // When set, a signal that interrupts a wait while *flag is true ends it with kInterrupted.
  void set_interrupt_flag(const std::atomic<bool>* flag) { interrupt_ = flag; }

  bool send(const OscMessage& m, std::string& error);
  // Several messages in one bundle (immediate).
  bool send_bundle(const std::vector<OscMessage>& ms, std::string& error);
  // The next message from the daemon, waiting until `deadline`.
  Wait receive(OscMessage& out, Clock::time_point deadline, std::string& error);
  // Sends `m` and waits up to `timeout_s` for its reply; other messages go to `other`.
  Result request(const OscMessage& m, double timeout_s, const std::function<void(const OscMessage&)>& other = nullptr);
  Result request(const OscMessage& m) { return request(m, opts_.timeout_s); }

  // Where the last datagram from the daemon's port but another address came from (ignored), or "".
  const std::string& stray_source() const { return stray_; }

  // True when `reply` is the answer to a message sent to `address`.
  static bool is_reply_to(const OscMessage& reply, const std::string& address);

 private:
  Client() = default;
  Wait receive_udp(OscMessage& out, Clock::time_point deadline, std::string& error);
  Wait receive_tcp(OscMessage& out, Clock::time_point deadline, std::string& error);
  bool send_bytes(const std::vector<std::uint8_t>& bytes, std::string& error);
  // The token of a cookie challenge in `in` (see above), or "".
  static std::string cookie_of(const OscMessage& in, const std::string& address);
  bool interrupted() const { return interrupt_ != nullptr && interrupt_->load(); }

  ClientOptions opts_;
  control::Endpoint target_;
  std::unique_ptr<control::UdpSocket> udp_;
  control::Datagram dgram_;
  std::string stray_;
  bool to_any_ = false;  // --host 0.0.0.0 or ::: this machine, which answers from its loopback address
  int tcp_fd_ = -1;
  std::vector<std::uint8_t> tcp_in_;  // bytes received, not yet a whole frame
  const std::atomic<bool>* interrupt_ = nullptr;
};

}  // namespace stemd::ctl
