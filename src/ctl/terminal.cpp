// stemctl's terminal output (see terminal.hpp).
#include "terminal.hpp"

#include <algorithm>

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

}  // namespace stemd::ctl
