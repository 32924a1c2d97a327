// Which file system a path lives on (see file_system.hpp).
#include "file_system.hpp"

#include <filesystem>
#include <fstream>
#include <sstream>

namespace stemd::control {

namespace {

// A mount point as mountinfo writes it: space, tab, newline and backslash escaped as \ooo.
std::string unescape(const std::string& s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size() && s[i + 1] >= '0' && s[i + 1] <= '7') {
      out += static_cast<char>((s[i + 1] - '0') * 64 + (s[i + 2] - '0') * 8 + (s[i + 3] - '0'));
      i += 3;
    } else {
      out += s[i];
    }
  }
  return out;
}

}  // namespace

bool within(const std::string& path, const std::string& dir) {
  if (dir == "/") return true;
  return path.compare(0, dir.size(), dir) == 0 && (path.size() == dir.size() || path[dir.size()] == '/');
}

std::string lexical_absolute(const std::string& requested, const std::string& base) {
  std::filesystem::path p(requested);
  if (p.is_relative()) {
    std::error_code ec;
    p = base.empty() ? std::filesystem::absolute(p, ec) : std::filesystem::path(base) / p;
  }
  std::string s = p.lexically_normal().string();
  while (s.size() > 1 && s.back() == '/') s.pop_back();
  return s;
}

MountTable MountTable::read() {
  std::ifstream in("/proc/self/mountinfo");
  return parse(in);
}

MountTable MountTable::parse(std::istream& in) {
  MountTable t;
  std::string line;
  while (std::getline(in, line)) {
    // ID PARENT MAJOR:MINOR ROOT MOUNTPOINT …
    std::istringstream f(line);
    std::string id, parent, dev, root, mount;
    if (!(f >> id >> parent >> dev >> root >> mount)) continue;
    t.mounts_.push_back(Mount{dev, unescape(mount)});
  }
  return t;
}

FileSystemOf MountTable::of(const std::string& path) const {
  const std::string p = lexical_absolute(path, "");
  FileSystemOf best{"path:" + p, ""};
  // The longest match wins; of equal ones the last (a mount over a mount hides the one below).
  for (const Mount& m : mounts_) {
    if (within(p, m.point) && m.point.size() >= best.mount.size()) best = FileSystemOf{"dev:" + m.dev, m.point};
  }
  return best;
}

FileSystemOf file_system_of(const std::string& path) { return MountTable::read().of(path); }

}  // namespace stemd::control
