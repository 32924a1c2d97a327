// The daemon's start-up [main]: options, signals, the backend, the Instance, the start-up flags
// and the stream, in this order. See daemon_run.hpp.
#include "daemon_run.hpp"

#include "config_io.hpp"
#include "control/deck_ids.hpp"
#include "control/net.hpp"
#include "base/log_guard.hpp"
#include "device_hint.hpp"
#include "io/fd_budget.hpp"
#include "io/sound_file.hpp"
#include "loader_sizing.hpp"
#include "logging.hpp"
#include "script.hpp"

#include <spdlog/spdlog.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <thread>
#include <vector>

#include <pthread.h>
#include <sys/mman.h>
#include <sys/resource.h>

#ifndef STEMD_VERSION
#define STEMD_VERSION "0.0.0"
#endif

namespace stemd::app {

int DaemonRun::prepare() {
  // A hand-over's new image: read first, so that whatever way this run ends removes the file.
  resume_ = take_resume_env();
  // The config file through the helper process, given up on after --load-timeout (the command
  // line's): a file system that does not answer neither hangs the start nor keeps SIGTERM out.
  int stop = 0;
  ConfigInput config = start_config_input(argc_, argv_, stop);
  if (int rc = parse_options(argc_, argv_, o_, nullptr, &config); rc >= 0) {
    if (stop != 0) {
      drop_resume_file();
      die_of(stop);
    }
    return rc;
  }
  setup_logging(o_.log_level);
  spdlog::info("{}", o_.config_source);
  for (const auto& w : o_.config_warnings) spdlog::warn("{}", w);
  if (!o_.device.empty() && (o_.backend == "null" || o_.backend == "render")) {
    spdlog::warn("--device '{}' is ignored: the {} backend has no device (--backend portaudio or auto uses it)",
                 o_.device, o_.backend);
  }
  // A daemon never starts a JACK server of its own (libjack would, when none is running).
  setenv("JACK_NO_START_SERVER", "1", 0);
  for (const auto& w : resume_.ignored) spdlog::warn("the hand-over environment: {} (ignored)", base::log_escape(w));
  if (const char* why = std::getenv(kAbortRestartVar); why != nullptr) {  // abort_reexec.hpp
    spdlog::warn("started again (same PID): {} — the start-up flags and the state file are read again",
                 base::log_escape(std::string(why).substr(0, 200)));
    unsetenv(kAbortRestartVar);
  }
  if (resume_.active) {
    spdlog::warn("resuming after the audio device was lost ({}): restoring the state from {}",
                 base::log_escape(resume_.reason), resume_.state_path);
    device_.resume_lost(resume_.losses, resume_.reason, resume_.lost_at_ns);
    // What the start-up flags did is in the hand-over state: not again.
    o_.play.clear();
    for (auto& f : o_.deck_files) f.clear();
    o_.levels.clear();
    o_.ab.clear();
    o_.script.clear();
    o_.c_preload.clear();  // deck C is in the hand-over state; reloading it would stop its player
    o_.dummy_after = -1;   // the simulated /dummy happened in the first image
  }
  if (o_.list_devices) {
    const auto devices = audio::list_output_devices(o_.log_level != "trace" && o_.log_level != "debug");
    std::printf("PortAudio output devices (%s):\n%s", audio::portaudio_version().c_str(),
                audio::format_device_list(devices).c_str());
    if (devices.empty()) {
      std::printf("\n%s",
                  no_device_hint(audio::list_host_apis(o_.log_level != "trace" && o_.log_level != "debug")).c_str());
    }
    return 0;
  }
  block_signals_and_raise_fd_limit();
  return -1;
}

void DaemonRun::block_signals_and_raise_fd_limit() {
  // Signals are taken by sigtimedwait in the main loop; block them before any thread starts.
  sigemptyset(&sigs_);
  sigaddset(&sigs_, SIGINT);
  sigaddset(&sigs_, SIGTERM);
  sigaddset(&sigs_, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &sigs_, nullptr);

  // Every streamed source keeps its file open: the soft fd limit goes to the hard one (at most
  // io::kMaxNofile), and the descriptor budget counts against what it is then (fd_budget.hpp).
  const io::NofileRaise raise = io::raise_nofile();
  spdlog::info("{}", io::describe(raise));
  const auto limit = static_cast<std::int64_t>(std::min<std::uint64_t>(raise.now, INT64_MAX));
  const std::size_t tcp = !o_.no_osc && o_.osc_tcp_port >= 0 ? o_.max_tcp_clients : 0;
  const std::size_t http = o_.http_port >= 0 ? o_.http_max_clients : 0;
  fds_ = std::make_shared<io::FdBudget>(limit, io::fd_reserve(limit, tcp, http, o_.link));
}

// What is open once the device, the sockets, the log and the threads that hold descriptors of
// their own are (measured, fd_budget.hpp) cannot hold streamed sources: say at start when
// --max-sources of them cannot all stay open. Measured after the control thread and the web
// monitor have started: the OSC server's wake-up descriptor (a dup, made by start()) was counted
// out before, and the number it gave was one too many (new-user pass 25: "at most 66 fit", the
// 66th refused).
void DaemonRun::check_descriptors() {
  if (!fds_ || !fds_->measure()) return;
  const std::int64_t fit = fds_->limit() - fds_->reserve() - fds_->others();
  if (fit >= static_cast<std::int64_t>(o_.max_sources)) return;
  spdlog::warn(
      "--max-sources {}: at most {} streamed sources fit the open-file limit {} ({} descriptors open at start, a "
      "reserve of {} kept for clients, the device and helpers); streamed loads past that are refused (files held in "
      "memory, up to --preload-limit-mb, keep none open): raise LimitNOFILE (systemd) or nofile in limits.conf, or "
      "lower --max-sources",
      o_.max_sources, std::max<std::int64_t>(0, fit), fds_->limit(), fds_->others(), fds_->reserve());
}

// The backend first: it settles the sample rate the engine is built for. The render backend
// needs the loader: it is built in build_instance(), between the Instance's two steps.
int DaemonRun::open_backend() {
  bc_.kind = o_.backend;
  bc_.device = o_.device;
  bc_.sample_rate = resume_.active && resume_.rate > 0 ? resume_.rate : o_.sample_rate;
  bc_.buffer_size = o_.buffer_size;
  bc_.render_path = o_.render_to;
  bc_.render_seconds = o_.duration;
  bc_.quiet_alsa = o_.log_level != "trace" && o_.log_level != "debug";
  // No --buffer-size nor --preset: on JACK, the server's period (one callback per cycle) — when the
  // device is there at start, and at a hand-over's reopen (the server may come back with another
  // period: the previous image's 1024 under a 4096 server wobbled quantised starts by +4–22 ms,
  // outside pass 29, L2; the engine takes blocks of up to 4096 frames, the followed period's
  // bound). One waited for at start keeps the buffer size the engine was built for.
  bc_.follow_server_period = o_.buffer_size_from_board;
  if (resume_.active && o_.buffer_size_from_board && resume_.buffer > 0 && resume_.buffer != o_.buffer_size) {
    o_.preset_reason = fmt::format("the previous image's (before the hand-over; {} would have given {})",
                                   o_.preset_reason, o_.buffer_size);
    o_.buffer_size = bc_.buffer_size = resume_.buffer;
  }
  // A configured device (--device, or --backend portaudio) is waited for when it is not there
  // at start (a USB DAC that appears late, a JACK server started after stemd): never null.
  device_configured_ = !o_.device.empty() || o_.backend == "portaudio";
  wanted_ = o_.device.empty() ? std::string("(the default output device)") : "'" + o_.device + "'";
  bool opened = true;
  if (resume_.active && bc_.kind != "null" && bc_.kind != "render") {
    // A hand-over's new image: OSC and the web monitor first, the device in the main loop once
    // its server answers (retry_device) — its open waits as long as a frozen server does not.
    bc_.kind = "portaudio";
    if (bc_.sample_rate == 0) bc_.sample_rate = 48000;
    for (const pid_t pid : resume_.helpers) ending_probes_.push_back(FileJob::adopt(pid));
    backend_ = audio::make_portaudio_backend(bc_);
    err_ = "it is opened again once its audio server answers (the main loop asks it first)";
    opened = false;
  } else if (bc_.kind == "portaudio" || (bc_.kind == "auto" && !o_.device.empty())) {
    bc_.kind = "portaudio";
    if (int rc = probe_at_start(false, opened); rc >= 0) return rc;
  } else if (bc_.kind == "auto") {
    if (int rc = probe_at_start(true, opened); rc >= 0) return rc;
  } else if (bc_.kind == "null") {
    backend_ = audio::make_null_backend(bc_);
    opened = backend_->open(err_);
  }
  if (bc_.kind == "null" && !backend_) {  // auto found no output device
    backend_ = audio::make_null_backend(bc_);
    opened = backend_->open(err_);
  }
  if (backend_ && !opened) {
    if (!resume_.active && !device_configured_) {
      spdlog::error("{}", err_);
      return 2;
    }
    device_open_ = false;
    if (resume_.active) {
      // Resuming: the device is not back yet. Everything else starts; the main loop retries.
      spdlog::warn("the audio device is not back yet: {}", err_);
    } else {
      waiting_ = true;
      device_.set_waiting(err_);
      // Why no fallback: a device named, or (no --device) the backend asked for by name.
      const std::string why = !o_.device.empty() ? "the device '" + o_.device + "' is configured"
                                                 : "--backend portaudio was asked for, not auto";
      spdlog::warn(
          "waiting for the audio device {}: {} — stemd answers OSC meanwhile, retries every 0.5 s for 30 s, then "
          "doubling to 5 s, "
          "and plays as soon as it appears (no fallback to the null backend: {})",
          wanted_, err_, why);
      // The engine is built for one rate and buffer size: the device is opened at them when it appears.
      const bool remake = bc_.sample_rate == 0 || bc_.follow_server_period;
      bc_.follow_server_period = false;
      if (bc_.sample_rate == 0) {
        bc_.sample_rate = 48000;
        spdlog::info("while waiting, the output rate is {} Hz (no --sample-rate): the device must run at it", 48000);
      }
      if (remake) backend_ = audio::make_portaudio_backend(bc_);
    }
  }
  if (bc_.kind == "null") {
    device_.set_output_note(o_.backend == "null" ? "no audio output: --backend null"
                                                 : "no audio output: --backend auto found no output device");
  }
  if (resume_.active && device_open_) device_.set_running();
  rate_ = backend_ && device_open_ ? backend_->sample_rate() : bc_.sample_rate > 0 ? bc_.sample_rate : 48000;
  if (backend_ && device_open_ && backend_->buffer_size() != o_.buffer_size) {  // the JACK server's period
    o_.preset_reason = fmt::format("the JACK server's period (no --buffer-size or --preset; {} would have given {})",
                                   o_.preset_reason, o_.buffer_size);
    o_.buffer_size = backend_->buffer_size();
  }
  real_device_ = bc_.kind == "portaudio";
  return -1;
}

namespace {

// A voice's end and a late start are one line each, as many as a client makes voices end or
// start late (a bundle of plays and stops, seeks of time-stretched voices, sent in a loop): at
// most 5 lines a second per kind in the router's log limits, with a count of the rest.
bool may_log(base::LogLimiter* limit, const char* kind, std::string& note, bool info = true) {
  std::uint64_t skipped = 0;
  if (limit != nullptr && !(info ? limit->allow_info(kind, skipped) : limit->allow(kind, skipped))) return false;
  note = base::suppressed_note(skipped);
  return true;
}

}  // namespace

void log_voice_event(const engine::Event& e, const control::VoiceInfo& v, base::LogLimiter* limit) {
  std::string note;
  switch (e.type) {
    case engine::EventType::kVoiceStarted:
      spdlog::debug("voice {} started (id {} '{}')", e.voice, v.slot, base::log_escape(v.name));
      break;
    case engine::EventType::kVoiceEnded:
      if (e.reason == engine::EndReason::kError) {
        if (!may_log(limit, "voices ended with an error", note, false)) break;
        spdlog::warn("voice {} (id {} '{}') ended: {}{}", e.voice, v.slot, base::log_escape(v.name),
                     control::end_reason_text(e.reason, v), note);
      } else {
        if (!may_log(limit, "voices ended", note)) break;
        spdlog::info("voice {} (id {} '{}') ended: {}{}", e.voice, v.slot, base::log_escape(v.name),
                     control::end_reason_text(e.reason, v), note);
      }
      break;
    case engine::EventType::kVoiceUnderrun:
      spdlog::debug("voice {} underrun #{}", e.voice, e.count);
      break;
    case engine::EventType::kCommandLate:
      spdlog::debug("scheduled command for voice {} applied {} frames late", e.voice, e.count);
      break;
    case engine::EventType::kVoiceDeferred:
      if (!may_log(limit, "voices heard late (time-stretcher primes)", note)) break;
      spdlog::info(
          "voice {} (id {} '{}') heard {} output frames late, on the grid (its start, seek or tempo change "
          "waited for its time-stretcher's prime): more voices needed one primed in one period than the "
          "audio thread primes at once{}",
          e.voice, v.slot, base::log_escape(v.name), e.count, note);
      break;
    case engine::EventType::kCommandDropped:
      spdlog::debug("command for voice {} ignored: it is no longer playing", e.voice);
      break;
  }
}

// The Instance's mixer core and the OSC server's settings, from the options and the rate.
InstanceConfig DaemonRun::instance_config() const {
  InstanceConfig ic;
  // A hand-over's image that follows the server's period may get up to 4096 frames a callback.
  const std::uint32_t period =
      resume_.active && bc_.follow_server_period ? std::max<std::uint32_t>(o_.buffer_size, 4096) : o_.buffer_size;
  ic.loader = loader_config(o_.ring_ms, o_.ring_min_ms, o_.ring_max_ms, period, rate_);
  ic.loader.rt_priority = o_.loader_priority;
  engine::EngineConfig& ec = ic.engine;
  ec.sample_rate = rate_;
  ec.max_block_frames = std::max<std::uint32_t>(o_.buffer_size, 4096);
  ec.max_voices = o_.max_voices;
  ec.max_resampled_voices = o_.max_resampled_voices;
  ec.max_stretched_voices = o_.max_stretched_voices;  // 8 by default with time_stretch (options.cpp)
  ec.stretch_primes_per_callback = o_.stretch_primes_per_callback > 0
                                       ? static_cast<std::uint32_t>(o_.stretch_primes_per_callback)
                                       : ec.max_stretched_voices + 1;  // 0: no bound
  ec.limiter = o_.limiter == "true";
  ec.soft_clip = o_.limiter == "soft_clip";
  ec.master = static_cast<float>(o_.master);
  ec.limiter_threshold = static_cast<float>(std::pow(10.0, o_.limiter_threshold_db / 20.0));
  ec.stretch_faster = o_.stretch_engine == "faster";
  ec.stretch_buses = o_.stretch_buses >= 0                 ? static_cast<std::uint32_t>(o_.stretch_buses)
                     : o_.stretch_method == "time_stretch" ? 2u
                                                           : 0u;
  ec.stretch_bus_share = o_.stretch_bus_share;
  ec.resample_quality = o_.resample_quality == "best" ? 2 : o_.resample_quality == "medium" ? 1 : 0;
  ec.monitor = o_.http_port >= 0;  // meters and the master's tap for the web monitor
  io::LoadOptions& lo = ic.load;
  lo.output_rate = rate_;
  lo.preload_limit_bytes = static_cast<std::int64_t>(o_.preload_limit_mb * 1024 * 1024);
  lo.head_frames = static_cast<std::int64_t>(o_.head_ms * 1e-3 * rate_);
  lo.max_channels = static_cast<int>(o_.max_channels);
  lo.budget = std::make_shared<io::MemoryBudget>(static_cast<std::int64_t>(o_.max_memory_mb) << 20);
  lo.fds = fds_;  // streamed loads keep the descriptors' reserve
  ic.media_root = o_.media_root;
  ic.osc = !o_.no_osc;
  control::OscServerConfig& oc = ic.osc_server;
  oc.bind = o_.osc_bind;
  oc.port = o_.osc_port;
  oc.tcp = o_.osc_tcp_port >= 0;
  oc.tcp_port = static_cast<std::uint16_t>(o_.osc_tcp_port < 0 ? 0 : o_.osc_tcp_port);
  oc.allow = o_.allow;
  oc.max_tcp_clients = o_.max_tcp_clients;
  oc.max_tcp_clients_per_address = o_.max_tcp_clients_per_address;
  oc.tcp_idle_timeout_s = o_.tcp_idle_timeout;
  oc.tcp_frame_timeout_s = o_.tcp_frame_timeout;
  oc.device = &device_;
  ic.on_event = log_voice_event;
  return ic;
}

// The router's settings (once the backend is open: its latency) and whether loads without a
// media root are allowed only on loopback. Returns -1, or 2 for a flag that does not parse.
int DaemonRun::router_config(control::RouterConfig& rc, bool& media_loopback_only) const {
  rc.sample_rate = rate_;
  rc.buffer_size = o_.buffer_size;
  // A hand-over's image has no device yet: the latency the previous one measured, until it is back
  // (its Link join line said 0.0 ms: outside pass 28, user L7).
  rc.output_latency_s = backend_ && device_open_ ? backend_->output_latency_seconds() : resume_.output_latency_s;
  rc.backend = bc_.kind;
  rc.version = build_version();
  rc.max_sources = o_.max_sources;
  rc.max_subscribers = o_.max_subscribers;
  rc.subscription_ttl_s = o_.subscription_ttl;
  rc.load_timeout_s = o_.load_timeout;
  if (o_.cookie_exempt == "none") {
    rc.cookie_exempt = control::AllowList{};
  } else if (std::string e; !rc.cookie_exempt.parse(o_.cookie_exempt, e)) {
    spdlog::error("--cookie-exempt: {}", e);
    return 2;
  }
  rc.limits.max_string = o_.max_string;
  rc.bpm = o_.bpm;
  rc.bpm_set = o_.bpm_given;
  rc.time_stretch = o_.stretch_method == "time_stretch";
  rc.equal_power = o_.crossfade_law == "equal_power";
  for (int i = 0; i < 3; ++i) rc.movement_thresholds[i] = o_.movement_thresholds[static_cast<std::size_t>(i)];
  for (int i = 0; i < 5; ++i) rc.movement_tempos[i] = o_.movement_tempos[static_cast<std::size_t>(i)];
  rc.tone_level = std::pow(10.0, o_.tone_level_db / 20.0);
  rc.tone_seconds = o_.tone_seconds;
  rc.meter = o_.meter;
  rc.quantum = o_.quantize;
  rc.link = o_.link;
  rc.eq_enabled = !o_.disable_filters;
  if (o_.filters_off_by_default) {  // the flag that started crowdstream mode, not always --port
    rc.eq_off_reason = "crowdstream mode's default (" + o_.crowdstream_flag + " without --enable-filters)";
  }
  rc.tempo_rise_s = o_.tempo_rise_s;
  rc.tempo_fall_s = o_.tempo_fall_s;
  rc.movement_max = o_.movement_max;
  rc.tempo_moves_players = !(o_.disable_time_stretch &&
                             (o_.stretch_method_given == "pyrubberband" || o_.stretch_method_given == "audiotsm"));
  std::string e, interface;  // a link-local address's interface not there yet: the OSC server waits for it
  auto bind_at = control::parse_endpoint(o_.osc_bind, o_.osc_port, e, &interface);
  if (!o_.no_osc && !bind_at) {
    spdlog::error("--osc-bind {}: {}", o_.osc_bind, e);
    return 2;
  }
  media_loopback_only = reachable_listener().empty();
  return -1;
}

std::string DaemonRun::reachable_listener() const {
  std::string e;
  if (!o_.no_osc) {
    const auto at = control::parse_endpoint(o_.osc_bind, o_.osc_port, e);
    if (!at || !at->is_loopback()) return "the OSC socket";
  }
  if (o_.http_port >= 0) {  // its clients load through /api/osc as OSC clients do
    const auto at = control::parse_endpoint(o_.http_bind, 0, e);
    if (!at || !at->is_loopback()) return "the web monitor (--http-bind " + o_.http_bind + ")";
  }
  return {};
}

// The Instance: its core, the render backend (which needs the loader), then the control side
// (media policy, router, OSC sockets bound now: a port in use is a start-up error).
namespace {
// A port in use at start is most often stemd itself, already running (the service, or a test
// start beside it): say how to tell, and the flag to change (outside pass 20, user 4).
std::string in_use_hint(const std::string& error, const char* flags) {
  if (error.find("Address already in use") == std::string::npos) return {};
  return std::string(
             " — another stemd (the service? systemctl status stemd, stemctl status) or another program "
             "holds it (ss -ltunp names it); or choose another port: ") +
         flags;
}
}  // namespace

int DaemonRun::build_instance() {
  InstanceConfig ic = instance_config();
  // The root's look-up at start: a share that does not answer is given --load-timeout, as a load
  // is, then counted as not there; SIGTERM is heard meanwhile (outside pass 21, finding 3).
  ic.media_start = control::MediaPolicy::StartWait{
      [this](int ms) { return wait_unless_stopped(ms, "while --media-root was looked up"); }, o_.load_timeout};
  inst_ = std::make_unique<Instance>(ic);
  if (resume_.active) {  // the previous images' glitches, counted on (not from 0) before anything reads them
    inst_->engine().metrics().carry(resume_.glitches);
    last_.voice_underruns = resume_.glitches.voice_underruns;  // not new: the health line does not warn again
    last_.device_underflows = resume_.glitches.device_underflows;
  }
  if (bc_.kind == "render") {
    std::vector<std::string> inputs = o_.play;  // a render must not overwrite what it reads
    inputs.insert(inputs.end(), std::begin(o_.deck_files), std::end(o_.deck_files));
    inputs.push_back(o_.script);
    inputs.push_back(o_.config_path);
    if (!audio::render_target_is_free(bc_.render_path, inputs, err_)) {
      spdlog::error("{}", err_);
      return 2;
    }
    backend_ = audio::make_render_backend(bc_, &inst_->loader());
    if (!backend_->open(err_)) {
      spdlog::error("{}", err_);
      return 2;
    }
  }
  control::RouterConfig rc;
  bool loopback_only = true;
  if (int rc_code = router_config(rc, loopback_only); rc_code >= 0) return rc_code;
  if (!inst_->open_control(rc, loopback_only, err_)) {
    if (err_ == "stopped") {
      spdlog::info("stopping ({}): before the audio started", stop_reason_);
      return 0;
    }
    spdlog::error("{}{}", err_, in_use_hint(err_, "--osc-port or --osc-tcp-port"));
    return 2;
  }
  // uptime_s counts from the process's start, and after a lost device's hand-over from the first
  // image's (the same PID and service).
  inst_->router().set_started(resume_.started_ns > 0 ? Clock::time_point(std::chrono::nanoseconds(resume_.started_ns))
                                                     : started_);
  inst_->router().set_carried_totals(resume_.totals);  // and the counters count from it too
  if (int rc = open_web(); rc >= 0) return rc;
  // What the state file's and the start files' streamed loads count against; measured again,
  // and checked against --max-sources, once everything has started (check_descriptors).
  if (fds_) fds_->measure();
  return -1;
}

// The web monitor's page when --web-root is not given: beside the running binary as installed
// (BIN/../share/stemd/web: a .deb's /usr/bin/stemd finds /usr/share/stemd/web whatever prefix the
// build was configured with), else where this build installs it, else the source tree's web/ (a
// daemon run from the build tree). False, with every place looked in, when none has index.html.
bool installed_web_root(std::string& root, std::string& error) {
  namespace fs = std::filesystem;
  std::error_code ec;
  std::vector<std::string> tried;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec && exe.has_parent_path()) tried.push_back((exe.parent_path().parent_path() / "share/stemd/web").string());
  tried.emplace_back(STEMD_WEB_ROOT);
  tried.emplace_back(STEMD_SOURCE_WEB_ROOT);
  for (const auto& dir : tried) {
    if (fs::is_regular_file(fs::path(dir) / "index.html", ec)) {
      root = dir;
      return true;
    }
  }
  error = "--http-port: the web monitor's page is not installed (no index.html in";
  for (std::size_t i = 0; i < tried.size(); ++i) error += (i ? ", " : " ") + tried[i];
  error += "): reinstall stemd, or give its directory with --web-root DIR";
  return false;
}

// --http-port: the web monitor, bound now (a port in use is a start-up error), started with the
// control thread. Its replies and events reach it through the Instance's local sink.
int DaemonRun::open_web() {
  if (o_.http_port < 0) return -1;
  web::WebConfig wc;
  wc.bind = o_.http_bind;
  wc.port = static_cast<std::uint16_t>(o_.http_port);
  wc.allow = o_.allow;
  wc.hosts = o_.http_hosts;
  wc.root = o_.web_root;
  if (wc.root.empty() && !installed_web_root(wc.root, err_)) {
    spdlog::error("{}", err_);
    return 2;
  }
  // The page, read as the config file is: through the helper, given up on after --load-timeout,
  // SIGTERM ending the wait — a --web-root on a share that stopped answering held the start in
  // the kernel with SIGTERM ignored (outside pass 25, N2).
  ConfigInput in;
  in.helper = self_helper();
  in.timeout_s = o_.load_timeout;
  in.deadline_note = "--load-timeout";
  in.wait_ms = [this](int ms) { return wait_unless_stopped(ms, "while --web-root was read"); };
  const ConfigRead page = read_page_dir(wc.root, "--web-root", web::kMaxPageBytes, web::page_types(), in);
  if (page.kind == ConfigRead::Kind::kStopped) {
    spdlog::info("stopping ({}): before the audio started", stop_reason_);
    return 0;
  }
  if (page.kind != ConfigRead::Kind::kOk || !split_page(page.text, wc.page)) {
    spdlog::error("{}", page.kind == ConfigRead::Kind::kOk
                            ? "--web-root " + wc.root + ": the helper's answer is not a page"
                            : page.error);
    return 2;
  }
  wc.max_clients = o_.http_max_clients;
  wc.max_clients_per_address = o_.http_max_clients_per_address;
  wc.max_listeners = o_.http_max_listeners;
  wc.sample_rate = rate_;
  wc.subscription_ttl_s = o_.subscription_ttl;
  wc.listing_timeout_s = o_.load_timeout;  // the file browser's listings, as loads
  Instance* inst = inst_.get();
  web_ = std::make_unique<web::WebServer>(wc, inst->controller(), inst->router(), inst->media(),
                                          [inst](std::function<void()> f) { inst->post(std::move(f)); });
  if (!web_->open(err_)) {
    spdlog::error("{}{}", err_, in_use_hint(err_, "--http-port"));
    return 2;
  }
  web_->carry_events(resume_.events, resume_.events_run);  // the previous images' last events, the loss among them
  inst_->set_local_sink(web_->sink());
  return -1;
}

}  // namespace stemd::app
