// The work budgets and the stretch buses (control/controller_buses.cpp, engine/stretch_bus.hpp):
// with --stretch-method time_stretch the stems of a deck at one tempo are stretched once, on the
// deck's bus, and resampled once after it; the budgets charge the bus's converters, not one
// stretcher and one resampler per stem. Before, 8 stems at tempo 1.3 were charged 10.4 stretching
// units, so the /set_tempo was refused though the engine runs two stretchers for it.
#include "common/fixtures.hpp"

#include "engine/bus_rule.hpp"
#include "router_rig.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace stemd::test {
namespace {

using control::OscArg;
using control::OscMessage;

OscMessage msg(std::string address, std::vector<OscArg> args = {}) {
  return OscMessage{std::move(address), std::move(args)};
}

bool has(const std::string& s, const char* part) { return s.find(part) != std::string::npos; }

// Time-stretched players, two stretch buses per rate (the daemon's default with time_stretch).
struct BusRig : RouterRig {
  explicit BusRig(std::uint32_t stretched = 8, std::uint32_t resampled = 64)
      : RouterRig(RouterRig::instance_config(router_config(), engine_config(stretched, resampled))) {}
  static control::RouterConfig router_config() {
    control::RouterConfig rc;
    rc.time_stretch = true;
    return rc;
  }
  static engine::EngineConfig engine_config(std::uint32_t stretched, std::uint32_t resampled) {
    engine::EngineConfig ec = RouterRig::config();
    ec.max_voices = 16;
    ec.max_resampled_voices = resampled;
    ec.max_stretched_voices = stretched;
    ec.stretch_buses = 2;
    return ec;
  }
  TempDir dir;
  void load(int id, int rate, int seconds = 5) {
    const std::string path = dir.file("stem" + std::to_string(id) + ".wav");
    write_long_wav16(path, static_cast<std::int64_t>(rate) * seconds, static_cast<std::uint32_t>(id), rate);
    const auto r = reply(msg("/load_buffer", {OscArg::Int(id), OscArg::Str(path)}));
    ASSERT_TRUE(r.ok) << r.reason;
  }
  void play(int id) {
    const auto r =
        reply(msg("/play_stem", {OscArg::Int(id), OscArg::Float(1.0f), OscArg::Float(0.1f), OscArg::Int(1)}));
    ASSERT_TRUE(r.ok) << r.reason;
  }
  void run(std::size_t frames) {
    render(frames);
    ctl.service();
  }
  std::uint32_t on_buses() const { return e.metrics().stretch_bus_voices.load(); }
  // The stretch bus (0, 1, …) player `id`'s voice rides as the engine reports it, -1: none.
  int rides(int id) const {
    const control::VoiceHandle h = router.player(id);
    return static_cast<int>(e.telemetry(h.id).bus.load()) - 1;
  }
  // Periods of 1024 frames, the controller serviced after each, until `done()` (true) or `periods` ran.
  template <class Done>
  bool run_until(int periods, Done done) {
    for (int i = 0; i < periods; ++i) {
      run(1024);
      if (done()) return true;
    }
    return false;
  }
};

// Eight 44.1 kHz stems, four on deck A and four on deck B, as the crowdstream workload plays them.
void play_eight(BusRig& rig, std::vector<int>& ids) {
  for (int k = 0; k < 8; ++k) ids.push_back(k < 4 ? 100 + k : 1100 + k - 4);
  for (int id : ids) rig.load(id, 44100);
  for (int id : ids) rig.play(id);
  rig.run(4096);
}

TEST(WorkBudgetBus, EightStemsAtTempoOnePointThreeCostTwoStretches) {
  BusRig rig;
  std::vector<int> ids;
  play_eight(rig, ids);
  EXPECT_EQ(rig.ctl.resample_units_used(), 8000u) << "8 resamplers 44.1 → 48 kHz at one unit";
  EXPECT_EQ(rig.ctl.stretch_units_used(), 0u);
  const auto r = rig.reply(msg("/set_tempo", {OscArg::Float(156.0f)}));  // base 120: tempo 1.3
  ASSERT_TRUE(r.ok) << r.reason;
  // Two buses (one per deck), each a stretcher at 1.3 and a resampler 44.1 → 48 kHz after it; the
  // stems' own resamplers go back.
  EXPECT_EQ(rig.ctl.stretch_units_used(), 2600u);
  EXPECT_EQ(rig.ctl.resample_units_used(), 2000u);
  rig.run(24 * 1024);  // heard, and checked against what the engine reports
  EXPECT_EQ(rig.on_buses(), 8u) << "the engine runs them as charged";
  EXPECT_EQ(rig.ctl.stretch_units_used(), 2600u);
  EXPECT_EQ(rig.ctl.resample_units_used(), 2000u);
  // Tempo 4: two stretchers at 4, 8 units: the budget takes it (8 stretchers at 4 were 32).
  const auto x = rig.reply(msg("/set_tempo", {OscArg::Float(480.0f)}));
  ASSERT_TRUE(x.ok) << x.reason;
  EXPECT_EQ(rig.ctl.stretch_units_used(), 8000u);
  rig.run(24 * 1024);
  EXPECT_EQ(rig.on_buses(), 8u);
}

// A member stretched alone leaves its bus: from then on it is charged a stretcher and a resampler of
// its own (the resampler feeds the stretcher: step × tempo), and refused when they do not fit.
TEST(WorkBudgetBus, AMemberStretchedAloneIsChargedItsOwnConverters) {
  BusRig rig;
  std::vector<int> ids;
  play_eight(rig, ids);
  ASSERT_TRUE(rig.reply(msg("/set_tempo", {OscArg::Float(300.0f)})).ok);  // 2.5: two buses, 5 units
  rig.run(24 * 1024);
  ASSERT_EQ(rig.on_buses(), 8u);
  EXPECT_EQ(rig.ctl.stretch_units_used(), 5000u);
  auto r = rig.reply(msg("/stemd/stretch", {OscArg::Int(ids[0]), OscArg::Float(4.0f)}));
  ASSERT_FALSE(r.ok) << "4 units of its own, 3 free";
  EXPECT_TRUE(has(r.reason, "busy: stretching budget: tempo 4 needs 4 units, 3 of 8 free")) << r.reason;
  r = rig.reply(msg("/stemd/stretch", {OscArg::Int(ids[0]), OscArg::Float(2.0f)}));
  ASSERT_TRUE(r.ok) << r.reason;
  // Until it is heard it is charged its tempo then (2.5) too, as any voice whose tempo falls.
  EXPECT_EQ(rig.ctl.stretch_units_used(), 5000u + 2500u);
  EXPECT_EQ(rig.ctl.resample_units_used(), 2000u + 2500u);  // its resampler feeds its stretcher: step 1 (up) × 2.5
  rig.run(24 * 1024);
  EXPECT_EQ(rig.on_buses(), 7u) << "the engine took it off the bus";
  EXPECT_EQ(rig.ctl.stretch_units_used(), 5000u + 2000u);   // the buses' 5 and its own 2
  EXPECT_EQ(rig.ctl.resample_units_used(), 2000u + 2000u);  // × 2
}

// One rule (engine/bus_rule.hpp) for the engine and the budget: a running bus of the voice's rate
// that takes its deck at its tempo, else the first idle one of its rate; no bus at rate ≠ 1, at
// tempo 1, or for the direct bus when buses are shared.
TEST(WorkBudgetBus, TheRuleJoinsARunningBusAtItsTempoElseTheFirstIdleOneOfItsRate) {
  using engine::bus_rule::Bus;
  using engine::bus_rule::Rider;
  const std::vector<Bus> buses{{.rate = 44100, .running = true, .deck = 0, .tempo = 1.3},
                               {.rate = 44100, .running = false},
                               {.rate = 48000, .running = false},
                               {.rate = 44100, .running = true, .deck = 1, .tempo = 1.2}};
  const auto pick = [&](const Rider& r) {
    return engine::bus_rule::pick(
        buses.size(), [&](std::size_t i) { return buses[i]; }, r);
  };
  EXPECT_EQ(pick({.tempo = 1.3, .src_rate = 44100, .deck = 0}), 0);
  EXPECT_EQ(pick({.tempo = 1.2, .src_rate = 44100, .deck = 0}), 1) << "deck 1's bus is not deck 0's";
  EXPECT_EQ(pick({.tempo = 1.2, .src_rate = 44100, .deck = 1}), 3);
  EXPECT_EQ(pick({.tempo = 1.3, .src_rate = 48000, .deck = 0}), 2);
  EXPECT_EQ(pick({.tempo = 1.3, .src_rate = 96000, .deck = 0}), -1);
  EXPECT_FALSE(engine::bus_rule::may_ride({.tempo = 1.0, .src_rate = 44100}, false));
  EXPECT_FALSE(engine::bus_rule::may_ride({.tempo = 1.3, .rate_one = false, .src_rate = 44100}, false));
  EXPECT_FALSE(engine::bus_rule::may_ride({.tempo = 1.3, .src_rate = 44100, .deck = engine::kNumDecks}, true));
  EXPECT_TRUE(engine::bus_rule::may_ride({.tempo = 1.3, .src_rate = 44100, .deck = engine::kNumDecks}, false));
}

// A stem started while its deck's bus runs at its tempo is handed over: for its first L / ρ a
// stretcher and a resampler of its own play its attack (stretch_bus_handover.cpp). They are charged
// from the play on, not only the bus it joins (before: 1.3 units charged while 2.6 ran).
TEST(WorkBudgetBus, APlayHandedOverOntoARunningBusIsChargedItsOwnStretcherWhileItRuns) {
  BusRig rig;
  for (int id : {100, 101, 102}) rig.load(id, 44100);
  rig.play(100);
  rig.play(101);
  rig.run(4096);
  ASSERT_TRUE(rig.reply(msg("/set_tempo", {OscArg::Float(156.0f)})).ok);  // tempo 1.3: one bus for deck A
  rig.run(24 * 1024);
  ASSERT_EQ(rig.on_buses(), 2u);
  ASSERT_EQ(rig.ctl.stretch_units_used(), 1300u);
  ASSERT_EQ(rig.ctl.resample_units_used(), 1000u);
  rig.play(102);  // at tempo 1.3, onto the running bus
  // The bus's stretcher and resampler, and the handover's: a stretcher at 1.3 behind a resampler
  // from 44.1 kHz that feeds it 1.3 × its frames.
  EXPECT_EQ(rig.ctl.stretch_units_used(), 2600u);
  EXPECT_EQ(rig.ctl.resample_units_used(), 2300u);
  rig.run(1024);
  ASSERT_EQ(rig.e.metrics().stretch_handovers.load(), 1u);
  EXPECT_EQ(rig.ctl.stretch_units_used(), 2600u) << "charged while it runs";
  ASSERT_TRUE(rig.run_until(100, [&] { return rig.ctl.stretch_units_used() == 1300u; }));
  EXPECT_EQ(rig.e.bus_telemetry(0).groups.load(), 0u) << "the charge fell only once the handover was over";
  EXPECT_EQ(rig.ctl.resample_units_used(), 1000u);
  EXPECT_EQ(rig.on_buses(), 3u);
}

// The engine moves voices between buses on its own (a member that left comes back: a rejoin), so
// the plan and the engine can differ about who rides a bus. Here stem 0 left deck A's bus (rate
// 1.5), came back to rate 1 and the engine put it back on the bus; then stem 1 is stretched to 4
// (the first thing sent once the rejoin is heard).
// The plan had stem 1 alone on the bus (the bus would follow it to 4); the engine has both and
// sends stem 1 off onto a stretcher and resampler of its own at 4 — 4 more resampling units. The
// budget must charge them as soon as they run (before: only once the plan checked every voice 0.2 s
// later, 2.3 units charged while 5 or more ran), and give stem 0's own converters back.
TEST(WorkBudgetBus, WhenTheEngineRunsAVoiceOffTheBusThePlanHasItOnItIsChargedAtOnce) {
  BusRig rig;
  for (int id : {100, 101}) rig.load(id, 44100, 20);
  rig.play(100);
  rig.play(101);
  rig.run(4096);
  // Each stretched by itself (a /set_tempo would multiply the /stemd/rate below by the tempo too).
  ASSERT_TRUE(rig.reply(msg("/stemd/stretch", {OscArg::Int(100), OscArg::Float(1.3f)})).ok);
  ASSERT_TRUE(rig.reply(msg("/stemd/stretch", {OscArg::Int(101), OscArg::Float(1.3f)})).ok);
  rig.run(24 * 1024);
  ASSERT_EQ(rig.rides(100), 0);
  ASSERT_EQ(rig.rides(101), 0);
  ASSERT_TRUE(rig.reply(msg("/stemd/rate", {OscArg::Int(100), OscArg::Float(1.5f)})).ok);
  ASSERT_TRUE(rig.run_until(50, [&] { return rig.rides(100) < 0; }));
  ASSERT_TRUE(rig.reply(msg("/stemd/rate", {OscArg::Int(100), OscArg::Float(1.0f)})).ok);
  ASSERT_TRUE(rig.run_until(200, [&] { return rig.rides(100) == 0; })) << "the engine puts it back on the bus";
  ASSERT_EQ(rig.e.metrics().stretch_rejoins.load(), 1u);
  const auto r = rig.reply(msg("/stemd/stretch", {OscArg::Int(101), OscArg::Float(4.0f)}));
  ASSERT_TRUE(r.ok) << r.reason;
  // Every period until stem 1 runs off the bus and a while after: its own resampler (44.1 → 48 kHz
  // feeding a stretcher at 4: 4 units) and the bus's (1) are charged whenever they run.
  bool off = false;
  for (int i = 0; i < 40; ++i) {
    rig.run(1024);
    if (rig.rides(101) < 0) off = true;
    if (off) {
      ASSERT_GE(rig.ctl.resample_units_used(), 5000u) << "period " << i << ": stem 1 runs its own converters";
      ASSERT_GE(rig.ctl.stretch_units_used(), 1300u + 4000u) << "period " << i;
    }
  }
  ASSERT_TRUE(off) << "the engine sent stem 1 off the bus";
  EXPECT_EQ(rig.rides(100), 0);
  // Settled: the bus at 1.3 with stem 0 (1.3 + 1), stem 1's own (4 + 4).
  rig.run(24 * 1024);
  EXPECT_EQ(rig.ctl.stretch_units_used(), 1300u + 4000u);
  EXPECT_EQ(rig.ctl.resample_units_used(), 1000u + 4000u);
}

// A /set_tempo timed for later (a bundle's timetag, a Link beat) books the stems onto their buses
// when it is sent, but until its frame they play as before, each through a resampler of its own:
// those stay charged until the change is heard (before: 2 units charged from the send while 8 ran).
TEST(WorkBudgetBus, ATempoChangeTimedForLaterKeepsTheOwnResamplersChargedUntilThen) {
  BusRig rig;
  std::vector<int> ids;
  play_eight(rig, ids);
  ASSERT_EQ(rig.ctl.resample_units_used(), 8000u);
  std::vector<control::VoiceHandle> voices;
  for (int id : ids) voices.push_back(rig.router.player(id));
  const std::int64_t at = rig.ctl.now_frame() + 48000;  // in 1 s
  std::string error;
  ASSERT_TRUE(rig.ctl.set_stretch_all(at, voices, 1.3f, error)) << error;
  EXPECT_EQ(rig.ctl.resample_units_used(), 8000u + 2000u) << "their own until then, the buses' from then";
  rig.run(24 * 1024);  // ≈ 0.5 s: not yet
  EXPECT_EQ(rig.on_buses(), 0u);
  EXPECT_EQ(rig.ctl.resample_units_used(), 8000u + 2000u);
  rig.run(48 * 1024);  // past it
  EXPECT_EQ(rig.on_buses(), 8u);
  EXPECT_EQ(rig.ctl.resample_units_used(), 2000u);
}

// With the engine following the plan (the same rule), the control thread does not look at every
// voice slot: it compares each bus's riders as the engine publishes them with its own.
TEST(WorkBudgetBus, AgreeingWithTheEngineNoVoiceSlotIsScanned) {
  BusRig rig;
  std::vector<int> ids;
  play_eight(rig, ids);
  const std::uint64_t scans = rig.ctl.bus_scans();
  ASSERT_TRUE(rig.reply(msg("/set_tempo", {OscArg::Float(156.0f)})).ok);  // onto two buses
  for (int i = 0; i < 30; ++i) rig.run(1024);                             // serviced after every period
  ASSERT_EQ(rig.on_buses(), 8u);
  ASSERT_TRUE(rig.reply(msg("/set_tempo", {OscArg::Float(300.0f)})).ok);  // both buses follow
  for (int i = 0; i < 30; ++i) rig.run(1024);
  EXPECT_EQ(rig.on_buses(), 8u);
  EXPECT_EQ(rig.ctl.bus_scans(), scans);
  EXPECT_EQ(rig.ctl.stretch_units_used(), 5000u);
}

}  // namespace
}  // namespace stemd::test

namespace stemd::test {
namespace {

// With time_stretch the tempo is each player's stretch; /stemd/rate (a player's own speed and
// pitch) was multiplied by the tempo as well, as in vinyl mode: `/stemd/rate 1` during
// `/set_tempo 156` (base 120) played at rate 1.3 and tempo 1.3 — 1.69 × through the file (found
// by the bus28 helper, session 28).
TEST(TimeStretchRate, APlayersOwnRateIsNotMultipliedByTheTempoItIsStretchedBy) {
  BusRig rig;
  rig.load(100, 48000, 30);
  rig.play(100);
  rig.run(4096);
  ASSERT_TRUE(rig.reply(msg("/set_tempo", {OscArg::Float(156.0f)})).ok);
  rig.run(48 * 1024);
  ASSERT_TRUE(rig.reply(msg("/stemd/rate", {OscArg::Int(100), OscArg::Float(1.0f)})).ok);
  rig.run(48 * 1024);
  const control::VoiceHandle h = rig.router.player(100);
  const std::int64_t p0 = rig.e.telemetry(h.id).position.load();
  for (int i = 0; i < 40; ++i) rig.run(1024);
  const double through = static_cast<double>(rig.e.telemetry(h.id).position.load() - p0) / (40 * 1024);
  EXPECT_NEAR(through, 1.3, 0.05) << "file frames per output frame: the tempo's 1.3 × the own rate 1";
  ASSERT_TRUE(rig.reply(msg("/stemd/rate", {OscArg::Int(100), OscArg::Float(0.5f)})).ok);
  rig.run(48 * 1024);
  const std::int64_t p1 = rig.e.telemetry(h.id).position.load();
  for (int i = 0; i < 40; ++i) rig.run(1024);
  const double half = static_cast<double>(rig.e.telemetry(h.id).position.load() - p1) / (40 * 1024);
  EXPECT_NEAR(half, 0.65, 0.05) << "rate 0.5 at tempo 1.3";
}

}  // namespace
}  // namespace stemd::test
