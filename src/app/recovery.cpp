// Device recovery [main]. When the output device is lost, PortAudio cannot be reset in-process:
// on a dead JACK server its 19.6 JACK host API waits 10 minutes inside Pa_AbortStream/
// Pa_CloseStream/Pa_Terminate for a process callback that never comes, then asserts, and
// Pa_Initialize only counts up while a session is open. So stemd writes its whole state
// (sources, levels, EQ, tempo, playing voices with their positions, subscribers) to a hand-over
// file and exec()s itself — same PID, so systemd and the watchdog see one service — and the new
// image restores the state, answers OSC, and retries the device with backoff. A configured
// device that is not there at start is retried the same way, without a new image.
#include "daemon_run.hpp"

#include "control/net.hpp"
#include "safe_file.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <future>
#include <memory>
#include <thread>

#include <linux/close_range.h>
#include <unistd.h>

#ifndef STEMD_VERSION
#define STEMD_VERSION "0.0.0"
#endif

namespace stemd::app {

namespace {

// Replaces the process image with a fresh stemd (same argv, same PID). Returns only on failure.
void reexec(char** argv, const Resume& r, std::string& error) {
  put_resume_env(r);
  // Every descriptor but stdio closes on exec: sockets, the dead device's, sound files.
  close_range(3, ~0U, CLOSE_RANGE_CLOEXEC);
  std::fflush(nullptr);
  execv("/proc/self/exe", argv);
  error = std::string("exec /proc/self/exe: ") + std::strerror(errno);
}

// The subscribers of the previous image (STEMD_RESUME_SUBSCRIBERS: "host:port host:port…"),
// subscribed again as if they had sent /stemd/notify 1.
void resubscribe(control::Router& router) {
  const char* subs = std::getenv("STEMD_RESUME_SUBSCRIBERS");
  if (subs == nullptr) return;
  std::string list = subs;
  unsetenv("STEMD_RESUME_SUBSCRIBERS");
  std::size_t start = 0;
  while (start < list.size()) {
    std::size_t end = list.find(' ', start);
    if (end == std::string::npos) end = list.size();
    const std::string ep = list.substr(start, end - start);
    start = end + 1;
    const auto colon = ep.rfind(':');
    if (colon == std::string::npos) continue;
    std::string host = ep.substr(0, colon);
    if (host.size() > 2 && host.front() == '[') host = host.substr(1, host.size() - 2);
    std::string pe;
    const auto at = control::parse_endpoint(host, static_cast<std::uint16_t>(std::atoi(ep.c_str() + colon + 1)), pe);
    if (!at) continue;
    control::OscMessage sub;
    sub.address = "/stemd/notify";
    sub.args = {control::OscArg::Int(1)};
    router.handle(sub, control::Peer{*at, -1});
  }
}

// The voices of a hand-over state (/stemd/play and /stemd/play_region, a /stemd/seek after one),
// for the status and /stemd/voices while they wait for the device.
std::vector<control::Router::WaitingVoice> waiting_voices(const std::vector<StateMessage>& msgs) {
  std::vector<control::Router::WaitingVoice> out;
  for (const StateMessage& sm : msgs) {
    const auto& a = sm.message.args;
    if (a.size() < 2 || !a[0].is_number()) continue;
    const int id = static_cast<int>(a[0].as_double());
    if (sm.message.address == "/stemd/play" && a.size() >= 4 && a[3].is_number()) {
      out.push_back({id, static_cast<std::int64_t>(a[3].as_double())});
    } else if (sm.message.address == "/stemd/play_region" && a[1].is_number()) {
      out.push_back({id, static_cast<std::int64_t>(a[1].as_double())});
    } else if (sm.message.address == "/stemd/seek" && a[1].is_number() && !out.empty() && out.back().id == id) {
      out.back().position = static_cast<std::int64_t>(a[1].as_double());
    }
  }
  return out;
}

}  // namespace

// [control, before the control thread starts] Resuming after a lost device: sources, levels,
// tempo and subscribers now; the voices once the device runs again (so they continue from where
// they were heard last).
void DaemonRun::resume_session() {
  if (!resume_.active) return;
  control::Router& router = inst_->router();
  std::vector<StateMessage> msgs;
  std::string e;
  const control::RouterConfig& rc = router.config();
  if (read_state_file(resume_.state_path, msgs, e, state_bytes_bound(rc.max_sources, rc.limits.max_string)) !=
      StateRead::kOk) {
    spdlog::error("cannot resume the previous session: {}", e);
  } else {
    int restored = 0, failed = 0;
    int held = 0;
    for (StateMessage& sm : msgs) {
      // A source waiting for its file (the previous image's, or one whose file went with the
      // device): its voice lines wait with it, in the state keeper, not for the device.
      if (state_ && state_->hold_voice(sm)) continue;
      if (is_voice_message(sm.message)) {
        resume_voices_.push_back(std::move(sm));
        continue;
      }
      if (sm.message.address == "/stemd/quantize") resume_quantised_from_ = resume_voices_.size();
      const control::Reply reply = router.handle_reply(sm.message, control::Peer{});
      if (reply.ok) {
        ++restored;
      } else if (state_ && state_->hold_resumed(router, sm, reply.kind, reply.reason)) {
        ++held;
      } else {
        ++failed;
        spdlog::warn("resume: {} → {}", base::log_escape(sm.message.to_string(), 600),
                     base::log_escape(reply.reason, 600));
      }
    }
    std::size_t voices = 0;
    for (const StateMessage& sm : resume_voices_) {
      voices += sm.message.address == "/stemd/play" || sm.message.address == "/stemd/play_region" ? 1 : 0;
    }
    spdlog::info("resume: {} settings and sources restored ({} failed{}), {} voices to restart", restored, failed,
                 held > 0 ? fmt::format(", {} waiting for their files", held) : std::string(), voices);
    router.set_waiting_voices(waiting_voices(resume_voices_));
    // Until they are replayed, a state file written meanwhile (and a second hand-over) keeps them.
    if (state_) state_->set_add_unplayed([this](DaemonState& s) { add_unplayed(s); });
  }
  // Until the device runs again the beat goes on with wall time (status); then from its frames.
  if (resume_.beat_ns > 0) router.beat_away(resume_.beat, Clock::time_point(std::chrono::nanoseconds(resume_.beat_ns)));
  drop_resume_file();
  resubscribe(router);
}

// [control] The voices not replayed yet — the device has not run long enough since it came back —
// as they were read: none of them moved. A device lost again meanwhile hands them over again, and
// the state file keeps them (outside pass 29, H1: both had lost every voice).
void DaemonRun::add_unplayed(DaemonState& s) const {
  for (std::size_t i = 0; i < resume_voices_.size(); ++i) {
    (i < resume_quantised_from_ ? s.unplayed : s.unplayed_starting).push_back(state_line(resume_voices_[i].message));
  }
}

// [control] The voices of the previous image play again, each from its saved frame and at once:
// /stemd/quantize (restored with the settings) does not hold them for the next bar, which only
// added silence (outside pass 28, user M1). Those that had not started yet — after /stemd/quantize
// in the hand-over, waiting for their bar — wait for the next bar of the carried beat again (outside
// pass 29, M1: they started at once, off the grid). The log counts voices (a /stemd/pause is a
// message of a voice, not another one: user L3).
void DaemonRun::restart_resumed_voices() {
  control::Router& router = inst_->router();
  router.set_waiting_voices({});
  // The beat went on while the device was away: from the engine frame now (the device's again).
  if (resume_.beat_ns > 0)
    router.carry_beat(resume_.beat, Clock::time_point(std::chrono::nanoseconds(resume_.beat_ns)));
  int voices = 0, back = 0, paused = 0, failed = 0, on_bar = 0, paused_on_bar = 0, on_time = 0, passed = 0;
  for (std::size_t i = 0; i < resume_voices_.size(); ++i) {
    StateMessage sm = resume_voices_[i];
    const bool start = sm.message.address == "/stemd/play" || sm.message.address == "/stemd/play_region";
    voices += start ? 1 : 0;
    router.set_unquantised(i < resume_quantised_from_);
    // A start timed for later (its line's wall time: StateVoice::start_unix) waits for that time on
    // this image's frames; one whose time passed while the device was away starts now.
    const bool timed = sm.message.timetag != control::kOscImmediately && sm.message.timetag != 0;
    const bool late = drop_time_passed(sm.message, router);
    const control::OscMessage reply = router.handle(sm.message, control::Peer{});
    if (reply.address == "/done") {
      back += start ? 1 : 0;
      on_time += start && timed && !late ? 1 : 0;
      passed += start && late ? 1 : 0;
      // A voice paused before its bar is counted as waiting for it (once, not twice).
      const bool waits = i >= resume_quantised_from_;
      on_bar += start && waits ? 1 : 0;
      (waits ? paused_on_bar : paused) += sm.message.address == "/stemd/pause" ? 1 : 0;
      spdlog::debug("resume: {}", base::log_escape(sm.message.to_string(), 600));
    } else {
      ++failed;
      spdlog::warn("resume: {} → {}", base::log_escape(sm.message.to_string(), 600),
                   base::log_escape(reply.to_string(), 600));
    }
  }
  router.set_unquantised(false);
  if (!resume_voices_.empty()) {
    spdlog::info("resume: {} of {} voices back at their frames: {} playing, {} paused{}{}{}", back, voices,
                 back - paused - on_bar - on_time, paused,
                 on_bar == 0          ? std::string()
                 : paused_on_bar == 0 ? fmt::format(", {} starting on the next bar", on_bar)
                                      : fmt::format(", {} starting on the next bar ({} paused)", on_bar, paused_on_bar),
                 on_time == 0 && passed == 0
                     ? std::string()
                     : fmt::format(", {} starting at their time ({} whose time passed while the device was away: now)",
                                   on_time, passed),
                 failed > 0 ? fmt::format(" ({} of their messages failed)", failed) : std::string());
  }
  resume_voices_.clear();
  if (state_) state_->set_add_unplayed({});
}

// The device is lost: tell everyone, hand the whole state over to a fresh image of stemd, and
// exec it. Returns only when that failed (then stemd exits 3 for the service manager).
void DaemonRun::hand_over(const std::string& why) {
  device_.set_lost(why, stall_since_);  // the last time its callbacks were seen to move
  if (o_.on_device_loss == "exit") {
    spdlog::error("the audio device stopped: {} — exiting (--on-device-loss exit)", why);
    backend_->mark_lost();
    return;
  }
  spdlog::error(
      "the audio device stopped: {} — keeping the state; stemd restarts its audio side and retries the "
      "device every 0.5 s for 30 s, then doubling to 5 s",
      why);
  systemd_.status("audio device lost (" + why + "), retrying");
  {
    // Subscribers hear /stemd/device/lost from this image, once: the control thread's next pass
    // runs what is posted first, then sees the state and sends (the new image does not repeat
    // it). It slept 30 ms, which a control thread that now sleeps 100 ms between passes could
    // miss (then the new image said it: twice, or never for a TCP subscriber). Not waited for
    // more than 0.5 s: a stuck control thread does not hold the device's recovery.
    // Two passes: what is posted runs at a pass's start, the notifications go at its end — the
    // web monitor's too (handed to its network thread, which keeps it for the next image before
    // it stops below). After one, the web server was often stopped first, and a page that
    // reconnected to the new image never saw the loss (outside pass 28, user L4).
    const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(500);
    for (int i = 0; i < 2; ++i) {
      auto passed = std::make_shared<std::promise<void>>();
      std::future<void> pass = passed->get_future();
      inst_->post([passed] { passed->set_value(); });
      if (pass.wait_until(until) != std::future_status::ready) break;
    }
  }
  backend_->mark_lost();
  if (web_) web_->stop();  // its sockets are not for the new image
  inst_->stop_control();   // the main thread is the control thread again
  inst_->controller().service();
  Handed h = capture_handover(why);
  if (web_) {  // its /stemd/device/lost among them (stopped above: all delivered), and their run
    h.r.events = web_->past_events();
    h.r.events_run = web_->events_run();
  }
  std::string e;
  if (!write_handover(h, e)) {
    spdlog::error("{} — exiting instead", e);
    return;
  }
  if (state_) {  // the state file too, in case the new image cannot start
    state_->capture_now(inst_->controller(), inst_->router());
    state_->save(1.0);  // bounded: a hung file system does not hold the device's recovery
  }
  setenv("STEMD_RESUME_SUBSCRIBERS", h.subscribers.c_str(), 1);
  // The audio server's helpers are not the new image's children to know of: killed and reaped
  // now (one waiting on a frozen server dies at SIGKILL).
  drop_probe();
  for (int i = 0; i < 40 && !ending_probes_.empty(); ++i) {
    reap_probes();
    if (!ending_probes_.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  // One not dead yet (its system call had not returned) stays this process's child across the
  // exec: the new image reaps it.
  setenv("STEMD_RESUME_HELPERS", helpers_left().c_str(), 1);
  spdlog::default_logger()->flush();
  reexec(argv_, h.r, e);
  spdlog::error("cannot restart the audio side: {} — exiting", e);
  remove_handoff(h.r.state_path);
}

// [control] What a hand-over passes on: the state (the voices with their frames, and those of the
// previous hand-over not replayed yet), the service's totals and times, the beat, the subscribers.
// hand_over() runs it once the control thread has stopped; arm_for_open() posts it to the control
// thread before the device is opened (abort_reexec.hpp).
DaemonRun::Handed DaemonRun::capture_handover(const std::string& why) {
  control::Controller& ctl = inst_->controller();
  control::Router& router = inst_->router();
  Handed h;
  Resume& r = h.r;
  r.active = true;
  r.rate = rate_;
  r.buffer = o_.buffer_size;
  r.losses = device_.losses();
  r.reason = why;
  r.state_unread = state_ && state_->unread();  // the new image must not write it either
  r.started_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(router.started().time_since_epoch()).count();
  r.lost_at_ns = device_.lost_at_ns();
  r.glitches = inst_->engine().metrics().glitch_totals();  // this image's, the previous ones' included
  // The status totals since the service started (this image's with the previous ones'), from the
  // native status — whose own message is not one of a client's: taken off again.
  r.totals =
      control::Router::totals_of(router.handle_reply(control::osc_message("/stemd/status"), control::Peer{}).values);
  for (auto& [k, n] : r.totals) n -= k == "messages" && n > 0 ? 1 : 0;
  // The latency compensated now (measured, or carried itself when the device never came back to
  // this image): the next image's until its device measures again — its Link join line says it.
  r.output_latency_s = std::max(0.0, router.config().output_latency_s);
  // Without Link, the beat at the last callback's frame and time (the stream clock's line:
  // CLOCK_MONOTONIC, the steady clock): the next image's beat goes on from it.
  std::int64_t frame = 0;
  std::uint64_t frame_ns = 0;
  const bool ran = inst_->engine().metrics().callbacks.load(std::memory_order_relaxed) > 0;
  if ((!resume_voices_.empty() || !ran) && resume_.beat_ns > 0) {
    // Lost again before its voices were replayed, or before this image's device ever ran: the beat
    // was not carried onto this image's frames yet (restart_resumed_voices, device_back do it), so
    // the previous one's goes on.
    r.beat = resume_.beat;
    r.beat_ns = resume_.beat_ns;
  } else if (router.link() == nullptr && inst_->engine().metrics().clock.read(frame, frame_ns)) {
    r.beat = router.tempo().beats_at(frame);
    r.beat_ns = static_cast<std::int64_t>(frame_ns);
  }
  h.state = capture_state(ctl, router, true);
  add_unplayed(h.state);                  // the previous hand-over's voices not replayed yet (a second loss in a row)
  if (state_) state_->add_held(h.state);  // the sources waiting for their files, their voice lines with them
  for (const control::Peer& p : router.subscriber_peers()) {
    if (p.tcp_fd < 0 && p.local == 0) h.subscribers += (h.subscribers.empty() ? "" : " ") + p.endpoint.to_string();
  }
  return h;
}

// [main] The hand-over file and its carry file, 0600 in a private directory (handoff_path()):
// h.r.state_path names them. False, with why, when the state could not be written.
bool DaemonRun::write_handover(Handed& h, std::string& error) {
  h.r.state_path = handoff_path();
  if (h.r.state_path.empty()) {
    error = std::string("cannot make a private directory for the hand-over state: ") + std::strerror(errno);
    return false;
  }
  std::string e;
  const AtomicWrite mine{.mode = 0600};  // in a directory of its own (0700): nothing there to keep
  if (!write_file_atomic(h.r.state_path,
                         format_state(h.state, std::string("stemd ") + STEMD_VERSION + " (device hand-over)"), e,
                         mine)) {
    error = "cannot write the hand-over state: " + e;
    remove_handoff(h.r.state_path);
    return false;
  }
  if (!write_file_atomic(carry_path(h.r.state_path), format_carry(h.r), e, mine)) {  // not fatal: counts restart
    spdlog::warn("cannot write the hand-over's totals and events: {} — the next image counts from 0", e);
  }
  return true;
}

// The helpers killed and not reaped yet, for the next image to reap (STEMD_RESUME_HELPERS).
std::string DaemonRun::helpers_left() const {
  std::string helpers;
  for (const std::unique_ptr<FileJob>& j : ending_probes_) helpers += std::to_string(j->pid()) + " ";
  return helpers;
}

// The output device, watched once per main-loop pass: a stream that stopped (its server died,
// the USB interface went away) is lost — hand over to a fresh image, which retries it with
// backoff. One still open that does not call back for 1 s is asked about first (stall_verdict):
// a frozen server keeps it. False: the main loop ends (exit_code_, stop_reason_ set).
bool DaemonRun::watch_device() {
  if (bc_.kind != "portaudio") return true;
  reap_probes();
  const std::uint64_t cb = inst_->engine().metrics().callbacks.load(std::memory_order_relaxed);
  const auto now = Clock::now();
  log_stall_summary(now, false);
  if (device_.state() != control::DeviceState::kRunning && !stalled_) {  // lost, or waiting for it
    if (server_probe_ || now >= next_attempt_) retry_device(cb, now);
    return true;
  }
  std::string why;
  if (cb != stall_callbacks_) {
    if (stalled_) end_stall(now, stall_since_);
    stall_callbacks_ = cb;
    stall_since_ = now;
  } else if (cb > reopened_at_callbacks_ && now - stall_since_ > std::chrono::seconds(1)) {
    why = stall_verdict(now);
  }
  if (why.empty()) backend_->lost(why);
  if (!why.empty()) {
    log_stall_summary(now, true);
    stalled_ = false;
    drop_probe();
    hand_over(why);  // returns only if stemd cannot carry on
    exit_code_ = 3;
    stop_reason_ = "device lost";
    return false;
  }
  if (stalled_) return true;
  follow_output_latency(false);
  if (plays_pending_ && cb >= reopened_at_callbacks_ + 4) {
    plays_pending_ = false;  // the device appeared: the --play/--a… files start now
    inst_->post([this] {
      inst_->router().set_waiting_voices({});
      play_start_files();
    });
  }
  if (voices_pending_ && cb >= reopened_at_callbacks_ + 4) {
    voices_pending_ = false;  // the device runs again: the voices continue where they were
    inst_->post([this] { restart_resumed_voices(); });
  }
  return true;
}

// The output latency quantised starts, timetags and Link compensate (when a frame is heard after
// the stream clock's time for it), as the backend knows it: PortAudio measures it over its
// callbacks (the first figure after 4 of them, then every 64), and a JACK server's changes with its
// period and connections. Applied when it moves by 0.1 ms or more; logged when by 1 ms or more.
// at_start: before the main loop (the router is called directly), else posted to it.
void DaemonRun::follow_output_latency(bool at_start) {
  const double latency = backend_->output_latency_seconds();
  if (std::fabs(latency - applied_latency_s_) < 1e-4) return;
  applied_latency_s_ = latency;
  if (at_start) {
    inst_->router().set_output_latency(latency);
  } else {
    inst_->post([this, latency] { inst_->router().set_output_latency(latency); });
  }
  if (std::fabs(latency - logged_latency_s_) < 1e-3) return;
  logged_latency_s_ = latency;
  spdlog::info(
      "output latency {:.1f} ms ({:.0f} frames) compensated: the sound is heard that long after it is rendered",
      latency * 1000.0, latency * rate_);
}

// One attempt to open and start the device again (every 0.5 s for 30 s, then doubling to every 5 s): the helper
// opens it first (device_probe.hpp), looked at on each pass while it runs; once it answered, the
// device is opened here.
void DaemonRun::retry_device(std::uint64_t cb, Clock::time_point now) {
  std::string e;
  if (!server_probe_) {
    device_.set_attempts(++attempts_);
    server_probe_ = start_device_probe(bc_, false, e);
    if (!server_probe_) return device_not_back("the audio server cannot be asked: " + e, now);
  }
  const FileJob::Status st = look_at_probe(e);
  if (st == FileJob::Status::kRunning) return;
  if (st != FileJob::Status::kOk) return device_not_back(e, now);
  e.clear();
  const bool ok = open_guarded(true, true, e);
  if (stop_signal_ != 0) return;  // the main loop ends now
  if (ok) return device_back(cb, now);
  device_not_back(e, now);
}

void DaemonRun::device_back(std::uint64_t cb, Clock::time_point now) {
  const double was_lost = device_.lost_for_seconds();
  const bool was_waiting = device_.state() == control::DeviceState::kWaiting;
  device_.set_running();
  // The device's own latency (another device, or the same after a restart of its server): the
  // status showed 0 after a hand-over, whose image had no device at its start.
  // Until its callbacks have measured it, the backend's figure is PortAudio's estimate: applied, not
  // logged (the measured one is, a few callbacks later, when it differs).
  applied_latency_s_ = -1;
  logged_latency_s_ = backend_->output_latency_seconds();
  follow_output_latency(false);
  if (resume_.beat_ns > 0 && !voices_pending_) {  // else restart_resumed_voices carries the beat on
    const auto at = Clock::time_point(std::chrono::nanoseconds(resume_.beat_ns));
    inst_->post([this, beat = resume_.beat, at] { inst_->router().carry_beat(beat, at); });
  }
  if (backend_->buffer_size() != o_.buffer_size) {  // bc_.follow_server_period: the JACK server's period now
    spdlog::info("buffer size {} frames: the JACK server's period (was {}; no --buffer-size or --preset)",
                 backend_->buffer_size(), o_.buffer_size);
    o_.buffer_size = backend_->buffer_size();  // the next hand-over's, and the status's
    budget_ms_ = 1000.0 * o_.buffer_size / rate_;
    inst_->post([this, frames = o_.buffer_size] { inst_->router().set_buffer_size(frames); });
  }
  reopened_at_callbacks_ = cb;
  stall_callbacks_ = cb;
  stall_since_ = now;
  policy_logged_ = false;
  if (was_waiting) {
    spdlog::info("audio device {} appeared after {:.1f} s ({} attempt{}): playing on {}", wanted_, was_lost, attempts_,
                 attempts_ == 1 ? "" : "s", backend_->describe());
    systemd_.status(fmt::format("playing on {} at {} Hz, {} frames ({:.1f} ms)", backend_->describe(), rate_,
                                o_.buffer_size, budget_ms_));
  } else {
    spdlog::warn("audio device back after {:.1f} s ({} attempt{}): {}", was_lost, attempts_, attempts_ == 1 ? "" : "s",
                 backend_->describe());
    systemd_.status("audio device back: " + backend_->describe());
  }
  attempts_ = 0;
  backoff_s_ = 0.5;
}

void DaemonRun::device_not_back(const std::string& e, Clock::time_point now) {
  // Said at the first attempt, at the end of the half-second ones, then once a minute or so.
  if (attempts_ == 1 || attempts_ == kSteadyAttempts ||
      (attempts_ > kSteadyAttempts && (attempts_ - kSteadyAttempts) % 12 == 0)) {
    spdlog::info("audio device {} (attempt {}): {}; next attempt in {:.1f} s",
                 device_.state() == control::DeviceState::kWaiting ? "not there yet" : "not back yet", attempts_, e,
                 std::min(backoff_s_, 5.0));
  }
  if (device_.state() == control::DeviceState::kWaiting) {
    device_.set_waiting(e);
    systemd_.status(fmt::format("waiting for device {} ({}), attempt {}", wanted_, e, attempts_));
  } else {
    device_.set_reason(e);
  }
  next_attempt_ = now + std::chrono::milliseconds(static_cast<int>(backoff_s_ * 1000));
  if (attempts_ >= kSteadyAttempts) backoff_s_ = std::min(backoff_s_ * 2, 5.0);
}

}  // namespace stemd::app
