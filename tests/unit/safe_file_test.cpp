// The one atomic writer (app/safe_file.hpp), used by the state file, the device hand-over and
// `stemd tune --write-config`: its symlink rule (replace the link unless follow_symlink) and its
// permissions rule (a new file gets `mode`, an existing one keeps its own).
#include "app/safe_file.hpp"
#include "common/engine_driver.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include <fcntl.h>
#include <sys/stat.h>

#include <ctime>
#include <vector>

namespace stemd::app {
namespace {

namespace fs = std::filesystem;

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

unsigned mode_of(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
  return st.st_mode & 07777;
}

TEST(AtomicWrite, ASymlinkIsReplacedByTheFileUnlessFollowed) {
  test::TempDir dir;
  const std::string target = dir.file("target"), link = dir.file("link");
  std::ofstream(target) << "target\n";
  fs::create_symlink(target, link);
  std::string err;
  ASSERT_TRUE(write_file_atomic(link, "new\n", err)) << err;  // default: follow_symlink = false
  EXPECT_FALSE(fs::is_symlink(link));
  EXPECT_EQ(slurp(link), "new\n");
  EXPECT_EQ(slurp(target), "target\n");  // what the link pointed at is untouched
}

TEST(AtomicWrite, AFollowedSymlinkKeepsTheLinkAndReplacesItsTarget) {
  test::TempDir dir;
  fs::create_directory(dir.file("real"));
  const std::string target = dir.file("real/conf"), link = dir.file("conf");
  std::ofstream(target) << "old\n";
  fs::create_symlink(target, link);
  std::string err;
  ASSERT_TRUE(write_file_atomic(link, "new\n", err, {.follow_symlink = true})) << err;
  EXPECT_TRUE(fs::is_symlink(link));
  EXPECT_EQ(slurp(target), "new\n");
  for (const auto& e : fs::directory_iterator(dir.file("real"))) {  // the temporary went where the target is
    EXPECT_EQ(e.path().filename(), "conf");
  }
}

TEST(AtomicWrite, AFollowedDanglingSymlinkIsReplacedByTheFile) {
  test::TempDir dir;
  const std::string link = dir.file("conf");
  fs::create_symlink(dir.file("nowhere/conf"), link);
  std::string err;
  ASSERT_TRUE(write_file_atomic(link, "new\n", err, {.follow_symlink = true})) << err;
  EXPECT_FALSE(fs::is_symlink(link));
  EXPECT_EQ(slurp(link), "new\n");
  EXPECT_FALSE(fs::exists(dir.file("nowhere")));
}

TEST(AtomicWrite, ANewFileGetsTheModeAndAnExistingOneKeepsItsOwn) {
  test::TempDir dir;
  const std::string path = dir.file("s");
  std::string err;
  ASSERT_TRUE(write_file_atomic(path, "a\n", err, {.mode = 0600})) << err;
  EXPECT_EQ(mode_of(path), 0600u);
  ASSERT_EQ(::chmod(path.c_str(), 0640), 0);
  ASSERT_TRUE(write_file_atomic(path, "b\n", err)) << err;
  EXPECT_EQ(mode_of(path), 0640u);
  const std::string fresh = dir.file("t");
  ASSERT_TRUE(write_file_atomic(fresh, "c\n", err)) << err;
  EXPECT_EQ(mode_of(fresh), 0644u);  // the default, whatever the umask
}

// A state-file helper killed between mkstemp and its rename (stuck on a file system that did not
// answer) left its ".state.tmp.XXXXXX" beside the state file, one more each time. The next
// successful write removes those of earlier writes — only that file's, only regular files named
// as mkstemp names them, only older than its own; without the option nothing is removed.
TEST(AtomicWrite, AWriteRemovesTheTemporariesEarlierWritesOfItsFileLeft) {
  test::TempDir dir;
  const std::string path = dir.file("state");
  const auto make = [&](const std::string& name, std::time_t age_s) {
    std::ofstream(dir.file(name)) << "half a state";
    const std::time_t when = std::time(nullptr) - age_s;  // the system's clock (file times)
    const timespec times[2] = {{when, 0}, {when, 0}};
    EXPECT_EQ(::utimensat(AT_FDCWD, dir.file(name).c_str(), times, 0), 0) << name;
  };
  const std::vector<std::string> stale = {".state.tmp.a1B2c3", ".state.tmp.XyZ789"};
  const std::vector<std::string> kept = {
      ".state.tmp.a1B2c",    // not mkstemp's six
      ".state.tmp.a1B2c3d",  // nor seven
      ".state.tmp.a1-2c3",   // not its letters
      ".other.tmp.a1B2c3",   // another file's
      "state.tmp.a1B2c3",    // not hidden: not this writer's name
      ".state.tmp.N3w3r1",   // written after this write's own (another writer's, under way)
  };
  for (const std::string& n : stale) make(n, 3600);
  for (const std::string& n : kept) make(n, n == ".state.tmp.N3w3r1" ? -3600 : 3600);
  fs::create_directory(dir.file(".state.tmp.d1r3ct"));  // a directory so named: not a temporary
  std::string err;
  ASSERT_TRUE(write_file_atomic(path, "one\n", err)) << err;  // without the option: all stay
  for (const std::string& n : stale) EXPECT_TRUE(fs::exists(dir.file(n))) << n;
  ASSERT_TRUE(write_file_atomic(path, "two\n", err, {.remove_stale_temporaries = true})) << err;
  EXPECT_EQ(slurp(path), "two\n");
  for (const std::string& n : stale) EXPECT_FALSE(fs::exists(dir.file(n))) << n << " was left";
  for (const std::string& n : kept) EXPECT_TRUE(fs::exists(dir.file(n))) << n << " was removed";
  EXPECT_TRUE(fs::is_directory(dir.file(".state.tmp.d1r3ct")));
  std::size_t files = 0;
  for (const auto& e : fs::directory_iterator(dir.path())) files += e.is_regular_file() ? 1 : 0;
  EXPECT_EQ(files, kept.size() + 1) << "its own temporary is renamed, not left";
}

}  // namespace
}  // namespace stemd::app
