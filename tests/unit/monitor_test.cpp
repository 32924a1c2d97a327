// The web monitor's pieces below the network (issue 16): the master's tap (stamps, chunking,
// drops when the reader is behind, nothing while no one listens), the engine's meters, and the
// API's JSON → OSC conversion with its refusals.
#include "stemd/engine.hpp"
#include "web/web_internal.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

namespace stemd {
namespace {

using engine::MonitorTap;

std::vector<float> ramp_block(std::uint32_t frames, std::int64_t first) {
  std::vector<float> b(frames * 2);
  for (std::uint32_t i = 0; i < frames; ++i) {
    b[2 * i] = static_cast<float>((first + i) % 1000) / 1000.0f;  // left: the frame number, scaled
    b[2 * i + 1] = -b[2 * i];
  }
  return b;
}

TEST(MonitorTap, ChunksCarryTheirFirstFrameAndTheSamples) {
  MonitorTap tap;
  tap.set_enabled(true);
  std::int64_t frame = 0;
  for (int cb = 0; cb < 5; ++cb) {  // 5 × 100 frames: one full chunk of 256, the rest waits
    auto b = ramp_block(100, frame);
    tap.write(b.data(), 100, frame);
    frame += 100;
  }
  MonitorTap::Chunk c;
  ASSERT_TRUE(tap.read(c));
  EXPECT_EQ(c.frame, 0);
  EXPECT_EQ(c.samples[2 * 200], static_cast<std::int16_t>(std::lround(0.2 * 32767)));
  EXPECT_EQ(c.samples[2 * 200 + 1], -c.samples[2 * 200]);
  EXPECT_FALSE(tap.read(c));  // 244 frames are in the chunk being filled
  auto b = ramp_block(100, frame);
  tap.write(b.data(), 100, frame);
  ASSERT_TRUE(tap.read(c));
  EXPECT_EQ(c.frame, 256);
}

TEST(MonitorTap, FullRingDropsWholeChunksAndCountsThem) {
  MonitorTap tap;
  tap.set_enabled(true);
  const std::uint32_t n = MonitorTap::kChunkFrames;
  std::int64_t frame = 0;
  for (std::uint32_t i = 0; i < MonitorTap::kChunks + 10; ++i, frame += n) {
    auto b = ramp_block(n, frame);
    tap.write(b.data(), n, frame);
  }
  EXPECT_EQ(tap.dropped(), 10u);
  MonitorTap::Chunk c;
  std::int64_t expect = 0;
  std::uint32_t got = 0;
  while (tap.read(c)) {
    EXPECT_EQ(c.frame, expect);
    expect += n;
    ++got;
  }
  EXPECT_EQ(got, MonitorTap::kChunks);  // the oldest kept; the newest 10 were dropped
  auto b = ramp_block(n, frame);
  tap.write(b.data(), n, frame);  // room again: the stamp shows the gap
  ASSERT_TRUE(tap.read(c));
  EXPECT_EQ(c.frame, frame);
}

TEST(MonitorTap, NothingWhileNoOneListens) {
  MonitorTap tap;
  auto b = ramp_block(4096, 0);
  tap.write(b.data(), 4096, 0);
  MonitorTap::Chunk c;
  EXPECT_FALSE(tap.read(c));
  EXPECT_EQ(tap.written(), 0u);
}

TEST(MonitorTap, ClipsInsteadOfWrapping) {
  MonitorTap tap;
  tap.set_enabled(true);
  std::vector<float> b(2 * MonitorTap::kChunkFrames, 1.7f);
  b[1] = -3.0f;
  tap.write(b.data(), MonitorTap::kChunkFrames, 0);
  MonitorTap::Chunk c;
  ASSERT_TRUE(tap.read(c));
  EXPECT_EQ(c.samples[0], 32767);
  EXPECT_EQ(c.samples[1], -32767);
}

TEST(EngineMeters, MasterAndDeckMetersFollowTheTone) {
  engine::EngineConfig ec;
  ec.max_block_frames = 1024;
  ec.monitor = true;
  engine::Engine e(ec);
  e.monitor_tap()->set_enabled(true);  // a listener
  engine::Command t{};
  t.type = engine::CommandType::kTone;
  t.tone_hz = 1000.0;
  t.value = 0.5f;
  t.frames = 48000;
  ASSERT_TRUE(e.send(t));
  std::vector<float> out(2048);
  for (int i = 0; i < 10; ++i) e.process(out.data(), 1024);
  auto& m = e.metrics().meters[engine::kNumDecks];
  EXPECT_NEAR(m.take_peak(), 0.5f, 0.01f);
  EXPECT_NEAR(m.rms.load(), 0.5f / std::sqrt(2.0f), 0.01f);
  EXPECT_EQ(m.take_peak(), 0.0f);                     // taken
  EXPECT_EQ(e.metrics().meters[0].rms.load(), 0.0f);  // the tone is on the direct bus, not deck A
  EXPECT_GT(e.monitor_tap()->written(), 0u) << "the engine writes its master into the tap";
}

TEST(WebJson, MessagesFromJson) {
  control::OscMessage m;
  std::string err;
  ASSERT_TRUE(web::message_from_json(R"({"address":"/stemd/play","args":[1,0.5,"x",true,null,5000000000]})", m, err))
      << err;
  EXPECT_EQ(m.address, "/stemd/play");
  EXPECT_EQ(m.types(), ",ifsTNh");
  ASSERT_TRUE(web::message_from_json(R"({"address":"/stemd/ping"})", m, err));
  EXPECT_TRUE(m.args.empty());
  const char* bad[][2] = {{"{", "not JSON"},
                          {"[]", "object"},
                          {R"({"args":[]})", "address"},
                          {R"({"address":"x"})", "address"},
                          {R"({"address":"/a","args":1})", "array"},
                          {R"({"address":"/a","args":[{}]})", "args[0]"}};
  for (auto& b : bad) {
    EXPECT_FALSE(web::message_from_json(b[0], m, err)) << b[0];
    EXPECT_NE(err.find(b[1]), std::string::npos) << b[0] << " → " << err;
  }
}

}  // namespace
}  // namespace stemd
