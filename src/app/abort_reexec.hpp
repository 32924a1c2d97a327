// An abort inside PortAudio's open, survived by a fresh image of stemd [main].
//
// PortAudio 19.6's JACK host API asserts that every JACK call of its clean-up succeeds
// (pa_jack.c: CleanUpStream's jack_port_unregister, Terminate's jack_deactivate). When the JACK
// server dies while stemd opens the device — after the probe helper found it there
// (device_probe.hpp), inside Pa_OpenStream or the Pa_Terminate of a failed open — those calls
// fail and assert() aborts the process: the daemon, its voices and its OSC were gone (loss29:
// `t29_flap.sh 10 kill` in 2 runs of 3). The asserts are in Debian's libportaudio; they cannot be
// patched, and after one PortAudio's state in this process is lost anyway.
//
// So while the daemon opens the device, a SIGABRT handler is armed that replaces the process image
// instead (execve, async-signal-safe; same PID, like a device hand-over, recovery.cpp), with an
// environment prepared before the open: a hand-over written just before it (a resumed image: its
// state, the voices it has not replayed yet among it, so nothing but the open's own fraction of a
// second is missed) or, before the first image has any state of its own, the same start again.
// The new image retries the device as after any loss. The handler does nothing but write a
// line, mark every descriptor close-on-exec and exec: no lock, no allocation, any thread.
#pragma once

#include <csignal>
#include <string>
#include <vector>

namespace stemd::app {

// The variable a plain start-again sets (its value: why), read and cleared by the new image.
inline constexpr const char* kAbortRestartVar = "STEMD_ABORT_RESTART";

class AbortReexec {
 public:
  // Arms the handler: a SIGABRT from now on execs /proc/self/exe with `argv` (the process's own,
  // which outlives this) and this process's environment with `set` ("NAME=VALUE" lines) in place
  // of any of the same names. `hand_over`: the hand-over file it names, removed when disarmed.
  AbortReexec(char** argv, const std::vector<std::string>& set, std::string hand_over);
  ~AbortReexec();  // disarmed (the previous SIGABRT action back), the hand-over file removed
  AbortReexec(const AbortReexec&) = delete;
  AbortReexec& operator=(const AbortReexec&) = delete;
  const std::string& hand_over() const { return hand_over_; }

 private:
  std::vector<std::string> env_;
  std::vector<char*> envp_;
  char** argv_;
  std::string hand_over_;
  struct sigaction old_ {};
};

}  // namespace stemd::app
