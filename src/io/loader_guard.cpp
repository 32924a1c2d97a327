// The loader thread's succession (see loader_thread.hpp, "Reads that do not return"): start and
// stop, the watchdog that gives up a thread stuck in a call on one stream's file, and what
// becomes of that stream and of the other streams of its file system.
#include "loader_thread.hpp"

#include "loader_reader.hpp"
#include "base/log_guard.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <ctime>

namespace stemd::io {

void LoaderThread::start() {
  std::lock_guard lock(thread_mu_);
  if (running_.exchange(true)) return;
  guard_ = std::make_shared<ReadGuard>();
  thread_ = std::thread([this, g = guard_] {
    run(g);
    g->exited.store(true, std::memory_order_release);
  });
  if (cfg_.stuck_read_ms > 0) watchdog_ = std::thread([this] { watchdog(); });
}

void LoaderThread::stop() {
  {
    std::lock_guard lock(thread_mu_);
    if (!running_.exchange(false)) return;
  }
  watch_cv_.notify_all();
  if (watchdog_.joinable()) watchdog_.join();
  // The loader thread leaves after its pass — unless it is in a call that does not return: after
  // half a second in one (or stuck_read_ms, if shorter) it is given up, not waited for. (Not under
  // thread_mu_ while waiting: the loader takes it to look at stuck calls. Nothing else changes
  // thread_ or guard_ now: the watchdog has gone.)
  const std::uint64_t patience_ns =
      static_cast<std::uint64_t>(cfg_.stuck_read_ms > 0 ? std::min(cfg_.stuck_read_ms, 500) : 500) * 1'000'000ull;
  while (thread_.joinable()) {
    wake();
    if (guard_->exited.load(std::memory_order_acquire)) {
      thread_.join();
      break;
    }
    {
      std::lock_guard lock(thread_mu_);
      if (give_up(*guard_, mono_ns(), patience_ns, false)) {
        spdlog::warn(
            "loader: stopped while a read had not returned (its disk or share stopped answering): left "
            "behind");
        break;
      }
    }
    timespec ts{0, 2'000'000};
    nanosleep(&ts, nullptr);
  }
}

// [watchdog] Wakes at the current call's deadline (give_up_after), and at least every
// kMinGiveUpNs (a call that starts meanwhile cannot be due sooner): a call past it gives the
// loader thread up; given-up calls that have returned are forgotten.
void LoaderThread::watchdog() {
  std::unique_lock lock(thread_mu_);
  std::uint64_t wait_ns = kMinGiveUpNs;
  while (running_.load(std::memory_order_relaxed)) {
    watch_cv_.wait_for(lock, std::chrono::nanoseconds(wait_ns));
    if (!running_.load(std::memory_order_relaxed)) break;
    const std::uint64_t now = mono_ns();
    for (auto it = stuck_.begin(); it != stuck_.end();) {
      if (!(*it)->returned.load(std::memory_order_acquire)) {
        ++it;
        continue;
      }
      // Reads of a slow share, given up one after another: at debug (its first give-up was logged).
      const double after_s = static_cast<double>(now - (*it)->since_ns.load(std::memory_order_relaxed)) * 1e-9;
      spdlog::log(after_s * 1e3 >= cfg_.stuck_read_ms ? spdlog::level::info : spdlog::level::debug,
                  "loader: a given-up read has returned after {:.1f} s; its thread has ended", after_s);
      dead_devices_.fetch_sub(1, std::memory_order_relaxed);
      it = stuck_.erase(it);
      at_cap_.store(false, std::memory_order_relaxed);
      std::lock_guard stats_lock(mutex_);
      stats_.stuck_threads = static_cast<int>(stuck_.size());
    }
    const std::uint64_t since = guard_->since_ns.load(std::memory_order_relaxed);
    const std::uint64_t after = give_up_after(*guard_, since);
    give_up(*guard_, now, after, true);
    wait_ns = kMinGiveUpNs;
    const std::uint64_t t = guard_->token.load(std::memory_order_acquire);
    if (t != 0 && (t & ReadGuard::kGivenUp) == 0 && since + after > now) {
      wait_ns = std::clamp<std::uint64_t>(since + after - now, 1'000'000, kMinGiveUpNs);
    }
  }
}

// [watchdog] How long the current loader thread's call may last before it is given up, in ns of
// wall time: stuck_read_ms when one file system is streamed; else half the time until the first
// ring of another file system runs dry (ReadGuard::spare_until_ns: its voice would underrun while
// this thread waits), at least kMinGiveUpNs and at most stuck_read_ms. A share whose reads take
// 1.5 s, never "stuck", held every stream of every disk for 1.5 s at a time against 0.4-s rings
// (outside attack pass 23, finding 3).
std::uint64_t LoaderThread::give_up_after(const ReadGuard& g, std::uint64_t since) const {
  const std::uint64_t stuck = static_cast<std::uint64_t>(cfg_.stuck_read_ms) * 1'000'000u;
  const std::uint64_t spare = g.spare_until_ns.load(std::memory_order_relaxed);
  if (spare == 0) return stuck;
  return std::min<std::uint64_t>(stuck, std::max<std::uint64_t>(kMinGiveUpNs, spare > since ? (spare - since) / 2 : 0));
}

// [loader] For each read of a round (`order`, emptiest first): when the first ring of another
// file system runs dry at its drain rate (Reader::dry_at_ns) — among the streams still to be read
// in this round, and those above their low-water mark (at least half a ring: dry in ring/2 or
// later). Those read earlier in the round were just refilled. 0: a single file system.
void LoaderThread::plan_spare(const Order& order, std::uint64_t now) {
  spare_.assign(order.size(), 0);
  if (!multi_dev_) return;
  const double half_ring_s = 0.5 * static_cast<double>(cfg_.ring_frames) / std::max(1, cfg_.sample_rate);
  // The two soonest, of two different file systems (best1 on dev1): a read of dev1 may wait for best2.
  std::uint64_t best1 = now + static_cast<std::uint64_t>(half_ring_s * 1e9), best2 = best1;
  std::uint64_t dev1 = ~0ull;
  for (std::size_t i = order.size(); i-- > 0;) {
    const Reader& r = *std::get<1>(order[i]);
    spare_[i] = r.dev == dev1 ? best2 : best1;
    if (r.dev == dev1) {
      best1 = std::min(best1, r.dry_at_ns);
    } else if (r.dry_at_ns < best1) {
      best2 = best1;
      best1 = r.dry_at_ns;
      dev1 = r.dev;
    } else {
      best2 = std::min(best2, r.dry_at_ns);
    }
  }
}

// [watchdog, or stop()] Under thread_mu_. When the current loader thread has been in one call for
// `after_ns` or more: gives it up (it will touch nothing here again), ends the stream it was
// reading and, when `replace`, starts a new loader thread with every other stream.
bool LoaderThread::give_up(ReadGuard& g, std::uint64_t now, std::uint64_t after_ns, bool replace) {
  std::uint64_t t = g.token.load(std::memory_order_acquire);
  if (t == 0 || (t & ReadGuard::kGivenUp) != 0) return false;
  const std::uint64_t since = g.since_ns.load(std::memory_order_relaxed);
  if (now < since || now - since < after_ns) return false;
  if (replace && stuck_.size() >= static_cast<std::size_t>(kMaxStuckThreads)) {
    if (!stuck_cap_logged_) {
      stuck_cap_logged_ = true;
      spdlog::error(
          "loader: {} loader threads are stuck in reads that do not return (one per file system that stopped "
          "answering); no more can be replaced: the streams wait for the current one (a restart of stemd, or the "
          "shares answering again, ends this)",
          stuck_.size());
    }
    return false;
  }
  Reader* r = g.reader.load(std::memory_order_acquire);
  if (!g.token.compare_exchange_strong(t, t | ReadGuard::kGivenUp, std::memory_order_acq_rel)) return false;
  // From here the stuck thread is inside its call on r and leaves without touching this object:
  // the loader's state is ours until its successor starts. r is the stuck thread's until it
  // returns; it stays in orphans_ (not deleted) until the engine releases it too.
  g.dev = r->dev;
  const double waited = static_cast<double>(now - since) * 1e-9;
  thread_.detach();
  const bool first = r->strikes++ == 0;  // a share whose every read is slow: its first give-up is logged
  {
    std::lock_guard lock(mutex_);
    readers_.erase(std::remove(readers_.begin(), readers_.end(), r), readers_.end());
    unbelled_.erase(std::remove(unbelled_.begin(), unbelled_.end(), r), unbelled_.end());
    std::erase(to_watch_, r);  // given up in its watch: not the successor's to watch
    // Its file stays watched (read_watch_events marks orphans too): a read that returns is
    // published unless its file was written meanwhile.
    r->orphaned = true;  // its doorbell may still ring: consider() passes it by
    r->orphan_written = false;
    orphans_.push_back(r);
    ++stats_.stuck_reads;
    stats_.stuck_threads = static_cast<int>(stuck_.size()) + 1;
  }
  stuck_.push_back(guard_);
  if (stuck_.size() >= static_cast<std::size_t>(kMaxStuckThreads) && !at_cap_.exchange(true)) {
    spdlog::error(
        "loader: {} loader threads are stuck in reads that do not return (one per file system that stopped "
        "answering): the last one reads only the file systems that answered within the last second",
        stuck_.size());
  }
  dead_devices_.fetch_add(1, std::memory_order_relaxed);
  if (!replace) return true;
  if (first && waited * 1e3 >= cfg_.stuck_read_ms) {
    spdlog::error(
        "stream {}: a read has not returned for {:.1f} s (its disk or share stopped answering): its voice and the "
        "other voices of that file system wait (they underrun) until it answers; a new loader thread reads the "
        "rest",
        base::log_escape(r->path), waited);
  } else if (first) {
    spdlog::warn(
        "stream {}: a read has taken {:.0f} ms, longer than the streams of other file systems can wait: its voice "
        "and the other voices of that file system wait for it (they underrun while its reads are this slow); a new "
        "loader thread reads the rest",
        base::log_escape(r->path), waited * 1e3);
  }
  guard_ = std::make_shared<ReadGuard>();
  thread_ = std::thread([this, ng = guard_] {
    run(ng);
    ng->exited.store(true, std::memory_order_release);
  });
  return true;
}

// [loader] Whether r's file is on a file system where a given-up call has not returned yet.
bool LoaderThread::on_dead_device(const Reader& r) {
  std::lock_guard lock(thread_mu_);
  for (const auto& g : stuck_) {
    if (g->dev == r.dev && !g->returned.load(std::memory_order_acquire)) return true;
  }
  return false;
}

// [loader] At the cap: the latest read that landed on each file system with streams. A file system
// that has not answered within kAnsweredNs may be one more that stopped: with no thread left to
// give up, a read there could hold this one for good, so its streams wait (best effort: one that
// stops between two reads is not foreseen).
void LoaderThread::note_answers() {
  answered_.clear();
  for (const Reader* r : readers_) {
    auto it = std::find_if(answered_.begin(), answered_.end(), [&](const auto& a) { return a.first == r->dev; });
    if (it == answered_.end()) {
      answered_.emplace_back(r->dev, r->last_write_ns);
    } else {
      it->second = std::max(it->second, r->last_write_ns);
    }
  }
}

bool LoaderThread::answered_lately(const Reader& r, std::uint64_t now) const {
  for (const auto& [dev, at] : answered_) {
    if (dev == r.dev) return now < at + kAnsweredNs;
  }
  return false;
}

// [loader, under mutex_] Streams whose given-up call has returned and that the engine still
// plays go on: back among the readers, with what the returned read brought (publish_landed), or
// reading again from where their last published frame left off.
void LoaderThread::take_back_orphans() {
  for (auto it = orphans_.begin(); it != orphans_.end();) {
    Reader* r = *it;
    if ((r->orphan.load(std::memory_order_acquire) & Reader::kOrphanReturned) == 0) {
      ++it;
      continue;
    }
    it = orphans_.erase(it);
    r->orphan.store(0, std::memory_order_relaxed);
    r->orphaned = false;
    const std::uint64_t now = mono_ns();
    if (!publish_landed(*r, now)) {
      // Read again from its last published frame (a seek first: the file's position moved), not at
      // once: a stream whose given-up reads bring nothing backs off, 0.1 s doubling up to 1.6 s.
      r->seek_pending = !r->region_cached();
      r->retry_at_ns = now + (100'000'000ull << std::min(r->strikes - 1, 4));
    }
    // Still watched (give_up keeps it), unless it was given up in its watch: then watched by
    // take_pending, under the read guard (no watch: it checks its header at every read).
    if (r->watch < 0) to_watch_.push_back(r);
    readers_.push_back(r);
    multi_dev_ = true;  // until the next sweep looks (its file system may be the only other one)
    if (r->slot == kNoSlot) unbelled_.push_back(r);
    if (r->strikes == 1) spdlog::info("stream {}: its read returned after all: it goes on", base::log_escape(r->path));
  }
}

// [loader, under mutex_] A stream's given-up read has returned: what it brought is published
// (the frames sit in the ring's free span, unpublished; the file's position is past them; its
// thread checked the header when the read had to) — unless it brought nothing, or the given-up
// call was a seek or a header check, or its file was written to meanwhile: then it is read again.
// Discarded, a share whose every read outlasts the give-up never advanced (outside attack pass 23,
// finding 3).
bool LoaderThread::publish_landed(Reader& r, std::uint64_t now) {
  const std::int64_t got = r.landed;
  r.landed = 0;
  if (got <= 0 || !r.landed_ok || r.orphan_written || r.done) return false;
  r.header_check = false;  // checked by its thread when it had to be, and not written since
  r.ring().commit(static_cast<std::size_t>(got));
  r.next_frame += got;
  r.written += static_cast<std::uint64_t>(got);
  r.last_write_ns = now;
  ++stats_.reads;
  stats_.frames_read += static_cast<std::uint64_t>(got);
  if (got < r.landed_want || (r.region_end > 0 && r.next_frame >= r.region_end) ||
      (r.region_end <= 0 && r.total_frames >= 0 && r.next_frame >= r.total_frames)) {
    end_of_data(r);
  }
  return true;
}

// [loader, under mutex_; or the destructor] The engine has let go of `r`: if it is a stream whose
// read was given up, it leaves orphans_ and is deleted now if its stuck call has returned (else by
// the stuck thread when it does). Anything else is not ours: ignored.
void LoaderThread::release_orphan(Reader* r) {
  auto it = std::find(orphans_.begin(), orphans_.end(), r);
  if (it == orphans_.end()) return;
  orphans_.erase(it);
  unwatch(*r);  // orphans keep their watch (give_up)
  ring_bytes_.fetch_sub(r->ring_bytes(), std::memory_order_relaxed);
  if (r->slot != kNoSlot) {
    slot_reader_[r->slot] = nullptr;
    bells_[r->slot / 64].fetch_and(~(1ull << (r->slot % 64)), std::memory_order_relaxed);
    free_slots_.push_back(r->slot);
  }
  if ((r->orphan.fetch_or(Reader::kOrphanReleased, std::memory_order_acq_rel) & Reader::kOrphanReturned) != 0) {
    delete r;
  }
}

}  // namespace stemd::io
