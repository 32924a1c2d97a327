// Sample-accurate scheduling: a command with an at_frame applies at exactly that output frame,
// whatever the block size, and commands for one frame start together ("a group starts on the
// same output sample": a file and its inversion scheduled together sum to exact silence).
#include "control/controller.hpp"
#include "control/limits.hpp"
#include "engine/schedule.hpp"
#include "common/commands.hpp"
#include "common/engine_driver.hpp"

#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <map>

namespace stemd::test {
namespace {

using engine::Command;
using engine::CommandType;

struct Memory {
  std::vector<float> data;
  engine::VoiceSource view;
  explicit Memory(std::vector<float> d) : data(std::move(d)) {
    const auto frames = static_cast<std::int64_t>(data.size() / 2);
    view = engine::VoiceSource{data.data(), frames, frames, false};
  }
};

std::vector<float> noise(std::size_t frames, std::uint32_t seed) {
  std::vector<float> v(frames * 2);
  std::uint32_t x = seed;
  for (auto& s : v) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    s = static_cast<float>(static_cast<int>(x % 20001) - 10000) / 32768.0f;
  }
  return v;
}

std::vector<float> render(engine::Engine& e, std::size_t frames, std::uint32_t block) {
  std::vector<float> out(frames * 2);
  for (std::size_t done = 0; done < frames;) {
    const auto n = static_cast<std::uint32_t>(std::min<std::size_t>(block, frames - done));
    e.process(out.data() + done * 2, n);
    done += n;
  }
  return out;
}

engine::EngineConfig small_config() {
  engine::EngineConfig ec;
  ec.max_voices = 8;
  ec.max_block_frames = 1024;
  return ec;
}

// An engine and the controller that drives it (no device: the test calls process()).
struct CtlRig {
  engine::Engine e{small_config()};
  io::LoaderThread loader{io::LoaderConfig{}};
  control::Controller ctl{e, loader, io::LoadOptions{}};
};

class Schedule : public ::testing::TestWithParam<std::uint32_t> {};

TEST_P(Schedule, PlayStartsOnItsFrame) {
  const std::uint32_t block = GetParam();
  Memory a(noise(5000, 7));
  engine::EngineConfig ec;
  ec.max_voices = 8;
  ec.max_block_frames = 1024;
  engine::Engine e(ec);
  const std::int64_t at = 1237;  // inside a block for every block size tested
  Command c = play_command(0, 1, &a.view, nullptr, 0);
  c.at_frame = at;
  ASSERT_TRUE(e.send(c));
  const auto out = render(e, 8000, block);
  for (std::int64_t f = 0; f < at; ++f) ASSERT_EQ(out[2 * f], 0.0f) << "sound before the scheduled frame " << f;
  for (std::int64_t f = 0; f < 5000; ++f) {
    ASSERT_EQ(out[2 * (at + f)], a.data[2 * f]) << "frame " << f << " block " << block;
    ASSERT_EQ(out[2 * (at + f) + 1], a.data[2 * f + 1]);
  }
  EXPECT_EQ(e.metrics().commands_late.load(), 0u);
}

TEST_P(Schedule, GroupOfAFileAndItsInversionSumsToSilence) {
  const std::uint32_t block = GetParam();
  Memory a(noise(6000, 9));
  std::vector<float> inv = a.data;
  for (auto& s : inv) s = -s;
  Memory b(inv);
  engine::EngineConfig ec;
  ec.max_voices = 8;
  ec.max_block_frames = 1024;
  engine::Engine e(ec);
  // Sent in different blocks: the second command arrives after the first has been queued.
  Command ca = play_command(0, 1, &a.view, nullptr, 0);
  ca.at_frame = 3001;
  ASSERT_TRUE(e.send(ca));
  std::vector<float> out(200 * 2);
  e.process(out.data(), 200);
  Command cb = play_command(1, 2, &b.view, nullptr, 0);
  cb.at_frame = 3001;
  cb.play.deck = 2;  // a different deck: the alignment holds across buses
  ASSERT_TRUE(e.send(cb));
  const auto rest = render(e, 12000, block);
  double peak = 0;
  for (float s : rest) peak = std::max(peak, static_cast<double>(std::fabs(s)));
  EXPECT_EQ(peak, 0.0) << "the two voices did not start on the same sample";
  EXPECT_EQ(e.metrics().voices_ended.load(), 2u);
}

TEST_P(Schedule, DeckLevelAndStopApplyOnTheirFrames) {
  const std::uint32_t block = GetParam();
  std::vector<float> ones(20000 * 2, 0.5f);
  Memory a(ones);
  engine::EngineConfig ec;
  ec.max_voices = 8;
  ec.max_block_frames = 1024;
  engine::Engine e(ec);
  ASSERT_TRUE(e.send(play_command(0, 1, &a.view, nullptr, 0)));
  Command mute{};
  mute.type = CommandType::kDeckGain;
  mute.deck = 0;
  mute.value = 0.0f;
  mute.frames = 0;
  mute.at_frame = 4100;
  ASSERT_TRUE(e.send(mute));
  const auto out = render(e, 8000, block);
  EXPECT_EQ(out[2 * 4099], 0.5f);
  EXPECT_EQ(out[2 * 4100], 0.0f);
}

TEST(ScheduleLate, ALateCommandRunsAtOnceAndIsCounted) {
  Memory a(noise(1000, 3));
  engine::EngineConfig ec;
  ec.max_voices = 8;
  ec.max_block_frames = 1024;
  engine::Engine e(ec);
  std::vector<float> out(512 * 2);
  e.process(out.data(), 512);
  Command c = play_command(0, 1, &a.view, nullptr, 0);
  c.at_frame = 100;  // already past
  ASSERT_TRUE(e.send(c));
  e.process(out.data(), 512);
  EXPECT_EQ(out[0], a.data[0]);
  EXPECT_EQ(e.metrics().commands_late.load(), 1u);
  Drained d;
  d.drain(e);
  const engine::Event* late = d.find(engine::EventType::kCommandLate);
  ASSERT_NE(late, nullptr);
  EXPECT_EQ(late->count, 412u);
}

TEST(ScheduleOrder, CommandsForOneFrameApplyInArrivalOrder) {
  Memory a(noise(3000, 5));
  engine::EngineConfig ec;
  ec.max_voices = 8;
  ec.max_block_frames = 1024;
  engine::Engine e(ec);
  Command play = play_command(0, 1, &a.view, nullptr, 0);
  play.at_frame = 500;
  Command vol{};
  vol.type = CommandType::kSetGain;
  vol.voice = 0;
  vol.generation = 1;
  vol.value = 0.5f;
  vol.at_frame = 500;
  ASSERT_TRUE(e.send(vol));   // scheduled first but for a voice that starts in the same frame…
  ASSERT_TRUE(e.send(play));  // …so it finds no voice: arrival order is kept, and that is visible
  const auto out = render(e, 1024, 1024);
  EXPECT_EQ(out[2 * 500], a.data[0]) << "the volume command must not have applied before the play";
}

// A stop that reaches the engine before its voice's scheduled start cancels the start: the voice
// never sounds, is reported ended (stopped) and retired — it must not start later and, looped,
// play forever with nobody holding it (found by the soak).
TEST(ScheduleCancel, AStopBeforeTheStartFrameCancelsThePlay) {
  std::vector<float> ones(4000 * 2, 0.5f);
  Memory a(ones);
  engine::EngineConfig ec;
  ec.max_voices = 8;
  ec.max_block_frames = 1024;
  engine::Engine e(ec);
  Command play = play_command(0, 1, &a.view, nullptr, 0);
  play.play.loop = true;
  play.at_frame = 3000;
  ASSERT_TRUE(e.send(play));
  std::vector<float> out(1024 * 2);
  e.process(out.data(), 1024);  // the play is now on the schedule
  Command stop{};
  stop.type = CommandType::kStop;
  stop.voice = 0;
  stop.generation = 1;
  ASSERT_TRUE(e.send(stop));
  const auto later = render(e, 8000, 512);
  for (std::size_t i = 0; i < later.size(); ++i) ASSERT_EQ(later[i], 0.0f) << "the cancelled voice sounded at " << i;
  Drained d;
  d.drain(e);
  EXPECT_EQ(d.count(engine::EventType::kVoiceStarted), 0u);
  const engine::Event* ended = d.find(engine::EventType::kVoiceEnded);
  ASSERT_NE(ended, nullptr);
  EXPECT_EQ(ended->reason, engine::EndReason::kStopped);
  ASSERT_EQ(d.retired.size(), 1u);
  EXPECT_TRUE(d.retired[0].voice_ended);
  EXPECT_EQ(e.metrics().voices_active.load(), 0u);
}

// Stop-all also clears plays that are scheduled but not yet due.
TEST(ScheduleCancel, StopAllCancelsScheduledPlays) {
  Memory a(noise(4000, 9));
  engine::EngineConfig ec;
  ec.max_voices = 8;
  ec.max_block_frames = 1024;
  engine::Engine e(ec);
  for (engine::VoiceId v = 0; v < 3; ++v) {
    Command play = play_command(v, 1, &a.view, nullptr, 0);
    play.at_frame = 2000 + 100 * v;
    ASSERT_TRUE(e.send(play));
  }
  Command all{};
  all.type = CommandType::kStopAll;
  all.frames = 64;
  ASSERT_TRUE(e.send(all));
  const auto out = render(e, 6000, 1024);
  for (std::size_t i = 0; i < out.size(); ++i) ASSERT_EQ(out[i], 0.0f) << "a cancelled voice sounded at " << i;
  Drained d;
  d.drain(e);
  EXPECT_EQ(d.count(engine::EventType::kVoiceStarted), 0u);
  EXPECT_EQ(d.count(engine::EventType::kVoiceEnded), 3u);
  EXPECT_EQ(d.retired.size(), 3u);
}

// ---------------------------------------------------------------- a full, hostile schedule
// (issue 10, item 5): commands timed far ahead, sent newest first, must cost bounded work per
// callback, and one more than the schedule holds is refused — never applied early.

// Fills the schedule newest first (each command earlier than the one before: the worst order for
// a sorted list) in rounds of one callback's intake; returns the most schedule operations
// (comparisons + moves) one process() call made.
std::uint64_t fill_newest_first(engine::Engine& e, std::int64_t last_frame, std::uint32_t block) {
  std::vector<float> out(static_cast<std::size_t>(block) * 2);
  std::uint64_t worst = 0;
  std::size_t sent = 0;
  while (sent < engine::Engine::kMaxScheduled) {
    for (std::size_t k = 0; k < engine::Engine::kMaxCommandsPerCallback && sent < engine::Engine::kMaxScheduled;
         ++k, ++sent) {
      EXPECT_TRUE(e.send(master_at(last_frame - static_cast<std::int64_t>(sent))));
    }
    const std::uint64_t before = e.schedule_ops();
    e.process(out.data(), block);
    worst = std::max(worst, e.schedule_ops() - before);
  }
  return worst;
}

TEST(ScheduleBound, FillingNewestFirstDoesLogarithmicWorkPerCallback) {
  for (const std::uint32_t block : {128u, 512u}) {
    SCOPED_TRACE("block " + std::to_string(block));
    engine::EngineConfig ec;
    ec.max_voices = 8;
    ec.max_block_frames = 1024;
    engine::Engine e(ec);
    const std::int64_t a_day = 48000LL * 86400;
    const std::uint64_t worst = fill_newest_first(e, a_day, block);
    EXPECT_EQ(e.scheduled(), engine::Engine::kMaxScheduled);
    // Each insert: at most ⌈log2 n⌉ comparisons and as many moves (n = 8,192: 13 + 13).
    const std::uint64_t per_insert = 2 * (std::bit_width(engine::Engine::kMaxScheduled) + 1);
    const std::uint64_t bound = engine::Engine::kMaxCommandsPerCallback * per_insert;
    RecordProperty("worst_ops_per_callback", static_cast<int>(std::min<std::uint64_t>(worst, 1u << 30)));
    EXPECT_LE(worst, bound) << "one callback did " << worst << " schedule operations for "
                            << engine::Engine::kMaxCommandsPerCallback << " inserts";
    EXPECT_EQ(e.metrics().schedule_overflows.load(), 0u);
  }
}

TEST(ScheduleFull, OneCommandTooManyIsRefusedNotRunEarly) {
  Memory a(noise(4000, 13));
  engine::EngineConfig ec;
  ec.max_voices = 8;
  ec.max_block_frames = 1024;
  engine::Engine e(ec);
  fill_newest_first(e, 48000LL * 86400, 512);
  ASSERT_EQ(e.scheduled(), engine::Engine::kMaxScheduled);
  Drained ignore;
  ignore.drain(e);
  // A play timed 2,000 frames ahead, with the schedule full.
  Command play = play_command(0, 1, &a.view, nullptr, 0);
  play.at_frame = e.frame() + 2000;
  ASSERT_TRUE(e.send(play));
  const auto out = render(e, 6000, 512);
  for (std::size_t i = 0; i < out.size(); ++i) ASSERT_EQ(out[i], 0.0f) << "the refused play sounded at " << i / 2;
  EXPECT_EQ(e.metrics().schedule_overflows.load(), 1u);
  EXPECT_EQ(e.scheduled(), engine::Engine::kMaxScheduled) << "the refused command took nobody's place";
  // The voice is reported ended (an error) and handed back, so the control thread frees it.
  Drained d;
  d.drain(e);
  EXPECT_EQ(d.count(engine::EventType::kVoiceStarted), 0u);
  const engine::Event* ended = d.find(engine::EventType::kVoiceEnded);
  ASSERT_NE(ended, nullptr);
  EXPECT_EQ(ended->reason, engine::EndReason::kError);
  ASSERT_EQ(d.retired.size(), 1u);
  EXPECT_TRUE(d.retired[0].voice_ended);
}

// The clear command empties the schedule: scheduled plays end (stopped) and are handed back,
// everything else is dropped, and the schedule takes commands again.
TEST(ScheduleClear, ClearDropsEverythingScheduled) {
  Memory a(noise(4000, 17));
  engine::EngineConfig ec;
  ec.max_voices = 8;
  ec.max_block_frames = 1024;
  engine::Engine e(ec);
  for (engine::VoiceId v = 0; v < 3; ++v) {
    Command play = play_command(v, 1, &a.view, nullptr, 0);
    play.at_frame = 5000 + v;
    ASSERT_TRUE(e.send(play));
  }
  for (int i = 0; i < 100; ++i) ASSERT_TRUE(e.send(master_at(9000 + i)));
  std::vector<float> out(256 * 2);
  e.process(out.data(), 256);
  EXPECT_EQ(e.scheduled(), 103u);
  Command clear{};
  clear.type = CommandType::kClearSchedule;
  ASSERT_TRUE(e.send(clear));
  e.process(out.data(), 256);
  EXPECT_EQ(e.scheduled(), 0u);
  EXPECT_EQ(e.metrics().schedule_done.load(), 103u) << "every scheduled command accounted for";
  const auto later = render(e, 12000, 512);
  for (std::size_t i = 0; i < later.size(); ++i) ASSERT_EQ(later[i], 0.0f) << "a cleared play sounded at " << i / 2;
  Drained d;
  d.drain(e);
  EXPECT_EQ(d.count(engine::EventType::kVoiceStarted), 0u);
  EXPECT_EQ(d.count(engine::EventType::kVoiceEnded), 3u);
  EXPECT_EQ(d.retired.size(), 3u);
  // …and it schedules again.
  Command play = play_command(0, 2, &a.view, nullptr, 0);
  play.at_frame = e.frame() + 100;
  ASSERT_TRUE(e.send(play));
  const auto again = render(e, 1024, 512);
  EXPECT_EQ(again[2 * 100], a.data[0]);
  EXPECT_EQ(again[2 * 99], 0.0f);
}

// The heap against a reference (a sorted multimap keyed by frame, then arrival): random pushes,
// pops and removals by handle always agree on what comes out first.
TEST(ScheduleHeap, AgreesWithASortedReference) {
  engine::Schedule s(257);
  std::map<std::pair<std::int64_t, std::uint64_t>, engine::Schedule::Handle> ref;
  std::map<engine::Schedule::Handle, std::pair<std::int64_t, std::uint64_t>> key_of;
  std::uint64_t arrival = 0;
  std::uint32_t x = 12345;
  auto rnd = [&] {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return x;
  };
  for (int step = 0; step < 200000; ++step) {
    const std::uint32_t r = rnd() % 10;
    if (r < 5 && !s.full()) {
      Command c{};
      c.at_frame = static_cast<std::int64_t>(rnd() % 64);  // many ties
      c.voice = static_cast<engine::VoiceId>(arrival);
      const auto h = s.push(c);
      ASSERT_NE(h, engine::Schedule::kNone);
      ref[{c.at_frame, arrival}] = h;
      key_of[h] = {c.at_frame, arrival};
      ++arrival;
    } else if (r < 8 && !s.empty()) {
      ASSERT_EQ(s.top_frame(), ref.begin()->first.first);
      const Command c = s.pop();
      ASSERT_EQ(c.voice, static_cast<engine::VoiceId>(ref.begin()->first.second)) << "step " << step;
      key_of.erase(ref.begin()->second);
      ref.erase(ref.begin());
    } else if (!s.empty()) {
      auto it = key_of.begin();
      std::advance(it, rnd() % key_of.size());
      const Command c = s.remove(it->first);
      ASSERT_EQ(c.voice, static_cast<engine::VoiceId>(it->second.second));
      ref.erase(it->second);
      key_of.erase(it);
    }
    ASSERT_EQ(s.size(), ref.size());
  }
}

// The control thread counts what it has timed against what the engine is done with, so it
// refuses the command the schedule could not hold — before it is queued, with a reason — and
// an all-or-nothing request checks for room first.
TEST(ScheduleFull, TheControllerRefusesWhatTheScheduleCannotHold) {
  CtlRig rig;
  engine::Engine& e = rig.e;
  control::Controller& ctl = rig.ctl;
  std::vector<float> out(512 * 2);
  std::string err;
  const std::int64_t later = 48000LL * 3600;
  for (std::size_t i = 0; i < engine::Engine::kMaxScheduled; ++i) {
    // Spread over periods: one period takes kMaxTimedPerPeriod (ScheduleBudget, below).
    const auto period = static_cast<std::int64_t>(i / control::limits::kMaxTimedPerPeriod);
    ASSERT_TRUE(ctl.set_master(later + period * control::limits::kTimedPeriodFrames, 1.0f, 0.0, err))
        << i << ": " << err;
    if (i % 512 == 511) e.process(out.data(), 512);
  }
  EXPECT_EQ(ctl.scheduled(), engine::Engine::kMaxScheduled);
  EXPECT_FALSE(ctl.can_send(4800, 1));
  EXPECT_NE(ctl.busy_reason(4800, 1).find("schedule full"), std::string::npos) << ctl.busy_reason(4800, 1);
  EXPECT_FALSE(ctl.set_master(4800, 0.5f, 0.0, err));
  EXPECT_NE(err.find("schedule full"), std::string::npos) << err;
  EXPECT_FLOAT_EQ(ctl.master_level(), 1.0f) << "a refused command changes nothing";
  EXPECT_EQ(ctl.schedule_refused(), 1u);
  EXPECT_TRUE(ctl.can_send(control::kNow, 1)) << "untimed commands are not held back";
  std::size_t cleared = 0;
  ASSERT_TRUE(ctl.clear_schedule(cleared, err)) << err;
  EXPECT_EQ(cleared, engine::Engine::kMaxScheduled);
  for (int i = 0; i < 20; ++i) e.process(out.data(), 512);
  EXPECT_EQ(ctl.scheduled(), 0u);
  EXPECT_EQ(e.scheduled(), 0u);
  EXPECT_TRUE(ctl.set_master(later, 1.0f, 0.0, err)) << err;
}

// Outside pass, t15.py: 8,192 timed commands for one instant all ran in one callback (755 µs
// at --buffer-size 128, 28 % of its budget). The control thread admits at most
// kMaxTimedPerPeriod for one 64-frame period; the next is refused with its reason and changes
// nothing, the next period takes commands again, and no callback applies more than K.
TEST(ScheduleBudget, OnePeriodTakesAtMostKTimedCommands) {
  CtlRig rig;
  engine::Engine& e = rig.e;
  control::Controller& ctl = rig.ctl;
  constexpr std::size_t K = control::limits::kMaxTimedPerPeriod;
  constexpr std::int64_t P = control::limits::kTimedPeriodFrames;
  const std::int64_t base = 75 * P;  // frames [4800, 4864): one period
  std::string err;
  std::vector<float> out(static_cast<std::size_t>(P) * 2);
  for (std::size_t i = 0; i < K; ++i) {
    ASSERT_TRUE(ctl.set_master(base + static_cast<std::int64_t>(i % P), 0.5f, 0.0, err)) << i << ": " << err;
    if (i % 256 == 255) e.process(out.data(), static_cast<std::uint32_t>(P));  // drain the queue
  }
  const std::size_t waiting = ctl.scheduled();
  {
    const std::int64_t at = base + P - 1;
    EXPECT_FALSE(ctl.can_send(at, 1));
    EXPECT_FALSE(ctl.set_master(at, 0.25f, 0.0, err));
    EXPECT_NE(err.find("period full"), std::string::npos) << err;
    EXPECT_NE(err.find(std::to_string(K)), std::string::npos) << err;
    EXPECT_FLOAT_EQ(ctl.master_level(), 0.5f) << "a refused command changes nothing";
    EXPECT_EQ(ctl.scheduled(), waiting);
  }
  EXPECT_EQ(ctl.schedule_refused(), 1u);
  EXPECT_TRUE(ctl.set_master(base + P, 0.5f, 0.0, err)) << err;  // the next period has room
  const std::uint64_t applied0 = e.metrics().commands_applied.load();
  for (std::int64_t f = e.frame(); f < base + 4 * P; f += P) e.process(out.data(), static_cast<std::uint32_t>(P));
  EXPECT_EQ(e.metrics().commands_applied.load() - applied0, K + 1) << "every admitted command ran";
  EXPECT_EQ(e.metrics().schedule_due_max.load(), K) << "one callback applied more than one period's budget";
  EXPECT_EQ(ctl.scheduled(), 0u);
}

// Outside pass: /stemd/clear_schedule of 8,192 entries cost 530 µs of one callback (popped one
// by one, O(n log n)). Now the entries that hold nothing are dropped at once: the clearing
// callback does O(held) schedule work, whatever the schedule holds.
TEST(ScheduleBudget, ClearingAFullScheduleIsConstantWork) {
  Memory a(noise(4000, 19));
  engine::Engine e(small_config());
  fill_newest_first(e, 48000LL * 86400, 512);
  for (engine::VoiceId v = 0; v < 2; ++v) {
    ASSERT_TRUE(e.send(play_command(v, 1, &a.view, nullptr, 0)));
  }
  std::vector<float> out(64 * 2);
  e.process(out.data(), 64);  // the plays start now (untimed); nothing held in the schedule
  Drained ignore;
  ignore.drain(e);
  ASSERT_EQ(e.scheduled(), engine::Engine::kMaxScheduled);
  Command clear{};
  clear.type = CommandType::kClearSchedule;
  ASSERT_TRUE(e.send(clear));
  const std::uint64_t before = e.schedule_ops();
  e.process(out.data(), 64);
  const std::uint64_t ops = e.schedule_ops() - before;
  RecordProperty("clear_ops", static_cast<int>(std::min<std::uint64_t>(ops, 1u << 30)));
  EXPECT_LE(ops, 1u) << "clearing 8,192 entries did " << ops << " schedule operations";
  EXPECT_EQ(e.scheduled(), 0u);
  EXPECT_EQ(e.metrics().schedule_done.load(), engine::Engine::kMaxScheduled);
  // …and the schedule works after it: handles handed out again from the start.
  for (int i = 0; i < 1000; ++i) ASSERT_TRUE(e.send(master_at(e.frame() + 1000 + i)));
  e.process(out.data(), 64);
  e.process(out.data(), 64);  // kMaxCommandsPerCallback (512) taken per callback
  EXPECT_EQ(e.scheduled(), 1000u);
  for (int i = 0; i < 40; ++i) e.process(out.data(), 64);
  EXPECT_EQ(e.scheduled(), 0u);
}

INSTANTIATE_TEST_SUITE_P(BlockSizes, Schedule, ::testing::Values(1u, 64u, 256u, 1000u, 1024u));

}  // namespace
}  // namespace stemd::test
