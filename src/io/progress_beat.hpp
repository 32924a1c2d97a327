// A job's progress in the file system, for telling a slow file system from a stuck one.
//
// An opener job (control/load_pool.hpp: an OSC load, a play's stream open) owns a ProgressBeat and
// installs it on its thread for the job's length (ProgressScope). Every step of the job that
// returns from the file system bumps it: each read a SoundFile makes (and each size look-up
// libsndfile asks for) calls beat_progress(), which sets the beat of the thread's scope, if any,
// to now. So a share whose reads return, however slowly, or a FLAC decoded into memory on a slow
// CPU (its reads are interleaved with the decoding), keeps its beat moving; a call that does not
// return stops it. The control thread reads last_ns() and decides (control/router_loads.cpp).
//
// cancel(): the control thread has given the job up. A SoundFile read on its thread then fails at
// once (ECANCELED) instead of reaching the file system, so a given-up job that still gets answers
// (a slow share) stops at its next read and its thread comes back, rather than reading a whole
// file nobody waits for.
//
// Threads: beat(), the scope and beat_progress() [opener]; last_ns(), started(), cancel() and
// cancelled() any. Lock-free: two atomics.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

namespace stemd::io {

class ProgressBeat {
 public:
  // steady_clock's time of the last progress (ns since its epoch); 0 before the job started.
  std::int64_t last_ns() const noexcept { return last_.load(std::memory_order_acquire); }
  bool started() const noexcept { return last_ns() != 0; }
  std::chrono::steady_clock::time_point last() const noexcept {
    return std::chrono::steady_clock::time_point(
        std::chrono::duration_cast<std::chrono::steady_clock::duration>(std::chrono::nanoseconds(last_ns())));
  }
  void beat() noexcept {
    const auto now = std::chrono::steady_clock::now().time_since_epoch();
    const std::int64_t ns = std::chrono::duration_cast<std::chrono::nanoseconds>(now).count();
    last_.store(ns != 0 ? ns : 1, std::memory_order_release);
  }
  void cancel() noexcept { cancelled_.store(true, std::memory_order_release); }
  bool cancelled() const noexcept { return cancelled_.load(std::memory_order_acquire); }

 private:
  std::atomic<std::int64_t> last_{0};
  std::atomic<bool> cancelled_{false};
};

// The calling thread's beat (null: none — the loader thread, the control thread's own loads).
inline ProgressBeat*& this_thread_beat() noexcept {
  static thread_local ProgressBeat* beat = nullptr;
  return beat;
}

// [opener] Installs `beat` on this thread for the scope's length (and beats it: the job started).
class ProgressScope {
 public:
  explicit ProgressScope(ProgressBeat& beat) noexcept : prev_(this_thread_beat()) {
    this_thread_beat() = &beat;
    beat.beat();
  }
  ~ProgressScope() { this_thread_beat() = prev_; }
  ProgressScope(const ProgressScope&) = delete;
  ProgressScope& operator=(const ProgressScope&) = delete;

 private:
  ProgressBeat* prev_;
};

// A step in the file system returned: this thread's beat, if any, moves.
inline void beat_progress() noexcept {
  if (ProgressBeat* b = this_thread_beat(); b != nullptr) b->beat();
}

// This thread's job was given up (ProgressBeat::cancel): its reads should stop.
inline bool progress_cancelled() noexcept {
  const ProgressBeat* b = this_thread_beat();
  return b != nullptr && b->cancelled();
}

}  // namespace stemd::io
