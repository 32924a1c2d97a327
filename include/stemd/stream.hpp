// A stream: the hand-over point between the loader thread and one playing voice.
//
// The loader thread [loader] decodes the file ahead of the voice into the stream's ring and,
// once it will write no more (end of file without loop, or a read error), publishes finish().
// The audio callback [audio] drains the ring. The control thread [control] creates streams
// (through io::LoaderThread) and hands them to the engine inside a Play/Seek command; the engine
// gives them back on the retire queue and the loader deletes them. The engine knows nothing of
// files: it sees only this ring and these flags.
#pragma once

#include "stemd/command.hpp"
#include "stemd/queue.hpp"

#include <atomic>
#include <cstdint>

namespace stemd {

class Stream {
 public:
  explicit Stream(std::size_t ring_frames, SampleFormat format = SampleFormat::kFloat)  // [control]
      : ring_(ring_frames, format) {}
  virtual ~Stream() = default;
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;

  SampleRing& ring() noexcept { return ring_; }

  // [loader] Called after the last write; the audio side sees every frame written before it.
  void finish(engine::EndReason why) noexcept {
    reason_.store(why, std::memory_order_relaxed);
    finished_.store(true, std::memory_order_release);
  }
  // [audio] True once no more frames will arrive. Check the ring *after* this returns true.
  bool finished() const noexcept { return finished_.load(std::memory_order_acquire); }
  engine::EndReason end_reason() const noexcept { return reason_.load(std::memory_order_relaxed); }

  // Whether the loader wraps to the loop start at end of file. [control]/[audio] write, [loader] reads.
  // A change reaches the audio only after what the loader has already queued (≤ one ring).
  void set_loop(bool on) noexcept { loop_.store(on, std::memory_order_relaxed); }
  bool loop() const noexcept { return loop_.load(std::memory_order_relaxed); }

 private:
  SampleRing ring_;
  std::atomic<bool> finished_{false};
  std::atomic<engine::EndReason> reason_{engine::EndReason::kEndOfFile};
  std::atomic<bool> loop_{false};
};

}  // namespace stemd
