// Fault injection and adaptive prefetch: the real loader and engine, paced in real time, with the
// file reads slowed down or broken through io::FaultInjector (the libsndfile virtual I/O layer).
//
// Threads: a pacing thread plays the device [audio]: it calls Engine::process() every period on
// an absolute clock and never waits for the loader (the render backend does, so it could never
// show an underrun). The test thread is [control]: it sends commands, drains events and hands
// retired streams back. The LoaderThread is the real [loader]; the injected faults run on it.
//
// Fixtures are 16-bit WAVs of small amplitude, so the mix of up to 16 voices is exact in float
// whatever the order of summation: "bit-exact" compares the output with the exact sum.
#include "io/loader_thread.hpp"
#include "io/source.hpp"
#include "io/sound_file.hpp"
#include "stemd/engine.hpp"
#include "stemd/stream.hpp"
#include "common/engine_driver.hpp"
#include "common/log_capture.hpp"

#include <gtest/gtest.h>

#include <pthread.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <memory>
#include <mutex>
#include <numbers>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace stemd::io {
namespace {

using engine::EndReason;
using engine::Engine;
using engine::EngineConfig;
using engine::EventType;

constexpr int kRate = 48'000;
constexpr std::uint32_t kPeriod = 256;  // 5.3 ms

std::uint64_t now_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000ull + static_cast<std::uint64_t>(ts.tv_nsec);
}

// ---------------------------------------------------------------- fixtures

// Low-level noise (|x| ≤ 1500/32768): different per file, exact when summed.
std::vector<float> make_noise_wav(const std::string& path, std::int64_t frames, std::uint32_t seed) {
  std::vector<short> pcm(static_cast<std::size_t>(frames) * 2);
  std::uint32_t x = seed * 2654435761u + 7u;
  for (auto& v : pcm) {
    x = x * 1664525u + 1013904223u;
    v = static_cast<short>(static_cast<int>((x >> 16) % 3001) - 1500);
  }
  test::write_wav16(path, pcm, 2);
  return test::to_stereo_float(pcm, 2);
}

std::vector<float> make_sine_wav(const std::string& path, std::int64_t frames, double hz, double amp) {
  std::vector<short> pcm(static_cast<std::size_t>(frames) * 2);
  for (std::int64_t i = 0; i < frames; ++i) {
    const auto v = static_cast<short>(std::lround(amp * 32767.0 * std::sin(2 * std::numbers::pi * hz * i / kRate)));
    pcm[static_cast<std::size_t>(2 * i)] = v;
    pcm[static_cast<std::size_t>(2 * i + 1)] = v;
  }
  test::write_wav16(path, pcm, 2);
  return test::to_stereo_float(pcm, 2);
}

std::vector<float> make_silent_wav(const std::string& path, std::int64_t frames) {
  std::vector<short> pcm(static_cast<std::size_t>(frames) * 2, 0);
  test::write_wav16(path, pcm, 2);
  return test::to_stereo_float(pcm, 2);
}

// The injected faults, changed by the test while the loader reads.
class Faults : public FaultInjector {
 public:
  std::atomic<std::int64_t> every_read_ns{0};     // each read takes this long (a slow disk)
  std::atomic<std::uint64_t> stall_until_ns{0};   // reads wait until then (the storage stalls)
  std::atomic<std::uint64_t> stall_period_ns{0};  // periodic stalls: every period...
  std::atomic<std::uint64_t> stall_len_ns{0};     // ...one of this length
  std::atomic<std::uint64_t> reads{0};

  // Reads of `path` at or after byte `from` fail with `err` (0: end of file instead).
  void break_file(const std::string& path, std::int64_t from, int err) {
    std::lock_guard lock(mutex_);
    broken_.push_back({path, from, err});
  }

  ReadFault on_read(const std::string& path, std::int64_t offset, std::int64_t) noexcept override {
    reads.fetch_add(1, std::memory_order_relaxed);
    ReadFault f;
    const std::uint64_t now = now_ns();
    std::uint64_t until = stall_until_ns.load();
    const std::uint64_t period = stall_period_ns.load();
    if (period != 0) {  // inside one of the periodic stalls: wait for its end
      const std::uint64_t phase = (now - epoch_) % period;
      if (phase < stall_len_ns.load()) until = std::max(until, now - phase + stall_len_ns.load());
    }
    if (until > now) f.delay_ns = static_cast<std::int64_t>(until - now);
    f.delay_ns += every_read_ns.load();
    std::lock_guard lock(mutex_);
    for (const auto& b : broken_) {
      if (b.path == path && offset >= b.from) {
        f.error = b.err;
        f.end_of_file = b.err == 0;
      }
    }
    return f;
  }

 private:
  struct Broken {
    std::string path;
    std::int64_t from;
    int err;
  };
  std::mutex mutex_;
  std::vector<Broken> broken_;
  std::uint64_t epoch_ = now_ns();
};

// ---------------------------------------------------------------- the real-time rig

struct RtRig {
  Engine engine;
  LoaderThread loader;
  test::Drained drained;
  std::vector<float> out;  // everything the "device" played
  std::atomic<std::int64_t> frames_done{0};
  std::atomic<bool> stop{false};
  std::uint64_t process_max_ns = 0;  // longest Engine::process() call
  std::uint64_t late_periods = 0;    // periods the pacing thread itself started late (machine load)
  std::thread audio;
  int audio_cpu = -1;

  static EngineConfig engine_config() {
    EngineConfig c;
    c.max_block_frames = 4'096;
    c.max_voices = 64;
    return c;
  }
  RtRig(const LoaderConfig& lc, double max_seconds)
      : engine(engine_config()), loader(lc), out(static_cast<std::size_t>(max_seconds * kRate) * 2) {
    engine.set_loader_wakeup(&LoaderThread::wake_cb, &loader);
    loader.start();
  }
  ~RtRig() {
    finish();
    loader.stop();
  }

  void play(std::uint32_t voice, const Source& src) {  // a stream for a streamed source, as the controller
    std::string err;
    Stream* s = src.streamed() ? loader.create_stream(src, src.view.memory_frames, false, err) : nullptr;
    ASSERT_TRUE(s != nullptr || !src.streamed()) << err;
    ASSERT_TRUE(engine.send(test::play_command(voice, 1, &src.view, s, 0, 1.0f, false)));
  }

  void start() {
    audio = std::thread([this] {
      if (audio_cpu >= 0) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(audio_cpu, &set);
        pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
      }
      const std::uint64_t period_ns = 1'000'000'000ull * kPeriod / kRate;
      std::uint64_t next = now_ns();
      const auto total = static_cast<std::int64_t>(out.size() / 2);
      std::int64_t done = 0;
      while (!stop.load(std::memory_order_relaxed) && done + kPeriod <= total) {
        const std::uint64_t t0 = now_ns();
        if (t0 > next + period_ns) ++late_periods;
        engine.process(out.data() + done * 2, kPeriod);
        process_max_ns = std::max(process_max_ns, now_ns() - t0);
        done += kPeriod;
        frames_done.store(done, std::memory_order_release);
        next += period_ns;
        const timespec ts{static_cast<time_t>(next / 1'000'000'000ull), static_cast<long>(next % 1'000'000'000ull)};
        while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr) == EINTR) {
        }
      }
    });
  }

  // [control] Drains events for `seconds` of played audio (or until the output buffer is full).
  void run_for(double seconds) {
    const auto until = std::min<std::int64_t>(frames_done.load() + static_cast<std::int64_t>(seconds * kRate),
                                              static_cast<std::int64_t>(out.size() / 2) - kPeriod);
    while (frames_done.load(std::memory_order_acquire) < until) {
      drained.drain(engine, &loader);
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    drained.drain(engine, &loader);
  }

  // Stops the device; returns the frames played.
  std::int64_t finish() {
    stop = true;
    if (audio.joinable()) audio.join();
    drained.drain(engine, &loader);
    return frames_done.load();
  }

  std::vector<const engine::Event*> events(EventType t, std::uint32_t voice) const {
    std::vector<const engine::Event*> v;
    for (const auto& e : drained.events)
      if (e.type == t && e.voice == voice) v.push_back(&e);
    return v;
  }
};

LoaderConfig fixed_rings() {  // the pre-adaptive loader: 0.5 s rings, always kept full
  LoaderConfig c;
  c.ring_frames = kRate / 2;
  c.chunk_frames = 8'192;
  c.prefill_frames = 8'192;
  c.period_frames = kPeriod;
  c.sample_rate = kRate;
  return c;
}

LoadOptions streamed() {
  LoadOptions o;
  o.output_rate = kRate;
  o.preload_limit_bytes = 0;  // bigger than the limit: every file streams
  o.head_frames = kRate / 2;
  return o;
}

std::unique_ptr<Source> load(const std::string& path) {
  LoadResult r = load_source(path, "t", streamed());
  EXPECT_TRUE(r.source) << r.error;
  if (r.source) {
    EXPECT_TRUE(r.source->streamed());
  }
  return std::move(r.source);
}

// Voices first..count-1: noise files DIR/PREFIXv.wav of `seconds` (seed seed0 + v), each loaded
// (streamed); their samples go to `files`, their sources to `srcs`.
void add_noise_voices(test::TempDir& dir, const std::string& prefix, int first, int count, double seconds,
                      std::uint32_t seed0, std::vector<std::vector<float>>& files,
                      std::vector<std::unique_ptr<Source>>& srcs) {
  for (int v = first; v < count; ++v) {
    const auto path = dir.file(prefix + std::to_string(v) + ".wav");
    files.push_back(make_noise_wav(path, static_cast<std::int64_t>(seconds * kRate), seed0 + v));
    srcs.push_back(load(path));
  }
}

// Output frames [from, to) equal the exact sum of `files` (each starting at frame 0) there.
std::int64_t first_mismatch_with_sum(const std::vector<float>& out, const std::vector<const std::vector<float>*>& files,
                                     std::int64_t from, std::int64_t to) {
  for (std::int64_t f = from; f < to; ++f) {
    for (int ch = 0; ch < 2; ++ch) {
      float want = 0.0f;
      for (const auto* file : files) {
        const auto i = static_cast<std::size_t>(f * 2 + ch);
        if (i < file->size()) want += (*file)[i];
      }
      if (out[static_cast<std::size_t>(f * 2 + ch)] != want) return f;
    }
  }
  return -1;
}

void report(const char* what, const RtRig& rig, const LoaderStats& ls) {
  std::printf(
      "[ %s ] process max %.2f ms, late periods %llu, voice underruns %llu, device underflows %llu; loader: reads "
      "%llu, rings ran dry %llu, wait for data %.1f ms (σ %.1f), slowest read %.1f ms, targets %.0f..%.0f ms, "
      "ring memory %.1f MB\n",
      what, rig.process_max_ns / 1e6, static_cast<unsigned long long>(rig.late_periods),
      static_cast<unsigned long long>(rig.engine.metrics().voice_underruns.load()),
      static_cast<unsigned long long>(rig.engine.metrics().device_underflows.load()),
      static_cast<unsigned long long>(ls.reads), static_cast<unsigned long long>(ls.rings_ran_dry), ls.wait_ms_mean,
      ls.wait_ms_sd, ls.read_ms_max, ls.target_ms_min, ls.target_ms_max, ls.ring_bytes / 1e6);
}

// The callback never waits for the disk: one process() stays far below any injected stall
// (100 ms: a generous bound on a loaded 2-core machine; a blocking callback would take ≥ the stall).
constexpr std::uint64_t kProcessBoundNs = 100'000'000;

// ---------------------------------------------------------------- storage stalls

class StorageStalls : public ::testing::TestWithParam<int> {};

// The storage stalls for 50 or 200 ms every 700 ms: every read on every voice in that window
// waits for its end. 16 streamed voices; the 0.5 s rings cover it: no underrun, exact output.
TEST_P(StorageStalls, AreCoveredByTheRings) {
  const int stall_ms = GetParam();
  test::TempDir dir;
  constexpr int kVoices = 16;
  constexpr double kSeconds = 6.0;
  std::vector<std::vector<float>> files;
  std::vector<std::unique_ptr<Source>> srcs;
  add_noise_voices(dir, "v", 0, kVoices, 12, 100, files, srcs);
  for (const auto& src : srcs) ASSERT_TRUE(src);
  Faults faults;
  faults.stall_len_ns = static_cast<std::uint64_t>(stall_ms) * 1'000'000;
  faults.stall_period_ns = 700'000'000;
  ScopedFaultInjector installed(faults);

  RtRig rig(fixed_rings(), kSeconds + 1);
  for (int v = 0; v < kVoices; ++v) rig.play(static_cast<std::uint32_t>(v), *srcs[static_cast<std::size_t>(v)]);
  rig.start();
  rig.run_for(kSeconds);
  const std::int64_t played = rig.finish();
  const auto ls = rig.loader.stats();
  report(("storage stalls of " + std::to_string(stall_ms) + " ms").c_str(), rig, ls);

  EXPECT_GT(faults.reads.load(), 50u) << "the voices did not stream";
  EXPECT_EQ(rig.engine.metrics().voice_underruns.load(), 0u);
  EXPECT_EQ(rig.drained.count(EventType::kVoiceUnderrun), 0u);
  EXPECT_EQ(rig.drained.count(EventType::kVoiceEnded), 0u);
  EXPECT_LT(rig.process_max_ns, kProcessBoundNs);
  std::vector<const std::vector<float>*> all;
  for (const auto& f : files) all.push_back(&f);
  EXPECT_EQ(first_mismatch_with_sum(rig.out, all, 0, played), -1);
}

INSTANTIATE_TEST_SUITE_P(Ms, StorageStalls, ::testing::Values(50, 200),
                         [](const auto& info) { return std::to_string(info.param) + "ms"; });

// ---------------------------------------------------------------- a 1 s stall

// Every read stalls for 1 s, once: the 0.5 s rings run dry. Each voice fades out (no click),
// counts an underrun (metrics + event), stays silent, and fades back in when data returns; the
// callback never waits.
TEST(Faults, OneSecondStallUnderrunsFadesOutAndRecovers) {
  test::TempDir dir;
  constexpr int kVoices = 8;
  constexpr double kSeconds = 5.0;
  constexpr double kAmp = 0.05;
  std::vector<std::unique_ptr<Source>> srcs;
  double slope = 0;  // the largest sample-to-sample step of the undisturbed mix (upper bound)
  for (int v = 0; v < kVoices; ++v) {
    const double hz = 50.0 + 25.0 * v;
    const auto path = dir.file("s" + std::to_string(v) + ".wav");
    make_sine_wav(path, static_cast<std::int64_t>(10 * kRate), hz, kAmp);
    srcs.push_back(load(path));
    ASSERT_TRUE(srcs.back());
    slope += kAmp * 2 * std::numbers::pi * hz / kRate;
  }
  Faults faults;
  ScopedFaultInjector installed(faults);
  RtRig rig(fixed_rings(), kSeconds + 1);
  for (int v = 0; v < kVoices; ++v) rig.play(static_cast<std::uint32_t>(v), *srcs[static_cast<std::size_t>(v)]);
  rig.start();
  rig.run_for(1.5);  // past the head: the voices stream
  faults.stall_until_ns = now_ns() + 1'000'000'000;
  rig.run_for(kSeconds - 1.5);
  const std::int64_t played = rig.finish();
  const auto ls = rig.loader.stats();
  report("1 s stall", rig, ls);

  // Counted and reported, every voice; none ended.
  EXPECT_GE(rig.engine.metrics().voice_underruns.load(), static_cast<std::uint64_t>(kVoices));
  for (std::uint32_t v = 0; v < kVoices; ++v) EXPECT_GE(rig.events(EventType::kVoiceUnderrun, v).size(), 1u) << v;
  EXPECT_EQ(rig.drained.count(EventType::kVoiceEnded), 0u);
  EXPECT_GE(ls.rings_ran_dry, 1u);
  EXPECT_LT(rig.process_max_ns, kProcessBoundNs) << "the callback waited for the disk";

  // No click: each step is at most the mix's own slope plus what the declick fades add.
  const double fade_step = kVoices * kAmp / rig.engine.declick_frames();
  const double bound = slope + 2 * fade_step + 1e-6;
  double worst = 0;
  std::int64_t worst_at = 0;
  for (std::int64_t f = 1; f < played; ++f) {
    const double d = std::abs(rig.out[static_cast<std::size_t>(2 * f)] - rig.out[static_cast<std::size_t>(2 * f - 2)]);
    if (d > worst) worst = d, worst_at = f;
  }
  EXPECT_LE(worst, bound) << "a click at frame " << worst_at << " (bound " << bound << ")";
  std::printf("[ 1 s stall ] largest step %.5f at frame %lld, bound %.5f (a hard cut would be ≈ %.3f)\n", worst,
              static_cast<long long>(worst_at), bound, kAmp);

  // The gap: the longest run of exact silence (every voice faded out), then sound again.
  std::int64_t run = 0, gap = 0, gap_end = 0;
  for (std::int64_t f = 0; f < played; ++f) {
    const bool zero =
        rig.out[static_cast<std::size_t>(2 * f)] == 0.0f && rig.out[static_cast<std::size_t>(2 * f + 1)] == 0.0f;
    run = zero ? run + 1 : 0;
    if (run > gap) gap = run, gap_end = f + 1;
  }
  std::printf("[ 1 s stall ] silent for %.0f ms, from %.3f s\n", 1e3 * gap / kRate,
              static_cast<double>(gap_end - gap) / kRate);
  EXPECT_GT(gap, kRate / 4) << "no gap: the voices never went silent";
  EXPECT_LT(gap_end + kRate, played) << "the voices never came back";
  // Came back at full level: the last 0.5 s peaks near the undisturbed mix's.
  float peak = 0;
  for (std::int64_t f = played - kRate / 2; f < played; ++f)
    peak = std::max(peak, std::abs(rig.out[static_cast<std::size_t>(2 * f)]));
  EXPECT_GT(peak, kAmp);
}

// ---------------------------------------------------------------- broken files

enum class Break { kReadError, kStale, kTruncated, kShortRead };

class BrokenFile : public ::testing::TestWithParam<Break> {};

// One voice's file breaks mid-stream; it ends with reason "error" and the other voices keep
// playing bit-exactly (its content is silence, so the whole output must equal their exact sum).
TEST_P(BrokenFile, EndsThatVoiceAloneWithAnError) {
  test::TempDir dir;
  constexpr int kVoices = 8;
  constexpr double kSeconds = 4.0;
  std::vector<std::vector<float>> files;
  std::vector<std::unique_ptr<Source>> srcs;
  const std::string bad = dir.file("bad.wav");
  make_silent_wav(bad, static_cast<std::int64_t>(10 * kRate));
  srcs.push_back(load(bad));
  add_noise_voices(dir, "v", 1, kVoices, 10, 200, files, srcs);
  for (const auto& s : srcs) ASSERT_TRUE(s);
  const std::int64_t cut_byte = 44 + std::int64_t{kRate} * 4 * 3 / 2;  // ≈ 1.5 s in
  Faults faults;
  ScopedFaultInjector installed(faults);
  RtRig rig(fixed_rings(), kSeconds + 1);
  for (int v = 0; v < kVoices; ++v) rig.play(static_cast<std::uint32_t>(v), *srcs[static_cast<std::size_t>(v)]);
  switch (GetParam()) {
    case Break::kReadError:
      faults.break_file(bad, cut_byte, EIO);
      break;
    case Break::kStale:  // deleted on an NFS server: the open descriptor goes stale
      faults.break_file(bad, cut_byte, ESTALE);
      break;
    case Break::kShortRead:  // the reads come back empty: the file seems to end early
      faults.break_file(bad, cut_byte, 0);
      break;
    case Break::kTruncated:
      break;
  }
  rig.start();
  rig.run_for(1.0);
  if (GetParam() == Break::kTruncated) {
    ASSERT_EQ(::truncate(bad.c_str(), cut_byte), 0) << std::strerror(errno);
  }
  rig.run_for(kSeconds - 1.0);
  const std::int64_t played = rig.finish();
  const auto ls = rig.loader.stats();
  report("broken file", rig, ls);

  const auto ended = rig.events(EventType::kVoiceEnded, 0);
  ASSERT_EQ(ended.size(), 1u) << "the broken voice did not end";
  EXPECT_EQ(ended[0]->reason, EndReason::kError);
  EXPECT_EQ(rig.drained.count(EventType::kVoiceEnded), 1u) << "another voice ended";
  EXPECT_EQ(rig.engine.metrics().voice_underruns.load(), 0u);
  if (GetParam() == Break::kReadError || GetParam() == Break::kStale) {
    EXPECT_EQ(ls.read_errors, 1u);
  } else {
    EXPECT_EQ(ls.truncated, 1u);
  }
  std::vector<const std::vector<float>*> others;
  for (const auto& f : files) others.push_back(&f);
  EXPECT_EQ(first_mismatch_with_sum(rig.out, others, 0, played), -1);
}

INSTANTIATE_TEST_SUITE_P(Kinds, BrokenFile,
                         ::testing::Values(Break::kReadError, Break::kStale, Break::kTruncated, Break::kShortRead),
                         [](const auto& info) {
                           switch (info.param) {
                             case Break::kReadError:
                               return std::string("ReadError");
                             case Break::kStale:
                               return std::string("DeletedOnNfsServer");
                             case Break::kTruncated:
                               return std::string("TruncatedOnDisk");
                             case Break::kShortRead:
                               return std::string("ShortRead");
                           }
                           return std::string("?");
                         });

// A local file deleted mid-stream keeps playing to its end (the open descriptor holds it), and
// so does every other voice: bit-exact.
TEST(Faults, LocalFileDeletedMidStreamKeepsPlaying) {
  test::TempDir dir;
  constexpr int kVoices = 4;
  std::vector<std::vector<float>> files;
  std::vector<std::unique_ptr<Source>> srcs;
  add_noise_voices(dir, "d", 0, kVoices, 3, 300, files, srcs);
  for (const auto& src : srcs) ASSERT_TRUE(src);
  RtRig rig(fixed_rings(), 4.0);
  for (int v = 0; v < kVoices; ++v) rig.play(static_cast<std::uint32_t>(v), *srcs[static_cast<std::size_t>(v)]);
  rig.start();
  rig.run_for(1.0);
  ASSERT_TRUE(std::filesystem::remove(dir.file("d0.wav")));
  rig.run_for(2.6);
  const std::int64_t played = rig.finish();
  EXPECT_EQ(rig.drained.count(EventType::kVoiceEnded), static_cast<std::size_t>(kVoices));
  for (const auto& e : rig.drained.events)
    if (e.type == EventType::kVoiceEnded) {
      EXPECT_EQ(e.reason, EndReason::kEndOfFile);
    }
  std::vector<const std::vector<float>*> all;
  for (const auto& f : files) all.push_back(&f);
  EXPECT_EQ(first_mismatch_with_sum(rig.out, all, 0, played), -1);
}

// ---------------------------------------------------------------- a starved loader

// Busy threads at the loader's priority share its CPU (all pinned to one core; the "device" runs
// on the other). The loader is late but the rings absorb it: no callback waits, underruns (if
// any) are counted and the voices recover; the figures are printed.
TEST(Faults, LoaderStarvedOfCpuDegradesGracefully) {
  const long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  if (cpus < 2) GTEST_SKIP() << "needs two CPUs (one for the device, one for the loader and its competitors)";
  test::TempDir dir;
  constexpr int kVoices = 16;
  constexpr double kSeconds = 6.0;
  std::vector<std::vector<float>> files;
  std::vector<std::unique_ptr<Source>> srcs;
  add_noise_voices(dir, "c", 0, kVoices, 10, 400, files, srcs);
  for (const auto& src : srcs) ASSERT_TRUE(src);
  RtRig rig(fixed_rings(), kSeconds + 1);
  rig.audio_cpu = 1;
  cpu_set_t core0;
  CPU_ZERO(&core0);
  CPU_SET(0, &core0);
  ASSERT_EQ(pthread_setaffinity_np(rig.loader.native_handle(), sizeof(core0), &core0), 0);
  std::atomic<bool> busy_stop{false};
  std::vector<std::thread> busy;
  constexpr int kBusy = 8;
  for (int i = 0; i < kBusy; ++i) {
    busy.emplace_back([&] {
      pthread_setaffinity_np(pthread_self(), sizeof(core0), &core0);
      volatile std::uint64_t x = 0;
      while (!busy_stop.load(std::memory_order_relaxed)) x = x + 1;
    });
  }
  for (int v = 0; v < kVoices; ++v) rig.play(static_cast<std::uint32_t>(v), *srcs[static_cast<std::size_t>(v)]);
  rig.start();
  rig.run_for(kSeconds);
  busy_stop = true;
  for (auto& t : busy) t.join();
  const std::int64_t played = rig.finish();
  const auto ls = rig.loader.stats();
  report("loader starved by 8 busy threads on its core", rig, ls);

  EXPECT_LT(rig.process_max_ns, kProcessBoundNs) << "the callback waited for the loader";
  EXPECT_EQ(rig.drained.count(EventType::kVoiceEnded), 0u) << "a starved loader must not end voices";
  EXPECT_EQ(rig.engine.metrics().voice_underruns.load(), rig.drained.count(EventType::kVoiceUnderrun));
  // Without underruns the output is the exact mix; with some, they came back (none ended, and
  // the last second has the mix's level).
  std::vector<const std::vector<float>*> all;
  for (const auto& f : files) all.push_back(&f);
  if (rig.engine.metrics().voice_underruns.load() == 0) {
    EXPECT_EQ(first_mismatch_with_sum(rig.out, all, 0, played), -1);
  } else {
    double level = 0;
    for (std::int64_t f = played - kRate; f < played; ++f) level += std::abs(rig.out[static_cast<std::size_t>(2 * f)]);
    EXPECT_GT(level / kRate, 0.005) << "the voices did not recover";
  }
}

// ---------------------------------------------------------------- adaptive prefetch

LoaderConfig adaptive_rings() {
  LoaderConfig c = fixed_rings();
  c.ring_frames = 2 * kRate;       // capacity: room to grow within
  c.ring_min_frames = kRate / 10;  // 100 ms
  c.ring_max_frames = 4 * kRate;
  c.shrink_hold_s = 0.5;  // short, so the test sees it shrink
  c.shrink_tau_s = 2.0;
  return c;
}

// Steady disk: targets shrink toward the floor. Then every read takes 60 ms (8 voices: a loader
// round takes ≈ 0.5 s, far beyond a 100 ms target): the rings run dry, the targets grow, and the
// underruns stop. Then the disk is fast again: the targets shrink back — slowly.
TEST(Prefetch, RingsGrowUnderJitterUnderrunsStopAndTheyShrinkBackSlowly) {
  test::TempDir dir;
  constexpr int kVoices = 8;
  std::vector<std::unique_ptr<Source>> srcs;
  for (int v = 0; v < kVoices; ++v) {
    const auto path = dir.file("p" + std::to_string(v) + ".wav");
    make_noise_wav(path, static_cast<std::int64_t>(30 * kRate), 500 + v);
    srcs.push_back(load(path));
    ASSERT_TRUE(srcs.back());
  }
  Faults faults;
  ScopedFaultInjector installed(faults);
  RtRig rig(adaptive_rings(), 22);
  for (int v = 0; v < kVoices; ++v) rig.play(static_cast<std::uint32_t>(v), *srcs[static_cast<std::size_t>(v)]);
  rig.start();

  // 1. Steady: from 2 s down toward the floor.
  rig.run_for(4.0);
  const auto steady = rig.loader.stats();
  report("prefetch, steady", rig, steady);
  EXPECT_LT(steady.target_ms_max, 1000.0) << "targets did not shrink on a steady disk";
  EXPECT_EQ(rig.engine.metrics().voice_underruns.load(), 0u);

  // 2. Slow reads: they grow, and the underruns stop.
  faults.every_read_ns = 60'000'000;
  rig.run_for(4.0);
  const auto growing = rig.loader.stats();
  const std::uint64_t underruns_early = rig.engine.metrics().voice_underruns.load();
  rig.run_for(5.0);
  const auto grown = rig.loader.stats();
  const std::uint64_t underruns_late = rig.engine.metrics().voice_underruns.load() - underruns_early;
  report("prefetch, 60 ms reads, first 4 s", rig, growing);
  report("prefetch, 60 ms reads, next 5 s", rig, grown);
  EXPECT_GT(grown.target_ms_min, steady.target_ms_max) << "the targets did not grow";
  EXPECT_GT(grown.target_grows, steady.target_grows);
  EXPECT_EQ(underruns_late, 0u) << "still underrunning after the rings grew (" << underruns_early << " before)";

  // 3. Fast again: shrinking, but slowly (time constant 2 s after a 0.5 s hold here).
  faults.every_read_ns = 0;
  rig.run_for(1.0);
  const auto after1 = rig.loader.stats();
  rig.run_for(6.0);
  const auto after7 = rig.loader.stats();
  rig.finish();
  report("prefetch, fast again, +1 s", rig, after1);
  report("prefetch, fast again, +7 s", rig, after7);
  EXPECT_GT(after1.target_ms_mean, 0.6 * grown.target_ms_mean) << "shrank too fast";
  EXPECT_LT(after7.target_ms_mean, 0.5 * grown.target_ms_mean) << "did not shrink back";
  EXPECT_EQ(rig.drained.count(EventType::kVoiceEnded), 0u);
  EXPECT_LT(rig.process_max_ns, kProcessBoundNs);
}

// A stream created once its source's reads are known to be slow gets a larger ring than
// --ring-ms; on a steady disk, exactly --ring-ms (the memory a fixed ring took).
TEST(Prefetch, NewStreamsOfAJitterySourceGetLargerRings) {
  test::TempDir dir;
  const auto path = dir.file("j.wav");
  make_noise_wav(path, static_cast<std::int64_t>(30 * kRate), 600);
  auto src = load(path);
  ASSERT_TRUE(src);
  LoaderConfig lc = adaptive_rings();
  lc.ring_frames = kRate / 2;
  Faults faults;
  ScopedFaultInjector installed(faults);
  RtRig rig(lc, 12);
  rig.play(0, *src);
  rig.start();
  rig.run_for(1.0);
  EXPECT_EQ(rig.loader.stats().ring_bytes, static_cast<std::uint64_t>(kRate / 2) * 4)
      << "steady: --ring-ms (a 16-bit file: an int16 ring, 4 bytes a frame)";
  faults.every_read_ns = 700'000'000;
  rig.run_for(4.0);
  ASSERT_GT(src->jitter->target_frames.load(), kRate / 2) << "the source's target did not outgrow its ring";
  std::string err;
  Stream* s = rig.loader.create_stream(*src, src->view.memory_frames, false, err);
  ASSERT_NE(s, nullptr) << err;
  EXPECT_GT(s->ring().capacity_frames(), static_cast<std::size_t>(kRate / 2));
  EXPECT_LE(s->ring().capacity_frames(), static_cast<std::size_t>(lc.ring_max_frames));
  rig.loader.release(s);
  rig.finish();
  report("jittery source", rig, rig.loader.stats());
}

// A ring that keeps running dry at its full size (a disk slower than any ring this stream has
// can cover) logged "prefetch: … ring target 500 → 500 ms (it ran dry; …)" once a second for as
// long as the disk stayed slow (an outside test pass: a Pi's log filling with it over weeks).
// A prefetch line says a change of target; a dry ring whose target cannot move is said once (its
// underruns are counted and reported as such).
TEST(Prefetch, ARingThatRunsDryAtItsFullSizeIsLoggedOnceNotEverySecond) {
  test::TempDir dir;
  const auto path = dir.file("d.wav");
  make_noise_wav(path, static_cast<std::int64_t>(30 * kRate), 601);
  auto src = load(path);
  ASSERT_TRUE(src);
  LoaderConfig lc = adaptive_rings();
  lc.ring_frames = kRate / 2;
  Faults faults;
  ScopedFaultInjector installed(faults);
  test::LogCapture log;
  RtRig rig(lc, 12);
  rig.play(0, *src);
  rig.start();
  rig.run_for(1.0);
  faults.every_read_ns = 700'000'000;
  rig.run_for(6.0);
  rig.finish();
  const auto ls = rig.loader.stats();
  report("dry at full size", rig, ls);
  ASSERT_GE(ls.rings_ran_dry, 3u) << "the test needs a ring that runs dry again and again";
  std::istringstream lines(log.text());
  int prefetch = 0, unmoved = 0;
  for (std::string line; std::getline(lines, line);) {
    const auto at = line.find("ring target ");
    if (line.find("prefetch:") == std::string::npos || at == std::string::npos) continue;
    ++prefetch;
    double from = 0, to = 0;
    if (std::sscanf(line.c_str() + at, "ring target %lf → %lf ms", &from, &to) == 2 && from == to) ++unmoved;
  }
  EXPECT_LE(unmoved, 1) << log.text();
  EXPECT_LE(prefetch, 3) << "over 6 s of a slow disk, with " << ls.rings_ran_dry << " dry rings:\n" << log.text();
}

}  // namespace
}  // namespace stemd::io
