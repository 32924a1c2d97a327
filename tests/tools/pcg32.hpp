// PCG32 (O'Neill, pcg-random.org): a small generator with a fully specified output sequence,
// so the test tools write the same files, bit for bit, on every machine (std::rand's sequence
// is implementation defined).
#pragma once

#include <cstdint>

namespace stemd::tools {

class Pcg32 {
 public:
  explicit Pcg32(std::uint64_t seed) {
    next();
    state_ += seed;
    next();
  }
  std::uint32_t next() {
    const std::uint64_t old = state_;
    state_ = old * 6364136223846793005ULL + kInc;
    const auto xorshifted = static_cast<std::uint32_t>(((old >> 18u) ^ old) >> 27u);
    const auto rot = static_cast<std::uint32_t>(old >> 59u);
    return (xorshifted >> rot) | (xorshifted << ((-rot) & 31u));
  }
  // Uniform in [-1, 1): 24 random bits are exactly representable in a double.
  double bipolar() { return static_cast<double>(next() >> 8) / 8388608.0 - 1.0; }

 private:
  static constexpr std::uint64_t kInc = 1442695040888963407ULL;  // any odd constant
  std::uint64_t state_ = 0;
};

}  // namespace stemd::tools
