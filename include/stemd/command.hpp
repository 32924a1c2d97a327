// The messages that cross into and out of the audio callback.
//
// Command: [control] → [audio], through Engine's command queue. Event: [audio] → [control],
// through Engine's event queue. Both are small, trivially copyable and carry raw pointers whose
// ownership rules are stated per field: the audio thread never frees anything; what it lets go
// of travels back on the retire queue (see engine.hpp).
#pragma once

#include <cstdint>
#include <type_traits>

namespace stemd {

class Stream;

namespace engine {

struct VoiceSource;

using VoiceId = std::uint32_t;  // slot index in the engine's fixed voice table

enum class CommandType : std::uint8_t {
  kPlay,        // start `voice` on `play` (ownership of play.stream passes to the engine)
  kStop,        // fade `voice` out over `frames` and end it
  kSetGain,     // ramp `voice` gain to `value` over `frames`
  kSetLoop,     // `flag` = loop on/off for `voice`
  kSeek,        // jump `voice` to play.position (declicked); play.stream replaces the old stream;
                //   `frames`: the seek's number, told back in VoiceTelemetry::seek_heard once it jumped
  kMasterGain,  // ramp master gain to `value` over `frames`
  kStopAll,     // fade every voice out over `frames`
  kPause,       // fade `voice` out over `frames` and hold its position (before its start: it starts paused)
  kResume,      // fade a paused `voice` back in over `frames`
  kSetPan,      // ramp `voice` balance to `value` (-1 left … 0 centre … +1 right) over `frames`
  kDeckGain,    // ramp deck `deck`'s level to `value` over `frames`
  kDeckEq,      // ramp deck `deck`'s EQ band `band` (0 low, 1 mid, 2 high) to linear gain `value`
  kSetRate,     // glide `voice`'s playback rate (speed and pitch) to `value` over `frames`
  kSetTempo,    // `voice`'s time-stretch tempo (speed without pitch) to `value`; 1 = none
  kTone,        // test tone on the direct bus: `tone_hz`, peak `value` (linear), `frames` long; replaces one sounding
  kClearSchedule,  // drop every scheduled command (plays scheduled but not started end, stopped)
};

inline constexpr int kNumDecks = 4;           // A–D
inline constexpr int kDirectBus = kNumDecks;  // straight to the master, no deck level (test tone)
inline constexpr int kNumBuses = kNumDecks + 1;

struct PlayParams {
  const VoiceSource* source;  // borrowed: the control thread keeps it alive until the voice retires
  Stream* stream;             // owned by the engine from here on (null for in-memory sources)
  std::int64_t position;      // first frame to play
  float gain;
  bool loop;
  std::uint8_t deck = 0;  // 0..kNumDecks-1, or kDirectBus
  float rate = 1.0f;      // playback rate (× the source/device rate ratio); 1 = bit-exact path
  // Loop region [loop_start, loop_end) in file frames (loop_end 0 = the file's end); playing
  // stops at loop_end when not looping (a section). loop_count: passes through the region in
  // all, then the voice ends (0 = forever).
  std::int64_t loop_start = 0;
  std::int64_t loop_end = 0;
  std::uint32_t loop_count = 0;
  float tempo = 1.0f;  // time-stretch: speed without pitch (Rubber Band); 1 = not stretched
  // What the voice's commands sent while its play waited in the schedule (a quantised or timed
  // start) made of it: it starts paused, at this pan, a seek taken (the seek's number, told back
  // in VoiceTelemetry::seek_heard), and its level on a ramp that began before it: from `gain` to
  // gain_to over gain_frames output frames from engine frame gain_at, as if it had been playing
  // (it starts where the ramp is by then). Engine::apply_to_scheduled_play.
  bool paused = false;
  float pan = 0.0f;
  std::uint32_t seek_seq = 0;
  float gain_to = 0.0f;
  std::uint32_t gain_frames = 0;  // 0: no ramp
  std::uint8_t gain_curve = 0;
  std::int64_t gain_at = 0;
};

struct Command {
  CommandType type;
  VoiceId voice;
  std::uint32_t generation;  // must match the slot's generation, so a stale command is ignored
  std::uint32_t frames;      // ramp / fade length in frames
  float value;
  bool flag;
  PlayParams play;
  std::uint8_t deck = 0;       // kDeckGain, kDeckEq
  std::uint8_t band = 0;       // kDeckEq
  std::uint8_t curve = 0;      // engine::Curve of a kSetGain / kDeckGain / kStop fade
  std::int64_t at_frame = -1;  // engine frame to apply it at (sample-accurate); < 0 = as soon as possible
  double tone_hz = 0.0;        // kTone: frequency in Hz (output rate)
};
static_assert(std::is_trivially_copyable_v<Command>);

enum class EventType : std::uint8_t {
  kVoiceStarted,
  kVoiceEnded,      // reason in `reason`
  kVoiceUnderrun,   // `count` = this voice's underrun total so far
  kCommandDropped,  // a command addressed a voice that was not playing (stale id)
  kCommandLate,     // a scheduled command arrived after its frame: applied at once; `count` = frames late
  // A voice's own time-stretcher could not be primed in the callback it started (or was reset) in:
  // EngineConfig::stretch_primes_per_callback were primed already. It started silent and on the
  // grid, and is heard from `count` output frames later, fading in (its attack is lost).
  kVoiceDeferred,
};

enum class EndReason : std::uint8_t { kEndOfFile, kStopped, kError };

inline const char* to_string(EndReason r) noexcept {
  switch (r) {
    case EndReason::kEndOfFile:
      return "end of file";
    case EndReason::kStopped:
      return "stopped";
    case EndReason::kError:
      return "error";
  }
  return "?";
}

struct Event {
  EventType type;
  EndReason reason;
  VoiceId voice;
  std::uint32_t generation;
  std::uint64_t count;
  std::int64_t frame;  // engine frame counter when it happened
};
static_assert(std::is_trivially_copyable_v<Event>);

// Objects the audio thread lets go of. The control thread frees them (streams via the loader).
struct Retired {
  bool voice_ended;  // the voice's slot is free again (else: only a stream replaced by a seek)
  Stream* stream;    // may be null (in-memory voice)
  VoiceId voice;
  std::uint32_t generation;
};
static_assert(std::is_trivially_copyable_v<Retired>);

}  // namespace engine
}  // namespace stemd
