// Loading a source (see source.hpp). Runs on an opener thread (OSC loads) or the caller's.
#include "source.hpp"

#include <fmt/format.h>

#include <chrono>

namespace stemd::io {

std::shared_ptr<const Decoded> DecodeCache::find(const FileHandle::Identity& id) {
  std::lock_guard lock(mutex_);
  auto it = map_.find(id);
  if (it == map_.end()) return nullptr;
  auto d = it->second.lock();
  if (!d) map_.erase(it);
  return d;
}

void DecodeCache::insert(const FileHandle::Identity& id, const std::shared_ptr<const Decoded>& d) {
  std::lock_guard lock(mutex_);
  // Forget the dead entries now and then, so the map stays as small as what is loaded.
  if (map_.size() >= 64 && (map_.size() & 63) == 0) {
    for (auto it = map_.begin(); it != map_.end();) it = it->second.expired() ? map_.erase(it) : std::next(it);
  }
  map_[id] = d;
}

std::size_t DecodeCache::size() {
  std::lock_guard lock(mutex_);
  std::size_t n = 0;
  for (const auto& [id, w] : map_) n += w.expired() ? 0 : 1;
  return n;
}

LoadResult load_source(const std::string& path, const std::string& name, const LoadOptions& opts) {
  std::string err;
  auto file = FileHandle::open(path, err);
  if (!file) {
    LoadResult r;
    r.error = path + ": " + err;
    return r;
  }
  return load_source(std::move(file), name, opts);
}

namespace {

// The first `want` frames of `sf`, as floats or (int16: a 16-bit stereo file) as the file's own
// int16 samples, charged to `budget` before they exist: a header promising gigabytes is refused
// here, not by the kernel. Null with `err` set when the budget refuses or the file has nothing.
std::shared_ptr<Decoded> decode(SoundFile& sf, std::int64_t want, bool int16,
                                const std::shared_ptr<MemoryBudget>& budget, std::string& err) {
  auto d = std::make_shared<Decoded>();
  const std::int64_t sample_bytes = int16 ? 2 : static_cast<std::int64_t>(sizeof(float));
  if (!d->charge.take(budget, want * 2 * sample_bytes, err)) return nullptr;
  std::int64_t got = 0;
  if (int16) {
    d->samples16.resize(static_cast<std::size_t>(want) * 2);
    got = sf.read_stereo_i16(d->samples16.data(), want);
  } else {
    d->samples.resize(static_cast<std::size_t>(want) * 2);
    got = sf.read_stereo(d->samples.data(), want);
  }
  if (got < 0) {
    err = sf.error();
    return nullptr;
  }
  if (got == 0) {
    err = "file has no audio frames";
    if (const FileInfo& i = sf.info(); i.declared_frames > 0 && i.sample_rate > 0) {
      err += fmt::format(
          ": its header declares {} ({:.1f} s), so the file is cut short after its header (an "
          "interrupted copy or download?)",
          i.declared_frames, static_cast<double>(i.declared_frames) / i.sample_rate);
    }
    return nullptr;
  }
  if (got < want) {  // a short read: the file was shorter than its header said
    d->samples.resize(int16 ? 0 : static_cast<std::size_t>(got) * 2);
    d->samples.shrink_to_fit();
    d->samples16.resize(int16 ? static_cast<std::size_t>(got) * 2 : 0);
    d->samples16.shrink_to_fit();
    d->charge.shrink_to(static_cast<std::int64_t>(d->bytes()));
  }
  return d;
}

// How many frames a file whose frame count is not counted from its size (FLAC: STREAMINFO's)
// really holds, when `known` (≥ 1) of its `claimed` frames were decoded at load: `claimed` when
// its last stretch decodes to the end; otherwise where its data ends (a copy cut short), found by
// bisecting with seeks and reading through the last stretch — the frames a stream of it reaches.
// Every probe opens the file anew (the same descriptor, so the same file): a failed seek leaves
// libsndfile's FLAC decoder unusable. No seek aims into the claimed last two blocks (`block`:
// STREAMINFO's largest; else FLAC's limit): libFLAC scans a cut file for a target in its claimed
// last block, 450–570 ms for a 10-minute file. Costs one open, seek and two blocks decoded for a
// whole file (≈ 0.2 ms), ≈ 20 ms more for a cut one. -1 when an open fails.
std::int64_t frames_held(const std::shared_ptr<FileHandle>& file, const SoundFile::Limits& lim, std::int64_t known,
                         std::int64_t claimed, std::int64_t block) {
  const std::int64_t kStretch = 2 * (block > 0 ? block : 65'535);
  std::vector<float> buf;
  bool failed = false;
  auto read_at = [&](std::int64_t at, std::int64_t want) -> std::int64_t {  // frames decoded from `at`
    SoundFile probe;
    std::string err;
    if (failed || !probe.open(file, err, lim)) {
      failed = true;
      return 0;
    }
    if (!probe.seek(at)) return 0;
    buf.resize(static_cast<std::size_t>(want) * 2);
    return std::max<std::int64_t>(0, probe.read_stereo(buf.data(), want));
  };
  std::int64_t lo = known - 1;  // decodes
  std::int64_t hi = std::max(lo, claimed - kStretch);
  if (const std::int64_t n = read_at(hi, claimed - hi); failed || n > 0) return failed ? -1 : hi + n;
  while (hi - lo > kStretch) {  // from here on `hi` does not decode
    const std::int64_t mid = lo + (hi - lo) / 2;
    (read_at(mid, 1) == 1 ? lo : hi) = mid;
  }
  const std::int64_t tail = read_at(lo, hi - lo);
  return failed ? -1 : lo + tail;
}

}  // namespace

LoadResult load_source(std::shared_ptr<FileHandle> file, const std::string& name, const LoadOptions& opts) {
  const auto t0 = std::chrono::steady_clock::now();
  LoadResult r;
  std::string err;
  const std::string path = file->path();
  SoundFile sf;
  SoundFile::Limits lim;
  lim.max_channels = opts.max_channels;
  lim.budget = opts.budget;
  if (!sf.open(file, err, lim)) {
    r.error = path + ": " + err;
    return r;
  }
  const FileInfo& info = sf.info();
  if (info.sample_rate < 1000 || info.sample_rate > 768000) {
    r.error = path + ": unsupported sample rate " + std::to_string(info.sample_rate) + " Hz";
    return r;
  }
  auto src = std::make_unique<Source>();
  src->path = path;
  src->name = name;
  src->info = info;
  src->file = file;
  src->identity = file->identity();
  src->budget = opts.budget;
  src->max_channels = opts.max_channels;

  const std::int64_t decoded_bytes = info.frames >= 0 ? info.frames * 2 * static_cast<std::int64_t>(sizeof(float)) : -1;
  const bool whole = info.frames >= 0 && decoded_bytes <= opts.preload_limit_bytes;
  const std::int64_t want = whole ? info.frames : opts.head_frames;
  // Streamed, it keeps its descriptor for as long as it is loaded: refused before its head is
  // decoded when the descriptors' reserve would not stay free (in memory, it closes it at return).
  if (!whole && opts.fds && !opts.fds->admit_held(err)) {
    r.error = path + ": " + err;
    return r;
  }

  std::shared_ptr<const Decoded> shared = opts.cache ? opts.cache->find(file->identity()) : nullptr;
  if (!shared) {
    auto d = decode(sf, want, !whole && opts.int16_heads && sf.reads_i16(), opts.budget, err);
    if (!d) {
      r.error = path + ": " + err;
      return r;
    }
    shared = std::move(d);
    if (opts.cache) opts.cache->insert(file->identity(), shared);
  }
  src->decoded = shared;
  const std::int64_t got = shared->frames();
  const float* f = shared->samples.empty() ? nullptr : shared->samples.data();
  const std::int16_t* f16 = shared->samples16.empty() ? nullptr : shared->samples16.data();
  if (whole || got < want) {
    // Everything is in memory (a short read means the file was shorter than its header said).
    src->truncated = info.frames >= 0 && (got < info.frames || info.declared_frames > info.frames);
    src->view = engine::VoiceSource{f, got, got, false};
    // Nothing reads it again: its descriptor goes with the last reference (this function's and
    // the decoder's, at return), so the disk it lies on is not kept busy (outside pass 21, finding 8).
    src->file = nullptr;
  } else {
    if (!info.sized && info.seekable && info.frames > got) {  // a cut FLAC still declares the whole
      const std::int64_t held = frames_held(file, lim, got, info.frames, info.max_block);
      if (held >= got && held < info.frames) {
        src->info.declared_frames = info.frames;
        src->info.frames = held;
      }
    }
    src->view = engine::VoiceSource{f, got, src->info.frames >= 0 ? src->info.frames : 0, true};
    src->truncated = src->info.declared_frames > src->info.frames;  // streamed: the header claims more
  }
  src->view.frames16 = f16;
  // A file at another rate plays through a resampler (engine); at the output's rate, bit-exact.
  src->view.sample_rate = info.sample_rate == opts.output_rate ? 0 : info.sample_rate;
  src->load_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t0).count();
  r.source = std::move(src);
  return r;
}

}  // namespace stemd::io
