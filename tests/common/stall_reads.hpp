// A fault injector for tests (io::FaultInjector, installed with io::ScopedFaultInjector): the first
// read of a file whose path ends in `suffix` sleeps `delay` first — a share or a disk that stalls
// once.
#pragma once

#include "io/sound_file.hpp"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>

namespace stemd::test {

class StallFirstRead : public io::FaultInjector {
 public:
  StallFirstRead(std::string suffix, std::chrono::milliseconds delay) : suffix_(std::move(suffix)), delay_(delay) {}
  io::ReadFault on_read(const std::string& path, std::int64_t, std::int64_t) noexcept override {
    io::ReadFault f;
    if (path.size() >= suffix_.size() && path.compare(path.size() - suffix_.size(), suffix_.size(), suffix_) == 0 &&
        !stalled_.exchange(true)) {
      f.delay_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(delay_).count();
    }
    return f;
  }

 private:
  std::string suffix_;
  std::chrono::milliseconds delay_;
  std::atomic<bool> stalled_{false};
};

// Holds every read of the files it matches (by path: those under a directory, or those ending in
// a suffix) while closed — a share or disk whose server stopped answering — for at most 10 s each;
// counts the reads it held, and those it holds now. not_on_this_thread(): reads on the calling
// thread pass (a test that opens and prefills streams itself while the loader's reads are held).
class HoldReads : public io::FaultInjector {
 public:
  static HoldReads under(const std::string& dir) { return HoldReads(dir + "/", true); }
  static HoldReads ending(std::string suffix) { return HoldReads(std::move(suffix), false); }
  HoldReads(const HoldReads& o) : match_(o.match_), prefix_(o.prefix_), skip_(o.skip_) {}
  ~HoldReads() override { open(); }
  void close() {
    std::lock_guard g(m_);
    closed_ = true;
  }
  void open() {
    {
      std::lock_guard g(m_);
      closed_ = false;
    }
    cv_.notify_all();
  }
  int held() const {  // since it was made
    std::lock_guard g(m_);
    return held_;
  }
  int held_now() const {  // waiting in on_read() now
    std::lock_guard g(m_);
    return held_now_;
  }
  HoldReads& not_on_this_thread() {
    std::lock_guard g(m_);
    skip_ = std::this_thread::get_id();
    return *this;
  }
  bool gave_up() const {  // a read was let go after 10 s, not opened
    std::lock_guard g(m_);
    return gave_up_;
  }
  io::ReadFault on_read(const std::string& path, std::int64_t, std::int64_t) noexcept override {
    const bool hit =
        prefix_ ? path.compare(0, match_.size(), match_) == 0
                : path.size() >= match_.size() && path.compare(path.size() - match_.size(), match_.size(), match_) == 0;
    if (!hit) return {};
    std::unique_lock l(m_);
    if (!closed_ || std::this_thread::get_id() == skip_) return {};
    ++held_;
    ++held_now_;
    if (!cv_.wait_for(l, std::chrono::seconds(10), [&] { return !closed_; })) gave_up_ = true;
    --held_now_;
    return {};
  }

 private:
  HoldReads(std::string match, bool prefix) : match_(std::move(match)), prefix_(prefix) {}
  std::string match_;
  bool prefix_;
  mutable std::mutex m_;
  std::condition_variable cv_;
  std::thread::id skip_;  // none: every thread's reads are held
  bool closed_ = false, gave_up_ = false;
  int held_ = 0, held_now_ = 0;
};

// Every read of the files whose path ends in `suffix` takes `delay` while `on` — a share that
// answers, slowly (a congested Wi-Fi NAS, SMB over a VPN); counts the reads it slowed.
class SlowReads : public io::FaultInjector {
 public:
  SlowReads(std::string suffix, std::chrono::milliseconds delay) : suffix_(std::move(suffix)), delay_(delay) {}
  io::ReadFault on_read(const std::string& path, std::int64_t, std::int64_t) noexcept override {
    io::ReadFault f;
    if (on.load() && path.size() >= suffix_.size() &&
        path.compare(path.size() - suffix_.size(), suffix_.size(), suffix_) == 0) {
      reads.fetch_add(1);
      f.delay_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(delay_).count();
    }
    return f;
  }
  std::atomic<bool> on{false};
  std::atomic<int> reads{0};

 private:
  std::string suffix_;
  std::chrono::milliseconds delay_;
};

}  // namespace stemd::test
