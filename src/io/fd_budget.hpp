// File descriptors as a budget, beside memory (memory_budget.hpp).
//
// Every streamed source keeps its file open for as long as it is loaded (source.hpp); a file held
// whole in memory closes it once decoded. Streamed files are what a client (or an operator's stem
// library) can make the daemon hold by the thousand, so they are what is budgeted: a streamed
// load is refused while fewer than a reserve of descriptors would stay free, and the reserve is
// kept for what else needs one at any moment — a TCP client's or the web monitor's connection
// (up to their --max-* limits), an in-memory load's brief open, the state file's helper, a log
// rotation, the device opened again after a loss. A play's stream opens no descriptor (it reads
// its source's with pread()), so plays are not counted.
//
// What is counted: media files' descriptors exactly — each FileHandle from its open until the
// closer's close() returns (file_closer.hpp; a close stuck on a dead share still holds one) —
// plus the rest (stdio, sockets, the device, the log), measured by listing /proc/self/fd on the
// main thread at start and every few seconds, never per load.
//
// Threads: raise_nofile() [main], before any thread starts; FdBudget::measure() [main];
// everything else any thread but audio (atomics).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>

namespace stemd::io {

// The most stemd raises its soft RLIMIT_NOFILE to (a hard limit above it is not taken whole):
// --max-sources' default many times over, and a /proc/self/fd listing of that size stays short.
inline constexpr std::uint64_t kMaxNofile = 65536;

struct NofileRaise {
  std::uint64_t was = 0;   // the soft limit found
  std::uint64_t now = 0;   // the soft limit in force (== was when nothing changed)
  std::uint64_t hard = 0;  // the hard limit
  bool capped = false;     // the hard limit is above `cap`: raised to `cap` only
  int error = 0;           // setrlimit's errno when the raise failed (now == was)
};

// [main] Raises the soft RLIMIT_NOFILE to the hard one, at most `cap` (never lowers it).
NofileRaise raise_nofile(std::uint64_t cap = kMaxNofile);
// What raise_nofile() would make the soft limit, without changing it (--check-config).
std::uint64_t nofile_after_raise(std::uint64_t cap = kMaxNofile);
// "open-file limit 4096 (raised from 256)", "open-file limit 65536 (raised from 1024; the hard
// limit 524288 is more than stemd takes)", "open-file limit 1024 (the hard limit)".
std::string describe(const NofileRaise& r);

// What Ableton Link (--link) may hold besides its own few sockets: it opens a UDP socket for each
// session it measures (≈ 250–300 ms each, one per new session id it hears of), and any host on
// the LAN can announce new sessions as fast as it likes — outside pass 26 (L1) had 600–1,024 open
// at 2,000–8,000 forged sessions a second. Link's internals are not bounded by stemd (Debian's
// ableton-link headers); this covers ≈ 1,000 forged sessions a second (docs/security.md).
inline constexpr std::int64_t kLinkFds = 16 + 256;

// The descriptors kept free for what is not a streamed source: every TCP client and web
// connection stemd takes, plus 32 (in-memory loads' opens, the web's listings, helpers, the
// device, the log), plus kLinkFds with --link; at least 64, at most a quarter of `limit`.
std::int64_t fd_reserve(std::int64_t limit, std::size_t tcp_clients, std::size_t http_clients, bool link = false);

// [any but audio] Media files' descriptors open in the process: FileHandles alive, and closes
// handed to the closer that have not returned.
std::int64_t media_files_open() noexcept;

class FdBudget {
 public:
  FdBudget(std::int64_t limit, std::int64_t reserve) noexcept : limit_(limit), reserve_(reserve) {}

  std::int64_t limit() const noexcept { return limit_; }
  std::int64_t reserve() const noexcept { return reserve_; }
  // Descriptors open besides media files, as last measured.
  std::int64_t others() const noexcept { return others_.load(std::memory_order_relaxed); }
  // Descriptors open: the rest as last measured, media files now.
  std::int64_t in_use() const noexcept { return others() + media_files_open(); }
  // Streamed files that can still be kept open (0 at the reserve).
  std::int64_t room() const noexcept;

  // [main] Lists /proc/self/fd: what is open besides media files from now on. False (the last
  // measure kept) when it cannot be listed.
  bool measure();

  // [any but audio] A file about to be kept open (a streamed source), its descriptor already
  // open and counted: true if the reserve stays free. Otherwise false with `why`: "too many open
  // files: N of the limit L in use; a reserve of R is kept for …".
  bool admit_held(std::string& why) const;
  // Streamed loads refused by admit_held() since start (the health line, the status).
  std::uint64_t refused() const noexcept { return refused_.load(std::memory_order_relaxed); }
  // [main] A refusal happened since the last call: what is open besides media files may have
  // grown since it was measured (Link's sockets, outside pass 26 L1): measure again now, not in
  // up to 10 s.
  bool take_remeasure() noexcept { return remeasure_.exchange(false, std::memory_order_relaxed); }

 private:
  const std::int64_t limit_;
  const std::int64_t reserve_;
  std::atomic<std::int64_t> others_{0};
  mutable std::atomic<std::uint64_t> refused_{0};
  mutable std::atomic<bool> remeasure_{false};
};

}  // namespace stemd::io
