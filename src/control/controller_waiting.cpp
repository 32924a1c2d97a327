// A play of an id replacing its play still waiting for its start (controller.hpp: drop_waiting):
// cancelled at once when the audio thread is sure to take the cancel before the start's frame,
// else stopped as a heard voice is; at its end, which it was, as the engine's events say.
#include "controller.hpp"

#include "base/log_guard.hpp"
#include "limits.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>

namespace stemd::control {

using engine::CommandType;

void Controller::learn_period() {
  std::int64_t frame = 0;
  std::uint64_t ns = 0;
  if (!engine_.metrics().clock.read(frame, ns)) return;
  // The clock's frame is the last callback's first; the frame count its end once it has returned
  // (read apart, two callbacks may fall between: more, never less — a wider guard).
  const auto done = static_cast<std::int64_t>(engine_.metrics().frames.load(std::memory_order_relaxed));
  if (done > frame) period_frames_ = std::max(period_frames_, done - frame);
}

std::int64_t Controller::cancel_horizon() const {
  const std::int64_t period = period_frames_ > 0 ? period_frames_ : engine_.config().max_block_frames;
  return now_frame() + 2 * period;
}

bool Controller::drop_waiting(VoiceHandle v, std::int64_t at) {
  if (!voice_alive(v)) return false;
  VoiceSlot& vs = voices_[v.id];
  const std::int64_t start = vs.start_at;
  if (start < 0 || (at >= 0 && start < at) || vs.stopping.value) return false;
  if (vs.sounded || engine_.telemetry(v.id).generation.load(std::memory_order_relaxed) == v.generation) {
    return false;  // started
  }
  vs.replaced_waiting = true;                  // its end says which it was (report_replaced)
  if (start < cancel_horizon()) return false;  // the callback running now may start it: a stop
  std::string error;
  if (!stop(kNow, v, 0.0, error, engine::Curve::kLinear, true)) return false;
  // Its play leaves the schedule now (Engine::cancel_scheduled_plays): its period's slot is free.
  if (auto it = period_load_.find(start / limits::kTimedPeriodFrames); it != period_load_.end()) {
    if (--it->second == 0) period_load_.erase(it);
  }
  return true;
}

void Controller::report_replaced(engine::VoiceId id) {
  VoiceSlot& vs = voices_[id];
  vs.replaced_waiting = false;
  if (!vs.sounded) {
    ++replaced_waiting_.cancelled;
    spdlog::debug("id {}: its play waiting for frame {} was replaced before its start: cancelled, never heard", vs.slot,
                  vs.start_at);
    return;
  }
  ++replaced_waiting_.faded;
  std::uint64_t skipped = 0;
  if (log_limit_ == nullptr || log_limit_->allow_info("replaced starts", skipped)) {
    spdlog::info(
        "id {}: its play timed for frame {} had started when a play of its id replaced it (its frame fell in the "
        "audio callback running then, before the replacement reached it): faded out over the declick{}",
        vs.slot, vs.start_at, base::suppressed_note(skipped));
  }
}

}  // namespace stemd::control
