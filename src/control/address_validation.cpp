// Cookies for UDP source-address validation (see address_validation.hpp).
#include "address_validation.hpp"

#include "osc.hpp"

#include <sys/random.h>

#include <algorithm>
#include <cstring>

namespace stemd::control {

namespace {

std::uint64_t rotl(std::uint64_t x, int b) { return (x << b) | (x >> (64 - b)); }

std::uint64_t load_le64(const std::uint8_t* p) {
  std::uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

constexpr char kB64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

// 12 bytes → 16 characters of base64url (no padding needed: 12 is a multiple of 3).
std::string b64(const std::uint8_t* in) {
  std::string out;
  out.reserve(16);
  for (int i = 0; i < 12; i += 3) {
    const std::uint32_t v = (std::uint32_t{in[i]} << 16) | (std::uint32_t{in[i + 1]} << 8) | in[i + 2];
    for (int s = 18; s >= 0; s -= 6) out += kB64[(v >> s) & 63];
  }
  return out;
}

bool unb64(const std::string& s, std::uint8_t* out) {
  if (s.size() != 16) return false;
  for (int i = 0; i < 4; ++i) {
    std::uint32_t v = 0;
    for (int k = 0; k < 4; ++k) {
      const char* p = std::strchr(kB64, s[static_cast<std::size_t>(i * 4 + k)]);
      if (p == nullptr || *p == '\0') return false;
      v = (v << 6) | static_cast<std::uint32_t>(p - kB64);
    }
    out[i * 3] = static_cast<std::uint8_t>(v >> 16);
    out[i * 3 + 1] = static_cast<std::uint8_t>(v >> 8);
    out[i * 3 + 2] = static_cast<std::uint8_t>(v);
  }
  return true;
}

// The address bytes that identify a source: family, address, port.
std::size_t source_bytes(const Endpoint& e, std::uint8_t* out) {
  std::size_t n = 0;
  out[n++] = static_cast<std::uint8_t>(e.family());
  if (e.family() == AF_INET) {
    std::memcpy(out + n, &reinterpret_cast<const sockaddr_in&>(e.addr).sin_addr, 4);
    n += 4;
  } else if (e.family() == AF_INET6) {
    std::memcpy(out + n, &reinterpret_cast<const sockaddr_in6&>(e.addr).sin6_addr, 16);
    n += 16;
  }
  const std::uint16_t port = e.port();
  out[n++] = static_cast<std::uint8_t>(port >> 8);
  out[n++] = static_cast<std::uint8_t>(port);
  return n;
}

}  // namespace

std::uint64_t siphash24(const std::uint8_t key[16], const std::uint8_t* data, std::size_t size) {
  const std::uint64_t k0 = load_le64(key), k1 = load_le64(key + 8);
  std::uint64_t v0 = 0x736f6d6570736575ULL ^ k0, v1 = 0x646f72616e646f6dULL ^ k1;
  std::uint64_t v2 = 0x6c7967656e657261ULL ^ k0, v3 = 0x7465646279746573ULL ^ k1;
  const auto round = [&] {
    v0 += v1, v1 = rotl(v1, 13), v1 ^= v0, v0 = rotl(v0, 32);
    v2 += v3, v3 = rotl(v3, 16), v3 ^= v2;
    v0 += v3, v3 = rotl(v3, 21), v3 ^= v0;
    v2 += v1, v1 = rotl(v1, 17), v1 ^= v2, v2 = rotl(v2, 32);
  };
  const std::size_t whole = size - size % 8;
  for (std::size_t i = 0; i < whole; i += 8) {
    const std::uint64_t m = load_le64(data + i);
    v3 ^= m;
    round();
    round();
    v0 ^= m;
  }
  std::uint64_t last = static_cast<std::uint64_t>(size & 0xff) << 56;
  for (std::size_t i = 0; i < size % 8; ++i) last |= static_cast<std::uint64_t>(data[whole + i]) << (8 * i);
  v3 ^= last;
  round();
  round();
  v0 ^= last;
  v2 ^= 0xff;
  for (int i = 0; i < 4; ++i) round();
  return v0 ^ v1 ^ v2 ^ v3;
}

AddressValidator::AddressValidator() {
  std::size_t got = 0;
  while (got < secret_.size()) {
    const ssize_t n = getrandom(secret_.data() + got, secret_.size() - got, 0);
    if (n > 0) got += static_cast<std::size_t>(n);
    // EINTR: again. The entropy pool is initialised long before a daemon starts.
  }
}

std::uint32_t AddressValidator::window_of(Clock::time_point now) {
  return static_cast<std::uint32_t>(std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count() /
                                    kWindow.count());
}

std::uint64_t AddressValidator::tag(const Endpoint& source, std::uint32_t window) const {
  std::uint8_t buf[32];
  buf[0] = static_cast<std::uint8_t>(window >> 24);
  buf[1] = static_cast<std::uint8_t>(window >> 16);
  buf[2] = static_cast<std::uint8_t>(window >> 8);
  buf[3] = static_cast<std::uint8_t>(window);
  const std::size_t n = 4 + source_bytes(source, buf + 4);
  return siphash24(secret_.data(), buf, n);
}

std::string AddressValidator::mint(const Endpoint& source, Clock::time_point now) const {
  const std::uint32_t w = window_of(now);
  const std::uint64_t t = tag(source, w);
  std::uint8_t raw[12];
  for (int i = 0; i < 4; ++i) raw[i] = static_cast<std::uint8_t>(w >> (24 - 8 * i));
  for (int i = 0; i < 8; ++i) raw[4 + i] = static_cast<std::uint8_t>(t >> (56 - 8 * i));
  return b64(raw);
}

bool AddressValidator::verify(const Endpoint& source, const std::string& token, Clock::time_point now) const {
  std::uint8_t raw[12];
  if (!unb64(token, raw)) return false;
  const std::uint32_t w =
      (std::uint32_t{raw[0]} << 24) | (std::uint32_t{raw[1]} << 16) | (std::uint32_t{raw[2]} << 8) | raw[3];
  const std::uint32_t current = window_of(now);
  if (w != current && w + 1 != current) return false;  // too old (or from the future)
  std::uint64_t t = 0;
  for (int i = 0; i < 8; ++i) t = (t << 8) | raw[4 + i];
  // Not secret-dependent timing worth hiding: the tag is a MAC of public data, and a guess that
  // matches one byte more gains nothing without the next 56 bits. Compared whole anyway.
  return (t ^ tag(source, w)) == 0;
}

void AddressValidator::validate(const Endpoint& source, Clock::time_point now) {
  std::uint8_t buf[32];
  std::string key(reinterpret_cast<const char*>(buf), source_bytes(source, buf));
  auto it = validated_.find(key);
  if (it == validated_.end() && validated_.size() >= kMaxValidated) {
    // Forget the expired; when none has, the one expiring soonest makes room. Only a source
    // that proved its address gets here, so this scan is rare.
    std::erase_if(validated_, [&](const auto& e) { return e.second <= now; });
    if (validated_.size() >= kMaxValidated) {
      validated_.erase(std::min_element(validated_.begin(), validated_.end(),
                                        [](const auto& a, const auto& b) { return a.second < b.second; }));
    }
  }
  validated_[key] = now + kValidFor;
}

bool AddressValidator::validated(const Endpoint& source, Clock::time_point now) const {
  std::uint8_t buf[32];
  const std::string key(reinterpret_cast<const char*>(buf), source_bytes(source, buf));
  auto it = validated_.find(key);
  return it != validated_.end() && it->second > now;
}

bool AddressValidator::replies_fit(const Endpoint& source, std::size_t request_bytes, std::size_t reply_bytes,
                                   Clock::time_point now, std::vector<std::uint8_t>& instead) const {
  instead.clear();
  const std::size_t budget = kAmplification * request_bytes;
  if (reply_bytes <= budget) return true;
  std::vector<std::uint8_t> cookie = osc_serialise(osc_message("/stemd/cookie", {OscArg::Str(mint(source, now))}));
  if (cookie.size() <= budget) instead = std::move(cookie);
  return false;
}

}  // namespace stemd::control
