// Audio files through libsndfile — the only place that includes <sndfile.h>.
//
// FileHandle: one open file descriptor per loaded source, shared by every reader of that file.
//   Readers go through libsndfile's virtual I/O with pread() and their own offset, so several
//   streams of one source read independently, a file deleted after loading keeps playing, and
//   every byte read is counted (tests assert that loading a 1 GB file reads only its head).
// SoundFile: a decoder; reads interleaved *stereo* float frames whatever the file's channels
//   (mono → both sides; more than two → the first two). 8/16-bit PCM is read as integers in
//   large chunks and converted here (≈ 4× cheaper than sf_readf_float, same values: x / 32768).
// SoundFileWriter: the render backend's output (WAV or FLAC by extension).
// FaultInjector: a test hook in the read path (slow reads, failed reads, a file that ends early),
//   installed process-wide by tests only — no flag, config key or OSC message reaches it. When
//   none is installed a read costs one atomic load more.
// Progress: on an opener thread each read that returns moves its job's beat, and a job given up
//   reads nothing more (progress_beat.hpp: a slow file system told from a stuck one).
// Threads: a SoundFile is used by one thread at a time — [control] while loading, then [loader].
#pragma once

#include "memory_budget.hpp"

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace stemd::io {

class FileHandle {
 public:
  // Opens `path` read-only, without blocking (O_NONBLOCK: a FIFO or a device never hangs the
  // caller) and accepts regular files only. On failure returns null and sets `error`.
  static std::shared_ptr<FileHandle> open(const std::string& path, std::string& error);
  // Takes ownership of `fd` (already open: see MediaPolicy::open) if it is a regular file;
  // otherwise closes it and returns null with "not a regular file". Never reopens by name:
  // `path` is what logs and status show.
  static std::shared_ptr<FileHandle> adopt(int fd, std::string path, std::string& error);
  ~FileHandle();
  FileHandle(const FileHandle&) = delete;
  FileHandle& operator=(const FileHandle&) = delete;

  int fd() const noexcept { return fd_; }
  const std::string& path() const noexcept { return path_; }
  // What identifies the file's contents: identical files share one decoded copy (source.hpp).
  struct Identity {
    std::uint64_t dev = 0, ino = 0;
    std::int64_t size = 0, mtime_ns = 0;
    bool operator<(const Identity& o) const noexcept {
      if (dev != o.dev) return dev < o.dev;
      if (ino != o.ino) return ino < o.ino;
      if (size != o.size) return size < o.size;
      return mtime_ns < o.mtime_ns;
    }
    bool operator==(const Identity& o) const noexcept {
      return dev == o.dev && ino == o.ino && size == o.size && mtime_ns == o.mtime_ns;
    }
  };
  const Identity& identity() const noexcept { return identity_; }
  std::int64_t size() const noexcept;  // current size (a file may shrink while streaming)
  std::uint64_t bytes_read() const noexcept { return bytes_read_.load(std::memory_order_relaxed); }
  void count_read(std::uint64_t n) noexcept { bytes_read_.fetch_add(n, std::memory_order_relaxed); }

  static std::uint64_t total_bytes_read() noexcept;  // all files, since start
  // FileHandles alive in the process (each holds its descriptor until its close: fd_budget.hpp).
  static std::int64_t alive() noexcept;

 private:
  FileHandle(int fd, std::string path, Identity id);
  int fd_;
  std::string path_;
  Identity identity_;
  std::atomic<std::uint64_t> bytes_read_{0};
};

// What a FaultInjector does to one read (the pread() calls behind libsndfile's virtual I/O).
struct ReadFault {
  std::int64_t delay_ns = 0;  // sleep this long first (a slow or stalled disk)
  int error = 0;              // then fail the read with this errno (EIO; ESTALE: deleted on an NFS server)
  bool end_of_file = false;   // or return no bytes, as if the file ended here (a short file)
};

class FaultInjector {
 public:
  virtual ~FaultInjector() = default;
  // [control]/[loader] Called before every read of every file while installed; must be thread-safe.
  // `offset` and `bytes`: the byte range about to be read.
  virtual ReadFault on_read(const std::string& path, std::int64_t offset, std::int64_t bytes) noexcept = 0;
};

// Installs `f` for every file read from now on (null removes it). Tests only. The caller keeps
// `f` alive until no read can still be using it (stop the loader, or remove it and let reads finish).
void set_fault_injector(FaultInjector* f) noexcept;

// Installs a FaultInjector for the scope's lifetime.
class ScopedFaultInjector {
 public:
  explicit ScopedFaultInjector(FaultInjector& f) noexcept { set_fault_injector(&f); }
  ~ScopedFaultInjector() { set_fault_injector(nullptr); }
  ScopedFaultInjector(const ScopedFaultInjector&) = delete;
  ScopedFaultInjector& operator=(const ScopedFaultInjector&) = delete;
};

struct FileInfo {
  std::int64_t frames = 0;  // -1 when the format cannot tell
  // What the header declares when that is more than the file holds (a copy cut off: libsndfile
  // counts only what is there, in `frames`); otherwise equal to `frames`.
  std::int64_t declared_frames = 0;
  // `frames` is counted from the data itself — the size of PCM samples in WAV, AIFF, CAF...;
  // Ogg's last page — so it is what the file holds. Otherwise (FLAC's STREAMINFO, MPEG) it is
  // what the stream says of itself, which a file cut short no longer holds.
  bool sized = false;
  std::int64_t max_block = 0;  // FLAC: the largest block (frames) its STREAMINFO declares; else 0
  int sample_rate = 0;
  int channels = 0;
  std::string format;  // e.g. "WAV 16-bit PCM"
  bool seekable = false;
  bool int16 = false;  // integer PCM of at most 16 bits: int16 samples hold it exactly
};

class SoundFile {
 public:
  SoundFile();
  ~SoundFile();
  SoundFile(const SoundFile&) = delete;
  SoundFile& operator=(const SoundFile&) = delete;

  struct Limits {
    int max_channels = 0;  // > 0: a header declaring more is refused (--max-channels)
    // What this reader holds (libsndfile's state, the decode scratch) is charged here at open().
    std::shared_ptr<MemoryBudget> budget;
    std::int64_t max_read_frames = 0;  // the largest read_stereo() call it will get (0: any)
    // The caller reads a 16-bit stereo file through read_stereo_i16() only (an int16 ring): no
    // decode scratch is charged, and read_stereo() on such a file fails instead of growing one.
    bool i16_reads_only = false;
  };
  // Opens for reading through `file`. On failure returns false and sets `error` to libsndfile's
  // reason. The channel limit is checked from the header, before anything is allocated for the
  // channels; the decode scratch is bounded (kScratchBytes, whatever the channel count) and
  // charged to the budget before it exists.
  bool open(std::shared_ptr<FileHandle> file, std::string& error, const Limits& limits);
  bool open(std::shared_ptr<FileHandle> file, std::string& error);  // no limits
  static constexpr std::int64_t kScratchBytes = 1 << 20;
  const FileInfo& info() const noexcept { return info_; }
  // The file opened again (the descriptor kept since load) is still what `loaded` describes:
  // same format, rate and channels. False, with `why` ("the file changed since it was loaded …:
  // load it again"), when it was rewritten in place. A shorter file passes: it plays what is
  // left and ends as a truncation.
  bool describes_as_loaded(const FileInfo& loaded, std::string& why) const;

  // Reads up to `frames` stereo frames into `out` (2 × frames floats). Returns frames read;
  // fewer means end of file; -1 means a read error (error() tells).
  std::int64_t read_stereo(float* out, std::int64_t frames);
  // The same as int16 (x / 32768 is the float read_stereo gives), straight from the file into
  // `out` with no decode copy: for stereo files whose info().int16 is true only (else -1).
  std::int64_t read_stereo_i16(std::int16_t* out, std::int64_t frames);
  // The same into two pieces (a ring's free span across its wrap): `frames2` only once `frames1`
  // are all read. 16-bit stereo little-endian WAV read raw (reads_raw()) is one preadv() for both.
  std::int64_t read_stereo_i16(std::int16_t* out1, std::int64_t frames1, std::int16_t* out2, std::int64_t frames2);
  bool reads_i16() const noexcept { return info_.int16 && info_.channels == 2; }
  // Opened with Limits::i16_reads_only for a 16-bit stereo little-endian WAV (W64, RF64): its
  // samples are the file's bytes, read with pread() at their offset, not through libsndfile.
  bool reads_raw() const noexcept;
  bool seek(std::int64_t frame);
  // [loader] Whether the file still reads as open() found it. The bytes before its samples (at
  // most kHeaderCheckBytes) are read again and compared; only when they changed is the header
  // parsed again (a tag edited in place passes: same format, length and samples' offset). False,
  // with `why`, when the file was rewritten in place since (another format or length: what this
  // reader knows of it — libsndfile's state, the raw reads' data offset — no longer describes it,
  // and its reads would be noise), or when it cannot be read (the OS's reason). One pread() of the
  // header; allocates nothing unless the header changed.
  bool header_unchanged(std::string& why);
  static constexpr std::int64_t kHeaderCheckBytes = 2048;
  // The open descriptor (-1 when not open): what the loader watches for writes (inotify).
  int fd() const noexcept;
  std::string error() const;
  // Samples that were NaN or infinite in a float file, replaced by silence.
  std::uint64_t non_finite_samples() const noexcept { return non_finite_; }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  FileInfo info_;
  std::uint64_t non_finite_ = 0;
  Charge charge_;
};

class SoundFileWriter {
 public:
  SoundFileWriter();
  ~SoundFileWriter();
  // Format from the extension of `format_from` (default: `path` itself): .wav (32-bit float),
  // .flac (24-bit), .aiff, .ogg. A temporary file takes its target's format this way.
  bool open(const std::string& path, int sample_rate, std::string& error, const std::string& format_from = {});
  bool write(const float* interleaved_stereo, std::int64_t frames);
  void close();
  std::string error() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// "libsndfile-1.2.0"
std::string sndfile_version();
// The container formats libsndfile reads (SFC_GET_FORMAT_MAJOR), e.g. "WAV (Microsoft)", with
// their usual extension: "WAV (Microsoft) .wav".
std::vector<std::string> sndfile_formats();
// Why libsndfile may not recognise the file at `path`, by its extension: "not a readable FLAC
// file: damaged, …", ".m4a (…) is not a format stemd reads: convert it, …", or neither.
std::string unrecognised_format_hint(const std::string& path);

}  // namespace stemd::io
