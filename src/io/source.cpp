// Loading a source (see source.hpp). Runs on the control thread [control].
#include "source.hpp"

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
  src->budget = opts.budget;
  src->max_channels = opts.max_channels;

  const std::int64_t decoded_bytes = info.frames >= 0 ? info.frames * 2 * static_cast<std::int64_t>(sizeof(float)) : -1;
  const bool whole = info.frames >= 0 && decoded_bytes <= opts.preload_limit_bytes;
  const std::int64_t want = whole ? info.frames : opts.head_frames;

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
  } else {
    src->view = engine::VoiceSource{f, got, info.frames >= 0 ? info.frames : 0, true};
    src->truncated = info.declared_frames > info.frames;  // streamed: what the header claims beyond the file
  }
  src->view.frames16 = f16;
  // A file at another rate plays through a resampler (engine); at the output's rate, bit-exact.
  src->view.sample_rate = info.sample_rate == opts.output_rate ? 0 : info.sample_rate;
  src->load_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t0).count();
  r.source = std::move(src);
  return r;
}

}  // namespace stemd::io
