// The daemon's main thread [main]: app::run() takes the steps of DaemonRun (daemon_run.hpp) in
// order — start-up, the main loop, shutdown.
//
// Threads: the Instance's (instance.hpp) loader thread and control thread (the OSC server's, or
// the Instance's own with --no-osc), and the backend's audio thread. SIGINT/SIGTERM/SIGHUP are
// blocked in every thread and taken synchronously here with sigtimedwait(), so no code runs in a
// signal handler. The main loop only waits for signals, watches the device, writes the state
// file and logs the health line; what the control thread owns it changes through post().
#include "daemon.hpp"

#include "daemon_run.hpp"
#include "options_check.hpp"

#include <spdlog/spdlog.h>

namespace stemd::app {

void warn_if_shut_out(const control::OscServer& server, const std::string& osc_bind, const std::string& allow,
                      const char* prefix) {
  if (server.shut_out()) {
    spdlog::warn(
        "{}OSC listens on loopback (--osc-bind {}) but --allow {} does not take this machine: no client can reach it "
        "(stemctl neither) — add it, --allow {},127.0.0.1 (--allow is shared with the web monitor), or bind OSC "
        "to an address on the network",
        prefix, osc_bind, allow, allow);
  } else if (server.local_refused()) {
    spdlog::warn(
        "{}OSC listens on every interface (--osc-bind {}) but --allow {} leaves out this machine: stemctl and "
        "clients here are refused (no reply) — add it: --allow {},127.0.0.1",
        prefix, osc_bind, allow, allow);
  }
}

// The hand-over file goes on every way out: one that ended before resume_session() read it (a
// stop signal while the device was first asked about, a start-up error) left it in /tmp.
int DaemonRun::run() {
  const int rc = run_steps();
  drop_resume_file();
  return rc;
}

int DaemonRun::run_steps() {
  if (int rc = prepare(); rc >= 0) return rc;
  if (int rc = open_backend(); rc >= 0) return rc;
  if (int rc = build_instance(); rc >= 0) return rc;
  restore_state();
  if (stopped_in_restore_) {
    spdlog::info("stopping ({}): before the audio started", stop_reason_);
    return shutdown();
  }
  resume_session();
  if (int rc = load_start_files(); rc >= 0) {
    if (!stopped_in_restore_) return rc;
    spdlog::info("stopping ({}): before the audio started", stop_reason_);
    return shutdown();
  }
  if (int rc = run_script(); rc >= 0) return rc;
  if (int rc = start_stream(); rc >= 0) return rc;
  if (const control::OscServer* server = inst_->server()) {
    const control::MediaPolicy& media = inst_->media();
    if (!media.root().empty()) {
      spdlog::info("{}, media root {}{}", server->describe(), media.root(),
                   media.present() ? "" : " (not there yet: loads are refused until it is)");
    } else if (media.loopback_only()) {
      spdlog::info("{} (no --media-root: clients on this machine may load any file stemd can read)",
                   server->describe());
    } else {
      // Reachable from the network with no root: every load is refused. Say so now, not at the
      // first /load_buffer (a crowdstream migration that sets osc-bind and allow but no media-root).
      spdlog::warn(
          "{}: loading files is disabled — {} is reachable from the network and no --media-root is set; set "
          "--media-root DIR (the folder clients may load from)",
          server->describe(), reachable_listener());
    }
  }
  if (const control::OscServer* server = inst_->server()) warn_if_shut_out(*server, o_.osc_bind, o_.allow, "");
  inst_->start_control();  // from here on the control thread owns the Controller and the Router
  if (web_) {
    spdlog::info("{}", web_->describe());  // before its thread runs: the acceptor is then its own
    web_->start();
  }
  check_descriptors();  // everything that holds a descriptor has started
  announce();
  init_health();
  const auto now = Clock::now();
  stall_since_ = now;
  next_attempt_ = now + std::chrono::milliseconds(resume_.active ? 0 : 500);  // resumed: ask the server now
  voices_pending_ = !resume_voices_.empty();
  plays_pending_ = waiting_;
  live_allow_ = o_.allow;
  live_levels_ = deck_levels_;
  live_volume_ = o_.volume;
  live_vol_ = o_.deck_volume;
  while (main_loop_pass()) {
  }
  return shutdown();
}

// One pass of the main loop (at a signal, else every 50 ms — every 250 ms while a device plays
// and nothing waits on the loop: a wake-up of this thread costs ≈ 50 µs on a VM). False: the loop
// ends.
bool DaemonRun::main_loop_pass() {
  const bool settled = bc_.kind == "portaudio" && device_.state() == control::DeviceState::kRunning &&
                       !plays_pending_ && !voices_pending_ && o_.duration <= 0 && !reload_job_;
  timespec timeout{0, settled ? 250'000'000L : 50'000'000L};
  int sig = stop_signal_;  // one an OpenGuard took while the device was opened
  if (sig == 0) sig = sigtimedwait(&sigs_, nullptr, &timeout);
  if (sig == SIGINT || sig == SIGTERM) {
    // A run shorter than one pass (an unpaced ALSA file PCM plays seconds in ms) still says how
    // its audio thread was scheduled: the stream is still running here.
    if (!policy_logged_ && device_.state() == control::DeviceState::kRunning) log_policy();
    stop_reason_ = sig == SIGINT ? "SIGINT" : "SIGTERM";
    return false;
  }
  if (sig == SIGHUP) on_sighup();
  poll_reload();
  const auto& m = inst_->engine().metrics();
  const bool lost_now = device_.state() != control::DeviceState::kRunning;  // lost, or waiting for it
  systemd_.tick(m.callbacks.load(std::memory_order_relaxed), lost_now || stalled_);
  if (!policy_logged_ && !lost_now) log_policy();
  if (backend_->finished()) return false;
  if (!watch_device()) return false;
  if (stop_signal_ != 0) return true;  // taken while a retry opened the device: acted on at the next pass
  if (backend_->failed() && bc_.kind != "portaudio") {
    spdlog::error("{}", backend_->failure());
    exit_code_ = 3;
    stop_reason_ = "backend failure";
    return false;
  }
  if (bc_.kind != "render" && o_.duration > 0 &&
      m.frames.load(std::memory_order_relaxed) >= static_cast<std::uint64_t>(o_.duration * rate_)) {
    stop_reason_ = "--duration reached";
    return false;
  }
  health_tick(Clock::now());
  return true;
}

int run(int argc, char** argv) {
  if (wants_check_config(argc, argv)) return check_config(argc, argv);
  DaemonRun d(argc, argv);
  return d.run();
}

}  // namespace stemd::app
