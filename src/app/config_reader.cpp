// The config file's lines read into entries: see config_reader.hpp. Before, each line was taken
// alone: a `play = [` list over several lines failed, and CLI11's own reader then glued the lines
// after it into the list's last "path" (new-user pass 23: "--play loop = truevolume = 0.8…:
// outside the media root").
#include "config_reader.hpp"

#include <sstream>

namespace stemd::app::options_detail {

namespace {

std::string strip(const std::string& s) {
  const auto b = s.find_first_not_of(" \t\r");
  if (b == std::string::npos) return {};
  return s.substr(b, s.find_last_not_of(" \t\r") - b + 1);
}

bool is_key_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.';
}

// Whether a (stripped) line is a setting or a section of its own: a list that reaches it was not
// closed. An element is a quoted string or a bare word, never `word =` nor `[word]` alone.
bool starts_entry(const std::string& t) {
  std::size_t i = 0;
  while (i < t.size() && is_key_char(t[i])) ++i;
  if (i > 0) {
    while (i < t.size() && (t[i] == ' ' || t[i] == '\t')) ++i;
    return i < t.size() && t[i] == '=';
  }
  const auto close = t.find(']');
  if (t.empty() || t[0] != '[' || close == std::string::npos || close == 1) return false;
  for (std::size_t j = 1; j < close; ++j) {
    if (!is_key_char(t[j]) && t[j] != ' ') return false;
  }
  const std::string rest = strip(t.substr(close + 1));
  return rest.empty() || rest[0] == '#';
}

// The index of the quote that closes the string opened at s[at], or npos (not on this line).
std::size_t string_end(const std::string& s, std::size_t at) {
  const char q = s[at];
  for (std::size_t i = at + 1; i < s.size(); ++i) {
    if (q == '"' && s[i] == '\\') {
      ++i;  // an escaped character (\") does not close it
    } else if (s[i] == q) {
      return i;
    }
  }
  return std::string::npos;
}

std::string shown(const std::string& s) { return s.size() > 60 ? s.substr(0, 60) + "…" : s; }

class Reader {
 public:
  Reader(const std::string& text, const std::set<int>& skip) : skip_(skip) {
    std::istringstream in(text);
    for (std::string l; std::getline(in, l);) lines_.push_back(l);
  }

  bool run(std::vector<ConfigEntry>& out, ConfigTextError& error) {
    for (no_ = 1; no_ <= count(); ++no_) {
      const std::string t = strip(line(no_));
      if (t.empty() || t[0] == '#' || t[0] == ';') continue;
      ConfigEntry e;
      e.line = no_;
      dropped_ = skipped(no_);
      if (entry(t, e)) {
        if (!dropped_) out.push_back(std::move(e));
      } else if (!error_.what.empty()) {
        error = error_;
        return false;
      }  // else a problem on a line already reported: the entry is left out, the reading goes on
    }
    return true;
  }

 private:
  int count() const { return static_cast<int>(lines_.size()); }
  const std::string& line(int no) const { return lines_[static_cast<std::size_t>(no - 1)]; }
  bool skipped(int no) const { return skip_.count(no) != 0; }
  bool fail(int no, const std::string& what) {
    if (!skipped(no)) error_ = {no, what};
    return false;
  }

  // The entry that starts on line no_ (`t`, stripped); a list leaves no_ at its last line.
  bool entry(const std::string& t, ConfigEntry& e) {
    if (t[0] == '[') {
      e.section = true;
      const auto close = t.find(']');
      const std::string rest = close == std::string::npos ? "" : strip(t.substr(close + 1));
      const bool closed = close != std::string::npos && (rest.empty() || rest[0] == '#');  // `[osc]  # …`
      e.value = closed ? t.substr(0, close + 1) : t;
      if (closed) e.key = strip(t.substr(1, close - 1));
      return true;  // scan_config names an unknown section
    }
    const auto eq = t.find('=');
    if (eq == std::string::npos) return fail(no_, "'" + t + "' is not a 'key = value' line");
    e.key = strip(t.substr(0, eq));
    const std::string& s = line(no_);
    std::size_t at = s.find('=') + 1;
    while (at < s.size() && (s[at] == ' ' || s[at] == '\t')) ++at;
    if (at < s.size() && s[at] == '[') return list(e, at + 1);
    if (!scalar(e, s, at)) return false;
    return !e.value.empty() || fail(no_, "key '" + e.key + "' has no value");
  }

  // A quoted string at s[at]: `to` gets it (quotes kept) and `at` moves past it.
  bool quoted(const ConfigEntry& e, const std::string& s, std::size_t& at, std::string& to) {
    const char q = s[at];
    if (s.compare(at, 3, std::string(3, q)) == 0) {
      return fail(no_, "key '" + e.key + "': multi-line strings (" + std::string(3, q) +
                           ") are not read: write the value on one line");
    }
    const auto end = string_end(s, at);
    if (end == std::string::npos) {
      return fail(no_, "key '" + e.key + "': the quoted value opened here (" + shown(s.substr(at)) +
                           ") is not closed on this line: a quoted string ends on the line it starts on");
    }
    to = s.substr(at, end - at + 1);
    at = end + 1;
    return true;
  }

  // `key = value # comment`: the value, its strings closed on this line.
  bool scalar(ConfigEntry& e, const std::string& s, std::size_t at) {
    std::string v;
    while (at < s.size() && s[at] != '#') {
      if (s[at] == '"' || s[at] == '\'') {
        std::string str;
        if (!quoted(e, s, at, str)) return false;
        v += str;
      } else {
        v += s[at++];
      }
    }
    e.value = strip(v);
    return true;
  }

  // The next line of a list not yet closed (no_ moves to it), or false at a line that is a setting
  // or a section of its own, or at the end of the file: the list opened on line `start` is not closed.
  bool next_list_line(const ConfigEntry& e) {
    for (int next = no_ + 1;; ++next) {
      if (next > count() || (!skipped(next) && starts_entry(strip(line(next))))) {
        const std::string until = next > count() ? "the end of the file" : "line " + std::to_string(next);
        fail(e.line, "key '" + e.key + "': the list opened here is not closed (no ']' before " + until +
                         "); a list may span lines, its elements separated by commas, up to its ']'");
        no_ = next - 1;  // the lines read so far are the list's: the reading goes on at `next`
        return false;
      }
      no_ = next;
      if (!skipped(next)) return true;
      dropped_ = true;  // a line of it was reported: the whole list is left out
    }
  }

  // `key = [a, b,` … `]`: the elements, each with its line; s[at] is after the '['.
  bool list(ConfigEntry& e, std::size_t at) {
    e.list = true;
    bool element_next = true;  // an element (or the ']') comes next, not a ','
    for (const std::string* s = &line(no_);;) {
      if (at >= s->size() || (*s)[at] == '#') {  // this line's end: the list goes on on the next
        if (!next_list_line(e)) return false;
        s = &line(no_);
        at = 0;
        continue;
      }
      const char c = (*s)[at];
      if (c == ' ' || c == '\t' || c == '\r') {
        ++at;
      } else if (c == ']') {
        const std::string rest = strip(s->substr(at + 1));
        if (!rest.empty() && rest[0] != '#') {
          return fail(no_, "key '" + e.key + "': '" + shown(rest) + "' after the list's ']' (a comment starts with #)");
        }
        std::string joined;
        for (const auto& el : e.elements) joined += (joined.empty() ? "" : ", ") + el.text;
        e.value = "[" + joined + "]";
        return true;
      } else if (!element_next) {
        if (c != ',') {
          return fail(no_, "key '" + e.key + "': ',' or ']' expected after " + e.elements.back().text + ", not '" +
                               shown(strip(s->substr(at))) + "'");
        }
        element_next = true;
        ++at;
      } else if (!element(e, *s, at)) {
        return false;
      } else {
        element_next = false;
      }
    }
  }

  // One element at s[at]: a quoted string or a bare word (a number, true).
  bool element(ConfigEntry& e, const std::string& s, std::size_t& at) {
    const char c = s[at];
    if (c == ',') return fail(no_, "key '" + e.key + "': a ',' with no element before it");
    if (c == '[') return fail(no_, "key '" + e.key + "': a list inside a list is not read");
    std::string text;
    if (c == '"' || c == '\'') {
      if (!quoted(e, s, at, text)) return false;
    } else {
      const auto end = s.find_first_of(" \t\r,]#", at);
      text = s.substr(at, end == std::string::npos ? std::string::npos : end - at);
      at = end == std::string::npos ? s.size() : end;
    }
    e.elements.push_back({no_, text});
    return true;
  }

  const std::set<int>& skip_;
  std::vector<std::string> lines_;
  int no_ = 0;
  bool dropped_ = false;
  ConfigTextError error_;
};

}  // namespace

bool read_config_entries(const std::string& text, const std::set<int>& skip, std::vector<ConfigEntry>& out,
                         ConfigTextError& error) {
  return Reader(text, skip).run(out, error);
}

std::string unquoted(const std::string& text) {
  if (text.size() < 2 || (text[0] != '"' && text[0] != '\'') || text.back() != text[0]) return text;
  const char q = text[0];
  std::string out;
  for (std::size_t i = 1; i + 1 < text.size(); ++i) {
    if (q == '"' && text[i] == '\\' && text[i + 1] == '"' && i + 2 < text.size()) continue;  // \" is "
    out += text[i];
  }
  return out;
}

}  // namespace stemd::app::options_detail
