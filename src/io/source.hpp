// A source: a loaded file in a numbered slot.
//
// Created by load_source() on the control thread [control], which opens the file, reads its
// header and decodes either the whole file (decoded size ≤ the preload limit: instant seek,
// loop and retrigger) or its head (≈ 0.5 s, so a voice starts in the next callback while the
// loader thread streams the rest). Immutable afterwards; the audio thread reads `view` only
// while a voice uses it, and the control thread keeps it alive until that voice retires.
#pragma once

#include "sound_file.hpp"
#include "stemd/engine.hpp"

#include <atomic>
#include <memory>
#include <string>
#include <vector>

namespace stemd::io {

struct LoadOptions {
  int output_rate = 48000;
  std::int64_t preload_limit_bytes = 16ll << 20;  // decoded stereo float size held fully in RAM
  std::int64_t head_frames = 24000;               // pre-decoded start of a streamed file
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
  std::shared_ptr<FileHandle> file;
  std::vector<float> data;   // whole file, or its head; interleaved stereo
  engine::VoiceSource view;  // what voices read; points into `data`
  std::int64_t load_ns = 0;  // how long loading took
  bool truncated = false;    // the file held fewer frames than its header said
  // Mutable statistics behind an immutable source: written by [loader] only (see ReadJitter).
  std::shared_ptr<ReadJitter> jitter = std::make_shared<ReadJitter>();

  bool streamed() const noexcept { return view.streamed; }
  std::int64_t total_frames() const noexcept { return view.total_frames; }
  std::size_t memory_bytes() const noexcept { return data.capacity() * sizeof(float); }
};

struct LoadResult {
  std::unique_ptr<Source> source;
  std::string error;  // "<path>: <reason>" when source is null
};

LoadResult load_source(const std::string& path, const std::string& name, const LoadOptions& opts);

}  // namespace stemd::io
