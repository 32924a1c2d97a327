// The config file's text read into entries (`[section]` lines and `key = value` settings): the
// subset of TOML stemd reads. A list may span lines (`play = [` … `]`, a trailing comma, comments
// after its elements); a quoted string ends on its own line. Both the key check (scan_config) and
// the reader CLI11 is given (SectionedConfig) read the file through this, so a start, a SIGHUP
// reload and --check-config see the same settings. [main] thread only.
#pragma once

#include <set>
#include <string>
#include <vector>

namespace stemd::app::options_detail {

// One element of a list, as written (quotes kept), and the line it is on.
struct ConfigElement {
  int line = 0;
  std::string text;
};

struct ConfigEntry {
  int line = 0;          // the line it starts on (the key's, the section's)
  bool section = false;  // `[name]`: the name in `key`
  std::string key;       // as written, trimmed
  // The value as written, the comments left out, on one line: `"a.wav"`, `0.8`, `["a.wav", "b.wav"]`
  // (a list over several lines is joined).
  std::string value;
  bool list = false;                    // `[ … ]`
  std::vector<ConfigElement> elements;  // a list's elements, in order
};

// A problem of the text: the line it is at and what is wrong (without the file's name).
struct ConfigTextError {
  int line = 0;
  std::string what;
};

// Reads `text` (the file without a byte-order mark) into `out`. Lines in `skip` read as blank
// ones, and an entry with a line among them is left out whole (--check-config: its problem was
// reported; the lines of a list after it are not read as settings of their own). False at the
// first problem (not one on a skipped line), with `error`.
bool read_config_entries(const std::string& text, const std::set<int>& skip, std::vector<ConfigEntry>& out,
                         ConfigTextError& error);

// A list element's or a quoted value's text without its quotes (`"a.wav"` → `a.wav`, `\"` → `"`);
// a bare word as it is.
std::string unquoted(const std::string& text);

}  // namespace stemd::app::options_detail
