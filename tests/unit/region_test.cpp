// Loop regions and sections: a region loops sample-exactly for its count of passes and the
// voice then ends; without loop it is a section that ends at the region's end. In memory and
// streamed, with the region ending beyond the head and inside it.
#include "common/engine_driver.hpp"

#include "control/controller.hpp"
#include "io/sound_file.hpp"

#include <gtest/gtest.h>

#include <mutex>
#include <tuple>

namespace stemd::test {
namespace {

struct Case {
  const char* name;
  std::int64_t preload;  // bytes: ≥ file → in memory, 0 → streamed
  std::int64_t head;
};

class Region : public ::testing::TestWithParam<Case> {};

std::vector<float> play_to_end(engine::Engine& e, io::LoaderThread& loader, control::Controller& ctl,
                               std::size_t max_frames) {
  std::vector<float> out;
  std::vector<float> block(512 * 2);
  for (std::size_t f = 0; f < max_frames; f += 512) {
    process_fed(e, loader, block.data(), 512);
    ctl.service();
    out.insert(out.end(), block.begin(), block.end());
    if (ctl.voices_playing() == 0) break;
  }
  return out;
}

// An engine, a loader and a controller for a region test: 512-frame blocks, 4096-frame rings.
struct Rig {
  explicit Rig(std::int64_t preload, std::int64_t head)
      : e(engine_config()), loader(loader_config()), ctl(e, loader, load_options(preload, head)) {
    loader.start();
  }
  ~Rig() { loader.stop(); }
  static engine::EngineConfig engine_config() {
    engine::EngineConfig ec;
    ec.max_voices = 4;
    ec.max_block_frames = 512;
    return ec;
  }
  static io::LoaderConfig loader_config() {
    io::LoaderConfig lc;
    lc.ring_frames = 4096;
    lc.chunk_frames = 1024;
    lc.prefill_frames = 1024;
    return lc;
  }
  static io::LoadOptions load_options(std::int64_t preload, std::int64_t head) {
    io::LoadOptions lo;
    lo.preload_limit_bytes = preload;
    lo.head_frames = head;
    return lo;
  }
  engine::Engine e;
  io::LoaderThread loader;
  control::Controller ctl;
};

TEST_P(Region, LoopsItsPassesSampleExactlyThenEnds) {
  const Case c = GetParam();
  TempDir dir;
  const auto src = make_wav(dir.file("r.wav"), 20000, 17);
  Rig rig(c.preload, c.head);
  auto& [e, loader, ctl] = rig;
  std::string err;
  ASSERT_TRUE(ctl.load(control::kNow, 1, dir.file("r.wav"), "r", err)) << err;
  for (const auto& [first, last] : {std::pair<std::int64_t, std::int64_t>{1000, 3000}, {5000, 15000}}) {
    SCOPED_TRACE(std::string(c.name) + " region " + std::to_string(first) + ".." + std::to_string(last));
    control::PlayOptions po;
    po.loop = true;
    po.loop_count = 3;
    po.start_frame = 0;  // an intro, then the region three times
    po.loop_start = first;
    po.loop_end = last;
    control::VoiceHandle h;
    ASSERT_TRUE(ctl.play(control::kNow, 1, po, h, err)) << err;
    const auto out = play_to_end(e, loader, ctl, 200000);
    std::vector<float> want(src.begin(), src.begin() + last * 2);
    for (int pass = 1; pass < 3; ++pass) want.insert(want.end(), src.begin() + first * 2, src.begin() + last * 2);
    ASSERT_GE(out.size(), want.size());
    EXPECT_EQ(first_mismatch(out.data(), want.data(), want.size()), -1);
    for (std::size_t i = want.size(); i < out.size(); ++i) ASSERT_EQ(out[i], 0.0f) << "sound after the last pass";
  }
}

TEST_P(Region, SectionWithoutLoopEndsAtItsEnd) {
  const Case c = GetParam();
  TempDir dir;
  const auto src = make_wav(dir.file("r.wav"), 20000, 19);
  Rig rig(c.preload, c.head);
  auto& [e, loader, ctl] = rig;
  std::string err;
  ASSERT_TRUE(ctl.load(control::kNow, 1, dir.file("r.wav"), "r", err)) << err;
  control::PlayOptions po;
  po.start_frame = 2000;
  po.loop_start = 2000;
  po.loop_end = 7000;
  control::VoiceHandle h;
  ASSERT_TRUE(ctl.play(control::kNow, 1, po, h, err)) << err;
  const auto out = play_to_end(e, loader, ctl, 100000);
  // starts mid-file: a 5 ms fade-in, then exact
  const std::size_t fade = e.declick_frames();
  std::vector<float> want(src.begin() + 2000 * 2, src.begin() + 7000 * 2);
  EXPECT_EQ(first_mismatch(out.data() + fade * 2, want.data() + fade * 2, want.size() - fade * 2), -1);
  for (std::size_t i = want.size(); i < out.size(); ++i) ASSERT_EQ(out[i], 0.0f);
}

INSTANTIATE_TEST_SUITE_P(Sources, Region,
                         ::testing::Values(Case{"memory", 1 << 30, 24000}, Case{"streamed_small_head", 0, 500},
                                           Case{"streamed_big_head", 0, 12000}),
                         [](const auto& info) { return std::string(info.param.name); });

// An in-memory loop region shorter than a block: each block gets its repeats in one piece, not one
// fetch and one mix per wrap (an outside pass: 1,000 one-frame loops took 6.8 ms of a 10.7-ms
// period, 42 × the same voices on a long loop, and 1,700 of them made every callback late). The
// sound is the same, sample for sample: the intro, the region `passes` times, then silence.
TEST(Region, ATinyInMemoryLoopIsMixedInOnePieceAPassAndPlaysSampleExactly) {
  TempDir dir;
  const auto src = make_wav(dir.file("r.wav"), 20000, 23);
  Rig rig(1 << 30, 24000);  // in memory
  auto& [e, loader, ctl] = rig;
  std::string err;
  ASSERT_TRUE(ctl.load(control::kNow, 1, dir.file("r.wav"), "r", err)) << err;
  for (const auto& [first, last, passes] : {std::tuple<std::int64_t, std::int64_t, std::uint32_t>{1000, 1001, 6000},
                                            {1000, 1003, 2001},
                                            {4000, 4100, 77},
                                            {3000, 3255, 30}}) {
    SCOPED_TRACE("region " + std::to_string(first) + ".." + std::to_string(last) + " × " + std::to_string(passes));
    control::PlayOptions po;
    po.loop = true;
    po.loop_count = passes;
    po.start_frame = first - 700;  // an intro that ends inside a block, then the region
    po.loop_start = first;
    po.loop_end = last;
    control::VoiceHandle h;
    ASSERT_TRUE(ctl.play(control::kNow, 1, po, h, err)) << err;
    const std::uint64_t segments_before = e.segments_mixed();
    const auto out = play_to_end(e, loader, ctl, 200000);
    const std::uint64_t segments = e.segments_mixed() - segments_before;
    std::vector<float> want(src.begin() + (first - 700) * 2, src.begin() + last * 2);
    for (std::uint32_t pass = 1; pass < passes; ++pass) {
      want.insert(want.end(), src.begin() + first * 2, src.begin() + last * 2);
    }
    ASSERT_GE(out.size(), want.size());
    // (It starts mid-file: the 5-ms fade-in first.)
    const std::size_t fade = e.declick_frames() * 2;
    EXPECT_EQ(first_mismatch(out.data() + fade, want.data() + fade, want.size() - fade), -1);
    for (std::size_t i = want.size(); i < out.size(); ++i) ASSERT_EQ(out[i], 0.0f) << "sound after the last pass";
    // At most a few pieces per 512-frame block (the intro's end, the repeats, a pass's end),
    // where wrap by wrap a one-frame loop was a piece per frame.
    const std::uint64_t blocks = out.size() / 2 / 512;
    EXPECT_LE(segments, 3 * blocks + 3) << want.size() / 2 << " frames";
  }
}

// A streamed loop region shorter than the ring: read from the file once, then played from memory.
// Before, every wrap was a seek and a read of a few frames (the attack pass: a 4-frame loop on a
// FLAC cost 0.67-0.79 of a core, seeking decodes a block), and at most 4 wraps per fill turn left a
// 1-frame loop a few frames a turn: the voice underran and played clicks.
TEST(Region, ATinyStreamedLoopIsReadOnceAndPlaysWhole) {
  struct Watch : io::FaultInjector {
    std::mutex m;
    int reads = 0;
    io::ReadFault on_read(const std::string&, std::int64_t, std::int64_t) noexcept override {
      std::lock_guard lock(m);
      ++reads;
      return {};
    }
  };
  TempDir dir;
  const auto src = make_wav(dir.file("r.wav"), 40000, 23);
  for (const std::int64_t len : {1, 4, 3000}) {
    SCOPED_TRACE("a loop of " + std::to_string(len) + " frames");
    Rig rig(0, 500);  // streamed
    auto& [e, loader, ctl] = rig;
    std::string err;
    ASSERT_TRUE(ctl.load(control::kNow, 1, dir.file("r.wav"), "r", err)) << err;
    const std::int64_t first = 20000;
    control::PlayOptions po;
    po.loop = true;  // forever
    po.start_frame = first;
    po.loop_start = first;
    po.loop_end = first + len;
    control::VoiceHandle h;
    ASSERT_TRUE(ctl.play(control::kNow, 1, po, h, err)) << err;  // opens its stream: the header, the region
    Watch watch;
    io::set_fault_injector(&watch);
    const auto out = play_to_end(e, loader, ctl, 512 * 40);
    io::set_fault_injector(nullptr);
    ASSERT_EQ(out.size(), 512u * 40 * 2) << "still playing";
    // After the start's fade-in, the region again and again, exactly.
    const std::size_t fade = e.declick_frames();
    std::size_t bad = 0;
    for (std::size_t f = fade; f < out.size() / 2; ++f) {
      const std::size_t at = static_cast<std::size_t>(first) + f % static_cast<std::size_t>(len);
      if (out[2 * f] != src[2 * at] || out[2 * f + 1] != src[2 * at + 1]) ++bad;
    }
    EXPECT_EQ(bad, 0u) << "frames that are not the loop's";
    std::lock_guard lock(watch.m);
    EXPECT_EQ(watch.reads, 0) << "reads of the file while it played (before: 20,493 for the 1-frame loop)";
  }
}

TEST(Region, BadRegionsAreRefused) {
  TempDir dir;
  make_wav(dir.file("r.wav"), 1000, 3);
  engine::EngineConfig ec;
  ec.max_voices = 4;
  engine::Engine e(ec);
  io::LoaderThread loader(io::LoaderConfig{});
  control::Controller ctl(e, loader, io::LoadOptions{});
  std::string err;
  ASSERT_TRUE(ctl.load(control::kNow, 1, dir.file("r.wav"), "r", err));
  for (auto [a, b] : {std::pair<std::int64_t, std::int64_t>{500, 400}, {-1, 100}, {0, 2000}, {1000, 0}}) {
    control::PlayOptions po;
    po.loop_start = a;
    po.loop_end = b;
    control::VoiceHandle h;
    EXPECT_FALSE(ctl.play(control::kNow, 1, po, h, err)) << a << ".." << b;
    EXPECT_NE(err.find("loop region"), std::string::npos) << err;
  }
  EXPECT_EQ(ctl.voices_playing(), 0u);
}

}  // namespace
}  // namespace stemd::test
