// stemd-voice-fixtures: many distinct streaming fixtures, and the exact mix they must make.
//
// For the voice-count benchmark (tests/tools/stream_bench.py): N distinct 16-bit stereo WAVs,
// file i holding seeded white noise with integer sample values in [-A, A] (A = --amp, in 16-bit
// units), and the reference for "files 0..N-1 all started on the same frame, looping, at unity
// gain": their sample-wise sum as 32-bit float.
//
// Why the comparison can be bit-exact whatever order the mixer adds voices in: every sample is an
// integer multiple of 2^-15 (16-bit → float is exact), and while N·A < 2^24 every partial sum is
// too, so float addition is exact and associative here. N·A below the limiter's ceiling (−1 dBFS
// = 29204 units) keeps the master limiter out of the way. The reference is computed from the
// generator, not by reading the files back, so it shares no code with stemd's decoder.
//
//   stemd-voice-fixtures gen DIR --count N [--seconds 8] [--amp 7] [--rate 48000]
//       writes DIR/v00000.wav …; a file that already exists with the right size is kept
//   stemd-voice-fixtures ref OUT.wav --count N --play-seconds S [--seconds 8] [--amp 7] [--rate 48000]
//       [--skip-frames K]
//       writes the first S seconds of the looped sum of files 0..N-1 (32-bit float WAV), from
//       frame K on (voices started in groups a few frames apart, each group at the file position
//       of its start, sum to exactly this once the last group's fade-in is over)
//   stemd-voice-fixtures list DIR --count N     prints the N paths, one a line
#include "pcg32.hpp"

#include <sndfile.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

namespace stemd::tools {
namespace {

struct Args {
  std::string mode, path;
  long count = -1;
  double seconds = 8.0;
  double play_seconds = -1.0;
  long skip_frames = 0;
  int amp = 7;
  int rate = 48000;
};

[[noreturn]] void usage(const std::string& why) {
  std::fprintf(
      stderr,
      "stemd-voice-fixtures: %s\n"
      "usage: stemd-voice-fixtures gen DIR --count N [--seconds 8] [--amp 7] [--rate 48000]\n"
      "       stemd-voice-fixtures ref OUT.wav --count N --play-seconds S [--seconds 8] [--amp 7] [--skip-frames K]\n"
      "       stemd-voice-fixtures list DIR --count N\n",
      why.c_str());
  std::exit(2);
}

std::string file_name(const std::string& dir, long i) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "/v%05ld.wav", i);
  return dir + buf;
}

// File i's frames: the same values for `gen` and `ref`.
void fill(std::vector<std::int16_t>& out, long index, long frames, int amp) {
  Pcg32 rng(0x5eed0000ULL + static_cast<std::uint64_t>(index) * 7919ULL);
  out.resize(static_cast<std::size_t>(frames) * 2);
  const std::uint32_t span = 2u * static_cast<std::uint32_t>(amp) + 1u;
  for (auto& s : out) s = static_cast<std::int16_t>(static_cast<int>(rng.next() % span) - amp);
}

long frames_of(const Args& a) { return static_cast<long>(a.seconds * a.rate + 0.5); }

int gen(const Args& a) {
  std::filesystem::create_directories(a.path);
  const long frames = frames_of(a);
  const auto want_bytes = static_cast<std::uintmax_t>(44 + frames * 4);
  std::vector<std::int16_t> buf;
  long written = 0;
  for (long i = 0; i < a.count; ++i) {
    const std::string p = file_name(a.path, i);
    std::error_code ec;
    if (std::filesystem::file_size(p, ec) == want_bytes && !ec) continue;
    fill(buf, i, frames, a.amp);
    SF_INFO info{};
    info.samplerate = a.rate;
    info.channels = 2;
    info.format = SF_FORMAT_WAV | SF_FORMAT_PCM_16;
    SNDFILE* f = sf_open(p.c_str(), SFM_WRITE, &info);
    if (f == nullptr) {
      std::fprintf(stderr, "stemd-voice-fixtures: %s: %s\n", p.c_str(), sf_strerror(nullptr));
      return 1;
    }
    if (sf_writef_short(f, buf.data(), frames) != frames) {
      std::fprintf(stderr, "stemd-voice-fixtures: %s: short write\n", p.c_str());
      sf_close(f);
      return 1;
    }
    sf_close(f);
    ++written;
  }
  std::fprintf(stderr, "stemd-voice-fixtures: %ld files in %s (%ld written, %ld kept)\n", a.count, a.path.c_str(),
               written, a.count - written);
  return 0;
}

int ref(const Args& a) {
  if (a.play_seconds <= 0) usage("ref needs --play-seconds");
  if (static_cast<long long>(a.count) * a.amp >= 29204) {
    std::fprintf(stderr, "stemd-voice-fixtures: %ld files × amplitude %d can exceed the limiter's ceiling\n", a.count,
                 a.amp);
    return 2;
  }
  const long frames = frames_of(a);
  const long out_frames = static_cast<long>(a.play_seconds * a.rate + 0.5);
  std::vector<std::int32_t> sum(static_cast<std::size_t>(out_frames) * 2, 0);
  std::vector<std::int16_t> buf;
  for (long i = 0; i < a.count; ++i) {
    fill(buf, i, frames, a.amp);
    for (long t = 0; t < out_frames; ++t) {
      const long src = (t + a.skip_frames) % frames;
      sum[2 * t] += buf[2 * src];
      sum[2 * t + 1] += buf[2 * src + 1];
    }
  }
  std::vector<float> out(sum.size());
  for (std::size_t k = 0; k < sum.size(); ++k) out[k] = static_cast<float>(sum[k]) / 32768.0f;
  SF_INFO info{};
  info.samplerate = a.rate;
  info.channels = 2;
  info.format = SF_FORMAT_WAV | SF_FORMAT_FLOAT;
  SNDFILE* f = sf_open(a.path.c_str(), SFM_WRITE, &info);
  if (f == nullptr) {
    std::fprintf(stderr, "stemd-voice-fixtures: %s: %s\n", a.path.c_str(), sf_strerror(nullptr));
    return 1;
  }
  const bool ok = sf_writef_float(f, out.data(), out_frames) == out_frames;
  sf_close(f);
  return ok ? 0 : 1;
}

int run(int argc, char** argv) {
  if (argc < 3) usage("missing arguments");
  Args a;
  a.mode = argv[1];
  a.path = argv[2];
  for (int i = 3; i < argc; ++i) {
    const std::string k = argv[i];
    if (i + 1 >= argc) usage(k + " needs a value");
    const char* v = argv[++i];
    try {
      if (k == "--count") {
        a.count = std::stol(v);
      } else if (k == "--seconds") {
        a.seconds = std::stod(v);
      } else if (k == "--play-seconds") {
        a.play_seconds = std::stod(v);
      } else if (k == "--amp") {
        a.amp = std::stoi(v);
      } else if (k == "--rate") {
        a.rate = std::stoi(v);
      } else if (k == "--skip-frames") {
        a.skip_frames = std::stol(v);
      } else {
        usage("unknown option " + k);
      }
    } catch (const std::exception&) {
      usage("bad value for " + k + ": " + v);
    }
  }
  if (a.count < 1) usage("--count N (≥ 1) is required");
  if (a.amp < 1 || a.amp > 32767) usage("--amp must be 1..32767");
  if (a.seconds <= 0 || a.rate < 1000) usage("bad --seconds or --rate");
  if (a.skip_frames < 0) usage("--skip-frames must be ≥ 0");
  if (a.mode == "gen") return gen(a);
  if (a.mode == "ref") return ref(a);
  if (a.mode == "list") {
    for (long i = 0; i < a.count; ++i) std::printf("%s\n", file_name(a.path, i).c_str());
    return 0;
  }
  usage("unknown mode " + a.mode);
}

}  // namespace
}  // namespace stemd::tools

int main(int argc, char** argv) { return stemd::tools::run(argc, argv); }
