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

// [watchdog] Four times a second (or faster for a short stuck_read_ms): a call of the current
// loader thread older than stuck_read_ms gives that thread up; given-up calls that have returned
// are forgotten.
void LoaderThread::watchdog() {
  const auto stuck_ns = static_cast<std::uint64_t>(cfg_.stuck_read_ms) * 1'000'000ull;
  const auto period = std::chrono::milliseconds(std::clamp(cfg_.stuck_read_ms / 4, 10, 250));
  std::unique_lock lock(thread_mu_);
  while (running_.load(std::memory_order_relaxed)) {
    watch_cv_.wait_for(lock, period);
    if (!running_.load(std::memory_order_relaxed)) break;
    const std::uint64_t now = mono_ns();
    for (auto it = stuck_.begin(); it != stuck_.end();) {
      if (!(*it)->returned.load(std::memory_order_acquire)) {
        ++it;
        continue;
      }
      spdlog::info("loader: a given-up read has returned after {:.1f} s; its thread has ended",
                   static_cast<double>(now - (*it)->since_ns.load(std::memory_order_relaxed)) * 1e-9);
      dead_devices_.fetch_sub(1, std::memory_order_relaxed);
      it = stuck_.erase(it);
      std::lock_guard stats_lock(mutex_);
      stats_.stuck_threads = static_cast<int>(stuck_.size());
    }
    give_up(*guard_, now, stuck_ns, true);
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
          "loader: {} loader threads are stuck in reads that do not return; the streams wait for the "
          "current one (a restart of stemd, or the shares answering again, ends this)",
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
  {
    std::lock_guard lock(mutex_);
    readers_.erase(std::remove(readers_.begin(), readers_.end(), r), readers_.end());
    unbelled_.erase(std::remove(unbelled_.begin(), unbelled_.end(), r), unbelled_.end());
    unwatch(*r);
    std::erase(to_watch_, r);  // given up in its watch: not the successor's to watch
    r->orphaned = true;        // its doorbell may still ring: consider() passes it by
    orphans_.push_back(r);
    ++stats_.stuck_reads;
    stats_.stuck_threads = static_cast<int>(stuck_.size()) + 1;
  }
  stuck_.push_back(guard_);
  dead_devices_.fetch_add(1, std::memory_order_relaxed);
  if (!replace) return true;
  spdlog::error(
      "stream {}: a read has not returned for {:.1f} s (its disk or share stopped answering): its voice and the "
      "other voices of that file system wait (they underrun) until it answers; a new loader thread reads the rest",
      base::log_escape(r->path), waited);
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

// [loader, under mutex_] Streams whose given-up call has returned and that the engine still
// plays go on: back among the readers, reading from where their last published frame left off
// (the returned read was not published; a seek first, as the file's position moved).
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
    r->seek_pending = !r->region_cached();
    to_watch_.push_back(r);  // watched by take_pending, under the read guard
    readers_.push_back(r);
    if (r->slot == kNoSlot) unbelled_.push_back(r);
    spdlog::info("stream {}: its read returned after all: it goes on", base::log_escape(r->path));
  }
}

// [loader, under mutex_; or the destructor] The engine has let go of `r`: if it is a stream whose
// read was given up, it leaves orphans_ and is deleted now if its stuck call has returned (else by
// the stuck thread when it does). Anything else is not ours: ignored.
void LoaderThread::release_orphan(Reader* r) {
  auto it = std::find(orphans_.begin(), orphans_.end(), r);
  if (it == orphans_.end()) return;
  orphans_.erase(it);
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
