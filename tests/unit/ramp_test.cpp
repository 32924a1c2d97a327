// Ramp (the one gain ramp) and DurationHistogram (callback-time percentiles).
#include "stemd/ramp.hpp"
#include "stemd/metrics.hpp"

#include "common/sanitized.hpp"
#include "fade_formula.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <algorithm>
#include <cstdint>
#include <limits>
#include <tuple>
#include <vector>

namespace stemd::engine {
namespace {

TEST(Ramp, StartsAtItsValueAndIsIdle) {
  Ramp r(0.25f);
  EXPECT_EQ(r.value(), 0.25f);
  EXPECT_EQ(r.target(), 0.25f);
  EXPECT_FALSE(r.active());
  EXPECT_EQ(r.remaining(), 0u);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(r.next(), 0.25f);
}

TEST(Ramp, LandsExactlyOnTargetAfterNFrames) {
  // Targets and lengths whose steps are not exact in float: accumulated rounding must not show
  // at the end, and the ramp must stop there.
  const float targets[] = {0.0f, 1.0f, 0.3f, 0.7071f, 1e-3f, 2.5f};
  const std::uint32_t lengths[] = {1, 2, 3, 7, 240, 241, 1000, 48000};
  for (float from : {0.0f, 1.0f, 0.123f}) {
    for (float to : targets) {
      if (to == from) continue;
      for (std::uint32_t n : lengths) {
        Ramp r(from);
        r.set(to, n);
        ASSERT_TRUE(r.active());
        EXPECT_EQ(r.remaining(), n);
        EXPECT_EQ(r.target(), to);
        float v = 0.0f;
        for (std::uint32_t i = 0; i < n; ++i) {
          v = r.next();
          if (i + 1 < n) {
            ASSERT_TRUE(r.active()) << "ended early at frame " << i << " of " << n;
          }
        }
        EXPECT_EQ(v, to) << from << "→" << to << " over " << n;
        EXPECT_FALSE(r.active());
        EXPECT_EQ(r.value(), to);
        EXPECT_EQ(r.next(), to) << "holds after the end";
      }
    }
  }
}

TEST(Ramp, StepsAreLinear) {
  // Exact in float: 0 → 1 in 8 steps of 1/8.
  Ramp r(0.0f);
  r.set(1.0f, 8);
  for (int i = 1; i <= 8; ++i) EXPECT_EQ(r.next(), static_cast<float>(i) / 8.0f) << "frame " << i;

  // Not exact: equal steps within float rounding, monotonic, never past the target.
  Ramp d(1.0f);
  const std::uint32_t n = 480;
  d.set(0.0f, n);
  float prev = 1.0f;
  const float step = 1.0f / n;
  for (std::uint32_t i = 1; i <= n; ++i) {
    const float v = d.next();
    EXPECT_LE(v, prev) << "not monotonic at " << i;
    EXPECT_GE(v, 0.0f);
    EXPECT_NEAR(prev - v, step, 1e-5f) << "uneven step at " << i;
    EXPECT_NEAR(v, 1.0f - static_cast<float>(i) * step, 1e-5f) << "off the line at " << i;
    prev = v;
  }
  EXPECT_EQ(prev, 0.0f);
}

TEST(Ramp, ZeroLengthAndJumpAreImmediate) {
  Ramp r(0.5f);
  r.set(0.75f, 0);
  EXPECT_FALSE(r.active());
  EXPECT_EQ(r.value(), 0.75f);
  EXPECT_EQ(r.next(), 0.75f);

  r.set(0.2f, 100);
  r.next();
  r.jump(1.0f);  // a jump cancels a running ramp
  EXPECT_FALSE(r.active());
  EXPECT_EQ(r.remaining(), 0u);
  EXPECT_EQ(r.target(), 1.0f);
  EXPECT_EQ(r.next(), 1.0f);

  // Setting the current value as target is a no-op, whatever the length.
  r.set(1.0f, 1000);
  EXPECT_FALSE(r.active());
  EXPECT_EQ(r.next(), 1.0f);
}

TEST(Ramp, RetargetMidRampStartsFromCurrentValue) {
  Ramp r(0.0f);
  r.set(1.0f, 4);
  EXPECT_EQ(r.next(), 0.25f);
  EXPECT_EQ(r.next(), 0.5f);
  r.set(0.0f, 2);  // turn around from 0.5: no jump
  EXPECT_EQ(r.remaining(), 2u);
  EXPECT_EQ(r.next(), 0.25f);
  EXPECT_EQ(r.next(), 0.0f);
  EXPECT_FALSE(r.active());

  // Retarget upward mid-ramp to a farther target, then let it land.
  Ramp g(1.0f);
  g.set(0.0f, 100);
  for (int i = 0; i < 30; ++i) g.next();
  const float mid = g.value();
  EXPECT_NEAR(mid, 0.7f, 1e-5f);
  g.set(2.0f, 13);
  float prev = mid;
  for (int i = 0; i < 13; ++i) {
    const float v = g.next();
    EXPECT_GT(v, prev) << "frame " << i;
    EXPECT_LE(v - prev, (2.0f - mid) / 13 + 1e-5f) << "no step bigger than the ramp's";
    prev = v;
  }
  EXPECT_EQ(prev, 2.0f);
}

// ---------------------------------------------------------------- DurationHistogram

using H = DurationHistogram;

TEST(DurationHistogram, BinOfIsMonotonicAndInsideItsBin) {
  int prev_bin = -1;
  std::vector<std::uint64_t> probes;
  for (std::uint64_t ns = 0; ns < 5000; ++ns) probes.push_back(ns);
  for (int shift = 12; shift < 63; ++shift) {  // the top octave: see TopBinUpperEdgeDoesNotWrap below
    const std::uint64_t p = std::uint64_t{1} << shift;
    for (std::uint64_t k : {p - 1, p, p + 1, p + p / 3, p + p / 2, p + p - 1}) probes.push_back(k);
  }
  std::uint64_t prev_ns = 0;
  for (std::uint64_t ns : probes) {
    if (ns < prev_ns) continue;  // keep the probe order increasing
    const int b = H::bin_of(ns);
    ASSERT_GE(b, 0);
    ASSERT_LT(b, H::kBins);
    EXPECT_GE(b, prev_bin) << "bin_of not monotonic at " << ns;
    EXPECT_LT(ns, H::upper_ns(b)) << "value not below its bin's upper edge: " << ns << " bin " << b;
    prev_bin = b;
    prev_ns = ns;
  }
  // Bins are narrow: 8 per octave, so the upper edge is at most 1/8 (+1 ns) above the value.
  for (std::uint64_t ns : {1000ull, 12345ull, 1'000'000ull, 123'456'789ull}) {
    EXPECT_LE(static_cast<double>(H::upper_ns(H::bin_of(ns))), static_cast<double>(ns) * 1.125 + 1.0) << ns;
  }
}

// The upper edge of bin b must be the first value of the next used bin, so edges increase.
// Bins 8..23 are never produced by bin_of (values 8..15 land in 24..31), so they are skipped.
TEST(DurationHistogram, UpperEdgesIncreaseAndMatchBinOf) {
  std::uint64_t prev = 0;
  for (int b = 0; b < H::kBins - 1; ++b) {
    if (b >= 8 && b < 24) continue;
    const std::uint64_t up = H::upper_ns(b);
    EXPECT_GT(up, prev) << "bin " << b;
    EXPECT_EQ(H::bin_of(up - 1), b) << "the last value of bin " << b << " lands elsewhere";
    EXPECT_NE(H::bin_of(up), b) << "upper edge of bin " << b << " is inside it";
    prev = up;
  }
}

// The top bin's edge would be (8 + 7 + 1) << 60 = 2^64: it must saturate, not wrap to 0 (a stuck
// callback would otherwise report 0 ns).
TEST(DurationHistogram, TopBinUpperEdgeDoesNotWrap) {
  EXPECT_GT(H::upper_ns(H::kBins - 1), H::upper_ns(H::kBins - 2));
  EXPECT_EQ(H::bin_of(std::numeric_limits<std::uint64_t>::max()), H::kBins - 1);
}

// A percentile is a bin's upper edge: given the largest value recorded, it never reads above it
// (the shutdown and health lines printed p99 above the max beside it).
TEST(DurationHistogram, APercentileIsCappedAtTheMaxGiven) {
  H h;
  for (int i = 0; i < 100; ++i) h.record(1'000'100);  // 1.0001 ms: its bin's edge is above it
  const H::Snapshot s = h.snapshot();
  EXPECT_GT(H::percentile_ns(s, 0.99), 1'000'100u);
  EXPECT_EQ(H::percentile_ns(s, 0.99, 1'000'100), 1'000'100u);
  EXPECT_EQ(H::percentile_ns(s, 0.5, 1'000'100), 1'000'100u);
  EXPECT_EQ(H::percentile_ns(H::Snapshot{}, 0.99, 5), 0u);  // empty: 0 as before
}

TEST(DurationHistogram, PercentilesOfKnownData) {
  H::Snapshot s{};
  EXPECT_EQ(H::percentile_ns(s, 0.5), 0u) << "empty histogram";

  // 100 values: 1..100 µs. p50 is the 50th value (50 µs), p99 the 99th, p100 the max.
  H h;
  for (std::uint64_t i = 1; i <= 100; ++i) h.record(i * 1000);
  s = h.snapshot();
  std::uint64_t total = 0;
  for (auto c : s) total += c;
  EXPECT_EQ(total, 100u);

  auto edge = [](std::uint64_t ns) { return H::upper_ns(H::bin_of(ns)); };
  EXPECT_EQ(H::percentile_ns(s, 0.0), edge(1000));
  EXPECT_EQ(H::percentile_ns(s, 0.5), edge(50'000));
  EXPECT_EQ(H::percentile_ns(s, 0.99), edge(99'000));
  EXPECT_EQ(H::percentile_ns(s, 1.0), edge(100'000));
  // A percentile is an upper bound within one bin (≈ 12.5 %).
  const auto p50 = H::percentile_ns(s, 0.5);
  EXPECT_GE(p50, 50'000u);
  EXPECT_LE(p50, 50'000u * 9 / 8 + 1);

  // Differencing two snapshots gives the window's percentiles.
  for (int i = 0; i < 1000; ++i) h.record(7);
  H::Snapshot s2 = h.snapshot();
  H::Snapshot window{};
  for (int i = 0; i < H::kBins; ++i) window[i] = s2[i] - s[i];
  EXPECT_EQ(H::percentile_ns(window, 0.5), 8u);  // bin 7's upper edge
  EXPECT_EQ(H::percentile_ns(window, 0.99), 8u);
  // Over everything: 1000 of 1100 values are 7 ns, the rest 1..100 µs.
  EXPECT_EQ(H::percentile_ns(s2, 0.5), 8u);
  EXPECT_EQ(H::percentile_ns(s2, 1.0), edge(100'000));
  EXPECT_EQ(H::percentile_ns(s2, 0.95), edge(45'000));  // want = 0.95*1099+1 = 1045 → the 45th µs value
}

}  // namespace
}  // namespace stemd::engine

namespace stemd::engine {
namespace {

double formula(Curve c, double a, double b, double x) { return test::fade_formula(c, a, b, x); }

// Ramp::fill (the mixer's block path: recurrences in four lanes, set back on the formula every
// kAnchorFrames) gives what next() gives frame by frame, and both follow the formula — through
// blocks of odd sizes that cross the anchors, and over a fade long enough for a recurrence to
// drift (10 minutes), landing exactly on the target. Under a sanitizer the long fade is 1 minute:
// this is arithmetic, which the release preset checks in full, and 10 minutes of per-frame pow()
// and sin() took 46 s of the TSan preset's 102 s (CI, the twenty-first session).
TEST(RampFill, BlocksFollowTheFormulaAndMatchNextFrameByFrame) {
  constexpr std::uint32_t kLong = 48000u * (test::kSanitized ? 60u : 600u);
  for (const Curve c : {Curve::kLinear, Curve::kExponential, Curve::kEqualPower, Curve::kSCurve}) {
    for (const auto& [from, to, frames] : {std::tuple{1.0f, 0.0f, 4800u}, std::tuple{0.0f, 1.0f, 4800u},
                                           std::tuple{0.25f, 2.0f, 1001u}, std::tuple{1.0f, 0.001f, kLong}}) {
      Ramp by_block(from), by_frame(from);
      by_block.set(to, frames, c);
      by_frame.set(to, frames, c);
      std::vector<float> out(1500);
      std::uint32_t k = 0, size = 1;
      double worst = 0, worst_vs_next = 0;
      while (k < frames + 10) {
        const std::uint32_t n = std::min<std::uint32_t>(size, frames + 10 - k);
        by_block.fill(out.data(), n);
        for (std::uint32_t i = 0; i < n; ++i) {
          const std::uint32_t at = k + i + 1;  // frames into the ramp
          const float next = by_frame.next();
          if (at % 97 == 0 || at + 3 >= frames || at < 600) {  // the formula is the slow part
            const double want = at >= frames ? to : formula(c, from, to, static_cast<double>(at) / frames);
            worst = std::max(worst, std::fabs(out[i] - want) - 2e-5 * std::fabs(want));  // as FadeShape
          }
          worst_vs_next = std::max(worst_vs_next, static_cast<double>(std::fabs(out[i] - next)));
          if (at >= frames) {
            ASSERT_EQ(out[i], to) << to_string(c) << " lands on the target at frame " << at;
          }
          if (c == Curve::kLinear || c == Curve::kSCurve) {
            ASSERT_EQ(out[i], next) << to_string(c) << " frame " << at;
          }
        }
        k += n;
        size = size * 7 % 1499 + 1;  // 1, 8, 57, 400, …: odd sizes, across the anchors
      }
      EXPECT_LT(worst, 2e-6) << to_string(c) << " " << from << "→" << to << " over " << frames;
      EXPECT_LT(worst_vs_next, 1e-6) << to_string(c) << " " << from << "→" << to << " over " << frames;
      EXPECT_FALSE(by_block.active());
      EXPECT_EQ(by_block.value(), to);
    }
  }
}

// apply() multiplies by the gains fill() would give (the voice's envelope on top of its volume).
TEST(RampFill, ApplyMultipliesByTheSameGains) {
  Ramp a(1.0f), b(1.0f);
  a.set(0.0f, 3000, Curve::kEqualPower);
  b.set(0.0f, 3000, Curve::kEqualPower);
  std::vector<float> g(700), x(700, 0.5f);
  for (int block = 0; block < 6; ++block) {
    a.fill(g.data(), 700);
    std::fill(x.begin(), x.end(), 0.5f);
    b.apply(x.data(), 700);
    for (int i = 0; i < 700; ++i) ASSERT_EQ(x[i], 0.5f * g[i]) << block << ":" << i;
  }
}

}  // namespace
}  // namespace stemd::engine
