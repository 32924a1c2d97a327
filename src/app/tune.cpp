// `stemd tune` (see tune.hpp): one backend, loader, engine and controller per buffer size, wired
// as the daemon wires them, playing generated files streamed from disk.
#include "tune.hpp"

#include "instance.hpp"
#include "loader_sizing.hpp"
#include "rt_priority.hpp"

#include "audio/backend.hpp"
#include "control/controller.hpp"
#include "io/loader_thread.hpp"
#include "logging.hpp"
#include "options.hpp"
#include "safe_file.hpp"

#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>

#include <fcntl.h>
#include <pthread.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

namespace stemd::app {

namespace fs = std::filesystem;

// ---------------------------------------------------------------- the measurement

namespace {

struct TuneOptions {
  std::uint32_t voices = 32;
  double seconds = 4.0;
  std::vector<std::uint32_t> sizes{128, 256, 512, 1024, 2048};
  std::string backend = "auto";
  std::string device;
  int sample_rate = 0;
  double max_load_percent = 50.0;
  double ring_ms = 400;
  double head_ms = 100;
  std::string temp_dir;
  std::string write_config;
  std::string log_level = "warn";
};

// The generated files: written once, removed when tune ends (however it ends, short of SIGKILL).
class TempFiles {
 public:
  ~TempFiles() { clear(); }
  bool create(const std::string& parent, std::string& error) {
    std::string tmpl = (fs::path(parent) / "stemd-tune-XXXXXX").string();
    if (!mkdtemp(tmpl.data())) {
      error = "cannot create a temporary directory in " + parent + ": " + std::strerror(errno) +
              " (choose another with --temp-dir)";
      return false;
    }
    dir_ = tmpl;
    return true;
  }
  void clear() {
    if (dir_.empty()) return;
    std::error_code ec;
    fs::remove_all(dir_, ec);
    dir_.clear();
    paths.clear();
  }
  const std::string& dir() const { return dir_; }
  std::vector<std::string> paths;
  int rate = 0;
  std::int64_t frames = 0;

 private:
  std::string dir_;
};

void put_le(std::vector<unsigned char>& b, std::uint32_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) b.push_back(static_cast<unsigned char>((v >> (8 * i)) & 0xff));
}

// A 16-bit stereo WAV of low-passed noise and a tone, different for every seed: the format most
// stems come in, decoded by libsndfile's integer path exactly as a user's files are. Written
// directly (a 44-byte header) so that only sound_file.cpp includes <sndfile.h>.
bool write_wav16(const std::string& path, std::int64_t frames, int rate, std::uint32_t seed, std::string& error) {
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) {
    error = "cannot write " + path + ": " + std::strerror(errno);
    return false;
  }
  const auto data_bytes = static_cast<std::uint32_t>(frames * 4);
  std::vector<unsigned char> h;
  h.insert(h.end(), {'R', 'I', 'F', 'F'});
  put_le(h, 36 + data_bytes, 4);
  h.insert(h.end(), {'W', 'A', 'V', 'E', 'f', 'm', 't', ' '});
  put_le(h, 16, 4);
  put_le(h, 1, 2);  // PCM
  put_le(h, 2, 2);  // stereo
  put_le(h, static_cast<std::uint32_t>(rate), 4);
  put_le(h, static_cast<std::uint32_t>(rate) * 4, 4);
  put_le(h, 4, 2);
  put_le(h, 16, 2);
  h.insert(h.end(), {'d', 'a', 't', 'a'});
  put_le(h, data_bytes, 4);
  bool ok = std::fwrite(h.data(), 1, h.size(), f) == h.size();

  std::uint32_t x = seed * 2654435761u + 1;
  float lp_l = 0, lp_r = 0;
  const double w = 2.0 * M_PI * (110.0 * (1 + seed % 7)) / rate;
  std::vector<unsigned char> buf;
  buf.reserve(4096 * 4);
  for (std::int64_t i = 0; ok && i < frames; ++i) {
    auto noise = [&x] {
      x ^= x << 13;
      x ^= x >> 17;
      x ^= x << 5;
      return static_cast<float>(x) / 2147483648.0f - 1.0f;
    };
    lp_l += 0.2f * (noise() - lp_l);
    lp_r += 0.2f * (noise() - lp_r);
    const float tone = 0.1f * static_cast<float>(std::sin(w * static_cast<double>(i)));
    for (float s : {0.4f * lp_l + tone, 0.4f * lp_r + tone}) {
      const auto v = static_cast<std::int16_t>(std::lround(std::clamp(s, -1.0f, 1.0f) * 32767.0f));
      put_le(buf, static_cast<std::uint16_t>(v), 2);
    }
    if (buf.size() >= 4096 * 4 || i + 1 == frames) {
      ok = std::fwrite(buf.data(), 1, buf.size(), f) == buf.size();
      buf.clear();
    }
  }
  ok = (std::fflush(f) == 0) && ok;
  ok = ok && fsync(fileno(f)) == 0;
  const int saved = errno;
  ok = (std::fclose(f) == 0) && ok;
  if (!ok) error = "cannot write " + path + ": " + std::strerror(saved ? saved : EIO);
  return ok;
}

// Evicts a file from the page cache, so the loader reads it from the disk (no effect on tmpfs).
void drop_from_cache(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
  ::close(fd);
}

double cpu_seconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1e-6;
}

enum class Outcome { kOk, kError, kInterrupted };

class Tuner {
 public:
  Tuner(const TuneOptions& o, const sigset_t& sigs) : o_(o), sigs_(sigs) {}

  Outcome measure(std::uint32_t size, TuneResult& out, std::string& described, std::string& error) {
    audio::BackendConfig bc;
    bc.kind = o_.backend;
    bc.device = o_.device;
    bc.sample_rate = o_.sample_rate;
    bc.buffer_size = size;
    bc.quiet_alsa = o_.log_level != "trace" && o_.log_level != "debug";
    std::unique_ptr<audio::Backend> backend =
        bc.kind == "portaudio" ? audio::make_portaudio_backend(bc) : audio::make_null_backend(bc);
    if (!backend->open(error)) return Outcome::kError;
    const int rate = backend->sample_rate();
    described = backend->describe();
    if (files_.rate != rate && !generate(rate, error)) return Outcome::kError;

    // The daemon's owner object, sized as the daemon sizes it for the same flags (default
    // prefetch bounds); the tuner routes no OSC, so only its mixer core is built.
    InstanceConfig ic;
    ic.loader = loader_config(o_.ring_ms, 0, 0, size, rate);
    ic.engine.sample_rate = rate;
    ic.engine.max_block_frames = std::max<std::uint32_t>(size, 4096);
    ic.engine.max_voices = std::max<std::uint32_t>(o_.voices, 16);
    ic.engine.limiter = true;
    const io::LoadOptions& lo = ic.load;
    ic.load.output_rate = rate;
    ic.load.preload_limit_bytes = 0;  // every file streams: the loader and the rings are what is tested
    ic.load.head_frames = static_cast<std::int64_t>(o_.head_ms * 1e-3 * rate);
    Instance inst(ic);
    io::LoaderThread& loader = inst.loader();
    engine::Engine& engine = inst.engine();
    control::Controller& ctl = inst.controller();
    for (std::size_t k = 0; k < files_.paths.size(); ++k) {
      drop_from_cache(files_.paths[k]);
      if (!ctl.load(control::kNow, static_cast<int>(k) + 1, files_.paths[k], "tune" + std::to_string(k), error)) {
        return Outcome::kError;
      }
    }

    loader.start();
    if (!backend->start(engine, error)) {
      loader.stop();
      return Outcome::kError;
    }
    auto& m = engine.metrics();
    Outcome result = Outcome::kOk;
    auto finish = [&](Outcome r) {
      backend->stop();
      loader.stop();
      ctl.service();
      return r;
    };
    // A device's first periods can go nowhere while it settles (JACK connects the ports after
    // activation): start the voices once the stream runs.
    result = wait(2.0, ctl, [&] { return m.callbacks.load() >= 4; });
    if (result == Outcome::kInterrupted) return finish(result);
    if (m.callbacks.load() < 4) {
      error = "the output (" + described + ") did not call back within 2 s";
      return finish(Outcome::kError);
    }
    PolicyReport pr;  // the audio thread raised as the daemon raises it, the loader kept below it
    pr.wanted = backend->wanted_rt_priority();
    pr.owner = backend->rt_priority_owner();
    if (raise_audio_thread(m.audio_thread.load(), pr)) {
      out.scheduling = pr.now.text(), out.realtime = pr.now.realtime, out.rt_refused = pr.refused;
      loader.cap_rt_priority(loader_priority_cap(pr.now));
    }
    const double period = static_cast<double>(size) / rate;
    const std::int64_t span = files_.frames - lo.head_frames - 1;
    for (std::uint32_t i = 0; i < o_.voices; ++i) {
      control::PlayOptions po;
      po.loop = true;
      po.volume = static_cast<float>(0.5 / std::sqrt(static_cast<double>(o_.voices)));
      po.deck = static_cast<int>(i % engine::kNumDecks);
      // Past the head and spread over the file: every voice reads its own part of the disk.
      const double golden = std::fmod(0.6180339887 * (i + 1), 1.0);
      po.start_frame = lo.head_frames + static_cast<std::int64_t>(golden * static_cast<double>(span));
      control::VoiceHandle h;
      if (!ctl.play(control::kNow, static_cast<int>(i % files_.paths.size()) + 1, po, h, error)) {
        error = "cannot start voice " + std::to_string(i + 1) + ": " + error;
        return finish(Outcome::kError);
      }
    }
    // Settle: the voices' first blocks, rings topped up, before the window opens.
    if ((result = wait(std::max(0.25, 4 * period), ctl)) != Outcome::kOk) return finish(result);

    const auto under0 = m.voice_underruns.load(), flow0 = m.device_underflows.load(), cb0 = m.callbacks.load();
    const auto hist0 = m.callback_ns.snapshot();
    const double cpu0 = cpu_seconds();
    const auto t0 = std::chrono::steady_clock::now();
    if ((result = wait(o_.seconds, ctl)) != Outcome::kOk) return finish(result);
    const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const double cpu = cpu_seconds() - cpu0;
    auto hist = m.callback_ns.snapshot();
    for (std::size_t i = 0; i < hist.size(); ++i) hist[i] -= hist0[i];
    out.buffer_size = size;
    out.sample_rate = rate;
    out.voice_underruns = m.voice_underruns.load() - under0;
    out.device_underflows = m.device_underflows.load() - flow0;
    out.callbacks = m.callbacks.load() - cb0;
    out.p99_ns = engine::DurationHistogram::percentile_ns(hist, 0.99);
    out.cpu_percent = wall > 0 ? 100.0 * cpu / wall : 0.0;
    out.output_latency_s = backend->output_latency_seconds();
    if (m.voices_active.load() < o_.voices) {
      error = fmt::format("only {} of {} voices were still playing at the end of the window", m.voices_active.load(),
                          o_.voices);
      return finish(Outcome::kError);
    }
    finish(Outcome::kOk);
    const auto ls = loader.stats();
    bytes_streamed_ += ls.frames_read * 4;  // 16-bit stereo on disk
    reads_ += ls.reads;
    read_errors_ += ls.read_errors;
    if (backend->failed()) {
      error = backend->failure();
      return Outcome::kError;
    }
    return Outcome::kOk;
  }

  const TempFiles& files() const { return files_; }
  std::uint64_t bytes_streamed() const { return bytes_streamed_; }
  std::uint64_t reads() const { return reads_; }
  std::uint64_t read_errors() const { return read_errors_; }
  bool create_dir(std::string& error) { return files_.create(o_.temp_dir, error); }

 private:
  // K files for N voices (several voices of one file stream independently, each with its own
  // reader, offset and ring), 8 s each; voices loop over them.
  bool generate(int rate, std::string& error) {
    files_.paths.clear();
    files_.rate = rate;
    files_.frames = 8LL * rate;
    const std::uint32_t count = std::min<std::uint32_t>(o_.voices, 8);
    for (std::uint32_t k = 0; k < count; ++k) {
      const std::string path = (fs::path(files_.dir()) / ("stem" + std::to_string(k) + ".wav")).string();
      if (!write_wav16(path, files_.frames, rate, k + 1, error)) return false;
      files_.paths.push_back(path);
    }
    return true;
  }

  // Services the controller every 20 ms for `seconds` or until `done`; SIGINT/SIGTERM interrupt.
  Outcome wait(double seconds, control::Controller& ctl, const std::function<bool()>& done = {}) {
    const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
    while (std::chrono::steady_clock::now() < end) {
      if (done && done()) return Outcome::kOk;
      timespec timeout{0, 20'000'000};
      const int sig = sigtimedwait(&sigs_, nullptr, &timeout);
      if (sig == SIGINT || sig == SIGTERM) return Outcome::kInterrupted;
      ctl.service();
    }
    return Outcome::kOk;
  }

  const TuneOptions& o_;
  sigset_t sigs_;
  TempFiles files_;
  std::uint64_t bytes_streamed_ = 0, reads_ = 0, read_errors_ = 0;
};

// Right-aligned in `width` columns (code points, not bytes: the cells hold "µs").
std::string pad(const std::string& s, std::size_t width) {
  std::size_t cols = 0;
  for (unsigned char c : s) cols += (c & 0xC0) != 0x80;
  return std::string(width > cols ? width - cols : 0, ' ') + s;
}

constexpr std::size_t kWidths[] = {7, 9, 11, 12, 27, 9};

std::string row(const TuneResult& r, double max_load) {
  const std::string cells[] = {std::to_string(r.buffer_size),
                               fmt::format("{:.1f}", 1000.0 * r.buffer_size / r.sample_rate),
                               std::to_string(r.voice_underruns),
                               std::to_string(r.device_underflows),
                               fmt::format("{:.0f} / {:.0f} µs ({:.0f} %)", static_cast<double>(r.p99_ns) / 1e3,
                                           r.budget_ns() / 1e3, 100.0 * static_cast<double>(r.p99_ns) / r.budget_ns()),
                               fmt::format("{:.1f} %", r.cpu_percent)};
  std::string out;
  for (std::size_t i = 0; i < std::size(cells); ++i) out += pad(cells[i], kWidths[i]);
  return out + "  " + tune_verdict(r, max_load);
}

std::string table_header() {
  const char* top[] = {"buffer", "latency", "underruns", "device", "callback p99 / budget", "CPU"};
  const char* bottom[] = {"frames", "ms", "", "underflows", "", "1 core"};
  std::string a, b;
  for (std::size_t i = 0; i < std::size(top); ++i) {
    a += pad(top[i], kWidths[i]);
    b += pad(bottom[i], kWidths[i]);
  }
  return a + "  verdict\n" + b + "\n";
}

}  // namespace

namespace {

// `stemd tune`'s flags. Returns -1 to carry on, else the exit code (--help: 0, bad flags: 2).
int parse_tune_args(int argc, char** argv, TuneOptions& o) {
  CLI::App app{
      "stemd tune — measures which buffer size this machine plays without glitches.\n"
      "For each size it streams --voices files from disk through stemd's loader and mixer to the "
      "output for --seconds, then prints the size, its latency, voice underruns, device underflows, "
      "the callback's p99 against the period's budget and the process's CPU use, and recommends "
      "the smallest size that is stable — no voice underrun, no device underflow, p99 at most "
      "--max-load % of the period — with every larger size stable too. On a real device it plays "
      "quiet noise (about -26 dBFS).",
      "stemd tune"};
  app.add_option("--voices", o.voices, "Streams played at once (each a streamed file with its own ring)")
      ->check(CLI::Range(1, 4096))
      ->capture_default_str();
  app.add_option("--seconds", o.seconds, "Measured time per buffer size")
      ->check(CLI::Range(0.1, 3600.0))
      ->capture_default_str();
  app.add_option("--sizes", o.sizes, "Buffer sizes to try, in frames (16..8192)")
      ->delimiter(',')
      ->check(CLI::Range(16, 8192))
      ->capture_default_str();
  app.add_option("--backend", o.backend,
                 "Output, as the daemon chooses it: auto (PortAudio, or null when it has no output device), "
                 "portaudio, null (no hardware, paced by the clock)")
      ->check(CLI::IsMember({"auto", "portaudio", "null"}))
      ->capture_default_str();
  app.add_option("--device", o.device, "PortAudio output device: index or (part of) its name");
  check_sample_rate(
      app.add_option("--sample-rate", o.sample_rate, "Sample rate in Hz (0 = the device's; 48000 for null)"))
      ->capture_default_str();
  app.add_option("--max-load", o.max_load_percent,
                 "Callback p99, in % of the period's budget, that still counts as stable (the rest is "
                 "headroom for the loader, the OS and spikes)")
      ->check(CLI::Range(1.0, 100.0))
      ->capture_default_str();
  app.add_option("--ring-ms", o.ring_ms, "Read-ahead per streaming voice, in ms (as the daemon's --ring-ms)")
      ->check(CLI::Range(20.0, 10000.0))
      ->capture_default_str();
  app.add_option("--temp-dir", o.temp_dir,
                 "Where to write the generated files (removed afterwards); put it on the disk your media is on. "
                 "Default: $TMPDIR or /tmp");
  app.add_option("--write-config", o.write_config,
                 "Save the recommendation as buffer-size = N in this stemd config file (the key is updated "
                 "or added, everything else kept; written atomically)")
      ->type_name("FILE");
  app.add_option("--log-level", o.log_level, "trace, debug, info, warning, error, critical or off")
      ->check(CLI::IsMember(kLogLevelNames))
      ->capture_default_str();
  add_finite_checks(app);  // NaN/Inf refused by every numeric option
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);
    return rc == 0 ? 0 : 2;
  }
  return -1;
}

// --write-config is checked before minutes of measuring, not after: returns -1, or 2.
int check_write_config(const TuneOptions& o, std::string& config_text) {
  if (o.write_config.empty()) return -1;
  std::error_code ec;
  if (fs::is_directory(o.write_config, ec)) {
    spdlog::error("--write-config {}: is a directory", o.write_config);
    return 2;
  }
  if (fs::exists(o.write_config, ec)) {  // a FIFO there is refused, not waited on
    std::string re;
    if (read_regular_file(o.write_config, 16u << 20, config_text, re) != ReadResult::kOk) {
      spdlog::error("--write-config {}", re);
      return 2;
    }
  }
  fs::path dir = fs::path(o.write_config).parent_path();
  if (dir.empty()) dir = ".";
  if (::access(dir.c_str(), W_OK) != 0) {
    spdlog::error("--write-config {}: cannot write in {}: {}", o.write_config, dir.string(), std::strerror(errno));
    return 2;
  }
  return -1;
}

// Every size in turn: its row of the table. Returns -1, or the exit code (2, or 130 when
// interrupted).
int measure_sizes(Tuner& tuner, const TuneOptions& o, std::vector<TuneResult>& results, std::string& described) {
  const double max_load = o.max_load_percent / 100.0;
  std::string err;
  bool header = false;
  for (std::uint32_t size : o.sizes) {
    TuneResult r;
    const Outcome oc = tuner.measure(size, r, described, err);
    if (oc == Outcome::kInterrupted) {
      std::fprintf(stderr, "stemd tune: interrupted\n");
      return 130;
    }
    if (oc == Outcome::kError) {
      spdlog::error("buffer size {}: {}", size, err);
      return 2;
    }
    if (!header) {
      header = true;
      std::printf(
          "stemd tune: %u voices streamed from %zu generated 16-bit WAV files (in %s), %.1f s per size\n"
          "output: %s at %d Hz, audio thread %s\n"
          "stable: no voice underrun, no device underflow, callback p99 at most %.0f %% of the period\n\n",
          o.voices, tuner.files().paths.size(), tuner.files().dir().c_str(), o.seconds, described.c_str(),
          r.sample_rate, r.realtime || r.scheduling.empty() ? r.scheduling.c_str() : "SCHED_OTHER (not real-time)",
          o.max_load_percent);
      std::fputs(table_header().c_str(), stdout);
    }
    std::printf("%s\n", row(r, max_load).c_str());
    std::fflush(stdout);
    results.push_back(r);
  }
  return -1;
}

// The loader's totals, the JACK note (PortAudio on JACK: JACK owns the period).
void report_totals(const Tuner& tuner, const std::vector<TuneResult>& results, const std::string& described) {
  std::printf("\nthe loader streamed %.1f MB in %llu reads (read errors: %llu)\n", tuner.bytes_streamed() / 1e6,
              static_cast<unsigned long long>(tuner.reads()), static_cast<unsigned long long>(tuner.read_errors()));
  if (described.find("JACK") != std::string::npos && !results.empty()) {
    double lo = results.front().output_latency_s, hi = lo;
    for (const auto& r : results) {
      lo = std::min(lo, r.output_latency_s);
      hi = std::max(hi, r.output_latency_s);
    }
    std::printf(
        "note: PortAudio runs on JACK here, and the JACK server owns the period (jackd -p): PortAudio adapts "
        "stemd's buffer to it, device underflows are JACK xruns, and the latency is at least JACK's period "
        "(PortAudio reported %.1f to %.1f ms of output latency). To choose JACK's period, run stemd tune with "
        "jackd started at each -p and --sizes equal to it.\n",
        lo * 1000.0, hi * 1000.0);
  }
}

// The recommendation, written to --write-config when given. Returns the exit code.
int recommend(const TuneOptions& o, const std::vector<TuneResult>& results, const std::string& described,
              const std::string& config_text) {
  const double max_load = o.max_load_percent / 100.0;
  std::string err;
  const int best = tune_recommend(results, max_load);
  bool earlier_stable = false;
  for (int i = 0; i < (best < 0 ? static_cast<int>(results.size()) : best); ++i) {
    earlier_stable = earlier_stable || tune_verdict(results[static_cast<std::size_t>(i)], max_load) == "stable";
  }
  const std::string rt_note = tune_scheduling_note(results, described.find("JACK") != std::string::npos);
  if (!rt_note.empty()) std::printf("note: %s\n", rt_note.c_str());
  if (earlier_stable) {
    std::printf(
        "note: a smaller size measured stable but a larger one did not: the machine is noisy; a longer "
        "--seconds gives a firmer answer\n");
  }
  if (best < 0) {
    std::printf(
        "\nno recommendation: %s was not stable. Play fewer voices, raise --ring-ms if voices underran (a slow "
        "disk), check the CPU load, or try larger --sizes.\n",
        results.empty() ? "nothing" : (std::to_string(results.back().buffer_size) + " frames").c_str());
    if (!o.write_config.empty()) std::printf("%s not written.\n", o.write_config.c_str());
    return 1;
  }
  const TuneResult& rec = results[static_cast<std::size_t>(best)];
  std::printf("\nrecommended: buffer-size = %u (%.1f ms at %d Hz), the smallest stable size%s\n", rec.buffer_size,
              1000.0 * rec.buffer_size / rec.sample_rate, rec.sample_rate,
              rt_note.empty() ? "" : " measured without real-time scheduling (see the note)");
  if (!o.write_config.empty()) {
    const std::string note =
        fmt::format("stemd tune: {} voices, stable from {} frames on {}", o.voices, rec.buffer_size, described);
    const std::string text = set_buffer_size_in_config(config_text, rec.buffer_size, note);
    if (!write_file_atomic(o.write_config, text, err, AtomicWrite{.follow_symlink = true})) {
      spdlog::error("--write-config: {}", err);
      return 2;
    }
    std::printf("wrote buffer-size = %u to %s\n", rec.buffer_size, o.write_config.c_str());
  } else {
    std::printf("use it: stemd --buffer-size %u, or buffer-size = %u in the config file (--write-config FILE)\n",
                rec.buffer_size, rec.buffer_size);
  }
  return 0;
}

}  // namespace

int run_tune(int argc, char** argv) {
  TuneOptions o;
  if (int rc = parse_tune_args(argc, argv, o); rc >= 0) return rc;
  setup_logging(o.log_level);
  std::sort(o.sizes.begin(), o.sizes.end());
  o.sizes.erase(std::unique(o.sizes.begin(), o.sizes.end()), o.sizes.end());
  std::string config_text;
  if (int rc = check_write_config(o, config_text); rc >= 0) return rc;
  if (o.temp_dir.empty()) {
    const char* t = std::getenv("TMPDIR");
    o.temp_dir = t && *t ? t : "/tmp";
  }

  // SIGINT/SIGTERM are taken in Tuner::wait (so the temporary files are always removed); block
  // them before any thread starts.
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);

  if (o.backend == "auto") {
    if (audio::list_output_devices(o.log_level != "trace" && o.log_level != "debug").empty()) {
      spdlog::warn("PortAudio has no output device: measuring the null backend (no sound)");
      o.backend = "null";
    } else {
      o.backend = "portaudio";
    }
  }

  Tuner tuner(o, sigs);
  std::string err;
  if (!tuner.create_dir(err)) {
    spdlog::error("{}", err);
    return 2;
  }
  std::vector<TuneResult> results;
  std::string described;
  if (int rc = measure_sizes(tuner, o, results, described); rc >= 0) return rc;
  report_totals(tuner, results, described);
  return recommend(o, results, described, config_text);
}

}  // namespace stemd::app
