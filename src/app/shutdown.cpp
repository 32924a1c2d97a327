// The daemon's shutdown [main]: fade the master, stop the stream, join threads — bounded: from
// SIGTERM/SIGINT (or any other end of the main loop) stemd is gone within --shutdown-fade-ms +
// 2 s, whatever the audio API does. PortAudio's JACK host API waits forever in Pa_StopStream
// when the server died at the moment the signal arrived (both stopped by a system shutdown),
// and other steps could stall too. A watcher thread holds the deadline; the main thread names
// each step as it starts. If the deadline passes, the watcher logs which step did not finish,
// writes the last state queued for --state-file if the main thread had not saved it yet, and
// ends the process with _exit() and the status stemd would have returned.
#include "daemon_run.hpp"
#include "io/file_closer.hpp"

#include <spdlog/spdlog.h>

#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <functional>
#include <mutex>
#include <thread>

#include <unistd.h>

namespace stemd::app {

namespace {

class ShutdownDeadline {
 public:
  using Expired = std::function<void(const char* step, double seconds)>;
  ShutdownDeadline(std::chrono::milliseconds budget, Expired on_expiry)
      : budget_(budget), on_expiry_(std::move(on_expiry)) {
    thread_ = std::thread([this] { watch(); });
  }
  ~ShutdownDeadline() { disarm(); }
  ShutdownDeadline(const ShutdownDeadline&) = delete;
  ShutdownDeadline& operator=(const ShutdownDeadline&) = delete;

  void step(const char* what) { step_.store(what, std::memory_order_release); }
  const char* current() const { return step_.load(std::memory_order_acquire); }
  void disarm() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      done_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
  }

 private:
  void watch() {
    const auto start = std::chrono::steady_clock::now();
    std::unique_lock<std::mutex> lock(mu_);
    if (cv_.wait_until(lock, start + budget_, [this] { return done_; })) return;
    lock.unlock();
    on_expiry_(current(), std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }

  std::chrono::milliseconds budget_;
  Expired on_expiry_;
  std::atomic<const char*> step_{"starting the shutdown"};
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
  std::thread thread_;
};

// While the audio device is stopped and closed: PortAudio's JACK host API asserts (abort())
// when the server dies in the middle of Pa_StopStream/Pa_CloseStream ("CleanUpStream:
// Assertion `err == 0' failed"). The state is saved by then; the abort becomes the exit stemd
// was about to make, with one line saying why. Only async-signal-safe calls in the handler.
volatile sig_atomic_t g_abort_exit_status = 0;
extern "C" void exit_on_abort(int) {
  static const char kMsg[] =
      "stemd: the audio library aborted while the device was being closed (its server or interface went away "
      "meanwhile); the state was saved, exiting\n";
  [[maybe_unused]] const ssize_t n = write(2, kMsg, sizeof kMsg - 1);
  _exit(g_abort_exit_status);
}

}  // namespace

// The threads stuck in the file system (a hung share) that the shutdown leaves behind, named by
// what they wait on: "opener threads on 'a.wav' (lost); web listings on '/stems'; 2 closer threads in
// closes of files (0 more files waiting)" ("" when none).
std::string DaemonRun::stuck_in_file_system() const {
  std::string out;
  if (const std::string o = inst_->router().openers_running(); !o.empty()) out = "opener threads on " + o;
  if (const std::string l = web_ ? web_->listings_running() : std::string(); !l.empty())
    out += (out.empty() ? "" : "; ") + std::string("web listings on ") + l;
  if (const io::FileCloser::Stats c = io::FileCloser::process().stats(); c.stuck_now > 0) {
    out += (out.empty() ? "" : "; ") + std::to_string(c.stuck_now) + " closer thread" + (c.stuck_now > 1 ? "s" : "") +
           " in closes of files (" + std::to_string(c.waiting) + " more files waiting)";
  }
  return out;
}

int DaemonRun::shutdown() {
  std::atomic<bool> saving_started{false};
  std::atomic<int> exit_status{exit_code_};  // what the watcher exits with
  // Named before the watcher starts (it reads this copy): a step that hangs on one of them says so.
  const std::string stuck = stuck_in_file_system();
  log_stall_summary(Clock::now(), true);  // the audio server's stalls counted since the last line
  if (!stuck.empty())
    spdlog::info("shutdown ({}): not waiting for threads in the file system: {}", stop_reason_, stuck);
  ShutdownDeadline deadline(
      std::chrono::milliseconds(2000 + static_cast<long>(o_.shutdown_fade_ms)),
      [&, stuck](const char* step, double seconds) {
        spdlog::error("shutdown ({}): still {} after {:.1f} s — exiting without waiting for it{}{}", stop_reason_, step,
                      seconds,
                      bc_.kind == "portaudio" ? " (the audio device did not stop: its server or interface gone?)" : "",
                      stuck.empty() ? std::string() : " (threads in the file system at the start: " + stuck + ")");
        // Stuck before the state was saved (in the control thread's stop): write the last state
        // the control thread queued (at most a second old). Stuck inside the save: not again.
        if (state_ && !saving_started.load() && !stopped_in_restore_) {
          if (state_->save(0.5)) spdlog::info("state saved to {}", state_->path());
        }
        drop_resume_file();
        spdlog::default_logger()->flush();
        std::fflush(nullptr);
        _exit(exit_status.load());
      });
  systemd_.stopping();
  if (web_) {
    deadline.step("stopping the web monitor");
    web_->stop();  // before the control thread: the web server posts work to it
  }
  deadline.step("stopping the OSC server and the control thread");
  inst_->stop_control();  // the main thread is the control thread again
  // --state-file: the state as it is now, before the master fades out
  if (state_ && !stopped_in_restore_) {  // a restore cut short: the file stays as it was
    deadline.step("saving the state file");
    saving_started = true;
    state_->capture_now(inst_->controller(), inst_->router());
    // Up to 1 s for the write (a few kB and two fsyncs; a busy SD card can take hundreds of ms):
    // a file system that does not answer costs that second, then "NOT saved" and the exit.
    if (state_->save(1.0)) spdlog::info("state saved to {}", state_->path());
  }
  const std::uint64_t callbacks_before_fade = inst_->engine().metrics().callbacks.load();
  const auto fade_started = Clock::now();
  if (stop_reason_ == "SIGINT" || stop_reason_ == "SIGTERM" || stop_reason_ == "--duration reached") {
    deadline.step("fading out");
    fade_out(fade_started);
  }
  probe_device(callbacks_before_fade, fade_started);
  g_abort_exit_status = exit_code_;
  struct sigaction on_abort {
  }, default_abort{};
  on_abort.sa_handler = exit_on_abort;
  sigemptyset(&on_abort.sa_mask);
  if (bc_.kind == "portaudio") sigaction(SIGABRT, &on_abort, &default_abort);
  deadline.step(bc_.kind == "portaudio" ? "stopping the audio device (Pa_StopStream)" : "stopping the audio output");
  backend_->stop();
  deadline.step("stopping the loader thread");
  inst_->loader().stop();
  inst_->controller().service();
  log_summary();
  // A failed device, or a render whose output could not replace its target (it does so only now,
  // on success; otherwise it is removed), exits 3 — and so do the shutdown watcher and the abort
  // handler, should closing the device still hang or abort.
  if (exit_code_ == 0 && (backend_->failed() || !backend_->commit(err_))) {
    spdlog::error("{}", backend_->failed() ? backend_->failure() : err_);
    g_abort_exit_status = exit_status = exit_code_ = 3;
  }
  deadline.step(bc_.kind == "portaudio" ? "closing the audio device (Pa_Terminate)" : "closing the audio output");
  backend_.reset();
  if (bc_.kind == "portaudio") sigaction(SIGABRT, &default_abort, nullptr);
  deadline.disarm();
  return exit_code_;
}

// The master fades to silence over --shutdown-fade-ms; waits for the fade to play out (plus a
// period), bounded by the fade + 250 ms: a device that stopped calling back never plays it.
void DaemonRun::fade_out(Clock::time_point fade_started) {
  const auto& m = inst_->engine().metrics();
  if (!inst_->controller().set_master(control::kNow, 0.0f, o_.shutdown_fade_ms / 1000.0, err_) || bc_.kind == "render")
    return;
  const auto frames_then = m.frames.load();
  const auto need = static_cast<std::uint64_t>((o_.shutdown_fade_ms / 1000.0) * rate_) + o_.buffer_size;
  const auto until = fade_started + std::chrono::milliseconds(250 + static_cast<long>(o_.shutdown_fade_ms));
  while (m.frames.load() < frames_then + need && Clock::now() < until) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
}

// A stream whose device has gone (JACK server killed) never returns from Pa_StopStream: give it
// three periods (at least 100 ms) to call back once; if it does not, leave it.
void DaemonRun::probe_device(std::uint64_t callbacks_before_fade, Clock::time_point fade_started) {
  // A stream kept through a stall (its server frozen: device_probe.hpp) is still open: probed too.
  if (bc_.kind != "portaudio" || (device_.state() != control::DeviceState::kRunning && !stalled_)) return;
  const auto& m = inst_->engine().metrics();
  const auto probe = std::chrono::milliseconds(std::max<long>(100, static_cast<long>(3000.0 * o_.buffer_size / rate_)));
  while (m.callbacks.load() == callbacks_before_fade && Clock::now() < fade_started + probe) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  if (m.callbacks.load() == callbacks_before_fade) {
    spdlog::warn("shutdown: the audio device stopped calling back ({}): not waiting for it to stop",
                 backend_->describe());
    backend_->mark_lost();
  }
}

void DaemonRun::log_summary() {
  if (stopped_in_restore_) return;  // no audio yet: "stopping (…): before the audio started" said it
  const auto& m = inst_->engine().metrics();
  const auto hist = m.callback_ns.snapshot();
  const std::uint64_t max_ns = m.callback_max_ns.load();
  const double secs = std::chrono::duration<double>(Clock::now() - t_start_).count();
  const auto ls = inst_->loader().stats();
  spdlog::info(
      "stopped ({}): {:.1f} s of audio in {:.1f} s, callbacks={} voice_underruns={} device_underflows={} "
      "callback p50={} p99={} max={} (budget {:.0f} µs), loader reads={} read_errors={}",
      stop_reason_, static_cast<double>(m.frames.load()) / rate_, secs, m.callbacks.load(), m.voice_underruns.load(),
      m.device_underflows.load(), fmt_us(engine::DurationHistogram::percentile_ns(hist, 0.5, max_ns)),
      fmt_us(engine::DurationHistogram::percentile_ns(hist, 0.99, max_ns)), fmt_us(max_ns), budget_ms_ * 1000.0,
      ls.reads, ls.read_errors);
}

}  // namespace stemd::app
