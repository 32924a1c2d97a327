// Flags (see options.hpp): parse_options, and what it decides after CLI11 has read the flags
// and the config file. The flags themselves: options_flags.cpp; the config file:
// options_config.cpp; --help and --version: options_help.cpp.
#include "options.hpp"

#include "app/presets.hpp"  // generated from config/presets/*.conf (src/CMakeLists.txt)
#include "bpm_config.hpp"
#include "config_io.hpp"
#include "control/suggest.hpp"
#include "options_internal.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstring>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <regex>
#include <set>
#include <utility>
#include <sstream>

#include <sys/stat.h>

namespace stemd::app {

namespace options_detail {

const std::vector<Preset>& presets() {
  static const std::vector<Preset> all(std::begin(kPresets), std::end(kPresets));
  return all;
}

const Preset* find_preset(const std::string& name) {
  for (const auto& p : presets()) {
    if (name == p.name) return &p;
  }
  return nullptr;
}

}  // namespace options_detail

std::vector<PresetValues> builtin_presets() {
  std::vector<PresetValues> out;
  for (const auto& p : options_detail::presets()) {
    out.push_back(
        {p.name, p.buffer_size, p.memory_mb, p.what, p.stretch_engine ? p.stretch_engine : "", p.stretch_bus_share});
  }
  return out;
}

namespace {

using options_detail::find_preset;
using options_detail::on_command_line;
using options_detail::Preset;
using options_detail::trim;

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

// The preset for this board: a Raspberry Pi 5 → pi5, another Raspberry Pi → pi4, else desktop.
const Preset* board_preset(const std::string& model) {
  return model.find("Raspberry Pi 5") != std::string::npos ? find_preset("pi5")
         : model.find("Raspberry Pi") != std::string::npos ? find_preset("pi4")
                                                           : find_preset("desktop");
}

std::string fmt_ring_order(double lo, double mid, double hi) {
  char b[160];
  std::snprintf(b, sizeof b, "--ring-min-ms (%g) ≤ --ring-ms (%g) ≤ --ring-max-ms (%g) must hold", lo, mid, hi);
  return b;
}

// CLI11's message for a bad flag or key; a value from the config file (not overridden on the
// command line) is named by its line.
// CLI11's words for a bad value, in the user's: "Could not convert: --osc-port = 99999",
// "--allow: At Most 1 required but received 2", "--volume: Value abc not in range 0.000000 to
// 4.000000" (an outside test pass).
std::string plain_value_error(const std::string& msg) {
  std::smatch m;
  static const std::regex convert(R"(^Could not convert: (--[a-z0-9-]+) = (.*)$)");
  static const std::regex count(R"(^(--[a-z0-9-]+): At Most 1 required but received (\d+)$)");
  static const std::regex range(R"(^(--[a-z0-9-]+): Value (.*) not in range (\S+) to (\S+)$)");
  auto num = [](const std::string& v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%g", std::strtod(v.c_str(), nullptr));
    return std::string(buf);
  };
  if (std::regex_match(msg, m, convert)) {
    return m.str(1) + ": '" + m.str(2) + "' is not a value it takes (out of its range, or not a number: stemd --help)";
  }
  if (std::regex_match(msg, m, count)) {
    return m.str(1) + " takes one value, got " + m.str(2) +
           " (given twice, or a list not in quotes in a config: " + m.str(1).substr(2) + " = \"a, b\")";
  }
  if (std::regex_match(msg, m, range)) {
    char* end = nullptr;
    const std::string v = m.str(2);
    std::strtod(v.c_str(), &end);
    const bool number = !v.empty() && end != nullptr && *end == '\0';
    return m.str(1) + ": " + (number ? v + " is outside " : "'" + v + "' is not a number in ") + num(m.str(3)) + "–" +
           num(m.str(4)) + " (a decimal point, not a comma: 1.5)";
  }
  return msg;
}

std::string parse_error_text(int argc, char** argv, const Options& o, const std::map<std::string, int>& config_lines,
                             std::string msg) {
  msg = plain_value_error(msg);
  for (const auto& [key, line] : config_lines) {
    const std::string flag = "--" + key;
    const auto at = msg.find(flag);
    const bool whole =
        at != std::string::npos &&
        (at + flag.size() == msg.size() ||
         !(std::isalnum(static_cast<unsigned char>(msg[at + flag.size()])) || msg[at + flag.size()] == '-'));
    if (whole && !on_command_line(argc, argv, key)) {
      return o.config_path + ":" + std::to_string(line) + ": key '" + key + "': " + msg;
    }
  }
  return msg;
}

// The first unknown long flag on the command line, named with the closest known one (as a
// config key is, and stemctl's commands); "" when every flag is known.
std::string unknown_flag_text(int argc, char** argv, const CLI::App& app) {
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--") break;
    if (a.size() < 3 || a.rfind("--", 0) != 0) continue;
    a = a.substr(0, std::min(a.find('='), control::kMaxSuggestLength));
    bool known = false;
    control::ClosestWord near(a);
    for (const CLI::Option* opt : app.get_options()) {
      for (const std::string& name : opt->get_lnames()) {
        known = known || "--" + name == a;
        near.consider("--" + name);
      }
    }
    if (!known) {
      return "unknown flag '" + a + "'" + (near.best().empty() ? "" : " (did you mean '" + near.best() + "'?)");
    }
  }
  return {};
}

// Words on the command line that are no flag's value (`stemd play foo.wav`): CLI11 said "The
// following arguments were not expected: foo.wav play", in reverse and without a hint.
std::string extra_words_text(const std::vector<std::string>& extras) {
  std::string given, file;
  for (const auto& x : extras) {
    given += (given.empty() ? "" : " ") + x;
    if (file.empty() && (x.find('.') != std::string::npos || x.find('/') != std::string::npos)) file = x;
  }
  return "unexpected argument" + std::string(extras.size() == 1 ? " '" : "s '") + given +
         "': stemd takes flags only — a file to play is given as --play FILE (stemd --play " +
         (file.empty() ? "FILE" : file) + "); a running stemd is driven with stemctl (stemctl --help)";
}

// Whether a message names a line of the config file ("FILE:LINE: …").
bool names_a_config_line(const std::string& msg, const std::string& path) {
  if (path.empty()) return false;
  for (auto at = msg.find(path + ":"); at != std::string::npos; at = msg.find(path + ":", at + 1)) {
    const std::size_t d = at + path.size() + 1;
    if (d < msg.size() && std::isdigit(static_cast<unsigned char>(msg[d]))) return true;
  }
  return false;
}

// Whether a command-line token is a flag (CLI11 takes "-5" and "-.5" as values, not flags).
bool looks_like_flag(const std::string& t) {
  if (t.size() < 2 || t[0] != '-') return false;
  char* end = nullptr;
  std::strtod(t.c_str(), &end);
  return end == nullptr || *end != '\0';
}

// The command-line tokens (indices in argv) of every occurrence of `opt`: the flag and the values
// that follow it ("--volume 9", "-b 3", "--levels 1 1 1 9"; "--volume=9" and "-b3" alone).
std::vector<int> tokens_of(int argc, char** argv, const CLI::Option& opt) {
  std::vector<std::string> names;
  for (const auto& n : opt.get_lnames()) names.push_back("--" + n);
  for (const auto& n : opt.get_snames()) names.push_back("-" + n);
  std::vector<int> out;
  const int takes = opt.get_type_size() == 0 ? 0 : std::max(1, opt.get_items_expected_max());
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--") break;
    bool whole = false, joined = false;
    for (const auto& n : names) {
      whole = whole || a == n;
      joined = joined || (a.rfind(n, 0) == 0 && a.size() > n.size() && (n[1] != '-' || a[n.size()] == '='));
    }
    if (!whole && !joined) continue;
    out.push_back(i);
    for (int k = 0; whole && k < takes && i + 1 < argc && !looks_like_flag(argv[i + 1]); ++k) out.push_back(++i);
  }
  return out;
}

// What a parse error blames on the command line, for --check-config to drop before the next
// parse: an unknown flag (and the value after it), or every occurrence of the option the error
// names first. Empty when the error names nothing given on the command line.
std::vector<int> blamed_tokens(int argc, char** argv, const CLI::App& app, const std::string& what, bool unknown) {
  if (unknown) {
    for (int i = 1; i < argc; ++i) {
      const std::string a = argv[i];
      if (a == "--") break;
      if (a.size() < 3 || a.rfind("--", 0) != 0) continue;
      const std::string name = a.substr(2, a.find('=') - 2);
      bool known = false;
      for (const CLI::Option* opt : app.get_options()) {
        for (const std::string& n : opt->get_lnames()) known = known || n == name;
      }
      if (known) continue;
      std::vector<int> out{i};
      if (a.find('=') == std::string::npos && i + 1 < argc && !looks_like_flag(argv[i + 1])) out.push_back(i + 1);
      return out;
    }
    return {};
  }
  const CLI::Option* named = nullptr;
  std::size_t first = std::string::npos;
  for (const CLI::Option* opt : app.get_options()) {
    for (const std::string& n : opt->get_lnames()) {
      const std::string flag = "--" + n;
      for (auto at = what.find(flag); at != std::string::npos; at = what.find(flag, at + 1)) {
        const std::size_t end = at + flag.size();
        const bool whole = end == what.size() || !(std::isalnum(static_cast<unsigned char>(what[end])) ||
                                                   what[end] == '-' || what[end] == '_');
        if (whole && at < first) first = at, named = opt;
        if (whole) break;
      }
    }
  }
  return named != nullptr ? tokens_of(argc, argv, *named) : std::vector<int>{};
}

// The buffer size: given explicitly (flag or config), else the preset, else the board's.
void choose_buffer_size(int argc, char** argv, const CLI::App& app, Options& o,
                        const std::map<std::string, int>& config_lines) {
  // Where a key's value came from: the command line, or the config file's line.
  auto source_of = [&](const std::string& key) {
    if (on_command_line(argc, argv, key)) return "--" + key;
    if (auto it = config_lines.find(key); it != config_lines.end()) {
      return key + " in " + o.config_path + ":" + std::to_string(it->second);
    }
    return "--" + key;
  };
  o.buffer_size_given = app.count("--buffer-size") > 0;
  if (o.buffer_size_given) {
    o.preset_reason = source_of("buffer-size");
  } else if (const Preset* p = find_preset(o.preset)) {
    o.buffer_size = p->buffer_size;
    o.preset_reason = std::string("preset '") + p->name + "' (" + p->what + ", " + source_of("preset") + ")";
  } else {
    std::string where;
    const std::string model = board_model(where);
    const Preset* board = board_preset(model);
    o.buffer_size = board->buffer_size;
    o.buffer_size_from_board = true;
    o.preset_reason = std::string("board detection: preset '") + board->name + "' for " +
                      (model.empty() ? std::string("this machine (no board model in the device tree)")
                                     : "'" + model + "' (" + where + ")");
  }
}

namespace {
bool is_regular_file_here(const char* name) {
  struct stat st {};
  return ::stat(name, &st) == 0 && S_ISREG(st.st_mode);
}
}  // namespace

// The old crowdstream server's flags: the stretch method's mapping, crowdstream mode and its
// defaults, --bpm-config. An error message, or "".
std::string apply_crowdstream_flags(const CLI::App& app, Options& o, const ConfigInput& input) {
  o.limiter_given = app.count("--limiter") > 0;
  o.stretch_method_given = o.stretch_method;
  if (o.stretch_method == "pyrubberband" || o.stretch_method == "audiotsm") {
    o.stretch_method = "time_stretch";
    o.notes.push_back("--stretch-method " + o.stretch_method_given +
                      " → time_stretch (Rubber Band: tempo without pitch, as " + o.stretch_method_given +
                      (o.stretch_method_given == "audiotsm" ? "'s WSOLA did; a different algorithm)" : " did)"));
  }
  // Time-stretching by default gets 8 stretched voices (a deck's stems); a value given (flag or
  // config) is kept: a Pi 4 affords 4–6, and it used to be raised to 8 whatever it said.
  if (o.stretch_method == "time_stretch" && app.count("--max-stretched-voices") == 0) o.max_stretched_voices = 8;
  if (app.count("--port") > 0) {
    if (app.count("--osc-port") > 0 && o.osc_port != o.old_port) {
      return fmt::format(
          "--port {} and --osc-port {} name two ports: give one (--port is the old crowdstream server's spelling, "
          "and starts crowdstream mode)",
          o.old_port, o.osc_port);
    }
    o.osc_port = o.old_port;
  }
  const std::pair<bool, const char*> old_flags[] = {
      {app.count("--port") > 0, "--port"},
      {o.disable_filters, "--disable-filters"},
      {o.enable_filters, "--enable-filters"},
      {o.optimized_filters, "--optimized-filters"},
      {o.disable_time_stretch, "--disable-time-stretch"},
      {!o.bpm_config.empty(), "--bpm-config"},
      {app.count("--c_at") > 0, "--c_at"},
      {!o.c_preload.empty(), "--c_preload"},
      {app.count("--dummy_after") > 0, "--dummy_after"},
      {o.stretch_method_given == "pyrubberband" || o.stretch_method_given == "audiotsm", "--stretch-method"},
  };
  for (const auto& [given, name] : old_flags) {
    if (given && o.crowdstream_flag.empty()) o.crowdstream_flag = name;
  }
  o.crowdstream_mode = !o.crowdstream_flag.empty();
  if (app.count("--c_at") > 0 && o.deck_files[2].empty()) {
    return "--c_at starts the --c file: it needs --c FILE (the old server ignored it without one)";
  }
  if (!o.dummy_args.empty() && app.count("--dummy_after") == 0) {
    return "--dummy_args needs --dummy_after SECONDS (the old server ignored them without it)";
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
  const bool no_buses = o.stretch_buses == 0 || (o.stretch_buses < 0 && o.stretch_method != "time_stretch");
  if (o.stretch_bus_share && no_buses) {
    o.notes.push_back(
        "--stretch-bus-share: no effect without stretch buses (they come with --stretch-method "
        "time_stretch, or --stretch-buses N)");
  }
  bool rise_from_file = false, fall_from_file = false;
  // The old server read audio-mixer/bpm_config.json by itself — its own directory, where the
  // production scripts start it. In crowdstream mode without --bpm-config, a bpm_config.json in the
  // working directory is read the same way (said so at start; a bad one is a note, not an error).
  const bool found_bpm = o.crowdstream_mode && o.bpm_config.empty() && is_regular_file_here("bpm_config.json");
  if (found_bpm) o.bpm_config = std::filesystem::absolute("bpm_config.json").string();
  if (!o.bpm_config.empty()) {
    BpmConfig bc;
    std::string e;
    // Through the helper, as the config file is (a share that stops answering: outside pass 25,
    // N2), given up on after --load-timeout — parsed by now, so the file's counts too; on this
    // thread when parse_options was given no input (tests).
    ConfigInput in = input;
    in.timeout_s = o.load_timeout;
    in.deadline_note = "--load-timeout";
    const ConfigRead r = read_start_file(o.bpm_config, "--bpm-config", std::size_t{1} << 20, in);
    const bool ok = r.kind == ConfigRead::Kind::kOk && parse_bpm_config(o.bpm_config, r.text, bc, e);
    if (r.kind != ConfigRead::Kind::kOk) e = r.error;
    if (!ok) {
      if (!found_bpm) return e;
      o.notes.push_back(e + " (found in the working directory): not used, the movement table keeps its defaults");
      o.bpm_config.clear();
    } else {
      o.notes.push_back(fmt::format(
          "--bpm-config {}{}: movement tempos {}/{}/{}/{}/{} bpm at thresholds {}/{}/{}, movement max {}", o.bpm_config,
          found_bpm ? " (found in the working directory, as the old server read its own; --bpm-config FILE to choose)"
                    : "",
          bc.tempos[0], bc.tempos[1], bc.tempos[2], bc.tempos[3], bc.tempos[4], bc.thresholds[0], bc.thresholds[1],
          bc.thresholds[2], bc.movement_max));
      o.movement_max = bc.movement_max;
      // Flags given explicitly win over the file.
      if (app.count("--movement-thresholds") == 0) o.movement_thresholds.assign(bc.thresholds, bc.thresholds + 3);
      if (app.count("--movement-tempos") == 0) o.movement_tempos.assign(bc.tempos, bc.tempos + 5);
      if (app.count("--tempo-rise-s") == 0) o.tempo_rise_s = bc.rise_seconds, rise_from_file = true;
      if (app.count("--tempo-fall-s") == 0) o.tempo_fall_s = bc.fall_seconds, fall_from_file = true;
    }
  }
  if (o.crowdstream_mode) {
    // The old server's filters were off unless --enable-filters (on Linux: on only on a Mac M2 Pro
    // or M3 Pro), and its documented launch line has no filter flag.
    if (!o.enable_filters && !o.disable_filters) o.disable_filters = o.filters_off_by_default = true;
    if (app.count("--master") == 0) o.master = 0.8;
    if (!o.limiter_given) o.limiter = "soft_clip";
    if (app.count("--tempo-rise-s") == 0 && !rise_from_file) o.tempo_rise_s = old_server_rise_seconds(0.92);
    if (app.count("--tempo-fall-s") == 0 && !fall_from_file) o.tempo_fall_s = old_server_fall_seconds(30.0, 100.0);
  }
  return {};
}

// The memory budget, the rings, the render target: an error message, or "".
std::string finish(const CLI::App& app, Options& o) {
  // The memory budget and the stretch settings: given explicitly (flag or config), else the
  // preset's, else the board's (as the buffer size).
  const Preset* p = find_preset(o.preset);
  if (p == nullptr) {
    std::string where;
    p = board_preset(board_model(where));
  }
  if (app.count("--max-memory-mb") == 0) o.max_memory_mb = p->memory_mb;
  o.bpm_given = app.count("--bpm") > 0;
  if (app.count("--stretch-engine") == 0 && p->stretch_engine != nullptr) o.stretch_engine = p->stretch_engine;
  if (app.count("--stretch-bus-share") == 0 && p->stretch_bus_share >= 0)
    o.stretch_bus_share = p->stretch_bus_share == 1;
  if (o.ring_min_ms == 0) o.ring_min_ms = std::max(20.0, o.ring_ms / 2);
  if (o.ring_max_ms == 0) o.ring_max_ms = std::max(4000.0, o.ring_ms);
  if (o.ring_min_ms > o.ring_ms || o.ring_ms > o.ring_max_ms) {
    return fmt_ring_order(o.ring_min_ms, o.ring_ms, o.ring_max_ms);
  }
  // An offline render listens for OSC only when asked to (a port given explicitly).
  if ((o.backend == "render" || !o.render_to.empty()) && app.count("--osc-port") == 0) o.no_osc = true;
  // OSC over TCP and the web monitor on one TCP port: the second bind failed "Address already in
  // use", and an operator looked for another process (outside pass 20, attack 8).
  auto wildcard = [](const std::string& b) { return b == "0.0.0.0" || b == "::" || b == "[::]"; };
  if (!o.no_osc && o.osc_tcp_port > 0 && o.osc_tcp_port == o.http_port &&
      (o.osc_bind == o.http_bind || wildcard(o.osc_bind) || wildcard(o.http_bind))) {
    return "--http-port " + std::to_string(o.http_port) +
           " is also --osc-tcp-port: both are TCP, on one address: give them different ports";
  }
  if (!o.render_to.empty()) {
    if (o.backend != "auto" && o.backend != "render") {
      return "--render-to needs --backend render (or no --backend), not '" + o.backend + "'";
    }
    o.backend = "render";
  }
  return {};
}

}  // namespace

std::string relative_flag_hint(const std::string& flag, const std::string& file, const std::string& media_root,
                               const std::string& reason) {
  if (file.empty() || file[0] == '/' || media_root.empty() ||
      reason.find("outside the media root") == std::string::npos)
    return {};
  std::error_code ec;
  const std::filesystem::path under = std::filesystem::absolute(std::filesystem::path(media_root) / file, ec);
  if (ec || !std::filesystem::exists(under, ec)) return {};
  const std::filesystem::path cwd = std::filesystem::current_path(ec);
  return " (did you mean " + under.string() + "? a relative " + flag + " is the working directory's" +
         (ec ? std::string() : ", " + cwd.string() + ",") + " not the media root's)";
}

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

namespace {

int parse(int argc, char** argv, Options& o, std::string* error, const std::set<int>& skip_lines, ConfigInput* input,
          std::vector<int>* blamed = nullptr) {
  // An error: printed (at start) or handed back (a reload); exit status 2.
  auto fail = [error, &o](const std::string& msg) {
    if (error != nullptr) {
      *error = msg;
    } else if (names_a_config_line(msg, o.config_path)) {
      // A start stops at the config file's first problem: say where to see them all at once (not
      // for a file that could not be read at all: a missing one has nothing more to list).
      std::fprintf(stderr, "stemd: %s\n(stemd --check-config --config %s lists every problem of the file at once)\n",
                   msg.c_str(), o.config_path.c_str());
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
  options_detail::add_flags(app, o);
  if (!skip_lines.empty())
    app.config_formatter(options_detail::sectioned_config(options_detail::known_keys(app), skip_lines));

  std::vector<std::string> args(argv, argv + argc);
  options_detail::ConfigFile config;
  ConfigInput here;  // no input given: read on this thread
  if (std::string e;
      !options_detail::open_config(argc, argv, app, o, args, config, skip_lines, input != nullptr ? *input : here, e))
    return fail(e);
  std::vector<char*> cargv;
  for (auto& a : args) cargv.push_back(a.data());
  try {
    app.parse(static_cast<int>(cargv.size()), cargv.data());
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help, --version
    std::string msg = parse_error_text(argc, argv, o, config.lines, e.what());
    bool unknown_flag = false;
    if (dynamic_cast<const CLI::ExtrasError*>(&e) != nullptr) {
      if (std::string unknown = unknown_flag_text(argc, argv, app); !unknown.empty()) {
        msg = unknown;
        unknown_flag = true;
      } else if (const auto extras = app.remaining(); !extras.empty()) {
        msg = extra_words_text(extras);
      }
    }
    if (blamed != nullptr) *blamed = blamed_tokens(argc, argv, app, e.what(), unknown_flag);
    if (error == nullptr) msg += "\nRun with --help for more information.";
    return fail(msg);
  }
  o.effective_config = app.config_to_str(true, false);
  o.config_lines = config.lines;
  options_detail::resolve_config_files(argc, argv, config, o);
  choose_buffer_size(argc, argv, app, o, config.lines);
  // A setting of the config file named in a later error is named with its line too.
  if (std::string e = apply_crowdstream_flags(app, o, input != nullptr ? *input : here); !e.empty()) {
    return fail(parse_error_text(argc, argv, o, config.lines, e));
  }
  if (std::string e = finish(app, o); !e.empty()) return fail(parse_error_text(argc, argv, o, config.lines, e));
  return -1;
}

}  // namespace

int parse_options(int argc, char** argv, Options& o, std::string* error, ConfigInput* input) {
  return parse(argc, argv, o, error, {}, input);
}

int parse_options_skipping(int argc, char** argv, Options& o, std::string& error, const std::set<int>& skip_lines,
                           std::vector<int>& blamed, ConfigInput* input) {
  blamed.clear();
  return parse(argc, argv, o, &error, skip_lines, input, &blamed);
}

}  // namespace stemd::app
