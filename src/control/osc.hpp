// OSC messages as plain C++ values, and liblo behind them — the only place that includes
// <lo/lo.h> (see osc.cpp).
//
// OscMessage is what every layer above sees: the router, the dialects, stemctl, the tests.
// osc_serialise()/osc_parse() convert single messages to and from bytes (liblo does the
// encoding). OscDispatcher takes whole datagrams (messages or bundles), decodes every message
// inside (liblo decodes each one; the bundles are walked here) and then calls back once per
// message. No liblo server exists: stemd owns its sockets (net.hpp), and creates no files.
//
// Threads: one OscDispatcher per thread; the functions are reentrant.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace stemd::control {

struct OscArg {
  char type = 'N';     // i h f d s S c T F N I m t b
  std::int64_t i = 0;  // i h c m t (and T/F as 1/0)
  double f = 0.0;      // f d
  std::string s;       // s S, and the bytes of a blob
  static OscArg Int(std::int64_t v) {
    OscArg a;
    a.type = 'i';
    a.i = v;
    return a;
  }
  static OscArg Int64(std::int64_t v) {
    OscArg a;
    a.type = 'h';
    a.i = v;
    return a;
  }
  static OscArg Float(double v) {
    OscArg a;
    a.type = 'f';
    a.f = v;
    return a;
  }
  static OscArg Double(double v) {
    OscArg a;
    a.type = 'd';
    a.f = v;
    return a;
  }
  static OscArg Str(std::string v) {
    OscArg a;
    a.type = 's';
    a.s = std::move(v);
    return a;
  }
  static OscArg Bool(bool v) {
    OscArg a;
    a.type = v ? 'T' : 'F';
    a.i = v;
    return a;
  }
  bool is_number() const { return type == 'i' || type == 'h' || type == 'f' || type == 'd'; }
  bool is_string() const { return type == 's' || type == 'S'; }
  double as_double() const { return (type == 'f' || type == 'd') ? f : static_cast<double>(i); }
  std::string to_string() const;  // for logs and stemctl
};

constexpr std::uint64_t kOscImmediately = 1;  // the OSC timetag meaning "now"

struct OscMessage {
  std::string address;
  std::vector<OscArg> args;
  std::uint64_t timetag = kOscImmediately;  // of the enclosing bundle, NTP format
  // From a JSON client (the web API, Peer::typed): JSON says what a value is, so a boolean where a
  // number goes and a fraction where an integer goes are refused, not coerced as OSC's are
  // (ArgReader). `type_refused` says one was (ArgReader sets it; the Router reads it).
  bool typed = false;
  mutable bool type_refused = false;
  std::string types() const;      // ",sif…"
  std::string to_string() const;  // "/load_buffer 1001 \"a.wav\""
};

// A message from its address and arguments, to be sent at once (timetag kOscImmediately).
inline OscMessage osc_message(std::string address, std::vector<OscArg> args = {}) {
  OscMessage m;
  m.address = std::move(address);
  m.args = std::move(args);
  return m;
}

// Message → bytes. Types i h f d s S c T F N I m t b are encoded as given.
std::vector<std::uint8_t> osc_serialise(const OscMessage& m);
// Bundle of messages with one timetag → bytes.
std::vector<std::uint8_t> osc_serialise_bundle(const std::vector<OscMessage>& messages, std::uint64_t timetag);
// Bytes → one message (not a bundle). False with a reason when malformed.
bool osc_parse(const std::uint8_t* data, std::size_t size, OscMessage& out, std::string& error);

class OscDispatcher {
 public:
  using Handler = std::function<void(const OscMessage&)>;
  OscDispatcher();
  ~OscDispatcher();
  OscDispatcher(const OscDispatcher&) = delete;
  OscDispatcher& operator=(const OscDispatcher&) = delete;

  bool ok() const noexcept;
  const std::string& error() const noexcept;

  // Calls `h` for the message, or for each message of the bundle, in order. False (with
  // liblo's reason) when liblo rejects the datagram; messages before the bad part of a bundle
  // may already have been handled.
  bool dispatch(const std::uint8_t* data, std::size_t size, const Handler& h, std::string& error);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// NTP timetag helpers (seconds since 1900 in the high 32 bits).
std::uint64_t ntp_now();
double ntp_to_unix_seconds(std::uint64_t tt);
std::uint64_t unix_seconds_to_ntp(double s);

}  // namespace stemd::control
