// Stretch buses (src/engine/stretch_bus.hpp): the stretched voices of a deck at one tempo and
// source rate share one Stretcher + Resampler. A bus of N voices plays bit for bit what one
// standalone Stretcher + Resampler fed the pre-mixed sum plays; a voice joining a running bus
// lands on the beat grid; voices that cannot join keep their own stretcher; a tempo change
// moves the bus, a voice of its own tempo leaves it; a bus plays out its tail and goes idle.
#include "stretch_bus_helpers.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

namespace stemd::test {
namespace {

using namespace stretch_bus;  // the shared helpers (stretch_bus_helpers.hpp)

TEST(StretchBus, BusOfVoicesIsBitIdenticalToOneStretcherAndResamplerFedTheSum) {
  constexpr std::size_t kLen = kSrcRate * 3;
  const std::vector<float> x[3] = {signal(kLen, 0), signal(kLen, 1), signal(kLen, 2)};
  const float gains[3] = {1.0f, 0.8f, 0.5f};
  std::vector<engine::VoiceSource> vs;
  for (const auto& s : x) vs.push_back(engine::VoiceSource{s.data(), kLen, kLen, false, kSrcRate});

  // No stretcher of their own: all three can only play through the bus.
  engine::Engine e(config(1, 0));
  ASSERT_EQ(e.stretch_buses(), 1u);
  for (engine::VoiceId i = 0; i < 3; ++i) ASSERT_TRUE(e.send(stretched_play(i, &vs[i], gains[i])));
  constexpr std::uint32_t kBlock = 512;
  constexpr std::size_t kOut = kBlock * 187;  // ≈ 2 s
  std::vector<float> got(kOut * 2);
  render(e, got, 0, kOut, kBlock);
  EXPECT_EQ(e.metrics().stretch_bus_voices.load(), 3u);
  EXPECT_EQ(e.metrics().stretch_buses_running.load(), 1u);

  // The reference: the three mixed first (as the bus mixes: in join order, out += in × gain),
  // then one Stretcher made for 44.1 kHz and one Resampler to 48 kHz.
  std::vector<float> sum(kLen * 2, 0.0f);
  for (int k = 0; k < 3; ++k) {
    for (std::size_t i = 0; i < kLen * 2; ++i) {
      if (gains[k] == 1.0f) {
        sum[i] += x[k][i];
      } else {
        sum[i] += x[k][i] * gains[k];
      }
    }
  }
  const std::vector<float> want = stretched_reference(sum, kOut, kBlock);
  ASSERT_EQ(want.size(), got.size()) << "the reference could not be made";
  EXPECT_GT(rms(want.data() + 48000, 48000), 0.1) << "the reference plays";
  EXPECT_EQ(first_mismatch(got.data(), want.data(), got.size()), -1) << "bit-identical";
}

// A voice that joins a running bus skips the bus's lookahead: heard from then on where it would be
// had it started with the first. A click train (a transient every 100 ms of source), and the same
// train joining 25,600 output frames later at the position the first has reached there: its clicks
// land on the first's (twice as loud), none a lookahead (≈ 45 ms) late. (A phase vocoder's output
// is not a waveform-exact function of a sum that changed on the way, so clicks, not samples.)
std::vector<float> clicks(std::size_t frames) {
  std::vector<float> v(frames * 2, 0.0f);
  for (std::size_t at = 0; at < frames; at += 4410) {
    for (std::size_t i = 0; i < 256 && at + i < frames; ++i) {
      const auto x = static_cast<float>(0.5 * std::exp(-static_cast<double>(i) / 40.0) *
                                        std::sin(2 * M_PI * 3000.0 * i / kSrcRate));
      v[2 * (at + i)] = v[2 * (at + i) + 1] = x;
    }
  }
  return v;
}

float peak(const std::vector<float>& x, std::size_t from, std::size_t to) {
  float p = 0;
  for (std::size_t i = from; i < to; ++i) p = std::max(p, std::fabs(x[2 * i]));
  return p;
}

TEST(StretchBus, VoiceJoiningARunningBusLandsOnTheGrid) {
  constexpr std::size_t kLen = kSrcRate * 4;
  const auto x = clicks(kLen);
  engine::VoiceSource vs{x.data(), kLen, kLen, false, kSrcRate};
  constexpr std::uint32_t kBlock = 512;
  constexpr std::size_t kJoin = 25600;  // × ρ = 3087/3200 → an exact source frame
  constexpr std::int64_t kJoinPos = kJoin * 3087 / 3200;
  constexpr std::size_t kOut = 48000 * 2;
  std::vector<float> solo(kOut * 2), both(kOut * 2);
  {
    engine::Engine e(config(1, 0));
    ASSERT_TRUE(e.send(stretched_play(0, &vs, 1.0f)));
    render(e, solo, 0, kOut, kBlock);
  }
  engine::Engine e(config(1, 0));
  ASSERT_TRUE(e.send(stretched_play(0, &vs, 1.0f)));
  render(e, both, 0, kJoin, kBlock);
  ASSERT_TRUE(e.send(stretched_play(1, &vs, 1.0f, 0, kJoinPos)));
  render(e, both, kJoin, kOut - kJoin, kBlock);
  EXPECT_EQ(e.metrics().stretch_bus_voices.load(), 2u) << "the second joined the first's bus";
  // Every click of the solo run from 0.2 s after the join on: the pair's is there, twice as loud,
  // and the 45 ms after it stay quiet (a late copy would sit there).
  const double out_period = 4410 / (3087.0 / 3200.0);  // output frames between clicks
  int checked = 0;
  for (double t = 0; t + out_period < kOut; t += out_period) {
    const auto at = static_cast<std::size_t>(t);
    if (at < kJoin + 9600) continue;
    const float s = peak(solo, at, at + 600), p = peak(both, at, at + 600);
    ASSERT_GT(s, 0.1f) << "a click at " << at;
    EXPECT_NEAR(p / s, 2.0f, 0.2f) << "the joined voice's click lands on the first's, at " << at;
    EXPECT_LT(peak(both, at + 1000, at + 3400), 0.25f * p) << "no late copy after " << at;
    ++checked;
  }
  EXPECT_GE(checked, 10);
}

// A member's seek skips ahead by the bus's lookahead too: after it, its clicks land where a voice
// started at the seek's frame from the seek's position would put them (on the grid).
TEST(StretchBus, SeekOfAMemberLandsOnTheGrid) {
  constexpr std::size_t kLen = kSrcRate * 4;
  const auto x = clicks(kLen);
  engine::VoiceSource vs{x.data(), kLen, kLen, false, kSrcRate};
  constexpr std::uint32_t kBlock = 512;
  constexpr std::size_t kAt = 25600, kOut = 48000 * 2;
  constexpr std::int64_t kTo = 2000;  // between clicks
  std::vector<float> seeked(kOut * 2), fresh(kOut * 2, 0.0f);
  {
    engine::Engine e(config(1, 0));
    ASSERT_TRUE(e.send(stretched_play(0, &vs, 1.0f)));
    render(e, seeked, 0, kAt, kBlock);
    auto c = voice_command(engine::CommandType::kSeek, 0, 0.0f);
    c.play.position = kTo;
    ASSERT_TRUE(e.send(c));
    render(e, seeked, kAt, kOut - kAt, kBlock);
  }
  engine::Engine e(config(1, 0));
  render(e, fresh, 0, kAt, kBlock);
  ASSERT_TRUE(e.send(stretched_play(0, &vs, 1.0f, 0, kTo)));  // a fresh bus: start compensated
  render(e, fresh, kAt, kOut - kAt, kBlock);
  const double out_period = 4410 / (3087.0 / 3200.0);
  int checked = 0;
  for (double t = kAt + (4410 - kTo) / (3087.0 / 3200.0); t + out_period < kOut; t += out_period) {
    const auto at = static_cast<std::size_t>(t);
    if (at < kAt + 9600) continue;
    const float f = peak(fresh, at - 100, at + 600), s = peak(seeked, at - 100, at + 600);
    ASSERT_GT(f, 0.1f) << "a click at " << at;
    EXPECT_NEAR(s / f, 1.0f, 0.2f) << "the seeked voice's click is there too, at " << at;
    EXPECT_LT(peak(seeked, at + 1000, at + 3400), 0.25f * f) << "no late copy after " << at;
    ++checked;
  }
  EXPECT_GE(checked, 10);
}

// A voice starting at the top of its file on a running bus is skipped into mid-sound: it fades
// in (the declick) instead of stepping in.
TEST(StretchBus, VoiceStartingOnARunningBusFadesIn) {
  constexpr std::size_t kLen = kSrcRate * 2;
  std::vector<float> low(kLen * 2), high(kLen * 2);
  for (std::size_t i = 0; i < kLen; ++i) {
    low[2 * i] = low[2 * i + 1] = static_cast<float>(0.2 * std::sin(2 * M_PI * 200.0 * i / kSrcRate));
    high[2 * i] = high[2 * i + 1] = static_cast<float>(0.4 * std::cos(2 * M_PI * 3000.0 * i / kSrcRate));
  }
  engine::VoiceSource a{low.data(), kLen, kLen, false, kSrcRate}, b{high.data(), kLen, kLen, false, kSrcRate};
  engine::Engine e(config(1, 0));
  ASSERT_TRUE(e.send(stretched_play(0, &a, 1.0f)));
  std::vector<float> out(36000 * 2);
  render(e, out, 0, 12800, 512);
  ASSERT_TRUE(e.send(stretched_play(1, &b, 1.0f)));  // from frame 0 of its file
  render(e, out, 12800, 36000 - 12800, 512);
  EXPECT_EQ(e.metrics().stretch_bus_voices.load(), 2u);
  const double slope = 0.2 * 2 * M_PI * 200 / 48000 + 0.4 * 2 * M_PI * 3000 * 1.05 / 48000;
  double max_step = 0;
  for (std::size_t i = 12000; i < 36000; ++i) {
    max_step = std::max(max_step, static_cast<double>(std::fabs(out[2 * i] - out[2 * i - 2])));
  }
  EXPECT_LT(max_step, 1.3 * slope) << "no step where it joins";
  EXPECT_GT(rms(out.data() + 30000 * 2, 4000), 0.25) << "and it plays";
}

TEST(StretchBus, VoicesThatCannotJoinKeepTheirOwnStretcher) {
  constexpr std::size_t kLen = kSrcRate * 2;
  const auto x = signal(kLen, 0);
  engine::VoiceSource vs{x.data(), kLen, kLen, false, kSrcRate};
  engine::Engine e(config(1, 1));
  ASSERT_TRUE(e.send(stretched_play(0, &vs, 1.0f, 0)));  // takes the one bus
  ASSERT_TRUE(e.send(stretched_play(1, &vs, 1.0f, 1)));  // another deck: its own stretcher
  auto other = stretched_play(2, &vs, 1.0f, 0);          // same deck, at rate 1.5: its own too — none left
  other.play.rate = 1.5f;
  ASSERT_TRUE(e.send(other));
  std::vector<float> out(24000 * 2);
  render(e, out, 0, 24000, 512);
  EXPECT_EQ(e.metrics().stretch_bus_voices.load(), 1u);
  EXPECT_EQ(e.active_voices(), 2u) << "the third found neither a bus nor a stretcher";
  Drained d;
  d.drain(e);
  const engine::Event* ended = d.find(engine::EventType::kVoiceEnded);
  ASSERT_NE(ended, nullptr);
  EXPECT_EQ(ended->voice, 2u);
  EXPECT_EQ(ended->reason, engine::EndReason::kError);
  EXPECT_GT(rms(out.data() + 12000 * 2, 12000), 0.1) << "decks A and B both sound";
}

TEST(StretchBus, TempoChangeMovesTheBusAndAVoiceOfItsOwnTempoLeaves) {
  constexpr std::size_t kLen = kSrcRate * 4;
  const auto x = signal(kLen, 2);
  engine::VoiceSource vs{x.data(), kLen, kLen, false, kSrcRate};
  engine::Engine e(config(1, 2));
  for (engine::VoiceId i = 0; i < 2; ++i) ASSERT_TRUE(e.send(stretched_play(i, &vs, 0.5f)));
  std::vector<float> out(48000 * 3 * 2);
  render(e, out, 0, 12000, 512);
  for (engine::VoiceId i = 0; i < 2; ++i) ASSERT_TRUE(e.send(voice_command(engine::CommandType::kSetTempo, i, 1.2f)));
  render(e, out, 12000, 12000, 512);
  EXPECT_EQ(e.metrics().stretch_bus_voices.load(), 2u) << "both followed: the bus glides, nobody leaves";
  ASSERT_TRUE(e.send(voice_command(engine::CommandType::kSetTempo, 1, 0.9f)));  // one voice's own tempo
  render(e, out, 24000, 48000, 512);
  EXPECT_EQ(e.metrics().stretch_bus_voices.load(), 1u) << "voice 1 left the bus";
  EXPECT_EQ(e.active_voices(), 2u) << "and plays on with a stretcher of its own";
  const double sine_step = 2 * 0.5 * 2 * M_PI * 5300 * 0.35 / 48000;  // both voices' steepest slope
  double max_step = 0;
  for (std::size_t i = 1; i < 72000; ++i) {
    max_step = std::max(max_step, static_cast<double>(std::fabs(out[2 * i] - out[2 * i - 2])));
  }
  EXPECT_LT(max_step, 2.0 * sine_step) << "no click at the join, the glide or the leave";
  EXPECT_GT(rms(out.data() + 60000 * 2, 12000), 0.05);
}

// Two stretched voices of one signal (`seconds` long) on a bus of deck A, 12,288 output frames
// rendered in 1024-frame blocks: the start of the tempo-split tests.
struct TwoOnABus {
  std::size_t len;
  std::vector<float> x;
  engine::VoiceSource vs;
  engine::Engine e;
  std::vector<float> out = std::vector<float>(48000 * 2);
  explicit TwoOnABus(std::size_t seconds)
      : len(kSrcRate * seconds),
        x(signal(len, 1)),
        vs{x.data(), static_cast<std::int64_t>(len), static_cast<std::int64_t>(len), false, kSrcRate},
        e(config(1, 2)) {
    for (engine::VoiceId i = 0; i < 2; ++i) EXPECT_TRUE(e.send(stretched_play(i, &vs, 0.5f)));
    render(e, out, 0, 12288, 1024);
  }
};

// The control thread sends /set_tempo's commands one voice after the other while callbacks run:
// they may land in two callbacks. The bus waits a callback before it calls the voices apart, so
// nobody leaves over that.
TEST(StretchBus, ATempoChangeSplitOverTwoCallbacksKeepsTheBusTogether) {
  TwoOnABus bus(2);
  engine::Engine& e = bus.e;
  std::vector<float>& out = bus.out;
  ASSERT_TRUE(e.send(voice_command(engine::CommandType::kSetTempo, 0, 1.1f)));
  e.process(out.data(), 1024);  // voice 0 at 1.1, voice 1 still at 1.05
  ASSERT_TRUE(e.send(voice_command(engine::CommandType::kSetTempo, 1, 1.1f)));
  render(e, out, 0, 24576, 1024);
  EXPECT_EQ(e.metrics().stretch_bus_voices.load(), 2u) << "both still on the bus, at the new tempo";
}

// A flood of /set_tempo: every callback finds the members half way through another change (voice
// 0 at the newest tempo, voice 1 a message behind). That is not a voice of its own tempo: nobody
// leaves. Before, after two such callbacks both left, each priming a stretcher of its own on the
// audio thread (a client's tempo flood took the callback from 1.6 to 5.5-15 ms at 1024 frames).
TEST(StretchBus, ATempoFloodSplittingEveryCallbackKeepsTheBusTogether) {
  TwoOnABus bus(4);
  engine::Engine& e = bus.e;
  std::vector<float>& out = bus.out;
  float prev = kTempo;
  for (int k = 0; k < 12; ++k) {
    const float t = 1.0f + 0.01f * static_cast<float>(k % 7);
    ASSERT_TRUE(e.send(voice_command(engine::CommandType::kSetTempo, 1, prev)));
    ASSERT_TRUE(e.send(voice_command(engine::CommandType::kSetTempo, 0, t)));
    e.process(out.data(), 1024);
    EXPECT_EQ(e.metrics().stretch_bus_voices.load(), 2u) << "callback " << k << ": a member left the bus";
    prev = t;
  }
  ASSERT_TRUE(e.send(voice_command(engine::CommandType::kSetTempo, 1, prev)));
  render(e, out, 0, 24576, 1024);
  EXPECT_EQ(e.metrics().stretch_bus_voices.load(), 2u) << "both on the bus, at the last tempo";
  // A voice that keeps a tempo of its own still leaves.
  ASSERT_TRUE(e.send(voice_command(engine::CommandType::kSetTempo, 1, 0.9f)));
  render(e, out, 0, 48000, 1024);
  EXPECT_EQ(e.metrics().stretch_bus_voices.load(), 1u) << "voice 1 left the bus";
}

TEST(StretchBus, EndedVoicesLeaveTheTailThenTheBusGoesIdle) {
  constexpr std::size_t kLen = kSrcRate / 2;
  const auto x = signal(kLen, 0);
  engine::VoiceSource vs{x.data(), kLen, kLen, false, kSrcRate};
  engine::Engine e(config(1, 0));
  ASSERT_TRUE(e.send(stretched_play(0, &vs, 1.0f)));
  std::vector<float> out(48000 * 2);
  render(e, out, 0, 48000, 512);
  EXPECT_EQ(e.active_voices(), 0u);
  EXPECT_EQ(e.metrics().stretch_buses_running.load(), 0u) << "idle after its tail";
  // 0.5 s of source at tempo 1.05 lasts ≈ 0.476 s at the output: the tail is heard to there.
  const auto expected_end = static_cast<std::size_t>(48000 * 0.5 / kTempo);
  EXPECT_GT(rms(out.data() + (expected_end - 2400) * 2, 2000), 0.05) << "the tail plays out";
  EXPECT_LT(rms(out.data() + (expected_end + 4800) * 2, 4800), 1e-4) << "then silence";
  // The idle bus starts afresh for the next voice: start compensated again.
  ASSERT_TRUE(e.send(stretched_play(1, &vs, 1.0f)));
  render(e, out, 0, 12000, 512);
  EXPECT_EQ(e.metrics().stretch_bus_voices.load(), 1u);
  EXPECT_GT(rms(out.data() + 2000 * 2, 4000), 0.05);
}

}  // namespace
}  // namespace stemd::test
