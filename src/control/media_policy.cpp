// Which files OSC clients may load (see media_policy.hpp).
#include "media_policy.hpp"

#include "base/log_guard.hpp"
#include "media_policy_detail.hpp"

#include <spdlog/spdlog.h>

#include <dirent.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <filesystem>
#include <mutex>
#include <queue>
#include <fcntl.h>
#include <thread>
#include <vector>

namespace stemd::control {

namespace {
constexpr int kOpenFlags = O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY;
constexpr int kMaxSymlinks = 40;  // as the kernel's own limit (ELOOP)

std::atomic<bool> g_force_walk{false};

// A mount whose server is gone (sshfs whose ssh died, NFS after a restart of the server): the
// same as a root not mounted yet — at start, too.
bool gone_server(int e) { return e == ENOTCONN || e == EIO || e == ESTALE || e == EHOSTDOWN; }
std::atomic<bool> g_no_openat2{false};  // the kernel said ENOSYS once: do not ask again

bool canonical(const std::string& p, std::string& out, std::string& error) {
  char buf[PATH_MAX];
  if (!realpath(p.c_str(), buf)) {
    error = std::strerror(errno);
    return false;
  }
  out = buf;
  return true;
}

std::vector<std::string> split(const std::string& p) {
  std::vector<std::string> out;
  std::size_t i = 0;
  while (i <= p.size()) {
    const std::size_t j = std::min(p.find('/', i), p.size());
    if (j > i) out.push_back(p.substr(i, j - i));
    i = j + 1;
  }
  return out;
}

// Does "..", taken lexically, climb above the start? (Refused before anything is looked up, so
// the answer does not depend on what exists.)
bool climbs_out(const std::string& rel) {
  int depth = 0;
  for (const std::string& c : split(rel)) {
    if (c == ".") continue;
    if (c == "..") {
      if (--depth < 0) return true;
    } else {
      ++depth;
    }
  }
  return false;
}

// Is absolute path `p` the directory `root` or under it? Then `rel` is the rest.
bool beneath(const std::string& p, const std::string& root, std::string& rel) {
  if (root == "/") {
    const std::size_t i = p.find_first_not_of('/');
    rel = i == std::string::npos ? std::string() : p.substr(i);
    return true;
  }
  if (p != root && p.compare(0, root.size() + 1, root + "/") != 0) return false;
  rel = p.substr(std::min(p.size(), root.size() + 1));
  return true;
}

std::string fd_path(int fd, const std::string& fallback) {
  char link[64], buf[PATH_MAX];
  std::snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  const ssize_t n = readlink(link, buf, sizeof buf - 1);
  if (n <= 0) return fallback;
  return std::string(buf, static_cast<std::size_t>(n));
}

// The fallback for kernels without openat2: a per-component walk from `root`, each step an
// openat(O_NOFOLLOW) relative to the directory descriptor of the step before. Symlinks are
// read (readlinkat) and their relative targets walked the same way; nothing climbs above the
// root and absolute targets are refused (EXDEV), as RESOLVE_BENEATH does.
int walk_beneath(int root, const std::string& root_path, const std::string& rel, int flags) {
  std::vector<int> dirs;  // dirs[0] is the root (not ours to close)
  dirs.push_back(root);
  auto close_all = [&dirs] {
    for (std::size_t i = 1; i < dirs.size(); ++i) ::close(dirs[i]);
  };
  std::deque<std::string> todo;
  for (auto& c : split(rel)) todo.push_back(std::move(c));
  int links = 0;
  int result = -1;
  int err = 0;
  while (true) {
    if (todo.empty()) {  // the path named a directory ("." or "x/.."): open it so fstat says so
      result = openat(dirs.back(), ".", flags);
      err = errno;
      break;
    }
    const std::string c = todo.front();
    todo.pop_front();
    if (c == ".") continue;
    if (c == "..") {
      if (dirs.size() == 1) {
        err = EXDEV;
        break;
      }
      ::close(dirs.back());
      dirs.pop_back();
      continue;
    }
    const bool last = todo.empty();
    std::string target;
    if (last) {
      const int fd = openat(dirs.back(), c.c_str(), flags | O_NOFOLLOW);
      struct stat st {};
      if (fd >= 0 && ((flags & O_PATH) == 0 || fstat(fd, &st) != 0 || !S_ISLNK(st.st_mode))) {
        result = fd;
        break;
      }
      char buf[PATH_MAX];
      ssize_t n = -1;
      if (fd >= 0) {  // O_PATH | O_NOFOLLOW opened the symlink itself: read it and go on
        n = readlinkat(fd, "", buf, sizeof buf - 1);
        err = errno;
        ::close(fd);
        if (n < 0) break;
      } else {
        err = errno;  // a symlink: ELOOP (O_NOFOLLOW), or ENOTDIR when O_DIRECTORY was asked
        if (err != ELOOP && err != ENOTDIR) break;
        n = readlinkat(dirs.back(), c.c_str(), buf, sizeof buf - 1);
        if (n < 0) break;  // not a symlink: the open's own error
      }
      target.assign(buf, static_cast<std::size_t>(n));
    } else {
      const int fd = openat(dirs.back(), c.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC);
      if (fd < 0) {
        err = errno;
        break;
      }
      struct stat st {};
      if (fstat(fd, &st) != 0) {
        err = errno;
        ::close(fd);
        break;
      }
      if (S_ISDIR(st.st_mode)) {
        dirs.push_back(fd);
        continue;
      }
      if (!S_ISLNK(st.st_mode)) {
        ::close(fd);
        err = ENOTDIR;
        break;
      }
      char buf[PATH_MAX];
      const ssize_t n = readlinkat(fd, "", buf, sizeof buf - 1);  // the link this O_PATH descriptor is
      err = errno;
      ::close(fd);
      if (n < 0) break;
      target.assign(buf, static_cast<std::size_t>(n));
    }
    if (++links > kMaxSymlinks) {
      err = ELOOP;
      break;
    }
    if (target.empty()) {
      err = ENOENT;
      break;
    }
    if (target[0] == '/') {
      // An absolute symlink: followed only when it names a place under the root, and then
      // walked from the root's own descriptor like any other path (never reopened by name).
      if (root_path == "/" || target == root_path || target.compare(0, root_path.size() + 1, root_path + "/") == 0) {
        target = root_path == "/" ? target : target.substr(std::min(target.size(), root_path.size()));
        for (std::size_t i = 1; i < dirs.size(); ++i) ::close(dirs[i]);
        dirs.resize(1);
      } else {
        err = EXDEV;
        break;
      }
    }
    auto parts = split(target);
    for (auto it = parts.rbegin(); it != parts.rend(); ++it) todo.push_front(*it);
  }
  close_all();
  if (result < 0) errno = err;
  return result;
}

int open_beneath(int root, const std::string& root_path, const std::string& rel, int flags = kOpenFlags) {
  if (!g_force_walk.load(std::memory_order_relaxed) && !g_no_openat2.load(std::memory_order_relaxed)) {
    open_how how{};
    how.flags = static_cast<std::uint64_t>(flags);
    how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
    for (int attempt = 0; attempt < 16; ++attempt) {
      const long fd = syscall(SYS_openat2, root, rel.c_str(), &how, sizeof how);
      if (fd >= 0) return static_cast<int>(fd);
      // EAGAIN: a rename raced the walk (the kernel refuses to guess): try again.
      if (errno == EAGAIN || errno == EINTR) continue;
      // EXDEV: the kernel refuses every absolute symlink; one that points back under the root
      // is followed by the walk below, which refuses the rest.
      if (errno == EXDEV) return walk_beneath(root, root_path, rel, flags);
      if (errno != ENOSYS) return -1;
      g_no_openat2.store(true, std::memory_order_relaxed);
      break;
    }
    if (!g_no_openat2.load(std::memory_order_relaxed)) return -1;  // EAGAIN every time
  }
  return walk_beneath(root, root_path, rel, flags);
}
}  // namespace

void MediaPolicy::force_component_walk(bool on) noexcept { g_force_walk.store(on, std::memory_order_relaxed); }

bool MediaPolicy::open_root(RootFd& r, std::string& error, int* err) const {
  {
    std::lock_guard<std::mutex> lock(seen_->m);
    if (seen_->probing) {  // another look would block an opener thread as well
      const auto s = std::chrono::steady_clock::now() - seen_->probe_since;
      error = "--media-root " + root_ + ": its file system does not answer (looked up at start " +
              std::to_string(std::chrono::duration_cast<std::chrono::seconds>(s).count()) +
              " s ago, no answer yet): loads are refused until it answers";
      if (err != nullptr) *err = ETIMEDOUT;
      return false;
    }
  }
  char buf[PATH_MAX];
  int e = 0;
  if (realpath(root_.c_str(), buf) == nullptr) {
    e = errno;
  } else if ((r.fd = ::open(buf, O_PATH | O_DIRECTORY | O_CLOEXEC)) < 0) {
    e = errno;
  } else {
    r.path = buf;
  }
  if (err != nullptr) *err = e;
  const std::string why = e == 0 ? std::string() : std::strerror(e);
  if (e != 0) {
    error = "--media-root " + root_ + ": " + why;
    if (e == ENOENT) error += " (not there: a disk or share not mounted yet? loads are refused until it is)";
    if (gone_server(e)) error += " (a share whose server is gone? loads are refused until it is back)";
  }
  int was = 0;
  {
    std::lock_guard<std::mutex> lock(seen_->m);
    was = seen_->state;
    seen_->state = e == 0 ? 1 : 0;
    seen_->why = why;
    if (e == 0) seen_->real = r.path;
  }
  if (was == 0 && e == 0) {
    spdlog::info("--media-root {}: there now{}: loads go ahead", base::log_escape(root_, 600),
                 r.path == root_ ? std::string() : " (" + base::log_escape(r.path, 600) + ")");
  } else if (was == 1 && e != 0) {
    spdlog::warn("--media-root {}: gone ({}): loads are refused until it is back", base::log_escape(root_, 600), why);
  }
  return e == 0;
}

bool MediaPolicy::present(std::string* why) const {
  if (root_.empty() || !seen_) return true;
  std::lock_guard<std::mutex> lock(seen_->m);
  if (why != nullptr) *why = seen_->why;
  return seen_->state != 0;
}

bool MediaPolicy::configure(const std::string& root, bool loopback_only, std::string& error, const StartWait* start) {
  loopback_only_ = loopback_only;
  root_.clear();
  seen_ = std::make_shared<Seen>();
  if (root.empty()) return true;
  std::error_code ec;
  std::string a = std::filesystem::absolute(root, ec).lexically_normal().string();
  if (ec) {
    error = "--media-root " + root + ": " + ec.message();
    return false;
  }
  while (a.size() > 1 && a.back() == '/') a.pop_back();
  root_ = a;
  int err = 0;
  std::string e;
  if (start == nullptr) {
    RootFd r;
    if (open_root(r, e, &err)) return true;
  } else if (!look_at_start(*start, e, err)) {
    error = "stopped";
    root_.clear();
    return false;
  }
  if (err == 0 || err == ETIMEDOUT || err == ENOENT || gone_server(err)) return true;  // loads wait for it
  error = e;
  root_.clear();
  return false;
}

namespace {

// Without a media root a relative path resolves against the daemon's working directory — "/"
// under systemd, rarely what a client meant. Its error names that directory.
std::string relative_note(const std::string& requested) {
  if (requested.empty() || requested[0] == '/') return {};
  char cwd[PATH_MAX];
  const std::string dir = ::getcwd(cwd, sizeof cwd) != nullptr ? std::string(cwd) : std::string("(unknown)");
  return " (a relative path: resolved against stemd's working directory " + dir +
         "; send an absolute path, or start stemd with --media-root DIR to resolve relative paths against DIR)";
}

}  // namespace

int MediaPolicy::open(const std::string& requested, std::string& opened, std::string& error) const {
  if (requested.empty()) {
    error = "empty path";
    return -1;
  }
  if (requested.find('\0') != std::string::npos) {
    error = "path contains a NUL byte";
    return -1;
  }
  if (root_.empty()) {
    if (!loopback_only_) {
      error =
          "loading files is disabled: stemd is reachable from the network (OSC or the web monitor) and no --media-root "
          "is set";
      return -1;
    }
    const int fd = ::open(requested.c_str(), kOpenFlags);
    if (fd < 0) {
      error = requested + ": " + std::strerror(errno) + relative_note(requested);
      return -1;
    }
    opened = fd_path(fd, requested);
    return fd;
  }
  const std::string outside = requested + ": outside the media root " + root_;
  RootFd r;
  if (!open_root(r, error)) return -1;
  std::string rel;
  if (requested[0] == '/') {
    if (!beneath(requested, root_, rel) && !beneath(requested, r.path, rel)) {
      error = outside;  // the same answer whether it exists or not
      return -1;
    }
  } else {
    rel = requested;
  }
  if (climbs_out(rel)) {
    error = outside;
    return -1;
  }
  if (rel.empty()) rel = ".";
  const int fd = open_beneath(r.fd, r.path, rel);
  if (fd < 0) {
    const int e = errno;
    error = e == EXDEV ? outside : requested + ": " + std::strerror(e);
    // A relative path's missing file: say against what it was resolved (a shell's relative path
    // sent as is resolves against the root, not the sender's directory).
    if (e == ENOENT && requested[0] != '/') {
      error += " (relative to the media root " + root_ +
               "; send a path relative to it, or an absolute one under it: stemctl load -a resolves against your "
               "shell's directory)";
    }
    return -1;
  }
  opened = fd_path(fd, r.path + "/" + rel);
  return fd;
}

bool MediaPolicy::resolve(const std::string& requested, std::string& resolved, std::string& error) const {
  if (requested.empty()) {
    error = "empty path";
    return false;
  }
  if (requested.find('\0') != std::string::npos) {
    error = "path contains a NUL byte";
    return false;
  }
  if (root_.empty()) {
    if (!loopback_only_) {
      error =
          "loading files is disabled: stemd is reachable from the network (OSC or the web monitor) and no --media-root "
          "is set";
      return false;
    }
    if (!canonical(requested, resolved, error)) {
      error = requested + ": " + error + relative_note(requested);
      return false;
    }
    return true;
  }
  RootFd r;
  if (!open_root(r, error)) return false;
  const std::string joined = requested[0] == '/' ? requested : r.path + "/" + requested;
  if (!canonical(joined, resolved, error)) {
    error = requested + ": " + error;
    return false;
  }
  std::string rel;
  if (!beneath(resolved, r.path, rel)) {
    error = requested + ": outside the media root " + root_;
    return false;
  }
  return true;
}

namespace {

MediaListing list_error(MediaListing out, MediaListing::Error e, std::string reason) {
  out.error = e;
  out.reason = std::move(reason);
  return out;
}

// What a symlink in a listed directory leads to, resolved beneath the root and never opened
// (O_PATH): false when it leads out, nowhere, or to something that is neither file nor directory.
bool link_target(int root, const std::string& root_path, const std::string& rel, struct stat& st) {
  const int fd = open_beneath(root, root_path, rel, O_PATH | O_CLOEXEC);
  if (fd < 0) return false;
  const bool ok = fstat(fd, &st) == 0 && (S_ISDIR(st.st_mode) || S_ISREG(st.st_mode));
  ::close(fd);
  return ok;
}

}  // namespace

MediaListing MediaPolicy::list(const std::string& dir, std::size_t cap, std::size_t max_scanned,
                               const ListWatch* watch) const {
  using E = MediaListing::Error;
  MediaListing out;
  if (root_.empty())
    return list_error(out, E::kNoRoot, "no --media-root: start stemd with --media-root DIR to list files");
  if (dir.find('\0') != std::string::npos) return list_error(out, E::kBadPath, "the path contains a NUL byte");
  if (!dir.empty() && dir[0] == '/') {
    return list_error(out, E::kBadPath, dir + ": an absolute path; give one relative to the media root");
  }
  if (climbs_out(dir)) return list_error(out, E::kOutside, dir + ": outside the media root");
  std::string rel;
  for (const std::string& c : split(dir)) {
    // A listing names its folder: "sub/.." listed the root under the name "sub/..", its parent
    // "sub" (the page's up link went down). Lexically "sub/.." is not always the root either (a
    // symlinked sub): refused, not rewritten.
    if (c == "..") {
      return list_error(out, E::kBadPath, dir + ": '..' in a folder's path: name the folder itself");
    }
    if (c != ".") rel += (rel.empty() ? "" : "/") + c;
  }
  RootFd r;
  if (std::string e; !open_root(r, e)) return list_error(out, E::kRootMissing, e);
  const int fd = open_beneath(r.fd, r.path, rel.empty() ? "." : rel, kOpenFlags | O_DIRECTORY);
  if (fd < 0) {
    const int e = errno;
    const std::string what = (rel.empty() ? "." : rel) + ": ";
    if (e == EXDEV) return list_error(out, E::kOutside, what + "outside the media root");
    if (e == ENOENT) return list_error(out, E::kNotFound, what + "no such directory");
    if (e == ENOTDIR) return list_error(out, E::kNotDir, what + "not a directory");
    if (e == EACCES || e == EPERM) return list_error(out, E::kDenied, what + std::strerror(e));
    return list_error(out, E::kOther, what + std::strerror(e));
  }
  // An entry's lstat, or for a symlink its target's (found beneath the root, not opened):
  // true for a directory or a regular file, or one the watch refused (e.unreachable, untouched).
  auto entry_stat = [&](DIR* dir, MediaEntry& e, struct stat& st) {
    if (watch != nullptr && watch->entry && !(e.unreachable = watch->entry(e.name)).empty()) return true;
    if (fstatat(dirfd(dir), e.name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) return false;
    if (S_ISLNK(st.st_mode)) {
      e.link = true;
      if (watch != nullptr && watch->link && !(e.unreachable = watch->link(e.name)).empty()) return true;
      return link_target(r.fd, r.path, e.path, st);
    }
    return S_ISDIR(st.st_mode) || S_ISREG(st.st_mode);
  };
  auto listable = [&](DIR* dir, const std::string& in, const std::string& name) {
    MediaEntry e{name, in.empty() ? name : in + "/" + name};
    struct stat st {};
    return entry_stat(dir, e, st);
  };
  DIR* d = fdopendir(fd);
  if (d == nullptr) {
    const int e = errno;
    ::close(fd);
    return list_error(out, E::kOther, rel + ": " + std::strerror(e));
  }
  out.dir = rel;
  // The `cap` smallest names (a max-heap on top of which sits the largest kept).
  std::priority_queue<std::string> keep;
  std::size_t scanned = 0;
  while (const dirent* de = readdir(d)) {
    const std::string name = de->d_name;
    if (name == "." || name == "..") continue;
    if (++scanned > max_scanned) {
      out.truncated = true;
      out.read_all = false;
      break;
    }
    // Known now whether it can be listed (d_type, or an lstat and a look beneath the root):
    // the cap counts only what is listed.
    if (de->d_type != DT_REG && de->d_type != DT_DIR && !listable(d, rel, name)) {
      ++out.skipped;
      continue;
    }
    if (keep.size() < cap) {
      keep.push(name);
    } else if (cap > 0 && name < keep.top()) {
      keep.pop();
      keep.push(name);
      out.truncated = true;
    } else {
      out.truncated = true;
    }
  }
  std::vector<std::string> names;
  names.reserve(keep.size());
  for (; !keep.empty(); keep.pop()) names.push_back(keep.top());
  std::reverse(names.begin(), names.end());
  for (const std::string& name : names) {
    struct stat st {};
    MediaEntry e{name, rel.empty() ? name : rel + "/" + name};
    if (!entry_stat(d, e, st)) continue;  // changed meanwhile
    e.dir = e.unreachable.empty() && S_ISDIR(st.st_mode);
    e.size = e.dir || !e.unreachable.empty() ? 0 : static_cast<std::uint64_t>(st.st_size);
    out.entries.push_back(std::move(e));
  }
  closedir(d);
  return out;
}

}  // namespace stemd::control
