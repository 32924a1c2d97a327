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

// The advice given in full once an hour per cause (its words, numbers aside); meanwhile a warning
// of the same cause refers to it. A marginal DAC glitching once a second wrote ≈ 600 bytes of the
// same sentence each time: ≈ 50 MB a day to an SD card's journal (outside pass 26, user L6).
class AdviceRepeat {
 public:
  static constexpr double kEverySeconds = 3600;
  // `advice` as to log it now (`now_s`: seconds on any steady clock).
  std::string next(const std::string& advice, double now_s);

 private:
  std::string key_;  // the last advice given in full, digits dropped
  double at_s_ = 0;
};

// Whether the window's only glitch is the null backend's pacing thread waking late while stemd's
// callback kept its time: nothing is heard, nothing was lost, so the health line is information,
// not a warning (new-user pass 21: eight warnings in 2.5 minutes on a busy machine).
bool only_pacing_late(const GlitchWindow& w);

// The health warning's callback times: the window's beside the maximum since start, each named
// (new-user pass 23: "max 9254 µs of 10667 µs budget" — since start — read beside "used at most
// 3 % of its budget" — this second — on one line). `p50_ns` is the window's.
std::string callback_times(const GlitchWindow& w, std::uint64_t p50_ns, std::uint64_t max_since_start_ns);

// The periodic health line's facts (health.cpp, every --health-interval and with --watch).
struct HealthLine {
  std::uint64_t voices = 0;
  double cpu_pct = 0;       // the whole process over the last second, % of ONE core (above 100 on several)
  double callback_pct = 0;  // the audio callback's share of the same second, % of one core
  std::string rt_policy;    // the audio thread's scheduling ("SCHED_FIFO 70"); "" until it has run
  std::uint32_t lowest_ring_fill_pct = 100;
  std::uint64_t voice_underruns = 0, device_underflows = 0;
  double resident_bytes = 0;  // VmRSS
  // The device: DeviceStatus::describe() ("running", "running on the null backend (…)"), and when
  // it is not running, whether it never opened yet (waiting) or was lost, for how long (seconds of
  // wall time), the last attempt's error, the attempts so far and the device configured (--device).
  std::string device = "running";
  bool device_running = true;
  bool device_waiting = false;
  double device_away_s = 0;
  std::string device_reason;
  std::uint64_t device_attempts = 0;
  std::string device_name;
  // Descriptors (fd_budget.hpp): open now, the limit, the reserve (fds_limit 0: not known), and
  // the streamed loads refused for them in the last `fds_refused_window_s` seconds of wall time
  // (since the last health line).
  std::int64_t fds_open = 0, fds_limit = 0, fds_reserve = 0;
  std::uint64_t fds_refused = 0;
  double fds_refused_window_s = 0;
  // The Link session's peers (Router::link_peers_now); -1 without --link (new-user pass 26, M3:
  // a box that lost its peers went on writing the same health line).
  int link_peers = -1;
};

// The health line's open-file part, when streamed sources are short of descriptors — fewer than
// a tenth of what the reserve leaves them, or a load refused in the window: "open files: 75 of
// 100 in use, a reserve of 25 kept: 3 streamed loads refused in the last 60 s; raise
// LimitNOFILE …" (new-user pass 25: the line said nothing while loads were refused). "" else.
std::string open_files_trouble(const HealthLine& h);

// "3 voices, CPU 1.1% of one core (audio callback 0.7%), SCHED_FIFO 70, lowest ring fill 100%, voice
// underruns 0, device underflows 0, memory 54.9 MiB resident, device running" — or, while the
// device is missing (not there yet, or lost), that first: "device 'usb' not there yet (waiting
// 3.1 s: …; attempt 4, retrying): nothing plays until it appears; 0 voices, CPU 1.4% of one core,
// memory 33.1 MiB resident" — not "0 voices, … unknown, … device waiting" (new-user pass 24).
// Descriptors short (open_files_trouble) come next, before the voices, as a missing device does.
// With --link, the peers last: "…, device running, Link: 1 peer".
std::string health_summary(const HealthLine& h);

}  // namespace stemd::app
