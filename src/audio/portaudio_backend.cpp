// The PortAudio backend — the only file that includes <portaudio.h>.
//
// The callback [audio] is the engine's process(): float32 interleaved stereo, exactly the
// requested frames per buffer, paOutputUnderflow counted as a device underflow. PortAudio's
// JACK client is named "stemd" so its ports are stemd:out_0/out_1.
#include "backend.hpp"

#include "audio/alsa_devices.hpp"

#ifdef STEMD_HAVE_JACK
#include <jack/jack.h>
#endif
#include <pa_jack.h>
#include <pa_linux_alsa.h>
#include <portaudio.h>

#include <spdlog/spdlog.h>

#include <atomic>
#include <cstdio>
#include <fcntl.h>
#include <unistd.h>

namespace stemd::audio {

namespace {

// The real stderr while a QuietStderr holds fd 2 (-1: none does): restore_stderr() puts it back.
std::atomic<int> g_saved_stderr{-1};

// ALSA prints "cannot find card '0'" and friends on stderr while PortAudio probes a machine
// without a sound card. Harmless, but alarming in a log: silence fd 2 for the duration.
class QuietStderr {
 public:
  explicit QuietStderr(bool on) {
    if (!on) return;
    std::fflush(stderr);
    saved_ = dup(2);
    const int devnull = ::open("/dev/null", O_WRONLY | O_CLOEXEC);
    if (saved_ >= 0 && devnull >= 0) dup2(devnull, 2);
    if (devnull >= 0) ::close(devnull);
    g_saved_stderr.store(saved_);
  }
  ~QuietStderr() {
    if (saved_ < 0) return;
    g_saved_stderr.store(-1);
    std::fflush(stderr);
    dup2(saved_, 2);
    ::close(saved_);
  }

 private:
  int saved_ = -1;
};

class PaSession {  // Pa_Initialize/Pa_Terminate, balanced
 public:
  // `client_name`: the JACK client's (BackendConfig::client_name). PortAudio keeps the pointer,
  // not a copy: the session holds the string.
  explicit PaSession(bool quiet, const std::string& client_name = "stemd") : client_name_(client_name) {
    PaJack_SetClientName(client_name_.c_str());
    QuietStderr q(quiet);
    err_ = Pa_Initialize();
  }
  ~PaSession() {
    if (err_ == paNoError) Pa_Terminate();
  }
  bool ok() const { return err_ == paNoError; }
  std::string error() const { return Pa_GetErrorText(err_); }

 private:
  std::string client_name_;
  PaError err_;
};

std::vector<DeviceInfo> enumerate() {
  std::vector<DeviceInfo> out;
  const int n = Pa_GetDeviceCount();
  const PaDeviceIndex def = Pa_GetDefaultOutputDevice();
  for (int i = 0; i < n; ++i) {
    const PaDeviceInfo* d = Pa_GetDeviceInfo(i);
    if (!d || d->maxOutputChannels < 1) continue;
    const PaHostApiInfo* h = Pa_GetHostApiInfo(d->hostApi);
    out.push_back(DeviceInfo{i, d->name ? d->name : "?", h && h->name ? h->name : "?", d->maxOutputChannels,
                             d->defaultSampleRate, i == def});
  }
  return out;
}

bool is_jack(const PaDeviceInfo* d) {
  const PaHostApiInfo* h = d ? Pa_GetHostApiInfo(d->hostApi) : nullptr;
  return h && h->type == paJACK;
}

// The JACK server's period (frames per cycle), asked by a client of its own for the moment
// (PortAudio 19.6 does not tell it); 0 when unknown. The server answered PortAudio's
// Pa_Initialize just before, within the same open (and its guard against a frozen server).
std::uint32_t jack_server_period([[maybe_unused]] const std::string& client_name) {
#ifdef STEMD_HAVE_JACK
  jack_status_t status{};
  const std::string name = client_name + "-period";
  jack_client_t* c = jack_client_open(name.c_str(), JackNoStartServer, &status);
  if (c == nullptr) return 0;
  const jack_nframes_t frames = jack_get_buffer_size(c);
  jack_client_close(c);
  return frames;
#else
  return 0;
#endif
}

bool is_alsa(const PaDeviceInfo* d) {
  const PaHostApiInfo* h = d ? Pa_GetHostApiInfo(d->hostApi) : nullptr;
  return h && h->type == paALSA;
}

bool icontains(const std::string& hay, const std::string& needle) {
  auto lower = [](std::string s) {
    for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
  };
  return lower(hay).find(lower(needle)) != std::string::npos;
}

class PortAudioBackend final : public Backend {
 public:
  // Before a device is open (waiting for a late or lost one) the rate is the configured one: the
  // start line's output latency was 1024/48000 at 44.1 kHz (outside pass 26, user L7).
  explicit PortAudioBackend(const BackendConfig& cfg) : cfg_(cfg) {
    if (cfg_.sample_rate > 0) rate_ = cfg_.sample_rate;
  }
  ~PortAudioBackend() override { stop(); }

  bool open(std::string& error) override {
    // A failed open ends its PortAudio session, so that the next attempt (device recovery)
    // initialises PortAudio afresh and sees devices that appeared since.
    const bool ok = open_session(error);
    if (!ok && !lost_) session_.reset();
    return ok;
  }

  bool open_session(std::string& error) {
    // Pa_Initialize only counts up while a session is open: end the old one first.
    if (stream_ == nullptr && !lost_) session_.reset();
    session_ = std::make_unique<PaSession>(cfg_.quiet_alsa, cfg_.client_name);
    if (!session_->ok()) {
      error = "PortAudio failed to initialise: " + session_->error();
      return false;
    }
    const auto devices = enumerate();
    if (devices.empty()) {
      error = "PortAudio sees no output device";
      return false;
    }
    const DeviceInfo* chosen = nullptr;
    if (cfg_.device.empty()) {
      for (const auto& d : devices) {
        if (d.is_default) chosen = &d;
      }
      if (!chosen) chosen = &devices.front();
    } else {
      chosen = match_device(devices);
      if (!chosen) {
        error = "no output device matches '" + cfg_.device + "'";
        // PortAudio leaves out an ALSA hw device another program holds open (it cannot probe it).
        if (alsa_card_of(cfg_.device) >= 0) {
          const auto holders = alsa_playback_holders();
          if (!holders.empty()) error = alsa_busy_message(cfg_.device, holders);
        }
        error += ". PortAudio sees:\n" + format_device_list(devices);
        return false;
      }
    }
    device_ = *chosen;
    rate_ = cfg_.sample_rate > 0 ? cfg_.sample_rate : static_cast<int>(device_.default_rate);

    PaStreamParameters out{};
    out.device = device_.index;
    out.channelCount = 2;
    out.sampleFormat = paFloat32;
    const PaDeviceInfo* di = Pa_GetDeviceInfo(device_.index);
    if (cfg_.follow_server_period && is_jack(di)) {
      // --buffer-size 16..8192; the engine takes blocks of up to max(buffer, 4096) frames.
      const std::uint32_t period = jack_server_period(cfg_.client_name);
      if (period >= 16 && period <= 4096) cfg_.buffer_size = period;
    }
    out.suggestedLatency = std::max(di->defaultLowOutputLatency, 2.0 * cfg_.buffer_size / rate_);
    PaError e = Pa_IsFormatSupported(nullptr, &out, rate_);
    if (e != paFormatIsSupported) {
      error = busy_or(e, "device '" + device_.name + "' cannot play stereo float at " + std::to_string(rate_) +
                             " Hz: " + Pa_GetErrorText(e));
      return false;
    }
    params_ = out;
    return true;
  }

  bool start(engine::Engine& engine, std::string& error) override {
    engine_ = &engine;
    PaError e = Pa_OpenStream(&stream_, nullptr, &params_, rate_, cfg_.buffer_size, paClipOff | paDitherOff,
                              &PortAudioBackend::callback, this);
    if (e != paNoError) {
      error = busy_or(e, std::string("cannot open the output stream: ") + Pa_GetErrorText(e));
      stream_ = nullptr;
      return false;
    }
    Pa_SetStreamFinishedCallback(stream_, &PortAudioBackend::on_finished);
    // PortAudio's ALSA host API runs its callback thread SCHED_OTHER unless asked: ask for
    // SCHED_FIFO (granted where RLIMIT_RTPRIO allows it, e.g. the unit's LimitRTPRIO; else it
    // stays SCHED_OTHER and the daemon's "audio thread:" log line says so).
    if (is_alsa(Pa_GetDeviceInfo(device_.index))) PaAlsa_EnableRealtimeScheduling(stream_, 1);
    // Until the callbacks have measured it (heard_latency below): PortAudio's figure. pipewire-jack
    // 0.3.65 reports an output latency of ~89,000 s (an unset port latency): more than 10 s is no
    // device's real latency, so the period-based estimate is used instead.
    if (const PaStreamInfo* si = Pa_GetStreamInfo(stream_)) latency_ = si->outputLatency < 10.0 ? si->outputLatency : 0;
    dac_sum_ = 0;
    dac_n_ = 0;
    dac_block_ = kFirstDacBlock;
    measured_.store(0.0);
    e = Pa_StartStream(stream_);
    if (e != paNoError) {
      error = std::string("cannot start the output stream: ") + Pa_GetErrorText(e);
      Pa_CloseStream(stream_);
      stream_ = nullptr;
      return false;
    }
    running_ = true;
    finished_unexpectedly_ = false;
    return true;
  }

  bool lost(std::string& why) const override {
    if (!stream_ || !running_) return false;
    if (finished_unexpectedly_.load()) {
      why = "the output stream stopped (device lost?)";
      return true;
    }
    // PortAudio's JACK host API marks its streams inactive when the server shuts down, without
    // calling the finished callback.
    if (Pa_IsStreamActive(stream_) == 0) {
      why = "the output stream is no longer active (device or audio server gone)";
      return true;
    }
    return false;
  }

  void mark_lost() override {
    lost_ = true;
    running_ = false;
    // Abandon the stream and the PortAudio session: on a dead JACK server, PortAudio 19.6 waits
    // 10 minutes in Pa_AbortStream/Pa_CloseStream for a process callback that never comes, then
    // asserts. The daemon replaces its process image to get a fresh PortAudio (daemon.cpp).
    stream_ = nullptr;
    (void)session_.release();
  }

  void stop() override {
    if (!stream_ || lost_) return;
    running_ = false;
    Pa_StopStream(stream_);
    Pa_CloseStream(stream_);
    stream_ = nullptr;
  }

  // --device: an index, an exact name, an ALSA hw name ("hw:CARD=DAC,DEV=0" → the "(hw:1,0)" in
  // PortAudio's name), else the first name containing it (case-insensitive).
  const DeviceInfo* match_device(const std::vector<DeviceInfo>& devices) const {
    const DeviceInfo* chosen = nullptr;
    char* end = nullptr;
    const long idx = std::strtol(cfg_.device.c_str(), &end, 10);
    const bool numeric = end && *end == '\0' && !cfg_.device.empty();
    for (const auto& d : devices) {
      if (numeric ? d.index == idx : d.name == cfg_.device) chosen = &d;
    }
    if (chosen || numeric) return chosen;
    const std::string hw = alsa_portaudio_name(cfg_.device);
    for (const auto& d : devices) {
      if (!hw.empty() && d.host_api == "ALSA" && d.name.find(hw) != std::string::npos) return &d;
    }
    for (const auto& d : devices) {
      if (icontains(d.name, cfg_.device)) return &d;
    }
    return nullptr;
  }

  // An ALSA device another program holds (EBUSY → paDeviceUnavailable): say who holds it.
  std::string busy_or(PaError e, std::string error) const {
    if (e != paDeviceUnavailable || !is_alsa(Pa_GetDeviceInfo(device_.index))) return error;
    std::string alsa_name = cfg_.device;
    const auto open = device_.name.rfind("(hw:");
    if (open != std::string::npos && device_.name.back() == ')') {
      alsa_name = device_.name.substr(open + 1, device_.name.size() - open - 2);
    }
    return alsa_busy_message(alsa_name, alsa_playback_holders()) + " [" + error + "]";
  }

  int sample_rate() const override { return rate_; }
  std::uint32_t buffer_size() const override { return cfg_.buffer_size; }
  // How long after the stream clock's time of a frame (the callback that renders it: the engine
  // stamps its start) the device plays it. Measured by the callbacks once they run: the mean of
  // PortAudio's outputBufferDacTime − currentTime, both taken as the callback starts. That is
  // JACK's playback latency of the port (2 periods on an async server, whose cycle's output the
  // driver writes at the next cycle: the 19.6 JACK host API's outputLatency leaves one period out,
  // outside pass 28, M2), and on ALSA the frames queued in the device at the wake-up (its late
  // wake-ups, which also delay the clock's stamps, averaged out). Before that: PortAudio's
  // outputLatency, else one buffer.
  double output_latency_seconds() const override {
    const double measured = measured_.load(std::memory_order_relaxed);
    if (measured > 0) return measured;
    return latency_ > 0 ? latency_ : static_cast<double>(cfg_.buffer_size) / rate_;
  }
  std::string describe() const override {
    if (device_.index < 0) return "portaudio (no device open yet)";
    return "portaudio device " + std::to_string(device_.index) + " '" + device_.name + "' (" + device_.host_api + ")";
  }
  // ALSA: PortAudio starts its callback thread at SCHED_FIFO 1 (when permitted), the loader's
  // default too; stemd raises it (app/rt_priority.hpp). JACK: the server runs the thread.
  int wanted_rt_priority() const override { return device_.host_api == "ALSA" ? kAudioRtPriority : 0; }
  std::string rt_priority_owner() const override {
    return device_.host_api == "ALSA" ? "PortAudio's ALSA host API" : "the " + device_.host_api + " server";
  }
  bool failed() const override { return finished_unexpectedly_.load(); }
  std::string failure() const override { return "the output stream stopped (device lost?)"; }

 private:
  static int callback(const void*, void* output, unsigned long frames, const PaStreamCallbackTimeInfo* ti,
                      PaStreamCallbackFlags flags, void* user) noexcept {
    auto* self = static_cast<PortAudioBackend*>(user);
    if (ti != nullptr) self->note_dac_time(ti->outputBufferDacTime - ti->currentTime);
    self->engine_->process(static_cast<float*>(output), static_cast<std::uint32_t>(frames),
                           (flags & paOutputUnderflow) != 0);
    return paContinue;
  }
  // [audio] One callback's time to the DAC (s). Published as the mean of blocks of callbacks (of
  // an even count: a period split into two callbacks by PortAudio gives them DAC times a half
  // period apart, while the clock's line runs through both); ignored when a host API gives none
  // (0) or an absurd one (pipewire-jack's unset port latency, above).
  void note_dac_time(double seconds) noexcept {
    if (!(seconds > 0 && seconds < 10.0)) return;
    dac_sum_ += seconds;
    if (++dac_n_ < dac_block_) return;
    measured_.store(dac_sum_ / dac_n_, std::memory_order_relaxed);
    dac_sum_ = 0;
    dac_n_ = 0;
    dac_block_ = kDacBlock;
  }
  static void on_finished(void* user) {
    auto* self = static_cast<PortAudioBackend*>(user);
    if (self->running_) self->finished_unexpectedly_ = true;
  }

  BackendConfig cfg_;
  std::unique_ptr<PaSession> session_;
  DeviceInfo device_;
  PaStreamParameters params_{};
  PaStream* stream_ = nullptr;
  engine::Engine* engine_ = nullptr;
  int rate_ = 48000;
  double latency_ = 0;
  // The callbacks' DAC times (note_dac_time): the first mean after kFirstDacBlock callbacks (the
  // daemon waits for 4 before it reads it at start), then every kDacBlock.
  static constexpr std::uint32_t kFirstDacBlock = 4, kDacBlock = 64;
  double dac_sum_ = 0;       // [audio]
  std::uint32_t dac_n_ = 0;  // [audio]
  std::uint32_t dac_block_ = kFirstDacBlock;
  std::atomic<double> measured_{0.0};  // [audio] writes, [any] reads
  std::atomic<bool> running_{false};
  std::atomic<bool> finished_unexpectedly_{false};
  bool lost_ = false;
};

}  // namespace

std::vector<DeviceInfo> list_output_devices(bool quiet_alsa, const std::string& client_name) {
  PaSession s(quiet_alsa, client_name);
  if (!s.ok()) return {};
  return enumerate();
}

std::vector<HostApiInfo> list_host_apis(bool quiet_alsa) {
  PaSession s(quiet_alsa);
  if (!s.ok()) return {};
  std::vector<HostApiInfo> out;
  for (PaHostApiIndex a = 0; a < Pa_GetHostApiCount(); ++a) {
    const PaHostApiInfo* h = Pa_GetHostApiInfo(a);
    if (h == nullptr) continue;
    HostApiInfo info{h->name != nullptr ? h->name : "?", 0};
    for (int i = 0; i < h->deviceCount; ++i) {
      const PaDeviceInfo* d = Pa_GetDeviceInfo(Pa_HostApiDeviceIndexToDeviceIndex(a, i));
      if (d != nullptr && d->maxOutputChannels > 0) ++info.output_devices;
    }
    out.push_back(std::move(info));
  }
  return out;
}

std::string format_device_list(const std::vector<DeviceInfo>& devices) {
  std::string out;
  if (devices.empty()) return "  (no output devices)\n";
  for (const auto& d : devices) {
    char line[512];
    std::snprintf(line, sizeof line, "  %s%3d  %-40s  %-28s  %2d out  %6.0f Hz", d.is_default ? "*" : " ", d.index,
                  d.name.c_str(), d.host_api.c_str(), d.max_outputs, d.default_rate);
    out += line;
    // An ALSA hw device: the name that survives a reboot (card numbers do not), for --device.
    const std::string stable = d.host_api == "ALSA" ? alsa_stable_name(d.name) : std::string();
    if (!stable.empty()) out += "  --device " + stable;
    out += '\n';
  }
  return out;
}

std::string portaudio_version() { return Pa_GetVersionText(); }

void restore_stderr() {
  const int saved = g_saved_stderr.load();
  if (saved >= 0) dup2(saved, 2);
}

std::unique_ptr<Backend> make_portaudio_backend(const BackendConfig& cfg) {
  return std::make_unique<PortAudioBackend>(cfg);
}

}  // namespace stemd::audio
