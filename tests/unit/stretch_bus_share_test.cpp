// Shared stretch buses (--stretch-bus-share, src/engine/stretch_bus.hpp "Shared buses"): one bus
// takes the stretched voices of every deck; each deck's part goes through source-rate copies of
// the deck's EQ and fader, and the decks' sum is stretched and resampled once. It plays bit for
// bit what one standalone Stretcher + Resampler fed that sum plays; a deck's fader and EQ reach
// its bus voices one lookahead late, and not twice.
#include "engine/deck_eq.hpp"
#include "stretch_bus_helpers.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

namespace stemd::test {
namespace {

using namespace stretch_bus;  // the shared helpers (stretch_bus_helpers.hpp)

constexpr std::size_t kLen = kSrcRate * 3;
constexpr std::uint32_t kBlock = 512;
constexpr std::size_t kOut = kBlock * 187;  // ≈ 2 s of output

engine::EngineConfig shared_config() {
  engine::EngineConfig ec = config(1, 0);  // one bus, no stretcher of their own
  ec.stretch_bus_share = true;
  return ec;
}

engine::Command deck_command(engine::CommandType t, std::uint8_t deck, float value, std::uint32_t frames,
                             std::uint8_t band = 0) {
  engine::Command c{};
  c.type = t;
  c.deck = deck;
  c.band = band;
  c.value = value;
  c.frames = frames;
  return c;
}

// Two voices on deck A (0) and one on deck B (1), all at kTempo: what the engine plays, and the
// decks' source-rate sums (A's two mixed in join order, as the bus mixes them).
struct TwoDecks {
  std::vector<float> x[3] = {signal(kLen, 0), signal(kLen, 1), signal(kLen, 2)};
  std::vector<engine::VoiceSource> vs;
  engine::Engine e{shared_config()};
  std::vector<float> deck_a = std::vector<float>(kLen * 2, 0.0f);
  std::vector<float> deck_b;

  TwoDecks() {
    for (const auto& s : x) vs.push_back(engine::VoiceSource{s.data(), kLen, kLen, false, kSrcRate});
    for (int k = 0; k < 2; ++k) {
      for (std::size_t i = 0; i < kLen * 2; ++i) deck_a[i] += x[k][i];
    }
    deck_b = x[2];
  }
  void play() {
    ASSERT_TRUE(e.send(stretched_play(0, &vs[0], 1.0f, 0)));
    ASSERT_TRUE(e.send(stretched_play(1, &vs[1], 1.0f, 0)));
    ASSERT_TRUE(e.send(stretched_play(2, &vs[2], 1.0f, 1)));
  }
};

TEST(StretchBusShare, TwoDecksShareOneBusBitIdenticalToOneStretcherFedTheirSum) {
  TwoDecks t;
  ASSERT_EQ(t.e.stretch_buses(), 1u);
  t.play();
  std::vector<float> got(kOut * 2);
  render(t.e, got, 0, kOut, kBlock);
  EXPECT_EQ(t.e.metrics().stretch_bus_voices.load(), 3u) << "deck B's voice joined deck A's bus";
  EXPECT_EQ(t.e.metrics().stretch_buses_running.load(), 1u);
  std::vector<float> sum(kLen * 2);
  for (std::size_t i = 0; i < kLen * 2; ++i) sum[i] = t.deck_a[i] + t.deck_b[i];
  const std::vector<float> want = stretched_reference(sum, kOut, kBlock);
  ASSERT_EQ(want.size(), got.size()) << "the reference could not be made";
  EXPECT_GT(rms(want.data() + 48000, 48000), 0.1) << "the reference plays";
  EXPECT_EQ(first_mismatch(got.data(), want.data(), got.size()), -1) << "bit-identical";
}

// Deck A's fader at 0.8, deck B's at 0.5 and its low band killed before the play: each deck's
// part is filtered and scaled at the source rate before the stretch (a DeckEq made for 44.1 kHz),
// and no deck's fader or EQ is applied a second time after it.
TEST(StretchBusShare, EachDecksEqAndFaderActOnItsPartBeforeTheStretch) {
  TwoDecks t;
  ASSERT_TRUE(t.e.send(deck_command(engine::CommandType::kDeckGain, 0, 0.8f, 0)));
  ASSERT_TRUE(t.e.send(deck_command(engine::CommandType::kDeckGain, 1, 0.5f, 0)));
  ASSERT_TRUE(t.e.send(deck_command(engine::CommandType::kDeckEq, 1, 0.0f, 0, engine::DeckEq::kLow)));
  t.play();
  std::vector<float> got(kOut * 2);
  render(t.e, got, 0, kOut, kBlock);
  EXPECT_EQ(t.e.metrics().stretch_bus_voices.load(), 3u);

  engine::DeckEq out_rate(48000.0);  // the deck's own, where the command landed
  out_rate.set_band_gain(engine::DeckEq::kLow, 0.0f, 0);
  engine::DeckEq eq(static_cast<double>(kSrcRate));
  eq.jump_to(out_rate);
  std::vector<float> b = t.deck_b;
  eq.process(b.data(), static_cast<std::uint32_t>(kLen));
  std::vector<float> sum(kLen * 2);
  for (std::size_t i = 0; i < kLen * 2; ++i) sum[i] = t.deck_a[i] * 0.8f + b[i] * 0.5f;
  const std::vector<float> want = stretched_reference(sum, kOut, kBlock);
  ASSERT_EQ(want.size(), got.size()) << "the reference could not be made";
  EXPECT_EQ(first_mismatch(got.data(), want.data(), got.size()), -1) << "bit-identical";
}

// A fader cut while the bus runs: heard one lookahead (L / ρ output frames) after it is applied,
// then silence — the documented price of sharing. Deck A's voice is at gain 0 so that what is
// heard is deck B's.
TEST(StretchBusShare, AFaderCutReachesTheBusVoicesOneLookaheadLate) {
  TwoDecks t;
  ASSERT_TRUE(t.e.send(stretched_play(0, &t.vs[0], 0.0f, 0)));
  ASSERT_TRUE(t.e.send(stretched_play(2, &t.vs[2], 1.0f, 1)));
  constexpr std::size_t kCut = kBlock * 94;  // ≈ 1 s
  std::vector<float> got(kOut * 2);
  render(t.e, got, 0, kCut, kBlock);
  ASSERT_EQ(t.e.metrics().stretch_bus_voices.load(), 2u);
  ASSERT_TRUE(t.e.send(deck_command(engine::CommandType::kDeckGain, 1, 0.0f, 0)));
  render(t.e, got, kCut, kOut - kCut, kBlock);
  EXPECT_GT(rms(got.data() + kCut * 2, 960), 0.1) << "the first 20 ms after the cut still sound (lookahead)";
  EXPECT_LT(rms(got.data() + (kCut + 4800) * 2, 9600), 1e-4) << "silent from 100 ms after the cut";
}

// A deck started while the other plays keeps its attack (the handover):
// stretch_bus_handover_test.cpp.

}  // namespace
}  // namespace stemd::test
