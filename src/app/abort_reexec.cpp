// The SIGABRT handler armed while PortAudio opens the device (abort_reexec.hpp). [main] arms and
// disarms it; the handler runs on whichever thread aborted.
#include "abort_reexec.hpp"

#include "audio/backend.hpp"
#include "daemon_run.hpp"

#include <spdlog/spdlog.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <future>
#include <memory>

#include <linux/close_range.h>
#include <unistd.h>

extern char** environ;

namespace stemd::app {

namespace {

struct Target {
  char** argv;
  char** envp;
};

// The armed target (null: not armed). One at a time: opens are made by the main thread only.
std::atomic<Target*> g_target{nullptr};
Target g_slot{};
static_assert(std::atomic<Target*>::is_always_lock_free, "read in a signal handler");

// Async-signal-safe only: dup2, write, close_range, execve.
extern "C" void reexec_on_abort(int) {
  const Target* t = g_target.load(std::memory_order_acquire);
  if (t == nullptr) return;  // disarmed meanwhile: abort() goes on and the process ends, as it did
  audio::restore_stderr();   // PortAudio's Pa_Initialize may have silenced it
  static constexpr char kLine[] =
      "stemd: PortAudio aborted while the audio device was being opened (its audio server went away): stemd "
      "starts again in a fresh image (same PID)\n";
  [[maybe_unused]] const ssize_t w = ::write(2, kLine, sizeof kLine - 1);
  close_range(3, ~0U, CLOSE_RANGE_CLOEXEC);  // sockets, the dead server's, sound files
  execve("/proc/self/exe", t->argv, t->envp);
  // exec failed: returning lets abort() end the process, as it did before
}

std::string name_of(const std::string& line) { return line.substr(0, line.find('=')); }

}  // namespace

AbortReexec::AbortReexec(char** argv, const std::vector<std::string>& set, std::string hand_over)
    : argv_(argv), hand_over_(std::move(hand_over)) {
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    const std::string line = *e;
    bool replaced = false;
    for (const std::string& s : set) replaced = replaced || name_of(s) == name_of(line);
    if (!replaced) env_.push_back(line);
  }
  env_.insert(env_.end(), set.begin(), set.end());
  for (std::string& s : env_) envp_.push_back(s.data());
  envp_.push_back(nullptr);
  g_slot = Target{argv_, envp_.data()};
  g_target.store(&g_slot, std::memory_order_release);
  struct sigaction sa {};
  sa.sa_handler = reexec_on_abort;
  sigemptyset(&sa.sa_mask);
  // SA_NODEFER: SIGABRT is not blocked in the handler, so not in the new image either (exec
  // keeps the mask). SA_RESETHAND: an exec that fails ends the process by the default action.
  sa.sa_flags = SA_NODEFER | SA_RESETHAND;
  sigaction(SIGABRT, &sa, &old_);
}

AbortReexec::~AbortReexec() {
  sigaction(SIGABRT, &old_, nullptr);
  g_target.store(nullptr, std::memory_order_release);
  remove_handoff(hand_over_);
}

// ---- the daemon's side ----

// [main] Just before PortAudio opens the device in-process (open_guarded). A resumed image (a
// device hand-over's: the only kind that retries a lost device) prepares its hand-over now — the
// capture on the control thread, which goes on answering OSC while the device opens — so a fresh
// image takes over from it should PortAudio abort. An image that has not been handed anything
// (the start, or waiting for its device since the start) is started again as it was: its start
// flags, its state file. Null when the hand-over could not be prepared: then an abort ends stemd,
// as before, and the log says so first.
std::unique_ptr<AbortReexec> DaemonRun::arm_for_open() {
  if (!resume_.active || !inst_) {
    spdlog::default_logger()->flush();
    const std::string again = std::string(kAbortRestartVar) +
                              "=PortAudio aborted while the audio device was being opened (its audio " +
                              "server went away)";
    return std::make_unique<AbortReexec>(argv_, std::vector<std::string>{again}, std::string());
  }
  const std::string why =
      "the audio server went away while stemd was opening the device again, and PortAudio aborted: a fresh image "
      "took over";
  const auto t0 = std::chrono::steady_clock::now();
  auto captured = std::make_shared<std::promise<Handed>>();
  std::future<Handed> done = captured->get_future();
  inst_->post([this, captured, why] { captured->set_value(capture_handover(why)); });
  std::string e;
  if (done.wait_for(std::chrono::seconds(1)) != std::future_status::ready) {
    e = "the control thread did not answer within 1 s";
  } else {
    Handed h = done.get();
    if (write_handover(h, e)) {
      std::vector<std::string> set = resume_env_lines(h.r);
      set.push_back("STEMD_RESUME_SUBSCRIBERS=" + h.subscribers);
      set.push_back("STEMD_RESUME_HELPERS=" + helpers_left());
      spdlog::debug("hand-over prepared before the device's open, should PortAudio abort in it ({:.1f} ms)",
                    std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
      spdlog::default_logger()->flush();
      return std::make_unique<AbortReexec>(argv_, set, h.r.state_path);
    }
  }
  spdlog::warn(
      "cannot prepare a hand-over before opening the device ({}): should its server go away meanwhile, "
      "PortAudio's abort ends stemd",
      e);
  return nullptr;
}

}  // namespace stemd::app
