// stemctl watch and stemctl events (see live.hpp).
#include "live.hpp"

#include "terminal.hpp"

#include <sys/ioctl.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <deque>

namespace stemd::ctl {

namespace {

// ------------------------------------------------------------------------------- both

// Connects, routes Ctrl-C/SIGTERM to g_stop and subscribes (/stemd/notify 1); notifications
// that arrive before the reply go to `on_event`. -1 to go on (the reply in `sub`), or the exit
// code (kExitOk when interrupted, else the connection's).
int subscribe(Session& s, const std::function<void(const OscMessage&)>& on_event, Result& sub) {
  if (int rc = s.connect(); rc != kExitOk) return rc;
  install_signals();
  s.client().set_interrupt_flag(&g_stop);
  sub = s.client().request(msg("/stemd/notify", {OscArg::Int(1)}), s.opts().timeout_s, on_event);
  return sub.wait == Wait::kInterrupted ? kExitOk : -1;
}

// The notifications: voices, sources (loads, unloads) and the device.
bool is_event(const std::string& address) {
  for (const char* p : {"/stemd/voice/", "/stemd/source/", "/stemd/device/"}) {
    if (address.rfind(p, 0) == 0) return true;
  }
  return false;
}

void unsubscribe(Session& s) {
  s.client().set_interrupt_flag(nullptr);  // a second Ctrl-C during this short wait kills us: fine
  s.client().request(msg("/stemd/notify", {OscArg::Int(0)}), std::min(s.opts().timeout_s, 1.0));
}

// ------------------------------------------------------------------------------- watch

class Watch {
 public:
  Watch(Session& s, double interval, int count) : s_(s), interval_(interval), count_(count) {}

  int run() {
    // Subscribe first: if the daemon is not there, say so the way every command does.
    Result sub;
    if (const int rc = subscribe(s_, keep_event(), sub); rc >= 0) return rc;
    Client& c = s_.client();
    tty_ = isatty(STDOUT_FILENO) == 1;
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

    if (subscribed_) unsubscribe(s_);
    return kExitOk;
  }

 private:
  std::function<void(const OscMessage&)> keep_event() {
    return [this](const OscMessage& m) { record(m); };
  }

  void record(const OscMessage& m) {
    if (!is_event(m.address)) return;
    char stamp[32];
    const auto now = std::chrono::system_clock::now();
    const std::time_t t = std::chrono::system_clock::to_time_t(now);
    std::tm tm{};
    localtime_r(&t, &tm);
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
    std::snprintf(stamp, sizeof stamp, "%02d:%02d:%02d.%03d", tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms));
    events_.push_back(std::string(stamp) + "  " + message_text(m));
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
    // With the mix columns (each voice's volume, and its rate and tempo where not 1), as `stemctl
    // voices` shows them; a daemon older than them refuses mix 1 and is asked without.
    Result vo = c.request(msg("/stemd/voices", {OscArg::Int(0), OscArg::Int(0), OscArg::Int(narrow_ ? 0 : 1)}), t,
                          keep_event());
    if (!narrow_ && vo.wait == Wait::kMessage && !vo.done()) {
      narrow_ = true;
      vo = c.request(msg("/stemd/voices"), t, keep_event());
    }
    if (!take(vo, "/stemd/voices")) return;
    std::string error;
    if (!parse_voices(vo.reply, voices_, error, narrow_ ? kVoiceFields : kVoiceFieldsMix)) {
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
    if (tty_) {
      winsize ws{};
      out = terminal_frame(out, ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 ? ws.ws_col : 0);
    } else {
      out += "\n";
    }
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
  bool narrow_ = false;  // the daemon refused /stemd/voices' mix columns (older than them)
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
    Result sub;
    if (const int rc = subscribe(s_, printer(), sub); rc >= 0) return rc;
    Client& c = s_.client();
    if (const int rc = s_.check(sub); rc != kExitOk) return rc;
    renewed(sub.reply);
    // On a terminal, say that it listens (nothing else shows until the first event); never into
    // a pipe or file, whose lines are events only.
    if (isatty(STDERR_FILENO) == 1) {
      std::fprintf(stderr, "subscribed to stemd on %s: its events print here as they happen (Ctrl-C to stop)\n",
                   c.where().c_str());
    }
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
    unsubscribe(s_);
    return kExitOk;
  }

 private:
  static OscMessage notify(int on) { return msg("/stemd/notify", {OscArg::Int(on)}); }
  bool enough() const { return count_ > 0 && printed_ >= count_; }

  std::function<void(const OscMessage&)> printer() {
    return [this](const OscMessage& m) { print(m); };
  }

  void print(const OscMessage& m) {
    if (!is_event(m.address)) return;
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
      line = std::string(stamp) + "  " + message_text(m) + "\n";
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

}  // namespace

int run_watch(Session& s, double interval, int count, bool interval_given) {
  if (!interval_given && isatty(STDOUT_FILENO) != 1) interval = 1.0;
  Watch w(s, interval, count);
  return w.run();
}

int run_events(Session& s, bool json, int count) {
  Events e(s, json, count);
  return e.run();
}

}  // namespace stemd::ctl
