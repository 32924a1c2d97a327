// Ring storage in huge-page chunks: include/stemd/ring_memory.hpp says why.
#include "stemd/ring_memory.hpp"

#include <sys/mman.h>

#include <cstdint>
#include <map>
#include <mutex>
#include <new>
#include <set>
#include <vector>

namespace stemd::ring_memory {
namespace {

struct Chunk {
  std::size_t map_bytes = 0;   // the mapping's length
  std::size_t slot_bytes = 0;  // one ring's share (rounded to 4 KiB)
  std::uint32_t used = 0;
  std::vector<std::uint32_t> free;  // slot indices not handed out
};

struct State {
  std::mutex m;
  std::map<std::uintptr_t, Chunk> chunks;                // by base address
  std::map<std::size_t, std::set<std::uintptr_t>> open;  // slot size → chunks with a free slot
  Stats stats;
};

State& state() {
  static State* s = new State;  // never destroyed: rings may be released during static destruction
  return *s;
}

std::size_t round_up(std::size_t n, std::size_t to) { return (n + to - 1) / to * to; }

// A mapping of `bytes` (a multiple of 4 KiB) starting on a 2 MiB boundary, advised huge and touched.
std::byte* map_chunk(std::size_t bytes, Stats& st) {
  const std::size_t over = bytes + kChunkBytes;
  void* raw = ::mmap(nullptr, over, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED) throw std::bad_alloc();
  const auto start = reinterpret_cast<std::uintptr_t>(raw);
  const std::uintptr_t base = round_up(start, kChunkBytes);
  if (base > start) ::munmap(raw, base - start);
  const std::uintptr_t end = base + bytes;
  if (start + over > end) ::munmap(reinterpret_cast<void*>(end), start + over - end);
  auto* p = reinterpret_cast<std::byte*>(base);
#ifdef MADV_HUGEPAGE
  if (::madvise(p, bytes, MADV_HUGEPAGE) == 0) ++st.huge_advised;
#endif
  // Fault every page in here, on the allocating thread, not in the loader's or mixer's first pass.
  for (std::size_t at = 0; at < bytes; at += kPageBytes) reinterpret_cast<volatile std::byte*>(p)[at] = std::byte{0};
  ++st.chunks;
  st.chunk_bytes += bytes;
  return p;
}

void unmap_chunk(std::uintptr_t base, const Chunk& c, Stats& st) noexcept {
  ::munmap(reinterpret_cast<void*>(base), c.map_bytes);
  --st.chunks;
  st.chunk_bytes -= c.map_bytes;
}

}  // namespace

std::byte* allocate(std::size_t bytes) {
  const std::size_t slot = round_up(bytes > 0 ? bytes : 1, kPageBytes);
  State& s = state();
  std::lock_guard<std::mutex> lock(s.m);
  if (slot > kChunkBytes / 4) {    // a mapping of its own, 2 MiB-aligned: its whole 2 MiB parts can be huge pages
    const std::size_t len = slot;  // not rounded to 2 MiB: a 600 KiB ring would hold 2 MiB
    std::byte* p = map_chunk(len, s.stats);
    s.chunks.emplace(reinterpret_cast<std::uintptr_t>(p), Chunk{len, slot, 1, {}});
    s.stats.slot_bytes += slot;
    return p;
  }
  auto& open = s.open[slot];
  if (open.empty()) {
    std::byte* p = map_chunk(kChunkBytes, s.stats);
    Chunk c{kChunkBytes, slot, 0, {}};
    const auto n = static_cast<std::uint32_t>(kChunkBytes / slot);
    c.free.reserve(n);
    for (std::uint32_t i = n; i-- > 0;) c.free.push_back(i);  // lowest address first
    const auto base = reinterpret_cast<std::uintptr_t>(p);
    s.chunks.emplace(base, std::move(c));
    open.insert(base);
  }
  const std::uintptr_t base = *open.begin();
  Chunk& c = s.chunks.at(base);
  const std::uint32_t i = c.free.back();
  c.free.pop_back();
  ++c.used;
  if (c.free.empty()) open.erase(base);
  s.stats.slot_bytes += slot;
  return reinterpret_cast<std::byte*>(base + static_cast<std::uintptr_t>(i) * slot);
}

void release(std::byte* p, std::size_t bytes) noexcept {
  if (p == nullptr) return;
  (void)bytes;  // the chunk knows its slot size
  State& s = state();
  std::lock_guard<std::mutex> lock(s.m);
  const auto addr = reinterpret_cast<std::uintptr_t>(p);
  auto it = s.chunks.upper_bound(addr);
  if (it == s.chunks.begin()) return;  // not ours: nothing sane to do
  --it;
  const std::uintptr_t base = it->first;
  Chunk& c = it->second;
  if (addr >= base + c.map_bytes) return;
  s.stats.slot_bytes -= c.slot_bytes;
  if (c.slot_bytes > kChunkBytes / 4) {  // a ring's own mapping
    unmap_chunk(base, c, s.stats);
    s.chunks.erase(it);
    return;
  }
  c.free.push_back(static_cast<std::uint32_t>((addr - base) / c.slot_bytes));
  --c.used;
  auto& open = s.open[c.slot_bytes];
  open.insert(base);
  if (c.used > 0) return;
  // Empty: keep it if it is the only chunk of its size with room, else give it back.
  if (open.size() > 1) {
    open.erase(base);
    unmap_chunk(base, c, s.stats);
    s.chunks.erase(it);
  }
}

Stats stats() noexcept {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.m);
  return s.stats;
}

}  // namespace stemd::ring_memory
