// The work budgets and the stretch buses (control/controller_buses.cpp, engine/stretch_bus.hpp):
// with --stretch-method time_stretch the stems of a deck at one tempo are stretched once, on the
// deck's bus, and resampled once after it; the budgets charge the bus's converters, not one
// stretcher and one resampler per stem. Before, 8 stems at tempo 1.3 were charged 10.4 stretching
// units, so the /set_tempo was refused though the engine runs two stretchers for it.
#include "common/fixtures.hpp"

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
  void load(int id, int rate) {
    const std::string path = dir.file("stem" + std::to_string(id) + ".wav");
    write_long_wav16(path, static_cast<std::int64_t>(rate) * 5, static_cast<std::uint32_t>(id), rate);
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

}  // namespace
}  // namespace stemd::test
