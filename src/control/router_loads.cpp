// Loads: opening a client's file under the media policy and loading it — synchronously, or on
// the opener threads with the reply deferred until it is done (see router.hpp). [control]
//
// Ordering: a message that touches an id whose load is in flight (or waits behind one) is kept,
// in arrival order, and run when that load has been installed; its answer then goes out through
// take_replies(). So a bundle "/stemd/load 1 x.wav" + "/stemd/play 1" still plays x.wav, /cue
// then /start_group still starts the cued file, and a ping or another id is answered at once.
#include "router.hpp"
#include "router_jobs.hpp"

#include "base/log_guard.hpp"
#include "io/progress_beat.hpp"
#include "io/source.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <climits>
#include <mutex>
#include <unistd.h>

#include "deck_ids.hpp"
#include "file_system.hpp"

namespace stemd::control {

namespace {
// Messages waiting behind loads, all clients together: beyond this a message answers "busy".
constexpr std::size_t kMaxDeferred = 1024;

int deck_index(const OscArg& a) {
  if (!a.is_string() || a.s.size() != 1) return -1;
  const char c = static_cast<char>(a.s[0] & ~0x20);  // A–D or a–d
  return c >= 'A' && c <= 'D' ? c - 'A' : -1;
}
}  // namespace

namespace {
// Where a load's path leads, walked on its opener thread before the open (stuck_opens.hpp): the
// trail says where a call that does not return is; a step onto a file system with a stuck open
// is not taken. With a media root only the root's ancestors and what lies beneath it are looked
// at (its real path as last seen; not seen yet: nothing — the open refuses). False, with the
// busy reason, when the guard refused a step.
bool walk_load(const MediaPolicy& media, const std::string& path, OpenTrail& trail, StuckOpens& stuck,
               std::string& refusal) {
  const std::string where = media.where(path);
  std::string bound;
  if (!media.root().empty()) {
    bound = media.real_root();
    if (bound.empty()) return true;
  }
  return walk_path(
      where, bound, trail, [&](const std::string& at) { return stuck.busy(at, where); }, refusal);
}

// The whole of one load, on whichever thread runs it: open under the policy (one step, no
// reopening by name), check it is a regular file, compare with what the id holds, decode. With
// a trail (an opener thread's job), the path is walked first (walk_load).
void run_load(const MediaPolicy& media, const std::string& path, const std::string& name, const io::LoadOptions& lo,
              bool ensure, bool have_current, const io::FileHandle::Identity& current, Router::LoadDone& d,
              OpenTrail* trail = nullptr, StuckOpens* stuck = nullptr) {
  if (trail != nullptr && stuck != nullptr && !walk_load(media, path, *trail, *stuck, d.error)) {
    d.kind = ErrorKind::kBusy;
    return;
  }
  std::string opened, error;
  const int fd = media.open(path, opened, error);
  io::beat_progress();  // an opener thread's (the walk's and the reads' too: progress_beat.hpp)
  if (fd < 0) {
    d.kind = ErrorKind::kPath;
    d.error = error;
    return;
  }
  auto file = io::FileHandle::adopt(fd, opened, error);  // closes fd on refusal
  io::beat_progress();
  if (!file) {
    d.kind = ErrorKind::kFile;
    d.error = path + ": " + error;
    return;
  }
  if (ensure && have_current && file->identity() == current) {
    d.same = true;
    return;
  }
  io::LoadResult r = io::load_source(std::move(file), name, lo);
  if (!r.source) {
    d.kind = ErrorKind::kFile;
    d.error = r.error;
    return;
  }
  d.source = std::move(r.source);
}
}  // namespace

void Router::enable_async_loads(std::function<void()> wake) {
  if (pool_) {  // enabled earlier, for the state file's restore at start: this wake-up from now on
    std::lock_guard g(completions_->mutex);
    completions_->wake = std::move(wake);
    return;
  }
  completions_ = std::make_shared<LoadCompletions>();
  completions_->wake = std::move(wake);
  pool_ = std::make_unique<LoadPool>(cfg_.load_threads, cfg_.max_loads_in_flight);
}

std::int64_t Router::arrival_base() const {
  return ctl_.now_frame() + cfg_.buffer_size + static_cast<std::int64_t>(0.002 * cfg_.sample_rate);
}

Reply Router::load_file(const Call& c, int id, const std::string& path, const std::string& name, bool ensure) {
  const std::vector<OscArg> idv{OscArg::Int(id)};
  const io::Source* cur = ctl_.source(id);
  auto too_many = [&] { return ctl_.source(id) == nullptr && ctl_.sources_loaded() >= cfg_.max_sources; };
  const std::string limit_reason =
      "too many sources loaded (limit " + std::to_string(cfg_.max_sources) + ", --max-sources)";
  auto finish = [&](LoadDone& d) -> Reply {
    if (!d.error.empty()) return Reply::fail(d.kind, d.error, idv);  // the id keeps whatever it had
    if (d.same) return Reply::done(idv);
    if (too_many()) return Reply::fail(ErrorKind::kLimit, limit_reason, idv);
    // the old players fade out at the message's time
    ctl_.install(c.at, id, std::move(d.source));
    players_.erase(id);  // reloading an id stops its player (the controller faded it out)
    return Reply::done(idv);
  };
  if (play_resume_ != nullptr) {
    // Re-run for its plays' streams: its load was done in an earlier run (the id waited since).
    return Reply::done(idv);
  }
  if (resume_ != nullptr && resume_->id == id) {  // this message's load has finished
    LoadDone* d = resume_;
    resume_ = nullptr;
    return finish(*d);
  }
  if (path.find('\0') != std::string::npos || path.empty()) {
    return Reply::fail(ErrorKind::kPath, path.empty() ? "empty path" : "path contains a NUL byte", idv);
  }
  if (too_many()) return Reply::fail(ErrorKind::kLimit, limit_reason, idv);
  const bool have_current = cur != nullptr && cur->identity.has_value();
  const io::FileHandle::Identity current = have_current ? *cur->identity : io::FileHandle::Identity{};
  if (!pool_ || !async_now_) {
    LoadDone d;
    run_load(media_, path, name, ctl_.load_options(), ensure, have_current, current, d);
    return finish(d);
  }
  if (std::string stuck = still_stuck(media_.where(path)); !stuck.empty()) {
    return Reply::fail(ErrorKind::kBusy, stuck, idv);
  }
  // Off the control thread: everything the job needs is copied into it.
  const std::uint64_t token = next_token_++;
  auto completions = completions_;
  auto trail = std::make_shared<OpenTrail>();
  std::string why;
  const std::uint64_t ticket = pool_->submit(
      [media = media_, path, name, lo = ctl_.load_options(), ensure, have_current, current, token, id, completions,
       trail, stuck = stuck_] {
        auto d = std::make_shared<LoadDone>();
        d->token = token;
        d->id = id;
        {
          const io::ProgressScope beat(trail->progress());  // started: its time-out counts from now
          run_load(media, path, name, lo, ensure, have_current, current, *d, trail.get(), stuck.get());
        }
        trail->finish();  // before the pool hears it returned: its stuck entry, if any, goes
        // Published once the pool has freed this job's slot (LoadPool::Job).
        return LoadPool::Publish([d, completions] {
          std::function<void()> wake;  // set again when the server starts (enable_async_loads)
          {
            std::lock_guard g(completions->mutex);
            completions->done.push_back(std::move(*d));
            wake = completions->wake;
          }
          if (wake) wake();
        });
      },
      why, base::log_escape(path, 300));
  if (ticket == 0) return Reply::fail(ErrorKind::kBusy, why, idv);
  pending_[id] = PendingLoad{token,
                             c.m,
                             c.from,
                             c.at >= 0 ? -1 : arrival_base(),
                             packet_,
                             ticket,
                             std::chrono::steady_clock::now(),
                             path,
                             std::move(trail)};
  reply_deferred_ = true;
  // Not sent (handle() sees reply_deferred_); a failure so that handlers stop here and change
  // nothing more until they are re-run with the load done.
  return Reply::fail(ErrorKind::kDeferred, "load in flight", idv);
}

Reply Router::handle_async(const OscMessage& m, const Peer& from) {
  async_now_ = pool_ != nullptr;
  Reply r = handle_reply(m, from);
  async_now_ = false;
  return r;
}

bool Router::waits_behind_load(const OscMessage& m) const {
  std::vector<int> slots;
  bool all = false;
  touched_slots(m, slots, all);
  return blocked(slots, all);
}

void Router::touched_slots(const OscMessage& m, std::vector<int>& slots, bool& all) const {
  slots.clear();
  all = false;
  const std::string& a = m.address;
  if (a == "/mixer_cleanup") {
    all = true;
    return;
  }
  if (a == "/cue" || a == "/play" || a == "/fade") {
    if (!m.args.empty() && deck_index(m.args[0]) >= 0) slots.push_back(kDeckBase[deck_index(m.args[0])]);
    return;
  }
  if (a == "/start_group") {
    for (const OscArg& x : m.args) {
      if (deck_index(x) >= 0) slots.push_back(kDeckBase[deck_index(x)]);
    }
    return;
  }
  if (a == "/schedule_c_at") {
    slots.push_back(kDeckBase[2]);
    return;
  }
  // Every other message that names an id names it first, as an integer.
  if (!m.args.empty() && (m.args[0].type == 'i' || m.args[0].type == 'h')) {
    slots.push_back(static_cast<int>(m.args[0].i));
  }
}

bool Router::blocked(const std::vector<int>& slots, bool all) const {
  if (all) return any_in_flight() || !deferred_.empty();
  for (int s : slots) {
    if (in_flight(s)) return true;
    for (const Deferred& d : deferred_) {
      if (d.all || std::find(d.slots.begin(), d.slots.end(), s) != d.slots.end()) return true;
    }
  }
  return false;
}

void Router::route_async(const OscMessage& m, const Peer& from, std::vector<Outgoing>& out) {
  std::vector<int> slots;
  bool all = false;
  touched_slots(m, slots, all);
  if (blocked(slots, all)) {
    if (deferred_.size() >= kMaxDeferred) {
      ++stats_.messages;
      ++stats_.failed;
      Reply r = Reply::fail(ErrorKind::kBusy, "busy: " + std::to_string(kMaxDeferred) +
                                                  " messages wait for loads or stream opens in flight");
      count_bad(r.kind, r.reason, m.address, from);
      out.push_back(Outgoing{from, osc_serialise(make_reply(m.address, r))});
      return;
    }
    // What it holds while it waits is charged to the memory budget first.
    io::Charge charge;
    std::string error;
    if (!charge.take(ctl_.load_options().budget, waiting_bytes(m), error)) {
      ++stats_.messages;
      ++stats_.failed;
      Reply r = Reply::fail(ErrorKind::kLimit, "cannot wait behind a load: " + error);
      count_bad(r.kind, r.reason, m.address, from);
      out.push_back(Outgoing{from, osc_serialise(make_reply(m.address, r))});
      return;
    }
    deferred_.push_back(Deferred{m, from, std::move(slots), all, arrival_base(), packet_, std::move(charge)});
    return;
  }
  async_now_ = true;
  OscMessage r = handle(m, from);
  async_now_ = false;
  if (!r.address.empty()) out.push_back(Outgoing{from, osc_serialise(r)});
}

std::size_t Router::waiting_bytes(const OscMessage& m) {
  std::size_t n = sizeof(Deferred) + 64 + m.address.size();  // the queue's node, the reply's peer
  for (const OscArg& a : m.args) n += sizeof(OscArg) + a.s.size();
  return n;
}

std::string Router::lost_note(bool lost) const {
  if (!lost) return "";
  return "; its opener thread is lost until the file system answers (" + std::to_string(pool_->lost()) + " lost, " +
         std::to_string(pool_->max_lost()) + " at most: then loads answer busy)";
}

std::string Router::still_stuck(const std::string& path) { return stuck_->busy(path, path); }

void Router::answer_failed(const OscMessage& m, const Peer& from, const std::shared_ptr<PacketBudget>& packet,
                           const Reply& r) {
  ++stats_.failed;
  count_bad(r.kind, r.reason, m.address, from);
  const bool limited = packet != nullptr && packet->unvalidated && unvalidated(from, std::chrono::steady_clock::now());
  queue_answer(from, packet, make_reply(m.address, r), limited);
  observe(m, from, r);
}

void Router::observe(const OscMessage& m, const Peer& from, const Reply& r) const {
  if (!outcome_observer_) return;
  Outcome o{m.address, 0, false, from, r};
  // The id it names first, when an int that fits (an id of 2^32 + 1 is not id 1).
  if (!m.args.empty() && (m.args[0].type == 'i' || m.args[0].type == 'h') && m.args[0].i >= INT_MIN &&
      m.args[0].i <= INT_MAX) {
    o.id = static_cast<int>(m.args[0].i);
    o.has_id = true;
  }
  outcome_observer_(o);
}

void Router::poll_loads() {
  if (!completions_) return;
  expire_loads(std::chrono::steady_clock::now());
  std::vector<LoadDone> done_now;
  std::vector<StreamsDone> streams_now;
  {
    std::lock_guard g(completions_->mutex);
    done_now.swap(completions_->done);
    streams_now.swap(completions_->streams);
  }
  for (LoadDone& d : done_now) {
    auto it = pending_.find(d.id);
    if (it == pending_.end() || it->second.token != d.token) continue;  // cannot happen: one load per id
    PendingLoad p = std::move(it->second);
    pending_.erase(it);
    resume_ = &d;
    arrival_base_ = p.arrival_base;
    async_now_ = true;                          // its plays may open streams (prepare_streams)
    answer_later(p.message, p.from, p.packet);  // the handler finds its load done (load_file)
    async_now_ = false;
    arrival_base_ = -1;
    resume_ = nullptr;
  }
  resume_plays(streams_now);
  if (!done_now.empty() || !streams_now.empty()) drain_deferred();
}

void Router::drain_deferred() {
  // In arrival order: a message runs when nothing it touches is loading and no earlier waiting
  // message touches the same id (or is a barrier).
  std::vector<int> held;
  bool barrier = false;
  for (auto it = deferred_.begin(); it != deferred_.end();) {
    bool wait = barrier || (it->all && (any_in_flight() || !held.empty()));
    for (int s : it->slots) {
      if (in_flight(s) || std::find(held.begin(), held.end(), s) != held.end()) wait = true;
    }
    if (wait) {
      held.insert(held.end(), it->slots.begin(), it->slots.end());
      barrier = barrier || it->all;
      ++it;
      continue;
    }
    Deferred d = std::move(*it);
    it = deferred_.erase(it);
    async_now_ = true;
    arrival_base_ = d.arrival_base;
    answer_later(d.message, d.from, d.packet);
    arrival_base_ = -1;
    async_now_ = false;
    // It may have started a load of its own: later messages on that id wait for it (pending_).
  }
}

void Router::answer_later(const OscMessage& m, const Peer& from, const std::shared_ptr<PacketBudget>& packet) {
  const auto now = std::chrono::steady_clock::now();
  // As when its packet came: unvalidated unless the source has echoed a cookie since; the pages
  // already answered to the packet count (kMaxPacketAnswer). A load it starts carries the packet on.
  packet_ = packet;
  unvalidated_ = packet != nullptr && packet->unvalidated && unvalidated(from, now);
  packet_answer_bytes_ = packet != nullptr ? packet->answer_bytes : 0;
  const Reply r = handle_reply(m, from);
  const bool limited = unvalidated_;  // a /stemd/cookie echo validates on the way
  unvalidated_ = false;
  packet_.reset();
  if (!r.ok && r.kind == ErrorKind::kDeferred) return;  // it waits for a load of its own
  queue_answer(from, packet, make_reply(m.address, r), limited);
  observe(m, from, r);
}

void Router::queue_answer(const Peer& from, const std::shared_ptr<PacketBudget>& packet, const OscMessage& r,
                          bool limited) {
  const auto now = std::chrono::steady_clock::now();
  auto bytes = osc_serialise(r);
  if (packet == nullptr) {
    replies_.push_back(Outgoing{from, std::move(bytes)});
    return;
  }
  packet->answer_bytes += bytes.size();
  if (limited) {
    if (packet->withheld || packet->sent + bytes.size() > packet->allowed) {
      // Over the packet's 3×: withheld, and the cookie goes out once instead (when it fits).
      ++stats_.replies_withheld;
      if (packet->withheld) return;
      packet->withheld = true;
      OscMessage c;
      c.address = "/stemd/cookie";
      c.args.push_back(OscArg::Str(validator_.mint(from.endpoint, now)));
      bytes = osc_serialise(c);
      if (packet->sent + bytes.size() > packet->allowed) return;
      ++stats_.cookies_sent;
    }
    packet->sent += bytes.size();
  }
  replies_.push_back(Outgoing{from, std::move(bytes)});
}

void Router::take_replies(std::vector<Outgoing>& out) {
  for (auto& o : replies_) out.push_back(std::move(o));
  replies_.clear();
}

}  // namespace stemd::control
