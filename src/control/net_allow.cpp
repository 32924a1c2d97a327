// Cidr and AllowList (see net.hpp): who may talk to the daemon. [control] thread only.
#include "net.hpp"
#include "net_internal.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <cstring>

namespace stemd::control {

namespace {

using detail::is_v4_mapped;
using detail::kMappedPrefix;

bool parse_prefix(const std::string& s, int max, int& out) {
  if (s.empty() || s.size() > 3) return false;
  int v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + (c - '0');
  }
  if (v > max) return false;
  out = v;
  return true;
}

// Whether the first `prefix` bits of a and b are equal.
bool prefix_equal(const std::uint8_t* a, const std::uint8_t* b, int prefix) {
  const int whole = prefix / 8;
  if (std::memcmp(a, b, static_cast<std::size_t>(whole)) != 0) return false;
  const int rest = prefix % 8;
  if (rest == 0) return true;
  const auto mask = static_cast<std::uint8_t>(0xff << (8 - rest));
  return (a[whole] & mask) == (b[whole] & mask);
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Cidr / AllowList

std::optional<Cidr> Cidr::parse(const std::string& text, std::string& error) {
  const auto fail = [&](const std::string& why) {
    error = "bad address range \"" + text + "\": " + why;
    return std::nullopt;
  };
  if (text.empty()) return fail("empty");
  const auto slash = text.find('/');
  const std::string addr = text.substr(0, slash);
  const bool has_prefix = slash != std::string::npos;
  const std::string prefix = has_prefix ? text.substr(slash + 1) : std::string();
  if (addr.empty()) return fail("no address before the '/'");

  Cidr c;
  if (::inet_pton(AF_INET, addr.c_str(), c.bytes_) == 1) {
    c.family_ = AF_INET;
    c.prefix_ = 32;
    if (has_prefix && !parse_prefix(prefix, 32, c.prefix_)) return fail("prefix length must be 0..32");
  } else if (::inet_pton(AF_INET6, addr.c_str(), c.bytes_) == 1) {
    c.family_ = AF_INET6;
    c.prefix_ = 128;
    if (has_prefix && !parse_prefix(prefix, 128, c.prefix_)) return fail("prefix length must be 0..128");
  } else {
    return fail("not a numeric IPv4/IPv6 address");
  }
  // Host bits set ("192.168.1.7/24") mean the network they are in, as `ip route` reads them.
  const int size = c.family_ == AF_INET ? 4 : 16;
  for (int bit = c.prefix_; bit < size * 8; ++bit) c.bytes_[bit / 8] &= static_cast<std::uint8_t>(~(0x80 >> (bit % 8)));
  return c;
}

bool Cidr::contains(const Endpoint& e) const {
  if (e.family() == AF_INET) {
    const auto* a = reinterpret_cast<const std::uint8_t*>(&reinterpret_cast<const sockaddr_in&>(e.addr).sin_addr);
    if (family_ == AF_INET) return prefix_equal(a, bytes_, prefix_);
    // An IPv6 range such as ::ffff:0:0/96 covers IPv4 sources as their mapped form.
    std::uint8_t mapped[16];
    std::memcpy(mapped, kMappedPrefix, 12);
    std::memcpy(mapped + 12, a, 4);
    return prefix_equal(mapped, bytes_, prefix_);
  }
  if (e.family() == AF_INET6) {
    const auto& a6 = reinterpret_cast<const sockaddr_in6&>(e.addr).sin6_addr;
    if (family_ == AF_INET6) return prefix_equal(a6.s6_addr, bytes_, prefix_);
    // A dual-stack socket reports IPv4 clients as ::ffff:a.b.c.d.
    return is_v4_mapped(a6) && prefix_equal(a6.s6_addr + 12, bytes_, prefix_);
  }
  return false;
}

std::string Cidr::to_string() const {
  char buf[INET6_ADDRSTRLEN] = {};
  ::inet_ntop(family_, bytes_, buf, sizeof(buf));
  return std::string(buf) + "/" + std::to_string(prefix_);
}

bool AllowList::parse(const std::string& text, std::string& error) {
  std::vector<Cidr> ranges;
  std::size_t i = 0;
  const auto is_sep = [](char c) { return c == ',' || c == ' ' || c == '\t' || c == '\n' || c == '\r'; };
  while (i < text.size()) {
    while (i < text.size() && is_sep(text[i])) ++i;
    std::size_t end = i;
    while (end < text.size() && !is_sep(text[end])) ++end;
    if (end > i) {
      std::string why;
      auto c = Cidr::parse(text.substr(i, end - i), why);
      if (!c) {
        error = "allow list: " + why;
        return false;  // the list keeps what it had
      }
      ranges.push_back(*c);
    }
    i = end;
  }
  ranges_ = std::move(ranges);
  return true;
}

bool AllowList::allows(const Endpoint& e) const {
  return std::any_of(ranges_.begin(), ranges_.end(), [&](const Cidr& c) { return c.contains(e); });
}

std::string AllowList::to_string() const {
  std::string s;
  for (const auto& c : ranges_) {
    if (!s.empty()) s += ",";
    s += c.to_string();
  }
  return s;
}

AllowList AllowList::loopback() {
  AllowList l;
  std::string unused;
  l.add(*Cidr::parse("127.0.0.0/8", unused));
  l.add(*Cidr::parse("::1/128", unused));
  return l;
}

}  // namespace stemd::control
