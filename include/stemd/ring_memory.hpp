// Storage for sample rings (SampleRing), in chunks the kernel is asked to back with huge pages.
//
// Why: at 1024 streaming voices the audio thread reads 1024 short spans a callback, each in a
// different ring, and the loader copies into as many: with 4 KiB pages that is about two TLB
// misses per voice per callback on each side (the rings together are far beyond the TLB's reach).
// Rings carved out of 2 MiB-aligned chunks marked MADV_HUGEPAGE (transparent huge pages, when the
// kernel has them: "always" or "madvise" in /sys/kernel/mm/transparent_hugepage/enabled) need one
// TLB entry per 2 MiB instead. Without THP the chunks are ordinary pages and nothing changes.
//
// Slots of one size share a chunk (sizes rounded up to 4 KiB); a ring larger than a quarter of a
// chunk gets a mapping of its own. A chunk whose slots are all free is unmapped, except one per
// size kept for the next ring. Pages are touched when a chunk is mapped, on the allocating
// thread, so neither the loader nor the audio thread takes a page fault in a new ring.
// Thread-safe (a mutex): [control]/[loader] only, never the audio thread.
#pragma once

#include <cstddef>
#include <cstdint>

namespace stemd::ring_memory {

inline constexpr std::size_t kChunkBytes = std::size_t{2} << 20;
inline constexpr std::size_t kPageBytes = 4096;

// At least `bytes` bytes, 4 KiB-aligned (contents unspecified, like new[]). Throws std::bad_alloc when the system has
// none.
std::byte* allocate(std::size_t bytes);
// `bytes` as given to allocate(). Null is ignored.
void release(std::byte* p, std::size_t bytes) noexcept;

struct Stats {
  std::uint64_t chunk_bytes = 0;   // mapped for rings (shared chunks and rings of their own)
  std::uint64_t slot_bytes = 0;    // handed out, rounded up to 4 KiB
  std::uint64_t chunks = 0;        // mappings (shared chunks and rings of their own)
  std::uint64_t huge_advised = 0;  // mappings the kernel accepted MADV_HUGEPAGE for
  // Mapped (and touched, so resident) but not handed to a ring: the free slots of shared chunks.
  // At most two chunks' worth per ring size (a partly used one and the empty one kept).
  std::uint64_t slack_bytes() const noexcept { return chunk_bytes - slot_bytes; }
};
Stats stats() noexcept;

// Deleter for unique_ptr<std::byte[], Deleter>.
struct Deleter {
  std::size_t bytes = 0;
  void operator()(std::byte* p) const noexcept { release(p, bytes); }
};

}  // namespace stemd::ring_memory
