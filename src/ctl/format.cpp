// stemctl's text (see format.hpp).
#include "format.hpp"
#include "format_text.hpp"
#include "terminal.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>

namespace stemd::ctl {

namespace {

bool parse_int64(const std::string& s, std::int64_t& out) {
  if (s.empty()) return false;
  const char* b = s.data();
  const char* e = s.data() + s.size();
  if (*b == '+') ++b;
  if (b == e) return false;
  const auto r = std::from_chars(b, e, out);
  return r.ec == std::errc() && r.ptr == e;
}

bool parse_double(const std::string& s, double& out) {
  if (s.empty() || std::isspace(static_cast<unsigned char>(s[0]))) return false;
  char* end = nullptr;
  out = std::strtod(s.c_str(), &end);
  return end == s.c_str() + s.size();
}

bool looks_like_decimal(const std::string& s) {
  // digits with a dot or an exponent: "1.5", "-.5", "2e3", "1E-3" (not "inf", "nan", "0x1p3")
  bool digit = false, mark = false;
  for (std::size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (c >= '0' && c <= '9') {
      digit = true;
    } else if (c == '.' || c == 'e' || c == 'E') {
      mark = true;
    } else if ((c == '+' || c == '-') && (i == 0 || s[i - 1] == 'e' || s[i - 1] == 'E')) {
    } else {
      return false;
    }
  }
  return digit && mark;
}

// Characters on screen (UTF-8 code points; good enough for names and paths).
std::size_t display_width(const std::string& s) {
  std::size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

std::string pad(const std::string& s, std::size_t width, bool right = false) {
  const std::size_t w = display_width(s);
  if (w >= width) return s;
  const std::string fill(width - w, ' ');
  return right ? fill + s : s + fill;
}

// A rate or tempo factor: "1.00", "1.25", "1.0125" (two decimals at least, four at most).
std::string factor_text(double x) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.4f", x);
  std::string t = buf;
  while (t.size() > 4 && t.back() == '0' && t[t.size() - 3] != '.') t.pop_back();
  return t;
}

}  // namespace

namespace detail {

std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

// Rows of cells; the first row is the header. Columns in `right` are right-aligned.
std::string table(const std::vector<std::vector<std::string>>& rows, const std::vector<bool>& right) {
  std::vector<std::size_t> w;
  for (const auto& r : rows) {
    if (w.size() < r.size()) w.resize(r.size(), 0);
    for (std::size_t i = 0; i < r.size(); ++i) w[i] = std::max(w[i], display_width(r[i]));
  }
  std::string out;
  for (const auto& r : rows) {
    std::string line;
    for (std::size_t i = 0; i < r.size(); ++i) {
      const bool last = i + 1 == r.size();
      const bool ra = i < right.size() && right[i];
      line += last && !ra ? r[i] : pad(r[i], w[i], ra);
      if (!last) line += "  ";
    }
    out += line + "\n";
  }
  return out;
}

std::string value_text(const OscArg& a) { return a.is_string() ? terminal_text(a.s) : a.to_string(); }

std::string raw_text(const OscArg& a) { return a.is_string() ? a.s : a.to_string(); }

std::string level_text(double v) {
  if (v <= 0) return fmt("%.2f", v) + " (-inf dB)";
  return fmt("%.2f", v) + " (" + fmt("%+.1f", 20.0 * std::log10(v)) + " dB)";
}

std::string integer_text(const OscArg& a) {
  if (a.is_number()) return std::to_string(static_cast<std::int64_t>(std::llround(a.as_double())));
  return value_text(a);
}

}  // namespace detail

using namespace detail;

bool parse_send_arg(const std::string& text, OscArg& out, std::string& error) {
  out = OscArg{};
  if (text == "T" || text == "F" || text == "N" || text == "I") {
    out.type = text[0];
    out.i = text == "T" ? 1 : 0;
    return true;
  }
  if (text.size() >= 2 && text[1] == ':') {
    const std::string v = text.substr(2);
    switch (text[0]) {
      case 'i': {
        std::int64_t x = 0;
        if (!parse_int64(v, x)) {
          error = "\"" + text + "\": not an integer";
          return false;
        }
        if (x < std::numeric_limits<std::int32_t>::min() || x > std::numeric_limits<std::int32_t>::max()) {
          error = "\"" + text + "\": outside the 32-bit range (use h: for a 64-bit integer)";
          return false;
        }
        out = OscArg::Int(x);
        return true;
      }
      case 'h': {
        std::int64_t x = 0;
        if (!parse_int64(v, x)) {
          error = "\"" + text + "\": not a 64-bit integer";
          return false;
        }
        out = OscArg::Int64(x);
        return true;
      }
      case 'f':
      case 'd': {
        double x = 0;
        if (!parse_double(v, x)) {  // nan and inf are allowed: they are for testing the daemon
          error = "\"" + text + "\": not a number";
          return false;
        }
        out = text[0] == 'f' ? OscArg::Float(x) : OscArg::Double(x);
        return true;
      }
      case 's':
        out = OscArg::Str(v);
        return true;
      case 'S':
        out = OscArg::Str(v);
        out.type = 'S';
        return true;
      case 'c':
        if (v.size() != 1) {
          error = "\"" + text + "\": c: takes one character";
          return false;
        }
        out.type = 'c';
        out.i = static_cast<unsigned char>(v[0]);
        return true;
      default:
        break;  // "a:b" is just a string
    }
  }
  if (text == "true" || text == "false") {
    out = OscArg::Bool(text == "true");
    return true;
  }
  std::int64_t x = 0;
  if (parse_int64(text, x)) {
    const bool fits = x >= std::numeric_limits<std::int32_t>::min() && x <= std::numeric_limits<std::int32_t>::max();
    out = fits ? OscArg::Int(x) : OscArg::Int64(x);
    return true;
  }
  double d = 0;
  if (looks_like_decimal(text) && parse_double(text, d)) {
    out = OscArg::Float(d);
    return true;
  }
  out = OscArg::Str(text);
  return true;
}

std::vector<OscArg> reply_values(const OscMessage& reply) {
  if (reply.args.empty()) return {};
  return {reply.args.begin() + 1, reply.args.end()};
}

std::string describe_failure(const OscMessage& reply) {
  std::string where = reply.args.empty() ? "?" : value_text(reply.args[0]);
  std::string reason = "failed";
  std::size_t last = reply.args.size();
  if (reply.args.size() >= 2 && reply.args.back().is_string()) {
    reason = terminal_text(reply.args.back().s);  // it may quote what a client sent
    last = reply.args.size() - 1;
  }
  for (std::size_t i = 1; i < last; ++i) where += " " + value_text(reply.args[i]);
  return where + ": " + reason;
}

StatusFields status_fields(const OscMessage& reply) {
  StatusFields f;
  for (std::size_t i = 1; i + 1 < reply.args.size(); i += 2) {
    if (!reply.args[i].is_string()) break;  // not key/value pairs any more
    f.emplace_back(reply.args[i].s, reply.args[i + 1]);
  }
  return f;
}

const OscArg* find_field(const StatusFields& f, const std::string& key) {
  for (const auto& [k, v] : f) {
    if (k == key) return &v;
  }
  return nullptr;
}

double field_number(const StatusFields& f, const std::string& key, double def) {
  const OscArg* a = find_field(f, key);
  if (a == nullptr) return def;
  if (a->is_number()) return a->as_double();
  double d = 0;
  return a->is_string() && parse_double(a->s, d) ? d : def;
}

namespace {
// The row count a paged reply announces: 0 for a negative or NaN one, and more than any reply
// holds for one past 2^53 (converted without overflow: a reply is the daemon's, or anyone's who
// can send to stemctl, and is checked as such).
std::size_t announced_rows(const OscArg& v) {
  const double d = v.as_double();
  if (!(d > 0)) return 0;
  if (d >= 9007199254740992.0) return std::numeric_limits<std::size_t>::max();
  return static_cast<std::size_t>(d);
}
}  // namespace

bool parse_list(const OscMessage& reply, std::vector<SourceRow>& rows, std::string& error) {
  rows.clear();
  const auto& a = reply.args;
  if (a.size() < 2 || !a[1].is_number()) {
    error = "malformed /stemd/list reply (no count): " + message_text(reply);
    return false;
  }
  const std::size_t count = announced_rows(a[1]);
  if (count > (a.size() - 2) / 6) {  // divided, not 2 + 6 × count: a count near 2^64 / 6 wrapped
    error = "malformed /stemd/list reply (" + std::to_string(count) + " sources announced, " +
            std::to_string((a.size() - 2) / 6) + " sent)";
    return false;
  }
  for (std::size_t k = 0; k < count; ++k) {
    const OscArg* v = &a[2 + 6 * k];
    SourceRow r;
    r.id = static_cast<std::int64_t>(v[0].as_double());
    r.name = raw_text(v[1]);  // as sent (--json); the tables escape it
    r.path = raw_text(v[2]);
    r.duration_s = v[3].as_double();
    r.streamed = v[4].as_double() != 0 || v[4].type == 'T';
    r.playing = v[5].as_double() != 0 || v[5].type == 'T';
    rows.push_back(std::move(r));
  }
  return true;
}

bool parse_voices(const OscMessage& reply, std::vector<VoiceRow>& rows, std::string& error,
                  std::size_t fields_per_row) {
  rows.clear();
  const auto& a = reply.args;
  const std::size_t n = fields_per_row == kVoiceFieldsMix ? kVoiceFieldsMix : kVoiceFields;
  if (a.size() < 2 || !a[1].is_number()) {
    error = "malformed /stemd/voices reply (no count): " + message_text(reply);
    return false;
  }
  const std::size_t count = announced_rows(a[1]);
  if (count > (a.size() - 2) / n) {  // divided, not 2 + n × count: a count near 2^64 / n wrapped
    error = "malformed /stemd/voices reply (" + std::to_string(count) + " voices announced, " +
            std::to_string((a.size() - 2) / n) + " sent)";
    return false;
  }
  for (std::size_t k = 0; k < count; ++k) {
    const OscArg* v = &a[2 + n * k];
    VoiceRow r;
    r.id = static_cast<std::int64_t>(v[0].as_double());
    r.name = raw_text(v[1]);
    r.position_s = v[2].as_double();
    r.duration_s = v[3].as_double();
    r.ring_fill = v[4].as_double();
    r.underruns = static_cast<std::int64_t>(v[5].as_double());
    r.state = raw_text(v[6]);
    if (n == kVoiceFieldsMix) {
      r.has_mix = true;
      r.volume = v[7].as_double();
      r.rate = v[8].as_double();
      r.tempo = v[9].as_double();
    }
    rows.push_back(std::move(r));
  }
  return true;
}

std::size_t page_rows(const OscMessage& reply) {
  return reply.args.size() < 2 || !reply.args[1].is_number() ? 0 : announced_rows(reply.args[1]);
}

std::int64_t next_page(const OscMessage& reply, std::size_t fields_per_row) {
  const auto& a = reply.args;
  if (a.size() < 2 || !a[1].is_number()) return -1;
  const std::size_t count = announced_rows(a[1]);
  if (fields_per_row == 0 || count > (a.size() - 2) / fields_per_row) return -1;
  const std::size_t at = 2 + fields_per_row * count;  // total, then next
  if (a.size() < at + 2 || !a[at + 1].is_number()) return -1;
  return static_cast<std::int64_t>(a[at + 1].as_double());
}

std::string fmt_time(double s) {
  if (!std::isfinite(s) || s < 0) s = 0;
  const auto tenths = static_cast<std::int64_t>(std::floor(s * 10 + 0.5));
  const std::int64_t h = tenths / 36000, m = tenths / 600 % 60, sec = tenths / 10 % 60, t = tenths % 10;
  char buf[64];
  if (h > 0) {
    std::snprintf(buf, sizeof buf, "%lld:%02lld:%02lld.%lld", static_cast<long long>(h), static_cast<long long>(m),
                  static_cast<long long>(sec), static_cast<long long>(t));
  } else {
    std::snprintf(buf, sizeof buf, "%lld:%02lld.%lld", static_cast<long long>(m), static_cast<long long>(sec),
                  static_cast<long long>(t));
  }
  return buf;
}

std::string fmt_uptime(double s) {
  if (!std::isfinite(s) || s < 0) s = 0;
  const auto total = static_cast<std::int64_t>(s);
  const std::int64_t d = total / 86400, h = total / 3600 % 24, m = total / 60 % 60, sec = total % 60;
  char buf[64];
  if (d > 0) {
    std::snprintf(buf, sizeof buf, "%lldd %02lld:%02lld:%02lld", static_cast<long long>(d), static_cast<long long>(h),
                  static_cast<long long>(m), static_cast<long long>(sec));
  } else {
    std::snprintf(buf, sizeof buf, "%lld:%02lld:%02lld", static_cast<long long>(h), static_cast<long long>(m),
                  static_cast<long long>(sec));
  }
  return buf;
}

std::string fmt_bytes(double b) {
  const double mib = b / (1024.0 * 1024.0);
  return fmt(mib < 10 ? "%.2f MiB" : "%.1f MiB", mib);
}

std::string ring_bar(double fill, int width) {
  if (!std::isfinite(fill)) fill = 0;
  fill = std::clamp(fill, 0.0, 1.0);
  const int n = static_cast<int>(std::lround(fill * width));
  return "[" + std::string(static_cast<std::size_t>(n), '#') + std::string(static_cast<std::size_t>(width - n), '-') +
         "]";
}

std::string list_table(const std::vector<SourceRow>& rows) {
  if (rows.empty()) return "no sources loaded\n";
  std::vector<std::vector<std::string>> t{{"ID", "NAME", "DURATION", "MODE", "PLAYING", "PATH"}};
  for (const auto& r : rows) {
    t.push_back({std::to_string(r.id), terminal_text(r.name), fmt_time(r.duration_s),
                 r.streamed ? "streamed" : "in memory", r.playing ? "yes" : "no", terminal_text(r.path)});
  }
  return table(t, {true, false, true});
}

std::string voices_table(const std::vector<VoiceRow>& rows) {
  if (rows.empty()) return "no voices\n";
  // The volume column with the mix fields; rate and tempo only when a voice's is not 1 (most
  // sessions never set one: two columns of "1.00" would only push the state off a narrow terminal).
  const bool mix = std::any_of(rows.begin(), rows.end(), [](const VoiceRow& r) { return r.has_mix; });
  auto set = [&](double VoiceRow::*f) {
    return std::any_of(rows.begin(), rows.end(),
                       [&](const VoiceRow& r) { return r.has_mix && r.*f >= 0 && std::fabs(r.*f - 1.0) > 5e-4; });
  };
  const bool rate = set(&VoiceRow::rate), tempo = set(&VoiceRow::tempo);
  std::vector<std::string> head{"ID", "NAME", "POSITION", "DURATION"};
  std::vector<bool> right{true, false, true, true};
  auto column = [&](bool shown, const char* name) {
    if (!shown) return;
    head.push_back(name);
    right.push_back(true);
  };
  column(mix, "VOLUME");
  column(rate, "RATE");
  column(tempo, "TEMPO");
  head.insert(head.end(), {"RING", "UNDERRUNS", "STATE"});
  right.insert(right.end(), {false, true});
  std::vector<std::vector<std::string>> t{head};
  auto known = [](const VoiceRow& r, double x, const std::string& text) { return r.has_mix && x >= 0 ? text : "—"; };
  for (const auto& r : rows) {
    std::vector<std::string> cells{std::to_string(r.id), terminal_text(r.name), fmt_time(r.position_s),
                                   fmt_time(r.duration_s)};
    if (mix) cells.push_back(known(r, r.volume, level_text(r.volume)));
    if (rate) cells.push_back(known(r, r.rate, factor_text(r.rate)));
    if (tempo) cells.push_back(known(r, r.tempo, factor_text(r.tempo)));
    cells.insert(cells.end(), {ring_bar(r.ring_fill) + fmt(" %3.0f%%", 100.0 * std::clamp(r.ring_fill, 0.0, 1.0)),
                               std::to_string(r.underruns), terminal_text(r.state)});
    t.push_back(std::move(cells));
  }
  return table(t, right);
}

}  // namespace stemd::ctl
