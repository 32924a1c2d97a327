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
// Prints "latency MIN MAX RATE PERIOD" (the source port's playback latency range in frames, the
// server's rate and period) and "ready" once connected, then one line per onset: "onset NS FRAME DRIVER_NS" (NS:
// CLOCK_MONOTONIC_RAW nanoseconds; FRAME: the server's frame counter), flushed, until
// SIGINT/SIGTERM. The callback only stores onsets and cycle stamps in fixed arrays; the main
// thread prints them.
//
// Two clocks for one onset. NS is JACK's own estimate (jack_get_cycle_times(): JACK's DLL, 1/8 Hz
// wide). A dummy server re-anchors its timeline at every xrun (JackTimedDriver: the next cycles
// run at "the late wake-up + k periods") and JACK's DLL then takes seconds to follow, so after
// xruns NS can be off the cycles' real times by up to a period. DRIVER_NS is the onset on the
// driver's actual timeline: between two xruns a dummy server's cycles begin at exactly
// anchor + k × period, and each cycle's stamp here (CLOCK_MONOTONIC_RAW at this callback's start)
// is that plus the wake-up and graph latency (never less), so the smallest (stamp − frames / rate)
// over the cycles around the onset, within its xrun epoch, is the line. It is printed once
// kAfterS of cycles have followed the onset.
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
constexpr std::size_t kCycles = 1 << 16;  // cycle stamps kept (≈ 5 min at 256 frames)
constexpr double kAfterS = 0.5;           // cycles on each side of an onset that find its line

struct Cycle {
  std::uint32_t frames = 0;  // the server's frame counter at the cycle's first frame
  std::uint32_t epoch = 0;   // xruns counted before it (2 cycles after each are left out: odd)
  double raw_ns = 0;         // CLOCK_MONOTONIC_RAW at the callback's start
};

struct Detector {
  jack_client_t* client = nullptr;
  jack_port_t* in = nullptr;
  float threshold = 0.1f;
  std::uint64_t silence_needed = 2400;  // frames
  std::uint64_t silent_run = 0;         // frames below the threshold so far
  double ns[kMaxOnsets] = {};
  std::uint32_t frames[kMaxOnsets] = {};
  std::uint64_t cycle_of[kMaxOnsets] = {};
  std::atomic<std::size_t> count{0};
  Cycle cycles[kCycles];
  std::atomic<std::uint64_t> cycle_count{0};
  std::atomic<std::uint32_t> xruns{0};  // from the xrun callback (another thread)
  std::uint32_t epoch = 0, seen_xruns = 0;
  int odd = 0;  // cycles still to leave out after an xrun
};

int on_xrun(void* arg) {
  static_cast<Detector*>(arg)->xruns.fetch_add(1, std::memory_order_relaxed);
  return 0;
}

double raw_now_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC_RAW, &ts);
  return static_cast<double>(ts.tv_sec) * 1e9 + static_cast<double>(ts.tv_nsec);
}

std::atomic<bool> g_stop{false};
void on_signal(int) { g_stop.store(true); }

int process(jack_nframes_t n, void* arg) {
  auto* d = static_cast<Detector*>(arg);
  const double raw = raw_now_ns();
  // The cycle after an xrun begins at once and the timeline is anchored at its end: that cycle
  // and the next (the xrun's notice may come a cycle late) belong to neither epoch's line.
  const std::uint32_t xr = d->xruns.load(std::memory_order_relaxed);
  if (xr != d->seen_xruns) {
    d->seen_xruns = xr;
    ++d->epoch;
    d->odd = 2;
  }
  const std::uint64_t c = d->cycle_count.load(std::memory_order_relaxed);
  Cycle& cy = d->cycles[c % kCycles];
  cy.frames = jack_last_frame_time(d->client);
  cy.epoch = d->odd > 0 ? ~0u : d->epoch;
  cy.raw_ns = raw;
  if (d->odd > 0) --d->odd;
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
        d->cycle_of[k] = c;
        d->count.store(k + 1, std::memory_order_release);
      }
    }
    d->silent_run = 0;
  }
  d->cycle_count.store(c + 1, std::memory_order_release);
  return 0;
}

// The onset's time on the driver's timeline (see the top), or NaN if its epoch had no usable
// cycle. `span`: cycles on each side.
double driver_ns(const Detector& d, std::size_t k, std::uint64_t span, double rate) {
  const std::uint64_t c0 = d.cycle_of[k];
  const std::uint32_t epoch = d.cycles[c0 % kCycles].epoch;
  double best = std::nan("");
  const std::uint64_t first = c0 > span ? c0 - span : 0;
  for (std::uint64_t c = first; c <= c0 + span; ++c) {
    const Cycle& cy = d.cycles[c % kCycles];
    if (cy.epoch != epoch || epoch == ~0u) continue;
    const auto df = static_cast<std::int32_t>(cy.frames - d.frames[k]);  // wraps with the counter
    const double line = cy.raw_ns - df * 1e9 / rate;
    if (!(line >= best)) best = line;
  }
  return best;
}

double raw_now_us() { return raw_now_ns() / 1e3; }

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
  if (d->in == nullptr || jack_set_process_callback(d->client, process, d) != 0 ||
      jack_set_xrun_callback(d->client, on_xrun, d) != 0 || jack_activate(d->client) != 0) {
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
  // The source port's playback latency (JACK's: frames from the cycle that computes a frame to
  // the device's output, e.g. two periods on an async server), once the server has worked it out
  // for the new connections: what turns an onset's time into when it is heard.
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  jack_latency_range_t range{};
  if (jack_port_t* src = jack_port_by_name(d->client, from.c_str())) {
    jack_port_get_latency_range(src, JackPlaybackLatency, &range);
  }
  std::printf("latency %u %u %u %u\n", range.min, range.max, jack_get_sample_rate(d->client),
              jack_get_buffer_size(d->client));
  std::printf("ready\n");
  std::fflush(stdout);
  const double rate = jack_get_sample_rate(d->client);
  const auto span = static_cast<std::uint64_t>(kAfterS * rate / jack_get_buffer_size(d->client)) + 1;
  std::size_t printed = 0;
  while (!g_stop.load()) {
    const std::size_t n = d->count.load(std::memory_order_acquire);
    const std::uint64_t cycles = d->cycle_count.load(std::memory_order_acquire);
    for (; printed < n && cycles > d->cycle_of[printed] + span; ++printed)
      std::printf("onset %.0f %u %.0f\n", d->ns[printed], d->frames[printed], driver_ns(*d, printed, span, rate));
    std::fflush(stdout);
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  jack_client_close(d->client);
  return 0;
}
