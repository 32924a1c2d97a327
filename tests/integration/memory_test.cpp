// Memory stays flat while streaming, and loading a huge file touches only its head.
//
// The engine is driven the way the render backend drives it (as fast as the loader can feed
// it, waiting only for rings), so twenty minutes of audio stream in seconds.
#include "common/fixtures.hpp"
#include "control/controller.hpp"
#include "io/loader_thread.hpp"
#include "io/sound_file.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <thread>

namespace stemd::test {
namespace {

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

  engine::EngineConfig ec;
  ec.max_voices = 16;
  engine::Engine engine(ec);
  io::LoaderThread loader(io::LoaderConfig{});
  engine.set_loader_wakeup(&io::LoaderThread::wake_cb, &loader);
  control::Controller ctl(engine, loader, io::LoadOptions{});
  loader.start();
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

}  // namespace
}  // namespace stemd::test
