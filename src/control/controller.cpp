// The control side of the mixer (see controller.hpp). [control] thread only.
#include "controller.hpp"

#include "base/log_guard.hpp"
#include "limits.hpp"
#include "stemd/ring_memory.hpp"
#include "work_budget.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>
#include <ctime>

namespace stemd::control {

using engine::Command;
using engine::CommandType;

Controller::Controller(engine::Engine& engine, io::LoaderThread& loader, const io::LoadOptions& load_opts)
    : engine_(engine), loader_(loader), load_opts_(load_opts), voices_(engine.config().max_voices) {
  master_ = engine.config().master;  // --master: the engine starts at it
  make_bus_model();
  free_ids_.reserve(voices_.size());
  for (std::size_t i = voices_.size(); i-- > 0;) free_ids_.push_back(static_cast<engine::VoiceId>(i));
}

Controller::~Controller() {
  // The stream must be stopped by now; take back whatever the engine still holds.
  service();
}

std::uint32_t Controller::frames_for(double seconds) const {
  if (!(seconds > 0.0)) return 0;
  const double f = seconds * engine_.config().sample_rate;
  return f > 4e9 ? 4'000'000'000u : static_cast<std::uint32_t>(std::lround(f));
}

Controller::VoiceSlot* Controller::lookup(VoiceHandle v, std::string& error) {
  if (!v.valid() || v.id >= voices_.size() || !voices_[v.id].used || voices_[v.id].generation != v.generation) {
    error = "no such voice (it ended or was never started)";
    return nullptr;
  }
  return &voices_[v.id];
}

bool Controller::voice_alive(VoiceHandle v) const {
  return v.valid() && v.id < voices_.size() && voices_[v.id].used && voices_[v.id].generation == v.generation;
}

const io::Source* Controller::source(int slot) const {
  auto it = table_.find(slot);
  return it == table_.end() ? nullptr : it->second->source.get();
}

namespace {
io::LoaderThread::StreamRequest request_for(const io::Source& src, std::int64_t frame, bool loop,
                                            std::int64_t loop_start, std::int64_t loop_end, std::uint32_t loop_count) {
  // The head covers the start when the voice begins inside it (and its region does not end
  // inside the head — the engine decides the same); the stream continues after it.
  const std::int64_t end = loop_end > loop_start ? loop_end : src.total_frames();
  const bool head = frame < src.view.memory_frames && end >= src.view.memory_frames;
  return io::LoaderThread::StreamRequest{head ? src.view.memory_frames : frame, loop, loop_start,
                                         loop_end > loop_start ? loop_end : 0, loop_count};
}
}  // namespace

Stream* Controller::make_stream(const io::Source& src, std::int64_t frame, bool loop, std::string& error,
                                std::int64_t loop_start, std::int64_t loop_end, std::uint32_t loop_count) {
  if (!src.streamed()) return nullptr;
  const auto r = request_for(src, frame, loop, loop_start, loop_end, loop_count);
  return loader_.create_stream(src, r.from_frame, r.loop, r.region_start, r.region_end, r.passes, error);
}

bool Controller::stream_request(int slot, const PlayOptions& opts, io::LoaderThread::StreamRequest& req) const {
  const io::Source* src = source(slot);
  if (src == nullptr || !src->streamed()) return false;
  req = request_for(*src, opts.start_frame, opts.loop, opts.loop_start, opts.loop_end, opts.loop_count);
  return true;
}

std::shared_ptr<const io::Source> Controller::source_ref(int slot) const {
  auto it = table_.find(slot);
  if (it == table_.end()) return nullptr;
  return std::shared_ptr<const io::Source>(it->second, it->second->source.get());  // shares the entry's life
}

bool Controller::load(std::int64_t at, int slot, const std::string& path, const std::string& name, std::string& error) {
  io::LoadResult r = io::load_source(path, name, load_opts_);
  if (!r.source) {
    error = r.error;  // the slot keeps whatever it had
    return false;
  }
  install(at, slot, std::move(r.source));
  return true;
}

void Controller::install(std::int64_t at, int slot, std::unique_ptr<io::Source> source) {
  const bool known = source->info.frames >= 0;
  std::uint64_t skipped = 0;  // (a client looping loads wrote 3 MB of log a second)
  if (log_limit_ == nullptr || log_limit_->allow_info("sources loaded", skipped)) {
    spdlog::info("loaded id {} '{}': {}, {} Hz, {} ch, {}, {} ({:.2f} ms){}", slot, base::log_escape(source->name),
                 source->info.format, source->info.sample_rate, source->info.channels,
                 known ? fmt::format("{:.1f} s", static_cast<double>(source->total_frames()) / source->info.sample_rate)
                       : std::string("length unknown"),
                 source->streamed() ? "streamed" : "in memory", source->load_ns / 1e6, base::suppressed_note(skipped));
  }
  // A file cut short: said at every load (from a client or a start-up flag), within the limit.
  const bool unknown_end = !known && source->info.seekable;  // on disk, its end says nothing (an Ogg's last page)
  if ((source->truncated || unknown_end) &&
      (log_limit_ == nullptr || log_limit_->allow("sources cut short", skipped))) {
    if (source->truncated) {
      const std::int64_t declared = std::max(source->info.frames, source->info.declared_frames);
      const double rate = source->info.sample_rate > 0 ? source->info.sample_rate : 1.0;
      spdlog::warn(
          "{}: holds {} frames ({:.1f} s at the file's {} Hz), fewer than the {} ({:.1f} s) its header declares: "
          "the file is cut short (an interrupted copy or download?); it plays what it holds{}",
          base::log_escape(source->path), source->total_frames(), static_cast<double>(source->total_frames()) / rate,
          source->info.sample_rate, declared, static_cast<double>(declared) / rate, base::suppressed_note(skipped));
    } else {
      spdlog::warn(
          "{}: its length is unknown (libsndfile found no end in it): the file is cut short (an interrupted "
          "copy or download?) or still being written; it plays to where its data ends{}",
          base::log_escape(source->path), base::suppressed_note(skipped));
    }
  }
  auto entry = std::make_shared<Entry>();
  entry->serial = next_serial_++;
  entry->source = std::move(source);
  auto it = table_.find(slot);
  if (it != table_.end()) stop_voices_of(at, it->second, true);  // reloading a slot replaces its players
  table_[slot] = std::move(entry);
  if (on_source_) on_source_(slot, table_[slot]->source.get());
}

bool Controller::unload(std::int64_t at, int slot, std::string& error) {
  auto it = table_.find(slot);
  if (it == table_.end()) {
    error = "id " + std::to_string(slot) + " is not loaded";
    return false;
  }
  stop_voices_of(at, it->second);
  table_.erase(it);  // freed once the last voice using it retires
  if (on_source_) on_source_(slot, nullptr);
  return true;
}

void Controller::stop_voices_of(std::int64_t at, const std::shared_ptr<Entry>& e, bool replaced) {
  for (std::size_t i = 0; i < voices_.size(); ++i) {
    if (voices_[i].used && voices_[i].entry == e) {
      Command c{};
      c.type = CommandType::kStop;
      c.voice = static_cast<engine::VoiceId>(i);
      c.generation = voices_[i].generation;
      c.frames = engine_.declick_frames();
      if (!send_cmd(at, c)) {
        spdlog::error("command queue full: voice {} not stopped", i);
        continue;
      }
      voices_[i].replaced = voices_[i].replaced || (replaced && !voices_[i].stopping.value);
      voices_[i].stopping.set(true, at, now_frame());
    }
  }
}

bool Controller::play(std::int64_t at, int slot, const PlayOptions& opts, VoiceHandle& out, std::string& error,
                      std::unique_ptr<io::LoaderThread::Opened> opened) {
  auto it = table_.find(slot);
  if (it == table_.end()) {
    error = "id " + std::to_string(slot) + " is not loaded";
    return false;
  }
  const io::Source& src = *it->second->source;
  if (opts.start_frame < 0 || (src.total_frames() > 0 && opts.start_frame >= src.total_frames())) {
    error = "start frame " + std::to_string(opts.start_frame) + " is outside the file (0.." +
            std::to_string(src.total_frames() - 1) + ")";
    return false;
  }
  if (!std::isfinite(opts.volume) || opts.volume < 0.0f) {
    error = "volume must be a finite number ≥ 0";
    return false;
  }
  if (!std::isfinite(opts.rate) || opts.rate < 0.25f || opts.rate > 4.0f) {
    error = "rate must be 0.25..4";
    return false;
  }
  const double base_ratio =
      src.view.sample_rate > 0 ? static_cast<double>(src.view.sample_rate) / engine_.config().sample_rate : 1.0;
  const bool resampled = base_ratio * opts.rate != 1.0;
  if (!std::isfinite(opts.tempo) || opts.tempo < 0.25f || opts.tempo > 4.0f) {
    error = "tempo must be 0.25..4";
    return false;
  }
  const bool stretched = opts.tempo != 1.0f;
  settle_work();
  const std::uint32_t st_units = stretched ? work::stretch_units(opts.tempo) : 0;
  const std::uint32_t rs_units = resampled ? work::resample_units(base_ratio * opts.rate, opts.tempo) : 0;
  const int src_rate = src.view.sample_rate > 0 ? src.view.sample_rate : sample_rate();
  int bus = -1;  // the stretch bus it will ride (controller_buses.cpp)
  if (!play_fits(at, opts, src_rate, rs_units, st_units, bus, error)) return false;
  if (free_ids_.empty()) {
    error = "all " + std::to_string(voices_.size()) + " voices are in use";
    return false;
  }
  const std::int64_t total = src.total_frames();
  if (opts.loop_start < 0 || (total > 0 && opts.loop_start >= total) || opts.loop_end < 0 ||
      (total > 0 && opts.loop_end > total) || (opts.loop_end > 0 && opts.loop_end <= opts.loop_start)) {
    error = "loop region must satisfy 0 ≤ start < end ≤ " + std::to_string(total) + " frames";
    return false;
  }
  Stream* stream = nullptr;
  if (src.streamed()) {
    stream =
        opened ? loader_.adopt(std::move(opened))
               : make_stream(src, opts.start_frame, opts.loop, error, opts.loop_start, opts.loop_end, opts.loop_count);
    if (stream == nullptr) return false;
  }
  const engine::VoiceId id = free_ids_.back();
  const std::uint32_t gen = next_generation_++;
  if (next_generation_ == 0) next_generation_ = 1;

  Command c{};
  c.type = CommandType::kPlay;
  c.voice = id;
  c.generation = gen;
  if (opts.deck < 0 || opts.deck >= engine::kNumBuses) {
    loader_.release(stream);
    error = "deck must be 0.." + std::to_string(engine::kNumBuses - 1);
    return false;
  }
  c.play = engine::PlayParams{
      &src.view, stream,          opts.start_frame, opts.volume,     opts.loop, static_cast<std::uint8_t>(opts.deck),
      opts.rate, opts.loop_start, opts.loop_end,    opts.loop_count, opts.tempo};
  c.play.paused = opts.paused;
  if (!send_cmd(at, c)) {
    loader_.release(stream);
    error = send_error_;
    return false;
  }
  free_ids_.pop_back();
  VoiceSlot& vs = voices_[id];
  vs = VoiceSlot{.used = true,
                 .generation = gen,
                 .slot = slot,
                 .entry = it->second,
                 .loop = opts.loop,
                 .volume = opts.volume,
                 .streamed = src.streamed(),
                 .deck = opts.deck,
                 .base_ratio = base_ratio,
                 .src_rate = src_rate,
                 .bus = bus,
                 .start_at = at,
                 .changed_at = std::max(at, now_frame()),
                 .loop_start = opts.loop_start,
                 .loop_end = opts.loop_end,
                 .loop_count = opts.loop_count,
                 .rs_units = rs_units,
                 .st_units = st_units,
                 .peak_rate = opts.rate,
                 .peak_tempo = opts.tempo,
                 .start_frame = opts.start_frame,
                 .rate = Heard<float>{opts.rate},
                 .tempo = Heard<float>{opts.tempo}};
  if (opts.paused) vs.paused.set(true, at, now_frame());  // paused from its start
  if (bus >= 0) join_bus(buses_, static_cast<std::size_t>(bus), opts.deck, opts.tempo, at, true);
  book(vs, true);
  ++voices_in_use_;
  out = VoiceHandle{id, gen};
  return true;
}

bool Controller::stop(std::int64_t at, VoiceHandle v, double fade_seconds, std::string& error, engine::Curve curve,
                      bool replaced) {
  VoiceSlot* vs = lookup(v, error);
  if (!vs) return false;
  Command c{};
  c.type = CommandType::kStop;
  c.voice = v.id;
  c.generation = v.generation;
  c.frames = std::max(frames_for(fade_seconds), engine_.declick_frames());
  c.curve = static_cast<std::uint8_t>(curve);
  if (!send_cmd(at, c)) {
    error = send_error_;
    return false;
  }
  lend_stretcher(*vs, at, c.frames);
  vs->replaced = vs->replaced || (replaced && !vs->stopping.value);  // stopped by its user first: "stopped"
  vs->stopping.set(true, at, now_frame());
  return true;
}

// A stretched voice stopped now with a short fade lends its stretcher budget to a restart: a play
// right after a /stop is not "busy". The engine keeps the fading voice's stretcher (it still
// stretches its fade; on a bus it needs none and no longer leaves) and starts the new voice silent
// on the grid until one is free — at most the fade (≤ kLendFadeSeconds) late, as a deferred prime.
void Controller::lend_stretcher(VoiceSlot& vs, std::int64_t at, std::uint32_t fade_frames) {
  constexpr double kLendFadeSeconds = 0.05;
  const std::uint32_t most = frames_for(kLendFadeSeconds);
  if (vs.st_units == 0 || fade_frames > most || (at != kNow && at > now_frame() + most)) return;  // later: keeps it
  bus_drop(vs, at);
  book(vs, false);
  vs.st_units = 0;
  book(vs, true);
}

bool Controller::seek_request(VoiceHandle v, std::int64_t frame, io::LoaderThread::StreamRequest& req,
                              std::shared_ptr<const io::Source>& source) const {
  if (!voice_alive(v)) return false;
  const VoiceSlot& vs = voices_[v.id];
  if (!vs.entry->source->streamed()) return false;
  req = request_for(*vs.entry->source, frame, vs.loop, vs.loop_start, vs.loop_end, 0);
  source = std::shared_ptr<const io::Source>(vs.entry, vs.entry->source.get());
  return true;
}

bool Controller::seek(std::int64_t at, VoiceHandle v, std::int64_t frame, std::string& error,
                      std::unique_ptr<io::LoaderThread::Opened> opened) {
  VoiceSlot* vs = lookup(v, error);
  if (!vs) return false;
  const io::Source& src = *vs->entry->source;
  if (frame < 0 || (src.total_frames() > 0 && frame >= src.total_frames())) {
    error = "position " + std::to_string(frame) + " is outside the file";
    return false;
  }
  Stream* stream = nullptr;
  if (src.streamed()) {
    stream = opened ? loader_.adopt(std::move(opened))
                    : make_stream(src, frame, vs->loop, error, vs->loop_start, vs->loop_end, 0);
    if (stream == nullptr) return false;
  }
  // A timed seek is heard at its frame: the declick out of the old position runs before `at`, so
  // the new position's first frame plays at `at` (as a timed play's does). Sent too close to its
  // time for that, it lands up to a declick late, as an untimed one does.
  if (at != kNow && at - engine_.declick_frames() >= now_frame()) at -= engine_.declick_frames();
  Command c{};
  c.type = CommandType::kSeek;
  c.voice = v.id;
  c.generation = v.generation;
  if (++next_seek_seq_ == 0) next_seek_seq_ = 1;
  c.frames = next_seek_seq_;
  c.play = engine::PlayParams{
      &src.view,      stream,         frame,        vs->volume, vs->loop,       static_cast<std::uint8_t>(vs->deck),
      vs->rate.value, vs->loop_start, vs->loop_end, 0,          vs->tempo.value};
  if (!send_cmd(at, c)) {
    loader_.release(stream);
    error = send_error_;
    return false;
  }
  vs->seek_seq = c.frames;
  vs->seek_to = frame;
  vs->seek_at = at == kNow ? 0 : at;
  return true;
}

bool Controller::set_volume(std::int64_t at, VoiceHandle v, float volume, double ramp_seconds, std::string& error,
                            engine::Curve curve) {
  VoiceSlot* vs = lookup(v, error);
  if (!vs) return false;
  if (!std::isfinite(volume) || volume < 0.0f) {
    error = "volume must be a finite number ≥ 0";
    return false;
  }
  Command c{};
  c.type = CommandType::kSetGain;
  c.voice = v.id;
  c.generation = v.generation;
  c.value = volume;
  c.frames = std::max(frames_for(ramp_seconds), engine_.declick_frames());  // never a zipper step
  c.curve = static_cast<std::uint8_t>(curve);
  if (!send_cmd(at, c)) {
    error = send_error_;
    return false;
  }
  vs->volume = volume;
  vs->volume_at = at == kNow ? 0 : at;
  return true;
}

bool Controller::set_loop(std::int64_t at, VoiceHandle v, bool loop, std::string& error) {
  VoiceSlot* vs = lookup(v, error);
  if (!vs) return false;
  Command c{};
  c.type = CommandType::kSetLoop;
  c.voice = v.id;
  c.generation = v.generation;
  c.flag = loop;
  if (!send_cmd(at, c)) {
    error = send_error_;
    return false;
  }
  vs->loop = loop;
  return true;
}

bool Controller::stop_all(std::int64_t at, double fade_seconds, std::string& error) {
  Command c{};
  c.type = CommandType::kStopAll;
  c.frames = std::max(frames_for(fade_seconds), engine_.declick_frames());
  if (!send_cmd(at, c)) {
    error = send_error_;
    return false;
  }
  for (VoiceSlot& vs : voices_) {
    if (!vs.used) continue;
    lend_stretcher(vs, at, c.frames);
    vs.stopping.set(true, at, now_frame());
  }
  return true;
}

bool Controller::send_voice_command(std::int64_t at, VoiceHandle v, engine::CommandType type, float value,
                                    std::uint32_t frames, std::string& error) {
  Command c{};
  c.type = type;
  c.voice = v.id;
  c.generation = v.generation;
  c.value = value;
  c.frames = frames;
  if (!send_cmd(at, c)) {
    error = send_error_;
    return false;
  }
  return true;
}

bool Controller::pause(std::int64_t at, VoiceHandle v, double fade_seconds, std::string& error) {
  VoiceSlot* vs = lookup(v, error);
  if (!vs) return false;
  if (!send_voice_command(at, v, CommandType::kPause, 0.0f,
                          std::max(frames_for(fade_seconds), engine_.declick_frames()), error)) {
    return false;
  }
  vs->paused.set(true, at, now_frame());
  return true;
}

bool Controller::resume(std::int64_t at, VoiceHandle v, double fade_seconds, std::string& error) {
  VoiceSlot* vs = lookup(v, error);
  if (!vs) return false;
  if (!send_voice_command(at, v, CommandType::kResume, 0.0f,
                          std::max(frames_for(fade_seconds), engine_.declick_frames()), error)) {
    return false;
  }
  vs->paused.set(false, at, now_frame());
  return true;
}

bool Controller::set_pan(std::int64_t at, VoiceHandle v, float pan, double ramp_seconds, std::string& error) {
  if (!std::isfinite(pan) || pan < -1.0f || pan > 1.0f) {
    error = "pan must be between -1 (left) and 1 (right)";
    return false;
  }
  VoiceSlot* vs = lookup(v, error);
  if (!vs) return false;
  if (!send_voice_command(at, v, CommandType::kSetPan, pan,
                          std::max(frames_for(ramp_seconds), engine_.declick_frames()), error)) {
    return false;
  }
  vs->pan.set(pan, at, now_frame());
  return true;
}

bool Controller::load_generated(std::int64_t at, int slot, const std::string& name, std::vector<float> stereo,
                                std::string& error) {
  if (stereo.size() < 2) {
    error = "no audio";
    return false;
  }
  auto src = std::make_unique<io::Source>();
  src->path = "(generated)";
  src->name = name;
  src->info.sample_rate = engine_.config().sample_rate;
  src->info.channels = 2;
  src->info.format = "generated";
  src->data = std::move(stereo);
  const auto frames = static_cast<std::int64_t>(src->data.size() / 2);
  src->info.frames = frames;
  src->view = engine::VoiceSource{src->data.data(), frames, frames, false};
  auto entry = std::make_shared<Entry>();
  entry->serial = next_serial_++;
  entry->source = std::move(src);
  auto it = table_.find(slot);
  if (it != table_.end()) stop_voices_of(at, it->second, true);  // replaced, as by a load
  table_[slot] = std::move(entry);
  return true;
}

void Controller::clear(double fade_seconds) {
  std::string err;
  // At once, whatever the message's time: a cleanup in a timed bundle still clears now.
  std::size_t cleared = 0;
  clear_schedule(cleared, err);  // nothing scheduled starts or applies afterwards
  stop_all(kNow, fade_seconds, err);
  std::vector<int> slots;
  for (const auto& [slot, e] : table_) slots.push_back(slot);
  table_.clear();  // each source is freed when its last voice retires
  if (on_source_) {
    for (int slot : slots) on_source_(slot, nullptr);
  }
}

void Controller::free_voice(engine::VoiceId id) {
  if (id >= voices_.size() || !voices_[id].used) return;
  uncharge(voices_[id]);
  voices_[id] = VoiceSlot{};  // settle_at 0: settle_work() drops it from settling_
  free_ids_.push_back(id);
  --voices_in_use_;
}

void Controller::service() {
  learn_period();
  // Retirees first into a list, then events, then free: the engine pushes a voice's "ended"
  // event before its retiree, so every event is handled while its voice is still known.
  retired_scratch_.clear();
  engine::Retired r;
  for (int i = 0; i < 100000 && engine_.poll_retired(r); ++i) retired_scratch_.push_back(r);

  changes_ += retired_scratch_.size();
  engine::Event e;
  for (int i = 0; i < 100000 && engine_.poll_event(e); ++i) {
    ++changes_;
    VoiceInfo info;
    if (e.voice < voices_.size() && voices_[e.voice].used && voices_[e.voice].generation == e.generation) {
      if (e.type == engine::EventType::kVoiceUnderrun) voices_[e.voice].underruns = e.count;
      voices_[e.voice].sounded = voices_[e.voice].sounded || e.type == engine::EventType::kVoiceStarted;
      if (e.type == engine::EventType::kVoiceEnded && voices_[e.voice].replaced_waiting) report_replaced(e.voice);
      info = info_of(e.voice);
    }
    if (on_event_) on_event_(e, info);
  }

  for (const engine::Retired& x : retired_scratch_) {
    loader_.release(x.stream);
    if (x.voice_ended && x.voice < voices_.size() && voices_[x.voice].generation == x.generation) {
      free_voice(x.voice);  // drops this voice's hold on its source
    }
  }
  settle_work();      // the charges of rates and tempos now heard fall to what they cost
  reconcile_buses();  // and the voices ride the stretch buses the engine says they ride
  // What unloads and ended streams freed goes back to the system, not only to malloc's arenas.
  if (load_opts_.budget) heap_trim_.note(load_opts_.budget->held());
}

std::size_t Controller::memory_bytes() const {
  // Generated audio (tones) is not charged to the budget; files, heads, rings and readers are,
  // once per decoded copy however many ids share it. Rings are charged their own size; the free
  // part of the huge-page chunks they are carved from is resident too and is added here
  // (ring_memory.hpp: at most two 2 MiB chunks per ring size).
  std::size_t n = 0;
  for (const auto& [slot, e] : table_) n += e->source->data.capacity() * sizeof(float);
  n += static_cast<std::size_t>(ring_memory::stats().slack_bytes());
  return n + static_cast<std::size_t>(load_opts_.budget ? load_opts_.budget->held() : 0);
}

}  // namespace stemd::control
