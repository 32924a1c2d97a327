// Source-address validation for UDP: the cookie exchange that keeps stemd from being a
// reflector or an amplifier [control].
//
// A UDP source address can be forged. Until a source has shown that it receives what is sent to
// it, the router lets one datagram cause at most kAmplification × its own size in replies (QUIC's
// rule for unvalidated addresses, RFC 9000 §8). A bigger answer is replaced by one small
// `/stemd/cookie <token>`; the token is a keyed hash of (source address, source port, time
// window) under a per-process random secret — SipHash-2-4, as DNS server cookies use it (RFC
// 9018). A client that echoes it (`/stemd/cookie <token>`, alone or first in a bundle) has proved
// it receives at that address, and the address is validated for kValidFor, renewed by each echo.
// The budget and what replaces an answer over it are decided here (replies_fit); the router
// applies it to each packet's replies.
// Loopback (by default: whatever `cookie_exempt` lists) and TCP peers are exempt: nothing
// outside the host can forge a loopback source, and a TCP handshake proves the address.
//
// The validated set is bounded (kMaxValidated addresses; the one expiring first makes room).
// Thread: [control] only.
#pragma once

#include "net.hpp"

#include <array>
#include <chrono>
#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

namespace stemd::control {

// SipHash-2-4 of `data` under a 128-bit key (the reference algorithm; tested against its vectors).
std::uint64_t siphash24(const std::uint8_t key[16], const std::uint8_t* data, std::size_t size);

class AddressValidator {
 public:
  using Clock = std::chrono::steady_clock;
  static constexpr std::size_t kAmplification = 3;       // reply bytes ≤ 3 × request bytes
  static constexpr std::chrono::seconds kWindow{60};     // a token is good for 60..120 s
  static constexpr std::chrono::seconds kValidFor{600};  // an echo validates the address this long
  static constexpr std::size_t kMaxValidated = 4096;

  AddressValidator();  // a fresh random secret (getrandom)
  // For tests: a fixed secret.
  explicit AddressValidator(const std::array<std::uint8_t, 16>& secret) : secret_(secret) {}

  // The token for `source` now: 16 characters of base64url.
  std::string mint(const Endpoint& source, Clock::time_point now) const;
  // Whether `token` was minted for `source` in this window or the one before.
  bool verify(const Endpoint& source, const std::string& token, Clock::time_point now) const;
  // Marks `source` validated until now + kValidFor.
  void validate(const Endpoint& source, Clock::time_point now);
  bool validated(const Endpoint& source, Clock::time_point now) const;
  std::size_t validated_count() const { return validated_.size(); }

  // The reply budget of one datagram of `request_bytes` from a source not validated: its
  // replies go out when they add up to at most kAmplification × request_bytes (true). When they
  // do not, none of them goes: `instead` is the one datagram sent in their place, `/stemd/cookie
  // <token for source>`, or empty when even that is over the budget.
  bool replies_fit(const Endpoint& source, std::size_t request_bytes, std::size_t reply_bytes, Clock::time_point now,
                   std::vector<std::uint8_t>& instead) const;

 private:
  std::uint64_t tag(const Endpoint& source, std::uint32_t window) const;
  static std::uint32_t window_of(Clock::time_point now);

  std::array<std::uint8_t, 16> secret_{};
  // family + address + port → validated until. Looked up for every datagram from a
  // non-exempt source: a hash map, not a scan.
  std::unordered_map<std::string, Clock::time_point> validated_;
};

}  // namespace stemd::control
