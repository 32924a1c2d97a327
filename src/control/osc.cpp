// liblo behind OscMessage (see osc.hpp). The only translation unit that includes <lo/lo.h>.
#include "osc.hpp"

#include <lo/lo.h>
#include <lo/lo_lowlevel.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>

namespace stemd::control {

namespace {

constexpr double kNtpUnixOffset = 2208988800.0;  // seconds from 1900 to 1970

lo_timetag u64_to_tt(std::uint64_t v) {
  lo_timetag t;
  t.sec = static_cast<std::uint32_t>(v >> 32);
  t.frac = static_cast<std::uint32_t>(v & 0xffffffffu);
  return t;
}

// liblo's lo_arg pointers into a message are only 4-byte aligned, while lo_arg (a union with
// 64-bit members) wants 8: read through a char pointer and memcpy, never through the union.
OscArg convert(char type, lo_arg* arg) {
  const char* p = reinterpret_cast<const char*>(arg);
  OscArg r;
  r.type = type;
  switch (type) {
    case 'i': {
      std::int32_t v;
      std::memcpy(&v, p, sizeof v);
      r.i = v;
      break;
    }
    case 'h': {
      std::int64_t v;
      std::memcpy(&v, p, sizeof v);
      r.i = v;
      break;
    }
    case 'f': {
      float v;
      std::memcpy(&v, p, sizeof v);
      r.f = v;
      break;
    }
    case 'd': {
      double v;
      std::memcpy(&v, p, sizeof v);
      r.f = v;
      break;
    }
    case 's':
    case 'S':
      r.s = p;
      break;
    case 'c':
      r.i = static_cast<unsigned char>(p[0]);
      break;
    case 'm': {
      const auto* m = reinterpret_cast<const std::uint8_t*>(p);
      r.i = static_cast<std::int64_t>((std::uint32_t{m[0]} << 24) | (std::uint32_t{m[1]} << 16) |
                                      (std::uint32_t{m[2]} << 8) | m[3]);
      break;
    }
    case 't': {
      std::uint32_t sec, frac;
      std::memcpy(&sec, p, 4);
      std::memcpy(&frac, p + 4, 4);
      r.i = static_cast<std::int64_t>((static_cast<std::uint64_t>(sec) << 32) | frac);
      break;
    }
    case 'T':
      r.i = 1;
      break;
    case 'F':
      r.i = 0;
      break;
    case 'b': {
      std::int32_t n;  // liblo keeps the blob's size in host order, then the bytes
      std::memcpy(&n, p, sizeof n);
      if (n > 0) r.s.assign(p + 4, static_cast<std::size_t>(n));
      break;
    }
    default:
      break;  // N, I: no data
  }
  return r;
}

lo_message build(const OscMessage& m) {
  lo_message msg = lo_message_new();
  for (const OscArg& a : m.args) {
    switch (a.type) {
      case 'i':
        lo_message_add_int32(msg, static_cast<std::int32_t>(a.i));
        break;
      case 'h':
        lo_message_add_int64(msg, a.i);
        break;
      case 'f':
        lo_message_add_float(msg, static_cast<float>(a.f));
        break;
      case 'd':
        lo_message_add_double(msg, a.f);
        break;
      case 's':
        lo_message_add_string(msg, a.s.c_str());
        break;
      case 'S':
        lo_message_add_symbol(msg, a.s.c_str());
        break;
      case 'c':
        lo_message_add_char(msg, static_cast<char>(a.i));
        break;
      case 'T':
        lo_message_add_true(msg);
        break;
      case 'F':
        lo_message_add_false(msg);
        break;
      case 'N':
        lo_message_add_nil(msg);
        break;
      case 'I':
        lo_message_add_infinitum(msg);
        break;
      case 't':
        lo_message_add_timetag(msg, u64_to_tt(static_cast<std::uint64_t>(a.i)));
        break;
      case 'm': {
        std::uint8_t midi[4] = {static_cast<std::uint8_t>(a.i >> 24), static_cast<std::uint8_t>(a.i >> 16),
                                static_cast<std::uint8_t>(a.i >> 8), static_cast<std::uint8_t>(a.i)};
        lo_message_add_midi(msg, midi);
        break;
      }
      case 'b': {
        // liblo 0.31 cannot make an empty blob (lo_blob_new(0) is null): send one zero byte.
        const char zero = 0;
        lo_blob b =
            a.s.empty() ? lo_blob_new(1, &zero) : lo_blob_new(static_cast<std::int32_t>(a.s.size()), a.s.data());
        if (b) {
          lo_message_add_blob(msg, b);
          lo_blob_free(b);
        }
        break;
      }
      default:
        break;
    }
  }
  return msg;
}

}  // namespace

std::string OscArg::to_string() const {
  char buf[64];
  switch (type) {
    case 'i':
    case 'h':
    case 'c':
    case 'm':
      return std::to_string(i);
    case 't':
      std::snprintf(buf, sizeof buf, "t:%016llx", static_cast<unsigned long long>(i));
      return buf;
    case 'f':
    case 'd':
      std::snprintf(buf, sizeof buf, "%g", f);
      return buf;
    case 's':
    case 'S':
      return "\"" + s + "\"";
    case 'T':
      return "true";
    case 'F':
      return "false";
    case 'N':
      return "nil";
    case 'I':
      return "inf";
    case 'b':
      return "<blob " + std::to_string(s.size()) + " bytes>";
    default:
      return "?";
  }
}

std::string OscMessage::types() const {
  std::string t = ",";
  for (const auto& a : args) t += a.type;
  return t;
}

std::string OscMessage::to_string() const {
  std::string out = address;
  for (const auto& a : args) out += " " + a.to_string();
  return out;
}

namespace {
// liblo's serialised bytes (malloc'd, or null) into a vector, freeing them.
std::vector<std::uint8_t> take_bytes(void* data, size_t size) {
  std::vector<std::uint8_t> out;
  if (data) {
    out.assign(static_cast<std::uint8_t*>(data), static_cast<std::uint8_t*>(data) + size);
    std::free(data);
  }
  return out;
}
}  // namespace

std::vector<std::uint8_t> osc_serialise(const OscMessage& m) {
  lo_message msg = build(m);
  size_t size = 0;
  void* data = lo_message_serialise(msg, m.address.c_str(), nullptr, &size);  // sets size: call first
  auto out = take_bytes(data, size);
  lo_message_free(msg);
  return out;
}

std::vector<std::uint8_t> osc_serialise_bundle(const std::vector<OscMessage>& messages, std::uint64_t timetag) {
  lo_bundle b = lo_bundle_new(u64_to_tt(timetag));
  for (const auto& m : messages) lo_bundle_add_message(b, m.address.c_str(), build(m));
  size_t size = 0;
  void* data = lo_bundle_serialise(b, nullptr, &size);
  auto out = take_bytes(data, size);
  lo_bundle_free_recursive(b);
  return out;
}

bool osc_parse(const std::uint8_t* data, std::size_t size, OscMessage& out, std::string& error) {
  // liblo copies the bytes it keeps (lo_message_deserialise() never writes through `data`): no
  // copy here. Its first check is the address string, so after a success it is NUL-terminated
  // inside `data`.
  int result = 0;
  lo_message msg = lo_message_deserialise(const_cast<std::uint8_t*>(data), size, &result);
  if (!msg) {
    error = "malformed OSC message (liblo error " + std::to_string(result) + ")";
    return false;
  }
  out.address.assign(reinterpret_cast<const char*>(data));
  out.args.clear();
  out.timetag = kOscImmediately;
  const char* types = lo_message_get_types(msg);
  lo_arg** argv = lo_message_get_argv(msg);
  const int argc = lo_message_get_argc(msg);
  out.args.reserve(static_cast<std::size_t>(argc));
  for (int i = 0; i < argc; ++i) out.args.push_back(convert(types[i], argv[i]));
  lo_message_free(msg);
  return true;
}

// ---------------------------------------------------------------- OscDispatcher

// The dispatcher walks bundles itself and has liblo decode each message (osc_parse()). It once
// handed whole packets to lo_server_dispatch_data(), which needs a liblo server — in liblo 0.31
// a bound socket: a Unix socket in a /tmp/stemd-osc-XXXXXX folder, left behind whenever the
// daemon crashed. Now nothing is created. Every message of a packet is decoded before the first
// is handed on, so a bundle with an element liblo refuses is refused whole.
struct OscDispatcher::Impl {
  std::string error;  // never set: kept for the API (a dispatcher cannot fail to exist)
  std::vector<OscMessage> messages;
};

OscDispatcher::OscDispatcher() : impl_(std::make_unique<Impl>()) {}
OscDispatcher::~OscDispatcher() = default;

bool OscDispatcher::ok() const noexcept { return true; }
const std::string& OscDispatcher::error() const noexcept { return impl_->error; }

namespace {

std::uint32_t be32(const std::uint8_t* p) {
  return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) | p[3];
}

constexpr int kMaxBundleDepth = 16;  // check_packet() allows fewer; this only bounds recursion

// Decodes a packet (a message, or a bundle of them, nested) into `out`, each message with the
// timetag of the bundle that holds it. False with a reason when any part is malformed.
bool decode(const std::uint8_t* d, std::size_t size, std::uint64_t timetag, int depth, std::vector<OscMessage>& out,
            std::string& error) {
  if (size >= 8 && std::memcmp(d, "#bundle", 8) == 0) {
    if (depth >= kMaxBundleDepth) {
      error = "bundles nested too deep";
      return false;
    }
    if (size < 16) {
      error = "bundle too short for its timetag";
      return false;
    }
    const std::uint64_t tt = (static_cast<std::uint64_t>(be32(d + 8)) << 32) | be32(d + 12);
    std::size_t pos = 16;
    while (pos < size) {
      if (size - pos < 4) {
        error = "bundle element size is truncated";
        return false;
      }
      const std::uint32_t n = be32(d + pos);
      pos += 4;
      if (n > size - pos) {
        error = "bundle element runs past the end";
        return false;
      }
      if (!decode(d + pos, n, tt, depth + 1, out, error)) return false;
      pos += n;
    }
    return true;
  }
  OscMessage m;
  if (!osc_parse(d, size, m, error)) return false;
  m.timetag = timetag;
  out.push_back(std::move(m));
  return true;
}

}  // namespace

bool OscDispatcher::dispatch(const std::uint8_t* data, std::size_t size, const Handler& h, std::string& error) {
  auto& msgs = impl_->messages;  // reused: no allocation per packet once it has grown
  msgs.clear();
  if (!decode(data, size, kOscImmediately, 0, msgs, error)) return false;
  for (const OscMessage& m : msgs) h(m);
  return true;
}

std::uint64_t ntp_now() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return unix_seconds_to_ntp(static_cast<double>(ts.tv_sec) + ts.tv_nsec * 1e-9);
}

double ntp_to_unix_seconds(std::uint64_t tt) {
  return static_cast<double>(tt >> 32) - kNtpUnixOffset + static_cast<double>(tt & 0xffffffffu) / 4294967296.0;
}

std::uint64_t unix_seconds_to_ntp(double s) {
  const double ntp = s + kNtpUnixOffset;
  const auto sec = static_cast<std::uint64_t>(std::floor(ntp));
  const auto frac = static_cast<std::uint64_t>((ntp - std::floor(ntp)) * 4294967296.0);
  return (sec << 32) | (frac & 0xffffffffu);
}

}  // namespace stemd::control
