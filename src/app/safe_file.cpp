// Reading and writing named files safely (see safe_file.hpp).
#include "safe_file.hpp"

#include <cctype>
#include <cerrno>
#include <climits>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <vector>

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace stemd::app {

namespace {

std::string kind_of(mode_t m) {
  if (S_ISFIFO(m)) return "a FIFO";
  if (S_ISDIR(m)) return "a directory";
  if (S_ISCHR(m)) return "a character device";
  if (S_ISBLK(m)) return "a block device";
  if (S_ISSOCK(m)) return "a socket";
  return "not a plain file";
}

// Removes the temporaries of earlier writes of `name` from the directory `dir` (see
// AtomicWrite::remove_stale_temporaries): last written before `before`. Best effort: what cannot
// be looked at or removed is left (the next write tries again).
void remove_stale_temporaries(const std::string& dir, const std::string& name, const timespec& before) {
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) return;
  DIR* d = ::fdopendir(dfd);
  if (d == nullptr) {
    ::close(dfd);
    return;
  }
  const std::string prefix = "." + name + ".tmp.";
  const auto mkstemp_letters = [](const char* s) {
    for (int i = 0; i < 6; ++i) {
      if (std::isalnum(static_cast<unsigned char>(s[i])) == 0) return false;
    }
    return s[6] == '\0';
  };
  std::vector<std::string> stale;  // removed once the listing is done
  while (const dirent* e = ::readdir(d)) {
    if (std::strncmp(e->d_name, prefix.c_str(), prefix.size()) != 0 || !mkstemp_letters(e->d_name + prefix.size()))
      continue;
    struct stat st {};
    if (::fstatat(dfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode)) continue;
    const bool older = st.st_mtim.tv_sec < before.tv_sec ||
                       (st.st_mtim.tv_sec == before.tv_sec && st.st_mtim.tv_nsec < before.tv_nsec);
    if (older) stale.emplace_back(e->d_name);
  }
  for (const std::string& n : stale) ::unlinkat(dfd, n.c_str(), 0);
  ::closedir(d);  // closes dfd
}

}  // namespace

std::string missing_directory(const std::string& path) {
  const std::filesystem::path dir = std::filesystem::path(path).parent_path();
  struct stat st {};
  if (dir.empty() || ::stat(dir.c_str(), &st) == 0) return {};
  return errno == ENOENT ? dir.string() : std::string();
}

ReadResult read_regular_file(const std::string& path, std::size_t max_bytes, std::string& out, std::string& error) {
  out.clear();
  // O_NONBLOCK: opening a FIFO for reading without a writer returns at once (and a device
  // does not wait for carrier); fstat then refuses both before any read.
  const int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) {
    const int e = errno;
    error = path + ": cannot read it: " + std::strerror(e);
    return e == ENOENT ? ReadResult::kMissing : ReadResult::kError;
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    error = path + ": cannot read it: " + std::strerror(errno);
    ::close(fd);
    return ReadResult::kError;
  }
  if (!S_ISREG(st.st_mode)) {
    error = path + ": not a regular file (" + kind_of(st.st_mode) + ")";
    ::close(fd);
    return ReadResult::kError;
  }
  if (static_cast<std::uint64_t>(st.st_size) > max_bytes) {
    error = path + ": " + std::to_string(st.st_size) + " bytes: too large (at most " + std::to_string(max_bytes) + ")";
    ::close(fd);
    return ReadResult::kError;
  }
  // A regular file: reads never block on O_NONBLOCK, and a file that grows meanwhile is read
  // up to the size checked (plus nothing).
  out.resize(static_cast<std::size_t>(st.st_size));
  std::size_t got = 0;
  while (got < out.size()) {
    const ssize_t n = ::read(fd, out.data() + got, out.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      error = path + ": cannot read it: " + std::strerror(errno);
      ::close(fd);
      out.clear();
      return ReadResult::kError;
    }
    if (n == 0) break;
    got += static_cast<std::size_t>(n);
  }
  ::close(fd);
  out.resize(got);
  return ReadResult::kOk;
}

bool regular_or_missing(const std::string& path, std::string& error) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return true;  // missing (or unreachable): the open says why
  if (S_ISREG(st.st_mode)) return true;
  error = path + ": not a regular file (" + kind_of(st.st_mode) + ")";
  return false;
}

bool write_file_atomic(const std::string& path, const std::string& text, std::string& error, const AtomicWrite& how) {
  namespace fs = std::filesystem;
  fs::path target = path;
  struct stat st {};
  bool exists = ::lstat(path.c_str(), &st) == 0;
  if (exists && S_ISLNK(st.st_mode) && how.follow_symlink) {
    std::error_code ec;
    const fs::path resolved = fs::canonical(target, ec);  // the link's final target, if it exists
    if (!ec) {
      target = resolved;
      exists = ::lstat(target.c_str(), &st) == 0;
    } else {
      exists = false;  // a dangling link is replaced by the file
    }
  }
  if (exists && !S_ISREG(st.st_mode) && !S_ISLNK(st.st_mode)) {
    error = "cannot write " + path + ": not a regular file (" + kind_of(st.st_mode) + "), left as it is";
    return false;
  }
  const unsigned mode = exists && S_ISREG(st.st_mode) ? (st.st_mode & 07777) : how.mode;
  fs::path dir = target.parent_path();
  if (dir.empty()) dir = ".";
  // mkstemp: a random name created with O_CREAT|O_EXCL (mode 0600), so a file or symlink
  // planted under a guessable name is never followed or truncated.
  std::string tmp = (dir / ("." + target.filename().string() + ".tmp.XXXXXX")).string();
  const int fd = ::mkstemp(tmp.data());
  if (fd < 0) {
    error = "cannot create a temporary file in " + dir.string() + " for " + path + ": " + std::strerror(errno);
    return false;
  }
  // The messages name PATH, not the temporary file's random name: a failure that repeats reads
  // the same each time (the state keeper logs it once until it changes).
  auto fail = [&](const std::string& what) {
    error = what + " " + path + " (its temporary file): " + std::strerror(errno);
    ::close(fd);
    ::unlink(tmp.c_str());
    return false;
  };
  if (::fchmod(fd, static_cast<mode_t>(mode)) != 0) return fail("cannot set the permissions of");
  std::size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return fail("cannot write");
    done += static_cast<std::size_t>(n);
  }
  if (::fsync(fd) != 0) return fail("cannot sync");
  struct stat written {};  // its modification time: older temporaries are earlier writes'
  if (how.remove_stale_temporaries && ::fstat(fd, &written) != 0) return fail("cannot look at");
  if (::close(fd) != 0) {
    error = "cannot close " + path + " (its temporary file): " + std::strerror(errno);
    ::unlink(tmp.c_str());
    return false;
  }
  if (::rename(tmp.c_str(), target.c_str()) != 0) {
    error = "cannot rename a temporary file over " + target.string() + ": " + std::strerror(errno);
    ::unlink(tmp.c_str());
    return false;
  }
  if (how.remove_stale_temporaries) remove_stale_temporaries(dir.string(), target.filename().string(), written.st_mtim);
  // The rename is durable only once the directory is: without this a power cut could bring
  // back the old file (or none) — nor the stale temporaries' removal.
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    const int rc = ::fsync(dfd);
    const int e = errno;
    ::close(dfd);
    if (rc != 0 && e != EINVAL && e != EROFS) {
      error = path + " written, but its directory could not be synced: " + std::strerror(e);
      return false;
    }
  }
  return true;
}

}  // namespace stemd::app
