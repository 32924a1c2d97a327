// The loader's watch on the streamed files (see loader_thread.hpp, "Files rewritten under a
// stream"): inotify watches through each stream's descriptor, and the events that make a stream
// check its file's header before it publishes its next read.
#include "loader_thread.hpp"

#include "loader_reader.hpp"
#include "base/log_guard.hpp"

#include <spdlog/spdlog.h>

#include <sys/inotify.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace stemd::io {

// [loader] Watches the file `r` streams for writes, through its open descriptor (the file it
// reads, whatever its path names now). One watch per inode, shared by the streams of that file.
// Without one, the stream checks its header at every read. The watch is asked for under the read
// guard: the jump through /proc/self/fd may revalidate the file on its server (NFS) and the
// permission check may ask a FUSE server — on a share that stopped answering the watchdog gives
// this thread up as for a read. False then: the caller returns at once, touching nothing.
bool LoaderThread::watch(Reader& r) {
  r.header_check = true;  // written between its open and now: unknown
  if (inotify_fd_ < 0 || r.file.fd() < 0) return true;
  char path[64];
  std::snprintf(path, sizeof path, "/proc/self/fd/%d", r.file.fd());
  int wd = -1, err = 0;
  if (!guarded(r, [&] {
        wd = inotify_add_watch(inotify_fd_, path, IN_MODIFY);
        err = errno;
      })) {
    return false;
  }
  if (wd < 0) {
    if (!watch_limit_logged_) {  // once: ENOSPC past fs.inotify.max_user_watches, or no /proc
      watch_limit_logged_ = true;
      spdlog::warn(
          "loader: cannot watch {} for writes ({}): streams without a watch read their file's header at "
          "every read (raise fs.inotify.max_user_watches if this says 'No space left on device')",
          base::log_escape(r.path), std::strerror(err));
    }
    return true;
  }
  r.watch = wd;
  ++watch_refs_[wd];
  return true;
}

void LoaderThread::unwatch(Reader& r) {
  if (r.watch < 0) return;
  auto it = watch_refs_.find(r.watch);
  if (it != watch_refs_.end() && --it->second == 0) {
    inotify_rm_watch(inotify_fd_, r.watch);
    watch_refs_.erase(it);
  }
  r.watch = -1;
}

// [loader] The files written to since the last call: their streams check their headers before
// they publish their next read. Nothing to read (EAGAIN) is the usual answer: one syscall.
void LoaderThread::read_watch_events() {
  if (inotify_fd_ < 0) return;
  alignas(inotify_event) char buf[4096];
  for (;;) {
    const ssize_t n = ::read(inotify_fd_, buf, sizeof buf);
    if (n <= 0) return;
    for (ssize_t at = 0; at + static_cast<ssize_t>(sizeof(inotify_event)) <= n;) {
      inotify_event e{};
      std::memcpy(&e, buf + at, sizeof e);
      at += static_cast<ssize_t>(sizeof(inotify_event) + e.len);
      const bool all = (e.mask & IN_Q_OVERFLOW) != 0;  // events were lost: every stream checks
      const bool gone = (e.mask & IN_IGNORED) != 0;    // the watch is no more (removed, or its file system)
      const int wd = e.wd;  // (clang: a struct with a flexible array member cannot be captured)
      auto mark = [&](Reader* r) {
        if (!all && r->watch != wd) return;
        r->header_check = true;
        if (gone && !all) r->watch = -1;  // unwatched from now on: it checks at every read
      };
      for (Reader* r : readers_) mark(r);
      {
        std::lock_guard lock(mutex_);  // streams whose read was given up: what it brings is not published
        for (Reader* r : orphans_) {
          if (all || r->watch == wd) r->orphan_written = true;
          mark(r);
        }
      }
      if (gone && !all) watch_refs_.erase(wd);
    }
  }
}

}  // namespace stemd::io
