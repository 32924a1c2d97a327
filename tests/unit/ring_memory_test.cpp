// Ring storage in huge-page chunks (include/stemd/ring_memory.hpp).
#include "stemd/ring_memory.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include "io/memory_budget.hpp"
#include "stemd/queue.hpp"

namespace stemd {
namespace {

namespace rm = ring_memory;

// Whether the mapping holding `p` is marked for huge pages ("hg" in /proc/self/smaps' VmFlags).
bool advised_huge(const void* p) {
  std::ifstream in("/proc/self/smaps");
  std::string line;
  const auto addr = reinterpret_cast<std::uintptr_t>(p);
  bool inside = false;
  while (std::getline(in, line)) {
    unsigned long lo = 0, hi = 0;
    if (std::sscanf(line.c_str(), "%lx-%lx ", &lo, &hi) == 2 && line.find(':') > line.find(' ')) {
      inside = addr >= lo && addr < hi;
    } else if (inside && line.rfind("VmFlags:", 0) == 0) {
      return line.find(" hg") != std::string::npos;
    }
  }
  return false;
}

TEST(RingMemory, RingsOfOneSizeShareA2MiBChunkAdvisedHuge) {
  const rm::Stats before = rm::stats();
  constexpr std::size_t kBytes = 76800;  // the default ring: 400 ms of int16 stereo at 48 kHz
  std::vector<std::byte*> rings;
  for (int i = 0; i < 20; ++i) rings.push_back(rm::allocate(kBytes));
  std::set<std::uintptr_t> chunks;
  for (std::size_t i = 0; i < rings.size(); ++i) {
    const auto a = reinterpret_cast<std::uintptr_t>(rings[i]);
    EXPECT_EQ(a % rm::kPageBytes, 0u);
    chunks.insert(a / rm::kChunkBytes);
    std::memset(rings[i], static_cast<int>(i), kBytes);  // every byte is usable and no two overlap
  }
  for (std::size_t i = 0; i < rings.size(); ++i) {
    EXPECT_EQ(static_cast<int>(rings[i][0]), static_cast<int>(i));
    EXPECT_EQ(static_cast<int>(rings[i][kBytes - 1]), static_cast<int>(i));
  }
  EXPECT_EQ(chunks.size(), 1u) << "20 rings of 19 pages fit one 2 MiB chunk (26 do)";
  const rm::Stats during = rm::stats();
  EXPECT_EQ(during.chunks - before.chunks, 1u);
  EXPECT_EQ(during.slot_bytes - before.slot_bytes, 20u * 19u * 4096u);  // 76,800 B → 19 pages
  EXPECT_TRUE(advised_huge(rings[0])) << "the chunk is not marked MADV_HUGEPAGE";
  for (auto* p : rings) rm::release(p, kBytes);
  const rm::Stats after = rm::stats();
  EXPECT_EQ(after.slot_bytes, before.slot_bytes);
  EXPECT_LE(after.chunks - before.chunks, 1u) << "at most one empty chunk is kept per size";
}

TEST(RingMemory, EmptyChunksBeyondOnePerSizeAreUnmapped) {
  const rm::Stats before = rm::stats();
  constexpr std::size_t kBytes = 100 * 1024;  // 20 per chunk
  std::vector<std::byte*> rings;
  for (int i = 0; i < 100; ++i) rings.push_back(rm::allocate(kBytes));  // 5 chunks
  EXPECT_EQ(rm::stats().chunks - before.chunks, 5u);
  for (auto* p : rings) rm::release(p, kBytes);
  EXPECT_EQ(rm::stats().chunks - before.chunks, 1u);
  // The kept chunk serves the next ring: no new mapping.
  std::byte* again = rm::allocate(kBytes);
  EXPECT_EQ(rm::stats().chunks - before.chunks, 1u);
  rm::release(again, kBytes);
}

TEST(RingMemory, ALargeRingGetsAMappingOfItsOwnSizeAndGivesItBack) {
  const rm::Stats before = rm::stats();
  constexpr std::size_t kBytes = 3 * 1024 * 1024;
  std::byte* p = rm::allocate(kBytes);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(p) % rm::kChunkBytes, 0u);
  std::memset(p, 7, kBytes);
  // Its own size, not rounded up to 2 MiB (before: 4 MiB held for 3 MiB).
  EXPECT_EQ(rm::stats().chunk_bytes - before.chunk_bytes, kBytes);
  EXPECT_EQ(rm::stats().slack_bytes(), before.slack_bytes());
  rm::release(p, kBytes);
  EXPECT_EQ(rm::stats().chunk_bytes, before.chunk_bytes);
  EXPECT_EQ(rm::stats().chunks, before.chunks);
}

TEST(RingMemory, SampleRingsTakeTheirStorageFromIt) {
  const rm::Stats before = rm::stats();
  {
    SampleRing ring(19200, SampleFormat::kInt16);
    EXPECT_EQ(rm::stats().slot_bytes - before.slot_bytes, 19u * 4096u);
  }
  EXPECT_EQ(rm::stats().slot_bytes, before.slot_bytes);
}

// The chunks' free part counts against --max-memory-mb: a ring of a size no other ring has maps
// (and touches) a 2 MiB chunk for itself, and a client opening streams of many ring sizes held
// ~2 MiB each beyond what the budget saw (before: charged only the ring's own bytes).
TEST(RingMemory, TheChunksFreePartCountsAgainstTheMemoryBudget) {
  constexpr std::size_t kOdd = 37 * 4096;  // a size no other test uses: a chunk of its own
  const auto slack0 = static_cast<std::int64_t>(rm::stats().slack_bytes());
  io::MemoryBudget budget(slack0 + (1 << 20));  // 1 MiB beyond the slack already there
  std::string err;
  ASSERT_TRUE(budget.try_take(kOdd, err)) << err;  // charged before allocating, as the loader does
  std::byte* p = rm::allocate(kOdd);
  EXPECT_GT(static_cast<std::int64_t>(rm::stats().slack_bytes()) - slack0, 1 << 20);
  EXPECT_FALSE(budget.try_take(64 * 1024, err)) << "the chunk's free 1.85 MiB is held too";
  EXPECT_NE(err.find("memory budget ("), std::string::npos) << err;
  rm::release(p, kOdd);
  budget.give_back(kOdd);
  // Its empty chunk is kept for the next ring of its size (one per size): still resident, still counted.
  EXPECT_EQ(static_cast<std::int64_t>(rm::stats().slack_bytes()) - slack0, static_cast<std::int64_t>(rm::kChunkBytes));
}

}  // namespace
}  // namespace stemd
