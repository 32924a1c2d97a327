// Voices that split off a stretch bus come back (src/engine/stretch_bus.hpp, "Rejoining"): a voice
// on a stretcher of its own whose tempo a running bus of its deck (or the shared bus) has again goes
// back onto it — crossfaded as a handover, on the grid, its stretcher back in the pool — and a tempo
// change that reaches every member (a movement glide) no longer splits a bus at all: a play still
// scheduled follows it, and a voice switching into the stretch in that block finds the bus.
#include "stretch_bus_helpers.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

namespace stemd::test {
namespace {

using namespace stretch_bus;  // the shared helpers (stretch_bus_helpers.hpp)

constexpr std::size_t kLen = kSrcRate * 2;
constexpr std::uint32_t kBlock = 512;
constexpr std::size_t kOut = kBlock * 128;            // ≈ 1.4 s of output
constexpr std::size_t kSwitch = kBlock * 32;          // ≈ 0.34 s: a bus at the voice's tempo starts
constexpr double kRho = kTempo * kSrcRate / 48000.0;  // source frames per output frame
constexpr float kOther = 1.1f;                        // the bus's tempo before

// Clicks (a 3 kHz burst decaying over ≈ 1 ms) every 4410 source frames.
std::vector<float> clicks() {
  std::vector<float> v(kLen * 2, 0.0f);
  for (std::size_t at = 0; at + 256 < kLen; at += 4410) {
    for (std::size_t i = 0; i < 256; ++i) {
      v[2 * (at + i)] = v[2 * (at + i) + 1] = static_cast<float>(0.5 * std::exp(-static_cast<double>(i) / 40.0) *
                                                                 std::sin(2 * M_PI * 3000.0 * i / kSrcRate));
    }
  }
  return v;
}

struct Played {
  std::vector<float> out = std::vector<float>(kOut * 2, 0.0f);
  std::uint64_t rejoins = 0;
  std::uint32_t bus_voices = 0, active = 0;
};

// Voice 1 (`x`, deck A, kTempo) starts at frame 0. on_bus: alone, on a bus of its own all along (the
// reference). Else voice 0 (silent, 0.25 s long) has deck A's only bus at kOther, so voice 1 takes a
// stretcher of its own; voice 0 ends, the bus plays out its tail and goes idle; at kSwitch voice 2
// (silent) starts it afresh at kTempo: a running bus at voice 1's tempo. (A bus that glided there
// from 1.1 rejoins it too, but its clicks then landed 77–110 output frames (1.6–2.3 ms) off the
// reference's: a Stretcher's lookahead is approximate under a tempo change (stretcher.hpp), and the
// join uses it — as every join onto a running bus does. This compares to the millisecond.) Two
// stretchers; at the end two voices of a tempo of their own (deck B) need both.
Played run(const std::vector<float>& x, bool on_bus) {
  const std::vector<float> quiet = signal(kLen, 0);
  engine::VoiceSource v0{quiet.data(), kLen / 8, kLen / 8, false, kSrcRate};
  engine::VoiceSource v2{quiet.data(), kLen, kLen, false, kSrcRate};
  engine::VoiceSource v1{x.data(), kLen, kLen, false, kSrcRate};
  engine::Engine e(config(1, 2));
  Played r;
  if (!on_bus) {
    auto c = stretched_play(0, &v0, 0.0f);
    c.play.tempo = kOther;
    EXPECT_TRUE(e.send(c));
  }
  EXPECT_TRUE(e.send(stretched_play(1, &v1, 1.0f)));
  render(e, r.out, 0, kSwitch, kBlock);
  if (!on_bus) {
    EXPECT_EQ(e.metrics().stretch_buses_running.load(), 0u) << "voice 0 ended, its bus is idle";
    EXPECT_EQ(e.active_voices(), 1u) << "voice 1 plays on a stretcher of its own";
    EXPECT_TRUE(e.send(stretched_play(2, &v2, 0.0f)));
  }
  render(e, r.out, kSwitch, kOut - kSwitch, kBlock);
  r.rejoins = e.metrics().stretch_rejoins.load();
  r.bus_voices = e.metrics().stretch_bus_voices.load();
  // Its stretcher is back in the pool: two voices of a tempo of their own get one each.
  for (engine::VoiceId id = 3; id < 5; ++id) {
    auto c = stretched_play(id, &v2, 0.0f, 1);
    c.play.tempo = 0.9f;
    EXPECT_TRUE(e.send(c));
  }
  std::vector<float> more(kBlock * 8 * 2);
  render(e, more, 0, kBlock * 8, kBlock);
  r.active = e.active_voices();
  return r;
}

float peak(const std::vector<float>& x, std::size_t from, std::size_t to) {
  float p = 0;
  for (std::size_t i = from; i < to; ++i) p = std::max(p, std::fabs(x[2 * i]));
  return p;
}

std::size_t argmax(const std::vector<float>& x, std::size_t from, std::size_t to) {
  std::size_t at = from;
  for (std::size_t i = from; i < to; ++i) {
    if (std::fabs(x[2 * i]) > std::fabs(x[2 * at])) at = i;
  }
  return at;
}

// A voice on a stretcher of its own goes back onto its deck's bus once the bus has its tempo, and is
// heard as the same voice on the bus all along: every click at its output frame ±1 ms with no late
// copy a lookahead after it, and from the bus on (100 ms after the switch: past the crossfade) its
// peak within ±20 % of the reference's (the handover tests' tolerances). Before, it kept its stretcher to its end: no
// rejoin, one bus voice, and a voice of deck B found no stretcher.
TEST(StretchBusRejoin, AVoiceOnItsOwnStretcherRejoinsTheBusAtItsTempoOnTheGrid) {
  const auto x = clicks();
  const Played want = run(x, true);
  const Played got = run(x, false);
  EXPECT_EQ(got.rejoins, 1u);
  EXPECT_EQ(got.bus_voices, 2u) << "voice 1 is back on the bus";
  EXPECT_EQ(got.active, 4u) << "its stretcher went back to the pool: both deck B voices got one";
  const double period = 4410 / kRho;  // output frames between clicks
  int checked = 0;
  for (double t = period; t + period < kOut; t += period) {
    const auto at = static_cast<std::size_t>(t);
    const float w = peak(want.out, at - 100, at + 600), g = peak(got.out, at - 100, at + 600);
    ASSERT_GT(w, 0.1f) << "the reference's click at " << at;
    // Before the crossfade its own stretcher (at the output rate, after the resampler) renders a
    // click's peak up to 0.72 × the bus's: another stretcher, not the rejoin. From the bus on, ±20 %.
    if (at > kSwitch + 4800) {
      EXPECT_NEAR(g / w, 1.0f, 0.2f) << "the click at output frame " << at;
    }
    const auto dw = static_cast<long>(argmax(want.out, at - 100, at + 600));
    const auto dg = static_cast<long>(argmax(got.out, at - 100, at + 600));
    EXPECT_LE(std::abs(dg - dw), 48) << "on the grid, at " << at << " off " << (dg - dw);
    EXPECT_LT(peak(got.out, at + 1000, at + 3400), 0.25f * w) << "no late copy after " << at;
    ++checked;
  }
  EXPECT_GE(checked, 12);
}

// A steady chord through the rejoin's crossfade (its own stretcher out, the bus in): its level in
// 5 ms windows stays near the same voice's on the bus all along — the handover's bounds.
TEST(StretchBusRejoin, TheRejoinsCrossfadeKeepsTheLevel) {
  const auto x = signal(kLen, 3);
  const Played want = run(x, true);
  const Played got = run(x, false);
  EXPECT_EQ(got.rejoins, 1u);
  double lo = 9, hi = 0;
  for (std::size_t at = kSwitch; at + 240 < kSwitch + 12000; at += 240) {
    const double r = rms(got.out.data() + at * 2, 240) / rms(want.out.data() + at * 2, 240);
    lo = std::min(lo, r);
    hi = std::max(hi, r);
  }
  EXPECT_GT(lo, 0.55) << "no gap or deep dip (5 ms windows over 250 ms from the switch)";
  EXPECT_LT(hi, 1.35) << "no bump";
}

// The defect's path: a member split off (a tempo of its own for a while: it left, onto a stretcher
// of its own) and comes back to the bus's tempo: it rejoins, without a gap or a click.
TEST(StretchBusRejoin, AMemberThatSplitOffComesBackWhenItsTempoMatchesAgain) {
  const auto x = signal(kLen, 1);
  engine::VoiceSource vs{x.data(), kLen, kLen, false, kSrcRate};
  engine::Engine e(config(1, 2));
  for (engine::VoiceId i = 0; i < 2; ++i) ASSERT_TRUE(e.send(stretched_play(i, &vs, 0.5f)));
  std::vector<float> out(kOut * 2);
  render(e, out, 0, 12288, kBlock);
  ASSERT_TRUE(e.send(voice_command(engine::CommandType::kSetTempo, 1, 0.9f)));
  render(e, out, 12288, 12288, kBlock);
  ASSERT_EQ(e.metrics().stretch_bus_voices.load(), 1u) << "voice 1 left the bus";
  ASSERT_TRUE(e.send(voice_command(engine::CommandType::kSetTempo, 1, kTempo)));
  render(e, out, 24576, kOut - 24576, kBlock);
  EXPECT_EQ(e.metrics().stretch_rejoins.load(), 1u);
  EXPECT_EQ(e.metrics().stretch_bus_voices.load(), 2u) << "voice 1 is back on the bus";
  const double level = rms(out.data() + 30000 * 2, 4800);
  ASSERT_GT(level, 0.05);
  double lo = 9, hi = 0, max_step = 0;
  for (std::size_t at = 24576; at + 240 < kOut; at += 240) {
    const double r = rms(out.data() + at * 2, 240) / level;
    lo = std::min(lo, r);
    hi = std::max(hi, r);
  }
  for (std::size_t i = 24577; i < kOut; ++i) {
    max_step = std::max(max_step, static_cast<double>(std::fabs(out[2 * i] - out[2 * i - 2])));
  }
  EXPECT_GT(lo, 0.5) << "no gap";
  EXPECT_LT(hi, 1.5) << "no bump";
  const double sine_step = 2 * 0.5 * 2 * M_PI * 5300 * 0.35 / 48000;  // both voices' steepest slope
  EXPECT_LT(max_step, 2.0 * sine_step) << "no click";
}

// Half of the defect, at its cause: a /start_group at a time to come while a movement glide moves the
// tempo. The per-voice tempo commands reached the running voices but were dropped for the one still
// scheduled, which then started at the tempo of when it was sent — no running bus had it, so it took
// a stretcher (or a bus) of its own. Now the scheduled play follows: it starts on the bus.
TEST(StretchBusRejoin, AScheduledPlayFollowsATempoChangeAndStartsOnTheBus) {
  const auto x = signal(kLen, 2);
  engine::VoiceSource vs{x.data(), kLen, kLen, false, kSrcRate};
  engine::Engine e(config(1, 2));
  ASSERT_TRUE(e.send(stretched_play(0, &vs, 0.5f)));
  auto later = stretched_play(1, &vs, 0.5f);
  later.at_frame = 8192;
  ASSERT_TRUE(e.send(later));
  std::vector<float> out(kOut * 2);
  render(e, out, 0, 4096, kBlock);
  for (engine::VoiceId i = 0; i < 2; ++i) ASSERT_TRUE(e.send(voice_command(engine::CommandType::kSetTempo, i, kOther)));
  render(e, out, 4096, 12288, kBlock);
  EXPECT_EQ(e.active_voices(), 2u);
  EXPECT_EQ(e.metrics().stretch_bus_voices.load(), 2u) << "it started at the new tempo, on the bus";
  EXPECT_EQ(e.metrics().stretch_rejoins.load(), 0u) << "not via a stretcher of its own";
}

// The other half: a voice at tempo 1 (unstretched) and the bus's members get one new tempo in one
// block; the voice switches into the stretch at the bottom of its fade, in that block, before the
// bus takes its members' tempo — it compared with the old one and took a stretcher of its own.
TEST(StretchBusRejoin, AVoiceSwitchingIntoTheStretchWithTheBusFindsTheBus) {
  const auto x = signal(kLen, 2);
  engine::VoiceSource vs{x.data(), kLen, kLen, false, kSrcRate};
  engine::Engine e(config(1, 2));
  ASSERT_TRUE(e.send(stretched_play(0, &vs, 0.5f)));
  auto plain = stretched_play(1, &vs, 0.5f);
  plain.play.tempo = 1.0f;
  ASSERT_TRUE(e.send(plain));
  std::vector<float> out(kOut * 2);
  render(e, out, 0, 8192, 1024);
  for (engine::VoiceId i = 0; i < 2; ++i) ASSERT_TRUE(e.send(voice_command(engine::CommandType::kSetTempo, i, kOther)));
  render(e, out, 8192, 8192, 1024);
  EXPECT_EQ(e.metrics().stretch_bus_voices.load(), 2u) << "it joined the bus";
  EXPECT_EQ(e.metrics().stretch_rejoins.load(), 0u) << "at once, not via a stretcher of its own";
}

// A member fading out after a stop gets no more tempi (the router forgets a stopped player) and
// holds no stretcher budget (the control thread lends it to a restart): it does not count in the
// bus's agreement and never leaves. Before, a glide during a long fade-out split the bus — the
// members still playing, at the new tempo, left onto stretchers of their own.
TEST(StretchBusRejoin, AMemberFadingOutDoesNotSplitTheBus) {
  const auto x = signal(kLen, 2);
  engine::VoiceSource vs{x.data(), kLen, kLen, false, kSrcRate};
  engine::Engine e(config(1, 2));
  for (engine::VoiceId i = 0; i < 2; ++i) ASSERT_TRUE(e.send(stretched_play(i, &vs, 0.5f)));
  std::vector<float> out(kOut * 2);
  render(e, out, 0, 8192, 1024);
  auto stop = voice_command(engine::CommandType::kStop, 1, 0.0f);
  stop.frames = 48000;  // a 1 s fade-out
  ASSERT_TRUE(e.send(stop));
  ASSERT_TRUE(e.send(voice_command(engine::CommandType::kSetTempo, 0, kOther)));
  render(e, out, 8192, 12288, 1024);
  EXPECT_EQ(e.active_voices(), 2u) << "voice 1 still fading";
  EXPECT_EQ(e.metrics().stretch_bus_voices.load(), 2u) << "both still on the bus, at the new tempo";
}

// hostile_client.py's bus_split, at its cause: every member left the bus (two at a tempo of their own
// together, the last one stopped), so the bus stopped; the two at one tempo had no running bus to
// rejoin and kept a stretcher each until played again (two stretches instead of one). Now a voice on a
// stretcher of its own that finds no running bus at its tempo, when another one of its rate, tempo and
// deck is in the same state in that callback, re-forms a bus on an idle one (a rejoin onto a bus that
// starts afresh: silent at its input until its own path has played what it pulled), and the other
// rejoins it: one bus, both on it, without a gap or a click.
void reform_at(float tempo) {
  constexpr engine::VoiceId kStems = 3;
  std::vector<std::vector<float>> stems;
  std::vector<engine::VoiceSource> srcs;
  for (engine::VoiceId i = 0; i < kStems; ++i) stems.push_back(signal(kLen, static_cast<int>(i) + 1));
  for (const auto& s : stems) srcs.push_back(engine::VoiceSource{s.data(), kLen, kLen, false, kSrcRate});
  const std::vector<float> quiet = signal(kLen, 0);
  engine::VoiceSource vq{quiet.data(), kLen, kLen, false, kSrcRate};
  engine::Engine e(config(1, kStems + 1));
  for (engine::VoiceId i = 0; i < kStems; ++i) ASSERT_TRUE(e.send(stretched_play(i, &srcs[i], 0.35f)));
  ASSERT_TRUE(e.send(stretched_play(kStems, &vq, 0.0f)));
  std::vector<float> out(kOut * 2);
  render(e, out, 0, 8192, kBlock);
  ASSERT_EQ(e.metrics().stretch_bus_voices.load(), kStems + 1);
  for (engine::VoiceId i = 0; i < kStems; ++i) {
    ASSERT_TRUE(e.send(voice_command(engine::CommandType::kSetTempo, i, tempo)));
  }
  render(e, out, 8192, 8192, kBlock);
  ASSERT_EQ(e.metrics().stretch_bus_voices.load(), 1u) << "the stems left the bus, onto stretchers of their own";
  ASSERT_TRUE(e.send(voice_command(engine::CommandType::kStop, kStems, 0.0f)));
  const std::size_t stopped = 16384;
  render(e, out, stopped, kOut - stopped, kBlock);
  EXPECT_EQ(e.metrics().stretch_buses_running.load(), 1u) << "a bus runs again";
  EXPECT_EQ(e.metrics().stretch_bus_voices.load(), kStems) << "every stem on it";
  EXPECT_EQ(e.metrics().stretch_rejoins.load(), kStems) << "one re-formed it, the others rejoined";
  const double level = rms(out.data() + (kOut - 9600) * 2, 4800);
  ASSERT_GT(level, 0.05);
  double lo = 9, hi = 0, max_step = 0;
  // 20-ms windows: the stems' chords beat against each other (55 Hz apart at tempo 1), and 5-ms
  // windows of that swing ±50 % with no rejoin anywhere near.
  for (std::size_t at = stopped + 4096; at + 960 < kOut; at += 240) {  // past the silent voice's declick
    const double r = rms(out.data() + at * 2, 960) / level;
    lo = std::min(lo, r);
    hi = std::max(hi, r);
  }
  for (std::size_t i = stopped + 1; i < kOut; ++i) {
    max_step = std::max(max_step, static_cast<double>(std::fabs(out[2 * i] - out[2 * i - 2])));
  }
  EXPECT_GT(lo, 0.7) << "no gap";
  EXPECT_LT(hi, 1.35) << "no bump (the handovers' bound)";
  const double sine_step = kStems * 0.35 * 2 * M_PI * 5300 * 0.35 / 48000;  // the stems' steepest slope
  EXPECT_LT(max_step, 2.0 * sine_step) << "no click";
}

TEST(StretchBusRejoin, VoicesLeftWithoutARunningBusReFormOne) { reform_at(0.9f); }

// The same at tempo 1 — bus_split's end: /stemd/stretch 1.0 for every voice. A voice keeps the
// stretcher it has at tempo 1 (engine.cpp, kSetTempo), so they were three stretches at tempo 1 where
// one would do: voices on stretchers of their own rejoined (and re-formed) buses only at tempo ≠ 1.
TEST(StretchBusRejoin, VoicesBackAtTempoOneOnStretchersShareOneBus) { reform_at(1.0f); }

}  // namespace
}  // namespace stemd::test
