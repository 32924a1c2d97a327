// Engine commands the tests and benchmarks build by hand (header-only, no gtest).
#pragma once

#include "stemd/command.hpp"

#include <cstdint>

namespace stemd::test {

// A master-gain command (unity) timed for `frame`: the cheapest thing to schedule.
inline engine::Command master_at(std::int64_t frame) {
  engine::Command c{};
  c.type = engine::CommandType::kMasterGain;
  c.value = 1.0f;
  c.at_frame = frame;
  return c;
}

}  // namespace stemd::test
