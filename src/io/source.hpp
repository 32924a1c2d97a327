// A source: a loaded file in a numbered slot.
//
// Created by load_source() — on an opener thread for OSC loads (router.hpp), or on the caller's
// thread (scripts, --play, tests) — which opens the file, reads its
// header and decodes either the whole file (decoded size ≤ the preload limit: instant seek,
// loop and retrigger) or its head (≈ 0.5 s, so a voice starts in the next callback while the
// loader thread streams the rest). Immutable afterwards; the audio thread reads `view` only
// while a voice uses it, and the control thread keeps it alive until that voice retires.
#pragma once

#include "fd_budget.hpp"
#include "sound_file.hpp"
#include "stemd/engine.hpp"

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace stemd::io {

// Decoded audio (a whole file, or a streamed file's head), interleaved stereo, charged to the
// memory budget for as long as it exists. Shared, read-only, by every source of the same file.
// Floats; or, for the head of a 16-bit (or narrower) stereo file, its int16 samples as the file
// holds them (half the bytes; the mixer converts x / 32768, the float libsndfile gives).
struct Decoded {
  std::vector<float> samples;
  std::vector<std::int16_t> samples16;  // set instead of `samples` for an int16 head
  Charge charge;
  std::size_t bytes() const noexcept {
    return samples.capacity() * sizeof(float) + samples16.capacity() * sizeof(std::int16_t);
  }
  std::int64_t frames() const noexcept { return static_cast<std::int64_t>((samples.size() + samples16.size()) / 2); }
};

// Identical files (same device and inode, size and modification time) loaded into several ids
// share one decoded copy: a map of weak references, filled and read by every loading thread.
class DecodeCache {
 public:
  std::shared_ptr<const Decoded> find(const FileHandle::Identity& id);
  void insert(const FileHandle::Identity& id, const std::shared_ptr<const Decoded>& d);
  std::size_t size();  // entries still alive (tests)

 private:
  std::mutex mutex_;
  std::map<FileHandle::Identity, std::weak_ptr<const Decoded>> map_;
};

struct LoadOptions {
  int output_rate = 48000;
  std::int64_t preload_limit_bytes = 16ll << 20;  // decoded stereo float size held fully in RAM
  std::int64_t head_frames = 4800;                // pre-decoded start of a streamed file (--head-ms)
  bool int16_heads = true;                        // a 16-bit stereo file's head held as int16
  int max_channels = 32;                          // --max-channels: checked from the header
  // Everything a load holds is charged here first (--max-memory-mb); the default is unlimited
  // but still counted, so memory_bytes is right in every harness.
  std::shared_ptr<MemoryBudget> budget = std::make_shared<MemoryBudget>();
  std::shared_ptr<DecodeCache> cache = std::make_shared<DecodeCache>();  // null: no sharing
  // A streamed file keeps its descriptor: refused unless this budget keeps its reserve
  // (fd_budget.hpp). Null: not checked (tests, tools). Files held in memory are never refused here.
  std::shared_ptr<const FdBudget> fds;
};

// How long this source's streams wait for their reads, measured by the loader thread and shared
// by every stream of the source (adaptive prefetch, see loader_thread.hpp). The plain fields are
// [loader] only; the atomics are published for [control] (new streams' ring size, status).
struct ReadJitter {
  double mean_s = 0.0;  // service time (needy → data in the ring): EWMA mean and variance
  double var_s = 0.0;
  bool seeded = false;
  std::atomic<std::int64_t> target_frames{0};  // the fill target its streams converged to (0: none yet)
};

class Source {
 public:
  std::string path;
  std::string name;
  FileInfo info;
  // The open file a streamed source's streams read. Null for a source held whole in memory: its
  // descriptor is closed once the file is decoded, so its disk can be unmounted while it stays
  // loaded (README, "A media disk mounted late"); and for generated audio.
  std::shared_ptr<FileHandle> file;
  // The file it was loaded from (streamed or in memory; none for generated audio): what
  // /stemd/ensure compares a new open with.
  std::optional<FileHandle::Identity> identity;
  std::vector<float> data;                 // generated audio (a tone): interleaved stereo; empty for files
  std::shared_ptr<const Decoded> decoded;  // a file's whole audio, or its head (maybe shared)
  std::shared_ptr<MemoryBudget> budget;    // what its streams' rings and readers are charged to
  int max_channels = 0;
  engine::VoiceSource view;  // what voices read; points into `data`
  std::int64_t load_ns = 0;  // how long loading took
  bool truncated = false;    // the file held fewer frames than its header said
  // Mutable statistics behind an immutable source: written by [loader] only (see ReadJitter).
  std::shared_ptr<ReadJitter> jitter = std::make_shared<ReadJitter>();

  bool streamed() const noexcept { return view.streamed; }
  std::int64_t total_frames() const noexcept { return view.total_frames; }
  // Decoded audio it refers to (a copy shared with other sources is counted in each of them).
  std::size_t memory_bytes() const noexcept {
    return data.capacity() * sizeof(float) + (decoded ? decoded->bytes() : 0);
  }
};

struct LoadResult {
  std::unique_ptr<Source> source;
  std::string error;  // "<path>: <reason>" when source is null
};

// Opens `path` (O_NONBLOCK, regular files only) and loads it. Any thread but [audio].
LoadResult load_source(const std::string& path, const std::string& name, const LoadOptions& opts);
// Loads an already opened file (MediaPolicy::open: never reopened by name). Any thread but [audio].
LoadResult load_source(std::shared_ptr<FileHandle> file, const std::string& name, const LoadOptions& opts);

}  // namespace stemd::io
