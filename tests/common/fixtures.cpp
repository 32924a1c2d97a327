#include "fixtures.hpp"

#include <sndfile.h>

#include <chrono>
#include <cmath>
#include <thread>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <unistd.h>
#include <cstdlib>
#include <filesystem>
#include <stdexcept>

namespace stemd::test {

namespace {

// A new WAV at `path` for writing; throws when libsndfile cannot create it.
SNDFILE* create_wav(const std::string& path, int channels, int subformat, int rate) {
  SF_INFO info{};
  info.samplerate = rate;
  info.channels = channels;
  info.format = SF_FORMAT_WAV | subformat;
  SNDFILE* sf = sf_open(path.c_str(), SFM_WRITE, &info);
  if (!sf) throw std::runtime_error(path + ": " + sf_strerror(nullptr));
  return sf;
}

}  // namespace

TempDir::TempDir() {
  const char* base = std::getenv("TEST_TMPDIR");
  std::string tmpl = base != nullptr && *base != '\0' ? base : "/tmp";
  if (tmpl.back() != '/') tmpl += '/';
  tmpl += "stemd-test-XXXXXX";
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  if (mkdtemp(buf.data()) == nullptr) throw std::runtime_error("mkdtemp failed for " + tmpl);
  path_ = buf.data();
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

std::vector<short> make_pcm16(std::int64_t frames, int channels, std::uint32_t seed) {
  std::vector<short> s(static_cast<std::size_t>(frames * channels));
  std::uint32_t x = seed * 2654435761u + 12345u;
  for (auto& v : s) {
    x = x * 1664525u + 1013904223u;
    v = static_cast<short>(static_cast<std::int32_t>(x >> 16) - 32768);
  }
  return s;
}

std::vector<float> to_stereo_float(const std::vector<short>& pcm, int channels) {
  const std::size_t frames = pcm.size() / static_cast<std::size_t>(channels);
  std::vector<float> out(frames * 2);
  for (std::size_t f = 0; f < frames; ++f) {
    const float l = static_cast<float>(pcm[f * channels]) / 32768.0f;
    const float r = channels > 1 ? static_cast<float>(pcm[f * channels + 1]) / 32768.0f : l;
    out[2 * f] = l;
    out[2 * f + 1] = r;
  }
  return out;
}

std::vector<float> make_wav(const std::string& path, std::int64_t frames, std::uint32_t seed, int channels) {
  const auto pcm = make_pcm16(frames, channels, seed);
  write_wav16(path, pcm, channels);
  return to_stereo_float(pcm, channels);
}

void write_wav16(const std::string& path, const std::vector<short>& pcm, int channels, int rate) {
  SNDFILE* sf = create_wav(path, channels, SF_FORMAT_PCM_16, rate);
  const sf_count_t frames = static_cast<sf_count_t>(pcm.size() / static_cast<std::size_t>(channels));
  const sf_count_t written = sf_writef_short(sf, pcm.data(), frames);
  sf_close(sf);
  if (written != frames) throw std::runtime_error(path + ": short write");
}

void write_wav_float(const std::string& path, const std::vector<float>& stereo, int rate) {
  SNDFILE* sf = create_wav(path, 2, SF_FORMAT_FLOAT, rate);
  const sf_count_t frames = static_cast<sf_count_t>(stereo.size() / 2);
  const sf_count_t written = sf_writef_float(sf, stereo.data(), frames);
  sf_close(sf);
  if (written != frames) throw std::runtime_error(path + ": short write");
}

std::vector<float> make_tone_noise16(std::int64_t frames, int channels, std::uint32_t seed) {
  std::vector<float> out(static_cast<std::size_t>(frames * channels));
  std::uint32_t x = seed ? seed : 1;
  for (std::int64_t f = 0; f < frames; ++f) {
    for (int c = 0; c < channels; ++c) {
      x ^= x << 13;
      x ^= x >> 17;
      x ^= x << 5;
      const double noise = (static_cast<double>(x % 20001) - 10000.0) / 10000.0 * 0.25;
      const double tone = 0.25 * std::sin(2 * M_PI * (220.0 * (c + 1)) * static_cast<double>(f) / 48000.0);
      const auto s = static_cast<int>(std::lround((noise + tone) * 32767.0));
      out[static_cast<std::size_t>(f * channels + c)] = static_cast<float>(s) / 32768.0f;
    }
  }
  return out;
}

void write_wav16(const std::string& path, const std::vector<float>& samples, int channels, int rate) {
  std::vector<short> pcm(samples.size());
  for (std::size_t i = 0; i < samples.size(); ++i) pcm[i] = static_cast<short>(std::lround(samples[i] * 32768.0f));
  write_wav16(path, pcm, channels, rate);
}

void write_long_wav16(const std::string& path, std::int64_t frames, std::uint32_t seed, int rate) {
  SNDFILE* sf = create_wav(path, 2, SF_FORMAT_PCM_16, rate);
  std::vector<short> chunk(65536 * 2);
  std::uint32_t x = seed ? seed : 1;
  for (std::int64_t done = 0; done < frames;) {
    const std::int64_t n = std::min<std::int64_t>(65536, frames - done);
    for (std::int64_t i = 0; i < n * 2; ++i) {
      x ^= x << 13;
      x ^= x >> 17;
      x ^= x << 5;
      chunk[static_cast<std::size_t>(i)] = static_cast<short>(static_cast<int>(x % 16001) - 8000);
    }
    sf_writef_short(sf, chunk.data(), n);
    done += n;
  }
  sf_close(sf);
}

void write_sparse_wav16(const std::string& path, std::uint32_t data_bytes, int rate) {
  write_sparse_wav16_channels(path, 2, data_bytes, rate);
}

void write_sparse_wav16_channels(const std::string& path, int channels, std::uint32_t data_bytes, int rate) {
  auto le32 = [](unsigned char* p, std::uint32_t v) {
    for (int i = 0; i < 4; ++i) p[i] = static_cast<unsigned char>(v >> (8 * i));
  };
  auto le16 = [](unsigned char* p, std::uint16_t v) {
    p[0] = static_cast<unsigned char>(v);
    p[1] = static_cast<unsigned char>(v >> 8);
  };
  unsigned char h[44];
  std::memcpy(h, "RIFF", 4);
  le32(h + 4, 36 + data_bytes);
  std::memcpy(h + 8, "WAVEfmt ", 8);
  le32(h + 16, 16);
  le16(h + 20, 1);  // PCM
  le16(h + 22, static_cast<std::uint16_t>(channels));
  le32(h + 24, static_cast<std::uint32_t>(rate));
  le32(h + 28, static_cast<std::uint32_t>(rate) * 2 * static_cast<std::uint32_t>(channels));
  le16(h + 32, static_cast<std::uint16_t>(2 * channels));
  le16(h + 34, 16);
  std::memcpy(h + 36, "data", 4);
  le32(h + 40, data_bytes);
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) throw std::runtime_error(path + ": cannot create");
  std::fwrite(h, 1, sizeof h, f);
  std::fclose(f);
  if (truncate(path.c_str(), static_cast<off_t>(44 + static_cast<std::uint64_t>(data_bytes))) != 0) {
    throw std::runtime_error(path + ": truncate failed");
  }
}

double test_time_scale() {
  static const double scale = [] {
    const char* v = std::getenv("STEMD_TEST_TIME_SCALE");
    const double s = v != nullptr ? std::atof(v) : 1.0;
    return s >= 1.0 ? s : 1.0;
  }();
  return scale;
}

std::string scaled_seconds(double seconds) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6g", seconds * test_time_scale());
  return buf;
}

bool wait_until(const std::function<bool()>& cond, double seconds) {
  using Clock = std::chrono::steady_clock;
  const auto end = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                      std::chrono::duration<double>(seconds * test_time_scale()));
  for (;;) {
    if (cond()) return true;
    if (Clock::now() > end) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

std::int64_t rss_bytes() {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stoll(line.substr(6)) * 1024;
  }
  return -1;
}

std::vector<float> to_stereo(const std::vector<float>& samples, int channels) {
  if (channels == 2) return samples;
  const std::size_t frames = samples.size() / static_cast<std::size_t>(channels);
  std::vector<float> out(frames * 2);
  for (std::size_t f = 0; f < frames; ++f) {
    out[2 * f] = samples[f * static_cast<std::size_t>(channels)];
    out[2 * f + 1] = channels == 1 ? samples[f] : samples[f * static_cast<std::size_t>(channels) + 1];
  }
  return out;
}

}  // namespace stemd::test

namespace stemd::test {

void write_constant_flac(const std::string& path, std::int64_t frames, int channels, int block, int declared_block,
                         int rate, short value) {
  if (declared_block <= 0) declared_block = block;
  auto crc8 = [](const std::vector<unsigned char>& d) {
    unsigned c = 0;
    for (unsigned char b : d) {
      c ^= b;
      for (int k = 0; k < 8; ++k) c = (c & 0x80) ? ((c << 1) ^ 0x07) & 0xFF : (c << 1) & 0xFF;
    }
    return static_cast<unsigned char>(c);
  };
  auto crc16 = [](const std::vector<unsigned char>& d) {
    unsigned c = 0;
    for (unsigned char b : d) {
      c ^= static_cast<unsigned>(b) << 8;
      for (int k = 0; k < 8; ++k) c = (c & 0x8000) ? ((c << 1) ^ 0x8005) & 0xFFFF : (c << 1) & 0xFFFF;
    }
    return c;
  };
  const std::int64_t nblocks = (frames + block - 1) / block;
  const auto total = static_cast<std::uint64_t>(nblocks * block);
  std::vector<unsigned char> out = {'f', 'L', 'a', 'C', 0x80, 0, 0, 34};  // last block: STREAMINFO, 34 bytes
  const auto db = static_cast<unsigned>(declared_block);
  for (unsigned v : {db, db}) {  // min and max block size
    out.push_back(static_cast<unsigned char>(v >> 8));
    out.push_back(static_cast<unsigned char>(v));
  }
  out.insert(out.end(), 6, 0);  // min and max frame size: unknown
  const std::uint64_t packed = (static_cast<std::uint64_t>(rate) << 44) |
                               (static_cast<std::uint64_t>(channels - 1) << 41) | (std::uint64_t{15} << 36) | total;
  for (int k = 7; k >= 0; --k) out.push_back(static_cast<unsigned char>(packed >> (8 * k)));
  out.insert(out.end(), 16, 0);  // MD5: unknown
  for (std::int64_t f = 0; f < nblocks; ++f) {
    // Sync, fixed blocking; block size from the 16 bits after the header; rate from STREAMINFO;
    // independent channels; 16-bit samples; the frame number (UTF-8 coded, < 2^16 here).
    std::vector<unsigned char> fr = {0xFF, 0xF8, 0x70, static_cast<unsigned char>(((channels - 1) << 4) | (4 << 1))};
    const auto n = static_cast<unsigned>(f);
    if (n < 0x80) {
      fr.push_back(static_cast<unsigned char>(n));
    } else if (n < 0x800) {
      fr.push_back(static_cast<unsigned char>(0xC0 | (n >> 6)));
      fr.push_back(static_cast<unsigned char>(0x80 | (n & 0x3F)));
    } else {
      fr.push_back(static_cast<unsigned char>(0xE0 | (n >> 12)));
      fr.push_back(static_cast<unsigned char>(0x80 | ((n >> 6) & 0x3F)));
      fr.push_back(static_cast<unsigned char>(0x80 | (n & 0x3F)));
    }
    fr.push_back(static_cast<unsigned char>((block - 1) >> 8));
    fr.push_back(static_cast<unsigned char>(block - 1));
    fr.push_back(crc8(fr));
    for (int ch = 0; ch < channels; ++ch) {  // CONSTANT subframe: type 0, then the value in 16 bits
      fr.push_back(0);
      fr.push_back(static_cast<unsigned char>(static_cast<unsigned short>(value) >> 8));
      fr.push_back(static_cast<unsigned char>(value));
    }
    const unsigned c = crc16(fr);
    fr.push_back(static_cast<unsigned char>(c >> 8));
    fr.push_back(static_cast<unsigned char>(c));
    out.insert(out.end(), fr.begin(), fr.end());
  }
  FILE* fp = std::fopen(path.c_str(), "wb");
  if (!fp) throw std::runtime_error(path + ": cannot create");
  const bool ok = std::fwrite(out.data(), 1, out.size(), fp) == out.size();
  std::fclose(fp);
  if (!ok) throw std::runtime_error(path + ": cannot write");
}

int descriptors_of(const std::string& path) {
  const std::string want = std::filesystem::canonical(path).string();
  int n = 0;
  for (const auto& e : std::filesystem::directory_iterator("/proc/self/fd")) {
    std::error_code ec;
    if (std::filesystem::read_symlink(e.path(), ec).string() == want) ++n;
  }
  return n;
}

}  // namespace stemd::test
