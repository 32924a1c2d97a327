// Benchmark fixtures: deterministic noise and WAV files, generated once per run into a temp dir.
//
// The directory is $STEMD_BENCH_DIR when set (kept afterwards, files reused when their size
// matches), else a fresh mkdtemp() under $TMPDIR (or /tmp) that is removed at exit.
// Files are created lazily, the first time a benchmark asks for them, so a filtered run (the
// ctest smoke run) never writes the 100 MB fixture.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace stemd::bench {

// xorshift64*: fast, deterministic, good enough for noise.
class Noise {
 public:
  explicit Noise(std::uint64_t seed) : s_(seed * 0x9E3779B97F4A7C15ull + 1) {}
  std::uint64_t next() noexcept {
    s_ ^= s_ >> 12;
    s_ ^= s_ << 25;
    s_ ^= s_ >> 27;
    return s_ * 0x2545F4914F6CDD1Dull;
  }
  // Uniform in [-amp, amp).
  float uniform(float amp) noexcept { return amp * (static_cast<float>(next() >> 40) * (2.0f / 16777216.0f) - 1.0f); }
  std::int16_t pcm16(int amp = 16384) noexcept {
    return static_cast<std::int16_t>(static_cast<int>(next() >> 48) % (2 * amp) - amp);
  }

 private:
  std::uint64_t s_;
};

// Interleaved stereo float noise, `frames` frames.
std::vector<float> noise_frames(std::size_t frames, std::uint64_t seed, float amp = 0.25f);

// The fixture directory (created on first call).
const std::string& fixture_dir();

enum class WavKind { kPcm16Noise, kFloatNoise, kPcm16Sparse };

// Path of a 48 kHz stereo WAV with `frames` frames, created if missing. kPcm16Sparse writes only
// a valid header and extends the file with ftruncate(): all-zero audio, no disk blocks used.
// Files are fdatasync()ed after writing so POSIX_FADV_DONTNEED can evict them (cold loads).
std::string wav_fixture(const std::string& name, WavKind kind, std::int64_t frames);

// Drops the file's pages from the page cache (best effort; clean pages only).
void evict_from_page_cache(const std::string& path);

}  // namespace stemd::bench
