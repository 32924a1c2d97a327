// Benchmark fixtures (see fixtures.hpp). The benchmark may include <sndfile.h>; the product
// includes it only in src/io/sound_file.cpp.
#include "bench_files.hpp"

#include <sndfile.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <stdexcept>

namespace stemd::bench {

namespace {

constexpr int kRate = 48000;
constexpr int kChannels = 2;

struct FixtureDir {
  std::string path;
  bool remove_at_exit = false;

  FixtureDir() {
    if (const char* env = std::getenv("STEMD_BENCH_DIR"); env != nullptr && *env != '\0') {
      path = env;
      std::filesystem::create_directories(path);
      return;
    }
    const char* tmp = std::getenv("TMPDIR");
    std::string tmpl = std::string(tmp && *tmp ? tmp : "/tmp") + "/stemd-bench-XXXXXX";
    if (mkdtemp(tmpl.data()) == nullptr) {
      throw std::runtime_error("mkdtemp " + tmpl + ": " + std::strerror(errno));
    }
    path = tmpl;
    remove_at_exit = true;
  }
  ~FixtureDir() {
    if (remove_at_exit) {
      std::error_code ec;
      std::filesystem::remove_all(path, ec);
    }
  }
};

void put_u32(unsigned char* p, std::uint32_t v) {
  p[0] = v & 0xff;
  p[1] = (v >> 8) & 0xff;
  p[2] = (v >> 16) & 0xff;
  p[3] = (v >> 24) & 0xff;
}
void put_u16(unsigned char* p, std::uint16_t v) {
  p[0] = v & 0xff;
  p[1] = (v >> 8) & 0xff;
}

// A canonical 44-byte PCM16 WAV header (data size must fit in 32 bits).
void write_sparse_pcm16(const std::string& path, std::int64_t frames) {
  const std::uint64_t data_bytes = static_cast<std::uint64_t>(frames) * kChannels * 2;
  if (data_bytes + 36 > 0xFFFFFFFFull) throw std::runtime_error("sparse fixture too large for RIFF");
  unsigned char h[44];
  std::memcpy(h, "RIFF", 4);
  put_u32(h + 4, static_cast<std::uint32_t>(36 + data_bytes));
  std::memcpy(h + 8, "WAVEfmt ", 8);
  put_u32(h + 16, 16);
  put_u16(h + 20, 1);  // PCM
  put_u16(h + 22, kChannels);
  put_u32(h + 24, kRate);
  put_u32(h + 28, kRate * kChannels * 2);
  put_u16(h + 32, kChannels * 2);
  put_u16(h + 34, 16);
  std::memcpy(h + 36, "data", 4);
  put_u32(h + 40, static_cast<std::uint32_t>(data_bytes));

  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw std::runtime_error("open " + path + ": " + std::strerror(errno));
  const bool ok = ::write(fd, h, sizeof h) == static_cast<ssize_t>(sizeof h) &&
                  ::ftruncate(fd, static_cast<off_t>(sizeof h + data_bytes)) == 0 && ::fdatasync(fd) == 0;
  ::close(fd);
  if (!ok) throw std::runtime_error("writing " + path + ": " + std::strerror(errno));
}

void write_noise(const std::string& path, WavKind kind, std::int64_t frames) {
  SF_INFO info{};
  info.samplerate = kRate;
  info.channels = kChannels;
  info.format = SF_FORMAT_WAV | (kind == WavKind::kFloatNoise ? SF_FORMAT_FLOAT : SF_FORMAT_PCM_16);
  SNDFILE* sf = sf_open(path.c_str(), SFM_WRITE, &info);
  if (sf == nullptr) throw std::runtime_error("sf_open " + path + ": " + sf_strerror(nullptr));
  Noise noise(static_cast<std::uint64_t>(frames) ^ 0x5157);
  constexpr std::int64_t kChunk = 65536;
  std::vector<short> s(kChunk * kChannels);
  std::vector<float> f(kChunk * kChannels);
  bool ok = true;
  for (std::int64_t done = 0; done < frames && ok;) {
    const std::int64_t n = std::min(kChunk, frames - done);
    if (kind == WavKind::kFloatNoise) {
      for (std::int64_t i = 0; i < n * kChannels; ++i) f[i] = noise.uniform(0.5f);
      ok = sf_writef_float(sf, f.data(), n) == n;
    } else {
      for (std::int64_t i = 0; i < n * kChannels; ++i) s[i] = noise.pcm16();
      ok = sf_writef_short(sf, s.data(), n) == n;
    }
    done += n;
  }
  sf_write_sync(sf);
  sf_close(sf);
  if (!ok) throw std::runtime_error("writing " + path + " failed");
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    ::fdatasync(fd);
    ::close(fd);
  }
}

// True when `path` is a 48 kHz stereo WAV of `frames` frames in the right sample format.
bool fixture_ok(const std::string& path, WavKind kind, std::int64_t frames) {
  SF_INFO info{};
  SNDFILE* sf = sf_open(path.c_str(), SFM_READ, &info);
  if (sf == nullptr) return false;
  sf_close(sf);
  const int sub = info.format & SF_FORMAT_SUBMASK;
  const int want = kind == WavKind::kFloatNoise ? SF_FORMAT_FLOAT : SF_FORMAT_PCM_16;
  return info.frames == frames && info.channels == kChannels && info.samplerate == kRate && sub == want;
}

}  // namespace

std::vector<float> noise_frames(std::size_t frames, std::uint64_t seed, float amp) {
  std::vector<float> v(frames * 2);
  Noise n(seed);
  for (float& x : v) x = n.uniform(amp);
  return v;
}

const std::string& fixture_dir() {
  static FixtureDir dir;
  return dir.path;
}

std::string wav_fixture(const std::string& name, WavKind kind, std::int64_t frames) {
  const std::string path = fixture_dir() + "/" + name;
  if (fixture_ok(path, kind, frames)) return path;
  const std::string tmp = path + ".tmp";
  if (kind == WavKind::kPcm16Sparse) {
    write_sparse_pcm16(tmp, frames);
  } else {
    write_noise(tmp, kind, frames);
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    throw std::runtime_error("rename " + tmp + ": " + std::strerror(errno));
  }
  return path;
}

void evict_from_page_cache(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
  ::close(fd);
}

}  // namespace stemd::bench
