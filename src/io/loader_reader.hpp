// LoaderThread's private parts shared by its translation units (loader_thread.cpp, loader_adapt.cpp):
// the Reader (a Stream with its file and its prefetch state) and the loader's constants.
#pragma once

#include "loader_thread.hpp"

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <ctime>
#include <memory>
#include <string>
#include <vector>

namespace stemd::io {

constexpr double kSigma = 3.0;                         // target covers mean + kSigma·σ of the wait
constexpr double kAlpha = 0.125;                       // EWMA weight of one wait sample
constexpr std::uint64_t kAdaptEveryNs = 100'000'000;   // drain rates and slow shrinking
constexpr std::uint64_t kLogEveryNs = 1'000'000'000;   // at most one prefetch line a second
constexpr double kLogStep = 0.2;                       // log a target once it moved by 20 %
constexpr std::int64_t kGrowBudgetBytes = 64ll << 20;  // rings larger than ring_frames: at most this in all

inline std::uint64_t mono_ns() noexcept {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000ull + static_cast<std::uint64_t>(ts.tv_nsec);
}

class LoaderThread::Reader : public Stream {
 public:
  Reader(std::size_t ring_frames, SampleFormat format, std::string path)
      : Stream(ring_frames, format), path(std::move(path)) {}
  std::string path;
  std::uint64_t dev = 0;  // its file's file system (st_dev): a stuck read there ends its other streams
  // A stream whose read was given up (loader_guard.cpp): its stuck thread's once that read has
  // returned, the loader's once the engine released it; whoever comes second deletes it.
  static constexpr int kOrphanReturned = 1, kOrphanReleased = 2;
  std::atomic<int> orphan{0};
  bool orphaned = false;      // [loader] given up with its thread: not read until taken back
  bool seek_pending = false;  // a loop wrapped: the next read seeks to next_frame first (under the guard)
  // What the last read brought into the ring (unpublished), and what it asked for: written by the
  // reading thread in its guarded call, so a read that was given up and then returned is published
  // when its stream is taken back (take_back_orphans), not discarded and read again.
  std::int64_t landed = 0, landed_want = 0;
  bool landed_check = false;      // [loader] that read had to check the header before publishing
  bool landed_ok = false;         // [its thread] given up, it returned and its frames may be published
  bool orphan_written = false;    // [loader/watchdog, under mutex_] its file was written while given up
  int strikes = 0;                // reads given up in a row (the first is logged; back-off)
  std::uint64_t retry_at_ns = 0;  // [loader] not read before (a given-up read that brought nothing)
  std::uint64_t dry_at_ns = 0;    // [loader] when its ring runs dry at its drain rate (set while needy)
  Charge ring_charge;             // the ring's capacity, taken from the source's memory budget
  SoundFile file;
  std::int64_t next_frame = 0;     // file frame of the next read
  std::int64_t total_frames = -1;  // what the header promised (-1: unknown)
  bool done = false;               // finish() was published
  std::int64_t region_start = 0;
  std::int64_t region_end = -1;   // -1: the file's end
  std::uint32_t passes_left = 0;  // 0 = forever

  // Adaptive prefetch [loader]
  std::shared_ptr<ReadJitter> jitter;
  double file_rate = 48000;         // frames a second the voice consumes at rate 1
  std::int64_t target = 0;          // fill target, ≤ the ring's capacity
  std::int64_t need = 0;            // what adapt() estimated a read's wait consumes (0: not yet)
  std::int64_t logged_target = 0;   // the target the log last told
  bool dry_told = false;            // a dry ring whose target could not move was logged (once a stream)
  std::uint64_t written = 0;        // frames written since creation
  std::uint64_t drain_written = 0;  // `written − fill` at the last drain measurement
  std::uint64_t drain_ns = 0;
  double drain_fps = 0;              // measured consumption (varispeed, pauses), EWMA
  std::uint64_t needy_since_ns = 0;  // when its fill fell below target − a read (0: not needy)
  std::uint64_t last_write_ns = 0;
  std::uint64_t grown_ns = 0;
  std::uint64_t adapted_ns = 0;
  bool primed = false;               // filled to its target once: an empty ring now means the voice ran dry
  std::uint32_t slot = ~0u;          // its doorbell bit (LoaderThread::kNoSlot: none)
  std::uint64_t looked_in_pass = 0;  // the pass and round it was last looked at (no duplicates)
  int watch = -1;                    // its file's inotify watch (-1: none: check at every read)
  bool header_check = true;          // written since the last check (or not yet checked since adopted)

  // A looping region no longer than the ring, read once (Reader::cache_region) and copied into the
  // ring from memory at every wrap: no seek and no read per pass (a 4-frame loop on a FLAC was a
  // seek — a block decoded — every 4 frames: most of a core). Its bytes are charged to the budget.
  std::vector<std::int16_t> region16;  // int16 rings
  std::vector<float> region_f;         // float rings
  Charge region_charge;

  bool region_cached() const noexcept { return !region16.empty() || !region_f.empty(); }
  bool in_cached_region() const noexcept {
    return region_cached() && next_frame >= region_start && next_frame < region_end;
  }

  // Reads [region_start, region_end) into memory and puts the file back at next_frame. False (and
  // nothing cached) when the region is longer than the ring, on a read error or over the budget —
  // the region is then streamed as before.
  bool cache_region(const std::shared_ptr<MemoryBudget>& budget) {
    const std::int64_t len = region_end - region_start;
    if (region_end <= 0 || len <= 0 || len > capacity() || !loop()) return false;
    const bool i16 = ring().format() == SampleFormat::kInt16;
    std::string error;
    if (!region_charge.take(budget, len * static_cast<std::int64_t>(ring().bytes_per_frame(ring().format())), error)) {
      return false;
    }
    std::int64_t got = -1;
    if (file.seek(region_start)) {
      if (i16) {
        region16.assign(static_cast<std::size_t>(len) * 2, 0);
        got = file.read_stereo_i16(region16.data(), len);
      } else {
        region_f.assign(static_cast<std::size_t>(len) * 2, 0.0f);
        got = file.read_stereo(region_f.data(), len);
      }
    }
    if (got != len || !file.seek(next_frame)) {
      region16 = {};
      region_f = {};
      region_charge = Charge{};
      return false;  // streamed; the next read seeks where it must
    }
    return true;
  }

  // Copies `k` frames of the cached region from its frame `from` into the ring's free span at
  // frame `at` of it (not published).
  void copy_region(std::int64_t at, std::int64_t from, std::int64_t k) noexcept {
    auto put = [&](auto* first, std::size_t first_frames, auto* second, const auto* src) {
      auto a = static_cast<std::size_t>(at);
      auto n = static_cast<std::size_t>(k);
      src += static_cast<std::size_t>(from) * 2;
      if (a < first_frames) {
        const std::size_t c = std::min(n, first_frames - a);
        std::copy(src, src + c * 2, first + a * 2);
        src += c * 2;
        n -= c;
        a = first_frames;
      }
      if (n > 0) std::copy(src, src + n * 2, second + (a - first_frames) * 2);
    };
    if (!region16.empty()) {
      const auto span = ring().write_spans_i16();
      put(span.first, span.first_frames, span.second, region16.data());
    } else {
      const auto span = ring().write_spans();
      put(span.first, span.first_frames, span.second, region_f.data());
    }
  }

  std::int64_t capacity() noexcept { return static_cast<std::int64_t>(ring().capacity_frames()); }
  double rate() const noexcept { return drain_fps > 0 ? std::max(drain_fps, file_rate * 0.25) : file_rate; }
  std::int64_t ring_bytes() noexcept { return static_cast<std::int64_t>(ring().capacity_bytes()); }

  // Adaptive, with a target of at least half the ring (the steady state at the defaults) and a
  // read's estimated wait (mean + 3σ, a period, a wake-up) at most half of half the ring: refilled
  // when down to half, in one read of its whole free span (few large reads: each read's syscall,
  // libsndfile call and bookkeeping is paid per read, not per byte). Otherwise (fixed rings; a
  // slow or jittery disk; a target shrunk well below the ring): chunk-sized refills up to the
  // target, each read one more sample of the disk's wait.
  bool half_ring(bool adaptive) noexcept { return adaptive && 2 * target >= capacity() && 4 * need <= capacity(); }
  // The fill at or below which the ring is refilled.
  std::int64_t low_water(std::int64_t chunk_frames, bool adaptive) noexcept {
    const std::int64_t min_read = std::max<std::int64_t>(1, std::min(chunk_frames, target) / 2);
    return half_ring(adaptive) ? std::min(target - min_read, capacity() / 2) : target - min_read;
  }

  // Reads up to `n` frames from the file straight into the ring's free span (one or two pieces
  // across the wrap), in the ring's format; not published (commit() does). Returns frames read,
  // -1 on a read error.
  std::int64_t read_into_ring(std::int64_t n) noexcept {
    SampleRing& ring = this->ring();
    std::int64_t got = 0;
    if (ring.format() == SampleFormat::kInt16) {
      const auto span = ring.write_spans_i16(static_cast<std::size_t>(n));
      got = file.read_stereo_i16(span.first, static_cast<std::int64_t>(span.first_frames), span.second,
                                 static_cast<std::int64_t>(span.second_frames));
    } else {
      const auto span = ring.write_spans(static_cast<std::size_t>(n));
      got = file.read_stereo(span.first, static_cast<std::int64_t>(span.first_frames));
      if (got == static_cast<std::int64_t>(span.first_frames) && span.second_frames > 0) {
        const std::int64_t more = file.read_stereo(span.second, static_cast<std::int64_t>(span.second_frames));
        got = more < 0 ? more : got + more;
      }
    }
    return got;
  }
};

// One loader thread's blocking call (loader_thread.hpp, "Reads that do not return"). Shared by
// the thread (its closure holds it) and the LoaderThread, so a thread that was given up — which may
// outlive the LoaderThread — only ever touches this and the stream it was reading.
struct LoaderThread::ReadGuard {
  static constexpr std::uint64_t kGivenUp = 1ull << 63;
  std::atomic<std::uint64_t> token{0};     // 0: in no call; else the call's number, | kGivenUp once given up
  std::atomic<std::uint64_t> since_ns{0};  // when the call began
  std::atomic<Reader*> reader{nullptr};    // whose file
  std::atomic<bool> returned{false};       // the given-up call has returned: its thread is gone
  std::atomic<bool> exited{false};         // the thread has left run() (stop() joins it then)
  // When the first ring of another file system runs dry if this call does not return (monotonic
  // ns; 0: no other file system is streamed): the watchdog gives the call up halfway there.
  std::atomic<std::uint64_t> spare_until_ns{0};
  std::uint64_t dev = 0;  // the given-up call's file system [watchdog, then loader]
  std::uint64_t seq = 0;  // [its thread]
};

inline LoaderThread::ReadGuard*& LoaderThread::this_guard() noexcept {
  static thread_local ReadGuard* g = nullptr;
  return g;
}

inline bool& LoaderThread::given_up() noexcept {
  static thread_local bool b = false;
  return b;
}

// [loader] Within a guarded call: whether the watchdog has given the calling thread up.
inline bool LoaderThread::given_up_meanwhile() noexcept {
  const ReadGuard* g = this_guard();
  return g != nullptr && (g->token.load(std::memory_order_acquire) & ReadGuard::kGivenUp) != 0;
}

template <class F>
bool LoaderThread::guarded(Reader& r, F&& call) {
  ReadGuard* g = this_guard();
  if (g == nullptr) {  // not a loader thread (a test driving a reader): nothing to give up
    call();
    return true;
  }
  const std::uint64_t seq = ++g->seq;
  g->reader.store(&r, std::memory_order_relaxed);
  g->since_ns.store(mono_ns(), std::memory_order_relaxed);
  g->token.store(seq, std::memory_order_release);
  call();
  std::uint64_t expect = seq;
  if (g->token.compare_exchange_strong(expect, 0, std::memory_order_acq_rel)) return true;
  // Given up while in the call (LoaderThread::give_up): r is this thread's alone now, and is
  // deleted here if the loader has let it go already. Nothing else of the loader is touched.
  given_up() = true;
  if ((r.orphan.fetch_or(Reader::kOrphanReturned, std::memory_order_acq_rel) & Reader::kOrphanReleased) != 0) {
    delete &r;
  }
  g->returned.store(true, std::memory_order_release);
  return false;
}

}  // namespace stemd::io
