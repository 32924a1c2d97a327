// What net.cpp and net_allow.cpp share (not part of net.hpp's interface).
#pragma once

#include <netinet/in.h>

#include <cstdint>
#include <cstring>

namespace stemd::control::detail {

// "::ffff:a.b.c.d": an IPv4 address in IPv6 clothes.
inline constexpr std::uint8_t kMappedPrefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
inline bool is_v4_mapped(const in6_addr& a) { return std::memcmp(a.s6_addr, kMappedPrefix, 12) == 0; }

}  // namespace stemd::control::detail
