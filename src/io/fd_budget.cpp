// The descriptor budget (see fd_budget.hpp).
#include "fd_budget.hpp"

#include "file_closer.hpp"
#include "sound_file.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <dirent.h>
#include <sys/resource.h>

namespace stemd::io {

namespace {
std::uint64_t as_u64(rlim_t v) { return v == RLIM_INFINITY ? UINT64_MAX : static_cast<std::uint64_t>(v); }
std::uint64_t target_of(const rlimit& rl, std::uint64_t cap) {
  const std::uint64_t soft = as_u64(rl.rlim_cur);
  return std::max(soft, std::min(as_u64(rl.rlim_max), cap));  // never lowered
}
}  // namespace

NofileRaise raise_nofile(std::uint64_t cap) {
  NofileRaise r;
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
    r.error = errno;
    return r;
  }
  r.was = r.now = as_u64(rl.rlim_cur);
  r.hard = as_u64(rl.rlim_max);
  r.capped = r.hard > cap;
  const std::uint64_t want = target_of(rl, cap);
  if (want == r.was) return r;
  rl.rlim_cur = static_cast<rlim_t>(want);
  if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
    r.error = errno;
    return r;
  }
  r.now = want;
  return r;
}

std::uint64_t nofile_after_raise(std::uint64_t cap) {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return 0;
  return target_of(rl, cap);
}

std::string describe(const NofileRaise& r) {
  auto n = [](std::uint64_t v) { return v == UINT64_MAX ? std::string("unlimited") : std::to_string(v); };
  std::string s = "open-file limit " + n(r.now);
  if (r.error != 0 && r.now == r.was && r.hard > r.was) {
    return s + fmt::format(" (could not be raised to the hard limit {}: {})", n(r.hard), std::strerror(r.error));
  }
  if (r.now != r.was) {
    s += " (raised from " + n(r.was);
    if (r.capped) s += "; the hard limit " + n(r.hard) + " is more than stemd takes";
    return s + ")";
  }
  return s + (r.now == r.hard ? " (the hard limit)" : " (the hard limit is " + n(r.hard) + ")");
}

std::int64_t fd_reserve(std::int64_t limit, std::size_t tcp_clients, std::size_t http_clients, bool link) {
  const auto want =
      std::max<std::int64_t>(64, 32 + static_cast<std::int64_t>(tcp_clients + http_clients) + (link ? kLinkFds : 0));
  return std::max<std::int64_t>(0, std::min(want, limit / 4));
}

std::int64_t media_files_open() noexcept { return FileHandle::alive() + FileCloser::process().unclosed(); }

std::int64_t FdBudget::room() const noexcept { return std::max<std::int64_t>(0, limit_ - reserve_ - in_use()); }

bool FdBudget::measure() {
  DIR* d = opendir("/proc/self/fd");
  if (d == nullptr) return false;
  std::int64_t n = 0;
  while (const dirent* e = readdir(d)) n += e->d_name[0] != '.';
  closedir(d);
  n -= 1;  // the listing's own descriptor
  others_.store(std::max<std::int64_t>(0, n - media_files_open()), std::memory_order_relaxed);
  return true;
}

bool FdBudget::admit_held(std::string& why) const {
  const std::int64_t used = in_use();  // this file's descriptor included
  if (used + reserve_ <= limit_) return true;
  refused_.fetch_add(1, std::memory_order_relaxed);
  remeasure_.store(true, std::memory_order_relaxed);
  why = fmt::format(
      "too many open files: {} of the limit {} in use; a reserve of {} is kept for clients, the device and helpers "
      "(streamed files keep theirs open: unload some, load smaller files into memory (--preload-limit-mb), or raise "
      "the limit: LimitNOFILE)",
      used - 1, limit_, reserve_);
  return false;
}

}  // namespace stemd::io
