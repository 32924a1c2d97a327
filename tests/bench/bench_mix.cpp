// Mixer cost: engine::Engine::process() with N looping voices, and the physical references
// (memcpy and a plain `out[i] += in[i]` loop) over the same bytes, in the same run.
//
//   mix/memory/unity   in-memory voices (VoiceSource over noise), gain 1 → mix_add
//   mix/memory/gain    in-memory voices at gain 0.5 → mix_gain
//   mix/empty          no voice playing: the fixed cost of one process() call
//   mix/stream/unity   voices reading Stream rings (ring.read into scratch, then mix); the rings
//                      are refilled — as the loader would — with the clock paused, once per
//                      ring's worth of blocks, so the timed part is exactly the callback's work
//   mix/stream16/unity the same with int16 rings (a 16-bit file's: half the bytes, converted to
//                      float as they are mixed); the noise is quantised to 16 bits
//   …-baseline         the same on the baseline build of the mixer's loops (EngineConfig::simd
//                      off: SSE2 on x86-64), against the AVX2 build the daemon picks when it can
//   ref/memcpy         memcpy of each voice's block into the output (same bytes, same sources)
//   ref/add            memset(out) + `out[i] += in[i]` per voice (the mixer's arithmetic floor)
//   ref/memcpy_large   one 64 MiB memcpy: the machine's copy bandwidth
//
// Every voice reads its own noise buffer (kSourceFrames frames, ≈ 384 KiB), like real voices
// reading different files: at 128 voices the sources do not fit in cache, which is the point.
// Counters: ns_per_voice_frame (one stereo frame of one voice), bytes_per_second = source bytes
// mixed (N × frames × 2 × sizeof(float) per call).
#include "common/bench_files.hpp"

#include "stemd/engine.hpp"
#include "stemd/stream.hpp"

#include <benchmark/benchmark.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

namespace stemd::bench {
namespace {

using engine::Command;
using engine::CommandType;
using engine::Engine;
using engine::EngineConfig;
using engine::VoiceSource;

constexpr std::uint32_t kMaxVoices = 128;
constexpr std::uint32_t kMaxBlock = 1024;
constexpr std::size_t kSourceFrames = 48 * 1024;  // a multiple of every block size: no split blocks
constexpr std::size_t kRingFrames = 24000;        // LoaderConfig's default ring (0.5 s)
constexpr int kVoiceCounts[] = {1, 8, 32, 128};
constexpr int kBlockSizes[] = {64, 256, 1024};

// One noise buffer per voice, shared by every benchmark (built once).
const std::vector<std::vector<float>>& sources() {
  static const std::vector<std::vector<float>> s = [] {
    std::vector<std::vector<float>> v;
    v.reserve(kMaxVoices);
    for (std::uint32_t i = 0; i < kMaxVoices; ++i) v.push_back(noise_frames(kSourceFrames, 1000 + i));
    return v;
  }();
  return s;
}

void set_counters(benchmark::State& state, std::int64_t voices, std::int64_t frames) {
  const double voice_frames = static_cast<double>(voices) * static_cast<double>(frames);
  // time / (iterations × voice_frames × 1e-9) = ns per voice-frame
  state.counters["ns_per_voice_frame"] = benchmark::Counter(
      voice_frames * 1e-9, benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * voices * frames * 2 *
                          static_cast<std::int64_t>(sizeof(float)));
}

Command play_command(std::uint32_t voice, const VoiceSource* src, Stream* stream, float gain) {
  Command c{};
  c.type = CommandType::kPlay;
  c.voice = voice;
  c.generation = 1;
  c.play = engine::PlayParams{src, stream, 0, gain, true};
  return c;
}

void drain_events(Engine& e) {
  engine::Event ev;
  while (e.poll_event(ev)) {
  }
}

void BM_MixMemory(benchmark::State& state, int voices, int frames, float gain) {
  const auto& src = sources();
  EngineConfig cfg;
  cfg.max_block_frames = kMaxBlock;
  cfg.max_voices = kMaxVoices;
  auto eng = std::make_unique<Engine>(cfg);
  std::vector<VoiceSource> views(voices);
  for (int i = 0; i < voices; ++i) {
    views[i] = VoiceSource{src[i].data(), static_cast<std::int64_t>(kSourceFrames),
                           static_cast<std::int64_t>(kSourceFrames), false};
    eng->send(play_command(static_cast<std::uint32_t>(i), &views[i], nullptr, gain));
  }
  std::vector<float> out(static_cast<std::size_t>(kMaxBlock) * 2);
  eng->process(out.data(), static_cast<std::uint32_t>(frames));  // applies the plays
  drain_events(*eng);
  if (eng->active_voices() != static_cast<std::uint32_t>(voices)) {
    state.SkipWithError("voices did not start");
    return;
  }
  for (auto _ : state) {
    eng->process(out.data(), static_cast<std::uint32_t>(frames));
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  if (eng->active_voices() != static_cast<std::uint32_t>(voices)) state.SkipWithError("a voice ended");
  set_counters(state, voices, frames);
}

// Each voice's noise quantised to 16 bits (the int16 rings' content), built once.
const std::vector<std::vector<std::int16_t>>& sources16() {
  static const std::vector<std::vector<std::int16_t>> s = [] {
    std::vector<std::vector<std::int16_t>> v;
    for (const auto& f : sources()) {
      std::vector<std::int16_t> q(f.size());
      for (std::size_t i = 0; i < f.size(); ++i)
        q[i] = static_cast<std::int16_t>(std::clamp(std::lrint(f[i] * 32767.0f), -32768l, 32767l));
      v.push_back(std::move(q));
    }
    return v;
  }();
  return s;
}

void BM_MixStream(benchmark::State& state, int voices, int frames, SampleFormat format, bool simd) {
  const auto& src = sources();
  EngineConfig cfg;
  cfg.simd = simd;
  cfg.max_block_frames = kMaxBlock;
  cfg.max_voices = std::max<std::uint32_t>(kMaxVoices, static_cast<std::uint32_t>(voices));
  auto eng = std::make_unique<Engine>(cfg);
  // A streamed source with no pre-decoded head: every frame comes through the ring.
  const VoiceSource view{nullptr, 0, std::int64_t{1} << 40, true};
  std::vector<std::unique_ptr<Stream>> streams;
  std::vector<std::size_t> feed_pos(voices, 0);
  for (int i = 0; i < voices; ++i) streams.push_back(std::make_unique<Stream>(kRingFrames, format));
  const bool i16 = format == SampleFormat::kInt16;
  const auto& src16 = i16 ? sources16() : std::vector<std::vector<std::int16_t>>{};

  // What the loader does: top every ring up to capacity from the voice's noise.
  auto write = [&](SampleRing& ring, int i, std::size_t n) -> std::size_t {
    const std::size_t k = static_cast<std::size_t>(i) % kMaxVoices;  // content repeats past 128; rings do not
    if (!i16) return ring.write(src[k].data() + feed_pos[i] * 2, n);
    const auto w = ring.write_spans_i16(n);
    std::memcpy(w.first, src16[k].data() + feed_pos[i] * 2, w.first_frames * 4);
    std::memcpy(w.second, src16[k].data() + (feed_pos[i] + w.first_frames) * 2, w.second_frames * 4);
    ring.commit(w.frames());
    return w.frames();
  };
  auto refill = [&] {
    for (int i = 0; i < voices; ++i) {
      SampleRing& ring = streams[i]->ring();
      std::size_t room = ring.writable_frames();
      while (room > 0) {
        const std::size_t n = std::min(room, kSourceFrames - feed_pos[i]);
        const std::size_t w = write(ring, i, n);
        feed_pos[i] = (feed_pos[i] + w) % kSourceFrames;
        room -= w;
        if (w == 0) break;
      }
    }
  };
  refill();
  for (int i = 0; i < voices; ++i)
    eng->send(play_command(static_cast<std::uint32_t>(i), &view, streams[i].get(), 1.0f));
  std::vector<float> out(static_cast<std::size_t>(kMaxBlock) * 2);
  eng->process(out.data(), static_cast<std::uint32_t>(frames));
  drain_events(*eng);

  // Every voice drains `frames` per call, so one ring tells when all need a refill.
  SampleRing& first = streams[0]->ring();
  for (auto _ : state) {
    if (first.readable_frames() < static_cast<std::size_t>(frames)) {
      state.PauseTiming();
      refill();
      state.ResumeTiming();
    }
    eng->process(out.data(), static_cast<std::uint32_t>(frames));
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  if (eng->metrics().voice_underruns.load() != 0) state.SkipWithError("a streamed voice underran");
  if (eng->active_voices() != static_cast<std::uint32_t>(voices)) state.SkipWithError("a voice ended");
  set_counters(state, voices, frames);
  eng.reset();  // the engine never frees streams; they are ours
}

// process() with no voice playing: the fixed cost of one callback (command poll, memset of the
// block, denormal mode, clock reads, metrics atomics).
void BM_MixEmpty(benchmark::State& state, int frames) {
  EngineConfig cfg;
  cfg.max_block_frames = kMaxBlock;
  cfg.max_voices = kMaxVoices;
  auto eng = std::make_unique<Engine>(cfg);
  std::vector<float> out(static_cast<std::size_t>(kMaxBlock) * 2);
  for (auto _ : state) {
    eng->process(out.data(), static_cast<std::uint32_t>(frames));
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
}

// The plain loop the mixer's unity path boils down to, kept out of line so it is measured as is.
__attribute__((noinline)) void add_block(float* __restrict out, const float* __restrict in, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) out[i] += in[i];
}

void BM_RefMemcpy(benchmark::State& state, int voices, int frames) {
  const auto& src = sources();
  std::vector<float> out(static_cast<std::size_t>(kMaxBlock) * 2);
  const std::size_t bytes = static_cast<std::size_t>(frames) * 2 * sizeof(float);
  std::size_t pos = 0;
  for (auto _ : state) {
    for (int v = 0; v < voices; ++v) {
      std::memcpy(out.data(), src[v].data() + pos * 2, bytes);
      benchmark::ClobberMemory();
    }
    pos = (pos + frames) % kSourceFrames;
    benchmark::DoNotOptimize(out.data());
  }
  set_counters(state, voices, frames);
}

void BM_RefAdd(benchmark::State& state, int voices, int frames) {
  const auto& src = sources();
  std::vector<float> out(static_cast<std::size_t>(kMaxBlock) * 2);
  const std::size_t n = static_cast<std::size_t>(frames) * 2;
  std::size_t pos = 0;
  for (auto _ : state) {
    std::memset(out.data(), 0, n * sizeof(float));
    for (int v = 0; v < voices; ++v) add_block(out.data(), src[v].data() + pos * 2, n);
    pos = (pos + frames) % kSourceFrames;
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  set_counters(state, voices, frames);
}

void BM_RefMemcpyLarge(benchmark::State& state) {
  const std::size_t bytes = static_cast<std::size_t>(state.range(0));
  std::vector<char> a(bytes, 1), b(bytes, 2);
  for (auto _ : state) {
    std::memcpy(b.data(), a.data(), bytes);
    benchmark::DoNotOptimize(b.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * static_cast<std::int64_t>(bytes));
}

[[maybe_unused]] const bool registered = [] {
  for (int v : kVoiceCounts) {
    for (int b : kBlockSizes) {
      const std::string grid = "/voices:" + std::to_string(v) + "/block:" + std::to_string(b);
      benchmark::RegisterBenchmark(("mix/memory/unity" + grid).c_str(), BM_MixMemory, v, b, 1.0f);
      benchmark::RegisterBenchmark(("mix/memory/gain" + grid).c_str(), BM_MixMemory, v, b, 0.5f);
      benchmark::RegisterBenchmark(("mix/stream/unity" + grid).c_str(), BM_MixStream, v, b, SampleFormat::kFloat, true);
      benchmark::RegisterBenchmark(("mix/stream16/unity" + grid).c_str(), BM_MixStream, v, b, SampleFormat::kInt16,
                                   true);
      benchmark::RegisterBenchmark(("ref/memcpy" + grid).c_str(), BM_RefMemcpy, v, b);
      benchmark::RegisterBenchmark(("ref/add" + grid).c_str(), BM_RefAdd, v, b);
    }
  }
  // 1024 streamed voices: 96 MB (int16) or 192 MB (float) of rings, far beyond any cache, as in
  // the daemon (the content repeats every 128 voices; the rings are distinct memory).
  for (int b : {256, 1024}) {
    const std::string grid = "/voices:1024/block:" + std::to_string(b);
    benchmark::RegisterBenchmark(("mix/stream/unity" + grid).c_str(), BM_MixStream, 1024, b, SampleFormat::kFloat,
                                 true);
    benchmark::RegisterBenchmark(("mix/stream16/unity" + grid).c_str(), BM_MixStream, 1024, b, SampleFormat::kInt16,
                                 true);
    benchmark::RegisterBenchmark(("mix/stream16/unity-baseline" + grid).c_str(), BM_MixStream, 1024, b,
                                 SampleFormat::kInt16, false);
  }
  for (int b : kBlockSizes) {
    benchmark::RegisterBenchmark(("mix/empty/block:" + std::to_string(b)).c_str(), BM_MixEmpty, b);
  }
  benchmark::RegisterBenchmark("ref/memcpy_large", BM_RefMemcpyLarge)->Arg(64 << 20);
  return true;
}();

}  // namespace
}  // namespace stemd::bench
