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
//   refill/direct/streams:N       the refill of refill/pread with O_DIRECT (the twenty-eighth round):
//                                 the device DMAs the window into the ring, no copy out of the page
//                                 cache. The read is widened to the file's direct-I/O alignment
//                                 (statx STATX_DIOALIGN, else 4096): [pos rounded down, pos + 37.5 KiB
//                                 rounded up), into a page-aligned ring half; the sum starts at the
//                                 window's skew in it, one synchronous read at a time (the loader's
//                                 thread). Skipped where the file system refuses O_DIRECT (tmpfs
//                                 before Linux 6.6: EINVAL; from 6.6 tmpfs accepts it and copies from
//                                 its pages, no DMA); STEMD_BENCH_DIR picks the fixtures' directory.
//   refill/direct-aio/streams:N/batch:B  the same reads submitted B (64, 256) at a time through Linux AIO: one
//                                 io_submit and one wait per batch, the virtio queue notified once
//                                 per batch (a synchronous read pays a notification, a VM exit here,
//                                 and a sleep each)
//
// refill/pread and refill/direct also report CPU beside the wall time (an O_DIRECT read waits off
// the CPU, and its completion interrupt may land on another CPU): cpu_ns_per_frame is the process's
// CPU time (user + system, CLOCK_PROCESS_CPUTIME_ID; Google Benchmark's cpu_time is the thread's),
// usr_/sys_ns_per_frame its split (getrusage), and all_busy_ns_per_frame / irq_ns_per_frame the
// whole machine's busy and irq + softirq time from /proc/stat (every CPU, every process: only
// meaningful on an otherwise idle machine; 10-ms ticks).
//
// N streams each read their own region of 8 distinct 60-s 16-bit WAVs (88 MiB, from the page
// cache), so neither the rings (N × 75 KiB) nor the file data stay in a 32 MiB L3 at N = 1024.
// ns_per_frame: per stereo int16 frame (4 bytes) refilled and read once.
#include "common/bench_files.hpp"

#include <benchmark/benchmark.h>

#include <fcntl.h>
#include <linux/aio_abi.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <emmintrin.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
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
  int direct_fd = -1;         // the same file opened O_DIRECT (refill/direct)
  std::size_t align = kPage;  // its direct-I/O offset (and buffer) alignment
};

// CPU around a benchmark's loop: the process's (user + system) and the whole machine's.
class CpuMeter {
 public:
  void start() {
    wall0_ = now(CLOCK_MONOTONIC);
    proc0_ = now(CLOCK_PROCESS_CPUTIME_ID);
    ::getrusage(RUSAGE_SELF, &ru0_);
    read_stat(&busy0_, &irq0_);
  }
  // Counters per frame, `frames` being every frame refilled in the loop.
  void finish(benchmark::State& state, double frames) const {
    const double wall = now(CLOCK_MONOTONIC) - wall0_;
    const double proc = now(CLOCK_PROCESS_CPUTIME_ID) - proc0_;
    rusage ru{};
    ::getrusage(RUSAGE_SELF, &ru);
    double busy = 0;
    double irq = 0;
    read_stat(&busy, &irq);
    if (frames <= 0) return;
    auto per = [&](double seconds) { return seconds * 1e9 / frames; };
    state.counters["wall_ns_per_frame"] = per(wall);
    state.counters["cpu_ns_per_frame"] = per(proc);
    state.counters["usr_ns_per_frame"] = per(tv(ru.ru_utime) - tv(ru0_.ru_utime));
    state.counters["sys_ns_per_frame"] = per(tv(ru.ru_stime) - tv(ru0_.ru_stime));
    state.counters["all_busy_ns_per_frame"] = per(busy - busy0_);
    state.counters["irq_ns_per_frame"] = per(irq - irq0_);
  }

 private:
  static double now(clockid_t clock) {
    timespec t{};
    ::clock_gettime(clock, &t);
    return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_nsec) * 1e-9;
  }
  static double tv(const timeval& t) { return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) * 1e-6; }
  // /proc/stat's first line, in seconds: busy = user + nice + system + irq + softirq (not idle,
  // iowait or steal), irq = irq + softirq.
  static void read_stat(double* busy, double* irq) {
    *busy = 0;
    *irq = 0;
    std::FILE* f = std::fopen("/proc/stat", "re");
    if (f == nullptr) return;
    unsigned long long v[8] = {};
    const int n = std::fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3], &v[4],
                              &v[5], &v[6], &v[7]);
    std::fclose(f);
    if (n < 7) return;
    const double tick = 1.0 / static_cast<double>(::sysconf(_SC_CLK_TCK));
    *busy = static_cast<double>(v[0] + v[1] + v[2] + v[5] + v[6]) * tick;
    *irq = static_cast<double>(v[5] + v[6]) * tick;
  }
  double wall0_ = 0;
  double proc0_ = 0;
  rusage ru0_{};
  double busy0_ = 0;
  double irq0_ = 0;
};

// The direct-I/O alignment of `fd`'s file offsets (statx STATX_DIOALIGN, Linux 6.1), 4096 when
// the kernel or the file system does not say.
std::size_t dio_offset_align(int fd) {
#ifdef STATX_DIOALIGN
  struct statx st {};
  if (::statx(fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &st) == 0 && (st.stx_mask & STATX_DIOALIGN) != 0 &&
      st.stx_dio_offset_align > 0) {
    return std::max<std::size_t>(st.stx_dio_offset_align, st.stx_dio_mem_align);
  }
#endif
  return kPage;
}

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
bool open_files(benchmark::State& state, std::vector<File>& files, bool direct = false) {
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
    if (direct) {
      files[k].direct_fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_DIRECT);
      if (files[k].direct_fd < 0) {
        state.SkipWithError(("O_DIRECT open of " + path + ": " + std::strerror(errno)).c_str());
        return false;
      }
      files[k].align = dio_offset_align(files[k].direct_fd);
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
      std::memset(s.ring, 0, 2 * kWindowBytes);  // faulted in before timing, as refill/direct's
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
  CpuMeter meter;
  meter.start();
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
  meter.finish(state, static_cast<double>(state.iterations()) * streams * kWindowFrames);
  benchmark::DoNotOptimize(sink);
  if (mode == Mode::kMlock) {
    for (S& s : ss) ::munlock(s.map, s.file->map_bytes);
  }
  release();
  const double frames = static_cast<double>(streams) * kWindowFrames;
  state.counters["ns_per_frame"] =
      benchmark::Counter(frames * 1e-9, benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
}

// refill/pread's loop with O_DIRECT reads (the twenty-eighth round). Each ring half is page-aligned
// and two alignment units longer than a window: the read covers the window's bytes widened to the
// file's direct-I/O alignment, and the mixer's sum starts at the window's skew into the half — what
// a loader would get by placing the ring at the data's offset modulo the alignment.
struct DirectStream {
  const File* file = nullptr;
  std::byte* ring = nullptr;
  off_t pos = 0;
  std::size_t skew[2] = {0, 0};  // where each half's window starts in it
  std::uint64_t round = 0;
  off_t lo = 0;          // the read being made: file offset,
  std::size_t len = 0;   // bytes (aligned)
  std::size_t need = 0;  // bytes it must return (the window's end)
};

// Plans stream `s`'s next read: its window widened to `align`.
std::byte* plan_direct(DirectStream& s, std::size_t align, std::size_t half_bytes) {
  if (s.pos + static_cast<off_t>(kWindowBytes) > kDataStart + kFileFrames * 4) s.pos = kDataStart;  // (the loop's wrap)
  const auto a = static_cast<off_t>(align);
  s.lo = s.pos / a * a;
  const off_t hi = (s.pos + static_cast<off_t>(kWindowBytes) + a - 1) / a * a;
  s.len = static_cast<std::size_t>(hi - s.lo);
  s.need = static_cast<std::size_t>(s.pos - s.lo) + kWindowBytes;
  s.skew[s.round % 2] = static_cast<std::size_t>(s.pos - s.lo);
  return s.ring + (s.round % 2) * half_bytes;
}

// The mixer's read of the half written a round earlier; then on to the next window.
std::int64_t mix_direct(DirectStream& s, std::size_t half_bytes) {
  const std::size_t r = (s.round + 1) % 2;
  const std::int64_t sum = sum_window(s.ring + r * half_bytes + s.skew[r]);
  s.pos += static_cast<off_t>(kWindowBytes);
  ++s.round;
  return sum;
}

// Linux AIO by raw syscalls (no libaio): a batch of O_DIRECT reads in one io_submit, one plug —
// the virtio queue notified once per batch, not once per read — and one wait for all of them.
class Aio {
 public:
  explicit Aio(unsigned depth) {
    if (::syscall(SYS_io_setup, depth, &ctx_) != 0) ctx_ = 0;
  }
  ~Aio() {
    if (ctx_ != 0) ::syscall(SYS_io_destroy, ctx_);
  }
  bool ok() const { return ctx_ != 0; }
  // Reads every stream of `batch` into its planned span; "" or what went wrong.
  std::string read(DirectStream* const* batch, std::size_t n, std::byte* const* dst) {
    iocbs_.assign(n, iocb{});
    ptrs_.resize(n);
    for (std::size_t i = 0; i < n; ++i) {
      iocbs_[i].aio_lio_opcode = IOCB_CMD_PREAD;
      iocbs_[i].aio_fildes = static_cast<std::uint32_t>(batch[i]->file->direct_fd);
      iocbs_[i].aio_buf = reinterpret_cast<std::uint64_t>(dst[i]);
      iocbs_[i].aio_nbytes = batch[i]->len;
      iocbs_[i].aio_offset = batch[i]->lo;
      iocbs_[i].aio_data = i;
      ptrs_[i] = &iocbs_[i];
    }
    if (::syscall(SYS_io_submit, ctx_, static_cast<long>(n), ptrs_.data()) != static_cast<long>(n)) {
      return std::string("io_submit: ") + std::strerror(errno);
    }
    events_.resize(n);
    std::size_t got = 0;
    while (got < n) {
      const long k = ::syscall(SYS_io_getevents, ctx_, static_cast<long>(n - got), static_cast<long>(n - got),
                               events_.data() + got, nullptr);
      if (k < 0 && errno != EINTR) return std::string("io_getevents: ") + std::strerror(errno);
      got += k > 0 ? static_cast<std::size_t>(k) : 0;
    }
    for (std::size_t i = 0; i < n; ++i) {
      if (events_[i].res < static_cast<std::int64_t>(batch[events_[i].data]->need)) return "short O_DIRECT read";
    }
    return {};
  }

 private:
  aio_context_t ctx_ = 0;
  std::vector<iocb> iocbs_;
  std::vector<iocb*> ptrs_;
  std::vector<io_event> events_;
};

// `batch` 0: one synchronous pread per stream (what the loader's thread does today); else the
// streams' reads submitted `batch` at a time through Linux AIO.
void BM_RefillDirect(benchmark::State& state, int streams, std::size_t batch) {
  std::vector<File> files;
  auto close_files = [&] {
    for (File& f : files) {
      if (f.fd >= 0) ::close(f.fd);
      if (f.direct_fd >= 0) ::close(f.direct_fd);
    }
  };
  if (!open_files(state, files, true)) return close_files();
  const std::size_t align = files[0].align;
  const std::size_t half_bytes = (kWindowBytes + 2 * align + kPage - 1) / kPage * kPage;
  std::vector<DirectStream> ss(static_cast<std::size_t>(streams));
  const auto windows = static_cast<off_t>((kFileFrames * 4) / kWindowBytes);
  for (int i = 0; i < streams; ++i) {
    DirectStream& s = ss[static_cast<std::size_t>(i)];
    s.file = &files[static_cast<std::size_t>(i % kFiles)];
    s.pos = kDataStart + static_cast<off_t>(((i / kFiles) * 7) % (windows - 2)) * static_cast<off_t>(kWindowBytes);
    s.ring = ring_memory::allocate(2 * half_bytes);
    std::memset(s.ring, 0, 2 * half_bytes);  // faulted in before timing (else the kernel's page zeroing is counted)
  }
  Aio aio(batch > 0 ? static_cast<unsigned>(batch) : 1);
  if (batch > 0 && !aio.ok()) state.SkipWithError((std::string("io_setup: ") + std::strerror(errno)).c_str());
  std::vector<DirectStream*> group;
  std::vector<std::byte*> dst;
  std::int64_t sink = 0;
  std::uint64_t bytes_read = 0;
  std::string error;
  CpuMeter meter;
  meter.start();
  for (auto _ : state) {
    for (std::size_t at = 0; at < ss.size() && error.empty(); at += std::max<std::size_t>(batch, 1)) {
      const std::size_t n = std::min(std::max<std::size_t>(batch, 1), ss.size() - at);
      group.clear();
      dst.clear();
      for (std::size_t i = at; i < at + n; ++i) {
        dst.push_back(plan_direct(ss[i], align, half_bytes));
        group.push_back(&ss[i]);
        bytes_read += ss[i].len;
      }
      if (batch > 0) {
        error = aio.read(group.data(), n, dst.data());
      } else if (const ssize_t got = ::pread(ss[at].file->direct_fd, dst[0], ss[at].len, ss[at].lo);
                 got < static_cast<ssize_t>(ss[at].need)) {
        error = got < 0 ? std::string("O_DIRECT pread: ") + std::strerror(errno) : "short O_DIRECT pread";
      }
      for (DirectStream* s : group) sink += mix_direct(*s, half_bytes);
    }
    if (!error.empty()) {
      state.SkipWithError(error.c_str());
      break;
    }
  }
  const double frames = static_cast<double>(state.iterations()) * streams * kWindowFrames;
  meter.finish(state, frames);
  benchmark::DoNotOptimize(sink);
  for (DirectStream& s : ss) ring_memory::release(s.ring, 2 * half_bytes);
  close_files();
  state.counters["align"] = static_cast<double>(align);
  state.counters["read_bytes_per_frame"] = frames > 0 ? static_cast<double>(bytes_read) / frames : 0;
  state.counters["ns_per_frame"] =
      benchmark::Counter(static_cast<double>(streams) * kWindowFrames * 1e-9,
                         benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
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
    benchmark::RegisterBenchmark(("refill/direct" + sfx).c_str(), BM_RefillDirect, n, 0)->UseRealTime();
    for (std::size_t batch : {64, 256}) {  // 256: the virtio queue's depth here
      if (batch > static_cast<std::size_t>(n)) continue;
      const std::string b = sfx + "/batch:" + std::to_string(batch);
      benchmark::RegisterBenchmark(("refill/direct-aio" + b).c_str(), BM_RefillDirect, n, batch)->UseRealTime();
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
