// The work budgets (control/work_budget.hpp, controller_work.cpp, router_work.cpp): a resampler
// or time-stretcher costs the budget by the work it makes the audio thread do — one unit up to a
// ratio of 1.25, k units at a ratio k beyond — so --max-resampled-voices N bounds the audio
// thread's resampling at N converters' worth at an ordinary ratio, whatever the rates. Before
// (outside pass 26, H1) it counted converters: 64 voices at rate 4 (64 × /stemd/rate, one
// /set_tempo 480, one Link datagram at 999 bpm) took 64 "free" resamplers and more than a core.
// Counted in units and rates, never in wall-clock time.
#include "common/fixtures.hpp"

#include "control/work_budget.hpp"
#include "router_rig.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <string>
#include <thread>

namespace stemd::test {
namespace {

using control::ErrorKind;
using control::OscArg;
using control::OscMessage;

OscMessage msg(std::string address, std::vector<OscArg> args = {}) {
  return OscMessage{std::move(address), std::move(args)};
}

bool has(const std::string& s, const char* part) { return s.find(part) != std::string::npos; }

// The rig with `resampled` / `stretched` budget units, and 5-s noise files loaded into ids.
struct Rig : RouterRig {
  explicit Rig(std::uint32_t resampled, std::uint32_t stretched = 0, control::RouterConfig rc = {})
      : RouterRig(RouterRig::instance_config(std::move(rc), engine_config(resampled, stretched))) {}
  static engine::EngineConfig engine_config(std::uint32_t resampled, std::uint32_t stretched) {
    engine::EngineConfig ec = RouterRig::config();
    ec.max_voices = 16;
    ec.max_resampled_voices = resampled;
    ec.max_stretched_voices = stretched;
    return ec;
  }
  TempDir dir;
  void load(int id, int rate = 48000) {
    const std::string path = dir.file("stem" + std::to_string(id) + ".wav");
    write_long_wav16(path, static_cast<std::int64_t>(rate) * 5, static_cast<std::uint32_t>(id), rate);
    const auto r = reply(msg("/load_buffer", {OscArg::Int(id), OscArg::Str(path)}));
    ASSERT_TRUE(r.ok) << r.reason;
  }
  void play(int id) {  // the old server's /play_stem: the player follows /set_tempo
    const auto r =
        reply(msg("/play_stem", {OscArg::Int(id), OscArg::Float(1.0f), OscArg::Float(0.1f), OscArg::Int(1)}));
    ASSERT_TRUE(r.ok) << r.reason;
  }
  control::VoiceInfo info(int id) { return ctl.voice_info(router.player(id)); }
  // Rendered and serviced: what was sent is heard, and voices that ended are given back.
  void run(std::size_t frames) {
    render(frames);
    ctl.service();
  }
};

// What the players' rates cost in units, as work_budget.hpp prices them (48 kHz files: step = rate).
double units_of_rates(Rig& rig, const std::vector<int>& ids) {
  double sum = 0;
  for (int id : ids) {
    const double r = rig.info(id).rate_set;
    sum += r == 1.0 ? 0.0 : (r <= 1.25 ? 1.0 : r);
  }
  return sum;
}

TEST(WorkUnits, AConverterCostsOneUnitUpToARatioOfOnePointTwoFiveThenTheRatio) {
  using namespace control::work;
  EXPECT_EQ(units(0.25), kUnit);
  EXPECT_EQ(units(44100.0 / 48000.0), kUnit);
  EXPECT_EQ(units(1.25), kUnit);
  EXPECT_EQ(units(1.5), 1500u);
  EXPECT_EQ(units(4.0), 4000u);
  EXPECT_EQ(resample_units(0.25, 1.0), kUnit) << "upsampling costs what step 1 costs (bench: step:0.25)";
  EXPECT_EQ(resample_units(2.0, 4.0), 8000u) << "its stretcher reads 4 × what it writes";
  EXPECT_EQ(resample_units(2.0, 0.5), 2000u);
  EXPECT_EQ(stretch_units(4.0), 4000u);
  EXPECT_EQ(describe(3675), "3.68");
  EXPECT_EQ(describe(64000), "64");
  EXPECT_EQ(describe(1500), "1.5");
}

// 8 units: 8 × /stemd/rate ID 4 used to take 8 resamplers (each reading 4× its input); now two
// voices at rate 4 fill the budget, the others are refused "busy" and keep their rate.
TEST(WorkBudget, RateFourOnEveryVoiceIsRefusedPastTheResamplingBudget) {
  Rig rig(8);
  std::vector<int> ids;
  for (int id = 1; id <= 8; ++id) {
    rig.load(id);
    rig.play(id);
    ids.push_back(id);
  }
  rig.run(1024);
  int done = 0;
  std::string why;
  for (int id : ids) {
    const auto r = rig.reply(msg("/stemd/rate", {OscArg::Int(id), OscArg::Float(4.0f)}));
    if (r.ok) {
      ++done;
      continue;
    }
    EXPECT_EQ(r.kind, ErrorKind::kBusy) << r.reason;
    EXPECT_FLOAT_EQ(rig.info(id).rate_set, 1.0f) << "a /fail changes nothing: id " << id;
    why = r.reason;
  }
  EXPECT_EQ(done, 2) << "4 units each: two fit in 8";
  EXPECT_TRUE(has(why, "busy: resampling budget: rate 4 needs 4 units, 0 of 8 free (--max-resampled-voices")) << why;
  EXPECT_LE(units_of_rates(rig, ids), 8.0);
  EXPECT_EQ(rig.ctl.resample_units_used(), 8000u);
  // A rate within 1.25 still costs one unit: the rest can follow a nearby tempo.
  EXPECT_FALSE(rig.reply(msg("/stemd/rate", {OscArg::Int(3), OscArg::Float(1.1f)})).ok) << "the budget is full";
}

// One /set_tempo at 4 × --bpm with every player: all or nothing, in units. It used to pass the
// check (a resampler free per player) and make each read 4× its input.
TEST(WorkBudget, ASetTempoThePlayersCannotAffordIsRefusedAndChangesNothing) {
  Rig rig(8);
  std::vector<int> ids;
  for (int id = 1; id <= 8; ++id) {
    rig.load(id);
    rig.play(id);
    ids.push_back(id);
  }
  rig.run(1024);
  const double before = rig.router.tempo().bpm();
  auto r = rig.reply(msg("/set_tempo", {OscArg::Float(static_cast<float>(before * 4))}));
  ASSERT_FALSE(r.ok);
  EXPECT_EQ(r.kind, ErrorKind::kBusy) << r.reason;
  EXPECT_TRUE(has(r.reason, "busy: resampling budget: 480.0 bpm (8 players) needs 32 units, 8 of 8 free")) << r.reason;
  EXPECT_TRUE(has(r.reason, "the tempo stays 120.0 bpm")) << r.reason;
  EXPECT_DOUBLE_EQ(rig.router.tempo().bpm(), before) << "a /fail changes nothing";
  for (int id : ids) EXPECT_FLOAT_EQ(rig.info(id).rate_set, 1.0f) << id;
  EXPECT_FALSE(rig.reply(msg("/set_tempo", {OscArg::Float(static_cast<float>(before * 2))})).ok) << "16 units";
  // Within 1.25 × a player costs one unit: 8 players, 8 units.
  r = rig.reply(msg("/set_tempo", {OscArg::Float(static_cast<float>(before * 1.25))}));
  EXPECT_TRUE(r.ok) << r.reason;
  for (int id : ids) EXPECT_FLOAT_EQ(rig.info(id).rate_set, 1.25f) << id;
  EXPECT_EQ(rig.ctl.resample_units_used(), 8000u);
}

// A tempo nobody can refuse (a Link peer's; here the movement glide, which goes the same way)
// holds the players at the nearest ratio the budget takes while the clock follows the tempo; they
// follow it again when it comes back. Before, the players went to rate 4 (8 free resamplers).
TEST(WorkBudget, ATempoNobodyCanRefuseHoldsThePlayersWithinTheBudget) {
  control::RouterConfig rc;
  rc.movement_tempos[0] = rc.movement_tempos[1] = rc.movement_tempos[2] = rc.movement_tempos[3] = 120;
  rc.movement_tempos[4] = 480;
  rc.tempo_rise_s = rc.tempo_fall_s = 0.001;  // the glide reaches its target at once
  Rig rig(8, 0, rc);
  std::vector<int> ids;
  for (int id = 1; id <= 8; ++id) {
    rig.load(id);
    rig.play(id);
    ids.push_back(id);
  }
  rig.run(1024);
  auto glide_to = [&](double movement, double bpm) {
    const auto r = rig.reply(msg("/dance/total_movement", {OscArg::Float(static_cast<float>(movement))}));
    ASSERT_TRUE(r.ok) << r.reason;
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (std::fabs(rig.router.tempo().bpm() - bpm) > 0.5 && std::chrono::steady_clock::now() < until) {
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
      rig.router.tick();
      rig.run(1024);
    }
    ASSERT_NEAR(rig.router.tempo().bpm(), bpm, 0.5) << "the clock follows the tempo";
  };
  glide_to(1.0, 480);
  for (int id : ids) {
    EXPECT_LE(rig.info(id).rate_set, 1.25f) << "held within the budget: id " << id;
    EXPECT_GT(rig.info(id).rate_set, 1.0f) << "as near the tempo as the budget takes: id " << id;
  }
  EXPECT_LE(units_of_rates(rig, ids), 8.0);
  EXPECT_LE(rig.ctl.resample_units_used(), 8000u);
  EXPECT_NEAR(rig.router.held_bpm(), 150.0, 0.5) << "status: tempo_held_bpm";
  glide_to(0.0, 120);
  EXPECT_EQ(rig.router.held_bpm(), 0.0) << "back within the budget: followed again";
  for (int id : ids) EXPECT_FLOAT_EQ(rig.info(id).rate_set, 1.0f) << id;
}

// The charge of a rate that falls stays until it is heard and its glide is over (the resampler
// still reads at the old rate meanwhile); one that rises is charged before it is sent.
TEST(WorkBudget, ALowerRateGivesItsUnitsBackOnceItIsHeard) {
  Rig rig(8);
  for (int id = 1; id <= 3; ++id) {
    rig.load(id);
    rig.play(id);
  }
  rig.run(1024);
  std::string err;
  const auto v1 = rig.router.player(1), v2 = rig.router.player(2), v3 = rig.router.player(3);
  ASSERT_TRUE(rig.ctl.set_rate(control::kNow, v1, 4.0f, 0.0, err)) << err;
  ASSERT_TRUE(rig.ctl.set_rate(control::kNow, v2, 4.0f, 0.0, err)) << err;
  EXPECT_EQ(rig.ctl.resample_units_used(), 8000u);
  ASSERT_TRUE(rig.ctl.set_rate(control::kNow, v1, 1.0f, 0.5, err)) << err;  // half a second's glide down
  EXPECT_FALSE(rig.ctl.set_rate(control::kNow, v3, 2.0f, 0.0, err)) << "v1 still reads 4× until its glide is over";
  EXPECT_TRUE(has(err, "resampling budget: rate 2 needs 2 units, 0 of 8 free")) << err;
  rig.run(12 * 1024);  // 0.26 s: still gliding
  EXPECT_EQ(rig.ctl.resample_units_free(), 0u);
  rig.run(24 * 1024);  // past the glide and a block: v1 holds its resampler at rate 1, one unit
  EXPECT_EQ(rig.ctl.resample_units_used(), 5000u);
  EXPECT_TRUE(rig.ctl.set_rate(control::kNow, v3, 2.0f, 0.0, err)) << err;
  EXPECT_EQ(rig.ctl.resample_units_used(), 7000u);
  // A voice that ends gives its units back.
  ASSERT_TRUE(rig.ctl.stop(control::kNow, v2, 0.0, err)) << err;
  rig.run(4096);
  EXPECT_EQ(rig.ctl.resample_units_used(), 3000u);
}

// A file at 96 kHz reads two frames per output frame at rate 1: two units; at rate 4, eight.
TEST(WorkBudget, TheStepCountsTheFilesRate) {
  Rig rig(8);
  rig.load(1, 96000);
  const auto r = rig.reply(msg("/stemd/play", {OscArg::Int(1), OscArg::Float(0.1f)}));
  ASSERT_TRUE(r.ok) << r.reason;
  EXPECT_EQ(rig.ctl.resample_units_used(), 2000u);
  auto x = rig.reply(msg("/stemd/rate", {OscArg::Int(1), OscArg::Float(4.0f)}));
  EXPECT_TRUE(x.ok) << x.reason;
  EXPECT_EQ(rig.ctl.resample_units_used(), 8000u);
  rig.load(2, 96000);
  x = rig.reply(msg("/stemd/play", {OscArg::Int(2), OscArg::Float(0.1f)}));
  EXPECT_FALSE(x.ok);
  EXPECT_TRUE(has(x.reason, "busy: resampling budget: a voice at rate 1 of a 96000 Hz file needs 2 units, 0 of 8"))
      << x.reason;
}

// Time-stretchers the same way: Rubber Band at tempo 4 costs ≈ 2.5 (R3) to 4.6 (R2) times its
// cost at 1.25 (bench: stretch/<engine>/sweep). Before, 2 stretchers were 2 voices at any tempo.
TEST(WorkBudget, TempoFourIsRefusedPastTheStretchingBudget) {
  Rig rig(8, 4);
  for (int id = 1; id <= 2; ++id) {
    rig.load(id);
    rig.play(id);
  }
  rig.run(1024);
  auto r = rig.reply(msg("/stemd/stretch", {OscArg::Int(1), OscArg::Float(4.0f)}));
  EXPECT_TRUE(r.ok) << r.reason;
  r = rig.reply(msg("/stemd/stretch", {OscArg::Int(2), OscArg::Float(2.0f)}));
  ASSERT_FALSE(r.ok);
  EXPECT_EQ(r.kind, ErrorKind::kBusy) << r.reason;
  EXPECT_TRUE(has(r.reason, "busy: stretching budget: tempo 2 needs 2 units, 0 of 4 free (--max-stretched-voices"))
      << r.reason;
  EXPECT_FLOAT_EQ(rig.info(2).tempo, 1.0f) << "a /fail changes nothing";
  EXPECT_EQ(rig.ctl.stretch_units_used(), 4000u);
  r = rig.reply(msg("/stemd/stretch", {OscArg::Int(2), OscArg::Float(1.2f)}));
  EXPECT_FALSE(r.ok) << "even one unit: the budget is full";
}

}  // namespace
}  // namespace stemd::test
