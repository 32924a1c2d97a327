// Which files OSC clients may load [control].
//
// With --media-root DIR, relative paths resolve against DIR and any path that resolves (after
// symlinks and "..") outside it is refused. Without a media root, any readable path is allowed
// only while the OSC socket is bound to loopback: a daemon listening on the network without a
// media root would let anyone read any file the service user can.
#pragma once

#include <string>

namespace stemd::control {

class MediaPolicy {
 public:
  MediaPolicy() = default;
  // `root` may be empty. False (with a reason) when the root does not exist.
  bool configure(const std::string& root, bool loopback_only, std::string& error);
  // Resolves a client's path to the canonical file to open, or refuses with a reason.
  bool resolve(const std::string& requested, std::string& resolved, std::string& error) const;
  const std::string& root() const { return root_; }

 private:
  std::string root_;  // canonical, no trailing slash; empty = none
  bool loopback_only_ = true;
};

}  // namespace stemd::control
