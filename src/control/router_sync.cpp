// Sync across boxes [control]: the Ableton Link session (--link, link_session.hpp) driving the
// tempo clock and the quantised starts, the stream clock's line (its DLL error) in the status, and
// the server pass's tick (the tempo glide, the clock printout), and a tempo change reaching the players.
#include "link_session.hpp"
#include "router.hpp"

#include "base/log_guard.hpp"
#include "limits.hpp"

#include <spdlog/spdlog.h>

#include <cmath>

namespace stemd::control {

namespace {
// A tempo change from the session (a peer's) reaches the players over this glide (output
// seconds), as a local /set_tempo does (crowdstream's kTempoGlide is the same order).
constexpr double kLinkGlide = 0.05;
}  // namespace

Router::~Router() { stop_link(); }

void Router::start_link() {
  link_ = std::make_unique<LinkSession>(cfg_.bpm, cfg_.output_latency_s);
  link_->set_quantum(tempo_.quantum_beats() > 0 ? tempo_.quantum_beats() : tempo_.meter());
  link_bpm_applied_ = cfg_.bpm;
  ctl_.engine().set_period_listener(link_.get());
  if (cfg_.output_latency_s > 0) {
    spdlog::info("link: joined the Ableton Link session at {:.1f} bpm (output latency {:.1f} ms compensated)", cfg_.bpm,
                 cfg_.output_latency_s * 1000.0);
  } else {  // no device yet (one waited for at start): its latency is logged once it plays
    spdlog::info(
        "link: joined the Ableton Link session at {:.1f} bpm (output latency not known yet: compensated once the "
        "device plays)",
        cfg_.bpm);
  }
  const auto now = std::chrono::steady_clock::now();
  link_peers_told_.emplace(0.0, kPeerLimits, now);
  link_tempo_told_.emplace(cfg_.bpm, kTempoLimits, now);
  link_peers_now_.store(0, std::memory_order_relaxed);
  // Can another box hear this one? (New-user pass 26, M3: with no interface up it said "joined".)
  const std::vector<NetInterface> ifs = scan_interfaces();
  link_reach_ = link_reach(ifs);
  if (link_reach_ != LinkReach::kNetwork) spdlog::warn("{}", link_reach_text(link_reach_, ifs, true));
  link_reach_next_ = now + std::chrono::seconds(5);
}

// Called with the stream stopped (the Instance's owner stops the backend before the router
// goes), so no callback is inside on_period when the session is destroyed.
void Router::stop_link() {
  if (!link_) return;
  ctl_.engine().set_period_listener(nullptr);
  link_.reset();
  link_peers_now_.store(-1, std::memory_order_relaxed);
}

void Router::sync_tick() {
  if (!link_) return;
  link_probe();
  link_->set_quantum(tempo_.quantum_beats() > 0 ? tempo_.quantum_beats() : tempo_.meter());
  const auto now = std::chrono::steady_clock::now();
  const std::size_t peers = link_->peers();  // Link's count, under its lock: here, never on the audio thread
  link_peers_now_.store(static_cast<int>(peers), std::memory_order_relaxed);
  link_peers_told_->feed(static_cast<double>(peers), now);
  const double bpm = link_->tempo();
  if (std::fabs(bpm - link_bpm_applied_) > 1e-4) follow_session_tempo(bpm, peers);
  sync_grid();
  link_report(now);
}

// The peer count's and the session tempo's lines, once each has settled and within their rate
// limits (link_report.hpp); and, while no interface could carry Link's multicast, whether one can now.
void Router::link_report(std::chrono::steady_clock::time_point now) {
  ChangeBurst::Report r;
  if (link_peers_told_->take(now, r)) spdlog::info("{}", peers_line(r, tempo_.bpm()));
  if (link_tempo_told_->take(now, r)) {
    TempoLine t;
    t.change = r;
    t.peers = link_->peers();
    t.base_bpm = cfg_.bpm;
    t.rate = std::clamp(players_ratio(), limits::kMinRate, limits::kMaxRate);
    t.moves_players = cfg_.tempo_moves_players;
    t.stretch = cfg_.time_stretch;
    t.held_bpm = held_bpm();
    spdlog::info("{}", tempo_line(t));
  }
  if (link_reach_ == LinkReach::kNetwork || now < link_reach_next_) return;
  link_reach_next_ = now + std::chrono::seconds(5);
  const std::vector<NetInterface> ifs = scan_interfaces();
  const LinkReach reach = link_reach(ifs);
  if (reach == link_reach_) return;
  link_reach_ = reach;
  if (reach == LinkReach::kNetwork) {
    spdlog::info("{}", link_reach_text(reach, ifs, false));
  } else {
    spdlog::warn("{}", link_reach_text(reach, ifs, false));
  }
}

// The Link session's tempo reaching the clock and the players, as a tempo nobody can refuse (held
// within the rates' range and the work budgets: router_work.cpp).
void Router::follow_session_tempo(double bpm, std::size_t peers) {
  link_bpm_applied_ = bpm;
  tempo_.stop_movement();  // the session's tempo wins over a movement glide in progress
  // A hold by the work budgets that starts, moves or ends is said by move_players, with the range
  // when the tempo is beyond it: one line for the change (outside pass 26 follow-up).
  hold_context_ = fmt::format("link: session tempo {:.2f} bpm ({})", bpm, peers_text(peers));
  hold_logged_ = false;
  apply_tempo(bpm, kLinkGlide, -1);
  hold_context_.clear();
  if (hold_logged_) return;
  // Any peer on the LAN may change the session's tempo as often as it likes (Link holds it to
  // 20–999 bpm): what rate the players take (held or not) is told once per change burst
  // (link_report); a tempo beyond what they follow is a warning at once, at most a few lines a second.
  const double ratio = bpm / cfg_.bpm;
  if (held_ratio_ > 0 || (ratio >= limits::kMinRate && ratio <= limits::kMaxRate)) return;
  std::uint64_t skipped = 0;
  if (!log_limit_.allow("link: session tempo changes", skipped)) return;
  spdlog::warn("link: session tempo {:.2f} bpm ({}): beyond 0.25–4 × --bpm {:.1f}, players held at {:.1f} bpm{}", bpm,
               peers_text(peers), cfg_.bpm, cfg_.bpm * std::clamp(ratio, limits::kMinRate, limits::kMaxRate),
               base::suppressed_note(skipped));
}

// The session's grid is followed only while it runs true (link_grid_check.hpp): otherwise the
// tempo clock carries on from the last grid it took, and quantised starts use it.
void Router::sync_grid() {
  LinkGrid g;
  if (!link_ || !link_->grid(g)) return;
  const bool follow = link_grid_.feed(g);
  if (link_grid_.take_change()) {
    std::uint64_t skipped = 0;
    if (!log_limit_.allow("link: beat grid", skipped)) {
    } else if (link_grid_.rejected()) {
      spdlog::warn(
          "link: not following the Link session's beat grid ({}, {:.2f} bpm): {}; quantised starts use this "
          "box's own clock until the session's grid runs true for {:.0f} s (a forged or broken peer?){}",
          peers_text(link_->peers()), g.bpm, link_grid_.reason(), LinkGridCheck::kRecoverS,
          base::suppressed_note(skipped));
    } else {
      spdlog::info("link: following the Link session's beat grid again ({}, {:.2f} bpm){}", peers_text(link_->peers()),
                   g.bpm, base::suppressed_note(skipped));
    }
  }
  if (follow) tempo_.follow_grid(g.frame, g.beat, g.bpm, g.frames_per_second);
}

// Every 50 ms: is the session's timeline absurd (LinkSession::absurd_session)? Then leave it
// and join afresh, carrying this box's tempo and beat on (every stemd of the session does so
// within ~50 ms of the others, so their fresh sessions find each other rather than the old one);
// at most once per 10 s, doubling to
// 5 min while the absurd timeline keeps coming back (a peer that is not stemd may hold it).
void Router::link_probe() {
  const auto now = std::chrono::steady_clock::now();
  if (now < link_next_probe_) return;
  link_next_probe_ = now + std::chrono::milliseconds(50);
  if (link_join_at_ && now >= *link_join_at_) {  // the boxes of the old session have left it
    link_->join();
    link_join_at_.reset();
  }
  link_absurd_ = link_->absurd_session();
  if (link_absurd_.empty() || now < link_rejoin_after_) return;
  spdlog::warn(
      "link: the Link session's timeline is absurd ({}, a forged or broken peer): {}; leaving the session and "
      "joining afresh at {:.2f} bpm (the next time in {:.0f} s at the earliest)",
      peers_text(link_->peers()), link_absurd_, tempo_.bpm(), link_backoff_s_);
  const double beat = tempo_.beats_at(ctl_.now_frame());
  if (!link_->rejoin(tempo_.bpm(), beat)) return;
  link_join_at_ = now + std::chrono::milliseconds(500);
  link_bpm_applied_ = tempo_.bpm();
  link_rejoin_after_ = now + std::chrono::milliseconds(static_cast<std::int64_t>(link_backoff_s_ * 1000));
  link_backoff_s_ = std::min(link_backoff_s_ * 2, 300.0);
}

// /set_tempo with --link: a session whose timeline is absurd does not keep a tempo set here (Link's
// beat origin overflows and the peers' timeline wins back: outside pass 26, M2). Checked now.
std::string Router::link_tempo_problem() {
  if (!link_) return {};
  link_absurd_ = link_->absurd_session();
  if (link_absurd_.empty()) return {};
  link_next_probe_ = {};  // the next tick leaves the session (when its back-off allows)
  if (std::uint64_t skipped = 0; log_limit_.allow("link: tempo refused", skipped)) {
    spdlog::warn("link: /set_tempo refused: the Link session's timeline is absurd ({}): {}{}",
                 peers_text(link_->peers()), link_absurd_, base::suppressed_note(skipped));
  }
  return fmt::format(
      "the Link session would not take the tempo: its timeline is absurd (a forged or broken peer: {}); this box "
      "leaves the session and joins afresh, try again then; the tempo stays {:.1f} bpm",
      link_absurd_, tempo_.bpm());
}

void Router::carry_beat(double beats, std::chrono::steady_clock::time_point at) {
  if (link_) return;
  away_.reset();
  const double since = std::chrono::duration<double>(std::chrono::steady_clock::now() - at).count();
  tempo_.carry(ctl_.now_frame(), beats + std::max(0.0, since) * tempo_.bpm() / 60.0);
}

void Router::beat_away() {
  if (link_ || away_) return;
  std::int64_t frame = 0;
  std::uint64_t ns = 0;
  if (ctl_.engine().metrics().clock.read(frame, ns)) {  // the last callback's frame and time
    beat_away(tempo_.beats_at(frame), std::chrono::steady_clock::time_point(std::chrono::nanoseconds(ns)));
  } else {
    beat_away(tempo_.beats_at(ctl_.now_frame()), std::chrono::steady_clock::now());
  }
}

void Router::beat_away(double beats, std::chrono::steady_clock::time_point at) {
  if (!link_) away_ = BeatAway{beats, at};
}

void Router::beat_back() {
  if (away_) carry_beat(away_->beats, away_->at);
}

double Router::beat_now() const {
  if (!away_) return tempo_.beats_at(ctl_.now_frame() - output_latency_frames());  // heard now
  const double since = std::chrono::duration<double>(std::chrono::steady_clock::now() - away_->at).count();
  return away_->beats + std::max(0.0, since) * tempo_.bpm() / 60.0;
}

bool Router::timetag_ahead(const OscMessage& m) {
  if (m.timetag == kOscImmediately || m.timetag == 0 || !ctl_.clock_running()) return false;
  double late_ms = 0, ahead_s = 0;
  return bundle_frame(m, late_ms, ahead_s) >= 0 && ahead_s <= limits::kMaxAheadSeconds;
}

std::int64_t Router::quantized_start(std::int64_t frame) {
  if (!quantising()) return frame;
  sync_grid();
  return tempo_.quantized(frame);
}

void Router::set_output_latency(double seconds) {
  cfg_.output_latency_s = seconds;
  if (link_) link_->set_output_latency(seconds);
}

std::int64_t Router::output_latency_frames() const {
  return static_cast<std::int64_t>(std::llround(cfg_.output_latency_s * cfg_.sample_rate));
}

void Router::sync_status(std::vector<OscArg>& f) {
  auto kv = [&](const char* k, OscArg v) {
    f.push_back(OscArg::Str(k));
    f.push_back(std::move(v));
  };
  engine::Metrics& m = ctl_.engine().metrics();
  // The stream clock's DLL: the last callback's start against the line (µs), the largest since
  // the last one to two seconds, how often it restarted, and the device's rate against
  // CLOCK_MONOTONIC.
  kv("clock_error_us", OscArg::Float(static_cast<double>(m.clock_error_ns.load()) / 1e3));
  kv("clock_error_max_us", OscArg::Float(static_cast<double>(m.clock_error_max.recent_ns()) / 1e3));
  kv("clock_resets", OscArg::Int64(static_cast<std::int64_t>(m.clock_resets.load())));
  kv("clock_locked_s", OscArg::Float(static_cast<double>(m.clock_locked_ms.load()) / 1e3));
  std::int64_t frame = 0;
  std::uint64_t ns = 0;
  double ns_per_frame = 0;
  if (m.clock.read(frame, ns, ns_per_frame) && ns_per_frame > 0) {
    kv("clock_rate_ppm", OscArg::Float((1e9 / ns_per_frame / cfg_.sample_rate - 1.0) * 1e6));
  }
  sync_grid();
  const double quantum = tempo_.quantum_beats() > 0 ? tempo_.quantum_beats() : tempo_.meter();
  const double beat = beat_now();
  kv("tempo_bpm", OscArg::Float(tempo_.bpm()));
  kv("tempo_held_bpm", OscArg::Float(held_bpm()));  // 0, or the players held within the work budgets
  kv("beat", OscArg::Float(beat));
  kv("beat_phase", OscArg::Float(beat - quantum * std::floor(beat / quantum)));
  kv("quantum", OscArg::Float(quantum));
  kv("link", OscArg::Int(link_ ? 1 : 0));
  if (link_) {
    kv("link_peers", OscArg::Int(static_cast<std::int64_t>(link_->peers())));
    kv("link_grid_rejected", OscArg::Int(link_grid_.rejected() ? 1 : 0));  // quantised starts on this box's clock
    kv("link_grid_rejections", OscArg::Int64(static_cast<std::int64_t>(link_grid_.rejections())));
    kv("link_rejoins", OscArg::Int64(static_cast<std::int64_t>(link_->rejoins())));
  }
}

// Called every server pass: the movement-driven tempo glide and the clock printout.
void Router::tick() {
  if (tick_hook_) tick_hook_();
  sync_tick();
  const auto now = std::chrono::steady_clock::now();
  notifier_.expire(now);
  double bpm = 0, glide_s = 0;
  if (tempo_.advance(now, bpm, glide_s)) apply_tempo(bpm, glide_s, -1);
  retry_held_players();
  std::int64_t beat = 0;
  if (!tempo_.beat_to_print(ctl_.now_frame(), beat)) return;
  const int meter = tempo_.meter();
  spdlog::info("clock: bar {} beat {} ({:.1f} bpm, {}/4)", beat / meter + 1, beat % meter + 1, tempo_.bpm(), meter);
}

// A tempo change: the beat count carries on (the old server restarted it: a bug), and every
// player follows the new rate, gliding. Returns how many players could not follow (no
// resampler left).
int Router::apply_tempo(double bpm, double glide_s, std::int64_t at, std::string* why) {
  if (why != nullptr && cfg_.tempo_moves_players) {  // all players follow, or nothing changes
    if (std::string e = tempo_change_problem(bpm, at); !e.empty()) {
      *why = e;
      return -1;
    }
  }
  const double from = players_ratio();
  tempo_.change(bpm, ctl_.now_frame());
  if (link_) {  // this box's tempo is the session's: every peer follows
    link_->set_tempo(bpm);
    link_bpm_applied_ = bpm;
    link_tempo_told_->feed(bpm, std::chrono::steady_clock::now());  // a peer's or this box's: the players' rate is told
  }
  if (!cfg_.tempo_moves_players) return 0;  // --disable-time-stretch: only the clock moves
  // A client's change was checked above; one nobody can refuse (Link, the movement) is held
  // within the work budgets (router_work.cpp).
  return move_players(from, glide_s, at, why == nullptr, why);
}

}  // namespace stemd::control
