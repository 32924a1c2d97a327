// The OSC router's core (see router.hpp): packets → messages → handlers → replies, status,
// notifications, bad-input accounting. The dialects are in crowdstream.cpp and native.cpp.
#include "router.hpp"

#include "link_session.hpp"

#include "args.hpp"
#include "limits.hpp"
#include "suggest.hpp"
#include "io/file_closer.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <iterator>

namespace stemd::control {

namespace {
// One row per ErrorKind, in its order (router_types.hpp): the name status keys and replies use,
// and the words the log uses for it.
struct KindText {
  const char* name;
  const char* words;
};
// clang-format off
constexpr KindText kKinds[] = {
    {"arguments", "wrong arguments"}, {"range", "out of range"}, {"unknown_id", "unknown id"},
    {"unknown_address", "unknown address"}, {"malformed", "not OSC"}, {"busy", "busy"}, {"file", "file"},
    {"path", "path"}, {"limit", "over a limit"}, {"late", "a timed message"}, {"cookie", "cookie not proven"},
    {"given_up", "given up"}, {"deferred", "deferred"}};
// clang-format on
static_assert(std::size(kKinds) == static_cast<std::size_t>(ErrorKind::kDeferred) + 1);
}  // namespace

const char* to_string(ErrorKind k) { return kKinds[static_cast<std::size_t>(k)].name; }

void HandlerTable::add(const std::string& address, std::size_t min_args, std::size_t max_args,
                       std::function<Reply(const Call&)> fn, HandlerSpec::Timing timing) {
  map_[address] = HandlerSpec{min_args, max_args, std::move(fn), timing};
}

void HandlerTable::add_prefix(const std::string& prefix, std::function<Reply(const Call&)> fn) {
  prefixes_.emplace_back(prefix, HandlerSpec{0, HandlerSpec::kAny, std::move(fn)});
}

const HandlerSpec* HandlerTable::find(const std::string& address) const {
  auto it = map_.find(address);
  if (it != map_.end()) return &it->second;
  for (const auto& [prefix, spec] : prefixes_) {
    if (address.rfind(prefix, 0) == 0) return &spec;
  }
  return nullptr;
}

bool HandlerTable::acts_on_arrival(const std::string& address) const {
  const HandlerSpec* spec = find(address);
  return spec != nullptr && spec->timing == HandlerSpec::Timing::kOnArrival;
}

Reply HandlerTable::dispatch(const HandlerSpec& spec, const Call& c) {
  if (spec.min_args > 0 || spec.max_args != HandlerSpec::kAny) {
    ArgReader a(c.m);
    if (!a.count(spec.min_args, spec.max_args)) return Reply::fail(ErrorKind::kArguments, a.error(), a.id_values());
  }
  return spec.fn(c);
}

Router::Router(Controller& ctl, const RouterConfig& cfg, const MediaPolicy& media)
    : ctl_(ctl),
      cfg_(cfg),
      media_(media),
      tempo_(cfg.bpm, cfg.meter, cfg.sample_rate, cfg.tempo_rise_s, cfg.tempo_fall_s),
      notifier_(cfg.max_subscribers, cfg.subscription_ttl_s),
      crowdstream_(*this),
      native_(*this, crowdstream_) {
  tempo_.set_quantum(cfg.quantum);  // --quantize (a state file's /stemd/quantize comes after)
  crowdstream_.register_into(table_);
  native_.register_into(table_);
  cpu_prev_ns_ = ctl_.engine().metrics().callback_ns_total.load();
  if (cfg_.bpm_set || cfg_.link) tempo_.mark_in_use();
  if (cfg_.link) start_link();
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

namespace {
// A refusal's kind in the log's words (the status keys keep to_string's names).
const char* in_words(const std::string& kind) {
  for (const KindText& k : kKinds) {
    if (kind == k.name) return k.words;
  }
  return kind.c_str();
}
}  // namespace

void Router::count_bad(ErrorKind kind, const std::string& reason, const std::string& address, const Peer& from) {
  if (from.local == kQuietPeer) return;
  ++stats_.bad[to_string(kind)];
  BadLog& b = bad_log_[to_string(kind)];
  ++b.since_log;
  b.last_reason = reason;
  b.last_address = address;
}

void Router::log_bad_input() {
  const auto now = std::chrono::steady_clock::now();
  for (auto& [kind, b] : bad_log_) {
    if (b.since_log == 0 || now - b.last < std::chrono::seconds(1)) continue;
    // The address and the reason carry client strings: escaped, so they cannot forge lines.
    // A late bundle's messages ran (at once, off their time): said so, not "refused".
    // A command for an id that is not there (a voice that just ended, a client's own bookkeeping)
    // and the cookie handshake (how every remote subscription starts) are information; the rest
    // is what an operator may have to act on.
    const bool late = kind == to_string(ErrorKind::kLate);
    const bool routine = kind == to_string(ErrorKind::kUnknownId) || kind == to_string(ErrorKind::kCookie);
    const auto level = routine ? spdlog::level::info : spdlog::level::warn;
    const char* what = late ? "ran late, at once" : "refused";
    if (b.since_log == 1) {
      spdlog::log(level, "OSC {} ({}): {} — {}", what, in_words(kind), base::log_escape(b.last_address),
                  base::log_escape(b.last_reason, 400));
    } else {
      spdlog::log(level, "OSC {} ({}): {} messages in the last second or more; latest: {} — {}", what, in_words(kind),
                  b.since_log, base::log_escape(b.last_address), base::log_escape(b.last_reason, 400));
    }
    b.since_log = 0;
    b.last = now;
  }
  // The kinds name themselves ("OSC /dummy", "link: session tempo changes"): not every kind is OSC.
  // At the level of the kind's own lines: "voices ended … more suppressed" is no warning.
  log_limit_.flush([this](const std::string& kind, std::uint64_t n) {
    spdlog::log(log_limit_.informational(kind) ? spdlog::level::info : spdlog::level::warn,
                "{}: … and {} more suppressed (at most 5 lines a second)", kind, n);
  });
}

bool Router::unvalidated(const Peer& p, std::chrono::steady_clock::time_point now) const {
  if (p.tcp_fd >= 0 || p.local != 0 || p.endpoint.family() == 0) return false;  // TCP (or HTTP) proved it
  return !cfg_.cookie_exempt.allows(p.endpoint) && !validator_.validated(p.endpoint, now);
}

void Router::handle_packet(const std::uint8_t* data, std::size_t size, const Peer& from, std::vector<Outgoing>& out) {
  ++stats_.packets;
  type_refused_ = false;
  const auto now = std::chrono::steady_clock::now();
  const std::size_t first = out.size();
  unvalidated_ = unvalidated(from, now);
  packet_answer_bytes_ = 0;
  // Shared with the packet's messages that wait behind a load (answer_later).
  packet_ = std::make_shared<PacketBudget>();
  packet_->allowed = AddressValidator::kAmplification * size;
  route_packet(data, size, from, out);
  packet_->answer_bytes = packet_answer_bytes_;
  packet_->unvalidated = unvalidated_;
  // A /stemd/cookie echo in the packet may have validated the source on the way.
  if (unvalidated_) {
    unvalidated_ = false;
    std::size_t total = 0;
    for (std::size_t i = first; i < out.size(); ++i) total += out[i].data.size();
    packet_->sent = total;
    std::vector<std::uint8_t> instead;
    if (!validator_.replies_fit(from.endpoint, size, total, now, instead)) {
      // The handlers ran (a command from a spoofed source does what it says: --allow is what
      // keeps strangers out); only the answer is withheld, so the source cannot be used to
      // reflect or amplify traffic at a victim.
      stats_.replies_withheld += out.size() - first;
      out.resize(first);
      packet_->withheld = true;  // the messages still waiting behind a load stay silent too
      packet_->sent = instead.size();
      if (!instead.empty()) {
        out.push_back(Outgoing{from, std::move(instead)});
        ++stats_.cookies_sent;
      }
    }
  }
  packet_.reset();
}

void Router::route_packet(const std::uint8_t* data, std::size_t size, const Peer& from, std::vector<Outgoing>& out) {
  PacketCheck check = parse_packet(data, size, cfg_.limits);
  if (!check.ok) {
    // Answer where we can say what was refused; a reply to garbage goes to its sender only.
    const std::string address = check.address.empty() ? "?" : check.address;
    count_bad(ErrorKind::kMalformed, check.reason, address, from);
    ++stats_.failed;
    out.push_back(Outgoing{from, osc_serialise(make_reply(address, Reply::fail(ErrorKind::kMalformed, check.reason)))});
    return;
  }
  // One parse (parse_packet): the messages were decoded once, with their bundles' timetags.
  // A status query repeated in a packet with nothing between (a bundle of 1,000 /stemd/status:
  // ≈ 20 µs each to build, the attack pass held the control thread for seconds with a few
  // datagrams) gets the first one's answer again, built once.
  for (OscMessage& m : check.parsed) m.typed = from.typed;
  std::size_t query_reply = SIZE_MAX;  // index in `out` of the answer to the last query, if any
  const OscMessage* query = nullptr;
  for (const OscMessage& m : check.parsed) {
    const std::size_t before = out.size();
    const bool is_query = m.args.empty() && repeatable_query(m.address);
    if (is_query && query != nullptr && query->address == m.address && query->timetag == m.timetag &&
        query_reply < before) {
      std::vector<std::uint8_t> again = out[query_reply].data;
      out.push_back(Outgoing{from, std::move(again)});
      ++stats_.messages;
      ++stats_.done;
      ++stats_.queries_repeated;
    } else if (pool_) {
      route_async(m, from, out);  // may wait behind a load in flight, or start one
    } else {
      out.push_back(Outgoing{from, osc_serialise(handle(m, from))});
    }
    // Only an answer given at once can be repeated (one queued behind a load is not in `out`).
    query = is_query && out.size() == before + 1 ? &m : nullptr;
    if (query != nullptr && query_reply >= before) query_reply = before;
    if (query == nullptr) query_reply = SIZE_MAX;
    for (std::size_t i = before; i < out.size(); ++i) packet_answer_bytes_ += out[i].data.size();
  }
}

// Status queries: their answer depends on nothing in the message (no arguments) and they change
// nothing. (The paged lists are not: their answers count against the packet's 1 MiB of pages.)
bool Router::repeatable_query(const std::string& address) {
  return address == "/stemd/status" || address == "/get_status";
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
  for (const auto& h : table_.all()) near.consider(h.first);
  return near.best();
}

OscMessage Router::handle_at(const OscMessage& m, std::int64_t frame) {
  forced_frame_ = frame;
  OscMessage r = handle(m, Peer{});
  forced_frame_ = -1;
  return r;
}

OscMessage Router::handle(const OscMessage& m, const Peer& from) {
  const Reply r = handle_reply(m, from);
  if (r.kind == ErrorKind::kDeferred && !r.ok) return OscMessage{};  // answered when the load is done
  return make_reply(m.address, r);
}

// A bundle's timetag is when its messages take effect, at the sample: map it to a frame. -1 when
// the message is not timed, or its time has passed (late_ms > 0: it runs at once).
std::int64_t Router::bundle_frame(const OscMessage& m, double& late_ms, double& ahead_s) {
  late_ms = 0;
  ahead_s = 0;
  if (m.timetag == kOscImmediately || m.timetag == 0) return -1;
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
    // The timetag is when the sound is heard: rendered an output latency before.
    frame = ctl_.frame_at_monotonic(static_cast<std::uint64_t>(std::max(0.0, now_mono + delta * 1e9))) -
            output_latency_frames();
    if (ctl_.clock_running()) {  // before the first callback every time maps to 0: not worth keeping
      timetag_frames_[timetag_next_] = {m.timetag, frame};
      timetag_next_ = (timetag_next_ + 1) % timetag_frames_.size();
    }
  }
  const std::int64_t earliest = ctl_.now_frame() + cfg_.buffer_size;  // the engine renders a period ahead
  ahead_s = static_cast<double>(frame - earliest) / cfg_.sample_rate;
  if (frame < earliest) {
    late_ms = 1000.0 * static_cast<double>(earliest - frame) / cfg_.sample_rate;
    // Before this machine's boot (a timetag of 1900): the frame stops at 0, the wall clock does not.
    if (now_mono + delta * 1e9 < 0) late_ms = std::max(late_ms, -delta * 1000.0);
    return -1;
  }
  return frame;
}

Reply Router::route(const Call& c, double ahead_s) {
  const HandlerSpec* spec = table_.find(c.m.address);
  const bool on_arrival = spec != nullptr && spec->timing == HandlerSpec::Timing::kOnArrival;
  if (std::string e; ahead_s > limits::kMaxAheadSeconds && !on_arrival &&
                     !limits::seconds_in_range(ahead_s, 0, limits::kMaxAheadSeconds, "the bundle's time ahead", e)) {
    return Reply::fail(ErrorKind::kRange, e);  // nothing is timed more than a day ahead
  }
  if (spec != nullptr) return HandlerTable::dispatch(*spec, c);
  const std::string near = suggest_address(c.m.address);
  return Reply::fail(ErrorKind::kUnknownAddress,
                     near.empty() ? std::string("unknown address") : "unknown address (did you mean " + near + "?)");
}

Reply Router::handle_reply(const OscMessage& m, const Peer& from) {
  if (resume_ == nullptr && play_resume_ == nullptr) ++stats_.messages;  // a resumed one was counted on arrival
  reply_deferred_ = false;
  double late_ms = 0, ahead_s = 0;
  const std::int64_t at = forced_frame_ >= 0 ? forced_frame_ : bundle_frame(m, late_ms, ahead_s);
  if (forced_frame_ < 0 && resume_ == nullptr && play_resume_ == nullptr && m.timetag != kOscImmediately &&
      m.timetag != 0) {
    ++stats_.timed;  // timetags are in use: stemctl status shows the stream clock's row
  }
  current_msg_ = &m;
  current_from_ = &from;
  Reply r = route(Call{m, from, at, arrival_base_}, ahead_s);
  current_msg_ = nullptr;
  current_from_ = nullptr;
  type_refused_ = type_refused_ || m.type_refused;
  if (reply_deferred_) return Reply::fail(ErrorKind::kDeferred, "load in flight");  // answered by poll_loads
  if (r.ok && play_resume_ != nullptr && play_resume_->late_ms > 0) {
    r = Reply::fail(ErrorKind::kLate, late_play_reason(), r.values);  // started, not on its frame
  } else if (r.ok && late_ms > 0 && !table_.acts_on_arrival(m.address)) {
    // It ran, at once; the sender hears it was late (the spec's "late bundles run at once and
    // are reported").
    char why[96];
    if (late_ms < 10'000) {
      std::snprintf(why, sizeof why, "late by %.1f ms (ran at once)", late_ms);
    } else {
      std::snprintf(why, sizeof why, "late by %.0f s (ran at once)", late_ms / 1000.0);
    }
    r = Reply::fail(ErrorKind::kLate, why, r.values);
  }
  if (r.ok) {
    ++stats_.done;
  } else {
    ++stats_.failed;
    if (!r.quiet) count_bad(r.kind, r.reason, m.address, from);
  }
  return r;
}

std::int64_t Router::frame_after(const Call& c, double seconds) const {
  const std::int64_t soonest =
      ctl_.now_frame() + cfg_.buffer_size + static_cast<std::int64_t>(0.002 * cfg_.sample_rate);
  const std::int64_t offset = static_cast<std::int64_t>(std::llround(seconds * cfg_.sample_rate));
  // A message resumed after its load counts from its arrival (as the old server did), never
  // from the past.
  if (c.at < 0 && c.arrival >= 0) return std::max(c.arrival + offset, soonest);
  const std::int64_t base = c.at >= 0 ? c.at : soonest;
  return base + offset;
}

bool Router::start_at_in_range(const Call& c, double start_at, std::string& error) const {
  if (!limits::seconds_in_range(start_at, 0, limits::kMaxAheadSeconds, "start_at", error)) return false;
  const std::int64_t soonest = ctl_.now_frame() + cfg_.buffer_size;
  const double bundle_ahead = c.at > soonest ? static_cast<double>(c.at - soonest) / cfg_.sample_rate : 0.0;
  if (bundle_ahead + start_at <= limits::kMaxAheadSeconds) return true;
  char why[200];
  std::snprintf(why, sizeof why,
                "start_at %.10g s after a bundle %.0f s ahead is %.0f s ahead: nothing is timed more than a day "
                "(%g s) ahead",
                start_at, bundle_ahead, bundle_ahead + start_at, limits::kMaxAheadSeconds);
  error = why;
  return false;
}

void Router::on_event(const engine::Event& e, const VoiceInfo& v) {
  notifier_.on_event(e, v);
  // A streamed player that ended with an error: its file stopped reading (the loader said why).
  // Only its id's player (not one a play or a load replaced), and only while the id still holds the
  // source it played: a voice that may be started again from its file.
  if (!voice_lost_ || e.type != engine::EventType::kVoiceEnded || e.reason != engine::EndReason::kError ||
      !v.streamed || !v.handle.valid())
    return;
  const auto it = players_.find(v.slot);
  if (it == players_.end() || it->second.id != v.handle.id || it->second.generation != v.handle.generation) return;
  voice_lost_(v);
}

VoiceHandle Router::player(int id) const {
  auto it = players_.find(id);
  if (it == players_.end() || !ctl_.voice_alive(it->second)) return VoiceHandle{};
  return it->second;
}

Reply Router::ignored(const OscMessage& m, const char* why) {
  ++stats_.ignored[m.address];
  spdlog::debug("OSC {}: accepted and ignored ({}), as the old crowdstream server did", m.address, why);
  return Reply::done();
}

float Router::clamped_rate(double rate) {
  return static_cast<float>(std::clamp(rate, limits::kMinRate, limits::kMaxRate));
}

float Router::effective_rate(double own) const { return clamped_rate(own * players_ratio()); }

float Router::player_rate(double own) const {
  return cfg_.tempo_moves_players && !cfg_.time_stretch ? effective_rate(own) : clamped_rate(own);
}

Reply Router::start_player(int id, const PlayOptions& opts, std::int64_t at) {
  std::unique_ptr<io::LoaderThread::Opened> opened;
  if (play_resume_ != nullptr) {
    at = play_resume_->at;  // decided when the message arrived (or moved to the soonest: late)
    if (Reply t = take_stream(id, opened); !t.ok) return t;
  } else if (Reply p = prepare_streams({{id, opts}}, at); !p.ok) {
    return p;  // deferred until the stream has opened (or busy)
  }
  std::string error;
  VoiceHandle old = player(id);
  VoiceHandle h;
  // Vinyl-style tempo: every player's rate is multiplied by bpm / base bpm.
  PlayOptions po = opts;
  po.paused = po.paused || (play_resume_ != nullptr && paused_behind(id));
  if (!cfg_.tempo_moves_players) {
    // --disable-time-stretch (pyrubberband/audiotsm): players ignore the tempo clock.
  } else if (cfg_.time_stretch) {
    po.tempo = effective_rate(opts.tempo);
  } else {
    po.rate = effective_rate(opts.rate);
  }
  const std::uint64_t busy_before = ctl_.busy_refusals();
  if (!ctl_.play(at, id, po, h, error, std::move(opened))) {
    const ErrorKind kind = ctl_.source(id) == nullptr            ? ErrorKind::kUnknownId
                           : ctl_.busy_refusals() != busy_before ? ErrorKind::kBusy
                                                                 : ErrorKind::kRange;
    return Reply::fail(kind, error, {OscArg::Int(id)});
  }
  replace_player(id, old, at, ctl_.voice_info(h).starts_in_s >= 0);
  players_[id] = h;
  player_rate_[id] = opts.rate;
  return Reply::done({OscArg::Int(id)});
}

// A sine with 10 ms fades at both ends, on the direct bus (deck levels don't mute it: it is for
// checking the speakers). Replaces a tone still sounding. An oscillator in the engine: nothing is
// allocated for it, however long it lasts (it used to be a rendered buffer: 230 MB for 600 s).
Reply Router::test_tone(double freq, double level, double seconds, std::int64_t at) {
  const double nyquist = cfg_.sample_rate / 2.0;
  if (!(freq >= limits::kMinToneHz && freq < nyquist)) {  // written so that NaN fails too
    return Reply::fail(ErrorKind::kRange,
                       "frequency must be 20 Hz up to " + std::to_string(static_cast<int>(nyquist)) + " Hz");
  }
  if (!(level > 0 && level <= 1)) return Reply::fail(ErrorKind::kRange, "level must be > 0 and ≤ 1 (0 dBFS)");
  if (std::string e;
      !limits::seconds_in_range(seconds, limits::kMinToneSeconds, limits::kMaxToneSeconds, "length (seconds)", e)) {
    return Reply::fail(ErrorKind::kRange, e);
  }
  std::string error;
  if (!ctl_.tone(at, freq, level, seconds, error)) return Reply::fail(ErrorKind::kBusy, error);
  // At most a few lines a second, as /dummy: a flood of tones must not become a flood of log
  // (outside attack pass 24: 2.5 bytes of log per byte sent).
  if (std::uint64_t skipped = 0; log_limit_.allow_info("test tone", skipped)) {
    spdlog::info("test tone: {:.0f} Hz, {:.1f} s, peak {:.1f} dBFS{}", freq, seconds, 20 * std::log10(level),
                 base::suppressed_note(skipped));
  }
  return Reply::done({OscArg::Float(freq)});
}

int Router::wait_ms(bool voices_need_passes, int idle_ms) const {
  const bool moving =
      (voices_need_passes && ctl_.voices_playing() > 0) || any_in_flight() || tempo_.busy() || link_ != nullptr;
  if (!moving) return idle_ms;
  const double period_ms = 1000.0 * cfg_.buffer_size / (cfg_.sample_rate > 0 ? cfg_.sample_rate : 48000);
  return static_cast<int>(std::clamp(period_ms, 10.0, 50.0));
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
  kv("version", OscArg::Str(cfg_.version));  // the build running (after an upgrade: until the restart)
  kv("voices", OscArg::Int(static_cast<std::int64_t>(ctl_.voices_playing())));
  kv("voices_waiting", OscArg::Int(static_cast<std::int64_t>(waiting_voices_.size())));  // for the device
  kv("sources", OscArg::Int(static_cast<std::int64_t>(ctl_.sources_loaded())));
  kv("memory_bytes", OscArg::Int64(static_cast<std::int64_t>(ctl_.memory_bytes())));
  kv("memory_limit_bytes", OscArg::Int64(ctl_.memory_limit_bytes()));  // --max-memory-mb (0: none)
  kv("loads_in_flight", OscArg::Int(static_cast<std::int64_t>(pending_.size())));
  kv("plays_opening", OscArg::Int(static_cast<std::int64_t>(pending_plays_.size())));   // their streams opening
  kv("loads_lost", OscArg::Int(static_cast<std::int64_t>(pool_ ? pool_->lost() : 0)));  // stuck past --load-timeout
  // the web monitor's listings stuck past --load-timeout
  kv("listings_lost", OscArg::Int(static_cast<std::int64_t>(listings_lost_ ? listings_lost_() : 0)));
  kv("voice_underruns", OscArg::Int64(static_cast<std::int64_t>(m.voice_underruns.load())));
  kv("device_underflows", OscArg::Int64(static_cast<std::int64_t>(m.device_underflows.load())));
  {  // how long ago the last of each was, in seconds of the system's monotonic clock (-1: none yet)
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    const double mono = static_cast<double>(ts.tv_sec) + ts.tv_nsec / 1e9;
    auto age = [&](std::uint64_t at_ns) { return at_ns == 0 ? -1.0f : static_cast<float>(mono - at_ns / 1e9); };
    kv("voice_underrun_age_s", OscArg::Float(age(m.last_voice_underrun_ns.load())));
    kv("device_underflow_age_s", OscArg::Float(age(m.last_device_underflow_ns.load())));
  }
  // Percentiles come from histogram bin edges (≈ 9 % wide): never report one above the true max.
  const double max_us = m.callback_max_ns.load() / 1e3;
  kv("callback_p50_us", OscArg::Float(std::min(max_us, engine::DurationHistogram::percentile_ns(hist, 0.5) / 1e3)));
  kv("callback_p99_us", OscArg::Float(std::min(max_us, engine::DurationHistogram::percentile_ns(hist, 0.99) / 1e3)));
  kv("callback_max_us", OscArg::Float(max_us));
  kv("budget_us", OscArg::Float(budget_us));
  kv("cpu_load", OscArg::Float(cpu_load_));
  kv("uptime_s", OscArg::Float(std::chrono::duration<double>(now - started_).count()));
  kv("frames", OscArg::Int64(static_cast<std::int64_t>(m.frames.load())));  // since the service started (carried)
  kv("stream_frames", OscArg::Int64(static_cast<std::int64_t>(m.frames.load())));  // this image's: the stream clock
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
  // 0: EQ messages are answered and ignored, eq_off_reason says why (--disable-filters, or
  // crowdstream mode's default); only /api/status said it (outside pass 26, user L2).
  kv("eq_enabled", OscArg::Int(cfg_.eq_enabled ? 1 : 0));
  if (!cfg_.eq_enabled) kv("eq_off_reason", OscArg::Str(cfg_.eq_off_reason));
  kv("loader_reads", OscArg::Int64(static_cast<std::int64_t>(ls.reads)));
  kv("read_errors", OscArg::Int64(static_cast<std::int64_t>(ls.read_errors)));
  kv("stuck_reads", OscArg::Int64(static_cast<std::int64_t>(ls.stuck_reads)));
  kv("reads_stuck_now", OscArg::Int(ls.stuck_threads));
  const io::FileCloser::Stats cs = io::FileCloser::process().stats();  // closes of files let go (file_closer.hpp)
  kv("closes_stuck_now", OscArg::Int(cs.stuck_now));
  kv("closes_waiting", OscArg::Int64(static_cast<std::int64_t>(cs.waiting)));
  if (const auto& fds = ctl_.load_options().fds) {  // descriptors: streamed loads keep the reserve (fd_budget.hpp)
    kv("fds_open", OscArg::Int(fds->in_use()));
    kv("fds_limit", OscArg::Int(fds->limit()));
    kv("fds_reserve", OscArg::Int(fds->reserve()));
    kv("fds_refused", OscArg::Int64(static_cast<std::int64_t>(fds->refused())));
  }
  kv("messages", OscArg::Int64(static_cast<std::int64_t>(stats_.messages)));
  // A late bundle's messages ran (at once): counted apart, late_messages; a busy refusal is
  // back-pressure, not bad input (a client that only went too fast): busy_messages.
  std::uint64_t bad = 0;
  for (const auto& [k, n] : stats_.bad)
    bad += k == to_string(ErrorKind::kLate) || k == to_string(ErrorKind::kBusy) ? 0 : n;
  kv("bad_messages", OscArg::Int64(static_cast<std::int64_t>(bad)));
  std::uint64_t ignored = 0;
  for (const auto& [k, n] : stats_.ignored) ignored += n;
  kv("ignored_messages", OscArg::Int64(static_cast<std::int64_t>(ignored)));
  kv("subscribers", OscArg::Int(static_cast<std::int64_t>(notifier_.size())));
  // of them, the web monitor's own (--http-port): not a client
  kv("subscribers_monitor", OscArg::Int(static_cast<std::int64_t>(notifier_.count_local(kWebMonitorPeer))));
  kv("replies_withheld", OscArg::Int64(static_cast<std::int64_t>(stats_.replies_withheld)));
  kv("cookies_sent", OscArg::Int64(static_cast<std::int64_t>(stats_.cookies_sent)));
  // Timed commands waiting for their time, and those refused because the schedule was full.
  kv("scheduled", OscArg::Int(static_cast<std::int64_t>(ctl_.scheduled())));
  kv("tone_hz", OscArg::Float(m.tone_hz.load(std::memory_order_relaxed)));  // the test tone, 0 = none
  kv("schedule_refused", OscArg::Int64(static_cast<std::int64_t>(
                             ctl_.schedule_refused() + m.schedule_overflows.load(std::memory_order_relaxed))));
  // The most timed commands one callback applied (bounded per period: limits.hpp).
  kv("schedule_due_max", OscArg::Int64(static_cast<std::int64_t>(m.schedule_due_max.load(std::memory_order_relaxed))));
  sync_status(f);
  if (status_extra_) status_extra_(f);
  add_carried_totals(f, 0);
  return f;
}

}  // namespace stemd::control
