// stemd-osc-flood: floods a stemd daemon with OSC over UDP and counts its replies.
//
// One UDP socket (bound to an ephemeral port) sends a paced stream of messages to HOST:PORT:
// every tick (default 1 ms) it sends as many as needed to stay on `rate × elapsed`
// (CLOCK_MONOTONIC), so the rate is held without busy-waiting and a late tick catches up (up
// to --max-batch messages). Between ticks the same thread waits on the socket with ppoll() and
// drains the replies as they arrive, so receiving runs concurrently with sending; after the
// last message it keeps draining for --drain seconds (or until every message is answered).
//
// The default mix imitates crowdstream's energy sender plus some noise:
//   crossfade  /crossfade_levels (1-x) x     (x sweeps 0..1 every 4 s)     40 %
//   volume     /stem_volume ID v             (ID from --volume-ids)         40 %
//   eq         /deck_eq_all A|B|C lo mid hi  (ints, as the mixer sends)    9.9 %
//   ping       /stemd/ping                                                   5 %
//   status     /get_status (a large reply)                                 0.1 %
//   malformed  one of eight broken datagrams (random bytes, truncated, no    5 %
//              type tags, missing argument data, bad bundle, unterminated
//              string, NaN volume, unknown address)
// --mix NAME=WEIGHT,... replaces the mix (unlisted kinds get 0).
//
// Prints what was sent, the achieved rate, the replies (/done, /fail, by address and by
// /fail reason) and the reply rate, as "key value" lines a script can read with awk.
// Exit 0 whatever the daemon answered (it is a load generator, not a test); 2 on bad usage or
// a socket error.
//
// One-shot mode (a tiny stemctl for scripts): --send ADDRESS [ARGS...] sends one message
// (args typed by form: 12 → int, 1.5 → float, else string; or force with i: f: d: h: s:),
// waits --timeout seconds for the reply and prints it; with --kv a status reply is printed as
// one "key value" line per field. Exit 0 on /done, 1 on /fail, 3 on time-out.
//
//   stemd-osc-flood --port P [--host 127.0.0.1] [--rate 50000] [--duration 5] [--tick-us 1000]
//                   [--max-batch N] [--mix crossfade=40,volume=40,eq=9.9,ping=5,status=0.1,malformed=5]
//                   [--volume-ids 1000,...] [--seed N] [--drain 2]
//   stemd-osc-flood --port P [--host H] [--timeout 2] [--kv] --send ADDRESS [ARGS...]

#include "control/net.hpp"
#include "control/osc.hpp"

#include <poll.h>
#include <time.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <map>
#include <memory>
#include <numbers>
#include <random>
#include <string>
#include <string_view>
#include <vector>

namespace stemd::tools {
namespace {

using control::Datagram;
using control::Endpoint;
using control::OscArg;
using control::OscMessage;
using control::UdpSocket;

double mono_now() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) + ts.tv_nsec * 1e-9;
}

enum Kind { kCrossfade, kVolume, kEq, kPing, kStatus, kMalformed, kNumKinds };
constexpr std::array<const char*, kNumKinds> kKindNames = {"crossfade", "volume", "eq", "ping", "status", "malformed"};

struct Options {
  std::string host = "127.0.0.1";
  int port = -1;
  double rate = 50000;
  double duration = 5;
  int tick_us = 1000;
  int max_batch = 0;  // 0 = 20 ticks' worth
  std::array<double, kNumKinds> weights = {40, 40, 9.9, 5, 0.1, 5};
  std::vector<int> volume_ids = {1000};
  std::uint64_t seed = 1;
  double drain = 2;
  // one-shot
  bool one_shot = false;
  std::vector<std::string> send;
  double timeout = 2;
  bool kv = false;
};

[[noreturn]] void usage(const std::string& why) {
  std::fprintf(stderr,
               "stemd-osc-flood: %s\n"
               "usage: stemd-osc-flood --port P [--host 127.0.0.1] [--rate 50000] [--duration 5]\n"
               "         [--tick-us 1000] [--max-batch N] [--seed N] [--drain 2] [--volume-ids 1000,1001]\n"
               "         [--mix crossfade=40,volume=40,eq=9.9,ping=5,status=0.1,malformed=5]\n"
               "       stemd-osc-flood --port P [--host H] [--timeout 2] [--kv] --send ADDRESS [ARGS...]\n",
               why.c_str());
  std::exit(2);
}

double to_double(const std::string& s, const char* what) {
  char* end = nullptr;
  const double v = std::strtod(s.c_str(), &end);
  if (s.empty() || *end != '\0' || !std::isfinite(v)) usage(std::string("bad ") + what + " '" + s + "'");
  return v;
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start <= s.size()) {
    const std::size_t end = s.find(sep, start);
    out.push_back(s.substr(start, end == std::string::npos ? std::string::npos : end - start));
    if (end == std::string::npos) break;
    start = end + 1;
  }
  return out;
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) usage(a + " needs a value");
      return argv[++i];
    };
    if (a == "--host")
      o.host = value();
    else if (a == "--port")
      o.port = static_cast<int>(to_double(value(), "--port"));
    else if (a == "--rate")
      o.rate = to_double(value(), "--rate");
    else if (a == "--duration")
      o.duration = to_double(value(), "--duration");
    else if (a == "--tick-us")
      o.tick_us = static_cast<int>(to_double(value(), "--tick-us"));
    else if (a == "--max-batch")
      o.max_batch = static_cast<int>(to_double(value(), "--max-batch"));
    else if (a == "--seed")
      o.seed = static_cast<std::uint64_t>(to_double(value(), "--seed"));
    else if (a == "--drain")
      o.drain = to_double(value(), "--drain");
    else if (a == "--timeout")
      o.timeout = to_double(value(), "--timeout");
    else if (a == "--kv")
      o.kv = true;
    else if (a == "--volume-ids") {
      o.volume_ids.clear();
      for (const auto& s : split(value(), ',')) o.volume_ids.push_back(static_cast<int>(to_double(s, "id")));
    } else if (a == "--mix") {
      o.weights.fill(0);
      for (const auto& item : split(value(), ',')) {
        const auto eq = item.find('=');
        if (eq == std::string::npos) usage("--mix wants NAME=WEIGHT, got '" + item + "'");
        const std::string name = item.substr(0, eq);
        const auto it = std::find(kKindNames.begin(), kKindNames.end(), name);
        if (it == kKindNames.end())
          usage("unknown --mix kind '" + name + "' (crossfade volume eq ping status malformed)");
        const double w = to_double(item.substr(eq + 1), "weight");
        if (w < 0) usage("--mix weights must be ≥ 0");
        o.weights[static_cast<std::size_t>(it - kKindNames.begin())] = w;
      }
    } else if (a == "--send") {
      o.one_shot = true;
      for (++i; i < argc; ++i) o.send.emplace_back(argv[i]);
      if (o.send.empty() || o.send[0].empty() || o.send[0][0] != '/') usage("--send needs an OSC address (/...)");
    } else if (a == "-h" || a == "--help") {
      usage("help");
    } else {
      usage("unknown argument '" + a + "'");
    }
  }
  if (o.port <= 0 || o.port > 65535) usage("--port is required (1..65535)");
  if (!o.one_shot) {
    if (o.rate <= 0 || o.rate > 10e6) usage("--rate must be 0 < rate ≤ 10e6");
    if (o.duration <= 0) usage("--duration must be > 0");
    if (o.tick_us < 50 || o.tick_us > 100000) usage("--tick-us must be 50..100000");
    double total = 0;
    for (double w : o.weights) total += w;
    if (total <= 0) usage("--mix: all weights are 0");
    if (o.volume_ids.empty()) usage("--volume-ids is empty");
  }
  if (o.max_batch <= 0) o.max_batch = std::max(1, static_cast<int>(std::ceil(o.rate * o.tick_us * 1e-6 * 20)));
  return o;
}

// ---------------------------------------------------------------- messages

void put_padded_string(std::vector<std::uint8_t>& b, std::string_view s) {
  b.insert(b.end(), s.begin(), s.end());
  b.push_back(0);
  while (b.size() % 4 != 0) b.push_back(0);
}

void put_be32(std::vector<std::uint8_t>& b, std::uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) b.push_back(static_cast<std::uint8_t>(v >> shift));
}

class Generator {
 public:
  Generator(const Options& o) : o_(o), rng_(o.seed), pick_(o.weights.begin(), o.weights.end()) {}

  // The next datagram of the mix at time t (seconds since the start), and its kind.
  Kind next(double t, std::vector<std::uint8_t>& out) {
    const auto kind = static_cast<Kind>(pick_(rng_));
    OscMessage m;
    switch (kind) {
      case kCrossfade: {
        const double x = 0.5 + 0.5 * std::sin(2 * std::numbers::pi * t / 4.0);
        m.address = "/crossfade_levels";
        m.args = {OscArg::Float(1.0 - x), OscArg::Float(x)};
        break;
      }
      case kVolume: {
        m.address = "/stem_volume";
        const int id = o_.volume_ids[volume_next_++ % o_.volume_ids.size()];
        m.args = {OscArg::Int(id), OscArg::Float(0.2 + 0.2 * unit_(rng_))};
        break;
      }
      case kEq: {
        static const char* decks[3] = {"A", "B", "C"};
        m.address = "/deck_eq_all";
        m.args = {OscArg::Str(decks[eq_next_++ % 3]), OscArg::Int(50), OscArg::Int(static_cast<int>(50 * unit_(rng_))),
                  OscArg::Int(50)};
        break;
      }
      case kPing:
        m.address = "/stemd/ping";
        break;
      case kStatus:
        m.address = "/get_status";
        break;
      case kMalformed:
        malformed(out);
        return kind;
      case kNumKinds:
        break;
    }
    out = control::osc_serialise(m);
    return kind;
  }

 private:
  // Eight shapes of bad input, in turn; each is malformed in one way.
  void malformed(std::vector<std::uint8_t>& b) {
    b.clear();
    switch (malformed_next_++ % 8) {
      case 0: {  // random bytes that are neither a message nor a bundle
        const std::size_t n = 1 + rng_() % 64;
        for (std::size_t i = 0; i < n; ++i) b.push_back(static_cast<std::uint8_t>(rng_()));
        b[0] = 'x';
        break;
      }
      case 1: {  // a valid message cut short (not a multiple of 4)
        OscMessage m;
        m.address = "/stem_volume";
        m.args = {OscArg::Int(1000), OscArg::Float(0.3)};
        b = control::osc_serialise(m);
        b.resize(b.size() - 3);
        break;
      }
      case 2:  // no type tag string
        put_padded_string(b, "/stemd/ping");
        put_be32(b, 7);
        break;
      case 3:  // type tags promise two floats, one is there
        put_padded_string(b, "/crossfade_levels");
        put_padded_string(b, ",ff");
        put_be32(b, 0x3f000000);
        break;
      case 4:  // a bundle whose element claims more bytes than follow
        put_padded_string(b, "#bundle");
        put_be32(b, 0);
        put_be32(b, 1);
        put_be32(b, 4096);
        put_padded_string(b, "/stemd/ping");
        put_padded_string(b, ",");
        break;
      case 5:  // a string argument without its terminating NUL
        put_padded_string(b, "/deck_eq_all");
        put_padded_string(b, ",siii");
        b.insert(b.end(), {'A', 'A', 'A', 'A'});
        break;
      case 6: {  // well-formed, but NaN volume
        OscMessage m;
        m.address = "/stem_volume";
        m.args = {OscArg::Int(o_.volume_ids[0]), OscArg::Float(std::numeric_limits<double>::quiet_NaN())};
        b = control::osc_serialise(m);
        break;
      }
      default: {  // well-formed, unknown address
        OscMessage m;
        m.address = "/flood/unknown";
        m.args = {OscArg::Int(1)};
        b = control::osc_serialise(m);
        break;
      }
    }
  }

  const Options& o_;
  std::mt19937_64 rng_;
  std::discrete_distribution<int> pick_;
  std::uniform_real_distribution<double> unit_{0.0, 1.0};
  std::size_t volume_next_ = 0, eq_next_ = 0, malformed_next_ = 0;
};

// ---------------------------------------------------------------- replies

struct Tally {
  std::uint64_t replies = 0, done = 0, fail = 0, unparsable = 0, other = 0;
  std::map<std::string, std::uint64_t> by_address;  // "/done /stem_volume", "/fail ?"
  std::map<std::string, std::uint64_t> fail_reasons;
  double last_reply_t = 0;

  void add(const Datagram& d, double t) {
    ++replies;
    last_reply_t = t;
    OscMessage m;
    std::string error;
    if (!control::osc_parse(d.data.data(), d.data.size(), m, error)) {
      ++unparsable;
      return;
    }
    const std::string about = (!m.args.empty() && m.args[0].is_string()) ? m.args[0].s : "?";
    if (m.address == "/done") {
      ++done;
    } else if (m.address == "/fail") {
      ++fail;
      std::string reason = (m.args.size() >= 2 && m.args.back().is_string()) ? m.args.back().s : "?";
      // Reasons quoting a value differ per message: numbers become N, and only the start is kept.
      std::string norm;
      for (char c : reason) {
        if (c >= '0' && c <= '9') {
          if (norm.empty() || norm.back() != 'N') norm += 'N';
        } else {
          norm += c;
        }
      }
      reason = norm.size() > 60 ? norm.substr(0, 60) + "..." : norm;
      ++fail_reasons[reason];
    } else {
      ++other;
    }
    ++by_address[m.address + " " + about];
  }
};

std::unique_ptr<UdpSocket> open_socket(const Options& o, Endpoint& to) {
  std::string error;
  auto dest = control::parse_endpoint(o.host, static_cast<std::uint16_t>(o.port), error);
  if (!dest) {
    std::fprintf(stderr, "stemd-osc-flood: %s: %s\n", o.host.c_str(), error.c_str());
    std::exit(2);
  }
  to = *dest;
  auto local = control::parse_endpoint(to.family() == AF_INET6 ? "::1" : "127.0.0.1", 0, error);
  if (!to.is_loopback()) local = control::parse_endpoint(to.family() == AF_INET6 ? "::" : "0.0.0.0", 0, error);
  auto sock = UdpSocket::bind(*local, error);
  if (!sock) {
    std::fprintf(stderr, "stemd-osc-flood: socket: %s\n", error.c_str());
    std::exit(2);
  }
  sock->set_receive_buffer(32 << 20);  // replies must not be lost on our side
  return sock;
}

// Waits up to `seconds` for the socket to be readable.
void wait_readable(int fd, double seconds) {
  if (seconds <= 0) return;
  pollfd p{fd, POLLIN, 0};
  timespec ts{};
  ts.tv_sec = static_cast<time_t>(seconds);
  ts.tv_nsec = static_cast<long>((seconds - static_cast<double>(ts.tv_sec)) * 1e9);
  ppoll(&p, 1, &ts, nullptr);
}

// ---------------------------------------------------------------- one-shot

OscArg typed(const std::string& s) {
  if (s.size() > 2 && s[1] == ':' && std::string_view("ifdhs").find(s[0]) != std::string_view::npos) {
    const std::string v = s.substr(2);
    switch (s[0]) {
      case 'i':
        return OscArg::Int(std::strtoll(v.c_str(), nullptr, 10));
      case 'h':
        return OscArg::Int64(std::strtoll(v.c_str(), nullptr, 10));
      case 'f':
        return OscArg::Float(std::strtod(v.c_str(), nullptr));
      case 'd':
        return OscArg::Double(std::strtod(v.c_str(), nullptr));
      default:
        return OscArg::Str(v);
    }
  }
  char* end = nullptr;
  const long long i = std::strtoll(s.c_str(), &end, 10);
  if (!s.empty() && *end == '\0') return OscArg::Int(i);
  const double f = std::strtod(s.c_str(), &end);
  if (!s.empty() && *end == '\0') return OscArg::Float(f);
  return OscArg::Str(s);
}

int one_shot(const Options& o) {
  Endpoint to;
  auto sock = open_socket(o, to);
  OscMessage m;
  m.address = o.send[0];
  for (std::size_t i = 1; i < o.send.size(); ++i) m.args.push_back(typed(o.send[i]));
  const auto bytes = control::osc_serialise(m);
  if (!sock->send_to(to, bytes.data(), bytes.size())) {
    std::fprintf(stderr, "stemd-osc-flood: send to %s failed\n", to.to_string().c_str());
    return 2;
  }
  const double deadline = mono_now() + o.timeout;
  Datagram d;
  while (mono_now() < deadline) {
    wait_readable(sock->fd(), deadline - mono_now());
    while (sock->receive(d)) {
      OscMessage r;
      std::string error;
      if (!control::osc_parse(d.data.data(), d.data.size(), r, error)) continue;
      if ((r.address != "/done" && r.address != "/fail") || r.args.empty() || !r.args[0].is_string() ||
          r.args[0].s != m.address) {
        continue;  // a notification or a late reply to something else
      }
      if (o.kv && r.address == "/done") {
        for (std::size_t i = 1; i + 1 < r.args.size(); i += 2) {
          auto text = [](const OscArg& a) { return a.is_string() ? a.s : a.to_string(); };
          std::printf("%s %s\n", text(r.args[i]).c_str(), text(r.args[i + 1]).c_str());
        }
      } else {
        std::printf("%s\n", r.to_string().c_str());
      }
      return r.address == "/done" ? 0 : 1;
    }
  }
  std::fprintf(stderr, "stemd-osc-flood: no reply to %s from %s within %.1f s\n", m.address.c_str(),
               to.to_string().c_str(), o.timeout);
  return 3;
}

// ---------------------------------------------------------------- flood

int flood(const Options& o) {
  Endpoint to;
  auto sock = open_socket(o, to);
  Generator gen(o);
  Tally tally;
  Datagram d;
  std::array<std::uint64_t, kNumKinds> sent_by_kind{};
  std::uint64_t sent = 0, send_errors = 0, late_ticks = 0, capped_ticks = 0;
  std::vector<std::uint8_t> buf;
  bool have_pending = false;  // a generated datagram the socket refused: retried first next time
  Kind pending_kind = kPing;

  const double t0 = mono_now();
  const double tick = o.tick_us * 1e-6;
  const auto total = static_cast<std::uint64_t>(std::llround(o.rate * o.duration));
  auto drain = [&] {
    while (sock->receive(d)) tally.add(d, mono_now() - t0);
  };

  double next_tick = t0;
  while (sent < total) {
    const double now = mono_now();
    if (now - next_tick > tick) ++late_ticks;
    const double elapsed = now - t0;
    const auto due = std::min<std::uint64_t>(total, static_cast<std::uint64_t>(o.rate * elapsed) + 1);
    int batch = 0;
    while (sent < due) {
      if (batch >= o.max_batch) {
        ++capped_ticks;
        break;
      }
      Kind k = pending_kind;
      if (!have_pending) k = gen.next(elapsed, buf);
      if (!sock->send_to(to, buf.data(), buf.size())) {
        ++send_errors;
        have_pending = true;  // the send buffer is full: wait for the next tick
        pending_kind = k;
        break;
      }
      have_pending = false;
      ++sent;
      ++sent_by_kind[k];
      ++batch;
    }
    drain();
    next_tick += tick;
    if (next_tick < mono_now() - 20 * tick) next_tick = mono_now();  // hopelessly behind: do not spin
    // Sleep until the next tick, waking for replies as they come.
    for (double left = next_tick - mono_now(); left > 0; left = next_tick - mono_now()) {
      wait_readable(sock->fd(), left);
      drain();
    }
  }
  const double t_send_end = mono_now();
  const double send_s = t_send_end - t0;
  // Drain: until every message is answered, no reply for 0.5 s, or --drain seconds.
  while (mono_now() - t_send_end < o.drain && tally.replies < sent) {
    wait_readable(sock->fd(), 0.05);
    drain();
    if (tally.replies > 0 && mono_now() - t0 - tally.last_reply_t > 0.5) break;
  }
  const std::uint64_t own_drops = sock->kernel_drops();

  std::printf("stemd-osc-flood: %s, target %.0f msg/s for %.2f s (tick %d us)\n", to.to_string().c_str(), o.rate,
              o.duration, o.tick_us);
  std::printf("sent %llu\n", static_cast<unsigned long long>(sent));
  for (int k = 0; k < kNumKinds; ++k) {
    std::printf("sent_%s %llu\n", kKindNames[static_cast<std::size_t>(k)],
                static_cast<unsigned long long>(sent_by_kind[static_cast<std::size_t>(k)]));
  }
  std::printf("send_seconds %.3f\n", send_s);
  std::printf("achieved_rate %.1f\n", static_cast<double>(sent) / send_s);
  std::printf("send_errors %llu\n", static_cast<unsigned long long>(send_errors));
  std::printf("late_ticks %llu\n", static_cast<unsigned long long>(late_ticks));
  std::printf("capped_ticks %llu\n", static_cast<unsigned long long>(capped_ticks));
  std::printf("replies %llu\n", static_cast<unsigned long long>(tally.replies));
  std::printf("replies_done %llu\n", static_cast<unsigned long long>(tally.done));
  std::printf("replies_fail %llu\n", static_cast<unsigned long long>(tally.fail));
  std::printf("replies_other %llu\n", static_cast<unsigned long long>(tally.other + tally.unparsable));
  std::printf("reply_fraction %.4f\n", sent ? static_cast<double>(tally.replies) / static_cast<double>(sent) : 0.0);
  std::printf("reply_rate %.1f\n",
              tally.last_reply_t > 0 ? static_cast<double>(tally.replies) / tally.last_reply_t : 0.0);
  std::printf("replies_lost_locally %llu\n", static_cast<unsigned long long>(own_drops));
  for (const auto& [what, n] : tally.by_address) {
    std::printf("  by_reply %-8llu %s\n", static_cast<unsigned long long>(n), what.c_str());
  }
  for (const auto& [why, n] : tally.fail_reasons) {
    std::printf("  by_fail_reason %-8llu %s\n", static_cast<unsigned long long>(n), why.c_str());
  }
  return 0;
}

}  // namespace
}  // namespace stemd::tools

int main(int argc, char** argv) {
  const auto o = stemd::tools::parse(argc, argv);
  return o.one_shot ? stemd::tools::one_shot(o) : stemd::tools::flood(o);
}
