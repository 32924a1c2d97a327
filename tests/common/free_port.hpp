// A free loopback port for a stemd child process's --osc-port (tests only): the kernel picks an
// ephemeral UDP port (bind 0), and it is kept only when TCP can listen on it too (for
// --osc-tcp-port). Still a race with other processes: callers retry with another port when the
// child could not bind (see the Stemd helpers in stemctl_test.cpp and state_test.cpp).
#pragma once

#include "control/net.hpp"

#include <cstdint>
#include <string>

namespace stemd::test {

inline std::uint16_t free_port() {
  for (int attempt = 0; attempt < 20; ++attempt) {
    std::string error;
    auto at = control::parse_endpoint("127.0.0.1", 0, error);
    auto udp = control::UdpSocket::bind(*at, error);
    if (!udp) continue;
    const std::uint16_t port = udp->local().port();
    auto at2 = control::parse_endpoint("127.0.0.1", port, error);
    if (control::TcpListener::listen(*at2, error)) return port;  // the TCP port is free too
  }
  return 0;
}

}  // namespace stemd::test
