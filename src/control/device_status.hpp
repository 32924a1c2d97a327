// The output device's health, shared between the daemon's main thread (which detects a lost
// device and reopens it) and the control thread (which tells subscribers and answers status).
// [main] writes, [control] reads; neither is the audio thread, so the reason string may take
// a mutex.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>

namespace stemd::control {

enum class DeviceState : int {
  kRunning = 0,  // the stream is calling back
  kLost = 1,     // it stopped; stemd keeps every voice where it was and retries with backoff
  kWaiting = 2,  // a configured device was not there at start; stemd retries it with backoff
};

inline const char* to_string(DeviceState s) {
  return s == DeviceState::kRunning ? "running" : s == DeviceState::kLost ? "lost" : "waiting";
}

class DeviceStatus {
 public:
  // `since`: when it was last heard (the last callback; a stall is judged lost only after it).
  void set_lost(const std::string& reason,
                std::chrono::steady_clock::time_point since = std::chrono::steady_clock::now()) {
    {
      std::lock_guard<std::mutex> g(mu_);
      reason_ = reason;
      lost_at_ = since;
    }
    losses_.fetch_add(1, std::memory_order_relaxed);
    state_.store(static_cast<int>(DeviceState::kLost), std::memory_order_release);
  }
  // A resumed image starts where the previous one was: lost since `lost_at` (the previous image's
  // steady clock, CLOCK_MONOTONIC, which an exec keeps; 0: now), after `losses` losses so far.
  void resume_lost(std::uint64_t losses, const std::string& reason, std::int64_t lost_at_ns = 0) {
    set_lost(reason);
    losses_.store(losses, std::memory_order_relaxed);
    if (lost_at_ns > 0) {
      std::lock_guard<std::mutex> g(mu_);
      lost_at_ = std::chrono::steady_clock::time_point(std::chrono::nanoseconds(lost_at_ns));
    }
  }
  // Not there yet at start (a late USB DAC, a JACK server started later). Not a loss; the reason
  // is the last attempt's error. The time counts from the first call.
  void set_waiting(const std::string& reason) {
    std::lock_guard<std::mutex> g(mu_);
    reason_ = reason;
    if (state() != DeviceState::kWaiting) lost_at_ = std::chrono::steady_clock::now();
    state_.store(static_cast<int>(DeviceState::kWaiting), std::memory_order_release);
  }
  // A new reason for the state it is in (lost or waiting), not a new loss: what the last attempt
  // found ("the audio server does not answer").
  void set_reason(const std::string& reason) {
    std::lock_guard<std::mutex> g(mu_);
    reason_ = reason;
  }
  void set_running() {
    {
      std::lock_guard<std::mutex> g(mu_);
      running_since_ = std::chrono::steady_clock::now();
      if (state() == DeviceState::kLost)
        last_loss_s_ = std::chrono::duration<double>(running_since_ - lost_at_).count();
    }
    state_.store(static_cast<int>(DeviceState::kRunning), std::memory_order_release);
  }
  void set_attempts(std::uint64_t n) { attempts_.store(n, std::memory_order_relaxed); }
  // Why nothing is heard although the output runs ("no audio output: --backend null"); empty for
  // a device. Set once at start, before the control thread runs.
  void set_output_note(const std::string& note) {
    std::lock_guard<std::mutex> g(mu_);
    output_note_ = note;
  }
  // The real-time scheduling the audio thread runs with, once known ("SCHED_FIFO 70", "SCHED_OTHER").
  void set_rt_policy(const std::string& p) {
    std::lock_guard<std::mutex> g(mu_);
    rt_policy_ = p;
  }

  DeviceState state() const { return static_cast<DeviceState>(state_.load(std::memory_order_acquire)); }
  std::uint64_t losses() const { return losses_.load(std::memory_order_relaxed); }
  std::uint64_t attempts() const { return attempts_.load(std::memory_order_relaxed); }
  std::string reason() const {
    std::lock_guard<std::mutex> g(mu_);
    return reason_;
  }
  std::string output_note() const {
    std::lock_guard<std::mutex> g(mu_);
    return output_note_;
  }
  // The device's state for the health line: "running", "lost", "waiting", or for the null
  // backend "running on the null backend (no audio output: --backend null)" — it runs, but
  // nothing is heard (the words "device running" stay, for the scripts that grep the log).
  std::string describe() const {
    const std::string note = output_note();
    if (note.empty() || state() != DeviceState::kRunning) return to_string(state());
    return "running on the null backend (" + note + ")";
  }
  std::string rt_policy() const {
    std::lock_guard<std::mutex> g(mu_);
    return rt_policy_.empty() ? std::string("unknown") : rt_policy_;
  }
  // The same, "" until the audio thread has run (the health line says so in words).
  std::string rt_policy_known() const {
    std::lock_guard<std::mutex> g(mu_);
    return rt_policy_;
  }
  // How long the device has been running since it last (re)opened; 0 when it is not.
  double up_seconds() const {
    if (state() != DeviceState::kRunning) return 0;
    std::lock_guard<std::mutex> g(mu_);
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - running_since_).count();
  }
  // When the current or last loss began (steady clock, ns since its epoch; 0: never lost): handed
  // over to the next image with the state.
  std::int64_t lost_at_ns() const {
    if (losses() == 0) return 0;
    std::lock_guard<std::mutex> g(mu_);
    return std::chrono::duration_cast<std::chrono::nanoseconds>(lost_at_.time_since_epoch()).count();
  }
  // The last loss, once the device runs again: how long ago it began and how long it lasted
  // (false while it is lost or waiting, or when it never was lost). A week-long show's status
  // says "lost 2 times, the last 0:21:03 ago, for 6.0 s" (outside pass 26, user M1).
  bool last_loss(double& ago_s, double& for_s) const {
    if (state() != DeviceState::kRunning || losses() == 0) return false;
    std::lock_guard<std::mutex> g(mu_);
    if (last_loss_s_ < 0) return false;
    ago_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - lost_at_).count();
    for_s = last_loss_s_;
    return true;
  }
  double lost_for_seconds() const {
    if (state() == DeviceState::kRunning) return 0;
    std::lock_guard<std::mutex> g(mu_);
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - lost_at_).count();
  }

 private:
  std::atomic<int> state_{static_cast<int>(DeviceState::kRunning)};
  std::atomic<std::uint64_t> losses_{0};
  std::atomic<std::uint64_t> attempts_{0};
  mutable std::mutex mu_;
  std::string reason_;
  std::string rt_policy_;
  std::string output_note_;
  std::chrono::steady_clock::time_point lost_at_{};
  std::chrono::steady_clock::time_point running_since_ = std::chrono::steady_clock::now();
  double last_loss_s_ = -1;  // how long the last loss lasted, once the device ran again (-1: not yet)
};

}  // namespace stemd::control
