// accept() out of descriptors (EMFILE, ENFILE) or kernel memory [the thread of its listener: the
// OSC server's, the web monitor's]. The connection stays pending, so its listener stays readable:
// trying again at once spun the thread (outside pass 24: 0.53 and 0.65 of a core). Tries are
// spaced 100 ms, doubling to 1 s (back to 100 ms after an accept that worked); an episode is said
// once when it starts, and once when no try has failed for 10 s.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>

namespace stemd::control {

class AcceptBackoff {
 public:
  using Clock = std::chrono::steady_clock;
  static constexpr std::chrono::seconds kQuiet{10};

  // A try failed at `now`: how long to wait before the next; `first` whether it starts an episode.
  Clock::duration failed(Clock::time_point now, bool& first) {
    first = failures_ == 0;
    if (first) since_ = now;
    ++failures_;
    last_ = now;
    wait_ = std::min<std::chrono::milliseconds>(std::chrono::seconds(1),
                                                wait_.count() == 0 ? std::chrono::milliseconds(100) : 2 * wait_);
    return wait_;
  }
  void succeeded() { wait_ = std::chrono::milliseconds(0); }
  // True once, kQuiet after an episode's last failure: `failures` tries failed over `seconds`.
  bool ended(Clock::time_point now, std::uint64_t& failures, double& seconds) {
    if (failures_ == 0 || now - last_ < kQuiet) return false;
    failures = failures_;
    seconds = std::chrono::duration<double>(last_ - since_).count();
    failures_ = 0;
    return true;
  }

 private:
  std::chrono::milliseconds wait_{0};
  std::uint64_t failures_ = 0;  // in this episode
  Clock::time_point since_{}, last_{};
};

}  // namespace stemd::control
