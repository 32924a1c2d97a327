// Gives the heap's freed pages back to the kernel once a client's sources and streams are gone.
//
// Why: glibc keeps what is freed in its arenas (one per thread that allocated: the opener threads,
// the loader, the control thread) and, past its dynamic mmap threshold, serves even large blocks
// (decoded files, decoder state) from them. A client that played 200 streams of an 8-channel FLAC
// and unloaded them left the daemon at 0.87-1.2 GB resident with 2 MB held, growing with each such
// cycle (fragmentation across arenas); malloc_trim(0) took it back to 33 MB. The budget
// (--max-memory-mb) bounds what is held, not what the allocator keeps: this closes the gap.
//
// note() is called with the budget's held bytes on every control-loop pass; it trims when they
// have fallen by at least `drop_bytes` below their highest value since the last trim, or by at
// least 1 MiB and then not moved for `settle` (the tail of a release that came in small steps):
// one trim per such fall, never one per pass. Thread: [control]; never [audio] (malloc_trim takes
// the arenas' locks). Cost: the longest control-loop pass while 64 streams were freed and trimmed
// was 0.09-0.33 ms in 4 runs (Memory.UnloadedStreamsGiveTheirHeapBackToTheSystem prints it); the thresholds
// pinned in heap_trim.cpp leave the arenas little to trim, but are not enough alone: without these
// trims the 64 streams' test kept 282 MB of its 294 MB resident after unloading.
#pragma once

#include <chrono>
#include <cstdint>

namespace stemd::base {

class HeapTrim {
 public:
  using Clock = std::chrono::steady_clock;
  static constexpr std::int64_t kDefaultDropBytes = std::int64_t{16} << 20;
  static constexpr std::int64_t kSettleBytes = std::int64_t{1} << 20;
  explicit HeapTrim(std::int64_t drop_bytes = kDefaultDropBytes,
                    Clock::duration settle = std::chrono::seconds(1)) noexcept
      : drop_(drop_bytes), settle_(settle) {}
  // True when it trimmed the heap in this call.
  bool note(std::int64_t held, Clock::time_point now = Clock::now()) noexcept;
  std::uint64_t trims() const noexcept { return trims_; }

 private:
  const std::int64_t drop_;
  const Clock::duration settle_;
  std::int64_t peak_ = 0;      // highest held since the last trim
  std::int64_t last_ = 0;      // held at the last call
  Clock::time_point moved_{};  // when held last changed
  std::uint64_t trims_ = 0;
};

}  // namespace stemd::base
