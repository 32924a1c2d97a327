// stemctl's connection to the daemon (see client.hpp).
#include "client.hpp"

#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>

namespace stemd::ctl {

namespace {

constexpr std::size_t kMaxFrame = 1 << 20;  // replies are < 64 KiB; anything huge is not stemd

int ms_until(Clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  if (left <= 0) return 0;
  return static_cast<int>(std::min<long long>(left + 1, 60'000));  // +1: never wake just before it
}

Clock::time_point deadline_in(double seconds) {
  if (!(seconds > 0)) seconds = 0;
  seconds = std::min(seconds, 86400.0);
  return Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
}

// Numeric addresses and "localhost" without a resolver; other names through getaddrinfo().
std::optional<control::Endpoint> resolve(const std::string& host, std::uint16_t port, bool tcp, std::string& error) {
  if (auto e = control::parse_endpoint(host, port, error)) return e;
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = tcp ? SOCK_STREAM : SOCK_DGRAM;
  addrinfo* res = nullptr;
  const int rc = getaddrinfo(host.c_str(), nullptr, &hints, &res);
  if (rc != 0 || res == nullptr) {
    error = "cannot resolve host \"" + host + "\": " + gai_strerror(rc);
    return std::nullopt;
  }
  control::Endpoint e;
  std::memcpy(&e.addr, res->ai_addr, std::min<std::size_t>(res->ai_addrlen, sizeof e.addr));
  e.len = static_cast<socklen_t>(res->ai_addrlen);
  freeaddrinfo(res);
  if (e.family() == AF_INET) {
    reinterpret_cast<sockaddr_in&>(e.addr).sin_port = htons(port);
  } else if (e.family() == AF_INET6) {
    reinterpret_cast<sockaddr_in6&>(e.addr).sin6_port = htons(port);
  } else {
    error = "host \"" + host + "\" is neither IPv4 nor IPv6";
    return std::nullopt;
  }
  return e;
}

// The local address to bind: loopback when the daemon is on loopback, else any.
std::string local_host_for(const control::Endpoint& target) {
  if (target.family() == AF_INET6) {
    const auto& a = reinterpret_cast<const sockaddr_in6&>(target.addr).sin6_addr;
    return IN6_IS_ADDR_LOOPBACK(&a) ? "::1" : "::";
  }
  return target.is_loopback() ? "127.0.0.1" : "0.0.0.0";
}

}  // namespace

std::unique_ptr<Client> Client::open(const ClientOptions& o, std::string& error, bool& gone) {
  gone = false;
  auto target = resolve(o.host, o.port, o.tcp, error);
  if (!target) return nullptr;
  std::unique_ptr<Client> c(new Client());
  c->opts_ = o;
  c->target_ = *target;
  {
    const sockaddr_storage& a = target->addr;
    c->to_any_ =
        (target->family() == AF_INET && reinterpret_cast<const sockaddr_in&>(a).sin_addr.s_addr == htonl(INADDR_ANY)) ||
        (target->family() == AF_INET6 && IN6_IS_ADDR_UNSPECIFIED(&reinterpret_cast<const sockaddr_in6&>(a).sin6_addr));
  }

  if (!o.tcp) {
    auto local = control::parse_endpoint(local_host_for(*target), 0, error);
    if (!local) return nullptr;
    c->udp_ = control::UdpSocket::bind(*local, error);
    if (!c->udp_) {
      error = "cannot open a UDP socket: " + error;
      return nullptr;
    }
    return c;
  }

  const int fd = ::socket(target->family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    error = std::string("cannot open a TCP socket: ") + std::strerror(errno);
    return nullptr;
  }
  c->tcp_fd_ = fd;
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&target->addr), target->len) != 0) {
    if (errno != EINPROGRESS) {
      error = std::string(std::strerror(errno));
      gone = true;
      return nullptr;
    }
    const auto deadline = deadline_in(o.timeout_s);
    for (;;) {
      pollfd p{fd, POLLOUT, 0};
      const int n = ::poll(&p, 1, ms_until(deadline));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        error = "connection timed out";
        gone = true;
        return nullptr;
      }
      break;
    }
    int err = 0;
    socklen_t len = sizeof err;
    ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) {
      error = std::strerror(err);
      gone = true;
      return nullptr;
    }
  }
  return c;
}

Client::~Client() {
  if (tcp_fd_ >= 0) ::close(tcp_fd_);
}

std::string Client::where() const { return target_.to_string() + (opts_.tcp ? " (tcp)" : ""); }

bool Client::is_reply_to(const OscMessage& reply, const std::string& address) {
  if (reply.address != "/done" && reply.address != "/fail") return false;
  if (reply.args.empty() || !reply.args[0].is_string()) return false;
  // "?" is how the daemon names a packet it could not read at all: only ours reach us.
  return reply.args[0].s == address || (reply.address == "/fail" && reply.args[0].s == "?");
}

bool Client::send(const OscMessage& m, std::string& error) {
  const auto bytes = control::osc_serialise(m);
  if (bytes.empty()) {
    error = "cannot encode " + m.address + " as OSC";
    return false;
  }
  return send_bytes(bytes, error);
}

bool Client::send_bundle(const std::vector<OscMessage>& ms, std::string& error) {
  const auto bytes = control::osc_serialise_bundle(ms, control::kOscImmediately);
  if (bytes.empty()) {
    error = "cannot encode a bundle as OSC";
    return false;
  }
  return send_bytes(bytes, error);
}

bool Client::send_bytes(const std::vector<std::uint8_t>& bytes, std::string& error) {
  if (udp_) {
    if (!udp_->send_to(target_, bytes.data(), bytes.size())) {
      // A pending ICMP error fails one send; the daemon's absence shows up as a time-out.
      if (!udp_->send_to(target_, bytes.data(), bytes.size())) {
        error = "cannot send to " + target_.to_string();
        return false;
      }
    }
    return true;
  }
  std::vector<std::uint8_t> frame(4 + bytes.size());
  const auto n = static_cast<std::uint32_t>(bytes.size());
  frame[0] = static_cast<std::uint8_t>(n >> 24);
  frame[1] = static_cast<std::uint8_t>(n >> 16);
  frame[2] = static_cast<std::uint8_t>(n >> 8);
  frame[3] = static_cast<std::uint8_t>(n);
  std::memcpy(frame.data() + 4, bytes.data(), bytes.size());
  std::size_t off = 0;
  const auto deadline = deadline_in(opts_.timeout_s);
  while (off < frame.size()) {
    const ssize_t w = ::send(tcp_fd_, frame.data() + off, frame.size() - off, MSG_NOSIGNAL);
    if (w > 0) {
      off += static_cast<std::size_t>(w);
      continue;
    }
    if (w < 0 && errno == EINTR) continue;
    if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      pollfd p{tcp_fd_, POLLOUT, 0};
      if (::poll(&p, 1, ms_until(deadline)) == 0) {
        error = "cannot send to " + target_.to_string() + ": the connection is stuck";
        return false;
      }
      continue;
    }
    error = "cannot send to " + target_.to_string() + ": " + std::strerror(errno);
    return false;
  }
  return true;
}

Wait Client::receive(OscMessage& out, Clock::time_point deadline, std::string& error) {
  return udp_ ? receive_udp(out, deadline, error) : receive_tcp(out, deadline, error);
}

Wait Client::receive_udp(OscMessage& out, Clock::time_point deadline, std::string& error) {
  for (;;) {
    while (udp_->receive(dgram_)) {
      // Only the daemon's address and port answer: the socket is not connected, so anyone who can
      // reach stemctl's port could otherwise answer for the daemon (a forged /done; attack pass 24).
      // One from the daemon's port on another address is kept for the time-out's message.
      if (!(dgram_.from == target_) &&
          !(to_any_ && dgram_.from.is_loopback() && dgram_.from.port() == target_.port())) {
        if (dgram_.from.port() == target_.port()) stray_ = dgram_.from.to_string();
        continue;
      }
      std::string perr;
      if (control::osc_parse(dgram_.data.data(), dgram_.data.size(), out, perr)) return Wait::kMessage;
      // a bundle or garbage: stemd sends neither, ignore it
    }
    for (const auto& e : udp_->take_unreachable()) {
      if (e == target_) {
        error = "nothing is listening on " + target_.to_string() + " (port unreachable)";
        return Wait::kGone;
      }
    }
    if (interrupted()) return Wait::kInterrupted;
    const int ms = ms_until(deadline);
    if (ms == 0) return Wait::kTimeout;
    pollfd p{udp_->fd(), POLLIN, 0};
    if (::poll(&p, 1, ms) < 0 && errno != EINTR) {
      error = std::string("poll: ") + std::strerror(errno);
      return Wait::kGone;
    }
  }
}

Wait Client::receive_tcp(OscMessage& out, Clock::time_point deadline, std::string& error) {
  for (;;) {
    while (tcp_in_.size() >= 4) {
      const std::size_t n = (std::size_t{tcp_in_[0]} << 24) | (std::size_t{tcp_in_[1]} << 16) |
                            (std::size_t{tcp_in_[2]} << 8) | std::size_t{tcp_in_[3]};
      if (n > kMaxFrame) {
        error = "the daemon sent a frame of " + std::to_string(n) + " bytes: not OSC 1.0 framing?";
        return Wait::kGone;
      }
      if (tcp_in_.size() < 4 + n) break;
      std::string perr;
      const bool ok = control::osc_parse(tcp_in_.data() + 4, n, out, perr);
      tcp_in_.erase(tcp_in_.begin(), tcp_in_.begin() + static_cast<std::ptrdiff_t>(4 + n));
      if (ok) return Wait::kMessage;
    }
    if (interrupted()) return Wait::kInterrupted;
    const int ms = ms_until(deadline);
    if (ms == 0) return Wait::kTimeout;
    pollfd p{tcp_fd_, POLLIN, 0};
    const int rc = ::poll(&p, 1, ms);
    if (rc < 0) {
      if (errno == EINTR) continue;
      error = std::string("poll: ") + std::strerror(errno);
      return Wait::kGone;
    }
    if (rc == 0) continue;  // the deadline check above ends it
    std::uint8_t buf[16384];
    const ssize_t r = ::recv(tcp_fd_, buf, sizeof buf, 0);
    if (r > 0) {
      tcp_in_.insert(tcp_in_.end(), buf, buf + r);
    } else if (r == 0) {
      error = "stemd closed the connection";
      return Wait::kGone;
    } else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
      error = std::string("connection lost: ") + std::strerror(errno);
      return Wait::kGone;
    }
  }
}

std::string Client::cookie_of(const OscMessage& in, const std::string& address) {
  if (in.address == "/stemd/cookie" && in.args.size() == 1 && in.args[0].is_string()) return in.args[0].s;
  if (in.address == "/fail" && is_reply_to(in, address) && in.args.size() == 3 && in.args[1].is_string() &&
      in.args[2].is_string() && in.args[2].s == "cookie required") {
    return in.args[1].s;
  }
  return "";
}

Result Client::request(const OscMessage& m, double timeout_s, const std::function<void(const OscMessage&)>& other) {
  Result r;
  if (!send(m, r.error)) {
    r.wait = Wait::kGone;
    return r;
  }
  const auto deadline = deadline_in(timeout_s);
  bool echoed = false;
  for (;;) {
    OscMessage in;
    r.wait = receive(in, deadline, r.error);
    if (r.wait != Wait::kMessage) return r;
    if (const std::string token = m.address == "/stemd/cookie" ? "" : cookie_of(in, m.address);
        !token.empty() && !echoed) {
      // The daemon wants proof that we receive here: echo its cookie, then the request again.
      OscMessage c;
      c.address = "/stemd/cookie";
      c.args.push_back(OscArg::Str(token));
      echoed = true;
      if (!send_bundle({c, m}, r.error)) {
        r.wait = Wait::kGone;
        return r;
      }
      continue;
    }
    if (is_reply_to(in, m.address)) {
      r.reply = std::move(in);
      return r;
    }
    if (other) other(in);
  }
}

}  // namespace stemd::ctl
