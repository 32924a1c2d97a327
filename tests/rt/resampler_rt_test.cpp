// Real-time safety of engine::Resampler: after create(), every [audio] call — process() over
// memory and ring-style (copying) pulls, set_ratio() with and without glides every block,
// short pulls (underrun), drain() and reset() — runs on a thread marked as the audio thread
// with zero tripwire violations, at every quality level.
//
// (The same harness rejected soxr: its variable-rate mode reallocs inside soxr_process() on
// almost every call, even at a steady ratio after a long warm-up.)
#include "engine/resampler.hpp"
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

class ResamplerRt : public ::testing::TestWithParam<ResamplerQuality> {};

TEST_P(ResamplerRt, AudioThreadCallsNeverAllocateLockOrBlock) {
  std::vector<float> in(48000 * 2);
  for (std::size_t i = 0; i < in.size(); ++i) in[i] = static_cast<float>(0.5 * std::sin(0.01 * i));
  std::string error;
  auto r = Resampler::create(GetParam(), error);  // [control]: allocates, outside the scope
  ASSERT_NE(r, nullptr) << error;
  std::vector<float> out(4096 * 2);
  Source src{&in};

  tw::reset();
  {
    tw::AudioScope audio;
    r->set_ratio(44100.0 / 48000.0, 0);
    for (int b = 0; b < 600; ++b) {
      src.copy = (b / 50) % 2 == 1;
      if (b % 7 == 0) r->set_ratio(0.25 + 3.75 * (0.5 + 0.5 * std::sin(b * 0.1)), (b % 14 == 0) ? 0 : 3000);
      if (b % 2 == 1) r->set_ratio(r->target_ratio() * 1.001, 256);  // a fader moving every block
      src.stall = b % 97 == 5;                                       // an underrun now and then
      const std::uint32_t frames = b % 3 == 0 ? 64 : (b % 3 == 1 ? 256 : 4096);
      r->process(out.data(), frames, &Source::pull, &src);
      if (b == 300) {  // end of file: the tail, then a new voice on the same object
        while (r->drain(out.data(), 256) == 256) {
        }
        r->reset();
      }
      if (b == 450) r->reset();  // a seek
    }
  }
  EXPECT_EQ(tw::violations(), 0) << "first: " << tw::first_violation();
  tw::reset();
}

INSTANTIATE_TEST_SUITE_P(Qualities, ResamplerRt,
                         ::testing::Values(ResamplerQuality::kFast, ResamplerQuality::kMedium, ResamplerQuality::kBest),
                         [](const auto& info) { return std::string(to_string(info.param)); });

}  // namespace
}  // namespace stemd::engine
