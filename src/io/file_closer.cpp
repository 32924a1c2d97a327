// The closer (see file_closer.hpp): threads that close media files' descriptors, so a close that
// waits for a share that stopped answering holds one of them, not the control or loader thread.
#include "file_closer.hpp"

#include <spdlog/spdlog.h>

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>
#include <vector>

namespace stemd::io {

namespace {
using Clock = std::chrono::steady_clock;
}  // namespace

struct FileCloser::State {
  explicit State(Options o) : opt(std::move(o)) {}
  Options opt;
  mutable std::mutex mu;
  std::condition_variable cv;               // a descriptor queued, or stopping
  mutable std::condition_variable idle_cv;  // a close returned, or a thread left
  std::deque<int> queue;
  std::vector<Clock::time_point> busy;  // when each close under way began (one per busy thread)
  std::size_t threads = 0, idle = 0;
  std::uint64_t closed = 0;
  std::atomic<std::int64_t> unclosed{0};  // queued or under way: still open (read without mu)
  bool stopping = false;
  bool cap_logged = false;

  // Under mu: a thread for the queue when none is idle and the bound allows one.
  void spawn_if_needed(const std::shared_ptr<State>& self) {
    if (queue.empty() || idle > 0 || threads >= opt.max_threads) return;
    try {
      std::thread([self] { self->run(self); }).detach();
      ++threads;
      ++idle;  // until it takes its first descriptor
    } catch (const std::exception&) {
      // No thread now (EAGAIN): the descriptor waits for the next close or a returning thread.
    }
  }

  // [closer] Closes what is queued, one at a time; leaves when stopping, or idle too long (not the last).
  void run(const std::shared_ptr<State>& self) {
    std::unique_lock lock(mu);
    for (;;) {
      const bool woke =
          cv.wait_for(lock, std::chrono::milliseconds(opt.idle_exit_ms), [this] { return !queue.empty() || stopping; });
      if (queue.empty() && (stopping || (!woke && threads > 1))) break;
      if (queue.empty()) continue;
      const int fd = queue.front();
      queue.pop_front();
      --idle;
      spawn_if_needed(self);  // more queued behind this close, which may not return
      const Clock::time_point since = Clock::now();
      busy.push_back(since);
      lock.unlock();
      if (opt.close_fn) {
        (void)opt.close_fn(fd);
      } else {
        (void)::close(fd);  // never retried on EINTR: Linux has released the descriptor either way
      }
      unclosed.fetch_sub(1, std::memory_order_relaxed);
      const double took_s = std::chrono::duration<double>(Clock::now() - since).count();
      lock.lock();
      busy.erase(std::find(busy.begin(), busy.end(), since));
      ++idle;
      ++closed;
      idle_cv.notify_all();
      if (took_s * 1000 >= opt.stuck_ms) {
        cap_logged = false;
        lock.unlock();  // the log's write is not made under mu: close() takes it
        spdlog::info("closer: a file's close returned after {:.1f} s (its share answered again)", took_s);
        lock.lock();
      }
    }
    --threads;
    --idle;
    idle_cv.notify_all();
  }
};

FileCloser::FileCloser() : FileCloser(Options{}) {}

FileCloser::FileCloser(Options opt) : state_(std::make_shared<State>(std::move(opt))) {
  if (state_->opt.max_threads == 0) state_->opt.max_threads = 1;
}

FileCloser::~FileCloser() {
  std::unique_lock lock(state_->mu);
  state_->stopping = true;
  state_->cv.notify_all();
  state_->idle_cv.wait_for(lock, std::chrono::milliseconds(500), [this] { return state_->threads == 0; });
}

void FileCloser::close(int fd) noexcept {
  if (fd < 0) return;
  State& s = *state_;
  s.unclosed.fetch_add(1, std::memory_order_relaxed);
  std::size_t stuck = 0, waiting = 0;
  {
    std::lock_guard lock(s.mu);
    s.queue.push_back(fd);
    s.spawn_if_needed(state_);
    s.cv.notify_one();
    if (s.idle > 0 || s.threads < s.opt.max_threads || s.cap_logged) return;
    const Clock::time_point now = Clock::now();
    for (const Clock::time_point t : s.busy) stuck += now - t >= std::chrono::milliseconds(s.opt.stuck_ms) ? 1 : 0;
    if (stuck < s.threads) return;  // a close under way that is merely slow yet
    s.cap_logged = true;
    waiting = s.queue.size();
  }
  spdlog::error(
      "closer: {} closes of media files have not returned (a share stopped answering): files let go from now on "
      "stay open until one returns ({} waiting; `closes_waiting` in the status)",
      stuck, waiting);
}

FileCloser::Stats FileCloser::stats() const {
  const State& s = *state_;
  std::lock_guard lock(s.mu);
  Stats out;
  out.closed = s.closed;
  out.waiting = s.queue.size();
  out.threads = s.threads;
  const Clock::time_point now = Clock::now();
  for (const Clock::time_point t : s.busy)
    out.stuck_now += now - t >= std::chrono::milliseconds(s.opt.stuck_ms) ? 1 : 0;
  return out;
}

std::int64_t FileCloser::unclosed() const noexcept { return state_->unclosed.load(std::memory_order_relaxed); }

bool FileCloser::wait_idle(int ms) const {
  const State& s = *state_;
  std::unique_lock lock(s.mu);
  return s.idle_cv.wait_for(lock, std::chrono::milliseconds(ms), [&s] { return s.queue.empty() && s.busy.empty(); });
}

namespace {
std::atomic<FileCloser*> g_test_closer{nullptr};
}  // namespace

FileCloser& FileCloser::process() {
  if (FileCloser* t = g_test_closer.load(std::memory_order_acquire); t != nullptr) return *t;
  static FileCloser* const p = new FileCloser();  // never destroyed: shutdown does not wait on a close
  return *p;
}

void FileCloser::set_process_for_tests(FileCloser* c) noexcept { g_test_closer.store(c, std::memory_order_release); }

void close_file(int fd) noexcept { FileCloser::process().close(fd); }

}  // namespace stemd::io
