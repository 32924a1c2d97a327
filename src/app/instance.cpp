// The owner of a running mixer; see instance.hpp for the construction order and the threads.
#include "instance.hpp"

#include "base/log_guard.hpp"

#include <semaphore.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>

#include <spdlog/spdlog.h>

namespace stemd::app {

Instance::Instance(const InstanceConfig& cfg) : cfg_(cfg) {
  loader_ = std::make_unique<io::LoaderThread>(cfg_.loader);
  engine_ = std::make_unique<engine::Engine>(cfg_.engine);
  engine_->set_loader_wakeup(&io::LoaderThread::wake_cb, loader_.get());
  ctl_ = std::make_unique<control::Controller>(*engine_, *loader_, cfg_.load);
  // The control thread sleeps between packets (or posted work): the engine's news (a voice's start
  // or end, an underflow) rings it through the relay, instead of a pass every period while anything
  // plays. The relay is a thread of its own, not the loader the callback also wakes: a loader
  // stuck in a slow read would hold every voice's news back.
  if (cfg_.osc) bell_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  sem_init(&news_sem_, 0, 0);
  engine_->set_news_wakeup(&Instance::news_cb, this);
  relay_ = std::thread([this] { relay(); });
}

void Instance::news_cb(void* self) noexcept { sem_post(&static_cast<Instance*>(self)->news_sem_); }

// [relay] Passes the engine's bell on to the control thread: the OSC server's eventfd, or (without
// OSC) control_loop()'s condition variable.
void Instance::relay() {
  for (;;) {
    while (sem_wait(&news_sem_) != 0 && errno == EINTR) {
    }
    while (sem_trywait(&news_sem_) == 0) {  // a burst of callbacks with news: one pass
    }
    if (relay_stop_.load()) return;
    if (!engine_->take_control_bell()) continue;
    if (bell_fd_ >= 0) {
      const std::uint64_t one = 1;
      [[maybe_unused]] auto n = write(bell_fd_, &one, sizeof one);
    } else {
      {
        std::lock_guard<std::mutex> g(posted_mu_);
        rung_ = true;
      }
      posted_cv_.notify_all();
    }
  }
}

Instance::~Instance() {
  stop_control();
  relay_stop_ = true;  // the relay reads the engine and this Instance: it ends before they do
  sem_post(&news_sem_);
  if (relay_.joinable()) relay_.join();
  sem_destroy(&news_sem_);
  // Reverse order of construction: what refers to the controller goes before it.
  server_.reset();
  // The controller's destructor services its last events: they may no longer reach the router.
  if (ctl_ && cfg_.on_event) {
    ctl_->set_event_handler([log = cfg_.on_event](const engine::Event& e, const control::VoiceInfo& v) {
      log(e, v, nullptr);  // the last ones, bounded by the voices
    });
  } else if (ctl_) {
    ctl_->set_event_handler(nullptr);
  }
  if (ctl_) ctl_->set_source_handler(nullptr);
  router_.reset();
  ctl_.reset();
  engine_.reset();
  loader_.reset();
  if (bell_fd_ >= 0) close(bell_fd_);
}

bool Instance::open_control(const control::RouterConfig& router, bool media_loopback_only, std::string& error) {
  cfg_.router = router;
  cfg_.media_loopback_only = media_loopback_only;
  return open_control(error);
}

bool Instance::open_control(std::string& error) {
  if (!media_.configure(cfg_.media_root, cfg_.media_loopback_only, error,
                        cfg_.media_start ? &*cfg_.media_start : nullptr))
    return false;
  // A media disk mounted after stemd starts must not stop it: systemd would give up at boot.
  if (std::string why; !media_.present(&why)) {
    spdlog::warn(
        "--media-root {}: {} — starting anyway: loads are refused, naming it, until it is there (a disk or share "
        "mounted later is seen at the next load; the state file's sources are tried again until they load)",
        base::log_escape(media_.root(), 600), why);
  }
  router_ = std::make_unique<control::Router>(*ctl_, cfg_.router, media_);
  if (cfg_.osc) {
    cfg_.osc_server.engine_bell_fd = bell_fd_;
    server_ = std::make_unique<control::OscServer>(*ctl_, *router_, cfg_.osc_server);
    if (!server_->open(error)) return false;
  }
  control::Router* r = router_.get();
  ctl_->set_event_handler([r, log = cfg_.on_event](const engine::Event& e, const control::VoiceInfo& v) {
    r->on_event(e, v);
    if (log) log(e, v, &r->log_limit());
  });
  ctl_->set_source_handler([r](int slot, const io::Source* s) { r->on_source(slot, s); });
  return true;
}

void Instance::set_local_sink(std::function<void(const control::Outgoing&)> f) {
  local_sink_ = f;
  if (server_) server_->set_local_sink(std::move(f));
}

void Instance::start_control() {
  if (control_running_.exchange(true)) return;
  // Load lines are limited from here on, when clients can send loads: the files named at start
  // (--play, the deck flags, a state file, --script) are the operator's, each one logged.
  ctl_->set_log_limit(&router_->log_limit());
  if (server_) {
    server_->start();  // from here on the server's thread is the control thread
    return;
  }
  {
    std::lock_guard<std::mutex> g(posted_mu_);
    stopping_ = false;
  }
  control_thread_ = std::thread([this] { control_loop(); });
}

void Instance::stop_control() {
  if (!control_running_.load()) return;
  if (server_) {
    server_->stop();
  } else {
    {
      std::lock_guard<std::mutex> g(posted_mu_);
      stopping_ = true;
    }
    posted_cv_.notify_all();
    if (control_thread_.joinable()) control_thread_.join();
  }
  control_running_ = false;  // the caller is the control thread again
}

void Instance::post(std::function<void()> f) {
  if (server_) {
    server_->post(std::move(f));  // runs it at once when the server's thread is not running
    return;
  }
  {
    std::unique_lock<std::mutex> g(posted_mu_);
    if (control_running_.load() && !stopping_) {
      posted_.push_back(std::move(f));
      g.unlock();
      posted_cv_.notify_all();
      return;
    }
  }
  f();
}

// The control thread without an OSC server: what the server's loop does, without sockets.
void Instance::control_loop() {
  std::vector<std::function<void()>> work;
  for (;;) {
    {
      std::unique_lock<std::mutex> g(posted_mu_);
      // Until work is posted or the engine has news (its bell, passed on by the relay); 100 ms
      // at most, as the OSC server's loop.
      posted_cv_.wait_for(g, std::chrono::milliseconds(100), [this] { return stopping_ || rung_ || !posted_.empty(); });
      rung_ = false;
      work.swap(posted_);
      if (stopping_ && work.empty()) return;
    }
    for (auto& f : work) f();
    work.clear();
    ctl_->service();
    if (router_) router_->log_bad_input();  // and the log limits' "… more suppressed" lines
    // Loads on the opener threads (with --no-osc: the start files', then the state file's retries):
    // installed, or timed out, here as in the OSC server's loop.
    if (router_) router_->poll_loads();
    if (router_) {  // without sockets only in-process peers can be answered; the rest go nowhere
      std::vector<control::Outgoing> out;
      router_->take_replies(out);
      if (local_sink_) router_->take_notifications(out);
      for (const auto& o : out) {
        if (local_sink_ && o.to.local != 0) local_sink_(o);
      }
    }
    // The router's tick, as the OSC server's loop runs it: the Link session followed (its tempo,
    // grid and peers), the tempo glide, the clock printout. Without it a --no-osc --link box never
    // followed the session (found with new-user pass 26's M3: its health line said "Link: 0 peers").
    if (router_) router_->tick();
    if (control_tick_) control_tick_();
  }
}

}  // namespace stemd::app
