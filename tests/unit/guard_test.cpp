// Pieces of issue 10's network defences, alone: log_escape() and LogLimiter (log injection and
// flooding), SipHash-2-4 and AddressValidator (the UDP cookie), and the OSC dispatcher creating
// no files (crashed daemons once left /tmp/stemd-osc-* behind).
#include "control/address_validation.hpp"
#include "base/log_guard.hpp"
#include "control/osc.hpp"

#include <gtest/gtest.h>

#include <dirent.h>

#include <set>
#include <string>

namespace stemd::control {
namespace {

using namespace std::chrono_literals;

TEST(LogEscape, ControlCharactersBecomeVisibleEscapes) {
  EXPECT_EQ(base::log_escape("plain /stemd/play ok"), "plain /stemd/play ok");
  EXPECT_EQ(base::log_escape("a\nb\rc\td"), "a\\nb\\rc\\td");
  EXPECT_EQ(base::log_escape("\x1b[31mred"), "\\x1b[31mred");
  EXPECT_EQ(base::log_escape(std::string("nul\0x", 5)), "nul\\x00x");
  EXPECT_EQ(base::log_escape("del\x7f"), "del\\x7f");
  EXPECT_EQ(base::log_escape("back\\slash"), "back\\\\slash") << "escapes stay unambiguous";
  EXPECT_EQ(base::log_escape("\xc2\x9b"
                             "2J"),
            "\\u009b2J")
      << "C1 CSI";
  EXPECT_EQ(base::log_escape("line\xe2\x80\xa8sep"), "line\\u2028sep");
}

TEST(LogEscape, ValidUtf8IsKeptInvalidBytesAreEscaped) {
  EXPECT_EQ(base::log_escape("Café — ♫ 𝄞"), "Café — ♫ 𝄞");
  EXPECT_EQ(base::log_escape("\xff\xfe"), "\\xff\\xfe");
  EXPECT_EQ(base::log_escape("\xc0\xaf"), "\\xc0\\xaf") << "overlong '/'";
  EXPECT_EQ(base::log_escape("\xed\xa0\x80"), "\\xed\\xa0\\x80") << "a surrogate";
  EXPECT_EQ(base::log_escape("ab\xe2\x82"), "ab\\xe2\\x82") << "truncated sequence";
}

TEST(LogEscape, LongStringsAreCutWithTheirLength) {
  const std::string s(1000, 'a');
  const std::string e = base::log_escape(s, 10);
  EXPECT_EQ(e, "aaaaaaaaaa…(1000 bytes)");
  // A multi-byte character cut by the limit is escaped, not split into invalid UTF-8.
  EXPECT_EQ(base::log_escape("abcé", 4), "abc\\xc3…(5 bytes)");
}

TEST(LogLimiter, AllowsABurstPerPeriodAndCountsTheRest) {
  base::LogLimiter l(3, 1s);
  const auto t0 = base::LogLimiter::Clock::time_point{} + 100s;
  std::uint64_t skipped = 0;
  int allowed = 0;
  for (int i = 0; i < 1000; ++i) allowed += l.allow("dummy", skipped, t0 + std::chrono::milliseconds(i / 10)) ? 1 : 0;
  EXPECT_EQ(allowed, 3);
  EXPECT_EQ(l.suppressed_total(), 997u);
  // Another kind has its own budget.
  EXPECT_TRUE(l.allow("tcp", skipped, t0));
  // The next line of the kind, a period later, carries the count.
  ASSERT_TRUE(l.allow("dummy", skipped, t0 + 1100ms));
  EXPECT_EQ(skipped, 997u);
  EXPECT_EQ(base::suppressed_note(skipped), " (… and 997 more suppressed)");
  // flush() reports a kind that went quiet with lines still suppressed.
  for (int i = 0; i < 10; ++i) l.allow("dummy", skipped, t0 + 1200ms);
  std::string said;
  l.flush([&](const std::string& k, std::uint64_t n) { said = k + ":" + std::to_string(n); }, t0 + 1300ms);
  EXPECT_EQ(said, "") << "not yet a period";
  l.flush([&](const std::string& k, std::uint64_t n) { said = k + ":" + std::to_string(n); }, t0 + 2200ms);
  EXPECT_EQ(said, "dummy:8");
}

// The reference vectors of SipHash-2-4 (Aumasson & Bernstein): key 00..0f, message 00..(n-1).
TEST(SipHash, ReferenceVectors) {
  std::uint8_t key[16], msg[64];
  for (int i = 0; i < 16; ++i) key[i] = static_cast<std::uint8_t>(i);
  for (int i = 0; i < 64; ++i) msg[i] = static_cast<std::uint8_t>(i);
  EXPECT_EQ(siphash24(key, msg, 0), 0x726fdb47dd0e0e31ULL);
  EXPECT_EQ(siphash24(key, msg, 15), 0xa129ca6149be45e5ULL);
}

Endpoint ep(const std::string& host, std::uint16_t port) {
  std::string e;
  return *parse_endpoint(host, port, e);
}

TEST(AddressValidator, TokensAreBoundToAddressPortAndTime) {
  std::array<std::uint8_t, 16> secret{};
  secret[0] = 7;
  AddressValidator v(secret);
  const auto t0 = AddressValidator::Clock::time_point{} + 3600s;
  const Endpoint a = ep("10.0.0.7", 5000);
  const std::string tok = v.mint(a, t0);
  EXPECT_EQ(tok.size(), 16u);
  EXPECT_TRUE(v.verify(a, tok, t0));
  EXPECT_TRUE(v.verify(a, tok, t0 + 60s)) << "good in the next window too";
  EXPECT_FALSE(v.verify(a, tok, t0 + 121s)) << "expired";
  EXPECT_FALSE(v.verify(ep("10.0.0.7", 5001), tok, t0)) << "another port";
  EXPECT_FALSE(v.verify(ep("10.0.0.8", 5000), tok, t0)) << "another host";
  EXPECT_FALSE(v.verify(ep("::ffff:10.0.0.7", 5000), tok, t0)) << "another family";
  std::string flipped = tok;
  flipped[15] = flipped[15] == 'A' ? 'B' : 'A';
  EXPECT_FALSE(v.verify(a, flipped, t0));
  EXPECT_FALSE(v.verify(a, "", t0));
  EXPECT_FALSE(v.verify(a, "!!!!!!!!!!!!!!!!", t0));
  // Another secret (another daemon, or after a restart) does not take it.
  secret[0] = 8;
  EXPECT_FALSE(AddressValidator(secret).verify(a, tok, t0));
  // Two daemons with random secrets mint different tokens.
  EXPECT_NE(AddressValidator().mint(a, t0), AddressValidator().mint(a, t0));
}

TEST(AddressValidator, ValidationLastsItsPeriodAndTheSetIsBounded) {
  AddressValidator v;
  const auto t0 = AddressValidator::Clock::time_point{} + 3600s;
  const Endpoint a = ep("10.0.0.7", 5000);
  EXPECT_FALSE(v.validated(a, t0));
  v.validate(a, t0);
  EXPECT_TRUE(v.validated(a, t0 + AddressValidator::kValidFor - 1s));
  EXPECT_FALSE(v.validated(a, t0 + AddressValidator::kValidFor));
  EXPECT_FALSE(v.validated(ep("10.0.0.7", 5001), t0));
  for (std::uint32_t i = 0; i < AddressValidator::kMaxValidated + 100; ++i) {
    v.validate(
        ep("10." + std::to_string(i >> 16 & 255) + "." + std::to_string(i >> 8 & 255) + "." + std::to_string(i & 255),
           6000),
        t0 + std::chrono::milliseconds(i));
  }
  EXPECT_EQ(v.validated_count(), AddressValidator::kMaxValidated);
}

// One datagram's replies to a source not validated: up to 3× its size they go out; above, a
// cookie goes in their place, or nothing when even the cookie is over 3× (a tiny request).
TEST(AddressValidator, RepliesOverThreeTimesTheRequestAreReplacedByACookie) {
  AddressValidator v;
  const auto t0 = AddressValidator::Clock::time_point{} + 3600s;
  const Endpoint a = ep("10.0.0.9", 7000);
  std::vector<std::uint8_t> instead{1, 2, 3};
  EXPECT_TRUE(v.replies_fit(a, 100, 300, t0, instead));
  EXPECT_TRUE(instead.empty());
  EXPECT_FALSE(v.replies_fit(a, 100, 301, t0, instead));
  OscMessage m;
  std::string err;
  ASSERT_TRUE(osc_parse(instead.data(), instead.size(), m, err)) << err;
  EXPECT_EQ(m.address, "/stemd/cookie");
  ASSERT_EQ(m.args.size(), 1u);
  EXPECT_TRUE(v.verify(a, m.args[0].s, t0)) << "the token is the source's";
  EXPECT_LE(instead.size(), 300u);
  EXPECT_FALSE(v.replies_fit(a, 8, 1000, t0, instead));
  EXPECT_TRUE(instead.empty()) << "a 36-byte cookie is over 3 × 8 bytes: nothing goes";
}

std::set<std::string> stemd_tmp_dirs() {
  std::set<std::string> out;
  if (DIR* d = opendir("/tmp")) {
    while (dirent* e = readdir(d)) {
      if (std::string(e->d_name).rfind("stemd-osc-", 0) == 0) out.insert(e->d_name);
    }
    closedir(d);
  }
  return out;
}

// A daemon that crashes cannot leave a folder behind if it never makes one.
TEST(OscDispatcher, CreatesNoFiles) {
  const auto before = stemd_tmp_dirs();
  OscDispatcher d;
  EXPECT_TRUE(d.ok());
  EXPECT_EQ(stemd_tmp_dirs(), before) << "the dispatcher created a /tmp/stemd-osc-* folder";
  // It still dispatches messages and bundles, with the bundle's timetag.
  OscMessage m;
  m.address = "/stemd/ping";
  const auto one = osc_serialise(m);
  const auto two = osc_serialise_bundle({m, m}, 0x0123456789abcdefULL);
  std::vector<OscMessage> seen;
  std::string error;
  ASSERT_TRUE(d.dispatch(
      one.data(), one.size(), [&](const OscMessage& x) { seen.push_back(x); }, error))
      << error;
  ASSERT_TRUE(d.dispatch(
      two.data(), two.size(), [&](const OscMessage& x) { seen.push_back(x); }, error))
      << error;
  ASSERT_EQ(seen.size(), 3u);
  EXPECT_EQ(seen[0].timetag, kOscImmediately);
  EXPECT_EQ(seen[2].address, "/stemd/ping");
  EXPECT_EQ(seen[2].timetag, 0x0123456789abcdefULL);
}

}  // namespace
}  // namespace stemd::control
