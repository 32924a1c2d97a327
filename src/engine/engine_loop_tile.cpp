// Engine::fetch_tiled: an in-memory loop shorter than what a fetch asks for, in one piece (see
// Engine::kTileLoopsBelow). Thread: [audio]; no allocation (tile_ is made with the engine).
#include "stemd/engine.hpp"

#include "engine_voice.hpp"
#include "mix.hpp"

#include <algorithm>
#include <cstring>

namespace stemd::engine {

// The frames fetch() would give wrap by wrap — the region [loop_start, loop_end) from v.pos on,
// repeated, ending where the voice's last pass ends — written as float into `dst` (a resampler's
// or stretcher's scratch: they keep their input) or into tile_ (mixed at once, before the next
// voice's fetch). Output frame i is the region's frame (offset + i) mod len, so the first len
// frames are copied and the rest doubled in place: O(log(frames / len)) copies, whatever the
// number of wraps. The voice's position and passes come out as after the wrap-by-wrap fetches:
// a pass that ends exactly at the block's end leaves the position at loop_end (the wrap, and
// the end of the last pass, are the next fetch's).
std::uint32_t Engine::fetch_tiled(Voice& v, float* dst, std::uint32_t frames, Frames* src) noexcept {
  const VoiceSource& s = *v.src;
  const std::int64_t len = v.loop_end - v.loop_start;
  const std::int64_t offset = v.pos - v.loop_start;  // in [0, len): fetch() wrapped a position at the end
  std::int64_t n = std::min<std::int64_t>(frames, static_cast<std::int64_t>(tile_.size() / 2));
  if (dst != nullptr) n = frames;  // the caller's scratch holds what it asks for
  if (v.passes_left > 0) n = std::min<std::int64_t>(n, (len - offset) + (v.passes_left - 1) * len);
  float* out = dst != nullptr ? dst : tile_.data();
  const auto copy = [&](float* to, std::int64_t from_frame, std::int64_t k) {
    if (s.frames16 != nullptr) {
      to_float(to, s.frames16 + from_frame * 2, static_cast<std::uint32_t>(k));
    } else {
      std::memcpy(to, s.frames + from_frame * 2, static_cast<std::size_t>(k) * 2 * sizeof(float));
    }
  };
  // One period of the output: the region from offset to its end, then from its start.
  const std::int64_t first = std::min(n, len - offset);
  copy(out, v.pos, first);
  if (n > first) copy(out + first * 2, v.loop_start, std::min(n, len) - first);
  // Then doubled: out[i] = out[i − len] for i ≥ len, in copies of len, 2·len, 4·len… frames.
  for (std::int64_t filled = std::min(n, len); filled < n;) {
    const std::int64_t k = std::min(filled, n - filled);
    std::memcpy(out + filled * 2, out, static_cast<std::size_t>(k) * 2 * sizeof(float));
    filled += k;
  }
  const std::int64_t total = offset + n;
  std::int64_t wraps = total / len;
  std::int64_t at = total - wraps * len;
  if (at == 0 && wraps > 0) {  // exactly at a pass's end: that wrap is the next fetch's
    --wraps;
    at = len;
  }
  if (v.passes_left > 0) v.passes_left -= static_cast<std::uint32_t>(wraps);
  v.pos = v.loop_start + at;
  *src = static_cast<const float*>(out);
  return static_cast<std::uint32_t>(n);
}

}  // namespace stemd::engine
