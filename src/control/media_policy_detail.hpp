// MediaPolicy's private parts, shared by media_policy.cpp and media_root_start.cpp.
#pragma once

#include "media_policy.hpp"

#include <unistd.h>

#include <chrono>
#include <mutex>
#include <string>

namespace stemd::control {

struct MediaPolicy::Seen {
  std::mutex m;
  int state = -1;  // -1 not looked at yet, 0 missing, 1 there
  std::string why;
  std::string real;  // the root's realpath when last there
  // The start's look-up has not returned (its file system does not answer): nothing touches it.
  bool probing = false;
  std::chrono::steady_clock::time_point probe_since{};
};

class MediaPolicy::RootFd {
 public:
  RootFd() = default;
  RootFd(const RootFd&) = delete;
  RootFd& operator=(const RootFd&) = delete;
  ~RootFd() {
    if (fd >= 0) ::close(fd);
  }
  int fd = -1;
  std::string path;  // the root's realpath now
};

}  // namespace stemd::control
