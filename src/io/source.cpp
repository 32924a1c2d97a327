// Loading a source (see source.hpp). Runs on the control thread [control].
#include "source.hpp"

#include <chrono>

namespace stemd::io {

LoadResult load_source(const std::string& path, const std::string& name, const LoadOptions& opts) {
  const auto t0 = std::chrono::steady_clock::now();
  LoadResult r;
  std::string err;
  auto file = FileHandle::open(path, err);
  if (!file) {
    r.error = path + ": " + err;
    return r;
  }
  SoundFile sf;
  if (!sf.open(file, err)) {
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

  const std::int64_t decoded_bytes = info.frames >= 0 ? info.frames * 2 * static_cast<std::int64_t>(sizeof(float)) : -1;
  const bool whole = info.frames >= 0 && decoded_bytes <= opts.preload_limit_bytes;
  const std::int64_t want = whole ? info.frames : opts.head_frames;

  src->data.resize(static_cast<std::size_t>(want) * 2);
  const std::int64_t got = sf.read_stereo(src->data.data(), want);
  if (got < 0) {
    r.error = path + ": " + sf.error();
    return r;
  }
  if (got == 0) {
    r.error = path + ": file has no audio frames";
    return r;
  }

  if (whole || got < want) {
    // Everything is in memory (a short read means the file was shorter than its header said).
    src->truncated = info.frames >= 0 && got < info.frames;
    src->data.resize(static_cast<std::size_t>(got) * 2);
    src->data.shrink_to_fit();
    src->view = engine::VoiceSource{src->data.data(), got, got, false};
  } else {
    src->view = engine::VoiceSource{src->data.data(), got, info.frames >= 0 ? info.frames : 0, true};
  }
  // A file at another rate plays through a resampler (engine); at the output's rate, bit-exact.
  src->view.sample_rate = info.sample_rate == opts.output_rate ? 0 : info.sample_rate;
  src->load_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t0).count();
  r.source = std::move(src);
  return r;
}

}  // namespace stemd::io
