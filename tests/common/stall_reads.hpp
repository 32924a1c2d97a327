// A fault injector for tests (io::FaultInjector, installed with io::ScopedFaultInjector): the first
// read of a file whose path ends in `suffix` sleeps `delay` first — a share or a disk that stalls
// once.
#pragma once

#include "io/sound_file.hpp"

#include <atomic>
#include <chrono>
#include <string>

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

}  // namespace stemd::test
