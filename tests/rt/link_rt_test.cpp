// Real-time safety of the Link session's audio side (control/link_session.cpp): on_period —
// Link's captureAudioSessionState(), beatAtTime(), the grid's publication — runs on a thread
// marked as the audio thread with zero tripwire violations, while the control thread changes the
// tempo and the quantum and reads the grid, and with the engine calling it from process().
#include "control/link_session.hpp"
#include "stemd/engine.hpp"
#include "tripwire.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

namespace stemd::control {
namespace {

namespace tw = test::tripwire;

TEST(LinkRt, AudioSideNeverAllocatesOrLocks) {
  LinkSession link(120.0, 0.005, false);  // not joined: no real session is moved
  std::atomic<bool> stop{false};
  std::thread control([&] {  // what the control thread does meanwhile
    double bpm = 120;
    LinkGrid g;
    while (!stop.load()) {
      link.set_tempo(bpm = bpm > 130 ? 120 : bpm + 1);
      link.set_quantum(bpm > 125 ? 8 : 4);
      link.grid(g);
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  });
  tw::reset();
  std::int64_t frame = 0;
  for (int i = 0; i < 2000; ++i) {
    {
      tw::AudioScope audio;
      link.on_period(frame, 1'000'000'000ull + static_cast<std::uint64_t>(frame) * 20833, 20833.3);
    }
    frame += 256;
    if (i % 20 == 0) std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  stop.store(true);
  control.join();
  EXPECT_EQ(tw::violations(), 0) << "first: " << (tw::first_violation() ? tw::first_violation() : "");
  LinkGrid g;
  ASSERT_TRUE(link.grid(g));
  EXPECT_EQ(g.frame, frame - 256);
  EXPECT_GT(g.bpm, 0);
}

// The engine calls the listener from process(): the whole callback stays clean.
TEST(LinkRt, EngineCallbackWithLinkListener) {
  engine::EngineConfig ec;
  ec.max_voices = 4;
  ec.max_block_frames = 256;
  engine::Engine e(ec);
  LinkSession link(120.0, 0.005, false);
  e.set_period_listener(&link);
  std::vector<float> out(256 * 2);
  tw::reset();
  for (int i = 0; i < 500; ++i) {
    tw::AudioScope audio;
    e.process(out.data(), 256);
  }
  EXPECT_EQ(tw::violations(), 0) << "first: " << (tw::first_violation() ? tw::first_violation() : "");
  e.set_period_listener(nullptr);
  LinkGrid g;
  ASSERT_TRUE(link.grid(g));
  EXPECT_EQ(g.frame, 499 * 256);
}

}  // namespace
}  // namespace stemd::control
