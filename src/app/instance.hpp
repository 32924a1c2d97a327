// app::Instance: the one owner of a running mixer (as MPD's Instance) — loader, engine,
// controller, media policy, router and, when OSC is on, the OSC server. The daemon (app::run),
// `stemd tune`, the OSC integration harness, stemd-soak and the router fuzzer all build it the
// same way: an InstanceConfig, the constructor (the mixer core), then open_control() (the
// control side). What a harness needs differently is a field of InstanceConfig, not a copy of
// the set-up. The audio backend is not owned here: it settles the sample rate the config is
// built for, and the render backend needs the loader (loader()) between the two steps.
//
// Construction order: loader (not started) → engine (wakes the loader) → controller → media
// policy → router (events: controller → router, then InstanceConfig::on_event) → OSC server
// (sockets bound, thread not started). Destruction is the reverse; stop_control() and the
// loader/backend stops come first (the owner of the backend stops it before the Instance goes).
//
// Threads — one control thread. The control thread is whichever thread owns the Controller and
// the Router; exactly one does at any time and the role is handed over at two explicit points:
//   * before start_control(): the thread that built the Instance (the daemon's main thread
//     while it restores the state and applies the start-up flags, a harness's test thread);
//   * between start_control() and stop_control(): the control thread proper — the OSC server's
//     thread when OSC is on, otherwise a thread of the Instance's own that does what the
//     server's loop does without sockets (posted work, Controller::service when the engine's
//     bell rings and at least every 100 ms, the control tick). So with or without --no-osc, a
//     running daemon's control side is never the main thread: the main thread only waits for
//     signals, writes files, logs the health line and watches the device, and changes what the
//     control thread owns through post();
//   * after stop_control(): the caller again (the shutdown: final state, fade, last service()).
// The start-up phase stays on the building thread because the OSC server answers clients as
// soon as its thread runs: starting it earlier would let clients in before the state and the
// start-up flags are applied.
#pragma once

#include "control/controller.hpp"
#include "control/media_policy.hpp"
#include "control/osc_server.hpp"
#include "control/router.hpp"
#include "stemd/engine.hpp"
#include "io/loader_thread.hpp"

#include <semaphore.h>

#include <atomic>
#include <condition_variable>
#include <functional>
#include <optional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace stemd::app {

struct InstanceConfig {
  engine::EngineConfig engine;
  io::LoaderConfig loader;
  io::LoadOptions load;
  control::RouterConfig router;
  std::string media_root;           // empty: none
  bool media_loopback_only = true;  // without a root, loads allowed only on loopback (or no OSC)
  // Set: the root's first look-up runs under this wait and time-out (MediaPolicy::StartWait), so
  // a share that does not answer neither holds the start nor ignores SIGTERM. Unset: on this thread.
  std::optional<control::MediaPolicy::StartWait> media_start;
  bool osc = false;  // build an OscServer (open_control binds it)
  control::OscServerConfig osc_server;
  // Called on the control thread after the router has seen an engine event (the daemon logs it),
  // with the router's log limits (Router::log_limit; null once the router is gone, at teardown).
  using EventLog = std::function<void(const engine::Event&, const control::VoiceInfo&, base::LogLimiter*)>;
  EventLog on_event;
};

class Instance {
 public:
  // The mixer core: loader, engine, controller. No thread starts.
  explicit Instance(const InstanceConfig& cfg);
  ~Instance();
  Instance(const Instance&) = delete;
  Instance& operator=(const Instance&) = delete;

  // The control side: media policy, router and (cfg.osc) the OSC server, sockets bound. False
  // with the reason when the media root or a socket cannot be set up. The second form replaces
  // cfg.router and cfg.media_loopback_only (the daemon settles them once the backend is open).
  bool open_control(std::string& error);
  bool open_control(const control::RouterConfig& router, bool media_loopback_only, std::string& error);

  // [building thread] Hands the control side to its thread (see above); stop_control() joins it
  // and the caller becomes the control thread again. Both are idempotent.
  void start_control();
  void stop_control();
  bool control_running() const { return control_running_.load(); }
  // [any thread] Runs f on the control thread at its next pass (at once when the control thread
  // is not running: the caller is then the control thread).
  void post(std::function<void()> f);
  // [building thread, before start_control] Called on every pass of the Instance's own control
  // thread (without an OSC server; with one, Router::set_tick_hook does this).
  void set_control_tick(std::function<void()> f) { control_tick_ = std::move(f); }
  // [building thread, after open_control, before start_control] Replies and notifications to
  // in-process peers (control::Peer::local, the web API), handed over on the control thread.
  void set_local_sink(std::function<void(const control::Outgoing&)> f);

  io::LoaderThread& loader() { return *loader_; }
  engine::Engine& engine() { return *engine_; }
  control::Controller& controller() { return *ctl_; }
  control::MediaPolicy& media() { return media_; }
  control::Router& router() { return *router_; }
  control::OscServer* server() { return server_.get(); }  // null without OSC
  const InstanceConfig& config() const { return cfg_; }

 private:
  void control_loop();

  InstanceConfig cfg_;
  // The engine's news (events, retirees, underflows) for the OSC server's thread: the relay, which
  // the audio callback wakes (news_sem_), writes it (Engine::take_control_bell); the server polls
  // it. Closed last. Without OSC the relay sets rung_ and wakes control_loop() instead.
  int bell_fd_ = -1;
  sem_t news_sem_;
  std::atomic<bool> relay_stop_{false};
  std::thread relay_;
  static void news_cb(void* self) noexcept;
  void relay();
  std::unique_ptr<io::LoaderThread> loader_;
  std::unique_ptr<engine::Engine> engine_;
  std::unique_ptr<control::Controller> ctl_;
  control::MediaPolicy media_;
  std::unique_ptr<control::Router> router_;
  std::unique_ptr<control::OscServer> server_;
  // The Instance's own control thread (no OSC server).
  std::function<void()> control_tick_;
  std::function<void(const control::Outgoing&)> local_sink_;
  std::thread control_thread_;
  std::atomic<bool> control_running_{false};
  std::mutex posted_mu_;
  std::condition_variable posted_cv_;
  std::vector<std::function<void()>> posted_;
  bool stopping_ = false;  // guarded by posted_mu_
  bool rung_ = false;      // guarded by posted_mu_: the engine's bell, without OSC
};

}  // namespace stemd::app
