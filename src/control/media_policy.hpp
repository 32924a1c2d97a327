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
// A MediaPolicy is cheap to copy (the root descriptor is shared) and open() is thread-safe.
#pragma once

#include <memory>
#include <string>

namespace stemd::control {

class MediaPolicy {
 public:
  MediaPolicy() = default;
  // `root` may be empty. False (with a reason) when the root does not exist.
  bool configure(const std::string& root, bool loopback_only, std::string& error);
  // Resolves a client's path to the canonical file to open, or refuses with a reason. By name
  // (realpath): for display only — loads use open().
  bool resolve(const std::string& requested, std::string& resolved, std::string& error) const;
  // Opens a client's path for reading under the policy, in one step (see above). Returns the
  // descriptor (O_RDONLY | O_NONBLOCK | O_CLOEXEC; the caller owns it) and the path it refers
  // to in `opened` (for logs and status), or -1 with a reason. Does not check the file type.
  int open(const std::string& requested, std::string& opened, std::string& error) const;
  const std::string& root() const { return root_; }

  // Tests: use the component walk even where openat2 exists (the fallback for old kernels).
  static void force_component_walk(bool on) noexcept;

 private:
  struct RootDir;
  std::string root_;  // canonical, no trailing slash; empty = none
  std::shared_ptr<RootDir> root_dir_;
  bool loopback_only_ = true;
};

}  // namespace stemd::control
