// The audio server, asked before stemd opens its device in-process [main].
//
// PortAudio's open (Pa_Initialize → the JACK host API's jack_client_open, and Pa_OpenStream)
// waits for as long as the audio server does not answer: a JACK server that is alive but frozen
// (SIGSTOP, a hung jackd, a wedged PipeWire with pipewire-jack) held stemd's main thread there —
// no OSC in a hand-over's new image, SIGTERM not acted on — until the server ran again (outside
// pass 26, M1). So the device is first opened, the way the daemon would open it, in a helper
// process (`stemd --internal-state-io audio-probe …`, state_io.hpp): a helper that waits holds
// only itself, and the main loop looks at it on each pass. Only once it has answered does the
// daemon open the device itself — within an OpenGuard, for the moment the server might stop
// answering in between.
#pragma once

#include "audio/backend.hpp"
#include "state_io.hpp"

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>

namespace stemd::app {

// How long the helper may take before the audio server is said not to answer (a healthy
// Pa_Initialize with its process start takes 0.1–0.4 s here). At start the wait for it ends
// sooner on a stop signal; on a stalled stream it starts after 1 s without a callback.
inline constexpr double kProbeAnswerS = 3.0;
inline constexpr double kStallProbeAnswerS = 1.0;
// A helper's life is bounded: one still waiting after kProbeGiveUpS is killed (SIGKILL: it waits
// in a socket read, which the signal ends) and reaped, and a fresh one asks again after
// kProbeAgainS — a server that never comes back holds no helper (nor its half-open JACK client)
// for ever. Each helper also dies with stemd (PR_SET_PDEATHSIG): an exit that runs no destructor
// (the OpenGuard's _exit, a SIGKILL from the service manager, a crash) leaves none behind.
inline constexpr double kProbeGiveUpS = 10.0;
inline constexpr double kProbeAgainS = 5.0;
// The helper's JACK client (BackendConfig::client_name): what it is, in qjackctl and jack_lsp —
// not a second "stemd" that the server renames "stemd-01" while the daemon's own is registered.
inline constexpr const char* kProbeClientName = "stemd-probe";

// Starts the helper that opens the device of `bc` (kind portaudio) — or, `auto_kind` with no
// device named, finds whether PortAudio has any output device (none: exit kStateIoMissing).
// Null, with `error`, when it could not be started.
std::unique_ptr<FileJob> start_device_probe(const audio::BackendConfig& bc, bool auto_kind, std::string& error);

// Started from the main thread only: PR_SET_PDEATHSIG fires when the thread that started the
// helper ends (the main thread lives as long as the process, and a hand-over's exec keeps it).
//
// The helper's side: argv = KIND DEVICE RATE BUFFER QUIET PARENT (after "audio-probe"; PARENT:
// stemd's pid — the helper ends at once when it is no longer its parent). Exit 0: the device opens
// (its rate on standard output); 1: it does not (the reason); kStateIoMissing: auto and no output
// device.
int audio_probe_main(int argc, char** argv);

// While the main thread is inside PortAudio's open and start: SIGINT and SIGTERM are taken by a
// watcher thread (they are blocked in every thread and otherwise wait for the main loop). One
// that comes while the open runs is kept for the caller (signal()); if the open has not returned
// 1 s after it, `on_stuck_stop(sig)` runs on the watcher — it saves what it can and ends the
// process (it must not return).
class OpenGuard {
 public:
  explicit OpenGuard(std::function<void(int sig)> on_stuck_stop);
  ~OpenGuard();  // the open returned: the watcher ends
  OpenGuard(const OpenGuard&) = delete;
  OpenGuard& operator=(const OpenGuard&) = delete;
  int signal() const { return sig_.load(std::memory_order_acquire); }

 private:
  void watch();
  std::function<void(int)> on_stuck_stop_;
  std::atomic<bool> done_{false};
  std::atomic<int> sig_{0};
  std::thread thread_;
};

}  // namespace stemd::app
