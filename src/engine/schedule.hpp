// The engine's schedule: commands waiting for their frame [audio].
//
// A fixed-capacity indexed binary min-heap of commands, ordered by (at_frame, arrival): the
// earliest frame first, and commands for one frame in the order they arrived (a group and the
// commands that follow it apply as sent). Every operation is O(log n) comparisons and moves —
// insert, take the earliest, remove any entry by its handle — so the audio thread's work per
// command is bounded whatever order commands arrive in (a sorted list costs O(n) per insert
// when they arrive newest first: 7 ms per callback with 8,192 commands). Entries live in a slab
// and are named by a handle that stays valid until the entry leaves, so the engine can cancel
// one (a stop before its play's frame) without searching.
//
// Everything is allocated by the constructor [control]; nothing after it allocates, locks or
// blocks. ops() counts the comparisons and element moves made so far, so tests can check the
// bound by counting work instead of timing it.
#pragma once

#include "stemd/command.hpp"

#include <cstddef>
#include <cstdint>
#include <vector>

namespace stemd::engine {

class Schedule {
 public:
  using Handle = std::uint32_t;
  static constexpr Handle kNone = 0xffffffffu;

  explicit Schedule(std::size_t capacity) : heap_(capacity), slab_(capacity), where_(capacity), free_(capacity) {
    for (std::size_t i = 0; i < capacity; ++i) free_[i] = static_cast<Handle>(capacity - 1 - i);
    free_count_ = capacity;
  }

  std::size_t size() const noexcept { return size_; }
  std::size_t capacity() const noexcept { return heap_.size(); }
  bool empty() const noexcept { return size_ == 0; }
  bool full() const noexcept { return size_ == heap_.size(); }

  // Adds `c` (keyed by c.at_frame); kNone when full (nothing changed).
  Handle push(const Command& c) noexcept {
    if (full()) return kNone;
    const Handle h = free_[--free_count_];
    slab_[h] = c;
    const std::size_t i = size_++;
    place(i, Node{c.at_frame, seq_++, h});
    sift_up(i);
    return h;
  }

  // The earliest entry (the schedule must not be empty).
  const Command& top() const noexcept { return slab_[heap_[0].slot]; }
  std::int64_t top_frame() const noexcept { return heap_[0].frame; }
  Handle top_handle() const noexcept { return heap_[0].slot; }

  const Command& at(Handle h) const noexcept { return slab_[h]; }

  // Removes the entry `h` (a handle push() returned, still scheduled) and returns it.
  Command remove(Handle h) noexcept {
    const Command c = slab_[h];
    const std::size_t i = where_[h];
    const std::size_t last = --size_;
    if (i != last) {
      place(i, heap_[last]);
      ++ops_;
      // The moved node may belong above or below its new place.
      if (i > 0 && less(heap_[i], heap_[(i - 1) / 2])) {
        sift_up(i);
      } else {
        sift_down(i);
      }
    }
    free_[free_count_++] = h;
    return c;
  }

  Command pop() noexcept { return remove(heap_[0].slot); }

  // Comparisons and moves made so far (work done, for tests and benchmarks).
  std::uint64_t ops() const noexcept { return ops_; }

 private:
  struct Node {
    std::int64_t frame;
    std::uint64_t seq;  // arrival order: ties on the frame go first-come first-served
    Handle slot;
  };

  bool less(const Node& a, const Node& b) noexcept {
    ++ops_;
    return a.frame < b.frame || (a.frame == b.frame && a.seq < b.seq);
  }
  void place(std::size_t i, const Node& n) noexcept {
    heap_[i] = n;
    where_[n.slot] = static_cast<std::uint32_t>(i);
  }
  void sift_up(std::size_t i) noexcept {
    const Node n = heap_[i];
    while (i > 0) {
      const std::size_t parent = (i - 1) / 2;
      if (!less(n, heap_[parent])) break;
      place(i, heap_[parent]);
      ++ops_;
      i = parent;
    }
    place(i, n);
  }
  void sift_down(std::size_t i) noexcept {
    const Node n = heap_[i];
    for (;;) {
      std::size_t child = 2 * i + 1;
      if (child >= size_) break;
      if (child + 1 < size_ && less(heap_[child + 1], heap_[child])) ++child;
      if (!less(heap_[child], n)) break;
      place(i, heap_[child]);
      ++ops_;
      i = child;
    }
    place(i, n);
  }

  std::vector<Node> heap_;            // [0, size_) is a min-heap
  std::vector<Command> slab_;         // the commands, by handle
  std::vector<std::uint32_t> where_;  // handle → index in heap_
  std::vector<Handle> free_;          // free handles, a stack of free_count_
  std::size_t size_ = 0;
  std::size_t free_count_ = 0;
  std::uint64_t seq_ = 0;
  std::uint64_t ops_ = 0;
};

}  // namespace stemd::engine
