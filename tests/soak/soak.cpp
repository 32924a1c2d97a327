// stemd-soak: stemd's real parts in one process — Engine, LoaderThread (its own thread),
// Controller, MediaPolicy and Router, in the daemon's owner object app::Instance — run for a given
// amount of *simulated* time at render-mode pacing (each block waits until the loader has
// filled every streaming voice's ring, then renders at once), driven by a seeded random
// stream of valid and invalid OSC packets in both dialects.
//
//   stemd-soak [--seconds S (600)] [--seed N (1)] [--block FRAMES (256)] [--rate-per-s M (40)]
//              [--max-rss-growth-mb MB (0 = report only)] [--log-level off|info|debug] [--quiet]
//
// This thread is the control thread and, around Engine::process(), the audio thread, as the
// render backend's thread is; the loader thread streams the long files.
//
// Checked on every block (each violation is counted, the first ones printed; exit 1 if any):
//   - every output sample is finite and within the limiter's ceiling (−1 dBFS);
//   - voice counts agree: the voices the engine has active are exactly the controller's voices
//     the engine reports as started (telemetry generation), the controller never holds fewer
//     than the engine, and no voice the controller allocated stays unstarted for longer than
//     the longest schedule the stream can ask for (30 s): a voice leak;
// and on every packet:
//   - the packet gets one reply per message (a malformed packet: exactly one /fail); each reply
//     goes to the sender, parses, is /done or /fail for the address sent, a /fail has a reason;
//   - a message the generator knows to be invalid (bad types, counts, ranges, NaN/Inf, unknown
//     address or id, a bad or forbidden file, a late bundle, malformed bytes) is answered /fail;
//   - a valid one is answered /done — except where the outcome depends on a resource the
//     generator does not model (free resamplers/stretchers, "late" for /schedule_c_at): then a
//     /fail must name that resource, and is counted apart.
// RSS is sampled every 10 simulated seconds: first/last/max after a warm-up, and the slope.
#include "app/instance.hpp"
#include "control/controller.hpp"
#include "control/media_policy.hpp"
#include "control/osc.hpp"
#include "control/osc_packet.hpp"
#include "control/router.hpp"
#include "io/loader_thread.hpp"
#include "stemd/engine.hpp"

#include <sndfile.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

using namespace stemd;
using namespace stemd::control;

namespace {

// ---------------------------------------------------------------- options

struct Options {
  double seconds = 600;
  std::uint64_t seed = 1;
  std::uint32_t block = 256;
  double packets_per_s = 40;  // mean packets per simulated second
  double max_rss_growth_mb = 0;
  std::string log_level = "off";
  bool quiet = false;
};

[[noreturn]] void usage(const char* why) {
  std::fprintf(stderr,
               "stemd-soak: %s\nusage: stemd-soak [--seconds S] [--seed N] [--block FRAMES] [--rate-per-s M] "
               "[--max-rss-growth-mb MB] [--log-level off|info|debug] [--quiet]\n",
               why);
  std::exit(2);
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) usage(("missing value for " + a).c_str());
      return argv[++i];
    };
    try {
      if (a == "--seconds") {
        o.seconds = std::stod(value());
      } else if (a == "--seed") {
        o.seed = std::stoull(value());
      } else if (a == "--block") {
        o.block = static_cast<std::uint32_t>(std::stoul(value()));
      } else if (a == "--rate-per-s") {
        o.packets_per_s = std::stod(value());
      } else if (a == "--max-rss-growth-mb") {
        o.max_rss_growth_mb = std::stod(value());
      } else if (a == "--log-level") {
        o.log_level = value();
      } else if (a == "--quiet") {
        o.quiet = true;
      } else {
        usage(("unknown flag " + a).c_str());
      }
    } catch (const std::exception&) {
      usage(("bad value for " + a).c_str());
    }
  }
  if (!(o.seconds > 0) || o.block < 16 || o.block > 4096 || !(o.packets_per_s > 0)) usage("value out of range");
  return o;
}

// ---------------------------------------------------------------- fixtures

constexpr int kRate = 48000;
constexpr float kCeiling = 0.891251f;  // −1 dBFS, the daemon's default --limiter-threshold-db

void write_audio(const std::string& path, std::int64_t frames, int channels, int rate, int format, float amp,
                 double freq, bool square = false) {
  SF_INFO info{};
  info.samplerate = rate;
  info.channels = channels;
  info.format = format;
  SNDFILE* f = sf_open(path.c_str(), SFM_WRITE, &info);
  if (!f) {
    std::fprintf(stderr, "stemd-soak: cannot write %s: %s\n", path.c_str(), sf_strerror(nullptr));
    std::exit(2);
  }
  std::vector<float> buf(static_cast<std::size_t>(4096 * channels));
  for (std::int64_t done = 0; done < frames;) {
    const std::int64_t n = std::min<std::int64_t>(4096, frames - done);
    for (std::int64_t i = 0; i < n; ++i) {
      const double t = static_cast<double>(done + i) / rate;
      double s = std::sin(2 * M_PI * freq * t);
      if (square) s = s >= 0 ? 1.0 : -1.0;
      for (int c = 0; c < channels; ++c) {
        buf[static_cast<std::size_t>(i * channels + c)] = static_cast<float>(amp * s * (c == 0 ? 1.0 : 0.8));
      }
    }
    sf_writef_float(f, buf.data(), n);
    done += n;
  }
  sf_close(f);
}

void write_bytes(const std::string& path, const std::string& bytes) { std::ofstream(path, std::ios::binary) << bytes; }

// The files the stream loads, by name (relative to the media root).
struct Fixtures {
  std::vector<std::string> good;  // load → /done
  std::vector<std::string> bad;   // load → /fail
};

Fixtures make_fixtures(const std::string& root) {
  Fixtures fx;
  const int pcm16 = SF_FORMAT_WAV | SF_FORMAT_PCM_16;
  write_audio(root + "/short.wav", kRate * 3 / 2, 2, kRate, pcm16, 0.4f, 220);                   // in memory
  write_audio(root + "/mono.wav", kRate, 1, kRate, SF_FORMAT_WAV | SF_FORMAT_FLOAT, 0.3f, 330);  // in memory
  write_audio(root + "/long.wav", kRate * 20, 2, kRate, pcm16, 0.3f, 110);                       // streamed
  write_audio(root + "/long.flac", kRate * 12, 2, kRate, SF_FORMAT_FLAC | SF_FORMAT_PCM_16, 0.3f, 440);
  write_audio(root + "/loop.ogg", kRate * 8, 2, kRate, SF_FORMAT_OGG | SF_FORMAT_VORBIS, 0.3f, 550);
  write_audio(root + "/tone44.wav", 44100 * 2, 2, 44100, pcm16, 0.3f, 660);      // resampled
  write_audio(root + "/loud.wav", kRate * 2, 2, kRate, pcm16, 0.99f, 55, true);  // full scale
  write_audio(root + "/short.aiff", kRate, 2, kRate, SF_FORMAT_AIFF | SF_FORMAT_PCM_24, 0.3f, 770);
  std::filesystem::create_directories(root + "/sub");
  write_audio(root + "/sub/b.wav", kRate / 2, 2, kRate, pcm16, 0.3f, 880);
  {
    // A float WAV holding NaN and ±Inf: loads; the decoder replaces them with silence.
    SF_INFO info{};
    info.samplerate = kRate;
    info.channels = 2;
    info.format = SF_FORMAT_WAV | SF_FORMAT_FLOAT;
    SNDFILE* f = sf_open((root + "/nan.wav").c_str(), SFM_WRITE, &info);
    std::vector<float> v(static_cast<std::size_t>(kRate) * 2);
    for (std::size_t i = 0; i < v.size(); ++i) {
      v[i] = i % 7 == 0   ? std::numeric_limits<float>::quiet_NaN()
             : i % 7 == 1 ? std::numeric_limits<float>::infinity()
             : i % 7 == 2 ? -std::numeric_limits<float>::infinity()
                          : 0.25f;
    }
    sf_writef_float(f, v.data(), kRate);
    sf_close(f);
  }
  {
    // A WAV cut in the middle of its data: loads what is there.
    write_audio(root + "/whole.tmp", kRate, 2, kRate, pcm16, 0.3f, 990);
    std::filesystem::resize_file(root + "/whole.tmp", 44 + kRate * 2);
    std::filesystem::rename(root + "/whole.tmp", root + "/trunc.wav");
  }
  fx.good = {"short.wav", "mono.wav",   "long.wav",  "long.flac", "loop.ogg", "tone44.wav",
             "loud.wav",  "short.aiff", "sub/b.wav", "nan.wav",   "trunc.wav"};

  std::string junk(3000, '\0');
  std::mt19937 r(7);
  for (char& c : junk) c = static_cast<char>(r());
  write_bytes(root + "/junk.wav", "RIFF\x10\0\0\0WAVEjunk" + junk);
  write_bytes(root + "/empty.wav", "");
  write_bytes(root + "/text.flac", "this is not a FLAC file\n");
  {
    // A WAV whose fmt chunk says 0 channels.
    write_audio(root + "/zero.tmp", 1000, 2, kRate, pcm16, 0.3f, 440);
    std::fstream f(root + "/zero.tmp", std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(22);
    f.write("\0\0", 2);
    f.close();
    std::filesystem::rename(root + "/zero.tmp", root + "/zero_channels.wav");
  }
  std::filesystem::create_directories(root + "/dir.wav");
  fx.bad = {"junk.wav",    "empty.wav",     "text.flac",   "zero_channels.wav",  "dir.wav",
            "missing.wav", "../escape.wav", "/etc/passwd", "sub/../../short.wav"};
  return fx;
}

// ---------------------------------------------------------------- expectations

// kResource: /done, or a /fail naming the resource. kStaleCue: a /start_group with a deck
// reloaded since its /cue: /fail "deck X was reloaded since it was cued", nothing started.
enum class Expect { kDone, kFail, kResource, kStaleCue };

struct Planned {
  std::vector<std::uint8_t> bytes;
  std::vector<Expect> expect;  // one per message; a malformed packet: one kFail
  std::vector<std::string> what;
  bool malformed = false;
};

std::int64_t rss_kb() {
  std::ifstream f("/proc/self/statm");
  long pages = 0, rss = 0;
  f >> pages >> rss;
  return rss * (sysconf(_SC_PAGESIZE) / 1024);
}

// ---------------------------------------------------------------- the rig

struct Rig {
  std::string root;
  app::Instance inst;  // the daemon's owner object, built as app::run() builds it
  io::LoaderThread& loader;
  engine::Engine& engine;
  Controller& ctl;
  Router* router = nullptr;
  Peer peer;

  static io::LoaderConfig loader_config(std::uint32_t block) {
    // As the daemon derives them from --ring-ms 1000 (the default) and the buffer size.
    io::LoaderConfig lc;
    lc.ring_frames = std::max<std::int64_t>(kRate, 2 * block);
    lc.chunk_frames = std::min<std::int64_t>(8192, std::max<std::int64_t>(lc.ring_frames / 3, 256));
    lc.prefill_frames = std::min<std::int64_t>(lc.ring_frames, std::max<std::int64_t>(lc.chunk_frames, 4 * block));
    return lc;
  }
  static engine::EngineConfig engine_config(std::uint32_t block) {
    engine::EngineConfig ec;
    ec.sample_rate = kRate;
    ec.max_block_frames = std::max<std::uint32_t>(block, 4096);
    ec.max_voices = 256;
    ec.max_resampled_voices = 64;
    ec.max_stretched_voices = 2;
    ec.limiter = true;
    ec.limiter_threshold = kCeiling;
    return ec;
  }
  static io::LoadOptions load_options() {
    io::LoadOptions lo;
    lo.output_rate = kRate;
    lo.preload_limit_bytes = 2 << 20;  // short files in memory; long.wav, long.flac, loop.ogg stream
    lo.head_frames = kRate / 2;
    return lo;
  }

  static app::InstanceConfig instance_config(const std::string& dir, std::uint32_t block) {
    app::InstanceConfig ic;
    ic.loader = loader_config(block);
    ic.engine = engine_config(block);
    ic.load = load_options();
    ic.media_root = dir;
    ic.media_loopback_only = true;
    RouterConfig& rc = ic.router;
    rc.sample_rate = kRate;
    rc.buffer_size = block;
    rc.backend = "render";
    rc.max_sources = 64;
    rc.max_subscribers = 4;
    rc.tone_seconds = 0.5;
    return ic;
  }

  Rig(const std::string& dir, std::uint32_t block)
      : root(dir),
        inst(instance_config(dir, block)),
        loader(inst.loader()),
        engine(inst.engine()),
        ctl(inst.controller()) {
    std::string err;
    if (!inst.open_control(err)) {
      std::fprintf(stderr, "stemd-soak: %s\n", err.c_str());
      std::exit(2);
    }
    router = &inst.router();
    auto ep = parse_endpoint("127.0.0.1", 57199, err);
    peer.endpoint = *ep;
  }
};

// ---------------------------------------------------------------- the generator

constexpr int kDeckBase[4] = {100, 1100, 2100, 3100};
const char* const kDecks[4] = {"A", "B", "C", "D"};

class Generator {
 public:
  Generator(std::uint64_t seed, Rig& rig, const Fixtures& fx) : rng_(seed), rig_(rig), fx_(fx) {
    for (int i = 0; i < 10; ++i) ids_.push_back(1 + i);  // native-style ids (deck D)
    ids_.push_back(150);                                 // deck A range
    ids_.push_back(1150);                                // deck B range
    for (int b : kDeckBase) ids_.push_back(b);
  }

  Planned next() {
    Planned p;
    const int kind = pick(100);
    if (kind < 6) {
      malformed(p);
    } else if (kind < 12) {
      bundle(p);
    } else {
      OscMessage m;
      const Expect e = message(m);
      p.bytes = osc_serialise(m);
      p.expect.push_back(e);
      p.what.push_back(m.to_string());
    }
    return p;
  }

  std::uint64_t valid = 0, invalid = 0, resource = 0, malformed_packets = 0, bundles = 0, late_bundles = 0;
  std::map<std::string, std::uint64_t> by_address;

 private:
  int pick(int n) { return static_cast<int>(rng_() % static_cast<std::uint64_t>(n)); }
  bool coin(int percent) { return pick(100) < percent; }
  double uni(double lo, double hi) { return std::uniform_real_distribution<double>(lo, hi)(rng_); }
  template <class T>
  const T& one(const std::vector<T>& v) {
    return v[static_cast<std::size_t>(pick(static_cast<int>(v.size())))];
  }

  bool loaded(int id) const { return rig_.ctl.source(id) != nullptr; }
  bool playing(int id) const { return rig_.router->player(id).valid(); }
  std::int64_t total(int id) const { return rig_.ctl.source(id)->total_frames(); }
  int id_any() { return one(ids_); }
  int id_loaded_or_any() {
    std::vector<int> l;
    for (int id : ids_)
      if (loaded(id)) l.push_back(id);
    return l.empty() || coin(15) ? id_any() : one(l);
  }
  int id_playing_or_any() {
    std::vector<int> l;
    for (int id : ids_)
      if (playing(id)) l.push_back(id);
    return l.empty() || coin(15) ? id_loaded_or_any() : one(l);
  }
  static OscArg num(double v, int style) {  // the same number as f, d, i (when whole) or string
    switch (style % 4) {
      case 0:
        return OscArg::Float(v);
      case 1:
        return OscArg::Double(v);
      case 2:
        return std::floor(v) == v ? OscArg::Int(static_cast<std::int64_t>(v)) : OscArg::Float(v);
      default: {
        char b[64];
        std::snprintf(b, sizeof b, "%.6g", v);
        return OscArg::Str(b);
      }
    }
  }
  OscArg n(double v) { return num(v, pick(4) == 3 && coin(30) ? 3 : pick(3)); }
  OscArg bad_number() {
    switch (pick(4)) {
      case 0:
        return OscArg::Float(std::numeric_limits<double>::quiet_NaN());
      case 1:
        return OscArg::Float(std::numeric_limits<double>::infinity());
      case 2:
        return OscArg::Str("loud");
      default:
        return OscArg::Str("");
    }
  }

  Expect valid_(Expect e = Expect::kDone) {
    if (e == Expect::kResource || e == Expect::kStaleCue) {
      ++resource;
    } else {
      ++valid;
    }
    return e;
  }
  Expect invalid_() {
    ++invalid;
    return Expect::kFail;
  }

  // One message; returns what the reply must be.
  Expect message(OscMessage& m) {
    const bool bad = coin(22);
    const Expect e = bad ? invalid_message(m) : valid_message(m);
    ++by_address[m.address];
    return e;
  }

  Expect load_msg(OscMessage& m, int id, bool native) {
    m.address = native ? "/stemd/load" : "/load_buffer";
    const bool good = coin(85);
    const std::string path = good ? one(fx_.good) : one(fx_.bad);
    m.args = {OscArg::Int(id), OscArg::Str(path)};
    for (int d = 0; d < 4; ++d) {
      if (good && id == kDeckBase[d] && armed_[d]) stale_[d] = true;
    }
    if (coin(30)) m.args.push_back(OscArg::Str("name" + std::to_string(pick(5))));
    if (!good) return invalid_();
    return valid_();
  }

  Expect valid_message(OscMessage& m) {
    const int k = pick(1000);
    // Loads and plays dominate, as in a session; the rest spread over every address.
    if (k < 110) {
      const int id = coin(70) ? id_any() : kDeckBase[pick(4)];
      return load_msg(m, id, coin(50));
    }
    if (k < 150) {
      m.address = "/stemd/unload";
      const int id = id_loaded_or_any();
      m.args = {OscArg::Int(id)};
      return loaded(id) ? valid_() : invalid_();
    }
    if (k < 230) {  // /stemd/play id [volume] [loop] [position] [unit] [rate]
      const int id = id_loaded_or_any();
      m.address = "/stemd/play";
      m.args = {OscArg::Int(id)};
      if (!loaded(id)) {
        if (coin(50)) m.args.push_back(n(uni(0, 1.5)));
        return invalid_();
      }
      const int nargs = pick(6);
      const double rate = coin(50) ? 1.0 : uni(0.25, 4);
      const double frac = uni(0, 0.95);
      const std::string unit = one(std::vector<std::string>{"s", "frac", "frames"});
      const double tf = static_cast<double>(total(id));
      const double pos = unit == "frac" ? frac : unit == "frames" ? std::floor(frac * tf) : frac * tf / kRate * 0.99;
      if (nargs >= 1) m.args.push_back(n(uni(0, 1.2)));
      if (nargs >= 2) m.args.push_back(coin(50) ? OscArg::Bool(coin(60)) : OscArg::Int(pick(2)));
      if (nargs >= 3) m.args.push_back(n(unit == "s" || nargs >= 4 ? pos : frac * tf / kRate * 0.99));
      if (nargs >= 4) m.args.push_back(OscArg::Str(unit));
      if (nargs >= 5) m.args.push_back(n(rate));
      // A play takes a resampler when its rate × the tempo ≠ 1 or the file is at 44.1 kHz.
      return valid_(Expect::kResource);
    }
    if (k < 260) {  // /stemd/play_region id start end [loop] [count] [volume] [unit]
      const int id = id_loaded_or_any();
      m.address = "/stemd/play_region";
      if (!loaded(id)) {
        m.args = {OscArg::Int(id), n(0), n(0.5)};
        return invalid_();
      }
      // In fractions (unit "frac", all seven arguments) or in seconds of the file (fewer).
      const double a = uni(0, 0.8), b = a + uni(0.05, 0.19);
      const std::size_t nargs = 3 + static_cast<std::size_t>(pick(5));
      const io::Source* src = rig_.ctl.source(id);
      const double secs = static_cast<double>(total(id)) / (src->view.sample_rate > 0 ? src->view.sample_rate : kRate);
      const double sa = nargs == 7 ? a : std::floor(a * secs * 1000) / 1000;
      const double sb = nargs == 7 ? b : std::floor(b * secs * 1000) / 1000;
      m.args = {OscArg::Int(id),    n(sa), n(sb), OscArg::Int(pick(2)), OscArg::Int(pick(4)), n(uni(0, 1)),
                OscArg::Str("frac")};
      m.args.resize(nargs);
      // A region shorter than a millisecond of a short file can round to nothing: skip it.
      if (sb <= sa)
        m.args = {OscArg::Int(id), n(0), OscArg::Str("1"), OscArg::Int(1), OscArg::Int(0), n(1), OscArg::Str("frac")};
      return valid_(Expect::kResource);
    }
    if (k < 330) {  // stop / pause / resume
      const int id = id_playing_or_any();
      const int which = pick(3);
      m.address = which == 0 ? "/stemd/stop" : which == 1 ? "/stemd/pause" : "/stemd/resume";
      m.args = {OscArg::Int(id)};
      if (coin(60)) m.args.push_back(n(coin(50) ? 0.0 : uni(0, 2)));
      if (which == 0 && m.args.size() == 2 && coin(40)) {
        m.args.push_back(OscArg::Str(one(std::vector<std::string>{"linear", "exp", "equal_power", "s_curve"})));
      }
      return playing(id) ? valid_() : invalid_();
    }
    if (k < 370) {  // /stemd/seek id position [unit]
      const int id = id_playing_or_any();
      m.address = "/stemd/seek";
      if (!playing(id)) {
        m.args = {OscArg::Int(id), n(0)};
        return invalid_();
      }
      const double frac = uni(0, 0.95);
      if (coin(50)) {
        m.args = {OscArg::Int(id), n(frac), OscArg::Str("frac")};
      } else {
        m.args = {OscArg::Int(id), n(std::floor(frac * static_cast<double>(total(id)) / kRate * 100) / 100)};
      }
      return valid_();
    }
    if (k < 450) {  // volume / fade / pan / rate / stretch / stem_volume
      const int id = id_playing_or_any();
      const int which = pick(6);
      const bool p = playing(id);
      switch (which) {
        case 0:
          m.address = "/stemd/volume";
          m.args = {OscArg::Int(id), n(uni(0, 1.5))};
          if (coin(50)) m.args.push_back(n(uni(0, 0.5)));
          break;
        case 1:
          m.address = "/stemd/fade";
          m.args = {OscArg::Int(id), n(uni(0, 1)), n(uni(0, 3))};
          if (coin(50)) m.args.push_back(OscArg::Str(one(std::vector<std::string>{"linear", "exponential", "s"})));
          break;
        case 2:
          m.address = "/stemd/pan";
          m.args = {OscArg::Int(id), n(uni(-1, 1))};
          if (coin(50)) m.args.push_back(n(uni(0, 0.3)));
          break;
        case 3:
          m.address = "/stemd/rate";
          m.args = {OscArg::Int(id), n(uni(0.25, 4))};
          if (coin(50)) m.args.push_back(n(uni(0, 0.5)));
          if (!p) return invalid_();
          return valid_(Expect::kResource);  // takes a resampler
        case 4:
          if (!coin(20)) {  // Rubber Band is costly: rarely
            m.address = "/stemd/volume";
            m.args = {OscArg::Int(id), n(uni(0, 1))};
            break;
          }
          m.address = "/stemd/stretch";
          m.args = {OscArg::Int(id), n(coin(50) ? 1.0 : uni(0.5, 2))};
          if (!p) return invalid_();
          return valid_(Expect::kResource);  // takes a stretcher
        default:
          m.address = "/stem_volume";
          m.args = {OscArg::Int(id), n(uni(0, 1))};
          // An id without a player (nothing loaded, or loaded but not playing): a no-op /done, as
          // the old server ignored it (crowdstream's energy sender sets buffer 1000 whether or not
          // it plays).
          if (!p) return valid_();
          break;
      }
      return p ? valid_() : invalid_();
    }
    if (k < 520) {  // /play_stem id [rate] [volume] [loop] [start]
      const int id = id_loaded_or_any();
      m.address = "/play_stem";
      m.args = {OscArg::Int(id)};
      const int nargs = pick(5);
      if (nargs >= 1) m.args.push_back(n(coin(50) ? 1.0 : uni(0.3, 3)));
      if (nargs >= 2) m.args.push_back(n(uni(0, 1)));
      if (nargs >= 3) m.args.push_back(OscArg::Int(coin(70) ? 1 : 0));
      if (nargs >= 4) m.args.push_back(n(uni(0, 0.95)));
      return loaded(id) ? valid_(Expect::kResource) : invalid_();
    }
    if (k < 545) {  // /play_stem_section id rate volume loop start [duration]
      const int id = id_loaded_or_any();
      m.address = "/play_stem_section";
      m.args = {OscArg::Int(id), n(coin(50) ? 1.0 : uni(0.5, 2)), n(uni(0, 1)), OscArg::Int(pick(2)), n(uni(0, 0.9))};
      if (coin(70)) m.args.push_back(n(uni(0.05, 0.5)));
      return loaded(id) ? valid_(Expect::kResource) : invalid_();
    }
    if (k < 575) {  // /stop_stem id
      const int id = id_playing_or_any();
      m.address = "/stop_stem";
      m.args = {OscArg::Int(id)};
      return loaded(id) || playing(id) ? valid_() : invalid_();
    }
    if (k < 640) {  // levels and EQ
      switch (pick(7)) {
        case 0:
          m.address = "/crossfade_levels";
          m.args = {n(uni(0, 1)), n(uni(0, 1))};
          break;
        case 1:
          m.address = "/deck_levels";
          for (int i = pick(5); i > 0; --i) m.args.push_back(n(uni(0, 1.2)));
          break;
        case 2:
          m.address = "/deck_eq";
          m.args = {OscArg::Str(kDecks[pick(4)]), OscArg::Str(one(std::vector<std::string>{"low", "mid", "high", "l"})),
                    n(uni(0, 100))};
          break;
        case 3:
          m.address = "/deck_eq_all";
          m.args = {OscArg::Str(kDecks[pick(4)]), n(uni(0, 100)), n(uni(0, 100)), n(uni(0, 100))};
          break;
        case 4:
          m.address = "/deck_filter";
          m.args = {OscArg::Str(kDecks[pick(4)]), OscArg::Str(one(std::vector<std::string>{"low", "mid", "high"})),
                    n(uni(-1, 6))};  // coerced: negative → 0, above 4 → 4
          break;
        case 5:
          m.address = "/stemd/master";
          m.args = {n(uni(0.2, 2))};
          if (coin(50)) m.args.push_back(n(uni(0, 0.5)));
          break;
        default:
          m.address = "/stemd/deck";
          m.args = {OscArg::Str(kDecks[pick(4)]), n(uni(0, 1.5))};
          if (coin(50)) m.args.push_back(n(uni(0, 1)));
          break;
      }
      return valid_();
    }
    if (k < 700) {  // scheduling: /play, /cue, /start_group, /fade, /schedule_c_at, quantize
      const int deck = pick(4);
      switch (pick(6)) {
        case 0: {
          m.address = "/play";
          const bool good = coin(85);
          m.args = {OscArg::Str(kDecks[deck]), OscArg::Str(good ? one(fx_.good) : one(fx_.bad)), n(uni(0, 3))};
          if (!good) return invalid_();
          armed_[deck] = false;
          stale_[deck] = false;
          return valid_(Expect::kResource);
        }
        case 1: {
          m.address = "/cue";
          const bool good = coin(85);
          m.args = {OscArg::Str(kDecks[deck]), OscArg::Str(good ? one(fx_.good) : one(fx_.bad))};
          if (coin(50)) m.args.push_back(n(uni(0, 0.9)));
          if (!good) return invalid_();
          armed_[deck] = true;
          stale_[deck] = false;
          return valid_();
        }
        case 2: {
          m.address = "/start_group";
          bool want[4] = {};
          const double at = uni(0, 2);
          if (coin(50)) m.args.push_back(n(at));
          for (int d = 0, c = 1 + pick(3); d < c; ++d) {
            const int w = pick(4);
            want[w] = true;
            m.args.push_back(OscArg::Str(kDecks[w]));
          }
          if (m.args.empty() || !m.args[0].is_number()) m.args.push_back(n(at));
          // As stemd checks, deck by deck: one not cued fails the group; one reloaded since its
          // cue fails it and is disarmed. Either way nothing starts.
          for (int d = 0; d < 4; ++d) {
            if (!want[d] || playing(kDeckBase[d])) continue;
            if (!(armed_[d] && loaded(kDeckBase[d]))) return invalid_();
            if (stale_[d]) {
              armed_[d] = false;
              stale_[d] = false;
              return valid_(Expect::kStaleCue);
            }
          }
          for (int d = 0; d < 4; ++d) {
            if (want[d] && !playing(kDeckBase[d])) armed_[d] = false;
          }
          return valid_(Expect::kResource);
        }
        case 3:
          m.address = "/fade";
          m.args = {OscArg::Str(kDecks[deck]), n(uni(0, 2))};
          if (coin(50)) m.args.push_back(n(uni(0, 3)));
          return valid_();
        case 4:
          m.address = "/schedule_c_at";
          m.args = {n(std::floor(uni(0, 30)))};
          return loaded(2100) ? valid_(Expect::kResource) : invalid_();  // a time already past: "late"
        default:
          m.address = "/stemd/quantize";
          m.args = {n(coin(60) ? 0.0 : static_cast<double>(1 + pick(4)))};
          return valid_();
      }
    }
    if (k < 760) {  // tempo, clock, movement
      switch (pick(6)) {
        case 0:
          m.address = "/set_tempo";
          m.args = {n(std::floor(uni(90, 160)))};
          return valid_(Expect::kResource);  // every player needs a resampler to follow
        case 1:
          m.address = "/dance/total_movement";
          m.args = {n(uni(0, 1.2))};
          return valid_();
        case 2:
          m.address = "/set_meter";
          m.args = {OscArg::Int(1 + pick(12))};
          return valid_();
        case 3:
          m.address = "/reset";
          return valid_();
        case 4:
          m.address = "/dance/pose";
          for (int i = 0; i < 51; ++i) m.args.push_back(OscArg::Float(uni(0, 1)));
          return valid_();
        default:
          m.address = "/print_clock";
          m.args = {OscArg::Int(0)};
          return valid_();
      }
    }
    if (k < 860) {  // queries
      static const char* const q[] = {"/stemd/status", "/stemd/list", "/stemd/voices", "/stemd/ping", "/get_status"};
      m.address = q[pick(5)];
      return valid_();
    }
    if (k < 880) {
      m.address = "/stemd/notify";
      m.args = {OscArg::Int(pick(2))};
      return valid_();
    }
    if (k < 900) {
      if (coin(50)) {
        m.address = "/test_tone";
        if (coin(50)) m.args.push_back(n(uni(100, 2000)));
      } else {
        m.address = "/stemd/tone";
        m.args = {n(uni(100, 4000)), n(uni(-40, -6)), n(uni(0.05, 0.5))};
      }
      return valid_();
    }
    if (k < 903) {  // rare: every voice fades, every buffer is freed
      m.address = "/mixer_cleanup";
      return valid_();
    }
    m.address = "/dummy";
    if (coin(50)) m.args = {OscArg::Str("hello"), OscArg::Int(pick(100))};
    return valid_();
  }

  Expect invalid_message(OscMessage& m) {
    const int id = id_playing_or_any();
    switch (pick(16)) {
      case 0:
        m.address =
            one(std::vector<std::string>{"/stemd/nope", "/foo", "/play_stemm", "/stemd/", "/stemd/voice/started"});
        return invalid_();
      case 1:  // too many arguments
        m.address = one(std::vector<std::string>{"/stemd/ping", "/stemd/status", "/get_status", "/mixer_cleanup"});
        m.args = {OscArg::Int(1)};
        return invalid_();
      case 2:  // too few
        m.address = one(std::vector<std::string>{"/stemd/volume", "/stemd/seek", "/play_stem_section", "/deck_eq",
                                                 "/crossfade_levels", "/load_buffer", "/stemd/play"});
        return invalid_();
      case 3:  // non-finite or non-numeric where a number is meant
        m.address = one(std::vector<std::string>{"/stemd/volume", "/stemd/pan", "/stemd/rate", "/stem_volume"});
        m.args = {OscArg::Int(id), bad_number()};
        return invalid_();
      case 4:
        m.address = "/stemd/master";
        m.args = {coin(50) ? bad_number() : n(coin(50) ? -0.5 : 4.5)};
        return invalid_();
      case 5:  // out of range for a loaded/playing id
        m.address = one(std::vector<std::string>{"/stemd/volume", "/stemd/pan", "/stemd/rate"});
        m.args = {OscArg::Int(id), n(m.address == "/stemd/pan" ? 1.5 : m.address == "/stemd/rate" ? 0.1 : 5.0)};
        return invalid_();
      case 6:
        m.address = "/stemd/play";
        m.args = {OscArg::Int(id), n(1), OscArg::Int(0), n(coin(50) ? 1.5 : -1), OscArg::Str("frac")};
        return invalid_();
      case 7:
        m.address = "/stemd/play";
        m.args = {OscArg::Int(id), n(1), OscArg::Int(0), n(0), OscArg::Str("parsecs")};
        return invalid_();
      case 8:  // an id never loaded
        m.address = one(std::vector<std::string>{"/stemd/play", "/play_stem", "/stemd/unload", "/stemd/stop"});
        m.args = {OscArg::Int(424242)};
        return invalid_();
      case 9:
        m.address = one(std::vector<std::string>{"/deck_eq", "/stemd/deck"});
        m.args = m.address == "/deck_eq" ? std::vector<OscArg>{OscArg::Str(coin(50) ? "E" : "A"),
                                                               OscArg::Str(coin(50) ? "ultra" : "sub"), n(50)}
                                         : std::vector<OscArg>{OscArg::Str("Z"), n(1)};
        return invalid_();
      case 10:
        m.address = "/set_tempo";
        m.args = {n(one(std::vector<double>{0, -120, 1000, 10}))};
        return invalid_();
      case 11:
        m.address = "/stemd/fade";
        m.args = {OscArg::Int(id), n(0.5), n(1), OscArg::Str("wobbly")};
        return invalid_();
      case 12:  // a string over --max-string (a malformed packet: not inside a bundle)
        if (in_bundle_) {
          m.address = "/stemd/unknown";
          return invalid_();
        }
        m.address = "/load_buffer";
        m.args = {OscArg::Int(1), OscArg::Str(std::string(1500, 'a') + ".wav")};
        return invalid_();
      case 13:
        m.address = "/start_group";
        m.args = {n(0.5), OscArg::Str(coin(50) ? "Q" : "")};
        return invalid_();
      case 14:
        m.address = one(std::vector<std::string>{"/play_stem", "/play_stem_section"});
        m.args = {OscArg::Int(id), n(coin(50) ? 0 : 5), n(0.5), OscArg::Int(1), n(0.2)};
        return invalid_();
      default:
        m.address = "/stemd/quantize";
        m.args = {n(coin(50) ? -1 : 300)};
        return invalid_();
    }
  }

  void bundle(Planned& p) {
    ++bundles;
    const int count = 1 + pick(4);
    const bool late = coin(20);
    std::vector<OscMessage> msgs;
    std::uint64_t tt = kOscImmediately;
    if (late) {
      ++late_bundles;
      tt = unix_seconds_to_ntp(
          std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count() - uni(1, 5));
    } else if (coin(60)) {
      tt = unix_seconds_to_ntp(
          std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count() + uni(0.1, 2));
    }
    in_bundle_ = true;
    for (int i = 0; i < count; ++i) {
      OscMessage m;
      // The generator decides what a reply must be from the state *before* the packet: only
      // the first message of a bundle may depend on state or change it.
      // A late bundle's messages run (and are answered "late"): all stateless, so the model of
      // the crowdstream cues stays exact whatever they did.
      Expect e = i == 0 && !late ? message(m) : stateless(m);
      // Any message of a late bundle is answered /fail (late, or its own reason) — but what acts
      // on arrival anyway (loads, unloads, queries) as on time.
      if (late && e != Expect::kFail && !rig_.router->handlers().acts_on_arrival(m.address)) {
        if (e == Expect::kResource || e == Expect::kStaleCue) {
          --resource;
        } else {
          --valid;
        }
        ++invalid;
        e = Expect::kFail;
      }
      m.timetag = tt;
      p.expect.push_back(e);
      p.what.push_back(m.to_string() + (late ? " (late bundle)" : tt != kOscImmediately ? " (timed bundle)" : ""));
      msgs.push_back(std::move(m));
    }
    in_bundle_ = false;
    p.bytes = osc_serialise_bundle(msgs, tt);
  }

  // A message whose reply does not depend on the state and that changes none a later message
  // of the same bundle depends on.
  Expect stateless(OscMessage& m) {
    ++by_address["(bundle tail)"];
    switch (pick(8)) {
      case 0:
        m.address = "/crossfade_levels";
        m.args = {n(uni(0, 1)), n(uni(0, 1))};
        return valid_();
      case 1:
        m.address = "/deck_eq_all";
        m.args = {OscArg::Str(kDecks[pick(4)]), n(uni(0, 100)), n(uni(0, 100)), n(uni(0, 100))};
        return valid_();
      case 2:
        m.address = "/stemd/master";
        m.args = {n(uni(0.2, 2))};
        return valid_();
      case 3:
        m.address = "/stemd/deck";
        m.args = {OscArg::Str(kDecks[pick(4)]), n(uni(0, 1.5)), n(uni(0, 1))};
        return valid_();
      case 4:
        m.address = coin(50) ? "/stemd/ping" : "/stemd/status";
        return valid_();
      case 5:
        m.address = "/stemd/nope";
        return invalid_();
      case 6:
        m.address = "/stemd/master";
        m.args = {bad_number()};
        return invalid_();
      default:
        m.address = "/deck_eq";
        m.args = {OscArg::Str("E"), OscArg::Str("low"), n(50)};
        return invalid_();
    }
  }

  void malformed(Planned& p) {
    ++malformed_packets;
    ++invalid;
    p.malformed = true;
    p.expect = {Expect::kFail};
    OscMessage m;
    m.address = "/stemd/volume";
    m.args = {OscArg::Int(1), OscArg::Float(0.5)};
    auto b = osc_serialise(m);
    switch (pick(6)) {
      case 0:  // random bytes
        b.resize(static_cast<std::size_t>(1 + pick(64)));
        for (auto& x : b) x = static_cast<std::uint8_t>(rng_());
        if (b[0] == '#' || b[0] == '/') b[0] = 'x';
        p.what.push_back("random bytes");
        break;
      case 1:  // truncated inside the arguments
        b.resize(b.size() - 4 - static_cast<std::size_t>(pick(3)));
        p.what.push_back("truncated message");
        break;
      case 2:  // an unknown type tag
        b[std::string("/stemd/volume").size() + 3 + 2] = 'Q';
        p.what.push_back("unknown type tag");
        break;
      case 3:  // non-zero padding after the address
        b[std::string("/stemd/volume").size() + 1] = 1;
        p.what.push_back("non-zero padding");
        break;
      case 4: {  // bundles nested five deep (the limit is four)
        std::vector<std::uint8_t> inner = b;
        for (int d = 0; d < 5; ++d) {
          std::vector<std::uint8_t> out = {'#', 'b', 'u', 'n', 'd', 'l', 'e', 0, 0, 0, 0, 0, 0, 0, 0, 1};
          const auto n = static_cast<std::uint32_t>(inner.size());
          out.push_back(static_cast<std::uint8_t>(n >> 24));
          out.push_back(static_cast<std::uint8_t>(n >> 16));
          out.push_back(static_cast<std::uint8_t>(n >> 8));
          out.push_back(static_cast<std::uint8_t>(n));
          out.insert(out.end(), inner.begin(), inner.end());
          inner = std::move(out);
        }
        b = std::move(inner);
        p.what.push_back("bundle nested 5 deep");
        break;
      }
      default: {  // a bundle element whose size runs past the end
        std::vector<std::uint8_t> out = {'#', 'b', 'u', 'n', 'd', 'l', 'e', 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 1, 0};
        out.insert(out.end(), b.begin(), b.end());
        b = std::move(out);
        p.what.push_back("bundle element size past the end");
        break;
      }
    }
    p.bytes = std::move(b);
  }

  std::mt19937_64 rng_;
  Rig& rig_;
  const Fixtures& fx_;
  std::vector<int> ids_;
  bool armed_[4] = {};
  bool stale_[4] = {};  // the deck's base id was reloaded since its /cue
  bool in_bundle_ = false;
};

// ---------------------------------------------------------------- checks

struct Tally {
  std::uint64_t blocks = 0, sample_checks = 0, count_checks = 0, reply_checks = 0;
  std::uint64_t violations = 0;
  std::uint64_t done = 0, failed = 0, expected_fail = 0, resource_fail = 0, stale_cue = 0;
  std::map<std::string, std::uint64_t> resource_reasons;
  float peak = 0;
};

void violation(Tally& t, const std::string& what) {
  if (++t.violations <= 25) std::fprintf(stderr, "stemd-soak: VIOLATION: %s\n", what.c_str());
}

bool is_resource_reason(const std::string& r) {
  static const char* const k[] = {"resampler", "stretcher", "late by", "busy", "--max-"};
  for (const char* s : k)
    if (r.find(s) != std::string::npos) return true;
  return false;
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse(argc, argv);
  if (o.log_level == "off") {
    spdlog::set_level(spdlog::level::off);
  } else {
    spdlog::set_level(spdlog::level::from_str(o.log_level));
  }

  char tmpl[] = "/tmp/stemd-soak-XXXXXX";
  if (!mkdtemp(tmpl)) {
    std::perror("stemd-soak: mkdtemp");
    return 2;
  }
  const std::string dir = tmpl;
  std::filesystem::create_directories(dir + "/media");
  const Fixtures fx = make_fixtures(dir + "/media");
  write_bytes(dir + "/escape.wav", "outside the media root");

  const auto wall0 = std::chrono::steady_clock::now();
  Tally t;
  std::vector<std::pair<double, std::int64_t>> rss;  // (simulated s, KB)
  std::uint64_t packets = 0, notifications = 0, loader_waits = 0;
  std::size_t known_orphans = 0;
  {
    Rig rig(dir + "/media", o.block);
    Generator gen(o.seed, rig, fx);
    rig.loader.start();

    const std::int64_t total_frames = static_cast<std::int64_t>(std::llround(o.seconds * kRate));
    const double p_packet = std::min(1.0, o.packets_per_s * o.block / kRate);  // per block
    std::mt19937_64 pacing(o.seed ^ 0x9e3779b97f4a7c15ull);
    std::vector<float> out(static_cast<std::size_t>(o.block) * 2);
    std::vector<Outgoing> replies;
    std::map<std::uint64_t, std::int64_t> unstarted;  // (id << 32 | generation) → frame first seen unstarted
    std::set<std::uint64_t> scheduled;                // voices ever seen allocated but not started: scheduled
    const std::int64_t kMaxUnstarted = 40LL * kRate;
    std::int64_t frame = 0;
    std::int64_t next_rss = 0, next_progress = 60LL * kRate;

    auto send = [&](const Planned& p, Generator& g) {
      ++packets;
      replies.clear();
      rig.router->handle_packet(p.bytes.data(), p.bytes.size(), rig.peer, replies);
      if (replies.size() != p.expect.size()) {
        violation(t, "packet (" + p.what.front() + "…) got " + std::to_string(replies.size()) + " replies for " +
                         std::to_string(p.expect.size()) + " messages");
        return;
      }
      for (std::size_t i = 0; i < replies.size(); ++i) {
        ++t.reply_checks;
        OscMessage r;
        std::string err;
        if (!(replies[i].to == rig.peer)) violation(t, "reply to someone else: " + p.what[i]);
        if (!osc_parse(replies[i].data.data(), replies[i].data.size(), r, err)) {
          violation(t, "reply does not parse (" + err + "): " + p.what[i]);
          continue;
        }
        const bool ok = r.address == "/done";
        if (!ok && r.address != "/fail") violation(t, "reply is " + r.address + ": " + p.what[i]);
        if (r.args.empty() || !r.args[0].is_string()) violation(t, "reply names no address: " + p.what[i]);
        const std::string reason = !ok && r.args.size() >= 2 && r.args.back().is_string() ? r.args.back().s : "";
        if (!ok && reason.empty()) violation(t, "/fail without a reason: " + p.what[i]);
        ok ? ++t.done : ++t.failed;
        switch (p.expect[i]) {
          case Expect::kDone:
            // A bundle timed ahead in wall-clock seconds, on a clock running ~17× real time: a
            // stall of the shared machine between blocks (0.5 s under ASan in a CI run) makes it
            // late, and it runs at once answering "late by" as documented. A resource outcome
            // (the harness's pace), not a wrong answer.
            if (!ok && p.what[i].ends_with(" (timed bundle)") && reason.find("late by") != std::string::npos) {
              ++t.resource_fail;
              ++t.resource_reasons["late by (timed bundle: the harness stalled)"];
            } else if (!ok) {
              violation(t, "valid message failed: " + p.what[i] + " → " + r.to_string());
            }
            break;
          case Expect::kFail:
            if (ok) violation(t, "invalid message answered /done: " + p.what[i] + " → " + r.to_string());
            if (!ok) ++t.expected_fail;
            break;
          case Expect::kStaleCue:
            if (ok || reason.find("was reloaded since it was cued") == std::string::npos) {
              violation(t, "a group with a deck reloaded since its cue was not refused as such: " + p.what[i] + " → " +
                               r.to_string());
            } else {
              ++t.stale_cue;
            }
            break;
          case Expect::kResource:
            if (!ok) {
              if (!is_resource_reason(reason)) {
                violation(t, "valid message failed: " + p.what[i] + " → " + r.to_string());
              } else {
                ++t.resource_fail;
                std::string key = reason.substr(0, 40);
                for (char& c : key)
                  if (c >= '0' && c <= '9') c = '#';
                ++t.resource_reasons[key];
              }
            }
            break;
        }
      }
    };

    while (frame < total_frames) {
      const auto n = static_cast<std::uint32_t>(std::min<std::int64_t>(o.block, total_frames - frame));
      // Control side: packets arrive between blocks (Bernoulli per block; bursts sometimes).
      if (frame > 0 && std::uniform_real_distribution<double>(0, 1)(pacing) < p_packet) {
        const int burst = pacing() % 50 == 0 ? 2 + static_cast<int>(pacing() % 20) : 1;
        for (int b = 0; b < burst; ++b) send(gen.next(), gen);
      }
      rig.router->tick();
      // Render-mode pacing: wait (bounded) until every streaming voice's ring holds the block.
      rig.engine.apply_commands();
      for (int i = 0; !rig.engine.streams_ready(n); ++i) {
        if (i == 20000) {
          violation(t, "streams not ready after 20 s of waiting at frame " + std::to_string(frame));
          break;
        }
        ++loader_waits;
        rig.loader.wake();
        std::this_thread::sleep_for(std::chrono::microseconds(i < 100 ? 50 : 1000));
      }
      rig.engine.process(out.data(), n);
      frame += n;
      ++t.blocks;

      // Invariants: samples.
      for (std::uint32_t i = 0; i < n * 2; ++i) {
        const float x = out[i];
        if (!std::isfinite(x)) {
          violation(t, "non-finite sample at frame " + std::to_string(frame - n + i / 2));
          break;
        }
        const float a = std::fabs(x);
        t.peak = std::max(t.peak, a);
        if (a > kCeiling * 1.000001f) {
          violation(t, "sample " + std::to_string(x) + " beyond the limiter ceiling at frame " +
                           std::to_string(frame - n + i / 2));
          break;
        }
      }
      t.sample_checks += n * 2;

      // Control side after the block: events, retirements, notifications.
      rig.ctl.service();
      replies.clear();
      rig.router->take_notifications(replies);
      notifications += replies.size();
      for (const Outgoing& no : replies) {
        OscMessage m;
        std::string err;
        if (!osc_parse(no.data.data(), no.data.size(), m, err) || m.address.rfind("/stemd/", 0) != 0) {
          violation(t, "bad notification");
        }
      }

      // Invariants: voice counts.
      ++t.count_checks;
      const std::uint32_t engine_active = rig.engine.metrics().voices_active.load();
      const std::size_t ctl_voices = rig.ctl.voices_playing();
      std::size_t started = 0;
      std::size_t listed = 0;
      for (const VoiceInfo& v : rig.ctl.voices()) {
        ++listed;
        const auto& tel = rig.engine.telemetry(v.handle.id);
        const std::uint64_t key = (static_cast<std::uint64_t>(v.handle.id) << 32) | v.handle.generation;
        if (tel.generation.load() == v.handle.generation && tel.state.load() != 0) {
          ++started;
          unstarted.erase(key);
        } else {
          scheduled.insert(key);
          auto [it, fresh] = unstarted.emplace(key, frame);
          if (!fresh && frame - it->second > kMaxUnstarted) {
            violation(t, "voice " + std::to_string(v.handle.id) + " (id " + std::to_string(v.slot) +
                             ") allocated but not started for 40 s: leaked");
            unstarted.erase(it);
          }
        }
      }
      if (listed != ctl_voices)
        violation(t, "controller lists " + std::to_string(listed) + " voices, counts " + std::to_string(ctl_voices));
      if (started != engine_active || ctl_voices < engine_active) {
        violation(t, "voice counts disagree at frame " + std::to_string(frame) + ": engine active " +
                         std::to_string(engine_active) + ", controller " + std::to_string(ctl_voices) +
                         " of which started " + std::to_string(started));
      }
      if (unstarted.size() > 4 * ctl_voices + 64) {  // forget voices that ended before starting
        for (auto it = unstarted.begin(); it != unstarted.end();) {
          it = frame - it->second > kMaxUnstarted ? unstarted.erase(it) : std::next(it);
        }
      }

      if (frame >= next_rss) {
        rss.emplace_back(static_cast<double>(frame) / kRate, rss_kb());
        next_rss += 10LL * kRate;
      }
      if (!o.quiet && frame >= next_progress) {
        next_progress += 60LL * kRate;
        const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - wall0).count();
        std::fprintf(stderr,
                     "stemd-soak: %.0f s simulated in %.0f s: %zu voices, %zu sources, %llu packets, RSS %lld KB, "
                     "%llu violations\n",
                     static_cast<double>(frame) / kRate, wall, ctl_voices, rig.ctl.sources_loaded(),
                     static_cast<unsigned long long>(packets), static_cast<long long>(rss.back().second),
                     static_cast<unsigned long long>(t.violations));
      }
    }

    // Wind down as the daemon does: everything fades, the loader stops, the controller drains.
    std::string err;
    rig.ctl.clear(0.0);
    for (int i = 0; i < 1000 && rig.ctl.voices_playing() > 0; ++i) {
      rig.engine.process(out.data(), o.block);
      rig.ctl.service();
    }
    // Every voice must be gone. A scheduled play whose stop (/stemd/stop, a replacing play, an
    // unload, /mixer_cleanup) reached the engine before its frame is named apart: that was a
    // bug the soak found (the stop was dropped and the voice played on with no player; fixed
    // in Engine::cancel_scheduled_plays).
    std::size_t orphans = 0, others = 0;
    for (const VoiceInfo& v : rig.ctl.voices()) {
      const auto& tel = rig.engine.telemetry(v.handle.id);
      const std::uint64_t key = (static_cast<std::uint64_t>(v.handle.id) << 32) | v.handle.generation;
      const bool orphan = scheduled.count(key) != 0;
      orphan ? ++orphans : ++others;
      {
        std::fprintf(stderr,
                     "stemd-soak: %s: voice %u (id %d '%s', loop %d) still allocated after /mixer_cleanup and 1000 "
                     "blocks; engine state %u\n",
                     orphan ? "note: scheduled play outlived its stop" : "left", v.handle.id, v.slot, v.name.c_str(),
                     v.loop ? 1 : 0, static_cast<unsigned>(tel.state.load()));
      }
    }
    known_orphans = orphans;
    if (others > 0 || orphans > 0) {
      violation(t, "voices left after /mixer_cleanup and 1000 blocks: controller " +
                       std::to_string(rig.ctl.voices_playing()) + ", engine " +
                       std::to_string(rig.engine.metrics().voices_active.load()));
    }
    rig.loader.stop();
    rig.ctl.service();

    const auto& m = rig.engine.metrics();
    const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - wall0).count();
    const auto& st = rig.router->stats();
    std::printf("stemd-soak: seed %llu, %.0f s simulated (%llu blocks of %u frames) in %.1f s wall (%.0fx real time)\n",
                static_cast<unsigned long long>(o.seed), static_cast<double>(frame) / kRate,
                static_cast<unsigned long long>(t.blocks), o.block, wall, static_cast<double>(frame) / kRate / wall);
    std::printf(
        "  packets %llu (messages %llu): valid %llu, valid-with-resource %llu, invalid %llu (malformed packets %llu), "
        "bundles %llu (late %llu), notifications %llu\n",
        static_cast<unsigned long long>(packets), static_cast<unsigned long long>(st.messages),
        static_cast<unsigned long long>(gen.valid), static_cast<unsigned long long>(gen.resource),
        static_cast<unsigned long long>(gen.invalid), static_cast<unsigned long long>(gen.malformed_packets),
        static_cast<unsigned long long>(gen.bundles), static_cast<unsigned long long>(gen.late_bundles),
        static_cast<unsigned long long>(notifications));
    std::printf("  replies: /done %llu, /fail %llu (expected %llu, resource %llu)\n",
                static_cast<unsigned long long>(t.done), static_cast<unsigned long long>(t.failed),
                static_cast<unsigned long long>(t.expected_fail), static_cast<unsigned long long>(t.resource_fail));
    for (const auto& [k, v] : t.resource_reasons) {
      std::printf("    resource /fail x%llu: %s…\n", static_cast<unsigned long long>(v), k.c_str());
    }
    std::printf(
        "  engine: voices ended %llu, voice underruns %llu, commands applied %llu, late %llu, schedule overflows %llu, "
        "events dropped %llu, limiter frames %llu, peak %.6f (ceiling %.6f); loader reads %llu, read errors %llu, "
        "render waits %llu\n",
        static_cast<unsigned long long>(m.voices_ended.load()),
        static_cast<unsigned long long>(m.voice_underruns.load()),
        static_cast<unsigned long long>(m.commands_applied.load()),
        static_cast<unsigned long long>(m.commands_late.load()),
        static_cast<unsigned long long>(m.schedule_overflows.load()),
        static_cast<unsigned long long>(m.events_dropped.load()),
        static_cast<unsigned long long>(m.limiter_frames.load()), static_cast<double>(t.peak),
        static_cast<double>(kCeiling), static_cast<unsigned long long>(rig.loader.stats().reads),
        static_cast<unsigned long long>(rig.loader.stats().read_errors), static_cast<unsigned long long>(loader_waits));
  }
  std::filesystem::remove_all(dir);

  // RSS: after a warm-up (the first 10 % of the run, at least one sample), first vs last and the
  // least-squares slope.
  double growth_mb = 0;
  if (rss.size() >= 3) {
    const std::size_t w = std::max<std::size_t>(1, rss.size() / 10);
    std::int64_t max_kb = 0;
    double sx = 0, sy = 0, sxx = 0, sxy = 0;
    const auto cnt = static_cast<double>(rss.size() - w);
    for (std::size_t i = w; i < rss.size(); ++i) {
      sx += rss[i].first;
      sy += static_cast<double>(rss[i].second);
      sxx += rss[i].first * rss[i].first;
      sxy += rss[i].first * static_cast<double>(rss[i].second);
      max_kb = std::max(max_kb, rss[i].second);
    }
    const double slope = cnt > 1 ? (cnt * sxy - sx * sy) / (cnt * sxx - sx * sx) : 0;  // KB per simulated s
    growth_mb = static_cast<double>(rss.back().second - rss[w].second) / 1024.0;
    std::printf(
        "  RSS: %.1f MB at %.0f s (after warm-up), %.1f MB at the end (%.0f s), max %.1f MB; growth %+.2f MB, "
        "slope %+.1f KB per simulated minute (%zu samples)\n",
        static_cast<double>(rss[w].second) / 1024.0, rss[w].first, static_cast<double>(rss.back().second) / 1024.0,
        rss.back().first, static_cast<double>(max_kb) / 1024.0, growth_mb, slope * 60.0, rss.size() - w);
  }
  std::printf(
      "  invariant checks: %llu blocks × (samples, voice counts): %llu samples, %llu count checks, %llu "
      "replies; violations %llu\n",
      static_cast<unsigned long long>(t.blocks), static_cast<unsigned long long>(t.sample_checks),
      static_cast<unsigned long long>(t.count_checks), static_cast<unsigned long long>(t.reply_checks),
      static_cast<unsigned long long>(t.violations));
  std::printf("  groups refused for a deck reloaded since its cue: %llu\n",
              static_cast<unsigned long long>(t.stale_cue));
  if (known_orphans > 0) {
    std::printf("  scheduled voices that outlived the stop sent before their start: %zu (violations)\n", known_orphans);
  }
  if (o.max_rss_growth_mb > 0 && growth_mb > o.max_rss_growth_mb) {
    std::printf("stemd-soak: FAILED: RSS grew %.2f MB after warm-up (limit %.1f MB)\n", growth_mb, o.max_rss_growth_mb);
    return 1;
  }
  if (t.violations > 0) {
    std::printf("stemd-soak: FAILED: %llu invariant violations\n", static_cast<unsigned long long>(t.violations));
    return 1;
  }
  std::printf("stemd-soak: passed\n");
  return 0;
}
