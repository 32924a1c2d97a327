// The hand-over file (outside pass 29, attack L1). Without RuntimeDirectory= (the user unit, a
// run by hand) it was /tmp/stemd-resume-PID.state, a name any local user could plant first: a
// directory there made the daemon exit at the next device loss, and (as root) a planted 0666 file
// kept its mode and was rewritten by its owner before the new image read it. Now the file is in a
// directory of its own that mkdtemp() made (0700), written 0600, and the new image reads only a
// file there that is ours and that nobody else may write.
#include "app/daemon_run.hpp"
#include "app/safe_file.hpp"
#include "common/fixtures.hpp"

#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace stemd::test {
namespace {

// The hand-over's parent directory is a fresh test directory ($TMPDIR, no $RUNTIME_DIRECTORY),
// given back as it was at the end.
struct HandoffDir {
  HandoffDir() {
    if (const char* v = std::getenv("TMPDIR")) had_tmpdir = v;
    if (const char* v = std::getenv("RUNTIME_DIRECTORY")) had_runtime = v;
    setenv("TMPDIR", dir.path().c_str(), 1);
    unsetenv("RUNTIME_DIRECTORY");
  }
  ~HandoffDir() {
    if (had_tmpdir.empty())
      unsetenv("TMPDIR");
    else
      setenv("TMPDIR", had_tmpdir.c_str(), 1);
    if (!had_runtime.empty()) setenv("RUNTIME_DIRECTORY", had_runtime.c_str(), 1);
    unsetenv("STEMD_RESUME_STATE");
  }
  // The name the hand-over file had before: predictable, so another user could take it first.
  std::string old_name() const { return dir.path() + "/stemd-resume-" + std::to_string(getpid()) + ".state"; }
  // Writes the hand-over file as the hand-over does, and reads it back as the new image does.
  bool write(const std::string& path) {
    std::string e;
    const bool ok = app::write_file_atomic(path, "stemd-state 1\nend\n", e, app::AtomicWrite{.mode = 0600});
    EXPECT_TRUE(ok) << e;
    return ok;
  }
  app::Resume take(const std::string& path) {
    setenv("STEMD_RESUME_STATE", path.c_str(), 1);
    return app::take_resume_env();
  }
  TempDir dir;
  std::string had_tmpdir, had_runtime;
};

unsigned mode_of(const std::string& path) {
  struct stat st {};
  return stat(path.c_str(), &st) == 0 ? st.st_mode & 0777 : 0;
}

TEST(HandoffFile, ADirectoryPlantedAtItsNameDoesNotStopTheHandOver) {
  HandoffDir h;
  ASSERT_EQ(mkdir(h.old_name().c_str(), 0777), 0);
  const std::string path = app::handoff_path();
  ASSERT_FALSE(path.empty());
  EXPECT_NE(path, h.old_name());
  ASSERT_TRUE(h.write(path));
  const app::Resume r = h.take(path);
  EXPECT_TRUE(r.active) << (r.ignored.empty() ? "" : r.ignored.front());
}

TEST(HandoffFile, APlanted0666FileIsNotWrittenAndAFileOthersMayWriteIsNotRead) {
  HandoffDir h;
  {
    const int fd = open(h.old_name().c_str(), O_CREAT | O_WRONLY, 0666);
    ASSERT_GE(fd, 0);
    close(fd);
    ASSERT_EQ(chmod(h.old_name().c_str(), 0666), 0);
  }
  const std::string path = app::handoff_path();
  ASSERT_TRUE(h.write(path));
  EXPECT_EQ(mode_of(path), 0600u) << "never a planted file's mode";
  EXPECT_EQ(mode_of(h.old_name()), 0666u);
  ASSERT_EQ(chmod(path.c_str(), 0666), 0);  // as if it had been planted so
  app::Resume r = h.take(path);
  EXPECT_FALSE(r.active) << "a hand-over file others may write is not read";
  ASSERT_EQ(r.ignored.size(), 1u);
  EXPECT_NE(r.ignored.front().find("others may write"), std::string::npos) << r.ignored.front();
  EXPECT_EQ(mode_of(path), 0666u) << "neither read nor removed";
}

TEST(HandoffFile, ADirectoryOthersMayWriteInIsNotRead) {
  HandoffDir h;
  const std::string path = app::handoff_path();
  ASSERT_TRUE(h.write(path));
  const std::string dir = path.substr(0, path.rfind('/'));
  EXPECT_EQ(mode_of(dir), 0700u);
  ASSERT_EQ(chmod(dir.c_str(), 0777), 0);
  const app::Resume r = h.take(path);
  EXPECT_FALSE(r.active);
  ASSERT_EQ(r.ignored.size(), 1u);
  EXPECT_NE(r.ignored.front().find("others may use it"), std::string::npos) << r.ignored.front();
  ASSERT_EQ(chmod(dir.c_str(), 0700), 0);
  EXPECT_TRUE(h.take(path).active) << "closed again: taken";
}

TEST(HandoffFile, AFileOfAnotherUserIsNotRead) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to give a file to another uid";
  HandoffDir h;
  const std::string path = app::handoff_path();
  ASSERT_TRUE(h.write(path));
  ASSERT_EQ(chown(path.c_str(), 65534, 65534), 0);
  const app::Resume r = h.take(path);
  EXPECT_FALSE(r.active);
  ASSERT_EQ(r.ignored.size(), 1u);
  EXPECT_NE(r.ignored.front().find("uid 65534"), std::string::npos) << r.ignored.front();
}

TEST(HandoffFile, RemovedWithItsDirectory) {
  HandoffDir h;
  const std::string path = app::handoff_path();
  ASSERT_TRUE(h.write(path));
  const std::string dir = path.substr(0, path.rfind('/'));
  app::remove_handoff(path);
  EXPECT_NE(access(dir.c_str(), F_OK), 0);
  EXPECT_NE(app::handoff_path(), path) << "made again, fresh";
}

// Tests here and elsewhere (glitch_carry_test, state_io_test…) make this process's hand-over
// directory under /tmp: removed at the end.
struct RemoveHandoffAtEnd : ::testing::Environment {
  void TearDown() override { app::remove_handoff(app::handoff_path()); }
};
[[maybe_unused]] const ::testing::Environment* const kRemoveHandoff =
    ::testing::AddGlobalTestEnvironment(new RemoveHandoffAtEnd);

}  // namespace
}  // namespace stemd::test
