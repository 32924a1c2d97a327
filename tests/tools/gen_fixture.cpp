// stemd-gen-fixture: writes deterministic test audio for stemd's tests.
//
// The same arguments always give the same file, bit for bit, on every machine: the noise
// comes from a seeded PCG32 generator (not std::rand, whose sequence is implementation
// defined) and integer formats are quantised here rather than by libsndfile's float path.
// The default kind "mix" is broadband noise plus two tones per channel at about -6 dBFS
// peak, with different tones on each channel: noise makes sample-exact alignment
// unambiguous (a pure sine can lock one period off) and distinct channels make an L/R
// swap visible. `--sparse-bytes N` instead writes a valid 16-bit WAV header claiming N
// bytes of data and extends the file sparsely, so a "1 GB" file costs no disk: a test
// uses it to prove that loading a huge file only reads its header.
//
//   stemd-gen-fixture OUT.wav --seconds S [--rate 48000] [--channels 2] [--seed N]
//       [--format pcm16|pcm24|float|flac|ogg] [--kind noise|sine|mix] [--freq F] [--amp A]
//   stemd-gen-fixture OUT.wav --sparse-bytes N [--rate 48000] [--channels 2]

#include "pcg32.hpp"

#include <sndfile.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <numbers>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace stemd::tools {
namespace {

struct Options {
  std::string out;
  double seconds = -1;
  int rate = 48000;
  int channels = 2;
  std::uint64_t seed = 1;
  std::string format = "pcm16";
  std::string kind = "mix";
  double freq = 440.0;
  double amp = 0.5;  // peak, linear: 0.5 is -6 dBFS
  long long sparse_bytes = -1;
};

[[noreturn]] void usage(const std::string& why) {
  std::fprintf(stderr,
               "stemd-gen-fixture: %s\n"
               "usage: stemd-gen-fixture OUT --seconds S [--rate 48000] [--channels 2] [--seed N]\n"
               "         [--format pcm16|pcm24|float|flac|ogg] [--kind noise|sine|mix]\n"
               "         [--freq F] [--amp A]\n"
               "       stemd-gen-fixture OUT.wav --sparse-bytes N [--rate R] [--channels C]\n",
               why.c_str());
  std::exit(2);
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) usage(std::string(a) + " needs a value");
      return argv[++i];
    };
    try {
      if (a == "--seconds")
        o.seconds = std::stod(value());
      else if (a == "--rate")
        o.rate = std::stoi(value());
      else if (a == "--channels")
        o.channels = std::stoi(value());
      else if (a == "--seed")
        o.seed = std::stoull(value());
      else if (a == "--format")
        o.format = value();
      else if (a == "--kind")
        o.kind = value();
      else if (a == "--freq")
        o.freq = std::stod(value());
      else if (a == "--amp")
        o.amp = std::stod(value());
      else if (a == "--sparse-bytes")
        o.sparse_bytes = std::stoll(value());
      else if (a == "-h" || a == "--help")
        usage("help");
      else if (!a.empty() && a[0] == '-')
        usage("unknown option " + std::string(a));
      else if (o.out.empty())
        o.out = a;
      else
        usage("more than one output file");
    } catch (const std::logic_error&) {
      usage("bad value for " + std::string(a));
    }
  }
  if (o.out.empty()) usage("no output file");
  if (o.rate < 1000 || o.rate > 768000) usage("--rate out of range");
  if (o.channels < 1 || o.channels > 64) usage("--channels out of range");
  if (o.sparse_bytes < 0 && o.seconds < 0) usage("--seconds is required");
  if (o.amp < 0 || o.amp > 1) usage("--amp must be in [0, 1]");
  if (o.kind != "noise" && o.kind != "sine" && o.kind != "mix") usage("bad --kind");
  return o;
}

void put_le(std::string& s, std::uint32_t v, int bytes) {
  for (int b = 0; b < bytes; ++b) s.push_back(static_cast<char>((v >> (8 * b)) & 0xff));
}

// A canonical 44-byte PCM WAV header, then a sparse extension: the data is all zeros
// (silence) but no block is allocated, so the test can claim a size far above free disk.
int write_sparse(const Options& o) {
  const long long block = 2LL * o.channels;
  // RIFF sizes are 32-bit: keep the whole file under 4 GiB, and whole frames only.
  const long long max_data = 0xFFFFFFFFLL - 36;
  long long data = std::min(o.sparse_bytes, max_data);
  data -= data % block;
  std::string h;
  h += "RIFF";
  put_le(h, static_cast<std::uint32_t>(36 + data), 4);
  h += "WAVEfmt ";
  put_le(h, 16, 4);
  put_le(h, 1, 2);  // PCM
  put_le(h, static_cast<std::uint32_t>(o.channels), 2);
  put_le(h, static_cast<std::uint32_t>(o.rate), 4);
  put_le(h, static_cast<std::uint32_t>(o.rate * block), 4);
  put_le(h, static_cast<std::uint32_t>(block), 2);
  put_le(h, 16, 2);
  h += "data";
  put_le(h, static_cast<std::uint32_t>(data), 4);
  {
    std::ofstream f(o.out, std::ios::binary | std::ios::trunc);
    f.write(h.data(), static_cast<std::streamsize>(h.size()));
    if (!f) {
      std::fprintf(stderr, "stemd-gen-fixture: cannot write %s\n", o.out.c_str());
      return 1;
    }
  }
  std::error_code ec;
  // resize_file is truncate(2) on Linux: the extension is a hole, not written zeros.
  std::filesystem::resize_file(o.out, static_cast<std::uintmax_t>(44 + data), ec);
  if (ec) {
    std::fprintf(stderr, "stemd-gen-fixture: cannot extend %s: %s\n", o.out.c_str(), ec.message().c_str());
    return 1;
  }
  return 0;
}

int write_audio(const Options& o) {
  SF_INFO info{};
  info.samplerate = o.rate;
  info.channels = o.channels;
  int quant_bits = 0;  // 0: write floats as they are
  if (o.format == "pcm16")
    info.format = SF_FORMAT_WAV | SF_FORMAT_PCM_16, quant_bits = 16;
  else if (o.format == "pcm24")
    info.format = SF_FORMAT_WAV | SF_FORMAT_PCM_24, quant_bits = 24;
  else if (o.format == "float")
    info.format = SF_FORMAT_WAV | SF_FORMAT_FLOAT;
  else if (o.format == "flac")
    info.format = SF_FORMAT_FLAC | SF_FORMAT_PCM_16, quant_bits = 16;
  else if (o.format == "ogg")
    info.format = SF_FORMAT_OGG | SF_FORMAT_VORBIS;
  else
    usage("bad --format " + o.format);
  // More than 2 channels in plain WAV is legal but WAVEX is the proper container.
  if (o.channels > 2 && (info.format & SF_FORMAT_TYPEMASK) == SF_FORMAT_WAV)
    info.format = (info.format & ~SF_FORMAT_TYPEMASK) | SF_FORMAT_WAVEX;
  if (!sf_format_check(&info)) usage("libsndfile cannot write this format/rate/channels");

  SNDFILE* f = sf_open(o.out.c_str(), SFM_WRITE, &info);
  if (!f) {
    std::fprintf(stderr, "stemd-gen-fixture: %s: %s\n", o.out.c_str(), sf_strerror(nullptr));
    return 1;
  }

  const long long total = std::llround(o.seconds * o.rate);
  const int ch = o.channels;
  Pcg32 rng(o.seed);

  // Per-channel tone frequencies. "mix": two tones per channel, shifted per channel so
  // every channel differs; irrational-ish ratios so tones never line up with a period.
  std::vector<double> f1(ch), f2(ch);
  for (int c = 0; c < ch; ++c) {
    f1[c] = o.kind == "sine" ? o.freq : o.freq * (1.0 + 0.5 * c);
    f2[c] = o.freq * 2.718281828 * (1.0 + 0.25 * c);
  }
  // Amplitude split so the peak never exceeds --amp: noise 0.4, each tone 0.3.
  double a_noise = 0, a_tone1 = 0, a_tone2 = 0;
  if (o.kind == "noise")
    a_noise = o.amp;
  else if (o.kind == "sine")
    a_tone1 = o.amp;
  else
    a_noise = 0.4 * o.amp, a_tone1 = 0.3 * o.amp, a_tone2 = 0.3 * o.amp;

  // Chunked writes: a 20-minute file is written in a few seconds with bounded memory.
  constexpr long long kChunk = 65536;
  std::vector<float> fbuf;
  std::vector<int> ibuf;
  if (quant_bits)
    ibuf.resize(static_cast<size_t>(kChunk * ch));
  else
    fbuf.resize(static_cast<size_t>(kChunk * ch));
  static constexpr double two_pi = 2.0 * std::numbers::pi;
  const double full = quant_bits ? std::ldexp(1.0, quant_bits - 1) - 1.0 : 1.0;
  const int shift = 32 - quant_bits;

  // Tones by rotation: exact sin/cos at each chunk start (phase from the frame index,
  // so nothing drifts over a 20-minute file), then a complex rotator inside the chunk;
  // calling sin() per sample made a 20-minute file take 7 s instead of about 2.
  struct Rotor {
    double c = 1, s = 0, dc = 1, ds = 0;
    void start(double freq, long long frame, int rate) {
      const double ph = two_pi * std::fmod(freq * static_cast<double>(frame) / rate, 1.0);
      c = std::cos(ph), s = std::sin(ph);
      dc = std::cos(two_pi * freq / rate), ds = std::sin(two_pi * freq / rate);
    }
    double next() {
      const double v = s;
      const double nc = c * dc - s * ds;
      s = s * dc + c * ds;
      c = nc;
      return v;
    }
  };
  std::vector<Rotor> t1(ch), t2(ch);

  for (long long start = 0; start < total; start += kChunk) {
    const long long n = std::min(kChunk, total - start);
    for (int c = 0; c < ch; ++c) t1[c].start(f1[c], start, o.rate), t2[c].start(f2[c], start, o.rate);
    for (long long i = 0; i < n; ++i) {
      for (int c = 0; c < ch; ++c) {
        // The noise is drawn for every channel of every frame whatever the kind, so
        // the sequence (and the file) depends only on the seed and the frame index.
        const double r = rng.bipolar();
        const double s1 = t1[c].next(), s2 = t2[c].next();
        const double v = a_noise * r + a_tone1 * s1 + a_tone2 * s2;
        const size_t k = static_cast<size_t>(i * ch + c);
        if (quant_bits) {
          // Quantise here (round to nearest) and hand libsndfile left-justified
          // 32-bit ints, which it truncates to the file's bit depth losslessly.
          const long q = std::lround(std::clamp(v, -1.0, 1.0) * full);
          ibuf[k] = static_cast<int>(static_cast<std::uint32_t>(q) << shift);
        } else {
          fbuf[k] = static_cast<float>(v);
        }
      }
    }
    const sf_count_t w = quant_bits ? sf_writef_int(f, ibuf.data(), n) : sf_writef_float(f, fbuf.data(), n);
    if (w != n) {
      std::fprintf(stderr, "stemd-gen-fixture: write failed: %s\n", sf_strerror(f));
      sf_close(f);
      return 1;
    }
  }
  if (sf_close(f) != 0) {
    std::fprintf(stderr, "stemd-gen-fixture: close failed\n");
    return 1;
  }
  return 0;
}

}  // namespace
}  // namespace stemd::tools

int main(int argc, char** argv) {
  using namespace stemd::tools;
  const Options o = parse(argc, argv);
  return o.sparse_bytes >= 0 ? write_sparse(o) : write_audio(o);
}
