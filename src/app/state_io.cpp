// The state file's helper process (state_io.hpp).
#include "state_io.hpp"

#include "config_io.hpp"
#include "device_probe.hpp"
#include "safe_file.hpp"

#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <thread>

#include <fcntl.h>
#include <spawn.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

namespace stemd::app {

namespace {

bool write_all(int fd, const char* p, std::size_t n) {
  while (n > 0) {
    const ssize_t w = ::write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    p += w;
    n -= static_cast<std::size_t>(w);
  }
  return true;
}

bool read_all(int fd, std::string& out) {
  char buf[65536];
  for (;;) {
    const ssize_t r = ::read(fd, buf, sizeof buf);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return false;
    if (r == 0) return true;
    out.append(buf, static_cast<std::size_t>(r));
  }
}

int memfd(const char* name, std::string& error) {
  const int fd = static_cast<int>(::syscall(SYS_memfd_create, name, MFD_CLOEXEC));
  if (fd < 0) error = std::string("memfd_create: ") + std::strerror(errno);
  return fd;
}

}  // namespace

std::unique_ptr<FileJob> FileJob::start(const std::vector<std::string>& argv, const std::string& input,
                                        std::string& error) {
  if (argv.empty()) {
    error = "no helper to run";
    return nullptr;
  }
  const int in = memfd("stemd-io-in", error);
  if (in < 0) return nullptr;
  std::unique_ptr<FileJob> job(new FileJob);
  job->out_fd_ = memfd("stemd-io-out", error);
  if (job->out_fd_ < 0 || !write_all(in, input.data(), input.size()) || ::lseek(in, 0, SEEK_SET) != 0) {
    if (error.empty()) error = std::string("cannot hand the helper its input: ") + std::strerror(errno);
    ::close(in);
    return nullptr;
  }
  posix_spawn_file_actions_t fa;
  posix_spawnattr_t attr;
  posix_spawn_file_actions_init(&fa);
  posix_spawnattr_init(&attr);
  posix_spawn_file_actions_adddup2(&fa, in, 0);
  posix_spawn_file_actions_adddup2(&fa, job->out_fd_, 1);
  // The daemon blocks its stop signals in every thread (sigtimedwait): the helper starts with
  // none blocked and every signal at its default.
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &all);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  const int rc = posix_spawn(&job->pid_, args[0], &fa, &attr, args.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  ::close(in);
  if (rc != 0) {
    job->pid_ = -1;
    error = "cannot start " + argv[0] + ": " + std::strerror(rc);
    return nullptr;
  }
  job->started_ = std::chrono::steady_clock::now();
  return job;
}

std::unique_ptr<FileJob> FileJob::adopt(pid_t pid) {
  std::unique_ptr<FileJob> job(new FileJob);
  job->pid_ = pid;
  job->started_ = std::chrono::steady_clock::now();
  return job;
}

FileJob::~FileJob() {
  if (pid_ > 0 && status_ == Status::kRunning) {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, WNOHANG);  // one stuck in the kernel stays until its parent exits
  }
  if (out_fd_ >= 0) ::close(out_fd_);
}

FileJob::Status FileJob::poll() {
  if (status_ != Status::kRunning) return status_;
  int st = 0;
  const pid_t r = ::waitpid(pid_, &st, WNOHANG);
  if (r == 0 || (r < 0 && errno == EINTR)) return status_;
  if (r < 0) {
    output_ = std::string("the helper process was lost: ") + std::strerror(errno);
    return status_ = Status::kBroken;
  }
  output_.clear();
  if (::lseek(out_fd_, 0, SEEK_SET) != 0 || !read_all(out_fd_, output_)) {
    output_ = std::string("cannot read the helper's answer: ") + std::strerror(errno);
    return status_ = Status::kBroken;
  }
  if (WIFEXITED(st) && WEXITSTATUS(st) == 0) return status_ = Status::kOk;
  if (WIFEXITED(st) && WEXITSTATUS(st) == kStateIoMissing) return status_ = Status::kMissing;
  const bool said = WIFEXITED(st) && WEXITSTATUS(st) == 1;  // the file's own failure, its reason written
  if (output_.empty() || !said) {
    output_ = WIFSIGNALED(st) ? "the helper process was killed (signal " + std::to_string(WTERMSIG(st)) + ")"
                              : "the helper process failed (exit " + std::to_string(WEXITSTATUS(st)) + ")";
  }
  return status_ = said ? Status::kFailed : Status::kBroken;
}

FileJob::Status FileJob::wait(double seconds, const std::function<bool(int ms)>& wait_ms, bool* stopped) {
  const auto until = started_ + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                                    std::chrono::duration<double>(seconds));
  while (poll() == Status::kRunning && std::chrono::steady_clock::now() < until) {
    if (!wait_ms) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    } else if (!wait_ms(20)) {
      if (stopped != nullptr) *stopped = true;
      break;
    }
  }
  return status_;
}

std::string FileJob::output_so_far() const {
  std::string out;
  char buf[4096];
  for (off_t at = 0;;) {
    const ssize_t r = ::pread(out_fd_, buf, sizeof buf, at);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return out;
    out.append(buf, static_cast<std::size_t>(r));
    at += r;
  }
}

void FileJob::kill() {
  if (pid_ > 0 && poll() == Status::kRunning) ::kill(pid_, SIGKILL);
}

double FileJob::seconds() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
}

std::string state_dir_missing(const std::string& dir) { return "its directory " + dir + " does not exist"; }

int state_io_main(int argc, char** argv) {
  // Nothing of the daemon's is kept open here while this waits on a file system (its sockets).
  ::syscall(SYS_close_range, 3U, ~0U, 0U);
  const std::string mode = argc > 2 ? argv[1] : "";
  std::string error, text;
  if (mode == "write" && argc == 3) {
    if (!read_all(0, text)) {
      error = std::string("cannot read the state to write: ") + std::strerror(errno);
    } else if (write_file_atomic(argv[2], text, error,
                                 AtomicWrite{.follow_symlink = true, .remove_stale_temporaries = true})) {
      return 0;
    }
    write_all(1, error.data(), error.size());
    return 1;
  }
  if (mode == "read" && argc == 4) {
    const unsigned long long max = std::strtoull(argv[3], nullptr, 10);
    switch (read_regular_file(argv[2], static_cast<std::size_t>(max), text, error)) {
      case ReadResult::kOk:
        return write_all(1, text.data(), text.size()) ? 0 : 1;
      case ReadResult::kMissing:
        // Looked at here, in the helper: a file system that does not answer holds only this process.
        if (const std::string dir = missing_directory(argv[2]); !dir.empty()) error = state_dir_missing(dir);
        write_all(1, error.data(), error.size());
        return kStateIoMissing;
      case ReadResult::kError:
        break;
    }
    write_all(1, error.data(), error.size());
    return 1;
  }
  if (mode == "read-config") return read_config_main(argc - 2, argv + 2);
  if (mode == "read-page") return read_page_main(argc - 2, argv + 2);
  if (mode == "audio-probe") return audio_probe_main(argc - 2, argv + 2);
  error = std::string("usage: stemd ") + kStateIoFlag +
          " write PATH | read PATH MAX_BYTES | read-config MAX_BYTES given|search PATH... | read-page MAX_BYTES DIR "
          "TYPE... | audio-probe KIND DEVICE RATE BUFFER QUIET (stemd's own helper)";
  write_all(2, error.data(), error.size());
  write_all(2, "\n", 1);
  return 2;
}

}  // namespace stemd::app
