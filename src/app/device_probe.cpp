// The audio server asked in a helper before the device is opened in-process (device_probe.hpp),
// and the daemon's use of it [main]: at start (open_backend), on each retry of a lost or awaited
// device (retry_device), and when a running stream stops calling back (watch_device).
#include "device_probe.hpp"

#include "daemon_run.hpp"

#include <spdlog/spdlog.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include <sys/prctl.h>
#include <unistd.h>

namespace stemd::app {

namespace {

void write_out(const std::string& s) {
  const char* p = s.data();
  std::size_t n = s.size();
  while (n > 0) {
    const ssize_t w = ::write(1, p, n);
    if (w <= 0) return;
    p += w;
    n -= static_cast<std::size_t>(w);
  }
}

}  // namespace

std::unique_ptr<FileJob> start_device_probe(const audio::BackendConfig& bc, bool auto_kind, std::string& error) {
  std::vector<std::string> argv = {"/proc/self/exe",
                                   kStateIoFlag,
                                   "audio-probe",
                                   auto_kind ? "auto" : "portaudio",
                                   bc.device,
                                   std::to_string(bc.sample_rate),
                                   std::to_string(bc.buffer_size),
                                   bc.quiet_alsa ? "1" : "0",
                                   std::to_string(::getpid())};
  return FileJob::start(argv, std::string(), error);
}

int audio_probe_main(int argc, char** argv) {
  if (argc != 6) {
    std::fprintf(stderr, "usage: stemd %s audio-probe auto|portaudio DEVICE RATE BUFFER QUIET PARENT\n", kStateIoFlag);
    return 2;
  }
  // Killed when stemd ends, however it ends; it may have ended before this line ran.
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() != static_cast<pid_t>(std::atol(argv[5]))) return 2;
  audio::BackendConfig bc;
  bc.client_name = kProbeClientName;
  bc.kind = "portaudio";
  bc.device = argv[1];
  bc.sample_rate = std::atoi(argv[2]);
  bc.buffer_size = static_cast<std::uint32_t>(std::strtoul(argv[3], nullptr, 10));
  bc.quiet_alsa = std::strcmp(argv[4], "1") == 0;
  if (std::strcmp(argv[0], "auto") == 0 && bc.device.empty() &&
      audio::list_output_devices(bc.quiet_alsa, bc.client_name).empty()) {
    write_out("PortAudio has no output device");
    return kStateIoMissing;
  }
  std::unique_ptr<audio::Backend> b = audio::make_portaudio_backend(bc);
  std::string e;
  if (!b->open(e)) {
    write_out(e);
    return 1;
  }
  // The line is written before PortAudio's teardown where the daemon's open can overlap it (it
  // goes on as soon as the line is complete: answered_early). On a JACK server, whose clients
  // share the device, all of it: closing the stream and the client takes ≈ 50 ms of handshakes
  // with the server here. Elsewhere the stream is closed first — an ALSA hw device is exclusive
  // and the daemon's open would find it busy — and only Pa_Terminate overlaps.
  const std::string answer = std::to_string(b->sample_rate()) + "\n";
  if (b->describe().find("(JACK Audio Connection Kit)") == std::string::npos) b->stop();
  write_out(answer);
  return 0;
}

OpenGuard::OpenGuard(std::function<void(int sig)> on_stuck_stop) : on_stuck_stop_(std::move(on_stuck_stop)) {
  thread_ = std::thread([this] { watch(); });
}

OpenGuard::~OpenGuard() {
  done_.store(true, std::memory_order_release);
  if (thread_.joinable()) thread_.join();
}

void OpenGuard::watch() {
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGTERM);
  while (!done_.load(std::memory_order_acquire)) {
    timespec timeout{0, 10'000'000L};  // the open's end is seen within 10 ms
    const int sig = sigtimedwait(&stop, nullptr, &timeout);
    if (sig == SIGINT || sig == SIGTERM) {
      sig_.store(sig, std::memory_order_release);
      break;
    }
  }
  if (sig_.load() == 0) return;
  for (int i = 0; i < 100 && !done_.load(std::memory_order_acquire); ++i) {
    timespec ten_ms{0, 10'000'000L};
    nanosleep(&ten_ms, nullptr);
  }
  if (!done_.load(std::memory_order_acquire)) on_stuck_stop_(sig_.load());
}

// ---- the daemon's side ----

void DaemonRun::drop_resume_file() {
  if (!resume_.active || resume_dropped_.exchange(true)) return;
  remove_handoff(resume_.state_path);
}

// The helper is told of the device by bc_; one that is no longer wanted is killed and reaped by
// later passes (reap_probes), not left a zombie.
void DaemonRun::drop_probe() {
  if (!server_probe_) return;
  server_probe_->kill();
  if (server_probe_->poll() == FileJob::Status::kRunning) ending_probes_.push_back(std::move(server_probe_));
  server_probe_.reset();
}

// One that answered and is left to end by itself (probe_at_start) is killed too once it has run
// kProbeGiveUpS: its teardown waits on a server that stopped answering in between.
void DaemonRun::reap_probes() {
  std::erase_if(ending_probes_, [](const std::unique_ptr<FileJob>& j) {
    if (j->seconds() >= kProbeGiveUpS) j->kill();
    return j->poll() != FileJob::Status::kRunning;
  });
}

namespace {

// The helper has written its whole answer (the rate and a line break: the device opened) and is
// in PortAudio's teardown.
bool answered_early(const FileJob& j) {
  const std::string out = j.output_so_far();
  return out.size() > 1 && out.back() == '\n' && out.front() >= '0' && out.front() <= '9';
}

}  // namespace

// The device opened (and, with the engine there, started) in-process once the helper answered,
// within an OpenGuard: a stop signal meanwhile is acted on by the main loop (stop_signal_), or —
// the server stopped answering in between and the open does not return — by the guard, which
// saves the state and exits.
// PortAudio aborting meanwhile (its JACK server went away: pa_jack.c asserts) starts a fresh image
// instead of ending stemd (abort_reexec.hpp).
bool DaemonRun::open_guarded(bool open, bool start, std::string& error) {
  const std::unique_ptr<AbortReexec> rescue = arm_for_open();
  OpenGuard guard([this, &rescue](int sig) {
    audio::restore_stderr();  // Pa_Initialize silences it while ALSA probes: the lines below must be seen
    const char* name = sig == SIGINT ? "SIGINT" : "SIGTERM";
    spdlog::warn(
        "stopping ({}): the audio server stopped answering while the device was being opened — exiting "
        "without it",
        name);
    if (state_ && !stopped_in_restore_ && state_->save(0.5)) spdlog::info("state saved to {}", state_->path());
    drop_resume_file();
    if (rescue) remove_handoff(rescue->hand_over());
    spdlog::default_logger()->flush();
    std::fflush(nullptr);
    _exit(exit_code_);
  });
  const bool ok = (!open || backend_->open(error)) && (!start || backend_->start(inst_->engine(), error));
  stop_signal_ = guard.signal();
  return ok;
}

// At start: the helper opens the device first, waited for up to kProbeAnswerS while a stop
// signal ends the wait. kOk: open it here. Returns -1 to carry on (opened_ says whether the
// device is open; err_ why not), else the exit code.
int DaemonRun::probe_at_start(bool auto_kind, bool& opened) {
  opened = false;
  std::string e;
  server_probe_ = start_device_probe(bc_, auto_kind, e);
  if (!server_probe_) {  // no helper: open in-process as before (the server is not asked first)
    spdlog::warn("cannot ask the audio server first ({}): opening the device directly", e);
    if (auto_kind && audio::list_output_devices(bc_.quiet_alsa).empty()) {
      probe_said_no_device();
      return -1;
    }
    bc_.kind = "portaudio";
    backend_ = audio::make_portaudio_backend(bc_);
    opened = open_guarded(true, false, err_);
    return stop_signal_ != 0 ? stopped_at_start() : -1;
  }
  // The helper's teardown is not waited for (it overlaps the open here: ≈ 50 ms of a start on
  // JACK); it ends by itself and is reaped by the main loop (reap_probes).
  bool stopped = false, answered = false;
  FileJob::Status st = server_probe_->wait(
      kProbeAnswerS,
      [this, &answered](int ms) {
        answered = answered_early(*server_probe_);
        return !answered && wait_unless_stopped(ms, "while the audio server was asked");
      },
      &stopped);
  if (answered && st == FileJob::Status::kRunning) {
    stopped = false;
    st = FileJob::Status::kOk;
    ending_probes_.push_back(std::move(server_probe_));
  }
  if (stopped) {
    spdlog::info("stopping ({}): before the audio started", stop_reason_);
    return 0;
  }
  if (st == FileJob::Status::kMissing && auto_kind) {
    server_probe_.reset();
    probe_said_no_device();
    return -1;
  }
  bc_.kind = "portaudio";
  backend_ = audio::make_portaudio_backend(bc_);
  if (st == FileJob::Status::kRunning) {  // kept: retry_device looks at it on each pass
    err_ = not_answering(server_probe_->seconds());
    device_configured_ = true;            // a server that is there but stuck: waited for, whatever the flags
    device_.set_attempts(attempts_ = 1);  // the main loop's first attempt, said already
    probe_said_stuck_ = true;
    return -1;
  }
  const std::string said = server_probe_ ? server_probe_->output() : std::string();
  server_probe_.reset();
  if (st != FileJob::Status::kOk) {
    err_ = said.empty() ? std::string("the audio device could not be opened") : said;
    return -1;
  }
  opened = open_guarded(true, false, err_);
  return stop_signal_ != 0 ? stopped_at_start() : -1;
}

void DaemonRun::probe_said_no_device() {
  spdlog::warn(
      "PortAudio has no output device: using the null backend (no sound). "
      "Use --backend portaudio to insist, or --list-devices to see what PortAudio sees.");
  bc_.kind = "null";
}

int DaemonRun::stopped_at_start() {
  stop_reason_ = std::string(stop_signal_ == SIGINT ? "SIGINT" : "SIGTERM") + " while the device was opened";
  spdlog::info("stopping ({}): before the audio started", stop_reason_);
  return 0;
}

std::string DaemonRun::not_answering(double seconds) const {
  return fmt::format("the audio server does not answer (opening the device has waited {:.1f} s for it)", seconds);
}

// One look at the helper asking the server for a retry of the device (retry_device starts it).
// kRunning while it waits; past kProbeAnswerS the device's reason says the server does not answer
// (once), so the status and the health line say why nothing plays.
FileJob::Status DaemonRun::look_at_probe(std::string& error) {
  const FileJob::Status st = server_probe_->poll();
  if (st == FileJob::Status::kRunning) {
    if (!probe_said_stuck_ && server_probe_->seconds() >= kProbeAnswerS) {
      probe_said_stuck_ = true;
      const std::string why = not_answering(server_probe_->seconds());
      device_.set_reason(why);
      spdlog::warn("audio device {} (attempt {}): {} — waiting for it; OSC and the web monitor answer meanwhile",
                   device_.state() == control::DeviceState::kWaiting ? "not there yet" : "not back yet", attempts_,
                   why);
      systemd_.status(fmt::format("waiting for the audio server ({}), attempt {}", why, attempts_));
    }
    if (server_probe_->seconds() < kProbeGiveUpS) return st;
    // Given up on (killed, reaped by later passes): the next attempt asks with a fresh helper.
    // probe_said_stuck_ stays: its warning is not repeated for each helper.
    error = not_answering(server_probe_->seconds());
    drop_probe();
    return FileJob::Status::kFailed;
  }
  error = server_probe_->output();
  if (error.empty() && st != FileJob::Status::kOk) error = "the audio device could not be opened";
  server_probe_.reset();
  probe_said_stuck_ = false;
  return st;
}

// The stream is open but has not called back for 1 s. A server that died ends it (lost()); one
// that is frozen does not, and plays on when it runs again: a fresh image would only wait in
// its open for as long (and 1.2-s stalls every 2 s made 8 re-execs in 20 s). So the server is
// asked in the helper: it answers and still no callback (0.5 s more) — the stream is broken,
// hand over; the helper fails — the device or server is gone, hand over; it does not answer
// within kStallProbeAnswerS — the device is lost ("the audio server does not answer") and the
// stream kept until the callbacks come again (end_stall). Returns why to hand over, or "".
std::string DaemonRun::stall_verdict(Clock::time_point now) {
  const double s = std::chrono::duration<double>(now - stall_since_).count();
  if (!stalled_) {
    stalled_ = true;
    answered_at_.reset();
    inst_->post([this] { inst_->router().beat_away(); });  // from the last callback, with wall time
    log_stall_summary(now, false);
    stall_loud_ = stall_log_.begin(seconds_since_start(now));
    if (stall_loud_) {
      spdlog::info("no callback from the audio device for {:.1f} s: asking the audio server whether it answers", s);
    }
    stall_probe_at_ = now;
  }
  if (answered_at_) {
    if (now - *answered_at_ < std::chrono::milliseconds(500)) return {};
    return fmt::format("no callback for {:.1f} s while the audio server answers", s);
  }
  if (!server_probe_) {  // the first of this stall, or a fresh one after a helper given up on
    if (now < stall_probe_at_) return {};
    std::string e;
    server_probe_ = start_device_probe(bc_, false, e);
    if (!server_probe_) return fmt::format("no callback for {:.1f} s (the audio server cannot be asked: {})", s, e);
    return {};
  }
  const FileJob::Status st = server_probe_->poll();
  if (st == FileJob::Status::kRunning) {
    if (device_.state() == control::DeviceState::kRunning && server_probe_->seconds() >= kStallProbeAnswerS) {
      const std::string why = fmt::format("the audio server does not answer (no callback for {:.1f} s)", s);
      device_.set_lost(why, stall_since_);  // lost since its last callback, not since this verdict
      if (stall_loud_) {
        spdlog::error(
            "the audio device stopped: {} — keeping the stream and the state; playing on when the server answers "
            "again; OSC and the web monitor answer meanwhile",
            why);
      }
      systemd_.status("audio device lost (" + why + "), waiting for the audio server");
    }
    if (server_probe_->seconds() >= kProbeGiveUpS) {  // killed and reaped; a fresh one asks again
      drop_probe();
      stall_probe_at_ = now + std::chrono::milliseconds(static_cast<int>(kProbeAgainS * 1000));
    }
    return {};
  }
  const std::string said = server_probe_->output();
  server_probe_.reset();
  if (st == FileJob::Status::kOk) {
    answered_at_ = now;
    return {};
  }
  return fmt::format("no callback for {:.1f} s; {}", s, said.empty() ? "the audio device could not be opened" : said);
}

// Callbacks again after a stall: the same stream plays on. Its lines are logged when the stall's
// were (StallLog: the first, then once an hour; the others counted in a summary).
void DaemonRun::end_stall(Clock::time_point now, Clock::time_point last_callback) {
  stalled_ = false;
  inst_->post([this] { inst_->router().beat_back(); });  // the grid kept its phase with wall time
  answered_at_.reset();
  drop_probe();
  const double s = std::chrono::duration<double>(now - last_callback).count();
  const bool lost = device_.state() != control::DeviceState::kRunning;
  stall_log_.end(s, lost);
  if (!lost) {
    if (stall_loud_) spdlog::warn("the audio device stalled for {:.1f} s (no callback) and plays on{}", s, kStallsNext);
    return;
  }
  device_.set_running();
  if (stall_loud_) {
    spdlog::warn("audio device back after {:.1f} s: the audio server answers again and the stream plays on{}", s,
                 kStallsNext);
  }
  systemd_.status("audio device back: " + backend_->describe());
}

// The stalls counted since the last line, when StallLog says it is time (each main-loop pass), or
// `now_anyway` (the stream is handed over: the new image does not know them).
void DaemonRun::log_stall_summary(Clock::time_point now, bool now_anyway) {
  const double wall_now = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  const std::string line = stall_log_.summary(seconds_since_start(now), now_anyway, wall_now);
  if (!line.empty()) spdlog::warn("{}", line);
}

double DaemonRun::seconds_since_start(Clock::time_point now) const {
  return std::chrono::duration<double>(now - started_).count();
}

}  // namespace stemd::app
