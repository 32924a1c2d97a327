// In-process daemon and OSC client for the OSC integration suites (osc_test, osc_bad_input_test,
// osc_compat_test).
//
// Daemon: the daemon's owner object, app::Instance (engine, loader thread, controller, media
// policy, router, OSC server bound to a free port on 127.0.0.1 or ::1, optionally with TCP),
// built from an InstanceConfig as app::run() builds it, driven by the null backend (paced in
// real time).
//
// Threading rule: once the daemon is constructed its OscServer thread is the control thread and
// is the only one that may touch the Controller or the Router. Tests observe state through the
// daemon's own replies (/stemd/list, /stemd/voices, /stemd/status), which is what a client sees.
// For what no reply shows (a voice's deck or volume) a test calls Daemon::stop_server() at its
// end — the control thread is joined, and from then on the test thread may read controller()
// and router() directly. (The server is not restarted afterwards.) OscServer::stats() are
// atomics and may be read at any time.
//
// Client: a UDP (or TCP, OSC 1.0 framing) socket of its own — plain POSIX, independent of the
// code under test — that sends messages and waits, bounded by poll(), for their replies. Replies
// are /done or /fail; anything else that arrives (notifications) is queued separately.
#pragma once

#include "app/instance.hpp"
#include "common/fixtures.hpp"
#include "control/controller.hpp"
#include "control/media_policy.hpp"
#include "control/net.hpp"
#include "control/osc.hpp"
#include "control/osc_server.hpp"
#include "control/router.hpp"
#include "io/loader_thread.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <ostream>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace stemd::audio {
class Backend;
}

namespace stemd::test::osc {

using control::OscArg;
using control::OscMessage;
using Bytes = std::vector<std::uint8_t>;
using namespace std::chrono_literals;

// Generous: a reply on loopback takes well under a millisecond, but sanitizer builds on a busy
// two-core machine can stall for a while. Only reached when something is wrong.
inline constexpr std::chrono::milliseconds kReplyTimeout{3000};

// ---------------------------------------------------------------- arguments

inline OscArg to_arg(const OscArg& a) { return a; }
inline OscArg to_arg(int v) { return OscArg::Int(v); }
inline OscArg to_arg(long v) { return OscArg::Int64(v); }
inline OscArg to_arg(long long v) { return OscArg::Int64(v); }
inline OscArg to_arg(double v) { return OscArg::Float(v); }  // float32 on the wire, as clients send
inline OscArg to_arg(float v) { return OscArg::Float(v); }
inline OscArg to_arg(bool v) { return OscArg::Bool(v); }
inline OscArg to_arg(const char* s) { return OscArg::Str(s); }
inline OscArg to_arg(const std::string& s) { return OscArg::Str(s); }

inline OscArg dbl(double v) { return OscArg::Double(v); }
inline OscArg i64(std::int64_t v) { return OscArg::Int64(v); }
inline OscArg sym(std::string s) {
  OscArg a = OscArg::Str(std::move(s));
  a.type = 'S';
  return a;
}
inline OscArg blob(std::string bytes) {
  OscArg a;
  a.type = 'b';
  a.s = std::move(bytes);
  return a;
}
inline OscArg nil() { return OscArg{}; }  // 'N'
inline OscArg infinitum() {
  OscArg a;
  a.type = 'I';
  return a;
}
inline OscArg chr(char c) {
  OscArg a;
  a.type = 'c';
  a.i = static_cast<unsigned char>(c);
  return a;
}

template <typename... A>
OscMessage msg(std::string address, A&&... args) {
  OscMessage m;
  m.address = std::move(address);
  (m.args.push_back(to_arg(std::forward<A>(args))), ...);
  return m;
}
inline OscMessage msg_v(std::string address, std::vector<OscArg> args) {
  return control::osc_message(std::move(address), std::move(args));
}

// ---------------------------------------------------------------- raw packet building

// Big-endian int32, OSC strings (NUL + padding to 4), blobs: to hand-craft (bad) packets.
void put_i32(Bytes& b, std::int32_t v);
void put_f32(Bytes& b, float v);
void put_str(Bytes& b, const std::string& s);  // with NUL and zero padding
Bytes bytes_of(const std::string& s);          // exactly these bytes
Bytes serialise(const OscMessage& m);
Bytes bundle(const std::vector<Bytes>& elements, std::uint64_t timetag = control::kOscImmediately);
// The crowdstream /reset with an empty array: 2f 72 65 73 65 74 00 00 2c 5b 5d 00.
Bytes reset_empty_array();

// ---------------------------------------------------------------- replies

bool is_done(const OscMessage& r, const std::string& address);
bool is_fail(const OscMessage& r, const std::string& address);
// The reason of a /fail (its last argument), or "".
std::string reason(const OscMessage& r);
bool contains_ci(const std::string& haystack, const std::string& needle);
// Key/value pairs after the address of a status reply.
std::map<std::string, OscArg> status_map(const OscMessage& r);

// Each evaluates its reply expression once (it usually sends the message), also when it fails.
#define STEMD_EXPECT_REPLY_(CHECK, pred, r, addr)                   \
  do {                                                              \
    const ::stemd::control::OscMessage reply_ = (r);                \
    CHECK(pred(reply_, (addr))) << "reply: " << reply_.to_string(); \
  } while (0)
#define EXPECT_DONE(r, addr) STEMD_EXPECT_REPLY_(EXPECT_TRUE, ::stemd::test::osc::is_done, r, addr)
#define ASSERT_DONE(r, addr) STEMD_EXPECT_REPLY_(ASSERT_TRUE, ::stemd::test::osc::is_done, r, addr)
#define EXPECT_FAIL(r, addr) STEMD_EXPECT_REPLY_(EXPECT_TRUE, ::stemd::test::osc::is_fail, r, addr)

// ---------------------------------------------------------------- daemon

struct DaemonOptions {
  std::string bind = "127.0.0.1";
  bool tcp = false;
  std::string allow;                // empty: loopback only
  std::string media_root;           // empty: none
  bool media_loopback_only = true;  // MediaPolicy: without a root, loads allowed only on loopback
  int sample_rate = 48000;
  std::uint32_t buffer_size = 256;
  std::size_t max_string = 1024;
  double tone_seconds = 1.0;
  bool disable_filters = false;  // --disable-filters: EQ messages answered /done and ignored
  std::size_t max_sources = 4096;
  std::size_t max_subscribers = 16;
  bool run_audio = true;  // false: the backend is never started, so the engine takes no commands
  double subscription_ttl_s = 60.0;
  std::size_t page_bytes = 48000;
  // UDP sources exempt from the cookie exchange; unset: loopback (the default), "": none.
  std::optional<std::string> cookie_exempt;
  std::size_t max_tcp_clients = 16;
  std::size_t max_tcp_clients_per_address = 0;
  double tcp_idle_timeout_s = 300.0;
  double tcp_frame_timeout_s = 5.0;
  std::int64_t max_memory_mb = 0;        // the load budget (--max-memory-mb); 0 = unlimited (still counted)
  int max_channels = 32;                 // --max-channels
  std::size_t max_loads_in_flight = 16;  // loads on the opener threads at once
  double load_timeout_s = 10.0;          // --load-timeout
  int idle_wait_ms = 100;                // OscServerConfig::idle_wait_ms
};

class Daemon {
 public:
  explicit Daemon(const DaemonOptions& o = {});
  ~Daemon();
  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;

  bool ok() const { return ok_; }
  const std::string& error() const { return error_; }
  control::Endpoint udp() const;
  control::Endpoint tcp() const;
  const control::OscServerStats& stats() const;

  // Joins the control thread: afterwards the test thread may read controller() and router().
  void stop_server();
  void stop_loader();  // the loader thread stops (no stream is refilled from then on)
  control::Controller& controller();
  control::Router& router();
  engine::Engine& engine();

 private:
  DaemonOptions opts_;
  bool ok_ = false;
  bool server_running_ = false;
  std::string error_;
  std::unique_ptr<audio::Backend> backend_;
  std::unique_ptr<app::Instance> inst_;  // loader, engine, controller, router, OSC server
};

// ---------------------------------------------------------------- client

class Client {
 public:
  enum class Proto { kUdp, kTcp };
  explicit Client(const control::Endpoint& server, Proto proto = Proto::kUdp);
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  bool ok() const { return fd_ >= 0; }

  // Fire and forget.
  void post(const OscMessage& m);
  void post_raw(const Bytes& b);

  // Sends and waits for the reply whose first argument is m.address. Replies for other
  // addresses met on the way are "strays" (a test failure: a message got a second reply).
  // On time-out a test failure is added and a message with address "(timeout)" returned.
  OscMessage send(const OscMessage& m);
  template <typename... A>
  OscMessage send(const std::string& address, A&&... args) {
    return send(msg(address, std::forward<A>(args)...));
  }

  // Sends raw bytes, then /stemd/ping, and returns the reply that came before the ping's.
  // Checks that exactly one reply came (the ping's reply follows it); `extra` collects any
  // additional replies seen before the ping's. A load is answered when it is done, maybe after
  // the ping's reply: then the one reply within 500 ms after it counts. Nullopt when none came.
  std::optional<OscMessage> send_raw_then_ping(const Bytes& b, std::vector<OscMessage>* extra = nullptr);

  // The next /done or /fail, whatever its address (notifications are queued aside).
  // The wait is scaled by STEMD_TEST_TIME_SCALE (qemu), as every "up to" bound here.
  std::optional<OscMessage> next_reply(std::chrono::milliseconds timeout = kReplyTimeout);
  std::optional<OscMessage> next_reply_by(std::chrono::steady_clock::time_point deadline);
  // The next notification with this address (from the queue, or waiting for it).
  std::optional<OscMessage> wait_notification(const std::string& address,
                                              std::chrono::milliseconds timeout = kReplyTimeout);
  std::deque<OscMessage>& notifications() { return notes_; }
  const std::vector<OscMessage>& strays() const { return strays_; }

  // True when no reply at all arrives within `window` (the "no second reply" check). Replies
  // that do arrive are recorded as strays.
  bool quiet(std::chrono::milliseconds window);
  // Reads and discards replies until the reply to a /stemd/ping (re-synchronises after a failure).
  void resync();

 private:
  bool receive(Bytes& out, std::chrono::milliseconds timeout);
  int fd_ = -1;
  Proto proto_;
  Bytes tcp_in_;
  std::deque<OscMessage> notes_;
  std::vector<OscMessage> strays_;
};

// ---------------------------------------------------------------- state snapshots

// What the daemon says about its state, through its replies. Everything that must not change
// when a bad message is refused; nothing that moves on its own (positions, uptime, CPU).
struct Snapshot {
  std::vector<std::string> sources;  // "id|name|path|duration|streamed|playing"
  std::vector<std::string> voices;   // "slot|name|state"
  double deck[4] = {0, 0, 0, 0};
  double master = 0;
  double eq[4][3] = {};  // deck EQ gains (status eq_a_low … eq_d_high)
  std::int64_t sources_loaded = 0;
  std::int64_t voices_playing = 0;
  std::int64_t bad_messages = 0;  // counted, not compared
  bool valid = false;
  bool operator==(const Snapshot& o) const;
  std::string describe() const;
};
inline void PrintTo(const Snapshot& s, std::ostream* os) { *os << s.describe(); }
Snapshot snapshot(Client& c);

struct VoiceRow {
  int slot = 0;
  std::string name;
  double position = 0;
  double duration = 0;
  std::string state;
};
std::vector<VoiceRow> voices(Client& c);
struct SourceRow {
  int id = 0;
  std::string name, path;
  double duration = 0;
  bool streamed = false;
  bool playing = false;
};
std::vector<SourceRow> sources(Client& c);
std::map<std::string, OscArg> status(Client& c);
// The crowdstream EQ percent → linear gain (the spec's /deck_eq): ≤ 0 → 0, ≥ 50 → 1, between
// 10^(((p/50) − 1)·24/20).
double eq_gain(double percent);

// Polls `pred` (bounded) until it holds. For conditions that need audio to run (a voice
// starting, a fade finishing): never a fixed sleep.
bool eventually(const std::function<bool()>& pred, std::chrono::milliseconds timeout = kReplyTimeout);

// ---------------------------------------------------------------- media

// Short generated WAVs in a temp dir: "a.wav" (2 s stereo), "b.wav" (2 s mono), "c.wav" (1 s
// stereo), "short.wav" (0.2 s stereo).
struct Media {
  TempDir dir;
  Media();
  std::string path(const std::string& name) const { return dir.file(name); }
};

}  // namespace stemd::test::osc
