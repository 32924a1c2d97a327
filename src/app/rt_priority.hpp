// The audio and loader threads' real-time priorities, settled once the audio thread runs [main].
//
// The loader thread (--loader-priority, SCHED_FIFO 1 by default) must stay below the audio
// thread: two SCHED_FIFO threads of equal priority on one core do not preempt each other, so a
// loader decoding a refill would hold the callback off until it blocks. The null backend's pacer
// runs at audio::kAudioRtPriority (70), but PortAudio's ALSA host API starts its callback thread
// at SCHED_FIFO 1 — the loader's default. So once the audio thread's tid is known, the main thread
// (never the audio thread) raises it with pthread_setschedparam to kAudioRtPriority, or to the
// RLIMIT_RTPRIO soft limit when that is lower; where stemd does not own the thread (JACK's server
// does) or raising is not permitted, the loader is capped one step below the audio thread instead
// (normal scheduling when the audio thread is at 1 or not real-time). The decisions and the log
// line are pure functions here, unit-tested (tests/unit/rt_priority_test.cpp); health.cpp applies them.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace stemd::app {

struct ThreadSched {
  bool realtime = false;  // SCHED_FIFO or SCHED_RR
  bool round_robin = false;
  int priority = 0;          // 0 unless real-time
  std::string text() const;  // "SCHED_FIFO 70", "SCHED_OTHER"
};

// The SCHED_FIFO priorities to ask for the audio thread, in order, until one is granted: `wanted`
// (0: stemd does not own the thread — nothing), then RLIMIT_RTPRIO's soft limit when it is lower
// (`rtprio_limit`, what an unprivileged process may use). Only priorities above the thread's own.
std::vector<int> audio_raise_steps(const ThreadSched& audio, int wanted, long rtprio_limit);

// The highest SCHED_FIFO priority the loader may use: one below the audio thread's (0: normal
// scheduling — when the audio thread is at 1, or not real-time, where a real-time loader would
// take its CPU outright).
int loader_priority_cap(const ThreadSched& audio);

// What the "audio thread:" log line reports.
struct PolicyReport {
  ThreadSched before;         // as its backend started it
  ThreadSched now;            // after any raise
  int wanted = 0;             // audio thread: kAudioRtPriority where stemd owns it, else 0
  std::string owner;          // who started it ("PortAudio's ALSA host API", "the JACK server", "stemd")
  std::string refused;        // the raise that was not permitted and why ("SCHED_FIFO 70: Operation not permitted")
  int loader_configured = 0;  // --loader-priority (0: normal scheduling)
  int loader_now = 0;         // the loader's SCHED_FIFO priority before the cap (0: normal scheduling)
};

// "SCHED_FIFO priority 70 (raised from 1, PortAudio's ALSA host API's choice); the loader thread's
// SCHED_FIFO 1 is below it" — after "audio thread: ", for a real-time audio thread; or, for one
// that is not real-time, what the loader does (appended to the warning; "" when it is normal already).
std::string policy_line(const PolicyReport& r);

// [main, never the audio thread] Reads the audio thread's scheduling (`thread`: the pthread_t the
// engine publishes, Metrics::audio_thread) into r.before and raises it to r.wanted — or to
// RLIMIT_RTPRIO's soft limit when lower — with pthread_setschedparam: r.now as it is then, r.refused
// when a raise was not permitted. False when the thread is not known yet. Used by the daemon
// (health.cpp) and by `stemd tune`, which so measures with the scheduling the daemon would have.
bool raise_audio_thread(std::uint64_t thread, PolicyReport& r);

}  // namespace stemd::app
