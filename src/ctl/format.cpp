// stemctl's text (see format.hpp).
#include "format.hpp"

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

std::string value_text(const OscArg& a) { return a.is_string() ? a.s : a.to_string(); }

std::string level_text(double v) {
  if (v <= 0) return fmt("%.2f", v) + " (-inf dB)";
  return fmt("%.2f", v) + " (" + fmt("%+.1f", 20.0 * std::log10(v)) + " dB)";
}

std::string integer_text(const OscArg& a) {
  if (a.is_number()) return std::to_string(static_cast<std::int64_t>(std::llround(a.as_double())));
  return value_text(a);
}

}  // namespace

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
    reason = reply.args.back().s;
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

bool parse_list(const OscMessage& reply, std::vector<SourceRow>& rows, std::string& error) {
  rows.clear();
  const auto& a = reply.args;
  if (a.size() < 2 || !a[1].is_number()) {
    error = "malformed /stemd/list reply (no count): " + reply.to_string();
    return false;
  }
  const auto count = static_cast<std::size_t>(std::max<std::int64_t>(0, static_cast<std::int64_t>(a[1].as_double())));
  if (a.size() < 2 + 6 * count) {
    error = "malformed /stemd/list reply (" + std::to_string(count) + " sources announced, " +
            std::to_string((a.size() - 2) / 6) + " sent)";
    return false;
  }
  for (std::size_t k = 0; k < count; ++k) {
    const OscArg* v = &a[2 + 6 * k];
    SourceRow r;
    r.id = static_cast<std::int64_t>(v[0].as_double());
    r.name = value_text(v[1]);
    r.path = value_text(v[2]);
    r.duration_s = v[3].as_double();
    r.streamed = v[4].as_double() != 0 || v[4].type == 'T';
    r.playing = v[5].as_double() != 0 || v[5].type == 'T';
    rows.push_back(std::move(r));
  }
  return true;
}

bool parse_voices(const OscMessage& reply, std::vector<VoiceRow>& rows, std::string& error) {
  rows.clear();
  const auto& a = reply.args;
  if (a.size() < 2 || !a[1].is_number()) {
    error = "malformed /stemd/voices reply (no count): " + reply.to_string();
    return false;
  }
  const auto count = static_cast<std::size_t>(std::max<std::int64_t>(0, static_cast<std::int64_t>(a[1].as_double())));
  if (a.size() < 2 + 7 * count) {
    error = "malformed /stemd/voices reply (" + std::to_string(count) + " voices announced, " +
            std::to_string((a.size() - 2) / 7) + " sent)";
    return false;
  }
  for (std::size_t k = 0; k < count; ++k) {
    const OscArg* v = &a[2 + 7 * k];
    VoiceRow r;
    r.id = static_cast<std::int64_t>(v[0].as_double());
    r.name = value_text(v[1]);
    r.position_s = v[2].as_double();
    r.duration_s = v[3].as_double();
    r.ring_fill = v[4].as_double();
    r.underruns = static_cast<std::int64_t>(v[5].as_double());
    r.state = value_text(v[6]);
    rows.push_back(std::move(r));
  }
  return true;
}

std::int64_t next_page(const OscMessage& reply, std::size_t fields_per_row) {
  const auto& a = reply.args;
  if (a.size() < 2 || !a[1].is_number()) return -1;
  const auto count = static_cast<std::size_t>(std::max<std::int64_t>(0, static_cast<std::int64_t>(a[1].as_double())));
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
  const double mb = b / (1024.0 * 1024.0);
  return fmt(mb < 10 ? "%.2f MB" : "%.1f MB", mb);
}

std::string ring_bar(double fill, int width) {
  if (!std::isfinite(fill)) fill = 0;
  fill = std::clamp(fill, 0.0, 1.0);
  const int n = static_cast<int>(std::lround(fill * width));
  return "[" + std::string(static_cast<std::size_t>(n), '#') + std::string(static_cast<std::size_t>(width - n), '-') +
         "]";
}

namespace {

// The sync fields (router_sync.cpp): the tempo clock, the Link session, the stream clock's DLL.
bool sync_field_text(const std::string& k, double x, std::string& label, std::string& text) {
  if (k == "tempo_bpm") {
    label = "tempo", text = fmt("%.2f bpm", x);
  } else if (k == "beat") {
    label = "beat", text = fmt("%.2f", x);
  } else if (k == "beat_phase") {
    label = "beat phase", text = fmt("%.2f", x);
  } else if (k == "quantum") {
    label = "phase quantum", text = fmt("%.0f beats", x);
  } else if (k == "link") {
    label = "Ableton Link", text = x > 0 ? "on" : "off";
  } else if (k == "link_peers") {
    label = "Link peers";
  } else if (k == "clock_error_us") {
    label = "clock DLL error", text = fmt("%.1f µs", x);
  } else if (k == "clock_error_max_us") {
    label = "clock DLL error max", text = fmt("%.1f µs", x) + " (last 1–2 s)";
  } else if (k == "clock_locked_s") {
    label = "clock DLL tracking", text = fmt("%.1f s", x) + " (since its last restart; ready for sync after ~8 s)";
  } else if (k == "clock_resets") {
    label = "clock DLL restarts";
  } else if (k == "clock_rate_ppm") {
    label = "device rate", text = fmt("%+.1f ppm", x) + " against CLOCK_MONOTONIC";
  } else {
    return false;
  }
  return true;
}

// The summary's one sync row: tempo, beat and phase, and the Link session's peers (the clock's
// DLL error is in --all: the short status stays short).
void sync_rows(const StatusFields& f, std::vector<std::vector<std::string>>& rows) {
  if (find_field(f, "tempo_bpm") == nullptr) return;
  std::string t = fmt("%.2f bpm", field_number(f, "tempo_bpm")) + ", beat " + fmt("%.2f", field_number(f, "beat")) +
                  " (phase " + fmt("%.2f", field_number(f, "beat_phase")) + " of " +
                  fmt("%.0f", field_number(f, "quantum")) + ")";
  if (field_number(f, "link") > 0) {
    const auto peers = static_cast<std::int64_t>(field_number(f, "link_peers"));
    t += ", Link: " + std::to_string(peers) + (peers == 1 ? " peer" : " peers");
  }
  rows.push_back({"  tempo", t});
}

// The stretch fields' labels in `status --all` (nullptr: not one of them).
const char* stretch_label(const std::string& k) {
  static const char* const kLabels[][2] = {
      {"stretch_buses", "stretch buses"},
      {"stretch_buses_running", "stretch buses running"},
      {"stretch_bus_voices", "voices on stretch buses"},
      {"stretch_primes", "stretcher primes (audio thread)"},
      {"stretch_primes_max", "stretcher primes in one callback (most)"},
      {"stretch_starts_deferred", "voices heard late (--stretch-primes-per-callback)"},
      {"stretch_handovers", "starts handed over onto a running stretch bus"},
      {"stretch_joins_lost", "starts on a running stretch bus that lost their first lookahead"},
      {"stretch_rejoins", "voices back onto a stretch bus from a stretcher of their own"},
  };
  for (const auto& l : kLabels) {
    if (k == l[0]) return l[1];
  }
  return nullptr;
}

}  // namespace

std::string status_table(const StatusFields& f) {
  const double budget = field_number(f, "budget_us", 0);
  auto of_budget = [&](double us) {
    std::string s = fmt("%.1f µs", us);
    if (budget > 0) s += " (" + fmt("%.1f", 100.0 * us / budget) + "% of the " + fmt("%.0f", budget) + " µs budget)";
    return s;
  };
  std::vector<std::vector<std::string>> rows;
  for (const auto& [k, v] : f) {
    const double x = v.is_number() ? v.as_double() : 0.0;
    std::string label = k, text = value_text(v);
    if (sync_field_text(k, x, label, text)) {
    } else if (k == "sample_rate") {
      label = "sample rate", text = integer_text(v) + " Hz";
    } else if (k == "buffer_size") {
      label = "buffer", text = integer_text(v) + " frames";
    } else if (k == "latency_ms") {
      label = "buffer latency", text = fmt("%.1f ms", x);
    } else if (k == "output_latency_ms") {
      label = "output latency", text = fmt("%.1f ms", x) + " (device)";
    } else if (k == "backend") {
      label = "backend";
    } else if (k == "voices") {
      label = "voices playing";
    } else if (k == "sources") {
      label = "sources loaded";
    } else if (k == "memory_bytes") {
      label = "memory held", text = fmt_bytes(x);
    } else if (k == "voice_underruns") {
      label = "voice underruns";
    } else if (k == "device_underflows") {
      label = "device underflows";
    } else if (k == "callback_p50_us") {
      label = "callback p50", text = of_budget(x);
    } else if (k == "callback_p99_us") {
      label = "callback p99", text = of_budget(x);
    } else if (k == "callback_max_us") {
      label = "callback max", text = of_budget(x);
    } else if (k == "budget_us") {
      label = "callback budget", text = fmt("%.0f µs", x);
    } else if (k == "cpu_load") {
      label = "CPU load (callback)", text = fmt("%.1f%%", 100.0 * x);
    } else if (k == "uptime_s") {
      label = "uptime", text = fmt_uptime(x);
    } else if (k == "frames") {
      label = "frames rendered";
    } else if (k == "master") {
      label = "master level", text = level_text(x);
    } else if (k.size() == 6 && k.rfind("deck_", 0) == 0) {
      label = std::string("deck ") + static_cast<char>(std::toupper(static_cast<unsigned char>(k[5]))) + " level";
      text = level_text(x);
    } else if (k == "loader_reads") {
      label = "loader reads";
    } else if (k == "read_errors") {
      label = "read errors";
    } else if (k == "ring_target_ms_min") {
      label = "ring target min", text = fmt("%.0f ms", x);
    } else if (k == "ring_target_ms_mean") {
      label = "ring target mean", text = fmt("%.0f ms", x);
    } else if (k == "ring_target_ms_max") {
      label = "ring target max", text = fmt("%.0f ms", x);
    } else if (k == "ring_bytes") {
      label = "ring memory", text = fmt_bytes(x);
    } else if (k == "rings_ran_dry") {
      label = "rings run dry";
    } else if (k == "read_wait_ms") {
      label = "wait for disk", text = fmt("%.1f ms", x);
    } else if (k == "read_wait_sd_ms") {
      label = "wait for disk σ", text = fmt("%.1f ms", x);
    } else if (k == "read_max_ms") {
      label = "slowest read (recent)", text = fmt("%.1f ms", x);
    } else if (k == "loader_cpu_pct") {
      label = "loader CPU (last 100 ms)", text = fmt("%.1f %% of a core", x);
    } else if (k == "loader_rt_priority") {
      label = "loader priority", text = x > 0 ? fmt("SCHED_FIFO %.0f", x) : std::string("normal");
    } else if (k == "loader_rt_demotions") {
      label = "loader left SCHED_FIFO (too much CPU)";
    } else if (k == "messages") {
      label = "OSC messages";
    } else if (k == "bad_messages") {
      label = "OSC messages refused";
    } else if (k == "subscribers") {
      label = "event subscribers";
    } else if (k == "tone_hz") {
      label = "test tone", text = x > 0 ? fmt("%.0f Hz", x) : "off";
    } else if (k == "scheduled") {
      label = "timed commands waiting";
    } else if (k == "schedule_refused") {
      label = "timed commands refused (schedule full)";
    } else if (k == "datagrams") {
      label = "datagrams received";
    } else if (k == "refused_sources") {
      label = "refused (not --allow'ed)";
    } else if (k == "dropped_datagrams") {
      label = "dropped by the kernel";
    } else if (k == "replies_dropped") {
      label = "replies not sent";
    } else if (k == "tcp_clients") {
      label = "TCP clients";
    } else if (const char* l = stretch_label(k); l != nullptr) {
      label = l;
    }
    rows.push_back({"  " + label, text});
  }
  return table(rows, {});
}

std::string list_table(const std::vector<SourceRow>& rows) {
  if (rows.empty()) return "no sources loaded\n";
  std::vector<std::vector<std::string>> t{{"ID", "NAME", "DURATION", "MODE", "PLAYING", "PATH"}};
  for (const auto& r : rows) {
    t.push_back({std::to_string(r.id), r.name, fmt_time(r.duration_s), r.streamed ? "streamed" : "in memory",
                 r.playing ? "yes" : "no", r.path});
  }
  return table(t, {true, false, true});
}

std::string voices_table(const std::vector<VoiceRow>& rows) {
  if (rows.empty()) return "no voices\n";
  std::vector<std::vector<std::string>> t{{"ID", "NAME", "POSITION", "DURATION", "RING", "UNDERRUNS", "STATE"}};
  for (const auto& r : rows) {
    t.push_back({std::to_string(r.id), r.name, fmt_time(r.position_s), fmt_time(r.duration_s),
                 ring_bar(r.ring_fill) + fmt(" %3.0f%%", 100.0 * std::clamp(r.ring_fill, 0.0, 1.0)),
                 std::to_string(r.underruns), r.state});
  }
  return table(t, {true, false, true, true, false, true});
}

std::string status_line(const StatusFields& f) {
  std::string s = "voices " + std::to_string(static_cast<std::int64_t>(field_number(f, "voices")));
  s += " · CPU " + fmt("%.1f%%", 100.0 * field_number(f, "cpu_load"));
  if (find_field(f, "callback_p99_us") != nullptr && field_number(f, "budget_us") > 0) {
    s += " · p99 " + fmt("%.1f%%", 100.0 * field_number(f, "callback_p99_us") / field_number(f, "budget_us")) +
         " of budget";
  }
  s += " · underruns " + std::to_string(static_cast<std::int64_t>(field_number(f, "voice_underruns")));
  s += " · device underflows " + std::to_string(static_cast<std::int64_t>(field_number(f, "device_underflows")));
  s += " · uptime " + fmt_uptime(field_number(f, "uptime_s"));
  return s;
}

std::string status_summary(const StatusFields& f) {
  std::vector<std::vector<std::string>> rows;
  auto has = [&](const char* k) { return find_field(f, k) != nullptr; };
  auto integer = [&](const char* k) { return integer_text(*find_field(f, k)); };
  if (has("backend")) {
    std::string t = value_text(*find_field(f, "backend"));
    if (has("sample_rate")) t += ", " + integer("sample_rate") + " Hz";
    if (has("buffer_size")) t += ", " + integer("buffer_size") + " frames";
    rows.push_back({"  backend", t});
  }
  // A device state, from a daemon that reports one ("lost" while its device is away).
  if (const OscArg* d = find_field(f, "device"); d != nullptr) {
    std::string t = value_text(*d);
    if (find_field(f, "device_lost_s") != nullptr) t += " for " + fmt("%.1f s", field_number(f, "device_lost_s"));
    if (const OscArg* e = find_field(f, "device_error"); e != nullptr && !value_text(*e).empty()) {
      t += ": " + value_text(*e);
    }
    rows.push_back({"  device", t});
  }
  if (has("latency_ms")) {
    std::string t = fmt("%.1f ms", field_number(f, "latency_ms"));
    if (has("output_latency_ms"))
      t += " (buffer) + " + fmt("%.1f ms", field_number(f, "output_latency_ms")) + " (device)";
    rows.push_back({"  latency", t});
  }
  if (has("voices")) rows.push_back({"  voices playing", integer("voices")});
  if (has("sources")) rows.push_back({"  sources loaded", integer("sources")});
  if (has("memory_bytes")) {
    std::string t = fmt_bytes(field_number(f, "memory_bytes"));
    const double limit = field_number(f, "memory_limit_bytes");
    t += limit > 0 ? " of " + fmt_bytes(limit) + " (--max-memory-mb)" : " (no limit)";
    rows.push_back({"  memory held", t});
  }
  if (has("voice_underruns")) rows.push_back({"  voice underruns", integer("voice_underruns")});
  if (has("device_underflows")) rows.push_back({"  device underflows", integer("device_underflows")});
  if (has("callback_p99_us")) {
    const double us = field_number(f, "callback_p99_us"), budget = field_number(f, "budget_us");
    std::string t = fmt("%.1f µs", us);
    if (budget > 0) t += " (" + fmt("%.1f", 100.0 * us / budget) + "% of the " + fmt("%.0f", budget) + " µs budget)";
    rows.push_back({"  callback p99", t});
  }
  if (has("uptime_s")) rows.push_back({"  uptime", fmt_uptime(field_number(f, "uptime_s"))});
  if (field_number(f, "tone_hz") > 0) rows.push_back({"  test tone", fmt("%.0f Hz", field_number(f, "tone_hz"))});
  // With --stretch-method time_stretch: how much of the shared stretching is in use.
  if (field_number(f, "stretch_buses") > 0) {
    const auto n = [&](const char* k) { return std::to_string(static_cast<std::int64_t>(field_number(f, k))); };
    rows.push_back({"  stretch buses", n("stretch_buses_running") + " of " + n("stretch_buses") + " running, " +
                                           n("stretch_bus_voices") + " voices on them (--stretch-buses)"});
    if (field_number(f, "stretch_rejoins") > 0) {
      rows.push_back({"  rejoined a bus", n("stretch_rejoins") + " (voices from a stretcher of their own)"});
    }
    if (field_number(f, "stretch_joins_lost") > 0) {
      rows.push_back({"  starts on a running bus", n("stretch_handovers") + " handed over, " + n("stretch_joins_lost") +
                                                       " lost their first ≈ 45 ms"});
    }
  }
  sync_rows(f, rows);
  return table(rows, {});
}

}  // namespace stemd::ctl
