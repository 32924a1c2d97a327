// The state file's writes, held to what a restart needs (outside pass 25, N3): one 24-byte
// /stemd/master a second made stemd format a state a client had made 17 MB large on the control
// thread and write it, every second (511 MB in 30 s; OSC answers held up to 0.9 s). Now levels,
// EQ and fades are written at most every --state-interval as positions are, a load at once; the
// text is made on the main thread (flush()), never by the control thread's poll(); and the writes
// are held to a budget of bytes a minute, said once.
//
// Threads: the test thread is [control] (router, controller, poll()) and [main] (flush()), but
// for the format hook's test, whose flush() runs on a thread of its own.
#include "app/state.hpp"
#include "common/engine_driver.hpp"
#include "router_rig.hpp"
#include "state_test_util.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <thread>

namespace stemd::app {
namespace {

using control::OscArg;
using namespace state_test;

void next_look() { std::this_thread::sleep_for(std::chrono::milliseconds(1100)); }  // poll() looks once a second

// A crossfade's steps (the master, a deck, an EQ band) within one --state-interval are not each
// a write: before, every look that saw a level move queued the whole state.
TEST(StateWear, LevelChangesWithinTheIntervalAreNotEachAWriteButALoadIs) {
  test::TempDir dir;
  test::make_wav(dir.file("a.wav"), 4800, 1);
  const std::string path = dir.file("state");
  Rig rig;
  StateKeeper keeper({path, false, 60.0, "test"});
  keeper.poll(rig.ctl, rig.router);  // the first look always queues
  ASSERT_TRUE(keeper.flush());
  std::string last = slurp(path);
  int rewrites = 0;
  const OscMessage steps[] = {msg("/stemd/master", OscArg::Float(0.6)),
                              msg("/deck_levels", OscArg::Float(0.3), OscArg::Float(0.7)),
                              msg("/deck_eq", OscArg::Str("A"), OscArg::Str("low"), OscArg::Float(25))};
  for (const OscMessage& m : steps) {
    ASSERT_EQ(rig.send(m).address, "/done") << show(m);
    rig.render(256);  // heard
    next_look();
    keeper.poll(rig.ctl, rig.router);
    keeper.flush();
    const std::string now = slurp(path);
    rewrites += now != last;
    last = now;
  }
  EXPECT_EQ(rewrites, 0) << "level changes within --state-interval (60 s here) were each written:\n" << last;
  // A load is structure: written at the next look, with the levels as they are by then.
  ASSERT_EQ(rig.send(msg("/stemd/load", OscArg::Int(4), OscArg::Str(dir.file("a.wav")))).address, "/done");
  next_look();
  keeper.poll(rig.ctl, rig.router);
  ASSERT_TRUE(keeper.flush());
  const std::string after = slurp(path);
  EXPECT_NE(after.find("/stemd/load 4 "), std::string::npos) << after;
  EXPECT_NE(after.find("/stemd/master 0.6 0"), std::string::npos) << after;
  EXPECT_NE(after.find("/stemd/deck A 0.3 0"), std::string::npos) << after;
  EXPECT_NE(after.find("/deck_filter A low"), std::string::npos) << after;
}

// A state a client made larger than a minute's write budget (4 MiB): 1,100 ids named with 1,024
// control bytes each (written "\x01": 4.6 MB). Before, every structural change rewrote all of it
// at the next look (the attack used levels; a load or unload a second does the same today).
// Now the write after it waits for the budget, said once in the log; the shutdown's save is not
// held.
TEST(StateWear, AStateLargerThanTheWriteBudgetIsNotRewrittenAtEveryChange) {
  test::TempDir dir;
  test::make_wav(dir.file("a.wav"), 480, 1);
  const std::string path = dir.file("state");
  LogCapture log;
  Rig rig;
  const std::string name(1024, '\x01');
  constexpr int kIds = 1100;
  for (int id = 1; id <= kIds; ++id) {
    const OscMessage r =
        rig.send(msg("/stemd/load", OscArg::Int(id), OscArg::Str(dir.file("a.wav")), OscArg::Str(name)));
    ASSERT_EQ(r.address, "/done") << id << ": " << show(r);
  }
  StateKeeper keeper({path, false, 5.0, "test"});
  keeper.poll(rig.ctl, rig.router);
  ASSERT_TRUE(keeper.flush());
  const std::string first = slurp(path);
  ASSERT_GT(first.size(), std::size_t{4} << 20) << "the state must be larger than a minute's budget";
  int rewrites = 0;
  for (int k = 0; k < 2; ++k) {  // an unload, then a load: structure, each seen at the next look
    const OscMessage m = k == 0 ? msg("/stemd/unload", OscArg::Int(kIds))
                                : msg("/stemd/load", OscArg::Int(kIds), OscArg::Str(dir.file("a.wav")));
    ASSERT_EQ(rig.send(m).address, "/done") << show(m);
    next_look();
    keeper.poll(rig.ctl, rig.router);
    keeper.flush();
    rewrites += slurp(path) != first;
  }
  EXPECT_EQ(rewrites, 0) << "a " << first.size() << "-byte state rewritten within seconds";
  const std::string said = "its writes are held to 4.2 MB a minute (a state of 4.6 MB)";
  const std::string text = log.text();
  ASSERT_NE(text.find(said), std::string::npos) << text.substr(0, 2000);
  EXPECT_EQ(text.find(said, text.find(said) + 1), std::string::npos) << "said once";
  ASSERT_TRUE(keeper.save(5.0));  // the shutdown's save: not held
  EXPECT_NE(slurp(path).find("/stemd/load 1100 \"" + dir.file("a.wav") + "\" \"a\""), std::string::npos);
}

// The text is made by flush() [main], never by poll() [control]: a 17 MB format held the control
// thread (and every OSC answer) for up to 0.9 s. And the counters the status reports
// (state_writes, state_bytes) follow the writes.
TEST(StateWear, TheTextIsMadeByFlushNotByPollAndTheWritesAreCounted) {
  test::TempDir dir;
  const std::string path = dir.file("state");
  Rig rig;
  std::atomic<int> formats{0};
  std::thread::id format_thread;
  StateKeeper::Config c{path, false, 5.0, "test"};
  c.on_format = [&] {
    ++formats;
    format_thread = std::this_thread::get_id();
  };
  StateKeeper keeper(std::move(c));
  keeper.poll(rig.ctl, rig.router);
  EXPECT_EQ(formats.load(), 0) << "poll() made the text on the control thread";
  std::thread::id flusher;
  std::async(std::launch::async, [&] {
    flusher = std::this_thread::get_id();
    EXPECT_TRUE(keeper.flush());
  }).get();
  EXPECT_EQ(formats.load(), 1);
  EXPECT_EQ(format_thread, flusher);
  EXPECT_EQ(keeper.counters()->writes.load(), 1u);
  EXPECT_EQ(keeper.counters()->bytes.load(), slurp(path).size());
  ASSERT_EQ(rig.send(msg("/stemd/master", OscArg::Float(0.5))).address, "/done");
  rig.render(256);
  keeper.capture_now(rig.ctl, rig.router);
  ASSERT_TRUE(keeper.flush());
  EXPECT_EQ(keeper.counters()->writes.load(), 2u);
  EXPECT_EQ(keeper.counters()->bytes.load(), slurp(path).size());
  EXPECT_TRUE(keeper.flush());  // nothing queued: nothing written
  EXPECT_EQ(keeper.counters()->writes.load(), 2u);
}

// What is structure and what is continuous: a fade's end is a change (written, within the
// interval), a level is continuous, a pause or a load is structure.
TEST(StateWear, LevelsAndFadesAreContinuousLoadsAndPausesAreStructure) {
  DaemonState a;
  a.sources.push_back(StateSource{1, "/x.wav", "x"});
  a.voices.push_back(StateVoice{});
  a.voices[0].id = 1;
  EXPECT_EQ(state_change(a, a), StateChange::kNone);
  DaemonState b = a;
  b.master = 0.5f;
  b.eq[1][2] = 0.3f;
  b.voices[0].volume = 0.2f;
  b.voices[0].position = 480;
  EXPECT_EQ(state_change(a, b), StateChange::kContinuous);
  b = a;
  b.deck_fades[2] = StateFade{0.4f, 3.0, engine::Curve::kLinear};
  EXPECT_EQ(state_change(a, b), StateChange::kContinuous);
  b = a;
  b.voices[0].paused = true;
  EXPECT_EQ(state_change(a, b), StateChange::kStructure);
  b = a;
  b.master = 0.5f;
  b.sources.push_back(StateSource{2, "/y.wav", "y"});
  EXPECT_EQ(state_change(a, b), StateChange::kStructure);
}

}  // namespace
}  // namespace stemd::app
