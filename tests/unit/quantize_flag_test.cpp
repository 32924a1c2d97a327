// --quantize BEATS (config key `quantize`): the quantum a box starts with, as /stemd/quantize sets
// it (outside pass 29, user L4: three boxes on one beat grid lost it at every reboot without a
// state file — no flag or key set it, and crowdstream's clients never send /stemd/quantize).
#include "app/state.hpp"
#include "common/fixtures.hpp"
#include "state_test_util.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace stemd::app {
namespace {

using control::OscArg;
using control::OscMessage;
using namespace state_test;

InstanceConfig with_quantum(double beats) {
  engine::EngineConfig ec;
  ec.max_block_frames = 4096;
  ec.max_voices = 32;
  control::RouterConfig rc;
  rc.buffer_size = 256;
  rc.quantum = beats;
  return Rig::instance_config(rc, ec, Rig::lo(false));
}

TEST(QuantizeFlag, TheRouterStartsWithIt) {
  Rig rig(with_quantum(4));
  EXPECT_DOUBLE_EQ(rig.router.quantum_beats(), 4.0);
  Rig plain(with_quantum(0));
  EXPECT_DOUBLE_EQ(plain.router.quantum_beats(), 0.0);
}

// A client that turned it off (or changed it) is what the state keeps: its restore comes after
// the flag's value. Off is written only where the flag set one (without it, 0 is the default).
TEST(QuantizeFlag, AClientsOffOutlivesTheFlagInTheState) {
  std::string text;
  {
    Rig rig(with_quantum(4));
    EXPECT_EQ(rig.send(OscMessage{"/stemd/quantize", {OscArg::Float(0)}}).address, "/done");
    text = format_state(capture_state(rig.ctl, rig.router, true), "test");
  }
  EXPECT_NE(text.find("/stemd/quantize 0\n"), std::string::npos) << text;
  std::vector<StateMessage> msgs;
  std::string err;
  ASSERT_TRUE(parse_state(text, msgs, err)) << err;
  Rig again(with_quantum(4));
  for (const auto& sm : msgs) EXPECT_EQ(again.send(sm.message).address, "/done") << text;
  EXPECT_DOUBLE_EQ(again.router.quantum_beats(), 0.0) << "the flag's 4 came back over the client's off";

  Rig plain(with_quantum(0));
  const std::string none = format_state(capture_state(plain.ctl, plain.router, true), "test");
  EXPECT_EQ(none.find("/stemd/quantize"), std::string::npos) << none;
}

// Restored at start with --quantize 4, the voices the file lists before its /stemd/quantize line
// play at once from their frames (as without the flag), not on the next bar; a file saved before
// the flag was given (no quantize line) keeps the flag's quantum once restored.
TEST(QuantizeFlag, RestoredVoicesStartAtOnceAndTheQuantumComesAfterThem) {
  test::TempDir dir;
  test::make_wav(dir.file("a.wav"), 96'000, 1);
  const std::string head = "stemd-state 1\n/stemd/load 1 \"" + dir.file("a.wav") + "\" \"a\"\n";
  const std::string voice = "/stemd/play 1 1 true 4800 frames 1\n";
  for (const std::string& tail : {std::string("/stemd/quantize 8\nend\n"), std::string("end\n")}) {
    Restored s(dir.file("state"), head + voice + tail, {.retry_s = 0.0, .ic = with_quantum(4)});
    EXPECT_EQ(s.report.voices, 1) << tail;
    const auto vs = s.rig.ctl.voices();
    ASSERT_EQ(vs.size(), 1u) << tail;
    EXPECT_LT(vs.front().starts_in_s, 0) << "the restored voice waits for a bar: " << tail;
    EXPECT_DOUBLE_EQ(s.rig.router.quantum_beats(), tail.size() > 4 ? 8.0 : 4.0) << tail;
  }
}

}  // namespace
}  // namespace stemd::app
