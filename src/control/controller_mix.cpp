// The controller's mix-wide commands and its clock (see controller.hpp): master, deck levels and
// EQ, the test tone, the schedule (timed commands) and the stream clock. [control] thread only.
#include "controller.hpp"
#include "limits.hpp"

#include <algorithm>
#include <cmath>
#include <ctime>

namespace stemd::control {

using engine::Command;
using engine::CommandType;

bool Controller::set_master(std::int64_t at, float gain, double ramp_seconds, std::string& error) {
  if (!std::isfinite(gain) || gain < 0.0f) {
    error = "master gain must be a finite number ≥ 0";
    return false;
  }
  Command c{};
  c.type = CommandType::kMasterGain;
  c.value = gain;
  c.frames = std::max(frames_for(ramp_seconds), engine_.declick_frames());
  if (!send_cmd(at, c)) {
    error = send_error_;
    return false;
  }
  master_ = gain;
  return true;
}

bool Controller::set_deck_level(std::int64_t at, int deck, float level, double ramp_seconds, std::string& error,
                                engine::Curve curve) {
  if (deck < 0 || deck >= engine::kNumDecks) {
    error = "no such deck";
    return false;
  }
  if (!std::isfinite(level) || level < 0.0f) {
    error = "level must be a finite number ≥ 0";
    return false;
  }
  Command c{};
  c.type = CommandType::kDeckGain;
  c.deck = static_cast<std::uint8_t>(deck);
  c.value = level;
  // A negative ramp jumps (set-up before anything plays); otherwise never a zipper step.
  c.frames = ramp_seconds < 0 ? 0 : std::max(frames_for(ramp_seconds), engine_.declick_frames());
  c.curve = static_cast<std::uint8_t>(curve);
  if (!send_cmd(at, c)) {
    error = send_error_;
    return false;
  }
  deck_levels_[static_cast<std::size_t>(deck)] = level;
  return true;
}

bool Controller::set_deck_eq(std::int64_t at, int deck, int band, float gain, double ramp_seconds, std::string& error) {
  if (deck < 0 || deck >= engine::kNumDecks || band < 0 || band > 2) {
    error = "no such deck or band";
    return false;
  }
  if (!std::isfinite(gain) || gain < 0.0f || gain > 4.0f) {
    error = "EQ gain must be 0..4 (linear)";
    return false;
  }
  Command c{};
  c.type = CommandType::kDeckEq;
  c.deck = static_cast<std::uint8_t>(deck);
  c.band = static_cast<std::uint8_t>(band);
  c.value = gain;
  c.frames = std::max(frames_for(ramp_seconds), engine_.declick_frames());
  if (!send_cmd(at, c)) {
    error = send_error_;
    return false;
  }
  deck_eq_[static_cast<std::size_t>(deck)][static_cast<std::size_t>(band)] = gain;
  return true;
}

bool Controller::send_cmd(std::int64_t at, Command& c) {
  c.at_frame = at;
  if (at >= 0 && (scheduled() >= engine::Engine::kMaxScheduled || !period_has_room(at, 1))) {
    ++schedule_refused_;
    ++busy_refusals_;
    send_error_ = schedule_full_reason(at);
    return false;
  }
  if (!engine_.send(c)) {
    ++busy_refusals_;
    send_error_ = "busy: the command queue is full";
    return false;
  }
  if (at >= 0) {
    ++scheduled_sent_;
    ++period_load_[at / limits::kTimedPeriodFrames];
  }
  return true;
}

// Periods the engine has reached are forgotten first (what was timed for them has run or is
// running), so the map holds only periods ahead: at most one per entry waiting. Counts are an
// upper bound (a timed play cancelled by a stop still counts until its period passes);
// clear_schedule resets them.
bool Controller::period_has_room(std::int64_t at, std::size_t n) const {
  const std::int64_t now_period =
      static_cast<std::int64_t>(engine_.metrics().frames.load(std::memory_order_acquire)) / limits::kTimedPeriodFrames;
  period_load_.erase(period_load_.begin(), period_load_.lower_bound(now_period));
  const auto it = period_load_.find(at / limits::kTimedPeriodFrames);
  // The map itself is bounded: no more periods than the schedule holds entries (cancelled
  // plays' periods linger until they pass).
  if (it == period_load_.end() && period_load_.size() >= engine::Engine::kMaxScheduled) return false;
  return (it == period_load_.end() ? 0 : it->second) + n <= limits::kMaxTimedPerPeriod;
}

std::size_t Controller::scheduled() const noexcept {
  const std::uint64_t done = engine_.metrics().schedule_done.load(std::memory_order_acquire);
  return scheduled_sent_ > done ? static_cast<std::size_t>(scheduled_sent_ - done) : 0;
}

std::string Controller::schedule_full_reason(std::int64_t at) const {
  if (scheduled() < engine::Engine::kMaxScheduled) {
    return "busy: period full (" + std::to_string(limits::kMaxTimedPerPeriod) +
           " timed commands already wait for the " + std::to_string(limits::kTimedPeriodFrames) +
           " output frames at frame " + std::to_string(at - at % limits::kTimedPeriodFrames) +
           "; they all run in one audio callback: time the rest later)";
  }
  return "busy: schedule full (" + std::to_string(engine::Engine::kMaxScheduled) +
         " timed commands are waiting for their time; /mixer_cleanup or /stemd/clear_schedule drops them)";
}

bool Controller::can_send(std::int64_t at, std::size_t n) const noexcept {
  if (engine_.command_space() < n) return false;
  return at < 0 || (scheduled() + n <= engine::Engine::kMaxScheduled && period_has_room(at, n));
}

std::string Controller::busy_reason(std::int64_t at, std::size_t n) const {
  if (engine_.command_space() < n) return "busy: the command queue is full";
  return schedule_full_reason(at);
}

void Controller::refuse_busy(std::string& error, std::string why) {
  ++busy_refusals_;
  error = std::move(why);
}

bool Controller::clear_schedule(std::size_t& cleared, std::string& error) {
  cleared = scheduled();
  Command c{};
  c.type = CommandType::kClearSchedule;
  const bool ok = send_cmd(kNow, c);  // at once, whatever the message's time
  if (ok) period_load_.clear();       // what was timed is dropped (commands sent later queue after it)
  if (!ok) error = send_error_;
  return ok;
}

// The test tone (an oscillator in the engine: nothing is allocated, however long it lasts).
bool Controller::tone(std::int64_t at, double hz, double level, double seconds, std::string& error) {
  const double nyquist = engine_.config().sample_rate / 2.0;
  if (!(hz > 0.0 && hz < nyquist) || !(level > 0.0 && level <= 1.0) || !(seconds > 0.0 && seconds <= 86400.0)) {
    error = "tone: frequency must be below " + std::to_string(static_cast<int>(nyquist)) +
            " Hz, level 0..1, length up to a day";
    return false;
  }
  Command c{};
  c.type = CommandType::kTone;
  c.tone_hz = hz;
  c.value = static_cast<float>(level);
  c.frames = std::max<std::uint32_t>(1, frames_for(seconds));
  if (!send_cmd(at, c)) {
    error = send_error_;
    return false;
  }
  return true;
}

std::int64_t Controller::now_frame() const {
  std::int64_t frame = 0;
  std::uint64_t ns = 0;
  if (!engine_.metrics().clock.read(frame, ns)) return 0;
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  const std::uint64_t now =
      static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000ull + static_cast<std::uint64_t>(ts.tv_nsec);
  const double elapsed = now > ns ? static_cast<double>(now - ns) * 1e-9 : 0.0;
  return frame + static_cast<std::int64_t>(elapsed * engine_.config().sample_rate);
}

bool Controller::clock_running() const {
  std::int64_t frame = 0;
  std::uint64_t ns = 0;
  return engine_.metrics().clock.read(frame, ns);
}

// Through the stream clock's line (the DLL's: frame_dll.hpp), at the device's measured rate.
std::int64_t Controller::frame_at_monotonic(std::uint64_t mono_ns) const {
  std::int64_t frame = 0;
  std::uint64_t ns = 0;
  double ns_per_frame = 0;
  if (!engine_.metrics().clock.read(frame, ns, ns_per_frame)) return 0;
  if (!(ns_per_frame > 0)) ns_per_frame = 1e9 / engine_.config().sample_rate;
  const double dt_ns = static_cast<double>(mono_ns) - static_cast<double>(ns);
  return frame + static_cast<std::int64_t>(std::llround(dt_ns / ns_per_frame));
}

}  // namespace stemd::control
