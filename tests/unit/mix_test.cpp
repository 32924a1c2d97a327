// The mixer: inner loops (mix.hpp) and Engine::process driven directly from the test thread.
//
// The test thread is both [control] (send, poll_event, poll_retired) and [audio] (process).
// Sources are engine::VoiceSource views of vectors filled here; the stream tests play the loader
// themselves by writing a Stream's ring, so every case is deterministic.
#include "engine/mix.hpp"
#include "stemd/engine.hpp"
#include "stemd/stream.hpp"
#include "common/engine_driver.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#if defined(__x86_64__) || defined(__SSE__)
#include <xmmintrin.h>
#endif
#include <cmath>
#include <cstring>
#include <memory>
#include <vector>

namespace stemd::engine {
namespace {

using test::Drained;
using test::first_mismatch;
using test::play_command;

// An in-memory source: the vector and the view voices read. Not copyable (the view points in).
struct MemSource {
  std::vector<float> data;
  VoiceSource view;
  explicit MemSource(std::vector<float> d) : data(std::move(d)) {
    const auto n = static_cast<std::int64_t>(data.size() / 2);
    view = VoiceSource{data.data(), n, n, false};
  }
  MemSource(const MemSource&) = delete;
  MemSource& operator=(const MemSource&) = delete;
  std::int64_t frames() const { return view.total_frames; }
  float at(std::int64_t frame, int ch) const { return data[static_cast<std::size_t>(frame * 2 + ch)]; }
};

std::vector<float> noise(std::int64_t frames, std::uint32_t seed) {
  return test::to_stereo_float(test::make_pcm16(frames, 2, seed), 2);
}
std::vector<float> dc(std::int64_t frames, float v) {
  return std::vector<float>(static_cast<std::size_t>(frames) * 2, v);
}

EngineConfig small_config() {
  EngineConfig c;
  c.sample_rate = 48000;
  c.max_block_frames = 4096;
  c.max_voices = 16;
  c.declick_ms = 5.0f;  // 240 frames
  return c;
}

// Renders `frames` frames in blocks of `block` (the last one shorter).
std::vector<float> render(Engine& e, std::int64_t frames, std::uint32_t block) {
  std::vector<float> out(static_cast<std::size_t>(frames) * 2, 12345.0f);  // process must overwrite
  for (std::int64_t done = 0; done < frames;) {
    const auto n = static_cast<std::uint32_t>(std::min<std::int64_t>(block, frames - done));
    e.process(out.data() + done * 2, n);
    done += n;
  }
  return out;
}

Command simple(CommandType t, VoiceId v, std::uint32_t gen, float value = 0.0f, std::uint32_t frames = 0) {
  Command c{};
  c.type = t;
  c.voice = v;
  c.generation = gen;
  c.value = value;
  c.frames = frames;
  return c;
}

// ---------------------------------------------------------------- kernels

TEST(MixKernels, SumsAreExactForExactValues) {
  // Dyadic values (k/64): every sum and product below is exact in float.
  const std::uint32_t frames = 37;  // odd: no vector-width alignment luck
  std::vector<float> in(frames * 2), base(frames * 2), gains(frames);
  for (std::uint32_t i = 0; i < frames * 2; ++i) {
    in[i] = static_cast<float>(static_cast<int>(i % 19) - 9) / 64.0f;
    base[i] = static_cast<float>(static_cast<int>(i % 11) - 5) / 16.0f;
  }
  for (std::uint32_t f = 0; f < frames; ++f) gains[f] = static_cast<float>(f % 5) / 4.0f;

  std::vector<float> out = base;
  mix_add(out.data(), in.data(), frames);
  for (std::uint32_t i = 0; i < frames * 2; ++i)
    ASSERT_EQ(out[i], static_cast<float>(double{base[i]} + double{in[i]})) << i;

  for (float g : {0.5f, 0.25f, 2.0f, 0.0f, -1.0f}) {
    out = base;
    mix_gain(out.data(), in.data(), frames, g);
    for (std::uint32_t i = 0; i < frames * 2; ++i)
      ASSERT_EQ(out[i], static_cast<float>(double{base[i]} + double{in[i]} * g)) << "g=" << g << " i=" << i;
  }

  out = base;
  mix_gains(out.data(), in.data(), gains.data(), frames);
  for (std::uint32_t f = 0; f < frames; ++f)
    for (int ch = 0; ch < 2; ++ch)
      ASSERT_EQ(out[2 * f + ch], static_cast<float>(double{base[2 * f + ch]} + double{in[2 * f + ch]} * gains[f]))
          << "frame " << f << " ch " << ch;  // one gain per frame, on both channels

  out = base;
  apply_gains(out.data(), gains.data(), frames);
  for (std::uint32_t f = 0; f < frames; ++f)
    for (int ch = 0; ch < 2; ++ch) ASSERT_EQ(out[2 * f + ch], base[2 * f + ch] * gains[f]);

  out = base;
  apply_gain(out.data(), frames, 0.5f);
  for (std::uint32_t i = 0; i < frames * 2; ++i) ASSERT_EQ(out[i], base[i] * 0.5f);

  // Zero frames touch nothing.
  out = base;
  mix_add(out.data(), in.data(), 0);
  mix_gain(out.data(), in.data(), 0, 3.0f);
  mix_gains(out.data(), in.data(), gains.data(), 0);
  EXPECT_EQ(out, base);
}

// The steady loops' AVX2 builds (mix.hpp) against the baseline's, bit for bit: full-scale int16
// and float noise, gains that round, lengths around every vector width and its tails. A build
// that contracted x * g + out into an FMA, or reordered the sum, would differ in the last bit.
TEST(MixKernels, Avx2BuildsGiveTheBaselineBitsForEverySample) {
  if (!cpu_has_avx2()) GTEST_SKIP() << "this CPU has no AVX2: the mixer runs the baseline loops only";
  const std::vector<std::int16_t> pcm = test::make_pcm16(1100, 2, 7);
  const std::vector<float> in = test::to_stereo_float(test::make_pcm16(1100, 2, 8), 2);
  std::vector<float> bus(2200);
  for (std::size_t i = 0; i < bus.size(); ++i) bus[i] = std::sin(0.37f * static_cast<float>(i)) * 0.613f;
  std::vector<std::uint32_t> lengths;
  for (std::uint32_t n = 0; n <= 40; ++n) lengths.push_back(n);
  for (std::uint32_t n : {63u, 64u, 65u, 255u, 511u, 1023u, 1024u, 1025u, 1100u}) lengths.push_back(n);
  for (std::uint32_t n : lengths) {
    for (float g : {1.0f, 0.7371f, 1.0f / 3.0f, -1.29f, 1e-3f}) {
      // One source through both builds: the same bus bits.
      const auto same = [&](const auto* src) {
        std::vector<float> base = bus, wide = bus;
        if (g == 1.0f) {
          mix_add(false, base.data(), src, n);
          mix_add(true, wide.data(), src, n);
        } else {
          mix_gain(false, base.data(), src, n, g);
          mix_gain(true, wide.data(), src, n, g);
        }
        return std::memcmp(base.data(), wide.data(), base.size() * sizeof(float)) == 0;
      };
      ASSERT_TRUE(same(pcm.data())) << "int16, n " << n << " g " << g;
      ASSERT_TRUE(same(in.data())) << "float, n " << n << " g " << g;
    }
  }
}

// The same through the engine: an int16 source at a gain that rounds, rendered by an engine on
// the AVX2 loops and one on the baseline, gives the same output bits.
TEST(EngineMix, TheWideLoopsRenderTheBaselineBits) {
  if (!cpu_has_avx2()) GTEST_SKIP() << "this CPU has no AVX2: the mixer runs the baseline loops only";
  const std::vector<std::int16_t> pcm = test::make_pcm16(9'000, 2, 11);
  const VoiceSource src{nullptr, 9'000, 9'000, false, 0, pcm.data()};
  std::vector<float> outs[2];
  for (int wide = 0; wide < 2; ++wide) {
    EngineConfig c = small_config();
    c.simd = wide == 1;
    Engine e(c);
    ASSERT_TRUE(e.send(play_command(0, 1, &src, nullptr, 0, 0.8123f)));
    ASSERT_TRUE(e.send(play_command(3, 1, &src, nullptr, 0)));  // and one at unity on the same deck
    outs[wide] = render(e, 9'000, 1000);
  }
  EXPECT_EQ(first_mismatch(outs[1].data(), outs[0].data(), outs[0].size()), -1);
  float peak = 0.0f;
  for (float x : outs[0]) peak = std::max(peak, std::fabs(x));
  EXPECT_GT(peak, 0.5f);  // it played
}

// ---------------------------------------------------------------- engine, in memory

TEST(EngineMix, TwoVoicesAtUnitySumSampleForSample) {
  MemSource a(noise(10'000, 1));
  MemSource b(noise(7'000, 2));  // shorter: b ends mid-block and a plays on alone
  for (std::uint32_t block : {256u, 1u, 999u, 4096u}) {
    Engine e(small_config());
    ASSERT_TRUE(e.send(play_command(0, 1, &a.view, nullptr, 0)));
    ASSERT_TRUE(e.send(play_command(5, 1, &b.view, nullptr, 0)));
    const auto out = render(e, 12'000, block);
    std::int64_t bad = -1;
    for (std::int64_t f = 0; f < 12'000 && bad < 0; ++f) {
      for (int ch = 0; ch < 2; ++ch) {
        const float want = (f < a.frames() ? a.at(f, ch) : 0.0f) + (f < b.frames() ? b.at(f, ch) : 0.0f);
        if (out[static_cast<std::size_t>(f * 2 + ch)] != want) bad = f;
      }
    }
    EXPECT_EQ(bad, -1) << "block " << block << ": first wrong frame";

    Drained d;
    d.drain(e);
    EXPECT_EQ(d.count(EventType::kVoiceStarted), 2u);
    ASSERT_EQ(d.count(EventType::kVoiceEnded), 2u);
    for (const auto& ev : d.events) {
      if (ev.type == EventType::kVoiceEnded) {
        EXPECT_EQ(ev.reason, EndReason::kEndOfFile);
      }
    }
    ASSERT_EQ(d.retired.size(), 2u);
    for (const auto& r : d.retired) {
      EXPECT_TRUE(r.voice_ended);
      EXPECT_EQ(r.stream, nullptr);
    }
    EXPECT_EQ(e.active_voices(), 0u);
  }
}

TEST(EngineMix, HalfGainHalvesExactly) {
  MemSource a(noise(5'000, 3));
  Engine e(small_config());
  ASSERT_TRUE(e.send(play_command(2, 9, &a.view, nullptr, 0, 0.5f)));
  const auto out = render(e, 5'000, 512);
  std::vector<float> want(a.data.size());
  for (std::size_t i = 0; i < want.size(); ++i) want[i] = a.data[i] * 0.5f;
  EXPECT_EQ(first_mismatch(out.data(), want.data(), want.size()), -1);
}

TEST(EngineMix, MasterGainAppliesToTheSumAndRamps) {
  MemSource a(noise(20'000, 4));
  Engine e(small_config());
  ASSERT_TRUE(e.send(simple(CommandType::kMasterGain, 0, 0, 0.5f, 0)));  // at once
  ASSERT_TRUE(e.send(play_command(0, 1, &a.view, nullptr, 0)));
  auto out = render(e, 4'000, 1000);
  for (std::size_t i = 0; i < out.size(); ++i) ASSERT_EQ(out[i], a.data[i] * 0.5f) << i;

  // Ramp back to unity over 64 frames: in between, the gain follows the line 0.5 → 1 one step
  // per frame; afterwards the output is the source again, bit for bit.
  ASSERT_TRUE(e.send(simple(CommandType::kMasterGain, 0, 0, 1.0f, 64)));
  out = render(e, 4'000, 1000);
  for (std::int64_t f = 0; f < 64; ++f) {
    const float src = a.at(4'000 + f, 0);
    if (std::fabs(src) < 1e-2f) continue;  // the ratio says little on near-zero samples
    const float g = out[static_cast<std::size_t>(f * 2)] / src;
    EXPECT_NEAR(g, 0.5f + 0.5f * static_cast<float>(f + 1) / 64.0f, 1e-4f) << "ramp frame " << f;
  }
  for (std::int64_t f = 64; f < 4'000; ++f)
    for (int ch = 0; ch < 2; ++ch) ASSERT_EQ(out[static_cast<std::size_t>(f * 2 + ch)], a.at(4'000 + f, ch)) << f;
}

// The stop envelope on a constant signal: monotonic, no step larger than the ramp's, lands on 0,
// then silence; the voice ends "stopped" and its slot comes back on the retire queue.
void check_stop_fade(std::uint32_t requested, std::uint32_t expected_len) {
  MemSource a(dc(48'000, 0.5f));
  Engine e(small_config());
  ASSERT_TRUE(e.send(play_command(3, 42, &a.view, nullptr, 0)));
  auto pre = render(e, 1'000, 250);
  for (float v : pre) ASSERT_EQ(v, 0.5f);

  ASSERT_TRUE(e.send(simple(CommandType::kStop, 3, 42, 0.0f, requested)));
  const auto out = render(e, 2'000, 100);
  const float max_step = 0.5f / static_cast<float>(expected_len) * 1.001f + 1e-6f;
  float prev = 0.5f;
  std::int64_t nonzero = 0;
  for (std::int64_t f = 0; f < 2'000; ++f) {
    const float l = out[static_cast<std::size_t>(f * 2)];
    ASSERT_EQ(l, out[static_cast<std::size_t>(f * 2 + 1)]) << f;
    ASSERT_LE(l, prev) << "not decaying at " << f;
    ASSERT_GE(l, 0.0f) << f;
    ASSERT_LE(prev - l, max_step) << "step at frame " << f << " bigger than the ramp allows";
    nonzero += l != 0.0f ? 1 : 0;
    prev = l;
  }
  EXPECT_EQ(prev, 0.0f);
  // The fade spans the ramp: its last frame is exactly 0, every earlier one is not.
  EXPECT_EQ(nonzero, static_cast<std::int64_t>(expected_len) - 1);

  Drained d;
  d.drain(e);
  const Event* ended = d.find(EventType::kVoiceEnded);
  ASSERT_NE(ended, nullptr);
  EXPECT_EQ(ended->reason, EndReason::kStopped);
  EXPECT_EQ(ended->voice, 3u);
  EXPECT_EQ(ended->generation, 42u);
  ASSERT_EQ(d.retired.size(), 1u);
  EXPECT_TRUE(d.retired[0].voice_ended);
  EXPECT_EQ(d.retired[0].voice, 3u);
  EXPECT_EQ(d.retired[0].generation, 42u);
  EXPECT_EQ(d.retired[0].stream, nullptr);
  EXPECT_EQ(e.active_voices(), 0u);
  EXPECT_EQ(e.metrics().voices_ended.load(), 1u);
}

TEST(EngineMix, StopFadesOverTheRequestedLengthThenEnds) {
  Engine probe(small_config());
  check_stop_fade(probe.declick_frames(), probe.declick_frames());
}

TEST(EngineMix, StopOfZeroFramesStillFades) { check_stop_fade(0, 64); }  // min(declick, 64)

TEST(EngineMix, PlayMidFileFadesInAndAtZeroStartsAtFullLevel) {
  MemSource a(dc(10'000, 0.5f));
  {
    Engine e(small_config());
    ASSERT_TRUE(e.send(play_command(0, 1, &a.view, nullptr, 0)));
    const auto out = render(e, 10, 10);
    EXPECT_EQ(out[0], 0.5f) << "the very start of a file plays as authored";
  }
  Engine e(small_config());
  const std::uint32_t fade = e.declick_frames();
  ASSERT_TRUE(e.send(play_command(0, 1, &a.view, nullptr, 1'000)));
  const auto out = render(e, 2'000, 128);
  EXPECT_GT(out[0], 0.0f);
  EXPECT_LE(out[0], 0.5f / fade + 1e-6f) << "a mid-file start must not click";
  float prev = 0.0f;
  for (std::uint32_t f = 0; f < fade; ++f) {
    const float l = out[f * 2];
    ASSERT_GE(l, prev) << f;
    ASSERT_LE(l - prev, 0.5f / fade * 1.001f + 1e-6f) << f;
    prev = l;
  }
  for (std::uint32_t f = fade - 1; f < 2'000; ++f) ASSERT_EQ(out[f * 2], 0.5f) << f;
  // It plays from frame 1000: 9000 frames are left, the voice is still going.
  EXPECT_EQ(e.active_voices(), 1u);
}

TEST(EngineMix, LoopRepeatsTheSourceSampleExactAcrossBlockSizes) {
  // Lengths that divide a block, that do not, and sources shorter than one block.
  for (std::int64_t len : {1'000, 997, 37, 1}) {
    MemSource a(noise(len, static_cast<std::uint32_t>(len)));
    for (std::uint32_t block : {1u, 7u, 64u, 500u, 999u, 1'000u, 1'001u, 4'096u}) {
      Engine e(small_config());
      ASSERT_TRUE(e.send(play_command(1, 1, &a.view, nullptr, 0, 1.0f, true)));
      const std::int64_t total = std::max<std::int64_t>(len * 7 + 3, 3 * block + 5);
      const auto out = render(e, total, block);
      std::int64_t bad = -1;
      for (std::int64_t f = 0; f < total && bad < 0; ++f)
        for (int ch = 0; ch < 2; ++ch)
          if (out[static_cast<std::size_t>(f * 2 + ch)] != a.at(f % len, ch)) bad = f;
      EXPECT_EQ(bad, -1) << "len " << len << " block " << block;
      EXPECT_EQ(e.active_voices(), 1u) << "a looping voice never ends by itself";
    }
  }
}

TEST(EngineMix, LoopOffMidPlayEndsAtTheEndOfThePass) {
  MemSource a(noise(1'000, 5));
  Engine e(small_config());
  ASSERT_TRUE(e.send(play_command(0, 1, &a.view, nullptr, 0, 1.0f, true)));
  auto out = render(e, 2'500, 100);  // in the third pass, at frame 500
  Command off{};
  off.type = CommandType::kSetLoop;
  off.voice = 0;
  off.generation = 1;
  off.flag = false;
  ASSERT_TRUE(e.send(off));
  out = render(e, 1'000, 100);
  for (std::int64_t f = 0; f < 500; ++f) ASSERT_EQ(out[static_cast<std::size_t>(f * 2)], a.at(500 + f, 0)) << f;
  for (std::int64_t f = 500; f < 1'000; ++f) ASSERT_EQ(out[static_cast<std::size_t>(f * 2)], 0.0f) << f;
  Drained d;
  d.drain(e);
  const Event* ended = d.find(EventType::kVoiceEnded);
  ASSERT_NE(ended, nullptr);
  EXPECT_EQ(ended->reason, EndReason::kEndOfFile);
}

TEST(EngineMix, SeekFadesOutJumpsAndFadesIn) {
  std::vector<float> ramp(20'000 * 2);
  for (std::size_t i = 0; i < ramp.size(); ++i) ramp[i] = static_cast<float>(i) / 65536.0f;  // distinct, exact
  MemSource a(std::move(ramp));
  Engine e(small_config());
  const std::uint32_t fade = e.declick_frames();
  ASSERT_TRUE(e.send(play_command(0, 1, &a.view, nullptr, 0)));
  render(e, 1'000, 100);
  Command seek{};
  seek.type = CommandType::kSeek;
  seek.voice = 0;
  seek.generation = 1;
  seek.play = PlayParams{&a.view, nullptr, 15'000, 1.0f, false};
  ASSERT_TRUE(e.send(seek));
  const auto out = render(e, 3'000, 128);
  // Fade-out of the old position: frames 1000.. scaled down to 0 at the fade's last frame.
  for (std::uint32_t f = 0; f < fade; ++f) {
    ASSERT_LE(out[f * 2], a.at(1'000 + f, 0)) << f;
  }
  EXPECT_EQ(out[(fade - 1) * 2], 0.0f);
  // Then the new position, faded in, then exact.
  for (std::uint32_t f = fade; f < 2 * fade; ++f) ASSERT_LE(out[f * 2], a.at(15'000 + (f - fade), 0)) << f;
  for (std::uint32_t f = 2 * fade; f < 3'000; ++f)
    for (int ch = 0; ch < 2; ++ch)
      ASSERT_EQ(out[f * 2 + ch], a.at(15'000 + (f - fade), ch)) << "frame " << f << " after the seek";
  Drained d;
  d.drain(e);
  EXPECT_EQ(d.count(EventType::kCommandDropped), 0u);
  EXPECT_TRUE(d.retired.empty()) << "an in-memory seek retires nothing";
}

TEST(EngineMix, StopAllFadesEveryVoice) {
  MemSource a(dc(48'000, 0.25f));
  Engine e(small_config());
  for (VoiceId v = 0; v < 4; ++v) ASSERT_TRUE(e.send(play_command(v, 10 + v, &a.view, nullptr, 0)));
  auto out = render(e, 100, 100);
  EXPECT_EQ(out[0], 1.0f);
  ASSERT_TRUE(e.send(simple(CommandType::kStopAll, 0, 0, 0.0f, 100)));
  out = render(e, 400, 50);
  float prev = 1.0f;
  for (std::size_t f = 0; f < 400; ++f) {
    ASSERT_LE(out[f * 2], prev);
    ASSERT_LE(prev - out[f * 2], 1.0f / 100 * 1.001f + 1e-6f);
    prev = out[f * 2];
  }
  EXPECT_EQ(prev, 0.0f);
  Drained d;
  d.drain(e);
  EXPECT_EQ(d.count(EventType::kVoiceEnded), 4u);
  EXPECT_EQ(d.retired.size(), 4u);
  EXPECT_EQ(e.active_voices(), 0u);
}

TEST(EngineMix, StaleCommandsAreIgnoredAndReported) {
  MemSource a(noise(10'000, 6));
  Engine e(small_config());
  ASSERT_TRUE(e.send(play_command(4, 7, &a.view, nullptr, 0)));
  render(e, 100, 100);
  Drained d;
  d.drain(e);
  d.events.clear();

  // Wrong generation for a playing slot, and a command for a slot that plays nothing.
  ASSERT_TRUE(e.send(simple(CommandType::kSetGain, 4, 6, 0.0f, 0)));
  ASSERT_TRUE(e.send(simple(CommandType::kStop, 4, 8, 0.0f, 0)));
  ASSERT_TRUE(e.send(simple(CommandType::kStop, 9, 7, 0.0f, 0)));
  const auto out = render(e, 1'000, 250);
  for (std::int64_t f = 0; f < 1'000; ++f)
    ASSERT_EQ(out[static_cast<std::size_t>(f * 2)], a.at(100 + f, 0)) << "a stale command changed the voice";
  d.drain(e);
  ASSERT_EQ(d.count(EventType::kCommandDropped), 3u);
  EXPECT_EQ(d.events[0].voice, 4u);
  EXPECT_EQ(d.events[0].generation, 6u);
  EXPECT_EQ(d.events[1].generation, 8u);
  EXPECT_EQ(d.events[2].voice, 9u);
  EXPECT_EQ(e.active_voices(), 1u);
  EXPECT_TRUE(d.retired.empty());

  // A stale seek carries a stream the engine must hand straight back, not leak.
  auto* s = new Stream(64);
  Command seek{};
  seek.type = CommandType::kSeek;
  seek.voice = 4;
  seek.generation = 3;
  seek.play = PlayParams{&a.view, s, 10, 1.0f, false};
  ASSERT_TRUE(e.send(seek));
  render(e, 10, 10);
  d.drain(e);
  ASSERT_EQ(d.retired.size(), 1u);
  EXPECT_EQ(d.retired[0].stream, s);
  EXPECT_FALSE(d.retired[0].voice_ended) << "the playing voice's slot is not freed by a stale command";
  delete s;
}

TEST(EngineMix, PlayOnABusySlotIsRefusedAndItsStreamReturned) {
  MemSource a(noise(10'000, 7));
  Engine e(small_config());
  ASSERT_TRUE(e.send(play_command(2, 1, &a.view, nullptr, 0)));
  render(e, 10, 10);
  auto* s = new Stream(64);
  ASSERT_TRUE(e.send(play_command(2, 2, &a.view, s, 0)));
  ASSERT_TRUE(e.send(play_command(1'000, 3, &a.view, nullptr, 0)));  // beyond max_voices
  const auto out = render(e, 100, 100);
  for (std::int64_t f = 0; f < 100; ++f) ASSERT_EQ(out[static_cast<std::size_t>(f * 2)], a.at(10 + f, 0));
  Drained d;
  d.drain(e);
  EXPECT_EQ(d.count(EventType::kCommandDropped), 2u);
  ASSERT_EQ(d.retired.size(), 1u);
  EXPECT_EQ(d.retired[0].stream, s);
  EXPECT_FALSE(d.retired[0].voice_ended);
  EXPECT_EQ(e.active_voices(), 1u);
  delete s;
}

TEST(EngineMix, MetricsFollowTheCallbacks) {
  MemSource a(noise(1'000, 8));
  Engine e(small_config());
  const Metrics& m = e.metrics();
  EXPECT_EQ(m.callbacks.load(), 0u);
  ASSERT_TRUE(e.send(play_command(0, 1, &a.view, nullptr, 0)));
  ASSERT_TRUE(e.send(play_command(1, 1, &a.view, nullptr, 0, 1.0f, true)));
  std::vector<float> buf(2 * 300);
  e.process(buf.data(), 300);
  EXPECT_EQ(m.callbacks.load(), 1u);
  EXPECT_EQ(m.frames.load(), 300u);
  EXPECT_EQ(e.frame(), 300);
  EXPECT_EQ(m.voices_active.load(), 2u);
  EXPECT_EQ(m.commands_applied.load(), 2u);
  EXPECT_EQ(m.streams_active.load(), 0u);
  for (int i = 0; i < 4; ++i) e.process(buf.data(), 300);  // the non-looping voice ends at 1000
  EXPECT_EQ(m.callbacks.load(), 5u);
  EXPECT_EQ(m.frames.load(), 1'500u);
  EXPECT_EQ(m.voices_active.load(), 1u);
  EXPECT_EQ(m.voices_ended.load(), 1u);
  EXPECT_EQ(m.voice_underruns.load(), 0u);
  e.process(buf.data(), 10, true);
  EXPECT_EQ(m.device_underflows.load(), 1u);
  std::uint64_t recorded = 0;
  for (auto c : m.callback_ns.snapshot()) recorded += c;
  EXPECT_EQ(recorded, 6u) << "one duration per callback";
  EXPECT_NE(m.last_callback_ns.load(), 0u);
}

#if defined(__x86_64__) || defined(__SSE__)
// The callback flushes denormals (a decaying tail never hits slow arithmetic) and gives the
// calling thread its floating-point mode back.
TEST(EngineMix, FlushesDenormalsInsideTheCallbackAndRestoresTheCallersMode) {
  const float tiny = 1e-39f;  // denormal
  ASSERT_NE(std::fpclassify(tiny), FP_NORMAL);
  MemSource a(dc(100, tiny));
  Engine e(small_config());
  ASSERT_TRUE(e.send(play_command(0, 1, &a.view, nullptr, 0)));
  const unsigned before = _mm_getcsr();
  const auto out = render(e, 100, 100);
  EXPECT_EQ(_mm_getcsr(), before);
  for (float v : out) ASSERT_EQ(v, 0.0f) << "a denormal reached the output";
  volatile float check = tiny;
  EXPECT_NE(check * 1.0f, 0.0f) << "the caller's mode must still keep denormals";
}
#endif

// ---------------------------------------------------------------- engine, streamed (test plays loader)

// A streamed source: the head in memory, the rest written by the test into the stream's ring.
struct FakeStreamed {
  std::vector<float> file;  // the whole "file"
  VoiceSource view;
  FakeStreamed(std::int64_t total, std::int64_t head, std::uint32_t seed) : file(noise(total, seed)) {
    view = VoiceSource{file.data(), head, total, true};
  }
  // Writes file frames [from, from + n) to the ring; returns frames written.
  std::size_t feed(Stream& s, std::int64_t from, std::int64_t n) const {
    return s.ring().write(file.data() + from * 2, static_cast<std::size_t>(n));
  }
};

TEST(EngineStream, HeadThenRingIsSeamlessAndFinishEndsTheVoice) {
  FakeStreamed src(10'000, 1'000, 9);
  auto* s = new Stream(16'384);
  ASSERT_EQ(src.feed(*s, 1'000, 9'000), 9'000u);
  s->finish(EndReason::kEndOfFile);
  Engine e(small_config());
  ASSERT_TRUE(e.streams_ready(4'096));
  ASSERT_TRUE(e.send(play_command(0, 1, &src.view, s, 0)));
  const auto out = render(e, 12'000, 333);
  EXPECT_EQ(first_mismatch(out.data(), src.file.data(), src.file.size()), -1);
  for (std::size_t i = src.file.size(); i < out.size(); ++i) ASSERT_EQ(out[i], 0.0f);
  Drained d;
  d.drain(e);
  const Event* ended = d.find(EventType::kVoiceEnded);
  ASSERT_NE(ended, nullptr);
  EXPECT_EQ(ended->reason, EndReason::kEndOfFile);
  ASSERT_EQ(d.retired.size(), 1u);
  EXPECT_EQ(d.retired[0].stream, s) << "the engine hands the stream back";
  EXPECT_TRUE(d.retired[0].voice_ended);
  delete s;
}

// A 16-bit file streams through an int16 ring, converted as it is mixed: the bus must hold the
// same floats as through a float ring of the decoded samples, at unity, under a gain ramp, at a
// fixed gain and panned (each path of mix_segment).
TEST(EngineStream, Int16RingMixesExactlyAsTheFloatRing) {
  constexpr std::int64_t kTotal = 20'000, kHead = 1'000;
  const auto pcm = test::make_pcm16(kTotal, 2, 21);
  std::vector<float> file = test::to_stereo_float(pcm, 2);
  file[2 * 5'000] = -1.0f;  // the extremes: -32768 and 32767
  file[2 * 5'000 + 1] = 32767.0f / 32768.0f;
  std::vector<std::int16_t> ints(file.size());
  for (std::size_t i = 0; i < file.size(); ++i) ints[i] = static_cast<std::int16_t>(file[i] * 32768.0f);
  const VoiceSource view{file.data(), kHead, kTotal, true};

  auto run = [&](SampleFormat fmt) {
    auto* s = new Stream(32'768, fmt);
    if (fmt == SampleFormat::kInt16) {
      auto w = s->ring().write_spans_i16(kTotal - kHead);
      std::copy(ints.begin() + kHead * 2, ints.end(), w.first);
      s->ring().commit(kTotal - kHead);
    } else {
      s->ring().write(file.data() + kHead * 2, kTotal - kHead);
    }
    s->finish(EndReason::kEndOfFile);
    Engine e(small_config());
    EXPECT_TRUE(e.send(play_command(0, 1, &view, s, 0)));
    auto out = render(e, 4'000, 256);                                       // unity
    EXPECT_TRUE(e.send(simple(CommandType::kSetGain, 0, 1, 0.3f, 3'000)));  // a ramp…
    auto more = render(e, 6'000, 256);                                      // …then 0.3
    out.insert(out.end(), more.begin(), more.end());
    EXPECT_TRUE(e.send(simple(CommandType::kSetPan, 0, 1, -0.6f, 2'000)));
    more = render(e, kTotal - 10'000 + 500, 256);
    out.insert(out.end(), more.begin(), more.end());
    Drained d;
    d.drain(e);
    delete s;
    return out;
  };
  const auto via_float = run(SampleFormat::kFloat);
  const auto via_int16 = run(SampleFormat::kInt16);
  ASSERT_EQ(via_float.size(), via_int16.size());
  EXPECT_EQ(first_mismatch(via_int16.data(), via_float.data(), via_float.size()), -1);
  EXPECT_EQ(first_mismatch(via_int16.data(), file.data(), 4'000 * 2), -1) << "unity: the file's own values";
}

TEST(EngineStream, UnderrunFadesOutThenResumesWhereItStopped) {
  FakeStreamed src(100'000, 1'000, 10);
  auto* s = new Stream(4'096);
  ASSERT_EQ(src.feed(*s, 1'000, 600), 600u);  // head + 600 = 1600 frames available
  Engine e(small_config());
  ASSERT_TRUE(e.send(play_command(0, 1, &src.view, s, 0)));
  e.apply_commands();
  EXPECT_TRUE(e.streams_ready(1'600));
  EXPECT_FALSE(e.streams_ready(1'601));

  auto out = render(e, 2'048, 512);  // the 4th block has only 64 frames left
  for (std::int64_t f = 0; f < 1'536; ++f)
    for (int ch = 0; ch < 2; ++ch) ASSERT_EQ(out[static_cast<std::size_t>(f * 2 + ch)], src.file[f * 2 + ch]) << f;
  // The last 64 frames fade to silence (no step larger than the fade allows), then silence.
  for (std::int64_t f = 1'536; f < 1'600; ++f) {
    const float o = out[static_cast<std::size_t>(f * 2)];
    const float x = src.file[static_cast<std::size_t>(f * 2)];
    ASSERT_LE(std::fabs(o), std::fabs(x) + 1e-7f) << f;
    EXPECT_NEAR(o, x * (1.0f - static_cast<float>(f - 1'535) / 64.0f), 1e-5f) << f;
  }
  for (std::int64_t f = 1'600; f < 2'048; ++f) ASSERT_EQ(out[static_cast<std::size_t>(f * 2)], 0.0f) << f;
  Drained d;
  d.drain(e);
  const Event* u = d.find(EventType::kVoiceUnderrun);
  ASSERT_NE(u, nullptr);
  EXPECT_EQ(u->count, 1u);
  EXPECT_EQ(e.metrics().voice_underruns.load(), 1u);
  EXPECT_EQ(e.active_voices(), 1u) << "an underrun is not an end";

  // A trickle below the resume margin keeps it silent; a comfortable refill resumes it with a
  // fade-in from the exact frame where it stopped (no frame lost or repeated).
  ASSERT_EQ(src.feed(*s, 1'600, 100), 100u);
  out = render(e, 512, 512);
  for (float v : out) ASSERT_EQ(v, 0.0f);
  ASSERT_EQ(src.feed(*s, 1'700, 3'000), 3'000u);
  out = render(e, 2'048, 512);
  const std::uint32_t fade = e.declick_frames();
  for (std::uint32_t f = 0; f < fade; ++f)
    ASSERT_LE(std::fabs(out[f * 2]), std::fabs(src.file[(1'600 + f) * 2]) + 1e-7f) << f;
  for (std::uint32_t f = fade; f < 2'048; ++f)
    for (int ch = 0; ch < 2; ++ch) ASSERT_EQ(out[f * 2 + ch], src.file[(1'600 + f) * 2 + ch]) << "frame " << f;
  s->finish(EndReason::kError);  // e.g. the file became unreadable; what is queued still plays
  render(e, 4'096, 512);
  d.drain(e);
  const Event* ended = d.find(EventType::kVoiceEnded);
  ASSERT_NE(ended, nullptr);
  EXPECT_EQ(ended->reason, EndReason::kError);
  ASSERT_EQ(d.retired.size(), 1u);
  EXPECT_EQ(d.retired[0].stream, s);
  delete s;
}

}  // namespace
}  // namespace stemd::engine
