// The audio server's stalls, logged in full once an hour and summed up meanwhile (stall_log.hpp).
#include "stall_log.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <ctime>

namespace stemd::app {

bool StallLog::begin(double now_s) {
  began_s_ = now_s;
  loud_ = !any_ || now_s - full_at_s_ >= kFullEverySeconds;
  if (loud_) {
    any_ = true;
    full_at_s_ = line_at_s_ = now_s;
  }
  return loud_;
}

void StallLog::end(double seconds, bool lost) {
  if (loud_) {
    loud_ = false;
    return;
  }
  shortest_s_ = counted_ == 0 ? seconds : std::min(shortest_s_, seconds);
  if (counted_ == 0 || seconds > longest_s_) {
    longest_s_ = seconds;
    longest_began_s_ = began_s_;
  }
  ++counted_;
  ++quiet_total_;
  if (lost) ++counted_lost_;
}

std::string StallLog::summary(double now_s, bool now_anyway, double wall_now_s) {
  if (counted_ == 0) return {};
  if (!now_anyway && now_s - line_at_s_ < kSummaryEverySeconds && now_s - full_at_s_ < kFullEverySeconds) return {};
  std::string lengths = counted_ == 1 ? fmt::format("{:.1f} s", shortest_s_)
                                      : fmt::format("{:.1f} to {:.1f} s each", shortest_s_, longest_s_);
  if (wall_now_s > 0) {
    const auto at = static_cast<std::time_t>(wall_now_s - (now_s - longest_began_s_));
    std::tm tm{};
    localtime_r(&at, &tm);
    lengths += fmt::format("; {} at {:02}:{:02}:{:02}", counted_ == 1 ? "it began" : "the longest began", tm.tm_hour,
                           tm.tm_min, tm.tm_sec);
  }
  std::string line = fmt::format(
      "the audio device stalled {} more time{} in the last {:.0f} s (no callback for {}) and the stream played on "
      "after each",
      counted_, counted_ == 1 ? "" : "s", now_s - line_at_s_, lengths);
  if (counted_lost_ > 0) {
    line += fmt::format("; in {} of them the audio server did not answer (the device counted lost meanwhile)",
                        counted_lost_);
  }
  if (underflows_ > 0) {
    line += fmt::format("; {} device underflow{} came with them (not warned of one by one)", underflows_,
                        underflows_ == 1 ? "" : "s");
  }
  counted_ = counted_lost_ = underflows_ = 0;
  line_at_s_ = now_s;
  return line;
}

}  // namespace stemd::app
