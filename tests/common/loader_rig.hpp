// What the loader's tests of slow and stuck file systems share (loader_slow_test.cpp,
// loader_stuck_test.cpp): small rings, sources that always stream, a consumer that drains rings
// as a voice would, and the file system a path is on.
#pragma once

#include "io/loader_thread.hpp"
#include "io/source.hpp"
#include "stemd/stream.hpp"

#include <gtest/gtest.h>

#include <sys/stat.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace stemd::test {

// Rings of 6,000 frames (125 ms at 48 kHz), reads of at most 1,024 frames. stuck_read_ms 0: the
// daemon's bound on a read that does not return (LoaderConfig's default).
inline io::LoaderConfig small_ring_loader(int stuck_read_ms = 0) {
  io::LoaderConfig c;
  c.ring_frames = 6'000;
  c.chunk_frames = 1'024;
  c.prefill_frames = 2'048;
  c.wake_timeout_ms = 10;
  if (stuck_read_ms > 0) c.stuck_read_ms = stuck_read_ms;
  return c;
}

// `path` loaded to stream at 48 kHz (never held in memory), with a head of 1,000 frames.
inline std::unique_ptr<io::Source> streamed_source(const std::string& path) {
  io::LoadOptions o;
  o.output_rate = 48'000;
  o.preload_limit_bytes = 0;  // always stream
  o.head_frames = 1'000;
  io::LoadResult r = io::load_source(path, "t", o);
  EXPECT_TRUE(r.source) << r.error;
  return std::move(r.source);
}

// Takes what each stream's ring holds, as a voice would (as fast as it comes), waking the loader
// every millisecond. `frames` counts what each stream gave, over every run_for since the last
// restart().
struct RingDrain {
  std::vector<Stream*> streams;
  std::vector<std::int64_t> frames;
  void restart() { frames.assign(streams.size(), 0); }
  void run_for(io::LoaderThread& loader, std::chrono::milliseconds d) {
    frames.resize(streams.size(), 0);
    std::vector<float> buf(2 * 1'000);
    const auto until = std::chrono::steady_clock::now() + d;
    while (std::chrono::steady_clock::now() < until) {
      for (std::size_t k = 0; k < streams.size(); ++k) {
        frames[k] += static_cast<std::int64_t>(streams[k]->ring().read(buf.data(), 1'000));
      }
      loader.wake();
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }
  // What each stream gives in the next `d` alone.
  void run_fresh(io::LoaderThread& loader, std::chrono::milliseconds d) {
    restart();
    run_for(loader, d);
  }
};

// The file system (st_dev) `path` is on, or 0.
inline std::uint64_t device_of(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 ? static_cast<std::uint64_t>(st.st_dev) : 0;
}

}  // namespace stemd::test
