// Loads and plays' stream opens given up (Router::expire_loads, every control pass) [control].
//
// A job's time counts from when it started on an opener thread, not from when it was sent: one
// queued behind others is not late. And a started job is stuck only when the file system has not
// answered it for --load-timeout: its progress beat (io/progress_beat.hpp, in its OpenTrail) moves
// with every path its walk looked at and every read of the file that returned, so a slow share
// or a long FLAC decoded into memory on a slow CPU keeps going (outside attack, MEDIUM 7: 16 such
// loads on 2 opener threads failed "the file system did not answer", and the ones that had
// started marked the disk as dead). What is given up, and why it says so:
//  - stuck: started, its beat still for --load-timeout. "timed out: the file system did not answer
//    for T s". Recorded in StuckOpens where its walk or read is (its file system then answers busy
//    to new opens until it returns), and every other job on that file system goes with it.
//  - dragged: on a file system where a job is stuck (see above) — "given up" when it had started,
//    "not started" when queued: "its file system (MOUNT) did not answer another open for T s".
//  - too slow: 12 × T (RouterConfig::load_bound_factor) after it was sent, not done though its file
//    system answers — still reading (a file that trickles for ever), or not started behind such
//    loads. The bound that makes every load answered in bounded time (2 minutes by default): a
//    client hears within it even when it would rather wait, and can send the load again.
//  - held: queued T after it was sent while no thread may start it, the opener threads being at
//    their cap of lost ones (LoadPool::held_by_lost: only a stuck job's return frees one).
// Every one is answered with ErrorKind::kGivenUp (its reason names --load-timeout, for the client):
// the state file's restore keeps such a source and tries it again (app/state_held.cpp), by the
// kind. The jobs given up are abandoned together (LoadPool::abandon), and their beats cancelled:
// one that is still answered stops at its next read.
#include "router.hpp"
#include "router_jobs.hpp"

#include "base/log_guard.hpp"
#include "file_system.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdio>
#include <map>

namespace stemd::control {

namespace {

using Clock = std::chrono::steady_clock;
using Seconds = std::chrono::duration<double>;

enum class Verdict { kWait, kStuck, kSlow, kUnstarted, kHeld };

struct Judge {
  Clock::time_point now;
  double timeout_s;
  double factor;             // RouterConfig::load_bound_factor
  std::size_t held_by_lost;  // LoadPool::held_by_lost()
  Seconds limit() const { return Seconds(timeout_s); }
  Seconds bound() const { return Seconds(timeout_s * factor); }
  Verdict operator()(const OpenTrail* trail, Clock::time_point since) const {
    if (trail != nullptr && trail->finished()) return Verdict::kWait;  // its result is on its way
    if (trail != nullptr && trail->progress().started()) {
      if (now - trail->progress().last() >= limit()) return Verdict::kStuck;
      return now - since >= bound() ? Verdict::kSlow : Verdict::kWait;
    }
    if (now - since >= bound()) return Verdict::kUnstarted;
    return held_by_lost > 0 && now - since >= limit() ? Verdict::kHeld : Verdict::kWait;
  }
  // What the client reads (`running`: the other jobs started and not done).
  std::string reason(Verdict v, Clock::time_point since, std::size_t running) const {
    char why[320];
    const double waited = Seconds(now - since).count();
    switch (v) {
      case Verdict::kStuck:
        std::snprintf(why, sizeof why, "timed out: the file system did not answer for %g s (--load-timeout)",
                      timeout_s);
        break;
      case Verdict::kSlow:
        std::snprintf(why, sizeof why,
                      "too slow: still reading %.0f s after it was sent, though its file system answers (%g × "
                      "--load-timeout at most)",
                      waited, factor);
        break;
      case Verdict::kUnstarted:
        std::snprintf(why, sizeof why,
                      "too slow: not started %.0f s after it was sent, behind %zu others still reading (%g × "
                      "--load-timeout at most)",
                      waited, running, factor);
        break;
      case Verdict::kHeld:
        std::snprintf(why, sizeof why,
                      "not started after %.0f s: %zu opener threads are stuck in file systems that stopped answering "
                      "(past --load-timeout); none may start it until one returns",
                      waited, held_by_lost);
        break;
      case Verdict::kWait:
        return {};
    }
    return why;
  }
  // One given up with a stuck job on its file system (`mount`).
  std::string dragged(bool started, const std::string& mount) const {
    char secs[32];
    std::snprintf(secs, sizeof secs, "%g", timeout_s);
    return std::string(started ? "given up" : "not started") + ": its file system (" + mount +
           ") did not answer another open for " + secs + " s (--load-timeout)";
  }
};

bool running(const OpenTrail* t) { return t != nullptr && t->progress().started() && !t->finished(); }

}  // namespace

void Router::expire_loads(Clock::time_point now) {
  if (pending_.empty() && pending_plays_.empty()) return;  // every pass: nothing to look at
  const Judge judge{now, cfg_.load_timeout_s, cfg_.load_bound_factor, pool_->held_by_lost()};
  std::size_t busy = 0;  // jobs running now
  for (const auto& [id, p] : pending_) busy += running(p.trail.get()) ? 1 : 0;
  for (const auto& [token, p] : pending_plays_) busy += running(p.trail.get()) ? 1 : 0;
  const auto play_path = [](const PendingPlay& p) {
    const std::size_t at = p.opening ? p.opening->load() : 0;
    return at < p.paths.size() ? p.paths[at] : std::string();
  };
  std::map<std::uint64_t, std::string> gone;  // ticket → why it was given up
  std::map<std::string, std::string> dead;    // file system (FileSystemOf::key) with a stuck job → its mount
  // A stuck job is stuck where its trail is (a load's walk; a play's stream opens on its source's
  // file, found at load), since its last progress. Recorded before the abandon below: a
  // replacement thread that takes a queued open leading there (through a symlink) is refused by
  // the guard as it walks. (A job that returns meanwhile has finished its trail: its entry goes.)
  const auto stuck_at = [&](const std::string& at, const std::string& path, const std::shared_ptr<OpenTrail>& trail) {
    stuck_->add(trail->progress().last(), at, path, trail);
    const FileSystemOf fs = file_system_of(at);
    dead.emplace(fs.key, fs.mount.empty() ? at : fs.mount);
  };
  for (const auto& [id, p] : pending_) {
    const Verdict v = judge(p.trail.get(), p.since);
    if (v == Verdict::kWait) continue;
    if (v == Verdict::kStuck) {
      const std::string at = p.trail->where();
      stuck_at(at.empty() ? media_.where(p.path) : at, media_.where(p.path), p.trail);
    }
    gone[p.ticket] = judge.reason(v, p.since, busy - (running(p.trail.get()) ? 1 : 0));
  }
  for (const auto& [token, p] : pending_plays_) {
    const Verdict v = judge(p.trail.get(), p.since);
    if (v == Verdict::kWait) continue;
    if (v == Verdict::kStuck && !play_path(p).empty()) stuck_at(play_path(p), play_path(p), p.trail);
    gone[p.ticket] = judge.reason(v, p.since, busy - (running(p.trail.get()) ? 1 : 0));
  }
  if (gone.empty()) return;
  // The other jobs on those file systems are given up in the same step: a replacement thread would
  // take a queued one and be stuck in turn (dead_share.sh under ASan: 4 threads lost to one dead
  // share where 2 had started).
  const auto drag = [&](std::uint64_t ticket, const std::string& path, const OpenTrail* trail) {
    if (dead.empty() || path.empty() || gone.count(ticket) != 0) return;
    const auto it = dead.find(file_system_of(path).key);
    if (it != dead.end()) gone[ticket] = judge.dragged(trail != nullptr && trail->progress().started(), it->second);
  };
  for (const auto& [id, p] : pending_) drag(p.ticket, media_.where(p.path), p.trail.get());
  for (const auto& [token, p] : pending_plays_) drag(p.ticket, play_path(p), p.trail.get());
  abandon_expired(gone);
}

void Router::abandon_expired(const std::map<std::uint64_t, std::string>& gone) {
  std::vector<std::uint64_t> tickets;
  for (const auto& [ticket, why] : gone) tickets.push_back(ticket);
  // All in one step, the queued ones first (LoadPool::abandon): one by one, a replacement thread
  // took the next queued job and was then counted lost for it.
  const std::vector<bool> lost_of = pool_->abandon(tickets);
  const auto lost = [&](std::uint64_t t) {
    return lost_of[static_cast<std::size_t>(std::lower_bound(tickets.begin(), tickets.end(), t) - tickets.begin())];
  };
  for (auto it = pending_.begin(); it != pending_.end();) {
    const auto g = gone.find(it->second.ticket);
    if (g == gone.end()) {
      ++it;
      continue;
    }
    if (it->second.trail) it->second.trail->progress().cancel();  // its next read, if any, fails
    spdlog::warn("load of '{}' into id {}: {}{}", base::log_escape(it->second.path), it->first, g->second,
                 lost_note(lost(g->first)));
    answer_failed(it->second.message, it->second.from, it->second.packet,
                  Reply::fail(ErrorKind::kGivenUp, g->second, {OscArg::Int(it->first)}));
    it = pending_.erase(it);  // the id is free; the result, if it ever comes, is discarded
  }
  for (auto it = pending_plays_.begin(); it != pending_plays_.end();) {
    const auto g = gone.find(it->second.ticket);
    if (g == gone.end()) {
      ++it;
      continue;
    }
    if (it->second.trail) it->second.trail->progress().cancel();
    spdlog::warn("a play's stream of id {}: {}{}", it->second.ids.front(), g->second, lost_note(lost(g->first)));
    for (int id : it->second.ids) {
      auto s = stream_ids_.find(id);
      if (s != stream_ids_.end() && --s->second <= 0) stream_ids_.erase(s);
    }
    answer_failed(it->second.message, it->second.from, it->second.packet,
                  Reply::fail(ErrorKind::kGivenUp, g->second, {OscArg::Int(it->second.ids.front())}));
    it = pending_plays_.erase(it);
  }
  drain_deferred();
}

}  // namespace stemd::control
