// What a client sends, made safe for the log [base: any layer; io, control and app use it].
//
//   log_escape():  every client string that reaches a log line goes through it. Control
//                  characters (C0, DEL, C1), backslashes and invalid UTF-8 become visible
//                  escapes (\n, \x1b, \u009b, \\), so a string cannot start a forged line, move
//                  the cursor or recolour a terminal; long strings are cut (with their length).
//   LogLimiter:    at most `burst` lines per kind in any `period`; the rest are counted, and the
//                  next line of that kind (or flush(), called from the server loop) says how many
//                  were suppressed: "… and 1234 more suppressed".
// Thread: [control] (LogLimiter is not thread-safe; log_escape is a pure function).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>

namespace stemd::base {

inline constexpr std::size_t kLogStringMax = 200;  // bytes of a client string kept in a log line

// The string as one printable line: valid UTF-8 kept, everything else escaped; longer than
// `max_bytes` (of input) → cut, with "…(N bytes)" appended.
std::string log_escape(std::string_view s, std::size_t max_bytes = kLogStringMax);

class LogLimiter {
 public:
  using Clock = std::chrono::steady_clock;
  explicit LogLimiter(int burst = 5, Clock::duration period = std::chrono::seconds(1))
      : burst_(burst), period_(period) {}

  // Whether a line of `kind` may be logged now. When it may and lines of that kind were
  // suppressed before, `suppressed` says how many (the caller appends it to its line).
  bool allow(const std::string& kind, std::uint64_t& suppressed, Clock::time_point now = Clock::now());
  // The same for a kind whose lines are informational (a voice that ended, a /dummy): its
  // "… more suppressed" summary is then logged at info too, not as a warning.
  bool allow_info(const std::string& kind, std::uint64_t& suppressed, Clock::time_point now = Clock::now());
  bool informational(const std::string& kind) const;
  // For kinds quiet for a whole period with lines still suppressed: calls emit(kind, count) and
  // forgets them. Call once per server pass.
  void flush(const std::function<void(const std::string&, std::uint64_t)>& emit, Clock::time_point now = Clock::now());
  std::uint64_t suppressed_total() const { return suppressed_total_; }

 private:
  struct Kind {
    Clock::time_point window{};
    int lines = 0;
    std::uint64_t suppressed = 0;
    bool info = false;  // its lines are informational (allow_info)
  };
  int burst_;
  Clock::duration period_;
  std::map<std::string, Kind> kinds_;  // a handful of fixed kinds: bounded by the code, not clients
  std::uint64_t suppressed_total_ = 0;
};

// " (… and N more suppressed)" or "".
std::string suppressed_note(std::uint64_t n);

}  // namespace stemd::base
