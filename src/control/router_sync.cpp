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
  spdlog::info("link: joined the Ableton Link session at {:.1f} bpm (output latency {:.1f} ms compensated)", cfg_.bpm,
               cfg_.output_latency_s * 1000.0);
}

// Called with the stream stopped (the Instance's owner stops the backend before the router
// goes), so no callback is inside on_period when the session is destroyed.
void Router::stop_link() {
  if (!link_) return;
  ctl_.engine().set_period_listener(nullptr);
  link_.reset();
}

void Router::sync_tick() {
  if (!link_) return;
  link_->set_quantum(tempo_.quantum_beats() > 0 ? tempo_.quantum_beats() : tempo_.meter());
  const double bpm = link_->tempo();
  if (std::fabs(bpm - link_bpm_applied_) > 1e-4) {
    // Any peer on the LAN may change the session's tempo as often as it likes (Link holds it to
    // 20–999 bpm): a few lines a second, and say when the players cannot follow it.
    std::uint64_t skipped = 0;
    if (log_limit_.allow("link: session tempo changes", skipped)) {
      const double ratio = bpm / cfg_.bpm;
      if (ratio < limits::kMinRate || ratio > limits::kMaxRate) {
        spdlog::warn(
            "link: session tempo {:.2f} bpm ({} peers): beyond 0.25–4 × --bpm {:.1f}, players held at {:.1f} "
            "bpm{}",
            bpm, link_->peers(), cfg_.bpm, cfg_.bpm * std::clamp(ratio, limits::kMinRate, limits::kMaxRate),
            base::suppressed_note(skipped));
      } else {
        spdlog::info("link: session tempo {:.2f} bpm ({} peers){}", bpm, link_->peers(),
                     base::suppressed_note(skipped));
      }
    }
    link_bpm_applied_ = bpm;
    tempo_.stop_movement();  // the session's tempo wins over a movement glide in progress
    apply_tempo(bpm, kLinkGlide, -1);
  }
  sync_grid();
}

void Router::sync_grid() {
  LinkGrid g;
  if (link_ && link_->grid(g)) tempo_.follow_grid(g.frame, g.beat, g.bpm, g.frames_per_second);
}

std::int64_t Router::quantized_start(std::int64_t frame) {
  if (tempo_.quantum_beats() <= 0) return frame;
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
  const double beat = tempo_.beats_at(ctl_.now_frame() - output_latency_frames());  // heard now
  kv("tempo_bpm", OscArg::Float(tempo_.bpm()));
  kv("tempo_held_bpm", OscArg::Float(held_bpm()));  // 0, or the players held within the work budgets
  kv("beat", OscArg::Float(beat));
  kv("beat_phase", OscArg::Float(beat - quantum * std::floor(beat / quantum)));
  kv("quantum", OscArg::Float(quantum));
  kv("link", OscArg::Int(link_ ? 1 : 0));
  if (link_) kv("link_peers", OscArg::Int(static_cast<std::int64_t>(link_->peers())));
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
  }
  if (!cfg_.tempo_moves_players) return 0;  // --disable-time-stretch: only the clock moves
  // A client's change was checked above; one nobody can refuse (Link, the movement) is held
  // within the work budgets (router_work.cpp).
  return move_players(from, glide_s, at, why == nullptr, why);
}

}  // namespace stemd::control
