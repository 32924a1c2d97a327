// The one atomic writer (app/safe_file.hpp), used by the state file, the device hand-over and
// `stemd tune --write-config`: its symlink rule (replace the link unless follow_symlink) and its
// permissions rule (a new file gets `mode`, an existing one keeps its own).
#include "app/safe_file.hpp"
#include "common/engine_driver.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include <sys/stat.h>

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

}  // namespace
}  // namespace stemd::app
