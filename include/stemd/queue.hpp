// Fixed-capacity single-producer/single-consumer queues that cross thread boundaries.
//
// Thin wrappers around Boost.Lockfree's spsc_queue (a well-kept, wait-free ring) so the rest of
// the code names *what* crosses (Command, Event, samples) rather than the library:
//   - SpscQueue<T, N>: trivially-copyable messages (commands in, events and retirees out).
//     Producer and consumer threads are fixed per queue and stated where each queue is declared.
//   - SampleRing: one per streaming voice; the loader thread [loader] writes interleaved stereo
//     frames (float, or int16 for 16-bit files: half the bytes), the audio callback [audio]
//     reads them, in place or by copy. Capacity is fixed
//     at construction (which allocates, so it happens on the control thread before the ring is
//     handed over).
// Nothing here blocks or allocates after construction.
#pragma once

#include <boost/lockfree/spsc_queue.hpp>

#include "stemd/ring_memory.hpp"

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <type_traits>

namespace stemd {

template <typename T, std::size_t Capacity>
class SpscQueue {
  static_assert(std::is_trivially_copyable_v<T>, "messages crossing threads must be trivially copyable");

 public:
  bool push(const T& v) noexcept { return q_.push(v); }                          // [producer] false when full
  bool pop(T& v) noexcept { return q_.pop(v); }                                  // [consumer] false when empty
  std::size_t read_available() const noexcept { return q_.read_available(); }    // [consumer]
  std::size_t write_available() const noexcept { return q_.write_available(); }  // [producer]
  static constexpr std::size_t capacity() noexcept { return Capacity; }

 private:
  boost::lockfree::spsc_queue<T, boost::lockfree::capacity<Capacity>> q_;
};

// Interleaved stereo frames, float or int16 (SampleFormat, fixed at construction). All counts are
// in frames. An int16 ring holds a 16-bit file's samples as the file has them (half the bytes of
// float, written by the decoder straight into the ring); the reader converts while it mixes
// (x / 32768, exactly the float libsndfile would have produced). The typed accessors (float or
// int16) must match the ring's format: read() converts either to float.
//
// A wait-free SPSC ring of its own (not Boost's) so that both sides can work *in place*: the
// audio callback mixes straight out of the readable region (read_spans(), then consume()) and the
// loader can decode straight into the writable region (write_spans(), then commit()). The region
// handed out stays untouched by the other side until it is consumed / committed: the consumer's
// read position is published only by consume(), the producer's write position only by commit().
// Positions are monotonic 64-bit frame counters (they never wrap in practice: 2^64 frames is
// millions of years at 48 kHz), so readable = write − read and full vs empty needs no spare slot.
//   - producer: writes frames, then publishes write_pos_ (release); reads read_pos_ (acquire)
//     before reusing space the consumer has given back.
//   - consumer: reads write_pos_ (acquire) before touching frames, then publishes read_pos_
//     (release) once it no longer needs them.
enum class SampleFormat : std::uint8_t { kFloat, kInt16 };

class SampleRing {
 public:
  static constexpr int kChannels = 2;
  static constexpr float kInt16Scale = 1.0f / 32768.0f;  // what libsndfile's float read does, exactly
  static constexpr std::size_t bytes_per_frame(SampleFormat f) noexcept {
    return kChannels * (f == SampleFormat::kInt16 ? sizeof(std::int16_t) : sizeof(float));
  }

  // Up to two contiguous pieces of the ring (the second one non-empty only across the wrap).
  template <typename T>
  struct Spans {
    T* first = nullptr;
    std::size_t first_frames = 0;
    T* second = nullptr;
    std::size_t second_frames = 0;
    std::size_t frames() const noexcept { return first_frames + second_frames; }
  };

  explicit SampleRing(std::size_t capacity_frames, SampleFormat format = SampleFormat::kFloat)  // [control] allocates
      : capacity_frames_(capacity_frames > 0 ? capacity_frames : 1),
        format_(format),
        buf_(ring_memory::allocate(capacity_frames_ * bytes_per_frame(format)),
             ring_memory::Deleter{capacity_frames_ * bytes_per_frame(format)}) {}

  std::size_t capacity_frames() const noexcept { return capacity_frames_; }
  SampleFormat format() const noexcept { return format_; }
  std::size_t capacity_bytes() const noexcept { return capacity_frames_ * bytes_per_frame(format_); }

  // ---- producer [loader]
  std::size_t writable_frames() const noexcept {
    return capacity_frames_ - static_cast<std::size_t>(write_pos_.load(std::memory_order_relaxed) -
                                                       read_pos_.load(std::memory_order_acquire));
  }
  // The writable region, at most `max_frames` (default: all of it). Fill it, then commit().
  Spans<float> write_spans(std::size_t max_frames = SIZE_MAX) noexcept {  // float rings
    const std::uint64_t w = write_pos_.load(std::memory_order_relaxed);
    return spans<float>(w, std::min(max_frames, writable_frames()));
  }
  Spans<std::int16_t> write_spans_i16(std::size_t max_frames = SIZE_MAX) noexcept {  // int16 rings
    const std::uint64_t w = write_pos_.load(std::memory_order_relaxed);
    return spans<std::int16_t>(w, std::min(max_frames, writable_frames()));
  }
  // Publishes `frames` frames at the start of the writable region (≤ what write_spans gave).
  void commit(std::size_t frames) noexcept {
    write_pos_.store(write_pos_.load(std::memory_order_relaxed) + frames, std::memory_order_release);
  }
  // Copies and publishes; returns frames written (fewer than asked when the ring is nearly full).
  // Float rings only.
  std::size_t write(const float* frames, std::size_t count) noexcept {
    const Spans<float> s = write_spans(count);
    copy_frames(s.first, frames, s.first_frames);
    copy_frames(s.second, frames + s.first_frames * kChannels, s.second_frames);
    commit(s.frames());
    return s.frames();
  }

  // ---- consumer [audio]
  std::size_t readable_frames() const noexcept {
    return static_cast<std::size_t>(write_pos_.load(std::memory_order_acquire) -
                                    read_pos_.load(std::memory_order_relaxed));
  }
  // The readable region, at most `max_frames`. Use it, then consume().
  Spans<const float> read_spans(std::size_t max_frames = SIZE_MAX) const noexcept {  // float rings
    const std::uint64_t r = read_pos_.load(std::memory_order_relaxed);
    return spans<const float>(r, std::min(max_frames, readable_frames()));
  }
  Spans<const std::int16_t> read_spans_i16(std::size_t max_frames = SIZE_MAX) const noexcept {  // int16 rings
    const std::uint64_t r = read_pos_.load(std::memory_order_relaxed);
    return spans<const std::int16_t>(r, std::min(max_frames, readable_frames()));
  }
  // Gives `frames` frames at the start of the readable region back to the producer.
  void consume(std::size_t frames) noexcept {
    const std::uint64_t r = read_pos_.load(std::memory_order_relaxed) + frames;
    read_pos_.store(r, std::memory_order_release);
    ring_bell_if_low(r);
  }
  // Copies (as float, whatever the ring's format) and consumes; returns frames read.
  std::size_t read(float* frames, std::size_t count) noexcept {
    if (format_ == SampleFormat::kInt16) {
      const Spans<const std::int16_t> s = read_spans_i16(count);
      convert_frames(frames, s.first, s.first_frames);
      convert_frames(frames + s.first_frames * kChannels, s.second, s.second_frames);
      consume(s.frames());
      return s.frames();
    }
    const Spans<const float> s = read_spans(count);
    copy_frames(frames, s.first, s.first_frames);
    copy_frames(frames + s.first_frames * kChannels, s.second, s.second_frames);
    consume(s.frames());
    return s.frames();
  }
  // Drops everything readable (used when a voice jumps position). Only the consumer may call.
  void discard_readable() noexcept {
    const std::uint64_t r = write_pos_.load(std::memory_order_acquire);
    read_pos_.store(r, std::memory_order_release);
    ring_bell_if_low(r);
  }

  // ---- refill doorbell (optional): lets a producer that serves thousands of rings skip the ones
  // that need nothing without touching them. The consumer, whenever it has consumed (consume(),
  // read(), discard_readable()) and the fill is at or below the producer's low-water mark, sets
  // the ring's bit in the producer's word — once, until the producer re-arms it. A lock-free
  // atomic OR: real-time safe. Without a doorbell (the default) nothing of this runs.
  // [producer, before the consumer can reach the ring] The word and bit to set.
  void set_doorbell(std::atomic<std::uint64_t>* word, std::uint64_t mask) noexcept {
    bell_ = word;
    bell_mask_ = mask;
  }
  // [producer] The fill (frames) at or below which the consumer rings.
  void set_low_water(std::size_t frames) noexcept {
    if (low_water_.load(std::memory_order_relaxed) != frames) low_water_.store(frames, std::memory_order_relaxed);
  }
  // [producer] It saw the bell: the next consume at or below the mark rings again. Re-arm before
  // reading the fill, so a drop after that read rings anew. A ring that has not rung is left
  // alone: no store into the consumer's line (it would take the line from the audio thread's
  // cache, a miss at its next consume, for every ring the loader's 100-ms sweep looks at) and no
  // fence. Nothing is lost when this load is stale (the consumer has just rung): its bit is set in
  // the producer's word, so the ring is looked at again, and by then the load sees it rung
  // (the consumer stores bell_rung_ before its release fetch_or; the producer's exchange acquires).
  void rearm_doorbell() noexcept {
    if (!bell_rung_.load(std::memory_order_relaxed)) return;
    bell_rung_.store(false, std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_seq_cst);  // pairs with the consumer's fence
  }

  // Either side may ask; the answer is a snapshot. (read first: the later write position is
  // never behind it, so the difference cannot go negative.)
  std::size_t fill_frames_approx() const noexcept {
    const std::uint64_t r = read_pos_.load(std::memory_order_acquire);
    const std::uint64_t w = write_pos_.load(std::memory_order_acquire);
    return static_cast<std::size_t>(std::min<std::uint64_t>(w - r, capacity_frames_));
  }

 private:
  template <typename T>
  Spans<T> spans(std::uint64_t pos, std::size_t frames) const noexcept {
    const auto at = static_cast<std::size_t>(pos % capacity_frames_);
    using Sample = std::remove_const_t<T>;
    auto* base = reinterpret_cast<Sample*>(buf_.get());
    Spans<T> s;
    s.first = base + at * kChannels;
    s.first_frames = std::min(frames, capacity_frames_ - at);
    s.second = base;
    s.second_frames = frames - s.first_frames;
    return s;
  }
  // [consumer] After publishing read position `r`.
  void ring_bell_if_low(std::uint64_t r) noexcept {
    if (bell_ == nullptr) return;
    // Store (read position) then load (rung) here, store (rung) then load (read position) in
    // rearm_doorbell(): a fence on each side, so one of them sees the other's store.
    std::atomic_thread_fence(std::memory_order_seq_cst);
    const std::uint64_t fill = write_pos_.load(std::memory_order_acquire) - r;
    if (fill > low_water_.load(std::memory_order_relaxed) || bell_rung_.load(std::memory_order_relaxed)) return;
    bell_rung_.store(true, std::memory_order_relaxed);
    bell_->fetch_or(bell_mask_, std::memory_order_release);
  }
  static void copy_frames(float* dst, const float* src, std::size_t frames) noexcept {
    if (frames > 0) std::memcpy(dst, src, frames * kChannels * sizeof(float));
  }
  static void convert_frames(float* dst, const std::int16_t* src, std::size_t frames) noexcept {
    for (std::size_t i = 0; i < frames * kChannels; ++i) dst[i] = static_cast<float>(src[i]) * kInt16Scale;
  }

  const std::size_t capacity_frames_;
  const SampleFormat format_;
  // Storage for either format, 4 KiB-aligned, in huge-page chunks (ring_memory.hpp).
  const std::unique_ptr<std::byte[], ring_memory::Deleter> buf_;
  // Each position on its own cache line: the two threads never write the same line.
  alignas(64) std::atomic<std::uint64_t> write_pos_{0};  // [loader] writes
  alignas(64) std::atomic<std::uint64_t> read_pos_{0};   // [audio] writes
  // The doorbell, on the consumer's line (it reads them at every consume; the producer writes
  // low_water_ and re-arms rarely).
  std::atomic<std::uint64_t>* bell_ = nullptr;
  std::uint64_t bell_mask_ = 0;
  std::atomic<std::size_t> low_water_{0};
  std::atomic<bool> bell_rung_{false};
};

}  // namespace stemd
