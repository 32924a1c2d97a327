// The environment a lost device's hand-over passes to the next image of stemd (recovery.cpp):
// STEMD_RESUME_*. Only stemd writes it, across its own execv — but it is read as input from
// outside (outside pass 28, A2: a PID named there was SIGKILLed, the file named there deleted,
// counters of −1 and a raw ESC in the log), so every value is checked before it is used. [main]
#include "daemon_run.hpp"

#include "control/carried_totals.hpp"
#include "safe_file.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include <sys/stat.h>
#include <unistd.h>

namespace stemd::app {

namespace {

// A count or a time (ns): digits only (after spaces), below 2^62 (no process counts or lives that
// long). Without `end` the whole string is the number; with it, *end is where the number ended.
bool parse_u(const char* v, std::uint64_t& out, const char** end = nullptr) {
  if (v == nullptr) return false;
  while (*v == ' ') ++v;
  if (*v < '0' || *v > '9') return false;
  errno = 0;
  char* e = nullptr;
  const unsigned long long x = std::strtoull(v, &e, 10);
  if (errno != 0 || x >= (1ull << 62) || (end == nullptr && *e != '\0')) return false;
  out = x;
  if (end != nullptr) *end = e;
  return true;
}

// A steady-clock time (ns) that is not in the future; 0 when absent or wrong.
std::int64_t past_ns(const char* key, const char* v, std::vector<std::string>& ignored) {
  std::uint64_t x = 0;
  const auto now = std::chrono::steady_clock::now().time_since_epoch();
  if (!parse_u(v, x) || x > static_cast<std::uint64_t>(std::chrono::nanoseconds(now).count())) {
    ignored.push_back(fmt::format("{}: not a past time of this machine's steady clock", key));
    return 0;
  }
  return static_cast<std::int64_t>(x);
}

// A child of this process (a helper the previous image started: exec keeps the pid and its
// children), read from /proc/PID/stat's 4th field.
bool is_my_child(long pid) {
  if (pid <= 1) return false;
  std::FILE* f = std::fopen(fmt::format("/proc/{}/stat", pid).c_str(), "r");
  if (f == nullptr) return false;
  char buf[512];
  const std::size_t n = std::fread(buf, 1, sizeof buf - 1, f);
  std::fclose(f);
  buf[n] = '\0';
  const char* close = std::strrchr(buf, ')');  // the command name may hold spaces and parentheses
  long ppid = 0;
  char state = 0;
  return close != nullptr && std::sscanf(close + 1, " %c %ld", &state, &ppid) == 2 && ppid == getpid();
}

void take_glitches(Resume& r) {
  if (const char* v = std::getenv("STEMD_RESUME_GLITCHES")) {  // "voice_underruns device_underflows last_vu last_du"
    std::uint64_t g[4] = {};
    const char* p = v;
    bool ok = true;
    for (auto& x : g) ok = ok && parse_u(p, x, &p);
    const auto now = static_cast<std::uint64_t>(
        std::chrono::nanoseconds(std::chrono::steady_clock::now().time_since_epoch()).count());
    if (!ok || g[2] > now || g[3] > now) {
      r.ignored.push_back("STEMD_RESUME_GLITCHES: not four counts and past times");
    } else {
      r.glitches.voice_underruns = g[0];
      r.glitches.device_underflows = g[1];
      r.glitches.last_voice_underrun_ns = g[2];
      r.glitches.last_device_underflow_ns = g[3];
    }
  }
  // "max_ns bin:count bin:count…": the callbacks' histogram (its non-empty bins) and longest.
  if (const char* v = std::getenv("STEMD_RESUME_CALLBACKS")) {
    const char* p = v;
    if (!parse_u(p, r.glitches.callback_max_ns, &p)) return r.ignored.push_back("STEMD_RESUME_CALLBACKS: no longest");
    std::uint64_t bin = 0, n = 0;
    while (parse_u(p, bin, &p) && *p == ':' && parse_u(p + 1, n, &p)) {
      if (bin < r.glitches.callback_ns.size()) r.glitches.callback_ns[bin] = n;
    }
    if (*p != '\0')
      r.ignored.push_back("STEMD_RESUME_CALLBACKS: garbled from \"" + std::string(p).substr(0, 20) + "\"");
  }
}

// "beats ns": the beat count (finite, |beats| < 2^53) at a past steady-clock time.
void take_beat(Resume& r) {
  const char* v = std::getenv("STEMD_RESUME_BEAT");
  if (v == nullptr) return;
  char* end = nullptr;
  errno = 0;
  const double beats = std::strtod(v, &end);
  if (end == v || errno != 0 || !std::isfinite(beats) || std::fabs(beats) >= 9007199254740992.0 || *end != ' ') {
    return r.ignored.push_back("STEMD_RESUME_BEAT: not a beat count and a time");
  }
  const std::int64_t ns = past_ns("STEMD_RESUME_BEAT", end + 1, r.ignored);
  if (ns <= 0) return;
  r.beat = beats;
  r.beat_ns = ns;
}

// One `event SEQ UNIX_MS JSON` line's rest: the JSON as the web monitor sent it, its own seq and
// time first, printable, within the backlog's bound; false with why.
bool take_event(const char* p, Resume& r, std::string& why) {
  const auto no = [&why](const char* reason) {
    why = reason;
    return false;
  };
  web::PastEvent e;
  std::uint64_t ms = 0;
  if (!parse_u(p, e.seq, &p) || e.seq == 0 || !parse_u(p, ms, &p) || *p != ' ') return no("no number and time");
  e.unix_ms = static_cast<std::int64_t>(ms);
  e.json = p + 1;
  const std::string head = fmt::format(R"({{"seq":{},"time_ms":{},)", e.seq, e.unix_ms);
  if (e.json.size() > web::EventBacklog::kMaxBytes || e.json.compare(0, head.size(), head) != 0 || e.json.back() != '}')
    return no("not an event of the web monitor's");
  for (const unsigned char c : e.json) {
    if (c < 0x20 || c == 0x7f) return no("a control character");
  }
  if (!r.events.empty() && e.seq <= r.events.back().seq) return no("out of order");
  r.events.push_back(std::move(e));
  if (r.events.size() > web::EventBacklog::kCapacity) r.events.erase(r.events.begin());
  return true;
}

}  // namespace

std::string carry_path(const std::string& state_path) {
  const std::size_t slash = state_path.rfind('/');
  return (slash == std::string::npos ? std::string() : state_path.substr(0, slash + 1)) + "carry";
}

std::string format_carry(const Resume& r) {
  std::string out = "stemd-carry 1\n";
  for (const auto& [k, n] : r.totals) out += fmt::format("total {} {}\n", k, n);
  if (r.output_latency_s > 0)
    out += fmt::format("latency_ns {}\n", static_cast<std::uint64_t>(std::llround(r.output_latency_s * 1e9)));
  if (!r.events_run.empty()) out += fmt::format("run {}\n", r.events_run);
  for (const web::PastEvent& e : r.events) out += fmt::format("event {} {} {}\n", e.seq, e.unix_ms, e.json);
  return out;
}

void parse_carry(const std::string& text, Resume& r) {
  std::size_t at = 0, line_no = 0, bad = 0;
  std::string first_bad;
  while (at < text.size()) {
    std::size_t end = text.find('\n', at);
    if (end == std::string::npos) end = text.size();
    const std::string line = text.substr(at, end - at);
    at = end + 1;
    std::string why;
    if (++line_no == 1) {
      if (line != "stemd-carry 1") return r.ignored.push_back("the carry file: not \"stemd-carry 1\": nothing carried");
      continue;
    }
    std::uint64_t n = 0;
    if (line.rfind("total ", 0) == 0) {
      const std::size_t sp = line.find(' ', 6);
      const std::string key = line.substr(6, sp == std::string::npos ? 0 : sp - 6);
      const bool twice = std::any_of(r.totals.begin(), r.totals.end(), [&](const auto& t) { return t.first == key; });
      if (sp == std::string::npos || !control::is_carried_total(key) || twice || !parse_u(line.c_str() + sp + 1, n)) {
        why = "not a total of the status, or twice";
      } else {
        r.totals.emplace_back(key, n);
      }
    } else if (line.rfind("latency_ns ", 0) == 0) {
      if (!parse_u(line.c_str() + 11, n) || n == 0 || n >= 2'000'000'000) {
        why = "not a latency below 2 s";
      } else {
        r.output_latency_s = static_cast<double>(n) / 1e9;
      }
    } else if (line.rfind("run ", 0) == 0) {
      if (!web::EventBacklog::valid_run(line.substr(4)) || !r.events_run.empty()) {
        why = "not a run of the web monitor's, or twice";
      } else {
        r.events_run = line.substr(4);
      }
    } else if (line.rfind("event ", 0) != 0 || !take_event(line.c_str() + 6, r, why)) {
      if (why.empty()) why = "unknown";
    }
    if (!why.empty() && bad++ == 0) first_bad = fmt::format("line {} ({})", line_no, why);
  }
  if (bad > 0)
    r.ignored.push_back(
        fmt::format("the carry file: {} line{} not taken, the first: {}", bad, bad == 1 ? "" : "s", first_bad));
}

namespace {

// $RUNTIME_DIRECTORY (systemd's RuntimeDirectory=), else $TMPDIR, else /tmp: the first of several.
std::string handoff_parent() {
  const char* dir = std::getenv("RUNTIME_DIRECTORY");
  if (dir == nullptr || *dir == '\0') dir = std::getenv("TMPDIR");
  if (dir == nullptr || *dir == '\0') dir = "/tmp";
  std::string d = dir;
  if (const auto colon = d.find(':'); colon != std::string::npos) d.resize(colon);  // several dirs
  return d;
}

std::string handoff_prefix() { return handoff_parent() + "/stemd-resume-" + std::to_string(getpid()) + "."; }

// Whether `dir` is a directory of ours that nobody else may write in (lstat: not a symlink).
bool private_dir(const std::string& dir, std::string& why) {
  struct stat st {};
  if (lstat(dir.c_str(), &st) != 0) {
    why = std::string(std::strerror(errno));
    return false;
  }
  if (!S_ISDIR(st.st_mode)) {
    why = "not a directory";
  } else if (st.st_uid != geteuid()) {
    why = fmt::format("owned by uid {}, not ours ({})", st.st_uid, geteuid());
  } else if ((st.st_mode & 077) != 0) {
    why = fmt::format("mode {:o}: others may use it", st.st_mode & 0777);
  }
  return why.empty();
}

}  // namespace

std::string handoff_path() {
  static std::string path;  // this image's (the main thread's, at a hand-over): made once, while it lasts
  if (std::string why; !path.empty() && private_dir(path.substr(0, path.size() - 6), why)) {
    if (path.rfind(handoff_prefix(), 0) == 0) return path;
    remove_handoff(path);  // ours, made for another $TMPDIR: not left behind
  }
  std::string tmpl = handoff_prefix() + "XXXXXX";
  if (mkdtemp(tmpl.data()) == nullptr) return path = "";  // mode 0700, a name nobody could plant
  return path = tmpl + "/state";
}

bool own_handoff(const std::string& path, std::string& why) {
  const std::string prefix = handoff_prefix();
  const std::size_t n = prefix.size() + 6;  // mkdtemp's six letters or digits
  const bool named = path.size() == n + 6 && path.compare(0, prefix.size(), prefix) == 0 &&
                     path.compare(n, 6, "/state") == 0 &&
                     std::all_of(path.begin() + static_cast<std::ptrdiff_t>(prefix.size()),
                                 path.begin() + static_cast<std::ptrdiff_t>(n),
                                 [](char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0; });
  if (!named) {
    why = fmt::format("not this process's hand-over file ({}XXXXXX/state)", prefix);
    return false;
  }
  if (!private_dir(path.substr(0, n), why)) {
    why = "its directory " + path.substr(0, n) + ": " + why;
    return false;
  }
  for (const std::string& f : {path, carry_path(path)}) {
    struct stat st {};
    if (lstat(f.c_str(), &st) != 0) continue;  // missing: said when read
    if (!S_ISREG(st.st_mode)) {
      why = "not a regular file";
    } else if (st.st_uid != geteuid()) {
      why = fmt::format("owned by uid {}, not ours", st.st_uid);
    } else if ((st.st_mode & 022) != 0) {
      why = fmt::format("mode {:o}: others may write it", st.st_mode & 0777);
    }
    if (!why.empty()) {
      why = f + ": " + why;
      return false;
    }
  }
  return true;
}

void remove_handoff(const std::string& state_path) {
  if (state_path.empty()) return;
  std::remove(state_path.c_str());
  std::remove(carry_path(state_path).c_str());
  const std::size_t slash = state_path.rfind('/');
  if (slash != std::string::npos) rmdir(state_path.substr(0, slash).c_str());
}

Resume take_resume_env() {
  Resume r;
  static constexpr const char* kKeys[] = {
      "STEMD_RESUME_STATE",   "STEMD_RESUME_RATE",         "STEMD_RESUME_LOSSES",  "STEMD_RESUME_REASON",
      "STEMD_RESUME_STARTED", "STEMD_RESUME_STATE_UNREAD", "STEMD_RESUME_LOST_AT", "STEMD_RESUME_GLITCHES",
      "STEMD_RESUME_HELPERS", "STEMD_RESUME_CALLBACKS",    "STEMD_RESUME_BEAT",    "STEMD_RESUME_BUFFER"};
  struct Clear {  // whatever way this returns, the next image (or a child) does not see them
    ~Clear() {
      for (const char* k : kKeys) unsetenv(k);
    }
  } clear;
  const char* path = std::getenv("STEMD_RESUME_STATE");
  if (path == nullptr || *path == '\0') return r;
  // Not this process's hand-over (or one another user could have written): neither read nor removed.
  if (std::string why; !own_handoff(path, why)) {
    r.ignored.push_back(fmt::format("STEMD_RESUME_STATE: {}: no resume", why));
    return r;
  }
  r.active = true;
  r.state_path = path;
  std::uint64_t x = 0;
  if (parse_u(std::getenv("STEMD_RESUME_RATE"), x) && x >= 8000 && x <= 384000) r.rate = static_cast<int>(x);
  if (parse_u(std::getenv("STEMD_RESUME_BUFFER"), x) && x >= 16 && x <= 8192) r.buffer = static_cast<std::uint32_t>(x);
  if (parse_u(std::getenv("STEMD_RESUME_LOSSES"), x) && x <= 1'000'000'000) r.losses = x;
  if (const char* v = std::getenv("STEMD_RESUME_REASON")) r.reason = std::string(v).substr(0, 1000);
  if (const char* v = std::getenv("STEMD_RESUME_STARTED")) r.started_ns = past_ns("STEMD_RESUME_STARTED", v, r.ignored);
  if (const char* v = std::getenv("STEMD_RESUME_STATE_UNREAD")) r.state_unread = std::strcmp(v, "1") == 0;
  if (const char* v = std::getenv("STEMD_RESUME_LOST_AT")) r.lost_at_ns = past_ns("STEMD_RESUME_LOST_AT", v, r.ignored);
  take_glitches(r);
  take_beat(r);
  {  // the carry file: this process's own, read once and removed
    std::string text, e;
    const ReadResult rr = read_regular_file(carry_path(r.state_path), kMaxCarryBytes, text, e);
    if (rr == ReadResult::kOk) {
      parse_carry(text, r);
    } else if (rr != ReadResult::kMissing) {
      r.ignored.push_back("the carry file: " + e);
    }
    std::remove(carry_path(r.state_path).c_str());
  }
  if (const char* v = std::getenv("STEMD_RESUME_HELPERS")) {
    for (char* end = nullptr; r.helpers.size() < 64; v = end) {
      const long pid = std::strtol(v, &end, 10);
      if (end == v) break;
      if (is_my_child(pid)) {
        r.helpers.push_back(static_cast<pid_t>(pid));
      } else {
        r.ignored.push_back(fmt::format("STEMD_RESUME_HELPERS: {} is not a child of this process", pid));
      }
    }
  }
  return r;
}

std::vector<std::string> resume_env_lines(const Resume& r) {
  std::vector<std::string> out = {"STEMD_RESUME_STATE=" + r.state_path,
                                  fmt::format("STEMD_RESUME_RATE={}", r.rate),
                                  fmt::format("STEMD_RESUME_BUFFER={}", r.buffer),
                                  fmt::format("STEMD_RESUME_LOSSES={}", r.losses),
                                  "STEMD_RESUME_REASON=" + r.reason,
                                  fmt::format("STEMD_RESUME_STARTED={}", r.started_ns),
                                  std::string("STEMD_RESUME_STATE_UNREAD=") + (r.state_unread ? "1" : "0"),
                                  fmt::format("STEMD_RESUME_LOST_AT={}", r.lost_at_ns)};
  const engine::GlitchTotals& g = r.glitches;
  out.push_back(fmt::format("STEMD_RESUME_GLITCHES={} {} {} {}", g.voice_underruns, g.device_underflows,
                            g.last_voice_underrun_ns, g.last_device_underflow_ns));
  std::string cb = fmt::format("STEMD_RESUME_CALLBACKS={}", g.callback_max_ns);
  for (std::size_t i = 0; i < g.callback_ns.size(); ++i) {
    if (g.callback_ns[i] != 0) cb += fmt::format(" {}:{}", i, g.callback_ns[i]);
  }
  out.push_back(std::move(cb));
  if (r.beat_ns > 0) out.push_back(fmt::format("STEMD_RESUME_BEAT={:.9f} {}", r.beat, r.beat_ns));
  return out;
}

void put_resume_env(const Resume& r) {
  for (const std::string& line : resume_env_lines(r)) {
    const std::size_t eq = line.find('=');
    setenv(line.substr(0, eq).c_str(), line.c_str() + eq + 1, 1);
  }
}

}  // namespace stemd::app
