// Plays of streamed sources: their streams (a decoder opened, seeked, prefilled — reads of the
// file) are opened on the opener threads, never on the control thread, so a flood of plays or a
// stalled disk cannot stop it answering other clients (see router.hpp). [control]
//
// The message is deferred like a load (router_loads.cpp): later messages touching its ids wait
// behind it, in arrival order; it is re-run when its streams are open, its plays taking them and
// starting at the frame decided when it arrived. When the opens finished after that frame, every
// play of the message starts together at the soonest frame and the answer says how late.
#include "router.hpp"
#include "router_jobs.hpp"
#include "limits.hpp"

#include "base/log_guard.hpp"
#include "io/progress_beat.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>

namespace stemd::control {

Reply Router::prepare_streams(const std::vector<std::pair<int, PlayOptions>>& plays, std::int64_t at) {
  if (play_resume_ != nullptr || !pool_ || !async_now_ || current_msg_ == nullptr) return Reply::done();
  std::vector<StreamWant> wants;
  for (const auto& [id, opts] : plays) {
    io::LoaderThread::StreamRequest req;
    if (!ctl_.stream_request(id, opts, req)) continue;  // in memory: nothing to open
    StreamWant w{id, ctl_.load_serial(id), ctl_.source_ref(id), {}, req};
    w.plan = ctl_.loader().plan_stream(*w.source);
    wants.push_back(std::move(w));
  }
  return open_streams(std::move(wants), at);
}

Reply Router::prepare_seek(int id, VoiceHandle v, std::int64_t frame, std::int64_t at) {
  if (play_resume_ != nullptr || !pool_ || !async_now_ || current_msg_ == nullptr) return Reply::done();
  StreamWant w;
  if (!ctl_.seek_request(v, frame, w.request, w.source)) return Reply::done();  // in memory
  w.id = id;
  w.serial = ctl_.load_serial(id);
  w.plan = ctl_.loader().plan_stream(*w.source);
  return open_streams({std::move(w)}, at);
}

Reply Router::open_streams(std::vector<StreamWant> wants, std::int64_t at) {
  if (wants.empty()) return Reply::done();
  std::vector<int> ids;
  std::vector<std::string> paths;
  for (const StreamWant& w : wants) {
    ids.push_back(w.id);
    paths.push_back(w.source->path);
    // A play (or seek) of a file whose file system holds a lost opener thread: busy at once, not
    // another thread lost (outside pass 21, finding 5).
    if (std::string stuck = still_stuck(w.source->path); !stuck.empty()) {
      return Reply::fail(ErrorKind::kBusy, stuck, {OscArg::Int(w.id)});
    }
  }
  const std::uint64_t token = next_token_++;
  auto completions = completions_;
  auto opening = std::make_shared<std::atomic<std::size_t>>(0);
  auto trail = std::make_shared<OpenTrail>();  // finished when the job returns (its stuck entry goes)
  std::string why;
  std::string label;  // the files whose streams open
  for (const StreamWant& w : wants)
    label.append(label.empty() ? "" : " ").append(base::log_escape(w.source->path, 200));
  const std::uint64_t ticket = pool_->submit(
      [wants = std::move(wants), token, completions, opening, trail] {
        const auto t0 = std::chrono::steady_clock::now();
        auto d = std::make_shared<StreamsDone>();
        d->token = token;
        // Started: its time-out counts from now, and each read that returns is progress.
        const io::ProgressScope beat(trail->progress());
        for (const StreamWant& w : wants) {
          opening->store(d->streams.size());  // the one stuck, if this open never returns
          OpenedStream o;
          o.id = w.id;
          o.serial = w.serial;
          o.opened = io::LoaderThread::open_stream(w.plan, *w.source, w.request, o.error);
          if (!o.opened && o.error.empty()) o.error = w.source->path + ": cannot open a stream";
          d->streams.push_back(std::move(o));
        }
        d->open_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
        trail->finish();
        return LoadPool::Publish([d, completions] {
          std::function<void()> wake;  // set again when the server starts (enable_async_loads)
          {
            std::lock_guard g(completions->mutex);
            completions->streams.push_back(std::move(*d));
            wake = completions->wake;
          }
          if (wake) wake();
        });
      },
      why, std::move(label));
  const std::vector<OscArg> idv{OscArg::Int(ids.front())};
  if (ticket == 0) return Reply::fail(ErrorKind::kBusy, why, idv);
  PendingPlay p{*current_msg_,
                *current_from_,
                arrival_base_ >= 0 ? arrival_base_ : arrival_base(),
                at,
                {},
                packet_,
                ticket,
                std::chrono::steady_clock::now(),
                std::move(paths),
                std::move(opening),
                std::move(trail)};
  for (int id : ids) ++stream_ids_[id];
  p.ids = std::move(ids);
  pending_plays_.emplace(token, std::move(p));
  reply_deferred_ = true;
  return Reply::fail(ErrorKind::kDeferred, "stream opening", idv);
}

Reply Router::take_stream(int id, std::unique_ptr<io::LoaderThread::Opened>& opened) {
  if (play_resume_ == nullptr || play_resume_->streams == nullptr) return Reply::done();
  for (OpenedStream& o : *play_resume_->streams) {
    if (o.id != id) continue;
    o.id = -1;  // taken
    const std::vector<OscArg> idv{OscArg::Int(id)};
    if (!o.opened) return Reply::fail(ErrorKind::kFile, o.error, idv);
    if (o.serial != ctl_.load_serial(id)) {
      return Reply::fail(ErrorKind::kFile, "id " + std::to_string(id) + " was reloaded while its stream opened", idv);
    }
    opened = std::move(o.opened);
    return Reply::done();
  }
  return Reply::done();  // in memory: no stream
}

Reply Router::check_streams(const std::vector<std::pair<int, PlayOptions>>& plays) const {
  if (play_resume_ == nullptr || play_resume_->streams == nullptr) return Reply::done();
  for (const auto& [id, opts] : plays) {
    for (const OpenedStream& o : *play_resume_->streams) {
      if (o.id != id) continue;
      const std::vector<OscArg> idv{OscArg::Int(id)};
      if (!o.opened) return Reply::fail(ErrorKind::kFile, o.error, idv);
      if (o.serial != ctl_.load_serial(id)) {
        return Reply::fail(ErrorKind::kFile, "id " + std::to_string(id) + " was reloaded while its stream opened", idv);
      }
    }
  }
  return Reply::done();
}

void Router::resume_plays(std::vector<StreamsDone>& done) {
  for (StreamsDone& d : done) {
    auto it = pending_plays_.find(d.token);
    if (it == pending_plays_.end()) continue;  // cannot happen: one job per deferred message
    PendingPlay p = std::move(it->second);
    pending_plays_.erase(it);
    for (int id : p.ids) {
      auto s = stream_ids_.find(id);
      if (s != stream_ids_.end() && --s->second <= 0) stream_ids_.erase(s);
    }
    PlayResume pr;
    pr.at = p.at;
    pr.open_ms = d.open_ms;
    pr.streams = &d.streams;
    // The engine renders a period ahead: a frame before that can no longer be met exactly.
    const std::int64_t earliest = ctl_.now_frame() + cfg_.buffer_size;
    if (p.at >= 0 && p.at < earliest) {
      pr.late_ms = 1000.0 * static_cast<double>(earliest - p.at) / cfg_.sample_rate;
      pr.at = arrival_base();  // every play of the message together, as soon as can be
    }
    play_resume_ = &pr;
    arrival_base_ = p.arrival_base;
    async_now_ = true;
    answer_later(p.message, p.from, p.packet);  // start_player() takes the streams (take_stream)
    async_now_ = false;
    arrival_base_ = -1;
    play_resume_ = nullptr;
  }  // streams not taken (the play failed) are freed here, their charges given back
}

bool Router::paused_behind(int id) const {
  for (const Deferred& d : deferred_) {
    if (d.all) return false;  // a barrier (/mixer_cleanup) comes first
    if (std::find(d.slots.begin(), d.slots.end(), id) == d.slots.end()) continue;
    const OscMessage& m = d.message;  // the first message of the id after its play
    // Untimed, naming the id, its fade (if any) in range: it will be answered /done.
    const bool untimed = m.timetag == kOscImmediately || m.timetag == 0;
    const bool names = !m.args.empty() && (m.args[0].type == 'i' || m.args[0].type == 'h') && m.args[0].i == id;
    const bool fade =
        m.args.size() == 1 || (m.args.size() == 2 && m.args[1].is_number() && m.args[1].as_double() >= 0 &&
                               m.args[1].as_double() <= limits::kMaxFadeSeconds);
    return m.address == "/stemd/pause" && untimed && names && fade;
  }
  return false;
}

std::string Router::late_play_reason() const {
  char why[128];
  std::snprintf(why, sizeof why, "late by %.1f ms: its file took %.1f ms to open (started at once)",
                play_resume_->late_ms, play_resume_->open_ms);
  return why;
}

}  // namespace stemd::control
