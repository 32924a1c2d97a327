// The state file's reads and writes in a helper process (--state-file on a file system that
// stops answering: an NFS share or a USB bridge that hung). [the owner's thread: main]
//
// A thread that opens, reads or writes there waits in the kernel for as long as the file system
// does not answer — for FUSE uninterruptibly, so a stop signal cannot end it, and a process with
// such a thread is not reaped and keeps its sockets (the OSC port) open after it "exits". A helper
// process stuck there holds only itself: stemd goes on, and exits when it is told to.
//
// The helper is stemd itself (`stemd --internal-state-io …`, below), started with posix_spawn:
// vfork-style, so nothing of the daemon's memory is copied and the audio thread never meets a
// copy-on-write fault (fork() would give it one on every page it then writes, mlocked or not).
// Its input and output are memfds: nothing is waited on but its exit.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <sys/types.h>
#include <vector>

namespace stemd::app {

inline constexpr const char* kStateIoFlag = "--internal-state-io";
inline constexpr int kStateIoMissing = 3;  // the helper's exit status: no such file

class FileJob {
 public:
  // kFailed: the helper said the file could not be read or written (exit 1); kBroken: the helper
  // itself failed (killed, lost, another exit) — nothing is known about the file.
  enum class Status { kRunning, kOk, kMissing, kFailed, kBroken };
  // Starts `argv` (the program, then its arguments) with `input` on its standard input. Null,
  // with `error`, when it could not be started.
  static std::unique_ptr<FileJob> start(const std::vector<std::string>& argv, const std::string& input,
                                        std::string& error);
  // A job still running is killed (SIGKILL: a process waiting in the kernel dies as its system
  // call returns, so it never writes late) and left to the system.
  ~FileJob();
  FileJob(const FileJob&) = delete;
  FileJob& operator=(const FileJob&) = delete;

  // Without waiting: kRunning until the helper has exited; then its outcome, for good.
  Status poll();
  // Waits up to `seconds` (this process's steady clock) for the outcome. `wait_ms`, when given,
  // waits between looks (20 ms) and returns false to stop waiting (a stop signal): `stopped` set.
  Status wait(double seconds, const std::function<bool(int ms)>& wait_ms = {}, bool* stopped = nullptr);
  // kOk (read): the file's text. Otherwise the reason.
  const std::string& output() const { return output_; }
  // While it runs: what it has written so far (its progress: config_io.hpp).
  std::string output_so_far() const;
  // Gives up on a running helper: SIGKILL, and poll() says when it is gone (killed, or its outcome
  // if it ended first). A helper waiting in the kernel dies only when its system call returns.
  void kill();
  double seconds() const;  // since it started (steady clock)
  pid_t pid() const { return pid_; }
  // A helper this process started before an exec (same pid: still its child), to be reaped by
  // poll() (kBroken once it has ended: its answer is not known) or killed by the destructor.
  static std::unique_ptr<FileJob> adopt(pid_t pid);

 private:
  FileJob() = default;
  pid_t pid_ = -1;
  int out_fd_ = -1;
  Status status_ = Status::kRunning;
  std::string output_;
  std::chrono::steady_clock::time_point started_{};
};

// The helper's side, run by main() when argv[1] is kStateIoFlag:
//   write PATH           standard input → PATH, atomically (write_file_atomic, a symlink followed)
//   read PATH MAX_BYTES  PATH → standard output (read_regular_file)
//   read-config …        the config file (config_io.hpp, read_config_main)
// Exit 0 done, 3 no such file (read), 1 failed; the reason on standard output — for a file whose
// directory is missing too, state_dir_missing(DIR).
int state_io_main(int argc, char** argv);
// "its directory DIR does not exist": a missing state file's reason when its directory is missing.
std::string state_dir_missing(const std::string& dir);

}  // namespace stemd::app
