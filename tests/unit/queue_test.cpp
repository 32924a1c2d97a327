// SpscQueue and SampleRing: capacity, full/empty, and two-thread ordering.
//
// The two-thread tests run one producer thread and the test thread as consumer, both with
// deterministic (seeded) chunk sizes, and check every value in order. They also run under the
// tsan preset, where the counts shrink so the suite stays a few seconds long.
#include "stemd/queue.hpp"
#include "stemd/command.hpp"
#include "common/engine_driver.hpp"
#include "common/fixtures.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <thread>
#include <vector>

namespace stemd {
namespace {

using engine::Command;
using engine::CommandType;

// A tiny deterministic generator for chunk sizes (same sequence on every run and machine).
struct Lcg {
  std::uint32_t x;
  std::uint32_t next(std::uint32_t bound) {  // [1, bound]
    x = x * 1664525u + 1013904223u;
    return 1 + (x >> 8) % bound;
  }
};

// Spin, yielding, until `ok` or a generous deadline (a stuck queue fails instead of hanging).
template <typename F>
bool spin_until(F ok, std::chrono::steady_clock::time_point deadline) {
  for (std::uint32_t i = 0;; ++i) {
    if (ok()) return true;
    if ((i & 1023) == 0 && std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::yield();
  }
}

Command numbered(std::uint32_t i) {
  Command c{};
  c.type = static_cast<CommandType>(i % 7);
  c.voice = i;
  c.generation = ~i;
  c.frames = i * 3u;
  c.value = static_cast<float>(i & 0xffff);
  c.flag = (i & 1) != 0;
  c.play.position = static_cast<std::int64_t>(i) * 5;
  return c;
}

TEST(SpscQueue, HoldsExactlyItsCapacityThenRefuses) {
  SpscQueue<Command, 8> q;
  EXPECT_EQ(q.capacity(), 8u);
  EXPECT_EQ(q.write_available(), 8u);
  EXPECT_EQ(q.read_available(), 0u);
  Command c{};
  EXPECT_FALSE(q.pop(c)) << "an empty queue must not produce a message";
  for (std::uint32_t i = 0; i < 8; ++i) ASSERT_TRUE(q.push(numbered(i))) << "push " << i;
  EXPECT_EQ(q.write_available(), 0u);
  EXPECT_EQ(q.read_available(), 8u);
  EXPECT_FALSE(q.push(numbered(99))) << "a full queue must refuse, not overwrite";
  for (std::uint32_t i = 0; i < 8; ++i) {
    ASSERT_TRUE(q.pop(c));
    EXPECT_EQ(c.voice, i);
    EXPECT_EQ(c.generation, ~i);
  }
  EXPECT_FALSE(q.pop(c));
  // Wrap-around: the indices have moved; capacity must still be exact.
  for (std::uint32_t round = 0; round < 5; ++round) {
    for (std::uint32_t i = 0; i < 5; ++i) ASSERT_TRUE(q.push(numbered(round * 10 + i)));
    for (std::uint32_t i = 0; i < 5; ++i) {
      ASSERT_TRUE(q.pop(c));
      EXPECT_EQ(c.voice, round * 10 + i);
    }
  }
  for (std::uint32_t i = 0; i < 8; ++i) ASSERT_TRUE(q.push(numbered(i)));
  EXPECT_FALSE(q.push(numbered(8)));
}

TEST(SpscQueue, TwoThreadsDeliverEveryCommandInOrder) {
  const std::uint32_t count = test::kSanitized ? 200'000 : 2'000'000;
  SpscQueue<Command, 64> q;  // small, so the producer keeps hitting "full"
  // A hang's bound (scaled: qemu-aarch64 on a busy machine took longer than 60 s), not a measure.
  const auto deadline = std::chrono::steady_clock::now() + test::scaled(std::chrono::seconds(60));
  std::atomic<bool> producer_ok{true};

  std::thread producer([&] {
    for (std::uint32_t i = 0; i < count; ++i) {
      const Command c = numbered(i);
      if (!spin_until([&] { return q.push(c); }, deadline)) {
        producer_ok = false;
        return;
      }
    }
  });

  std::uint32_t bad = 0;
  std::uint32_t first_bad = 0;
  Command c{};
  for (std::uint32_t i = 0; i < count; ++i) {
    if (!spin_until([&] { return q.pop(c); }, deadline)) break;
    const Command want = numbered(i);
    if (c.voice != want.voice || c.generation != want.generation || c.frames != want.frames || c.value != want.value ||
        c.flag != want.flag || c.type != want.type || c.play.position != want.play.position) {
      if (bad++ == 0) first_bad = i;
    }
  }
  producer.join();
  EXPECT_TRUE(producer_ok.load()) << "producer timed out";
  EXPECT_EQ(bad, 0u) << "first out-of-order/corrupt command at " << first_bad;
  EXPECT_FALSE(q.pop(c)) << "nothing beyond the sequence";
}

TEST(SampleRing, CapacityAndWholeFramesSingleThread) {
  SampleRing ring(5);
  EXPECT_EQ(ring.capacity_frames(), 5u);
  EXPECT_EQ(ring.writable_frames(), 5u);
  EXPECT_EQ(ring.readable_frames(), 0u);
  EXPECT_EQ(ring.fill_frames_approx(), 0u);

  float in[2 * 16];
  for (int i = 0; i < 32; ++i) in[i] = static_cast<float>(i);
  float out[2 * 16];

  EXPECT_EQ(ring.read(out, 4), 0u) << "empty ring reads nothing";
  EXPECT_EQ(ring.write(in, 7), 5u) << "a write larger than the room is cut to whole frames that fit";
  EXPECT_EQ(ring.writable_frames(), 0u);
  EXPECT_EQ(ring.readable_frames(), 5u);
  EXPECT_EQ(ring.fill_frames_approx(), 5u);
  EXPECT_EQ(ring.write(in, 1), 0u) << "full ring accepts nothing";

  for (float& f : out) f = -1.0f;
  EXPECT_EQ(ring.read(out, 2), 2u);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(out[i], static_cast<float>(i));
  EXPECT_EQ(out[4], -1.0f) << "read wrote past the frames it returned";

  // Wrap around with odd frame counts; every frame stays a (L, R) pair.
  EXPECT_EQ(ring.write(in + 10, 3), 2u);  // room for 2 only
  EXPECT_EQ(ring.readable_frames(), 5u);
  for (float& f : out) f = -1.0f;
  EXPECT_EQ(ring.read(out, 16), 5u);
  const float want[10] = {4, 5, 6, 7, 8, 9, 10, 11, 12, 13};
  for (int i = 0; i < 10; ++i) EXPECT_EQ(out[i], want[i]) << "at " << i;
  EXPECT_EQ(out[10], -1.0f);
  EXPECT_EQ(ring.readable_frames(), 0u);
  EXPECT_EQ(ring.writable_frames(), 5u);

  EXPECT_EQ(ring.write(in, 3), 3u);
  ring.discard_readable();
  EXPECT_EQ(ring.readable_frames(), 0u);
  EXPECT_EQ(ring.writable_frames(), 5u);
  EXPECT_EQ(ring.read(out, 1), 0u);
}

// An int16 ring: half the bytes of float, in-place int16 spans on both sides, and read() gives
// the floats libsndfile's own float read would (x / 32768, exact).
TEST(SampleRing, Int16RingHoldsHalfTheBytesAndReadsAsFloat) {
  SampleRing f(6), i(6, SampleFormat::kInt16);
  EXPECT_EQ(f.capacity_bytes(), 6u * 8u);
  EXPECT_EQ(i.capacity_bytes(), 6u * 4u);
  EXPECT_EQ(i.format(), SampleFormat::kInt16);
  const std::int16_t v[10] = {-32768, 32767, 0, 1, -1, 12345, -12345, 2, 3, 4};
  auto w = i.write_spans_i16(5);
  ASSERT_EQ(w.frames(), 5u);
  std::copy(v, v + 10, w.first);
  i.commit(5);
  auto r = i.read_spans_i16(2);
  ASSERT_EQ(r.first_frames, 2u);
  EXPECT_EQ(r.first[0], -32768);
  EXPECT_EQ(r.first[3], 1);
  float out[10];
  ASSERT_EQ(i.read(out, 5), 5u);
  for (int k = 0; k < 10; ++k) EXPECT_EQ(out[k], static_cast<float>(v[k]) / 32768.0f) << k;
  // Across the wrap: 5 written, 5 read; the next 4 frames land at slots 5, 0, 1, 2.
  w = i.write_spans_i16(4);
  EXPECT_EQ(w.first_frames, 1u);
  EXPECT_EQ(w.second_frames, 3u);
  for (int k = 0; k < 2; ++k) w.first[k] = static_cast<std::int16_t>(100 + k);
  for (int k = 0; k < 6; ++k) w.second[k] = static_cast<std::int16_t>(102 + k);
  i.commit(4);
  ASSERT_EQ(i.read(out, 10), 4u);
  for (int k = 0; k < 8; ++k) EXPECT_EQ(out[k], static_cast<float>(100 + k) / 32768.0f) << k;
}

// 10 million floats (5 M stereo frames; fewer under sanitizers) through a small ring, written
// and read in varied chunk sizes that rarely line up. Sample k of the stream holds the value k
// (exact in float below 2^24), so any loss, duplication, reordering or half-frame shift shows.
TEST(SampleRing, TwoThreadsVariedChunksEveryValueInOrder) {
  const std::uint64_t total_frames = test::kSanitized ? 500'000 : 5'000'000;
  static_assert(2 * 5'000'000 < (1 << 24));
  SampleRing ring(1021);  // a prime: chunk boundaries drift against the wrap point
  // A hang's bound (scaled: qemu-aarch64 on a busy machine took longer than 60 s), not a measure.
  const auto deadline = std::chrono::steady_clock::now() + test::scaled(std::chrono::seconds(60));
  std::atomic<bool> producer_ok{true};

  std::thread producer([&] {
    Lcg rng{7};
    std::vector<float> buf(2 * 1500);
    std::uint64_t next = 0;
    while (next < total_frames) {
      const std::uint64_t n = std::min<std::uint64_t>(rng.next(1500), total_frames - next);
      for (std::uint64_t f = 0; f < n; ++f) {
        buf[2 * f] = static_cast<float>(2 * (next + f));
        buf[2 * f + 1] = static_cast<float>(2 * (next + f) + 1);
      }
      std::uint64_t put = 0;
      while (put < n) {
        std::size_t w = 0;
        if (!spin_until([&] { return (w = ring.write(buf.data() + 2 * put, n - put)) > 0; }, deadline)) {
          producer_ok = false;
          return;
        }
        put += w;
      }
      next += n;
    }
  });

  Lcg rng{11};
  std::vector<float> buf(2 * 2000 + 2);
  std::uint64_t next = 0;
  std::uint64_t bad = 0;
  std::uint64_t first_bad = 0;
  std::uint64_t overreach = 0;
  bool timed_out = false;
  while (next < total_frames) {
    const std::uint32_t want = rng.next(2000);
    buf[2 * want] = buf[2 * want + 1] = -1.0f;  // sentinels just past the request
    std::size_t got = 0;
    if (!spin_until([&] { return (got = ring.read(buf.data(), want)) > 0; }, deadline)) {
      timed_out = true;
      break;
    }
    if (got > want) ++overreach;
    if (buf[2 * want] != -1.0f || buf[2 * want + 1] != -1.0f) ++overreach;
    for (std::size_t i = 0; i < 2 * got; ++i) {
      if (buf[i] != static_cast<float>(2 * next + i)) {
        if (bad++ == 0) first_bad = 2 * next + i;
      }
    }
    next += got;
  }
  producer.join();
  EXPECT_FALSE(timed_out) << "consumer starved at frame " << next;
  EXPECT_TRUE(producer_ok.load()) << "producer timed out";
  EXPECT_EQ(next, total_frames);
  EXPECT_EQ(bad, 0u) << "first wrong sample index " << first_bad;
  EXPECT_EQ(overreach, 0u) << "read wrote or returned more than asked";
  EXPECT_EQ(ring.readable_frames(), 0u);
}

// The consumer polls readable_frames() and asks for exactly that much: the snapshot must never
// promise more than read() then delivers, and never a fraction of a frame.
TEST(SampleRing, ReadableSnapshotIsAlwaysDeliverable) {
  const std::uint64_t total_frames = test::kSanitized ? 200'000 : 2'000'000;
  SampleRing ring(257);
  // A hang's bound (scaled: qemu-aarch64 on a busy machine took longer than 60 s), not a measure.
  const auto deadline = std::chrono::steady_clock::now() + test::scaled(std::chrono::seconds(60));
  std::atomic<bool> producer_ok{true};

  std::thread producer([&] {
    Lcg rng{3};
    std::vector<float> buf(2 * 300);
    std::uint64_t next = 0;
    while (next < total_frames) {
      std::size_t room = 0;
      if (!spin_until([&] { return (room = ring.writable_frames()) > 0; }, deadline)) {
        producer_ok = false;
        return;
      }
      const std::uint64_t n = std::min<std::uint64_t>({rng.next(300), room, total_frames - next});
      for (std::uint64_t f = 0; f < n; ++f) {
        buf[2 * f] = static_cast<float>(2 * (next + f));
        buf[2 * f + 1] = static_cast<float>(2 * (next + f) + 1);
      }
      const std::size_t w = ring.write(buf.data(), n);
      if (w != n) {  // the producer alone adds: the room it saw must still be there
        producer_ok = false;
        return;
      }
      next += n;
    }
  });

  std::vector<float> buf(2 * 257);
  std::uint64_t next = 0;
  std::uint64_t short_reads = 0;
  std::uint64_t bad = 0;
  bool timed_out = false;
  while (next < total_frames) {
    std::size_t avail = 0;
    if (!spin_until([&] { return (avail = ring.readable_frames()) > 0; }, deadline)) {
      timed_out = true;
      break;
    }
    const std::size_t got = ring.read(buf.data(), avail);
    if (got != avail) ++short_reads;
    for (std::size_t i = 0; i < 2 * got; ++i) bad += buf[i] != static_cast<float>(2 * next + i) ? 1 : 0;
    next += got;
  }
  producer.join();
  EXPECT_FALSE(timed_out);
  EXPECT_TRUE(producer_ok.load()) << "writable_frames() promised room that write() refused";
  EXPECT_EQ(short_reads, 0u) << "readable_frames() promised frames that read() did not deliver";
  EXPECT_EQ(bad, 0u);
  EXPECT_EQ(next, total_frames);
}

// In-place access: read_spans() and write_spans() expose the ring's memory in up to two pieces
// (split at the wrap point) and change nothing until consume() / commit().
TEST(SampleRing, SpansInPlaceSingleThread) {
  SampleRing ring(5);
  float in[2 * 8];
  for (int i = 0; i < 16; ++i) in[i] = static_cast<float>(i);

  EXPECT_EQ(ring.read_spans().frames(), 0u) << "empty ring lends nothing";
  auto w = ring.write_spans();
  EXPECT_EQ(w.frames(), 5u);
  EXPECT_EQ(w.second_frames, 0u) << "a fresh ring is one piece";
  ring.write(in, 4);  // frames 0..3 at slots 0..3
  auto r = ring.read_spans(3);
  ASSERT_EQ(r.first_frames, 3u);
  EXPECT_EQ(r.second_frames, 0u);
  for (int i = 0; i < 6; ++i) EXPECT_EQ(r.first[i], static_cast<float>(i));
  EXPECT_EQ(ring.readable_frames(), 4u) << "read_spans() must not consume";
  EXPECT_EQ(ring.writable_frames(), 1u) << "frames lent to the reader are not writable";
  ring.consume(3);
  EXPECT_EQ(ring.readable_frames(), 1u);
  EXPECT_EQ(ring.writable_frames(), 4u);

  // Write in place across the wrap: slot 4, then slots 0..2.
  w = ring.write_spans(4);
  ASSERT_EQ(w.first_frames, 1u);
  ASSERT_EQ(w.second_frames, 3u);
  EXPECT_EQ(w.first, r.first + 4 * 2) << "the writable region starts after the last frame written";
  for (std::size_t f = 0; f < 1; ++f) w.first[2 * f] = w.first[2 * f + 1] = 100.0f + static_cast<float>(f);
  for (std::size_t f = 0; f < 3; ++f) w.second[2 * f] = w.second[2 * f + 1] = 101.0f + static_cast<float>(f);
  EXPECT_EQ(ring.readable_frames(), 1u) << "write_spans() must not publish";
  ring.commit(4);
  EXPECT_EQ(ring.readable_frames(), 5u);
  EXPECT_EQ(ring.writable_frames(), 0u);
  EXPECT_EQ(ring.write_spans().frames(), 0u);

  // Read across the wrap: frame 3 and 100 at slots 3..4, then 101..103 at slots 0..2.
  r = ring.read_spans();
  ASSERT_EQ(r.first_frames, 2u);
  ASSERT_EQ(r.second_frames, 3u);
  EXPECT_EQ(r.first[0], 6.0f);
  EXPECT_EQ(r.first[1], 7.0f);
  EXPECT_EQ(r.first[2], 100.0f);
  for (std::size_t f = 0; f < 3; ++f) EXPECT_EQ(r.second[2 * f + 1], 101.0f + static_cast<float>(f));
  ring.consume(2);
  r = ring.read_spans(2);
  EXPECT_EQ(r.first_frames, 2u) << "after the wrap the rest is one piece again";
  EXPECT_EQ(r.second_frames, 0u);
  EXPECT_EQ(r.first[0], 101.0f);

  // read() and the in-place calls interleave on the same positions.
  float out[2 * 8];
  EXPECT_EQ(ring.read(out, 8), 3u);
  EXPECT_EQ(out[4], 103.0f);
  EXPECT_EQ(ring.readable_frames(), 0u);
  EXPECT_EQ(ring.fill_frames_approx(), 0u);
}

// Two threads, both sides in place. The producer decodes straight into write_spans() and
// commits; the consumer checks the lent frames, waits a little while holding them (the
// producer keeps writing meanwhile), checks them again — the producer must never have written
// into a region it has not been given back — and only then consumes. Sizes are seeded and rarely
// line up with the prime capacity, so every wrap split occurs.
TEST(SampleRing, TwoThreadsInPlaceHeldRegionNeverOverwritten) {
  const std::uint64_t total_frames = test::kSanitized ? 300'000 : 4'000'000;
  static_assert(2 * 4'000'000 < (1 << 24));
  SampleRing ring(509);
  // A hang's bound (scaled: qemu-aarch64 on a busy machine took longer than 60 s), not a measure.
  const auto deadline = std::chrono::steady_clock::now() + test::scaled(std::chrono::seconds(60));
  std::atomic<bool> producer_ok{true};
  std::atomic<std::uint64_t> commits{0};

  std::thread producer([&] {
    Lcg rng{5};
    std::uint64_t next = 0;
    while (next < total_frames) {
      SampleRing::Spans<float> w;
      const std::uint64_t want = std::min<std::uint64_t>(rng.next(400), total_frames - next);
      if (!spin_until([&] { return (w = ring.write_spans(want)).frames() > 0; }, deadline)) {
        producer_ok = false;
        return;
      }
      if (w.frames() > want) {
        producer_ok = false;
        return;
      }
      std::uint64_t k = next;
      for (std::size_t f = 0; f < w.first_frames; ++f, ++k) {
        w.first[2 * f] = static_cast<float>(2 * k);
        w.first[2 * f + 1] = static_cast<float>(2 * k + 1);
      }
      for (std::size_t f = 0; f < w.second_frames; ++f, ++k) {
        w.second[2 * f] = static_cast<float>(2 * k);
        w.second[2 * f + 1] = static_cast<float>(2 * k + 1);
      }
      ring.commit(w.frames());
      commits.fetch_add(1, std::memory_order_relaxed);
      next = k;
    }
  });

  auto check = [](const SampleRing::Spans<const float>& r, std::uint64_t first_frame) {
    std::uint64_t bad = 0;
    std::uint64_t k = first_frame;
    for (std::size_t f = 0; f < r.first_frames; ++f, ++k) {
      bad += r.first[2 * f] != static_cast<float>(2 * k) || r.first[2 * f + 1] != static_cast<float>(2 * k + 1);
    }
    for (std::size_t f = 0; f < r.second_frames; ++f, ++k) {
      bad += r.second[2 * f] != static_cast<float>(2 * k) || r.second[2 * f + 1] != static_cast<float>(2 * k + 1);
    }
    return bad;
  };

  Lcg rng{9};
  std::uint64_t next = 0;
  std::uint64_t bad = 0;
  std::uint64_t changed_while_held = 0;
  std::uint64_t split_reads = 0;
  bool timed_out = false;
  while (next < total_frames) {
    SampleRing::Spans<const float> r;
    const std::uint32_t want = rng.next(600);
    if (!spin_until([&] { return (r = ring.read_spans(want)).frames() > 0; }, deadline)) {
      timed_out = true;
      break;
    }
    if (r.frames() > want) ++bad;
    split_reads += r.second_frames > 0 ? 1 : 0;
    bad += check(r, next);
    // Hold the region while the producer gets a chance to run (it may fill all the rest).
    const std::uint64_t seen = commits.load(std::memory_order_relaxed);
    for (int i = 0; i < 4 && commits.load(std::memory_order_relaxed) == seen; ++i) std::this_thread::yield();
    changed_while_held += check(r, next);
    ring.consume(r.frames());
    next += r.frames();
  }
  producer.join();
  EXPECT_FALSE(timed_out) << "consumer starved at frame " << next;
  EXPECT_TRUE(producer_ok.load()) << "producer timed out or was lent more than it asked for";
  EXPECT_EQ(next, total_frames);
  EXPECT_EQ(bad, 0u) << "wrong, reordered or over-long data lent in place";
  EXPECT_EQ(changed_while_held, 0u) << "the producer wrote into frames the consumer still held";
  EXPECT_GT(split_reads, 0u) << "the wrap split never happened: the test does not cover it";
  EXPECT_EQ(ring.readable_frames(), 0u);
}

// The refill doorbell (issue 15, fourth round): the consumer sets the ring's bit once when the
// fill drops to the low-water mark, through consume(), read() and discard_readable(), and again
// only after the producer re-arms it.
TEST(SampleRing, DoorbellRingsOnceAtTheLowWaterMarkUntilRearmed) {
  SampleRing ring(1'000, SampleFormat::kInt16);
  std::atomic<std::uint64_t> word{0};
  ring.set_doorbell(&word, 1ull << 5);
  ring.set_low_water(400);
  ring.commit(1'000);  // full (the samples' values do not matter here)
  ring.consume(500);   // fill 500: above the mark
  EXPECT_EQ(word.load(), 0u);
  ring.consume(100);  // fill 400: at the mark
  EXPECT_EQ(word.load(), 1ull << 5);
  word.store(0);
  ring.consume(100);  // still low, not re-armed: silent
  EXPECT_EQ(word.load(), 0u);
  ring.rearm_doorbell();
  std::vector<float> out(200);
  EXPECT_EQ(ring.read(out.data(), 100), 100u);  // fill 200
  EXPECT_EQ(word.load(), 1ull << 5);
  word.store(0);
  ring.commit(ring.writable_frames());  // the producer refilled it, then re-armed
  ring.rearm_doorbell();
  ring.consume(10);
  EXPECT_EQ(word.load(), 0u);
  ring.discard_readable();  // a jump empties it: rings
  EXPECT_EQ(word.load(), 1ull << 5);
  SampleRing plain(100);  // no doorbell: consuming never touches a word
  plain.commit(100);
  plain.consume(100);
}

// The loader's sweep re-arms every ring it looks at, most of which have not rung: re-arming one
// that has not rung changes nothing (it writes nothing), however often, and the ring still rings
// once when its fill next reaches the mark — then stays silent until re-armed after that.
TEST(SampleRing, RearmingARingThatHasNotRungKeepsItsOneBell) {
  SampleRing ring(1'000, SampleFormat::kInt16);
  std::atomic<std::uint64_t> word{0};
  ring.set_doorbell(&word, 1ull << 9);
  ring.set_low_water(400);
  ring.commit(1'000);
  for (int sweep = 0; sweep < 3; ++sweep) {
    ring.rearm_doorbell();  // not rung: nothing to re-arm
    ring.consume(100);      // fills 900, 800, 700: above the mark
  }
  EXPECT_EQ(word.load(), 0u);
  ring.rearm_doorbell();
  ring.consume(300);  // fill 400: at the mark
  EXPECT_EQ(word.exchange(0), 1ull << 9);
  ring.consume(50);  // rung, not re-armed: silent
  EXPECT_EQ(word.load(), 0u);
  ring.rearm_doorbell();  // rung: re-armed
  ring.consume(50);
  EXPECT_EQ(word.load(), 1ull << 9);
}

}  // namespace
}  // namespace stemd
