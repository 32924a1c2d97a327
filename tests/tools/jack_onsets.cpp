// stemd-jack-onsets: when sounds start at a JACK server's ports, on the host's clock.
//
// A JACK client (on $JACK_DEFAULT_SERVER, like every client of the test bed) with one input
// port connected to SOURCE's first output (stemd:out_0 by default). Its process callback finds
// each onset — the first frame whose |sample| exceeds --threshold after at least --silence-ms of
// frames below it — and stamps it with the cycle's time from jack_get_cycle_times() plus the
// frame's offset at the cycle's measured period: the time the frame leaves the graph for the
// device, in JACK's clock, which is CLOCK_MONOTONIC_RAW on Linux (checked at start). So onsets
// captured on two servers on one host compare directly (scripts/bench_sync.sh).
//
// Prints "ready" once connected, then one line per onset: "onset NS FRAME" (NS: CLOCK_MONOTONIC_RAW
// nanoseconds; FRAME: the server's frame counter), flushed, until SIGINT/SIGTERM. The callback only
// stores onsets in a fixed array; the main thread prints them.
//
//   stemd-jack-onsets [--source stemd] [--port out_0] [--threshold 0.1] [--silence-ms 50]
//                     [--name stemd-onsets]
#include <jack/jack.h>
#include <time.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>

namespace {

constexpr std::size_t kMaxOnsets = 1 << 16;

struct Detector {
  jack_client_t* client = nullptr;
  jack_port_t* in = nullptr;
  float threshold = 0.1f;
  std::uint64_t silence_needed = 2400;  // frames
  std::uint64_t silent_run = 0;         // frames below the threshold so far
  double ns[kMaxOnsets] = {};
  std::uint32_t frames[kMaxOnsets] = {};
  std::atomic<std::size_t> count{0};
};

std::atomic<bool> g_stop{false};
void on_signal(int) { g_stop.store(true); }

int process(jack_nframes_t n, void* arg) {
  auto* d = static_cast<Detector*>(arg);
  const auto* x = static_cast<const float*>(jack_port_get_buffer(d->in, n));
  jack_nframes_t cur_frames = 0;
  jack_time_t cur_us = 0, next_us = 0;
  float period_us = 0;
  const bool have_times = jack_get_cycle_times(d->client, &cur_frames, &cur_us, &next_us, &period_us) == 0;
  for (jack_nframes_t i = 0; i < n; ++i) {
    if (std::fabs(x[i]) <= d->threshold) {
      ++d->silent_run;
      continue;
    }
    if (d->silent_run >= d->silence_needed && have_times) {
      const std::size_t k = d->count.load(std::memory_order_relaxed);
      if (k < kMaxOnsets) {
        // The cycle's start plus the frame's offset at the cycle's measured length.
        const double us = static_cast<double>(cur_us) + static_cast<double>(next_us - cur_us) * i / n;
        d->ns[k] = us * 1000.0;
        d->frames[k] = cur_frames + i;
        d->count.store(k + 1, std::memory_order_release);
      }
    }
    d->silent_run = 0;
  }
  return 0;
}

double raw_now_us() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC_RAW, &ts);
  return static_cast<double>(ts.tv_sec) * 1e6 + ts.tv_nsec / 1e3;
}

}  // namespace

int main(int argc, char** argv) {
  std::string source = "stemd", port = "out_0", name = "stemd-onsets";
  double threshold = 0.1, silence_ms = 50;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> const char* {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "stemd-jack-onsets: %s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--source") {
      source = value();
    } else if (a == "--port") {
      port = value();
    } else if (a == "--threshold") {
      threshold = std::atof(value());
    } else if (a == "--silence-ms") {
      silence_ms = std::atof(value());
    } else if (a == "--name") {
      name = value();
    } else {
      std::fprintf(stderr,
                   "usage: stemd-jack-onsets [--source C] [--port P] [--threshold X] [--silence-ms MS] [--name N]\n");
      return 2;
    }
  }
  auto* d = new Detector;  // large: not on the stack
  d->threshold = static_cast<float>(threshold);
  jack_status_t status{};
  d->client = jack_client_open(name.c_str(), JackNoStartServer, &status);
  if (d->client == nullptr) {
    std::fprintf(stderr, "stemd-jack-onsets: no JACK server (status 0x%x)\n", static_cast<unsigned>(status));
    return 2;
  }
  d->silence_needed = static_cast<std::uint64_t>(silence_ms * 1e-3 * jack_get_sample_rate(d->client));
  const double j = static_cast<double>(jack_get_time()), r = raw_now_us();
  if (std::fabs(j - r) > 1000) {
    std::fprintf(stderr, "stemd-jack-onsets: JACK's clock is not CLOCK_MONOTONIC_RAW here (%+.0f us apart)\n", j - r);
    return 2;
  }
  d->in = jack_port_register(d->client, "in", JACK_DEFAULT_AUDIO_TYPE, JackPortIsInput, 0);
  if (d->in == nullptr || jack_set_process_callback(d->client, process, d) != 0 || jack_activate(d->client) != 0) {
    std::fprintf(stderr, "stemd-jack-onsets: could not set up the client\n");
    return 2;
  }
  const std::string from = source + ":" + port, to = std::string(jack_get_client_name(d->client)) + ":in";
  bool connected = false;
  for (int i = 0; i < 200 && !connected; ++i) {  // the source may still be starting: 10 s
    connected = jack_connect(d->client, from.c_str(), to.c_str()) == 0;
    if (!connected) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  if (!connected) {
    std::fprintf(stderr, "stemd-jack-onsets: could not connect %s to %s\n", from.c_str(), to.c_str());
    return 2;
  }
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  std::printf("ready\n");
  std::fflush(stdout);
  std::size_t printed = 0;
  while (!g_stop.load()) {
    const std::size_t n = d->count.load(std::memory_order_acquire);
    for (; printed < n; ++printed) std::printf("onset %.0f %u\n", d->ns[printed], d->frames[printed]);
    std::fflush(stdout);
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  jack_client_close(d->client);
  return 0;
}
