// Client strings made safe for the log, and per-kind log rate limits (see log_guard.hpp).
#include "base/log_guard.hpp"

#include <cstdio>

namespace stemd::base {

namespace {

// Length of the valid UTF-8 sequence at s[i] (1..4), or 0 when it is not one (overlong forms,
// surrogates and code points above U+10FFFF are invalid, as in RFC 3629).
std::size_t utf8_length(std::string_view s, std::size_t i, std::uint32_t& cp) {
  const auto b = [&](std::size_t k) { return static_cast<unsigned char>(s[i + k]); };
  const unsigned char c = b(0);
  std::size_t n = 0;
  std::uint32_t min = 0;
  if (c < 0x80) {
    cp = c;
    return 1;
  } else if ((c & 0xe0) == 0xc0) {
    n = 2, cp = c & 0x1f, min = 0x80;
  } else if ((c & 0xf0) == 0xe0) {
    n = 3, cp = c & 0x0f, min = 0x800;
  } else if ((c & 0xf8) == 0xf0) {
    n = 4, cp = c & 0x07, min = 0x10000;
  } else {
    return 0;
  }
  if (i + n > s.size()) return 0;
  for (std::size_t k = 1; k < n; ++k) {
    if ((b(k) & 0xc0) != 0x80) return 0;
    cp = (cp << 6) | (b(k) & 0x3f);
  }
  if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
  return n;
}

}  // namespace

std::string log_escape(std::string_view s, std::size_t max_bytes) {
  const std::size_t keep = s.size() > max_bytes ? max_bytes : s.size();
  std::string out;
  out.reserve(keep + 16);
  char buf[16];
  std::size_t i = 0;
  while (i < keep) {
    std::uint32_t cp = 0;
    const std::size_t n = utf8_length(s, i, cp);
    if (n == 0 || i + n > keep) {  // invalid, or a sequence cut by the limit
      std::snprintf(buf, sizeof buf, "\\x%02x", static_cast<unsigned char>(s[i]));
      out += buf;
      ++i;
      continue;
    }
    if (cp == '\\') {
      out += "\\\\";
    } else if (cp == '\n') {
      out += "\\n";
    } else if (cp == '\r') {
      out += "\\r";
    } else if (cp == '\t') {
      out += "\\t";
    } else if (cp < 0x20 || cp == 0x7f) {
      std::snprintf(buf, sizeof buf, "\\x%02x", static_cast<unsigned>(cp));
      out += buf;
    } else if ((cp >= 0x80 && cp <= 0x9f) || cp == 0x2028 || cp == 0x2029) {
      // C1 controls (U+009B is a CSI on some terminals) and the Unicode line separators.
      std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(cp));
      out += buf;
    } else {
      out.append(s.data() + i, n);
    }
    i += n;
  }
  if (s.size() > keep) out += "…(" + std::to_string(s.size()) + " bytes)";
  return out;
}

std::string suppressed_note(std::uint64_t n) {
  return n == 0 ? std::string() : " (… and " + std::to_string(n) + " more suppressed)";
}

bool LogLimiter::allow(const std::string& kind, std::uint64_t& suppressed, Clock::time_point now) {
  suppressed = 0;
  Kind& k = kinds_[kind];
  if (now - k.window >= period_) {
    k.window = now;
    k.lines = 0;
  }
  if (k.lines >= burst_) {
    ++k.suppressed;
    ++suppressed_total_;
    return false;
  }
  ++k.lines;
  suppressed = k.suppressed;
  k.suppressed = 0;
  return true;
}

bool LogLimiter::allow_info(const std::string& kind, std::uint64_t& suppressed, Clock::time_point now) {
  kinds_[kind].info = true;
  return allow(kind, suppressed, now);
}

bool LogLimiter::informational(const std::string& kind) const {
  const auto it = kinds_.find(kind);
  return it != kinds_.end() && it->second.info;
}

void LogLimiter::flush(const std::function<void(const std::string&, std::uint64_t)>& emit, Clock::time_point now) {
  for (auto& [name, k] : kinds_) {
    if (k.suppressed == 0 || now - k.window < period_) continue;
    emit(name, k.suppressed);
    k.suppressed = 0;
    k.window = now;
    k.lines = 1;  // the summary counts as this window's first line
  }
}

}  // namespace stemd::base
