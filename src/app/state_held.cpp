// The state file's sources whose files were missing at start (state.hpp): a USB disk or a network
// share mounted after stemd started must not cost the show. Such a source is kept — written on
// into the state file as it was read, with its voice lines — and tried again every retry_s until
// its file is there, then restored with its voices as at start.
//
// Threads: everything here runs on the control thread [control]. A retry goes through the router
// from an in-process peer (control::kQuietPeer): the load runs on the router's opener threads (a
// hung mount blocks no one) and its typed outcome comes later through the router's outcome
// observer, as the restore's do (observe(), state_restore.cpp); the voice lines wait behind it as
// a client's would, and a refusal is neither logged again nor counted as a client's bad input.
#include "base/log_guard.hpp"
#include "state.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

namespace stemd::app {

bool file_may_come_back(control::ErrorKind kind, const std::string& reason) {
  // Given up under --load-timeout (router_expire.cpp): a network share or FUSE mount that did not
  // answer, or answered too slowly.
  if (kind == control::ErrorKind::kGivenUp) return true;
  if (kind != control::ErrorKind::kPath) return false;
  for (int e : {ENOENT, ENOTDIR, EACCES, EIO, ESTALE, ENODEV, ENXIO, ETIMEDOUT, EHOSTDOWN, EHOSTUNREACH}) {
    if (reason.find(std::strerror(e)) != std::string::npos) return true;
  }
  return false;
}

std::string waiting_text(const std::vector<std::string>& paths, const std::string& reason, double retry_s) {
  if (paths.empty()) return {};
  // Paths are a client's (a /stemd/load's, kept in the state file): escaped, as in every log line —
  // the text goes to the health line, systemd's STATUS= and the status (outside pass 30, F3: a
  // name with a newline split them and put its own WATCHDOG=trigger into STATUS=).
  const std::string why = base::log_escape(reason.empty() ? paths.front() : reason, 400);
  if (paths.size() == 1) {
    return fmt::format("1 source waiting for its file: {} (tried again every {:g} s)", why, retry_s);
  }
  // The directory they share (a stick's mount point, a share's root): where to look.
  std::filesystem::path common = std::filesystem::path(paths.front()).parent_path();
  for (const std::string& p : paths) {
    const std::filesystem::path dir = std::filesystem::path(p).parent_path();
    std::filesystem::path shared;
    for (auto a = common.begin(), b = dir.begin(); a != common.end() && b != dir.end() && *a == *b; ++a, ++b) {
      shared /= *a;
    }
    common = shared;
  }
  const std::string where = common.empty() ? std::string() : " in " + base::log_escape(common.string(), 400);
  return fmt::format("{} sources waiting for their files{} (the first: {}; tried again every {:g} s)", paths.size(),
                     where, why, retry_s);
}

void StateKeeper::publish_held() {
  std::vector<std::string> paths;
  for (const Held& h : held_) paths.push_back(h.path);
  waiting_->set(static_cast<int>(held_.size()),
                waiting_text(paths, held_.empty() ? std::string() : held_.front().reason, cfg_.retry_s));
}

bool StateKeeper::held(int id) const {
  return std::any_of(held_.begin(), held_.end(), [id](const Held& h) { return h.id == id; });
}

bool StateKeeper::forget_held(int id) {
  bool any = false;
  for (auto it = held_.begin(); it != held_.end();) {
    if (id >= 0 && it->id != id) {
      ++it;
      continue;
    }
    spdlog::info("state file {}: source {} ({}) no longer waited for: {}", cfg_.path, it->id,
                 base::log_escape(it->path, 400), id >= 0 ? "unloaded by a client" : "/mixer_cleanup");
    it = held_.erase(it);
    any = true;
  }
  if (any) publish_held();
  return any;
}

void StateKeeper::hold(const StateMessage& load, const std::string& reason) {
  const control::OscMessage& m = load.message;
  Held h;
  h.id = static_cast<int>(m.args[0].i);
  h.path = m.args.size() > 1 && m.args[1].is_string() ? m.args[1].s : std::string();
  h.messages.push_back(load);
  h.reason = reason;
  spdlog::warn(
      "state file {}:{}: source {} not restored yet: {} — kept in the state file and tried again every {:g} s "
      "(a disk mounted late?); its voices start when it loads",
      cfg_.path, load.line, h.id, base::log_escape(reason, 400), cfg_.retry_s);
  held_.push_back(std::move(h));
  if (!restoring_) publish_held();
}

void StateKeeper::add_to_held(const StateMessage& m) {
  const int id = static_cast<int>(m.message.args[0].i);
  for (Held& h : held_) {
    if (h.id == id) h.messages.push_back(m);
  }
}

DaemonState StateKeeper::capture(const control::Controller& ctl, const control::Router& router) const {
  DaemonState s = capture_state(ctl, router, cfg_.restore_voices);
  if (cfg_.restore_voices && add_unplayed_) add_unplayed_(s);
  add_held(s);
  return s;
}

void StateKeeper::add_held(DaemonState& s) const {
  for (const Held& h : held_) {
    // A lost voice's id still holds the source it played: its load line is the held one (once).
    if (h.lost) std::erase_if(s.sources, [&h](const StateSource& src) { return src.id == h.id; });
    s.held.push_back("# source " + std::to_string(h.id) +
                     (h.lost ? ": its file stopped reading mid-play; its voice kept, the file tried again"
                             : ": its file was missing at start; kept, tried again"));
    for (const StateMessage& m : h.messages) s.held.push_back(state_line(m.message));
  }
}

void StateKeeper::log_restored(const Held& h, const control::Router& router) {
  if (h.lost) return log_lost_resumed(h, router);
  spdlog::info("state file {}: source {} restored: {} is there now{}", cfg_.path, h.id, base::log_escape(h.path, 400),
               h.messages.size() > 1 ? fmt::format(" ({} voice lines with it)", h.messages.size() - 1) : std::string());
}

bool StateKeeper::retry(Held& h, control::Router& router) {
  control::Peer self;
  self.local = control::kQuietPeer;
  const control::Reply r = router.handle_async(h.messages.front().message, self);
  // Still missing (or busy): tried again in retry_s, the status saying why now. Loading (kDeferred):
  // its voice lines go when its load's outcome comes (retry_held_now), fitted to the file as it is then.
  if (!r.ok && r.kind != control::ErrorKind::kDeferred && r.kind != control::ErrorKind::kBusy) h.reason = r.reason;
  if (!r.ok) return false;
  route_held_voices(h, router);
  return true;
}

// A held source's voice lines, once it loaded: fitted to its file (a shorter edit copied onto the
// disk while it was away: fit_voice_to_file), then routed together.
void StateKeeper::route_held_voices(const Held& h, control::Router& router) {
  if (h.messages.size() < 2) return;
  const io::Source* src = router.source(h.id);
  std::map<int, RestoreLoop> loops;
  std::vector<control::OscMessage> msgs;
  for (std::size_t i = 1; i < h.messages.size(); ++i) {
    StateMessage sm = h.messages[i];
    if (src != nullptr && fit_logged(sm, *src, h.id, loops)) return;  // past the end of a shorter file: ended
    msgs.push_back(std::move(sm.message));
  }
  control::Peer self;
  self.local = control::kQuietPeer;
  const std::vector<std::uint8_t> packet = control::osc_serialise_bundle(msgs, control::kOscImmediately);
  std::vector<control::Outgoing> out;  // answers of the daemon's own lines go nowhere
  router.handle_packet(packet.data(), packet.size(), self, out);
}

void StateKeeper::retry_held(const control::Controller& ctl, control::Router& router) {
  if (!held_.empty() || waiting_->count.load() != 0) {
    retry_held_now(ctl, router);
    publish_held();
  } else {
    take_outcomes();
  }
}

void StateKeeper::retry_held_now(const control::Controller& ctl, control::Router& router) {
  const std::vector<control::Outcome> outcomes = take_outcomes();
  if (held_.empty()) return;
  // A retry's load that finished later: loaded, the source is restored (its voice lines ran behind
  // it); refused, it is tried again. The only loads of the daemon's own peer are these retries.
  for (const control::Outcome& o : outcomes) {
    if (!o.has_id || (o.address != "/stemd/load" && o.address != "/load_buffer")) continue;
    for (auto it = held_.begin(); it != held_.end(); ++it) {
      if (it->id != o.id) continue;
      if (!o.reply.ok) {  // still not there: the status says why now
        it->reason = o.reply.reason;
        break;
      }
      route_held_voices(*it, router);
      log_restored(*it, router);
      held_.erase(it);
      break;
    }
  }
  // A held id loaded (or played) now, and not by its retry: a client chose something else for it.
  std::erase_if(held_, [&](const Held& h) { return taken_over(h, ctl, router); });
  const auto now = std::chrono::steady_clock::now();
  if (held_.empty() || now - last_retry_ < std::chrono::duration<double>(cfg_.retry_s)) return;
  last_retry_ = now;
  for (auto it = held_.begin(); it != held_.end();) {
    // The last try still waits on its file (a hung mount), or a client's message on the id waits.
    if (router.load_in_flight(it->id) || router.waits_behind_load(it->messages.front().message)) {
      ++it;
      continue;
    }
    if (!retry(*it, router)) {
      ++it;
      continue;
    }
    log_restored(*it, router);
    it = held_.erase(it);
  }
}

}  // namespace stemd::app
