// Memory stays flat while streaming, and loading a huge file touches only its head.
//
// The engine is driven the way the render backend drives it (as fast as the loader can feed
// it, waiting only for rings), so twenty minutes of audio stream in seconds.
#include "common/fixtures.hpp"
#include "common/sanitized.hpp"
#include "control/controller.hpp"
#include "io/loader_thread.hpp"
#include "io/sound_file.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <thread>

namespace stemd::test {
namespace {

// An engine streaming through its loader thread, with a controller, as the daemon wires them.
struct Streaming {
  engine::Engine engine;
  io::LoaderThread loader{io::LoaderConfig{}};
  control::Controller ctl;
  static engine::EngineConfig config(std::uint32_t max_voices) {
    engine::EngineConfig ec;
    ec.max_voices = max_voices;
    return ec;
  }
  explicit Streaming(std::uint32_t max_voices) : engine(config(max_voices)), ctl(engine, loader, io::LoadOptions{}) {
    engine.set_loader_wakeup(&io::LoaderThread::wake_cb, &loader);
    loader.start();
  }
};

// Renders until the voice ends, calling `at_frame` once when the engine passes `mark`.
template <typename F>
std::int64_t render_until_idle(engine::Engine& engine, io::LoaderThread& loader, control::Controller& ctl,
                               std::int64_t mark, F at_mark) {
  std::vector<float> buf(1024 * 2);
  bool marked = false;
  for (std::int64_t block = 0;; ++block) {
    engine.apply_commands();
    for (int i = 0; !engine.streams_ready(1024) && i < 100000; ++i) {
      loader.wake();
      std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
    engine.process(buf.data(), 1024);
    if ((block & 63) == 0) ctl.service();
    if (!marked && engine.frame() >= mark) {
      at_mark();
      marked = true;
    }
    if (engine.active_voices() == 0) break;
  }
  ctl.service();
  return engine.frame();
}

TEST(Memory, TwentyMinuteStreamKeepsRssFlat) {
  TempDir dir;
  const std::string path = dir.file("long.wav");
  const std::int64_t frames = 20LL * 60 * 48000;  // 20 minutes, 230 MB on disk
  write_long_wav16(path, frames, 7);

  Streaming rig(16);
  auto& [engine, loader, ctl] = rig;
  std::string err;
  ASSERT_TRUE(ctl.load(control::kNow, 1, path, "long", err)) << err;
  ASSERT_TRUE(ctl.source(1)->streamed());
  control::VoiceHandle h;
  ASSERT_TRUE(ctl.play(control::kNow, 1, control::PlayOptions{}, h, err)) << err;

  std::int64_t rss_at_10s = 0;
  const std::int64_t played = render_until_idle(engine, loader, ctl, 10 * 48000, [&] { rss_at_10s = rss_bytes(); });
  const std::int64_t rss_end = rss_bytes();
  loader.stop();

  EXPECT_GE(played, frames);
  EXPECT_EQ(engine.metrics().voice_underruns.load(), 0u);
  const double growth_mb = static_cast<double>(rss_end - rss_at_10s) / (1024.0 * 1024.0);
  RecordProperty("rss_at_10s_mb", std::to_string(rss_at_10s / (1024 * 1024)));
  RecordProperty("rss_growth_mb", std::to_string(growth_mb));
  std::printf("RSS at 10 s: %.1f MB, at 20 min: %.1f MB, growth %.2f MB\n", rss_at_10s / 1048576.0, rss_end / 1048576.0,
              growth_mb);
  EXPECT_LT(growth_mb, 5.0) << "streaming must not accumulate memory";
}

TEST(Memory, LoadingAGigabyteFileReadsOnlyItsHead) {
  TempDir dir;
  const std::string path = dir.file("huge.wav");
  const std::uint32_t data_bytes = 1u << 30;  // 1 GiB of 16-bit stereo = 93 minutes
  write_sparse_wav16(path, data_bytes);

  io::LoadOptions lo;  // defaults: 16 MB preload limit, 0.5 s head
  io::LoadResult r = io::load_source(path, "huge", lo);
  ASSERT_TRUE(r.source) << r.error;
  EXPECT_TRUE(r.source->streamed());
  EXPECT_EQ(r.source->total_frames(), static_cast<std::int64_t>(data_bytes / 4));
  const std::uint64_t bytes = r.source->file->bytes_read();
  std::printf("loading a 1 GiB WAV read %llu bytes (head = %lld frames)\n", static_cast<unsigned long long>(bytes),
              static_cast<long long>(lo.head_frames));
  // header + head (0.5 s × 4 bytes/frame = 96 KB) + libsndfile's read-ahead; nowhere near the file
  EXPECT_LT(bytes, 1u << 20);
  EXPECT_GE(bytes, static_cast<std::uint64_t>(lo.head_frames) * 4);
  EXPECT_LT(r.source->memory_bytes(), 1u << 20);
}

// What a client's streams held goes back to the system once they are unloaded, not only to the
// allocator: 64 streams of an 8-channel FLAC in 65,535-frame blocks (libFLAC holds 8 × 256 KiB of
// decoded block per stream, allocated on the loader's thread) left the daemon ≈ 4 MB a stream
// resident after every source was unloaded and the budget held nothing (glibc keeps freed blocks
// in its arenas): stemd at 0.87-1.2 GB with 2 MB held after 200 such voices, growing each cycle.
TEST(Memory, UnloadedStreamsGiveTheirHeapBackToTheSystem) {
#if STEMD_TEST_SANITIZED
  GTEST_SKIP() << "the sanitizer's allocator keeps freed blocks in its quarantine: RSS says nothing about glibc's";
#endif
  TempDir dir;
  const std::string path = dir.file("wide.flac");
  write_constant_flac(path, 120LL * 48000, 8, 65535);  // 2 minutes, a few KB on disk: streamed

  Streaming rig(128);
  auto& [engine, loader, ctl] = rig;
  constexpr int kStreams = 64;
  std::string err;
  const std::int64_t rss0 = rss_bytes();
  for (int id = 1; id <= kStreams; ++id) {
    ASSERT_TRUE(ctl.load(control::kNow, id, path, "w", err)) << err;
    control::VoiceHandle h;
    ASSERT_TRUE(ctl.play(control::kNow, id, control::PlayOptions{}, h, err)) << err;
  }
  ASSERT_TRUE(ctl.source(1)->streamed());
  std::vector<float> buf(1024 * 2);
  for (int block = 0; block < 200; ++block) {  // ≈ 4 s of audio: every stream has decoded blocks
    engine.apply_commands();
    for (int i = 0; !engine.streams_ready(1024) && i < 100000; ++i) {
      loader.wake();
      std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
    engine.process(buf.data(), 1024);
    ctl.service();
  }
  const std::int64_t rss_playing = rss_bytes();
  double service_max_ms = 0;  // the control loop's longest pass while it frees and trims (a figure)
  // ctl by an init-capture: clang 14 cannot capture a structured binding (C++20's P1091 came in 16).
  const auto timed_service = [&, &ctl = ctl] {
    const auto t = std::chrono::steady_clock::now();
    ctl.service();
    service_max_ms = std::max(service_max_ms,
                              std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t).count());
  };
  for (int id = 1; id <= kStreams; ++id) ASSERT_TRUE(ctl.unload(control::kNow, id, err)) << err;
  for (int block = 0; block < 400 && (engine.active_voices() > 0 || ctl.memory_bytes() > (8u << 20)); ++block) {
    engine.apply_commands();
    engine.process(buf.data(), 1024);
    timed_service();
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  for (int i = 0; i < 150; ++i) {  // 1.5 s: the control loop's passes after the last free
    timed_service();
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  const std::int64_t rss_after = rss_bytes();
  loader.stop();
  const double mb = 1024.0 * 1024.0;
  std::printf(
      "[ figures ] RSS %.1f MB before, %.1f MB with %d streams playing, %.1f MB after unloading them "
      "(%.1f MB held); longest control-loop pass while freeing %.2f ms\n",
      rss0 / mb, rss_playing / mb, kStreams, rss_after / mb, ctl.memory_bytes() / mb, service_max_ms);
  ASSERT_EQ(engine.active_voices(), 0u);
  ASSERT_GT(rss_playing - rss0, 100 * (1 << 20)) << "the fixture no longer makes libFLAC hold its blocks";
  EXPECT_LT(rss_after - rss0, (rss_playing - rss0) / 4) << "the allocator kept what the streams freed";
}

// A decoded file loaded on another thread than the control thread's (stemd loads on its opener
// threads) and unloaded goes back to the system. glibc raises its mmap threshold to the size of the
// first large block freed (and the trim threshold to twice that), so the second 40 s file was
// carved from the opener thread's arena and stayed resident at the arena's top, where neither
// free() nor malloc_trim() gives it back: stemd kept 15-16 MB per opener thread with nothing
// loaded (42 MB resident, 0 held, after the second load/unload of one 40 s WAV; 57 MB after loads
// on two threads at once).
TEST(Memory, AnUnloadedFileLoadedOnAnotherThreadGivesItsMemoryBack) {
#if STEMD_TEST_SANITIZED
  GTEST_SKIP() << "the sanitizer's allocator keeps freed blocks in its quarantine: RSS says nothing about glibc's";
#endif
  TempDir dir;
  const std::string path = dir.file("p40.wav");
  write_long_wav16(path, 40LL * 48000, 3);  // 7.7 MB held as int16, 15.4 MB decoded as float
  engine::EngineConfig ec;
  ec.max_voices = 8;
  engine::Engine engine(ec);
  io::LoaderThread loader(io::LoaderConfig{});
  control::Controller ctl(engine, loader, io::LoadOptions{});
  const std::int64_t rss0 = rss_bytes();
  std::int64_t rss_loaded = 0, rss_after = 0;
  for (int cycle = 0; cycle < 3; ++cycle) {
    std::string err;
    bool ok = false;
    std::thread([&] { ok = ctl.load(control::kNow, 1, path, "p", err); }).join();  // an opener thread
    ASSERT_TRUE(ok) << err;
    ASSERT_FALSE(ctl.source(1)->streamed());
    rss_loaded = rss_bytes();
    ASSERT_TRUE(ctl.unload(control::kNow, 1, err)) << err;
    for (int i = 0; i < 150; ++i) {  // 1.5 s of control-loop passes
      ctl.service();
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    rss_after = rss_bytes();
    std::printf("[ figures ] cycle %d: RSS %.1f MB before, %.1f MB loaded, %.1f MB unloaded\n", cycle, rss0 / 1048576.0,
                rss_loaded / 1048576.0, rss_after / 1048576.0);
  }
  EXPECT_LT(rss_after - rss0, 4 << 20) << "the allocator kept an unloaded file resident";
}

}  // namespace
}  // namespace stemd::test
