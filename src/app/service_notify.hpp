// systemd integration [main]: the only file that includes <systemd/sd-daemon.h> (see .cpp).
//
// Under a Type=notify unit the daemon reports READY=1 once the device is open and the OSC
// socket bound, a one-line STATUS=, STOPPING=1 on shutdown, and WATCHDOG=1 pings — but only
// while the audio callback is advancing, so a stalled stream stops the pings and systemd
// restarts the service. Outside systemd (no NOTIFY_SOCKET) every call does nothing.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace stemd::app {

// STATUS='s text as one line: every control character (a newline above all, which would start
// another assignment — a file named "x\nWATCHDOG=trigger" made systemd restart the service: outside
// pass 30, F3) and DEL shown as a space, at most 512 bytes.
std::string notify_status_line(const std::string& status);

class ServiceNotifier {
 public:
  ServiceNotifier();
  bool active() const noexcept { return active_; }
  bool watchdog() const noexcept { return watchdog_us_ > 0; }
  void ready(const std::string& status);
  void status(const std::string& status);
  // Call often (≥ 4 times per watchdog interval) with the callback counter: pings only when
  // the counter moved since the last ping — or, while the device is known to be lost and
  // being retried (device_lost), whenever the main loop is alive.
  void tick(std::uint64_t callbacks, bool device_lost = false);
  void stopping();

 private:
  bool active_ = false;
  std::uint64_t watchdog_us_ = 0;
  std::uint64_t last_callbacks_ = 0;
  std::chrono::steady_clock::time_point last_ping_{};
};

}  // namespace stemd::app
