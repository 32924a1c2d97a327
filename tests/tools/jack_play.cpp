// stemd-jack-play: plays a sound file through JACK bit-exactly, for testing the test bed.
//
// jack-play (jack-tools) always runs libsamplerate, even at ratio 1.0, and loses its
// first ~2048 frames, so its output is not the file's samples (measured SNR ~11 dB
// against the source). This player copies the file's float samples (libsndfile
// sf_readf_float, exactly what stemd reads) into the JACK ports unchanged, which lets
// the capture/verify chain be proven bit-exact without stemd, and gives stub daemons
// something to run. The whole file is decoded into memory first, so the process
// callback does no I/O; it starts only once the ports are connected, so no frame is lost.
//
//   stemd-jack-play FILE [--connect system:playback_%d] [--name stemd-jack-play]
// A mono file plays on both outputs (as stemd plays it). Exit 0 after the last frame
// has been delivered, 1 on errors. SIGINT/SIGTERM stop playback early (exit 0).

#include <jack/jack.h>
#include <sndfile.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace stemd::tools {
namespace {

struct Player {
  std::vector<float> data;  // interleaved, decoded up front
  int channels = 0;
  long long frames = 0;
  std::vector<jack_port_t*> ports;
  std::atomic<bool> go{false};  // set once the ports are connected
  std::atomic<long long> pos{0};
  std::atomic<bool> done{false};
  std::atomic<int> xruns{0};
};

std::atomic<bool> g_stop{false};
void on_signal(int) { g_stop.store(true); }

int process(jack_nframes_t n, void* arg) {
  auto* p = static_cast<Player*>(arg);
  const long long pos = p->pos.load(std::memory_order_relaxed);
  const bool go = p->go.load(std::memory_order_acquire);
  const long long avail = go ? std::max(0LL, p->frames - pos) : 0;
  const long long take = std::min<long long>(n, avail);
  for (int c = 0; c < p->channels; ++c) {
    auto* out = static_cast<float*>(jack_port_get_buffer(p->ports[static_cast<size_t>(c)], n));
    const float* src = p->data.data() + pos * p->channels + c;
    for (long long i = 0; i < take; ++i) out[i] = src[i * p->channels];
    std::fill(out + take, out + n, 0.0f);
  }
  if (go) {
    p->pos.store(pos + take, std::memory_order_relaxed);
    if (pos + take >= p->frames) p->done.store(true, std::memory_order_release);
  }
  return 0;
}

int on_xrun(void* arg) {
  static_cast<Player*>(arg)->xruns.fetch_add(1);
  return 0;
}

int run(int argc, char** argv) {
  std::string file, connect = "system:playback_%d", name = "stemd-jack-play";
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    if ((a == "--connect" || a == "--name") && i + 1 < argc)
      (a == "--connect" ? connect : name) = argv[++i];
    else if (!a.empty() && a[0] != '-' && file.empty())
      file = a;
    else {
      std::fprintf(stderr, "usage: stemd-jack-play FILE [--connect system:playback_%%d] [--name N]\n");
      return 2;
    }
  }
  if (file.empty()) {
    std::fprintf(stderr, "usage: stemd-jack-play FILE [--connect system:playback_%%d] [--name N]\n");
    return 2;
  }

  Player p;
  SF_INFO info{};
  SNDFILE* sf = sf_open(file.c_str(), SFM_READ, &info);
  if (!sf) {
    std::fprintf(stderr, "stemd-jack-play: %s: %s\n", file.c_str(), sf_strerror(nullptr));
    return 1;
  }
  p.channels = info.channels;
  p.data.resize(static_cast<size_t>(info.frames) * static_cast<size_t>(info.channels));
  p.frames = sf_readf_float(sf, p.data.data(), info.frames);
  sf_close(sf);

  jack_status_t status{};
  jack_client_t* client = jack_client_open(name.c_str(), JackNoStartServer, &status);
  if (!client) {
    std::fprintf(stderr, "stemd-jack-play: cannot connect to JACK (status 0x%x)\n", status);
    return 1;
  }
  // No resampling, by design: a rate mismatch is a test-setup error, not something to hide.
  if (static_cast<int>(jack_get_sample_rate(client)) != info.samplerate) {
    std::fprintf(stderr, "stemd-jack-play: file is %d Hz, JACK runs at %u Hz\n", info.samplerate,
                 jack_get_sample_rate(client));
    jack_client_close(client);
    return 1;
  }
  for (int c = 0; c < p.channels; ++c) {
    const std::string port = "out_" + std::to_string(c + 1);
    jack_port_t* jp = jack_port_register(client, port.c_str(), JACK_DEFAULT_AUDIO_TYPE, JackPortIsOutput, 0);
    if (!jp) {
      std::fprintf(stderr, "stemd-jack-play: cannot register %s\n", port.c_str());
      jack_client_close(client);
      return 1;
    }
    p.ports.push_back(jp);
  }
  jack_set_process_callback(client, process, &p);
  jack_set_xrun_callback(client, on_xrun, &p);
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  if (jack_activate(client) != 0) {
    std::fprintf(stderr, "stemd-jack-play: cannot activate\n");
    jack_client_close(client);
    return 1;
  }
  // Destination port i+1 for channel i; a mono file feeds playback 1 and 2.
  const int dests = std::max(p.channels, 2);
  for (int d = 0; d < dests; ++d) {
    const int c = p.channels == 1 ? 0 : d;
    if (c >= p.channels) break;
    char dest[256];
    std::snprintf(dest, sizeof dest, connect.c_str(), d + 1);
    if (jack_connect(client, jack_port_name(p.ports[static_cast<size_t>(c)]), dest) != 0) {
      std::fprintf(stderr, "stemd-jack-play: cannot connect to %s\n", dest);
      jack_client_close(client);
      return 1;
    }
  }
  p.go.store(true, std::memory_order_release);

  // The callback that copies the last frames also delivers them in that same cycle;
  // two more periods of margin before disconnecting cost nothing and rule out doubt.
  while (!p.done.load(std::memory_order_acquire) && !g_stop.load())
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  const double period_s = static_cast<double>(jack_get_buffer_size(client)) / jack_get_sample_rate(client);
  std::this_thread::sleep_for(std::chrono::duration<double>(2 * period_s));
  jack_client_close(client);
  std::fprintf(stderr, "stemd-jack-play: played %lld of %lld frames, %d xruns\n", p.pos.load(), p.frames,
               p.xruns.load());
  return 0;
}

}  // namespace
}  // namespace stemd::tools

int main(int argc, char** argv) { return stemd::tools::run(argc, argv); }
