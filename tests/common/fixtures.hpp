// The test fixtures shared by every suite (tests/README.md): temp dirs and deterministic audio
// written with libsndfile. No GoogleTest here (the benchmarks link it too): a fixture that cannot
// be written throws, which fails the test that asked for it.
//
// Threads: any test thread; nothing here is shared between threads.
#pragma once

#include <functional>
#include <cstdint>
#include <string>
#include <vector>

namespace stemd::test {

// A fresh directory under $TEST_TMPDIR (or /tmp), removed with everything in it by the destructor.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// Deterministic 16-bit noise, different on each channel, so an offset of one frame or an L/R
// swap can never compare equal. Returns interleaved 16-bit samples (channels per frame).
std::vector<short> make_pcm16(std::int64_t frames, int channels, std::uint32_t seed);
// What stemd must decode from `pcm` (stereo float, x / 32768 exactly; mono copied to both sides).
std::vector<float> to_stereo_float(const std::vector<short>& pcm, int channels);
// A 16-bit WAV of make_pcm16(frames, channels, seed); returns the decoded stereo frames stemd must
// produce (to_stereo_float).
std::vector<float> make_wav(const std::string& path, std::int64_t frames, std::uint32_t seed, int channels = 2);

// Deterministic noise + one tone per channel (220 Hz × channel number), at 48 kHz. Returned as the
// floats libsndfile decodes the 16-bit samples to (x / 32768), interleaved with `channels` channels.
std::vector<float> make_tone_noise16(std::int64_t frames, int channels, std::uint32_t seed);

// Writes a 16-bit WAV of these samples.
void write_wav16(const std::string& path, const std::vector<short>& pcm, int channels, int rate = 48000);
// The same from floats that are already 16-bit-exact (x / 32768, as make_tone_noise16 returns).
void write_wav16(const std::string& path, const std::vector<float>& samples, int channels, int rate = 48000);
// Writes a 32-bit float stereo WAV of these interleaved samples.
void write_wav_float(const std::string& path, const std::vector<float>& stereo, int rate = 48000);
// Writes a long 16-bit stereo WAV of noise in chunks (memory stays small).
void write_long_wav16(const std::string& path, std::int64_t frames, std::uint32_t seed, int rate = 48000);
// A valid 16-bit stereo WAV header claiming `data_bytes` of audio, extended with ftruncate():
// a sparse file that costs no disk and reads as silence. For "huge file" tests.
void write_sparse_wav16(const std::string& path, std::uint32_t data_bytes, int rate = 48000);
// The same with `channels` channels in its header (a 1024-channel WAV of a few KB on disk).
void write_sparse_wav16_channels(const std::string& path, int channels, std::uint32_t data_bytes, int rate = 48000);
// A 16-bit FLAC of `frames` frames in blocks of `block` frames (1..65535), every subframe CONSTANT
// (`value`): a few KB on disk whatever its length. Its STREAMINFO declares `declared_block` as the
// block size (0 = `block`), so a header can understate what libFLAC allocates per channel.
void write_constant_flac(const std::string& path, std::int64_t frames, int channels, int block, int declared_block = 0,
                         int rate = 48000, short value = 100);
// Descriptors of this process open on `path` (by /proc/self/fd's links, the path made canonical).
int descriptors_of(const std::string& path);
// Resident set size of this process, in bytes (from /proc/self/status).
std::int64_t rss_bytes();
// How much longer than on the host a test waits for the daemon: STEMD_TEST_TIME_SCALE (default 1;
// scripts/test.sh --preset arm64 sets it for qemu-aarch64, which runs stemd ~20x slower). It scales
// "wait up to" bounds only (replies, readiness), never what a test measures.
double test_time_scale();
template <class Duration>
Duration scaled(Duration d) {
  return Duration(static_cast<typename Duration::rep>(static_cast<double>(d.count()) * test_time_scale()));
}
// `seconds` × test_time_scale() as a shell word, for `timeout N`/`sleep N` in a test's command line.
std::string scaled_seconds(double seconds);
// Polls `cond` every 5 ms until it holds (true) or `seconds` × test_time_scale() pass (false).
bool wait_until(const std::function<bool()>& cond, double seconds = 3.0);
// Expands interleaved mono/stereo samples to stereo, as the engine plays them.
std::vector<float> to_stereo(const std::vector<float>& samples, int channels);

}  // namespace stemd::test
