// The opener threads: OSC loads (and the streams plays of streamed files need) run here, off the
// control thread, so a slow open or header read (NFS, FUSE, a stalled disk) never stops the
// control thread answering other clients.
//
// A small fixed pool of threads runs jobs; at most `max_in_flight` are queued or running at once
// (submit() refuses beyond: the router answers "busy"). A finished job's result goes back to
// the control thread through the job's own completion queue (Router::LoadDone) and `wake`.
// Everything a job touches is owned by the job (copies and shared pointers), so the pool can be
// destroyed while a job is stuck in the kernel: the destructor waits a bounded time and then
// leaves the stuck threads to finish alone (they hold only their own state).
//
// A job the router gives up on (--load-timeout: router_loads.cpp tells a stuck job from a slow
// one by its progress beat, io/progress_beat.hpp) is abandoned: queued, it never runs; running,
// its thread is "lost" until the job returns (its result is still published; the router
// discards it) and a new thread takes its place, so stuck jobs do not eat the workers. At most
// `max_lost` threads are lost at once: a job starts only while fewer than max_lost threads are
// inside jobs (running or lost), so however many time out together the count cannot pass it; at
// the cap submit() refuses every job ("busy: … stuck in the file system") until one returns — a
// dead NFS mount costs at most max_lost idle threads, never the daemon. Jobs given up together
// are abandoned together (the queued ones are never counted lost).
// Threads: submit(), abandon() and the counts [control]; jobs run on the opener threads. The web
// monitor's file browser runs its listings on a pool of its own (`job` "listing", threads named
// "listing threads" in the log), submitted and abandoned on its network thread.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace stemd::control {

class LoadPool {
 public:
  // `job` and `threads` name them in the log ("an abandoned load returned (2 opener threads …").
  LoadPool(std::size_t threads, std::size_t max_in_flight, std::size_t max_lost = 8, std::string job = "load",
           std::string threads_name = "opener");
  ~LoadPool();
  LoadPool(const LoadPool&) = delete;
  LoadPool& operator=(const LoadPool&) = delete;

  // A job does its work and returns how to publish the result. The pool runs the publish step
  // after the job's slot is free again, so whoever hears of the result (a client answered
  // /done) can submit the next job at once without meeting a "busy" from the finished one.
  using Publish = std::function<void()>;
  using Job = std::function<Publish()>;
  // Queues `job` and returns its ticket (for abandon()); 0 when refused, `why` then says why.
  // `label` names it in running() (a path).
  std::uint64_t submit(Job job, std::string& why, std::string label = {});
  // Gives up on the job `ticket` (see above). Returns true when it was running (a thread lost).
  bool abandon(std::uint64_t ticket);
  // The same for several at once, under one lock, the queued ones first: element i is true when
  // tickets[i] was running (its thread lost).
  std::vector<bool> abandon(const std::vector<std::uint64_t>& tickets);
  std::size_t in_flight() const;
  std::size_t lost() const;                  // threads still inside an abandoned job
  bool started(std::uint64_t ticket) const;  // its job is running on a thread now
  // The jobs running now, by label, a lost one marked: "'a.wav' (lost), 'b.wav'" ("" when none).
  // Any thread (the shutdown names what it leaves behind).
  std::string running() const;
  // Is the abandoned job `ticket` still running (its thread lost)? False once it returned.
  bool still_lost(std::uint64_t ticket) const;
  // Jobs are queued that no thread may start until a lost one returns: the threads inside jobs
  // are at max_lost, lost ones among them. 0 when not; else how many threads are lost.
  std::size_t held_by_lost() const;
  std::size_t max_in_flight() const noexcept { return max_in_flight_; }
  std::size_t max_lost() const noexcept { return max_lost_; }

  struct State;  // shared with the threads (load_pool.cpp)

 private:
  std::shared_ptr<State> state_;
  std::size_t max_in_flight_;
  std::size_t max_lost_;
};

}  // namespace stemd::control
