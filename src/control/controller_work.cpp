// The controller's work budgets (see controller.hpp, work_budget.hpp): what each voice's resampler
// and time-stretcher cost the audio thread, charged before a command is sent and given back once
// what it changed is heard; set_rate and set_stretch, the two voice commands that move a charge.
// [control] thread only.
#include "controller.hpp"
#include "work_budget.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>

namespace stemd::control {

using engine::CommandType;

std::uint64_t Controller::resample_budget() const noexcept {
  return static_cast<std::uint64_t>(engine_.max_resampled_voices()) * work::kUnit;
}

std::uint64_t Controller::stretch_budget() const noexcept {
  return static_cast<std::uint64_t>(engine_.max_stretched_voices()) * work::kUnit;
}

std::uint64_t Controller::resample_units_free() {
  settle_work();
  const std::uint64_t used = resample_units_used();  // the voices' own and the stretch buses'
  return resample_budget() > used ? resample_budget() - used : 0;
}

std::uint64_t Controller::stretch_units_free() {
  settle_work();
  const std::uint64_t used = stretch_units_used();
  return stretch_budget() > used ? stretch_budget() - used : 0;
}

// A voice's resampler is charged for the highest rate in play (the step grows with it) and, when
// the voice has a stretcher of its own, the highest tempo (the stretcher reads tempo × the frames).
Controller::Charges Controller::charges_for_rate(const VoiceSlot& vs, float rate) const {
  const bool needs = vs.rs_units > 0 || vs.base_ratio * rate != 1.0;
  const double peak = std::max(vs.peak_rate, rate);
  const std::uint32_t rs = needs ? work::resample_units(vs.base_ratio * peak, vs.peak_tempo) : 0;
  return {std::max(rs, vs.rs_units), vs.st_units};
}

Controller::Charges Controller::charges_for_tempo(const VoiceSlot& vs, float tempo) const {
  const bool needs = vs.st_units > 0 || tempo != 1.0f;
  const double peak = std::max(vs.peak_tempo, tempo);
  const std::uint32_t st = needs ? work::stretch_units(peak) : 0;
  const std::uint32_t rs = vs.rs_units > 0 ? work::resample_units(vs.base_ratio * vs.peak_rate, peak) : 0;
  return {std::max(rs, vs.rs_units), std::max(st, vs.st_units)};
}

Controller::WorkNeed Controller::work_for_rate(VoiceHandle v, float rate) const {
  if (!voice_alive(v)) return {};
  const VoiceSlot& vs = voices_[v.id];
  const Charges c = charges_for_rate(vs, rate);
  if (vs.bus >= 0 && rate != 1.0f) return {c.rs, c.st};  // it leaves its stretch bus: its own converters
  return {c.rs - vs.rs_units, c.st - vs.st_units};
}

std::string Controller::budget_reason(bool stretch, std::uint64_t need, const std::string& what) {
  const std::uint64_t free = stretch ? stretch_units_free() : resample_units_free();
  const std::uint64_t budget = stretch ? stretch_budget() : resample_budget();
  return fmt::format(
      "busy: {} budget: {} needs {} unit{}, {} of {} free (--max-{}-voices; a {} costs one unit, or k at a ratio k "
      "above 1.25{})",
      stretch ? "stretching" : "resampling", what, work::describe(need), need == work::kUnit ? "" : "s",
      work::describe(free), work::describe(budget), stretch ? "stretched" : "resampled",
      stretch ? "time-stretcher" : "resampler",
      stretch ? ": its tempo" : ": rate × the file's rate ÷ the output's, × the tempo when it is also stretched");
}

std::string Controller::slots_reason(std::uint32_t need, const std::string& what) const {
  return fmt::format(
      "busy: stretching budget: {} needs {} more stretched voice{}, {} of {} free (--max-stretched-voices: every "
      "stretched voice holds a stretcher, on a stretch bus or not)",
      what, need, need == 1 ? "" : "s", stretch_slots_free(), engine_.max_stretched_voices());
}

void Controller::charge(VoiceSlot& vs, std::uint32_t rs, std::uint32_t st, std::int64_t at, std::uint32_t glide) {
  book(vs, false);
  vs.rs_units = rs;
  vs.st_units = st;
  book(vs, true);
  // The peaks stay until every change sent is heard and its glide over: a command for now is heard
  // within a callback (≤ max_block_frames), a glide takes at least the resampler's shortest.
  constexpr std::uint32_t kShortestGlide = 256;  // engine/resampler.hpp: Resampler::kMinGlideFrames
  const std::int64_t now = now_frame();
  const std::int64_t heard = std::max(at, now) + engine_.config().max_block_frames + std::max(glide, kShortestGlide);
  if (vs.settle_at == 0) settling_.push_back(static_cast<engine::VoiceId>(&vs - voices_.data()));
  vs.settle_at = std::max({vs.settle_at, heard, std::int64_t{1}});
  vs.changed_at = std::max(vs.changed_at, heard);
}

void Controller::uncharge(VoiceSlot& vs) {
  bus_drop(vs, now_frame());
  book(vs, false);
  vs.rs_units = 0;
  vs.st_units = 0;
}

void Controller::settle_work() {
  const std::int64_t now = now_frame();
  settle_buses(now);
  if (settling_.empty()) return;
  for (std::size_t i = 0; i < settling_.size();) {
    VoiceSlot& vs = voices_[settling_[i]];
    if (vs.used && vs.settle_at > now) {
      ++i;
      continue;
    }
    if (vs.used && vs.settle_at > 0) {  // 0: it ended (and its id may play again), or a duplicate
      // every change is heard: the charge is what the rate and tempo heard now cost
      vs.peak_rate = vs.rate.heard_at(now);
      vs.peak_tempo = vs.tempo.heard_at(now);
      const std::uint32_t rs = vs.rs_units > 0 ? work::resample_units(vs.base_ratio * vs.peak_rate, vs.peak_tempo) : 0;
      const std::uint32_t st = vs.st_units > 0 ? work::stretch_units(vs.peak_tempo) : 0;
      book(vs, false);
      vs.rs_units = std::min(rs, vs.rs_units);
      vs.st_units = std::min(st, vs.st_units);
      book(vs, true);
      vs.settle_at = 0;
    }
    settling_[i] = settling_.back();
    settling_.pop_back();
  }
}

bool Controller::set_rate(std::int64_t at, VoiceHandle v, float rate, double ramp_seconds, std::string& error) {
  if (!std::isfinite(rate) || rate < 0.25f || rate > 4.0f) {
    error = "rate must be 0.25..4";
    return false;
  }
  VoiceSlot* vs = lookup(v, error);
  if (!vs) return false;
  settle_work();
  const Charges c = charges_for_rate(*vs, rate);     // the rule /set_tempo's check counts with
  const bool leaves = vs->bus >= 0 && rate != 1.0f;  // a stretch bus's member: its own converters from now on
  const std::uint64_t rs_need = leaves ? c.rs : c.rs - vs->rs_units, st_need = leaves ? c.st : 0;
  const std::string what = fmt::format("rate {:g}{}", rate, leaves ? " (off its stretch bus)" : "");
  if (st_need > 0 && st_need > stretch_units_free()) {
    refuse_busy(error, budget_reason(true, st_need, what));
    return false;
  }
  if (rs_need > 0 && rs_need > resample_units_free()) {
    refuse_busy(error, budget_reason(false, rs_need, what));
    return false;
  }
  const std::uint32_t glide = frames_for(ramp_seconds);
  if (!send_voice_command(at, v, CommandType::kSetRate, rate, glide, error)) return false;
  vs->rate.set(rate, at, now_frame());
  if (leaves) bus_drop(*vs, at);
  charge(*vs, c.rs, c.st, at, glide);
  vs->peak_rate = std::max(vs->peak_rate, rate);
  return true;
}

bool Controller::set_stretch(std::int64_t at, VoiceHandle v, float tempo, std::string& error) {
  if (!std::isfinite(tempo) || tempo < 0.25f || tempo > 4.0f) {
    error = "tempo must be 0.25..4";
    return false;
  }
  if (lookup(v, error) == nullptr) return false;
  return set_stretch_all(at, {v}, tempo, error);  // alone: a stretch bus's member leaves it
}

}  // namespace stemd::control
