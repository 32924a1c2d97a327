// --quantize BEATS (config key `quantize`): the quantum a box starts with, as /stemd/quantize sets
// it (outside pass 29, user L4: three boxes on one beat grid lost it at every reboot without a
// state file — no flag or key set it, and crowdstream's clients never send /stemd/quantize).
#include "app/state.hpp"
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

}  // namespace
}  // namespace stemd::app
