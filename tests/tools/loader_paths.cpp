// A throwaway measurement (issue 15, fourth round; not built by CMake): the cost per voice-frame
// of getting 16-bit stereo WAV samples from the page cache to a mixer, by three paths, and the
// loader's work split over threads. Results and commands: docs/benchmarks.md, "Fourth round".
//   g++ -O3 -std=c++20 tests/tools/loader_paths.cpp -lsndfile -lpthread -o /tmp/loader_paths
//   /tmp/loader_paths VOICES a|b|c [CALLBACKS [populate|mlock|willneed|touch [LOADER_THREADS]]]
// (fixtures: 2-s files in /tmp/lpaths/fx, written on first use and read once into the page cache)
//   a: sf_readf_short (libsndfile virtual I/O over pread) into the int16 ring's free span
//   b: raw pread of the data chunk at dataoffset + frame*4 into the ring's free span
//   c: mmap of the file; loader makes the next window resident (MADV_POPULATE_READ, or
//      mlock/munlock; MADV_WILLNEED and a touch per page as non-guarantees); the mixer reads
//      the mapping
//   LOADER_THREADS 2: the loader's refills of each callback split over two threads (d)
// Each "callback": the mixer sums 1024 frames of every voice into a float bus (x / 32768);
// the loader refills each ring from half, in one read of its free span (today's steady state).
#include <sndfile.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

using clk = std::chrono::steady_clock;
static constexpr int kBlock = 1024;
static constexpr int64_t kRing = 19200;  // 400 ms at 48 kHz: the default ring
static double sec(clk::duration d) { return std::chrono::duration<double>(d).count(); }

struct Vio {
  int fd;
  sf_count_t off;
  sf_count_t size;
};
static sf_count_t v_len(void* u) { return ((Vio*)u)->size; }
static sf_count_t v_seek(sf_count_t o, int w, void* u) {
  auto* v = (Vio*)u;
  if (w == SEEK_SET)
    v->off = o;
  else if (w == SEEK_CUR)
    v->off += o;
  else
    v->off = v->size + o;
  return v->off;
}
static sf_count_t v_read(void* p, sf_count_t n, void* u) {
  auto* v = (Vio*)u;
  sf_count_t d = 0;
  while (d < n) {
    ssize_t r = pread(v->fd, (char*)p + d, n - d, v->off + d);
    if (r <= 0) break;
    d += r;
  }
  v->off += d;
  return d;
}
static sf_count_t v_write(const void*, sf_count_t, void*) { return 0; }
static sf_count_t v_tell(void* u) { return ((Vio*)u)->off; }
static SF_VIRTUAL_IO vio{v_len, v_seek, v_read, v_write, v_tell};

struct Src {
  Vio v{};
  SNDFILE* sf = nullptr;
  int64_t frames = 0, data_off = 0;
  std::vector<int16_t> ring;
  uint64_t w = 0, r = 0;
  int64_t next = 0;  // ring positions (frames), file pos
  const int16_t* map = nullptr;
  size_t map_len = 0;
  int64_t resident_to = 0, locked_from = 0;  // (c)
};

static void make_files(const std::string& dir, int n, int64_t frames) {
  std::vector<int16_t> buf(frames * 2);
  for (int i = 0; i < n; ++i) {
    std::string p = dir + "/f" + std::to_string(i) + ".wav";
    if (access(p.c_str(), F_OK) == 0) continue;
    uint32_t s = 12345 + i;
    for (auto& x : buf) {
      s = s * 1664525 + 1013904223;
      x = (int16_t)(s >> 16);
    }
    SF_INFO info{};
    info.samplerate = 48000;
    info.channels = 2;
    info.format = SF_FORMAT_WAV | SF_FORMAT_PCM_16;
    SNDFILE* f = sf_open(p.c_str(), SFM_WRITE, &info);
    sf_writef_short(f, buf.data(), frames);
    sf_close(f);
  }
}

int main(int argc, char** argv) {
  const int n = atoi(argv[1]);
  const char mode = argv[2][0];
  const int cbs = argc > 3 ? atoi(argv[3]) : 400;
  const std::string popmode = argc > 4 ? argv[4] : "populate";
  const int loaders = argc > 5 ? atoi(argv[5]) : 1;
  const std::string dir = "/tmp/lpaths/fx";
  mkdir(dir.c_str(), 0755);
  const int64_t fframes = 96000;  // 2 s files, looped
  make_files(dir, n, fframes);
  std::vector<Src> s(n);
  for (int i = 0; i < n; ++i) {
    std::string p = dir + "/f" + std::to_string(i) + ".wav";
    s[i].v.fd = open(p.c_str(), O_RDONLY);
    struct stat st;
    fstat(s[i].v.fd, &st);
    s[i].v.size = st.st_size;
    SF_INFO info{};
    s[i].sf = sf_open_virtual(&vio, SFM_READ, &info, &s[i].v);
    s[i].frames = info.frames;
    sf_seek(s[i].sf, 0, SEEK_SET);
    s[i].data_off = s[i].v.off;
    s[i].ring.resize(kRing * 2);
    if (mode == 'c') {
      s[i].map_len = st.st_size;
      void* m = mmap(nullptr, st.st_size, PROT_READ, MAP_SHARED, s[i].v.fd, 0);
      if (m == MAP_FAILED) {
        perror("mmap");
        return 1;
      }
      madvise(m, st.st_size, MADV_RANDOM);  // no fault-around: only what the loader made resident
      s[i].map = (const int16_t*)((const char*)m + s[i].data_off);
    }
    // warm the page cache
    std::vector<char> tmp(st.st_size);
    pread(s[i].v.fd, tmp.data(), st.st_size, 0);
  }
  std::vector<float> bus(kBlock * 2);
  double t_load = 0, t_mix = 0;
  uint64_t reads = 0, pages = 0;
  // loader step for one source: refill from half (a, b) / make the next window resident (c)
  auto load_one = [&](Src& x) {
    if (mode == 'c') {
      // window: the mixer's position x.r (frames into the looping file) .. + kRing
      int64_t pos = x.r % x.frames, want_to = pos + kRing;  // frames
      if (x.resident_to - pos > kRing / 2) return;
      int64_t from = std::max(x.resident_to, pos);
      int64_t to = std::min<int64_t>(want_to, x.frames);
      if (to <= from) {
        x.resident_to = 0;
        from = 0;
        to = kRing;
      }  // loop wrap: the start again
      uintptr_t b = ((uintptr_t)(x.map + from * 2)) & ~uintptr_t(4095),
                e = ((uintptr_t)(x.map + to * 2) + 4095) & ~uintptr_t(4095);
      if (popmode == "populate")
        madvise((void*)b, e - b, MADV_POPULATE_READ);
      else if (popmode == "mlock") {
        mlock((void*)b, e - b);
        if (x.locked_from < from - kRing) {
          uintptr_t ub = ((uintptr_t)(x.map + x.locked_from * 2)) & ~uintptr_t(4095);
          if (b > ub) munlock((void*)ub, b - ub);
          x.locked_from = from;
        }
      } else if (popmode == "willneed")
        madvise((void*)b, e - b, MADV_WILLNEED);
      else if (popmode == "touch") {
        volatile char c;
        for (uintptr_t q = b; q < e; q += 4096) c = *(const char*)q;
        (void)c;
      }
      pages += (e - b) / 4096;
      ++reads;
      x.resident_to = to;
      return;
    }
    int64_t fill = x.w - x.r;
    if (fill > kRing / 2) return;
    int64_t want = kRing - fill;
    while (want > 0) {
      int64_t at = x.w % kRing, n1 = std::min(want, kRing - at);
      n1 = std::min(n1, x.frames - x.next);
      int16_t* dst = x.ring.data() + at * 2;
      int64_t got;
      if (mode == 'a')
        got = sf_readf_short(x.sf, dst, n1);
      else {
        got = pread(x.v.fd, dst, n1 * 4, x.data_off + x.next * 4) / 4;
      }
      ++reads;
      x.w += got;
      x.next += got;
      want -= got;
      if (x.next >= x.frames) {
        x.next = 0;
        if (mode == 'a') sf_seek(x.sf, 0, SEEK_SET);
      }
    }
  };
  auto mix_one = [&](Src& x) {
    float* o = bus.data();
    if (mode == 'c') {
      int64_t pos = x.r % x.frames, n1 = std::min<int64_t>(kBlock, x.frames - pos);
      const int16_t* p = x.map + pos * 2;
      for (int64_t k = 0; k < n1 * 2; ++k) o[k] += p[k] * (1.0f / 32768);
      if (n1 < kBlock) {
        p = x.map;
        for (int64_t k = n1 * 2; k < kBlock * 2; ++k) o[k] += p[k - n1 * 2] * (1.0f / 32768);
      }
      x.r += kBlock;
      return;
    }
    int64_t at = x.r % kRing, n1 = std::min<int64_t>(kBlock, kRing - at);
    const int16_t* p = x.ring.data() + at * 2;
    for (int64_t k = 0; k < n1 * 2; ++k) o[k] += p[k] * (1.0f / 32768);
    if (n1 < kBlock) {
      p = x.ring.data();
      for (int64_t k = n1 * 2; k < kBlock * 2; ++k) o[k] += p[k - n1 * 2] * (1.0f / 32768);
    }
    x.r += kBlock;
  };
  // prime
  for (auto& x : s) load_one(x);
  if (loaders == 1) {
    for (int cb = 0; cb < cbs; ++cb) {
      auto t0 = clk::now();
      std::fill(bus.begin(), bus.end(), 0.f);
      for (auto& x : s) mix_one(x);
      auto t1 = clk::now();
      for (auto& x : s) load_one(x);
      auto t2 = clk::now();
      t_mix += sec(t1 - t0);
      t_load += sec(t2 - t1);
    }
  } else {
    // (d): the loader's work split over `loaders` threads (each its share of the sources), per callback.
    for (int cb = 0; cb < cbs; ++cb) {
      auto t0 = clk::now();
      std::fill(bus.begin(), bus.end(), 0.f);
      for (auto& x : s) mix_one(x);
      auto t1 = clk::now();
      std::vector<std::thread> th;
      for (int l = 0; l < loaders; ++l)
        th.emplace_back([&, l] {
          for (size_t i = l; i < s.size(); i += loaders) load_one(s[i]);
        });
      for (auto& t : th) t.join();
      auto t2 = clk::now();
      t_mix += sec(t1 - t0);
      t_load += sec(t2 - t1);
    }
  }
  double vf = double(n) * cbs * kBlock;
  printf(
      "%c %s loaders=%d voices=%d: load %.3f ns/vf, mix %.3f ns/vf, total %.3f ns/vf; reads %llu (%.0f per s of "
      "audio), pages %llu (%.1f ns/page)\n",
      mode, mode == 'c' ? popmode.c_str() : "-", loaders, n, t_load / vf * 1e9, t_mix / vf * 1e9,
      (t_load + t_mix) / vf * 1e9, (unsigned long long)reads, reads / (cbs * kBlock / 48000.0),
      (unsigned long long)pages, pages ? t_load / pages * 1e9 : 0.0);
  // checksum so nothing is optimised away
  float sum = 0;
  for (float f : bus) sum += f;
  fprintf(stderr, "sum %g\n", sum);
}
