// Waiting timed starts in the state file and the hand-over (state.hpp: StateVoice::start_unix).
// Engine frames are this image's (the stream clock counts from 0 at each start); what crosses a
// restart or a hand-over is the wall-clock time the start is heard at, as a bundle's timetag says
// it: the new image maps it back to its own frames through its own stream clock and latency.
#include "state.hpp"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <ctime>

namespace stemd::app {

namespace {

double clock_ns(clockid_t id) {
  timespec ts{};
  clock_gettime(id, &ts);
  return static_cast<double>(ts.tv_sec) * 1e9 + static_cast<double>(ts.tv_nsec);
}

}  // namespace

double heard_unix_time(const control::Controller& ctl, const control::Router& router, std::int64_t frame) {
  const double rendered = ctl.monotonic_at_frame(frame);  // CLOCK_MONOTONIC ns
  if (rendered < 0) return 0;
  const double heard = rendered + std::max(0.0, router.config().output_latency_s) * 1e9;
  // Monotonic → wall: the two clocks read together now (an NTP step later moves the wall time, as
  // it moves a client's timetags).
  const double mono_now = clock_ns(CLOCK_MONOTONIC), wall_now = clock_ns(CLOCK_REALTIME);
  return (wall_now + (heard - mono_now)) * 1e-9;
}

std::string time_prefix(double unix_s) {
  char buf[48];
  std::snprintf(buf, sizeof buf, "@%.6f ", unix_s);
  return buf;
}

bool take_time_prefix(std::string& line, std::uint64_t& timetag, std::string& error) {
  timetag = control::kOscImmediately;
  if (line.empty() || line[0] != '@') return true;
  const std::size_t space = line.find_first_of(" \t");
  const std::string word = line.substr(1, space == std::string::npos ? std::string::npos : space - 1);
  char* end = nullptr;
  errno = 0;
  const double t = std::strtod(word.c_str(), &end);
  // Between 1970 and 2100: NTP's era 0 (which ends in 2036) and beyond, as the timetags.
  if (word.empty() || end != word.c_str() + word.size() || errno != 0 || !(t > 0 && t < 4102444800.0) ||
      space == std::string::npos) {
    error = "\"@" + word + "\" is not a start time (\"@UNIX_SECONDS /address args…\")";
    return false;
  }
  const std::size_t rest = line.find_first_not_of(" \t", space);
  if (rest == std::string::npos) {
    error = "a start time without a message";
    return false;
  }
  timetag = control::unix_seconds_to_ntp(t);
  line = line.substr(rest);
  return true;
}

bool drop_time_passed(control::OscMessage& m, control::Router& router) {
  if (m.timetag == control::kOscImmediately || m.timetag == 0) return false;
  if (router.timetag_ahead(m)) return false;
  m.timetag = control::kOscImmediately;
  return true;
}

}  // namespace stemd::app
