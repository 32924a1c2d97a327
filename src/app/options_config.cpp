// stemd's config file: found, opened once, checked key by key, read by CLI11 with [sections]
// (see options_internal.hpp).
#include "config_io.hpp"
#include "config_reader.hpp"
#include "control/suggest.hpp"
#include "options_internal.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iterator>
#include <sstream>

#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace stemd::app::options_detail {

std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t\r");
  if (b == std::string::npos) return {};
  const auto e = s.find_last_not_of(" \t\r");
  return s.substr(b, e - b + 1);
}

bool on_command_line(int argc, char** argv, const std::string& lname) {
  const std::string flag = "--" + lname;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == flag || a.rfind(flag + "=", 0) == 0) return true;
  }
  return false;
}

namespace {

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

}  // namespace

// The known keys (long flag names) and the section each belongs to.
std::map<std::string, std::string> known_keys(const CLI::App& app) {
  std::map<std::string, std::string> known;
  for (const CLI::Option* opt : app.get_options()) {
    for (const auto& n : opt->get_lnames()) known[n] = section_of_group(opt->get_group());
  }
  known.erase("help");
  known.erase("version");
  known.erase("check-config");  // a command, not a setting
  return known;
}

namespace {

// Every --config FILE argument, in order (the file is checked before CLI11 reads it).
std::vector<std::string> config_args(int argc, char** argv) {
  std::vector<std::string> given;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--config" && i + 1 < argc) given.emplace_back(argv[++i]);
    if (a.rfind("--config=", 0) == 0) given.push_back(a.substr(9));
  }
  return given;
}

// The --config FILE argument, if any.
std::string config_arg(int argc, char** argv) {
  const auto given = config_args(argc, argv);
  return given.empty() ? std::string{} : given.front();
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

constexpr const char* kUtf8Bom = "\xEF\xBB\xBF";  // what Windows editors put before a UTF-8 text

// The values of a `key = value` entry as CLI11's own reader takes a one-line value: a list's
// elements; a value with commas (or spaces) outside quotes split there; quotes removed.
std::vector<std::string> entry_inputs(const ConfigEntry& entry) {
  std::vector<std::string> inputs;
  if (entry.list) {
    for (const auto& el : entry.elements) inputs.push_back(unquoted(el.text));
    return inputs;
  }
  const std::string& v = entry.value;
  if (v.find(',') != std::string::npos) {
    inputs = CLI::detail::split_up(v, ',');
  } else if (v.find(' ') != std::string::npos) {
    inputs = CLI::detail::split_up(v);
  } else {
    inputs = {v};
  }
  for (auto& in : inputs) CLI::detail::remove_quotes(in);
  return inputs;
}

// The config file for CLI11 (its text, as scan_config was given it), read by read_config_entries rather than by
// CLI11's reader, which took each line alone: `[osc]` + `port = 1` is the item `osc-port`, a list
// over several lines one item. Keys that do not resolve are given as they are (scan_config has
// refused them already).
class SectionedConfig : public CLI::ConfigTOML {
 public:
  SectionedConfig(std::map<std::string, std::string> known, std::set<int> skip)
      : known_(std::move(known)), skip_(std::move(skip)) {}
  std::vector<CLI::ConfigItem> from_config(std::istream& input) const override {
    std::string text{std::istreambuf_iterator<char>(input), std::istreambuf_iterator<char>()};
    if (text.rfind(kUtf8Bom, 0) == 0) text.erase(0, 3);
    std::vector<ConfigEntry> entries;
    ConfigTextError bad;
    // The file was read the same way a moment before (scan_config): only a file changed since fails.
    if (!read_config_entries(text, skip_, entries, bad)) {
      throw CLI::ConfigError("the config file changed while it was read (now line " + std::to_string(bad.line) + ": " +
                             bad.what + "): try again");
    }
    std::vector<CLI::ConfigItem> items;
    std::string section;
    for (const auto& entry : entries) {
      if (entry.section) {
        section = entry.key;
        continue;
      }
      std::string e, key = section.empty() ? std::string() : resolve_key(known_, section, entry.key, e);
      if (key.empty()) key = entry.key;
      std::vector<std::string> inputs = entry_inputs(entry);
      if (!items.empty() && items.back().name == key) {  // as CLI11's reader: one item for adjacent lines
        items.back().inputs.insert(items.back().inputs.end(), inputs.begin(), inputs.end());
      } else {
        items.emplace_back();
        items.back().name = key;
        items.back().inputs = std::move(inputs);
      }
    }
    return items;
  }

 private:
  std::map<std::string, std::string> known_;
  std::set<int> skip_;
};

// Reads the config file line by line: every key must be `key = value` with a known key (the
// long flag names, in sections or not). An unknown key, an unknown section, an unreadable file
// or a line that is not `key = value` is an error naming the file and line. `lines` maps each
// flag to the line that sets it.
// `text` is the file's, as read_config read it (config_io.hpp); messages name `path`. Lines in
// `skip` are read as comments (--check-config: reported already).
bool scan_config(const std::string& path, std::string text, const CLI::App& app, const std::set<int>& skip,
                 ConfigFile& file, std::vector<std::string>& warnings, std::string& error) {
  std::map<std::string, int>& lines = file.lines;
  if (text.rfind(kUtf8Bom, 0) == 0) text.erase(0, 3);  // an editor's byte-order mark is not part of the first key
  std::vector<ConfigEntry> entries;
  ConfigTextError bad;
  const bool read = read_config_entries(text, skip, entries, bad);  // the entries before a problem, if any
  const auto known = known_keys(app);
  std::string section;
  for (const auto& entry : entries) {
    const int no = entry.line;
    const std::string where = path + ":" + std::to_string(no) + ": ";
    if (entry.section) {
      if (find_section(entry.key) == nullptr) {
        control::ClosestWord near(entry.key);
        for (const auto& sec : kSections) near.consider(sec.name);
        error = where + "unknown section " + entry.value +
                (near.best().empty() ? "" : " (did you mean [" + near.best() + "]?)") + "; the sections are " +
                section_names();
        return false;
      }
      section = entry.key;
      continue;
    }
    std::string e;
    const std::string key = resolve_key(known, section, entry.key, e);
    if (key.empty()) {
      error = where + e;
      return false;
    }
    if (auto it = lines.find(key); it != lines.end()) {
      // A list (play, …) takes both lines' values; a single value is refused as given twice
      // elsewhere. The warning said "this one wins" for both (new-user pass 21: both files played).
      const CLI::Option* opt = app.get_option_no_throw("--" + key);
      const bool list = opt != nullptr && opt->get_items_expected_max() > 1;
      warnings.push_back(where + "'" + key + "' is also set on line " + std::to_string(it->second) +
                         (list ? ": both apply (a list: their values are added together)" : "; this one wins"));
    }
    lines[key] = no;
    if (entry.list) {  // each element under its own line (a list may span lines)
      for (const auto& el : entry.elements) file.values[key].emplace_back(el.line, el.text);
    } else {
      file.values[key].emplace_back(no, entry.value);
    }
  }
  if (!read) error = path + ":" + std::to_string(bad.line) + ": " + bad.what;
  return read;
}

// The stemd.conf an install under PREFIX ships (packaging/install_service.cmake puts it in
// PREFIX/etc/stemd, in /etc when PREFIX is /usr), PREFIX taken from where this binary runs
// (PREFIX/bin/stemd, whatever prefix the build was configured with). Empty for a binary outside a
// bin directory (a build tree) and for /usr.
std::string installed_config() {
  char buf[4096];
  const ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) return {};
  const std::string exe(buf, static_cast<std::size_t>(n));
  const auto slash = exe.rfind('/');
  if (slash == std::string::npos || slash == 0) return {};
  const std::string dir = exe.substr(0, slash);
  const auto up = dir.rfind('/');
  if (up == std::string::npos || dir.compare(up + 1, std::string::npos, "bin") != 0) return {};
  const std::string prefix = dir.substr(0, up);
  if (prefix.empty() || prefix == "/usr") return {};
  return prefix + "/etc/stemd/stemd.conf";
}

// The config files looked for when --config is not given: $XDG_CONFIG_HOME/stemd/stemd.conf (or
// ~/.config/stemd/stemd.conf), then /etc/stemd/stemd.conf, then the installed one
// (installed_config(): /usr/local/etc/stemd/stemd.conf for a `cmake --install` with the default
// prefix; after /etc, so a copy left by an old install never overrides it). The first that is
// there is read (config_io.cpp): looked at by the helper, as a home directory on NFS may not answer.
std::vector<std::string> search_candidates() {
  std::vector<std::string> candidates;
  const char* xdg = std::getenv("XDG_CONFIG_HOME");
  const char* home = std::getenv("HOME");
  if (xdg != nullptr && xdg[0] == '/') {
    candidates.push_back(std::string(xdg) + "/stemd/stemd.conf");
  } else if (home != nullptr && home[0] == '/') {
    candidates.push_back(std::string(home) + "/.config/stemd/stemd.conf");
  }
  candidates.push_back("/etc/stemd/stemd.conf");
  if (std::string installed = installed_config(); !installed.empty()) candidates.push_back(std::move(installed));
  return candidates;
}

// --config none: CLI11 must not try to read a file "none".
void drop_config_none(std::vector<std::string>& args) {
  for (std::size_t i = 1; i < args.size(); ++i) {
    if (args[i] == "--config=none") {
      args.erase(args.begin() + static_cast<long>(i));
      return;
    }
    if (args[i] == "--config" && i + 1 < args.size()) {
      args.erase(args.begin() + static_cast<long>(i), args.begin() + static_cast<long>(i) + 2);
      return;
    }
  }
}

std::string join(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& x : v) out += (out.empty() ? "" : ", ") + x;
  return out;
}

// The file's text in a memfd, for CLI11 to read (/proc/self/fd/N): the bytes scan_config checked,
// whatever happens to the file meanwhile. -1 with `error`.
int text_fd(const std::string& text, const std::string& path, std::string& error) {
  const int fd = static_cast<int>(::syscall(SYS_memfd_create, "stemd-config", MFD_CLOEXEC));
  bool ok = fd >= 0;
  for (std::size_t at = 0; ok && at < text.size();) {
    const ssize_t w = ::write(fd, text.data() + at, text.size() - at);
    if (w < 0 && errno == EINTR) continue;
    ok = w > 0;
    if (ok) at += static_cast<std::size_t>(w);
  }
  if (ok) return fd;
  error = "config file " + path + ": cannot hold its text for the parse: " + std::strerror(errno);
  if (fd >= 0) ::close(fd);
  return -1;
}

}  // namespace

std::shared_ptr<CLI::Config> sectioned_config(std::map<std::string, std::string> known, std::set<int> skip) {
  return std::make_shared<SectionedConfig>(std::move(known), std::move(skip));
}

ConfigFile::~ConfigFile() {
  if (fd >= 0) ::close(fd);
}

bool open_config(int argc, char** argv, const CLI::App& app, Options& o, std::vector<std::string>& args,
                 ConfigFile& file, const std::set<int>& skip, ConfigInput& in, std::string& error) {
  // One --config: the file checked here (the first) must be the one CLI11 reads (the last): a
  // second one went unchecked — a FIFO there hung start-up and SIGHUP in open() (attack pass).
  const std::vector<std::string> given = config_args(argc, argv);
  if (given.size() > 1) {
    error = "--config is given " + std::to_string(given.size()) + " times (";
    for (std::size_t i = 0; i < given.size(); ++i) error += (i ? ", " : "") + given[i];
    error += "): give one";
    return false;
  }
  const ConfigPlan plan = config_plan(argc, argv);
  if (plan.candidates.empty()) {
    o.config_source = "no config file (" + plan.no_file + ")";
    if (plan.none_flag) drop_config_none(args);
    return true;
  }
  // Read once — in the helper process, without blocking the caller past the deadline (a file
  // system that does not answer), a FIFO or a device refused at once —; the key check and CLI11
  // then both read that text, never the path again: nothing can swap a FIFO or another file in
  // between the check and the read.
  if (!in.read) in.read = read_config(plan, in);
  const ConfigRead& r = *in.read;
  o.config_path = r.path.empty() ? plan.candidates.front() : r.path;
  if (r.kind == ConfigRead::Kind::kNone) {
    o.config_path.clear();
    o.config_source = "no config file (looked for " + join(plan.candidates) + ")";
    return true;
  }
  o.config_source = "config file " + o.config_path + (plan.search ? " (found without --config)" : "");
  if (r.kind != ConfigRead::Kind::kOk) {
    error = r.error;
    return false;
  }
  file.fd = text_fd(r.text, o.config_path, error);
  if (file.fd < 0) return false;
  if (!scan_config(o.config_path, r.text, app, skip, file, o.config_warnings, error)) return false;
  const std::string via = "/proc/self/fd/" + std::to_string(file.fd);
  if (plan.search) {
    args.push_back("--config");
    args.push_back(via);
  }
  for (std::size_t i = 1; i < args.size(); ++i) {  // CLI11 reads the same text
    if (args[i] == "--config" && i + 1 < args.size()) args[i + 1] = via;
    if (args[i].rfind("--config=", 0) == 0) args[i] = "--config=" + via;
  }
  return true;
}

void resolve_config_files(int argc, char** argv, const ConfigFile& file, Options& o) {
  const std::string base =
      !o.media_root.empty() ? o.media_root : std::filesystem::path(o.config_path).parent_path().string();
  auto resolve = [&](std::string& f) {
    if (!f.empty() && f[0] != '/' && !base.empty()) f = (std::filesystem::path(base) / f).string();
  };
  auto from_file = [&](const char* key) { return file.lines.count(key) != 0 && !on_command_line(argc, argv, key); };
  if (from_file("play")) {
    // Each line's values counted as CLI11 reads them (`play = ["a", "b"]` is two), so that a
    // problem with one file is reported under its own line (both came under the last one).
    std::vector<int> at;
    for (const auto& [no, value] : file.values.at("play")) {
      std::istringstream one("play = " + value);
      const auto items = CLI::ConfigTOML().from_config(one);
      at.insert(at.end(), items.empty() ? 0 : items.front().inputs.size(), no);
    }
    if (at.size() == o.play.size()) o.play_lines = std::move(at);
    for (auto& f : o.play) resolve(f);
  }
  static const char* const kDecks[4] = {"a", "b", "c", "d"};
  for (int d = 0; d < 4; ++d) {
    if (from_file(kDecks[d])) resolve(o.deck_files[d]);
  }
  if (from_file("c_preload")) resolve(o.c_preload);
}

}  // namespace stemd::app::options_detail

namespace stemd::app {

ConfigPlan config_plan(int argc, char** argv) {
  ConfigPlan plan;
  const std::string given = options_detail::config_arg(argc, argv);
  if (given == "none") {
    plan.no_file = "--config none";
    plan.none_flag = true;
  } else if (!given.empty()) {
    plan.candidates = {given};
  } else if (const char* off = std::getenv("STEMD_NO_CONFIG_SEARCH"); off != nullptr && *off != '\0') {
    plan.no_file = "STEMD_NO_CONFIG_SEARCH is set";
  } else {
    plan.candidates = options_detail::search_candidates();
    plan.search = true;
  }
  return plan;
}

}  // namespace stemd::app
