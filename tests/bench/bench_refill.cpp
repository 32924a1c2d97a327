// The loader's refill against zero-copy (issue 15's "memory-mapped zero-copy" lever), measured.
//
// Every streaming voice costs, per frame: a copy out of the page cache into its ring (pread, the
// kernel's _copy_to_iter: a fifth of the daemon at 1024 voices), then the mixer's cold read of
// the ring. Zero-copy would have the mixer read the page cache through a mapping instead. On the
// audio thread that is safe only if no page it reads can fault: a fault on a file page that was
// evicted is a disk read in the callback. So the loader must pin each window before the voice
// reaches it (mlock, and munlock behind it) — or at least map it in (MADV_POPULATE_READ, no pin:
// not safe under memory pressure, measured as the lower bound). A truncated file still raises
// SIGBUS in whichever thread touches a page past the new end.
//
//   refill/pread/streams:N        pread() 37.5 KiB (9,600 frames: the loader's refill from half
//                                 of the default 400 ms int16 ring) into the stream's 75 KiB
//                                 ring half, then sum the half written one round earlier (the mix)
//   refill/mmap-mlock/streams:N   mlock() the next 9,600 frames of the stream's own file mapping,
//                                 munlock() the window before the one being read, sum the
//                                 previous window from the mapping
//   refill/mmap-populate/streams:N  MADV_POPULATE_READ the next window (page tables filled, no
//                                 pin), sum the previous window from the mapping
//   refill/hot-map/streams:N/slots:K   rings of K periods (1024 frames): per period, copy the next
//                                 period of every stream from its (populated) mapping, then sum
//                                 every stream's period copied K - 1 periods earlier — the mixer
//                                 reading what is still in cache (BM_RefillHot)
//   refill/hot-pread/streams:N/slots:K the same with a pread per stream per period
//
// N streams each read their own region of 8 distinct 60-s 16-bit WAVs (88 MiB, from the page
// cache), so neither the rings (N × 75 KiB) nor the file data stay in a 32 MiB L3 at N = 1024.
// ns_per_frame: per stereo int16 frame (4 bytes) refilled and read once.
#include "common/bench_files.hpp"

#include <benchmark/benchmark.h>

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <emmintrin.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "stemd/ring_memory.hpp"

namespace stemd::bench {
namespace {

constexpr std::int64_t kFileFrames = 44 * 65536;  // ≈ 60 s at 48 kHz
constexpr int kFiles = 8;
constexpr std::size_t kWindowFrames = 9600;  // a refill at the default ring (19,200 int16 frames, refilled from half)
constexpr std::size_t kWindowBytes = kWindowFrames * 4;
constexpr off_t kDataStart = 44;  // libsndfile's canonical PCM16 WAV header
constexpr std::size_t kPage = 4096;
#ifndef MADV_POPULATE_READ
constexpr int MADV_POPULATE_READ = 22;  // Linux 5.14
#endif

enum class Mode { kPread, kMlock, kPopulate, kBounce, kBounceNt, kMapCopy };

// Copies `n` bytes with non-temporal (streaming) stores: the destination's lines are written
// without being read first (no read-for-ownership) and without displacing the cache.
void copy_nt(std::byte* dst, const std::byte* src, std::size_t n) noexcept {
  while (n > 0 && (reinterpret_cast<std::uintptr_t>(dst) & 15) != 0) {
    *dst++ = *src++;
    --n;
  }
  for (; n >= 64; n -= 64, dst += 64, src += 64) {
    const __m128i a = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src));
    const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + 16));
    const __m128i c = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + 32));
    const __m128i d = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + 48));
    _mm_stream_si128(reinterpret_cast<__m128i*>(dst), a);
    _mm_stream_si128(reinterpret_cast<__m128i*>(dst + 16), b);
    _mm_stream_si128(reinterpret_cast<__m128i*>(dst + 32), c);
    _mm_stream_si128(reinterpret_cast<__m128i*>(dst + 48), d);
  }
  std::memcpy(dst, src, n);
  _mm_sfence();  // before the write index is published
}

struct File {
  int fd = -1;
  const std::byte* map = nullptr;  // the whole file, read-only (mmap modes)
  std::size_t map_bytes = 0;
};

// The sum of a window's samples: the mixer's read, kept from being optimised away.
std::int64_t sum_window(const std::byte* p) noexcept {
  std::int16_t s[64];
  std::int64_t acc = 0;
  for (std::size_t at = 0; at + sizeof s <= kWindowBytes; at += sizeof s) {
    std::memcpy(s, p + at, sizeof s);
    for (std::int16_t x : s) acc += x;
  }
  return acc;
}

// A window's bytes [from, from + kWindowBytes) widened to whole pages of the mapping.
void page_span(const File& f, off_t from, std::byte** start, std::size_t* len) noexcept {
  const auto lo = static_cast<std::size_t>(from) / kPage * kPage;
  const std::size_t hi =
      std::min(f.map_bytes, (static_cast<std::size_t>(from) + kWindowBytes + kPage - 1) / kPage * kPage);
  *start = const_cast<std::byte*>(f.map) + lo;
  *len = hi - lo;
}

// The 8 fixture files, open and read once into the page cache; false (and the state skipped) when
// one cannot be written or opened.
bool open_files(benchmark::State& state, std::vector<File>& files) {
  files.assign(kFiles, File{});
  for (int k = 0; k < kFiles; ++k) {
    std::string path;
    try {
      path = wav_fixture("refill_" + std::to_string(k) + ".wav", WavKind::kPcm16Noise, kFileFrames);
    } catch (const std::exception& e) {
      state.SkipWithError(e.what());
      return false;
    }
    files[k].fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (files[k].fd < 0) {
      state.SkipWithError("open failed");
      return false;
    }
    files[k].map_bytes = static_cast<std::size_t>(kDataStart + kFileFrames * 4);
    std::vector<char> warm(1 << 20);  // into the page cache before timing
    for (off_t at = 0; at < static_cast<off_t>(files[k].map_bytes); at += static_cast<off_t>(warm.size())) {
      if (::pread(files[k].fd, warm.data(), warm.size(), at) < 0) break;
    }
  }
  return true;
}

void BM_Refill(benchmark::State& state, Mode mode, int streams) {
  std::vector<File> files;
  if (!open_files(state, files)) return;
  // Each stream: its own mapping (mlock/munlock change the mapping's flags: streams of one file
  // must not unpin each other's windows), its ring, its position.
  struct S {
    const File* file;
    const std::byte* map = nullptr;
    std::byte* ring = nullptr;
    off_t pos = 0;  // byte offset of the window being refilled
    std::uint64_t round = 0;
  };
  std::vector<S> ss(static_cast<std::size_t>(streams));
  const off_t data_end = kDataStart + kFileFrames * 4;
  const auto windows = static_cast<off_t>((kFileFrames * 4) / kWindowBytes);
  for (int i = 0; i < streams; ++i) {
    S& s = ss[static_cast<std::size_t>(i)];
    s.file = &files[static_cast<std::size_t>(i % kFiles)];
    s.pos = kDataStart + static_cast<off_t>(((i / kFiles) * 7) % (windows - 2)) * static_cast<off_t>(kWindowBytes);
    if (mode == Mode::kPread || mode == Mode::kBounce || mode == Mode::kBounceNt || mode == Mode::kMapCopy) {
      s.ring = ring_memory::allocate(2 * kWindowBytes);
    }
    if (mode != Mode::kPread && mode != Mode::kBounce && mode != Mode::kBounceNt) {
      void* m = ::mmap(nullptr, s.file->map_bytes, PROT_READ, MAP_SHARED, s.file->fd, 0);
      if (m == MAP_FAILED) {
        state.SkipWithError((std::string("mmap: ") + std::strerror(errno)).c_str());
        return;
      }
      s.map = static_cast<const std::byte*>(m);
    }
  }
  auto release = [&] {
    for (S& s : ss) {
      if (s.ring) ring_memory::release(s.ring, 2 * kWindowBytes);
      if (s.map) ::munmap(const_cast<std::byte*>(s.map), s.file->map_bytes);
    }
    for (File& f : files) {
      if (f.fd >= 0) ::close(f.fd);
    }
  };
  std::vector<std::byte> bounce(kWindowBytes);  // the loader's one read buffer (stays in L2)
  std::int64_t sink = 0;
  std::string error;
  for (auto _ : state) {
    for (S& s : ss) {
      if (s.pos + static_cast<off_t>(kWindowBytes) > data_end) s.pos = kDataStart;  // (the loop's wrap)
      const off_t prev =
          s.pos >= kDataStart + static_cast<off_t>(kWindowBytes) ? s.pos - static_cast<off_t>(kWindowBytes) : s.pos;
      if (mode == Mode::kBounce || mode == Mode::kBounceNt) {
        std::byte* half = s.ring + (s.round % 2) * kWindowBytes;
        if (::pread(s.file->fd, bounce.data(), kWindowBytes, s.pos) != static_cast<ssize_t>(kWindowBytes)) {
          error = "short pread";
        }
        if (mode == Mode::kBounceNt) {
          copy_nt(half, bounce.data(), kWindowBytes);
        } else {
          std::memcpy(half, bounce.data(), kWindowBytes);
        }
        sink += sum_window(s.ring + ((s.round + 1) % 2) * kWindowBytes);
      } else if (mode == Mode::kMapCopy) {
        std::byte* half = s.ring + (s.round % 2) * kWindowBytes;
        std::memcpy(half, s.map + s.pos, kWindowBytes);
        sink += sum_window(s.ring + ((s.round + 1) % 2) * kWindowBytes);
      } else if (mode == Mode::kPread) {
        std::byte* half = s.ring + (s.round % 2) * kWindowBytes;
        if (::pread(s.file->fd, half, kWindowBytes, s.pos) != static_cast<ssize_t>(kWindowBytes)) error = "short pread";
        sink += sum_window(s.ring + ((s.round + 1) % 2) * kWindowBytes);
      } else {
        File view{s.file->fd, s.map, s.file->map_bytes};
        std::byte* at = nullptr;
        std::size_t len = 0;
        page_span(view, s.pos, &at, &len);
        if (mode == Mode::kMlock) {
          if (::mlock(at, len) != 0) error = std::string("mlock: ") + std::strerror(errno);
          if (prev >= kDataStart + static_cast<off_t>(kWindowBytes)) {  // the window before the one read now
            std::byte* old = nullptr;
            std::size_t old_len = 0;
            page_span(view, prev - static_cast<off_t>(kWindowBytes), &old, &old_len);
            ::munlock(old, old_len);
          }
        } else if (::madvise(at, len, MADV_POPULATE_READ) != 0) {
          error = std::string("madvise: ") + std::strerror(errno);
        }
        sink += sum_window(s.map + prev);
      }
      s.pos += static_cast<off_t>(kWindowBytes);
      ++s.round;
    }
    if (!error.empty()) {
      state.SkipWithError(error.c_str());
      break;
    }
  }
  benchmark::DoNotOptimize(sink);
  if (mode == Mode::kMlock) {
    for (S& s : ss) ::munlock(s.map, s.file->map_bytes);
  }
  release();
  const double frames = static_cast<double>(streams) * kWindowFrames;
  state.counters["ns_per_frame"] =
      benchmark::Counter(frames * 1e-9, benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
}

// Cache-resident rings, the lever measured in the twenty-seventh round: each stream's ring holds
// only `slots` periods; per period the loader copies the next period of every stream (from the
// file's mapping, or by pread), then the mixer reads, for every stream, the period copied
// `slots - 1` periods earlier. At 1024 streams one period of every stream is 4 MiB, so what the
// mixer reads is still in the 32 MiB L3 (read from the page cache once, from DRAM; written and read
// back in cache) — where the 400-ms rings above are written to DRAM and read back from it. The
// price is the margin: the rings hold a period or three, not 400 ms.
void BM_RefillHot(benchmark::State& state, int streams, std::size_t period_frames, std::size_t slots, bool use_pread) {
  std::vector<File> files;
  if (!open_files(state, files)) return;
  for (File& f : files) {
    // MAP_POPULATE: the page tables filled once, before timing (the steady state of a loader that
    // maps windows in ahead of time; what that costs is refill/mmap-populate's)
    void* m = ::mmap(nullptr, f.map_bytes, PROT_READ, MAP_SHARED | MAP_POPULATE, f.fd, 0);
    if (m == MAP_FAILED) {
      state.SkipWithError((std::string("mmap: ") + std::strerror(errno)).c_str());
      return;
    }
    f.map = static_cast<const std::byte*>(m);
  }
  const std::size_t period_bytes = period_frames * 4;
  const std::size_t ring_bytes = slots * period_bytes;
  const std::size_t arena_bytes = static_cast<std::size_t>(streams) * ring_bytes;
  std::byte* arena = ring_memory::allocate(arena_bytes);
  struct S {
    const File* file;
    std::byte* ring;
    off_t pos;
  };
  std::vector<S> ss(static_cast<std::size_t>(streams));
  const off_t data_end = kDataStart + kFileFrames * 4;
  const auto periods = static_cast<off_t>((kFileFrames * 4) / period_bytes);
  for (int i = 0; i < streams; ++i) {
    const File* f = &files[static_cast<std::size_t>(i % kFiles)];
    const off_t at = static_cast<off_t>(((i / kFiles) * 67) % (periods - 2)) * static_cast<off_t>(period_bytes);
    ss[static_cast<std::size_t>(i)] = S{f, arena + static_cast<std::size_t>(i) * ring_bytes, kDataStart + at};
  }
  std::int64_t sink = 0;
  std::uint64_t round = 0;
  std::string error;
  for (auto _ : state) {
    const std::size_t fill = round % slots;
    const std::size_t read = (round + 1) % slots;  // copied slots - 1 periods ago
    for (S& s : ss) {                              // the loader's pass
      if (s.pos + static_cast<off_t>(period_bytes) > data_end) s.pos = kDataStart;
      std::byte* dst = s.ring + fill * period_bytes;
      if (!use_pread) {
        std::memcpy(dst, s.file->map + s.pos, period_bytes);
      } else if (::pread(s.file->fd, dst, period_bytes, s.pos) != static_cast<ssize_t>(period_bytes)) {
        error = "short pread";
      }
      s.pos += static_cast<off_t>(period_bytes);
    }
    for (S& s : ss) {  // the mixer's period
      const std::byte* p = s.ring + read * period_bytes;
      std::int16_t v[64];
      for (std::size_t at = 0; at + sizeof v <= period_bytes; at += sizeof v) {
        std::memcpy(v, p + at, sizeof v);
        for (std::int16_t x : v) sink += x;
      }
    }
    ++round;
    if (!error.empty()) {
      state.SkipWithError(error.c_str());
      break;
    }
  }
  benchmark::DoNotOptimize(sink);
  ring_memory::release(arena, arena_bytes);
  for (File& f : files) {
    ::munmap(const_cast<std::byte*>(f.map), f.map_bytes);
    ::close(f.fd);
  }
  const double frames = static_cast<double>(streams) * static_cast<double>(period_frames);
  state.counters["ns_per_frame"] =
      benchmark::Counter(frames * 1e-9, benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
}

[[maybe_unused]] const bool registered = [] {
  for (int n : {64, 1024}) {
    const std::string sfx = "/streams:" + std::to_string(n);
    benchmark::RegisterBenchmark(("refill/pread" + sfx).c_str(), BM_Refill, Mode::kPread, n)->UseRealTime();
    benchmark::RegisterBenchmark(("refill/mmap-mlock" + sfx).c_str(), BM_Refill, Mode::kMlock, n)->UseRealTime();
    benchmark::RegisterBenchmark(("refill/mmap-populate" + sfx).c_str(), BM_Refill, Mode::kPopulate, n)->UseRealTime();
    benchmark::RegisterBenchmark(("refill/bounce" + sfx).c_str(), BM_Refill, Mode::kBounce, n)->UseRealTime();
    benchmark::RegisterBenchmark(("refill/bounce-nt" + sfx).c_str(), BM_Refill, Mode::kBounceNt, n)->UseRealTime();
    benchmark::RegisterBenchmark(("refill/map-copy" + sfx).c_str(), BM_Refill, Mode::kMapCopy, n)->UseRealTime();
  }
  for (int n : {64, 1024, 4096}) {
    const std::string sfx = "/streams:" + std::to_string(n);
    if (n == 4096) {
      benchmark::RegisterBenchmark(("refill/pread" + sfx).c_str(), BM_Refill, Mode::kPread, n)->UseRealTime();
    }
    for (std::size_t slots : {2, 4}) {
      const std::string r = sfx + "/slots:" + std::to_string(slots);
      benchmark::RegisterBenchmark(("refill/hot-map" + r).c_str(), BM_RefillHot, n, 1024, slots, false)->UseRealTime();
      benchmark::RegisterBenchmark(("refill/hot-pread" + r).c_str(), BM_RefillHot, n, 1024, slots, true)->UseRealTime();
    }
  }
  return true;
}();

}  // namespace
}  // namespace stemd::bench
