// Heap trimming after large frees: heap_trim.hpp says why.
#include "base/heap_trim.hpp"

#include <malloc.h>

namespace stemd::base {

namespace {
// glibc's thresholds are dynamic: the first large block freed (a decoded file, a FLAC decoder's
// block) raises the mmap threshold to its size and the trim threshold to twice that, up to 32 and
// 64 MiB. From then on such blocks come from the allocating thread's arena, and freed at its top
// they stay resident: free() trims an arena only past the trim threshold and malloc_trim() never
// trims a thread arena's top (stemd kept 15-16 MB per opener thread with nothing loaded). Set,
// the thresholds stay where they are: every block of 128 KiB or more is a mapping of its own,
// unmapped when freed (a syscall per decoded file or reader, on the threads that allocate; never
// the audio thread, which allocates nothing), and an arena's free top past 1 MiB is given back.
// In this file because every program that frees what clients loaded (the Controller) links it.
struct PinnedThresholds {
  PinnedThresholds() noexcept {
#ifdef __GLIBC__
    ::mallopt(M_MMAP_THRESHOLD, 128 * 1024);
    ::mallopt(M_TRIM_THRESHOLD, 1024 * 1024);
#endif
  }
};
const PinnedThresholds pinned_thresholds;
}  // namespace

bool HeapTrim::note(std::int64_t held, Clock::time_point now) noexcept {
  if (held != last_) moved_ = now;
  last_ = held;
  if (held > peak_) peak_ = held;
  const std::int64_t fell = peak_ - held;
  if (fell < drop_ && (fell < kSettleBytes || now - moved_ < settle_)) return false;
  peak_ = held;
#ifdef __GLIBC__
  ::malloc_trim(0);
#endif
  ++trims_;
  return true;
}

}  // namespace stemd::base
