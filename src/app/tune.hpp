// `stemd tune`: measures which buffer size this machine plays reliably, instead of trying sizes
// by hand as the tuning guide asks. For each size (128…2048 frames) it plays a synthetic load —
// N voices streamed from generated 16-bit WAV files through the loader thread's rings, mixed by
// the engine on the same backend the daemon would use — and counts voice underruns, device
// underflows, the callback's p99 against the period's budget and the process's CPU time.
//
// Threads: run_tune() runs on the main thread, which is also the control thread (it services
// the controller); the loader thread and the backend's audio thread are started and stopped
// once per size. The helpers below are pure and [any] thread.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace stemd::app {

// Runs `stemd tune` (argv[0] is "tune"); returns the exit code: 0 with a recommendation, 1 when
// no size was stable, 2 for bad arguments or a device that cannot be opened, 130 on SIGINT/SIGTERM.
int run_tune(int argc, char** argv);

// One measured buffer size.
struct TuneResult {
  std::uint32_t buffer_size = 0;
  int sample_rate = 0;
  std::uint64_t voice_underruns = 0;
  std::uint64_t device_underflows = 0;
  std::uint64_t callbacks = 0;
  std::uint64_t p99_ns = 0;
  double cpu_percent = 0;       // process CPU time ÷ wall time, in % of one core
  double output_latency_s = 0;  // what the backend reports (PortAudio: the host API's, e.g. JACK's)
  // The audio thread's scheduling while measured, raised as the daemon raises it (rt_priority.hpp):
  // "SCHED_FIFO 70", or "SCHED_OTHER" when real-time scheduling was not permitted (rt_refused: the
  // raise refused and why). Empty: not known (the thread was not seen).
  std::string scheduling;
  bool realtime = false;
  std::string rt_refused;
  double budget_ns() const { return 1e9 * buffer_size / sample_rate; }
};

// The rule: a size is stable when no voice underran, the device reported no underflow, and the
// callback's p99 stayed at or under `max_load` (a fraction) of the period's budget. Returns
// "stable" or why not.
std::string tune_verdict(const TuneResult& r, double max_load);
// Index of the smallest stable size in `results` (sorted by size), or -1 when none is.
int tune_recommend(const std::vector<TuneResult>& results, double max_load);
// What the verdict adds when a size was measured without real-time scheduling (SCHED_FIFO not
// permitted): that it was, and what that means for the figures (other processes could delay the
// callback: more underflows and a higher p99 than a real-time daemon sees, so the recommendation
// errs large). "" when every size ran real-time or nothing is known. `jack`: the JACK server
// decides the audio thread's scheduling (jackd -R), not stemd.
std::string tune_scheduling_note(const std::vector<TuneResult>& results, bool jack);

// `text` (a stemd config file) with its top-level buffer-size key set to `buffer_size`: the value
// is replaced in place (the line's comment kept) or, without the key, a line is added before the
// first [section] or at the end. Everything else is kept byte for byte.
std::string set_buffer_size_in_config(const std::string& text, std::uint32_t buffer_size, const std::string& note);
// --write-config writes with write_file_atomic(…, {.follow_symlink = true}) (safe_file.hpp):
// a linked config keeps its link, an existing file its permissions.

}  // namespace stemd::app
