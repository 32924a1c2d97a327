// Flags (see options.hpp).
#include "options.hpp"

#include "bpm_config.hpp"
#include "control/suggest.hpp"
#include "io/sound_file.hpp"
#include "logging.hpp"
#include "safe_file.hpp"

#include <CLI/CLI.hpp>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef STEMD_VERSION
#define STEMD_VERSION "0.0.0"
#endif
#ifndef STEMD_GIT_REVISION
#define STEMD_GIT_REVISION "unknown"
#endif

namespace stemd::app {

namespace {

struct Preset {
  const char* name;
  std::uint32_t buffer_size;
  const char* what;
  std::uint32_t memory_mb;  // --max-memory-mb when not given: what clients may make it hold
};
// From the tuning guide of the server stemd replaces (and config/presets/*.conf). Memory: a
// quarter or less of the board's usual RAM (a Pi 4 may have 1 GB).
constexpr Preset kPresets[] = {
    {"pi4", 1024, "Raspberry Pi 4", 256},
    {"pi5", 512, "Raspberry Pi 5", 1024},
    {"desktop", 512, "desktop Linux", 2048},
    {"workstation", 256, "workstation", 4096},
    {"live", 128, "live performance on a tuned system", 2048},
};

const Preset* find_preset(const std::string& name) {
  for (const auto& p : kPresets) {
    if (name == p.name) return &p;
  }
  return nullptr;
}

// The board, from the device tree (Raspberry Pis and other ARM boards); empty elsewhere.
std::string board_model(std::string& where) {
  for (const char* path : {"/sys/firmware/devicetree/base/model", "/proc/device-tree/model"}) {
    std::FILE* f = std::fopen(path, "rb");
    if (!f) continue;
    char buf[256] = {};
    const std::size_t n = std::fread(buf, 1, sizeof buf - 1, f);
    std::fclose(f);
    where = path;
    return std::string(buf, strnlen(buf, n));
  }
  return {};
}

std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t\r");
  if (b == std::string::npos) return {};
  const auto e = s.find_last_not_of(" \t\r");
  return s.substr(b, e - b + 1);
}

// An integer in [lo, hi]; the error names the range whatever was wrong ("abc", "-5", "99999").
CLI::Validator int_range(long lo, long hi) {
  return CLI::Validator(
      [lo, hi](std::string& s) -> std::string {
        const std::string want = "must be an integer from " + std::to_string(lo) + " to " + std::to_string(hi);
        char* end = nullptr;
        errno = 0;
        const long v = std::strtol(s.c_str(), &end, 10);
        if (s.empty() || end == nullptr || *end != '\0' || errno != 0) return "'" + s + "' " + want;
        if (v < lo || v > hi) return std::to_string(v) + " is out of range: " + want;
        return {};
      },
      "INT in [" + std::to_string(lo) + ".." + std::to_string(hi) + "]");
}

// Every numeric option refuses NaN and ±Inf: a range check alone lets NaN through (every
// comparison with NaN is false), e.g. --tone-seconds nan, --bpm nan, --limiter-threshold-db nan.
// Added to every option in one loop (add_finite_checks), so an option added later is covered.
CLI::Validator finite_number() {
  return CLI::Validator(
      [](std::string& s) -> std::string {
        const std::string t = trim(s);
        char* end = nullptr;
        const double v = std::strtod(t.c_str(), &end);
        if (!t.empty() && end != nullptr && *end == '\0' && !std::isfinite(v)) {
          return "'" + s + "' is not a finite number";
        }
        return {};
      },
      "");  // no description: the help keeps showing the option's own type and range
}

}  // namespace

namespace {

// The --help groups (and config-file sections, kSections): every option belongs to one.
void assign_groups(CLI::App& app) {
  static const std::pair<const char*, std::vector<std::string>> kGroups[] = {
      {"Output",
       {"backend", "device", "sample-rate", "preset", "buffer-size", "list-devices", "on-device-loss", "render-to",
        "duration"}},
      {"Playback and sound",
       {"play", "loop", "volume", "limiter", "limiter-threshold-db", "master", "resample-quality", "crossfade-law",
        "tone-level-db", "tone-seconds", "shutdown-fade-ms", "script"}},
      {"Files and streaming",
       {"preload-limit-mb", "ring-ms", "ring-min-ms", "ring-max-ms", "head-ms", "state-file", "restore-voices",
        "state-interval"}},
      {"OSC and network",
       {"no-osc", "osc-port", "osc-bind", "osc-tcp-port", "allow", "media-root", "tcp-idle-timeout",
        "tcp-frame-timeout", "subscription-ttl", "cookie-exempt"}},
      {"Limits and security",
       {"max-voices", "max-resampled-voices", "max-stretched-voices", "max-sources", "max-memory-mb", "max-channels",
        "max-subscribers", "max-string", "max-tcp-clients", "max-tcp-clients-per-address"}},
      {"Service and logging", {"config", "log-level", "watch", "health-interval", "mlock", "help", "version"}},
  };
  for (CLI::Option* opt : app.get_options()) {
    std::string group = "crowdstream compatibility";  // the old server's flags: everything else
    for (const auto& [name, keys] : kGroups) {
      for (const auto& k : keys) {
        if (opt->check_lname(k)) group = name;
      }
    }
    opt->group(group);
  }
}

// Columns (code points) of UTF-8 text.
std::size_t columns(const std::string& s) {
  std::size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80 ? 1 : 0;
  return n;
}

// --help within 100 columns: names in a 34-column left part, descriptions wrapped at word
// boundaries to the rest (CLI11 2.1 does not wrap).
constexpr std::size_t kHelpWidth = 100, kHelpNameColumn = 34;
std::string wrap(const std::string& text, std::size_t width) {
  std::string out, line;
  std::istringstream words(text);
  std::string w;
  while (words >> w) {
    if (!line.empty() && columns(line) + 1 + columns(w) > width) {
      out += line + "\n";
      line.clear();
    }
    line += (line.empty() ? "" : " ") + w;
  }
  return out + line;
}

class WrappingFormatter : public CLI::Formatter {
 public:
  WrappingFormatter() { column_width(kHelpNameColumn); }
  std::string make_option_desc(const CLI::Option* opt) const override {
    return wrap(opt->get_description(), kHelpWidth - kHelpNameColumn);
  }
  // "Options:" above the groups: help2man makes it the man page's OPTIONS section, with each
  // group a subsection.
  std::string make_usage(const CLI::App* app, std::string name) const override {
    return CLI::Formatter::make_usage(app, std::move(name)) + "\nOptions:\n";
  }
  std::string make_description(const CLI::App* app) const override {
    return wrap(app->get_description(), kHelpWidth) + "\n";
  }
  std::string make_footer(const CLI::App* app) const override {
    std::string out, para;
    std::istringstream in(app->get_footer());
    while (std::getline(in, para)) out += wrap(para, kHelpWidth) + "\n";
    return out;
  }
};

std::string indent(std::string text, const std::string& by) {
  for (std::size_t at = text.find('\n'); at != std::string::npos; at = text.find('\n', at + 1)) {
    text.insert(at + 1, by);
  }
  return text;
}

std::string version_text() {
  std::string formats;
  for (const auto& f : io::sndfile_formats()) formats += (formats.empty() ? "" : ", ") + f;
  return std::string("stemd ") + STEMD_VERSION + " (git " + STEMD_GIT_REVISION + ")\n" + io::sndfile_version() +
         "\nreads: " + indent(wrap(formats, kHelpWidth - 7), "       ");
}

}  // namespace

// Every option that takes a value other than free text (TEXT: names, addresses; FILE: paths)
// gets finite_number(): FLOAT options, SECONDS, and integer options (which refuse "nan" anyway).
void add_finite_checks(CLI::App& app) {
  for (CLI::Option* opt : app.get_options()) {
    if (opt->get_type_size() == 0) continue;  // a flag
    std::string type = opt->get_type_name();
    type = type.substr(0, type.find(':'));  // without the validators' descriptions
    if (type == "TEXT" || type == "FILE") continue;
    opt->check(finite_number());
  }
}

// --sample-rate: 0 (the device's own rate) or 8000..384000 Hz. A rate of 1 Hz made a period of
// 1024 frames last 17 minutes (the null backend's pacer, shutdown).
CLI::Option* check_sample_rate(CLI::Option* opt) {
  return opt->check(CLI::Validator(
      [](std::string& s) -> std::string {
        const std::string want = "must be 0 (the device's rate) or from 8000 to 384000 Hz";
        char* end = nullptr;
        errno = 0;
        const long v = std::strtol(s.c_str(), &end, 10);
        if (s.empty() || end == nullptr || *end != '\0' || errno != 0) return "'" + s + "' " + want;
        if (v != 0 && (v < 8000 || v > 384000)) return std::to_string(v) + " Hz is out of range: " + want;
        return {};
      },
      "0 or INT in [8000..384000]"));
}

namespace {

std::string fmt_ring_order(double lo, double mid, double hi) {
  char b[160];
  std::snprintf(b, sizeof b, "--ring-min-ms (%g) ≤ --ring-ms (%g) ≤ --ring-max-ms (%g) must hold", lo, mid, hi);
  return b;
}

std::string latency_help() {
  std::string s = "Frames per buffer (period), 16..8192. Latency per buffer at 48 kHz:";
  for (int n : {128, 256, 512, 1024, 2048}) {
    char b[64];
    std::snprintf(b, sizeof b, " %d = %.1f ms%s", n, 1000.0 * n / 48000, n == 2048 ? "" : ",");
    s += b;
  }
  s += ". Raise it if the log reports underruns (Raspberry Pi 4: 1024).";
  return s;
}

// The --config FILE argument, if any (the file is checked before CLI11 reads it).
std::string config_arg(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--config" && i + 1 < argc) return argv[i + 1];
    if (a.rfind("--config=", 0) == 0) return a.substr(9);
  }
  return {};
}

bool on_command_line(int argc, char** argv, const std::string& lname) {
  const std::string flag = "--" + lname;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == flag || a.rfind(flag + "=", 0) == 0) return true;
  }
  return false;
}

// ---- config-file sections. `[name]` starts a section; a key K below it means the flag
// `name-K` when that exists (`[osc]` + `port` = `osc-port`), else K itself when K is one of the
// section's flags (`[limits]` + `max-voices`). The sections are the --help groups.
struct Section {
  const char* name;
  const char* group;  // the --help group its keys belong to
};
constexpr Section kSections[] = {
    {"output", "Output"},
    {"playback", "Playback and sound"},
    {"files", "Files and streaming"},
    {"osc", "OSC and network"},
    {"limits", "Limits and security"},
    {"crowdstream", "crowdstream compatibility"},
    {"service", "Service and logging"},
};

const Section* find_section(const std::string& name) {
  for (const auto& s : kSections) {
    if (name == s.name) return &s;
  }
  return nullptr;
}

std::string section_of_group(const std::string& group) {
  for (const auto& s : kSections) {
    if (group == s.group) return s.name;
  }
  return {};
}

std::string section_names() {
  std::string out;
  for (const auto& s : kSections) out += std::string(out.empty() ? "" : ", ") + "[" + s.name + "]";
  return out;
}

// The known keys (long flag names) and the section each belongs to.
std::map<std::string, std::string> known_keys(const CLI::App& app) {
  std::map<std::string, std::string> known;
  for (const CLI::Option* opt : app.get_options()) {
    for (const auto& n : opt->get_lnames()) known[n] = section_of_group(opt->get_group());
  }
  known.erase("help");
  known.erase("version");
  return known;
}

// The flag a key in `section` means, or "" (then `error` says why, with a suggestion).
std::string resolve_key(const std::map<std::string, std::string>& known, const std::string& section,
                        const std::string& key, std::string& error) {
  std::string dashed = key;
  std::replace(dashed.begin(), dashed.end(), '_', '-');
  auto is_known = [&](const std::string& k) { return known.count(k) != 0; };
  if (section.empty()) {
    if (is_known(key)) return key;
  } else {
    if (is_known(section + "-" + key)) return section + "-" + key;
    if (is_known(key) && known.at(key) == section) return key;
    if (is_known(key)) {
      error = "key '" + key + "' belongs in [" + known.at(key) + "] (or at the top, before any section), not in [" +
              section + "]";
      return {};
    }
  }
  control::ClosestWord near(key);
  for (const auto& [k, sec] : known) {
    near.consider(k);
    if (!section.empty() && k.rfind(section + "-", 0) == 0) near.consider(k.substr(section.size() + 1));
  }
  std::string hint;
  if (is_known(dashed) && (section.empty() || known.at(dashed) == section)) {
    hint = dashed;
  } else if (!near.best().empty()) {
    hint = near.best();
  }
  error = "unknown key '" + key + "'" + (section.empty() ? "" : " in [" + section + "]") +
          (hint.empty() ? "" : " (did you mean '" + hint + "'?)") + "; the keys are the long flags (stemd --help)";
  return {};
}

// Rewrites a config file's text without sections: `[osc]` + `port = 1` becomes `osc-port = 1`,
// the section line becomes a blank line (line numbers stay). Keys that do not resolve are left
// as they are (scan_config has refused them already).
class SectionedConfig : public CLI::ConfigTOML {
 public:
  explicit SectionedConfig(std::map<std::string, std::string> known) : known_(std::move(known)) {}
  std::vector<CLI::ConfigItem> from_config(std::istream& input) const override {
    std::stringstream flat;
    std::string line, section;
    while (std::getline(input, line)) {
      const std::string t = trim(line);
      if (!t.empty() && t[0] == '[' && t.back() == ']' && t.find('=') == std::string::npos) {
        section = trim(t.substr(1, t.size() - 2));
        flat << "\n";
        continue;
      }
      const auto eq = t.find('=');
      if (!section.empty() && !t.empty() && t[0] != '#' && t[0] != ';' && eq != std::string::npos) {
        std::string e;
        const std::string key = resolve_key(known_, section, trim(t.substr(0, eq)), e);
        if (!key.empty()) {
          flat << key << " = " << t.substr(eq + 1) << "\n";
          continue;
        }
      }
      flat << line << "\n";
    }
    return CLI::ConfigTOML::from_config(flat);
  }

 private:
  std::map<std::string, std::string> known_;
};

// Reads the config file line by line: every key must be `key = value` with a known key (the
// long flag names, in sections or not). An unknown key, an unknown section, an unreadable file
// or a line that is not `key = value` is an error naming the file and line. `lines` maps each
// flag to the line that sets it.
// `read_from` is where it is read (the descriptor parse_options opened, /proc/self/fd/N);
// messages name `path`.
bool scan_config(const std::string& path, const std::string& read_from, const CLI::App& app,
                 std::map<std::string, int>& lines, std::vector<std::string>& warnings, std::string& error) {
  // Read once, without blocking: a FIFO (or a device) at the path is refused at once — at start
  // and on SIGHUP, where a blocked open would stop the daemon from honouring SIGTERM.
  std::string text;
  if (read_regular_file(read_from, 1u << 20, text, error) != ReadResult::kOk) {
    if (error.rfind(read_from, 0) == 0) error = path + error.substr(read_from.size());
    error = "config file " + error;
    return false;
  }
  std::istringstream in(text);
  const auto known = known_keys(app);
  std::string line, section;
  for (int no = 1; std::getline(in, line); ++no) {
    const std::string t = trim(line);
    if (t.empty() || t[0] == '#' || t[0] == ';') continue;
    const std::string where = path + ":" + std::to_string(no) + ": ";
    if (t[0] == '[') {
      const std::string name = t.back() == ']' ? trim(t.substr(1, t.size() - 2)) : std::string();
      if (find_section(name) == nullptr) {
        control::ClosestWord near(name);
        for (const auto& sec : kSections) near.consider(sec.name);
        error = where + "unknown section " + t + (near.best().empty() ? "" : " (did you mean [" + near.best() + "]?)") +
                "; the sections are " + section_names();
        return false;
      }
      section = name;
      continue;
    }
    const auto eq = t.find('=');
    if (eq == std::string::npos) {
      error = where + "'" + t + "' is not a 'key = value' line";
      return false;
    }
    const std::string raw = trim(t.substr(0, eq));
    if (trim(t.substr(eq + 1)).empty()) {
      error = where + "key '" + raw + "' has no value";
      return false;
    }
    std::string e;
    const std::string key = resolve_key(known, section, raw, e);
    if (key.empty()) {
      error = where + e;
      return false;
    }
    if (auto it = lines.find(key); it != lines.end()) {
      warnings.push_back(where + "'" + key + "' is also set on line " + std::to_string(it->second) + "; this one wins");
    }
    lines[key] = no;
  }
  return true;
}

// The config file when --config is not given: $XDG_CONFIG_HOME/stemd/stemd.conf (or
// ~/.config/stemd/stemd.conf), then /etc/stemd/stemd.conf. `searched` lists where it looked.
std::string search_config(std::string& searched) {
  std::vector<std::string> candidates;
  const char* xdg = std::getenv("XDG_CONFIG_HOME");
  const char* home = std::getenv("HOME");
  if (xdg != nullptr && xdg[0] == '/') {
    candidates.push_back(std::string(xdg) + "/stemd/stemd.conf");
  } else if (home != nullptr && home[0] == '/') {
    candidates.push_back(std::string(home) + "/.config/stemd/stemd.conf");
  }
  candidates.push_back("/etc/stemd/stemd.conf");
  for (const auto& c : candidates) {
    searched += (searched.empty() ? "" : ", ") + c;
    if (::access(c.c_str(), F_OK) == 0) return c;
  }
  return {};
}

}  // namespace

std::vector<std::string> changed_keys(const Options& before, const Options& after) {
  auto parse = [](const std::string& toml) {
    std::map<std::string, std::string> kv;
    std::istringstream in(toml);
    std::string line;
    while (std::getline(in, line)) {
      const auto eq = line.find('=');
      if (eq == std::string::npos || line[0] == '#') continue;
      kv[trim(line.substr(0, eq))] = trim(line.substr(eq + 1));
    }
    return kv;
  };
  const auto a = parse(before.effective_config), b = parse(after.effective_config);
  std::vector<std::string> out;
  for (const auto& [k, v] : b) {
    auto it = a.find(k);
    if (it == a.end() || it->second != v) out.push_back(k);
  }
  for (const auto& [k, v] : a) {
    if (b.count(k) == 0) out.push_back(k);
  }
  return out;
}

int parse_options(int argc, char** argv, Options& o, std::string* error) {
  // An error: printed (at start) or handed back (a reload); exit status 2.
  auto fail = [error](const std::string& msg) {
    if (error != nullptr) {
      *error = msg;
    } else {
      std::fprintf(stderr, "stemd: %s\n", msg.c_str());
    }
    return 2;
  };
  CLI::App app{"stemd — streams audio files from disk to an audio device, mixed, driven over OSC", "stemd"};
  app.set_help_flag();  // added again after the last option: --help lists it last, in its group
  app.allow_config_extras(CLI::config_extras_mode::error);
  app.footer(
      "Config file sections: [output] [playback] [files] [osc] [limits] [crowdstream] [service]; in [osc], "
      "port = osc-port.\nMeasure the buffer size this machine needs: stemd tune (stemd tune --help).\nman stemd, "
      "/usr/share/doc/stemd/README.md");

  app.add_option("--backend", o.backend,
                 "Output: auto (PortAudio, or null when it has no output device and no --device is given), "
                 "portaudio (waits for its device when it is missing at start), null (no hardware, real-time "
                 "paced), render (to a file)")
      ->check(CLI::IsMember({"auto", "portaudio", "null", "render"}))
      ->capture_default_str();
  app.add_option("--device", o.device,
                 "PortAudio output device: index or (part of) its name; see --list-devices. Missing at "
                 "start: stemd waits for it (status 'waiting'), never falls back to null");
  app.add_option("--sample-rate", o.sample_rate,
                 "Output sample rate in Hz (0 = the device's default; 48000 without one)")
      ->capture_default_str();
  check_sample_rate(app.get_option("--sample-rate"));  // 0, or 8000..384000
  app.add_option("--preset", o.preset,
                 "Platform preset for the buffer size: pi4 (1024), pi5 (512), desktop (512), "
                 "workstation (256), live (128). Without it (and without --buffer-size) the "
                 "board model picks one")
      ->check(CLI::IsMember({"pi4", "pi5", "desktop", "workstation", "live"}));
  app.add_option("-b,--buffer-size", o.buffer_size, latency_help())
      ->transform(int_range(16, 8192))
      ->capture_default_str();
  app.add_flag("--list-devices", o.list_devices, "List PortAudio's output devices and exit");
  app.add_option("--on-device-loss", o.on_device_loss,
                 "When the output device goes away: recover (keep every source, level and voice, retry the "
                 "device every 0.5 s doubling to 5 s, play on where it stopped) or exit (status 3, for a "
                 "service manager to restart)")
      ->check(CLI::IsMember({"recover", "exit"}))
      ->capture_default_str();
  app.add_option("--play", o.play, "Play FILE at start (repeatable); a file that cannot be loaded is an error")
      ->type_name("FILE");
  app.add_flag("--loop", o.loop, "Loop the --play files");
  app.add_option("--volume", o.volume, "Volume of the --play files (linear, 0..4)")
      ->check(CLI::Range(0.0f, 4.0f))
      ->capture_default_str();
  app.add_option("--render-to", o.render_to,
                 "Render the output to FILE (.wav, .flac, .aiff, .ogg) faster than "
                 "real time; implies --backend render")
      ->type_name("FILE");
  app.add_option("--duration", o.duration,
                 "Stop after SECONDS of audio (render: length of the file; without it, "
                 "render until every voice has ended)")
      ->check(CLI::Range(0.0, 1e7))
      ->type_name("SECONDS");
  app.add_option("--preload-limit-mb", o.preload_limit_mb,
                 "Files whose decoded size is at most this are held in "
                 "RAM; larger ones are streamed from disk")
      ->check(CLI::Range(0.0, 65536.0))
      ->capture_default_str();
  app.add_option("--ring-ms", o.ring_ms,
                 "Ring per streaming voice, in ms, on a steady disk (read-ahead; memory: 384 KB per second "
                 "at 48 kHz)")
      ->check(CLI::Range(20.0, 10000.0))
      ->capture_default_str();
  app.add_option("--ring-min-ms", o.ring_min_ms,
                 "Adaptive prefetch: the least read-ahead kept per voice, in ms (default half of --ring-ms); "
                 "the loader keeps more when the measured disk waits ask for it (up to the ring's size)")
      ->check(CLI::Range(20.0, 10000.0));
  app.add_option("--ring-max-ms", o.ring_max_ms,
                 "Adaptive prefetch: the largest ring a voice gets when its file's reads are slow or jittery, "
                 "in ms (default 4000; --ring-min-ms = --ring-ms = --ring-max-ms: fixed rings, kept full)")
      ->check(CLI::Range(20.0, 60000.0));
  app.add_option("--head-ms", o.head_ms, "Pre-decoded start of a streamed file, in ms (lets play start at once)")
      ->check(CLI::Range(10.0, 10000.0))
      ->capture_default_str();
  app.add_option("--max-voices", o.max_voices, "Voices that can play at once")
      ->transform(int_range(1, 65536))
      ->capture_default_str();
  app.add_option("--max-resampled-voices", o.max_resampled_voices,
                 "Voices that can play at a rate ≠ 1 or from a file at another sample rate at once (each "
                 "holds a resampler, ≈ 134 KiB at 'fast')")
      ->transform(int_range(0, 65536))
      ->capture_default_str();
  app.add_option("--max-stretched-voices", o.max_stretched_voices,
                 "Voices that can be time-stretched at once (Rubber Band, ≈ 3 % of a core each on a desktop, "
                 "about 4–6 fit on a Raspberry Pi 4)")
      ->transform(int_range(0, 256))
      ->capture_default_str();
  app.add_option("--resample-quality", o.resample_quality,
                 "fast (119 dB SNR, ≈ 90 ns/frame), medium (142 dB, "
                 "≈ 180 ns), best (149 dB, ≈ 570 ns)")
      ->check(CLI::IsMember({"fast", "medium", "best"}))
      ->capture_default_str();
  app.add_option("--limiter", o.limiter,
                 "The master's output stage: true (a safety limiter, transparent below its threshold, holds "
                 "peaks at it above), false (none), or soft_clip (the old crowdstream server's 0.9·tanh(0.9·x) "
                 "on every sample; the default in crowdstream mode)")
      ->transform(CLI::Validator(
          [](std::string& v) -> std::string {
            std::string l;
            for (char c : v) l += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
            if (l == "true" || l == "1" || l == "on" || l == "yes")
              v = "true";
            else if (l == "false" || l == "0" || l == "off" || l == "no")
              v = "false";
            else if (l == "soft_clip")
              v = "soft_clip";
            else
              return "'" + v + "': --limiter must be true, false or soft_clip";
            return {};
          },
          "true|false|soft_clip"))
      ->capture_default_str();
  app.add_option("--master", o.master,
                 "The master's gain (linear, 0..4) at start; default 1.0, or 0.8 (the old server's fixed "
                 "master) in crowdstream mode")
      ->check(CLI::Range(0.0, 4.0));
  app.add_option("--limiter-threshold-db", o.limiter_threshold_db, "The limiter's ceiling in dBFS")
      ->check(CLI::Range(-24.0, 0.0))
      ->capture_default_str();
  app.add_option("--script", o.script,
                 "Timed OSC messages to run (\"SECONDS /address args…\" per line), each at "
                 "its exact frame from the start: a scripted session; with --render-to, "
                 "rendered deterministically")
      ->type_name("FILE");
  app.add_option("--state-file", o.state_file,
                 "Keep the daemon's state in FILE: loaded sources, deck levels and EQ, master, tempo (and "
                 "with --restore-voices the playing voices) come back after a restart. Written atomically "
                 "when the state changes and at shutdown")
      ->type_name("FILE");
  app.add_flag("--restore-voices", o.restore_voices,
               "With --state-file: also save the playing voices (position, volume, loop, rate, pan, pause) "
               "and start them again where they were after a restart");
  app.add_option("--state-interval", o.state_interval,
                 "With --state-file: voice positions and a gliding tempo alone are written at most every "
                 "SECONDS (other changes within a second)")
      ->check(CLI::Range(1.0, 3600.0))
      ->type_name("SECONDS")
      ->capture_default_str();
  app.add_option("--crossfade-law", o.crossfade_law,
                 "How /crossfade_levels maps its levels: linear (as "
                 "crowdstream) or equal_power (sin(l·π/2): constant power)")
      ->check(CLI::IsMember({"linear", "equal_power"}))
      ->capture_default_str();
  app.add_option("--tone-level-db", o.tone_level_db, "Peak level of /test_tone in dBFS")
      ->check(CLI::Range(-60.0, 0.0))
      ->capture_default_str();
  app.add_option("--tone-seconds", o.tone_seconds, "Length of /test_tone")
      ->check(CLI::Range(0.05, 600.0))
      ->capture_default_str();
  app.add_option("--shutdown-fade-ms", o.shutdown_fade_ms, "Fade-out on SIGINT/SIGTERM, in ms")
      ->check(CLI::Range(0.0, 10000.0))
      ->capture_default_str();

  app.add_flag("--no-osc", o.no_osc, "Do not listen for OSC (play --play files only)");
  app.add_option("--osc-port,--port", o.osc_port,
                 "UDP port for OSC (crowdstream deployments use 57120 or 57122; "
                 "0 = any free port, logged at start)")
      ->capture_default_str();
  app.add_option("--osc-bind", o.osc_bind,
                 "Address to listen on: 127.0.0.1 (default), ::1, 0.0.0.0, :: or one "
                 "interface's address. Beyond loopback, --allow is required")
      ->capture_default_str();
  app.add_option("--osc-tcp-port", o.osc_tcp_port,
                 "Also accept OSC over TCP (OSC 1.0 size-prefixed frames) on this "
                 "port; -1 = off")
      ->check(CLI::Range(-1, 65535))
      ->capture_default_str();
  app.add_option("--allow", o.allow,
                 "Sources allowed to send OSC, as CIDRs (\"10.0.0.0/8,192.168.1.7\"); "
                 "default loopback only");
  app.add_option("--media-root", o.media_root,
                 "Directory OSC clients load from: relative paths resolve against "
                 "it, paths outside it are refused");
  app.add_option("--max-sources", o.max_sources, "Loaded files at most")
      ->transform(int_range(1, 1000000))
      ->capture_default_str();
  app.add_option("--max-memory-mb", o.max_memory_mb,
                 "Memory budget for everything clients load (decoded audio, heads, rings), MiB; "
                 "default from the preset: pi4 256, pi5 1024, desktop 2048, workstation 4096, live 2048")
      ->transform(int_range(16, 1048576));
  app.add_option("--max-channels", o.max_channels, "Most channels a loaded file may have (checked from its header)")
      ->transform(int_range(1, 1024))
      ->capture_default_str();
  app.add_option("--max-subscribers", o.max_subscribers, "Event subscribers (/stemd/notify) at most")
      ->transform(int_range(0, 1024))
      ->capture_default_str();
  app.add_option("--max-string", o.max_string, "Longest OSC string accepted (paths, names), bytes")
      ->transform(int_range(16, 65536))
      ->capture_default_str();
  app.add_option("--max-tcp-clients", o.max_tcp_clients, "TCP clients at most")
      ->transform(int_range(1, 1024))
      ->capture_default_str();
  app.add_option("--max-tcp-clients-per-address", o.max_tcp_clients_per_address,
                 "TCP clients from one address at most (0: half of --max-tcp-clients)")
      ->transform(int_range(0, 1024))
      ->capture_default_str();
  app.add_option("--tcp-idle-timeout", o.tcp_idle_timeout, "Seconds a TCP client may send nothing before it is closed")
      ->check(CLI::Range(0.05, 86400.0))
      ->capture_default_str();
  app.add_option("--tcp-frame-timeout", o.tcp_frame_timeout,
                 "Seconds a TCP client has to finish a frame (and to send its first)")
      ->check(CLI::Range(0.05, 3600.0))
      ->capture_default_str();
  app.add_option("--subscription-ttl", o.subscription_ttl,
                 "Seconds a /stemd/notify subscription lasts unless renewed (by sending it again)")
      ->check(CLI::Range(1.0, 86400.0))
      ->capture_default_str();
  app.add_option("--cookie-exempt", o.cookie_exempt,
                 "UDP sources (CIDRs) answered in full without the cookie exchange; \"none\": none. Others "
                 "get at most 3x their request until they echo /stemd/cookie")
      ->capture_default_str();

  // The old server's flags (crowdstream deployments start it with these).
  const char* deck_flags[4] = {"--a", "--b", "--c", "--d"};
  const char* deck_help[4] = {"Load FILE into buffer 100 (deck A) and play it, looped", "… buffer 1100 (deck B)",
                              "… buffer 2100 (deck C)", "… buffer 3100 (deck D)"};
  for (int i = 0; i < 4; ++i) app.add_option(deck_flags[i], o.deck_files[i], deck_help[i])->type_name("FILE");
  app.add_option("--vol", o.deck_volume, "Volume of the --a/--b/--c/--d files")
      ->check(CLI::Range(0.0f, 4.0f))
      ->capture_default_str();
  app.add_option("--rate", o.rate, "Playback rate of the --a/--b/--c/--d files (speed and pitch)")
      ->check(CLI::Range(0.25, 4.0))
      ->capture_default_str();
  app.add_option("--ab", o.ab, "Deck A and B levels")->expected(2)->check(CLI::Range(0.0f, 4.0f));
  app.add_option("--levels", o.levels, "Deck A, B, C, D levels")->expected(4)->check(CLI::Range(0.0f, 4.0f));
  app.add_option("--bpm", o.bpm, "Base tempo of the clock (bpm)")->check(CLI::Range(1.0, 999.0))->capture_default_str();
  app.add_option("--meter", o.meter, "Beats per bar")->check(CLI::Range(1, 64))->capture_default_str();
  app.add_flag("--watch", o.watch, "Log the health line every second");
  app.add_option("--health-interval", o.health_interval,
                 "Seconds between health lines in the log (voices, CPU, real-time policy, ring fill, underruns, "
                 "device underflows, memory); 0 = only when something goes wrong")
      ->check(CLI::Range(0.0, 86400.0))
      ->capture_default_str();
  app.add_option("--stretch-method", o.stretch_method,
                 "How /set_tempo changes playback: playback_rate (vinyl) or "
                 "time_stretch (tempo without pitch, Rubber Band; --max-stretched-voices)")
      ->check(CLI::IsMember({"playback_rate", "time_stretch", "pyrubberband", "audiotsm"}))
      ->capture_default_str();
  // The old server's remaining flags (crowdstream mode: see options.hpp).
  app.add_flag("--disable-filters", o.disable_filters,
               "Deck EQ messages (/deck_eq, /deck_eq_all, /deck_filter) are checked, answered /done and "
               "ignored, as the old server's production launch line had it");
  app.add_flag("--enable-filters", o.enable_filters,
               "Deck EQ messages are applied (stemd's default; --disable-filters wins over it, as on the old "
               "server)");
  app.add_flag("--optimized-filters", o.optimized_filters,
               "Accepted: the old server's faster filter implementation. stemd has one EQ, always cheap");
  app.add_flag("--disable-time-stretch", o.disable_time_stretch,
               "With --stretch-method pyrubberband|audiotsm: the tempo (/set_tempo, movement) moves the clock "
               "only, players stay at their own rate (the old server's meaning; no effect with playback_rate)");
  app.add_option("--bpm-config", o.bpm_config,
                 "The old server's movement → tempo table (JSON, its bpm_config.json): thresholds, tempos, "
                 "movement_max_value and the smoothing (as --tempo-rise-s/--tempo-fall-s)")
      ->type_name("FILE");
  app.add_option("--c_at", o.c_at, "Start --c's deck C this many seconds after start (without it, --c only loads)")
      ->check(CLI::Range(0.0, 86400.0))
      ->type_name("SECONDS");
  app.add_option("--c_preload", o.c_preload, "Load FILE into buffer 2100 (deck C) without starting it")
      ->type_name("FILE");
  app.add_option("--dummy_after", o.dummy_after,
                 "This many seconds after start, act as if /dummy <--dummy_args…> arrived "
                 "(e.g. --dummy_args schedule_c_at 8)")
      ->check(CLI::Range(0.0, 86400.0))
      ->type_name("SECONDS");
  app.add_option("--dummy_args", o.dummy_args, "Arguments of the simulated /dummy");
  app.add_option("--tempo-rise-s", o.tempo_rise_s,
                 "/dance/total_movement: time constant of a rising tempo, seconds (0.3; crowdstream mode: 0.2785, "
                 "the old server's at 1024 frames)")
      ->check(CLI::Range(0.001, 3600.0))
      ->capture_default_str();
  app.add_option("--tempo-fall-s", o.tempo_fall_s,
                 "/dance/total_movement: time constant of a falling tempo, seconds (30; crowdstream mode: 69.66, "
                 "the old server's at 1024 frames)")
      ->check(CLI::Range(0.001, 3600.0))
      ->capture_default_str();

  app.add_option("--movement-thresholds", o.movement_thresholds,
                 "/dance/total_movement: the three movement "
                 "thresholds (normalised 0–1)")
      ->expected(3)
      ->capture_default_str();
  app.add_option("--movement-tempos", o.movement_tempos,
                 "/dance/total_movement: tempos below each threshold, "
                 "then the range above the last (5 bpm values)")
      ->expected(5)
      ->capture_default_str();

  // Service and logging (listed last, with --config, --help and --version)
  app.add_option("--log-level", o.log_level,
                 "trace, debug, info, warning, error, critical or off (as the log names them; warn and err "
                 "too)")
      ->check(CLI::IsMember(kLogLevelNames))
      ->capture_default_str();
  app.add_flag("--mlock", o.mlock,
               "Lock all memory (mlockall): no page faults in the audio path; needs "
               "LimitMEMLOCK (the unit sets it)");
  app.set_config("--config", "",
                 "Read options from FILE (TOML: keys are the long flag names, [sections] as in --help's "
                 "groups). Without it: $XDG_CONFIG_HOME/stemd/stemd.conf (~/.config/stemd/stemd.conf), "
                 "then /etc/stemd/stemd.conf; --config none reads no file")
      ->type_name("FILE");
  app.set_help_flag("-h,--help", "Print this help and exit");
  app.set_version_flag("--version", version_text(), "Print the version, git revision and libsndfile's formats");

  add_finite_checks(app);  // after every add_option: NaN/Inf refused by each numeric option
  assign_groups(app);
  app.formatter(std::make_shared<WrappingFormatter>());
  app.config_formatter(std::make_shared<SectionedConfig>(known_keys(app)));

  // The config file: --config FILE, --config none (no file), or the first found by the search.
  std::map<std::string, int> config_lines;
  std::vector<std::string> args(argv, argv + argc);
  o.config_path = config_arg(argc, argv);
  if (o.config_path == "none") {
    o.config_path.clear();
    o.config_source = "no config file (--config none)";
    for (std::size_t i = 1; i < args.size(); ++i) {  // CLI11 must not try to read a file "none"
      if (args[i] == "--config=none") {
        args.erase(args.begin() + static_cast<long>(i));
        break;
      }
      if (args[i] == "--config" && i + 1 < args.size()) {
        args.erase(args.begin() + static_cast<long>(i), args.begin() + static_cast<long>(i) + 2);
        break;
      }
    }
  } else if (!o.config_path.empty()) {
    o.config_source = "config file " + o.config_path;
  } else if (const char* off = std::getenv("STEMD_NO_CONFIG_SEARCH"); off != nullptr && *off != '\0') {
    o.config_source = "no config file (STEMD_NO_CONFIG_SEARCH is set)";
  } else {
    std::string searched;
    o.config_path = search_config(searched);
    if (o.config_path.empty()) {
      o.config_source = "no config file (looked for " + searched + ")";
    } else {
      o.config_source = "config file " + o.config_path + " (found without --config)";
      args.push_back("--config");
      args.push_back(o.config_path);
    }
  }
  // The file is opened once, here, without blocking, and must be a regular file; the key check
  // and CLI11 then both read that open file (/proc/self/fd/N), never the path again: nothing can
  // swap a FIFO or another file in between the check and the read.
  int config_fd = -1;
  struct CloseFd {
    int& fd;
    ~CloseFd() {
      if (fd >= 0) ::close(fd);
    }
  } close_config_fd{config_fd};
  if (!o.config_path.empty()) {
    std::string e;
    config_fd = ::open(o.config_path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    struct stat st {};
    if (config_fd < 0 || ::fstat(config_fd, &st) != 0 || !S_ISREG(st.st_mode)) {
      // The reader names the reason (missing, unreadable, not a regular file).
      if (!scan_config(o.config_path, o.config_path, app, config_lines, o.config_warnings, e)) return fail(e);
      return fail("config file " + o.config_path + ": changed while it was opened; try again");
    }
    const std::string via = "/proc/self/fd/" + std::to_string(config_fd);
    if (!scan_config(o.config_path, via, app, config_lines, o.config_warnings, e)) return fail(e);
    for (std::size_t i = 1; i < args.size(); ++i) {  // CLI11 reads the same open file
      if (args[i] == "--config" && i + 1 < args.size()) args[i + 1] = via;
      if (args[i].rfind("--config=", 0) == 0) args[i] = "--config=" + via;
    }
  }
  std::vector<char*> cargv;
  for (auto& a : args) cargv.push_back(a.data());
  try {
    app.parse(static_cast<int>(cargv.size()), cargv.data());
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help, --version
    std::string msg = e.what();
    // A value from the config file (not overridden on the command line): name its line.
    for (const auto& [key, line] : config_lines) {
      const std::string flag = "--" + key;
      const auto at = msg.find(flag);
      const bool whole =
          at != std::string::npos &&
          (at + flag.size() == msg.size() ||
           !(std::isalnum(static_cast<unsigned char>(msg[at + flag.size()])) || msg[at + flag.size()] == '-'));
      if (whole && !on_command_line(argc, argv, key)) {
        msg = o.config_path + ":" + std::to_string(line) + ": key '" + key + "': " + msg;
        break;
      }
    }
    if (error == nullptr) msg += "\nRun with --help for more information.";
    return fail(msg);
  }
  o.effective_config = app.config_to_str(true, false);
  // Where a key's value came from: the command line, or the config file's line.
  auto source_of = [&](const std::string& key) {
    if (on_command_line(argc, argv, key)) return "--" + key;
    if (auto it = config_lines.find(key); it != config_lines.end()) {
      return key + " in " + o.config_path + ":" + std::to_string(it->second);
    }
    return "--" + key;
  };
  // The buffer size: given explicitly (flag or config), else the preset, else the board's.
  o.buffer_size_given = app.count("--buffer-size") > 0;
  if (o.buffer_size_given) {
    o.preset_reason = source_of("buffer-size");
  } else if (const Preset* p = find_preset(o.preset)) {
    o.buffer_size = p->buffer_size;
    o.preset_reason = std::string("preset '") + p->name + "' (" + p->what + ", " + source_of("preset") + ")";
  } else {
    std::string where;
    const std::string model = board_model(where);
    const Preset* board = model.find("Raspberry Pi 4") != std::string::npos   ? find_preset("pi4")
                          : model.find("Raspberry Pi 5") != std::string::npos ? find_preset("pi5")
                          : model.find("Raspberry Pi") != std::string::npos   ? find_preset("pi4")
                                                                              : find_preset("desktop");
    o.buffer_size = board->buffer_size;
    o.preset_reason = std::string("board detection: preset '") + board->name + "' for " +
                      (model.empty() ? std::string("this machine (no board model in the device tree)")
                                     : "'" + model + "' (" + where + ")");
  }
  // ---- the old crowdstream server's flags
  o.limiter_given = app.count("--limiter") > 0;
  o.stretch_method_given = o.stretch_method;
  if (o.stretch_method == "pyrubberband" || o.stretch_method == "audiotsm") {
    o.stretch_method = "time_stretch";
    o.notes.push_back("--stretch-method " + o.stretch_method_given +
                      " → time_stretch (Rubber Band: tempo without pitch, as " + o.stretch_method_given +
                      (o.stretch_method_given == "audiotsm" ? "'s WSOLA did; a different algorithm)" : " did)"));
  }
  o.crowdstream_mode = o.disable_filters || o.enable_filters || o.optimized_filters || o.disable_time_stretch ||
                       !o.bpm_config.empty() || app.count("--c_at") > 0 || !o.c_preload.empty() ||
                       app.count("--dummy_after") > 0 || o.stretch_method_given == "pyrubberband" ||
                       o.stretch_method_given == "audiotsm";
  if (app.count("--c_at") > 0 && o.deck_files[2].empty()) {
    return fail("--c_at starts the --c file: it needs --c FILE (the old server ignored it without one)");
  }
  if (!o.dummy_args.empty() && app.count("--dummy_after") == 0) {
    return fail("--dummy_args needs --dummy_after SECONDS (the old server ignored them without it)");
  }
  if (o.disable_filters && o.enable_filters) {
    o.notes.push_back("--disable-filters and --enable-filters: EQ disabled (the old server's precedence)");
  }
  if (o.optimized_filters) {
    o.notes.push_back(std::string("--optimized-filters: stemd has one EQ (Linkwitz-Riley, always cheap)") +
                      (o.disable_filters ? "; disabled here by --disable-filters" : ""));
  }
  if (o.disable_time_stretch && o.stretch_method_given != "pyrubberband" && o.stretch_method_given != "audiotsm") {
    o.notes.push_back("--disable-time-stretch: no effect with --stretch-method " + o.stretch_method_given +
                      " (the old server's players followed the tempo by rate then too)");
  }
  bool rise_from_file = false, fall_from_file = false;
  if (!o.bpm_config.empty()) {
    BpmConfig bc;
    std::string e;
    if (!read_bpm_config(o.bpm_config, bc, e)) return fail(e);
    o.movement_max = bc.movement_max;
    // Flags given explicitly win over the file.
    if (app.count("--movement-thresholds") == 0) o.movement_thresholds.assign(bc.thresholds, bc.thresholds + 3);
    if (app.count("--movement-tempos") == 0) o.movement_tempos.assign(bc.tempos, bc.tempos + 5);
    if (app.count("--tempo-rise-s") == 0) o.tempo_rise_s = bc.rise_seconds, rise_from_file = true;
    if (app.count("--tempo-fall-s") == 0) o.tempo_fall_s = bc.fall_seconds, fall_from_file = true;
  }
  if (o.crowdstream_mode) {
    if (app.count("--master") == 0) o.master = 0.8;
    if (!o.limiter_given) o.limiter = "soft_clip";
    if (app.count("--tempo-rise-s") == 0 && !rise_from_file) o.tempo_rise_s = old_server_rise_seconds(0.92);
    if (app.count("--tempo-fall-s") == 0 && !fall_from_file) o.tempo_fall_s = old_server_fall_seconds(30.0, 100.0);
  }
  // The memory budget: given explicitly (flag or config), else the preset's, else the board's.
  if (app.count("--max-memory-mb") == 0) {
    const Preset* p = find_preset(o.preset);
    if (p == nullptr) {
      std::string where;
      const std::string model = board_model(where);
      p = model.find("Raspberry Pi 5") != std::string::npos ? find_preset("pi5")
          : model.find("Raspberry Pi") != std::string::npos ? find_preset("pi4")
                                                            : find_preset("desktop");
    }
    o.max_memory_mb = p->memory_mb;
  }
  if (o.ring_min_ms == 0) o.ring_min_ms = std::max(20.0, o.ring_ms / 2);
  if (o.ring_max_ms == 0) o.ring_max_ms = std::max(4000.0, o.ring_ms);
  if (o.ring_min_ms > o.ring_ms || o.ring_ms > o.ring_max_ms) {
    return fail(fmt_ring_order(o.ring_min_ms, o.ring_ms, o.ring_max_ms));
  }
  // An offline render listens for OSC only when asked to (a port given explicitly).
  if ((o.backend == "render" || !o.render_to.empty()) && app.count("--osc-port") == 0) o.no_osc = true;
  if (!o.render_to.empty()) {
    if (o.backend != "auto" && o.backend != "render") {
      return fail("--render-to needs --backend render (or no --backend), not '" + o.backend + "'");
    }
    o.backend = "render";
  }
  return -1;
}

}  // namespace stemd::app
