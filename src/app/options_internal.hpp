// What parse_options (options.cpp) shares with its other files: the flags (options_flags.cpp),
// the --help layout and --version (options_help.cpp), the config file (options_config.cpp) and
// the presets (options.cpp, from config/presets/*.conf). Not for use outside src/app/options*.
// [main] thread only.
#pragma once

#include "config_io.hpp"
#include "options.hpp"

#include <CLI/CLI.hpp>

#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

namespace stemd::app::options_detail {

// ---- presets (config/presets/NAME.conf, compiled in: see presets.hpp.in)
struct Preset {
  const char* name;
  std::uint32_t buffer_size;
  const char* what;
  std::uint32_t memory_mb;  // --max-memory-mb when not given: what clients may make it hold
  // --stretch-engine and --stretch-bus-share when not given (flag or config); nullptr / -1: the
  // preset leaves them at their defaults.
  const char* stretch_engine;
  int stretch_bus_share;
};
// Every preset, in the order --help lists them.
const std::vector<Preset>& presets();
const Preset* find_preset(const std::string& name);

// ---- flags (options_flags.cpp)
// Adds every flag of stemd to `app`, bound to `o`, in the order --help lists them; then the
// finite-number checks, the --help groups and formatter and the sectioned config reader.
void add_flags(CLI::App& app, Options& o);

// ---- --help and --version (options_help.cpp)
void assign_groups(CLI::App& app);
std::shared_ptr<CLI::Formatter> help_formatter();
std::string version_text();

// ---- the config file (options_config.cpp)
std::string trim(const std::string& s);
// The known keys (long flag names) and the section each belongs to.
std::map<std::string, std::string> known_keys(const CLI::App& app);
// The config reader: [sections] resolved to flags; the lines in `skip` read as blank ones.
std::shared_ptr<CLI::Config> sectioned_config(std::map<std::string, std::string> known, std::set<int> skip = {});
bool on_command_line(int argc, char** argv, const std::string& lname);

// The config file picked for a parse: a memfd of its text, which CLI11 reads (closed at the end).
struct ConfigFile {
  int fd = -1;
  std::map<std::string, int> lines;  // each key the file sets → its line (the last, when set twice)
  // Each key's lines in order with their values as written (`play` may be set on several lines).
  std::map<std::string, std::vector<std::pair<int, std::string>>> values;
  ConfigFile() = default;
  ConfigFile(const ConfigFile&) = delete;
  ConfigFile& operator=(const ConfigFile&) = delete;
  ~ConfigFile();
};
// Picks the config file (--config FILE, --config none, or the search: config_plan), reads it as
// `in` says (in.read, when set, is the text already read) and checks it, and rewrites `args` so
// that CLI11 reads the same text. Sets o.config_path, o.config_source and o.config_warnings. The
// file's lines in `skip` are read as comments (--check-config). False with `error` on a bad file,
// or one that could not be read (its file system did not answer within in.timeout_s).
bool open_config(int argc, char** argv, const CLI::App& app, Options& o, std::vector<std::string>& args,
                 ConfigFile& file, const std::set<int>& skip, ConfigInput& in, std::string& error);

// The files the config file names to play at start (play, a, b, c, d, c_preload) when the
// command line does not: a relative one is made the media root's (--media-root, from the file or
// the command line), or without one the config file's directory's — the working directory is
// `/` under systemd (new-user pass 21). Sets o.play_lines (each `play` value's line).
void resolve_config_files(int argc, char** argv, const ConfigFile& file, Options& o);

}  // namespace stemd::app::options_detail
