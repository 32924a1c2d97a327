// A file system that is slow, or several that stopped answering, must delay only their own
// streams: the streams of other file systems play on (loader_thread.hpp, "Reads that do not
// return"; src/io/loader_guard.cpp). An outside attack pass (23, findings 3 and 4) found every
// voice of every disk starved by a share whose reads took 1.5 s (never "stuck" by the fixed 2-s
// watchdog, five times the 0.4-s ring), the share's own voice frozen when its reads took 2.5 s
// (each given up, its returned data discarded and read again), and the loader held for good by
// the 9th dead file system.
#include "io/loader_thread.hpp"
#include "io/source.hpp"
#include "stemd/stream.hpp"
#include "common/engine_driver.hpp"
#include "common/fixtures.hpp"
#include "common/loader_rig.hpp"
#include "common/stall_reads.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace stemd::io {
namespace {

using namespace std::chrono_literals;

// Rings of 6,000 frames (125 ms at 48 kHz); the watchdog's fixed bound is the daemon's (2 s).
LoaderConfig slow_config() { return test::small_ring_loader(); }

using test::streamed_source;
using Drain = test::RingDrain;

// A stream of `src` from frame 1,000, looping; `dev` != 0: counted as a file on that file system.
Stream* stream_of(LoaderThread& loader, const Source& src, std::uint64_t dev = 0) {
  LoaderThread::StreamRequest req;
  req.from_frame = 1'000;
  req.loop = true;
  std::string err;
  auto opened = LoaderThread::open_stream(loader.plan_stream(src), src, req, err);
  EXPECT_TRUE(opened) << err;
  if (!opened) return nullptr;
  if (dev != 0) opened->set_device_for_test(dev);
  return loader.adopt(std::move(opened));
}

void release_all(LoaderThread& loader, const std::vector<Stream*>& streams) {
  for (Stream* s : streams) loader.release(s);
  EXPECT_TRUE(test::wait_for([&] {
    loader.wake();
    return loader.stats().streams == 0;
  }));
}

// Every read of the share takes 400 ms: more than three rings' worth, far less than the 2-s bound
// of a read that "does not return". Before: one loader thread spent 400 ms in each, and the stream
// of the other file system was refilled once per such read (≈ 3,000 frames a second here).
TEST(LoaderSlow, ReadsSlowerThanTheRingDelayOnlyTheirOwnFileSystemAndAdvance) {
  test::TempDir dir;
  test::make_wav(dir.file("slow.wav"), 480'000, 1);
  test::make_wav(dir.file("far.wav"), 480'000, 2);
  auto slow_src = streamed_source(dir.file("slow.wav"));
  auto far_src = streamed_source(dir.file("far.wav"));
  ASSERT_TRUE(slow_src && far_src);
  test::SlowReads slow("slow.wav", 400ms);
  ScopedFaultInjector inject(slow);
  LoaderThread loader(slow_config());
  loader.start();
  Stream* s = stream_of(loader, *slow_src, 0x5100);  // the share
  Stream* far = stream_of(loader, *far_src);         // the local disk
  ASSERT_TRUE(s && far);
  Drain d{{s, far}, {}};
  d.run_fresh(loader, 300ms);
  ASSERT_GT(d.frames[1], 6'000);

  slow.on = true;
  d.run_fresh(loader, 500ms);  // the first slow reads
  d.run_fresh(loader, 2'000ms);
  const LoaderStats st = loader.stats();
  // 48 kHz frames taken as fast as they come: the local stream kept up with far more than real time.
  EXPECT_GT(d.frames[1], 2 * 48'000) << "the stream of another file system starved behind the slow share ("
                                     << slow.reads.load() << " slow reads, " << st.stuck_reads << " given up)";
  // The slow share's own stream advanced past what its ring held: its reads, given up while other
  // file systems could not wait, were published when they returned (about one 1,024-frame read per
  // 400 ms, and not read again from the same frame).
  EXPECT_GT(d.frames[0], 3 * 1'024) << "the slow share's stream did not advance";
  EXPECT_FALSE(s->finished());
  EXPECT_FALSE(far->finished());
  EXPECT_EQ(st.read_errors, 0u);
  EXPECT_LE(st.stuck_threads, 1) << "more than one thread in the one slow share";

  slow.on = false;
  ASSERT_TRUE(test::wait_for([&] {
    d.run_fresh(loader, 20ms);
    return loader.stats().stuck_threads == 0;
  }));
  d.run_fresh(loader, 500ms);
  EXPECT_GT(d.frames[0], 24'000) << "the share answers at full speed again: its stream plays on";
  release_all(loader, {s, far});
  loader.stop();
}

// Ten file systems stop answering at once (more than the 8 given-up threads the loader had room
// for): before, each cost the other streams a 2-s give-up in turn, and the 9th held the loader for
// good. Now each costs at most half of what the other rings hold, and the local stream plays on.
TEST(LoaderSlow, TenDeadFileSystemsLeaveTheStreamsOfAnotherFed) {
  test::TempDir dir;
  constexpr int kDead = 10;
  std::vector<std::unique_ptr<Source>> dead_src;
  ::mkdir(dir.file("dead").c_str(), 0755);
  for (int k = 0; k < kDead; ++k) {
    const std::string path = dir.file("dead/s" + std::to_string(k) + ".wav");
    test::make_wav(path, 480'000, static_cast<std::uint32_t>(10 + k));
    dead_src.push_back(streamed_source(path));
    ASSERT_TRUE(dead_src.back());
  }
  test::make_wav(dir.file("local.wav"), 480'000, 3);
  auto local_src = streamed_source(dir.file("local.wav"));
  ASSERT_TRUE(local_src);
  auto hold = test::HoldReads::under(dir.file("dead"));
  ScopedFaultInjector inject(hold);
  LoaderConfig cfg = slow_config();
  cfg.stuck_read_ms = 200;  // (the old fixed bound: the 9th dead file system came after 1.6 s)
  LoaderThread loader(cfg);
  loader.start();
  std::vector<Stream*> all;
  for (int k = 0; k < kDead; ++k) all.push_back(stream_of(loader, *dead_src[static_cast<std::size_t>(k)], 0xD00 + k));
  Stream* local = stream_of(loader, *local_src);
  all.push_back(local);
  for (Stream* st : all) ASSERT_NE(st, nullptr);
  Drain d{all, {}};
  d.run_fresh(loader, 300ms);

  hold.close();  // every share stops answering
  d.run_fresh(loader, 2'500ms);
  EXPECT_EQ(loader.stats().stuck_threads, kDead) << "one given-up thread per dead file system";
  d.run_fresh(loader, 1'000ms);
  EXPECT_GT(d.frames.back(), 48'000) << "the local stream starved behind " << kDead << " dead file systems ("
                                     << hold.held() << " reads held)";
  for (int k = 0; k < kDead; ++k) EXPECT_LT(d.frames[static_cast<std::size_t>(k)], 6'001) << "dead stream " << k;

  hold.open();  // they answer again: every stuck thread returns
  ASSERT_TRUE(test::wait_for([&] {
    d.run_fresh(loader, 20ms);
    return loader.stats().stuck_threads == 0;
  }));
  d.run_fresh(loader, 500ms);
  for (int k = 0; k < kDead; ++k) EXPECT_GT(d.frames[static_cast<std::size_t>(k)], 6'000) << "stream " << k;
  EXPECT_FALSE(hold.gave_up());
  release_all(loader, all);
  loader.stop();
}

}  // namespace
}  // namespace stemd::io
