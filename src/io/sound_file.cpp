// libsndfile wrapper (see sound_file.hpp). With sndfile_log.cpp and sound_formats.cpp, the only
// translation units that include <sndfile.h>.
#include "sound_file.hpp"

#include "file_closer.hpp"
#include "progress_beat.hpp"
#include "sndfile_log.hpp"

#include <sndfile.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

namespace stemd::io {

namespace {
std::atomic<std::uint64_t> g_total_bytes_read{0};
std::atomic<std::int64_t> g_handles_alive{0};  // FileHandle::alive()
std::atomic<FaultInjector*> g_fault{nullptr};
// Frames per libsndfile call: large reads are where decoding gets cheap, and each call is one
// pread() for PCM, so a slow disk costs one latency per call. Bounds the scratch buffers (1 MiB
// for 16-bit stereo).
constexpr std::int64_t kChunkFrames = 262144;

std::string describe_format(const SF_INFO& i) {
  const int major = i.format & SF_FORMAT_TYPEMASK;
  const int sub = i.format & SF_FORMAT_SUBMASK;
  SF_FORMAT_INFO fi{};
  std::string out;
  fi.format = major;
  if (sf_command(nullptr, SFC_GET_FORMAT_INFO, &fi, sizeof(fi)) == 0 && fi.name) out = fi.name;
  fi = SF_FORMAT_INFO{};
  fi.format = sub;
  if (sf_command(nullptr, SFC_GET_FORMAT_INFO, &fi, sizeof(fi)) == 0 && fi.name) {
    out += out.empty() ? "" : ", ";
    out += fi.name;
  }
  return out.empty() ? "unknown" : out;
}

// The largest block (frames) a FLAC file's STREAMINFO declares, or 0 when `fd` is not a FLAC file
// (an ID3v2 tag before it is skipped, as libsndfile does).
std::int64_t flac_max_block(int fd) {
  unsigned char b[14];
  off_t at = 0;
  if (::pread(fd, b, 10, 0) != 10) return 0;
  if (std::memcmp(b, "ID3", 3) == 0)
    at = 10 + ((b[6] & 0x7F) << 21 | (b[7] & 0x7F) << 14 | (b[8] & 0x7F) << 7 | (b[9] & 0x7F));
  if (::pread(fd, b, sizeof b, at) != static_cast<ssize_t>(sizeof b) || std::memcmp(b, "fLaC", 4) != 0) return 0;
  if ((b[4] & 0x7F) != 0) return 0;  // the first metadata block must be STREAMINFO
  return static_cast<std::int64_t>(b[10]) << 8 | b[11];
}

// What one open reader holds beside its scratch: libsndfile's state (SNDFILE with its buffers,
// the header buffer, the container's own data) and this wrapper. A plain PCM or float file in
// the common containers: measured 11.2 KB on libsndfile 1.2.0 (Loader.PcmReaderChargesWhatItReallyHolds),
// counted as 16 KiB. Anything else (a FLAC, Vorbis, Opus or MP3 decoder's blocks, other
// containers): tens to a few hundred KB, counted as a flat 128 KiB — but a FLAC's blocks can be
// far larger: libFLAC holds its decoded block and residual (int32 each) per channel and libsndfile
// a copy after a seek, 12 bytes per sample of the block: 8 channels × 65,535 frames ≈ 6 MB (4.35 MB
// allocated per reader measured before any seek, Loader.FlacReaderChargesTheBlocksItsHeaderDeclares).
// Charged from the STREAMINFO's block size. Not covered: a STREAMINFO that understates the blocks
// (libFLAC 1.4.2 decodes larger ones anyway; hostile_client.py --only wide_flac_lie).
std::int64_t library_bytes(int format, int channels, std::int64_t flac_block) {
  if ((format & SF_FORMAT_TYPEMASK) == SF_FORMAT_FLAC && flac_block > 0) {
    return std::max<std::int64_t>(128 * 1024, 64 * 1024 + 12 * flac_block * channels);
  }
  const int major = format & SF_FORMAT_TYPEMASK;
  const int sub = format & SF_FORMAT_SUBMASK;
  const bool plain_sub = sub == SF_FORMAT_PCM_S8 || sub == SF_FORMAT_PCM_U8 || sub == SF_FORMAT_PCM_16 ||
                         sub == SF_FORMAT_PCM_24 || sub == SF_FORMAT_PCM_32 || sub == SF_FORMAT_FLOAT ||
                         sub == SF_FORMAT_DOUBLE || sub == SF_FORMAT_ULAW || sub == SF_FORMAT_ALAW;
  const bool plain_major = major == SF_FORMAT_WAV || major == SF_FORMAT_WAVEX || major == SF_FORMAT_AIFF ||
                           major == SF_FORMAT_AU || major == SF_FORMAT_RAW || major == SF_FORMAT_W64 ||
                           major == SF_FORMAT_RF64 || major == SF_FORMAT_CAF;
  return plain_sub && plain_major ? 16 * 1024 : 128 * 1024;
}
}  // namespace

// ---------------------------------------------------------------- FileHandle

std::shared_ptr<FileHandle> FileHandle::open(const std::string& path, std::string& error) {
  // O_NONBLOCK: opening a FIFO for reading with no writer, or a device, must not block.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
  if (fd < 0) {
    error = std::strerror(errno);
    return nullptr;
  }
  return adopt(fd, path, error);
}

std::shared_ptr<FileHandle> FileHandle::adopt(int fd, std::string path, std::string& error) {
  struct stat st {};
  if (fstat(fd, &st) != 0) {
    error = std::strerror(errno);
    close_file(fd);  // on the closer: a close on a share that stopped answering waits (file_closer.hpp)
    return nullptr;
  }
  if (!S_ISREG(st.st_mode)) {
    error = S_ISDIR(st.st_mode) ? "is a directory (not a regular file)" : "not a regular file";
    close_file(fd);
    return nullptr;
  }
  // Reads do not update the file's access time where the kernel lets us ask (we own the file, or
  // hold CAP_FOWNER; otherwise EPERM and atime as the mount says): each streamed read otherwise
  // checks it (touch_atime: ~2 % of the daemon's CPU at 1,024 voices), and an SD card is spared
  // the writes.
  if (const int fl = fcntl(fd, F_GETFL); fl >= 0 && (fl & O_NOATIME) == 0) (void)fcntl(fd, F_SETFL, fl | O_NOATIME);
  Identity id{static_cast<std::uint64_t>(st.st_dev), static_cast<std::uint64_t>(st.st_ino),
              static_cast<std::int64_t>(st.st_size),
              static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec};
  return std::shared_ptr<FileHandle>(new FileHandle(fd, std::move(path), id));
}

// Not ::close here: the last reference drops on the control thread (an unload, a load into an
// occupied id, /mixer_cleanup) or the loader thread (a released stream), and a close on FUSE or NFS
// waits for the share — forever when it stopped answering (file_closer.hpp).
FileHandle::~FileHandle() {
  close_file(fd_);  // counted by the closer until its close returns, before it leaves this count
  g_handles_alive.fetch_sub(1, std::memory_order_relaxed);
}

FileHandle::FileHandle(int fd, std::string path, Identity id) : fd_(fd), path_(std::move(path)), identity_(id) {
  g_handles_alive.fetch_add(1, std::memory_order_relaxed);
}

std::int64_t FileHandle::alive() noexcept { return g_handles_alive.load(std::memory_order_relaxed); }

std::int64_t FileHandle::size() const noexcept {
  struct stat st {};
  return fstat(fd_, &st) == 0 ? static_cast<std::int64_t>(st.st_size) : 0;
}

std::uint64_t FileHandle::total_bytes_read() noexcept { return g_total_bytes_read.load(std::memory_order_relaxed); }

void set_fault_injector(FaultInjector* f) noexcept { g_fault.store(f, std::memory_order_release); }

// ---------------------------------------------------------------- SoundFile

struct SoundFile::Impl {
  std::shared_ptr<FileHandle> file;
  sf_count_t offset = 0;          // this reader's own file position
  sf_count_t empty_size_at = -1;  // a WAV's empty data size, read as the pipe placeholder (sndfile_log.hpp)
  SNDFILE* sf = nullptr;
  SF_INFO info{};
  bool read_shorts = false;
  bool no_scratch = false;  // opened for read_stereo_i16() only: nothing charged for a scratch
  std::int64_t chunk_frames = kChunkFrames;
  int io_errno = 0;  // the last read's failure, which libsndfile would only see as a short read
  std::vector<short> shorts;
  std::vector<float> floats;
  // Raw reads (detect_raw): ≥ 0 when the file's samples are read with pread() at
  // raw_base + 4·frame instead of through libsndfile; raw_frame is then the read position.
  std::int64_t raw_base = -1;
  std::int64_t raw_frame = 0;
  // The file's first bytes up to its samples (at most kHeaderCheckBytes) as open() read them, and
  // room to read them again (header_unchanged).
  std::vector<unsigned char> header, header_now;
  sf_count_t header_end = 0;  // where libsndfile's open left off: its samples' offset, for PCM
  // The file's first out.size() bytes into `out` (errno kept on failure; EINTR retried).
  ssize_t read_header(std::vector<unsigned char>& out) const {
    ssize_t n = 0;
    do {
      n = ::pread(file->fd(), out.data(), out.size(), 0);
    } while (n < 0 && errno == EINTR);
    beat_progress();
    return n;
  }

  // A read of `count` bytes at `at` into the pieces `iov` (one or two), with the test fault
  // injector, the retry on EINTR and the byte counts of vio_read. Returns bytes read; a failure
  // leaves io_errno set and returns what came before it. On an opener thread (progress_beat.hpp)
  // each read that returns is progress, and a job given up reads nothing more (ECANCELED).
  sf_count_t read_at(iovec* iov, int pieces, sf_count_t at, sf_count_t count) {
    const sf_count_t done = progress_cancelled() ? (io_errno = ECANCELED, 0) : read_unbeaten(iov, pieces, at, count);
    beat_progress();
    return done;
  }
  sf_count_t read_unbeaten(iovec* iov, int pieces, sf_count_t at, sf_count_t count) {
    if (FaultInjector* f = g_fault.load(std::memory_order_acquire); f != nullptr) [[unlikely]] {
      const ReadFault fault = f->on_read(file->path(), at, count);
      if (fault.delay_ns > 0) {
        timespec ts{static_cast<time_t>(fault.delay_ns / 1'000'000'000),
                    static_cast<long>(fault.delay_ns % 1'000'000'000)};
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
        }
      }
      if (fault.error != 0) {
        io_errno = fault.error;
        return 0;
      }
      if (fault.end_of_file) return 0;
    }
    sf_count_t done = 0;
    while (done < count) {
      const ssize_t n = ::preadv(file->fd(), iov, pieces, at + done);
      if (n < 0) {
        if (errno == EINTR) continue;
        io_errno = errno;  // libsndfile sees a short read; read_stereo() reports the error
        break;
      }
      if (n == 0) break;
      done += n;
      // A partial read: go on after what it filled.
      auto left = static_cast<std::size_t>(n);
      while (pieces > 0 && left >= iov->iov_len) {
        left -= iov->iov_len;
        ++iov;
        --pieces;
      }
      if (pieces > 0) {
        iov->iov_base = static_cast<char*>(iov->iov_base) + left;
        iov->iov_len -= left;
      }
    }
    file->count_read(static_cast<std::uint64_t>(done));
    g_total_bytes_read.fetch_add(static_cast<std::uint64_t>(done), std::memory_order_relaxed);
    return done;
  }

  // Whether this file's samples may be read raw: 16-bit stereo little-endian PCM in a WAV-family
  // container on a little-endian machine, where the int16 frames libsndfile returns are the
  // file's bytes unchanged — then one pread() (one preadv() for a ring's two pieces) per read,
  // without libsndfile's per-call work. The data's offset is taken from where libsndfile itself
  // seeks for frames 0 and 1 (through vio_seek), and checked: the first frames read both ways
  // must match, or it stays on libsndfile. Leaves the position at frame 0.
  void detect_raw() {
    const int major = info.format & SF_FORMAT_TYPEMASK;
    const int endian = info.format & SF_FORMAT_ENDMASK;
    if constexpr (std::endian::native != std::endian::little) return;
    if ((info.format & SF_FORMAT_SUBMASK) != SF_FORMAT_PCM_16 || info.channels != 2 || info.frames <= 0 ||
        info.frames == SF_COUNT_MAX)
      return;
    if (major != SF_FORMAT_WAV && major != SF_FORMAT_WAVEX && major != SF_FORMAT_W64 && major != SF_FORMAT_RF64) return;
    if (endian != SF_ENDIAN_FILE && endian != SF_ENDIAN_LITTLE) return;
    if (sf_seek(sf, 1, SEEK_SET) != 1) return;
    const sf_count_t second = offset;
    if (sf_seek(sf, 0, SEEK_SET) != 0) return;
    const sf_count_t base = offset;
    if (second - base != 4 || base < 0) return;
    constexpr sf_count_t kCheck = 64;
    const sf_count_t n = std::min<sf_count_t>(kCheck, info.frames);
    std::int16_t via[2 * kCheck], raw[2 * kCheck];
    const sf_count_t got = sf_readf_short(sf, via, n);
    const int err = io_errno;
    iovec v{raw, static_cast<std::size_t>(n) * 4};
    const bool same = got == n && err == 0 && read_at(&v, 1, base, n * 4) == n * 4 && io_errno == 0 &&
                      std::memcmp(via, raw, static_cast<std::size_t>(n) * 4) == 0;
    io_errno = 0;
    sf_seek(sf, 0, SEEK_SET);
    if (same) raw_base = base;
  }

  // Raw: up to `frames1` + `frames2` frames at raw_frame into two pieces; clamped at the data's
  // end (what libsndfile does: a chunk may follow). Frames read, or -1 on a read error.
  std::int64_t read_raw(std::int16_t* out1, std::int64_t frames1, std::int16_t* out2, std::int64_t frames2) {
    const std::int64_t left = std::max<std::int64_t>(0, info.frames - raw_frame);
    frames1 = std::min(frames1, left);
    frames2 = std::min(frames2, left - frames1);
    if (frames1 <= 0) return 0;
    iovec v[2] = {{out1, static_cast<std::size_t>(frames1) * 4}, {out2, static_cast<std::size_t>(frames2) * 4}};
    io_errno = 0;
    const sf_count_t bytes = read_at(v, frames2 > 0 ? 2 : 1, raw_base + raw_frame * 4, (frames1 + frames2) * 4);
    if (io_errno != 0) return -1;  // a failed read is an error, never an early end
    const std::int64_t got = bytes / 4;
    raw_frame += got;
    return got;
  }

  static sf_count_t vio_len(void* user) {
    const sf_count_t n = static_cast<Impl*>(user)->file->size();  // an fstat(): progress once it returned
    return beat_progress(), n;
  }
  static sf_count_t vio_seek(sf_count_t off, int whence, void* user) {
    auto* self = static_cast<Impl*>(user);
    switch (whence) {
      case SEEK_SET:
        self->offset = off;
        break;
      case SEEK_CUR:
        self->offset += off;
        break;
      case SEEK_END:
        self->offset = self->file->size() + off;
        break;
      default:
        return -1;
    }
    return self->offset;
  }
  static sf_count_t vio_read(void* ptr, sf_count_t count, void* user) {
    auto* self = static_cast<Impl*>(user);
    iovec v{ptr, static_cast<std::size_t>(count)};
    const sf_count_t done = self->read_at(&v, 1, self->offset, count);
    for (sf_count_t k = std::max<sf_count_t>(0, self->empty_size_at - self->offset);  // read as 0xFFFFFFFF
         self->empty_size_at >= 0 && k < done && self->offset + k < self->empty_size_at + 4; ++k)
      static_cast<unsigned char*>(ptr)[k] = 0xff;
    self->offset += done;
    return done;
  }
  static sf_count_t vio_write(const void*, sf_count_t, void*) { return 0; }
  static sf_count_t vio_tell(void* user) { return static_cast<Impl*>(user)->offset; }
};

SoundFile::SoundFile() : impl_(std::make_unique<Impl>()) {}
SoundFile::~SoundFile() {
  if (impl_->sf) sf_close(impl_->sf);
}

bool SoundFile::open(std::shared_ptr<FileHandle> file, std::string& error) {
  return open(std::move(file), error, Limits{});
}

bool SoundFile::open(std::shared_ptr<FileHandle> file, std::string& error, const Limits& limits) {
  static SF_VIRTUAL_IO vio{&Impl::vio_len, &Impl::vio_seek, &Impl::vio_read, &Impl::vio_write, &Impl::vio_tell};
  impl_->file = std::move(file);
  impl_->offset = 0;
  impl_->info = SF_INFO{};
  impl_->empty_size_at = empty_wav_data_size_at(impl_->file->fd(), impl_->file->size());
  impl_->sf = sf_open_virtual(&vio, SFM_READ, &impl_->info, impl_.get());
  if (!impl_->sf) {
    const int code = sf_error(nullptr);
    error = sf_strerror(nullptr);
    if (code == SF_ERR_UNRECOGNISED_FORMAT) error += " — " + unrecognised_format_hint(impl_->file->path());
    // A CAF cut short is "malformed" to libsndfile (a WAV cut short opens, and is said to be).
    if (const std::string cut = caf_cut_short(impl_->file->fd(), impl_->file->size()); !cut.empty()) {
      error = "the file is cut short (truncated): " + cut +
              " — an interrupted copy or download? (libsndfile: " + error + ")";
    }
    return false;
  }
  impl_->header_end = impl_->offset;
  const SF_INFO& i = impl_->info;
  if (i.channels < 1) {
    error = "file has no audio channels";
    sf_close(impl_->sf);
    impl_->sf = nullptr;
    return false;
  }
  if (limits.max_channels > 0 && i.channels > limits.max_channels) {
    error = "its header declares " + std::to_string(i.channels) + " channels, more than the limit of " +
            std::to_string(limits.max_channels) + " (--max-channels)";
    sf_close(impl_->sf);
    impl_->sf = nullptr;
    return false;
  }
  std::int64_t flac_block = 0;
  {
    const int sub = i.format & SF_FORMAT_SUBMASK;
    impl_->read_shorts = sub == SF_FORMAT_PCM_16 || sub == SF_FORMAT_PCM_S8 || sub == SF_FORMAT_PCM_U8;
    const std::int64_t elem = impl_->read_shorts ? 2 : 4;
    impl_->chunk_frames = std::max<std::int64_t>(1, std::min(kChunkFrames, kScratchBytes / (i.channels * elem)));
    if (limits.max_read_frames > 0) impl_->chunk_frames = std::min(impl_->chunk_frames, limits.max_read_frames);
    impl_->no_scratch = limits.i16_reads_only && impl_->read_shorts && i.channels == 2;
    const bool scratch = (impl_->read_shorts || i.channels != 2) && !impl_->no_scratch;
    flac_block = (i.format & SF_FORMAT_TYPEMASK) == SF_FORMAT_FLAC ? flac_max_block(impl_->file->fd()) : 0;
    const std::int64_t bytes =
        library_bytes(i.format, i.channels, flac_block) + (scratch ? impl_->chunk_frames * i.channels * elem : 0);
    if (!charge_.take(limits.budget, bytes, error)) {
      sf_close(impl_->sf);
      impl_->sf = nullptr;
      return false;
    }
  }
  info_.frames = (i.frames == SF_COUNT_MAX || i.frames < 0) ? -1 : i.frames;
  info_.declared_frames = declared_frames(impl_->sf, i, info_.frames);
  info_.max_block = flac_block;
  {
    const int sub = i.format & SF_FORMAT_SUBMASK;
    const bool pcm = sub >= SF_FORMAT_PCM_S8 && sub <= SF_FORMAT_DOUBLE;  // S8, 16, 24, 32, U8, float, double
    const int major = i.format & SF_FORMAT_TYPEMASK;
    info_.sized = (pcm && major != SF_FORMAT_FLAC) || major == SF_FORMAT_OGG;  // (Ogg: from its last page)
  }
  info_.sample_rate = i.samplerate;
  info_.channels = i.channels;
  info_.seekable = i.seekable != 0;
  info_.format = describe_format(i);
  info_.int16 = impl_->read_shorts;
  if (impl_->no_scratch) impl_->detect_raw();  // only ever read through read_stereo_i16()
  {
    Impl& m = *impl_;
    const sf_count_t end = m.raw_base >= 0 ? m.raw_base : m.header_end;
    m.header.resize(static_cast<std::size_t>(std::clamp<sf_count_t>(end, 0, kHeaderCheckBytes)));
    const ssize_t n = m.read_header(m.header);
    m.header.resize(n > 0 ? static_cast<std::size_t>(n) : 0);
    m.header_now.resize(m.header.size());
  }
  return true;
}

std::int64_t SoundFile::read_stereo(float* out, std::int64_t frames) {
  Impl& m = *impl_;
  if (!m.sf || m.no_scratch) return -1;  // no_scratch: its scratch was never charged
  const int ch = m.info.channels;
  m.io_errno = 0;
  std::int64_t done = 0;
  // The scratch (when the file's channels are not stereo float) never exceeds what open()
  // charged: chunk_frames × channels samples, at most kScratchBytes.
  const std::int64_t chunk = m.chunk_frames;
  while (done < frames) {
    const std::int64_t want = std::min(chunk, frames - done);
    float* dst = out + done * 2;
    sf_count_t got = 0;
    if (m.read_shorts) {
      m.shorts.resize(static_cast<std::size_t>(want * ch));
      got = sf_readf_short(m.sf, m.shorts.data(), want);
      const short* s = m.shorts.data();
      constexpr float kScale = 1.0f / 32768.0f;  // what libsndfile's float read does, exactly
      if (ch == 2) {
        for (sf_count_t k = 0; k < got * 2; ++k) dst[k] = static_cast<float>(s[k]) * kScale;
      } else if (ch == 1) {
        for (sf_count_t k = 0; k < got; ++k) dst[2 * k] = dst[2 * k + 1] = static_cast<float>(s[k]) * kScale;
      } else {
        for (sf_count_t k = 0; k < got; ++k) {
          dst[2 * k] = static_cast<float>(s[k * ch]) * kScale;
          dst[2 * k + 1] = static_cast<float>(s[k * ch + 1]) * kScale;
        }
      }
    } else if (ch == 2) {
      got = sf_readf_float(m.sf, dst, want);
    } else {
      m.floats.resize(static_cast<std::size_t>(want * ch));
      got = sf_readf_float(m.sf, m.floats.data(), want);
      const float* s = m.floats.data();
      if (ch == 1) {
        for (sf_count_t k = 0; k < got; ++k) dst[2 * k] = dst[2 * k + 1] = s[k];
      } else {
        for (sf_count_t k = 0; k < got; ++k) {
          dst[2 * k] = s[k * ch];
          dst[2 * k + 1] = s[k * ch + 1];
        }
      }
    }
    if (got < 0 || m.io_errno != 0) return -1;  // a failed read is an error, never an early end
    if (!m.read_shorts) {
      // Float files can hold NaN or infinities; they must never reach the mix.
      for (sf_count_t k = 0; k < got * 2; ++k) {
        if (!std::isfinite(dst[k])) {
          dst[k] = 0.0f;
          ++non_finite_;
        }
      }
    }
    done += got;
    if (got < want) {
      if (sf_error(m.sf) != SF_ERR_NO_ERROR) return done > 0 ? done : -1;
      break;  // end of file
    }
  }
  return done;
}

std::int64_t SoundFile::read_stereo_i16(std::int16_t* out, std::int64_t frames) {
  Impl& m = *impl_;
  if (!m.sf || !reads_i16()) return -1;
  if (m.raw_base >= 0) return m.read_raw(out, frames, nullptr, 0);
  m.io_errno = 0;
  // libsndfile reads 16-bit little-endian PCM with one read into `out` (our pread: page cache →
  // ring); no chunking needed, nothing held here.
  const sf_count_t got = sf_readf_short(m.sf, out, frames);
  if (got < 0 || m.io_errno != 0) return -1;  // a failed read is an error, never an early end
  if (got < frames && sf_error(m.sf) != SF_ERR_NO_ERROR) return got > 0 ? got : -1;
  return got;
}

std::int64_t SoundFile::read_stereo_i16(std::int16_t* out1, std::int64_t frames1, std::int16_t* out2,
                                        std::int64_t frames2) {
  Impl& m = *impl_;
  if (m.sf && m.raw_base >= 0 && reads_i16()) return m.read_raw(out1, frames1, out2, frames2);
  std::int64_t got = read_stereo_i16(out1, frames1);
  if (got == frames1 && frames2 > 0) {
    const std::int64_t more = read_stereo_i16(out2, frames2);
    got = more < 0 ? more : got + more;
  }
  return got;
}

bool SoundFile::reads_raw() const noexcept { return impl_->raw_base >= 0; }

bool SoundFile::seek(std::int64_t frame) {
  if (!impl_->sf) return false;
  if (impl_->raw_base >= 0) {  // libsndfile is not read from again: the position is ours
    if (frame < 0 || frame > impl_->info.frames) return false;
    impl_->raw_frame = frame;
    return true;
  }
  return sf_seek(impl_->sf, frame, SEEK_SET) == frame;
}

int SoundFile::fd() const noexcept { return impl_->sf && impl_->file ? impl_->file->fd() : -1; }

bool SoundFile::header_unchanged(std::string& why) {
  Impl& m = *impl_;
  if (!m.sf || m.header.empty()) return true;
  const ssize_t n = m.read_header(m.header_now);
  if (n < 0) {
    why = std::string("read failed: ") + std::strerror(errno);
    return false;
  }
  if (static_cast<std::size_t>(n) == m.header.size() &&
      std::memcmp(m.header_now.data(), m.header.data(), m.header.size()) == 0)
    return true;
  // Changed: read the header again (rare: allocates). A file that still reads as it did — same
  // format, length and samples' offset, e.g. a tag edited after the samples and the RIFF size with
  // it — plays on, its new header kept for the next check.
  SoundFile again;
  Limits same;
  same.i16_reads_only = m.no_scratch;  // the same read path: raw reads are detected again
  std::string error;
  if (again.open(m.file, error, same)) {
    const Impl& a = *again.impl_;
    if (a.info.format == m.info.format && a.info.channels == m.info.channels &&
        a.info.samplerate == m.info.samplerate && a.info.frames == m.info.frames && a.raw_base == m.raw_base &&
        a.header_end == m.header_end) {
      m.header = a.header;
      m.header_now.resize(m.header.size());
      return true;
    }
  }
  why =
      "the file was rewritten while streaming (its header changed since the stream opened: another format or "
      "length): its voice stops here — load it again (with --state-file it waits and loads the file again itself)";
  return false;
}

std::string SoundFile::error() const {
  if (impl_->io_errno != 0) return std::string("read failed: ") + std::strerror(impl_->io_errno);
  return impl_->sf ? sf_strerror(impl_->sf) : sf_strerror(nullptr);
}

bool SoundFile::describes_as_loaded(const FileInfo& loaded, std::string& why) const {
  const FileInfo& now = info_;
  if (now.channels == loaded.channels && now.sample_rate == loaded.sample_rate && now.int16 == loaded.int16 &&
      now.format == loaded.format)
    return true;
  why = "the file changed since it was loaded (was " + loaded.format + ", " + std::to_string(loaded.sample_rate) +
        " Hz, " + std::to_string(loaded.frames) + " frames; now " + now.format + ", " +
        std::to_string(now.sample_rate) + " Hz, " + std::to_string(now.frames) + " frames): load it again";
  return false;
}

}  // namespace stemd::io
