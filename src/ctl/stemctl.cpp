// stemctl: the command-line client of stemd's native OSC dialect.
//
//   stemctl load 1 drums.wav          stemctl play 1 --volume 0.8 --loop
//   stemctl status                    stemctl watch
//   stemctl send /stemd/volume i:1 f:0.5
//
// Every command sends one message and waits for its reply (/done or /fail whose first argument
// is the address sent; notifications arriving meanwhile are ignored). Exit codes: 0 /done,
// 1 /fail (reason on stderr) or a local error, 2 usage, 3 no reply (time-out or nothing
// listening). The only OSC code is control/osc.hpp's; sockets are control/net.hpp's.
#include "client.hpp"
#include "control/suggest.hpp"
#include "format.hpp"

#include <CLI/CLI.hpp>

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <deque>
#include <filesystem>

namespace stemd::ctl {
namespace {

constexpr int kExitOk = 0;
constexpr int kExitFail = 1;
constexpr int kExitUsage = 2;
constexpr int kExitNoReply = 3;

std::atomic<bool> g_stop{false};

void on_signal(int) { g_stop.store(true); }

void install_signals() {
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;  // no SA_RESTART: poll() returns EINTR and the loop sees the flag
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

std::string seconds_text(double s) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", s);
  return buf;
}

std::string num(double v) { return seconds_text(v); }

void error_line(const std::string& text) { std::fprintf(stderr, "stemctl: %s\n", text.c_str()); }

OscMessage msg(std::string address, std::vector<OscArg> args = {}) {
  OscMessage m;
  m.address = std::move(address);
  m.args = std::move(args);
  return m;
}

class Session {
 public:
  explicit Session(ClientOptions o, bool quiet) : opts_(std::move(o)), quiet_(quiet) {}

  // Opens the connection; an exit code other than kExitOk when that failed (message printed).
  int connect() {
    if (client_) return kExitOk;
    std::string error;
    bool gone = false;
    client_ = Client::open(opts_, error, gone);
    if (client_) return kExitOk;
    if (gone) {
      error_line("cannot connect to " + target_text() + ": " + error + " — is stemd running" +
                 (opts_.tcp ? " with --osc-tcp-port" : "") + "? (--port/--host)");
      return kExitNoReply;
    }
    error_line(error);
    return error.rfind("cannot resolve", 0) == 0 ? kExitUsage : kExitFail;
  }

  Client& client() { return *client_; }

  std::string target_text() const {
    const bool v6 = opts_.host.find(':') != std::string::npos && opts_.host.front() != '[';
    return (v6 ? "[" + opts_.host + "]" : opts_.host) + ":" + std::to_string(opts_.port) + (opts_.tcp ? " (tcp)" : "");
  }

  // The exit code for a request that got no /done (message printed), or kExitOk.
  int check(const Result& r) {
    switch (r.wait) {
      case Wait::kMessage:
        if (r.done()) return kExitOk;
        error_line(describe_failure(r.reply));
        return kExitFail;
      case Wait::kTimeout:
        error_line("no reply from " + target_text() + " within " + seconds_text(opts_.timeout_s) +
                   " s — is stemd running? (--port/--host)");
        return kExitNoReply;
      case Wait::kGone:
        error_line(r.error + " — is stemd running? (--port/--host)");
        return kExitNoReply;
      case Wait::kInterrupted:
        return kExitFail;
    }
    return kExitFail;
  }

  // Sends `m`, waits for the reply; on /done calls `on_done` with it.
  int run(const OscMessage& m, const std::function<void(const OscMessage&)>& on_done = nullptr) {
    if (int rc = connect(); rc != kExitOk) return rc;
    const Result r = client_->request(m);
    const int rc = check(r);
    if (rc == kExitOk && on_done) on_done(r.reply);
    return rc;
  }

  // A paged table (/stemd/list, /stemd/voices): asks for page after page (offset = the previous
  // reply's next) until the last, handing each reply to `take`. A daemon that does not page
  // answers everything at once (next −1).
  int pages(const std::string& address, std::size_t fields_per_row,
            const std::function<bool(const OscMessage&, std::string&)>& take) {
    if (int rc = connect(); rc != kExitOk) return rc;
    std::int64_t offset = 0;
    for (int page = 0; page < 1'000'000; ++page) {
      const Result r = client_->request(msg(address, {OscArg::Int(offset)}));
      if (const int rc = check(r); rc != kExitOk) return rc;
      std::string error;
      if (!take(r.reply, error)) {
        error_line(error);
        return kExitFail;
      }
      const std::int64_t next = next_page(r.reply, fields_per_row);
      if (next <= offset) return kExitOk;  // −1: the last page (and never a loop)
      offset = next;
    }
    return kExitOk;
  }

  // Prints `text` unless --quiet.
  void say(const std::string& text) const {
    if (!quiet_) std::printf("%s\n", text.c_str());
  }

  const ClientOptions& opts() const { return opts_; }

 private:
  ClientOptions opts_;
  bool quiet_ = false;
  std::unique_ptr<Client> client_;
};

// ------------------------------------------------------------------------------- watch

class Watch {
 public:
  Watch(Session& s, double interval, int count) : s_(s), interval_(interval), count_(count) {}

  int run() {
    if (int rc = s_.connect(); rc != kExitOk) return rc;
    Client& c = s_.client();
    install_signals();
    c.set_interrupt_flag(&g_stop);
    tty_ = isatty(STDOUT_FILENO) == 1;

    // Subscribe first: if the daemon is not there, say so the way every command does.
    const Result sub = c.request(msg("/stemd/notify", {OscArg::Int(1)}), s_.opts().timeout_s, keep_event());
    if (sub.wait == Wait::kInterrupted) return kExitOk;
    if (sub.wait != Wait::kMessage) return s_.check(sub);
    if (sub.failed()) {
      notice_ = "events unavailable: " + describe_failure(sub.reply);
    } else {
      subscribed_ = true;
      renewed(sub.reply);
    }

    int frames = 0;
    while (!g_stop.load()) {
      const auto next =
          Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(interval_));
      refresh();
      if (g_stop.load()) break;
      draw();
      if (count_ > 0 && ++frames >= count_) break;
      // Between refreshes: collect events until the next tick.
      for (;;) {
        OscMessage in;
        std::string error;
        const auto until = subscribed_ && renew_at_ < next ? renew_at_ : next;
        const Wait w = c.receive(in, until, error);
        if (w == Wait::kMessage) {
          record(in);
          continue;
        }
        if (w == Wait::kTimeout && Clock::now() < next) {  // a renewal is due before the refresh
          renew();
          continue;
        }
        if (w == Wait::kGone) lost(error);
        break;
      }
    }

    if (subscribed_) {
      c.set_interrupt_flag(nullptr);  // a second Ctrl-C during this short wait kills us: fine
      c.request(msg("/stemd/notify", {OscArg::Int(0)}), std::min(s_.opts().timeout_s, 1.0));
    }
    return kExitOk;
  }

 private:
  std::function<void(const OscMessage&)> keep_event() {
    return [this](const OscMessage& m) { record(m); };
  }

  void record(const OscMessage& m) {
    if (m.address.rfind("/stemd/voice/", 0) != 0 && m.address.rfind("/stemd/device/", 0) != 0) return;
    char stamp[32];
    const auto now = std::chrono::system_clock::now();
    const std::time_t t = std::chrono::system_clock::to_time_t(now);
    std::tm tm{};
    localtime_r(&t, &tm);
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
    std::snprintf(stamp, sizeof stamp, "%02d:%02d:%02d.%03d", tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms));
    events_.push_back(std::string(stamp) + "  " + m.to_string());
    while (events_.size() > kEvents) events_.pop_front();
  }

  void renew() {
    const Result r = s_.client().request(msg("/stemd/notify", {OscArg::Int(1)}), s_.opts().timeout_s, keep_event());
    if (r.done()) {
      resubscribe_ = false;
      renewed(r.reply);
    } else {
      renew_at_ = Clock::now() + std::chrono::seconds(1);  // try again soon, not in a tight loop
    }
  }

  // Renew at a third of the subscription's lifetime (`/done /stemd/notify 1 ttl_s`; 60 s when
  // the daemon does not say).
  void renewed(const OscMessage& reply) {
    double ttl = 60.0;
    if (reply.args.size() >= 3 && reply.args[2].is_number() && reply.args[2].as_double() > 0) {
      ttl = reply.args[2].as_double();
    }
    renew_at_ = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(ttl / 3));
  }

  void lost(const std::string& why) {
    notice_ = why;
    if (subscribed_) resubscribe_ = true;
  }

  void refresh() {
    Client& c = s_.client();
    const double t = s_.opts().timeout_s;
    // The daemon was gone (it forgot us), or the subscription is due for renewal: it lapses
    // after the daemon's --subscription-ttl, which its reply says.
    if (resubscribe_ || (subscribed_ && Clock::now() >= renew_at_)) renew();
    const Result st = c.request(msg("/stemd/status"), t, keep_event());
    if (!take(st, "/stemd/status")) return;
    status_ = status_fields(st.reply);
    const Result vo = c.request(msg("/stemd/voices"), t, keep_event());
    if (!take(vo, "/stemd/voices")) return;
    std::string error;
    if (!parse_voices(vo.reply, voices_, error)) {
      notice_ = error;
      return;
    }
    notice_.clear();
    have_data_ = true;
  }

  bool take(const Result& r, const std::string& what) {
    switch (r.wait) {
      case Wait::kMessage:
        if (r.done()) return true;
        notice_ = describe_failure(r.reply);
        return false;
      case Wait::kTimeout:
        notice_ = "no reply from " + s_.target_text() + " within " + seconds_text(s_.opts().timeout_s) +
                  " s — is stemd running? (retrying)";
        if (subscribed_) resubscribe_ = true;
        return false;
      case Wait::kGone:
        lost(r.error + " (retrying)");
        return false;
      case Wait::kInterrupted:
        return false;
    }
    return false;
  }

  void draw() {
    std::string out;
    if (tty_) out += "\x1b[H\x1b[2J";
    char clock[16];
    const std::time_t now = std::time(nullptr);
    std::tm tm{};
    localtime_r(&now, &tm);
    std::strftime(clock, sizeof clock, "%H:%M:%S", &tm);
    out += "stemd " + s_.target_text() + " · " + clock + (tty_ ? " · Ctrl-C to quit" : "") + "\n";
    if (!notice_.empty()) out += "! " + notice_ + "\n";
    if (have_data_) {
      out += status_line(status_) + "\n\n";
      out += voices_table(voices_);
    }
    if (subscribed_) {
      out += "\nrecent events:\n";
      if (events_.empty()) out += "  (none yet)\n";
      for (const auto& e : events_) out += "  " + e + "\n";
    }
    if (!tty_) out += "\n";
    std::fwrite(out.data(), 1, out.size(), stdout);
    std::fflush(stdout);
  }

  static constexpr std::size_t kEvents = 6;
  Session& s_;
  double interval_;
  int count_;
  bool tty_ = false;
  bool subscribed_ = false;
  bool resubscribe_ = false;
  Clock::time_point renew_at_{};
  bool have_data_ = false;
  std::string notice_;
  StatusFields status_;
  std::vector<VoiceRow> voices_;
  std::deque<std::string> events_;
};

// ------------------------------------------------------------------------------- events

// `stemctl events`: subscribes (/stemd/notify 1), prints every notification as one line (text
// or JSON) as it arrives, renews the subscription at a third of its lifetime, and unsubscribes
// on Ctrl-C / SIGTERM (or after --count events). A daemon that goes away is retried every
// second (said once on stderr); the subscription is taken again when it answers.
class Events {
 public:
  Events(Session& s, bool json, int count) : s_(s), json_(json), count_(count) {}

  int run() {
    if (int rc = s_.connect(); rc != kExitOk) return rc;
    Client& c = s_.client();
    install_signals();
    c.set_interrupt_flag(&g_stop);
    const Result sub = c.request(notify(1), s_.opts().timeout_s, printer());
    if (sub.wait == Wait::kInterrupted) return kExitOk;
    if (const int rc = s_.check(sub); rc != kExitOk) return rc;
    renewed(sub.reply);
    while (!g_stop.load() && !enough()) {
      OscMessage in;
      std::string error;
      const Wait w = c.receive(in, renew_at_, error);
      if (w == Wait::kMessage) {
        print(in);
      } else if (w == Wait::kTimeout) {
        renew();
      } else if (w == Wait::kGone) {
        lost(error);
        renew_at_ = Clock::now() + std::chrono::seconds(1);
      } else {
        break;  // interrupted
      }
    }
    c.set_interrupt_flag(nullptr);  // a second Ctrl-C during this short wait kills us: fine
    c.request(notify(0), std::min(s_.opts().timeout_s, 1.0));
    return kExitOk;
  }

 private:
  static OscMessage notify(int on) { return msg("/stemd/notify", {OscArg::Int(on)}); }
  bool enough() const { return count_ > 0 && printed_ >= count_; }

  std::function<void(const OscMessage&)> printer() {
    return [this](const OscMessage& m) { print(m); };
  }

  void print(const OscMessage& m) {
    if (m.address.rfind("/stemd/voice/", 0) != 0 && m.address.rfind("/stemd/device/", 0) != 0) return;
    if (enough()) return;
    const auto now = std::chrono::system_clock::now();
    const std::time_t t = std::chrono::system_clock::to_time_t(now);
    const int ms =
        static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000);
    std::tm tm{};
    char stamp[80];
    std::string line;
    if (json_) {
      gmtime_r(&t, &tm);
      std::snprintf(stamp, sizeof stamp, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                    tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ms);
      line = event_json(m, stamp);
    } else {
      localtime_r(&t, &tm);
      std::snprintf(stamp, sizeof stamp, "%02d:%02d:%02d.%03d", tm.tm_hour, tm.tm_min, tm.tm_sec, ms);
      line = std::string(stamp) + "  " + m.to_string() + "\n";
    }
    std::fwrite(line.data(), 1, line.size(), stdout);
    std::fflush(stdout);  // a line as it happens, also into a pipe
    ++printed_;
  }

  void renew() {
    const Result r = s_.client().request(notify(1), s_.opts().timeout_s, printer());
    if (r.done()) {
      if (lost_) error_line("events: " + s_.target_text() + " answers again");
      lost_ = false;
      renewed(r.reply);
      return;
    }
    if (r.wait == Wait::kInterrupted) return;
    if (r.failed()) {
      lost(describe_failure(r.reply));
    } else {
      lost(r.wait == Wait::kGone ? r.error : "no reply from " + s_.target_text());
    }
    renew_at_ = Clock::now() + std::chrono::seconds(1);  // try again soon, not in a tight loop
  }

  // Renews at a third of the subscription's lifetime, and at least every 5 s: over UDP a daemon
  // that restarted (and forgot us) is only noticed when we send, so this bounds the time
  // events are missed after a restart.
  void renewed(const OscMessage& reply) {
    double ttl = 60.0;  // `/done /stemd/notify 1 ttl_s`; 60 s when the daemon does not say
    if (reply.args.size() >= 3 && reply.args[2].is_number() && reply.args[2].as_double() > 0) {
      ttl = reply.args[2].as_double();
    }
    const double every = std::min(ttl / 3, kMaxRenewS);
    renew_at_ = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(every));
  }

  void lost(const std::string& why) {
    if (!lost_) error_line("events: " + why + " (retrying every second)");
    lost_ = true;
  }

  static constexpr double kMaxRenewS = 5.0;
  Session& s_;
  bool json_;
  int count_;
  int printed_ = 0;
  bool lost_ = false;
  Clock::time_point renew_at_{};
};

// ------------------------------------------------------------------------------- main

struct Args {
  int id = 0;
  std::string path, name, unit = "s", deck;
  double volume = 1.0, start = 0.0, fade = 0.0, position = 0.0, value = 0.0, ramp = 0.0, rate = 1.0;
  double interval = 0.25;
  int count = 0;
  bool loop = false, absolute = false, json = false, all = false;
  std::vector<std::string> eq;  // eq: BAND PERCENT or LOW MID HIGH
  std::vector<double> levels, tone;
  std::string curve;
};

// A validator for numbers in [lo, hi] that also refuses NaN and infinities (CLI::Range lets NaN
// through): "LEVEL: must be 0..4, got 5".
CLI::Validator number_in(double lo, double hi) {
  const std::string range = seconds_text(lo) + ".." + seconds_text(hi);
  return CLI::Validator(
      [lo, hi, range](std::string& text) -> std::string {
        char* end = nullptr;
        const double v = std::strtod(text.c_str(), &end);
        if (text.empty() || end != text.c_str() + text.size() || !std::isfinite(v)) {
          return "must be a number " + range + ", got \"" + text + "\"";
        }
        if (v < lo || v > hi) return "must be " + range + ", got " + text;
        return std::string();
      },
      "NUMBER " + range);
}

// A deck name: A, B, C or D (either case), as the daemon takes it.
bool is_deck(const std::string& d) {
  return d.size() == 1 && std::toupper(static_cast<unsigned char>(d[0])) >= 'A' &&
         std::toupper(static_cast<unsigned char>(d[0])) <= 'D';
}

// An EQ band: low, mid or high, or a prefix of one ("lo", "hi"), either case — the daemon's rule.
bool is_band(const std::string& b) {
  if (b.empty()) return false;
  std::string l;
  for (char c : b) l += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  for (const char* name : {"low", "mid", "high"}) {
    if (std::string(name).rfind(l, 0) == 0) return true;
  }
  return false;
}

// The raw words of `send` (everything after it) go to `words`; returns how many of argv's
// entries CLI11 parses. Global options before `send` are skipped with their values.
int split_send(int argc, char** argv, std::vector<std::string>& words) {
  for (int i = 1; i < argc; ++i) {
    const std::string t = argv[i];
    if (t == "--host" || t == "-p" || t == "--port" || t == "-t" || t == "--timeout") {
      ++i;
      continue;
    }
    if (t.size() > 1 && t[0] == '-') continue;  // a flag, --opt=value or -p57120
    if (t != "send") return argc;
    words.assign(argv + i + 1, argv + argc);
    if (!words.empty() && (words[0] == "-h" || words[0] == "--help")) return i + 2;  // send's help
    return i + 1;
  }
  return argc;
}

// The command word: the first argument that is neither an option nor a global option's value.
std::string first_word(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    const std::string t = argv[i];
    if (t == "--host" || t == "-p" || t == "--port" || t == "-t" || t == "--timeout") {
      ++i;
      continue;
    }
    if (t.size() > 1 && t[0] == '-') continue;
    return t;
  }
  return {};
}

int stemctl_main(int argc, char** argv) {
  CLI::App app{"stemctl: control a running stemd over OSC (its native /stemd/ dialect).", "stemctl"};
  app.footer(
      "Each command waits for the daemon's reply. Exit status: 0 done, 1 refused by stemd (reason on\n"
      "stderr), 2 usage error, 3 no reply (stemd not running, wrong --host/--port, or time-out).\n"
      "Run 'stemctl COMMAND --help' for a command's options.\n"
      "Environment: STEMD_HOST and STEMD_PORT set --host and --port (as MPD_HOST/MPD_PORT for mpc);\n"
      "--host/--port on the command line win.");
  app.fallthrough();  // global options are accepted after the command too
  app.require_subcommand(1);

  ClientOptions co;
  bool quiet = false;
  app.add_option("--host", co.host, "Where stemd listens: an IPv4/IPv6 address or a host name")
      ->envname("STEMD_HOST")
      ->capture_default_str();
  app.add_option("-p,--port", co.port, "stemd's OSC port (UDP, or TCP with --tcp)")
      ->envname("STEMD_PORT")
      ->check(CLI::Range(1, 65535))
      ->capture_default_str();
  app.add_option("-t,--timeout", co.timeout_s, "Seconds to wait for a reply")
      ->check(CLI::Range(0.001, 3600.0))
      ->capture_default_str();
  app.add_flag("--tcp", co.tcp, "Talk OSC 1.0 over TCP (stemd --osc-tcp-port) instead of UDP");
  app.add_flag("-q,--quiet", quiet, "Print nothing on success (tables and send replies still print)");
  app.set_version_flag("--version", std::string("stemctl ") + STEMD_VERSION);  // stemd's version

  Args a;
  const auto units = CLI::IsMember({"s", "frac", "frames"});
  auto id_arg = [&](CLI::App* sub) { sub->add_option("ID", a.id, "Buffer id")->required(); };
  auto fade_opt = [&](CLI::App* sub, const char* what) {
    sub->add_option("--fade", a.fade, what)->check(CLI::NonNegativeNumber);
  };

  auto* load = app.add_subcommand("load", "Load a file into buffer ID (replies once it can start at once)");
  id_arg(load);
  load->add_option("PATH", a.path, "Audio file, as the daemon sees it: relative paths resolve against its --media-root")
      ->required();
  load->add_option("--name", a.name, "Display name (default: the file name without extension)");
  load->add_flag("-a,--absolute", a.absolute, "Send PATH made absolute against this shell's directory");

  auto* unload = app.add_subcommand("unload", "Unload buffer ID (stops its voice)");
  id_arg(unload);

  auto* play = app.add_subcommand("play", "Play buffer ID (replacing its voice if it is playing)");
  id_arg(play);
  play->add_option("--volume", a.volume, "Linear gain 0..4")->capture_default_str();
  play->add_flag("--loop", a.loop, "Loop until stopped");
  play->add_option("--start", a.start, "Start position (in --unit; s = the file's own seconds)")->capture_default_str();
  play->add_option("--unit", a.unit, "Unit of --start: s, frac (fraction of the file) or frames")
      ->check(units)
      ->capture_default_str();
  auto* play_rate = play->add_option("--rate", a.rate, "Playback rate 0.25..4 (needs a daemon with varispeed)");

  auto* stop = app.add_subcommand("stop", "Stop buffer ID's voice");
  id_arg(stop);
  fade_opt(stop, "Fade-out seconds (default: a click-free minimum)");
  auto* pause = app.add_subcommand("pause", "Pause buffer ID's voice");
  id_arg(pause);
  fade_opt(pause, "Fade-out seconds");
  auto* resume = app.add_subcommand("resume", "Resume buffer ID's paused voice");
  id_arg(resume);
  fade_opt(resume, "Fade-in seconds");

  auto* seek = app.add_subcommand("seek", "Move buffer ID's voice to POS");
  id_arg(seek);
  seek->add_option("POS", a.position, "Position (in --unit; s = the file's own seconds)")->required();
  seek->add_option("--unit", a.unit, "s, frac (fraction of the file) or frames")->check(units)->capture_default_str();

  auto* volume = app.add_subcommand("volume", "Set buffer ID's voice volume");
  id_arg(volume);
  volume->add_option("V", a.value, "Linear gain 0..4")->required()->check(number_in(0, 4));
  auto* volume_ramp =
      volume->add_option("--ramp", a.ramp, "Glide seconds (default: the daemon's, ~20 ms)")->check(number_in(0, 3600));

  auto* pan = app.add_subcommand("pan", "Set buffer ID's voice pan");
  id_arg(pan);
  pan->add_option("P", a.value, "-1 (left) .. 1 (right)")->required()->check(number_in(-1, 1));
  auto* pan_ramp = pan->add_option("--ramp", a.ramp, "Glide seconds")->check(number_in(0, 3600));

  auto* rate = app.add_subcommand("rate", "Set buffer ID's voice playback rate");
  id_arg(rate);
  rate->add_option("R", a.value, "0.25..4")->required()->check(number_in(0.25, 4));
  auto* rate_ramp = rate->add_option("--ramp", a.ramp, "Glide seconds")->check(number_in(0, 3600));

  auto* master = app.add_subcommand("master", "Set the master volume");
  master->add_option("V", a.value, "Linear gain 0..4")->required()->check(number_in(0, 4));
  auto* master_ramp = master->add_option("--ramp", a.ramp, "Glide seconds")->check(number_in(0, 3600));

  const auto deck_name = CLI::Validator(
      [](std::string& d) { return is_deck(d) ? std::string() : "a deck is A, B, C or D, got \"" + d + "\""; }, "DECK");
  auto* deck = app.add_subcommand("deck", "Set a deck's level: deck A 0.8");
  deck->add_option("DECK", a.deck, "A, B, C or D")->required()->check(deck_name);
  deck->add_option("LEVEL", a.value, "Linear gain 0..4")->required()->check(number_in(0, 4));
  auto* deck_ramp = deck->add_option("--ramp", a.ramp, "Glide seconds")->check(number_in(0, 3600));

  auto* levels =
      app.add_subcommand("levels", "Set the deck levels A [B [C [D]]] at once (a missing one keeps its value)");
  levels->add_option("LEVELS", a.levels, "Linear gains 0..4, deck A first")
      ->required()
      ->expected(1, 4)
      ->check(number_in(0, 4));

  auto* crossfade =
      app.add_subcommand("crossfade", "Crossfade deck A to deck B: X = 0 is all A, 1 all B (levels 1-X and X)");
  crossfade->add_option("X", a.value, "0..1")->required()->check(number_in(0, 1));

  auto* eq = app.add_subcommand("eq", "Set a deck's EQ: eq A low 25, or eq A 50 50 50 (low mid high)");
  eq->add_option("DECK", a.deck, "A, B, C or D")->required()->check(deck_name);
  eq->add_option("VALUES", a.eq, "BAND PERCENT (band: low, mid, high) or LOW MID HIGH")
      ->type_name("BAND PERCENT | LOW MID HIGH")
      ->required()
      ->expected(2, 3);
  eq->footer(
      "Percent per band: 0 kills the band, 50 is flat (the EQ only cuts: above 50 is flat too), between\n"
      "them 10^((p/50 - 1) * 24/20). Bands glide over 50 ms. A daemon started with --disable-filters\n"
      "accepts and ignores EQ.");

  auto* fade = app.add_subcommand("fade", "Fade buffer ID's voice to a volume over SECONDS: fade 1 0 4 s_curve");
  id_arg(fade);
  fade->add_option("TARGET", a.value, "Linear gain 0..4")->required()->check(number_in(0, 4));
  fade->add_option("SECONDS", a.ramp, "Length in seconds of output, 0..3600")->required()->check(number_in(0, 3600));
  fade->add_option("CURVE", a.curve, "linear (default), exponential, equal_power or s_curve")
      ->check(CLI::IsMember({"linear", "exponential", "equal_power", "s_curve"}));

  auto* tone =
      app.add_subcommand("tone", "Play a test tone on the direct bus: tone [FREQ 440] [LEVEL_DB -12] [SECONDS 2]");
  tone->add_option("ARGS", a.tone, "Frequency (Hz, >= 20), level (dBFS, -60..0), seconds (0.05..3600)")
      ->type_name("[FREQ [LEVEL_DB [SECONDS]]]")
      ->expected(0, 3);

  auto* list = app.add_subcommand("list", "Table of loaded sources");
  list->add_flag("--json", a.json, "Print JSON: an array of {id, name, path, duration_s, streamed, playing}");
  auto* voices = app.add_subcommand("voices", "Table of playing voices");
  voices->add_flag("--json", a.json,
                   "Print JSON: an array of {id, name, position_s, duration_s, ring_fill, underruns, state}");
  auto* status = app.add_subcommand("status", "The daemon's status in short: latency, voices, memory, underruns…");
  status->add_flag("-a,--all", a.all, "Every field the daemon reports");
  status->add_flag("--json", a.json, "Print every field as one JSON object (numbers as numbers)");

  auto* events = app.add_subcommand("events", "Print stemd's notifications as they happen, one a line, until Ctrl-C");
  events->add_flag("--json", a.json, "One JSON object a line: {time (UTC), event, args, and the args by name}");
  events->add_option("--count", a.count, "Exit after this many events (0: until Ctrl-C or SIGTERM)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  auto* ping = app.add_subcommand("ping", "Check that stemd answers; print the round-trip time");

  auto* watch = app.add_subcommand("watch", "Live view of status, voices and events until Ctrl-C");
  watch->add_option("--interval", a.interval, "Seconds between refreshes")
      ->check(CLI::Range(0.05, 3600.0))
      ->capture_default_str();
  watch->add_option("--count", a.count, "Stop after this many refreshes (0: until Ctrl-C)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();

  // Everything after `send` is the message, taken as it is ("-x", "--", "--port" too): it is
  // split off before CLI11 sees the command line (see split_send()).
  auto* send = app.add_subcommand("send", "Send any OSC message and print the reply: send ADDRESS [ARGS...]");
  send->footer(
      "Usage: stemctl [OPTIONS] send ADDRESS [ARGS...]\n"
      "  ADDRESS  an OSC address, e.g. /stemd/status or /get_status\n"
      "  ARGS     typed i:5 h:7 f:1.0 d:2 s:abc S:sym c:x T F N I, or inferred: 42 -> i, 0.5 or 1e3 -> f,\n"
      "           true/false -> T/F, anything else -> s. Everything after ADDRESS is an argument.\n"
      "Examples: stemctl send /stemd/volume i:1 f:0.5\n"
      "          stemctl send /load_buffer 1001 /music/a.wav drums");
  std::vector<std::string> words;
  const int cli_argc = split_send(argc, argv, words);
  // An unknown command: say so, with the closest one (CLI11 would only say that one is required).
  if (const std::string cmd = first_word(argc, argv); !cmd.empty()) {
    control::ClosestWord near(cmd);
    bool known = false;
    for (const CLI::App* sub : app.get_subcommands({})) {
      known = known || sub->get_name() == cmd;
      near.consider(sub->get_name());
    }
    if (!known) {
      error_line("unknown command \"" + cmd + "\"" +
                 (near.best().empty() ? std::string() : " (did you mean \"" + near.best() + "\"?)") +
                 "; see 'stemctl --help'");
      return kExitUsage;
    }
  }
  try {
    app.parse(cli_argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return kExitUsage;
  }

  Session s(co, quiet);
  const auto id = OscArg::Int(a.id);
  const std::string ids = std::to_string(a.id);

  if (load->parsed()) {
    std::string path = a.path;
    if (a.absolute) path = std::filesystem::absolute(path).lexically_normal().string();
    std::vector<OscArg> args{id, OscArg::Str(path)};
    if (!a.name.empty()) args.push_back(OscArg::Str(a.name));
    return s.run(msg("/stemd/load", args), [&](const OscMessage&) { s.say("loaded " + ids + ": " + path); });
  }
  if (unload->parsed()) {
    return s.run(msg("/stemd/unload", {id}), [&](const OscMessage&) { s.say("unloaded " + ids); });
  }
  if (play->parsed()) {
    std::vector<OscArg> args{id, OscArg::Float(a.volume), OscArg::Int(a.loop ? 1 : 0), OscArg::Float(a.start),
                             OscArg::Str(a.unit)};
    if (play_rate->count() > 0) args.push_back(OscArg::Float(a.rate));  // only when asked: see --help
    return s.run(msg("/stemd/play", args), [&](const OscMessage& r) {
      const auto v = reply_values(r);
      std::string text = "playing " + ids;
      if (v.size() >= 2 && v[1].is_number()) text += " (voice " + v[1].to_string() + ")";
      if (a.loop) text += ", looping";
      s.say(text);
    });
  }
  for (auto [sub, address, verb] :
       {std::tuple{stop, "/stemd/stop", "stopped"}, std::tuple{pause, "/stemd/pause", "paused"},
        std::tuple{resume, "/stemd/resume", "resumed"}}) {
    if (!sub->parsed()) continue;
    std::vector<OscArg> args{id};
    const bool faded = sub->get_option("--fade")->count() > 0;
    if (faded) args.push_back(OscArg::Float(a.fade));
    const std::string v = verb;
    if (sub == stop) {  // as `mpc stop`: stopping what is not playing is not an error
      if (int rc = s.connect(); rc != kExitOk) return rc;
      const Result r = s.client().request(msg(address, args));
      const std::string why = r.failed() && !r.reply.args.empty() && r.reply.args.back().is_string()
                                  ? r.reply.args.back().s
                                  : std::string();
      const std::string not_playing = "is not playing";  // the daemon's "id N is not playing"
      if (why.size() >= not_playing.size() &&
          why.compare(why.size() - not_playing.size(), not_playing.size(), not_playing) == 0) {
        s.say(ids + " is not playing");
        return kExitOk;
      }
      if (int rc = s.check(r); rc != kExitOk) return rc;
      s.say(v + " " + ids + (faded && a.fade > 0 ? " (over " + num(a.fade) + " s)" : ""));
      return kExitOk;
    }
    return s.run(msg(address, args), [&](const OscMessage&) {
      s.say(v + " " + ids + (faded && a.fade > 0 ? " (over " + num(a.fade) + " s)" : ""));
    });
  }
  if (seek->parsed()) {
    return s.run(msg("/stemd/seek", {id, OscArg::Float(a.position), OscArg::Str(a.unit)}), [&](const OscMessage&) {
      s.say(ids + " moved to " + num(a.position) + (a.unit == "s" ? " s" : " " + a.unit));
    });
  }
  // level-like commands: [id] value [ramp]
  struct Level {
    CLI::App* sub;
    CLI::Option* ramp;
    const char* address;
    const char* what;
    bool has_id;
  };
  for (const Level& l :
       {Level{volume, volume_ramp, "/stemd/volume", "volume", true}, Level{pan, pan_ramp, "/stemd/pan", "pan", true},
        Level{rate, rate_ramp, "/stemd/rate", "rate", true},
        Level{master, master_ramp, "/stemd/master", "master volume", false},
        Level{deck, deck_ramp, "/stemd/deck", "level", false}}) {
    if (!l.sub->parsed()) continue;
    std::vector<OscArg> args;
    std::string who;
    if (l.has_id) {
      args.push_back(id);
      who = " of " + ids;
    }
    if (l.sub == deck) {
      args.push_back(OscArg::Str(a.deck));
      who = " of deck " + a.deck;
    }
    args.push_back(OscArg::Float(a.value));
    if (l.ramp->count() > 0) args.push_back(OscArg::Float(a.ramp));
    const std::string what = l.what;
    return s.run(msg(l.address, args), [&](const OscMessage&) {
      s.say(what + who + " → " + num(a.value) + (l.ramp->count() > 0 ? " over " + num(a.ramp) + " s" : ""));
    });
  }
  if (list->parsed()) {
    std::vector<SourceRow> all;
    const int r = s.pages("/stemd/list", 6, [&](const OscMessage& reply, std::string& error) {
      std::vector<SourceRow> rows;
      if (!parse_list(reply, rows, error)) return false;
      all.insert(all.end(), rows.begin(), rows.end());
      return true;
    });
    if (r == kExitOk) std::fputs((a.json ? list_json(all) : list_table(all)).c_str(), stdout);
    return r;
  }
  if (voices->parsed()) {
    std::vector<VoiceRow> all;
    const int r = s.pages("/stemd/voices", 7, [&](const OscMessage& reply, std::string& error) {
      std::vector<VoiceRow> rows;
      if (!parse_voices(reply, rows, error)) return false;
      all.insert(all.end(), rows.begin(), rows.end());
      return true;
    });
    if (r == kExitOk) std::fputs((a.json ? voices_json(all) : voices_table(all)).c_str(), stdout);
    return r;
  }
  if (status->parsed()) {
    return s.run(msg("/stemd/status"), [&](const OscMessage& reply) {
      const StatusFields f = status_fields(reply);
      if (a.json) {
        std::fputs(status_json(f).c_str(), stdout);
        return;
      }
      std::printf("stemd at %s\n%s", s.target_text().c_str(), (a.all ? status_table(f) : status_summary(f)).c_str());
    });
  }
  if (events->parsed()) {
    Events e(s, a.json, a.count);
    return e.run();
  }
  if (levels->parsed()) {
    std::vector<OscArg> args;
    std::string text;
    for (std::size_t i = 0; i < a.levels.size(); ++i) {
      args.push_back(OscArg::Float(a.levels[i]));
      text += std::string(i == 0 ? "" : ", ") + static_cast<char>('A' + i) + " " + num(a.levels[i]);
    }
    return s.run(msg("/deck_levels", args), [&](const OscMessage&) { s.say("deck levels → " + text); });
  }
  if (crossfade->parsed()) {
    const double x = a.value;
    return s.run(msg("/crossfade_levels", {OscArg::Float(1.0 - x), OscArg::Float(x)}), [&](const OscMessage&) {
      s.say("crossfade " + num(x) + ": deck A " + num(1.0 - x) + ", deck B " + num(x));
    });
  }
  if (eq->parsed()) {
    std::vector<double> p;
    std::string band;
    const bool one_band = a.eq.size() == 2;
    if (one_band) {
      band = a.eq[0];
      if (!is_band(band)) {
        error_line("eq: a band is low, mid or high, got \"" + band +
                   "\" (stemctl eq DECK BAND PERCENT | eq DECK LOW MID HIGH)");
        return kExitUsage;
      }
    }
    for (std::size_t i = one_band ? 1 : 0; i < a.eq.size(); ++i) {
      std::string t = a.eq[i];
      const std::string why = number_in(0, 100)(t);
      if (!why.empty()) {
        error_line("eq: percent " + why + " (0 kills the band, 50 is flat)");
        return kExitUsage;
      }
      p.push_back(std::strtod(t.c_str(), nullptr));
    }
    if (one_band) {
      return s.run(msg("/deck_eq", {OscArg::Str(a.deck), OscArg::Str(band), OscArg::Float(p[0])}),
                   [&](const OscMessage&) { s.say("deck " + a.deck + " " + band + " → " + num(p[0]) + "%"); });
    }
    return s.run(
        msg("/deck_eq_all", {OscArg::Str(a.deck), OscArg::Float(p[0]), OscArg::Float(p[1]), OscArg::Float(p[2])}),
        [&](const OscMessage&) {
          s.say("deck " + a.deck + " EQ → low " + num(p[0]) + "%, mid " + num(p[1]) + "%, high " + num(p[2]) + "%");
        });
  }
  if (fade->parsed()) {
    std::vector<OscArg> args{id, OscArg::Float(a.value), OscArg::Float(a.ramp)};
    if (!a.curve.empty()) args.push_back(OscArg::Str(a.curve));
    return s.run(msg("/stemd/fade", args), [&](const OscMessage&) {
      s.say("fading " + ids + " to " + num(a.value) + " over " + num(a.ramp) + " s" +
            (a.curve.empty() ? "" : " (" + a.curve + ")"));
    });
  }
  if (tone->parsed()) {
    // frequency, level_db, seconds: each checked here; the upper frequency (Nyquist) by the daemon.
    static const struct {
      const char* name;
      double lo, hi;
    } kToneArgs[] = {{"frequency", 20, 1e6}, {"level_db", -60, 0}, {"seconds", 0.05, 3600}};
    std::vector<OscArg> args;
    for (std::size_t i = 0; i < a.tone.size(); ++i) {
      const double v = a.tone[i];
      if (!std::isfinite(v) || v < kToneArgs[i].lo || v > kToneArgs[i].hi) {
        error_line(std::string("tone: ") + kToneArgs[i].name + " must be " +
                   (i == 0 ? std::string("at least 20 Hz") : num(kToneArgs[i].lo) + ".." + num(kToneArgs[i].hi)) +
                   ", got " + num(v) + " (stemctl tone [FREQ] [LEVEL_DB] [SECONDS])");
        return kExitUsage;
      }
      args.push_back(OscArg::Float(v));
    }
    return s.run(msg("/stemd/tone", args), [&](const OscMessage& r) {
      const auto v = reply_values(r);
      s.say("tone" + (!v.empty() && v[0].is_number() ? " " + num(v[0].as_double()) + " Hz" : std::string()) +
            (a.tone.size() >= 3 ? " for " + num(a.tone[2]) + " s" : std::string()));
    });
  }
  if (ping->parsed()) {
    if (int rc = s.connect(); rc != kExitOk) return rc;
    const auto t0 = Clock::now();
    const Result r = s.client().request(msg("/stemd/ping"));
    const int rc = s.check(r);
    if (rc == kExitOk) {
      const double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
      char buf[32];
      std::snprintf(buf, sizeof buf, "%.2f", ms);
      s.say("stemd at " + s.target_text() + " answered in " + buf + " ms");
    }
    return rc;
  }
  if (watch->parsed()) {
    Watch w(s, a.interval, a.count);
    return w.run();
  }
  if (send->parsed()) {
    if (!words.empty() && words.front() == "--") words.erase(words.begin());
    if (words.empty()) {
      error_line("send: which address? (stemctl send ADDRESS [ARGS...])");
      return kExitUsage;
    }
    const std::string address = words.front();
    if (address[0] != '/') {
      error_line("send: an OSC address starts with '/': \"" + address + "\"");
      return kExitUsage;
    }
    OscMessage m = msg(address);
    for (std::size_t i = 1; i < words.size(); ++i) {
      OscArg arg;
      std::string error;
      if (!parse_send_arg(words[i], arg, error)) {
        error_line("send: " + error);
        return kExitUsage;
      }
      m.args.push_back(std::move(arg));
    }
    return s.run(m, [&](const OscMessage& reply) { std::printf("%s\n", reply.to_string().c_str()); });
  }
  return kExitUsage;
}

}  // namespace
}  // namespace stemd::ctl

int main(int argc, char** argv) { return stemd::ctl::stemctl_main(argc, argv); }
