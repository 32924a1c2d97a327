// Files the daemon reads and writes by name (--config, --state-file, --script, `stemd tune
// --write-config`): one place for the two rules they share. [any thread; no shared state]
//
// Reading: a name is opened with O_NONBLOCK and checked with fstat() before anything is read,
// so a FIFO, a device or a directory planted at the path is refused at once ("not a regular
// file") instead of blocking the thread in open() or read() for good.
//
// Writing: atomically, through a temporary file from mkstemp() in the target's own directory
// (an unpredictable name, created O_EXCL by mkstemp: nothing planted there — a symlink to a
// victim file — is ever opened), written, fsync()ed, renamed over the target, and the directory
// fsync()ed so the rename survives a power cut. On failure the target is untouched and the
// temporary file removed.
#pragma once

#include <cstddef>
#include <string>

namespace stemd::app {

enum class ReadResult { kOk, kMissing, kError };

// Reads PATH whole into `out` when it is a regular file of at most max_bytes. kMissing when
// it does not exist (`error` says so too: "PATH: cannot read it: No such file…"); kError with "PATH: reason" otherwise
// — "not a regular file (a FIFO)" for a FIFO, without blocking.
ReadResult read_regular_file(const std::string& path, std::size_t max_bytes, std::string& out, std::string& error);

// Checks that PATH, if it exists, is a regular file (following symlinks), without opening
// anything that could block: false with "PATH: not a regular file (…)". A missing file is true.
bool regular_or_missing(const std::string& path, std::string& error);

// The directory PATH would be written in, when that directory does not exist (ENOENT); else "".
// A stat(): call it where a file system that does not answer may hold the caller (a helper).
std::string missing_directory(const std::string& path);

struct AtomicWrite {
  // A symlink at PATH: replace the file it points to and keep the link (`stemd tune
  // --write-config` on a linked config), or — false — replace the link itself by the file.
  bool follow_symlink = false;
  // Permissions of a new file (an existing target keeps its own).
  unsigned mode = 0644;
  // Once written, remove the temporary files earlier writes of PATH left beside it — a writer
  // killed between mkstemp and its rename (the state file's helper, killed while its file system
  // did not answer): regular files named exactly as this writer names them (".NAME.tmp." and
  // mkstemp's six letters or digits) last written before this write's own. For a file one
  // writer at a time writes (the state file); not where two may write the same file at once.
  bool remove_stale_temporaries = false;
};

// Writes `text` to PATH atomically (see above). Refuses to replace something that is not a
// regular file (a FIFO, a device, a directory). False with a reason naming the file.
bool write_file_atomic(const std::string& path, const std::string& text, std::string& error,
                       const AtomicWrite& how = {});

}  // namespace stemd::app
