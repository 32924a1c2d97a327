// AbortReexec (src/app/abort_reexec.hpp): while armed, an abort() — PortAudio's assert when the
// JACK server goes away inside stemd's open (loss29) — execs a fresh image of the process with the
// prepared environment instead of ending it, from any thread; disarmed, an abort ends the process
// as it always did. The fresh image here is this test binary again, run with a filter that picks
// AbortReexecImage.*, which says by its exit code whether the environment reached it.
#include "app/abort_reexec.hpp"
#include "common/sanitized.hpp"

#include <gtest/gtest.h>

#include <csignal>
#include <cstdlib>
#include <string>
#include <thread>

#include <sys/wait.h>
#include <unistd.h>

namespace stemd::test {
namespace {

constexpr const char* kVar = "STEMD_ABORT_REEXEC_TEST";

// The image exec'd by the tests below (skipped in a normal run of the suite).
TEST(AbortReexecImage, SaysTheArmedEnvironmentReachedIt) {
  const char* v = std::getenv(kVar);
  if (v == nullptr) GTEST_SKIP() << "run by AbortReexec.* only";
  std::_Exit(std::string(v) == "reached" ? 42 : 43);
}

// A child that arms (or arms and disarms) and then aborts, on its own thread or another; its wait
// status.
int abort_in_child(bool armed, bool other_thread) {
  const pid_t pid = fork();
  if (pid == 0) {
    static char a0[] = "stemd_unit_tests";
    static char a1[] = "--gtest_filter=AbortReexecImage.*";
    static char* argv[] = {a0, a1, nullptr};
    {
      app::AbortReexec rescue(argv, {std::string(kVar) + "=reached"}, std::string());
      if (armed) {
        if (other_thread) {
          std::thread t([] { std::abort(); });
          t.join();
        }
        std::abort();
      }
    }
    std::abort();  // disarmed: the default action
  }
  int status = 0;
  waitpid(pid, &status, 0);
  return status;
}

TEST(AbortReexec, AnAbortWhileArmedExecsAFreshImageWithTheEnvironment) {
  if (kSanitized) GTEST_SKIP() << "fork and exec of a sanitized, threaded test binary";
  const int st = abort_in_child(true, false);
  ASSERT_TRUE(WIFEXITED(st)) << "ended by signal " << (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
  EXPECT_EQ(WEXITSTATUS(st), 42);
}

TEST(AbortReexec, AnAbortOnAnotherThreadExecsAFreshImageToo) {
  if (kSanitized) GTEST_SKIP() << "fork and exec of a sanitized, threaded test binary";
  const int st = abort_in_child(true, true);
  ASSERT_TRUE(WIFEXITED(st)) << "ended by signal " << (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
  EXPECT_EQ(WEXITSTATUS(st), 42);
}

TEST(AbortReexec, OnceDisarmedAnAbortEndsTheProcess) {
  if (kSanitized) GTEST_SKIP() << "fork and exec of a sanitized, threaded test binary";
  const int st = abort_in_child(false, false);
  ASSERT_TRUE(WIFSIGNALED(st)) << "exited " << (WIFEXITED(st) ? WEXITSTATUS(st) : -1);
  EXPECT_EQ(WTERMSIG(st), SIGABRT);
}

}  // namespace
}  // namespace stemd::test
