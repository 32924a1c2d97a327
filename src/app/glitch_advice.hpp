// What the health warning advises when audio glitched in the last second [main]. Pure logic,
// unit-tested (tests/unit/glitch_advice_test.cpp).
#pragma once

#include <cstdint>
#include <string>

namespace stemd::app {

struct GlitchWindow {
  std::uint64_t voice_underruns = 0;    // new in the window: a stream's ring ran dry (the disk)
  std::uint64_t device_underflows = 0;  // new in the window: the device played a gap
  std::uint64_t callback_p99_ns = 0;    // stemd's audio callback in the window
  std::uint64_t callback_max_ns = 0;
  std::uint32_t buffer_size = 0;  // frames per callback
  double budget_ms = 0;           // output milliseconds one callback may take (buffer / rate)
  std::string device;             // "the device (JACK server)", what stemd plays on
  bool clock_paced = false;       // the null backend: no device, blocks paced by the system clock
  int stuck_reads = 0;            // loader threads stuck in a read that has not returned (a dead share)
  // The loader's slowest read lately, or the one under way, when it took longer than a stream's ring
  // holds (ms of wall time; 0: none) — before it is given up, or on a machine with one file system.
  double slow_read_ms = 0;
  double ring_ms = 0;  // what a stream's ring holds (--ring-ms), ms of the stream's audio
};

// The callback's own time is the cause of a device underflow when its slowest call in the
// window took this share of the budget, or its p99 half of it. Below: the device or its server
// was late (xruns of the JACK server, a USB hiccup, a busy machine) and a bigger buffer in stemd
// is not the remedy the log should give.
inline constexpr double kCallbackMaxCause = 0.8, kCallbackP99Cause = 0.5;

// " — …" to append to the health warning, or "" when nothing glitched.
std::string glitch_advice(const GlitchWindow& w);

// Whether the window's only glitch is the null backend's pacing thread waking late while stemd's
// callback kept its time: nothing is heard, nothing was lost, so the health line is information,
// not a warning (new-user pass 21: eight warnings in 2.5 minutes on a busy machine).
bool only_pacing_late(const GlitchWindow& w);

// The health warning's callback times: the window's beside the maximum since start, each named
// (new-user pass 23: "max 9254 µs of 10667 µs budget" — since start — read beside "used at most
// 3 % of its budget" — this second — on one line). `p50_ns` is the window's.
std::string callback_times(const GlitchWindow& w, std::uint64_t p50_ns, std::uint64_t max_since_start_ns);

}  // namespace stemd::app
