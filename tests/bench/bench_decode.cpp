// Decode cost from the page cache, per stereo frame.
//
//   decode/read_stereo/pcm16   io::SoundFile::read_stereo on a 16-bit WAV (what the loader and
//                              load_source do: sf_readf_short in chunks + int16 → float loop)
//   decode/read_stereo/float   io::SoundFile::read_stereo on a float WAV (sf_readf_float)
//   raw/sf_readf_short/pcm16   libsndfile directly (sf_open by path), the references
//   raw/sf_readf_float/pcm16
//   raw/sf_readf_float/float
//   raw/pread/pcm16            pread() of the same bytes: the cost of getting them out of the
//                              page cache at all
// `chunk` is the frames asked per call: 8192 is the loader's chunk_frames, 65536 a large read.
// Fixtures: 60 s of stereo noise at 48 kHz (11 MiB as 16-bit, 22 MiB as float), read once
// before timing so they are in the page cache; reads wrap to the start at end of file.
#include "common/bench_files.hpp"

#include "io/sound_file.hpp"

#include <benchmark/benchmark.h>
#include <sndfile.h>

#include <fcntl.h>
#include <unistd.h>

#include <memory>
#include <type_traits>
#include <string>
#include <vector>

namespace stemd::bench {
namespace {

constexpr std::int64_t kDecodeFrames = 44 * 65536;  // ≈ 60 s; a multiple of every chunk
constexpr int kChunks[] = {8192, 65536};

bool fixture(benchmark::State& state, bool is_float, std::string& path) {
  try {
    path = is_float ? wav_fixture("decode_float.wav", WavKind::kFloatNoise, kDecodeFrames)
                    : wav_fixture("decode_pcm16.wav", WavKind::kPcm16Noise, kDecodeFrames);
    return true;
  } catch (const std::exception& e) {
    state.SkipWithError(e.what());
    return false;
  }
}

void set_counters(benchmark::State& state, std::int64_t frames_per_iter, std::int64_t file_bytes_per_frame) {
  state.counters["ns_per_frame"] =
      benchmark::Counter(static_cast<double>(frames_per_iter) * 1e-9,
                         benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
  // Bytes of the file consumed.
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * frames_per_iter * file_bytes_per_frame);
}

void BM_ReadStereo(benchmark::State& state, bool is_float, int chunk) {
  std::string path;
  if (!fixture(state, is_float, path)) return;
  std::string err;
  auto fh = io::FileHandle::open(path, err);
  io::SoundFile sf;
  if (!fh || !sf.open(fh, err)) {
    state.SkipWithError(err.c_str());
    return;
  }
  std::vector<float> out(static_cast<std::size_t>(chunk) * 2);
  while (sf.read_stereo(out.data(), chunk) == chunk) {  // warm the page cache
  }
  sf.seek(0);
  for (auto _ : state) {
    std::int64_t got = sf.read_stereo(out.data(), chunk);
    if (got < chunk) {
      sf.seek(0);
      got += sf.read_stereo(out.data() + got * 2, chunk - got);
    }
    if (got != chunk) {
      state.SkipWithError("short read");
      break;
    }
    benchmark::DoNotOptimize(out.data());
  }
  set_counters(state, chunk, is_float ? 8 : 4);
}

template <typename T>
void BM_RawSndfile(benchmark::State& state, bool is_float_file, int chunk) {
  std::string path;
  if (!fixture(state, is_float_file, path)) return;
  SF_INFO info{};
  SNDFILE* sf = sf_open(path.c_str(), SFM_READ, &info);
  if (sf == nullptr) {
    state.SkipWithError(sf_strerror(nullptr));
    return;
  }
  std::vector<T> out(static_cast<std::size_t>(chunk) * 2);
  auto readf = [&](T* p, sf_count_t n) -> sf_count_t {
    if constexpr (std::is_same_v<T, float>) {
      return sf_readf_float(sf, p, n);
    } else {
      return sf_readf_short(sf, p, n);
    }
  };
  while (readf(out.data(), chunk) == chunk) {
  }
  sf_seek(sf, 0, SEEK_SET);
  for (auto _ : state) {
    sf_count_t got = readf(out.data(), chunk);
    if (got < chunk) {
      sf_seek(sf, 0, SEEK_SET);
      got += readf(out.data() + got * 2, chunk - got);
    }
    if (got != chunk) {
      state.SkipWithError("short read");
      break;
    }
    benchmark::DoNotOptimize(out.data());
  }
  sf_close(sf);
  set_counters(state, chunk, is_float_file ? 8 : 4);
}

void BM_RawPread(benchmark::State& state, int chunk) {
  std::string path;
  if (!fixture(state, false, path)) return;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    state.SkipWithError("open failed");
    return;
  }
  const std::size_t bytes = static_cast<std::size_t>(chunk) * 4;
  const off_t data_start = 44;  // libsndfile's canonical PCM16 WAV header
  const off_t data_end = data_start + kDecodeFrames * 4;
  std::vector<char> buf(bytes);
  off_t off = data_start;
  for (auto _ : state) {
    if (off + static_cast<off_t>(bytes) > data_end) off = data_start;
    const ssize_t n = ::pread(fd, buf.data(), bytes, off);
    if (n != static_cast<ssize_t>(bytes)) {
      state.SkipWithError("short pread");
      break;
    }
    off += n;
    benchmark::DoNotOptimize(buf.data());
  }
  ::close(fd);
  set_counters(state, chunk, 4);
}

[[maybe_unused]] const bool registered = [] {
  for (int c : kChunks) {
    const std::string sfx = "/chunk:" + std::to_string(c);
    benchmark::RegisterBenchmark(("decode/read_stereo/pcm16" + sfx).c_str(), BM_ReadStereo, false, c);
    benchmark::RegisterBenchmark(("decode/read_stereo/float" + sfx).c_str(), BM_ReadStereo, true, c);
    benchmark::RegisterBenchmark(("raw/sf_readf_short/pcm16" + sfx).c_str(), BM_RawSndfile<short>, false, c);
    benchmark::RegisterBenchmark(("raw/sf_readf_float/pcm16" + sfx).c_str(), BM_RawSndfile<float>, false, c);
    benchmark::RegisterBenchmark(("raw/sf_readf_float/float" + sfx).c_str(), BM_RawSndfile<float>, true, c);
    benchmark::RegisterBenchmark(("raw/pread/pcm16" + sfx).c_str(), BM_RawPread, c);
  }
  return true;
}();

}  // namespace
}  // namespace stemd::bench
