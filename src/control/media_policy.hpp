// Which files OSC clients may load, and opening them [control] and the opener threads.
//
// With --media-root DIR, relative paths resolve against DIR and any path that leads outside it
// is refused. The check and the open are one step: open() resolves the path relative to a
// descriptor of the root held since start-up, with openat2(RESOLVE_BENEATH |
// RESOLVE_NO_MAGICLINKS) — the kernel refuses every step out of the root, whether by "..", an
// absolute symlink or a symlink swapped in while the path is walked — or, on kernels without
// openat2 (ENOSYS), by walking the path one component at a time with openat(O_NOFOLLOW) from
// that descriptor, resolving each symlink found inside the root by hand (relative targets only,
// never above the root). The opened descriptor is what libsndfile reads: nothing is reopened by
// name. Symlinks inside the root whose targets stay inside it are followed, component by
// component from the root's descriptor: relative ones by openat2 itself, absolute ones that name
// a place under the root by the walk (openat2 refuses every absolute symlink with EXDEV, and
// then the walk decides). A path or symlink that climbs above the root, even for a moment
// ("../root/x"), is refused.
// An absolute path outside the root, or a relative one whose ".." climb above it, is refused
// with the same reason whether or not it exists ("outside the media root").
//
// Without a media root, any readable path is allowed only while the OSC socket is bound to
// loopback: a daemon listening on the network without a media root would let anyone read any
// file the service user can. Every open is O_NONBLOCK and only regular files are accepted.
// The root is opened afresh for every open and listing (realpath, then an O_PATH descriptor
// held only while that one path is resolved), so stemd follows its media disk: a root missing at
// start (a USB disk or a share mounted late, a mount point still empty) is not an error — loads
// are refused, naming the root and errno, until it appears — and a disk mounted over the root,
// unmounted or swapped later is seen at the next load; holding no descriptor between loads also
// leaves the disk free to unmount. Its comings and goings are logged once each.
// A MediaPolicy is cheap to copy (the last-seen state is shared) and open() is thread-safe.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace stemd::control {

// One directory of the media root, as MediaPolicy::list() sees it.
struct MediaEntry {
  std::string name;
  std::string path;  // relative to the root: what /stemd/load takes
  bool dir = false;
  bool link = false;       // a symlink (to a place inside the root)
  std::uint64_t size = 0;  // bytes, files only
  // Why it was not looked at (ListWatch: its file system does not answer), or "". Then `dir`
  // and `size` are unknown (false, 0) and `link` is known only if its lstat was done.
  std::string unreachable{};
};
// What a listing asks on its thread before it looks at an entry of the listed folder (list()'s
// `watch`, the web file browser's guard against a dead share mounted or linked there): a reason
// not to, or "" to go on. Either function may be empty.
struct ListWatch {
  std::function<std::string(const std::string& name)> entry;  // before the entry is lstat'ed
  std::function<std::string(const std::string& name)> link;   // before a symlink there is followed
};
struct MediaListing {
  std::string dir;                  // relative to the root, "" for the root itself
  std::vector<MediaEntry> entries;  // sorted by name (bytes), at most the cap
  bool truncated = false;           // more entries than the cap (or than kMaxScanned were read)
  // False when the directory held more than kMaxScanned entries and only that many were read:
  // `entries` are then the first by name of those read, not of the whole directory.
  bool read_all = true;
  std::size_t skipped = 0;  // FIFOs, devices, sockets, symlinks leading out or dangling
  enum class Error {
    kNone,
    kNoRoot,
    kRootMissing,
    kBadPath,
    kOutside,
    kNotFound,
    kNotDir,
    kDenied,
    kOther
  } error = Error::kNone;
  std::string reason;  // when error != kNone
};

class MediaPolicy {
 public:
  MediaPolicy() = default;
  // How the start waits for the root's first look-up (configure): `wait(ms)` waits up to ms
  // milliseconds and returns false when a stop signal came (configure then fails, `error`
  // "stopped"); after `timeout_s` seconds (whose: steady clock) without an answer the root counts
  // as not there: loads are refused, saying its file system does not answer, until the look-up
  // (left running on a thread of its own) returns.
  struct StartWait {
    std::function<bool(int ms)> wait;
    double timeout_s = 10;
  };
  // `root` may be empty. False (with a reason) when the root is there but cannot be one (not a
  // directory, not searchable); true when it is missing (ENOENT) or on a mount whose server is
  // gone (ENOTCONN, EIO, ESTALE, EHOSTDOWN): present() then says so. With `start`, the look-up
  // runs on a thread of its own under its time-out (a share that does not answer must not hold
  // the start); without, on this thread.
  bool configure(const std::string& root, bool loopback_only, std::string& error, const StartWait* start = nullptr);
  // Was the root there at the last look (configure, or the last open or listing)? With a reason
  // (errno's words) when it was not. True without a root.
  bool present(std::string* why = nullptr) const;
  // Resolves a client's path to the canonical file to open, or refuses with a reason. By name
  // (realpath): for display only — loads use open().
  bool resolve(const std::string& requested, std::string& resolved, std::string& error) const;
  // Opens a client's path for reading under the policy, in one step (see above). Returns the
  // descriptor (O_RDONLY | O_NONBLOCK | O_CLOEXEC; the caller owns it) and the path it refers
  // to in `opened` (for logs and status), or -1 with a reason. Does not check the file type.
  int open(const std::string& requested, std::string& opened, std::string& error) const;
  // Where `requested` names, absolute and lexically normal, never looked at (a relative path
  // against the root's realpath when last seen, and a path under the root's name rewritten to
  // it): for file_system_of(), the opener threads' guard against a dead share.
  std::string where(const std::string& requested) const;
  // The root's real path when last seen ("" without a root, or not seen yet). Any thread.
  std::string real_root() const;
  // The root as configured, made absolute ("" = none). Absolute client paths may name files
  // under it or under where it leads now (its realpath at the time of the load).
  const std::string& root() const { return root_; }
  // False: the OSC socket or the web monitor is reachable from the network; with no root, loads are then refused.
  bool loopback_only() const { return loopback_only_; }
  // [any thread but audio] Lists directory `dir` (relative, "" = the root) of the media root:
  // directories and regular files, sorted by name, at most `cap` of them. The directory is
  // opened as open() opens files (one step, nothing out of the root; O_DIRECTORY, so a FIFO or
  // device named there is refused without being opened); its entries are only lstat'ed — a
  // symlink is resolved beneath the root without being opened (O_PATH) and listed with what it
  // leads to, or skipped when that is outside or missing. At most `max_scanned` entries are read
  // (a directory of millions costs no more than kMaxScanned); more: read_all is false. With a
  // `watch`, an entry it refuses is listed, marked unreachable, and not looked at.
  MediaListing list(const std::string& dir, std::size_t cap, std::size_t max_scanned = kMaxScanned,
                    const ListWatch* watch = nullptr) const;
  static constexpr std::size_t kMaxScanned = 100000;

  // Tests: use the component walk even where openat2 exists (the fallback for old kernels).
  static void force_component_walk(bool on) noexcept;

 private:
  struct Seen;
  class RootFd;
  // Opens the root now: false, with "--media-root ROOT: <errno's words> (…)", when it is not there.
  bool open_root(RootFd& r, std::string& error, int* err = nullptr) const;
  // configure()'s look-up under StartWait: false when stopped; `err` ETIMEDOUT when it did not answer.
  bool look_at_start(const StartWait& start, std::string& error, int& err) const;
  std::string root_;            // absolute, lexically normal, no trailing slash; empty = none
  std::shared_ptr<Seen> seen_;  // the last look's outcome, shared by copies (the log lines)
  bool loopback_only_ = true;
};

}  // namespace stemd::control
