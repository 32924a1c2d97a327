// The state file's restore at start (state.hpp) [main, before the stream and the control thread
// start]. Each line is routed as a client's message is. A load (and a streamed play's stream open)
// runs on the router's opener threads with --load-timeout, as a client's does: a dead network
// share at boot costs that timeout, not the start-up, and SIGTERM is acted on meanwhile
// (RestoreHooks::wait). A message touching an id whose load is in flight waits for it here, so
// the lines of one id still run in order; the loads themselves (every /stemd/load line comes
// before the voices) run side by side. What is routed fills the engine's command queue, which
// nothing drains before the stream starts: RestoreHooks::make_room applies it first.
#include "base/log_guard.hpp"
#include "state.hpp"

#include <spdlog/spdlog.h>

#include <climits>
#include <map>
#include <optional>
#include <set>
#include <sys/stat.h>
#include <thread>

namespace stemd::app {

struct StateKeeper::RestoreRun {
  std::vector<StateMessage> msgs;
  RestoreHooks hooks;
  RestoreReport rep;
  std::set<int> failed_ids;          // sources not loaded: their voice lines are skipped quietly
  std::map<int, std::size_t> later;  // id → the message whose answer comes from poll_loads()
  std::chrono::steady_clock::time_point waiting_since{};
  bool waiting_logged = false;
  std::optional<std::size_t> tempo;  // the /set_tempo line: applied once the voices play (restore_tempo)
  std::map<int, RestoreLoop> loops;  // each id's loop, from its play line to its seek line (fit_line)
  std::set<int> ended_ids;           // voices past the end of a shorter file: their lines are skipped
};

namespace {

// The id a message names first, when it is an int that fits (an id of 2^32 + 1 is not id 1).
bool message_id(const control::OscMessage& m, int& id) {
  if (m.args.empty() || (m.args[0].type != 'i' && m.args[0].type != 'h')) return false;
  if (m.args[0].i < INT_MIN || m.args[0].i > INT_MAX) return false;
  id = static_cast<int>(m.args[0].i);
  return true;
}

bool is_load(const control::OscMessage& m) { return m.address == "/stemd/load" || m.address == "/load_buffer"; }

bool is_true(const control::OscArg& a) { return a.type == 'T' || ((a.type == 'i' || a.type == 'h') && a.i != 0); }

bool frames_at(const control::OscMessage& m, std::size_t i, std::int64_t& out) {
  if (i >= m.args.size() || !m.args[i].is_number()) return false;
  out = static_cast<std::int64_t>(m.args[i].as_double());
  return true;
}

bool in_frames(const control::OscMessage& m, std::size_t i) {
  return i < m.args.size() && m.args[i].is_string() && (m.args[i].s == "frames" || m.args[i].s == "frame");
}

// /stemd/play id volume loop position "frames" rate [deck], as format_state() writes it.
bool fit_play(control::OscMessage& m, int id, std::int64_t total, std::map<int, RestoreLoop>& loops,
              std::string& note) {
  std::int64_t pos = 0;
  if (m.args.size() < 5 || !in_frames(m, 4) || !frames_at(m, 3, pos)) return false;
  const bool loop = is_true(m.args[2]);
  if (loop) loops[id] = RestoreLoop{0, total};
  if (pos < total) return false;
  if (!loop) {
    note = fmt::format(
        "saved at file frame {}, past the end of its file as it is now ({} file frames, shorter than when the "
        "state was saved): a voice that does not loop had ended there — not restored, and no longer kept in the "
        "state file",
        pos, total);
    return false;
  }
  const std::int64_t now = pos % total;
  m.args[3] = control::OscArg::Int64(now);
  note = fmt::format(
      "its file is shorter now ({} file frames) than where its looping voice was saved (file frame "
      "{}): it restarts at file frame {}, the position wrapped into the file",
      total, pos, now);
  return true;
}

// /stemd/play_region id start end loop count volume "frames" [deck].
bool fit_region(control::OscMessage& m, int id, std::int64_t total, std::map<int, RestoreLoop>& loops,
                std::string& note) {
  std::int64_t start = 0, end = 0;
  if (m.args.size() < 7 || !in_frames(m, 6) || !frames_at(m, 1, start) || !frames_at(m, 2, end)) return false;
  const bool loop = m.args.size() < 4 || is_true(m.args[3]);
  if (!loop || end <= total) {
    if (loop) loops[id] = RestoreLoop{start, end};
    if (!loop && end > total) {
      note = fmt::format(
          "its section [{}, {}) runs past the end of its file as it is now ({} file frames, shorter than "
          "when the state was saved): not restored, and no longer kept in the state file",
          start, end, total);
    }
    return false;
  }
  const std::int64_t new_start = start < total ? start : 0;
  loops[id] = RestoreLoop{new_start, total};
  m.args[1] = control::OscArg::Int64(new_start);
  m.args[2] = control::OscArg::Int64(total);
  note = fmt::format(
      "its file is shorter now ({} file frames) than its looping region [{}, {}): it loops [{}, {}) "
      "instead",
      total, start, end, new_start, total);
  return true;
}

// /stemd/seek id position "frames" behind a looping play line: wrapped into that loop.
bool fit_seek(control::OscMessage& m, int id, std::int64_t total, const std::map<int, RestoreLoop>& loops,
              std::string& note) {
  std::int64_t pos = 0;
  if (m.args.size() < 3 || !in_frames(m, 2) || !frames_at(m, 1, pos) || pos < total) return false;
  const auto it = loops.find(id);
  if (it == loops.end() || it->second.end <= it->second.start) return false;
  const RestoreLoop& l = it->second;
  const std::int64_t now = pos >= l.start ? l.start + (pos - l.start) % (l.end - l.start) : l.start;
  m.args[1] = control::OscArg::Int64(now);
  note = fmt::format(
      "its file is shorter now ({} file frames) than where its looping voice was saved (file frame "
      "{}): it goes on at file frame {}, the position wrapped into its loop [{}, {})",
      total, pos, now, l.start, l.end);
  return true;
}

}  // namespace

bool fit_voice_to_file(control::OscMessage& m, std::int64_t total, std::map<int, RestoreLoop>& loops,
                       std::string& note) {
  note.clear();
  int id = 0;
  if (total <= 0 || !message_id(m, id)) return false;
  if (m.address == "/stemd/play") return fit_play(m, id, total, loops, note);
  if (m.address == "/stemd/play_region") return fit_region(m, id, total, loops, note);
  if (m.address == "/stemd/seek") return fit_seek(m, id, total, loops, note);
  return false;
}

void StateKeeper::observe(control::Router& router) {
  router.set_outcome_observer([inbox = std::weak_ptr(outcomes_)](const control::Outcome& o) {
    if (o.from.local != control::kQuietPeer) return;  // a client's
    if (auto q = inbox.lock()) q->push_back(o);
  });
  router.set_waiting_sources([this, alive = std::weak_ptr(alive_)](int id) { return alive.lock() && forget_held(id); });
  watch_voices(router);
}

std::vector<control::Outcome> StateKeeper::take_outcomes() {
  std::vector<control::Outcome> out;
  out.swap(*outcomes_);
  return out;
}

RestoreReport StateKeeper::restore(control::Router& router, const RestoreHooks& hooks) {
  observe(router);  // before anything is routed: the answers of loads that finish later
  RestoreRun run;
  run.hooks = hooks;
  std::string error;
  const control::RouterConfig& rc = router.config();
  const std::optional<StateRead> read =
      read_file(run.msgs, hooks, state_bytes_bound(rc.max_sources, rc.limits.max_string), error);
  if (!read) {
    run.rep.interrupted = interrupted_;
    return run.rep;
  }
  switch (*read) {
    case StateRead::kMissing:
      file_there_ = false;
      if (error.rfind("its directory ", 0) == 0) {  // state_dir_missing(DIR)
        // It said "it is written as the state changes", then one warning, then nothing — while
        // nothing could be saved (new-user pass 21).
        save_failing_->store(true);
        spdlog::warn(
            "state file {}: {}: nothing is saved until it does (starting empty; state_save_failing in the "
            "status)",
            cfg_.path, error);
        return run.rep;
      }
      spdlog::info("state file {} does not exist yet: starting empty (it is written as the state changes)", cfg_.path);
      return run.rep;
    case StateRead::kBad: {
      const std::string bad = cfg_.path + ".bad";
      std::string kept;
      struct stat st {};
      if (::stat(cfg_.path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
        kept = "left as it is";  // a directory or a device given by mistake is never moved
      } else if (std::rename(cfg_.path.c_str(), bad.c_str()) == 0) {
        kept = "kept as " + bad;
      } else {
        kept = "could not be renamed to " + bad + ": " + std::strerror(errno);
      }
      spdlog::warn("state file {} — ignored ({}); starting empty", error, kept);
      return run.rep;
    }
    case StateRead::kOk:
      break;
  }
  // The voices before the file's /stemd/quantize line start at once, at their frames; --quantize's
  // quantum (the router's from its start) waits for that line — or for the end, in a file that has
  // none (one saved before --quantize was given).
  const double flag_quantum = router.quantum_beats();
  router.set_quantum(0);
  restoring_ = true;
  struct Published {  // however this returns: the held sources as they are now
    StateKeeper& k;
    ~Published() {
      k.restoring_ = false;
      k.publish_held();
    }
  } published{*this};
  bool quantum_line = false;
  for (std::size_t i = 0; i < run.msgs.size() && !interrupted_; ++i) {
    quantum_line = quantum_line || run.msgs[i].message.address == "/stemd/quantize";
    restore_message(run, router, i);
  }
  if (!quantum_line) router.set_quantum(flag_quantum);
  while (!interrupted_ && (router.anything_in_flight() || !run.later.empty())) restore_pump(run, router);
  if (interrupted_) {
    run.rep.interrupted = true;
    spdlog::warn(
        "state file {}: restore stopped by a signal while loads were in flight — the file is left as it was for "
        "the next start",
        cfg_.path);
    return run.rep;
  }
  if (run.tempo) restore_tempo(run, router);  // (the held sources are published as this returns)
  const RestoreReport& rep = run.rep;
  spdlog::info(
      "state file {}: restored {} of {} sources{}{}, levels{}", cfg_.path, rep.sources,
      rep.sources + static_cast<int>(run.failed_ids.size()),
      held_.empty() ? std::string() : fmt::format(" ({} waiting for their files)", held_.size()),
      cfg_.restore_voices ? fmt::format(", {} voice{}", rep.voices, rep.voices == 1 ? "" : "s") : std::string(),
      rep.skipped_voice > 0 ? fmt::format("; {} voice lines not restored (--restore-voices is off)", rep.skipped_voice)
                            : std::string());
  last_retry_ = std::chrono::steady_clock::now();
  return run.rep;
}

// Before, the file was read on this thread: on a file system that did not answer (a hung NFS
// share or USB bridge) the start hung with it — no OSC, no READY, SIGTERM not acted on.
std::optional<StateRead> StateKeeper::read_file(std::vector<StateMessage>& out, const RestoreHooks& hooks,
                                                std::size_t max, std::string& error) {
  if (cfg_.helper.empty()) return read_state_file(cfg_.path, out, error, max);
  std::vector<std::string> argv = cfg_.helper;
  argv.insert(argv.end(), {"read", cfg_.path, std::to_string(max)});
  std::unique_ptr<FileJob> job = FileJob::start(argv, {}, error);
  if (!job) {  // no helper: read here, as before
    spdlog::warn("state file {}: {} — reading it without a helper", cfg_.path, error);
    return read_state_file(cfg_.path, out, error, max);
  }
  bool stopped = false;
  switch (job->wait(cfg_.io_timeout_s, hooks.wait, &stopped)) {
    case FileJob::Status::kOk:
      if (!parse_state(job->output(), out, error)) {
        error = cfg_.path + ":" + error;
        return StateRead::kBad;
      }
      return StateRead::kOk;
    case FileJob::Status::kMissing:
      error = job->output();  // state_dir_missing(DIR) when its directory is missing too
      return StateRead::kMissing;
    case FileJob::Status::kFailed:
      error = job->output();
      return StateRead::kBad;
    case FileJob::Status::kBroken:  // nothing known about the file: never set aside for that
      spdlog::warn("state file {}: {} — reading it without a helper", cfg_.path, job->output());
      return read_state_file(cfg_.path, out, error, max);
    case FileJob::Status::kRunning:
      break;
  }
  job_ = std::move(job);  // looked at by flush(): its answer, when it comes, is logged
  job_reads_ = true;
  stuck_logged_ = true;
  if (stopped) {
    interrupted_ = true;
    spdlog::warn("state file {}: stopped by a signal while its read waited — the file is left as it was", cfg_.path);
    return std::nullopt;
  }
  unread_ = true;
  save_failing_->store(true);
  spdlog::warn(
      "state file {} did not answer within {:g} s (--load-timeout; its file system hung?): starting WITHOUT "
      "restoring it — and it is not written while this stemd runs, so the state saved there is kept for the next "
      "start",
      cfg_.path, cfg_.io_timeout_s);
  return std::nullopt;
}

void StateKeeper::restore_message(RestoreRun& run, control::Router& router, std::size_t i) {
  const StateMessage& sm = run.msgs[i];
  const control::OscMessage& m = sm.message;
  if (is_voice_message(m) && !cfg_.restore_voices) {
    ++run.rep.skipped_voice;
    return;
  }
  if (m.address == "/set_tempo") {  // after the voices: they follow it as far as the work budgets take
    run.tempo = i;
    return;
  }
  int id = 0;
  const bool has_id = message_id(m, id);
  const bool voice = has_id && is_voice_message(m);  // not /stemd/quantize 4: no id
  // The lines of an id run in order: after its load (or its play's stream open) has answered.
  while (router.waits_behind_load(m)) {
    if (!restore_pump(run, router)) return;
  }
  // A second load of an id: the later line wins, also over an earlier one held for its file.
  if (is_load(m) && has_id) std::erase_if(held_, [id](const Held& h) { return h.id == id; });
  if (voice && held(id)) {
    add_to_held(sm);  // waits with its source
    return;
  }
  if (voice && (run.failed_ids.count(id) != 0 || run.ended_ids.count(id) != 0)) return;
  if (fit_line(run, router, i, id)) {
    run.ended_ids.insert(id);  // it had ended in the file as it is now: said once, not a failure
    return;
  }
  // A start timed for later ("@TIME", StateVoice::start_unix): the stream does not run yet, so no
  // frame can be put to its time — it starts with the others, at once (session 30's left).
  if (const std::uint64_t timetag = sm.message.timetag; drop_time_passed(run.msgs[i].message, router)) {
    spdlog::info("state file {}:{}: a start timed for {}starts at once (no stream clock before the stream runs)",
                 cfg_.path, sm.line, time_prefix(control::ntp_to_unix_seconds(timetag)));
  }
  ++run.rep.messages;
  control::Peer self;  // the daemon's own: a refusal is logged here, not counted as a client's
  self.local = control::kQuietPeer;
  for (;;) {
    if (run.hooks.make_room) run.hooks.make_room();
    const control::Reply reply = router.handle_async(m, self);
    if (reply.kind == control::ErrorKind::kDeferred && !reply.ok) {
      run.later[id] = i;  // answered when its load or stream open is done
      return;
    }
    // Every opener busy (--max-loads-in-flight): wait for one, as long as loads still finish.
    if (!reply.ok && reply.kind == control::ErrorKind::kBusy && router.anything_in_flight()) {
      if (!restore_pump(run, router)) return;
      continue;
    }
    restore_outcome(run, i, reply);
    return;
  }
}

// A voice line saved against a longer file (its edit replaced by a shorter one): a looping voice
// is fitted to the file as it is now, rather than refused — and then dropped from the state file,
// so that every later start was silent too (new-user pass 29, M1).
bool StateKeeper::fit_line(RestoreRun& run, const control::Router& router, std::size_t i, int id) {
  StateMessage& sm = run.msgs[i];
  const io::Source* src = is_voice_message(sm.message) ? router.source(id) : nullptr;
  return src != nullptr && fit_logged(sm, *src, id, run.loops);
}

bool StateKeeper::fit_logged(StateMessage& sm, const io::Source& src, int id, std::map<int, RestoreLoop>& loops) const {
  std::string note;
  const std::string before = state_line(sm.message);
  // A line of the file, or of a voice that waited for its file mid-play (state_lost.cpp: line 0).
  const std::string where = sm.line > 0 ? fmt::format("state file {}:{}: ", cfg_.path, sm.line) : std::string();
  if (fit_voice_to_file(sm.message, src.total_frames(), loops, note)) {
    spdlog::warn("{}{}: source {} ({}): {}", where, base::log_escape(before, 600), id, base::log_escape(src.path, 400),
                 note);
  } else if (!note.empty()) {
    spdlog::warn("{}source {} ({}): {}", where, id, base::log_escape(src.path, 400), note);
    return true;
  }
  return false;
}

// The saved tempo, once the restored voices play: as a tempo nobody can refuse (a Link session's, the
// movement's) the players follow it as far as the work budgets take and are held there (status
// tempo_held_bpm), as they were when it was saved. Routed before the voices, as a client's /set_tempo,
// it found no players to check, and then the players that did not fit at the full ratio were refused
// one by one: a state saved with the players held came back with the first few at the full ratio and
// the others missing.
void StateKeeper::restore_tempo(RestoreRun& run, control::Router& router) {
  const StateMessage& sm = run.msgs[*run.tempo];
  const control::OscMessage& m = sm.message;
  ++run.rep.messages;
  std::string why = "bpm must be a number";
  if (!m.args.empty() && m.args[0].is_number() && router.restore_tempo(m.args[0].as_double(), why)) return;
  ++run.rep.failed;
  spdlog::warn("state file {}:{}: {} failed: {} (skipped)", cfg_.path, sm.line, base::log_escape(state_line(m), 600),
               base::log_escape(why, 400));
}

void StateKeeper::restore_outcome(RestoreRun& run, std::size_t i, const control::Reply& reply) {
  const StateMessage& sm = run.msgs[i];
  const control::OscMessage& m = sm.message;
  int id = 0;
  const bool has_id = message_id(m, id);
  const bool load = is_load(m);
  if (reply.ok || reply.kind == control::ErrorKind::kDeferred) {
    if (load) ++run.rep.sources;
    if (m.address == "/stemd/play" || m.address == "/stemd/play_region") ++run.rep.voices;
    return;
  }
  ++run.rep.failed;
  if (load && has_id && file_may_come_back(reply.kind, reply.reason)) {
    run.failed_ids.insert(id);
    hold(sm, reply.reason);
  } else if (load && has_id) {
    run.failed_ids.insert(id);
    spdlog::warn("state file {}:{}: source {} not restored: {}", cfg_.path, sm.line, id,
                 base::log_escape(reply.reason, 400));
  } else {
    spdlog::warn("state file {}:{}: {} failed: {} (skipped)", cfg_.path, sm.line, base::log_escape(state_line(m), 600),
                 base::log_escape(reply.reason, 400));
  }
}

// One turn of waiting: what finished is installed and answered (a timed-out load answers too),
// the answers settle their lines, then a short wait that a stop signal ends (false: stop).
bool StateKeeper::restore_pump(RestoreRun& run, control::Router& router) {
  router.poll_loads();
  std::vector<control::Outgoing> out;
  router.take_replies(out);  // they go nowhere: their outcomes come typed (observe())
  for (const control::Outcome& o : take_outcomes()) {
    auto it = o.has_id ? run.later.find(o.id) : run.later.end();
    if (it == run.later.end() || run.msgs[it->second].message.address != o.address) continue;
    const std::size_t i = it->second;
    run.later.erase(it);
    restore_outcome(run, i, o.reply);
  }
  const auto now = std::chrono::steady_clock::now();
  if (run.later.empty()) {
    run.waiting_since = {};
  } else if (run.waiting_since == std::chrono::steady_clock::time_point{}) {
    run.waiting_since = now;
  } else if (!run.waiting_logged && now - run.waiting_since > std::chrono::seconds(2)) {
    const control::OscMessage& m = run.msgs[run.later.begin()->second].message;
    spdlog::warn("state file {}: waiting for {} load{} (the first: {} {}) — each gives up after --load-timeout {:g} s",
                 cfg_.path, run.later.size(), run.later.size() == 1 ? "" : "s", m.address,
                 base::log_escape(m.args.size() > 1 && m.args[1].is_string() ? m.args[1].s : state_line(m), 400),
                 router.config().load_timeout_s);
    run.waiting_logged = true;
  }
  if (!run.hooks.wait) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
    return true;
  }
  if (!run.hooks.wait(2)) interrupted_ = true;
  return !interrupted_;
}

bool StateKeeper::hold_resumed(control::Router& router, const StateMessage& load, control::ErrorKind kind,
                               const std::string& reason) {
  int id = 0;
  if (!is_load(load.message) || !message_id(load.message, id) || !file_may_come_back(kind, reason)) return false;
  observe(router);
  std::erase_if(held_, [id](const Held& h) { return h.id == id; });
  hold(load, reason);
  return true;
}

bool StateKeeper::hold_voice(const StateMessage& m) {
  int id = 0;
  if (!is_voice_message(m.message) || !message_id(m.message, id) || !held(id)) return false;
  add_to_held(m);
  return true;
}

}  // namespace stemd::app
