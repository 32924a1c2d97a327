// Sockets for the control thread: stemd owns them (liblo 0.31 binds every interface).
//
//   Endpoint / parse_endpoint: an IPv4 or IPv6 address and port.
//   Cidr / AllowList:   which sources may talk to the daemon ("127.0.0.0/8,::1/128,10.0.0.0/8").
//   UdpSocket:          bound to one address; receives datagrams with their sender, counts the
//                       kernel's drops (SO_RXQ_OVFL), sends replies from the same socket, and
//                       reports ICMP "port unreachable" for addresses we sent to (IP_RECVERR),
//                       so subscriptions of vanished clients can expire.
//   TcpListener / TcpConnection: OSC 1.0 stream framing (int32 big-endian size + packet) for
//                       clients that must not lose a message.
// All sockets are non-blocking; the control thread polls their fds.
// Thread: [control] only.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace stemd::control {

struct Endpoint {
  sockaddr_storage addr{};
  socklen_t len = 0;
  int family() const { return addr.ss_family; }
  std::uint16_t port() const;
  std::string host() const;       // "127.0.0.1", "::1"
  std::string to_string() const;  // "127.0.0.1:57120", "[::1]:57120"
  bool is_loopback() const;
  bool operator==(const Endpoint& o) const;
};

// "127.0.0.1", "::1", "0.0.0.0", "::", "localhost" (→ 127.0.0.1) with a port. A link-local
// IPv6 address names its interface: "fe80::1%eth0". With `missing_interface` given, a zone that
// is a well-formed interface name this machine has no interface of (yet: a USB adapter, a bridge
// made later at boot) is not an error: the endpoint comes back without its interface (unbindable
// as it is) and *missing_interface names it; otherwise *missing_interface is cleared.
std::optional<Endpoint> parse_endpoint(const std::string& host, std::uint16_t port, std::string& error,
                                       std::string* missing_interface = nullptr);

class Cidr {
 public:
  // "10.0.0.0/8", "192.168.1.7" (= /32), "::1/128", "fe80::/10". False with a reason.
  static std::optional<Cidr> parse(const std::string& text, std::string& error);
  bool contains(const Endpoint& e) const;  // IPv4-mapped IPv6 sources match IPv4 ranges
  std::string to_string() const;

 private:
  int family_ = AF_INET;
  std::uint8_t bytes_[16]{};
  int prefix_ = 0;
};

class AllowList {
 public:
  // Comma- or space-separated CIDRs. False with a reason naming the bad entry.
  bool parse(const std::string& text, std::string& error);
  void add(const Cidr& c) { ranges_.push_back(c); }
  bool allows(const Endpoint& e) const;
  bool empty() const { return ranges_.empty(); }
  std::string to_string() const;
  static AllowList loopback();  // 127.0.0.0/8 and ::1/128

 private:
  std::vector<Cidr> ranges_;
};

struct Datagram {
  std::vector<std::uint8_t> data;
  Endpoint from;
};

// IP_FREEBIND (IPV6_FREEBIND): the socket may bind an address no interface has yet.
bool set_freebind(int fd, int family);
// Whether `at`'s address is this machine's now (a socket can bind it without IP_FREEBIND).
bool address_is_local(const Endpoint& at);
// Why `at` cannot be a server's own address (a multicast group, the broadcast address, a
// link-local address without its interface), or "" — what bind() would accept but no client
// could reach, or refuse with only "Invalid argument". Used by every listening socket.
std::string listen_address_problem(const Endpoint& at);

class UdpSocket {
 public:
  // Binds `at` (port 0 = any free port). IPv6 sockets are v6-only unless bound to "::".
  // `pending_ok`: an address no interface has yet (the network still coming up at boot, an IPv6
  // address still tentative) is bound anyway (IP_FREEBIND) and address_pending() says so;
  // otherwise that is an error.
  static std::unique_ptr<UdpSocket> bind(const Endpoint& at, std::string& error, bool pending_ok = false);
  ~UdpSocket();
  int fd() const { return fd_; }
  Endpoint local() const;
  // Bound with pending_ok to an address that was not this machine's at the time.
  bool address_pending() const { return pending_; }

  // Non-blocking: false when nothing is waiting (a queued ICMP error is recorded, never fatal).
  // `out.data` keeps its capacity across calls, so a reused Datagram does not allocate per packet.
  bool receive(Datagram& out);
  // Non-blocking: false when the datagram was not sent (send buffer full, no route, too big).
  bool send_to(const Endpoint& to, const std::uint8_t* data, std::size_t size);
  // Addresses the kernel reported unreachable (ICMP port unreachable) since the last call,
  // each once. Reads the error queue first, so it is up to date when called after a POLLERR.
  std::vector<Endpoint> take_unreachable();
  // Datagrams the kernel dropped because the receive buffer was full (SO_RXQ_OVFL), total.
  std::uint64_t kernel_drops() const { return drops_; }
  // Asks for `bytes` of kernel receive buffer (the kernel caps it at net.core.rmem_max unless
  // the process has CAP_NET_ADMIN). Returns what the kernel granted.
  int set_receive_buffer(int bytes);

 private:
  explicit UdpSocket(int fd);
  void drain_error_queue();
  void note_drop_counter(std::uint32_t counter);

  int fd_;
  bool pending_ = false;
  std::uint64_t drops_ = 0;
  std::uint32_t drop_counter_ = 0;       // the kernel's cumulative (wrapping) counter, last seen
  std::unique_ptr<std::uint8_t[]> buf_;  // 64 KiB: any UDP datagram fits
  std::vector<Endpoint> unreachable_;
};

class TcpConnection {
 public:
  ~TcpConnection();
  int fd() const { return fd_; }
  const Endpoint& peer() const { return peer_; }
  // Reads what is available; appends every complete framed packet to `out`. False when the
  // peer closed or sent a frame over `max_packet` bytes (then the connection must be dropped).
  bool read_packets(std::vector<std::vector<std::uint8_t>>& out, std::size_t max_packet, std::string& error);
  // Frames and sends; false when the peer is gone (or too slow: its send buffer is full).
  bool send_packet(const std::uint8_t* data, std::size_t size);

  // For the server's time-outs (steady clock): when it was accepted, when it last completed a
  // packet (none yet: the accept time), whether it has sent any, and since when the frame it is
  // in the middle of has been incomplete (only meaningful while partial()).
  using Clock = std::chrono::steady_clock;
  Clock::time_point accepted() const { return accepted_; }
  Clock::time_point last_packet() const { return last_packet_; }
  bool any_packet() const { return packets_ > 0; }
  bool partial() const { return !in_.empty(); }
  Clock::time_point partial_since() const { return partial_since_; }

 private:
  friend class TcpListener;
  TcpConnection(int fd, Endpoint peer)
      : fd_(fd), peer_(peer), accepted_(Clock::now()), last_packet_(accepted_), partial_since_(accepted_) {}
  int fd_;
  Endpoint peer_;
  std::vector<std::uint8_t> in_;  // bytes of an incomplete frame
  Clock::time_point accepted_, last_packet_, partial_since_;
  std::uint64_t packets_ = 0;
};

class TcpListener {
 public:
  // `pending_ok` as UdpSocket::bind's.
  static std::unique_ptr<TcpListener> listen(const Endpoint& at, std::string& error, bool pending_ok = false);
  ~TcpListener();
  int fd() const { return fd_; }
  Endpoint local() const;
  bool address_pending() const { return pending_; }
  // Non-blocking accept; null when none is pending, or when accept failed: then `*error` (when
  // given) is its errno (EMFILE, ENFILE: out of descriptors; the connection stays pending).
  std::unique_ptr<TcpConnection> accept(int* error = nullptr);

 private:
  explicit TcpListener(int fd) : fd_(fd) {}
  int fd_;
  bool pending_ = false;
};

}  // namespace stemd::control
