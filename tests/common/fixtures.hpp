// Test fixtures shared by the test suites: deterministic audio written with libsndfile, temp
// dirs, and a driver that runs an Engine the way the render backend does.
#pragma once

#include "stemd/engine.hpp"

#include <cstdint>
#include <string>
#include <vector>

namespace stemd::test {

// A fresh directory under /tmp, removed by the destructor.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// Deterministic 16-bit noise + tones, different per channel. Returns the samples as the floats
// libsndfile will decode them to (x / 32768), interleaved with `channels` channels.
std::vector<float> make_pcm16(std::int64_t frames, int channels, std::uint32_t seed);
// Writes a 16-bit WAV with these (already 16-bit-exact) samples.
void write_wav16(const std::string& path, const std::vector<float>& samples, int channels, int rate = 48000);
// Writes a long 16-bit stereo WAV of noise in chunks (memory stays small).
void write_long_wav16(const std::string& path, std::int64_t frames, std::uint32_t seed, int rate = 48000);
// A valid 16-bit stereo WAV header claiming `data_bytes` of audio, extended with ftruncate():
// a sparse file that costs no disk and reads as silence. For "huge file" tests.
void write_sparse_wav16(const std::string& path, std::uint32_t data_bytes, int rate = 48000);
// The same with `channels` channels in its header (a 1024-channel WAV of a few KB on disk).
void write_sparse_wav16_channels(const std::string& path, int channels, std::uint32_t data_bytes, int rate = 48000);
// Resident set size of this process, in bytes (from /proc/self/status).
std::int64_t rss_bytes();
// Expands interleaved mono/stereo samples to stereo, as the engine plays them.
std::vector<float> to_stereo(const std::vector<float>& samples, int channels);

}  // namespace stemd::test
