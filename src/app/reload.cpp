// SIGHUP (systemctl reload) [main]: the flags and --config file are read again. What can change
// live does — log level, the OSC allow-list, deck levels, the volumes of the start-up voices —;
// anything else that changed is named as needing a restart. A config that does not parse is
// reported (file, line, key) and the running configuration stays. What the control thread owns
// is changed on it, through Instance::post().
#include "daemon_run.hpp"

#include "control/deck_ids.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <optional>
#include <set>

namespace stemd::app {

namespace {

std::string join(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& x : v) out += (out.empty() ? "" : ", ") + x;
  return out;
}

std::vector<float> deck_levels_of(const Options& n) {
  std::vector<float> lv = n.levels;
  if (!n.ab.empty()) {
    lv.resize(std::max<std::size_t>(lv.size(), 2), 1.0f);
    lv[0] = n.ab[0];
    lv[1] = n.ab[1];
  }
  return lv;
}

}  // namespace

// Before, SIGHUP read the config file here, on the main thread: on a file system that stopped
// answering the main loop waited in the kernel for good — SIGTERM never acted on, systemd's
// SIGKILL then, the state not saved (attack pass 24, F4). Now its helper reads it.
void DaemonRun::on_sighup() {
  if (reload_job_ && reload_given_up_) {
    spdlog::error(
        "SIGHUP: configuration not reloaded, the running one stays: the read of {} given up on {:.0f} s ago has "
        "still not returned (its file system does not answer); SIGHUP again once it does",
        reload_job_->waiting_on(), reload_job_->seconds() - o_.load_timeout);
    return;
  }
  if (reload_job_) {
    spdlog::info("SIGHUP: a reload is already waiting for {} ({:.1f} s): this SIGHUP is part of it",
                 reload_job_->waiting_on(), reload_job_->seconds());
    return;
  }
  const ConfigPlan plan = config_plan(argc_, argv_);
  if (plan.candidates.empty()) {  // --config none: nothing to read
    ConfigInput none;
    reload(none);
    return;
  }
  std::string e;
  reload_job_ = ConfigJob::start(self_helper(), plan, e);
  reload_given_up_ = false;
  if (!reload_job_) spdlog::error("SIGHUP: configuration not reloaded, the running one stays: {}", e);
}

void DaemonRun::poll_reload() {
  if (!reload_job_) return;
  if (std::optional<ConfigRead> r = reload_job_->poll()) {
    const bool given_up = reload_given_up_;
    const std::string where = reload_job_->waiting_on();
    const double took = reload_job_->seconds();
    reload_job_.reset();
    if (given_up) {  // its outcome is too late to apply: a SIGHUP reads the file again
      spdlog::info("SIGHUP: the read of {} given up on has ended after {:.0f} s: SIGHUP reloads again", where, took);
      return;
    }
    ConfigInput read;
    read.read = std::move(*r);
    reload(read);
    return;
  }
  if (!reload_given_up_ && reload_job_->seconds() >= o_.load_timeout) {
    const ConfigRead r = reload_job_->give_up(o_.load_timeout, "--load-timeout");
    reload_given_up_ = true;
    spdlog::error("SIGHUP: configuration not reloaded, the running one stays: {}", r.error);
  }
}

void DaemonRun::reload(ConfigInput& config) {
  // The files the parse reads besides the config (--bpm-config) through the helper, given up on
  // after --load-timeout: a share that stopped answering holds the main loop that long, not for
  // good (outside pass 25, N2).
  config.helper = self_helper();
  config.timeout_s = o_.load_timeout;
  config.deadline_note = "--load-timeout";
  Options n;
  std::string e;
  if (parse_options(argc_, argv_, n, &e, &config) >= 0) {
    spdlog::error("SIGHUP: configuration not reloaded, the running one stays: {}", e);
    return;
  }
  if (control::AllowList check; !n.allow.empty() && !check.parse(n.allow, e)) {
    spdlog::error("SIGHUP: configuration not reloaded, the running one stays: allow = \"{}\": {}", n.allow, e);
    return;
  }
  for (const auto& w : n.config_warnings) spdlog::warn("SIGHUP: {}", w);
  const std::string from = o_.config_path.empty() ? "the command line (no --config)" : o_.config_path;
  std::vector<std::string> applied, restart;
  // What changes live: compared with the value in force now.
  if (spdlog::default_logger()->level() != spdlog::level::from_str(n.log_level)) {
    spdlog::default_logger()->set_level(spdlog::level::from_str(n.log_level));
    applied.push_back("log-level " + n.log_level);
  }
  if (n.allow != live_allow_ && !o_.no_osc) {
    live_allow_ = n.allow;
    control::OscServer* server = inst_->server();
    inst_->post([server, allow = n.allow, bind = o_.osc_bind] {
      std::string pe;
      if (server->set_allow(allow, pe)) {
        spdlog::info("SIGHUP: OSC now allows {}", allow.empty() ? std::string("loopback only") : allow);
        warn_if_shut_out(*server, bind, allow, "SIGHUP: ");  // as a start with this allow-list warns
      } else {
        spdlog::error("SIGHUP: allow = \"{}\" not applied, the previous allow-list stays: {}", allow, pe);
      }
    });
    applied.push_back("allow");
  }
  if (web_ && n.allow != web_->allow()) {  // the web monitor follows the same --allow
    if (std::string we; web_->set_allow(n.allow, we)) {
      spdlog::info("SIGHUP: the web monitor now allows {}", n.allow.empty() ? std::string("loopback only") : n.allow);
      if (std::find(applied.begin(), applied.end(), "allow") == applied.end()) applied.push_back("allow");
    } else {
      spdlog::error("SIGHUP: allow = \"{}\" not applied to the web monitor, its allow-list stays: {}", n.allow, we);
    }
  }
  if (const std::vector<float> lv = deck_levels_of(n); lv != live_levels_) {
    live_levels_ = lv;
    std::vector<float> to = lv;
    to.resize(4, 1.0f);  // a deck the config no longer names goes back to unity
    control::Controller* ctl = &inst_->controller();
    inst_->post([ctl, to] {
      std::string de;
      for (std::size_t d = 0; d < 4; ++d) ctl->set_deck_level(control::kNow, static_cast<int>(d), to[d], 0.05, de);
    });
    applied.push_back("levels");
  }
  apply_live_volumes(n, applied);
  if (n.watch != o_.watch) {
    o_.watch = n.watch;
    applied.push_back(n.watch ? "watch on" : "watch off");
  }
  static const std::set<std::string> kLive{"log-level", "allow", "levels", "ab", "volume", "vol", "watch"};
  for (const std::string& k : changed_keys(o_, n)) {
    if (kLive.count(k) == 0) restart.push_back(k);
  }
  // A change that waits for a restart is a warning: under log-level = "warning" (an unattended box
  // keeping its journal small) it was silent (new-user pass 21).
  spdlog::log(restart.empty() ? spdlog::level::info : spdlog::level::warn, "SIGHUP: reloaded {}: {}{}", from,
              applied.empty() ? "nothing to apply" : "applied " + join(applied),
              restart.empty()
                  ? std::string()
                  : "; changed but only taking effect after a restart (systemctl restart stemd): " + join(restart));
}

// --volume (the --play voices) and --vol (the decks' voices): the players of those ids follow.
void DaemonRun::apply_live_volumes(const Options& n, std::vector<std::string>& applied) {
  for (const bool decks : {false, true}) {
    const float v = decks ? n.deck_volume : n.volume;
    float& live = decks ? live_vol_ : live_volume_;
    if (v == live) continue;
    live = v;
    std::vector<int> ids = slots_;
    if (decks) ids.assign(std::begin(control::kDeckBase), std::end(control::kDeckBase));
    control::Controller* ctl = &inst_->controller();
    control::Router* router = &inst_->router();
    inst_->post([ctl, router, ids, v] {
      std::string ve;
      for (int id : ids) {
        if (const control::VoiceHandle h = router->player(id); h.valid())
          ctl->set_volume(control::kNow, h, v, 0.05, ve);
      }
    });
    applied.push_back(decks ? "vol" : "volume");
  }
}

}  // namespace stemd::app
