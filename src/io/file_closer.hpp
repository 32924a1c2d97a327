// Closing media files off the threads that must keep answering.
//
// close() of a file on FUSE (sshfs, rclone, s3fs, gvfs…) sends FLUSH and waits for its answer; an
// NFS close flushes too. A share that stopped answering would keep whoever closes there forever:
// the control thread when a client unloads an id, replaces it or clears the mixer, the loader
// thread when it deletes a released stream (outside pass 23, findings 1 and 2). So no media file is
// closed by the thread that last used it: FileHandle's destructor hands its descriptor to the
// closer (close_file()), whose own threads close it.
//
// Threads: a closer thread starts when a descriptor is queued and no closer thread is idle, up to
// Options::max_threads (8 for the process's closer); one that has been idle for idle_exit_ms
// leaves, except the last. A close that does not return keeps its thread and costs nothing else:
// the other closer threads go on. Past the bound — every closer thread in a close that has not
// returned — descriptors wait in the queue, still open, counted (Stats::waiting; one error line),
// until a close returns; the thread that handed them over never waits. Shutdown never waits for
// the closer (a close stuck on a dead share holds only its thread; the process exits around it).
//
//   [any thread but audio] close(), close_file(): one push under a lock held for nothing else
//   [closer]               the closes themselves
//   [any thread]           stats(), unclosed()
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>

namespace stemd::io {

class FileCloser {
 public:
  struct Options {
    std::size_t max_threads = 8;       // closes under way at once (each stuck one keeps its thread)
    int stuck_ms = 1000;               // a close older than this, in ms of wall time, counts as stuck
    int idle_exit_ms = 10'000;         // an idle closer thread (not the last) leaves after this, ms of wall time
    std::function<int(int)> close_fn;  // what closes a descriptor (tests); empty: ::close
  };
  FileCloser();  // the default Options
  explicit FileCloser(Options opt);
  // Tells the closer threads to leave once the queue is empty and waits at most half a second (of
  // wall time) for them; a thread still inside a close is left to finish alone (it holds only the
  // closer's shared state, and closes what is queued when it returns).
  ~FileCloser();
  FileCloser(const FileCloser&) = delete;
  FileCloser& operator=(const FileCloser&) = delete;

  // Queues `fd` to be closed on a closer thread. Never blocks on I/O; never fails (a descriptor
  // that cannot get a thread waits for one). fd < 0: nothing.
  void close(int fd) noexcept;

  struct Stats {
    std::uint64_t closed = 0;  // closes that have returned
    int stuck_now = 0;         // closes under way for stuck_ms or more (a share that does not answer)
    std::size_t waiting = 0;   // descriptors queued, still open (every closer thread busy)
    std::size_t threads = 0;   // closer threads alive
  };
  Stats stats() const;
  // Descriptors handed over whose close has not returned (queued or under way): still open.
  // Lock-free, for the descriptor budget (fd_budget.hpp).
  std::int64_t unclosed() const noexcept;
  // Until nothing is queued or under way, or `ms` (ms of wall time) have passed; true if idle.
  bool wait_idle(int ms) const;

  // The process's closer: what close_file() and FileHandle use. Made on first use, never destroyed.
  static FileCloser& process();
  // Tests: makes `c` the process's closer until set back to null. The caller keeps it alive until then.
  static void set_process_for_tests(FileCloser* c) noexcept;

  struct State;  // shared with the closer threads (file_closer.cpp)

 private:
  std::shared_ptr<State> state_;
};

// [any thread but audio] Closes a media file's descriptor on the process's closer (see above).
// Whoever drops a file that may sit on a network share calls this, never ::close.
void close_file(int fd) noexcept;

}  // namespace stemd::io
