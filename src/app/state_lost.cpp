// Voices whose files stopped reading mid-play (state.hpp): a USB stick that dies during the show, a
// share that goes away, a file rewritten in place in another format. Such a voice ended with an
// error and was gone for good — from the voices and from the state file — while a gallery expects
// its looping piece to come back by itself when the stick does (installer pass 29, L1 and L2).
//
// Now it waits for its file as a state file's source missing at start does (state_held.cpp): kept
// as a held source — its load line and its voice lines as the state file writes them, at the
// position where it stopped —, written on into the state file, shown in the status, stemctl status
// and list, the health line and the web page (sources_waiting), and tried again every retry_s
// through the router's opener threads (a dead mount's open hangs one of them, never the control
// thread; --load-timeout and the stuck-mount guard as for any load). When the file loads again the
// voice goes on where it stopped — a looping one too: the place in the piece the room last heard,
// the same place a restart would restore it at (the state file keeps that position) —, fitted to
// the file as it is then (a new, shorter edit: fit_voice_to_file). A voice that does not loop waits
// and goes on the same way: the rest of the piece is what a user expects, not its skipping.
//
// Bounds: one held entry per id (a new loss of an id replaces its entry), and only for an id that
// holds a source: at most --max-sources of them, each a few lines. A client's stop, unload, load or
// play of the id, or /mixer_cleanup, gives the wait up. A file that loads again and fails at the
// same place again (damaged there, not a disk gone) is not waited for a second time.
//
// Threads: [control] — the router's hook only queues the voice (it runs inside Controller::service()).
#include "base/log_guard.hpp"
#include "state.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>

namespace stemd::app {

namespace {

// Voices queued between two polls: ends of players, so at most the engine's voices each service();
// beyond this (never in practice: a poll follows every service) the rest end as before.
constexpr std::size_t kMaxLostQueued = 4096;
// A resumed voice failing again within this many file seconds of where it went on, within this long.
constexpr double kSamePlaceSeconds = 2.0;
constexpr auto kSamePlaceWithin = std::chrono::seconds(60);

// "1:02.5": file frames as file seconds (its own rate), for the log.
std::string file_time(std::int64_t frames, int rate) {
  if (rate <= 0) return std::to_string(frames) + " frames";
  const double s = static_cast<double>(frames) / rate;
  const auto m = static_cast<long long>(s / 60);
  return fmt::format("{}:{:04.1f}", m, s - 60.0 * static_cast<double>(m));
}

}  // namespace

void StateKeeper::watch_voices(control::Router& router) {
  if (watching_) return;
  watching_ = true;
  router.set_lost_voices(
      [inbox = std::weak_ptr(lost_)](const control::VoiceInfo& v) {
        if (auto q = inbox.lock(); q && q->size() < kMaxLostQueued) q->push_back(v);
      },
      [this, alive = std::weak_ptr(alive_)](int id) { return alive.lock() && forget_lost(id); });
}

void StateKeeper::take_lost(const control::Controller& ctl, const control::Router& router) {
  if (lost_->empty()) return;
  std::vector<control::VoiceInfo> lost;
  lost.swap(*lost_);
  const auto now = std::chrono::steady_clock::now();
  std::erase_if(resumed_, [now](const auto& r) { return now - r.second.at > kSamePlaceWithin; });
  for (const control::VoiceInfo& v : lost) lose(ctl, router, v);
  publish_held();
  last_retry_ = now;  // the first try in retry_s: a file being copied over has time to be whole
}

void StateKeeper::lose(const control::Controller& ctl, const control::Router& router, const control::VoiceInfo& v) {
  const int id = v.slot;
  const io::Source* src = ctl.source(id);
  if (src == nullptr || v.stopping || src->path == "(generated)") return;  // unloaded or stopped meanwhile
  const std::string path = base::log_escape(src->path, 400);
  const std::string name = base::log_escape(v.name, 200);
  if (const auto r = resumed_.find(id); r != resumed_.end()) {
    const std::int64_t near = static_cast<std::int64_t>(kSamePlaceSeconds * std::max(v.sample_rate, 1));
    const bool same = v.position >= r->second.position && v.position - r->second.position < near;
    resumed_.erase(r);
    if (same) {
      spdlog::warn(
          "id {} '{}': {} loaded again but stopped reading again at the same place ({}, file frame {}): the file "
          "seems damaged there, not its disk gone — its voice ends (load and play it again once the file is mended)",
          id, name, path, file_time(v.position, v.sample_rate), v.position);
      return;
    }
  }
  StateVoice sv = state_voice(ctl, router, id, v);
  sv.starting = false;  // it was heard
  std::vector<StateMessage> msgs;
  std::string error;
  control::OscMessage load{
      "/stemd/load", {control::OscArg::Int(id), control::OscArg::Str(src->path), control::OscArg::Str(src->name)}};
  if (!parse_state("stemd-state 1\n" + state_line(load) + "\n" + voice_lines(sv) + "end\n", msgs, error)) {
    spdlog::warn("id {} '{}': its voice stopped and cannot wait for its file: {}", id, name, error);  // cannot happen
    return;
  }
  for (StateMessage& m : msgs) m.line = 0;                           // not a line of the file
  std::erase_if(held_, [id](const Held& h) { return h.id == id; });  // a new loss of the id replaces the old
  Held h;
  h.id = id;
  h.path = src->path;
  h.reason =
      src->path + ": it stopped reading mid-play (its voice waits at " + file_time(sv.position, v.sample_rate) + ")";
  h.messages = std::move(msgs);
  h.lost = true;
  h.serial = ctl.load_serial(id);
  h.voice = v.handle;
  h.position = sv.position;
  h.rate = v.sample_rate;
  h.name = v.name;
  h.since = std::chrono::steady_clock::now();
  spdlog::warn(
      "id {} '{}': its voice stopped at {} (file frame {}) because {} stopped reading (the error above: its disk or "
      "share gone, or the file rewritten) — it waits for its file, tried again every {:g} s, and goes on from there "
      "when the file reads again{}; `stemctl stop {}` gives it up",
      id, name, file_time(sv.position, v.sample_rate), sv.position, path, cfg_.retry_s,
      cfg_.path.empty() ? std::string() : " (kept in the state file meanwhile)", id);
  held_.push_back(std::move(h));
}

void StateKeeper::check_resumed() {
  if (resumed_.empty() || outcomes_->empty()) return;
  // A resumed voice's play answered later (its stream opened on an opener thread) and refused: the
  // file loaded but does not read where the voice goes on — damaged there. Said, and not waited for.
  std::erase_if(*outcomes_, [this](const control::Outcome& o) {
    if (o.reply.ok || !o.has_id || (o.address != "/stemd/play" && o.address != "/stemd/play_region")) return false;
    const auto r = resumed_.find(o.id);
    if (r == resumed_.end()) return false;
    spdlog::warn(
        "id {}: its file loaded again but its voice could not go on at file frame {}: {} — the file seems damaged "
        "there, not its disk gone: it is not waited for again (load and play it again once the file is mended)",
        o.id, r->second.position, base::log_escape(o.reply.reason, 400));
    resumed_.erase(r);
    return true;
  });
}

bool StateKeeper::forget_lost(int id) {
  const auto n = std::erase_if(held_, [id](const Held& h) { return h.lost && h.id == id; });
  if (n == 0) return false;
  spdlog::info("id {}: its voice no longer waits for its file (stopped by a client)", id);
  publish_held();
  return true;
}

bool StateKeeper::taken_over(const Held& h, const control::Controller& ctl, const control::Router& router) const {
  if (router.load_in_flight(h.id)) return false;
  const io::Source* src = ctl.source(h.id);
  std::string what;
  if (!h.lost) {
    if (src == nullptr) return false;
    what = "id " + std::to_string(h.id) + " was loaded with " + base::log_escape(src->path, 400);
  } else if (ctl.load_serial(h.id) != h.serial) {
    what = src == nullptr ? "id " + std::to_string(h.id) + " was unloaded"
                          : "id " + std::to_string(h.id) + " was loaded with " + base::log_escape(src->path, 400);
  } else if (const control::VoiceHandle p = router.player(h.id);
             p.valid() && (p.id != h.voice.id || p.generation != h.voice.generation)) {
    what = "a client played id " + std::to_string(h.id) + " again";
  } else {
    return false;
  }
  spdlog::info("state file {}: source {} ({}) no longer waited for: {}", cfg_.path, h.id, base::log_escape(h.path, 400),
               what);
  return true;
}

void StateKeeper::log_lost_resumed(const Held& h, const control::Router& router) {
  const auto now = std::chrono::steady_clock::now();
  const auto away = std::chrono::duration<double>(now - h.since).count();
  const io::Source* src = router.source(h.id);
  if (src != nullptr && src->total_frames() > 0 && h.position >= src->total_frames()) {  // fitted: said above
    spdlog::info(
        "id {} '{}': {} reads again, {} file frames long now — its voice goes on as said above, after {:.0f} "
        "s away",
        h.id, base::log_escape(h.name, 200), base::log_escape(h.path, 400), src->total_frames(), away);
    return;
  }
  resumed_[h.id] = Resumed{h.position, now};
  spdlog::info("id {} '{}': {} reads again — its voice goes on at {} (file frame {}), after {:.0f} s away", h.id,
               base::log_escape(h.name, 200), base::log_escape(h.path, 400), file_time(h.position, h.rate), h.position,
               away);
}

}  // namespace stemd::app
