#include "media_policy.hpp"

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>

namespace stemd::control {

namespace {
bool canonical(const std::string& p, std::string& out, std::string& error) {
  char buf[PATH_MAX];
  if (!realpath(p.c_str(), buf)) {
    error = std::strerror(errno);
    return false;
  }
  out = buf;
  return true;
}
}  // namespace

bool MediaPolicy::configure(const std::string& root, bool loopback_only, std::string& error) {
  loopback_only_ = loopback_only;
  root_.clear();
  if (root.empty()) return true;
  std::string c;
  if (!canonical(root, c, error)) {
    error = "--media-root " + root + ": " + error;
    return false;
  }
  root_ = c == "/" ? "" : c;
  if (c == "/") root_ = "/";
  return true;
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
      error = "loading files is disabled: the OSC socket is reachable from the network and no --media-root is set";
      return false;
    }
    if (!canonical(requested, resolved, error)) {
      error = requested + ": " + error;
      return false;
    }
    return true;
  }
  const std::string joined = requested[0] == '/' ? requested : root_ + "/" + requested;
  if (!canonical(joined, resolved, error)) {
    error = requested + ": " + error;
    return false;
  }
  if (root_ != "/" && resolved != root_ && resolved.compare(0, root_.size() + 1, root_ + "/") != 0) {
    error = requested + ": outside the media root " + root_;
    return false;
  }
  return true;
}

}  // namespace stemd::control
