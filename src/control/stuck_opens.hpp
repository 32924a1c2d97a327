// Opens stuck in a file system that stopped answering, keyed by where their paths really lead.
//
// The opener threads' guard (router_loads.cpp) keeps one entry per thread lost in an open past
// --load-timeout: while it is stuck, an open that would reach the same file system (its mount,
// file_system.hpp) answers busy at once instead of losing another thread. Where an open is stuck
// cannot be asked of the file system (a stat or realpath there blocks as the open does), and the
// path's text is not where it leads: a symlink on the local disk into a dead share marked the
// local disk stuck, and opens through it reached the share and lost a thread each. So a load's
// path is walked on its opener thread before the open, one component at a time as the kernel
// resolves it (each lstat'ed, each symlink read and followed), telling an OpenTrail each path
// before it is looked at: a call that does not return leaves the trail at the path it was
// looking at, and the control thread keys the entry by that path's mount (mountinfo: no call on
// the file system). Before each step the walk asks the guard: a path on a file system with a
// stuck open is not looked at, the load answers busy.
// The trail is also the job's progress beat (io/progress_beat.hpp): each path looked at, and each
// read of the file that returns, shows the file system answering; the control thread calls a job
// stuck only when its beat has not moved for --load-timeout (router_loads.cpp).
// The web file browser keeps its lost listings in a StuckOpens of its own, the same way (its
// listing threads walk the folder, and ask before each entry they look at: web_files.cpp).
// Threads: OpenTrail — at(), finish() and the beat's scope [opener], where(), finished() and
// progress() any. StuckOpens — add() [control; the web's network thread], busy(), find() and
// view() any (the control thread before it starts a job, the opener threads as they walk).
// walk_path() [opener].
#pragma once

#include "file_system.hpp"
#include "io/progress_beat.hpp"

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace stemd::control {

// Where one opener job is in the file systems: the path it is looking at, or last looked at; and
// when it last made progress there.
class OpenTrail {
 public:
  explicit OpenTrail(std::string start = {}) : at_(std::move(start)) {}
  void at(const std::string& path);              // the step before returned: progress
  std::string where() const;                     // "" before anything was set
  void finish() noexcept { done_.store(true); }  // its job has returned
  bool finished() const noexcept { return done_.load(); }
  io::ProgressBeat& progress() noexcept { return beat_; }
  const io::ProgressBeat& progress() const noexcept { return beat_; }

 private:
  mutable std::mutex m_;
  std::string at_;
  std::atomic<bool> done_{false};
  io::ProgressBeat beat_;
};

// The longest-stuck open on one file system.
struct Stuck {
  std::chrono::steady_clock::time_point since{};
  std::string mount;  // its mount point ("" when the mount table could not be read)
  std::string path;   // what was being opened (add()'s `path`)
};

class StuckOpens {
  struct Entry {
    std::chrono::steady_clock::time_point since{};
    std::string fs;     // FileSystemOf::key
    std::string mount;  // its mount point
    std::string path;   // what was being opened
    std::shared_ptr<const OpenTrail> trail;
  };

 public:
  // `mounts` reads the mount table (tests: a table of their own).
  explicit StuckOpens(std::function<MountTable()> mounts = &MountTable::read) : mounts_(std::move(mounts)) {}
  // An open of `path` that is stuck at `where` (absolute) since `since`, until `trail` finishes.
  // Returns the file system it is keyed by.
  FileSystemOf add(std::chrono::steady_clock::time_point since, const std::string& where, const std::string& path,
                   std::shared_ptr<const OpenTrail> trail);
  // The busy reason for an open of `shown` that would look at absolute `where` while an open on
  // the same file system is stuck, or "" (entries whose job has returned go first; with none the
  // mount table is not read).
  std::string busy(const std::string& where, const std::string& shown);
  // The longest-stuck entry on absolute `where`'s file system (as busy()), or none.
  std::optional<Stuck> find(const std::string& where);
  // The entries now, the mount table read once (not at all when there are none): for many
  // paths in a row (a listing's entries). An entry whose job returns meanwhile no longer counts.
  class View {
   public:
    bool empty() const { return entries_.empty(); }
    std::optional<Stuck> find(const std::string& where) const;

   private:
    friend class StuckOpens;
    MountTable mounts_;
    std::vector<Entry> entries_;
  };
  View view();
  std::size_t size();  // entries whose job has not returned

 private:
  void prune();  // under m_
  std::function<MountTable()> mounts_;
  std::mutex m_;
  std::vector<Entry> entries_;
};

// Walks absolute, lexically normal `path` as the kernel's look-up would (symlinks followed, at
// most 40), setting `trail` to each path before it is lstat'ed and asking `refuse(path)` first: a
// reason there stops the walk, false with `refusal` set. Stops early, true, where the open will
// answer for itself: a component missing or not a directory, a path outside `bound` (not empty:
// a media root's real path; the walk looks only at its ancestors and what lies beneath it). At
// the end the trail holds the path it leads to (no symlink left in it). `resolved` (not empty: a
// directory `path` lies under, free of symlinks and walked already — a listed folder, for its
// entries) is taken as it is: the walk begins beneath it.
bool walk_path(const std::string& path, const std::string& bound, OpenTrail& trail,
               const std::function<std::string(const std::string&)>& refuse, std::string& refusal,
               const std::string& resolved = {});

}  // namespace stemd::control
