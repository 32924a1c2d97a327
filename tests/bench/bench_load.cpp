// Load-to-ready latency: io::load_source() with the default LoadOptions (preload limit 16 MiB),
// i.e. the time from "/load_buffer" to a source a voice can start on in the next callback.
//
//   load/hot/<size>    file in the page cache (one untimed load first)
//   load/cold/<size>   POSIX_FADV_DONTNEED before every load: the file's pages come from disk
//
// Sizes are 16-bit stereo 48 kHz WAVs: 1MB (1 MiB of noise: decoded whole, 2 MiB in RAM),
// 140MB (140 MiB of noise: streamed, only the ≈0.5 s head decoded) and 1GB (1 GiB of noise,
// streamed; a real file, not sparse, so a cold load really goes to the disk). 20 loads each, timed one by one (manual
// time); the samples are reported as counters: p50_ms, p99_ms (nearest rank: with 20 samples, the worst), min_ms,
// max_ms; bytes_read per load (io::FileHandle::total_bytes_read() before/after) proves that only the head of a streamed
// file is read; memory_bytes is the source's decoded data.
#include "common/bench_files.hpp"

#include "io/source.hpp"

#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <string>
#include <vector>

namespace stemd::bench {
namespace {

constexpr int kLoads = 20;

struct Size {
  const char* label;
  std::int64_t data_bytes;
  WavKind kind;
};
constexpr Size kSizes[] = {
    {"1MB", std::int64_t{1} << 20, WavKind::kPcm16Noise},
    {"140MB", std::int64_t{140} << 20, WavKind::kPcm16Noise},
    {"1GB", std::int64_t{1} << 30, WavKind::kPcm16Noise},
};

double percentile(std::vector<double> v, double p) {  // nearest rank
  std::sort(v.begin(), v.end());
  const auto rank = static_cast<std::size_t>(std::ceil(p / 100.0 * static_cast<double>(v.size())));
  return v[std::clamp<std::size_t>(rank, 1, v.size()) - 1];
}

void BM_Load(benchmark::State& state, Size size, bool cold) {
  std::string path;
  try {
    path = wav_fixture(std::string("load_") + size.label + ".wav", size.kind, size.data_bytes / 4);
  } catch (const std::exception& e) {
    state.SkipWithError(e.what());
    return;
  }
  const io::LoadOptions opts;  // the defaults: what stemd does
  if (!cold) {
    auto warm = io::load_source(path, "warm", opts);
    if (!warm.source) {
      state.SkipWithError(warm.error.c_str());
      return;
    }
  }

  std::vector<double> ms;
  std::uint64_t bytes_read = 0;
  std::size_t memory_bytes = 0;
  bool streamed = false;
  for (auto _ : state) {
    if (cold) evict_from_page_cache(path);
    const std::uint64_t before = io::FileHandle::total_bytes_read();
    const auto t0 = std::chrono::steady_clock::now();
    io::LoadResult r = io::load_source(path, "bench", opts);
    const auto t1 = std::chrono::steady_clock::now();
    const std::uint64_t after = io::FileHandle::total_bytes_read();
    if (!r.source) {
      state.SkipWithError(r.error.c_str());
      break;
    }
    const double s = std::chrono::duration<double>(t1 - t0).count();
    state.SetIterationTime(s);
    ms.push_back(s * 1e3);
    bytes_read = std::max(bytes_read, after - before);
    memory_bytes = r.source->memory_bytes();
    streamed = r.source->streamed();
    // r (and the source's memory) is freed here, outside the timed part.
  }
  if (ms.empty()) return;
  state.counters["p50_ms"] = percentile(ms, 50);
  state.counters["p99_ms"] = percentile(ms, 99);
  state.counters["min_ms"] = *std::min_element(ms.begin(), ms.end());
  state.counters["max_ms"] = *std::max_element(ms.begin(), ms.end());
  state.counters["bytes_read"] = static_cast<double>(bytes_read);
  state.counters["file_bytes"] = static_cast<double>(size.data_bytes + 44);
  state.counters["memory_bytes"] = static_cast<double>(memory_bytes);
  state.counters["streamed"] = streamed ? 1 : 0;
}

[[maybe_unused]] const bool registered = [] {
  for (bool cold : {false, true}) {
    for (const Size& s : kSizes) {
      benchmark::RegisterBenchmark((std::string("load/") + (cold ? "cold/" : "hot/") + s.label).c_str(), BM_Load, s,
                                   cold)
          ->Iterations(kLoads)
          ->Repetitions(1)  // the 20 samples are the statistics; --benchmark_repetitions does not apply
          ->UseManualTime()
          ->Unit(benchmark::kMillisecond);
    }
  }
  return true;
}();

}  // namespace
}  // namespace stemd::bench
