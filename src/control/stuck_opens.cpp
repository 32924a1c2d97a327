// Opens stuck in a file system, and the walk that finds where an open is (see stuck_opens.hpp).
#include "stuck_opens.hpp"

#include "file_system.hpp"

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <deque>

#include <sys/stat.h>
#include <unistd.h>

namespace stemd::control {

void OpenTrail::at(const std::string& path) {
  beat_.beat();
  std::lock_guard g(m_);
  at_ = path;
}

std::string OpenTrail::where() const {
  std::lock_guard g(m_);
  return at_;
}

FileSystemOf StuckOpens::add(std::chrono::steady_clock::time_point since, const std::string& where,
                             const std::string& path, std::shared_ptr<const OpenTrail> trail) {
  const FileSystemOf fs = mounts_().of(where);
  std::lock_guard g(m_);
  entries_.push_back(Entry{since, fs.key, fs.mount, path, std::move(trail)});
  return fs;
}

void StuckOpens::prune() {
  std::erase_if(entries_, [](const Entry& e) { return e.trail == nullptr || e.trail->finished(); });
}

std::size_t StuckOpens::size() {
  std::lock_guard g(m_);
  prune();
  return entries_.size();
}

StuckOpens::View StuckOpens::view() {
  View v;
  {
    std::lock_guard g(m_);
    prune();
    if (entries_.empty()) return v;  // the usual case: no mount table read
    v.entries_ = entries_;
  }
  v.mounts_ = mounts_();  // off the lock: it reads /proc
  return v;
}

std::optional<Stuck> StuckOpens::View::find(const std::string& where) const {
  if (entries_.empty()) return std::nullopt;
  const FileSystemOf fs = mounts_.of(where);
  const Entry* first = nullptr;  // the longest stuck there
  for (const Entry& e : entries_) {
    if (e.fs == fs.key && !e.trail->finished() && (first == nullptr || e.since < first->since)) first = &e;
  }
  if (first == nullptr) return std::nullopt;
  return Stuck{first->since, first->mount, first->path};
}

std::optional<Stuck> StuckOpens::find(const std::string& where) { return view().find(where); }

std::string StuckOpens::busy(const std::string& where, const std::string& shown) {
  const std::optional<Stuck> first = find(where);
  if (!first) return {};
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - first->since).count();
  char secs[32];
  std::snprintf(secs, sizeof secs, "%.0f", s);
  const std::string mount = first->mount.empty() ? first->path : first->mount;
  return "busy: the file system of " + shown + " (" + mount + ") has not answered for " + secs + " s: an open of " +
         first->path +
         " is stuck there past --load-timeout; opens from it are refused until it answers (other disks load as usual)";
}

namespace {

void push_front_components(std::deque<std::string>& todo, const std::string& path) {
  std::vector<std::string> parts;
  std::size_t i = 0;
  while (i <= path.size()) {
    const std::size_t j = std::min(path.find('/', i), path.size());
    if (j > i) parts.push_back(path.substr(i, j - i));
    i = j + 1;
  }
  for (auto it = parts.rbegin(); it != parts.rend(); ++it) todo.push_front(*it);
}

}  // namespace

bool walk_path(const std::string& path, const std::string& bound, OpenTrail& trail,
               const std::function<std::string(const std::string&)>& refuse, std::string& refusal,
               const std::string& resolved) {
  std::deque<std::string> todo;
  std::string done;  // resolved so far, free of symlinks ("" is "/")
  if (!resolved.empty() && resolved != "/" && within(path, resolved)) {
    done = resolved;
    push_front_components(todo, path.substr(resolved.size()));
  } else {
    push_front_components(todo, path);
  }
  int links = 0;
  while (!todo.empty()) {
    const std::string c = std::move(todo.front());
    todo.pop_front();
    if (c == ".") continue;
    if (c == "..") {  // `done` holds no symlink: its text's parent is its parent
      const std::size_t slash = done.rfind('/');
      done.resize(slash == std::string::npos ? 0 : slash);
      continue;
    }
    const std::string next = done + "/" + c;
    if (!bound.empty() && !within(next, bound) && !within(bound, next)) return true;  // the open refuses it
    trail.at(next);
    if (refuse) {
      if (std::string why = refuse(next); !why.empty()) {
        refusal = std::move(why);
        return false;
      }
    }
    struct stat st {};
    if (::lstat(next.c_str(), &st) != 0) return true;  // missing, not searchable…: the open says why
    if (S_ISLNK(st.st_mode)) {
      char buf[PATH_MAX];
      const ssize_t n = ::readlink(next.c_str(), buf, sizeof buf);
      if (n <= 0 || n >= static_cast<ssize_t>(sizeof buf) || ++links > 40) return true;  // the open's ELOOP
      const std::string target(buf, static_cast<std::size_t>(n));
      if (target[0] == '/') done.clear();
      push_front_components(todo, target);
      continue;
    }
    done = next;
    if (!S_ISDIR(st.st_mode) && !todo.empty()) return true;  // ENOTDIR: the open says so
  }
  trail.at(done.empty() ? "/" : done);
  return true;
}

}  // namespace stemd::control
