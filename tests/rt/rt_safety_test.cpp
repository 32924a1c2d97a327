// Real-time safety: the audio thread never allocates, frees, locks, waits, sleeps or does file
// I/O — checked by the tripwire while the engine goes through every control path.
//
// A dedicated thread plays the audio callback: it marks itself, runs Engine::process() on a
// period's worth of frames, unmarks itself and sleeps (outside the marked region) like a device
// would between callbacks. The test thread is the control thread: it loads, plays (memory and
// streamed sources, loops, mid-file starts), seeks, changes volume and loop, stops, unloads,
// reloads and stops everything, plays the test tone (an oscillator) and schedules, cancels and
// clears timed plays, while the loader thread streams. The tripwire must see nothing.
#include "common/fixtures.hpp"
#include "control/controller.hpp"
#include "io/loader_thread.hpp"
#include "tripwire.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

namespace stemd {
namespace {

namespace tw = test::tripwire;

// The tripwire itself must catch what it is meant to catch, or a green suite means nothing.
TEST(Tripwire, CatchesAllocationOnTheAudioThread) {
  tw::reset();
  {
    tw::AudioScope audio;
    std::vector<int> v;
    v.push_back(1);  // allocates
    asm volatile("" : : "r"(v.data()) : "memory");
  }
  EXPECT_GE(tw::violations(), 1);
  EXPECT_STREQ(tw::first_violation(), "operator new");
  tw::reset();
}

TEST(Tripwire, CatchesLocksAndSleeps) {
  std::mutex m;
  tw::reset();
  {
    tw::AudioScope audio;
    m.lock();
    m.unlock();
  }
  EXPECT_EQ(tw::violations(), 1);
  EXPECT_STREQ(tw::first_violation(), "pthread_mutex_lock");
  tw::reset();
  {
    tw::AudioScope audio;
    std::this_thread::sleep_for(std::chrono::microseconds(1));
  }
  EXPECT_EQ(tw::violations(), 1);
  EXPECT_STREQ(tw::first_violation(), "nanosleep");
  tw::reset();
}

TEST(Tripwire, IgnoresOtherThreads) {
  tw::reset();
  std::vector<int> v(1000);
  v.push_back(1);
  std::mutex m;
  m.lock();
  m.unlock();
  EXPECT_EQ(tw::violations(), 0);
}

class AudioThread {
 public:
  AudioThread(engine::Engine& e, std::uint32_t frames) : engine_(e), frames_(frames), buf_(frames * 2) {
    thread_ = std::thread([this] { run(); });
  }
  ~AudioThread() { stop(); }
  void stop() {
    if (running_.exchange(false) && thread_.joinable()) thread_.join();
  }
  std::uint64_t callbacks() const { return callbacks_.load(); }
  float peak() const { return peak_.load(); }

 private:
  void run() {
    while (running_.load()) {
      {
        tw::AudioScope audio;
        engine_.process(buf_.data(), frames_);
        float p = 0;
        for (float s : buf_) p = std::max(p, std::fabs(s));
        if (p > peak_.load(std::memory_order_relaxed)) peak_.store(p, std::memory_order_relaxed);
        callbacks_.fetch_add(1, std::memory_order_relaxed);
      }
      std::this_thread::sleep_for(std::chrono::microseconds(300));  // between callbacks: not audio
    }
  }
  engine::Engine& engine_;
  std::uint32_t frames_;
  std::vector<float> buf_;
  std::atomic<bool> running_{true};
  std::atomic<std::uint64_t> callbacks_{0};
  std::atomic<float> peak_{0.0f};
  std::thread thread_;
};

// Every control path with the master stage as configured: the safety limiter, or the old
// crowdstream server's soft clip (--limiter soft_clip) with a master of 0.8.
// monitor: the web monitor's meters and master tap on (EngineConfig::monitor), with a reader
// that first lets the tap fill (the drop path) and then drains it (the hand-over path).
// buses: stretch buses on (EngineConfig::stretch_buses), and every stretched voice joins, glides,
// leaves (a tempo of its own), seeks and stops on them; all leave at once (deferred primes); plays
// on a running bus are handed over (own stretcher, tap, crossfade), one seeking, one stopping.
// share: the buses shared by the decks (EngineConfig::stretch_bus_share), the voices on two decks,
// each deck's EQ and fader copied at the buses' inputs.
void every_control_path(bool soft_clip, bool monitor = false, bool buses = false, bool share = false) {
  test::TempDir dir;
  const std::string small = dir.file("small.wav");  // held in memory
  const std::string big = dir.file("big.wav");      // streamed
  const std::string mono = dir.file("mono.wav");    // streamed, mono
  const std::string other = dir.file("44k1.wav");   // streamed at 44.1 kHz: plays resampled
  test::write_wav16(small, test::make_tone_noise16(9000, 2, 1), 2);
  test::write_wav16(big, test::make_tone_noise16(48000 * 3, 2, 2), 2);
  test::write_wav16(mono, test::make_tone_noise16(48000 * 2, 1, 3), 1);
  test::write_wav16(other, test::make_tone_noise16(44100 * 2, 2, 4), 2, 44100);

  engine::EngineConfig ec;
  ec.max_voices = 64;
  ec.max_block_frames = 1024;
  ec.max_stretched_voices = buses ? 8 : 2;
  ec.stretch_buses = buses ? 1 : 0;
  ec.stretch_bus_share = share;
  ec.limiter = !soft_clip;
  ec.soft_clip = soft_clip;
  if (soft_clip) ec.master = 0.8f;
  ec.monitor = monitor;
  engine::Engine engine(ec);
  std::atomic<bool> reading{monitor};
  std::uint64_t chunks_read = 0;
  std::thread reader;
  if (monitor) {
    engine.monitor_tap()->set_enabled(true);
    reader = std::thread([&] {
      // Until the tap has run full (the drop path), however slowly a loaded machine renders: a
      // fixed 500 ms was less than the tap's 1.4 s of audio under CI's parallel builds.
      while (reading.load() && engine.monitor_tap()->dropped() == 0) {
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
      }
      engine::MonitorTap::Chunk c;
      while (reading.load()) {
        while (engine.monitor_tap()->read(c)) ++chunks_read;
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
      }
    });
  }
  io::LoaderConfig lc;
  lc.ring_frames = 12000;
  lc.chunk_frames = 4096;
  lc.prefill_frames = 4096;
  io::LoaderThread loader(lc);
  engine.set_loader_wakeup(&io::LoaderThread::wake_cb, &loader);
  io::LoadOptions lo;
  lo.preload_limit_bytes = 200 * 1024;  // small.wav (≈ 70 KB decoded) in memory; the others stream
  lo.head_frames = 4800;
  control::Controller ctl(engine, loader, lo);
  loader.start();

  std::string err;
  ASSERT_TRUE(ctl.load(control::kNow, 1, small, "small", err)) << err;
  ASSERT_TRUE(ctl.load(control::kNow, 2, big, "big", err)) << err;
  ASSERT_TRUE(ctl.load(control::kNow, 3, mono, "mono", err)) << err;
  ASSERT_TRUE(ctl.load(control::kNow, 4, other, "44k1", err)) << err;
  ASSERT_FALSE(ctl.source(1)->streamed());
  ASSERT_TRUE(ctl.source(2)->streamed());
  // 16-bit stereo heads are int16 (mixed in place, or converted into a resampler's scratch for
  // the 44.1 kHz file): both paths run under the tripwire below. Mono heads stay float.
  ASSERT_NE(ctl.source(2)->view.frames16, nullptr);
  ASSERT_NE(ctl.source(4)->view.frames16, nullptr);
  ASSERT_EQ(ctl.source(3)->view.frames16, nullptr);

  tw::reset();
  AudioThread audio(engine, 256);
  std::mt19937 rng(42);
  std::vector<control::VoiceHandle> voices;
  std::uint32_t bus_voices = 0;  // most voices on stretch buses at once
  auto pause = [&](int ms) {
    for (int i = 0; i < ms; i += 2) {
      ctl.service();
      bus_voices = std::max(bus_voices, engine.metrics().stretch_bus_voices.load());
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  };

  for (int cycle = 0; cycle < 12; ++cycle) {
    // play: memory / streamed / mono, looped or not, from the start or mid-file (past the head)
    for (int slot : {1, 2, 3, 4}) {
      control::PlayOptions po;
      po.loop = (cycle + slot) % 2 == 0;
      po.volume = 0.5f;
      if (share) po.deck = slot % 2 == 0 ? 3 : 0;  // deck D's EQ cuts and kills below
      po.start_frame = (cycle % 3 == 0) ? 0 : static_cast<std::int64_t>(rng() % 8000);
      if (slot != 1 && cycle % 4 == 1) po.start_frame = 30000;  // beyond the head: prefilled stream
      control::VoiceHandle h;
      ASSERT_TRUE(ctl.play(control::kNow, slot, po, h, err)) << err;
      voices.push_back(h);
    }
    pause(20);
    for (auto& h : voices) {
      ctl.set_volume(control::kNow, h, 0.3f, 0.01, err);
      ctl.set_loop(control::kNow, h, cycle % 2 == 0, err);
      if (ctl.voice_alive(h)) ctl.seek(control::kNow, h, static_cast<std::int64_t>(rng() % 40000) % 9000, err);
    }
    pause(20);
    ctl.set_master(control::kNow, cycle % 2 ? 0.8f : 1.0f, 0.01, err);
    // deck levels and EQ (kill, cut, flat: the EQ enters and leaves its bypass)
    ctl.set_deck_level(control::kNow, cycle % 4, cycle % 2 ? 0.5f : 1.0f, 0.01, err);
    ctl.set_deck_eq(control::kNow, 3, cycle % 3, cycle % 2 ? 0.0f : 1.0f, 0.01, err);
    ctl.set_deck_eq(control::kNow, 3, (cycle + 1) % 3, cycle % 3 ? 0.25f : 1.0f, 0.01, err);
    ctl.set_deck_level(ctl.now_frame() + 2000, 3, 1.0f, 0.0, err);  // a scheduled command
    control::VoiceHandle any;
    if (!voices.empty() && ctl.voice_alive(voices.back())) {
      ctl.set_rate(control::kNow, voices.back(), cycle % 2 ? 1.5f : 0.75f, 0.01, err);  // on and off the bit-exact path
      if (voices.size() > 1 && ctl.voice_alive(voices.front()))
        ctl.set_stretch(control::kNow, voices.front(), 1.2f, err);
      if (buses) {  // every voice onto a bus, then one at a tempo of its own (it leaves)
        for (auto& h : voices) ctl.set_stretch(control::kNow, h, cycle % 2 ? 1.1f : 1.2f, err);
        pause(10);
        // Stretched plays on the running buses (streamed 44.1 kHz and 48 kHz files): handed over
        // (an own stretcher and the tap, then the crossfade), two in one period (one group); one
        // seeks and one stops within the handover.
        control::PlayOptions sp;
        sp.tempo = cycle % 2 ? 1.1f : 1.2f;
        sp.volume = 0.5f;
        control::VoiceHandle h1, h2;
        const bool p1 = ctl.play(control::kNow, 4, sp, h1, err), p2 = ctl.play(control::kNow, 2, sp, h2, err);
        pause(4);
        if (p1) ctl.seek(control::kNow, h1, 3000, err);
        if (p2 && cycle % 2) ctl.stop(control::kNow, h2, 0.002, err);
        pause(10);
        if (p1) voices.push_back(h1);
        if (p2) voices.push_back(h2);
        ctl.set_stretch(control::kNow, voices.front(), 0.9f, err);
        pause(10);
        // every voice at a tempo of its own in one period: they leave together onto stretchers of
        // their own, past the per-callback prime budget (deferred starts: engine/stretcher.hpp)
        for (std::size_t i = 0; i < voices.size(); ++i)
          ctl.set_stretch(control::kNow, voices[i], 0.8f + 0.05f * static_cast<float>(i), err);
        pause(10);
        // A bus running at the tempo of one of them: it rejoins (its own stretcher handed over
        // back onto the bus, then to the pool: stretch_bus.hpp, "Rejoining").
        control::VoiceHandle h3;
        sp.tempo = 0.8f;
        if (ctl.play(control::kNow, 4, sp, h3, err)) voices.push_back(h3);
        pause(20);
      }
      ctl.pause(control::kNow, voices.back(), 0.005, err);
      ctl.set_pan(control::kNow, voices.back(), -0.5f, 0.01, err);
      ctl.resume(control::kNow, voices.back(), 0.005, err);
    }
    // the test tone (an oscillator on the direct bus), replaced while it sounds
    ctl.tone(control::kNow, 220.0 * (1 + cycle % 4), 0.2, 0.03, err);
    pause(4);
    ctl.tone(control::kNow, 330.0, 0.2, 0.02, err);
    {  // a scheduled play (streamed; on a bus with buses) whose commands come before its frame: it
       // starts paused, seeked, at a level on its way, panned (engine_pending.cpp); then a play
       // and its pause in one pass (paused before a frame of it is heard)
      control::PlayOptions po;
      po.tempo = buses ? 1.2f : 1.0f;
      control::VoiceHandle q, p;
      if (ctl.play(ctl.now_frame() + 2400, 2, po, q, err)) {
        ctl.pause(control::kNow, q, 0.0, err);
        ctl.set_volume(control::kNow, q, 0.4f, 0.2, err);
        ctl.set_pan(control::kNow, q, 0.3f, 0.0, err);
        ctl.seek(control::kNow, q, 5000, err);
        ctl.set_loop(control::kNow, q, true, err);
        pause(80);
        ctl.resume(control::kNow, q, 0.005, err);
        voices.push_back(q);
      }
      if (ctl.play(control::kNow, 1, control::PlayOptions{}, p, err)) {
        ctl.pause(control::kNow, p, 0.0, err);
        voices.push_back(p);
      }
      pause(10);
    }
    {  // scheduled plays: one cancelled by a stop before its frame, one by clearing the schedule
      control::VoiceHandle s1, s2;
      const std::int64_t later = ctl.now_frame() + 24000;
      ASSERT_TRUE(ctl.play(later, 1, control::PlayOptions{}, s1, err)) << err;
      ASSERT_TRUE(ctl.play(later, 1, control::PlayOptions{}, s2, err)) << err;
      ctl.set_master(later, 1.0f, 0.0, err);
      ctl.stop(control::kNow, s1, 0.0, err);
      std::size_t cleared = 0;
      ctl.clear_schedule(cleared, err);
    }
    // stop half, let the rest run on (ends of files, loop seams, underruns are all exercised)
    for (std::size_t i = 0; i < voices.size(); i += 2) ctl.stop(control::kNow, voices[i], 0.005, err);
    pause(30);
    if (cycle % 3 == 2) {
      // unload while playing, then reload the same slot (the source outlives its voices)
      ASSERT_TRUE(ctl.unload(control::kNow, 2, err)) << err;
      ASSERT_TRUE(ctl.load(control::kNow, 2, big, "big", err)) << err;
    }
    if (cycle % 4 == 3) {
      ctl.stop_all(control::kNow, 0.005, err);
      voices.clear();
    }
    std::erase_if(voices, [&](const control::VoiceHandle& h) { return !ctl.voice_alive(h); });
  }
  ctl.stop_all(control::kNow, 0.001, err);
  pause(100);
  audio.stop();
  if (monitor) {
    reading = false;
    reader.join();
    EXPECT_GT(chunks_read, 100u) << "the tap handed nothing over";
    EXPECT_GT(engine.monitor_tap()->dropped(), 0u) << "the tap never ran full: the drop path was not exercised";
    EXPECT_GT(
        engine.metrics().meters[engine::kNumDecks].rms.load() + engine.metrics().meters[engine::kNumDecks].take_peak(),
        0.0f);
  }
  loader.stop();
  ctl.service();

  EXPECT_EQ(tw::violations(), 0) << "the audio thread called " << tw::first_violation();
  EXPECT_GT(audio.callbacks(), 100u);
  EXPECT_GT(audio.peak(), 0.05f) << "nothing was audible: the test exercised nothing";
  EXPECT_GT(engine.metrics().commands_applied.load(), 100u);
  EXPECT_GT(loader.stats().reads, 10u) << "no streaming happened";
  // The rings' refill doorbells (an atomic OR from the audio thread) rang under the tripwire.
  EXPECT_GT(loader.stats().bells, 0u) << "no doorbell rang: the audio thread's part went untested";
  if (buses) {
    EXPECT_GE(bus_voices, 2u) << "no voices shared a stretch bus";
    EXPECT_GT(engine.metrics().stretch_starts_deferred.load(), 0u) << "no prime was deferred: that path went untested";
    EXPECT_GT(engine.metrics().stretch_handovers.load(), 0u) << "no start was handed over onto a running bus";
    EXPECT_GT(engine.metrics().stretch_rejoins.load(), 0u) << "no voice rejoined a bus: that path went untested";
  }
}

TEST(RealTimeSafety, EveryControlPathLeavesTheAudioThreadClean) { every_control_path(false); }

TEST(RealTimeSafety, SoftClipMasterStageLeavesTheAudioThreadClean) { every_control_path(true); }

// The web monitor (issue 16): meters and the master's tap, full and drained, on the audio thread.
TEST(RealTimeSafety, MonitorTapAndMetersLeaveTheAudioThreadClean) { every_control_path(false, true); }

// Stretch buses (engine/stretch_bus.hpp): members rendered inside the bus's pull, joins with their
// skip, tempo glides, leaves onto a stretcher of their own, seeks, stops and tails.
TEST(RealTimeSafety, StretchBusesLeaveTheAudioThreadClean) { every_control_path(false, false, true); }

// Shared stretch buses: the decks' parts through the buses' copies of the deck EQs and faders
// (commands mirrored, copies synced when a bus starts), with the meters on.
TEST(RealTimeSafety, SharedStretchBusesLeaveTheAudioThreadClean) { every_control_path(false, true, true, true); }

}  // namespace
}  // namespace stemd
