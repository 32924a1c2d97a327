// Output backends: where the engine's master goes.
//
//   portaudio  any device PortAudio sees (ALSA, JACK, PulseAudio/PipeWire through ALSA)
//   null       no hardware; a thread paced by CLOCK_MONOTONIC calls the engine every period
//   render     faster than real time; writes the master to a WAV/FLAC file
//
// Threads: open()/start()/stop() from the main thread [main]; the backend's own thread (the
// PortAudio callback, the null pacer, the render loop) is the engine's audio thread [audio].
// open() settles the sample rate and period before the engine exists (the engine is sized for
// them); start() runs the engine.
#pragma once

#include "stemd/engine.hpp"

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace stemd::io {
class LoaderThread;
}

namespace stemd::audio {

// The SCHED_FIFO priority stemd gives its audio thread where stemd decides it: the null pacer sets
// it itself, and PortAudio's ALSA callback thread (which PortAudio starts at SCHED_FIFO 1) is
// raised to it once it runs (app/rt_priority.hpp). Within the unit's LimitRTPRIO=95.
constexpr int kAudioRtPriority = 70;

struct BackendConfig {
  std::string kind = "portaudio";  // portaudio | null | render
  std::string device;              // index or name (substring); empty = default output
  int sample_rate = 0;             // 0 = the device's default (48000 for null/render)
  std::uint32_t buffer_size = 1024;
  std::string render_path;    // render: output file; empty = discard
  double render_seconds = 0;  // render: length; ≤ 0 = until no voice plays
  bool quiet_alsa = true;     // hide ALSA's "cannot find card" noise during Pa_Initialize
  // The JACK client's name (PortAudio's JACK host API; the server appends "-01"… on a clash). The
  // audio server's helper (app/device_probe.hpp) is "stemd-probe", not a second "stemd" (-01).
  std::string client_name = "stemd";
  // No buffer size was asked for (--buffer-size, --preset): on a JACK server the period is the
  // server's own (one callback per cycle), not the board's default (PortAudio, built with JACK's
  // headers: it asks the server). buffer_size() then says what was taken.
  bool follow_server_period = false;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual bool open(std::string& error) = 0;
  virtual bool start(engine::Engine& engine, std::string& error) = 0;
  virtual void stop() = 0;
  virtual int sample_rate() const = 0;
  virtual std::uint32_t buffer_size() const = 0;
  virtual double output_latency_seconds() const = 0;
  virtual std::string describe() const = 0;
  // The SCHED_FIFO priority the audio thread should run at (kAudioRtPriority), or 0 where another
  // program decides it (the JACK server runs its clients' threads) or nothing is real-time (render).
  virtual int wanted_rt_priority() const { return 0; }
  // Who picked the audio thread's priority, for the log ("PortAudio's ALSA host API").
  virtual std::string rt_priority_owner() const { return "stemd"; }
  virtual bool finished() const { return false; }  // render: the requested length is written
  virtual bool failed() const { return false; }    // the stream stopped on its own (device lost)
  virtual std::string failure() const { return {}; }
  // The stream stopped on its own — its device went away (the JACK server died, the USB
  // interface was unplugged); `why` says what was seen. [main], polled.
  virtual bool lost(std::string& why) const {
    if (!failed()) return false;
    why = failure();
    return true;
  }
  // The device stopped delivering callbacks (e.g. the JACK server died): stop() must then not
  // touch the audio API, which may hang or abort on a dead device.
  virtual void mark_lost() {}
  // render: the run succeeded — put what was written in place (a render writes to a temporary
  // file beside its target and only this renames it over the target; a backend destroyed
  // without it removes the temporary file and leaves the target as it was). After stop().
  virtual bool commit(std::string& /*error*/) { return true; }
};

// render: false (with a reason) when the target `render_path` is also one of `inputs` — the same
// file (device and inode), or the same resolved path when the target does not exist yet.
bool render_target_is_free(const std::string& render_path, const std::vector<std::string>& inputs, std::string& error);

std::unique_ptr<Backend> make_null_backend(const BackendConfig& cfg);
std::unique_ptr<Backend> make_render_backend(const BackendConfig& cfg, io::LoaderThread* loader);
std::unique_ptr<Backend> make_portaudio_backend(const BackendConfig& cfg);

// PortAudio helpers (portaudio_backend.cpp).
struct DeviceInfo {
  int index = -1;
  std::string name;
  std::string host_api;
  int max_outputs = 0;
  double default_rate = 0;
  bool is_default = false;
};
// Output-capable devices. Initialises PortAudio for the call.
std::vector<DeviceInfo> list_output_devices(bool quiet_alsa, const std::string& client_name = "stemd");
std::string format_device_list(const std::vector<DeviceInfo>& devices);
// PortAudio's host APIs present on this machine (ALSA; JACK only while a server answers), with
// their output devices. Initialises PortAudio for the call.
struct HostApiInfo {
  std::string name;
  int output_devices = 0;
};
std::vector<HostApiInfo> list_host_apis(bool quiet_alsa);
std::string portaudio_version();
// [any thread] stderr back, should PortAudio's open hold it silenced (ALSA's noise) and not
// return: for the last log lines of a process that exits meanwhile (app/device_probe.hpp).
void restore_stderr();

}  // namespace stemd::audio
