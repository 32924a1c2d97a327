// The opener threads' guard against a file system that stops answering (control/stuck_opens.hpp):
// the walk that finds where a load's path leads (and where a call that does not return is), and
// the stuck opens keyed by that place, not by the path's text.
#include "control/stuck_opens.hpp"
#include "common/fixtures.hpp"

#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <sstream>
#include <fstream>
#include <string>

namespace stemd::control {
namespace {

namespace fs = std::filesystem;

struct Tree {
  test::TempDir tmp;
  std::string dir = fs::canonical(tmp.path()).string();  // the walk resolves every symlink
  Tree() {
    fs::create_directory(dir + "/real");
    std::ofstream(dir + "/real/x.wav") << "x";
    fs::create_directory_symlink("real", dir + "/rel");         // relative
    fs::create_directory_symlink(dir + "/real", dir + "/abs");  // absolute
    fs::create_symlink("../rel/x.wav", dir + "/real/up");       // through "..", then another link
  }
};

std::string walk(const std::string& path, const std::string& bound, OpenTrail& trail, bool& ok,
                 const std::function<std::string(const std::string&)>& refuse = {}) {
  std::string refusal;
  ok = walk_path(path, bound, trail, refuse, refusal);
  return refusal;
}

TEST(StuckOpens, AWalkEndsWhereThePathLeadsThroughSymlinks) {
  Tree t;
  bool ok = false;
  for (const std::string& p : {t.dir + "/abs/x.wav", t.dir + "/rel/x.wav", t.dir + "/real/up", t.dir + "/real/x.wav"}) {
    OpenTrail trail;
    walk(p, "", trail, ok);
    EXPECT_TRUE(ok) << p;
    EXPECT_EQ(trail.where(), t.dir + "/real/x.wav") << p;
  }
  OpenTrail missing;  // stops where the open will fail, and says where it was
  walk(t.dir + "/nope/x.wav", "", missing, ok);
  EXPECT_TRUE(ok);
  EXPECT_EQ(missing.where(), t.dir + "/nope");
}

TEST(StuckOpens, AWalkAsksTheGuardBeforeEachStepAndStaysInItsBound) {
  Tree t;
  bool ok = true;
  OpenTrail refused;
  const std::string why = walk(t.dir + "/abs/x.wav", "", refused, ok, [&](const std::string& at) {
    return at.rfind(t.dir + "/real", 0) == 0 ? std::string("busy: stuck") : std::string();
  });
  EXPECT_FALSE(ok);
  EXPECT_EQ(why, "busy: stuck");
  EXPECT_EQ(refused.where(), t.dir + "/real") << "the step refused is the first into the stuck place";
  OpenTrail bounded;  // under a media root at real/: the way out to abs/ is not looked at
  int steps_out = 0;
  walk(t.dir + "/real/../abs/x.wav", t.dir + "/real", bounded, ok, [&](const std::string& at) {
    steps_out += at.rfind(t.dir + "/abs", 0) == 0 ? 1 : 0;
    return std::string();
  });
  EXPECT_TRUE(ok);
  EXPECT_EQ(steps_out, 0) << "looked at a path outside the root";
}

// A listing walks each symlink among its entries from the listed folder (walked already), not
// from "/": the same end, the folder's ancestors not looked at again.
TEST(StuckOpens, AWalkFromAResolvedFolderBeginsBeneathIt) {
  Tree t;
  std::string refusal;
  std::vector<std::string> asked;
  OpenTrail trail;
  EXPECT_TRUE(walk_path(
      t.dir + "/real/up", "", trail,
      [&](const std::string& at) {
        asked.push_back(at);
        return std::string();
      },
      refusal, t.dir + "/real"));
  EXPECT_EQ(trail.where(), t.dir + "/real/x.wav");
  EXPECT_EQ(asked,
            (std::vector<std::string>{t.dir + "/real/up", t.dir + "/rel", t.dir + "/real", t.dir + "/real/x.wav"}))
      << "through '..' to rel, a symlink, and back";
}

TEST(StuckOpens, AnOpenIsStuckOnItsFileSystemUntilItsJobReturns) {
  Tree t;
  StuckOpens stuck;
  EXPECT_EQ(stuck.busy(t.dir + "/real/x.wav", "x.wav"), "");
  auto trail = std::make_shared<OpenTrail>();
  stuck.add(std::chrono::steady_clock::now(), t.dir + "/real/x.wav", t.dir + "/real/x.wav", trail);
  EXPECT_EQ(stuck.size(), 1u);
  const std::string why = stuck.busy(t.dir + "/abs/other.wav", "other.wav");  // same disk, another file
  EXPECT_EQ(why.rfind("busy: the file system of other.wav (", 0), 0u) << why;
  EXPECT_NE(why.find("an open of " + t.dir + "/real/x.wav is stuck there"), std::string::npos) << why;
  trail->finish();
  EXPECT_EQ(stuck.busy(t.dir + "/abs/other.wav", "other.wav"), "");
  EXPECT_EQ(stuck.size(), 0u);
}

// A mount table given (mountinfo's format): a path's file system is the longest mount point it
// lies under by its text, the last of equal ones (a mount over a mount), escapes read.
TEST(StuckOpens, AGivenMountTableKeysPathsByTheirLongestMountPoint) {
  std::istringstream info(
      "21 1 8:1 / / rw - ext4 /dev/sda1 rw\n"
      "40 21 0:50 / /srv/media/nas rw - nfs4 host:/x rw\n"
      "41 21 0:51 / /srv/media/my\\040share rw - fuse.sshfs u@h: rw\n"
      "42 40 0:52 / /srv/media/nas rw - nfs4 host:/y rw\n");
  const MountTable t = MountTable::parse(info);
  EXPECT_EQ(t.of("/srv/media/local/a.wav").key, "dev:8:1");
  EXPECT_EQ(t.of("/srv/media/nas").key, "dev:0:52") << "the mount point itself, the upper of two mounts";
  EXPECT_EQ(t.of("/srv/media/nas/./a/../b").mount, "/srv/media/nas");
  EXPECT_EQ(t.of("/srv/media/nasty").key, "dev:8:1") << "a name that begins as a mount point's is not under it";
  EXPECT_EQ(t.of("/srv/media/my share/x").key, "dev:0:51");
  std::istringstream none("");
  EXPECT_EQ(MountTable::parse(none).of("/a//b/").key, "path:/a/b");
}

// The web file browser keys its lost listings as loads key their opens: by the file system the
// listing was stuck on (a table of its own here), so every folder of that share is refused, the
// local disk is not, and a view answers for many paths (a listing's entries) from one table.
TEST(StuckOpens, AStuckShareRefusesEveryFolderOfItAndNoOther) {
  std::string table =
      "21 1 8:1 / / rw\n"
      "40 21 0:99 / /media/share rw\n";
  int reads = 0;
  StuckOpens stuck([&] {
    ++reads;
    std::istringstream in(table);
    return MountTable::parse(in);
  });
  EXPECT_TRUE(stuck.view().empty());
  EXPECT_EQ(reads, 0) << "the mount table read with nothing stuck";
  auto trail = std::make_shared<OpenTrail>("/media/share/a");
  const auto since = std::chrono::steady_clock::now();
  EXPECT_EQ(stuck.add(since, trail->where(), "'/share/a'", trail).mount, "/media/share");
  for (const char* folder : {"/media/share/b", "/media/share/c/d", "/media/share"}) {
    const std::optional<Stuck> s = stuck.find(folder);
    ASSERT_TRUE(s.has_value()) << folder;
    EXPECT_EQ(s->path, "'/share/a'");
    EXPECT_EQ(s->mount, "/media/share");
    EXPECT_EQ(s->since, since);
  }
  EXPECT_FALSE(stuck.find("/media/local").has_value());
  EXPECT_FALSE(stuck.find("/media").has_value()) << "the folder holding the mount point is on the local disk";
  reads = 0;
  const StuckOpens::View v = stuck.view();
  EXPECT_TRUE(v.find("/media/share").has_value());
  EXPECT_FALSE(v.find("/media/x").has_value());
  EXPECT_EQ(reads, 1);
  trail->finish();  // the listing returned: the share answers again
  EXPECT_FALSE(v.find("/media/share").has_value()) << "a view still counted a returned listing";
  EXPECT_FALSE(stuck.find("/media/share/b").has_value());
}

}  // namespace
}  // namespace stemd::control
