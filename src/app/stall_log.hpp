// The log of an audio server that stalls and comes back [main]. Pure logic, unit-tested
// (tests/unit/stall_log_test.cpp).
//
// Each stall of the server (no callback for 1 s, the stream kept: device_probe.cpp) wrote two or
// three lines — asked, lost, back. A server stalling every 2 s for a week wrote ≈ 900,000 of them
// to an SD card's journal. So a stall's lines are logged in full for the first one and again once
// an hour (as the glitch advice, AdviceRepeat); the stalls meanwhile are counted, and a summary
// with their count, their lengths and how many lost the device is logged every 10 minutes while
// there are any. The device's state (/stemd/status, the health line) follows every stall as before;
// the device underflows that come with a counted stall are in its summary, not a health warning
// each (health.cpp).
#pragma once

#include <cstdint>
#include <string>

namespace stemd::app {

// Appended to the end line of a stall logged in full: what happens to the next ones.
inline constexpr const char* kStallsNext =
    " (further stalls are counted and summed up every 10 minutes; one is logged in full again an hour on)";

class StallLog {
 public:
  static constexpr double kFullEverySeconds = 3600;
  static constexpr double kSummaryEverySeconds = 600;
  // A stall began at `now_s` (seconds on a steady clock): true — log its lines; false — it is
  // only counted (end()).
  bool begin(double now_s);
  // The stall that began ended: `seconds` without a callback (of wall time); `lost`: the server did
  // not answer the helper within its bound, so the device was said lost meanwhile.
  void end(double seconds, bool lost);
  // The stalls counted since the last line, as a line to log — when kSummaryEverySeconds have
  // passed since the last line, when the next stall would be logged in full, or `now_anyway`;
  // "" when no stall was counted or it is not time.
  // `wall_now_s`: the same moment in seconds since the epoch (0: not said) — the summary then
  // says at what time of day the longest stall began (new-user pass 28, L6: a summary logged 10
  // minutes on did not say when the silence was).
  std::string summary(double now_s, bool now_anyway = false, double wall_now_s = 0);
  std::uint64_t counted() const { return counted_; }
  // Stalls only counted, since the start (a health tick tells a new one by it).
  std::uint64_t quiet_stalls() const { return quiet_total_; }
  // Device underflows that came with counted stalls (the health line's, not a warning each).
  void add_underflows(std::uint64_t n) { underflows_ += n; }

 private:
  bool any_ = false;
  bool loud_ = false;          // the stall under way is logged in full
  double full_at_s_ = 0;       // the last stall logged in full began then
  double line_at_s_ = 0;       // the last line (a full stall or a summary)
  std::uint64_t counted_ = 0;  // stalls ended since the last line, not logged
  std::uint64_t counted_lost_ = 0;
  std::uint64_t quiet_total_ = 0;
  std::uint64_t underflows_ = 0;  // since the last line
  double shortest_s_ = 0, longest_s_ = 0;
  double began_s_ = 0;          // the stall under way began then
  double longest_began_s_ = 0;  // the longest counted one began then
};

}  // namespace stemd::app
