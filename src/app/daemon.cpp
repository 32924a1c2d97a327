// The daemon's main thread [main]: wires engine, loader, controller and backend together,
// handles signals, logs the start-up line, the health line and the final summary.
//
// Threads started here: the loader thread, the backend's audio thread and the OSC server's
// thread, which is the control thread while it runs (before it starts and after it stops, the
// main thread is). SIGINT/SIGTERM are blocked in every thread and taken synchronously here with
// sigtimedwait(), so no code runs in a signal handler.
#include "daemon.hpp"

#include "audio/backend.hpp"
#include "control/controller.hpp"
#include "control/media_policy.hpp"
#include "control/osc_server.hpp"
#include "control/router.hpp"
#include "io/loader_thread.hpp"
#include "io/sound_file.hpp"
#include "logging.hpp"
#include "options.hpp"
#include "script.hpp"
#include "service_notify.hpp"

#include <spdlog/spdlog.h>

#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <thread>

#include <pthread.h>
#include <sched.h>
#include <sys/mman.h>

#ifndef STEMD_VERSION
#define STEMD_VERSION "0.0.0"
#endif

namespace stemd::app {

namespace {

struct Counters {
  std::uint64_t voice_underruns = 0, device_underflows = 0, events_dropped = 0, read_errors = 0, truncated = 0;
  bool operator==(const Counters&) const = default;
};

std::string fmt_us(std::uint64_t ns) { return fmt::format("{:.0f} µs", ns / 1e3); }

}  // namespace

int run(int argc, char** argv) {
  Options o;
  if (int rc = parse_options(argc, argv, o); rc >= 0) return rc;
  setup_logging(o.log_level);

  if (o.list_devices) {
    const auto devices = audio::list_output_devices(o.log_level != "trace" && o.log_level != "debug");
    std::printf("PortAudio output devices (%s):\n%s", audio::portaudio_version().c_str(),
                audio::format_device_list(devices).c_str());
    return 0;
  }

  // Signals are taken by sigtimedwait below; block them before any thread starts.
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGTERM);
  sigaddset(&sigs, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);

  // ---- backend first: it settles the sample rate the engine is built for
  audio::BackendConfig bc;
  bc.kind = o.backend;
  bc.device = o.device;
  bc.sample_rate = o.sample_rate;
  bc.buffer_size = o.buffer_size;
  bc.render_path = o.render_to;
  bc.render_seconds = o.duration;
  bc.quiet_alsa = o.log_level != "trace" && o.log_level != "debug";

  io::LoaderConfig lc;
  std::unique_ptr<io::LoaderThread> loader;  // created once the rate is known
  std::unique_ptr<audio::Backend> backend;
  std::string err;
  // The render backend needs the loader; build it after the loader exists (rate from flags).
  if (o.backend == "auto") {
    if (audio::list_output_devices(bc.quiet_alsa).empty()) {
      spdlog::warn(
          "PortAudio has no output device: using the null backend (no sound). "
          "Use --backend portaudio to insist, or --list-devices to see what PortAudio sees.");
      bc.kind = "null";
    } else {
      bc.kind = "portaudio";
    }
  }
  if (bc.kind == "portaudio") {
    backend = audio::make_portaudio_backend(bc);
  } else if (bc.kind == "null") {
    backend = audio::make_null_backend(bc);
  }
  if (backend && !backend->open(err)) {
    spdlog::error("{}", err);
    return 2;
  }
  const int rate = backend ? backend->sample_rate() : (o.sample_rate > 0 ? o.sample_rate : 48000);

  lc.ring_frames = std::max<std::int64_t>(static_cast<std::int64_t>(o.ring_ms * 1e-3 * rate), 2 * o.buffer_size);
  lc.chunk_frames = std::min<std::int64_t>(8192, std::max<std::int64_t>(lc.ring_frames / 3, 256));
  lc.prefill_frames =
      std::min<std::int64_t>(lc.ring_frames, std::max<std::int64_t>(lc.chunk_frames, 4 * o.buffer_size));
  loader = std::make_unique<io::LoaderThread>(lc);
  if (bc.kind == "render") {
    backend = audio::make_render_backend(bc, loader.get());
    if (!backend->open(err)) {
      spdlog::error("{}", err);
      return 2;
    }
  }

  engine::EngineConfig ec;
  ec.sample_rate = rate;
  ec.max_block_frames = std::max<std::uint32_t>(o.buffer_size, 4096);
  ec.max_voices = o.max_voices;
  ec.max_resampled_voices = o.max_resampled_voices;
  ec.max_stretched_voices =
      o.stretch_method == "time_stretch" ? std::max<std::uint32_t>(o.max_stretched_voices, 8) : o.max_stretched_voices;
  ec.limiter = o.limiter;
  ec.limiter_threshold = static_cast<float>(std::pow(10.0, o.limiter_threshold_db / 20.0));
  ec.resample_quality = o.resample_quality == "best" ? 2 : o.resample_quality == "medium" ? 1 : 0;
  engine::Engine engine(ec);
  engine.set_loader_wakeup(&io::LoaderThread::wake_cb, loader.get());

  io::LoadOptions lo;
  lo.output_rate = rate;
  lo.preload_limit_bytes = static_cast<std::int64_t>(o.preload_limit_mb * 1024 * 1024);
  lo.head_frames = static_cast<std::int64_t>(o.head_ms * 1e-3 * rate);
  control::Controller ctl(engine, *loader, lo);

  // ---- OSC: policy, router, sockets (bound now: a port in use is a start-up error)
  control::MediaPolicy media;
  control::RouterConfig rc;
  rc.sample_rate = rate;
  rc.buffer_size = o.buffer_size;
  rc.output_latency_s = backend ? backend->output_latency_seconds() : 0.0;
  rc.backend = bc.kind;
  rc.max_sources = o.max_sources;
  rc.max_subscribers = o.max_subscribers;
  rc.limits.max_string = o.max_string;
  rc.bpm = o.bpm;
  rc.time_stretch = o.stretch_method == "time_stretch";
  rc.equal_power = o.crossfade_law == "equal_power";
  for (int i = 0; i < 3; ++i) rc.movement_thresholds[i] = o.movement_thresholds[static_cast<std::size_t>(i)];
  for (int i = 0; i < 5; ++i) rc.movement_tempos[i] = o.movement_tempos[static_cast<std::size_t>(i)];
  rc.tone_level = std::pow(10.0, o.tone_level_db / 20.0);
  rc.tone_seconds = o.tone_seconds;
  rc.meter = o.meter;
  {
    std::string e2;
    auto bind_at = control::parse_endpoint(o.osc_bind, o.osc_port, e2);
    if (!o.no_osc && !bind_at) {
      spdlog::error("--osc-bind {}: {}", o.osc_bind, e2);
      return 2;
    }
    if (!media.configure(o.media_root, o.no_osc || bind_at->is_loopback(), err)) {
      spdlog::error("{}", err);
      return 2;
    }
  }
  control::Router router(ctl, rc, media);
  control::OscServerConfig oc;
  oc.bind = o.osc_bind;
  oc.port = o.osc_port;
  oc.tcp = o.osc_tcp_port >= 0;
  oc.tcp_port = static_cast<std::uint16_t>(o.osc_tcp_port < 0 ? 0 : o.osc_tcp_port);
  oc.allow = o.allow;
  oc.max_tcp_clients = o.max_tcp_clients;
  control::OscServer server(ctl, router, oc);
  if (!o.no_osc && !server.open(err)) {
    spdlog::error("{}", err);
    return 2;
  }

  ctl.set_event_handler([&router](const engine::Event& e, const control::VoiceInfo& v) {
    router.on_event(e, v);
    switch (e.type) {
      case engine::EventType::kVoiceStarted:
        spdlog::debug("voice {} started (slot {} '{}')", e.voice, v.slot, v.name);
        break;
      case engine::EventType::kVoiceEnded:
        if (e.reason == engine::EndReason::kError) {
          spdlog::warn("voice {} (slot {} '{}') ended: {}", e.voice, v.slot, v.name, engine::to_string(e.reason));
        } else {
          spdlog::info("voice {} (slot {} '{}') ended: {}", e.voice, v.slot, v.name, engine::to_string(e.reason));
        }
        break;
      case engine::EventType::kVoiceUnderrun:
        spdlog::debug("voice {} underrun #{}", e.voice, e.count);
        break;
      case engine::EventType::kCommandLate:
        spdlog::debug("scheduled command for voice {} applied {} frames late", e.voice, e.count);
        break;
      case engine::EventType::kCommandDropped:
        spdlog::debug("command for voice {} ignored: it is no longer playing", e.voice);
        break;
    }
  });

  // ---- --play files: loaded before the stream starts; any failure is fatal at start
  int slot = 1;
  std::vector<int> slots;
  for (const auto& path : o.play) {
    const std::string name = std::filesystem::path(path).stem().string();
    if (!ctl.load(slot, path, name, err)) {
      spdlog::error("cannot play {}", err);
      return 1;
    }
    slots.push_back(slot++);
  }
  if (bc.kind == "render" && o.duration <= 0 && !o.script.empty()) {
    spdlog::error("--render-to with --script needs --duration (voices start at the script's times)");
    return 2;
  }
  if (bc.kind == "render" && o.duration <= 0 && o.loop && !o.play.empty()) {
    spdlog::error("--render-to with --loop needs --duration (a loop never ends)");
    return 2;
  }
  // The old server's --a/--b/--c/--d: a deck's base id, looped, at --vol.
  static constexpr int kDeckBase[4] = {100, 1100, 2100, 3100};
  for (int d = 0; d < 4; ++d) {
    if (o.deck_files[d].empty()) continue;
    const std::string name = std::filesystem::path(o.deck_files[d]).stem().string();
    if (!ctl.load(kDeckBase[d], o.deck_files[d], name, err)) {
      spdlog::error("cannot play {}", err);
      return 1;
    }
  }
  std::vector<float> deck_levels;
  if (!o.levels.empty()) deck_levels = o.levels;
  if (!o.ab.empty()) {
    deck_levels.resize(std::max<std::size_t>(deck_levels.size(), 2), 1.0f);
    deck_levels[0] = o.ab[0];
    deck_levels[1] = o.ab[1];
  }
  for (std::size_t d = 0; d < deck_levels.size(); ++d)
    ctl.set_deck_level(static_cast<int>(d), deck_levels[d], -1.0, err);
  // --script: every line routed now, at its exact frame (the engine holds them until then).
  if (!o.script.empty()) {
    std::vector<ScriptLine> lines;
    if (!load_script(o.script, lines, err)) {
      spdlog::error("--script {}", err);
      return 2;
    }
    for (const ScriptLine& l : lines) {
      const auto frame = static_cast<std::int64_t>(std::llround(l.seconds * rate));
      const control::OscMessage reply = router.handle_at(l.message, frame);
      if (reply.address == "/fail") {
        spdlog::error("--script {}:{}: {} → {}", o.script, l.line, l.message.to_string(), reply.to_string());
        return 2;
      }
    }
    spdlog::info("--script {}: {} messages scheduled", o.script, lines.size());
  }
  loader->start();
  auto play_all = [&]() -> bool {
    for (int s : slots) {
      control::VoiceHandle h;
      control::PlayOptions po;
      po.loop = o.loop;
      po.volume = o.volume;
      if (!ctl.play(s, po, h, err)) {
        spdlog::error("cannot play slot {}: {}", s, err);
        return false;
      }
    }
    for (int d = 0; d < 4; ++d) {
      if (o.deck_files[d].empty()) continue;
      control::VoiceHandle h;
      control::PlayOptions po;
      po.loop = true;
      po.volume = o.deck_volume;
      po.deck = d;
      po.rate = static_cast<float>(o.rate);
      if (!ctl.play(kDeckBase[d], po, h, err)) {
        spdlog::error("cannot play buffer {}: {}", kDeckBase[d], err);
        return false;
      }
      router.adopt_player(kDeckBase[d], h);
    }
    return true;
  };
  // Offline and null output: queue the plays before the first block, so they start at frame 0.
  const bool device = bc.kind == "portaudio";
  if (!device && !play_all()) return 1;

  if (!backend->start(engine, err)) {
    spdlog::error("{}", err);
    loader->stop();
    return 2;
  }
  if (device) {
    // A device's first periods can go nowhere while its connections settle (JACK connects
    // PortAudio's ports after activation): start the --play files once the stream has run a few.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
    while (engine.metrics().callbacks.load() < 4 && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    if (!play_all()) {
      backend->stop();
      loader->stop();
      return 1;
    }
  }
  if (!o.no_osc) {
    spdlog::info(
        "{}{}", server.describe(),
        media.root().empty() ? " (no --media-root: any readable file on loopback)" : ", media root " + media.root());
    server.start();  // from here on the server's thread is the control thread
  }
  const double budget_ms = 1000.0 * o.buffer_size / rate;
  ServiceNotifier systemd;  // READY only now: the device is open and the OSC socket bound
  systemd.ready(fmt::format("playing on {} at {} Hz, {} frames ({:.1f} ms){}", backend->describe(), rate, o.buffer_size,
                            budget_ms, o.no_osc ? std::string() : ", " + server.describe()));
  spdlog::info("buffer size {} frames from {}", o.buffer_size, o.preset_reason);
  if (o.mlock) {
    if (mlockall(MCL_CURRENT | MCL_FUTURE) == 0) {
      spdlog::info("memory locked (mlockall)");
    } else {
      spdlog::warn("--mlock: mlockall failed: {} — raise LimitMEMLOCK (systemd) or memlock in limits.conf",
                   std::strerror(errno));
    }
  }
  spdlog::info(
      "stemd {} started: {}, {} Hz, buffer {} frames = {:.1f} ms (output latency {:.1f} ms), "
      "max {} voices, ring {:.0f} ms, head {:.0f} ms, preload ≤ {:.0f} MB, limiter {}, libsndfile {}",
      STEMD_VERSION, backend->describe(), rate, o.buffer_size, budget_ms, backend->output_latency_seconds() * 1000.0,
      o.max_voices, o.ring_ms, o.head_ms, o.preload_limit_mb,
      o.limiter ? fmt::format("at {:.1f} dBFS", o.limiter_threshold_db) : std::string("off"), io::sndfile_version());

  // ---- the real-time policy the audio thread actually runs with (logged once it has run)
  bool policy_logged = false;
  auto log_policy = [&] {
    const auto tid = static_cast<pthread_t>(engine.metrics().audio_thread.load());
    if (tid == 0) return;
    policy_logged = true;
    int policy = 0;
    sched_param sp{};
    if (pthread_getschedparam(tid, &policy, &sp) != 0) return;
    if (policy == SCHED_FIFO || policy == SCHED_RR) {
      spdlog::info("audio thread: {} priority {}", policy == SCHED_FIFO ? "SCHED_FIFO" : "SCHED_RR", sp.sched_priority);
    } else if (bc.kind != "render") {
      spdlog::warn(
          "audio thread: SCHED_OTHER (not real-time): real-time scheduling was not permitted — under systemd "
          "the unit's LimitRTPRIO=95 allows it; otherwise give the user an rtprio limit (group audio, "
          "/etc/security/limits.d){}",
          bc.kind == "portaudio" ? "; with JACK, the JACK server decides (jackd -R)" : "");
    }
  };

  // ---- main loop: service the controller, health line, signals
  Counters last{};
  auto hist_prev = engine.metrics().callback_ns.snapshot();
  auto next_health = std::chrono::steady_clock::now() + std::chrono::seconds(1);
  const auto t_start = std::chrono::steady_clock::now();
  int exit_code = 0;
  std::string stop_reason = "finished";
  std::uint64_t stall_callbacks = 0;
  auto stall_since = std::chrono::steady_clock::now();
  for (;;) {
    timespec timeout{0, 20'000'000};  // 20 ms: service often enough for the retire queue
    const int sig = sigtimedwait(&sigs, nullptr, &timeout);
    if (sig == SIGINT || sig == SIGTERM) {
      stop_reason = sig == SIGINT ? "SIGINT" : "SIGTERM";
      break;
    }
    if (sig == SIGHUP) spdlog::info("SIGHUP: nothing to reload yet");
    if (o.no_osc) ctl.service();  // otherwise the OSC server's thread does
    systemd.tick(engine.metrics().callbacks.load(std::memory_order_relaxed));
    if (!policy_logged) log_policy();
    if (backend->finished()) break;
    // A device that stops calling back (its server died, the USB interface went away) is lost:
    // exit with an error so the service manager restarts stemd (Restart=on-failure), rather
    // than sit silent — or hang in the audio API on shutdown.
    if (bc.kind == "portaudio") {
      const std::uint64_t cb = engine.metrics().callbacks.load(std::memory_order_relaxed);
      const auto now_t = std::chrono::steady_clock::now();
      if (cb != stall_callbacks) {
        stall_callbacks = cb;
        stall_since = now_t;
      } else if (cb > 0 && now_t - stall_since > std::chrono::seconds(2)) {
        spdlog::error(
            "the audio device stopped: no callback for 2 s (device lost? the JACK server gone?) — "
            "exiting so the service manager can restart stemd");
        backend->mark_lost();
        exit_code = 3;
        stop_reason = "device lost";
        break;
      }
    }
    if (backend->failed()) {
      spdlog::error("{}", backend->failure());
      exit_code = 3;
      stop_reason = "backend failure";
      break;
    }
    if (bc.kind != "render" && o.duration > 0 &&
        engine.metrics().frames.load(std::memory_order_relaxed) >= static_cast<std::uint64_t>(o.duration * rate)) {
      stop_reason = "--duration reached";
      break;
    }
    const auto now = std::chrono::steady_clock::now();
    if (now >= next_health) {
      next_health = now + std::chrono::seconds(1);
      auto& m = engine.metrics();
      const auto ls = loader->stats();
      Counters c{m.voice_underruns.load(), m.device_underflows.load(), m.events_dropped.load(), ls.read_errors,
                 ls.truncated};
      const auto hist = m.callback_ns.snapshot();
      const std::uint32_t min_fill = m.take_min_ring_fill();
      if (o.watch) {
        spdlog::info("watch: {} voices, {:.1f} s played, underruns {}, device underflows {}, lowest ring fill {}%",
                     m.voices_active.load(), static_cast<double>(m.frames.load()) / rate, c.voice_underruns,
                     c.device_underflows, min_fill / 10);
      }
      if (!(c == last)) {
        auto window = hist;
        for (std::size_t i = 0; i < window.size(); ++i) window[i] -= hist_prev[i];
        const auto p50 = engine::DurationHistogram::percentile_ns(window, 0.5);
        const auto p99 = engine::DurationHistogram::percentile_ns(window, 0.99);
        std::string advice;
        if (c.voice_underruns > last.voice_underruns || c.device_underflows > last.device_underflows) {
          advice =
              fmt::format(" — audio is glitching: raise --buffer-size (now {} = {:.1f} ms){}", o.buffer_size, budget_ms,
                          c.voice_underruns > last.voice_underruns ? " or --ring-ms (disk too slow)" : "");
        }
        spdlog::warn(
            "health: voice underruns +{} (total {}), device underflows +{} (total {}), read errors {}, "
            "truncated streams {}, dropped events {}; callback p50 {} p99 {} max {} of {:.0f} µs budget; "
            "lowest ring fill {}%; {} voices{}",
            c.voice_underruns - last.voice_underruns, c.voice_underruns, c.device_underflows - last.device_underflows,
            c.device_underflows, c.read_errors, c.truncated, c.events_dropped, fmt_us(p50), fmt_us(p99),
            fmt_us(m.callback_max_ns.load()), budget_ms * 1000.0, min_fill / 10, m.voices_active.load(), advice);
        last = c;
      }
      hist_prev = hist;
      if (systemd.active()) {
        systemd.status(fmt::format("{} voices, {} underruns, {} device underflows, callback p99 {}",
                                   m.voices_active.load(), c.voice_underruns, c.device_underflows,
                                   fmt_us(engine::DurationHistogram::percentile_ns(hist, 0.99))));
      }
    }
  }

  // ---- shutdown: fade the master, stop the stream, join threads
  systemd.stopping();
  server.stop();  // the main thread is the control thread again
  if (stop_reason == "SIGINT" || stop_reason == "SIGTERM" || stop_reason == "--duration reached") {
    if (ctl.set_master(0.0f, o.shutdown_fade_ms / 1000.0, err) && bc.kind != "render") {
      // Wait for the fade to play out (plus a period), bounded, still servicing.
      const auto frames_then = engine.metrics().frames.load();
      const auto need = static_cast<std::uint64_t>((o.shutdown_fade_ms / 1000.0) * rate) + o.buffer_size;
      for (int i = 0; i < 200 && engine.metrics().frames.load() < frames_then + need; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
      }
    }
  }
  backend->stop();
  loader->stop();
  ctl.service();
  const auto& m = engine.metrics();
  const auto hist = m.callback_ns.snapshot();
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();
  spdlog::info(
      "stopped ({}): {:.1f} s of audio in {:.1f} s, callbacks={} voice_underruns={} device_underflows={} "
      "callback p50={} p99={} max={} (budget {:.0f} µs), loader reads={} read_errors={}",
      stop_reason, static_cast<double>(m.frames.load()) / rate, secs, m.callbacks.load(), m.voice_underruns.load(),
      m.device_underflows.load(), fmt_us(engine::DurationHistogram::percentile_ns(hist, 0.5)),
      fmt_us(engine::DurationHistogram::percentile_ns(hist, 0.99)), fmt_us(m.callback_max_ns.load()),
      budget_ms * 1000.0, loader->stats().reads, loader->stats().read_errors);
  if (backend->failed() && exit_code == 0) {
    spdlog::error("{}", backend->failure());
    exit_code = 3;
  }
  return exit_code;
}

}  // namespace stemd::app
