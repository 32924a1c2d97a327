// Runs a command line, capturing stdout+stderr and the exit code; or starts a program in the
// background with its output in a log file (spawn_logged). Tests only.
#pragma once

#include "common/fixtures.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

namespace stemd::test {

// stemd run without --config reads ~/.config/stemd/stemd.conf or /etc/stemd/stemd.conf if they
// exist: never in a test (also set by ctest; the tests of the search unset it for their run).
inline const bool kNoConfigSearch = setenv("STEMD_NO_CONFIG_SEARCH", "1", 0) == 0;

struct ProcessResult {
  int exit_code = -1;
  std::string output;
};

inline std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

inline ProcessResult run_process(const std::string& cmdline) {
  ProcessResult r;
  FILE* p = popen((cmdline + " 2>&1").c_str(), "r");
  if (!p) return r;
  std::array<char, 4096> buf{};
  while (std::fgets(buf.data(), buf.size(), p)) r.output += buf.data();
  const int st = pclose(p);
  r.exit_code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  return r;
}

// Any free OSC port, so tests running in parallel never collide on 57120.
inline ProcessResult run_stemd(const std::string& args) {
  return run_process(std::string(STEMD_BINARY) + " --osc-port 0 " + args);
}

class Child;
// Starts argv[0] (a path: no PATH search) with argv, stdout and stderr into `log_path` (created
// or truncated; not redirected when empty). `before_exec` runs in the child after the
// redirection, just before the exec (setrlimit, a signal disposition, another dup2): it must
// keep to async-signal-safe calls, and false from it ends the child with exit code 126. A failed
// exec ends it with 127.
Child spawn_logged(const std::vector<std::string>& argv, const std::string& log_path,
                   const std::function<bool()>& before_exec = {});

// A program started by spawn_logged, ended with it: SIGTERM, then SIGKILL after 5 s (scaled).
// Its exit is reaped by running() (wait_exit and stop poll it). Moved, not copied; assigning
// another ends the one held first.
class Child {
 public:
  Child() = default;
  Child(Child&& o) noexcept;
  Child& operator=(Child&& o) noexcept;
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;
  ~Child() { terminate(); }

  pid_t pid() const { return pid_; }  // kept once it has exited; -1 if none was started
  std::string output() const;         // what its log file holds now
  // False once it has exited (reaped here: exit_code() and wait_status() say how).
  bool running();
  // Its exit code, or 128 + the signal that killed it; -1 while it runs (or if none started).
  int exit_code() const { return status_; }
  // waitpid's status word (WIFEXITED…), once it has exited.
  int wait_status() const { return wait_status_; }
  // Waits up to `seconds` (× test_time_scale) for it to end by itself: exit_code(), or -1.
  int wait_exit(double seconds);
  // Sends `sig`, waits up to `seconds` (× test_time_scale) for the end, then SIGKILL: exit_code()
  // (128 + SIGKILL when killed). Nothing is sent to one that has already ended.
  int stop(int sig, double seconds);
  int terminate() { return stop(SIGTERM, 5.0); }

 private:
  friend Child spawn_logged(const std::vector<std::string>&, const std::string&, const std::function<bool()>&);
  std::string log_;
  pid_t pid_ = -1;
  bool exited_ = false;
  int status_ = -1;
  int wait_status_ = 0;
};

inline Child::Child(Child&& o) noexcept
    : log_(std::move(o.log_)),
      pid_(std::exchange(o.pid_, -1)),
      exited_(o.exited_),
      status_(o.status_),
      wait_status_(o.wait_status_) {}

inline Child& Child::operator=(Child&& o) noexcept {
  if (this != &o) {
    terminate();
    log_ = std::move(o.log_);
    pid_ = std::exchange(o.pid_, -1);
    exited_ = o.exited_;
    status_ = o.status_;
    wait_status_ = o.wait_status_;
  }
  return *this;
}

inline std::string Child::output() const {
  std::ifstream in(log_);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

inline bool Child::running() {
  if (pid_ <= 0 || exited_) return false;
  int st = 0;
  if (waitpid(pid_, &st, WNOHANG) == pid_) {
    exited_ = true;
    wait_status_ = st;
    status_ = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  }
  return !exited_;
}

inline int Child::wait_exit(double seconds) {
  wait_until([&] { return !running(); }, seconds);
  return exited_ ? status_ : -1;
}

inline int Child::stop(int sig, double seconds) {
  if (!running()) return status_;
  kill(pid_, sig);
  if (wait_exit(seconds) < 0) {
    kill(pid_, SIGKILL);
    int st = 0;
    waitpid(pid_, &st, 0);
    exited_ = true;
    wait_status_ = st;
    status_ = 128 + SIGKILL;
  }
  return status_;
}

inline Child spawn_logged(const std::vector<std::string>& argv, const std::string& log_path,
                          const std::function<bool()>& before_exec) {
  // Everything the child needs is made before the fork: after it, in a test process with other
  // threads, only async-signal-safe calls.
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  Child c;
  c.log_ = log_path;
  c.pid_ = fork();
  if (c.pid_ == 0) {
    if (!log_path.empty()) {
      const int fd = open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
      if (fd >= 0) {
        dup2(fd, 1);
        dup2(fd, 2);
      }
    }
    if (before_exec && !before_exec()) _exit(126);
    execv(args[0], args.data());
    _exit(127);
  }
  return c;
}

}  // namespace stemd::test
