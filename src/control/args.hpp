// Reading OSC arguments the way the crowdstream clients send them [control].
//
// The old Python server converted with int()/float()/str(), so clients send ints where floats
// are meant and the reverse, numeric strings for numbers, and T/F for flags. ArgReader accepts
// all of those and refuses everything else with a reason that names the argument:
// "argument 2 (volume) must be a number, got \"loud\"". Non-finite numbers are always refused.
// A typed message (OscMessage::typed: the web's JSON API) is not coerced where JSON said what a
// value is: true is not a number, 1.5 not an integer, "0" not a number.
#pragma once

#include "osc.hpp"

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <optional>
#include <string>
#include <vector>

namespace stemd::control {

class ArgReader {
 public:
  explicit ArgReader(const OscMessage& m) : m_(m) {}

  std::size_t size() const { return m_.args.size(); }
  bool has(std::size_t i) const { return i < m_.args.size(); }
  const std::string& error() const { return error_; }

  // Argument count in [lo, hi].
  bool count(std::size_t lo, std::size_t hi) {
    const std::size_t n = m_.args.size();
    if (n >= lo && n <= hi) return true;
    if (lo == hi) return fail("expects " + plural(lo) + ", got " + std::to_string(n));
    return fail("expects " + std::to_string(lo) + " to " + plural(hi) + ", got " + std::to_string(n));
  }

  bool number(std::size_t i, const char* name, double& out) {
    if (!has(i)) return fail("argument " + std::to_string(i + 1) + " (" + name + ") is missing");
    const OscArg& a = m_.args[i];
    double v = 0;
    if (a.is_number()) {
      v = a.as_double();
    } else if (m_.typed && (a.type == 'T' || a.type == 'F')) {
      return typed_fail(i, name, a.type == 'T' ? "true is not a number" : "false is not a number");
    } else if (a.type == 'T' || a.type == 'F') {
      v = static_cast<double>(a.i);
    } else if (m_.typed && a.is_string()) {
      return typed_fail(i, name, a.to_string() + " is a string, not a number");
    } else if (a.is_string() && parse_double(a.s, v)) {
      // a numeric string, as Python's float() accepted
    } else {
      return fail(arg(i, name) + " must be a number, got " + a.to_string());
    }
    if (!std::isfinite(v)) return fail(arg(i, name) + " must be a finite number, got " + a.to_string());
    out = v;
    return true;
  }
  bool number_or(std::size_t i, const char* name, double& out, double def) {
    if (!has(i) || m_.args[i].type == 'N') {
      out = def;
      return true;
    }
    return number(i, name, out);
  }

  // Python int(): floats truncate toward zero; strings must hold an integer.
  bool integer(std::size_t i, const char* name, std::int64_t& out) {
    if (!has(i)) return fail("argument " + std::to_string(i + 1) + " (" + name + ") is missing");
    const OscArg& a = m_.args[i];
    if (a.type == 'i' || a.type == 'h' || a.type == 'c') {
      out = a.i;
      return true;
    }
    if (a.type == 'f' || a.type == 'd') {
      if (!std::isfinite(a.f) || std::fabs(a.f) > 9e15)
        return fail(arg(i, name) + " must be an integer, got " + a.to_string());
      if (m_.typed && a.f != std::trunc(a.f)) return typed_fail(i, name, a.to_string() + " is not an integer");
      out = static_cast<std::int64_t>(std::trunc(a.f));
      return true;
    }
    if (m_.typed && a.is_string()) return typed_fail(i, name, a.to_string() + " is a string, not an integer");
    if (a.is_string()) {
      char* end = nullptr;
      errno = 0;
      const long long v = std::strtoll(a.s.c_str(), &end, 10);
      if (!a.s.empty() && end && *end == '\0' && errno == 0) {
        out = v;
        return true;
      }
    }
    return fail(arg(i, name) + " must be an integer, got " + a.to_string());
  }
  bool id(std::size_t i, int& out) {
    std::int64_t v = 0;
    if (!integer(i, "id", v)) return false;
    if (v < -2147483647 || v > 2147483647) return fail(arg(i, "id") + " is out of range");
    out = static_cast<int>(v);
    if (i == 0) id_read_ = out;
    return true;
  }
  // The values a refusal of this message carries: its id, once read (so a client can tell which of
  // its commands failed: /fail /stemd/seek 3 "argument 2 … must be a finite number"), else none.
  std::vector<OscArg> id_values() const {
    if (!id_read_) return {};
    return {OscArg::Int(*id_read_)};
  }

  // Python str(): strings as they are, numbers in their usual text form.
  bool string(std::size_t i, const char* name, std::string& out) {
    if (!has(i)) return fail("argument " + std::to_string(i + 1) + " (" + name + ") is missing");
    const OscArg& a = m_.args[i];
    if (a.is_string()) {
      out = a.s;
      return true;
    }
    if (a.type == 'i' || a.type == 'h') {
      out = std::to_string(a.i);
      return true;
    }
    if (a.type == 'f' || a.type == 'd') {
      out = a.to_string();
      return true;
    }
    return fail(arg(i, name) + " must be a string, got " + a.to_string());
  }

  bool flag(std::size_t i, const char* name, bool& out) {
    if (!has(i)) return fail("argument " + std::to_string(i + 1) + " (" + name + ") is missing");
    const OscArg& a = m_.args[i];
    if (a.type == 'T' || a.type == 'F') {
      out = a.type == 'T';
      return true;
    }
    if (a.is_number()) {
      const double v = a.as_double();
      if (!std::isfinite(v)) return fail(arg(i, name) + " must be 0 or 1, got " + a.to_string());
      out = v != 0.0;
      return true;
    }
    if (a.is_string()) {
      if (a.s == "1" || a.s == "true" || a.s == "True" || a.s == "yes" || a.s == "on") {
        out = true;
        return true;
      }
      if (a.s == "0" || a.s == "false" || a.s == "False" || a.s == "no" || a.s == "off") {
        out = false;
        return true;
      }
    }
    return fail(arg(i, name) + " must be 0/1 or true/false, got " + a.to_string());
  }
  bool flag_or(std::size_t i, const char* name, bool& out, bool def) {
    if (!has(i) || m_.args[i].type == 'N') {
      out = def;
      return true;
    }
    return flag(i, name, out);
  }

  bool fail(std::string why) {
    if (error_.empty()) error_ = std::move(why);
    return false;
  }
  // A typed message's value of the wrong JSON type: "argument 1 (id): 1.5 is not an integer".
  bool typed_fail(std::size_t i, const char* name, const std::string& what) {
    m_.type_refused = true;
    return fail(arg(i, name) + ": " + what);
  }

  // A numeric string as Python's float() reads it: "1e999" is infinity (a number, refused later as
  // not finite), "1e-999" is 0.
  static bool parse_double(const std::string& s, double& out) {
    if (s.empty() || s.size() > 64) return false;
    char* end = nullptr;
    const double v = std::strtod(s.c_str(), &end);
    if (!end || end == s.c_str() || *end != '\0') return false;
    out = v;
    return true;
  }

 private:
  static std::string plural(std::size_t n) { return std::to_string(n) + (n == 1 ? " argument" : " arguments"); }
  static std::string arg(std::size_t i, const char* name) {
    return "argument " + std::to_string(i + 1) + " (" + name + ")";
  }
  const OscMessage& m_;
  std::string error_;
  std::optional<int> id_read_;
};

}  // namespace stemd::control
