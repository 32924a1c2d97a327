// The media root's look-up at start, under a time-out and a stop signal, and where a client's
// path lies without looking at it (see media_policy.hpp).
#include "media_policy_detail.hpp"

#include "base/log_guard.hpp"
#include "file_system.hpp"

#include <spdlog/spdlog.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <thread>

namespace stemd::control {

// The root's first look-up, on a thread of its own (it holds a copy of the policy: the last-seen
// state is shared), waited for in slices so that a stop signal is acted on. Not back within the
// time-out: `probing` stays set — loads are refused without touching the root — until it returns.
bool MediaPolicy::look_at_start(const StartWait& start, std::string& error, int& err) const {
  struct Result {
    std::mutex m;
    bool done = false;
    int err = 0;
    std::string error;
  };
  auto res = std::make_shared<Result>();
  {
    std::lock_guard<std::mutex> lock(seen_->m);
    seen_->probing = true;
    seen_->probe_since = std::chrono::steady_clock::now();
  }
  MediaPolicy self = *this;
  self.seen_ = std::make_shared<Seen>();  // its own look, not refused by `probing`
  std::thread([self, res, seen = seen_] {
    RootFd r;
    std::string e;
    int n = 0;
    self.open_root(r, e, &n);
    int was = 0;
    {
      std::lock_guard<std::mutex> lock(seen->m);
      was = seen->state;  // 0: the start gave up on it
      seen->probing = false;
      seen->state = n == 0 ? 1 : 0;
      seen->why = n == 0 ? std::string() : std::strerror(n);
      if (n == 0) seen->real = r.path;
    }
    if (was == 0) {  // the start had given up on it
      spdlog::info("--media-root {}: its file system answered{}", base::log_escape(self.root_, 600),
                   n == 0 ? ": there now: loads go ahead" : " (" + std::string(std::strerror(n)) + ")");
    }
    std::lock_guard<std::mutex> lock(res->m);
    res->done = true;
    res->err = n;
    res->error = e;
  }).detach();
  const auto since = std::chrono::steady_clock::now();
  const auto limit = std::chrono::duration<double>(start.timeout_s);
  while (true) {
    {
      std::lock_guard<std::mutex> lock(res->m);
      if (res->done) {
        err = res->err;
        error = res->error;
        return true;
      }
    }
    if (std::chrono::steady_clock::now() - since >= limit) break;
    if (start.wait && !start.wait(20)) return false;
    if (!start.wait) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  std::lock_guard<std::mutex> lock(seen_->m);
  if (!seen_->probing) return true;  // it answered just now: the next load looks again
  seen_->state = 0;
  seen_->why = "its file system does not answer (no answer in " + std::to_string(static_cast<int>(start.timeout_s)) +
               " s at start)";
  err = ETIMEDOUT;
  return true;
}

std::string MediaPolicy::where(const std::string& requested) const {
  if (root_.empty()) return lexical_absolute(requested, "");
  std::string real;
  if (seen_) {
    std::lock_guard<std::mutex> lock(seen_->m);
    real = seen_->real;
  }
  if (real.empty()) real = root_;
  if (requested.empty() || requested[0] != '/') return lexical_absolute(requested, real);
  const std::string p = lexical_absolute(requested, "");
  if (p == root_) return real;
  if (p.compare(0, root_.size() + 1, root_ + "/") == 0) return real + p.substr(root_.size());
  return p;
}

std::string MediaPolicy::real_root() const {
  if (root_.empty() || !seen_) return {};
  std::lock_guard<std::mutex> lock(seen_->m);
  return seen_->real;
}

}  // namespace stemd::control
