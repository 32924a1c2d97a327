// The opener threads (see load_pool.hpp).
#include "load_pool.hpp"

#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

namespace stemd::control {

struct LoadPool::State {
  std::mutex mutex;
  std::condition_variable cv;      // a job queued, or stopping
  std::condition_variable exited;  // a thread left
  std::deque<LoadPool::Job> jobs;
  std::size_t running = 0;
  std::size_t alive = 0;
  bool stopping = false;
};

namespace {
void opener(std::shared_ptr<LoadPool::State> s) {
  std::unique_lock lock(s->mutex);
  while (true) {
    s->cv.wait(lock, [&] { return s->stopping || !s->jobs.empty(); });
    if (s->jobs.empty()) break;  // stopping, nothing left
    auto job = std::move(s->jobs.front());
    s->jobs.pop_front();
    ++s->running;
    lock.unlock();
    LoadPool::Publish publish = job();
    job = nullptr;  // what it captured is released off the lock
    lock.lock();
    --s->running;  // the slot is free before anyone hears of the result
    lock.unlock();
    if (publish) publish();
    publish = nullptr;
    lock.lock();
  }
  --s->alive;
  s->exited.notify_all();
}
}  // namespace

LoadPool::LoadPool(std::size_t threads, std::size_t max_in_flight)
    : state_(std::make_shared<State>()), max_in_flight_(max_in_flight == 0 ? 1 : max_in_flight) {
  if (threads == 0) threads = 1;
  for (std::size_t i = 0; i < threads; ++i) {
    {
      std::lock_guard g(state_->mutex);
      ++state_->alive;
    }
    std::thread(opener, state_).detach();  // joined through `alive` below (bounded)
  }
}

LoadPool::~LoadPool() {
  std::unique_lock lock(state_->mutex);
  state_->stopping = true;
  state_->jobs.clear();  // queued, not started: nobody waits for them any more
  state_->cv.notify_all();
  // A job stuck in open() or read() on a dead NFS server must not hold up shutdown: at most 1 s
  // (bounded shutdown), then it is left to finish alone with what it owns.
  state_->exited.wait_for(lock, std::chrono::seconds(1), [&] { return state_->alive == 0; });
}

bool LoadPool::submit(Job job) {
  std::lock_guard g(state_->mutex);
  if (state_->jobs.size() + state_->running >= max_in_flight_) return false;
  state_->jobs.push_back(std::move(job));
  state_->cv.notify_one();
  return true;
}

std::size_t LoadPool::in_flight() const {
  std::lock_guard g(state_->mutex);
  return state_->jobs.size() + state_->running;
}

}  // namespace stemd::control
