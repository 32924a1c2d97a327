// The controller's mix-wide commands and its clock (see controller.hpp): master, deck levels and
// EQ, the test tone, the schedule (timed commands) and the stream clock; and its reports (voices,
// sources, the levels as heard). [control] thread only.
#include "controller.hpp"
#include "limits.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <string>
#include <string_view>

namespace stemd::control {

using engine::Command;
using engine::CommandType;

// A level command's jump to `from` (≥ 0) before its ramp: both applied in order, in one callback.
bool Controller::jump_first(std::int64_t at, Command c, float from, std::string& error) {
  if (from < 0.0f) return true;
  c.value = from;
  c.frames = 0;
  if (send_cmd(at, c)) return true;
  error = send_error_;
  return false;
}

bool Controller::set_master(std::int64_t at, float gain, double ramp_seconds, std::string& error, float from) {
  if (!std::isfinite(gain) || gain < 0.0f) {
    error = "master gain must be a finite number ≥ 0";
    return false;
  }
  Command c{};
  c.type = CommandType::kMasterGain;
  if (!jump_first(at, c, from, error)) return false;
  c.value = gain;
  c.frames = std::max(frames_for(ramp_seconds), engine_.declick_frames());
  if (!send_cmd(at, c)) {
    error = send_error_;
    return false;
  }
  master_ = gain;
  master_at_ = at == kNow ? 0 : at;
  return true;
}

namespace {

LevelInfo heard(const engine::Engine& e, const engine::LevelTelemetry& t, float target, bool due) {
  LevelInfo l;
  l.target = l.now = l.heard_target = target;
  if (e.metrics().callbacks.load(std::memory_order_relaxed) == 0) return l;  // nothing heard yet
  l.now = t.gain.load(std::memory_order_relaxed);
  // A command due by now is in the queue: where the level goes (a shutdown right after it keeps it).
  l.heard_target = due ? target : t.target.load(std::memory_order_relaxed);
  l.frames_left = t.frames_left.load(std::memory_order_relaxed);
  l.curve = static_cast<engine::Curve>(t.curve.load(std::memory_order_relaxed) & 3);
  return l;
}

}  // namespace

LevelInfo Controller::deck_heard(int deck) const {
  if (deck < 0 || deck >= engine::kNumDecks) return LevelInfo{};
  const auto d = static_cast<std::size_t>(deck);
  return heard(engine_, engine_.metrics().levels[deck], deck_levels_[d], deck_at_[d] <= now_frame());
}

LevelInfo Controller::master_heard() const {
  return heard(engine_, engine_.metrics().levels[engine::kNumDecks], master_, master_at_ <= now_frame());
}

double Controller::output_seconds(std::uint32_t frames) const {
  return static_cast<double>(frames) / engine_.config().sample_rate;
}

bool Controller::set_deck_level(std::int64_t at, int deck, float level, double ramp_seconds, std::string& error,
                                engine::Curve curve, float from) {
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
  if (!jump_first(at, c, from, error)) return false;
  c.value = level;
  // A negative ramp jumps (set-up before anything plays); otherwise never a zipper step.
  c.frames = ramp_seconds < 0 ? 0 : std::max(frames_for(ramp_seconds), engine_.declick_frames());
  c.curve = static_cast<std::uint8_t>(curve);
  if (!send_cmd(at, c)) {
    error = send_error_;
    return false;
  }
  deck_levels_[static_cast<std::size_t>(deck)] = level;
  deck_at_[static_cast<std::size_t>(deck)] = at == kNow ? 0 : at;
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
  // What the voice list shows (not the master's, a deck's or the tone's level: a fader moved
  // every few ms must not make every status poll build the list again).
  if (c.type != CommandType::kMasterGain && c.type != CommandType::kDeckGain && c.type != CommandType::kDeckEq &&
      c.type != CommandType::kTone) {
    ++changes_;
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

void Controller::apply_before_stream() {
  bool more = true;
  while (more) {
    more = engine_.apply_commands_before_stream();
    service();
  }
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

double Controller::monotonic_at_frame(std::int64_t f) const {
  std::int64_t frame = 0;
  std::uint64_t ns = 0;
  double ns_per_frame = 0;
  if (!engine_.metrics().clock.read(frame, ns, ns_per_frame)) return -1;
  if (!(ns_per_frame > 0)) ns_per_frame = 1e9 / engine_.config().sample_rate;
  return static_cast<double>(ns) + static_cast<double>(f - frame) * ns_per_frame;
}

// ---------------------------------------------------------------- reports: voices, sources, levels

VoiceInfo Controller::info_of(engine::VoiceId id) const {
  const VoiceSlot& v = voices_[id];
  const std::int64_t now = now_frame();
  VoiceInfo i{{id, v.generation}, v.slot, v.entry->source->name, v.loop, v.volume,
              v.underruns,        v.deck, v.paused.heard_at(now)};
  i.paused_set = v.paused.value;
  i.stopping = v.stopping.heard_at(now);
  i.replaced = v.replaced;
  const engine::VoiceTelemetry& t = engine_.telemetry(id);
  if (t.generation.load(std::memory_order_relaxed) == v.generation) {
    i.engine_state = t.state.load(std::memory_order_relaxed);
    i.position = t.position.load(std::memory_order_relaxed);
    i.ring_fill_permille = t.ring_fill_permille.load(std::memory_order_relaxed);
    const LevelInfo l = heard(engine_, t.level, v.volume, v.volume_at <= now_frame());
    i.level = l.now;
    i.level_target = l.heard_target;
    i.fade_frames_left = l.frames_left;
    i.fade_curve = l.curve;
    i.envelope = t.envelope.gain.load(std::memory_order_relaxed);
    i.envelope_frames_left = t.envelope.frames_left.load(std::memory_order_relaxed);
  } else {  // not started yet (its command waits in the queue or the schedule): where it will start
    i.level = i.level_target = v.volume;
    i.position = v.start_frame;
    i.ring_fill_permille = v.streamed ? 0 : 1000;
    if (v.start_at > now) {
      i.starts_in_s = static_cast<double>(v.start_at - now) / sample_rate();
      i.start_at = v.start_at;
    }
  }
  // A seek answered (and due) that the audio thread has not made yet: where it goes, as above for
  // a voice not started. A list asked for right after the answer showed the old position.
  if (v.seek_seq != 0 && v.seek_at <= now && t.seek_heard.load(std::memory_order_relaxed) != v.seek_seq) {
    i.position = v.seek_to;
  }
  i.total_frames = v.entry->source->total_frames();
  i.sample_rate = v.entry->source->info.sample_rate;
  i.streamed = v.streamed;
  i.rate = v.rate.heard_at(now);
  i.rate_set = v.rate.value;
  i.pan = v.pan.heard_at(now);
  i.tempo = v.tempo.heard_at(now);
  i.loop_start = v.loop_start;
  i.loop_end = v.loop_end;
  i.loop_count = v.loop_count;
  return i;
}

const char* VoiceInfo::state_name() const noexcept {
  if (stopping) return "stopping";
  if (paused) return "paused";
  switch (engine_state) {
    case 1:
      return "playing";
    case 2:
      return "starved";
    case 3:
      return "stopping";  // ending by itself (the end of its file)
    case 4:
      return "paused";  // a pause's fade under way, or paused
    default:
      return "starting";
  }
}

std::string VoiceInfo::state_text() const {
  const char* name = state_name();
  if (starts_in_s < 0 || std::string_view(name) != "starting") return name;
  char text[48];
  std::snprintf(text, sizeof text, "starting in %.1f s", starts_in_s);
  return text;
}

const char* end_reason_text(engine::EndReason reason, const VoiceInfo& v) noexcept {
  if (reason == engine::EndReason::kEndOfFile && v.plays_section()) return "end of section";
  if (reason == engine::EndReason::kStopped && v.replaced) return "replaced";
  return engine::to_string(reason);
}

std::size_t Controller::voices_paused() const {
  const std::int64_t now = now_frame();
  std::size_t n = 0;
  for (const VoiceSlot& v : voices_) n += v.used && v.paused.heard_at(now) && !v.stopping.heard_at(now) ? 1 : 0;
  return n;
}

VoiceInfo Controller::voice_info(VoiceHandle v) const {
  if (!voice_alive(v)) return VoiceInfo{};
  return info_of(v.id);
}

std::vector<VoiceInfo> Controller::voices() const {
  std::vector<VoiceInfo> out;
  for (std::size_t i = 0; i < voices_.size(); ++i) {
    if (voices_[i].used) out.push_back(info_of(static_cast<engine::VoiceId>(i)));
  }
  return out;
}

std::vector<SourceInfo> Controller::sources() const {
  std::vector<SourceInfo> out;
  for (const auto& [slot, e] : table_) {
    const io::Source& s = *e->source;
    out.push_back(
        SourceInfo{slot, s.name, s.path, s.total_frames(), s.streamed(), s.memory_bytes(), s.info.sample_rate});
  }
  return out;
}

std::size_t Controller::sources_cut_short() const {
  std::size_t n = 0;
  for (const auto& [slot, e] : table_) {
    const io::Source& s = *e->source;
    n += s.truncated || (s.info.frames < 0 && s.info.seekable) ? 1 : 0;
  }
  return n;
}

}  // namespace stemd::control
