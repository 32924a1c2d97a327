// stemd-jack-latency: command-to-sound latency of a running stemd on JACK.
//
// A JACK client with two input ports, connected to the outputs of the daemon's client
// (PortAudio's JACK client is named "stemd": stemd:out_0, stemd:out_1). It loads a loud file
// into the daemon once (/stemd/load, or /load_buffer with --dialect crowdstream), then per run:
//   1. waits until its inputs have been silent for a few whole cycles, plus a random part of a
//      period (so the sends fall at every phase of the cycle, not one phase-locked spot);
//   2. arms the detector, stamps CLOCK_MONOTONIC_RAW and sends /stemd/play ID 1 0
//      (crowdstream: /play_stem ID 1 1.0 0);
//   3. the process callback finds the first frame whose |sample| exceeds --threshold and
//      timestamps it with jack_get_cycle_times() (= jack_frames_to_time() of the cycle's
//      frames); JACK's clock is CLOCK_MONOTONIC_RAW on Linux, which this tool checks at start
//      (jack_get_time());
//   4. the reply (/done /stemd/play …) is timed too, then /stemd/stop ID and silence again.
// Two times are reported per run, both relative to the send:
//   latency  = the start of the NEXT cycle + the frame's offset: when the buffer holding the
//              sample starts to leave the JACK graph for the device (the driver writes a
//              cycle's buffers out at its end). This is the command-to-output-sample latency;
//              a real card adds its own playback buffering (about (nperiods − 1) periods with
//              ALSA) on top, the dummy driver none.
//   cycle    = the start of the cycle that computed it + the offset. It can be negative on a
//              busy machine: a cycle's nominal start is its scheduled time, and a command that
//              arrives after it but before the daemon's callback actually ran still makes it.
//
// Prints one line per run and then "latency_ms MIN MEDIAN P90 MAX", "latency_periods …",
// "cycle_ms …", "reply_ms …", "runs N", "missed N", "xruns N", "period_frames N",
// "sample_rate N".
// Exit 0 when at least --runs runs were measured, 1 otherwise, 2 on usage/setup errors.
//
//   stemd-jack-latency --port P --file LOUD.wav [--host 127.0.0.1] [--runs 20] [--id 9000]
//       [--source stemd] [--threshold 0.1] [--silence 0.0001] [--dialect native|crowdstream]
//       [--name stemd-latency] [--timeout 2]

#include "control/net.hpp"
#include "control/osc.hpp"

#include <jack/jack.h>
#include <poll.h>
#include <time.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace stemd::tools {
namespace {

using control::Datagram;
using control::Endpoint;
using control::OscArg;
using control::OscMessage;
using control::UdpSocket;

double raw_us() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC_RAW, &ts);
  return static_cast<double>(ts.tv_sec) * 1e6 + ts.tv_nsec * 1e-3;
}
double mono_us() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) * 1e6 + ts.tv_nsec * 1e-3;
}

struct Options {
  std::string host = "127.0.0.1";
  int port = -1;
  std::string file;
  int runs = 20;
  int id = 9000;
  std::string source = "stemd";
  double threshold = 0.1;
  double silence = 1e-4;
  std::string dialect = "native";
  std::string name = "stemd-latency";
  double timeout = 2;
};

[[noreturn]] void usage(const std::string& why) {
  std::fprintf(stderr,
               "stemd-jack-latency: %s\n"
               "usage: stemd-jack-latency --port P --file LOUD.wav [--host 127.0.0.1] [--runs 20] [--id 9000]\n"
               "         [--source stemd] [--threshold 0.1] [--silence 0.0001] [--dialect native|crowdstream]\n"
               "         [--name stemd-latency] [--timeout 2]\n",
               why.c_str());
  std::exit(2);
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) usage(a + " needs a value");
      return argv[++i];
    };
    if (a == "--host")
      o.host = value();
    else if (a == "--port")
      o.port = std::atoi(value().c_str());
    else if (a == "--file")
      o.file = value();
    else if (a == "--runs")
      o.runs = std::atoi(value().c_str());
    else if (a == "--id")
      o.id = std::atoi(value().c_str());
    else if (a == "--source")
      o.source = value();
    else if (a == "--threshold")
      o.threshold = std::atof(value().c_str());
    else if (a == "--silence")
      o.silence = std::atof(value().c_str());
    else if (a == "--dialect")
      o.dialect = value();
    else if (a == "--name")
      o.name = value();
    else if (a == "--timeout")
      o.timeout = std::atof(value().c_str());
    else if (a == "-h" || a == "--help")
      usage("help");
    else
      usage("unknown argument '" + a + "'");
  }
  if (o.port <= 0 || o.port > 65535) usage("--port is required");
  if (o.file.empty()) usage("--file is required");
  if (o.runs < 1) usage("--runs must be ≥ 1");
  if (o.dialect != "native" && o.dialect != "crowdstream") usage("--dialect is native or crowdstream");
  if (!(o.threshold > o.silence && o.silence > 0)) usage("need 0 < --silence < --threshold");
  return o;
}

// ---------------------------------------------------------------- the JACK side

struct Detector {
  jack_client_t* client = nullptr;
  jack_port_t* in[2] = {nullptr, nullptr};
  float threshold = 0.1f, silence = 1e-4f;
  std::atomic<bool> armed{false};
  std::atomic<bool> found{false};
  std::atomic<std::uint64_t> found_us{0};        // jack time of the first loud frame (its cycle's start + offset)
  std::atomic<std::uint64_t> found_cycle_us{0};  // the duration of that cycle
  std::atomic<std::uint32_t> found_offset{0};    // its offset in the cycle
  std::atomic<std::uint32_t> silent_cycles{0};   // consecutive cycles below `silence`
  std::atomic<std::uint64_t> cycles{0};
  std::atomic<std::uint32_t> xruns{0};
};

int process(jack_nframes_t n, void* arg) {
  auto* d = static_cast<Detector*>(arg);
  jack_nframes_t cur_frames = 0;
  jack_time_t cur_us = 0, next_us = 0;
  float period_us = 0;
  const bool have_times = jack_get_cycle_times(d->client, &cur_frames, &cur_us, &next_us, &period_us) == 0;
  const float* buf[2] = {static_cast<const float*>(jack_port_get_buffer(d->in[0], n)),
                         static_cast<const float*>(jack_port_get_buffer(d->in[1], n))};
  float peak = 0;
  jack_nframes_t first = n;
  for (jack_nframes_t i = 0; i < n; ++i) {
    const float a = std::max(std::fabs(buf[0][i]), std::fabs(buf[1][i]));
    if (a > peak) peak = a;
    if (first == n && a > d->threshold) first = i;
  }
  if (first < n && d->armed.load(std::memory_order_acquire) && !d->found.load(std::memory_order_relaxed)) {
    std::uint64_t t = 0, len = 0;
    if (have_times && next_us > cur_us) {
      len = next_us - cur_us;
      t = cur_us + static_cast<std::uint64_t>(std::llround(static_cast<double>(len) * first / n));
    } else {
      const jack_nframes_t f0 = jack_last_frame_time(d->client);
      t = jack_frames_to_time(d->client, f0 + first);
      len = jack_frames_to_time(d->client, f0 + n) - jack_frames_to_time(d->client, f0);
    }
    d->found_us.store(t, std::memory_order_relaxed);
    d->found_cycle_us.store(len, std::memory_order_relaxed);
    d->found_offset.store(first, std::memory_order_relaxed);
    d->armed.store(false, std::memory_order_relaxed);
    d->found.store(true, std::memory_order_release);
  }
  if (peak < d->silence) {
    d->silent_cycles.fetch_add(1, std::memory_order_relaxed);
  } else {
    d->silent_cycles.store(0, std::memory_order_relaxed);
  }
  d->cycles.fetch_add(1, std::memory_order_release);
  return 0;
}

int on_xrun(void* arg) {
  static_cast<Detector*>(arg)->xruns.fetch_add(1, std::memory_order_relaxed);
  return 0;
}

// ---------------------------------------------------------------- the OSC side

class Osc {
 public:
  explicit Osc(const Options& o) {
    std::string error;
    auto to = control::parse_endpoint(o.host, static_cast<std::uint16_t>(o.port), error);
    if (!to) throw std::runtime_error(o.host + ": " + error);
    to_ = *to;
    auto local = control::parse_endpoint(to_.family() == AF_INET6 ? "::1" : "127.0.0.1", 0, error);
    sock_ = UdpSocket::bind(*local, error);
    if (!sock_) throw std::runtime_error("socket: " + error);
  }

  bool send(const OscMessage& m) {
    const auto bytes = control::osc_serialise(m);
    return sock_->send_to(to_, bytes.data(), bytes.size());
  }

  // Waits for the reply to `address`; returns it (address "/timeout" on time-out).
  OscMessage reply(const std::string& address, double timeout_s, double* at_us = nullptr) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
    Datagram d;
    while (std::chrono::steady_clock::now() < deadline) {
      while (sock_->receive(d)) {
        const double t = raw_us();
        OscMessage r;
        std::string error;
        if (!control::osc_parse(d.data.data(), d.data.size(), r, error)) continue;
        if ((r.address == "/done" || r.address == "/fail") && !r.args.empty() && r.args[0].is_string() &&
            r.args[0].s == address) {
          if (at_us != nullptr) *at_us = t;
          return r;
        }
      }
      pollfd p{sock_->fd(), POLLIN, 0};
      poll(&p, 1, 5);
    }
    OscMessage r;
    r.address = "/timeout";
    return r;
  }

  // Send and wait; true on /done.
  bool call(const OscMessage& m, double timeout_s, std::string& answer) {
    if (!send(m)) {
      answer = "send failed";
      return false;
    }
    const OscMessage r = reply(m.address, timeout_s);
    answer = r.to_string();
    return r.address == "/done";
  }

 private:
  Endpoint to_;
  std::unique_ptr<UdpSocket> sock_;
};

OscMessage msg(std::string address, std::vector<OscArg> args) {
  return control::osc_message(std::move(address), std::move(args));
}

struct Summary {
  double min = 0, median = 0, p90 = 0, max = 0;
};
Summary summarise(std::vector<double> v) {
  Summary s;
  if (v.empty()) return s;
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  s.min = v.front();
  s.max = v.back();
  s.median = n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
  s.p90 = v[static_cast<std::size_t>(std::ceil(0.9 * static_cast<double>(n))) - 1];  // nearest rank
  return s;
}

int run(const Options& o) {
  // ---- JACK
  Detector det;
  det.threshold = static_cast<float>(o.threshold);
  det.silence = static_cast<float>(o.silence);
  jack_status_t st{};
  det.client = jack_client_open(o.name.c_str(), JackNoStartServer, &st);
  if (det.client == nullptr) {
    std::fprintf(stderr, "stemd-jack-latency: cannot open a JACK client (status 0x%x): is jackd running?\n",
                 static_cast<unsigned>(st));
    return 2;
  }
  const jack_nframes_t period = jack_get_buffer_size(det.client);
  const jack_nframes_t rate = jack_get_sample_rate(det.client);
  det.in[0] = jack_port_register(det.client, "in_1", JACK_DEFAULT_AUDIO_TYPE, JackPortIsInput, 0);
  det.in[1] = jack_port_register(det.client, "in_2", JACK_DEFAULT_AUDIO_TYPE, JackPortIsInput, 0);
  jack_set_process_callback(det.client, process, &det);
  jack_set_xrun_callback(det.client, on_xrun, &det);
  if (det.in[0] == nullptr || det.in[1] == nullptr || jack_activate(det.client) != 0) {
    std::fprintf(stderr, "stemd-jack-latency: cannot register ports or activate\n");
    jack_client_close(det.client);
    return 2;
  }
  auto close_client = [&] {
    jack_deactivate(det.client);
    jack_client_close(det.client);
  };

  // The clock check: jack_get_time() against both monotonic clocks.
  const double j = static_cast<double>(jack_get_time());
  const double off_raw = j - raw_us(), off_mono = j - mono_us();
  std::printf("clock jack-monotonic_raw %+.0f us, jack-monotonic %+.0f us\n", off_raw, off_mono);
  if (std::fabs(off_raw) > 1000) {
    std::fprintf(stderr, "stemd-jack-latency: JACK's clock is not CLOCK_MONOTONIC_RAW here (%+.0f us apart)\n",
                 off_raw);
    close_client();
    return 2;
  }

  // Connect the daemon's first two output ports (retry: it may still be starting).
  const std::string pattern = "^" + o.source + ":";
  std::vector<std::string> outs;
  for (int tries = 0; tries < 100 && outs.size() < 2; ++tries) {
    outs.clear();
    if (const char** ports = jack_get_ports(det.client, pattern.c_str(), JACK_DEFAULT_AUDIO_TYPE, JackPortIsOutput)) {
      for (const char** p = ports; *p != nullptr; ++p) outs.emplace_back(*p);
      jack_free(ports);
    }
    if (outs.size() < 2) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  if (outs.empty()) {
    std::fprintf(stderr, "stemd-jack-latency: no output ports of JACK client '%s'\n", o.source.c_str());
    close_client();
    return 2;
  }
  if (outs.size() == 1) outs.push_back(outs[0]);
  for (int c = 0; c < 2; ++c) {
    if (jack_connect(det.client, outs[static_cast<std::size_t>(c)].c_str(), jack_port_name(det.in[c])) != 0) {
      std::fprintf(stderr, "stemd-jack-latency: cannot connect %s\n", outs[static_cast<std::size_t>(c)].c_str());
      close_client();
      return 2;
    }
  }

  // ---- OSC: load once
  const bool native = o.dialect == "native";
  const std::string play_addr = native ? "/stemd/play" : "/play_stem";
  const std::string stop_addr = native ? "/stemd/stop" : "/stop_stem";
  std::unique_ptr<Osc> osc;
  try {
    osc = std::make_unique<Osc>(o);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "stemd-jack-latency: %s\n", e.what());
    close_client();
    return 2;
  }
  const std::string path = std::filesystem::absolute(o.file).string();
  std::string answer;
  if (!osc->call(msg(native ? "/stemd/load" : "/load_buffer", {OscArg::Int(o.id), OscArg::Str(path)}), 10, answer)) {
    std::fprintf(stderr, "stemd-jack-latency: load failed: %s\n", answer.c_str());
    close_client();
    return 2;
  }

  const double period_ms = 1000.0 * period / rate;
  std::printf("stemd-jack-latency: %d runs, %s:%d, period %u frames @ %u Hz (%.3f ms), threshold %.3g, ports %s %s\n",
              o.runs, o.host.c_str(), o.port, period, rate, period_ms, o.threshold, outs[0].c_str(), outs[1].c_str());
  std::printf("%4s %11s %8s %9s %9s %7s\n", "run", "latency_ms", "periods", "cycle_ms", "reply_ms", "offset");

  std::mt19937 rng(12345);
  std::uniform_real_distribution<double> phase(0.0, period_ms);
  std::vector<double> lat_ms, cycle_ms, reply_ms;
  int missed = 0;
  const std::uint32_t xruns0 = det.xruns.load();
  auto wait_silence = [&](double timeout_s) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
    while (det.silent_cycles.load() < 3) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return true;
  };

  for (int r = 0; r < o.runs + missed && missed <= o.runs; ++r) {
    if (!wait_silence(10)) {
      std::fprintf(stderr, "stemd-jack-latency: the daemon's output is not silent\n");
      break;
    }
    std::this_thread::sleep_for(std::chrono::duration<double, std::milli>(phase(rng)));
    det.found.store(false);
    det.armed.store(true, std::memory_order_release);
    const OscMessage play =
        native ? msg(play_addr, {OscArg::Int(o.id), OscArg::Float(1.0), OscArg::Int(0)})
               : msg(play_addr, {OscArg::Int(o.id), OscArg::Float(1.0), OscArg::Float(1.0), OscArg::Int(0)});
    const double t_send = raw_us();
    if (!osc->send(play)) {
      std::fprintf(stderr, "stemd-jack-latency: send failed\n");
      break;
    }
    double t_reply = 0;
    const OscMessage rep = osc->reply(play_addr, o.timeout, &t_reply);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(o.timeout);
    while (!det.found.load(std::memory_order_acquire) && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
    det.armed.store(false);
    const bool ok = det.found.load(std::memory_order_acquire) && rep.address == "/done";
    if (ok) {
      const double c = (static_cast<double>(det.found_us.load()) - t_send) / 1000.0;
      const double l = c + static_cast<double>(det.found_cycle_us.load()) / 1000.0;
      const double rp = (t_reply - t_send) / 1000.0;
      lat_ms.push_back(l);
      cycle_ms.push_back(c);
      reply_ms.push_back(rp);
      std::printf("%4zu %11.3f %8.3f %9.3f %9.3f %7u\n", lat_ms.size(), l, l / period_ms, c, rp,
                  det.found_offset.load());
    } else {
      ++missed;
      std::printf("   - missed: %s, %s\n", rep.to_string().c_str(),
                  det.found.load() ? "sound seen" : "no sound above the threshold");
    }
    std::fflush(stdout);
    osc->call(msg(stop_addr, {OscArg::Int(o.id)}), o.timeout, answer);  // may have ended: ignore
    if (static_cast<int>(lat_ms.size()) >= o.runs) break;
  }
  const std::uint32_t xruns = det.xruns.load() - xruns0;
  osc->call(msg(native ? "/stemd/unload" : "/stop_stem", {OscArg::Int(o.id)}), o.timeout, answer);
  close_client();

  const Summary l = summarise(lat_ms), c = summarise(cycle_ms), p = summarise(reply_ms);
  std::printf("runs %zu\nmissed %d\nxruns %u\nperiod_frames %u\nsample_rate %u\n", lat_ms.size(), missed, xruns, period,
              rate);
  std::printf("latency_ms %.3f %.3f %.3f %.3f\n", l.min, l.median, l.p90, l.max);
  std::printf("latency_periods %.3f %.3f %.3f %.3f\n", l.min / period_ms, l.median / period_ms, l.p90 / period_ms,
              l.max / period_ms);
  std::printf("cycle_ms %.3f %.3f %.3f %.3f\n", c.min, c.median, c.p90, c.max);
  std::printf("reply_ms %.3f %.3f %.3f %.3f\n", p.min, p.median, p.p90, p.max);
  return static_cast<int>(lat_ms.size()) >= o.runs ? 0 : 1;
}

}  // namespace
}  // namespace stemd::tools

int main(int argc, char** argv) { return stemd::tools::run(stemd::tools::parse(argc, argv)); }
