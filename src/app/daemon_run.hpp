// The daemon's run, split by what it does (internal to src/app): the state one run of stemd
// keeps, and the steps app::run() takes in order. [main] unless a comment says otherwise.
//   startup.cpp   options, signals, the backend, the Instance, the start-up flags, the stream
//   health.cpp    the once-a-second health line and the real-time policy line
//   recovery.cpp  a lost or late device: hand-over to a fresh image, retries with backoff
//   reload.cpp    SIGHUP
//   shutdown.cpp  the bounded shutdown
//   daemon.cpp    app::run() and the main loop
#pragma once

#include "abort_reexec.hpp"
#include "audio/backend.hpp"
#include "config_io.hpp"
#include "control/device_status.hpp"
#include "device_probe.hpp"
#include "glitch_advice.hpp"
#include "instance.hpp"
#include "io/fd_budget.hpp"
#include "options.hpp"
#include "service_notify.hpp"
#include "stall_log.hpp"
#include "stemd/metrics.hpp"
#include "state.hpp"
#include "web/web_server.hpp"

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace stemd::app {

// Device recovery by a fresh process image (recovery.cpp): what the new image is told.
struct Resume {
  bool active = false;
  std::string state_path;
  int rate = 0;
  std::uint32_t buffer = 0;  // the buffer size the previous image ran at (a JACK server's period it took)
  std::uint64_t losses = 0;
  std::string reason;
  // --state-file could not be read at the first image's start: the new image does not write it.
  bool state_unread = false;
  std::int64_t started_ns = 0;    // the service's start (steady clock, the first image's): uptime counts from it
  std::int64_t lost_at_ns = 0;    // when the device was lost (steady clock): "lost for" and the last loss count from it
  engine::GlitchTotals glitches;  // the previous images' underruns and underflows: counted on, not from 0
  // Without --link: the beat count at the hand-over, at beat_ns (steady clock; 0 = none): the
  // new image's beat goes on from it (Router::carry_beat).
  double beat = 0;
  std::int64_t beat_ns = 0;
  // The audio server's helpers the previous image killed and could not reap before its exec: still
  // this process's children, reaped by this image (reap_probes), not left zombies.
  std::vector<pid_t> helpers;
  // What the carry file (carry_path(), beside the hand-over file) brings, all checked:
  // the status totals since the service started (control/carried_totals.hpp), the web monitor's
  // last events (web/event_backlog.hpp: the loss among them) and the output latency the
  // callbacks measured (0: none): the new image's Link join line and status say it from the start.
  std::vector<std::pair<std::string, std::uint64_t>> totals;
  std::vector<web::PastEvent> events;
  std::string events_run;  // their run (web::EventBacklog::run): a page's numbers go on across the hand-over
  double output_latency_s = 0;
  std::vector<std::string> ignored;  // STEMD_RESUME_* values not taken, and why
};
// resume_env.cpp. What the environment says is checked, as input from outside: a hand-over file
// other than this process's own (handoff_path) is not read (nor removed), a helper that is not
// this process's child is not adopted (nor killed), counts and times out of range are dropped.
// `ignored` says what was not taken, for a warning once logging is set up.
Resume take_resume_env();              // reads and clears STEMD_RESUME_*
void put_resume_env(const Resume& r);  // sets them, for the image exec'd next
// The same as NAME=VALUE lines (an environment prepared before it is needed: abort_reexec.hpp).
std::vector<std::string> resume_env_lines(const Resume& r);
// This image's hand-over file: $RUNTIME_DIRECTORY (or $TMPDIR, /tmp)/stemd-resume-PID.XXXXXX/state,
// in a directory mkdtemp() made (mode 0700, a name nobody can plant first), made at the first call
// and again when it is gone; "" when it cannot be made (errno says why). A predictable file in
// /tmp could be planted by another local user: a directory there made the daemon exit at the next
// loss, a 0666 file kept its mode and was rewritten before the new image read it (outside pass
// 29, attack L1).
std::string handoff_path();
// Whether PATH is this process's hand-over file (a previous image's, same pid): named as
// handoff_path() names it, its directory ours and closed to others (0700 or less), and the files
// there regular, ours and writable by nobody else. False with the reason.
bool own_handoff(const std::string& path, std::string& why);
// Removes the hand-over file, its carry file and their directory.
void remove_handoff(const std::string& state_path);
// The carry file: "carry" beside the hand-over file STATE_PATH. Its text (format_carry) is lines of
//   stemd-carry 1
//   total NAME COUNT                      one of control::kCarriedTotals, once each
//   latency_ns N                          the measured output latency (below 2 s)
//   run HEX                               the web monitor's run (its events' "run": 1–32 hex digits)
//   event SEQ UNIX_MS JSON                the web monitor's, oldest first (at most 64, each at
//                                         most EventBacklog::kMaxBytes, printable ASCII or UTF-8)
// take_resume_env reads it (at most kMaxCarryBytes) when the hand-over is this process's, then
// removes it; parse_carry takes what is valid and says in `r.ignored` what was not.
inline constexpr std::size_t kMaxCarryBytes = 256 * 1024;
std::string carry_path(const std::string& state_path);
std::string format_carry(const Resume& r);
void parse_carry(const std::string& text, Resume& r);

struct HealthCounters {
  std::uint64_t voice_underruns = 0, device_underflows = 0, events_dropped = 0, read_errors = 0, truncated = 0;
  bool operator==(const HealthCounters&) const = default;
};

// An allow-list that leaves this machine out of the OSC socket's reach (stemctl, the web page and
// every client here get no reply): a warning, at start and after a SIGHUP that applied it
// (`prefix` "" or "SIGHUP: ") — a reload said only "OSC now allows …" (new-user pass 29, L0).
// [control, or before the control thread starts]
void warn_if_shut_out(const control::OscServer& server, const std::string& osc_bind, const std::string& allow,
                      const char* prefix);

class DaemonRun {
 public:
  DaemonRun(int argc, char** argv) : argc_(argc), argv_(argv) {}
  int run();

 private:
  int run_steps();
  using Clock = std::chrono::steady_clock;
  // startup.cpp — each returns -1 to carry on, else the exit code
  int prepare();
  void block_signals_and_raise_fd_limit();
  void check_descriptors();  // once everything has started (run()): --max-sources against the limit
  int open_backend();
  int build_instance();
  int open_web();
  InstanceConfig instance_config() const;
  int router_config(control::RouterConfig& rc, bool& media_loopback_only) const;
  // Which listener clients beyond this machine can reach ("the OSC socket", "the web monitor
  // (--http-bind 0.0.0.0)"); empty when both are on loopback (or off).
  std::string reachable_listener() const;
  void restore_state();
  void hook_state_poll();
  void resume_session();
  void restart_resumed_voices();            // [control]
  void add_unplayed(DaemonState& s) const;  // [control] resume_voices_ not replayed yet, as read
  bool route_start_message(const std::string& flag, const control::OscMessage& m, std::int64_t at);  // [control]
  // A start-up file's load on the opener threads, under --load-timeout; `stopped`: a stop
  // signal came while it waited (stop_reason_ says which).
  control::Reply start_load(const std::string& flag, const control::OscMessage& m, bool& stopped);  // [control]
  bool wait_unless_stopped(int ms, const std::string& during);                                      // [main]
  int load_start_files();
  int run_script();
  bool play_start_files();  // [control]
  std::vector<control::Router::WaitingVoice> start_voices() const;
  int start_stream();
  void announce();
  // health.cpp
  void init_health();
  void health_tick(Clock::time_point now);
  void log_glitches(const HealthCounters& c, const engine::DurationHistogram::Snapshot& hist, std::uint32_t min_fill);
  void log_policy();
  // recovery.cpp — false: the main loop ends
  bool watch_device();
  void hand_over(const std::string& why);
  struct Handed {  // what a hand-over passes on (capture_handover)
    Resume r;
    DaemonState state;
    std::string subscribers;  // STEMD_RESUME_SUBSCRIBERS
  };
  Handed capture_handover(const std::string& why);     // [control]
  bool write_handover(Handed& h, std::string& error);  // makes h.r.state_path
  std::string helpers_left() const;                    // STEMD_RESUME_HELPERS
  std::unique_ptr<AbortReexec> arm_for_open();         // abort_reexec.cpp
  void retry_device(std::uint64_t cb, Clock::time_point now);
  void device_back(std::uint64_t cb, Clock::time_point now);
  void device_not_back(const std::string& e, Clock::time_point now);
  void follow_output_latency(bool at_start);
  // device_probe.cpp — the audio server asked in a helper before the device is opened here
  int probe_at_start(bool auto_kind, bool& opened);
  void probe_said_no_device();
  int stopped_at_start();
  std::string not_answering(double seconds) const;
  bool open_guarded(bool open, bool start, std::string& error);
  FileJob::Status look_at_probe(std::string& error);
  std::string stall_verdict(Clock::time_point now);
  void end_stall(Clock::time_point now, Clock::time_point last_callback);
  void drop_probe();
  void reap_probes();
  void log_stall_summary(Clock::time_point now, bool now_anyway);
  double seconds_since_start(Clock::time_point now) const;
  void drop_resume_file();  // the hand-over file, on every way out of a resumed image
  // reload.cpp — SIGHUP starts the config file's read in the helper (on_sighup); each main-loop
  // pass looks at it (poll_reload) and reloads once the text is there, or gives up on it after
  // --load-timeout. One read at a time: a SIGHUP meanwhile joins it, and while one given up has
  // not ended (its file system still does not answer) a SIGHUP is refused.
  void on_sighup();
  void poll_reload();
  void reload(ConfigInput& config);
  void apply_live_volumes(const Options& n, std::vector<std::string>& applied);
  // daemon.cpp
  bool main_loop_pass();
  // shutdown.cpp
  int shutdown();
  std::string stuck_in_file_system() const;
  void fade_out(Clock::time_point fade_started);
  void probe_device(std::uint64_t callbacks_before_fade, Clock::time_point fade_started);
  void log_summary();

  int argc_;
  char** argv_;
  Clock::time_point started_ = Clock::now();  // the process's start (uptime_s)
  Options o_;
  Resume resume_;
  control::DeviceStatus device_;
  sigset_t sigs_{};
  audio::BackendConfig bc_;
  std::unique_ptr<Instance> inst_;
  std::unique_ptr<audio::Backend> backend_;  // destroyed before the Instance (render: it reads the loader)
  std::unique_ptr<web::WebServer> web_;      // --http-port; destroyed before the Instance it serves
  std::unique_ptr<StateKeeper> state_;
  std::shared_ptr<io::FdBudget> fds_;  // made at start (the raised limit); measured at start and every 10 s
  std::string err_;
  bool device_configured_ = false, device_open_ = true, waiting_ = false, real_device_ = false;
  std::string wanted_;
  int rate_ = 48000;
  double budget_ms_ = 0;
  std::vector<StateMessage> resume_voices_;
  // The first of resume_voices_ that came after /stemd/quantize in the hand-over: voices still
  // waiting for their bar, replayed quantised (the rest at once).
  std::size_t resume_quantised_from_ = SIZE_MAX;
  std::vector<int> slots_;
  std::vector<float> deck_levels_;
  ServiceNotifier systemd_;
  bool policy_logged_ = false;
  // health
  HealthCounters last_{};
  AdviceRepeat advice_repeat_;  // the glitch advice in full once an hour per cause
  engine::DurationHistogram::Snapshot hist_prev_{};
  Clock::time_point next_health_, next_health_line_, health_prev_t_, t_start_, next_fd_measure_;
  double health_prev_cpu_ = 0;
  std::uint64_t health_prev_cb_ns_ = 0;
  std::uint64_t fds_refused_at_line_ = 0;  // FdBudget::refused() at the last health line
  Clock::time_point fds_line_t_;           // when that line was written (the start before one)
  // the end of the main loop
  int exit_code_ = 0;
  std::string stop_reason_ = "finished";
  bool stopped_in_restore_ =
      false;  // a stop signal came while the state file's or the start files' loads were in flight
  // the device watch and recovery: attempts every 0.5 s for the first kSteadyAttempts (≈ 30 s
  // away: a replugged DAC or a restarted server is back within half a second of being there),
  // then doubling to every 5 s (outside pass 29, user L3: doubling from the first attempt kept a
  // device back after 2 s waiting up to 2 s more)
  static constexpr std::uint64_t kSteadyAttempts = 60;
  std::uint64_t stall_callbacks_ = 0;
  Clock::time_point stall_since_, next_attempt_;
  double backoff_s_ = 0.5;
  std::uint64_t attempts_ = 0;
  std::uint64_t reopened_at_callbacks_ = 0;
  double applied_latency_s_ = -1;  // the output latency the router compensates (follow_output_latency)
  double logged_latency_s_ = -1;   // and the last one logged
  bool voices_pending_ = false;
  // The audio server's helper (device_probe.hpp): the one in flight, ones killed and not reaped yet
  std::unique_ptr<FileJob> server_probe_;
  std::vector<std::unique_ptr<FileJob>> ending_probes_;
  bool probe_said_stuck_ = false;
  // The stream open but not calling back for 1 s: the server is being asked (stall_verdict)
  bool stalled_ = false;
  bool stall_loud_ = false;                       // this stall's lines are logged (stall_log_)
  StallLog stall_log_;                            // the first stall in full, then once an hour; counted meanwhile
  std::uint64_t health_quiet_stalls_ = 0;         // stall_log_.quiet_stalls() at the last glitch line
  Clock::time_point stall_probe_at_;              // a helper asks the server then (again after one given up)
  std::optional<Clock::time_point> answered_at_;  // the server answered the helper meanwhile
  int stop_signal_ = 0;                           // SIGINT/SIGTERM taken by an OpenGuard
  std::atomic<bool> resume_dropped_{false};
  bool plays_pending_ = false;  // --play files of a start that waited for its device
  // SIGHUP: the config file's read in flight (or given up on and not ended yet)
  std::unique_ptr<ConfigJob> reload_job_;
  bool reload_given_up_ = false;
  // SIGHUP: the values in force now
  std::string live_allow_;
  std::vector<float> live_levels_;
  float live_volume_ = 1, live_vol_ = 1;
};

// The log line of a voice's end or late start (InstanceConfig::on_event; startup.cpp): at most 5 a
// second per kind through `limit`, informational ones (a voice that ended at its end) at info.
void log_voice_event(const engine::Event& e, const control::VoiceInfo& v, base::LogLimiter* limit);

// The web monitor's installed page (startup.cpp): false, with every place looked in, when none has
// index.html. Also --check-config's.
bool installed_web_root(std::string& root, std::string& error);

// A duration in ns as whole microseconds ("41 µs"): the health and shutdown lines (health.cpp).
std::string fmt_us(std::uint64_t ns);

}  // namespace stemd::app
