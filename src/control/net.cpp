// Sockets for the control thread (see net.hpp). [control] thread only.
//
// Why the socket options:
//   - UDP: no SO_REUSEADDR, so a second daemon on the same port fails at bind instead of
//     silently sharing (and stealing) datagrams. SO_RXQ_OVFL makes the kernel attach its
//     cumulative drop counter to each datagram, so floods are counted, not guessed.
//     IP_RECVERR / IPV6_RECVERR queue ICMP "port unreachable" for destinations we sent to,
//     which is how subscriptions of vanished clients expire. A queued error also sets the
//     socket's pending error, which fails the next plain recvmsg()/sendto() with ECONNREFUSED
//     once: that is never fatal here, it only means "read the error queue".
//   - No name resolution anywhere: the control thread must never block on a resolver.
#include "net.hpp"
#include "net_internal.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/errqueue.h>
#include <linux/sock_diag.h>
#include <net/if.h>
#include <netinet/icmp6.h>
#include <netinet/ip_icmp.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace stemd::control {

std::string listen_address_problem(const Endpoint& at) {
  if (at.family() == AF_INET) {
    const std::uint32_t a = ntohl(reinterpret_cast<const sockaddr_in&>(at.addr).sin_addr.s_addr);
    if ((a >> 28) == 0xe) {
      return "a multicast address (224.0.0.0/4) is a group, not this machine's: a server listens on one of its "
             "own addresses (or 0.0.0.0), and clients send to it";
    }
    if (a == 0xffffffffu) return "the broadcast address is not this machine's: listen on one of its own (or 0.0.0.0)";
    return "";
  }
  if (at.family() != AF_INET6) return "";
  const auto& v6 = reinterpret_cast<const sockaddr_in6&>(at.addr);
  if (IN6_IS_ADDR_MULTICAST(&v6.sin6_addr)) {
    return "a multicast address (ff00::/8) is a group, not this machine's: a server listens on one of its own "
           "addresses (or ::), and clients send to it";
  }
  if (IN6_IS_ADDR_LINKLOCAL(&v6.sin6_addr) && v6.sin6_scope_id == 0) {  // the kernel says only "Invalid argument"
    return "a link-local address (fe80::/10) needs its interface, e.g. " + at.host() +
           "%eth0 (`ip -brief link` lists them)";
  }
  return "";
}

namespace {

constexpr std::size_t kMaxDatagram = 64 * 1024;  // larger than any UDP payload (65,527 bytes)
constexpr int kDefaultReceiveBuffer = 4 << 20;
constexpr int kListenBacklog = 16;
constexpr std::size_t kMaxUnreachable = 256;  // between two take_unreachable() calls
constexpr int kMaxErrorReads = 64;            // per drain: bounded work per call
constexpr int kMaxTcpReads = 16;              // per read_packets(): a fast client cannot starve others

std::string errno_text(int err) { return std::strerror(err); }

using detail::is_v4_mapped;

Endpoint from_sockaddr(const sockaddr* sa, socklen_t len) {
  Endpoint e;
  if (len > sizeof(e.addr)) len = sizeof(e.addr);
  std::memcpy(&e.addr, sa, len);
  e.len = len;
  return e;
}

// The address family of `at` plus the "can't bind" message conventions shared by UDP and TCP.
std::string bind_error(const Endpoint& at, int err) {
  if (err == EADDRINUSE) return "port " + std::to_string(at.port()) + " is in use: " + errno_text(err);
  return "cannot bind " + at.to_string() + ": " + errno_text(err);
}

// "::" (dual stack) or "::ffff:a.b.c.d" (IPv4 through an IPv6 socket): IPv4 traffic must be let in.
bool needs_v4_on_v6(const Endpoint& at) {
  if (at.family() != AF_INET6) return false;
  const auto& a = reinterpret_cast<const sockaddr_in6&>(at.addr).sin6_addr;
  return IN6_IS_ADDR_UNSPECIFIED(&a) || is_v4_mapped(a);
}

// Common part of UDP and TCP: socket, v6only, bind. Returns the fd or -1 with `error`. With
// `pending` non-null, an address not (yet) this machine's is bound with IP_FREEBIND and *pending set.
int open_bound(const Endpoint& at, int type, bool reuse_addr, std::string& error, bool* pending = nullptr) {
  if (at.family() != AF_INET && at.family() != AF_INET6) {
    error = "cannot bind: not an IPv4 or IPv6 address";
    return -1;
  }
  const int fd = ::socket(at.family(), type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    error = "cannot create socket: " + errno_text(errno);
    return -1;
  }
  const int one = 1;
  if (reuse_addr) ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (at.family() == AF_INET6) {
    // "::" is dual stack (IPv4 clients appear as ::ffff:a.b.c.d); any other address is v6 only,
    // whatever net.ipv6.bindv6only says (a mapped address is IPv4 in IPv6 clothes: not v6 only).
    const int v6only = needs_v4_on_v6(at) ? 0 : 1;
    if (::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof(v6only)) != 0) {
      error = "cannot set IPV6_V6ONLY: " + errno_text(errno);
      ::close(fd);
      return -1;
    }
  }
  if (const std::string why = listen_address_problem(at); !why.empty()) {
    error = "cannot bind " + at.to_string() + ": " + why;
    ::close(fd);
    return -1;
  }
  const socklen_t len = at.len ? at.len : (at.family() == AF_INET ? sizeof(sockaddr_in) : sizeof(sockaddr_in6));
  int rc = ::bind(fd, reinterpret_cast<const sockaddr*>(&at.addr), len);
  if (rc != 0 && errno == EADDRNOTAVAIL && pending != nullptr && set_freebind(fd, at.family())) {
    rc = ::bind(fd, reinterpret_cast<const sockaddr*>(&at.addr), len);
    if (rc == 0) *pending = true;
  }
  if (rc != 0) {
    error = bind_error(at, errno);
    ::close(fd);
    return -1;
  }
  return fd;
}

Endpoint local_of(int fd) {
  Endpoint e;
  socklen_t len = sizeof(e.addr);
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&e.addr), &len) == 0) e.len = len;
  return e;
}

void put_be32(std::uint8_t* p, std::uint32_t v) {
  p[0] = static_cast<std::uint8_t>(v >> 24);
  p[1] = static_cast<std::uint8_t>(v >> 16);
  p[2] = static_cast<std::uint8_t>(v >> 8);
  p[3] = static_cast<std::uint8_t>(v);
}

std::uint32_t get_be32(const std::uint8_t* p) {
  return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) | std::uint32_t{p[3]};
}

}  // namespace

bool set_freebind(int fd, int family) {
  const int one = 1;
  if (family == AF_INET6) return ::setsockopt(fd, IPPROTO_IPV6, IPV6_FREEBIND, &one, sizeof(one)) == 0;
  return ::setsockopt(fd, IPPROTO_IP, IP_FREEBIND, &one, sizeof(one)) == 0;
}

bool address_is_local(const Endpoint& at) {
  if (at.family() != AF_INET && at.family() != AF_INET6) return false;
  Endpoint any_port = at;  // bound as the daemon's own sockets are (open_bound), on a free port
  if (at.family() == AF_INET) {
    reinterpret_cast<sockaddr_in&>(any_port.addr).sin_port = 0;
  } else {
    reinterpret_cast<sockaddr_in6&>(any_port.addr).sin6_port = 0;
  }
  std::string error;
  const int fd = open_bound(any_port, SOCK_DGRAM, /*reuse_addr=*/false, error);  // no IP_FREEBIND
  if (fd < 0) return false;
  ::close(fd);
  return true;
}

// ---------------------------------------------------------------------------------------------
// Endpoint

std::uint16_t Endpoint::port() const {
  if (family() == AF_INET) return ntohs(reinterpret_cast<const sockaddr_in&>(addr).sin_port);
  if (family() == AF_INET6) return ntohs(reinterpret_cast<const sockaddr_in6&>(addr).sin6_port);
  return 0;
}

std::string Endpoint::host() const {
  char buf[INET6_ADDRSTRLEN] = {};
  if (family() == AF_INET) {
    ::inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in&>(addr).sin_addr, buf, sizeof(buf));
  } else if (family() == AF_INET6) {
    const auto& v6 = reinterpret_cast<const sockaddr_in6&>(addr);
    ::inet_ntop(AF_INET6, &v6.sin6_addr, buf, sizeof(buf));
    if (v6.sin6_scope_id != 0) {  // its zone: "fe80::1%eth0"
      char name[IF_NAMESIZE] = {};
      return std::string(buf) + "%" +
             (::if_indextoname(v6.sin6_scope_id, name) != nullptr ? std::string(name)
                                                                  : std::to_string(v6.sin6_scope_id));
    }
  } else {
    return "?";
  }
  return buf;
}

std::string Endpoint::to_string() const {
  const std::string p = std::to_string(port());
  if (family() == AF_INET6) return "[" + host() + "]:" + p;
  return host() + ":" + p;
}

bool Endpoint::is_loopback() const {
  if (family() == AF_INET) {
    return (ntohl(reinterpret_cast<const sockaddr_in&>(addr).sin_addr.s_addr) >> 24) == 127;
  }
  if (family() == AF_INET6) {
    const auto& a = reinterpret_cast<const sockaddr_in6&>(addr).sin6_addr;
    if (IN6_IS_ADDR_LOOPBACK(&a)) return true;
    return is_v4_mapped(a) && a.s6_addr[12] == 127;
  }
  return false;
}

bool Endpoint::operator==(const Endpoint& o) const {
  if (family() != o.family()) return false;
  if (family() == AF_INET) {
    const auto& a = reinterpret_cast<const sockaddr_in&>(addr);
    const auto& b = reinterpret_cast<const sockaddr_in&>(o.addr);
    return a.sin_port == b.sin_port && a.sin_addr.s_addr == b.sin_addr.s_addr;
  }
  if (family() == AF_INET6) {
    const auto& a = reinterpret_cast<const sockaddr_in6&>(addr);
    const auto& b = reinterpret_cast<const sockaddr_in6&>(o.addr);
    return a.sin6_port == b.sin6_port && std::memcmp(&a.sin6_addr, &b.sin6_addr, sizeof(in6_addr)) == 0;
  }
  return true;  // both unset
}

std::optional<Endpoint> parse_endpoint(const std::string& host, std::uint16_t port, std::string& error,
                                       std::string* missing_interface) {
  if (missing_interface != nullptr) missing_interface->clear();
  std::string h = host;
  if (h.size() >= 2 && h.front() == '[' && h.back() == ']') h = h.substr(1, h.size() - 2);  // "[::1]"
  if (h == "localhost") h = "127.0.0.1";
  Endpoint e;
  auto& v4 = reinterpret_cast<sockaddr_in&>(e.addr);
  if (::inet_pton(AF_INET, h.c_str(), &v4.sin_addr) == 1) {
    v4.sin_family = AF_INET;
    v4.sin_port = htons(port);
    e.len = sizeof(sockaddr_in);
    return e;
  }
  e = Endpoint{};
  auto& v6 = reinterpret_cast<sockaddr_in6&>(e.addr);
  // An IPv6 address may name its interface (its zone): "fe80::1%eth0", or "%2" by index.
  std::string zone;
  if (const auto pct = h.find('%'); pct != std::string::npos) {
    zone = h.substr(pct + 1);
    h.resize(pct);
  }
  if (::inet_pton(AF_INET6, h.c_str(), &v6.sin6_addr) == 1) {
    v6.sin6_family = AF_INET6;
    v6.sin6_port = htons(port);
    e.len = sizeof(sockaddr_in6);
    if (!zone.empty()) {
      const in6_addr& a = v6.sin6_addr;
      if (!IN6_IS_ADDR_LINKLOCAL(&a) && !IN6_IS_ADDR_MC_LINKLOCAL(&a) && !IN6_IS_ADDR_MC_NODELOCAL(&a)) {
        // The kernel would ignore it: the address does not depend on the interface.
        error = "only a link-local address (fe80::/10, or a link-local multicast group ff02::/16) takes a zone: " + h +
                " is reached without one (in \"" + host + "\")";
        return std::nullopt;
      }
      unsigned index = ::if_nametoindex(zone.c_str());
      if (index == 0 && zone.find_first_not_of("0123456789") == std::string::npos && zone.size() <= 9) {
        index = static_cast<unsigned>(std::stoul(zone));
        char name[IF_NAMESIZE] = {};
        if (::if_indextoname(index, name) == nullptr) {
          error = "no network interface with index " + zone + " (in \"" + host + "\"; `ip -brief link` lists them)";
          return std::nullopt;
        }
      }
      // What the kernel takes as an interface's name: 1–15 bytes, no '/', ':' or white space.
      const bool a_name = zone.size() < IF_NAMESIZE && zone != "." && zone != ".." &&
                          zone.find_first_of("/: \t\n") == std::string::npos &&
                          zone.find_first_not_of("0123456789") != std::string::npos;
      if (index == 0 && a_name && missing_interface != nullptr) {
        *missing_interface = zone;  // not there yet: the caller waits for it
        return e;
      }
      if (index == 0) {
        error = "no network interface \"" + zone + "\" (in \"" + host + "\"; `ip -brief link` lists them)";
        return std::nullopt;
      }
      v6.sin6_scope_id = index;
    }
    return e;
  }
  error = "not a numeric IPv4/IPv6 address: \"" + host + "\"";
  return std::nullopt;
}

// ---------------------------------------------------------------------------------------------
// UdpSocket

UdpSocket::UdpSocket(int fd) : fd_(fd), buf_(new std::uint8_t[kMaxDatagram]) {}

UdpSocket::~UdpSocket() {
  if (fd_ >= 0) ::close(fd_);
}

std::unique_ptr<UdpSocket> UdpSocket::bind(const Endpoint& at, std::string& error, bool pending_ok) {
  bool pending = false;
  const int fd = open_bound(at, SOCK_DGRAM, /*reuse_addr=*/false, error, pending_ok ? &pending : nullptr);
  if (fd < 0) return nullptr;
  const int one = 1;
  // Both are best effort: without them the daemon still works, it only sees less.
  ::setsockopt(fd, SOL_SOCKET, SO_RXQ_OVFL, &one, sizeof(one));
  if (at.family() == AF_INET6) {
    ::setsockopt(fd, IPPROTO_IPV6, IPV6_RECVERR, &one, sizeof(one));
    // A dual-stack socket's IPv4 traffic reports its ICMP errors through the IPv4 flag.
    if (needs_v4_on_v6(at)) ::setsockopt(fd, IPPROTO_IP, IP_RECVERR, &one, sizeof(one));
  } else {
    ::setsockopt(fd, IPPROTO_IP, IP_RECVERR, &one, sizeof(one));
  }
  std::unique_ptr<UdpSocket> s(new UdpSocket(fd));
  s->pending_ = pending;
  s->set_receive_buffer(kDefaultReceiveBuffer);
  return s;
}

int UdpSocket::set_receive_buffer(int bytes) {
  // SO_RCVBUFFORCE passes rmem_max when the daemon may (CAP_NET_ADMIN); otherwise the kernel
  // silently caps SO_RCVBUF at rmem_max.
  if (::setsockopt(fd_, SOL_SOCKET, SO_RCVBUFFORCE, &bytes, sizeof(bytes)) != 0) {
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &bytes, sizeof(bytes));
  }
  int granted = 0;
  socklen_t len = sizeof(granted);
  ::getsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &granted, &len);
  return granted;
}

Endpoint UdpSocket::local() const { return local_of(fd_); }

void UdpSocket::note_drop_counter(std::uint32_t counter) {
  // The kernel's counter is cumulative and wraps at 2^32; datagrams carry the value it had when
  // they were queued, so it only moves forward. Serial-number arithmetic ignores a stale value.
  const auto delta = static_cast<std::int32_t>(counter - drop_counter_);
  if (delta > 0) {
    drops_ += static_cast<std::uint32_t>(delta);
    drop_counter_ = counter;
  }
}

void UdpSocket::drain_error_queue() {
  for (int i = 0; i < kMaxErrorReads; ++i) {
    sockaddr_storage offender{};
    std::uint8_t payload[64];  // the start of the datagram that bounced; not needed
    iovec iov{payload, sizeof(payload)};
    alignas(cmsghdr) char control[512];
    msghdr msg{};
    msg.msg_name = &offender;
    msg.msg_namelen = sizeof(offender);
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof(control);
    if (::recvmsg(fd_, &msg, MSG_ERRQUEUE | MSG_DONTWAIT) < 0) {
      if (errno == EINTR) continue;
      return;  // EAGAIN: the queue is empty
    }
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
      const bool v4 = c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_RECVERR;
      const bool v6 = c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_RECVERR;
      if (!v4 && !v6) continue;
      sock_extended_err ee;
      std::memcpy(&ee, CMSG_DATA(c), sizeof(ee));
      const bool port_unreachable =
          (ee.ee_origin == SO_EE_ORIGIN_ICMP && ee.ee_type == ICMP_DEST_UNREACH && ee.ee_code == ICMP_PORT_UNREACH) ||
          (ee.ee_origin == SO_EE_ORIGIN_ICMP6 && ee.ee_type == ICMP6_DST_UNREACH &&
           ee.ee_code == ICMP6_DST_UNREACH_NOPORT);
      if (!port_unreachable || msg.msg_namelen == 0) continue;
      // msg_name is the destination of the datagram that bounced (mapped form on dual stack).
      Endpoint e = from_sockaddr(reinterpret_cast<const sockaddr*>(&offender), msg.msg_namelen);
      if (unreachable_.size() < kMaxUnreachable &&
          std::find(unreachable_.begin(), unreachable_.end(), e) == unreachable_.end()) {
        unreachable_.push_back(e);
      }
    }
  }
}

bool UdpSocket::receive(Datagram& out) {
  // Bounded: each failure consumes the pending error, and the queue is drained after it.
  for (int attempt = 0; attempt < 4; ++attempt) {
    iovec iov{buf_.get(), kMaxDatagram};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(std::uint32_t)) + 64];
    msghdr msg{};
    msg.msg_name = &out.from.addr;
    msg.msg_namelen = sizeof(out.from.addr);
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof(control);
    const ssize_t n = ::recvmsg(fd_, &msg, MSG_DONTWAIT);
    if (n < 0) {
      const int err = errno;
      if (err == EINTR) continue;
      if (err != EAGAIN && err != EWOULDBLOCK) {
        // A pending ICMP error (ECONNREFUSED, EHOSTUNREACH...) surfaces here once; the
        // datagrams behind it are still waiting.
        drain_error_queue();
        continue;
      }
      // Nothing now. This happens once per wake-up, so catch up on the error queue (poll
      // reports it as POLLERR) and on drops that no datagram has carried yet.
      drain_error_queue();
      std::uint32_t meminfo[SK_MEMINFO_VARS] = {};
      socklen_t len = sizeof(meminfo);
      if (::getsockopt(fd_, SOL_SOCKET, SO_MEMINFO, meminfo, &len) == 0 &&
          len > SK_MEMINFO_DROPS * sizeof(std::uint32_t)) {
        note_drop_counter(meminfo[SK_MEMINFO_DROPS]);
      }
      return false;
    }
    out.from.len = msg.msg_namelen;
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SO_RXQ_OVFL) {
        std::uint32_t counter;
        std::memcpy(&counter, CMSG_DATA(c), sizeof(counter));
        note_drop_counter(counter);
      }
    }
    // assign() keeps the vector's capacity: no allocation once it has held a large datagram.
    out.data.assign(buf_.get(), buf_.get() + n);
    return true;
  }
  return false;
}

bool UdpSocket::send_to(const Endpoint& to, const std::uint8_t* data, std::size_t size) {
  const socklen_t len = to.len ? to.len : (to.family() == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in));
  for (int attempt = 0; attempt < 4; ++attempt) {
    const ssize_t n =
        ::sendto(fd_, data, size, MSG_DONTWAIT | MSG_NOSIGNAL, reinterpret_cast<const sockaddr*>(&to.addr), len);
    if (n >= 0) return static_cast<std::size_t>(n) == size;
    const int err = errno;
    if (err == EINTR) continue;
    // The pending error of an earlier ICMP (maybe for another destination) fails this send
    // once without sending it: record the real offender from the error queue and try again.
    if (err == ECONNREFUSED) {
      drain_error_queue();
      continue;
    }
    return false;  // EAGAIN (counted by the caller), EMSGSIZE, no route, ...
  }
  return false;
}

std::vector<Endpoint> UdpSocket::take_unreachable() {
  drain_error_queue();
  std::vector<Endpoint> out;
  out.swap(unreachable_);
  return out;
}

// ---------------------------------------------------------------------------------------------
// TCP

TcpConnection::~TcpConnection() {
  if (fd_ >= 0) ::close(fd_);
}

bool TcpConnection::read_packets(std::vector<std::vector<std::uint8_t>>& out, std::size_t max_packet,
                                 std::string& error) {
  std::uint8_t chunk[16 * 1024];
  for (int reads = 0; reads < kMaxTcpReads; ++reads) {
    const ssize_t n = ::recv(fd_, chunk, sizeof(chunk), MSG_DONTWAIT);
    if (n == 0) {
      error = "closed";
      return false;
    }
    if (n < 0) {
      const int err = errno;
      if (err == EINTR) continue;
      if (err == EAGAIN || err == EWOULDBLOCK) return true;
      error = errno_text(err);
      return false;
    }
    const auto now = Clock::now();
    if (in_.empty()) partial_since_ = now;  // a new frame starts with these bytes
    in_.insert(in_.end(), chunk, chunk + n);
    // Split off every complete frame; keep the incomplete tail for the next read.
    std::size_t pos = 0;
    while (in_.size() - pos >= 4) {
      const auto size = static_cast<std::int32_t>(get_be32(in_.data() + pos));
      if (size < 0 || static_cast<std::size_t>(size) > max_packet) {
        error = "frame of " + std::to_string(size) + " bytes exceeds the limit of " + std::to_string(max_packet);
        in_.clear();
        return false;
      }
      const auto frame = static_cast<std::size_t>(size);
      if (in_.size() - pos - 4 < frame) break;
      if (frame > 0)
        out.emplace_back(in_.begin() + static_cast<std::ptrdiff_t>(pos + 4),
                         in_.begin() + static_cast<std::ptrdiff_t>(pos + 4 + frame));
      pos += 4 + frame;
      ++packets_;
      last_packet_ = now;
      partial_since_ = now;  // whatever follows is the start of the next frame
    }
    in_.erase(in_.begin(), in_.begin() + static_cast<std::ptrdiff_t>(pos));
  }
  return true;  // more may be waiting; poll says so again
}

bool TcpConnection::send_packet(const std::uint8_t* data, std::size_t size) {
  if (size > 0x7fffffffu) return false;
  std::uint8_t header[4];
  put_be32(header, static_cast<std::uint32_t>(size));
  iovec iov[2] = {{header, sizeof(header)}, {const_cast<std::uint8_t*>(data), size}};
  msghdr msg{};
  msg.msg_iov = iov;
  msg.msg_iovlen = size > 0 ? 2 : 1;
  ssize_t n;
  do {
    n = ::sendmsg(fd_, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
  } while (n < 0 && errno == EINTR);
  if (n == static_cast<ssize_t>(sizeof(header) + size)) return true;
  // Gone, or too slow to keep up. After a partial write the stream is out of frame: shut it so
  // nothing more is sent or read on it, whatever the caller does next.
  if (n > 0) ::shutdown(fd_, SHUT_RDWR);
  return false;
}

TcpListener::~TcpListener() {
  if (fd_ >= 0) ::close(fd_);
}

std::unique_ptr<TcpListener> TcpListener::listen(const Endpoint& at, std::string& error, bool pending_ok) {
  bool pending = false;
  const int fd = open_bound(at, SOCK_STREAM, /*reuse_addr=*/true, error, pending_ok ? &pending : nullptr);
  if (fd < 0) return nullptr;
  if (::listen(fd, kListenBacklog) != 0) {
    error = "cannot listen on " + at.to_string() + ": " + errno_text(errno);
    ::close(fd);
    return nullptr;
  }
  std::unique_ptr<TcpListener> l(new TcpListener(fd));
  l->pending_ = pending;
  return l;
}

Endpoint TcpListener::local() const { return local_of(fd_); }

std::unique_ptr<TcpConnection> TcpListener::accept(int* error) {
  for (;;) {
    sockaddr_storage peer{};
    socklen_t len = sizeof(peer);
    const int fd = ::accept4(fd_, reinterpret_cast<sockaddr*>(&peer), &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      // ECONNABORTED: that client gave up already; look at the next one.
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (error != nullptr && errno != EAGAIN && errno != EWOULDBLOCK) *error = errno;
      return nullptr;  // EAGAIN, or out of fds (the listener stays readable: the caller backs off)
    }
    const int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));  // replies are small and urgent
    return std::unique_ptr<TcpConnection>(
        new TcpConnection(fd, from_sockaddr(reinterpret_cast<const sockaddr*>(&peer), len)));
  }
}

}  // namespace stemd::control
