// Whether a listening address is this machine's, over time (bind_watch.hpp).
#include "bind_watch.hpp"

#include <spdlog/spdlog.h>

#include <sys/socket.h>

#include <netinet/in.h>

namespace stemd::control {
namespace {

bool is_wildcard(const Endpoint& at) {
  if (at.family() == AF_INET) return reinterpret_cast<const sockaddr_in&>(at.addr).sin_addr.s_addr == INADDR_ANY;
  if (at.family() == AF_INET6) {
    const auto& a = reinterpret_cast<const sockaddr_in6&>(at.addr).sin6_addr;
    return IN6_IS_ADDR_UNSPECIFIED(&a);
  }
  return true;
}

constexpr auto kEvery = std::chrono::seconds(1);
constexpr auto kFirstReminder = std::chrono::minutes(1);
constexpr auto kReminder = std::chrono::minutes(10);

}  // namespace

BindWatch::BindWatch(std::string flag, std::string text, const Endpoint& at, std::string arrives, bool pending)
    : flag_(std::move(flag)),
      text_(std::move(text)),
      arrives_(std::move(arrives)),
      at_(at),
      watched_(!is_wildcard(at) && !at.is_loopback()),
      missing_(pending) {
  missing_since_ = Clock::now();
  next_reminder_ = missing_since_ + kFirstReminder;
}

bool BindWatch::check(Clock::time_point now) {
  if (!watched_ || now - checked_ < kEvery) return missing_;
  checked_ = now;
  const bool local = address_is_local(at_);
  if (local && missing_) {
    spdlog::info("{} {}: the address is configured now: {}", flag_, text_, arrives_);
    missing_ = false;
  } else if (!local && !missing_) {
    spdlog::warn("{} {}: no network interface has this address any more: nothing arrives until it is back", flag_,
                 text_);
    missing_ = true;
    missing_since_ = now;
    next_reminder_ = now + kFirstReminder;
  } else if (!local && now >= next_reminder_) {
    const auto minutes = std::chrono::duration_cast<std::chrono::minutes>(now - missing_since_).count();
    spdlog::warn(
        "{} {}: still no network interface has this address ({} min): nothing can reach it; check the address "
        "(`ip -brief address` lists this machine's)",
        flag_, text_, minutes);
    next_reminder_ = now + kReminder;
  }
  return missing_;
}

}  // namespace stemd::control
