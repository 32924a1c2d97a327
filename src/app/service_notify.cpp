#include "service_notify.hpp"

#include <systemd/sd-daemon.h>

#include <cstdlib>

namespace stemd::app {

ServiceNotifier::ServiceNotifier() {
  active_ = std::getenv("NOTIFY_SOCKET") != nullptr;
  std::uint64_t usec = 0;
  if (active_ && sd_watchdog_enabled(0, &usec) > 0) watchdog_us_ = usec;
}

std::string notify_status_line(const std::string& status) {
  std::string out = status.substr(0, 512);
  for (char& c : out) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) c = ' ';
  }
  return out;
}

void ServiceNotifier::ready(const std::string& status) {
  if (!active_) return;
  sd_notifyf(0, "READY=1\nSTATUS=%s", notify_status_line(status).c_str());
}

void ServiceNotifier::status(const std::string& status) {
  if (!active_) return;
  sd_notifyf(0, "STATUS=%s", notify_status_line(status).c_str());
}

void ServiceNotifier::tick(std::uint64_t callbacks, bool device_lost) {
  if (watchdog_us_ == 0) return;
  const auto now = std::chrono::steady_clock::now();
  // Ping at half the interval, and only for a stream that made progress since the last ping.
  if (now - last_ping_ < std::chrono::microseconds(watchdog_us_ / 2)) return;
  if (callbacks == last_callbacks_ && !device_lost) return;
  last_callbacks_ = callbacks;
  last_ping_ = now;
  sd_notify(0, "WATCHDOG=1");
}

void ServiceNotifier::stopping() {
  if (!active_) return;
  sd_notify(0, "STOPPING=1\nSTATUS=stopping");
}

}  // namespace stemd::app
