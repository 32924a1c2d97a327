// Runs a command line, capturing stdout+stderr and the exit code (tests only).
#pragma once

#include <array>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <sys/wait.h>

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

}  // namespace stemd::test
