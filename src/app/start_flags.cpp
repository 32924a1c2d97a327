// The daemon's start-up, second half [main, the control thread until start_control()]: the
// state file, the start-up flags (--play, --a…--d, --c_preload, levels, --script), the stream,
// the start-up lines. See daemon_run.hpp. The flags that load and play files become OSC
// messages routed as a client's are (/stemd/load, /stemd/play, /play_stem): one path, one set
// of checks and budgets, and a refusal names the router's reason.
#include "daemon_run.hpp"

#include "base/log_guard.hpp"
#include "control/deck_ids.hpp"
#include "io/sound_file.hpp"
#include "script.hpp"

#include <spdlog/spdlog.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <optional>
#include <thread>

#include <signal.h>
#include <sys/mman.h>

#ifndef STEMD_VERSION
#define STEMD_VERSION "0.0.0"
#endif

namespace stemd::app {

// --state-file: what was loaded (and playing) comes back, routed like live control, before the
// flags (which apply on top) and before the stream and the control thread start. Then the
// control thread looks at the state once a second and the main loop writes the file when it
// changed.
void DaemonRun::restore_state() {
  if (o_.state_file.empty()) {
    if (o_.restore_voices)
      spdlog::warn("--restore-voices does nothing without --state-file FILE (where they are kept)");
    return;
  }
  StateKeeper::Config sc;
  sc.path = o_.state_file;
  sc.restore_voices = o_.restore_voices;
  sc.interval_s = o_.state_interval;
  sc.writer = std::string("stemd ") + STEMD_VERSION;
  // The file's read and writes in a helper process (stemd itself), given up on after
  // --load-timeout: a file system that stops answering holds the helper, not the daemon.
  sc.helper = {"/proc/self/exe", kStateIoFlag};
  sc.io_timeout_s = o_.load_timeout;
  state_ = std::make_unique<StateKeeper>(std::move(sc));
  control::Router& router = inst_->router();
  if (resume_.active) {  // resuming: the hand-over is newer
    if (resume_.state_unread) state_->keep_unread();
    return hook_state_poll();
  }
  // Its loads on the opener threads, with --load-timeout, as a client's (a dead network share
  // at boot must not hold the start-up); the server's loop takes them over when it starts.
  if (inst_->server() != nullptr) router.enable_async_loads(nullptr);
  RestoreHooks hooks;
  // SIGTERM/SIGINT while loads are in flight (a network share that does not answer at boot):
  // the restore stops, and so does stemd (run()).
  hooks.wait = [this](int ms) { return wait_unless_stopped(ms, "during the state restore"); };
  // Before the stream starts nothing drains the engine's command queue: apply what was routed
  // (and take its events) whenever less than a callback's worth of room is left.
  hooks.make_room = [this] {
    if (inst_->engine().command_space() <= engine::Engine::kMaxCommandsPerCallback * 2)
      inst_->controller().apply_before_stream();
  };
  stopped_in_restore_ = state_->restore(router, hooks).interrupted;
  hook_state_poll();
}

// The state keeper's look at the state, once a second on the control thread.
void DaemonRun::hook_state_poll() {
  control::Router& router = inst_->router();
  // /stemd/status (and the web's /api/status): whether the state is being saved — a state file
  // whose directory is missing said so once in the log and nowhere after (new-user pass 21).
  // And what it writes: the file's size at the last write and the writes since start (an SD
  // card's wear: outside pass 25, N3).
  // And the sources it waits for (their files missing at start: a stick not mounted), shown by
  // stemctl status and list and the web page — before, only a warning at start said why nothing
  // played (new-user pass 29, M2).
  router.set_native_status_extra([failing = state_->save_failing(), counters = state_->counters(),
                                  waiting = state_->waiting()](std::vector<control::OscArg>& f) {
    f.push_back(control::OscArg::Str("sources_waiting"));
    f.push_back(control::OscArg::Int(waiting->count.load()));
    f.push_back(control::OscArg::Str("sources_waiting_for"));
    f.push_back(control::OscArg::Str(waiting->text()));
    f.push_back(control::OscArg::Str("state_save_failing"));
    f.push_back(control::OscArg::Int(failing->load() ? 1 : 0));
    f.push_back(control::OscArg::Str("state_bytes"));
    f.push_back(control::OscArg::Int64(static_cast<std::int64_t>(counters->bytes.load(std::memory_order_relaxed))));
    f.push_back(control::OscArg::Str("state_writes"));
    f.push_back(control::OscArg::Int64(static_cast<std::int64_t>(counters->writes.load(std::memory_order_relaxed))));
    f.push_back(control::OscArg::Str("state_writes_held"));
    f.push_back(control::OscArg::Int64(static_cast<std::int64_t>(counters->held.load(std::memory_order_relaxed))));
  });
  auto poll = [this] { state_->poll(inst_->controller(), inst_->router()); };
  if (inst_->server() != nullptr) {
    router.set_tick_hook(poll);  // the OSC server's thread ticks the router
  } else {
    inst_->set_control_tick(poll);  // without OSC: the Instance's control thread
  }
}

namespace {

// The absolute form of a path given on the command line or in the config file: relative to
// the working directory, as a shell path is (a client's relative path is relative to
// --media-root instead). Left as given when it cannot be made absolute (the router says why).
std::string command_line_path(const std::string& path) {
  std::error_code ec;
  const std::filesystem::path p = path.empty() ? std::filesystem::path() : std::filesystem::absolute(path, ec);
  return ec || p.empty() ? path : p.string();
}

control::OscMessage load_message(int id, const std::string& path) {
  return control::osc_message("/stemd/load", {control::OscArg::Int(id), control::OscArg::Str(command_line_path(path)),
                                              control::OscArg::Str(std::filesystem::path(path).stem().string())});
}

}  // namespace

// A start-up flag's message, routed as a client's is (the media root, --max-sources, the
// memory budget, every argument's check), taking effect at engine frame `at` (control::kNow:
// at once). False, logged with the router's /fail (its reason), when it was refused.
bool DaemonRun::route_start_message(const std::string& flag, const control::OscMessage& m, std::int64_t at) {
  std::string reason;
  if (at == control::kNow && m.address == "/stemd/load") {  // with --no-osc too (outside pass 21, finding 7)
    bool stopped = false;
    const control::Reply r = start_load(flag, m, stopped);
    if (stopped) {
      stopped_in_restore_ = true;
      return false;
    }
    if (r.ok) return true;
    reason = r.reason;
  } else {
    const control::OscMessage reply = inst_->router().handle_at(m, at);
    if (reply.address == "/done") return true;
    // /fail <address> [values…] <reason>
    reason = !reply.args.empty() && reply.args.back().is_string() ? reply.args.back().s : "refused";
  }
  // "--play a.wav": a relative FILE is the working directory's; said so when the media root has it.
  if (const auto sp = flag.find(' '); sp != std::string::npos) {
    reason += relative_flag_hint(flag.substr(0, sp), flag.substr(sp + 1), o_.media_root, reason);
  }
  spdlog::error("{}: {} (refused at start: {} → /fail)", base::log_escape(flag, 600), base::log_escape(reason, 600),
                base::log_escape(m.to_string(), 600));
  return false;
}

// Waits up to `ms` milliseconds for SIGTERM/SIGINT while start-up loads are in flight; false
// (stop_reason_ "SIGTERM <during>") when one came. SIGHUP stays pending for the main loop.
bool DaemonRun::wait_unless_stopped(int ms, const std::string& during) {
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGTERM);
  timespec timeout{0, ms * 1'000'000L};
  const int sig = sigtimedwait(&stop, nullptr, &timeout);
  if (sig != SIGINT && sig != SIGTERM) return true;
  stop_reason_ = std::string(sig == SIGINT ? "SIGINT " : "SIGTERM ") + during;
  return false;
}

namespace {
// The start files' loads, an in-process peer of their own: their outcomes are told apart from the
// state file's (kQuietPeer) and from clients'.
constexpr std::uint64_t kStartPeer = control::kQuietPeer + 1;
}  // namespace

// Before, the start files loaded on this thread: a --play file on a network share that did not
// answer held the start — no OSC, no READY, SIGTERM not acted on — for as long as the share was
// down (outside pass 20, attack 3). Now as the state file's loads: on the opener threads, under
// --load-timeout, a stop signal heard while waiting.
control::Reply DaemonRun::start_load(const std::string& flag, const control::OscMessage& m, bool& stopped) {
  control::Router& router = inst_->router();
  router.enable_async_loads(nullptr);  // the server's loop takes the pool over when it starts
  std::optional<control::Reply> got;
  const auto previous = router.outcome_observer();  // the state keeper's: its outcomes pass on
  router.set_outcome_observer([&got, previous](const control::Outcome& o) {
    if (o.from.local == kStartPeer) {
      got = o.reply;
    } else if (previous) {
      previous(o);
    }
  });
  control::Peer self;
  self.local = kStartPeer;
  control::Reply r = router.handle_async(m, self);
  if (r.ok || r.kind != control::ErrorKind::kDeferred) {
    router.set_outcome_observer(previous);
    return r;
  }
  const auto since = std::chrono::steady_clock::now();
  bool said = false;
  while (!got) {
    router.poll_loads();  // a load past --load-timeout is answered here (timed out)
    std::vector<control::Outgoing> out;
    router.take_replies(out);  // in-process peers' answers go nowhere
    if (got) break;
    if (!said && std::chrono::steady_clock::now() - since > std::chrono::seconds(2)) {
      spdlog::warn(
          "{}: waiting for its load (the file system is slow to answer) — it gives up after --load-timeout "
          "{:g} s",
          base::log_escape(flag, 600), router.config().load_timeout_s);
      said = true;
    }
    if (!wait_unless_stopped(2, "while " + flag + " loaded")) {
      stopped = true;
      break;
    }
  }
  router.set_outcome_observer(previous);
  return got ? *got : control::Reply::fail(control::ErrorKind::kDeferred, "stopped");
}

// --play files (ids 1…N) and the old server's --a/--b/--c/--d (deck base ids) and --c_preload:
// loaded before the stream starts, through the router; any refusal is fatal at start. Deck
// levels (--levels, --ab) applied.
int DaemonRun::load_start_files() {
  int slot = 1;
  for (const auto& path : o_.play) {
    if (!route_start_message("--play " + path, load_message(slot, path), control::kNow)) return 1;
    slots_.push_back(slot++);
  }
  if (bc_.kind == "render" && o_.duration <= 0 && !o_.script.empty()) {
    spdlog::error("--render-to with --script needs --duration (voices start at the script's times)");
    return 2;
  }
  if (bc_.kind == "render" && o_.duration <= 0 && o_.loop && !o_.play.empty()) {
    spdlog::error("--render-to with --loop needs --duration (a loop never ends)");
    return 2;
  }
  // The old server's --a/--b/--c/--d: a deck's base id, looped, at --vol.
  static const char* const kDeckFlags[4] = {"--a ", "--b ", "--c ", "--d "};
  for (int d = 0; d < 4; ++d) {
    if (o_.deck_files[d].empty()) continue;
    if (!route_start_message(kDeckFlags[d] + o_.deck_files[d], load_message(control::kDeckBase[d], o_.deck_files[d]),
                             control::kNow))
      return 1;
  }
  // --c_preload: deck C loaded, not started (/schedule_c_at or --dummy_after start it).
  if (!o_.c_preload.empty() && o_.deck_files[2].empty()) {
    if (!route_start_message("--c_preload " + o_.c_preload, load_message(control::kDeckBase[2], o_.c_preload),
                             control::kNow))
      return 1;
  }
  if (!o_.deck_files[2].empty() && o_.c_at < 0) {
    spdlog::info("--c {}: loaded into buffer 2100, not started (the old server's meaning): /schedule_c_at X or --c_at",
                 o_.deck_files[2]);
  }
  if (!o_.levels.empty()) deck_levels_ = o_.levels;
  if (!o_.ab.empty()) {
    deck_levels_.resize(std::max<std::size_t>(deck_levels_.size(), 2), 1.0f);
    deck_levels_[0] = o_.ab[0];
    deck_levels_[1] = o_.ab[1];
  }
  // A jump, before anything plays (a client's /stemd/deck ramps over at least the declick).
  control::Controller& ctl = inst_->controller();
  for (std::size_t d = 0; d < deck_levels_.size(); ++d)
    ctl.set_deck_level(control::kNow, static_cast<int>(d), deck_levels_[d], -1.0, err_);
  return -1;
}

// --script: every line routed now, at its exact frame (the engine holds them until then).
int DaemonRun::run_script() {
  if (o_.script.empty()) return -1;
  // Read as the config file is: through the helper, given up on after --load-timeout, SIGTERM
  // ending the wait — a show file on a share that stopped answering held the start in the kernel
  // with SIGTERM ignored (outside pass 25, N2).
  ConfigInput in;
  in.helper = self_helper();
  in.timeout_s = o_.load_timeout;
  in.deadline_note = "--load-timeout";
  in.wait_ms = [this](int ms) { return wait_unless_stopped(ms, "while --script was read"); };
  const ConfigRead read = read_start_file(o_.script, "--script", kMaxScriptBytes, in);
  if (read.kind == ConfigRead::Kind::kStopped) {
    stopped_in_restore_ = true;  // no audio yet: nothing to fade
    spdlog::info("stopping ({}): before the audio started", stop_reason_);
    return shutdown();
  }
  if (read.kind != ConfigRead::Kind::kOk) {
    spdlog::error("{}", read.error);
    return 2;
  }
  std::vector<ScriptLine> lines;
  if (!parse_script(o_.script, read.text, lines, err_)) {
    spdlog::error("--script {}", err_);
    return 2;
  }
  for (const ScriptLine& l : lines) {
    const auto frame = static_cast<std::int64_t>(std::llround(l.seconds * rate_));
    const control::OscMessage reply = inst_->router().handle_at(l.message, frame);
    if (reply.address == "/fail") {
      spdlog::error("--script {}:{}: {} → {}", o_.script, l.line, base::log_escape(l.message.to_string(), 600),
                    base::log_escape(reply.to_string(), 600));
      return 2;
    }
  }
  spdlog::info("--script {}: {} message{} scheduled", o_.script, lines.size(), lines.size() == 1 ? "" : "s");
  return -1;
}

// [control] The --play files and the decks start, through the router (offline and null
// output: before the first block, so at frame 0; a device: once it runs). The --play files play
// on deck A (the /stemd/play deck argument: their ids' own deck would be D), so --levels and
// --ab apply to them.
bool DaemonRun::play_start_files() {
  using control::OscArg;
  const control::Controller& ctl = inst_->controller();
  for (int s : slots_) {
    const control::OscMessage m = control::osc_message(
        "/stemd/play", {OscArg::Int(s), OscArg::Float(o_.volume), OscArg::Int(o_.loop ? 1 : 0), OscArg::Float(0.0f),
                        OscArg::Str("s"), OscArg::Float(1.0f), OscArg::Str("A")});
    if (!route_start_message("--play " + o_.play[static_cast<std::size_t>(s - 1)], m, control::kNow)) return false;
  }
  static const char* const kDeckFlags[4] = {"--a ", "--b ", "--c ", "--d "};
  for (int d = 0; d < 4; ++d) {
    if (o_.deck_files[d].empty()) continue;
    if (d == 2 && o_.c_at < 0) continue;  // --c without --c_at: loaded only
    // /play_stem id rate volume loop start: the deck's base id plays on its deck, looped.
    const control::OscMessage m = control::osc_message(
        "/play_stem", {OscArg::Int(control::kDeckBase[d]), OscArg::Float(static_cast<float>(o_.rate)),
                       OscArg::Float(o_.deck_volume), OscArg::Int(1), OscArg::Float(0.0f)});
    // --c_at: deck C starts that many seconds (of output) after the start.
    const std::int64_t at =
        d == 2 ? (real_device_ ? ctl.now_frame() : 0) + std::llround(o_.c_at * rate_) : control::kNow;
    if (!route_start_message(kDeckFlags[d] + o_.deck_files[d], m, at)) return false;
  }
  // --dummy_after: /dummy <--dummy_args> taking effect that many seconds after the start (its
  // /schedule_c_at, if any, starts deck C no earlier than then).
  if (o_.dummy_after >= 0) {
    control::OscMessage dm;
    dm.address = "/dummy";
    for (const auto& a : o_.dummy_args) dm.args.push_back(OscArg::Str(a));
    const std::int64_t at = (real_device_ ? ctl.now_frame() : 0) + std::llround(o_.dummy_after * rate_);
    const control::OscMessage reply = inst_->router().handle_at(dm, at);
    if (reply.address != "/done") spdlog::warn("--dummy_after: {} → {}", dm.to_string(), reply.to_string());
  }
  return true;
}

// The voices play_start_files() starts (--play's, the decks'), from their starts, as the status
// and /stemd/voices list them while a configured device is not there yet.
std::vector<control::Router::WaitingVoice> DaemonRun::start_voices() const {
  std::vector<control::Router::WaitingVoice> out;
  for (int s : slots_) out.push_back({s, 0, "waiting (device not there yet)"});
  for (int d = 0; d < 4; ++d) {
    if (o_.deck_files[d].empty() || (d == 2 && o_.c_at < 0)) continue;  // --c without --c_at: loaded only
    out.push_back({control::kDeckBase[d], 0, "waiting (device not there yet)"});
  }
  return out;
}

// The loader and the stream start; the start-up voices play. Returns -1, or the exit code.
int DaemonRun::start_stream() {
  inst_->loader().start();
  // Offline and null output: queue the plays before the first block, so they start at frame 0.
  if (!real_device_ && !play_start_files()) return 1;
  // Within an OpenGuard: a JACK server that stops answering now holds Pa_OpenStream, and a stop
  // signal meanwhile must still end stemd (the main loop acts on one taken: stop_signal_).
  if (device_open_ && !open_guarded(false, true, err_)) {
    if (!resume_.active && !device_configured_) {
      spdlog::error("{}", err_);
      inst_->loader().stop();
      return 2;
    }
    if (resume_.active) {
      spdlog::warn("the audio device is not back yet: {}", err_);
    } else {
      waiting_ = true;
      device_.set_waiting(err_);
      spdlog::warn("waiting for the audio device {}: {}", wanted_, err_);
    }
    device_open_ = false;
  }
  if (waiting_) inst_->router().set_waiting_voices(start_voices());
  if (real_device_ && device_open_) {
    // A device's first periods can go nowhere while its connections settle (JACK connects
    // PortAudio's ports after activation): start the --play files once the stream has run a few.
    const auto& m = inst_->engine().metrics();
    const auto deadline = Clock::now() + std::chrono::seconds(2);
    while (m.callbacks.load() < 4 && Clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }
  // The device's latency is known once its stream runs (PortAudio: its callbacks' DAC times, e.g.
  // JACK's port latency): the status had the estimate from before (buffer / rate). Followed on
  // in the main loop (follow_output_latency).
  if (device_open_) follow_output_latency(true);
  if (real_device_ && device_open_) {
    if (!play_start_files()) {
      backend_->stop();
      inst_->loader().stop();
      return 1;
    }
    restart_resumed_voices();
  }
  return -1;
}

// READY for systemd (the device is open and the OSC socket bound, or a configured device is
// being waited for), --mlock, and the start-up lines.
void DaemonRun::announce() {
  const control::OscServer* server = inst_->server();
  const std::string osc = server != nullptr ? server->describe() : std::string();
  budget_ms_ = 1000.0 * o_.buffer_size / rate_;
  if (waiting_) {  // READY all the same: OSC answers, and a unit that waits does not hit a start timeout
    systemd_.ready(
        fmt::format("waiting for device {} ({}), retrying{}", wanted_, device_.reason(), o_.no_osc ? "" : "; " + osc));
  } else {
    systemd_.ready(fmt::format("playing on {} at {} Hz, {} frames ({:.1f} ms){}", backend_->describe(), rate_,
                               o_.buffer_size, budget_ms_, o_.no_osc ? "" : ", " + osc));
  }
  spdlog::info("buffer size {} frames from {}", o_.buffer_size, o_.preset_reason);
  if (o_.mlock) {
    if (mlockall(MCL_CURRENT | MCL_FUTURE) == 0) {
      spdlog::info("memory locked (mlockall)");
    } else {
      spdlog::warn("--mlock: mlockall failed: {} — raise LimitMEMLOCK (systemd) or memlock in limits.conf",
                   std::strerror(errno));
    }
  }
  spdlog::info(
      "{} started: {}, {} Hz, buffer {} frames = {:.1f} ms (output latency {:.1f} ms), "
      "max {} voices, ring {:.0f} ms (kept ≥ {:.0f}, up to {:.0f} when the disk is slow), head {:.0f} ms, "
      "preload ≤ {:.0f} MiB, limiter {}, libsndfile {}",
      build_version(), backend_->describe(), rate_, o_.buffer_size, budget_ms_,
      backend_->output_latency_seconds() * 1000.0, o_.max_voices, o_.ring_ms, o_.ring_min_ms, o_.ring_max_ms,
      o_.head_ms, o_.preload_limit_mb,
      o_.limiter == "true"        ? fmt::format("at {:.1f} dBFS", o_.limiter_threshold_db)
      : o_.limiter == "soft_clip" ? std::string("soft clip 0.9·tanh(0.9·x)")
                                  : std::string("off"),
      io::sndfile_version());
  if (o_.crowdstream_mode) {
    spdlog::info(
        "crowdstream mode ({}, an old-server flag{}): master {:.2f}, limiter {}, deck EQ {}, movement tempo "
        "glide rising τ {:.4g} s / falling τ {:.4g} s",
        o_.crowdstream_flag, o_.crowdstream_flag == "--port" ? ": stemd's own is --osc-port" : "", o_.master,
        o_.limiter,
        !o_.disable_filters         ? "applied (--enable-filters)"
        : o_.filters_off_by_default ? "ignored (the old server's default; --enable-filters applies it)"
                                    : "ignored (--disable-filters)",
        o_.tempo_rise_s, o_.tempo_fall_s);
  }
  if (o_.stretch_method == "time_stretch") {
    // What /set_tempo has to work with (each stretcher is built, and primed, at start: seconds on
    // a small board), and where the figures are.
    const int buses = o_.stretch_buses >= 0 ? o_.stretch_buses : 2;
    spdlog::info(
        "time-stretch (Rubber Band {}): {} stretched voices at most (--max-stretched-voices), {} stretch "
        "buses per source rate (--stretch-buses{}); in use: stemctl status",
        o_.stretch_engine == "faster" ? "R2, faster" : "R3, finer", o_.max_stretched_voices, buses,
        o_.stretch_bus_share ? ", shared by the decks: fader and EQ ≈ 45 ms late on them" : "");
  }
  for (const auto& note : o_.notes) spdlog::info("{}", note);
}

}  // namespace stemd::app
