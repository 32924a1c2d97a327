// The players and the work budgets [control]: a tempo change reaching every player (their rates,
// or their stretch with --stretch-method time_stretch) within the resampling and stretching
// budgets (controller_work.cpp, work_budget.hpp). A client's /set_tempo is all or nothing
// (tempo_change_problem); a tempo nobody can refuse — a Link peer's, the movement glide — holds
// the players at the nearest ratio the budgets take (router.hpp: held_ratio_).
#include "limits.hpp"
#include "router.hpp"
#include "work_budget.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>

namespace stemd::control {

namespace {
// A held tempo is tried again this often (voices that ended gave units back).
constexpr auto kHoldRetry = std::chrono::seconds(1);
// Glide of the players moving to a ratio the budget took after a hold (output seconds).
constexpr double kHoldGlide = 0.05;
}  // namespace

// (outgoing_ is not cleared by /mixer_cleanup: every voice stops, and a stale handle is never alive again.)
void Router::replace_player(int id, VoiceHandle old, std::int64_t at, bool waits) {
  if (!old.valid()) {
    outgoing_.erase(id);
    return;
  }
  std::string error;
  if (ctl_.drop_waiting(old, at)) {
    // Old never starts, nor takes over: the player before it is heard until `at` instead.
    const auto it = outgoing_.find(id);
    const VoiceHandle before = it == outgoing_.end() ? VoiceHandle{} : it->second;
    stop_outgoing(id, at, 0.0, engine::Curve::kLinear, true);
    if (waits && before.valid() && ctl_.voice_alive(before)) outgoing_[id] = before;
    return;
  }
  ctl_.stop(at, old, 0.0, error, engine::Curve::kLinear, true);  // heard until `at`: fades out then
  outgoing_.erase(id);             // the one before it, if any, ends at old's start (its own stop)
  if (waits) outgoing_[id] = old;  // heard until the new play's start
}

void Router::stop_outgoing(int id, std::int64_t at, double fade, engine::Curve curve, bool replaced) {
  const auto it = outgoing_.find(id);
  if (it == outgoing_.end()) return;
  const VoiceHandle h = it->second;
  outgoing_.erase(it);
  if (std::string error; ctl_.voice_alive(h)) ctl_.stop(at, h, fade, error, curve, replaced);
}

// Time-stretched players change together (a stretch bus whose members all follow stays one stretch:
// Controller::work_for_tempos); resampled ones each on their own.
Controller::WorkNeed Router::players_need(double ratio) const {
  if (cfg_.time_stretch) return ctl_.work_for_tempos(alive_players(), clamped_rate(ratio));
  Controller::WorkNeed sum;
  for (const auto& [id, h] : players_) {
    if (!ctl_.voice_alive(h)) continue;
    auto it = player_rate_.find(id);
    const Controller::WorkNeed w =
        ctl_.work_for_rate(h, clamped_rate((it == player_rate_.end() ? 1.0 : it->second) * ratio));
    sum.resample += w.resample;
    sum.stretch += w.stretch;
  }
  return sum;
}

std::vector<VoiceHandle> Router::alive_players() const {
  std::vector<VoiceHandle> v;
  for (const auto& [id, h] : players_) {
    if (ctl_.voice_alive(h)) v.push_back(h);
  }
  return v;
}

bool Router::players_fit(double ratio) {
  const Controller::WorkNeed need = players_need(ratio);
  return need.resample <= ctl_.resample_units_free() && need.stretch <= ctl_.stretch_units_free() &&
         need.slots <= ctl_.stretch_slots_free();
}

// Why not every player could follow a change to `bpm` at `at` ("" when all can): the schedule must
// take a command per player, and the players' resamplers (or time-stretchers) at the new ratio must
// fit the budget: what each adds (a voice leaving rate 1 takes a resampler, one going faster costs
// more: work_budget.hpp) against what is free. Checked before anything changes: a /set_tempo that
// answered /fail had moved the players that found one (outside pass 25, N5), and one that was
// /done had made 64 resamplers read 4× their input (outside pass 26, H1).
std::string Router::tempo_change_problem(double bpm, std::int64_t at) const {
  std::size_t alive = 0;
  for (const auto& [id, h] : players_) alive += ctl_.voice_alive(h) ? 1 : 0;
  if (!ctl_.can_send(at, alive)) return ctl_.busy_reason(at, alive);
  const Controller::WorkNeed need = players_need(bpm / tempo_.base_bpm());
  const std::string what = fmt::format("{:.1f} bpm ({} players)", bpm, alive);
  const std::string stays = fmt::format(": the tempo stays {:.1f} bpm", tempo_.bpm());
  if (need.slots > ctl_.stretch_slots_free()) return ctl_.slots_reason(need.slots, what) + stays;
  if (need.stretch > 0 && need.stretch > ctl_.stretch_units_free()) {
    return ctl_.budget_reason(true, need.stretch, what) + stays;
  }
  if (need.resample > 0 && need.resample > ctl_.resample_units_free()) {
    return ctl_.budget_reason(false, need.resample, what) + stays;
  }
  return {};
}

// The ratio nearest `target` on the way from `from` (where the players are: nothing more to pay)
// that the budgets take: the players go as far as the work allows.
double Router::reachable_ratio(double from, double target) {
  if (players_fit(target)) return target;
  double lo = from, hi = target;  // lo fits, hi does not
  for (int i = 0; i < 24 && std::fabs(hi - lo) > 1e-4 * std::fabs(lo); ++i) {
    const double mid = 0.5 * (lo + hi);
    (players_fit(mid) ? lo : hi) = mid;
  }
  return lo;
}

int Router::move_players(double from, double glide_s, std::int64_t at, bool hold, std::string* why) {
  const double target = tempo_.ratio();
  const double before = held_ratio_;
  held_ratio_ = 0;
  if (hold) {
    const double r = reachable_ratio(from, target);
    if (r != target) held_ratio_ = r;
  }
  if ((held_ratio_ > 0) != (before > 0) || std::fabs(held_ratio_ - before) > 0.01 * before) {
    // One line for the change: what asked (hold_context_: a Link session's tempo and peers), where
    // the players are held and why — the rates' range too when the tempo is beyond it.
    const std::string what = hold_context_.empty() ? fmt::format("tempo {:.2f} bpm", tempo_.bpm()) : hold_context_;
    std::uint64_t skipped = 0;
    if (held_ratio_ > 0 && log_limit_.allow("players held by the work budget", skipped)) {
      const bool beyond = target < limits::kMinRate || target > limits::kMaxRate;
      spdlog::warn(
          "{}: players held at {:.2f} bpm: {}the {} budget (--max-{}-voices {} units) takes no more; they drift "
          "from the beat grid until the tempo comes back within {} (or voices end){}",
          what, held_bpm(),
          beyond
              ? fmt::format("beyond 0.25–4 × --bpm {:.1f} they could go to {:.1f} bpm at most, and ", tempo_.base_bpm(),
                            tempo_.base_bpm() * std::clamp(target, limits::kMinRate, limits::kMaxRate))
              : std::string(),
          cfg_.time_stretch ? "stretching" : "resampling", cfg_.time_stretch ? "stretched" : "resampled",
          cfg_.time_stretch ? ctl_.engine().max_stretched_voices() : ctl_.engine().max_resampled_voices(),
          beyond ? "both" : "it", base::suppressed_note(skipped));
      hold_logged_ = true;
    } else if (held_ratio_ <= 0 && before > 0 && log_limit_.allow("players held by the work budget", skipped)) {
      spdlog::info("{}: the players follow it again (the work budget takes it){}", what,
                   base::suppressed_note(skipped));
      hold_logged_ = true;
    }
  }
  hold_retry_ = std::chrono::steady_clock::now() + kHoldRetry;
  int failed = 0;
  std::string error;
  if (cfg_.time_stretch) {  // tempo without pitch: every player's stretch follows, together
    const std::vector<VoiceHandle> all = alive_players();
    if (!all.empty() && !ctl_.set_stretch_all(at, all, static_cast<float>(effective_rate(1.0)), error)) {
      failed = static_cast<int>(all.size());
    }
    if (failed > 0 && why != nullptr) *why = error;
    return failed;
  }
  for (const auto& [id, h] : players_) {
    if (!ctl_.voice_alive(h)) continue;
    auto it = player_rate_.find(id);
    const double own = it == player_rate_.end() ? 1.0 : it->second;
    if (!ctl_.set_rate(at, h, player_rate(own), glide_s, error)) ++failed;
  }
  if (failed > 0 && why != nullptr) *why = error;
  return failed;
}

bool Router::restore_tempo(double bpm, std::string& why) {
  const double ratio = bpm / cfg_.bpm;
  if (!(bpm > 0) || bpm > limits::kMaxBpm || ratio < limits::kMinTempoRatio || ratio > limits::kMaxTempoRatio) {
    why = "bpm must be > 0, ≤ 999 and within 0.25–4 × the base tempo (--bpm)";
    return false;
  }
  if (std::string e = link_tempo_problem(); !e.empty()) {
    why = e;
    return false;
  }
  tempo_.stop_movement();
  apply_tempo(bpm, 0.0, -1);  // no `why`: held within the budgets, not refused
  return true;
}

// Every second while held: the players go as near the tempo as the budgets take now.
void Router::retry_held_players() {
  if (held_ratio_ <= 0 || std::chrono::steady_clock::now() < hold_retry_) return;
  hold_retry_ = std::chrono::steady_clock::now() + kHoldRetry;
  if (!cfg_.tempo_moves_players) {
    held_ratio_ = 0;
    return;
  }
  const double r = reachable_ratio(held_ratio_, tempo_.ratio());
  if (std::fabs(r - held_ratio_) > 1e-3 * held_ratio_ || r == tempo_.ratio()) {
    move_players(held_ratio_, kHoldGlide, -1, true, nullptr);
  }
}

}  // namespace stemd::control
