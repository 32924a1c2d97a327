// Streaming from real files: io::load_source + io::LoaderThread + engine::Engine.
//
// Threads: the test thread is [control] and [audio] (it calls process() through
// test::process_fed, which waits — bounded — for the loader exactly like the render backend);
// the LoaderThread is the real [loader]. Fixtures are 16-bit WAVs written here, so "equals the
// file" is bit-exact: stemd decodes 16-bit PCM as x / 32768.
#include "io/loader_thread.hpp"
#include "io/source.hpp"
#include "stemd/engine.hpp"
#include "stemd/stream.hpp"
#include "common/engine_driver.hpp"
#include "common/log_capture.hpp"

#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <pthread.h>
#include <sched.h>
#include <sndfile.h>
#include <sys/resource.h>

#include <malloc.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <ctime>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <mutex>
#include <sstream>
#include <thread>
#include <vector>

namespace stemd::io {
namespace {

using engine::Command;
using engine::CommandType;
using engine::EndReason;
using engine::Engine;
using engine::EngineConfig;
using engine::EventType;
using test::Drained;

LoaderConfig small_loader() {
  LoaderConfig c;
  c.ring_frames = 6'000;
  c.chunk_frames = 1'024;
  c.prefill_frames = 2'048;
  c.wake_timeout_ms = 10;
  return c;
}

// Writes interleaved stereo 16-bit `pcm` as a 48 kHz file of `major` (SF_FORMAT_WAV, ...), with
// a comment — a chunk written after the samples — when one is given.
void write_stereo16(const std::string& path, int major, const std::vector<short>& pcm, const char* comment = nullptr) {
  SF_INFO wi{};
  wi.samplerate = 48'000;
  wi.channels = 2;
  wi.format = major | SF_FORMAT_PCM_16;
  SNDFILE* w = sf_open(path.c_str(), SFM_WRITE, &wi);
  ASSERT_NE(w, nullptr) << sf_strerror(nullptr);
  const auto frames = static_cast<sf_count_t>(pcm.size() / 2);
  ASSERT_EQ(sf_writef_short(w, pcm.data(), frames), frames);
  if (comment != nullptr) sf_set_string(w, SF_STR_COMMENT, comment);
  sf_close(w);
}

LoadOptions streamed_opts() {
  LoadOptions o;
  o.output_rate = 48'000;
  o.preload_limit_bytes = 0;  // always stream
  o.head_frames = 1'000;
  return o;
}

EngineConfig engine_config() {
  EngineConfig c;
  c.max_block_frames = 4'096;
  c.max_voices = 32;
  return c;
}

std::unique_ptr<Source> load(const std::string& path, const LoadOptions& o = streamed_opts()) {
  LoadResult r = load_source(path, "t", o);
  EXPECT_TRUE(r.source) << r.error;
  return std::move(r.source);
}

// An engine fed by a running loader, as in the daemon.
struct Rig {
  Engine engine;
  LoaderThread loader;
  Drained drained;
  bool always_fed = true;  // every block found its streams ready (within the wait limit)

  explicit Rig(const LoaderConfig& lc = small_loader()) : engine(engine_config()), loader(lc) {
    engine.set_loader_wakeup(&LoaderThread::wake_cb, &loader);
    loader.start();
  }
  ~Rig() { loader.stop(); }  // deletes the streams still registered; the engine never frees them

  // Plays `src` from `position` on voice 0 (a stream for a streamed source, as the controller).
  void play(const Source& src, std::int64_t position, bool loop) {
    std::string err;
    Stream* s =
        src.streamed() ? loader.create_stream(src, std::max(position, src.view.memory_frames), loop, err) : nullptr;
    ASSERT_TRUE(s != nullptr || !src.streamed()) << err;
    ASSERT_TRUE(engine.send(test::play_command(0, 1, &src.view, s, position, 1.0f, loop)));
  }

  // Renders up to `max_frames` in a cycle of block sizes; stops early once the voice has ended
  // (and `until_end`). Hands retired streams back to the loader like the controller does.
  std::vector<float> render(std::int64_t max_frames, bool until_end = true) {
    static constexpr std::uint32_t kBlocks[] = {256, 1'000, 17, 4'096, 512, 333};
    std::vector<float> out(static_cast<std::size_t>(max_frames) * 2);
    std::int64_t done = 0;
    for (std::size_t i = 0; done < max_frames; ++i) {
      const auto n = static_cast<std::uint32_t>(std::min<std::int64_t>(kBlocks[i % 6], max_frames - done));
      always_fed &= test::process_fed(engine, loader, out.data() + done * 2, n);
      done += n;
      drained.drain(engine, &loader);
      if (until_end && engine.active_voices() == 0 && drained.find(EventType::kVoiceEnded)) break;
    }
    out.resize(static_cast<std::size_t>(done) * 2);
    return out;
  }

  const engine::Event* ended() const { return drained.find(EventType::kVoiceEnded); }
};

// Compares out[0..n) frames with want[from..from+n) frames; returns the first bad frame or -1.
std::int64_t mismatch_from(const std::vector<float>& out, std::int64_t out_from, const std::vector<float>& want,
                           std::int64_t want_from, std::int64_t n) {
  for (std::int64_t f = 0; f < n; ++f)
    for (int ch = 0; ch < 2; ++ch)
      if (out[static_cast<std::size_t>((out_from + f) * 2 + ch)] !=
          want[static_cast<std::size_t>((want_from + f) * 2 + ch)])
        return out_from + f;
  return -1;
}

// ---------------------------------------------------------------- playing

TEST(Loader, StreamedFilePlaysToTheEndBitExact) {
  test::TempDir dir;
  const std::int64_t total = 100'003;  // not a multiple of any chunk or block
  const auto file = test::make_wav(dir.file("a.wav"), total, 1);
  auto src = load(dir.file("a.wav"));
  ASSERT_TRUE(src);
  ASSERT_TRUE(src->streamed());
  EXPECT_EQ(src->view.memory_frames, 1'000);
  EXPECT_EQ(src->total_frames(), total);

  Rig rig;
  rig.play(*src, 0, false);
  const auto out = rig.render(total + 20'000);
  EXPECT_TRUE(rig.always_fed) << "the loader did not keep up within the wait limit";
  ASSERT_GE(out.size(), static_cast<std::size_t>(total) * 2);
  EXPECT_EQ(mismatch_from(out, 0, file, 0, total), -1);
  for (std::size_t i = static_cast<std::size_t>(total) * 2; i < out.size(); ++i) ASSERT_EQ(out[i], 0.0f);

  const auto* ended = rig.ended();
  ASSERT_NE(ended, nullptr) << "the voice never ended";
  EXPECT_EQ(ended->reason, EndReason::kEndOfFile);
  EXPECT_EQ(rig.drained.count(EventType::kVoiceUnderrun), 0u);
  ASSERT_EQ(rig.drained.retired.size(), 1u);
  EXPECT_NE(rig.drained.retired[0].stream, nullptr);
  EXPECT_TRUE(rig.drained.retired[0].voice_ended);
  // The released stream is dropped by the loader.
  EXPECT_TRUE(test::wait_for([&] {
    rig.loader.wake();
    return rig.loader.stats().streams == 0;
  }));
  const auto st = rig.loader.stats();
  EXPECT_EQ(st.read_errors, 0u);
  EXPECT_EQ(st.truncated, 0u);
  EXPECT_LE(st.frames_read, static_cast<std::uint64_t>(total));
}

// Streaming a file does not write its access time (O_NOATIME, where the kernel lets us: our own
// file, or CAP_FOWNER): each read otherwise checks it (touch_atime, ~2 % of the daemon's CPU at
// 1,024 voices) and, on an SD card, writes it. The premise is checked last: a plain read() of
// the same file does update it on this mount (else the case says nothing and is skipped).
TEST(Loader, StreamingAFileLeavesItsAccessTimeAlone) {
  test::TempDir dir;
  const std::int64_t total = 20'000;
  test::make_wav(dir.file("a.wav"), total, 1);
  const std::string path = dir.file("a.wav");
  const auto atime_of = [&] {
    struct stat st {};
    EXPECT_EQ(::stat(path.c_str(), &st), 0);
    return static_cast<std::int64_t>(st.st_atim.tv_sec);
  };
  const auto age = [&] {  // three days old: relatime updates it on the next read
    const timespec times[2] = {{::time(nullptr) - 3 * 86'400, 0}, {0, UTIME_OMIT}};
    ASSERT_EQ(::utimensat(AT_FDCWD, path.c_str(), times, 0), 0);
  };
  age();
  const std::int64_t old = atime_of();
  {
    auto src = load(path);
    ASSERT_TRUE(src);
    ASSERT_TRUE(src->streamed());
    Rig rig;
    rig.play(*src, 0, false);
    rig.render(total + 4'000);
    ASSERT_NE(rig.ended(), nullptr) << "the voice never ended";
    EXPECT_GT(rig.loader.stats().frames_read, 0u);
  }
  EXPECT_EQ(atime_of(), old) << "streaming the file updated its access time";

  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  char buf[4096];
  EXPECT_GT(::read(fd, buf, sizeof buf), 0);
  ::close(fd);
  if (atime_of() == old) GTEST_SKIP() << "this mount does not update access times on read (noatime)";
}

// A refill that reaches the end of a looping file wraps and reads on from the loop start in the
// same turn, before the loader moves to the next needy ring: sent to the back of the pass, the
// rest waited for every other ring's read — 8,192 voices looping in step all ran dry at the wrap.
// Reads are recorded (a FaultInjector that only watches) while a short looping file plays beside
// three long ones at the same fill; at every wrap the read from the loop start follows the read
// that reached the end, with no other file's read between.
TEST(Loader, AReadThatWrapsALoopGoesOnBeforeOtherRings) {
  struct Watch : FaultInjector {
    std::mutex m;
    std::vector<std::pair<std::string, std::int64_t>> reads;  // path, byte offset
    ReadFault on_read(const std::string& path, std::int64_t offset, std::int64_t) noexcept override {
      std::lock_guard lock(m);
      reads.emplace_back(path, offset);
      return {};
    }
  } watch;
  test::TempDir dir;
  test::make_wav(dir.file("short.wav"), 9'000, 1);
  for (int i = 0; i < 3; ++i) test::make_wav(dir.file("long" + std::to_string(i) + ".wav"), 200'000, 2 + i);
  std::vector<std::unique_ptr<Source>> srcs;
  srcs.push_back(load(dir.file("short.wav")));
  for (int i = 0; i < 3; ++i) srcs.push_back(load(dir.file("long" + std::to_string(i) + ".wav")));
  for (const auto& s : srcs) ASSERT_TRUE(s && s->streamed());

  Rig rig;
  for (std::uint32_t v = 0; v < 4; ++v) {
    std::string err;
    Stream* st = rig.loader.create_stream(*srcs[v], srcs[v]->view.memory_frames, true, err);
    ASSERT_NE(st, nullptr) << err;
    ASSERT_TRUE(rig.engine.send(test::play_command(v, 1, &srcs[v]->view, st, 0, 0.25f, true)));
  }
  set_fault_injector(&watch);
  std::vector<float> out(2'048);
  for (int b = 0; b < 120; ++b) {  // 120 blocks of 1,024 frames: the short file wraps 13 times
    EXPECT_TRUE(test::process_fed(rig.engine, rig.loader, out.data(), 1'024)) << "block " << b;
    rig.drained.drain(rig.engine, &rig.loader);
  }
  set_fault_injector(nullptr);
  std::lock_guard lock(watch.m);
  const std::string a = dir.file("short.wav");
  int wraps = 0;
  std::int64_t last_a = -1;  // index in `reads` of the short file's last read
  for (std::size_t i = 0; i < watch.reads.size(); ++i) {
    if (watch.reads[i].first != a) continue;
    if (last_a >= 0 && watch.reads[i].second < watch.reads[static_cast<std::size_t>(last_a)].second) {
      ++wraps;  // back to the loop start
      EXPECT_EQ(i, static_cast<std::size_t>(last_a) + 1)
          << "wrap " << wraps << ": " << (i - static_cast<std::size_t>(last_a) - 1)
          << " other reads between the read that reached the end and the one from the loop start";
    }
    last_a = static_cast<std::int64_t>(i);
  }
  EXPECT_GE(wraps, 10);
  EXPECT_EQ(rig.drained.count(EventType::kVoiceUnderrun), 0u);
}

// An adaptive ring is refilled when it is down to half (its low-water mark, with the estimate
// of what it must hold below that), in one read of its whole free span: few large reads, not
// one per chunk of deficit. Played at 4× real time in 1024-frame blocks, the loader woken after
// each, as the audio thread does; still bit-exact.
TEST(Loader, AdaptiveRingIsRefilledFromHalfInOneRead) {
  test::TempDir dir;
  const std::int64_t total = 120'000;
  const auto file = test::make_wav(dir.file("a.wav"), total, 1);
  auto src = load(dir.file("a.wav"));
  ASSERT_TRUE(src);
  LoaderConfig lc = small_loader();
  lc.ring_frames = 24'000;     // the ring: 0.5 s
  lc.ring_min_frames = 6'000;  // adaptive: targets between 6,000 and 48,000 frames
  lc.ring_max_frames = 48'000;
  Rig rig(lc);
  rig.play(*src, 0, false);
  const std::int64_t frames = 1'024 * (total / 1'024 + 4);
  std::vector<float> out(static_cast<std::size_t>(frames) * 2);
  std::int64_t done = 0;
  while (done < frames) {
    rig.always_fed &= test::process_fed(rig.engine, rig.loader, out.data() + done * 2, 1'024);
    done += 1'024;
    rig.drained.drain(rig.engine, &rig.loader);
    timespec ts{0, 5'333'000};  // a 1024-frame period at 48 kHz is 21.3 ms
    nanosleep(&ts, nullptr);
  }
  EXPECT_TRUE(rig.always_fed);
  EXPECT_EQ(mismatch_from(out, 0, file, 0, total), -1);
  EXPECT_EQ(rig.drained.count(EventType::kVoiceUnderrun), 0u);
  const auto st = rig.loader.stats();
  ASSERT_GT(st.reads, 0u);
  // Every read but the last (the file's end) brings ≥ half the 24,000-frame ring; chunk-sized
  // refills (a deficit of 512 frames was enough) took one read a block or more.
  EXPECT_GE(st.frames_read / st.reads, 8'000u) << st.reads << " reads, " << st.frames_read << " frames";
  EXPECT_LE(st.reads, static_cast<std::uint64_t>(total / 12'000 + 4));
}

// Doorbells (issue 15, fourth round): a pass looks only at the rings whose consumer rang, not at
// every ring — at thousands of voices each look is a cache miss, a third of the loader's CPU.
// 24 voices play 24 different files through the adaptive rings, always fed and with no underrun,
// while the loader looks at a ring a few times per refill instead of at every ring in every pass
// (before: at least passes × streams looks). Bit-exactness through the doorbells: the other
// Loader tests (every stream has one).
TEST(Loader, PassesLookOnlyAtRingsWhoseDoorbellRang) {
  test::TempDir dir;
  constexpr int kVoices = 24;
  const std::int64_t total = 60'000;
  std::vector<std::unique_ptr<Source>> srcs;
  for (int i = 0; i < kVoices; ++i) {
    const std::string path = dir.file("v" + std::to_string(i) + ".wav");
    test::make_wav(path, total, static_cast<std::uint32_t>(40 + i));
    srcs.push_back(load(path));
    ASSERT_TRUE(srcs.back());
  }
  LoaderConfig lc = small_loader();
  lc.ring_frames = 12'000;
  lc.ring_min_frames = 6'000;
  lc.ring_max_frames = 24'000;
  Rig rig(lc);
  for (int i = 0; i < kVoices; ++i) {
    std::string err;
    Stream* s = rig.loader.create_stream(*srcs[i], srcs[i]->view.memory_frames, false, err);
    ASSERT_NE(s, nullptr) << err;
    ASSERT_TRUE(rig.engine.send(test::play_command(static_cast<engine::VoiceId>(i), 1, &srcs[i]->view, s, 0)));
  }
  const std::int64_t frames = 1'024 * (total / 1'024);
  std::vector<float> out(static_cast<std::size_t>(frames) * 2);
  const auto passes0 = rig.loader.stats().passes;
  for (std::int64_t done = 0; done < frames; done += 1'024) {
    rig.always_fed &= test::process_fed(rig.engine, rig.loader, out.data() + done * 2, 1'024);
    rig.drained.drain(rig.engine, &rig.loader);
    timespec ts{0, 2'000'000};
    nanosleep(&ts, nullptr);
  }
  EXPECT_TRUE(rig.always_fed);
  EXPECT_EQ(rig.drained.count(EventType::kVoiceUnderrun), 0u);
  rig.loader.wait_idle();
  timespec settle{0, 120'000'000};  // one more adapt sweep publishes the counters
  nanosleep(&settle, nullptr);
  const auto st = rig.loader.stats();
  const std::uint64_t passes = st.passes - passes0;
  EXPECT_GT(st.bells, 0u);
  EXPECT_GT(st.reads, static_cast<std::uint64_t>(kVoices));
  // What a pass looks at, apart from the every-100-ms sweep (driven by time, not by passes): the
  // rings whose doorbell rang, those it read in the round before (a read may stop short), and the
  // new ones. Before the doorbells every pass also looked at every quiet ring: 1,680 looks for
  // 648 bells and 624 reads in 71 passes. A count per pass is no measure: a slow run (TSan) has
  // few passes, each with more rings to refill (CI: 589 looks in 71 passes failed "< passes × 8").
  ASSERT_LE(st.sweep_looks, st.ring_looks);
  EXPECT_LE(st.ring_looks - st.sweep_looks, st.bells + st.reads + kVoices)
      << st.ring_looks << " looks (" << st.sweep_looks << " in sweeps) in " << passes << " passes, " << st.reads
      << " reads, " << st.bells << " bells";
}

// A 16-bit stereo file's head is held as the file's int16 samples (half the bytes of floats)
// and plays exactly as the float head did: in place at rate 1 (the mixer converts x / 32768),
// and through a resampler (a file at another rate: converted into its input scratch).
TEST(Loader, Int16HeadHoldsHalfTheBytesAndPlaysAsTheFloatHead) {
  test::TempDir dir;
  const std::int64_t total = 30'011;
  for (const int rate : {48'000, 44'100}) {
    SCOPED_TRACE(rate);
    const std::string path = dir.file("h" + std::to_string(rate) + ".wav");
    test::write_wav16(path, test::make_pcm16(total, 2, 21), 2, rate);
    std::vector<float> outs[2];
    for (const bool int16 : {true, false}) {
      LoadOptions o = streamed_opts();
      o.head_frames = 4'000;  // several blocks, so the head-to-ring seam falls mid-block
      o.int16_heads = int16;
      auto src = load(path, o);
      ASSERT_TRUE(src);
      ASSERT_TRUE(src->streamed());
      EXPECT_EQ(src->view.memory_frames, 4'000);
      EXPECT_EQ(src->view.frames16 != nullptr, int16);
      EXPECT_EQ(src->view.frames == nullptr, int16);
      EXPECT_EQ(src->memory_bytes(), int16 ? 4'000u * 4 : 4'000u * 8) << "int16: 4 bytes a frame";
      Rig rig;
      rig.play(*src, 0, false);
      outs[int16 ? 0 : 1] = rig.render(total + 10'000);
      EXPECT_TRUE(rig.always_fed);
      EXPECT_EQ(rig.drained.count(EventType::kVoiceUnderrun), 0u);
    }
    ASSERT_EQ(outs[0].size(), outs[1].size());
    EXPECT_EQ(test::first_mismatch(outs[0].data(), outs[1].data(), outs[0].size()), -1);
    if (rate == 48'000) {  // the bit-exact path: the file itself
      const auto want = test::to_stereo_float(test::make_pcm16(total, 2, 21), 2);
      EXPECT_EQ(mismatch_from(outs[0], 0, want, 0, total), -1);
    } else {
      double energy = 0;
      for (float x : outs[0]) energy += static_cast<double>(x) * x;
      EXPECT_GT(energy, 1.0) << "the resampled voice played";
    }
  }
}

// A plain PCM file's reader (libsndfile's state for it, our wrapper) is charged about what it
// really holds — the heap grows by that for each one opened and read from — not a flat 128 KiB
// (≈ 12× too much: thousands of streaming voices were refused memory they never used).
TEST(Loader, PcmReaderChargesWhatItReallyHolds) {
#if STEMD_TEST_SANITIZED
  GTEST_SKIP() << "the sanitizer's allocator: mallinfo2 says nothing about ours";
#endif
  test::TempDir dir;
  test::make_wav(dir.file("r.wav"), 4'800, 7);
  std::string err;
  auto fh = FileHandle::open(dir.file("r.wav"), err);
  ASSERT_TRUE(fh) << err;
  auto budget = std::make_shared<MemoryBudget>();
  SoundFile::Limits lim;
  lim.budget = budget;
  lim.i16_reads_only = true;  // as a stream of a 16-bit stereo file opens it
  constexpr int kReaders = 200;
  std::vector<std::unique_ptr<SoundFile>> files;
  files.reserve(kReaders);
  std::vector<std::int16_t> buf(2 * 256);
  malloc_trim(0);
  const auto heap0 = static_cast<std::int64_t>(mallinfo2().uordblks);
  for (int i = 0; i < kReaders; ++i) {
    files.push_back(std::make_unique<SoundFile>());
    ASSERT_TRUE(files.back()->open(fh, err, lim)) << err;
    ASSERT_EQ(files.back()->read_stereo_i16(buf.data(), 256), 256);
  }
  const double real = static_cast<double>(static_cast<std::int64_t>(mallinfo2().uordblks) - heap0) / kReaders;
  const double charged = static_cast<double>(budget->held()) / kReaders;
  std::printf("per reader: %.0f bytes held, %.0f charged\n", real, charged);
  EXPECT_GE(charged, real);
  EXPECT_LE(charged, 2.0 * real);
}

// A ring's reader of a 16-bit stereo little-endian WAV (and W64, RF64, WAVEX) reads the file's
// bytes itself — one preadv() per refill, both pieces of the ring's free span, where libsndfile
// took a call (and a pread) per piece plus its own work per call (perf at 1024 voices: the
// per-read work around the copy was a fifth of the daemon). What it reads must be what libsndfile
// decodes, frame for frame: from the start, after a seek, in pieces of any size, and not one frame
// past the data chunk (a LIST chunk follows it here). An AIFF (big-endian samples) stays on
// libsndfile.
TEST(Loader, RawReadsAreLibsndfilesFramesInOneCallPerRefill) {
  struct Count : FaultInjector {
    std::atomic<int> reads{0};
    ReadFault on_read(const std::string&, std::int64_t, std::int64_t) noexcept override {
      reads.fetch_add(1);
      return {};
    }
  };
  test::TempDir dir;
  constexpr std::int64_t kFrames = 20'011;
  std::vector<short> pcm(static_cast<std::size_t>(kFrames) * 2);
  for (std::size_t i = 0; i < pcm.size(); ++i) pcm[i] = static_cast<short>((i * 7919 + (i >> 3) * 31) & 0xffff);
  for (int major : {SF_FORMAT_WAV, SF_FORMAT_W64, SF_FORMAT_RF64, SF_FORMAT_WAVEX, SF_FORMAT_AIFF}) {
    SCOPED_TRACE(major);
    const std::string path = dir.file("raw" + std::to_string(major));
    ASSERT_NO_FATAL_FAILURE(write_stereo16(path, major, pcm, "a chunk after the samples"));

    std::string err;
    auto fh = FileHandle::open(path, err);
    ASSERT_TRUE(fh) << err;
    SoundFile raw;
    SoundFile::Limits lim;
    lim.i16_reads_only = true;  // as a ring's reader opens it
    ASSERT_TRUE(raw.open(fh, err, lim)) << err;
    EXPECT_EQ(raw.reads_raw(), major != SF_FORMAT_AIFF);
    SoundFile lib;  // libsndfile's reading of the same file
    ASSERT_TRUE(lib.open(fh, err)) << err;
    EXPECT_FALSE(lib.reads_raw());

    Count count;
    ScopedFaultInjector watch(count);
    // (Room for a whole last request: libsndfile zero-fills what it was asked for and did not read.)
    std::vector<std::int16_t> a(static_cast<std::size_t>(kFrames + 4096) * 2), b(a.size());
    // Pieces of awkward sizes, the last read asking for more than is left.
    std::int64_t at = 0;
    int calls = 0;
    for (std::int64_t k = 1; at < kFrames + 7; k = k * 3 + 5) {
      const std::int64_t n1 = k % 1500 + 1, n2 = (k * 7) % 900;
      const std::int64_t got = raw.read_stereo_i16(a.data() + 2 * at, n1, a.data() + 2 * (at + n1), n2);
      ASSERT_EQ(got, std::min(n1 + n2, kFrames - at)) << "at " << at;
      if (got == 0) break;  // (at the end: nothing asked of the file)
      ++calls;
      at += got;
    }
    EXPECT_EQ(at, kFrames);
    if (raw.reads_raw()) {
      EXPECT_EQ(count.reads.load(), calls) << "one read per call, both pieces";
    }
    ASSERT_EQ(lib.read_stereo_i16(b.data(), kFrames + 64), kFrames);
    EXPECT_EQ(std::memcmp(a.data(), b.data(), static_cast<std::size_t>(kFrames) * 4), 0);
    EXPECT_EQ(std::memcmp(a.data(), pcm.data(), static_cast<std::size_t>(kFrames) * 4), 0);
    // A seek, as a loop's wrap or a play from a position does.
    ASSERT_TRUE(raw.seek(12'345));
    ASSERT_EQ(raw.read_stereo_i16(a.data(), 100, nullptr, 0), 100);
    EXPECT_EQ(std::memcmp(a.data(), pcm.data() + 2 * 12'345, 400), 0);
    EXPECT_FALSE(raw.seek(kFrames + 1));
  }
}

// A FLAC reader holds libFLAC's decoded block, one int32 per sample of every channel, and the
// residual beside it, besides libsndfile's copy: an 8-channel FLAC in 65,535-frame blocks holds
// ≈ 4 MB per open reader, and was charged the flat 128 KiB of any compressed format — 200 voices
// of a 3 KB file made stemd resident at 908 MB with 115 MB "held" of a 256 MB budget. Its reader is
// now charged from the block size its STREAMINFO declares.
TEST(Loader, FlacReaderChargesTheBlocksItsHeaderDeclares) {
#if STEMD_TEST_SANITIZED
  GTEST_SKIP() << "the sanitizer's allocator: mallinfo2 says nothing about ours";
#endif
  test::TempDir dir;
  test::write_constant_flac(dir.file("w.flac"), 10 * 65535, 8, 65535);
  std::string err;
  auto fh = FileHandle::open(dir.file("w.flac"), err);
  ASSERT_TRUE(fh) << err;
  auto budget = std::make_shared<MemoryBudget>();
  SoundFile::Limits lim;
  lim.budget = budget;
  lim.max_read_frames = 19200;  // as a stream's reader: a ring's worth per read
  constexpr int kReaders = 8;
  std::vector<std::unique_ptr<SoundFile>> files;
  std::vector<float> buf(2 * 4096);
  malloc_trim(0);
  const auto heap = [] {
    const struct mallinfo2 m = mallinfo2();
    return static_cast<std::int64_t>(m.uordblks + m.hblkhd);  // libFLAC's blocks are mmapped
  };
  const std::int64_t heap0 = heap();
  for (int i = 0; i < kReaders; ++i) {
    files.push_back(std::make_unique<SoundFile>());
    ASSERT_TRUE(files.back()->open(fh, err, lim)) << err;
    ASSERT_EQ(files.back()->read_stereo(buf.data(), 4096), 4096);
  }
  const double real = static_cast<double>(heap() - heap0) / kReaders;
  const double charged = static_cast<double>(budget->held()) / kReaders;
  std::printf("per 8-channel FLAC reader (65,535-frame blocks): %.0f bytes held, %.0f charged\n", real, charged);
  EXPECT_GE(charged, real);
  EXPECT_LE(charged, 2.0 * real);
}

// What a stream of a 16-bit stereo file holds is charged to the budget as it is: its int16 ring
// and its reader (16 KiB for a plain PCM file), no decode scratch — it reads straight into the ring
// and never allocates one (before: a scratch of the ring's size was charged and never used).
TEST(Loader, Int16StreamChargesItsRingAndNoDecodeScratch) {
  test::TempDir dir;
  test::make_wav(dir.file("c.wav"), 40'000, 5);
  test::make_wav(dir.file("m.wav"), 40'000, 6, 1);  // mono: decoded through the scratch, charged
  for (const bool stereo : {true, false}) {
    SCOPED_TRACE(stereo ? "stereo" : "mono");
    auto src = load(dir.file(stereo ? "c.wav" : "m.wav"));
    ASSERT_TRUE(src);
    Rig rig;
    const std::int64_t before = src->budget->held();
    std::string err;
    Stream* s = rig.loader.create_stream(*src, src->view.memory_frames, false, err);
    ASSERT_NE(s, nullptr) << err;
    const auto ring = static_cast<std::int64_t>(s->ring().capacity_bytes());
    const std::int64_t scratch = stereo ? 0 : static_cast<std::int64_t>(s->ring().capacity_frames()) * 2;
    EXPECT_EQ(src->budget->held() - before, ring + 16 * 1024 + scratch);
    rig.loader.release(s);
  }
}

TEST(Loader, MonoFilePlaysOnBothSides) {
  test::TempDir dir;
  const auto file = test::make_wav(dir.file("m.wav"), 30'000, 2, 1);
  auto src = load(dir.file("m.wav"));
  ASSERT_TRUE(src);
  Rig rig;
  rig.play(*src, 0, false);
  const auto out = rig.render(40'000);
  EXPECT_EQ(mismatch_from(out, 0, file, 0, 30'000), -1);
  ASSERT_NE(rig.ended(), nullptr);
  EXPECT_EQ(rig.ended()->reason, EndReason::kEndOfFile);
}

struct LoopCase {
  std::int64_t file_frames;
  std::int64_t ring_frames;
  std::int64_t chunk_frames;
};

class LoaderLoop : public ::testing::TestWithParam<LoopCase> {};

// The loop seam is sample-exact: the output is the file repeated, whatever the ring, chunk and
// block sizes (including a ring larger than the whole file). The ring must exceed the largest
// block (4096) by the loader's "not worth a read" margin, min(chunk, ring) / 2, as the daemon's
// sizing guarantees — otherwise streams_ready() can never become true.
TEST_P(LoaderLoop, StreamedLoopRepeatsTheFileSampleExact) {
  const LoopCase c = GetParam();
  test::TempDir dir;
  const auto file = test::make_wav(dir.file("l.wav"), c.file_frames, 3);
  auto src = load(dir.file("l.wav"));
  ASSERT_TRUE(src);
  ASSERT_TRUE(src->streamed());
  LoaderConfig lc = small_loader();
  lc.ring_frames = c.ring_frames;
  lc.chunk_frames = c.chunk_frames;
  Rig rig(lc);
  rig.play(*src, 0, true);
  const std::int64_t total = 5 * c.file_frames + 777;
  const auto out = rig.render(total, false);
  ASSERT_EQ(out.size(), static_cast<std::size_t>(total) * 2);
  EXPECT_TRUE(rig.always_fed);
  std::int64_t bad = -1;
  for (std::int64_t f = 0; f < total && bad < 0; ++f)
    for (int ch = 0; ch < 2; ++ch)
      if (out[static_cast<std::size_t>(f * 2 + ch)] != file[static_cast<std::size_t>((f % c.file_frames) * 2 + ch)])
        bad = f;
  EXPECT_EQ(bad, -1) << "first wrong frame (pass " << (bad < 0 ? 0 : bad / c.file_frames) << ", offset "
                     << (bad < 0 ? 0 : bad % c.file_frames) << ")";
  EXPECT_EQ(rig.engine.active_voices(), 1u) << "a looping voice does not end";
  EXPECT_EQ(rig.ended(), nullptr);
  EXPECT_GE(rig.loader.stats().loop_wraps, 4u);
  EXPECT_EQ(rig.drained.count(EventType::kVoiceUnderrun), 0u);
}

INSTANTIATE_TEST_SUITE_P(Sizes, LoaderLoop,
                         ::testing::Values(LoopCase{20'011, 6'000, 1'024},  // ring < file
                                           LoopCase{5'003, 24'000, 8'192},  // ring > file
                                           LoopCase{8'192, 8'192, 2'048},   // file = ring
                                           LoopCase{1'500, 6'000, 1'024}),  // barely past the head
                         [](const auto& info) { return "file" + std::to_string(info.param.file_frames); });

TEST(Loader, StartBeyondTheHeadEqualsTheFileFromThere) {
  test::TempDir dir;
  const std::int64_t total = 80'000;
  const auto file = test::make_wav(dir.file("b.wav"), total, 4);
  auto src = load(dir.file("b.wav"));
  ASSERT_TRUE(src);
  for (std::int64_t start : {50'000LL, 1'000LL, 600LL}) {  // past the head, at its end, inside it
    SCOPED_TRACE("start " + std::to_string(start));
    Rig rig;
    const std::int64_t fade = rig.engine.declick_frames();
    rig.play(*src, start, false);
    const auto out = rig.render(total);
    const std::int64_t rest = total - start;
    ASSERT_GE(out.size(), static_cast<std::size_t>(rest) * 2);
    // The fade-in region: never louder than the file, rising to it.
    for (std::int64_t f = 0; f < fade; ++f)
      ASSERT_LE(std::fabs(out[static_cast<std::size_t>(f * 2)]),
                std::fabs(file[static_cast<std::size_t>((start + f) * 2)]) + 1e-7f)
          << f;
    EXPECT_EQ(mismatch_from(out, fade, file, start + fade, rest - fade), -1);
    ASSERT_NE(rig.ended(), nullptr);
    EXPECT_EQ(rig.ended()->reason, EndReason::kEndOfFile);
  }
}

// ---------------------------------------------------------------- the loader alone

// Drains a stream as the audio thread would, until it finishes; returns what it delivered.
std::vector<float> drain_stream(Stream& s, LoaderThread& loader, std::int64_t limit_frames) {
  std::vector<float> got;
  std::vector<float> buf(2 * 1'000);
  const bool ok = test::wait_for([&] {
    while (true) {
      const std::size_t n = s.ring().read(buf.data(), 1'000);
      if (n == 0) break;
      got.insert(got.end(), buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(n * 2));
    }
    loader.wake();
    if (static_cast<std::int64_t>(got.size() / 2) > limit_frames) return true;
    return s.finished() && s.ring().readable_frames() == 0;
  });
  EXPECT_TRUE(ok) << "stream did not finish";
  return got;
}

TEST(Loader, EndOfFileFinishesTheStreamAfterTheLastFrame) {
  test::TempDir dir;
  const std::int64_t total = 30'001;
  const auto file = test::make_wav(dir.file("e.wav"), total, 5);
  auto src = load(dir.file("e.wav"));
  ASSERT_TRUE(src);
  LoaderThread loader(small_loader());
  loader.start();
  std::string err;
  Stream* s = loader.create_stream(*src, 1'000, false, err);
  ASSERT_NE(s, nullptr) << err;
  const auto got = drain_stream(*s, loader, total);
  ASSERT_TRUE(s->finished());
  EXPECT_EQ(s->end_reason(), EndReason::kEndOfFile);
  ASSERT_EQ(got.size(), static_cast<std::size_t>(total - 1'000) * 2);
  EXPECT_TRUE(std::equal(got.begin(), got.end(), file.begin() + 2'000));
  loader.release(s);
  EXPECT_TRUE(test::wait_for([&] {
    loader.wake();
    return loader.stats().streams == 0;
  }));
  loader.stop();
}

// Ring smaller than prefill_frames: the frames decoded up front must not be lost.
// (Regression: create_stream() once read prefill_frames whatever the ring's room and dropped
// what did not fit.)
TEST(Loader, PrefillLargerThanTheRingLosesNothing) {
  test::TempDir dir;
  const std::int64_t total = 20'000;
  const auto file = test::make_wav(dir.file("p.wav"), total, 6);
  auto src = load(dir.file("p.wav"));
  ASSERT_TRUE(src);
  LoaderConfig lc = small_loader();
  lc.ring_frames = 1'024;
  lc.chunk_frames = 512;
  lc.prefill_frames = 4'096;
  LoaderThread loader(lc);
  loader.start();
  std::string err;
  Stream* s = loader.create_stream(*src, 5'000, false, err);
  ASSERT_NE(s, nullptr) << err;
  const auto got = drain_stream(*s, loader, total);
  EXPECT_EQ(got.size(), static_cast<std::size_t>(total - 5'000) * 2) << "frames were lost";
  if (got.size() >= 2'048) {
    EXPECT_TRUE(std::equal(got.begin(), got.begin() + 2'048, file.begin() + 10'000)) << "the stream starts at 5000";
  }
  loader.release(s);
  loader.stop();
}

// A real-time loader must not hold a CPU: a SCHED_FIFO thread that keeps running stalls every
// real-time thread on its CPU — the audio callback too — for ~50 ms when the kernel throttles
// real-time threads (measured 53.6 ms here, docs/benchmarks.md sixth round). While it uses more
// than rt_cpu_high of a core over a 100 ms window it runs at normal scheduling, and it returns to
// SCHED_FIFO once it uses less than rt_cpu_low. Here the thresholds are low enough that an
// offline render (which consumes as fast as the loader can fill) crosses them; an idle loader
// (no stream: it sleeps) is far below. Before: the loader stayed SCHED_FIFO however busy.
TEST(Loader, LeavesRealTimePriorityWhileItUsesTooMuchCpu) {
  if (geteuid() != 0) {
    rlimit rl{};
    getrlimit(RLIMIT_RTPRIO, &rl);
    if (rl.rlim_cur < 3)
      GTEST_SKIP() << "real-time scheduling not permitted here (RLIMIT_RTPRIO " << rl.rlim_cur << ")";
  }
  test::TempDir dir;
  const std::int64_t total = 400'000;
  test::make_wav(dir.file("a.wav"), total, 9);
  auto src = load(dir.file("a.wav"));
  ASSERT_TRUE(src);
  LoaderConfig lc = small_loader();
  lc.rt_priority = 3;
  lc.rt_cpu_high = 0.02;
  lc.rt_cpu_low = 0.005;
  Rig rig(lc);
  auto policy_now = [&] {
    int policy = -1;
    sched_param sp{};
    pthread_getschedparam(rig.loader.native_handle(), &policy, &sp);
    return policy;
  };
  rig.loader.wait_idle();
  ASSERT_EQ(policy_now(), SCHED_FIFO);
  double busiest = 0;
  int policy_while_busy = SCHED_FIFO;
  const auto t0 = std::chrono::steady_clock::now();
  while (std::chrono::steady_clock::now() - t0 < std::chrono::milliseconds(600) && policy_while_busy == SCHED_FIFO) {
    rig.drained.events.clear();
    rig.play(*src, 0, false);
    rig.render(total);
    busiest = std::max(busiest, rig.loader.stats().cpu_fraction);
    policy_while_busy = policy_now();
  }
  EXPECT_EQ(policy_while_busy, SCHED_OTHER) << "busiest window " << busiest * 100 << " % of a core";
  EXPECT_GE(rig.loader.stats().rt_demotions, 1u);
  EXPECT_EQ(rig.loader.stats().rt_priority, 0) << "while demoted";
  // Idle again (the voice has ended; its stream went back): SCHED_FIFO 3 within a few windows.
  rig.render(4'096, false);
  int policy_after = -1;
  for (int i = 0; i < 60 && policy_after != SCHED_FIFO; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    rig.drained.drain(rig.engine, &rig.loader);
    policy_after = policy_now();
  }
  EXPECT_EQ(policy_after, SCHED_FIFO) << "last window " << rig.loader.stats().cpu_fraction * 100 << " % of a core";
  EXPECT_EQ(rig.loader.stats().rt_priority, 3);
}

// The loader stays below the audio thread (new-user pass 23, MEDIUM 4): PortAudio's ALSA callback
// thread ran SCHED_FIFO 1, the loader's default too, and equal SCHED_FIFO threads do not preempt
// each other. Once the audio thread's priority is known, cap_rt_priority() caps the loader one
// step below it, at once (the loader is woken), and lifts the cap again for a higher one.
TEST(Loader, FollowsTheCapThatKeepsItBelowTheAudioThread) {
  if (geteuid() != 0) {
    rlimit rl{};
    getrlimit(RLIMIT_RTPRIO, &rl);
    if (rl.rlim_cur < 3)
      GTEST_SKIP() << "real-time scheduling not permitted here (RLIMIT_RTPRIO " << rl.rlim_cur << ")";
  }
  LoaderConfig lc = small_loader();
  lc.rt_priority = 3;
  Rig rig(lc);
  auto sched_now = [&] {
    int policy = -1;
    sched_param sp{};
    pthread_getschedparam(rig.loader.native_handle(), &policy, &sp);
    return std::pair{policy, sp.sched_priority};
  };
  rig.loader.wait_idle();
  ASSERT_EQ(sched_now(), std::pair(SCHED_FIFO, 3));
  rig.loader.cap_rt_priority(2);  // an audio thread at 3
  rig.loader.wait_idle();
  EXPECT_EQ(sched_now(), std::pair(SCHED_FIFO, 2));
  EXPECT_EQ(rig.loader.stats().rt_priority, 2);
  rig.loader.cap_rt_priority(0);  // an audio thread at 1
  rig.loader.wait_idle();
  EXPECT_EQ(sched_now().first, SCHED_OTHER);
  EXPECT_EQ(rig.loader.stats().rt_priority, 0);
  rig.loader.cap_rt_priority(69);  // an audio thread at 70: --loader-priority as asked
  rig.loader.wait_idle();
  EXPECT_EQ(sched_now(), std::pair(SCHED_FIFO, 3));
  EXPECT_EQ(rig.loader.stats().rt_priority, 3);
}

// The demotion's warning says what a user can do about it (outside pass 8): before, it ended on "the
// streams need about as much CPU as this machine has to spare" and named nothing to change.
TEST(Loader, TheWarningWhenItLeavesRealTimePrioritySaysWhatToChange) {
  if (geteuid() != 0) {
    rlimit rl{};
    getrlimit(RLIMIT_RTPRIO, &rl);
    if (rl.rlim_cur < 3)
      GTEST_SKIP() << "real-time scheduling not permitted here (RLIMIT_RTPRIO " << rl.rlim_cur << ")";
  }
  std::ostringstream text;
  const auto previous = spdlog::default_logger();
  spdlog::set_default_logger(
      std::make_shared<spdlog::logger>("capture", std::make_shared<spdlog::sinks::ostream_sink_mt>(text)));
  test::TempDir dir;
  const std::int64_t total = 400'000;
  test::make_wav(dir.file("a.wav"), total, 9);
  auto src = load(dir.file("a.wav"));
  ASSERT_TRUE(src);
  std::uint64_t demotions = 0;
  {
    LoaderConfig lc = small_loader();
    lc.rt_priority = 3;
    lc.rt_cpu_high = 0.02;
    lc.rt_cpu_low = 0.005;
    Rig rig(lc);
    rig.loader.wait_idle();
    const auto t0 = std::chrono::steady_clock::now();
    while (std::chrono::steady_clock::now() - t0 < std::chrono::milliseconds(600) && demotions == 0) {
      rig.drained.events.clear();
      rig.play(*src, 0, false);
      rig.render(total);
      demotions = rig.loader.stats().rt_demotions;
    }
  }  // the loader thread has ended: its lines are all in `text`
  spdlog::set_default_logger(previous);
  ASSERT_GE(demotions, 1u);
  const std::string log = text.str();
  EXPECT_NE(log.find("at normal priority until"), std::string::npos) << log;
  EXPECT_NE(log.find("fewer streamed voices"), std::string::npos) << log;
  EXPECT_NE(log.find("--preload-limit-mb"), std::string::npos) << log;
}

// The loader refills the emptiest ring first. Observed through the kernel: an inotify IN_ACCESS
// watch on each file queues one event per read, in the order the loader thread reads, so the
// order of each file's first read is the order the loader served the rings.
// --loader-priority: the loader thread runs SCHED_FIFO at the priority asked for, when the
// process may (root, or an rtprio limit); else it stays at normal scheduling and says so.
TEST(Loader, RunsAtTheRealTimePriorityAskedForWhenPermitted) {
  LoaderConfig lc;
  lc.rt_priority = 3;
  LoaderThread loader(lc);
  loader.start();
  loader.wait_idle();
  int policy = 0;
  sched_param sp{};
  ASSERT_EQ(pthread_getschedparam(loader.native_handle(), &policy, &sp), 0);
  rlimit rl{};
  getrlimit(RLIMIT_RTPRIO, &rl);
  if (geteuid() != 0 && rl.rlim_cur < 3) {
    EXPECT_EQ(policy, SCHED_OTHER);
    EXPECT_EQ(loader.stats().rt_priority, 0);
    GTEST_SKIP() << "real-time scheduling not permitted here (RLIMIT_RTPRIO " << rl.rlim_cur << ")";
  }
  EXPECT_EQ(policy, SCHED_FIFO);
  EXPECT_EQ(sp.sched_priority, 3);
  EXPECT_EQ(loader.stats().rt_priority, 3);
  loader.stop();

  LoaderThread normal{LoaderConfig{}};  // 0 (the struct's default): normal scheduling
  normal.start();
  normal.wait_idle();
  ASSERT_EQ(pthread_getschedparam(normal.native_handle(), &policy, &sp), 0);
  EXPECT_EQ(policy, SCHED_OTHER);
}

// With no stream the loader sleeps until one comes (or stop()): an idle daemon's loader used to
// wake every 10 ms for nothing (100 wake-ups a second, each a context switch, most of an idle
// daemon's CPU). The count is an upper bound on a sleep, so a slow machine only lowers it.
TEST(Loader, WithNoStreamTheLoaderSleeps) {
  LoaderThread loader{LoaderConfig{}};
  loader.start();
  loader.wait_idle();
  const std::uint64_t before = loader.stats().passes;
  std::this_thread::sleep_for(std::chrono::milliseconds(600));
  EXPECT_LE(loader.stats().passes - before, 2u) << "passes in 600 ms with no stream";
  const auto t0 = std::chrono::steady_clock::now();
  loader.stop();  // wakes it: no wait for the 1 s timeout
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(900));
}

// With streams the audio thread wakes the loader at every callback that consumed, so its own
// timeout is two periods (not 10 ms, which made 2-3 passes over every reader each period). A
// stream whose voice consumes nothing (the device stopped) costs a pass per two periods.
TEST(Loader, WithStreamsTheLoaderWaitsForTheCallbacks) {
  test::TempDir dir;
  test::make_wav(dir.file("a.wav"), 200'000, 1);
  auto src = load(dir.file("a.wav"));
  ASSERT_TRUE(src);
  LoaderConfig lc = small_loader();
  lc.period_frames = 1'024;
  lc.sample_rate = 48'000;
  EXPECT_EQ(lc.sleep_ms(true), 42) << "two 1024-frame periods at 48 kHz";
  EXPECT_EQ(lc.sleep_ms(false), 1000);
  LoaderThread loader(lc);
  loader.start();
  std::string err;
  Stream* s = loader.create_stream(*src, src->view.memory_frames, false, err);
  ASSERT_NE(s, nullptr) << err;
  loader.wait_idle();
  const std::uint64_t before = loader.stats().passes;
  std::this_thread::sleep_for(std::chrono::milliseconds(600));
  EXPECT_LE(loader.stats().passes - before, 16u) << "passes in 600 ms, no callback";
  loader.release(s);
}

TEST(Loader, EmptiestRingIsRefilledFirst) {
  const int ino = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (ino < 0) GTEST_SKIP() << "inotify unavailable: " << std::strerror(errno);
  test::TempDir dir;
  LoaderConfig lc = small_loader();
  lc.ring_frames = 24'000;
  lc.chunk_frames = 1'024;
  lc.prefill_frames = 8'192;
  LoaderThread loader(lc);  // not started yet: the rings hold only their prefill
  const std::int64_t fills[] = {6'000, 500, 8'000, 3'000, 100, 4'500};
  constexpr int kN = 6;
  std::vector<std::unique_ptr<Source>> srcs;
  std::vector<Stream*> streams;
  std::map<int, int> wd_to_index;
  std::vector<float> sink(2 * 8'192);
  for (int i = 0; i < kN; ++i) {
    const std::string path = dir.file("r" + std::to_string(i) + ".wav");
    test::make_wav(path, 60'000, 10 + i);
    srcs.push_back(load(path));
    ASSERT_TRUE(srcs.back());
    std::string err;
    Stream* s = loader.create_stream(*srcs.back(), 1'000, false, err);
    ASSERT_NE(s, nullptr) << err;
    ASSERT_EQ(s->ring().readable_frames(), 8'192u) << "prefill";
    const auto drop = static_cast<std::size_t>(8'192 - fills[i]);  // the audio side consumed this much
    ASSERT_EQ(s->ring().read(sink.data(), drop), drop);
    streams.push_back(s);
    const int wd = inotify_add_watch(ino, path.c_str(), IN_ACCESS);
    ASSERT_GE(wd, 0) << std::strerror(errno);
    wd_to_index[wd] = i;
  }

  loader.start();
  loader.wait_idle();
  // Every ring comes back full (nothing is skipped or dropped): less than half a chunk of room.
  // (Asked from the consumer's side, which is the role the test thread plays.)
  for (int i = 0; i < kN; ++i) {
    EXPECT_TRUE(test::wait_for([&] {
      loader.wake();
      return streams[static_cast<std::size_t>(i)]->ring().readable_frames() > 24'000 - 512;
    })) << "ring "
        << i << " not refilled";
  }

  std::vector<int> order;
  alignas(inotify_event) char buf[64 * 1024];
  while (true) {
    const ssize_t n = ::read(ino, buf, sizeof buf);
    if (n <= 0) break;
    for (ssize_t off = 0; off < n;) {
      const auto* ev = reinterpret_cast<const inotify_event*>(buf + off);
      const auto it = wd_to_index.find(ev->wd);
      if ((ev->mask & IN_ACCESS) && it != wd_to_index.end() &&
          std::find(order.begin(), order.end(), it->second) == order.end())
        order.push_back(it->second);
      off += static_cast<ssize_t>(sizeof(inotify_event) + ev->len);
    }
  }
  ::close(ino);
  const std::vector<int> want = {4, 1, 3, 5, 0, 2};  // ascending fill
  EXPECT_EQ(order, want) << "first refill per ring, in the order the loader read the files";
  loader.stop();
}

// ---------------------------------------------------------------- files that change under us

// Byte offset of the sample data in a WAV we wrote (16-bit stereo: 4 bytes per frame).
std::int64_t data_offset(const std::string& path, std::int64_t frames) {
  return static_cast<std::int64_t>(std::filesystem::file_size(path)) - frames * 4;
}

TEST(Loader, FileTruncatedWhileStreamingEndsTheVoiceWithAnError) {
  test::TempDir dir;
  const std::int64_t total = 200'000;
  const std::int64_t keep = 50'000;
  const std::string path = dir.file("t.wav");
  const auto file = test::make_wav(path, total, 7);
  auto src = load(path);
  ASSERT_TRUE(src);
  Rig rig;
  rig.play(*src, 0, false);
  // The loader can be at most a ring (plus head and prefill) ahead of a voice that has not played
  // yet, far from frame 50000: cut the file there now.
  ASSERT_EQ(::truncate(path.c_str(), data_offset(path, total) + keep * 4), 0) << std::strerror(errno);
  const auto out = rig.render(total);
  ASSERT_NE(rig.ended(), nullptr) << "the voice never ended";
  EXPECT_EQ(rig.ended()->reason, EndReason::kError);
  ASSERT_GE(out.size(), static_cast<std::size_t>(keep) * 2);
  EXPECT_EQ(mismatch_from(out, 0, file, 0, keep), -1) << "what was in the file must play intact";
  for (std::size_t i = static_cast<std::size_t>(keep) * 2; i < out.size(); ++i) ASSERT_EQ(out[i], 0.0f) << i;
  const auto st = rig.loader.stats();
  EXPECT_EQ(st.truncated, 1u);
}

// Opens a stream of `src` from `from` on a running loader, expecting it refused: the reason.
std::string refused_stream(const Source& src, std::int64_t from) {
  Rig rig;
  std::string err;
  EXPECT_EQ(rig.loader.create_stream(src, from, false, err), nullptr);
  return err;
}

// A file truncated after load but before play, at points inside and beyond the synchronous
// prefill: the play is refused with the reason (it played up to the new end and ended in an error;
// once a short prefill read was even reported as a clean end of file). A file truncated while it
// streams ends in an error and counts a truncation (above).
TEST(Loader, FileTruncatedBeforePlayIsRefusedWithTheReason) {
  for (std::int64_t keep : {20'000LL, 2'000LL}) {  // beyond the prefill, inside it
    SCOPED_TRACE("truncated to " + std::to_string(keep) + " frames");
    test::TempDir dir;
    const std::int64_t total = 100'000;
    const std::string path = dir.file("t.wav");
    test::make_wav(path, total, 8);
    auto src = load(path);
    ASSERT_TRUE(src);
    ASSERT_EQ(::truncate(path.c_str(), data_offset(path, total) + keep * 4), 0);
    const std::string err = refused_stream(*src, 0);
    EXPECT_NE(err.find("shorter than when it was loaded (" + std::to_string(keep) + " frames, was 100000)"),
              std::string::npos)
        << err;
  }
}

// A file rewritten in place (same inode) in another format after it was loaded: opening its
// stream says that the file changed and to load it again. It used to say "...: No Error."
// (libsndfile had no error: the int16 reader refused the file's new float samples).
TEST(Loader, FileRewrittenInAnotherFormatAfterLoadSaysItChanged) {
  test::TempDir dir;
  const std::string path = dir.file("r.wav");
  test::make_wav(path, 100'000, 12);
  auto src = load(path);
  ASSERT_TRUE(src);
  test::write_wav_float(path, std::vector<float>(2 * 90'000, 0.25f), 44'100);  // same inode
  const std::string err = refused_stream(*src, 50'000);
  EXPECT_NE(err.find(path), std::string::npos) << err;
  EXPECT_NE(err.find("changed since it was loaded"), std::string::npos) << err;
  EXPECT_EQ(err.find("No Error"), std::string::npos) << err;
}

// A file rewritten in place (same inode) in another format while a voice streams it: the stream
// ends with an error at its next read after the write, and at most the ring's worth of the new
// bytes (read while the write was under way) is heard. The reader kept the
// old header (libsndfile's state, or the raw reads' data offset) and played the new file's 24-bit
// bytes as 16-bit frames — full-scale noise to the end of the file, forever on a loop. Both read
// paths: a 16-bit WAV (read raw) and a 16-bit AIFF (through libsndfile).
TEST(Loader, FileRewrittenInAnotherFormatWhileStreamingEndsTheVoiceWithAnError) {
  for (const int major : {SF_FORMAT_WAV, SF_FORMAT_AIFF}) {
    SCOPED_TRACE(major == SF_FORMAT_WAV ? "16-bit WAV, raw reads" : "16-bit AIFF, libsndfile");
    test::TempDir dir;
    const std::int64_t total = 200'000;
    const std::string path = dir.file(major == SF_FORMAT_WAV ? "w.wav" : "w.aiff");
    const auto pcm = test::make_pcm16(total, 2, 31);
    ASSERT_NO_FATAL_FAILURE(write_stereo16(path, major, pcm));
    std::vector<float> file(pcm.size());
    for (std::size_t i = 0; i < pcm.size(); ++i) file[i] = static_cast<float>(pcm[i]) / 32768.0f;
    auto src = load(path);
    ASSERT_TRUE(src);
    test::LogCapture log;  // the loader's log, until the scope's end
    struct stat st {};
    ASSERT_EQ(::stat(path.c_str(), &st), 0);
    const ino_t ino = st.st_ino;
    Rig rig;
    rig.play(*src, 0, true);  // looping: the old reads went on forever
    auto out = rig.render(20'000, false);
    ASSERT_EQ(rig.ended(), nullptr);
    {  // another format (24-bit samples at 0.3, a longer file), written over it in place in one
       // pwrite(): no moment where the file is short (that would end it as a truncation)
      const std::string other = dir.file(major == SF_FORMAT_WAV ? "n.wav" : "n.aiff");
      SF_INFO wi{};
      wi.samplerate = 48'000;
      wi.channels = 2;
      wi.format = major | SF_FORMAT_PCM_24;
      SNDFILE* w = sf_open(other.c_str(), SFM_WRITE, &wi);
      ASSERT_NE(w, nullptr) << sf_strerror(nullptr);
      const std::vector<float> loud(static_cast<std::size_t>(total) * 2, 0.3f);
      ASSERT_EQ(sf_writef_float(w, loud.data(), total), total);
      sf_close(w);
      std::vector<char> bytes(std::filesystem::file_size(other));
      const int in = ::open(other.c_str(), O_RDONLY);
      ASSERT_EQ(::read(in, bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size()));
      ::close(in);
      const int out_fd = ::open(path.c_str(), O_WRONLY);
      ASSERT_GE(out_fd, 0) << std::strerror(errno);
      ASSERT_EQ(::pwrite(out_fd, bytes.data(), bytes.size(), 0), static_cast<ssize_t>(bytes.size()));
      ::close(out_fd);
    }
    ASSERT_EQ(::stat(path.c_str(), &st), 0);
    ASSERT_EQ(st.st_ino, ino) << "rewritten in place";
    const auto rest = rig.render(2 * total);
    out.insert(out.end(), rest.begin(), rest.end());
    ASSERT_NE(rig.ended(), nullptr) << "the voice played on";
    EXPECT_EQ(rig.ended()->reason, EndReason::kError);
    // What was heard is the file as loaded (the ring's frames read before the rewrite), then at
    // most what the ring held of the new bytes, then silence: the check runs once the write's
    // event is seen (loader_thread.hpp), and the event comes when the write() returns, so reads
    // made while it was under way (here: while nothing played, into the ring's free span) are
    // published. Once it has returned, the next read is checked: nothing after that one ring.
    std::size_t heard = 0;
    while (heard < out.size() && heard < file.size() && out[heard] == file[heard]) ++heard;
    EXPECT_GE(heard, 20'000u * 2);
    const std::size_t one_read = 2 * static_cast<std::size_t>(small_loader().ring_frames);
    std::size_t other = 0, last = heard;
    for (std::size_t i = heard; i < out.size(); ++i) {
      if (out[i] == 0.0f) continue;
      ++other;
      last = i;
    }
    EXPECT_LE(other, one_read) << "samples heard that are not the loaded file's (from sample " << heard << ")";
    EXPECT_LT(last, heard + one_read) << "new bytes heard after the ring that was read during the write";
    EXPECT_EQ(rig.loader.stats().read_errors, 1u);
    EXPECT_NE(log.text().find(path + ": the file was rewritten while streaming"), std::string::npos) << log.text();
  }
}

// A tag edited in place while a voice streams the file: a tagger rewrites the LIST chunk after
// the samples and the RIFF size in the header. The header changed, but the file still reads as it
// did (same format, samples where they were): the voice plays on to its end. It ended in an error
// ("rewritten while streaming") once the loader compared the header's bytes only.
TEST(Loader, FileWhoseTagIsEditedInPlaceWhileStreamingPlaysOn) {
  test::TempDir dir;
  const std::int64_t total = 200'000;
  const std::string path = dir.file("tag.wav");
  const auto pcm = test::make_pcm16(total, 2, 32);
  ASSERT_NO_FATAL_FAILURE(write_stereo16(path, SF_FORMAT_WAV, pcm, "old"));  // a LIST chunk after the samples
  std::vector<float> file(pcm.size());
  for (std::size_t i = 0; i < pcm.size(); ++i) file[i] = static_cast<float>(pcm[i]) / 32768.0f;
  const auto data_end = static_cast<std::int64_t>(std::filesystem::file_size(path));
  auto src = load(path);
  ASSERT_TRUE(src);
  Rig rig;
  rig.play(*src, 0, false);
  auto out = rig.render(20'000, false);
  {  // the tagger: everything after the samples replaced by a longer LIST chunk, the RIFF size updated
    std::vector<char> head(64 * 1024);
    const int fd = ::open(path.c_str(), O_RDWR);
    ASSERT_GE(fd, 0) << std::strerror(errno);
    ASSERT_EQ(::pread(fd, head.data(), 12, 0), 12);
    std::int64_t after = 12;  // the end of the data chunk: walk the chunks
    while (after + 8 <= data_end) {
      char h[8];
      ASSERT_EQ(::pread(fd, h, 8, after), 8);
      std::uint32_t size = 0;
      std::memcpy(&size, h + 4, 4);
      after += 8 + size + (size & 1);
      if (std::memcmp(h, "data", 4) == 0) break;
    }
    ASSERT_LT(after, data_end) << "no chunk after the samples";
    const std::string text = "a much longer comment than before";
    std::string comment = text + '\0';
    if (comment.size() & 1) comment += '\0';  // the pad byte
    std::string list = "LIST";
    const auto put32 = [](std::string& s, std::uint32_t v) {
      for (int k = 0; k < 4; ++k) s.push_back(static_cast<char>(v >> (8 * k)));
    };
    put32(list, static_cast<std::uint32_t>(4 + 8 + comment.size()));
    list += "INFOICMT";
    put32(list, static_cast<std::uint32_t>(text.size() + 1));
    list += comment;
    ASSERT_EQ(::pwrite(fd, list.data(), list.size(), after), static_cast<ssize_t>(list.size()));
    std::string riff;
    put32(riff, static_cast<std::uint32_t>(after + static_cast<std::int64_t>(list.size()) - 8));
    ASSERT_EQ(::pwrite(fd, riff.data(), 4, 4), 4);
    ::close(fd);
    SF_INFO ri{};
    SNDFILE* r = sf_open(path.c_str(), SFM_READ, &ri);
    ASSERT_NE(r, nullptr) << sf_strerror(nullptr);
    EXPECT_STREQ(sf_get_string(r, SF_STR_COMMENT), text.c_str());
    EXPECT_EQ(ri.frames, total);
    sf_close(r);
  }
  const auto rest = rig.render(total);
  out.insert(out.end(), rest.begin(), rest.end());
  ASSERT_NE(rig.ended(), nullptr);
  EXPECT_EQ(rig.ended()->reason, EndReason::kEndOfFile);
  EXPECT_EQ(mismatch_from(out, 0, file, 0, total), -1);
  EXPECT_EQ(rig.loader.stats().read_errors, 0u);
}

// The header check of a streamed file costs a read of its header: a syscall, once per refill when
// every read checked (≈ 1.6 µs each: 7 % of the daemon at 1024 voices). It runs once when the
// stream starts, and again only after the file was written to (inotify): a stream of a file
// nobody writes reads its header once, however many refills it makes; an append (header
// unchanged) costs one check and plays on; a rewrite in another format still ends it.
TEST(Loader, AStreamReadsItsHeaderOnlyAfterItsFileIsWrittenTo) {
  test::TempDir dir;
  const std::int64_t total = 100'003;
  const std::string path = dir.file("h.wav");
  const auto file = test::make_wav(path, total, 3);
  auto src = load(path);
  ASSERT_TRUE(src);
  ASSERT_TRUE(src->streamed());
  Rig rig;
  rig.play(*src, 0, true);
  auto out = rig.render(3 * total, false);  // three passes of the loop: many refills
  ASSERT_EQ(rig.ended(), nullptr);
  const LoaderStats quiet = rig.loader.stats();
  ASSERT_GE(quiet.reads, 20u) << "too few refills to tell";
  EXPECT_EQ(quiet.header_checks, 1u) << "a file nobody writes: its header read once, not at each of " << quiet.reads
                                     << " reads";
  EXPECT_EQ(mismatch_from(out, 0, file, 0, total), -1);
  {  // an append after the samples: a write, the header unchanged
    const int fd = ::open(path.c_str(), O_WRONLY | O_APPEND);
    ASSERT_GE(fd, 0) << std::strerror(errno);
    ASSERT_EQ(::write(fd, "JUNK\0\0\0\0", 8), 8);
    ::close(fd);
  }
  out = rig.render(total, false);
  ASSERT_EQ(rig.ended(), nullptr) << "an append ended the stream";
  const LoaderStats appended = rig.loader.stats();
  EXPECT_GT(appended.reads, quiet.reads);
  EXPECT_GE(appended.header_checks, 2u) << "the write was not noticed";
  EXPECT_LE(appended.header_checks, 3u);
  EXPECT_EQ(appended.read_errors, 0u);
  out = rig.render(total, false);
  EXPECT_EQ(rig.loader.stats().header_checks, appended.header_checks) << "checks went on without writes";
}

// A file rewritten in place (same inode) after it was loaded, in the same format but longer: the
// stream's open says the file changed and to load it again, as for a shorter one. It opened, and the
// voice played the new file past the loaded length (its head from the old file, its position
// wrapping at the old end) until the new file's end.
TEST(Loader, FileRewrittenLongerAfterLoadSaysItChanged) {
  test::TempDir dir;
  const std::string path = dir.file("l.wav");
  test::make_wav(path, 100'000, 14);
  auto src = load(path);
  ASSERT_TRUE(src);
  test::make_wav(path, 200'000, 15);  // same inode, same format, twice as long
  const std::string err = refused_stream(*src, 0);
  EXPECT_NE(err.find(path), std::string::npos) << err;
  EXPECT_NE(err.find("longer than when it was loaded (200000 frames, was 100000): load it again"), std::string::npos)
      << err;
  const std::string from_middle = refused_stream(*src, 50'000);
  EXPECT_NE(from_middle.find("longer than when it was loaded"), std::string::npos) << from_middle;
}

// A file truncated after load, then played from beyond its new end: the stream's open says the
// file is shorter than when it was loaded and to load it again. It used to pass on libsndfile's
// internal text ("cannot seek to frame 50000: Internal psf_fseek() failed.").
TEST(Loader, PlayPastTheEndOfAFileTruncatedAfterLoadSaysItIsShorter) {
  test::TempDir dir;
  const std::string path = dir.file("s.wav");
  test::make_wav(path, 100'000, 13);
  auto src = load(path);
  ASSERT_TRUE(src);
  ASSERT_EQ(::truncate(path.c_str(), data_offset(path, 100'000) + 10'000 * 4), 0);
  const std::string err = refused_stream(*src, 50'000);
  EXPECT_NE(err.find(path), std::string::npos) << err;
  EXPECT_NE(err.find("shorter than when it was loaded (10000 frames, was 100000)"), std::string::npos) << err;
  EXPECT_EQ(err.find("psf_fseek"), std::string::npos) << err;
  // From its start too (the head, then streamed): it was answered /done, and the voice ended in an
  // error at the new end (the attack pass). Refused at once, with the same reason.
  const std::string from0 = refused_stream(*src, 0);
  EXPECT_NE(from0.find("shorter than when it was loaded (10000 frames, was 100000)"), std::string::npos) << from0;
}

TEST(Loader, FileDeletedAfterLoadKeepsPlaying) {
  test::TempDir dir;
  const std::int64_t total = 60'000;
  const std::string path = dir.file("d.wav");
  const auto file = test::make_wav(path, total, 9);
  auto src = load(path);
  ASSERT_TRUE(src);
  ASSERT_TRUE(std::filesystem::remove(path));
  ASSERT_FALSE(std::filesystem::exists(path));
  Rig rig;
  rig.play(*src, 0, false);
  const auto out = rig.render(total + 5'000);
  EXPECT_EQ(mismatch_from(out, 0, file, 0, total), -1);
  ASSERT_NE(rig.ended(), nullptr);
  EXPECT_EQ(rig.ended()->reason, EndReason::kEndOfFile);
  EXPECT_EQ(rig.loader.stats().read_errors, 0u);
}

// ---------------------------------------------------------------- formats and loading

// A file in a given libsndfile format and what stemd must decode from it (stereo float).
struct FormatCase {
  const char* name;
  int format;
  int channels;
};

std::vector<float> write_format(const std::string& path, const FormatCase& c, std::int64_t frames) {
  // 24 random bits per sample, left-aligned in an int: exact in float at every width below.
  std::vector<int> ints(static_cast<std::size_t>(frames * c.channels));
  std::uint32_t x = 12345;
  for (auto& v : ints) {
    x = x * 1664525u + 1013904223u;
    v = static_cast<int>(x & 0xffffff00u);
  }
  const int sub = c.format & SF_FORMAT_SUBMASK;
  const int keep_bits = sub == SF_FORMAT_PCM_U8 || sub == SF_FORMAT_PCM_S8 ? 8 : sub == SF_FORMAT_PCM_16 ? 16 : 24;
  const auto mask = static_cast<int>(0xffffffffu << (32 - keep_bits));
  for (auto& v : ints) v &= mask;  // what the format can hold, so the file round-trips exactly
  SF_INFO info{};
  info.samplerate = 48'000;
  info.channels = c.channels;
  info.format = c.format;
  SNDFILE* sf = sf_open(path.c_str(), SFM_WRITE, &info);
  EXPECT_NE(sf, nullptr) << sf_strerror(nullptr);
  if (sf == nullptr) return {};
  if ((c.format & SF_FORMAT_SUBMASK) == SF_FORMAT_FLOAT) {
    std::vector<float> fl(ints.size());
    for (std::size_t i = 0; i < ints.size(); ++i) fl[i] = static_cast<float>(ints[i]) / 2147483648.0f;
    EXPECT_EQ(sf_writef_float(sf, fl.data(), frames), frames);
  } else {
    EXPECT_EQ(sf_writef_int(sf, ints.data(), frames), frames);
  }
  sf_close(sf);
  std::vector<float> want(static_cast<std::size_t>(frames) * 2);
  for (std::int64_t f = 0; f < frames; ++f) {
    const auto l = static_cast<float>(ints[static_cast<std::size_t>(f * c.channels)]) / 2147483648.0f;
    const auto r =
        c.channels > 1 ? static_cast<float>(ints[static_cast<std::size_t>(f * c.channels + 1)]) / 2147483648.0f : l;
    want[static_cast<std::size_t>(f * 2)] = l;
    want[static_cast<std::size_t>(f * 2 + 1)] = r;
  }
  return want;
}

class LoaderFormats : public ::testing::TestWithParam<FormatCase> {};

// Every sample format and channel count decodes to the same values as libsndfile's own float
// read, whether the file is held in memory or streamed (different read paths in sound_file.cpp).
TEST_P(LoaderFormats, DecodeExactlyInMemoryAndStreamed) {
  const FormatCase c = GetParam();
  test::TempDir dir;
  const std::int64_t total = 30'000;
  const std::string path = dir.file("f.wav");
  const auto want = write_format(path, c, total);
  ASSERT_FALSE(want.empty());
  for (bool streamed : {false, true}) {
    SCOPED_TRACE(streamed ? "streamed" : "in memory");
    LoadOptions o = streamed_opts();
    if (!streamed) o.preload_limit_bytes = 1 << 20;
    auto src = load(path, o);
    ASSERT_TRUE(src);
    EXPECT_EQ(src->streamed(), streamed);
    EXPECT_EQ(src->info.channels, c.channels);
    Rig rig;
    if (streamed) {  // 16-bit (or narrower) integer stereo streams through an int16 ring
      const int sub = c.format & SF_FORMAT_SUBMASK;
      const bool narrow = sub == SF_FORMAT_PCM_16 || sub == SF_FORMAT_PCM_S8 || sub == SF_FORMAT_PCM_U8;
      std::string err;
      Stream* s = rig.loader.create_stream(*src, src->view.memory_frames, false, err);
      ASSERT_NE(s, nullptr) << err;
      EXPECT_EQ(s->ring().format(), narrow && c.channels == 2 ? SampleFormat::kInt16 : SampleFormat::kFloat);
      rig.loader.release(s);
    }
    rig.play(*src, 0, false);
    const auto out = rig.render(total + 5'000);
    ASSERT_GE(out.size(), static_cast<std::size_t>(total) * 2);
    EXPECT_EQ(mismatch_from(out, 0, want, 0, total), -1);
    ASSERT_NE(rig.ended(), nullptr);
    EXPECT_EQ(rig.ended()->reason, EndReason::kEndOfFile);
  }
}

INSTANTIATE_TEST_SUITE_P(Formats, LoaderFormats,
                         ::testing::Values(FormatCase{"Pcm16Stereo", SF_FORMAT_WAV | SF_FORMAT_PCM_16, 2},
                                           FormatCase{"Pcm16Mono", SF_FORMAT_WAV | SF_FORMAT_PCM_16, 1},
                                           FormatCase{"Pcm16FourChannels", SF_FORMAT_WAV | SF_FORMAT_PCM_16, 4},
                                           FormatCase{"Pcm24Stereo", SF_FORMAT_WAV | SF_FORMAT_PCM_24, 2},
                                           FormatCase{"Pcm24Mono", SF_FORMAT_WAV | SF_FORMAT_PCM_24, 1},
                                           FormatCase{"Pcm24ThreeChannels", SF_FORMAT_WAV | SF_FORMAT_PCM_24, 3},
                                           FormatCase{"FloatStereo", SF_FORMAT_WAV | SF_FORMAT_FLOAT, 2},
                                           FormatCase{"PcmU8Stereo", SF_FORMAT_WAV | SF_FORMAT_PCM_U8, 2},
                                           FormatCase{"FlacStereo", SF_FORMAT_FLAC | SF_FORMAT_PCM_16, 2},
                                           FormatCase{"AiffPcm16Stereo", SF_FORMAT_AIFF | SF_FORMAT_PCM_16, 2}),
                         [](const auto& info) { return std::string(info.param.name); });

// Loading a streamed file decodes only its head: a (sparse) 256 MB WAV costs a few kilobytes of
// reads and stays out of memory. The header is patched to claim the whole length.
TEST(Loader, LoadingAHugeFileReadsOnlyItsHead) {
  test::TempDir dir;
  const std::string path = dir.file("huge.wav");
  test::make_wav(path, 4'000, 12);
  const std::int64_t small_size = static_cast<std::int64_t>(std::filesystem::file_size(path));
  const std::int64_t data_bytes = 256ll << 20;
  {
    std::FILE* f = std::fopen(path.c_str(), "r+b");
    ASSERT_NE(f, nullptr);
    std::vector<unsigned char> head(static_cast<std::size_t>(std::min<std::int64_t>(small_size, 4'096)));
    ASSERT_EQ(std::fread(head.data(), 1, head.size(), f), head.size());
    std::int64_t data_at = -1;
    for (std::size_t i = 12; i + 8 <= head.size(); ++i)
      if (std::memcmp(&head[i], "data", 4) == 0) {
        data_at = static_cast<std::int64_t>(i);
        break;
      }
    ASSERT_GT(data_at, 0) << "no data chunk in the header";
    auto put32 = [&](long at, std::uint32_t v) {
      const unsigned char b[4] = {static_cast<unsigned char>(v), static_cast<unsigned char>(v >> 8),
                                  static_cast<unsigned char>(v >> 16), static_cast<unsigned char>(v >> 24)};
      ASSERT_EQ(std::fseek(f, at, SEEK_SET), 0);
      ASSERT_EQ(std::fwrite(b, 1, 4, f), 4u);
    };
    put32(4, static_cast<std::uint32_t>(data_at + 8 + data_bytes - 8));  // RIFF size
    put32(static_cast<long>(data_at + 4), static_cast<std::uint32_t>(data_bytes));
    std::fclose(f);
    ASSERT_EQ(::truncate(path.c_str(), data_at + 8 + data_bytes), 0) << std::strerror(errno);
  }
  LoadOptions o = streamed_opts();
  o.preload_limit_bytes = 16ll << 20;
  o.head_frames = 24'000;
  auto src = load(path, o);
  ASSERT_TRUE(src);
  EXPECT_TRUE(src->streamed());
  EXPECT_EQ(src->total_frames(), data_bytes / 4);
  EXPECT_EQ(src->view.memory_frames, 24'000);
  EXPECT_LE(src->memory_bytes(), 24'000u * 2 * sizeof(float) + 4'096);
  const std::uint64_t read = src->file->bytes_read();
  EXPECT_GE(read, 24'000u * 4) << "the head must have been read";
  EXPECT_LE(read, 24'000u * 4 + 64 * 1'024) << "loading read far more than the header and head";
}

TEST(Loader, LoadErrorsNameTheFileAndTheReason) {
  test::TempDir dir;
  // Another sample rate loads, marked for the engine's resampler (not played at the wrong speed).
  const std::string rate_path = dir.file("44k.wav");
  test::write_wav16(rate_path, test::make_pcm16(1'000, 2, 13), 2, 44'100);
  LoadResult r = load_source(rate_path, "x", streamed_opts());
  ASSERT_TRUE(r.source) << r.error;
  EXPECT_EQ(r.source->view.sample_rate, 44'100);
  // The output's own rate needs no conversion: the bit-exact path.
  const std::string same_path = dir.file("48k.wav");
  test::write_wav16(same_path, test::make_pcm16(1'000, 2, 14), 2, 48'000);
  r = load_source(same_path, "x", streamed_opts());
  ASSERT_TRUE(r.source) << r.error;
  EXPECT_EQ(r.source->view.sample_rate, 0);

  // A valid header with no frames.
  const std::string empty_path = dir.file("empty.wav");
  test::write_wav16(empty_path, std::vector<short>{}, 2);
  r = load_source(empty_path, "x", streamed_opts());
  EXPECT_FALSE(r.source);
  EXPECT_NE(r.error.find(empty_path), std::string::npos) << r.error;
  EXPECT_NE(r.error.find("no audio"), std::string::npos) << r.error;

  // An empty file (no header at all).
  const std::string zero_path = dir.file("zero.wav");
  {
    std::FILE* f = std::fopen(zero_path.c_str(), "wb");
    ASSERT_NE(f, nullptr);
    std::fclose(f);
  }
  r = load_source(zero_path, "x", streamed_opts());
  EXPECT_FALSE(r.source);
  EXPECT_NE(r.error.find(zero_path), std::string::npos) << r.error;
  EXPECT_GT(r.error.size(), zero_path.size() + 2) << "a reason follows the path";
}

TEST(Loader, SmallFileIsDecodedWholeIntoMemory) {
  test::TempDir dir;
  const auto file = test::make_wav(dir.file("s.wav"), 5'000, 11);
  LoadOptions o = streamed_opts();
  o.preload_limit_bytes = 1 << 20;
  auto src = load(dir.file("s.wav"), o);
  ASSERT_TRUE(src);
  EXPECT_FALSE(src->streamed());
  EXPECT_FALSE(src->truncated);
  EXPECT_EQ(src->view.memory_frames, 5'000);
  EXPECT_EQ(src->view.total_frames, 5'000);
  ASSERT_TRUE(src->decoded != nullptr);
  EXPECT_EQ(src->decoded->samples, file);
}

// A file held whole in memory closes its descriptor once decoded, so its disk can be unmounted
// while it stays loaded (outside pass 21, finding 8: `umount` of the media disk said "target is
// busy" until every source from it was unloaded, contrary to the README). Its identity stays
// (what /stemd/ensure compares); a streamed file keeps its descriptor: its streams read it.
TEST(Loader, AFileHeldInMemoryKeepsNoDescriptorOfIt) {
  test::TempDir dir;
  test::make_wav(dir.file("m.wav"), 5'000, 11);
  test::make_wav(dir.file("s.wav"), 5'000, 12);
  LoadOptions whole = streamed_opts();
  whole.preload_limit_bytes = 1 << 20;
  auto in_memory = load(dir.file("m.wav"), whole);
  auto streamed = load(dir.file("s.wav"));
  ASSERT_TRUE(in_memory && streamed);
  ASSERT_FALSE(in_memory->streamed());
  ASSERT_TRUE(streamed->streamed());
  // (Closed on the closer thread, file_closer.hpp: at once, but not on this one.)
  EXPECT_TRUE(test::wait_for([&] { return test::descriptors_of(dir.file("m.wav")) == 0; }))
      << "the disk of a file held in memory stays busy";
  EXPECT_EQ(in_memory->file, nullptr);
  struct stat st {};
  ASSERT_EQ(::stat(dir.file("m.wav").c_str(), &st), 0);
  ASSERT_TRUE(in_memory->identity.has_value());
  EXPECT_EQ(in_memory->identity->ino, static_cast<std::uint64_t>(st.st_ino));
  EXPECT_EQ(in_memory->identity->size, static_cast<std::int64_t>(st.st_size));
  EXPECT_EQ(in_memory->view.memory_frames, 5'000);  // and it plays from memory as before
  EXPECT_EQ(test::descriptors_of(dir.file("s.wav")), 1);
  ASSERT_NE(streamed->file, nullptr);
  EXPECT_EQ(*streamed->identity, streamed->file->identity());
}

// A file cut short (an interrupted copy): its header declares more frames than it holds. libsndfile
// counts only what is there, so the load used to say nothing (the voice just ended early);
// now the source is marked truncated and the header's claim kept, in memory and streamed, for
// WAV, AIFF, W64 and RF64, exact also when the cut falls inside a frame. A whole file declares
// what it holds.
TEST(Loader, AFileCutShortIsMarkedWithWhatItsHeaderDeclares) {
  test::TempDir dir;
  const FormatCase cases[] = {
      {"wav", SF_FORMAT_WAV | SF_FORMAT_PCM_16, 2},   {"aiff", SF_FORMAT_AIFF | SF_FORMAT_PCM_16, 2},
      {"w64", SF_FORMAT_W64 | SF_FORMAT_PCM_16, 2},   {"rf64", SF_FORMAT_RF64 | SF_FORMAT_PCM_16, 2},
      {"wav24", SF_FORMAT_WAV | SF_FORMAT_PCM_24, 2}, {"wavmono8", SF_FORMAT_WAV | SF_FORMAT_PCM_U8, 1}};
  for (const FormatCase& c : cases) {
    for (const std::int64_t odd : {0, 1}) {  // cut on a frame boundary, or one byte into a frame
      SCOPED_TRACE(std::string(c.name) + (odd ? ", cut inside a frame" : ""));
      const std::string path = dir.file(std::string("cut.") + c.name);
      const std::int64_t total = 40'000;
      ASSERT_FALSE(write_format(path, c, total).empty());
      for (bool streamed : {false, true}) {
        LoadOptions o = streamed_opts();
        if (!streamed) o.preload_limit_bytes = 1 << 20;
        auto whole = load(path, o);
        ASSERT_TRUE(whole);
        EXPECT_FALSE(whole->truncated);
        EXPECT_EQ(whole->info.declared_frames, total);
      }
      const auto size = std::filesystem::file_size(path);
      const int sub = c.format & SF_FORMAT_SUBMASK;
      const std::uintmax_t align = static_cast<std::uintmax_t>(c.channels) * (sub == SF_FORMAT_PCM_U8   ? 1
                                                                              : sub == SF_FORMAT_PCM_24 ? 3
                                                                                                        : 2);
      if (odd && align == 1) continue;  // one byte is a whole frame: no cut inside one
      // A quarter of the frames kept (plus one byte of the next).
      std::filesystem::resize_file(path, size - static_cast<std::uintmax_t>(total * 3 / 4) * align + odd);
      for (bool streamed : {false, true}) {
        SCOPED_TRACE(streamed ? "streamed" : "in memory");
        LoadOptions o = streamed_opts();
        if (!streamed) o.preload_limit_bytes = 1 << 20;
        auto src = load(path, o);
        ASSERT_TRUE(src);
        EXPECT_TRUE(src->truncated);
        EXPECT_EQ(src->info.frames, total / 4);
        EXPECT_EQ(src->total_frames(), total / 4);
        EXPECT_EQ(src->info.declared_frames, total);
      }
    }
  }
}

// A WAV written to a pipe (sox, arecord or ffmpeg to stdout) leaves its data chunk's size at a
// placeholder (0xFFFFFFFF, 0x7FFFFFFF, sox's 0x7FFFF000): whole, not cut short (the first version
// of the check called sox's output "cut short" with 11,184.8 s declared).
TEST(Loader, AWavWrittenToAPipeIsNotCalledCutShort) {
  test::TempDir dir;
  const FormatCase c{"wav", SF_FORMAT_WAV | SF_FORMAT_PCM_16, 2};
  for (const std::uint32_t placeholder : {0xffffffffu, 0x7fffffffu, 0x7ffff000u, 0xffffffdbu}) {
    SCOPED_TRACE(placeholder);
    const std::string path = dir.file("pipe.wav");
    ASSERT_FALSE(write_format(path, c, 20'000).empty());
    std::string bytes;
    {
      std::ifstream in(path, std::ios::binary);
      bytes.assign(std::istreambuf_iterator<char>(in), {});
    }
    const auto at = bytes.find("data");
    ASSERT_NE(at, std::string::npos);
    for (int k = 0; k < 4; ++k) bytes[at + 4 + k] = static_cast<char>((placeholder >> (8 * k)) & 0xff);
    for (int k = 0; k < 4; ++k) bytes[4 + k] = static_cast<char>((placeholder >> (8 * k)) & 0xff);  // RIFF too
    std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
    auto src = load(path, streamed_opts());
    ASSERT_TRUE(src);
    EXPECT_FALSE(src->truncated);
    EXPECT_EQ(src->info.frames, 20'000);
    EXPECT_EQ(src->info.declared_frames, 20'000);
  }
}
// A WAV written to a pipe by a writer that put the frame count it knew at the start in its header
// — 0: Python's wave module writing to stdout, `wave.open(sys.stdout.buffer, "wb")` — declares an
// empty data chunk with the samples after it. libsndfile counts 0 frames and parses the samples
// as chunks: it was refused, "file has no audio frames" (an outside test pass). Its size is read
// as the pipe placeholder it is (the samples run to the end of the file), streamed and in memory.
TEST(Loader, AWavWrittenToAPipeWithAnEmptyDataSizePlaysWhatFollows) {
  test::TempDir dir;
  const FormatCase c{"wav", SF_FORMAT_WAV | SF_FORMAT_PCM_16, 2};
  const std::string path = dir.file("pipe0.wav");
  const std::vector<float> want = write_format(path, c, 20'000);
  ASSERT_FALSE(want.empty());
  std::string bytes;
  {
    std::ifstream in(path, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), {});
  }
  const auto at = bytes.find("data");
  ASSERT_NE(at, std::string::npos);
  for (int k = 0; k < 4; ++k) bytes[at + 4 + k] = 0;                  // data: 0 bytes
  const std::uint32_t riff = static_cast<std::uint32_t>(at + 8 - 8);  // RIFF: the header alone
  for (int k = 0; k < 4; ++k) bytes[4 + k] = static_cast<char>((riff >> (8 * k)) & 0xff);
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
  for (const bool streamed : {true, false}) {
    SCOPED_TRACE(streamed ? "streamed" : "in memory");
    LoadOptions o = streamed_opts();
    if (!streamed) o.preload_limit_bytes = 1 << 20;
    auto src = load(path, o);
    ASSERT_TRUE(src);
    EXPECT_EQ(src->info.frames, 20'000);
    EXPECT_FALSE(src->truncated);
    if (!streamed) {
      ASSERT_TRUE(src->decoded != nullptr);
      EXPECT_EQ(src->decoded->samples, want);
      continue;
    }
    Rig rig;
    rig.play(*src, 0, false);
    const auto out = rig.render(30'000);
    ASSERT_NE(rig.ended(), nullptr);
    EXPECT_EQ(rig.ended()->reason, EndReason::kEndOfFile);
    EXPECT_EQ(mismatch_from(out, 0, want, 0, 20'000), -1);
  }
}

// A WAV cut right after its header (an interrupted copy) holds no frames while its header
// declares them: refused as before, but saying so — it said only "file has no audio frames", as
// for a file that is empty by design (an outside test pass).
TEST(Loader, AWavCutRightAfterItsHeaderSaysWhatItsHeaderDeclares) {
  test::TempDir dir;
  const FormatCase c{"wav", SF_FORMAT_WAV | SF_FORMAT_PCM_16, 2};
  const std::string path = dir.file("header-only.wav");
  ASSERT_FALSE(write_format(path, c, 192'000).empty());
  std::filesystem::resize_file(path, std::filesystem::file_size(path) - 192'000 * 4);
  const LoadResult r = load_source(path, "t", streamed_opts());
  EXPECT_FALSE(r.source);
  EXPECT_NE(r.error.find("file has no audio frames"), std::string::npos) << r.error;
  EXPECT_NE(r.error.find("its header declares 192000 (4.0 s)"), std::string::npos) << r.error;
  EXPECT_NE(r.error.find("cut short"), std::string::npos) << r.error;
}

// A CAF cut short (an interrupted copy) is refused by libsndfile as "Supported file format but
// file is malformed." — all a user was told, for a file that is only truncated. The reason says
// so (what its 'data' chunk declares, what is there), libsndfile's words kept; cut before the
// samples (inside another chunk) too. A CAF whose chunks are whole but that has no 'data' chunk
// is malformed indeed: not called cut short.
TEST(Loader, ACafCutShortSaysItIsTruncated) {
  test::TempDir dir;
  const FormatCase c{"caf", SF_FORMAT_CAF | SF_FORMAT_PCM_16, 2};
  const std::string path = dir.file("cut.caf");
  ASSERT_FALSE(write_format(path, c, 48'000).empty());
  ASSERT_TRUE(load_source(path, "t", streamed_opts()).source);
  const auto size = static_cast<std::int64_t>(std::filesystem::file_size(path));
  std::filesystem::resize_file(path, static_cast<std::uintmax_t>(size - 48'000 * 4 * 3 / 4));
  LoadResult r = load_source(path, "t", streamed_opts());
  EXPECT_FALSE(r.source);
  EXPECT_NE(r.error.find("cut short (truncated)"), std::string::npos) << r.error;
  EXPECT_NE(r.error.find("its 'data' chunk declares 192000 bytes (1.0 s), the file holds 48000 of them"),
            std::string::npos)
      << r.error;
  EXPECT_NE(r.error.find("libsndfile: Supported file format but file is malformed."), std::string::npos) << r.error;

  std::filesystem::resize_file(path, 30);  // inside the 'desc' chunk: before the samples
  r = load_source(path, "t", streamed_opts());
  EXPECT_FALSE(r.source);
  EXPECT_NE(r.error.find("cut short (truncated)"), std::string::npos) << r.error;
  EXPECT_NE(r.error.find("ends at byte 30, inside its 'desc' chunk (before the samples)"), std::string::npos)
      << r.error;

  // Whole chunks, no 'data' chunk: the caff header and its 'desc' chunk alone.
  std::filesystem::resize_file(path, 0);
  ASSERT_FALSE(write_format(path, c, 16).empty());
  std::string bytes;
  {
    std::ifstream in(path, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), {});
  }
  ASSERT_EQ(bytes.compare(8, 4, "desc"), 0);
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes.substr(0, 8 + 12 + 32);
  r = load_source(path, "t", streamed_opts());
  EXPECT_FALSE(r.source);
  EXPECT_EQ(r.error.find("cut short"), std::string::npos) << r.error;
  EXPECT_NE(r.error.find("malformed"), std::string::npos) << r.error;
}

// sox writing AIFF to a pipe (sox -t aiff - | ...) cannot seek back: it leaves FORM at
// 0x7f000050, SSND at 0x7f000008 and COMM's frame count at 0x1fc00000 (an outside test pass):
// called cut short with 11,097 s declared before.
TEST(Loader, AnAiffWrittenToAPipeBySoxIsNotCalledCutShort) {
  test::TempDir dir;
  const FormatCase c{"aiff", SF_FORMAT_AIFF | SF_FORMAT_PCM_16, 2};
  const std::string path = dir.file("pipe.aiff");
  ASSERT_FALSE(write_format(path, c, 20'000).empty());
  std::string bytes;
  {
    std::ifstream in(path, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), {});
  }
  auto put_be32 = [&](std::size_t at, std::uint32_t v) {
    for (int k = 0; k < 4; ++k) bytes[at + k] = static_cast<char>((v >> (8 * (3 - k))) & 0xff);
  };
  const auto comm = bytes.find("COMM");
  const auto ssnd = bytes.find("SSND");
  ASSERT_NE(comm, std::string::npos);
  ASSERT_NE(ssnd, std::string::npos);
  put_be32(4, 0x7f000050u);          // FORM
  put_be32(comm + 10, 0x1fc00000u);  // COMM numSampleFrames (after size and numChannels)
  put_be32(ssnd + 4, 0x7f000008u);   // SSND
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
  auto src = load(path, streamed_opts());
  ASSERT_TRUE(src);
  EXPECT_EQ(src->info.frames, 20'000);
  EXPECT_FALSE(src->truncated);
  EXPECT_EQ(src->info.declared_frames, 20'000);
}

// How many frames libsndfile decodes from `path` read straight through (stereo float), and them.
std::vector<float> read_through(const std::string& path) {
  SF_INFO info{};
  SNDFILE* sf = sf_open(path.c_str(), SFM_READ, &info);
  EXPECT_NE(sf, nullptr) << sf_strerror(nullptr);
  if (sf == nullptr) return {};
  std::vector<float> out;
  std::vector<float> buf(4'096 * static_cast<std::size_t>(info.channels));
  for (;;) {
    const sf_count_t n = sf_readf_float(sf, buf.data(), 4'096);
    if (n <= 0) break;
    for (sf_count_t f = 0; f < n; ++f) {
      out.push_back(buf[static_cast<std::size_t>(f * info.channels)]);
      out.push_back(buf[static_cast<std::size_t>(f * info.channels + (info.channels > 1 ? 1 : 0))]);
    }
  }
  sf_close(sf);
  return out;
}

// A FLAC cut short (an interrupted copy onto the box): STREAMINFO still declares the whole
// length, and libsndfile reports it as the file's. Streamed, it loaded as a 4-s file without a
// word and its voice ended halfway "with an error (truncated while streaming?)" (an outside test
// pass). Now the load finds where its data ends (seeking to the last frame, then to where the
// decoder can still go), marks it cut short with what STREAMINFO declares, and the voice plays
// what the file holds to a clean end. A whole FLAC is untouched.
TEST(Loader, AFlacCutShortIsFoundAtLoadAndPlaysToWhereItsDataEnds) {
  test::TempDir dir;
  const FormatCase c{"flac", SF_FORMAT_FLAC | SF_FORMAT_PCM_16, 2};
  const std::string whole_path = dir.file("whole.flac");
  const std::int64_t total = 200'000;
  ASSERT_FALSE(write_format(whole_path, c, total).empty());
  {
    auto whole = load(whole_path);
    ASSERT_TRUE(whole);
    EXPECT_FALSE(whole->truncated);
    EXPECT_EQ(whole->info.frames, total);
    EXPECT_EQ(whole->total_frames(), total);
  }
  // Cut in the middle, in the last two blocks (where no probe may seek) and in the last one.
  for (const double keep : {0.5, 0.97, 0.999}) {
    SCOPED_TRACE("kept " + std::to_string(keep) + " of the bytes");
    const std::string path = dir.file("cut.flac");
    std::filesystem::copy_file(whole_path, path, std::filesystem::copy_options::overwrite_existing);
    std::filesystem::resize_file(path, static_cast<std::uintmax_t>(std::filesystem::file_size(path) * keep));
    const std::vector<float> held = read_through(path);
    const auto held_frames = static_cast<std::int64_t>(held.size() / 2);
    ASSERT_GT(held_frames, total / 4);
    ASSERT_LT(held_frames, total);
    auto src = load(path);
    ASSERT_TRUE(src);
    ASSERT_TRUE(src->streamed());
    EXPECT_TRUE(src->truncated);
    EXPECT_EQ(src->info.frames, held_frames);
    EXPECT_EQ(src->total_frames(), held_frames);
    EXPECT_EQ(src->info.declared_frames, total);
    Rig rig;
    rig.play(*src, 0, false);
    const auto out = rig.render(total);
    ASSERT_NE(rig.ended(), nullptr) << "the voice never ended";
    EXPECT_EQ(rig.ended()->reason, EndReason::kEndOfFile);
    EXPECT_EQ(mismatch_from(out, 0, held, 0, held_frames), -1) << "what the file holds must play intact";
    EXPECT_EQ(rig.loader.stats().truncated, 0u);
  }
}

}  // namespace
}  // namespace stemd::io
