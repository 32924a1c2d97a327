// The loader thread: keeps every streaming voice's ring filled from disk.
//
// Like Ardour's butler, one thread services every stream, emptiest ring first, and is woken by
// the audio callback (a semaphore post, real-time safe) whenever rings were drained, with a short
// timeout as a safety net. It is never *told* what to read by messages that could be lost: it
// scans the rings, so no refill request can be dropped (scsynth's failure mode past ~2,000 streams).
//
// Threads:
//   [control] create_stream(), release(), stats()
//   [loader]  run() — owns every registered stream's file reader
//   [audio]   wake() — via Engine::set_loader_wakeup
#pragma once

#include "source.hpp"
#include "stemd/stream.hpp"

#include <semaphore.h>

#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace stemd::io {

struct LoaderConfig {
  std::int64_t ring_frames = 24000;    // per streaming voice (0.5 s at 48 kHz)
  std::int64_t chunk_frames = 8192;    // largest single read
  std::int64_t prefill_frames = 8192;  // decoded synchronously when a stream starts past the head
  int wake_timeout_ms = 10;
};

struct LoaderStats {
  std::uint64_t reads = 0;
  std::uint64_t frames_read = 0;
  std::uint64_t read_errors = 0;  // streams ended by an I/O or decode error
  std::uint64_t truncated = 0;    // streams whose file ended before its header said
  std::uint64_t loop_wraps = 0;
  std::uint64_t passes = 0;
  std::size_t streams = 0;
};

class LoaderThread {
 public:
  explicit LoaderThread(const LoaderConfig& cfg);
  ~LoaderThread();
  LoaderThread(const LoaderThread&) = delete;
  LoaderThread& operator=(const LoaderThread&) = delete;

  void start();  // [control]
  void stop();   // [control] joins; deletes every stream still registered

  // [control] A stream of `src` delivering frames from `from_frame` on. Frames the voice plays
  // before that come from the source's head. When from_frame is past the head, the first
  // prefill_frames are decoded before this returns, so the voice can start at once.
  // Returns null and sets `error` (the file's reason) on failure.
  Stream* create_stream(const Source& src, std::int64_t from_frame, bool loop, std::string& error);
  // With a region: reads [from_frame, region_end), then wraps to region_start while looping,
  // `passes` times in all (0 = forever); region_end 0 = the file's end.
  Stream* create_stream(const Source& src, std::int64_t from_frame, bool loop, std::int64_t region_start,
                        std::int64_t region_end, std::uint32_t passes, std::string& error);

  // [control] A stream the engine retired: the loader stops reading it and deletes it.
  void release(Stream* s);

  // [any thread, real-time safe] Ask for a refill pass now.
  void wake() noexcept { sem_post(&wake_); }
  static void wake_cb(void* self) noexcept { static_cast<LoaderThread*>(self)->wake(); }

  // Blocks until the loader has finished one full pass started after this call (tests, render).
  void wait_idle();

  LoaderStats stats() const;
  const LoaderConfig& config() const noexcept { return cfg_; }

 private:
  class Reader;
  void run();
  bool fill(Reader& r);  // one read; false when the reader needs nothing
  bool end_of_data(Reader& r);

  LoaderConfig cfg_;
  sem_t wake_;
  std::thread thread_;
  std::atomic<bool> running_{false};

  mutable std::mutex mutex_;  // guards the pending lists and stats_ — never touched by [audio]
  std::vector<Reader*> pending_add_;
  std::vector<Stream*> pending_remove_;
  LoaderStats stats_;
  std::atomic<std::uint64_t> pass_counter_{0};

  // [loader] only
  std::vector<Reader*> readers_;
  std::vector<float> buf_;
};

}  // namespace stemd::io
