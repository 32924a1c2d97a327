// app::Instance, the owner object: its two construction steps, and the one control thread it
// hands the Controller and the Router to — the OSC server's thread, or (without OSC) its own.
#include "app/instance.hpp"

#include "common/fixtures.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <thread>

namespace stemd {
namespace {

using namespace std::chrono_literals;

app::InstanceConfig small_config(bool osc) {
  app::InstanceConfig ic;
  ic.engine.sample_rate = 48000;
  ic.engine.max_block_frames = 4096;
  ic.engine.max_voices = 8;
  ic.load.output_rate = 48000;
  ic.osc = osc;
  ic.osc_server.bind = "127.0.0.1";
  ic.osc_server.port = 0;  // any free port
  return ic;
}

// Runs f through post() and returns the id of the thread that ran it (bounded wait).
std::thread::id thread_of_post(app::Instance& inst) {
  auto ran = std::make_shared<std::promise<std::thread::id>>();
  auto done = ran->get_future();
  inst.post([ran] { ran->set_value(std::this_thread::get_id()); });
  EXPECT_EQ(done.wait_for(5s), std::future_status::ready) << "posted work never ran";
  return done.valid() ? done.get() : std::thread::id{};
}

TEST(Instance, BuildsTheCoreThenTheControlSide) {
  app::Instance inst(small_config(false));
  EXPECT_EQ(inst.engine().config().sample_rate, 48000);
  EXPECT_EQ(inst.server(), nullptr);
  std::string err;
  ASSERT_TRUE(inst.open_control(err)) << err;
  EXPECT_EQ(inst.router().config().sample_rate, 48000);
  EXPECT_EQ(inst.server(), nullptr) << "no OSC server without cfg.osc";
}

TEST(Instance, WithoutOscTheControlSideRunsOnItsOwnThreadBetweenStartAndStop) {
  app::Instance inst(small_config(false));
  std::string err;
  ASSERT_TRUE(inst.open_control(err)) << err;
  std::atomic<int> ticks{0};
  std::atomic<bool> tick_on_caller{false};
  const auto caller = std::this_thread::get_id();
  inst.set_control_tick([&] {
    ++ticks;
    if (std::this_thread::get_id() == caller) tick_on_caller = true;
  });
  EXPECT_EQ(thread_of_post(inst), caller) << "before start_control the caller is the control thread";
  inst.start_control();
  EXPECT_TRUE(inst.control_running());
  const std::thread::id control = thread_of_post(inst);
  EXPECT_NE(control, caller);
  EXPECT_EQ(thread_of_post(inst), control) << "always the same thread";
  const auto until = std::chrono::steady_clock::now() + 5s;
  while (ticks.load() < 3 && std::chrono::steady_clock::now() < until) std::this_thread::sleep_for(5ms);
  EXPECT_GE(ticks.load(), 3) << "the control thread passes at least every 100 ms";
  inst.stop_control();
  EXPECT_FALSE(inst.control_running());
  EXPECT_FALSE(tick_on_caller.load());
  const int after_stop = ticks.load();
  std::this_thread::sleep_for(60ms);
  EXPECT_EQ(ticks.load(), after_stop) << "no pass after stop_control";
  EXPECT_EQ(thread_of_post(inst), caller) << "after stop_control the caller is the control thread again";
}

// The router's tick runs on the Instance's own control thread as on the OSC server's: without it
// a --link --no-osc daemon never followed the Link session (its tempo, grid and peers).
TEST(Instance, WithoutOscTheRouterTicksOnTheControlThread) {
  app::Instance inst(small_config(false));
  std::string err;
  ASSERT_TRUE(inst.open_control(err)) << err;
  std::atomic<int> ticks{0};
  inst.router().set_tick_hook([&] { ++ticks; });  // called first thing in every Router::tick()
  inst.start_control();
  const auto until = std::chrono::steady_clock::now() + 5s;
  while (ticks.load() < 3 && std::chrono::steady_clock::now() < until) std::this_thread::sleep_for(5ms);
  EXPECT_GE(ticks.load(), 3) << "the router ticks at every pass of the control thread (at least every 100 ms)";
  inst.stop_control();
}

TEST(Instance, WorkPostedBeforeStopRunsOnTheControlThread) {
  app::Instance inst(small_config(false));
  std::string err;
  ASSERT_TRUE(inst.open_control(err)) << err;
  inst.start_control();
  std::atomic<int> ran{0};
  std::atomic<bool> on_caller{false};
  const auto caller = std::this_thread::get_id();
  for (int i = 0; i < 100; ++i) {
    inst.post([&] {
      ++ran;
      if (std::this_thread::get_id() == caller) on_caller = true;
    });
  }
  inst.stop_control();  // drains what was posted before it returns
  EXPECT_EQ(ran.load(), 100);
  EXPECT_FALSE(on_caller.load());
}

TEST(Instance, WithOscTheServersThreadIsTheControlThread) {
  app::Instance inst(small_config(true));
  std::string err;
  ASSERT_TRUE(inst.open_control(err)) << err;
  ASSERT_NE(inst.server(), nullptr);
  EXPECT_NE(inst.server()->local_udp().port(), 0) << "the socket is bound by open_control";
  const auto caller = std::this_thread::get_id();
  inst.start_control();
  EXPECT_NE(thread_of_post(inst), caller);
  inst.stop_control();
  EXPECT_EQ(thread_of_post(inst), caller);
}

// Without OSC, the Instance's own control thread sleeps until work is posted or the engine has
// news (its bell, passed on by the loader) — not every 20 ms, as it did — and still hears a
// voice's start and end. The test thread plays the audio thread's part.
TEST(Instance, WithoutOscTheEnginesNewsWakesTheControlThread) {
  test::TempDir dir;
  test::make_wav(dir.file("a.wav"), 480'000, 31);
  app::InstanceConfig ic = small_config(false);
  std::atomic<int> started{0}, ended{0};
  ic.on_event = [&](const engine::Event& e, const control::VoiceInfo&, base::LogLimiter*) {
    if (e.type == engine::EventType::kVoiceStarted) ++started;
    if (e.type == engine::EventType::kVoiceEnded) ++ended;
  };
  app::Instance inst(ic);
  std::string err;
  ASSERT_TRUE(inst.open_control(err)) << err;
  std::atomic<int> ticks{0};
  inst.set_control_tick([&] { ++ticks; });
  inst.loader().start();
  inst.start_control();
  control::VoiceHandle h;
  auto played = std::make_shared<std::promise<bool>>();
  auto ok = played->get_future();
  inst.post([&, played] {
    std::string e;
    played->set_value(inst.controller().load(control::kNow, 1, dir.file("a.wav"), "a", e) &&
                      inst.controller().play(control::kNow, 1, control::PlayOptions{}, h, e));
  });
  ASSERT_EQ(ok.wait_for(5s), std::future_status::ready);
  ASSERT_TRUE(ok.get());

  std::vector<float> out(512 * 2);
  auto play_for = [&](std::chrono::milliseconds span, const std::atomic<int>* until) {
    const auto end = std::chrono::steady_clock::now() + span;
    while (std::chrono::steady_clock::now() < end && (until == nullptr || until->load() == 0)) {
      inst.engine().process(out.data(), 512, false);  // ≈ a 10.7 ms period, every 10 ms
      std::this_thread::sleep_for(10ms);
    }
  };
  play_for(5s, &started);
  ASSERT_EQ(started.load(), 1) << "the start reached the control thread";
  const int before = ticks.load();
  play_for(500ms, nullptr);
  EXPECT_LE(ticks.load() - before, 10) << "passes in 0.5 s of a voice playing (every 20 ms before: 25)";

  inst.post([&] {
    std::string e;
    inst.controller().stop(control::kNow, h, 0.0, e);
  });
  play_for(5s, &ended);
  EXPECT_EQ(ended.load(), 1) << "the end reached the control thread";
  inst.stop_control();
  inst.loader().stop();
}

TEST(Instance, DestroyedWhileItsControlThreadRunsJoinsIt) {
  const auto t0 = std::chrono::steady_clock::now();
  {
    app::Instance inst(small_config(false));
    std::string err;
    ASSERT_TRUE(inst.open_control(err)) << err;
    inst.start_control();
  }
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s) << "does not hang";
}

}  // namespace
}  // namespace stemd
