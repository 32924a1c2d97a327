// In-process daemon and OSC client for the OSC suites (see osc_harness.hpp).
#include "osc_harness.hpp"

#include "audio/backend.hpp"

#include <spdlog/spdlog.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstring>
#include <sstream>
#include <thread>

namespace stemd::test::osc {

// ---------------------------------------------------------------- raw packet building

void put_i32(Bytes& b, std::int32_t v) {
  const auto u = static_cast<std::uint32_t>(v);
  b.push_back(static_cast<std::uint8_t>(u >> 24));
  b.push_back(static_cast<std::uint8_t>(u >> 16));
  b.push_back(static_cast<std::uint8_t>(u >> 8));
  b.push_back(static_cast<std::uint8_t>(u));
}

void put_f32(Bytes& b, float v) {
  std::int32_t i = 0;
  std::memcpy(&i, &v, sizeof i);
  put_i32(b, i);
}

void put_str(Bytes& b, const std::string& s) {
  b.insert(b.end(), s.begin(), s.end());
  b.push_back(0);
  while (b.size() % 4 != 0) b.push_back(0);
}

Bytes bytes_of(const std::string& s) { return Bytes(s.begin(), s.end()); }

Bytes serialise(const OscMessage& m) { return control::osc_serialise(m); }

Bytes bundle(const std::vector<Bytes>& elements, std::uint64_t timetag) {
  Bytes b;
  put_str(b, "#bundle");
  put_i32(b, static_cast<std::int32_t>(timetag >> 32));
  put_i32(b, static_cast<std::int32_t>(timetag & 0xffffffffu));
  for (const auto& e : elements) {
    put_i32(b, static_cast<std::int32_t>(e.size()));
    b.insert(b.end(), e.begin(), e.end());
  }
  return b;
}

Bytes reset_empty_array() { return {0x2f, 0x72, 0x65, 0x73, 0x65, 0x74, 0x00, 0x00, 0x2c, 0x5b, 0x5d, 0x00}; }

// ---------------------------------------------------------------- replies

namespace {
bool first_is(const OscMessage& r, const std::string& address) {
  return !r.args.empty() && r.args[0].is_string() && r.args[0].s == address;
}
}  // namespace

bool is_done(const OscMessage& r, const std::string& address) { return r.address == "/done" && first_is(r, address); }
bool is_fail(const OscMessage& r, const std::string& address) { return r.address == "/fail" && first_is(r, address); }

std::string reason(const OscMessage& r) {
  if (r.address != "/fail" || r.args.size() < 2 || !r.args.back().is_string()) return "";
  return r.args.back().s;
}

bool contains_ci(const std::string& haystack, const std::string& needle) {
  auto lower = [](std::string s) {
    for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
  };
  return lower(haystack).find(lower(needle)) != std::string::npos;
}

std::map<std::string, OscArg> status_map(const OscMessage& r) {
  std::map<std::string, OscArg> out;
  for (std::size_t i = 1; i + 1 < r.args.size(); i += 2) {
    if (r.args[i].is_string()) out[r.args[i].s] = r.args[i + 1];
  }
  return out;
}

// ---------------------------------------------------------------- daemon

Daemon::Daemon(const DaemonOptions& o) : opts_(o) {
  // The daemon logs every load and every refused message; the suites check replies instead.
  if (std::getenv("STEMD_TEST_LOG") == nullptr) spdlog::set_level(spdlog::level::err);

  audio::BackendConfig bc;
  bc.kind = "null";
  bc.sample_rate = o.sample_rate;
  bc.buffer_size = o.buffer_size;
  backend_ = audio::make_null_backend(bc);
  if (!backend_->open(error_)) return;
  const int rate = backend_->sample_rate();

  // The daemon's owner object, built as app::run() builds it; what differs is in the config.
  app::InstanceConfig ic;
  ic.engine.sample_rate = rate;
  ic.engine.max_block_frames = std::max<std::uint32_t>(o.buffer_size, 4096);
  ic.engine.max_voices = 256;
  ic.load.output_rate = rate;
  ic.load.max_channels = o.max_channels;
  ic.load.budget = std::make_shared<io::MemoryBudget>(o.max_memory_mb << 20);
  ic.media_root = o.media_root;
  ic.media_loopback_only = o.media_loopback_only;

  control::RouterConfig& rc = ic.router;
  rc.sample_rate = rate;
  rc.buffer_size = o.buffer_size;
  rc.output_latency_s = backend_->output_latency_seconds();
  rc.backend = "null";
  rc.limits.max_string = o.max_string;
  rc.tone_seconds = o.tone_seconds;
  rc.eq_enabled = !o.disable_filters;
  rc.max_sources = o.max_sources;
  rc.max_subscribers = o.max_subscribers;
  rc.subscription_ttl_s = o.subscription_ttl_s;
  rc.page_bytes = o.page_bytes;
  if (o.cookie_exempt) {
    rc.cookie_exempt = control::AllowList{};
    std::string e;
    if (!o.cookie_exempt->empty() && !rc.cookie_exempt.parse(*o.cookie_exempt, e)) ADD_FAILURE() << e;
  }
  rc.max_loads_in_flight = o.max_loads_in_flight;
  rc.load_timeout_s = o.load_timeout_s;

  ic.osc = true;
  control::OscServerConfig& oc = ic.osc_server;
  oc.bind = o.bind;
  oc.port = 0;
  oc.tcp = o.tcp;
  oc.tcp_port = 0;
  oc.allow = o.allow;
  oc.max_tcp_clients = o.max_tcp_clients;
  oc.max_tcp_clients_per_address = o.max_tcp_clients_per_address;
  oc.tcp_idle_timeout_s = o.tcp_idle_timeout_s;
  oc.tcp_frame_timeout_s = o.tcp_frame_timeout_s;
  oc.idle_wait_ms = o.idle_wait_ms;
  inst_ = std::make_unique<app::Instance>(ic);
  if (!inst_->open_control(error_)) return;

  inst_->loader().start();
  if (o.run_audio && !backend_->start(inst_->engine(), error_)) {
    inst_->loader().stop();
    return;
  }
  inst_->start_control();
  server_running_ = true;
  ok_ = true;
}

Daemon::~Daemon() {
  if (inst_) inst_->stop_control();
  if (backend_) backend_->stop();
  if (inst_) {
    inst_->loader().stop();
    inst_->controller().service();
  }
  backend_.reset();
  inst_.reset();
}

control::Endpoint Daemon::udp() const { return inst_->server()->local_udp(); }
control::Endpoint Daemon::tcp() const { return inst_->server()->local_tcp(); }
const control::OscServerStats& Daemon::stats() const { return inst_->server()->stats(); }

void Daemon::stop_server() {
  if (server_running_) inst_->stop_control();
  server_running_ = false;
  inst_->controller().service();
}

void Daemon::stop_loader() { inst_->loader().stop(); }

control::Controller& Daemon::controller() {
  EXPECT_FALSE(server_running_) << "the test thread may touch the Controller only after stop_server()";
  return inst_->controller();
}
control::Router& Daemon::router() {
  EXPECT_FALSE(server_running_) << "the test thread may touch the Router only after stop_server()";
  return inst_->router();
}
engine::Engine& Daemon::engine() { return inst_->engine(); }

// ---------------------------------------------------------------- client

Client::Client(const control::Endpoint& server, Proto proto) : proto_(proto) {
  const int family = server.family();
  fd_ = ::socket(family, proto == Proto::kUdp ? SOCK_DGRAM : SOCK_STREAM, 0);
  if (fd_ < 0) return;
  const socklen_t len = family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
  if (proto == Proto::kUdp) {
    // Bound to the same loopback family on port 0; connect() so only the daemon's replies arrive.
    sockaddr_storage any{};
    any.ss_family = static_cast<sa_family_t>(family);
    if (family == AF_INET) {
      reinterpret_cast<sockaddr_in*>(&any)->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    } else {
      reinterpret_cast<sockaddr_in6*>(&any)->sin6_addr = in6addr_loopback;
    }
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&any), len) != 0) {
      ::close(fd_);
      fd_ = -1;
      return;
    }
    int big = 4 << 20;
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
  }
  if (::connect(fd_, reinterpret_cast<const sockaddr*>(&server.addr), len) != 0) {
    ::close(fd_);
    fd_ = -1;
  }
}

Client::~Client() {
  if (fd_ >= 0) ::close(fd_);
}

void Client::post_raw(const Bytes& b) {
  if (proto_ == Proto::kUdp) {
    const ssize_t n = ::send(fd_, b.data(), b.size(), 0);
    EXPECT_EQ(n, static_cast<ssize_t>(b.size())) << "send: " << std::strerror(errno);
    return;
  }
  Bytes framed;
  put_i32(framed, static_cast<std::int32_t>(b.size()));
  framed.insert(framed.end(), b.begin(), b.end());
  std::size_t off = 0;
  while (off < framed.size()) {
    const ssize_t n = ::send(fd_, framed.data() + off, framed.size() - off, MSG_NOSIGNAL);
    if (n <= 0) {
      ADD_FAILURE() << "TCP send: " << std::strerror(errno);
      return;
    }
    off += static_cast<std::size_t>(n);
  }
}

void Client::post(const OscMessage& m) { post_raw(serialise(m)); }

bool Client::receive(Bytes& out, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (proto_ == Proto::kTcp && tcp_in_.size() >= 4) {
      const std::uint32_t n = (std::uint32_t{tcp_in_[0]} << 24) | (std::uint32_t{tcp_in_[1]} << 16) |
                              (std::uint32_t{tcp_in_[2]} << 8) | tcp_in_[3];
      if (tcp_in_.size() >= 4 + static_cast<std::size_t>(n)) {
        out.assign(tcp_in_.begin() + 4, tcp_in_.begin() + 4 + n);
        tcp_in_.erase(tcp_in_.begin(), tcp_in_.begin() + 4 + n);
        return true;
      }
    }
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    pollfd p{fd_, POLLIN, 0};
    const int r = ::poll(&p, 1, static_cast<int>(std::max<std::int64_t>(left.count(), 0)));
    if (r <= 0) return false;
    std::uint8_t buf[65536];
    const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      if (errno == ECONNREFUSED) continue;  // an ICMP error from an earlier send: not a reply
      return false;
    }
    if (proto_ == Proto::kUdp) {
      out.assign(buf, buf + n);
      return true;
    }
    if (n == 0) return false;  // TCP peer closed
    tcp_in_.insert(tcp_in_.end(), buf, buf + n);
  }
}

std::optional<OscMessage> Client::next_reply(std::chrono::milliseconds timeout) {
  return next_reply_by(std::chrono::steady_clock::now() + scaled(timeout));
}

std::optional<OscMessage> Client::next_reply_by(std::chrono::steady_clock::time_point deadline) {
  Bytes b;
  for (;;) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() < 0 || !receive(b, left)) return std::nullopt;
    OscMessage m;
    std::string err;
    if (!control::osc_parse(b.data(), b.size(), m, err)) {
      ADD_FAILURE() << "the daemon sent something that is not an OSC message: " << err;
      continue;
    }
    if (m.address == "/done" || m.address == "/fail") return m;
    notes_.push_back(std::move(m));
  }
}

OscMessage Client::send(const OscMessage& m) {
  post(m);
  const auto deadline = std::chrono::steady_clock::now() + scaled(kReplyTimeout);
  for (;;) {
    auto r = next_reply_by(deadline);
    if (!r) {
      ADD_FAILURE() << "no reply to " << m.to_string();
      OscMessage t;
      t.address = "(timeout)";
      return t;
    }
    if (!r->args.empty() && r->args[0].is_string() && r->args[0].s == m.address) return *r;
    ADD_FAILURE() << "while waiting for the reply to " << m.to_string()
                  << ": a reply for something else: " << r->to_string();
    strays_.push_back(*r);
  }
}

std::optional<OscMessage> Client::send_raw_then_ping(const Bytes& b, std::vector<OscMessage>* extra) {
  post_raw(b);
  post(msg("/stemd/ping"));
  auto first = next_reply();
  if (!first) return std::nullopt;
  if (is_done(*first, "/stemd/ping")) {
    // A load runs on an opener thread and answers when done, after the ping (which waits for
    // nothing): give it a moment. Otherwise the packet got no reply at all.
    first = next_reply(std::chrono::milliseconds(500));
    return first;
  }
  // Anything between the packet's reply and the ping's is a second reply.
  for (;;) {
    auto r = next_reply();
    if (!r) {
      ADD_FAILURE() << "no reply to the /stemd/ping that followed";
      break;
    }
    if (is_done(*r, "/stemd/ping")) break;
    if (extra) extra->push_back(*r);
    strays_.push_back(*r);
  }
  return first;
}

std::optional<OscMessage> Client::wait_notification(const std::string& address, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + scaled(timeout);
  for (;;) {
    for (auto it = notes_.begin(); it != notes_.end(); ++it) {
      if (it->address == address) {
        OscMessage m = *it;
        notes_.erase(it);
        return m;
      }
    }
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return std::nullopt;
    auto r = next_reply(std::min(left, std::chrono::milliseconds(50)));
    if (r) {
      ADD_FAILURE() << "a reply nobody asked for: " << r->to_string();
      strays_.push_back(*r);
    }
  }
}

bool Client::quiet(std::chrono::milliseconds window) {
  auto r = next_reply(window);
  if (!r) return true;
  strays_.push_back(*r);
  while (auto more = next_reply(window)) strays_.push_back(*more);
  return false;
}

void Client::resync() {
  post(msg("/stemd/ping"));
  for (int i = 0; i < 1000; ++i) {
    auto r = next_reply();
    if (!r || is_done(*r, "/stemd/ping")) return;
  }
}

// ---------------------------------------------------------------- snapshots

bool Snapshot::operator==(const Snapshot& o) const {
  return valid && o.valid && sources == o.sources && voices == o.voices && deck[0] == o.deck[0] &&
         deck[1] == o.deck[1] && deck[2] == o.deck[2] && deck[3] == o.deck[3] && master == o.master &&
         std::equal(&eq[0][0], &eq[0][0] + 12, &o.eq[0][0]) && sources_loaded == o.sources_loaded &&
         voices_playing == o.voices_playing;
}

std::string Snapshot::describe() const {
  std::ostringstream s;
  s << "sources[";
  for (const auto& x : sources) s << " {" << x << "}";
  s << " ] voices[";
  for (const auto& x : voices) s << " {" << x << "}";
  s << " ] decks " << deck[0] << " " << deck[1] << " " << deck[2] << " " << deck[3] << " master " << master
    << " sources_loaded " << sources_loaded << " voices_playing " << voices_playing << " eq";
  for (const auto& d : eq) s << " " << d[0] << "/" << d[1] << "/" << d[2];
  return s.str();
}

std::vector<VoiceRow> voices(Client& c) {
  const OscMessage r = c.send(msg("/stemd/voices"));
  std::vector<VoiceRow> out;
  if (!is_done(r, "/stemd/voices") || r.args.size() < 2) {
    ADD_FAILURE() << "/stemd/voices: " << r.to_string();
    return out;
  }
  const auto n = static_cast<std::size_t>(r.args[1].i);
  for (std::size_t k = 0; k < n && 2 + 7 * k + 6 < r.args.size(); ++k) {
    const OscArg* a = &r.args[2 + 7 * k];
    out.push_back(VoiceRow{static_cast<int>(a[0].i), a[1].s, a[2].f, a[3].f, a[6].s});
  }
  return out;
}

std::vector<SourceRow> sources(Client& c) {
  const OscMessage r = c.send(msg("/stemd/list"));
  std::vector<SourceRow> out;
  if (!is_done(r, "/stemd/list") || r.args.size() < 2) {
    ADD_FAILURE() << "/stemd/list: " << r.to_string();
    return out;
  }
  const auto n = static_cast<std::size_t>(r.args[1].i);
  for (std::size_t k = 0; k < n && 2 + 6 * k + 5 < r.args.size(); ++k) {
    const OscArg* a = &r.args[2 + 6 * k];
    out.push_back(SourceRow{static_cast<int>(a[0].i), a[1].s, a[2].s, a[3].f, a[4].i != 0, a[5].i != 0});
  }
  return out;
}

std::map<std::string, OscArg> status(Client& c) {
  const OscMessage r = c.send(msg("/stemd/status"));
  if (!is_done(r, "/stemd/status")) ADD_FAILURE() << "/stemd/status: " << r.to_string();
  return status_map(r);
}

Snapshot snapshot(Client& c) {
  Snapshot s;
  for (const auto& x : sources(c)) {
    std::ostringstream o;
    o << x.id << "|" << x.name << "|" << x.path << "|" << x.duration << "|" << x.streamed << "|" << x.playing;
    s.sources.push_back(o.str());
  }
  for (const auto& v : voices(c)) {
    s.voices.push_back(std::to_string(v.slot) + "|" + v.name + "|" + v.state);
  }
  const auto st = status(c);
  auto num = [&](const char* k) -> double {
    auto it = st.find(k);
    if (it == st.end()) {
      ADD_FAILURE() << "status has no " << k;
      return -1;
    }
    return it->second.as_double();
  };
  s.deck[0] = num("deck_a");
  s.deck[1] = num("deck_b");
  s.deck[2] = num("deck_c");
  s.deck[3] = num("deck_d");
  s.master = num("master");
  const char* decks = "abcd";
  const char* bands[3] = {"low", "mid", "high"};
  for (int d = 0; d < 4; ++d) {
    for (int b = 0; b < 3; ++b) s.eq[d][b] = num((std::string("eq_") + decks[d] + "_" + bands[b]).c_str());
  }
  s.sources_loaded = static_cast<std::int64_t>(num("sources"));
  s.voices_playing = static_cast<std::int64_t>(num("voices"));
  s.bad_messages = static_cast<std::int64_t>(num("bad_messages"));
  s.valid = !st.empty();
  return s;
}

double eq_gain(double p) {
  if (p <= 0) return 0.0;
  if (p >= 50) return 1.0;
  return std::pow(10.0, ((p / 50.0) - 1.0) * 24.0 / 20.0);
}

bool eventually(const std::function<bool()>& pred, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + scaled(timeout);
  while (!pred()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(2ms);
  }
  return true;
}

// ---------------------------------------------------------------- media

Media::Media() {
  write_wav16(path("a.wav"), make_tone_noise16(96000, 2, 1), 2);
  write_wav16(path("b.wav"), make_tone_noise16(96000, 1, 2), 1);
  write_wav16(path("c.wav"), make_tone_noise16(48000, 2, 3), 2);
  write_wav16(path("short.wav"), make_tone_noise16(9600, 2, 4), 2);
}

}  // namespace stemd::test::osc
