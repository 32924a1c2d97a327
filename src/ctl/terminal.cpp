// stemctl's terminal output (see terminal.hpp).
#include "terminal.hpp"

#include "base/log_guard.hpp"

#include <algorithm>
#include <limits>

namespace stemd::ctl {

namespace {

std::size_t columns(const std::string& s) {
  std::size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80 ? 1 : 0;  // UTF-8: "·" is one column
  return n;
}

// "a · b · c" wrapped at its separators to `width` columns, further lines indented by two.
std::string wrap_fields(const std::string& line, std::size_t width) {
  static const std::string kSep = " · ";
  if (width == 0 || columns(line) <= width || line.find(kSep) == std::string::npos) return line;
  std::string out, row;
  std::size_t at = 0;
  while (at <= line.size()) {
    const auto next = std::min(line.find(kSep, at), line.size());
    const std::string field = line.substr(at, next - at);
    if (row.empty()) {
      row = (out.empty() ? "" : "  ") + field;
    } else if (columns(row) + columns(kSep) + columns(field) <= width) {
      row += kSep + field;
    } else {
      out += row + "\n";
      row = "  " + field;
    }
    at = next + kSep.size();
  }
  return out + row;
}

}  // namespace

std::string terminal_frame(const std::string& text, std::size_t width) {
  std::string out = "\x1b[H";
  std::size_t at = 0;
  while (at < text.size()) {
    const auto end = std::min(text.find('\n', at), text.size());
    std::string line = wrap_fields(text.substr(at, end - at), width);
    for (std::size_t nl; (nl = line.find('\n')) != std::string::npos;) {
      out += line.substr(0, nl) + "\x1b[K\n";
      line.erase(0, nl + 1);
    }
    out += line + "\x1b[K\n";
    at = end + 1;
  }
  return out + "\x1b[J";
}

std::string terminal_text(std::string_view s) { return base::log_escape(s, std::numeric_limits<std::size_t>::max()); }

std::string terminal_lines(std::string_view s) {
  std::string out;
  std::size_t at = 0;
  for (std::size_t nl; (nl = s.find('\n', at)) != std::string_view::npos; at = nl + 1) {
    out += terminal_text(s.substr(at, nl - at)) + "\n";
  }
  return out + terminal_text(s.substr(at));
}

std::string message_text(const control::OscMessage& m) {
  std::string out = terminal_text(m.address);
  for (const auto& a : m.args) out += " " + (a.is_string() ? "\"" + terminal_text(a.s) + "\"" : a.to_string());
  return out;
}

}  // namespace stemd::ctl
