// One OSC argument as a JSON value (nlohmann::json), as stemctl --json and the web API show it:
// integers and timetags as numbers, non-finite floats as null, T/F as booleans, strings and blobs
// as strings, N/I as null. Header-only: it needs no library beyond the OSC message types. [any]
#pragma once

#include "osc.hpp"

#include <cmath>

#include <nlohmann/json.hpp>

namespace stemd::control {

inline nlohmann::ordered_json osc_arg_json(const OscArg& a) {
  using Json = nlohmann::ordered_json;
  switch (a.type) {
    case 'i':
    case 'h':
    case 'c':
    case 'm':
    case 't':
      return Json(a.i);
    case 'f':
    case 'd':
      return std::isfinite(a.f) ? Json(a.f) : Json(nullptr);
    case 'T':
      return Json(true);
    case 'F':
      return Json(false);
    case 's':
    case 'S':
    case 'b':
      return Json(a.s);
    default:  // N, I
      return Json(nullptr);
  }
}

}  // namespace stemd::control
