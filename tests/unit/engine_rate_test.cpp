// Rate conversion inside the engine: a file at another sample rate plays at the engine's rate
// with ≥ 90 dB SNR, a rate change glides without a click (also when it moves a voice off the
// bit-exact path), and a voice at rate 1 from a same-rate file stays bit-exact.
#include "common/engine_driver.hpp"

#include <gtest/gtest.h>

#include <cmath>

namespace stemd::test {
namespace {

std::vector<float> sine(std::size_t frames, double hz, double rate, float amp) {
  std::vector<float> v(frames * 2);
  for (std::size_t i = 0; i < frames; ++i) {
    v[2 * i] = v[2 * i + 1] = amp * static_cast<float>(std::sin(2 * M_PI * hz * static_cast<double>(i) / rate));
  }
  return v;
}

std::vector<float> run(engine::Engine& e, std::size_t frames, std::uint32_t block = 256) {
  std::vector<float> out(frames * 2);
  for (std::size_t f = 0; f < frames; f += block) {
    e.process(out.data() + f * 2, static_cast<std::uint32_t>(std::min<std::size_t>(block, frames - f)));
  }
  return out;
}

// SNR of the left channel against the best-fitting sine of frequency `hz` (least squares on
// sin/cos/dc).
double snr_db(const std::vector<float>& x, std::size_t from, std::size_t to, double hz, double rate) {
  double ss = 0, sc = 0, cc = 0, ys = 0, yc = 0;
  for (std::size_t i = from; i < to; ++i) {
    const double w = 2 * M_PI * hz * static_cast<double>(i) / rate;
    const double s = std::sin(w), c = std::cos(w), y = x[2 * i];
    ss += s * s;
    sc += s * c;
    cc += c * c;
    ys += y * s;
    yc += y * c;
  }
  const double det = ss * cc - sc * sc;
  const double a = (ys * cc - yc * sc) / det, b = (yc * ss - ys * sc) / det;
  double sig = 0, err = 0;
  for (std::size_t i = from; i < to; ++i) {
    const double w = 2 * M_PI * hz * static_cast<double>(i) / rate;
    const double fit = a * std::sin(w) + b * std::cos(w);
    sig += fit * fit;
    err += (x[2 * i] - fit) * (x[2 * i] - fit);
  }
  return 10 * std::log10(sig / err);
}

engine::EngineConfig config() {
  engine::EngineConfig ec;
  ec.max_voices = 8;
  ec.max_block_frames = 1024;
  ec.max_resampled_voices = 4;
  return ec;
}

TEST(EngineRate, FileAt44k1PlaysAt48kWithAtLeast90dB) {
  const auto src = sine(44100 * 2, 1000.0, 44100.0, 0.89f);
  engine::VoiceSource vs{src.data(), 88200, 88200, false, 44100};
  engine::Engine e(config());
  ASSERT_TRUE(e.send(play_command(0, 1, &vs, nullptr, 0)));
  const auto out = run(e, 48000 * 2);
  const double snr = snr_db(out, 4800, 48000 + 4800, 1000.0, 48000.0);
  RecordProperty("snr_db", std::to_string(snr));
  EXPECT_GE(snr, 90.0);
  // 2 s of source → 2 s of output, within the resampler's tail
  std::size_t last = 0;
  for (std::size_t i = 0; i < out.size(); i += 2) {
    if (out[i] != 0.0f) last = i / 2;
  }
  EXPECT_NEAR(static_cast<double>(last), 96000.0, 64.0);
}

// A file at another rate is heard on time: a smooth pulse at frame 1000 of a 44.1 kHz (or 96 kHz,
// or 22.05 kHz) file started at output frame 0 is heard centred at output frame 1000 × 48000 /
// its rate, and the reported position says the same. An outside pass measured a resampled
// voice's start ≈ 128 · (1 − 1/ratio) frames off.
TEST(EngineRate, APulseInAFileAtAnotherRateIsHeardOnTime) {
  for (int rate : {44100, 96000, 22050}) {
    SCOPED_TRACE("file at " + std::to_string(rate) + " Hz");
    const std::size_t n = static_cast<std::size_t>(rate);  // 1 s
    std::vector<float> src(n * 2);
    const double width = 12.0 * rate / 48000.0;  // the same pulse in output frames
    for (std::size_t i = 0; i < n; ++i) {
      const double x = (static_cast<double>(i) - 1000.0) / width;
      src[2 * i] = src[2 * i + 1] = static_cast<float>(0.5 * std::exp(-0.5 * x * x));
    }
    engine::VoiceSource vs{src.data(), static_cast<std::int64_t>(n), static_cast<std::int64_t>(n), false, rate};
    engine::Engine e(config());
    ASSERT_TRUE(e.send(play_command(0, 1, &vs, nullptr, 0)));
    const auto out = run(e, 8192);
    double sum = 0.0, moment = 0.0;
    for (std::size_t k = 0; k < out.size() / 2; ++k) {
      const double v = out[2 * k];
      if (v < 0.01) continue;
      sum += v;
      moment += v * static_cast<double>(k);
    }
    ASSERT_GT(sum, 0.0);
    EXPECT_NEAR(moment / sum, 1000.0 * 48000.0 / rate, 0.5);
  }
}

// Largest |second difference| of the left channel, normalised by what a sine of the
// instantaneous frequency can produce: a click shows up as a spike far above 1.
double max_click(const std::vector<float>& x, std::size_t from, std::size_t to, double max_hz, float amp) {
  const double bound = amp * std::pow(2 * M_PI * max_hz / 48000.0, 2);
  double worst = 0;
  for (std::size_t i = from + 2; i < to; ++i) {
    const double d2 = x[2 * i] - 2 * x[2 * (i - 1)] + x[2 * (i - 2)];
    worst = std::max(worst, std::fabs(d2) / bound);
  }
  return worst;
}

TEST(EngineRate, RateGlideDoesNotClick) {
  const auto src = sine(48000 * 4, 500.0, 48000.0, 0.5f);
  engine::VoiceSource vs{src.data(), 192000, 192000, false, 0};
  engine::Engine e(config());
  auto c = play_command(0, 1, &vs, nullptr, 0);
  c.play.rate = 1.5f;  // resampled from the start
  ASSERT_TRUE(e.send(c));
  auto out = run(e, 24000);
  engine::Command r{};
  r.type = engine::CommandType::kSetRate;
  r.voice = 0;
  r.generation = 1;
  r.value = 0.5f;
  r.frames = 12000;
  ASSERT_TRUE(e.send(r));
  const auto more = run(e, 24000);
  out.insert(out.end(), more.begin(), more.end());
  EXPECT_LT(max_click(out, 4800, 48000, 750.0, 0.5f), 1.5);
}

TEST(EngineRate, LeavingTheBitExactPathDoesNotClick) {
  const auto src = sine(48000 * 4, 500.0, 48000.0, 0.5f);
  engine::VoiceSource vs{src.data(), 192000, 192000, false, 0};
  engine::Engine e(config());
  ASSERT_TRUE(e.send(play_command(0, 1, &vs, nullptr, 0)));
  auto out = run(e, 12000);
  EXPECT_EQ(first_mismatch(out.data(), src.data(), out.size()), -1) << "rate 1: bit-exact";
  engine::Command r{};
  r.type = engine::CommandType::kSetRate;
  r.voice = 0;
  r.generation = 1;
  r.value = 1.25f;
  r.frames = 4800;
  ASSERT_TRUE(e.send(r));
  const auto more = run(e, 24000);
  out.insert(out.end(), more.begin(), more.end());
  // The switch fades out, attaches the resampler, fades in: no spike beyond the sine's own.
  EXPECT_LT(max_click(out, 100, 36000, 625.0, 0.5f), 1.5);
  double late_peak = 0;
  for (std::size_t i = 30000 * 2; i < 36000 * 2; ++i)
    late_peak = std::max(late_peak, static_cast<double>(std::fabs(out[i])));
  EXPECT_NEAR(late_peak, 0.5, 0.01) << "the voice plays on at full level after the switch";
}

TEST(EngineRate, PoolExhaustedEndsTheVoiceWithAnError) {
  const auto src = sine(4800, 500.0, 44100.0, 0.5f);
  engine::VoiceSource vs{src.data(), 4800, 4800, false, 44100};
  auto ec = config();
  ec.max_resampled_voices = 1;
  engine::Engine e(ec);
  ASSERT_TRUE(e.send(play_command(0, 1, &vs, nullptr, 0)));
  ASSERT_TRUE(e.send(play_command(1, 2, &vs, nullptr, 0)));
  run(e, 1024);
  Drained d;
  d.drain(e);
  ASSERT_EQ(d.count(engine::EventType::kVoiceEnded), 1u);
  EXPECT_EQ(d.find(engine::EventType::kVoiceEnded)->reason, engine::EndReason::kError);
}

}  // namespace
}  // namespace stemd::test
