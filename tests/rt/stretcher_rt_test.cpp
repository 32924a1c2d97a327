// Real-time safety of engine::Stretcher: after create() (which warms the library up over the
// whole tempo range), every [audio] call — process() over memory and ring-style (copying) pulls,
// set_tempo() every block (a fader) and in jumps between the extremes, short pulls (underrun),
// drain() and reset() with the priming that follows — runs on a thread marked as the audio
// thread with zero tripwire violations, for both engines.
#include "engine/stretcher.hpp"
#include "tripwire.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

namespace stemd::engine {
namespace {

namespace tw = test::tripwire;

struct Source {
  const std::vector<float>* frames;
  std::int64_t pos = 0;
  bool copy = false;
  bool stall = false;
  static std::uint32_t pull(void* ctx, float* scratch, std::uint32_t max_frames, const float** out) noexcept {
    auto& s = *static_cast<Source*>(ctx);
    if (s.stall) return 0;
    const auto total = static_cast<std::int64_t>(s.frames->size() / 2);
    if (s.pos >= total) s.pos = 0;  // loop, as a looping voice does
    const auto n = static_cast<std::uint32_t>(std::min<std::int64_t>(max_frames, total - s.pos));
    const float* p = s.frames->data() + s.pos * 2;
    if (s.copy) {
      std::copy(p, p + static_cast<std::size_t>(n) * 2, scratch);
      p = scratch;
    }
    *out = p;
    s.pos += n;
    return n;
  }
};

class StretcherRt : public ::testing::TestWithParam<StretcherEngine> {};

TEST_P(StretcherRt, AudioThreadCallsNeverAllocateLockOrBlock) {
  // Music-like input: a chord with a click every 0.25 s (transients exercise R2's phase resets).
  std::vector<float> in(48000 * 2);
  for (std::size_t i = 0; i < in.size() / 2; ++i) {
    const double t = static_cast<double>(i) / 48000.0;
    double v = 0.2 * std::sin(2 * 3.14159265 * 220 * t) + 0.2 * std::sin(2 * 3.14159265 * 277 * t) +
               0.1 * std::sin(2 * 3.14159265 * 3300 * t);
    if (i % 12000 < 64) v += 0.4 * (1.0 - (i % 12000) / 64.0);
    in[2 * i] = static_cast<float>(v);
    in[2 * i + 1] = static_cast<float>(0.9 * v);
  }
  std::string error;
  auto st = Stretcher::create(48000, error, GetParam());  // [control]: allocates, outside the scope
  ASSERT_NE(st, nullptr) << error;
  std::vector<float> out(4096 * 2);
  Source src{&in};

  tw::reset();
  {
    tw::AudioScope audio;
    st->set_tempo(1.0);
    for (int b = 0; b < 1200; ++b) {
      src.copy = (b / 50) % 2 == 1;
      if (b % 7 == 0) st->set_tempo(0.25 + 3.75 * (0.5 + 0.5 * std::sin(b * 0.1)));  // the whole range
      if (b % 2 == 1) st->set_tempo(st->tempo() * 1.001);                            // a fader every block
      if (b % 101 == 50) st->set_tempo(b % 202 == 50 ? Stretcher::kMinTempo : Stretcher::kMaxTempo);  // jumps
      if (b % 101 == 51) st->set_tempo(b % 202 == 51 ? Stretcher::kMaxTempo : Stretcher::kMinTempo);
      src.stall = b % 97 == 5;  // an underrun now and then
      const std::uint32_t frames = b % 3 == 0 ? 64 : (b % 3 == 1 ? 256 : 4096);
      st->process(out.data(), frames, &Source::pull, &src);
      if (b == 400 || b == 900) {  // end of file: the tail, then a new voice on the same object
        while (st->drain(out.data(), 256) == 256) {
        }
        st->reset();
      }
      if (b == 650) st->reset();  // a seek
    }
  }
  EXPECT_EQ(tw::violations(), 0) << "first: " << tw::first_violation();
  tw::reset();
}

INSTANTIATE_TEST_SUITE_P(Engines, StretcherRt, ::testing::Values(StretcherEngine::kFaster, StretcherEngine::kFiner),
                         [](const auto& info) { return std::string(to_string(info.param)); });

}  // namespace
}  // namespace stemd::engine
