// Heap trimming after large frees: heap_trim.hpp says why.
#include "base/heap_trim.hpp"

#include <malloc.h>

namespace stemd::base {

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
