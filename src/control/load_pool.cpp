// The opener threads (see load_pool.hpp).
#include "load_pool.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <thread>

namespace stemd::control {

namespace {
enum class Run { kRunning, kAbandoned, kReplaced };  // kReplaced: abandoned, another thread took its place
}

struct LoadPool::State {
  std::mutex mutex;
  std::condition_variable cv;      // a job queued, or stopping
  std::condition_variable exited;  // a thread left
  std::deque<std::pair<std::uint64_t, LoadPool::Job>> jobs;
  std::map<std::uint64_t, Run> running;         // ticket → how it stands
  std::map<std::uint64_t, std::string> labels;  // queued or running jobs' (submit)
  std::size_t working = 0;                      // running and not abandoned
  std::size_t lost = 0;                         // running and abandoned
  std::size_t alive = 0;
  std::size_t max_lost = 8;  // working + lost never passes it: so lost never does
  std::uint64_t next_ticket = 1;
  bool stopping = false;
  std::string job, threads;  // for the log
};

namespace {
void opener(std::shared_ptr<LoadPool::State> s) {
  std::unique_lock lock(s->mutex);
  while (true) {
    // A job starts only while fewer than max_lost threads are inside jobs: every one of them may
    // be lost, and the cap on lost threads must hold however many time out at once.
    auto runnable = [&] { return !s->jobs.empty() && s->working + s->lost < s->max_lost; };
    s->cv.wait(lock, [&] { return s->stopping || runnable(); });
    if (!runnable()) break;  // stopping, nothing left it may run
    auto [ticket, job] = std::move(s->jobs.front());
    s->jobs.pop_front();
    s->running[ticket] = Run::kRunning;
    ++s->working;
    lock.unlock();
    LoadPool::Publish publish = job();
    job = nullptr;  // what it captured is released off the lock
    lock.lock();
    const auto it = s->running.find(ticket);
    const Run how = it->second;
    s->running.erase(it);
    s->labels.erase(ticket);
    if (how == Run::kRunning) {
      --s->working;  // the slot is free before anyone hears of the result
    } else {
      --s->lost;
      spdlog::info("an abandoned {} returned ({} {} threads still lost)", s->job, s->lost, s->threads);
      s->cv.notify_all();  // a queued job held back by the cap may start
    }
    lock.unlock();
    if (publish) publish();  // an abandoned job's result: the router discards it
    publish = nullptr;
    lock.lock();
    if (how == Run::kReplaced) break;  // another thread has taken this one's place
  }
  --s->alive;
  s->exited.notify_all();
}
}  // namespace

LoadPool::LoadPool(std::size_t threads, std::size_t max_in_flight, std::size_t max_lost, std::string job,
                   std::string threads_name)
    : state_(std::make_shared<State>()),
      max_in_flight_(max_in_flight == 0 ? 1 : max_in_flight),
      max_lost_(max_lost == 0 ? 1 : max_lost) {
  state_->max_lost = max_lost_;
  state_->job = std::move(job);
  state_->threads = std::move(threads_name);
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
  // (bounded shutdown), then it is left to finish alone with what it owns. A thread already lost
  // (given up on past its time-out) is not waited for at all.
  state_->exited.wait_for(lock, std::chrono::seconds(1), [&] { return state_->alive <= state_->lost; });
}

std::uint64_t LoadPool::submit(Job job, std::string& why, std::string label) {
  std::lock_guard g(state_->mutex);
  if (state_->lost >= max_lost_) {
    why = "busy: " + std::to_string(state_->lost) +
          " loads are stuck in the file system past --load-timeout (loads refused until one returns)";
    return 0;
  }
  if (state_->jobs.size() + state_->working >= max_in_flight_) {
    why = "busy: " + std::to_string(max_in_flight_) + " loads in flight (try again)";
    return 0;
  }
  const std::uint64_t ticket = state_->next_ticket++;
  state_->jobs.emplace_back(ticket, std::move(job));
  if (!label.empty()) state_->labels[ticket] = std::move(label);
  state_->cv.notify_one();
  return ticket;
}

bool LoadPool::abandon(std::uint64_t ticket) { return abandon(std::vector<std::uint64_t>{ticket}).front(); }

std::vector<bool> LoadPool::abandon(const std::vector<std::uint64_t>& tickets) {
  std::vector<bool> lost(tickets.size(), false);
  std::lock_guard g(state_->mutex);
  // The queued ones first, all under this one lock: a replacement thread started below must not
  // take one of them and then be counted lost for it (many loads timing out together counted
  // 5–9 lost where 2 had started: outside pass 21, finding 2).
  auto given_up = [&](std::uint64_t t) { return std::find(tickets.begin(), tickets.end(), t) != tickets.end(); };
  for (auto it = state_->jobs.begin(); it != state_->jobs.end();) {
    if (!given_up(it->first)) {
      ++it;
      continue;
    }
    state_->labels.erase(it->first);
    it = state_->jobs.erase(it);  // never runs
  }
  for (std::size_t i = 0; i < tickets.size(); ++i) {
    auto it = state_->running.find(tickets[i]);
    if (it == state_->running.end() || it->second != Run::kRunning) continue;
    --state_->working;
    ++state_->lost;
    lost[i] = true;
    if (!state_->stopping) {  // lost ≤ max_lost always (the threads inside jobs are bounded)
      it->second = Run::kReplaced;
      ++state_->alive;
      std::thread(opener, state_).detach();
    } else {
      it->second = Run::kAbandoned;  // stopping: not replaced
    }
  }
  return lost;
}

std::size_t LoadPool::in_flight() const {
  std::lock_guard g(state_->mutex);
  return state_->jobs.size() + state_->working;
}

std::size_t LoadPool::lost() const {
  std::lock_guard g(state_->mutex);
  return state_->lost;
}

bool LoadPool::started(std::uint64_t ticket) const {
  std::lock_guard g(state_->mutex);
  const auto it = state_->running.find(ticket);
  return it != state_->running.end() && it->second == Run::kRunning;
}

bool LoadPool::still_lost(std::uint64_t ticket) const {
  std::lock_guard g(state_->mutex);
  const auto it = state_->running.find(ticket);
  return it != state_->running.end() && it->second != Run::kRunning;
}

std::size_t LoadPool::held_by_lost() const {
  std::lock_guard g(state_->mutex);
  const bool held = !state_->jobs.empty() && state_->lost > 0 && state_->working + state_->lost >= max_lost_;
  return held ? state_->lost : 0;
}

std::string LoadPool::running() const {
  std::lock_guard g(state_->mutex);
  std::string out;
  for (const auto& [ticket, how] : state_->running) {
    const auto l = state_->labels.find(ticket);
    out += (out.empty() ? "'" : ", '") + (l == state_->labels.end() ? std::string("?") : l->second) + "'";
    if (how != Run::kRunning) out += " (lost)";
  }
  return out;
}

}  // namespace stemd::control
