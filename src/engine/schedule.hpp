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
// Entries that hold something the control thread must get back (a play: its voice id; a seek
// with a stream: the stream) are also kept in a "held" list, so clear() visits only those and
// drops everything else at once: O(held) — at most the voices plus the streamed seeks — instead
// of popping n entries (8,192 took 530 µs of one callback).
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

  explicit Schedule(std::size_t capacity)
      : heap_(capacity), slab_(capacity), where_(capacity), free_(capacity), held_(capacity), held_at_(capacity) {}

  // True for an entry the control thread must hear about when it is dropped unapplied.
  static bool holds(const Command& c) noexcept {
    return c.type == CommandType::kPlay || (c.type == CommandType::kSeek && c.play.stream != nullptr);
  }
  std::size_t held() const noexcept { return held_count_; }

  std::size_t size() const noexcept { return size_; }
  std::size_t capacity() const noexcept { return heap_.size(); }
  bool empty() const noexcept { return size_ == 0; }
  bool full() const noexcept { return size_ == heap_.size(); }

  // Adds `c` (keyed by c.at_frame); kNone when full (nothing changed).
  Handle push(const Command& c) noexcept {
    if (full()) return kNone;
    // Free handles: the stack first, then those never used since the last clear.
    const Handle h = free_count_ > 0 ? free_[--free_count_] : static_cast<Handle>(fresh_++);
    slab_[h] = c;
    if (holds(c)) {
      held_at_[h] = static_cast<std::uint32_t>(held_count_);
      held_[held_count_++] = h;
    }
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
  // For changing an entry's arguments in place (never its frame: the heap is keyed by it).
  Command& at(Handle h) noexcept { return slab_[h]; }

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
    if (holds(c)) unhold(h);
    return c;
  }

  // Drops every entry: `visit` is called (with the command) for each held one, then the rest go
  // at once. O(held), never O(n log n). Returns how many entries were dropped.
  template <class Visit>
  std::size_t clear(Visit&& visit) noexcept {
    for (std::size_t i = 0; i < held_count_; ++i) visit(slab_[held_[i]]);
    const std::size_t n = size_;
    ops_ += held_count_ + 1;
    held_count_ = 0;
    size_ = 0;
    free_count_ = 0;
    fresh_ = 0;  // every handle is free again: handed out in order, no stack to rebuild
    return n;
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

  void unhold(Handle h) noexcept {
    const std::uint32_t at = held_at_[h];
    const Handle moved = held_[--held_count_];
    held_[at] = moved;
    held_at_[moved] = at;
  }
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

  std::vector<Node> heap_;              // [0, size_) is a min-heap
  std::vector<Command> slab_;           // the commands, by handle
  std::vector<std::uint32_t> where_;    // handle → index in heap_
  std::vector<Handle> free_;            // freed handles, a stack of free_count_
  std::vector<Handle> held_;            // handles of the held entries, [0, held_count_)
  std::vector<std::uint32_t> held_at_;  // handle → index in held_
  std::size_t size_ = 0;
  std::size_t free_count_ = 0;
  std::size_t fresh_ = 0;  // handles [fresh_, capacity) were never handed out since the last clear
  std::size_t held_count_ = 0;
  std::uint64_t seq_ = 0;
  std::uint64_t ops_ = 0;
};

}  // namespace stemd::engine
