// The monitor tap: the master, as int16 stereo, from the audio thread to the web monitor's
// network thread (issue 16). A single-producer, single-consumer ring of fixed chunks.
//
//   [audio]   write(): converts the block just rendered into the chunk being filled and hands
//             every full chunk over; never waits and never allocates. With no free chunk (the
//             reader is behind) the chunk is dropped and counted: the stamps show the gap.
//             Does nothing while no one listens (enabled() false).
//   [network] read(): takes the oldest full chunk; set_enabled(): whether anyone listens.
// Each chunk holds kChunkFrames consecutive frames and the stream frame number (output frames
// since the engine started, the engine's own clock) of its first frame.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <memory>

namespace stemd::engine {

class MonitorTap {
 public:
  static constexpr std::uint32_t kChunkFrames = 256;  // 5.3 ms at 48 kHz
  static constexpr std::uint32_t kChunks = 256;       // 1.4 s at 48 kHz; power of two
  struct Chunk {
    std::int64_t frame = 0;                  // stream frame of samples[0..1]
    std::int16_t samples[kChunkFrames * 2];  // interleaved L R
  };

  MonitorTap() : chunks_(new Chunk[kChunks]) {}

  bool enabled() const noexcept { return enabled_.load(std::memory_order_relaxed); }
  void set_enabled(bool on) noexcept { enabled_.store(on, std::memory_order_relaxed); }  // [network]

  // [audio] `frames` interleaved stereo float frames whose first is stream frame `first`.
  void write(const float* in, std::uint32_t frames, std::int64_t first) noexcept {
    if (!enabled()) {
      fill_ = 0;
      return;
    }
    if (fill_ > 0 && first != next_frame_) fill_ = 0;  // a discontinuity: start a new chunk
    std::uint32_t done = 0;
    while (done < frames) {
      const std::uint64_t w = write_.load(std::memory_order_relaxed);
      if (fill_ == 0) {  // a chunk starts: is its slot free? (the reader only ever frees more)
        chunk_ok_ = w - read_.load(std::memory_order_acquire) < kChunks;
        if (chunk_ok_) chunks_[w & (kChunks - 1)].frame = first + done;
      }
      const std::uint32_t n = std::min(frames - done, kChunkFrames - fill_);
      if (chunk_ok_)
        convert(in + 2 * static_cast<std::size_t>(done), chunks_[w & (kChunks - 1)].samples + 2 * fill_, n);
      fill_ += n;
      done += n;
      if (fill_ == kChunkFrames) {
        fill_ = 0;
        if (chunk_ok_) {
          write_.store(w + 1, std::memory_order_release);
        } else {
          dropped_.fetch_add(1, std::memory_order_relaxed);
        }
      }
    }
    next_frame_ = first + frames;
  }

  // [network] The oldest full chunk into `out`; false when none is waiting.
  bool read(Chunk& out) noexcept {
    const std::uint64_t r = read_.load(std::memory_order_relaxed);
    if (r == write_.load(std::memory_order_acquire)) return false;
    std::memcpy(&out, &chunks_[r & (kChunks - 1)], sizeof(Chunk));
    read_.store(r + 1, std::memory_order_release);
    return true;
  }
  std::uint64_t dropped() const noexcept { return dropped_.load(std::memory_order_relaxed); }
  std::uint64_t written() const noexcept { return write_.load(std::memory_order_relaxed); }

 private:
  static void convert(const float* in, std::int16_t* out, std::uint32_t frames) noexcept {
    for (std::uint32_t i = 0; i < frames * 2; ++i) {
      const float x = std::clamp(in[i], -1.0f, 1.0f) * 32767.0f;
      out[i] = static_cast<std::int16_t>(x >= 0.0f ? x + 0.5f : x - 0.5f);
    }
  }

  std::unique_ptr<Chunk[]> chunks_;
  alignas(64) std::atomic<std::uint64_t> write_{0};  // chunks handed over
  alignas(64) std::atomic<std::uint64_t> read_{0};   // chunks taken
  std::atomic<std::uint64_t> dropped_{0};
  std::atomic<bool> enabled_{false};
  std::uint32_t fill_ = 0;       // [audio] frames in the chunk being filled
  bool chunk_ok_ = false;        // [audio] it has a free slot (else it is dropped when full)
  std::int64_t next_frame_ = 0;  // [audio] the frame that continues it
};

}  // namespace stemd::engine
