// What /stemd/voices (stemctl voices) and the web status list right after a command (new-user
// pass 21, item 12): a voice replaced by a play of its id, or stopped, is "stopping" at once — it
// was listed "playing" beside its id's new voice, as if the id held two players — and a seek's
// new position is listed once the seek is answered, before the audio thread has made the jump
// (the list showed the old position until the next callback and the seek's 5-ms fade were over).
#include "router_rig.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace stemd::test {
namespace {

using control::OscArg;
using control::OscMessage;

struct Row {
  int id = 0;
  double position_s = 0;  // file seconds (the file is 48 kHz: output seconds too)
  std::string state;
};

// The router rig with 10 s of DC in id 2, in memory.
struct Rig : RouterRig {
  Rig() {
    std::string err;
    if (!ctl.load_generated(control::kNow, 2, "dc", std::vector<float>(480000 * 2, 0.25f), err)) {
      throw std::runtime_error(err);
    }
  }
  // /stemd/voices: count, then id name position_s duration_s ring_fill underruns state per voice.
  std::vector<Row> voices() {
    const control::Reply r = ok("/stemd/voices", {});
    std::vector<Row> rows;
    const auto n = static_cast<std::size_t>(r.values.at(0).i);
    for (std::size_t k = 0; k < n; ++k) {
      const std::size_t at = 1 + 7 * k;
      rows.push_back({static_cast<int>(r.values.at(at).i), r.values.at(at + 2).as_double(), r.values.at(at + 6).s});
    }
    return rows;
  }
  static std::string text(const std::vector<Row>& rows) {
    std::string s;
    for (const Row& r : rows) s += std::to_string(r.id) + " " + std::to_string(r.position_s) + " " + r.state + "; ";
    return s;
  }
};

TEST(VoiceList, AVoiceReplacedByAPlayOfItsIdIsListedStoppingAtOnce) {
  Rig rig;
  rig.ok("/stemd/play", {OscArg::Int(2), OscArg::Float(1.0f), OscArg::Int(1)});
  rig.render(48000);  // a second: playing, as heard
  ASSERT_EQ(rig.voices().size(), 1u);
  EXPECT_EQ(rig.voices()[0].state, "playing");
  // play on the playing id, the audio thread not run since: the old voice is on its way out
  rig.ok("/stemd/play", {OscArg::Int(2), OscArg::Float(1.0f), OscArg::Int(1)});
  auto rows = rig.voices();
  ASSERT_EQ(rows.size(), 2u) << Rig::text(rows);
  int stopping = 0, starting = 0;
  for (const Row& r : rows) {
    EXPECT_EQ(r.id, 2);
    stopping += r.state == "stopping";
    starting += r.state == "starting";
  }
  EXPECT_EQ(stopping, 1) << "the replaced voice: " << Rig::text(rows);
  EXPECT_EQ(starting, 1) << "the id's new voice: " << Rig::text(rows);
  // its fade over, only the new one is left, playing
  rig.render(4096);
  rig.ctl.service();
  rows = rig.voices();
  ASSERT_EQ(rows.size(), 1u) << Rig::text(rows);
  EXPECT_EQ(rows[0].state, "playing");
  // stopped: "stopping" at once, not "playing" (or a stale "starting") until the next callback
  rig.ok("/stemd/stop", {OscArg::Int(2)});
  rows = rig.voices();
  ASSERT_EQ(rows.size(), 1u) << Rig::text(rows);
  EXPECT_EQ(rows[0].state, "stopping");
}

TEST(VoiceList, ASeekIsListedAtItsNewPositionOnceAnswered) {
  Rig rig;
  rig.ok("/stemd/play", {OscArg::Int(2), OscArg::Float(1.0f), OscArg::Int(1)});
  rig.render(48000);
  ASSERT_EQ(rig.voices().size(), 1u);
  EXPECT_NEAR(rig.voices()[0].position_s, 1.0, 0.03);
  rig.ok("/stemd/seek", {OscArg::Int(2), OscArg::Float(9.5f)});
  // answered; the audio thread has not run since
  auto rows = rig.voices();
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_NEAR(rows[0].position_s, 9.5, 0.001) << "listed before the audio thread made the seek";
  EXPECT_EQ(rows[0].state, "playing");
  // made: it plays on from there (its 5-ms fade out and in), as the audio thread has it
  rig.render(9600);
  rows = rig.voices();
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_GT(rows[0].position_s, 9.6);
  EXPECT_LT(rows[0].position_s, 9.75);
  // a second seek: the same again (each seek is told apart from the last one made)
  rig.ok("/stemd/seek", {OscArg::Int(2), OscArg::Float(3.0f)});
  EXPECT_NEAR(rig.voices()[0].position_s, 3.0, 0.001);
  rig.render(4800);
  EXPECT_GT(rig.voices()[0].position_s, 3.05);
  EXPECT_LT(rig.voices()[0].position_s, 3.15);
}

}  // namespace
}  // namespace stemd::test
