// Fixed-capacity single-producer/single-consumer queues that cross thread boundaries.
//
// Thin wrappers around Boost.Lockfree's spsc_queue (a well-kept, wait-free ring) so the rest of
// the code names *what* crosses (Command, Event, samples) rather than the library:
//   - SpscQueue<T, N>: trivially-copyable messages (commands in, events and retirees out).
//     Producer and consumer threads are fixed per queue and stated where each queue is declared.
//   - SampleRing: one per streaming voice; the loader thread [loader] writes interleaved stereo
//     float frames, the audio callback [audio] reads them. Capacity is fixed at construction
//     (which allocates, so it happens on the control thread before the ring is handed over).
// push/pop never block and never allocate.
#pragma once

#include <boost/lockfree/spsc_queue.hpp>

#include <cstddef>
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

// Interleaved stereo float frames. All counts are in frames.
class SampleRing {
 public:
  static constexpr int kChannels = 2;

  explicit SampleRing(std::size_t capacity_frames)  // [control] allocates
      : capacity_frames_(capacity_frames), q_(capacity_frames * kChannels) {}

  std::size_t capacity_frames() const noexcept { return capacity_frames_; }

  // [loader] Returns frames written (may be fewer than asked when the ring is nearly full).
  std::size_t write(const float* frames, std::size_t count) noexcept {
    return q_.push(frames, count * kChannels) / kChannels;
  }
  // [loader]
  std::size_t writable_frames() const noexcept { return q_.write_available() / kChannels; }

  // [audio] Returns frames read.
  std::size_t read(float* frames, std::size_t count) noexcept { return q_.pop(frames, count * kChannels) / kChannels; }
  // [audio]
  std::size_t readable_frames() const noexcept { return q_.read_available() / kChannels; }

  // Either side may ask; the answer is a snapshot.
  std::size_t fill_frames_approx() const noexcept { return capacity_frames_ - q_.write_available() / kChannels; }

  // [audio] Drops everything readable (used when a voice jumps position). Only the consumer may call.
  void discard_readable() noexcept {
    q_.consume_all([](float) {});
  }

 private:
  std::size_t capacity_frames_;
  boost::lockfree::spsc_queue<float> q_;
};

}  // namespace stemd
