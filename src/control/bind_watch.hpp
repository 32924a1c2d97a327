// A listening address watched for whether the machine has it: bound before it existed
// (IP_FREEBIND: a Pi that starts before its DHCP lease), or taken away later (a lease lost, a
// cable unplugged). Once a second at most it says when the address appears and when it goes,
// and while it is missing repeats so after a minute, then every ten (a mistyped --osc-bind
// would otherwise leave one start-up line as the only clue). Wildcard addresses are not watched.
// One thread: whichever calls check() (the control thread for OSC, the network thread for the
// web monitor).
#pragma once

#include "net.hpp"

#include <chrono>
#include <string>

namespace stemd::control {

class BindWatch {
 public:
  using Clock = std::chrono::steady_clock;
  // `flag` and `text` as the user gave them ("--osc-bind", "192.0.2.1"); `arrives` what works
  // once the address is there ("OSC arrives"); `pending`: bound without the address (warned).
  BindWatch(std::string flag, std::string text, const Endpoint& at, std::string arrives, bool pending);
  BindWatch() = default;
  // Looks (at most once a second) and logs a change. Returns whether the address is missing.
  bool check(Clock::time_point now);
  bool missing() const { return missing_; }

 private:
  std::string flag_, text_, arrives_;
  Endpoint at_{};
  bool watched_ = false;
  bool missing_ = false;
  Clock::time_point checked_{}, missing_since_{}, next_reminder_{};
};

}  // namespace stemd::control
