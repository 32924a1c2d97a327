// libFuzzer: file bytes → io::load_source(), the path every /load_buffer and /stemd/load takes,
// then the streamed path: LoaderThread::create_stream() (prefill from past the head) and a
// SoundFile reader run to the end of the file, looping once, as the loader thread does.
//
// The input lives in a memfd (opened through /proc/self/fd/N, as load_source() opens paths),
// so nothing touches the disk. The preload limit is small (16 KB decoded = 2048 stereo frames):
// short seeds load whole into memory, longer ones stream from a 512-frame head.
// The output rate follows the file's own rate, so a file is never refused for its rate alone.
//
// Invariants checked (a violation aborts, i.e. is a finding):
//   - a load either succeeds or gives "<path>: <reason>" with a non-empty reason;
//   - a loaded source has ≥ 1 frame, memory_frames ≤ total_frames (for a streamed source) and
//     holds exactly 2 × memory_frames floats; an in-memory source is not "streamed";
//   - every decoded sample is finite (libsndfile's float decoders can produce NaN/Inf from
//     crafted float data: finding, the mixer would pass it on — see README);
//   - read_stereo() never returns more frames than asked.
#include "io/loader_thread.hpp"
#include "io/sound_file.hpp"
#include "io/source.hpp"

#include <spdlog/spdlog.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

using namespace stemd;

namespace {

constexpr std::int64_t kPreloadBytes = 16 * 1024;
constexpr std::int64_t kHeadFrames = 512;
constexpr std::int64_t kChunkFrames = 1024;
constexpr std::int64_t kMaxReadFrames = 1 << 18;  // a tiny compressed file can claim hours

// Non-finite samples are a known finding (README "Findings": float files decode NaN/Inf as
// they are and the mixer passes them on): noted once, fatal only with STEMD_FUZZ_STRICT=1.
bool g_strict_finite = false;
std::uint64_t g_nonfinite_reported = 0;

[[noreturn]] void violated(const char* what, const std::string& detail) {
  std::fprintf(stderr, "fuzz_sndfile_load: invariant violated: %s: %s\n", what, detail.c_str());
  std::abort();
}

void check_finite(const float* p, std::size_t n, const char* where) {
  for (std::size_t i = 0; i < n; ++i) {
    if (!std::isfinite(p[i])) {
      if (g_strict_finite) violated("non-finite sample", where);
      if (g_nonfinite_reported++ == 0) std::fprintf(stderr, "fuzz_sndfile_load: note: non-finite sample (%s)\n", where);
      return;
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  spdlog::set_level(std::getenv("STEMD_FUZZ_LOG") ? spdlog::level::debug : spdlog::level::off);
  g_strict_finite = std::getenv("STEMD_FUZZ_STRICT") != nullptr;
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const int fd = memfd_create("stemd-fuzz", MFD_CLOEXEC);
  if (fd < 0) violated("memfd_create", "failed");
  for (std::size_t done = 0; done < size;) {
    const ssize_t n = write(fd, data + done, size - done);
    if (n <= 0) violated("write to memfd", "failed");
    done += static_cast<std::size_t>(n);
  }
  const std::string path = "/proc/self/fd/" + std::to_string(fd);

  // The file's own rate, so the load path runs whatever rate the header claims.
  int rate = 48000;
  {
    std::string err;
    auto fh = io::FileHandle::open(path, err);
    if (!fh) violated("cannot reopen the memfd", err);
    io::SoundFile probe;
    if (!probe.open(fh, err)) {
      if (err.empty()) violated("open failed without a reason", path);
      close(fd);
      return 0;
    }
    if (probe.info().sample_rate > 0) rate = probe.info().sample_rate;
  }

  io::LoadOptions lo;
  lo.output_rate = rate;
  lo.preload_limit_bytes = kPreloadBytes;
  lo.head_frames = kHeadFrames;
  io::LoadResult r = io::load_source(path, "fuzz", lo);
  if (!r.source) {
    if (r.error.size() <= path.size() + 2 || r.error.compare(0, path.size() + 2, path + ": ") != 0) {
      violated("load failed without '<path>: <reason>'", r.error);
    }
    close(fd);
    return 0;
  }
  const io::Source& src = *r.source;
  const engine::VoiceSource& v = src.view;
  if (v.memory_frames < 1) violated("a loaded source with no frames", std::to_string(v.memory_frames));
  // A file's audio is its decoded copy (shared with other ids of the same file); `data` is for
  // generated audio only.
  if (!src.decoded) violated("a loaded file with no decoded audio", "");
  if (!src.data.empty()) violated("a loaded file with generated audio", std::to_string(src.data.size()));
  // Floats, or (a 16-bit stereo file's head) the file's int16 samples, converted here to check.
  const bool int16 = !src.decoded->samples16.empty();
  std::vector<float> held = src.decoded->samples;
  for (const std::int16_t x : src.decoded->samples16) held.push_back(static_cast<float>(x) / 32768.0f);
  if (held.size() != static_cast<std::size_t>(v.memory_frames) * 2) {
    violated("decoded size differs from memory_frames", std::to_string(held.size()));
  }
  if (int16 ? v.frames16 != src.decoded->samples16.data() : v.frames != src.decoded->samples.data()) {
    violated("view does not point at the decoded audio", "");
  }
  if (!v.streamed && v.total_frames != v.memory_frames) violated("in-memory source with total ≠ memory frames", "");
  if (v.streamed && v.total_frames > 0 && v.memory_frames > v.total_frames) {
    violated("streamed source holds more than its length", std::to_string(v.memory_frames));
  }
  check_finite(held.data(), held.size(), "load_source");

  if (v.streamed) {
    // What a voice starting past the head gets: create_stream() prefills from there. The
    // loader is not started: the stream stays pending and the destructor deletes it.
    {
      io::LoaderConfig lc;
      lc.ring_frames = 2048;
      lc.chunk_frames = kChunkFrames;
      lc.prefill_frames = kChunkFrames;
      io::LoaderThread loader(lc);
      std::string err;
      Stream* s = loader.create_stream(src, v.memory_frames, false, err);
      if (!s && err.empty()) violated("create_stream failed without a reason", "");
      if (s) {
        std::vector<float> tmp(static_cast<std::size_t>(kChunkFrames) * 2);
        const std::size_t got = s->ring().read(tmp.data(), static_cast<std::size_t>(kChunkFrames));
        check_finite(tmp.data(), got * 2, "create_stream prefill");
      }
    }
    // What the loader thread does with it: read on from the head to the end, then loop once.
    io::SoundFile sf;
    std::string err;
    if (sf.open(src.file, err)) {
      std::vector<float> buf(static_cast<std::size_t>(kChunkFrames) * 2);
      std::int64_t total = 0;
      bool looped = false;
      if (sf.seek(v.memory_frames)) {
        while (total < kMaxReadFrames) {
          const std::int64_t got = sf.read_stereo(buf.data(), kChunkFrames);
          if (got < 0) {
            (void)sf.error();
            break;
          }
          if (got > kChunkFrames) violated("read_stereo returned more than asked", std::to_string(got));
          check_finite(buf.data(), static_cast<std::size_t>(got) * 2, "stream read");
          total += got;
          if (got < kChunkFrames) {
            if (looped || !sf.seek(0)) break;
            looped = true;
          }
        }
      }
    }
  }
  r.source.reset();
  close(fd);
  return 0;
}
