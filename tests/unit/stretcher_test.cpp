// engine::Stretcher: pitch kept and duration scaled by 1/tempo (a 440 Hz sine at tempo 1.25 and
// 0.8), start-delay compensation (an onset lands at its source time / tempo), tempo changes
// every block without NaN, Inf or gaps, underrun continuation, the end-of-input tail, and
// block-size independence.
//
// Pitch is the dominant frequency of a Hann-windowed stretch of the output, found by a DFT scan
// (coarse over 50 Hz–5 kHz, then fine around the peak): ±1 % around 440 Hz. Duration is the
// output frame count for a fixed input, played to the end and drained: ±2 % of input / tempo.
#include "engine/stretcher.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace stemd::engine {
namespace {

constexpr double kPi = 3.14159265358979323846;
constexpr int kRate = 48000;

std::vector<float> stereo_sine(double hz, std::int64_t frames, double amp = 0.5) {
  std::vector<float> v(static_cast<std::size_t>(frames) * 2);
  for (std::int64_t i = 0; i < frames; ++i) {
    const auto s = static_cast<float>(amp * std::sin(2.0 * kPi * hz * static_cast<double>(i) / kRate));
    v[2 * i] = s;
    v[2 * i + 1] = s;
  }
  return v;
}

// In-memory source: pointers into the vector, or copies into the scratch (`copy`), in pieces
// of at most `chunk`; `stall` makes pulls return 0; `loop` wraps at the end.
struct MemorySource {
  const std::vector<float>* frames;
  std::int64_t pos = 0;
  std::uint32_t chunk = 1u << 30;
  bool stall = false;
  bool copy = false;
  bool loop = false;
  static std::uint32_t pull(void* ctx, float* scratch, std::uint32_t max_frames, const float** out) noexcept {
    auto& s = *static_cast<MemorySource*>(ctx);
    if (s.stall) return 0;
    const auto total = static_cast<std::int64_t>(s.frames->size() / 2);
    if (s.loop && s.pos >= total) s.pos = 0;
    const auto n = static_cast<std::uint32_t>(std::min<std::int64_t>({max_frames, s.chunk, total - s.pos}));
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

std::unique_ptr<Stretcher> make(StretcherEngine e = StretcherEngine::kFiner) {
  std::string error;
  auto s = Stretcher::create(kRate, error, e);
  EXPECT_NE(s, nullptr) << error;
  return s;
}

// Plays `src` through `st` in blocks of `block` until the input ends, then drains the tail.
std::vector<float> render_all(Stretcher& st, MemorySource& src, std::uint32_t block,
                              const std::function<void(std::int64_t)>& before_block = nullptr) {
  std::vector<float> out;
  std::vector<float> buf(static_cast<std::size_t>(block) * 2);
  for (;;) {
    if (before_block) before_block(static_cast<std::int64_t>(out.size() / 2));
    const std::uint32_t got = st.process(buf.data(), block, &MemorySource::pull, &src);
    out.insert(out.end(), buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(got) * 2);
    if (got < block) break;
  }
  for (;;) {
    const std::uint32_t got = st.drain(buf.data(), block);
    out.insert(out.end(), buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(got) * 2);
    if (got < block) break;
  }
  return out;
}

// Magnitude of the Hann-windowed DFT of one channel at `hz`.
double dft_mag(const std::vector<float>& y, std::size_t first, std::size_t n, int ch, double hz) {
  const double w = 2.0 * kPi * hz / kRate;
  double re = 0.0, im = 0.0;
  for (std::size_t i = 0; i < n; ++i) {
    const double win = 0.5 - 0.5 * std::cos(2.0 * kPi * static_cast<double>(i) / static_cast<double>(n));
    const double v = win * y[(first + i) * 2 + ch];
    re += v * std::cos(w * static_cast<double>(i));
    im -= v * std::sin(w * static_cast<double>(i));
  }
  return std::hypot(re, im);
}

double dominant_hz(const std::vector<float>& y, std::size_t first, std::size_t n, int ch) {
  double best = 0.0, best_hz = 0.0;
  for (double hz = 50.0; hz <= 5000.0; hz += 10.0) {
    const double m = dft_mag(y, first, n, ch, hz);
    if (m > best) best = m, best_hz = hz;
  }
  const double centre = best_hz;
  for (double hz = centre - 10.0; hz <= centre + 10.0; hz += 0.1) {
    const double m = dft_mag(y, first, n, ch, hz);
    if (m > best) best = m, best_hz = hz;
  }
  return best_hz;
}

bool all_finite(const std::vector<float>& v) {
  return std::all_of(v.begin(), v.end(), [](float x) { return std::isfinite(x); });
}

class StretcherTempo : public ::testing::TestWithParam<double> {};

TEST_P(StretcherTempo, SineKeepsItsPitchAndDurationScalesByOneOverTempo) {
  const double tempo = GetParam();
  auto st = make();
  st->set_tempo(tempo);
  const std::int64_t in_frames = 4 * kRate;  // 4 s of 440 Hz
  const auto in = stereo_sine(440.0, in_frames);
  MemorySource src{&in};
  const auto out = render_all(*st, src, 256);
  ASSERT_TRUE(all_finite(out));

  const double out_frames = static_cast<double>(out.size() / 2);
  const double expected = static_cast<double>(in_frames) / tempo;
  RecordProperty("out_frames", std::to_string(out_frames));
  EXPECT_NEAR(out_frames, expected, 0.02 * expected) << "tempo " << tempo;

  // The middle 32768 frames (0.68 s), well away from both ends.
  const std::size_t n = 32768;
  const std::size_t first = static_cast<std::size_t>(out_frames / 2) - n / 2;
  for (int ch = 0; ch < 2; ++ch) {
    const double hz = dominant_hz(out, first, n, ch);
    RecordProperty("dominant_hz_" + std::to_string(ch), std::to_string(hz));
    EXPECT_NEAR(hz, 440.0, 4.4) << "tempo " << tempo << " channel " << ch;
  }
}

INSTANTIATE_TEST_SUITE_P(Tempos, StretcherTempo, ::testing::Values(1.25, 0.8, 1.0, 2.0, 0.5),
                         [](const auto& info) { return "x" + std::to_string(static_cast<int>(info.param * 100)); });

TEST(Stretcher, FasterEngineAlsoKeepsPitchAndDurationAtASteadyTempo) {
  for (double tempo : {1.25, 0.8}) {
    auto st = make(StretcherEngine::kFaster);
    st->set_tempo(tempo);
    const std::int64_t in_frames = 4 * kRate;
    const auto in = stereo_sine(440.0, in_frames);
    MemorySource src{&in};
    const auto out = render_all(*st, src, 512);
    ASSERT_TRUE(all_finite(out));
    const double expected = static_cast<double>(in_frames) / tempo;
    EXPECT_NEAR(static_cast<double>(out.size() / 2), expected, 0.02 * expected);
    EXPECT_NEAR(dominant_hz(out, out.size() / 4 - 16384, 32768, 0), 440.0, 4.4) << "tempo " << tempo;
  }
}

TEST(Stretcher, StartDelayIsCompensatedSoAnOnsetLandsAtSourceTimeOverTempo) {
  // Silence, then a 440 Hz tone from source frame 24000 on. After compensation the tone starts
  // at output frame 24000 / tempo (within a few ms: the analysis window smears an onset).
  for (double tempo : {1.0, 1.25, 0.8}) {
    auto st = make();
    st->set_tempo(tempo);
    const std::int64_t onset = 24000;
    auto in = stereo_sine(440.0, 3 * kRate);
    std::fill(in.begin(), in.begin() + onset * 2, 0.0f);
    MemorySource src{&in};
    const auto out = render_all(*st, src, 256);
    std::int64_t first_loud = -1;
    for (std::size_t i = 0; i < out.size() / 2; ++i) {
      if (std::fabs(out[2 * i]) > 0.25f) {
        first_loud = static_cast<std::int64_t>(i);
        break;
      }
    }
    const double expected = static_cast<double>(onset) / tempo;
    RecordProperty("onset_error_frames_" + std::to_string(tempo), std::to_string(first_loud - expected));
    EXPECT_NEAR(static_cast<double>(first_loud), expected, 480.0) << "tempo " << tempo;  // ±10 ms
  }
}

TEST(Stretcher, LatencyIsCompensatedAndTheStartDelayIsReported) {
  auto st = make();
  EXPECT_EQ(st->latency_frames(), 0u);
  for (double tempo : {0.5, 0.8, 1.0, 1.25, 2.0}) {
    st->set_tempo(tempo);
    const std::uint32_t d = st->start_delay_frames();
    RecordProperty("start_delay_" + std::to_string(tempo), std::to_string(d));
    EXPECT_GT(d, 0u);
    EXPECT_LT(d, 8192u);  // < 171 ms at 48 kHz
  }
  // The read-ahead after a block: what was pulled beyond the played position.
  st->set_tempo(1.0);
  st->reset();
  const auto in = stereo_sine(440.0, kRate);
  MemorySource src{&in};
  std::vector<float> out(512);
  ASSERT_EQ(st->process(out.data(), 256, &MemorySource::pull, &src), 256u);
  RecordProperty("lookahead_frames", std::to_string(st->lookahead_frames()));
  EXPECT_GT(st->lookahead_frames(), 0.0);
  EXPECT_LT(st->lookahead_frames(), 8192.0);
}

// A fast sweep (0.5–1.5 in ~0.6 s) plus one-block jumps to 2 or 0.5 and back: no NaN, no Inf,
// no silent block. A one-block jump to an extreme and back is brutal — R3 (the default) dips
// to ~−9 dB for a block or two there, R2 to ~−13 dB — so the floor is a level, not the tone's
// full RMS; plain steps are checked in TempoStepsKeepLevelAndPitch.
class StretcherChanges : public ::testing::TestWithParam<StretcherEngine> {};

TEST_P(StretcherChanges, TempoChangesWhileRunningGiveNoNanInfOrGaps) {
  const bool finer = GetParam() == StretcherEngine::kFiner;
  auto st = make(GetParam());
  const auto in = stereo_sine(440.0, 2 * kRate);
  MemorySource src{&in};
  src.loop = true;
  src.chunk = 300;  // a ring handing out pieces
  src.copy = true;
  const std::uint32_t block = 256;
  std::vector<float> out;
  std::vector<float> buf(block * 2);
  double tempo = 1.0;
  for (int b = 0; b < 1500; ++b) {                           // 8 s
    if (b % 3 == 0) tempo = 1.0 + 0.5 * std::sin(b * 0.02);  // a fader sweeping 0.5–1.5
    if (b % 200 == 100) tempo = b % 400 == 100 ? 2.0 : 0.5;  // and a few jumps
    if (b % 200 == 101) tempo = 1.0;
    st->set_tempo(tempo);
    ASSERT_EQ(st->process(buf.data(), block, &MemorySource::pull, &src), block) << "block " << b;
    out.insert(out.end(), buf.begin(), buf.end());
  }
  ASSERT_TRUE(all_finite(out));
  // No gap: every 256-frame block after the first carries the tone (RMS of a 0.5 sine ≈ 0.354).
  // A tempo jump may dip the level briefly while the phase vocoder adapts, never to silence.
  double min_rms = 1.0, max_abs = 0.0;
  for (std::size_t b = 1; b < out.size() / (2 * block); ++b) {
    double e = 0.0;
    for (std::size_t i = 0; i < block; ++i) {
      const double x = out[(b * block + i) * 2];
      e += x * x;
      max_abs = std::max(max_abs, std::fabs(x));
    }
    min_rms = std::min(min_rms, std::sqrt(e / block));
  }
  RecordProperty("min_block_rms", std::to_string(min_rms));
  RecordProperty("max_abs", std::to_string(max_abs));
  EXPECT_GT(min_rms, finer ? 0.1 : 0.04);
  EXPECT_LT(max_abs, 1.0);
  // And the pitch is still 440 Hz in the last 0.7 s (tempo swept, pitch never moved).
  if (finer) {
    EXPECT_NEAR(dominant_hz(out, out.size() / 2 - 32768, 32768, 0), 440.0, 4.4);
  }
}

INSTANTIATE_TEST_SUITE_P(Engines, StretcherChanges,
                         ::testing::Values(StretcherEngine::kFiner, StretcherEngine::kFaster),
                         [](const auto& info) { return std::string(to_string(info.param)); });

TEST(Stretcher, TempoStepsKeepLevelAndPitch) {
  // What /set_tempo does: the tempo steps and stays. With R3 every 256-frame block keeps the
  // tone's level within ~2 dB and its pitch within 1.5 % through these steps. Known exception
  // (a library behaviour, listed in stretcher.cpp): a step from above tempo 1 to 1 or below
  // (1.25 → 1.0, 1.25 → 0.8, 1.1 → 1.0) dips a steady tone by 3–13 dB with a pitch blip for
  // ~50–100 ms; not asserted here.
  const double steps[][2] = {{1.0, 1.04}, {1.0, 1.25}, {1.0, 0.8},  {1.0, 2.0},   {2.0, 1.0},
                             {0.6, 0.8},  {0.8, 1.25}, {1.25, 1.1}, {1.25, 1.001}};
  for (const auto& st_ : steps) {
    auto st = make();
    st->set_tempo(st_[0]);
    const auto in = stereo_sine(440.0, kRate);
    MemorySource src{&in};
    src.loop = true;
    std::vector<float> out;
    std::vector<float> buf(512);
    for (int b = 0; b < 400; ++b) {
      if (b == 100) st->set_tempo(st_[1]);
      ASSERT_EQ(st->process(buf.data(), 256, &MemorySource::pull, &src), 256u);
      out.insert(out.end(), buf.begin(), buf.end());
    }
    ASSERT_TRUE(all_finite(out));
    double min_rms = 1.0;
    for (std::size_t b = 80; b < 300; ++b) {
      double e = 0.0;
      for (std::size_t i = 0; i < 256; ++i) e += double(out[(b * 256 + i) * 2]) * out[(b * 256 + i) * 2];
      min_rms = std::min(min_rms, std::sqrt(e / 256));
    }
    EXPECT_GT(min_rms, 0.28) << st_[0] << " → " << st_[1];  // 0.354 steady: −2 dB
    // Zero-crossing frequency over 1152-frame windows around the step.
    for (std::size_t w = 80 * 256; w + 1152 <= 300 * 256; w += 1152) {
      int zc = 0;
      double first = -1.0, last = -1.0;
      for (std::size_t i = w + 1; i < w + 1152; ++i) {
        const float a = out[(i - 1) * 2], c = out[i * 2];
        if (a < 0.0f && c >= 0.0f) {
          const double at = static_cast<double>(i - 1) + (-a) / (c - a);
          if (first < 0.0) first = at;
          last = at;
          ++zc;
        }
      }
      EXPECT_NEAR((zc - 1) * kRate / (last - first), 440.0, 6.6) << st_[0] << " → " << st_[1] << " at " << w;
    }
  }
}

TEST(Stretcher, UnderrunReturnsShortAndContinuesWhereItLeftOff) {
  auto st = make();
  st->set_tempo(1.25);
  const auto in = stereo_sine(440.0, 2 * kRate);
  MemorySource src{&in};
  std::vector<float> buf(512 * 2);
  for (int b = 0; b < 20; ++b) ASSERT_EQ(st->process(buf.data(), 512, &MemorySource::pull, &src), 512u);
  const std::int64_t pos = src.pos;
  src.stall = true;
  std::uint32_t got = 0;
  for (int b = 0; b < 10 && (got = st->process(buf.data(), 512, &MemorySource::pull, &src)) == 512; ++b) {
  }
  EXPECT_LT(got, 512u);  // the read-ahead runs out: a short block
  EXPECT_EQ(src.pos, pos);
  src.stall = false;
  EXPECT_EQ(st->process(buf.data(), 512, &MemorySource::pull, &src), 512u);
  EXPECT_TRUE(all_finite(buf));
}

TEST(Stretcher, DrainPlaysTheTailThenStops) {
  auto st = make();
  st->set_tempo(0.8);
  const auto in = stereo_sine(440.0, kRate / 2);
  MemorySource src{&in};
  std::vector<float> buf(256 * 2);
  std::int64_t played = 0;
  std::uint32_t got = 0;
  while ((got = st->process(buf.data(), 256, &MemorySource::pull, &src)) == 256) played += got;
  played += got;
  EXPECT_EQ(st->process(buf.data(), 256, &MemorySource::pull, &src), 0u);
  std::int64_t tail = 0;
  while ((got = st->drain(buf.data(), 256)) > 0) tail += got;
  EXPECT_EQ(st->drain(buf.data(), 256), 0u);
  EXPECT_EQ(st->process(buf.data(), 256, &MemorySource::pull, &src), 0u);  // draining: only reset()
  RecordProperty("tail_frames", std::to_string(tail));
  EXPECT_NEAR(static_cast<double>(played + tail), (kRate / 2) / 0.8, 0.02 * (kRate / 2) / 0.8);
  // reset() makes it a new voice.
  st->reset();
  src.pos = 0;
  EXPECT_EQ(st->process(buf.data(), 256, &MemorySource::pull, &src), 256u);
}

TEST(Stretcher, OutputDoesNotDependOnBlockSizeOrPullChunking) {
  // The same input in pieces of 97 (copied, as from a ring) into 64-frame blocks gives the
  // same output as whole pulls into 1024-frame blocks, to within −60 dB (R3 is not bit-exact
  // across input chunkings: measured 5.5e-4 on a 0.5 sine). Compared up to the end of the input
  // (the drained tail is fed silence from wherever each run's input ended).
  const auto in = stereo_sine(440.0, kRate);
  auto a = make();
  auto b = make();
  a->set_tempo(1.25);
  b->set_tempo(1.25);
  MemorySource sa{&in};
  MemorySource sb{&in};
  sb.chunk = 97;
  sb.copy = true;
  const auto oa = render_all(*a, sa, 1024);
  const auto ob = render_all(*b, sb, 64);
  ASSERT_EQ(oa.size(), ob.size());
  const std::size_t body = static_cast<std::size_t>(kRate / 1.25) - 4096;
  double max_diff = 0.0;
  for (std::size_t i = 0; i < body * 2; ++i) max_diff = std::max(max_diff, std::fabs(double(oa[i]) - ob[i]));
  EXPECT_LT(max_diff, 2e-3);
}

TEST(Stretcher, AReusedStretcherKeepsItsTiming) {
  // reset() makes a new voice: after playing something else, an onset still lands at its
  // source frame / tempo. (R3's reset() is not bit-exact — the phase of a steady sine after a
  // reset differs from run to run — but transients, i.e. timing, are.)
  auto st = make();
  st->set_tempo(0.8);
  const auto other = stereo_sine(1000.0, kRate / 2);
  MemorySource so{&other};
  render_all(*st, so, 256);
  for (int run = 0; run < 3; ++run) {
    st->reset();
    const std::int64_t onset = 12000;
    auto in = stereo_sine(440.0, kRate);
    std::fill(in.begin(), in.begin() + onset * 2, 0.0f);
    MemorySource src{&in};
    const auto out = render_all(*st, src, 256);
    std::int64_t first_loud = -1;
    for (std::size_t i = 0; i < out.size() / 2 && first_loud < 0; ++i) {
      if (std::fabs(out[2 * i]) > 0.25f) first_loud = static_cast<std::int64_t>(i);
    }
    EXPECT_NEAR(static_cast<double>(first_loud), onset / 0.8, 480.0) << "run " << run;
    EXPECT_NEAR(static_cast<double>(out.size() / 2), kRate / 0.8, 0.02 * kRate / 0.8);
  }
}

TEST(Stretcher, TempoIsClampedAndNanIsIgnored) {
  auto st = make();
  st->set_tempo(100.0);
  EXPECT_EQ(st->tempo(), Stretcher::kMaxTempo);
  st->set_tempo(0.0);
  EXPECT_EQ(st->tempo(), Stretcher::kMinTempo);
  st->set_tempo(std::nan(""));
  EXPECT_EQ(st->tempo(), 1.0);
  std::string error;
  EXPECT_EQ(Stretcher::create(1000, error), nullptr);
  EXPECT_FALSE(error.empty());
}

}  // namespace
}  // namespace stemd::engine
