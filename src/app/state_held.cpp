// The state file's sources whose files were missing at start (state.hpp): a USB disk or a network
// share mounted after stemd started must not cost the show. Such a source is kept — written on
// into the state file as it was read, with its voice lines — and tried again every retry_s until
// its file is there, then restored with its voices as at start.
//
// Threads: everything here runs on the control thread [control]. A retry goes through the router
// as a packet from an in-process peer (control::kQuietPeer): the load runs on the router's opener
// threads (a hung mount blocks no one), the voice lines wait behind it as a client's would, and a
// refusal is neither logged again nor counted as a client's bad input.
#include "base/log_guard.hpp"
#include "state.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace stemd::app {

bool file_may_come_back(const std::string& reason) {
  for (int e : {ENOENT, ENOTDIR, EACCES, EIO, ESTALE, ENODEV, ENXIO, ETIMEDOUT, EHOSTDOWN, EHOSTUNREACH}) {
    if (reason.find(std::strerror(e)) != std::string::npos) return true;
  }
  // --load-timeout: a network share or FUSE mount that did not answer (the router's reason).
  return reason.find("(the file system did not answer)") != std::string::npos;
}

bool StateKeeper::held(int id) const {
  return std::any_of(held_.begin(), held_.end(), [id](const Held& h) { return h.id == id; });
}

void StateKeeper::hold(const StateMessage& load, const std::string& reason) {
  const control::OscMessage& m = load.message;
  Held h;
  h.id = static_cast<int>(m.args[0].i);
  h.path = m.args.size() > 1 && m.args[1].is_string() ? m.args[1].s : std::string();
  h.messages.push_back(load);
  spdlog::warn(
      "state file {}:{}: source {} not restored yet: {} — kept in the state file and tried again every {:g} s "
      "(a disk mounted late?); its voices start when it loads",
      cfg_.path, load.line, h.id, base::log_escape(reason, 400), cfg_.retry_s);
  held_.push_back(std::move(h));
}

void StateKeeper::add_to_held(const StateMessage& m) {
  const int id = static_cast<int>(m.message.args[0].i);
  for (Held& h : held_) {
    if (h.id == id) h.messages.push_back(m);
  }
}

DaemonState StateKeeper::capture(const control::Controller& ctl, const control::Router& router) const {
  DaemonState s = capture_state(ctl, router, cfg_.restore_voices);
  for (const Held& h : held_) {
    s.held.push_back("# source " + std::to_string(h.id) + ": its file was missing at start; kept, tried again");
    for (const StateMessage& m : h.messages) s.held.push_back(state_line(m.message));
  }
  return s;
}

void StateKeeper::retry_held(const control::Controller& ctl, control::Router& router) {
  if (held_.empty()) return;
  // Settled first: a held id that is loaded now — by its retry (restored) or by a client (who
  // chose something else for it: the held one is dropped).
  for (auto it = held_.begin(); it != held_.end();) {
    const io::Source* src = ctl.source(it->id);
    if (src == nullptr || router.load_in_flight(it->id)) {
      ++it;
      continue;
    }
    if (it->tried && src->path == it->path) {
      spdlog::info(
          "state file {}: source {} restored: {} is there now{}", cfg_.path, it->id, base::log_escape(it->path, 400),
          it->messages.size() > 1 ? fmt::format(" ({} voice lines with it)", it->messages.size() - 1) : std::string());
    } else {
      spdlog::info("state file {}: source {} ({}) no longer waited for: id {} was loaded with {}", cfg_.path, it->id,
                   base::log_escape(it->path, 400), it->id, base::log_escape(src->path, 400));
    }
    it = held_.erase(it);
  }
  const auto now = std::chrono::steady_clock::now();
  if (held_.empty() || now - last_retry_ < std::chrono::duration<double>(cfg_.retry_s)) return;
  last_retry_ = now;
  for (Held& h : held_) {
    if (router.load_in_flight(h.id)) continue;  // the last try still waits on its file (a hung mount)
    std::vector<control::OscMessage> msgs;
    for (const StateMessage& m : h.messages) msgs.push_back(m.message);
    const std::vector<std::uint8_t> packet = control::osc_serialise_bundle(msgs, control::kOscImmediately);
    std::vector<control::Outgoing> out;  // refusals (still missing) go nowhere
    control::Peer self;
    self.local = control::kQuietPeer;
    router.handle_packet(packet.data(), packet.size(), self, out);
    h.tried = true;
  }
}

}  // namespace stemd::app
