// Which file system a path lives on, found without touching that file system [control].
//
// A share that stops answering (NFS whose server died, sshfs/FUSE, a hung USB bridge) blocks
// every call that reaches it — stat() and realpath() too — so the opener threads' guard against
// losing a thread per file on a dead share (router_loads.cpp) keys its record on the mount a path
// lies under, found from the path's text and the kernel's mount table (/proc/self/mountinfo),
// never by looking at the path itself. The path is made absolute and lexically normal first
// ("//x", "./x", "a/../x" are one path); symlinks are not followed here (they would reach the
// dead file system): the opener threads walk a load's path themselves and key by the path they
// reached (stuck_opens.hpp), so a symlink on another disk into a share is keyed by the share.
#pragma once

#include <istream>
#include <string>
#include <vector>

namespace stemd::control {

struct FileSystemOf {
  std::string key;    // "dev:MAJOR:MINOR" of the mount (bind mounts of one share share it), or "path:P"
  std::string mount;  // its mount point ("" when the mount table could not be read)
};

// The kernel's mount table as read once: many paths looked up against one read (a listing's
// entries), or a table given (tests).
class MountTable {
 public:
  static MountTable read();                          // /proc/self/mountinfo now (empty if unreadable)
  static MountTable parse(std::istream& mountinfo);  // its format: "ID PARENT MAJOR:MINOR ROOT POINT …"
  // `path` absolute (relative paths are made absolute against the working directory).
  FileSystemOf of(const std::string& path) const;

 private:
  struct Mount {
    std::string dev;    // MAJOR:MINOR
    std::string point;  // unescaped
  };
  std::vector<Mount> mounts_;  // in the table's order
};

// MountTable::read().of(path).
FileSystemOf file_system_of(const std::string& path);

// Is absolute `path` the directory `dir` or under it (by their text)?
bool within(const std::string& path, const std::string& dir);

// `requested` made absolute and lexically normal: against `base` when relative and `base` is not
// empty, else against the working directory. No trailing slash (but "/").
std::string lexical_absolute(const std::string& requested, const std::string& base);

}  // namespace stemd::control
