// The opener threads: OSC loads run here, off the control thread, so a slow open or header read
// (NFS, FUSE, a stalled disk) never stops the control thread answering other clients.
//
// A small fixed pool of threads runs jobs; at most `max_in_flight` are queued or running at once
// (submit() refuses beyond: the router answers "busy"). A finished job's result goes back to
// the control thread through the job's own completion queue (Router::LoadDone) and `wake`.
// Everything a job touches is owned by the job (copies and shared pointers), so the pool can be
// destroyed while a job is stuck in the kernel: the destructor waits a bounded time and then
// leaves the stuck threads to finish alone (they hold only their own state).
// Threads: submit() and in_flight() [control]; jobs run on the opener threads.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>

namespace stemd::control {

class LoadPool {
 public:
  LoadPool(std::size_t threads, std::size_t max_in_flight);
  ~LoadPool();
  LoadPool(const LoadPool&) = delete;
  LoadPool& operator=(const LoadPool&) = delete;

  // A job does its work and returns how to publish the result. The pool runs the publish step
  // after the job's slot is free again, so whoever hears of the result (a client answered
  // /done) can submit the next job at once without meeting a "busy" from the finished one.
  using Publish = std::function<void()>;
  using Job = std::function<Publish()>;
  // Queues `job`; false when max_in_flight jobs are already queued or running.
  bool submit(Job job);
  std::size_t in_flight() const;
  std::size_t max_in_flight() const noexcept { return max_in_flight_; }

  struct State;  // shared with the threads (load_pool.cpp)

 private:
  std::shared_ptr<State> state_;
  std::size_t max_in_flight_;
};

}  // namespace stemd::control
