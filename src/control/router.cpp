// The OSC router's core (see router.hpp): packets → messages → handlers → replies, status,
// notifications, bad-input accounting. The dialects are in crowdstream.cpp and native.cpp.
#include "router.hpp"

#include "deck_ids.hpp"

#include "limits.hpp"
#include "suggest.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <filesystem>

namespace stemd::control {

Router::Router(Controller& ctl, const RouterConfig& cfg, const MediaPolicy& media)
    : ctl_(ctl), cfg_(cfg), media_(media), meter_(cfg.meter), bpm_(cfg.bpm) {
  register_crowdstream();
  register_native();
  cpu_prev_ns_ = ctl_.engine().metrics().callback_ns_total.load();
  if (!dispatcher_.ok()) spdlog::error("OSC: {}", dispatcher_.error());
}

Router::Reply Router::done(std::vector<OscArg> values) {
  Reply r;
  r.values = std::move(values);
  return r;
}

Router::Reply Router::fail(std::string kind, std::string reason, std::vector<OscArg> values) {
  Reply r;
  r.ok = false;
  r.kind = std::move(kind);
  r.reason = std::move(reason);
  r.values = std::move(values);
  return r;
}

OscMessage Router::make_reply(const std::string& address, const Reply& r) const {
  OscMessage m;
  m.address = r.ok ? "/done" : "/fail";
  m.args.reserve(r.values.size() + 2);
  m.args.push_back(OscArg::Str(address));
  for (const auto& v : r.values) m.args.push_back(v);
  if (!r.ok) m.args.push_back(OscArg::Str(r.reason));
  return m;
}

void Router::count_bad(const std::string& kind, const std::string& reason, const std::string& address) {
  ++stats_.bad[kind];
  BadLog& b = bad_log_[kind];
  ++b.since_log;
  b.last_reason = reason;
  b.last_address = address;
}

void Router::log_bad_input() {
  const auto now = std::chrono::steady_clock::now();
  for (auto& [kind, b] : bad_log_) {
    if (b.since_log == 0 || now - b.last < std::chrono::seconds(1)) continue;
    // The address and the reason carry client strings: escaped, so they cannot forge lines.
    if (b.since_log == 1) {
      spdlog::warn("OSC {}: {} — {}", kind, log_escape(b.last_address), log_escape(b.last_reason, 400));
    } else {
      spdlog::warn("OSC {}: {} messages refused in the last second or more; latest: {} — {}", kind, b.since_log,
                   log_escape(b.last_address), log_escape(b.last_reason, 400));
    }
    b.since_log = 0;
    b.last = now;
  }
  log_limit_.flush([](const std::string& kind, std::uint64_t n) {
    spdlog::warn("OSC {}: … and {} more suppressed (at most 5 lines a second)", kind, n);
  });
}

bool Router::unvalidated(const Peer& p, std::chrono::steady_clock::time_point now) const {
  if (p.tcp_fd >= 0 || p.endpoint.family() == 0) return false;  // TCP proved it; internal calls
  return !cfg_.cookie_exempt.allows(p.endpoint) && !validator_.validated(p.endpoint, now);
}

void Router::handle_packet(const std::uint8_t* data, std::size_t size, const Peer& from, std::vector<Outgoing>& out) {
  ++stats_.packets;
  const auto now = std::chrono::steady_clock::now();
  const std::size_t first = out.size();
  unvalidated_ = unvalidated(from, now);
  packet_answer_bytes_ = 0;
  route_packet(data, size, from, out);
  // A /stemd/cookie echo in the packet may have validated the source on the way.
  if (unvalidated_) {
    unvalidated_ = false;
    std::size_t total = 0;
    for (std::size_t i = first; i < out.size(); ++i) total += out[i].data.size();
    const std::size_t budget = AddressValidator::kAmplification * size;
    if (total > budget) {
      // The handlers ran (a command from a spoofed source does what it says: --allow is what
      // keeps strangers out); only the answer is withheld, so the source cannot be used to
      // reflect or amplify traffic at a victim.
      stats_.replies_withheld += out.size() - first;
      out.resize(first);
      OscMessage c;
      c.address = "/stemd/cookie";
      c.args.push_back(OscArg::Str(validator_.mint(from.endpoint, now)));
      auto bytes = osc_serialise(c);
      if (bytes.size() <= budget) {
        out.push_back(Outgoing{from, std::move(bytes)});
        ++stats_.cookies_sent;
      }
    }
  }
}

void Router::route_packet(const std::uint8_t* data, std::size_t size, const Peer& from, std::vector<Outgoing>& out) {
  const PacketCheck check = check_packet(data, size, cfg_.limits);
  if (!check.ok) {
    // Answer where we can say what was refused; a reply to garbage goes to its sender only.
    const std::string address = check.address.empty() ? "?" : check.address;
    count_bad("malformed", check.reason, address);
    ++stats_.failed;
    out.push_back(Outgoing{from, osc_serialise(make_reply(address, fail("malformed", check.reason)))});
    return;
  }
  const std::uint8_t* bytes = check.rewritten ? check.data.data() : data;
  const std::size_t n = check.rewritten ? check.data.size() : size;
  std::string error;
  bool any = false;
  const bool ok = dispatcher_.dispatch(
      bytes, n,
      [&](const OscMessage& m) {
        any = true;
        const std::size_t before = out.size();
        if (pool_) {
          route_async(m, from, out);  // may wait behind a load in flight, or start one
        } else {
          out.push_back(Outgoing{from, osc_serialise(handle(m, from))});
        }
        for (std::size_t i = before; i < out.size(); ++i) packet_answer_bytes_ += out[i].data.size();
      },
      error);
  if (!ok) {
    // Nothing dispatched, or a bundle whose rest liblo refused: either way the sender hears it.
    count_bad("malformed", error, check.address);
    ++stats_.failed;
    out.push_back(Outgoing{from, osc_serialise(make_reply(any ? "#bundle" : check.address, fail("malformed", error)))});
  }
}

// The known address closest to an unknown one, or "". Bounded: only addresses of at most
// kMaxSuggestLength characters are compared, only against handlers of about their length, and at
// most kSuggestPerSecond times a second (a flood of unknown addresses gets the plain reason).
std::string Router::suggest_address(const std::string& address) {
  if (address.size() > kMaxSuggestLength) return {};
  const auto now = std::chrono::steady_clock::now();
  if (now - suggest_window_ >= std::chrono::seconds(1)) {
    suggest_window_ = now;
    suggested_in_window_ = 0;
  }
  if (suggested_in_window_ >= kSuggestPerSecond) return {};
  ++suggested_in_window_;
  ClosestWord near(address);
  for (const auto& h : handlers_) near.consider(h.first);
  return near.best();
}

OscMessage Router::handle_at(const OscMessage& m, std::int64_t frame) {
  forced_frame_ = frame;
  OscMessage r = handle(m, Peer{});
  forced_frame_ = -1;
  return r;
}

OscMessage Router::handle(const OscMessage& m, const Peer& from) {
  if (resume_ == nullptr) ++stats_.messages;  // a resumed message was counted when it arrived
  current_message_ = &m;
  current_from_ = &from;
  reply_deferred_ = false;
  // A bundle's timetag is when its messages take effect, at the sample: map it to a frame.
  double late_ms = 0;
  double ahead_s = 0;
  message_frame_ = forced_frame_;
  if (forced_frame_ < 0 && m.timetag != kOscImmediately && m.timetag != 0) {
    timespec rt{}, mono{};
    clock_gettime(CLOCK_REALTIME, &rt);
    clock_gettime(CLOCK_MONOTONIC, &mono);
    const double now_unix = static_cast<double>(rt.tv_sec) + rt.tv_nsec * 1e-9;
    const double delta = ntp_to_unix_seconds(m.timetag) - now_unix;
    const double now_mono = static_cast<double>(mono.tv_sec) * 1e9 + static_cast<double>(mono.tv_nsec);
    std::int64_t frame = -1;
    for (const auto& [tag, f] : timetag_frames_) {
      if (tag == m.timetag) frame = f;  // the same instant as an earlier bundle: the same sample
    }
    if (frame < 0) {
      frame = ctl_.frame_at_monotonic(static_cast<std::uint64_t>(std::max(0.0, now_mono + delta * 1e9)));
      if (ctl_.clock_running()) {  // before the first callback every time maps to 0: not worth keeping
        timetag_frames_[timetag_next_] = {m.timetag, frame};
        timetag_next_ = (timetag_next_ + 1) % timetag_frames_.size();
      }
    }
    const std::int64_t earliest = ctl_.now_frame() + cfg_.buffer_size;  // the engine renders a period ahead
    ahead_s = static_cast<double>(frame - earliest) / cfg_.sample_rate;
    if (frame < earliest) {
      late_ms = 1000.0 * static_cast<double>(earliest - frame) / cfg_.sample_rate;
    } else {
      message_frame_ = frame;
    }
  }
  Reply r;
  {
    Controller::ScheduleScope at(ctl_, message_frame_);
    auto it = handlers_.find(m.address);
    if (std::string e; ahead_s > limits::kMaxAheadSeconds &&
                       !limits::seconds_in_range(ahead_s, 0, limits::kMaxAheadSeconds, "the bundle's time ahead", e)) {
      r = fail("range", e);  // nothing is timed more than a day ahead
    } else if (it != handlers_.end()) {
      r = (this->*(it->second))(m, from);
    } else if (m.address.rfind("/dance/", 0) == 0) {
      r = cs_dance(m, from);  // the movement detector's many addresses: answered cheaply
    } else {
      const std::string near = suggest_address(m.address);
      r = fail("unknown_address",
               near.empty() ? std::string("unknown address") : "unknown address (did you mean " + near + "?)");
    }
  }
  message_frame_ = -1;
  current_message_ = nullptr;
  current_from_ = nullptr;
  if (reply_deferred_) return OscMessage{};  // a load started: answered when it is done (poll_loads)
  if (r.ok && late_ms > 0) {
    // It ran, at once; the sender hears it was late (the spec's "late bundles run at once and
    // are reported").
    char why[96];
    std::snprintf(why, sizeof why, "late by %.1f ms (ran at once)", late_ms);
    r = fail("late", why, r.values);
  }
  if (r.ok) {
    ++stats_.done;
  } else {
    ++stats_.failed;
    count_bad(r.kind, r.reason, m.address);
  }
  return make_reply(m.address, r);
}

std::int64_t Router::frame_after(double seconds) const {
  const std::int64_t soonest =
      ctl_.now_frame() + cfg_.buffer_size + static_cast<std::int64_t>(0.002 * cfg_.sample_rate);
  const std::int64_t offset = static_cast<std::int64_t>(std::llround(seconds * cfg_.sample_rate));
  // A message resumed after its load counts from its arrival (as the old server did), never
  // from the past.
  if (message_frame_ < 0 && arrival_base_ >= 0) return std::max(arrival_base_ + offset, soonest);
  const std::int64_t base = message_frame_ >= 0 ? message_frame_ : soonest;
  return base + offset;
}

Router::Reply Router::ensure_loaded(int id, const std::string& path) {
  // Already there (the same file: device, inode, size and mtime) → kept, not reloaded.
  return load_file(id, path, std::filesystem::path(path).stem().string(), true);
}

VoiceHandle Router::player(int id) const {
  auto it = players_.find(id);
  if (it == players_.end() || !ctl_.voice_alive(it->second)) return VoiceHandle{};
  return it->second;
}

bool Router::resolve_path(const std::string& requested, std::string& resolved, std::string& error) const {
  return media_.resolve(requested, resolved, error);
}

Router::Reply Router::load(int id, const std::string& path, const std::string& name) {
  return load_file(id, path, name, false);
}

Router::Reply Router::start_player(int id, const PlayOptions& opts) {
  std::string error;
  VoiceHandle old = player(id);
  VoiceHandle h;
  // Vinyl-style tempo: every player's rate is multiplied by bpm / base bpm.
  PlayOptions po = opts;
  if (!cfg_.tempo_moves_players) {
    // --disable-time-stretch (pyrubberband/audiotsm): players ignore the tempo clock.
  } else if (cfg_.time_stretch) {
    po.tempo = static_cast<float>(std::clamp(static_cast<double>(opts.tempo) * tempo_ratio(), 0.25, 4.0));
  } else {
    po.rate = static_cast<float>(std::clamp(static_cast<double>(opts.rate) * tempo_ratio(), 0.25, 4.0));
  }
  if (!ctl_.play(id, po, h, error)) {
    const std::string kind =
        ctl_.source(id) == nullptr ? "unknown_id" : (error.rfind("busy", 0) == 0 ? "busy" : "range");
    return fail(kind, error, {OscArg::Int(id)});
  }
  if (old.valid()) ctl_.stop(old, 0.0, error);  // replaced: the old one fades out (declick)
  players_[id] = h;
  player_rate_[id] = opts.rate;
  return done({OscArg::Int(id)});
}

double Router::beats_now() const {
  const double seconds = static_cast<double>(ctl_.now_frame() - beat_origin_frame_) / cfg_.sample_rate;
  return beat_origin_beats_ + std::max(0.0, seconds) * bpm_ / 60.0;
}

// A tempo change: the beat count carries on (the old server restarted it: a bug), and every
// player follows the new rate, gliding. Returns how many players could not follow (no
// resampler left).
int Router::apply_tempo(double bpm, double glide_s) {
  const std::int64_t now = ctl_.now_frame();
  beat_origin_beats_ = beats_now();
  beat_origin_frame_ = now;
  bpm_ = bpm;
  int failed = 0;
  std::string error;
  if (!cfg_.tempo_moves_players) return 0;  // --disable-time-stretch: only the clock moves
  for (const auto& [id, h] : players_) {
    if (!ctl_.voice_alive(h)) continue;
    if (cfg_.time_stretch) {  // tempo without pitch: every player's stretch follows
      if (!ctl_.set_stretch(h, static_cast<float>(std::clamp(tempo_ratio(), 0.25, 4.0)), error)) ++failed;
      continue;
    }
    auto it = player_rate_.find(id);
    const double own = it == player_rate_.end() ? 1.0 : it->second;
    if (!ctl_.set_rate(h, static_cast<float>(std::clamp(own * tempo_ratio(), 0.25, 4.0)), glide_s, error)) ++failed;
  }
  return failed;
}

double Router::glide_tempo(double current, double target, double dt, double rise_s, double fall_s) {
  const double tau = target > current ? rise_s : fall_s;
  if (tau <= 0) return target;
  return current + (target - current) * (1.0 - std::exp(-dt / tau));
}

// Called every server pass: the movement-driven tempo glide and the clock printout.
void Router::tick() {
  if (tick_hook_) tick_hook_();
  const auto now = std::chrono::steady_clock::now();
  expire_subscribers(now);
  const double dt = std::chrono::duration<double>(now - last_tick_).count();
  last_tick_ = now;
  if (movement_active_ && dt > 0 && dt < 1.0) {
    // Rising fast, falling slowly (--tempo-rise-s, --tempo-fall-s), whatever the buffer size.
    movement_bpm_ = glide_tempo(movement_bpm_, movement_target_, dt, cfg_.tempo_rise_s, cfg_.tempo_fall_s);
    const double since = std::chrono::duration<double>(now - last_tempo_apply_).count();
    if (std::fabs(movement_bpm_ - bpm_) > 0.05 && since >= 0.05) {
      apply_tempo(movement_bpm_, since);
      last_tempo_apply_ = now;
    }
  }
  if (!print_clock_) return;
  const auto beat = static_cast<std::int64_t>(std::floor(beats_now()));
  if (beat == last_beat_printed_) return;
  last_beat_printed_ = beat;
  spdlog::info("clock: bar {} beat {} ({:.1f} bpm, {}/4)", beat / meter_ + 1, beat % meter_ + 1, bpm_, meter_);
}

// Crowdstream's id → deck map: 100–1099 A, 1100–2099 B, 2100–3099 C, 3100–4099 D, else D.
int Router::deck_of_id(int id) const {
  for (int d = 0; d + 1 < engine::kNumDecks; ++d)
    if (id >= kDeckBase[d] && id < kDeckBase[d + 1]) return d;
  return engine::kNumDecks - 1;
}

bool Router::parse_deck(const std::string& name, int& deck) {
  if (name.size() == 1) {
    const char c = static_cast<char>(std::toupper(static_cast<unsigned char>(name[0])));
    if (c >= 'A' && c <= 'D') {
      deck = c - 'A';
      return true;
    }
  }
  return false;
}

// ---------------------------------------------------------------- notifications

void Router::on_event(const engine::Event& e, const VoiceInfo& v) {
  if (subscribers_.empty()) return;
  OscMessage m;
  switch (e.type) {
    case engine::EventType::kVoiceStarted:
      m.address = "/stemd/voice/started";
      m.args = {OscArg::Int(v.slot), OscArg::Int(e.voice), OscArg::Str(v.name)};
      break;
    case engine::EventType::kVoiceEnded:
      m.address = "/stemd/voice/ended";
      m.args = {OscArg::Int(v.slot), OscArg::Int(e.voice), OscArg::Str(engine::to_string(e.reason))};
      break;
    case engine::EventType::kVoiceUnderrun:
      m.address = "/stemd/voice/underrun";
      m.args = {OscArg::Int(v.slot), OscArg::Int(e.voice), OscArg::Int64(static_cast<std::int64_t>(e.count))};
      break;
    default:
      return;
  }
  const auto bytes = osc_serialise(m);
  for (const Subscriber& s : subscribers_) notifications_.push_back(Outgoing{s.peer, bytes});
}

void Router::notify_device(const std::string& what, const std::vector<OscArg>& values) {
  if (subscribers_.empty()) return;
  OscMessage m;
  m.address = "/stemd/device/" + what;
  m.args = values;
  const auto bytes = osc_serialise(m);
  for (const Subscriber& s : subscribers_) notifications_.push_back(Outgoing{s.peer, bytes});
}

void Router::take_notifications(std::vector<Outgoing>& out) {
  for (auto& n : notifications_) out.push_back(std::move(n));
  notifications_.clear();
}

void Router::drop_subscriber(const Peer& p) {
  const auto before = subscribers_.size();
  std::erase_if(subscribers_, [&](const Subscriber& s) {
    return p.tcp_fd >= 0 ? s.peer.tcp_fd == p.tcp_fd : (s.peer.tcp_fd < 0 && s.peer.endpoint == p.endpoint);
  });
  if (subscribers_.size() != before) {
    spdlog::info("OSC: subscriber {} expired (unreachable or disconnected)", p.endpoint.to_string());
  }
}

std::vector<Peer> Router::subscriber_peers() const {
  std::vector<Peer> v;
  v.reserve(subscribers_.size());
  for (const Subscriber& s : subscribers_) v.push_back(s.peer);
  return v;
}

void Router::expire_subscribers(std::chrono::steady_clock::time_point now) {
  for (std::size_t i = 0; i < subscribers_.size();) {
    if (subscribers_[i].expires > now) {
      ++i;
      continue;
    }
    spdlog::info("OSC: subscriber {} expired (not renewed within {:g} s, --subscription-ttl)",
                 subscribers_[i].peer.endpoint.to_string(), cfg_.subscription_ttl_s);
    subscribers_.erase(subscribers_.begin() + static_cast<std::ptrdiff_t>(i));
  }
}

// ---------------------------------------------------------------- status

std::vector<OscArg> Router::status_fields() {
  engine::Engine& e = ctl_.engine();
  const engine::Metrics& m = e.metrics();
  const auto hist = m.callback_ns.snapshot();
  const auto now = std::chrono::steady_clock::now();
  const std::uint64_t cpu_ns = m.callback_ns_total.load();
  const double wall = std::chrono::duration<double>(now - cpu_prev_t_).count();
  if (wall >= 0.25) {  // a window long enough to mean something
    cpu_load_ = static_cast<double>(cpu_ns - cpu_prev_ns_) / (wall * 1e9);
    cpu_prev_ns_ = cpu_ns;
    cpu_prev_t_ = now;
  }
  const auto ls = ctl_.loader().stats();
  const double budget_us = 1e6 * cfg_.buffer_size / cfg_.sample_rate;
  std::vector<OscArg> f;
  auto kv = [&](const char* k, OscArg v) {
    f.push_back(OscArg::Str(k));
    f.push_back(std::move(v));
  };
  kv("sample_rate", OscArg::Int(cfg_.sample_rate));
  kv("buffer_size", OscArg::Int(cfg_.buffer_size));
  kv("latency_ms", OscArg::Float(1000.0 * cfg_.buffer_size / cfg_.sample_rate));
  kv("output_latency_ms", OscArg::Float(cfg_.output_latency_s * 1000.0));
  kv("backend", OscArg::Str(cfg_.backend));
  kv("voices", OscArg::Int(static_cast<std::int64_t>(ctl_.voices_playing())));
  kv("sources", OscArg::Int(static_cast<std::int64_t>(ctl_.sources_loaded())));
  kv("memory_bytes", OscArg::Int64(static_cast<std::int64_t>(ctl_.memory_bytes())));
  kv("memory_limit_bytes", OscArg::Int64(ctl_.memory_limit_bytes()));  // --max-memory-mb (0: none)
  kv("loads_in_flight", OscArg::Int(static_cast<std::int64_t>(pending_.size())));
  kv("voice_underruns", OscArg::Int64(static_cast<std::int64_t>(m.voice_underruns.load())));
  kv("device_underflows", OscArg::Int64(static_cast<std::int64_t>(m.device_underflows.load())));
  // Percentiles come from histogram bin edges (≈ 9 % wide): never report one above the true max.
  const double max_us = m.callback_max_ns.load() / 1e3;
  kv("callback_p50_us", OscArg::Float(std::min(max_us, engine::DurationHistogram::percentile_ns(hist, 0.5) / 1e3)));
  kv("callback_p99_us", OscArg::Float(std::min(max_us, engine::DurationHistogram::percentile_ns(hist, 0.99) / 1e3)));
  kv("callback_max_us", OscArg::Float(max_us));
  kv("budget_us", OscArg::Float(budget_us));
  kv("cpu_load", OscArg::Float(cpu_load_));
  kv("uptime_s", OscArg::Float(std::chrono::duration<double>(now - started_).count()));
  kv("frames", OscArg::Int64(static_cast<std::int64_t>(m.frames.load())));
  kv("master", OscArg::Float(ctl_.master_level()));
  kv("deck_a", OscArg::Float(ctl_.deck_level(0)));
  kv("deck_b", OscArg::Float(ctl_.deck_level(1)));
  kv("deck_c", OscArg::Float(ctl_.deck_level(2)));
  kv("deck_d", OscArg::Float(ctl_.deck_level(3)));
  for (int d = 0; d < engine::kNumDecks; ++d) {
    static const char* names[4][3] = {{"eq_a_low", "eq_a_mid", "eq_a_high"},
                                      {"eq_b_low", "eq_b_mid", "eq_b_high"},
                                      {"eq_c_low", "eq_c_mid", "eq_c_high"},
                                      {"eq_d_low", "eq_d_mid", "eq_d_high"}};
    for (int b = 0; b < 3; ++b) kv(names[d][b], OscArg::Float(ctl_.deck_eq(d, b)));
  }
  kv("loader_reads", OscArg::Int64(static_cast<std::int64_t>(ls.reads)));
  kv("read_errors", OscArg::Int64(static_cast<std::int64_t>(ls.read_errors)));
  kv("messages", OscArg::Int64(static_cast<std::int64_t>(stats_.messages)));
  std::uint64_t bad = 0;
  for (const auto& [k, n] : stats_.bad) bad += n;
  kv("bad_messages", OscArg::Int64(static_cast<std::int64_t>(bad)));
  std::uint64_t ignored = 0;
  for (const auto& [k, n] : stats_.ignored) ignored += n;
  kv("ignored_messages", OscArg::Int64(static_cast<std::int64_t>(ignored)));
  kv("subscribers", OscArg::Int(static_cast<std::int64_t>(subscribers_.size())));
  kv("replies_withheld", OscArg::Int64(static_cast<std::int64_t>(stats_.replies_withheld)));
  kv("cookies_sent", OscArg::Int64(static_cast<std::int64_t>(stats_.cookies_sent)));
  // Timed commands waiting for their time, and those refused because the schedule was full.
  kv("scheduled", OscArg::Int(static_cast<std::int64_t>(ctl_.scheduled())));
  kv("tone_hz", OscArg::Float(m.tone_hz.load(std::memory_order_relaxed)));  // the test tone, 0 = none
  kv("schedule_refused", OscArg::Int64(static_cast<std::int64_t>(
                             ctl_.schedule_refused() + m.schedule_overflows.load(std::memory_order_relaxed))));
  if (status_extra_) status_extra_(f);
  return f;
}

}  // namespace stemd::control
