// How the daemon sizes the loader's rings for its flags — shared by `stemd` and `stemd tune`,
// so the tuner measures exactly what the daemon would run. [main]
#pragma once

#include "io/loader_thread.hpp"

#include <algorithm>
#include <cstdint>

namespace stemd::app {

// ring_ms: a stream's ring on a steady disk; ring_min_ms / ring_max_ms: the adaptive-prefetch
// bounds (0 = their defaults: half of ring_ms, and 4 s); period: frames per buffer.
inline io::LoaderConfig loader_config(double ring_ms, double ring_min_ms, double ring_max_ms, std::uint32_t period,
                                      int rate) {
  if (ring_min_ms <= 0) ring_min_ms = std::max(20.0, ring_ms / 2);
  if (ring_max_ms <= 0) ring_max_ms = std::max(4000.0, ring_ms);
  io::LoaderConfig lc;
  const auto p = static_cast<std::int64_t>(period);
  lc.ring_frames = std::max<std::int64_t>(static_cast<std::int64_t>(ring_ms * 1e-3 * rate), 2 * p);
  lc.chunk_frames = std::min<std::int64_t>(8192, std::max<std::int64_t>(lc.ring_frames / 3, 256));
  lc.prefill_frames = std::min<std::int64_t>(lc.ring_frames, std::max<std::int64_t>(lc.chunk_frames, 4 * p));
  lc.ring_min_frames = std::min(lc.ring_frames, static_cast<std::int64_t>(ring_min_ms * 1e-3 * rate));
  lc.ring_max_frames = std::max(lc.ring_frames, static_cast<std::int64_t>(ring_max_ms * 1e-3 * rate));
  lc.period_frames = period;
  lc.sample_rate = rate;
  return lc;
}

}  // namespace stemd::app
