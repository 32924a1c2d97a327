// [audio] Commands for a voice whose play still waits in the schedule (a quantised start, a
// timed play): they change the play that is to come, so the voice starts as the control thread
// reports it. A pause sent before a quantised start was dropped (the voice was not found), and
// the start at the bar then played the voice while every report said "paused" (outside pass 28,
// user H1); a volume, pan, seek or loop sent then was dropped the same way.
#include "stemd/engine.hpp"

#include "engine_voice.hpp"
#include "schedule.hpp"
#include "stemd/stream.hpp"

#include <algorithm>

namespace stemd::engine {

namespace {

// Where a play's level is at engine frame `frame` along its ramp (PlayParams::gain_at…).
float gain_at(const PlayParams& p, std::int64_t frame) noexcept {
  if (p.gain_frames == 0) return p.gain;
  const std::int64_t k = frame - p.gain_at;
  if (k >= p.gain_frames) return p.gain_to;
  Ramp r(p.gain);
  r.set(p.gain_to, p.gain_frames, static_cast<Curve>(p.gain_curve & 3));
  return r.shaped(static_cast<double>(std::max<std::int64_t>(0, k)) / p.gain_frames);
}

}  // namespace

// The voice's level ramp at its start: where the ramp sent before it is by now, and the rest of it.
void Engine::start_gain(Voice& v, const PlayParams& p) noexcept {
  v.gain.jump(gain_at(p, frame_));
  const std::int64_t left = p.gain_frames == 0 ? 0 : p.gain_at + p.gain_frames - frame_;
  if (left > 0) v.gain.set(p.gain_to, static_cast<std::uint32_t>(left), static_cast<Curve>(p.gain_curve & 3));
}

bool Engine::apply_to_scheduled_play(const Command& c) noexcept {
  if (c.voice >= cfg_.max_voices || sched_play_[c.voice] == Schedule::kNone) return false;
  Command& play = schedule_->at(sched_play_[c.voice]);
  if (play.generation != c.generation) return false;
  PlayParams& p = play.play;
  switch (c.type) {
    case CommandType::kSetTempo:  // it starts at the tempo (rate) of then (stretch_bus.hpp)
      p.tempo = c.value;
      return true;
    case CommandType::kSetRate:
      p.rate = c.value;
      return true;
    case CommandType::kPause:  // starts paused, silent, at its first frame
      p.paused = true;
      return true;
    case CommandType::kResume:
      p.paused = false;
      return true;
    case CommandType::kSetGain:  // runs from now, as for a voice playing: from where a ramp is
      p.gain = gain_at(p, frame_);
      p.gain_to = c.value;
      p.gain_frames = c.frames;
      p.gain_curve = c.curve;
      p.gain_at = frame_;
      return true;
    case CommandType::kSetPan:
      p.pan = std::clamp(c.value, -1.0f, 1.0f);
      return true;
    case CommandType::kSetLoop:
      p.loop = c.flag;
      if (p.stream != nullptr) p.stream->set_loop(c.flag);
      return true;
    case CommandType::kSeek:
      // The seek's stream (opened at its position) replaces the play's; the old one goes back.
      // Should the retire queue lack room (its capacity exceeds the voices), the seek is dropped.
      if (p.stream != nullptr && !retire(p.stream, c.voice, c.generation, false)) {
        if (c.play.stream != nullptr) retire(c.play.stream, c.voice, c.generation, false);
        push_event(Event{EventType::kCommandDropped, EndReason::kError, c.voice, c.generation, 0, frame_});
        return true;
      }
      p.stream = c.play.stream;
      p.position = c.play.position;
      p.seek_seq = c.frames;
      return true;
    default:
      return false;
  }
}

}  // namespace stemd::engine
