// A read that does not return (a share or a disk that stopped answering) must not starve the
// streams of other disks: io::LoaderThread's watchdog gives the stuck loader thread up and a new
// one reads the rest (loader_thread.hpp, "Reads that do not return"; src/io/loader_guard.cpp).
// An outside attack pass found every streamed voice silent — local-disk ones too — while one
// stream's file sat on a dead share, until the share answered or stemd restarted.
#include "io/loader_thread.hpp"
#include "io/source.hpp"
#include "stemd/stream.hpp"
#include "common/engine_driver.hpp"
#include "common/fixtures.hpp"
#include "common/loader_rig.hpp"
#include "common/stall_reads.hpp"

#include <gtest/gtest.h>

#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <ctime>
#include <fstream>
#include <iterator>
#include <string>
#include <thread>
#include <vector>

namespace stemd::io {
namespace {

using namespace std::chrono_literals;

LoaderConfig loader_config() { return test::small_ring_loader(200); }

using test::device_of;
using Consumer = test::RingDrain;
std::unique_ptr<Source> streamed(const std::string& path) { return test::streamed_source(path); }

TEST(LoaderStuck, AReadThatDoesNotReturnStallsOnlyItsFileSystemAndItsStreamGoesOnWhenItAnswers) {
  test::TempDir dir;                                                  // the "share"
  const std::string other = "/dev/shm/stemd-loader-stuck-other.wav";  // another file system
  if (device_of("/dev/shm") == 0 || device_of("/dev/shm") == device_of(dir.path())) {
    GTEST_SKIP() << "needs /dev/shm on a file system other than " << dir.path();
  }
  test::make_wav(dir.file("stuck.wav"), 480'000, 1);
  test::make_wav(dir.file("neighbour.wav"), 480'000, 2);
  test::make_wav(other, 480'000, 3);
  auto stuck_src = streamed(dir.file("stuck.wav"));
  auto neighbour_src = streamed(dir.file("neighbour.wav"));
  auto other_src = streamed(other);
  ::unlink(other.c_str());  // open: it streams on; nothing left behind
  ASSERT_TRUE(stuck_src && neighbour_src && other_src);

  // A share that stops answering, then comes back: not on this thread (a stream's open and
  // prefill run here, create_stream), only on the loader's.
  test::HoldReads hold = test::HoldReads::ending("stuck.wav");
  hold.not_on_this_thread();
  ScopedFaultInjector inject(hold);
  LoaderThread loader(loader_config());
  loader.start();
  std::string err;
  Stream* stuck = loader.create_stream(*stuck_src, 1'000, true, err);
  Stream* neighbour = loader.create_stream(*neighbour_src, 1'000, true, err);
  Stream* far = loader.create_stream(*other_src, 1'000, true, err);
  ASSERT_TRUE(stuck && neighbour && far) << err;
  Consumer c{{stuck, neighbour, far}, {}};
  c.run_for(loader, 300ms);
  ASSERT_GT(c.frames[0], 0);

  // The share stops answering: the next read of stuck.wav blocks.
  hold.close();
  ASSERT_TRUE(test::wait_for([&] {
    c.run_for(loader, 5ms);
    return hold.held_now() == 1;
  })) << "the stuck read never came";
  // After stuck_read_ms the watchdog replaces the loader thread: the stream on the other file
  // system is read on (48 kHz frames taken as fast as they come: far more than a second's worth),
  // while the stuck stream and its neighbour on the same file system wait.
  ASSERT_TRUE(test::wait_for([&] { return loader.stats().stuck_reads == 1; })) << "never given up";
  c.restart();
  c.run_for(loader, 1'000ms);
  EXPECT_GT(c.frames[2], 48'000) << "the stream of another file system starved";
  EXPECT_LT(c.frames[0], 6'001) << "the stuck stream was read (beyond its ring)";
  EXPECT_LT(c.frames[1], 6'001) << "its neighbour was read while its file system did not answer";
  EXPECT_FALSE(stuck->finished());
  EXPECT_FALSE(neighbour->finished());
  EXPECT_EQ(loader.stats().stuck_threads, 1);
  EXPECT_EQ(hold.held_now(), 1) << "one thread in the stuck read, not one more per stream";

  // The share answers again: both go on, reading where they were.
  hold.open();
  ASSERT_TRUE(test::wait_for([&] {
    c.run_for(loader, 20ms);
    return loader.stats().stuck_threads == 0;
  })) << "the stuck thread never left";
  c.restart();
  c.run_for(loader, 500ms);
  EXPECT_GT(c.frames[0], 24'000);
  EXPECT_GT(c.frames[1], 24'000);
  EXPECT_FALSE(stuck->finished());
  for (Stream* s : {stuck, neighbour, far}) loader.release(s);
  EXPECT_TRUE(test::wait_for([&] {
    loader.wake();
    return loader.stats().streams == 0;
  }));
  loader.stop();
}

// The engine lets go of a stream whose read is stuck (its voice stopped), then the read returns:
// the stream is freed once, by the thread that comes back (ASan/TSan see a double free or a race),
// and stop() does not wait for a stuck read.
TEST(LoaderStuck, AStreamReleasedWhileItsReadIsStuckIsFreedWhenTheReadReturnsAndStopDoesNotWait) {
  test::TempDir dir;
  test::make_wav(dir.file("stuck.wav"), 480'000, 1);
  auto src = streamed(dir.file("stuck.wav"));
  ASSERT_TRUE(src);
  // A share that stops answering, then comes back: not on this thread (a stream's open and
  // prefill run here, create_stream), only on the loader's.
  test::HoldReads hold = test::HoldReads::ending("stuck.wav");
  hold.not_on_this_thread();
  ScopedFaultInjector inject(hold);
  {
    LoaderThread loader(loader_config());
    loader.start();
    std::string err;
    Stream* s = loader.create_stream(*src, 1'000, true, err);
    ASSERT_NE(s, nullptr) << err;
    Consumer c{{s}, {}};
    hold.close();
    ASSERT_TRUE(test::wait_for([&] {
      c.run_for(loader, 5ms);
      return hold.held_now() == 1;
    }));
    ASSERT_TRUE(test::wait_for([&] { return loader.stats().stuck_reads == 1; }));
    loader.release(s);
    ASSERT_TRUE(test::wait_for([&] {
      loader.wake();
      return loader.stats().streams == 0;
    }));
    // A second stuck read, on the new thread: stop() gives it up rather than wait for it.
    Stream* again = loader.create_stream(*src, 1'000, true, err);
    ASSERT_NE(again, nullptr) << err;
    (void)again;  // owned by the loader (or by its stuck thread, once given up)
    hold.open();  // the first read returns: its stream is freed by its thread
    ASSERT_TRUE(test::wait_for([&] { return hold.held_now() == 0; }));
    hold.close();
    Consumer c2{{again}, {}};
    ASSERT_TRUE(test::wait_for([&] {
      c2.run_for(loader, 5ms);
      return hold.held_now() == 1;
    }));
    const auto t0 = std::chrono::steady_clock::now();
    loader.stop();
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 2s) << "stop() waited for a stuck read";
  }  // the LoaderThread is gone; its stuck thread still holds `again`
  hold.open();
  EXPECT_TRUE(test::wait_for([&] { return hold.held_now() == 0; }));
  std::this_thread::sleep_for(50ms);  // the thread frees `again` and leaves
}

// A copy of `path` in a memfd: a file system of its own (st_dev of the kernel's internal tmpfs),
// neither the test directory's nor /dev/shm's. Loaded as `name` (the fault injector matches it).
std::unique_ptr<Source> streamed_memfd(const std::string& path, const std::string& name) {
  const int fd = memfd_create("stemd-test", MFD_CLOEXEC);
  if (fd < 0) return nullptr;
  std::ifstream in(path, std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (::write(fd, bytes.data(), bytes.size()) != static_cast<ssize_t>(bytes.size())) {
    ::close(fd);
    return nullptr;
  }
  std::string err;
  std::shared_ptr<FileHandle> file = FileHandle::adopt(fd, name, err);
  if (!file) return nullptr;
  LoadOptions o;
  o.output_rate = 48'000;
  o.preload_limit_bytes = 0;
  o.head_frames = 1'000;
  LoadResult r = load_source(file, "t", o);
  return std::move(r.source);
}

// Three streams given up in reads that have not returned (three file systems), never released by
// the engine, when the LoaderThread is destroyed: each is marked released and freed by its thread
// when its read returns. The destructor looped over orphans_ while release_orphan() erased from it
// (outside pass 23's code-read notes): the middle one was skipped and leaked with its file.
TEST(LoaderStuck, EveryStuckStreamLeftAtDestructionIsFreedWhenItsReadReturns) {
  test::TempDir dir;
  const std::string other = "/dev/shm/stemd-loader-stuck-other-held.wav";
  if (device_of("/dev/shm") == 0 || device_of("/dev/shm") == device_of(dir.path())) {
    GTEST_SKIP() << "needs /dev/shm on a file system other than " << dir.path();
  }
  test::make_wav(dir.file("a-held.wav"), 480'000, 1);
  test::make_wav(other, 480'000, 2);
  std::vector<std::unique_ptr<Source>> src;
  src.push_back(streamed(dir.file("a-held.wav")));
  src.push_back(streamed(other));
  src.push_back(streamed_memfd(other, "memfd-c-held.wav"));
  ::unlink(other.c_str());
  for (const auto& s : src) ASSERT_TRUE(s);
  ASSERT_NE(src[2]->file->identity().dev, src[0]->file->identity().dev);
  ASSERT_NE(src[2]->file->identity().dev, src[1]->file->identity().dev);
  test::HoldReads hold = test::HoldReads::ending("held.wav");
  hold.not_on_this_thread();  // the streams' opens and prefills run here
  ScopedFaultInjector inject(hold);
  {
    LoaderThread loader(loader_config());
    loader.start();
    Consumer c;
    for (const auto& s : src) {
      std::string err;
      c.streams.push_back(loader.create_stream(*s, 1'000, true, err));
      ASSERT_NE(c.streams.back(), nullptr) << err;
    }
    hold.close();
    ASSERT_TRUE(test::wait_for([&] {
      c.run_for(loader, 5ms);
      return loader.stats().stuck_threads == 3;
    })) << "the three reads given up";
    for (const auto& s : src) EXPECT_EQ(s->file.use_count(), 2);  // the source's and its stuck reader's
  }  // destroyed with the three streams orphaned, their reads still held
  hold.open();
  ASSERT_TRUE(test::wait_for([&] { return hold.held_now() == 0; }));
  for (std::size_t k = 0; k < src.size(); ++k) {
    EXPECT_TRUE(test::wait_for([&] { return src[k]->file.use_count() == 1; }))
        << "stuck stream " << k << " never freed";
  }
}

}  // namespace
}  // namespace stemd::io
