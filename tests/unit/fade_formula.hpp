// The formula each fade curve follows (include/stemd/ramp.hpp), written out independently for
// the tests to compare the engine's and the ramp's gains with: the value x (0..1) of the way from
// a to b.
#pragma once

#include "stemd/ramp.hpp"

#include <algorithm>
#include <cmath>

namespace stemd::test {

inline double fade_formula(engine::Curve c, double a, double b, double x) {
  switch (c) {
    case engine::Curve::kLinear:
      return a + (b - a) * x;
    case engine::Curve::kSCurve:
      return a + (b - a) * x * x * (3 - 2 * x);
    case engine::Curve::kEqualPower:
      return b > a ? a + (b - a) * std::sin(x * M_PI / 2) : b + (a - b) * std::cos(x * M_PI / 2);
    case engine::Curve::kExponential: {
      const double fa = std::max(a, 0.001), fb = std::max(b, 0.001);
      return fa * std::pow(fb / fa, x);
    }
  }
  return 0;
}

}  // namespace stemd::test
