// The crowdstream dialect, unchanged (../shared/spec/crowdstream-osc.md) [control].
//
// Argument types are coerced as the old Python server's int()/float()/str() did (args.hpp).
// Every handler reads and checks all of its arguments first and changes state only after the
// last check passed. Addresses that need the tempo clock, scheduling or deck EQ (the "music
// features" work) are recognised, their arguments checked, and answered
// "/fail <address> … not yet: …" until that work lands.
#include "args.hpp"
#include "deck_ids.hpp"
#include "engine/deck_eq.hpp"
#include "limits.hpp"
#include "router.hpp"

#include <spdlog/spdlog.h>

#include <cmath>
#include <cstdio>
#include <filesystem>

namespace stemd::control {

namespace {

constexpr double kMaxVolume = 4.0;
constexpr double kEqGlide = 0.05;     // EQ gains glide over ~50 ms (the spec)
constexpr double kTempoGlide = 0.05;  // a tempo change glides every player's rate

// Band names are matched by prefix: "l", "lo", "low" … (the old server did the same).
bool parse_band(const std::string& s, int& band) {
  std::string b;
  for (char c : s) b += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (b.empty()) return false;
  for (int i = 0; i < 3; ++i) {
    const std::string names[3] = {"low", "mid", "high"};
    if (names[i].rfind(b, 0) == 0) {
      band = i;
      return true;
    }
  }
  return false;
}

}  // namespace

void Router::register_crowdstream() {
  handlers_["/load_buffer"] = &Router::cs_load_buffer;
  handlers_["/play_stem"] = &Router::cs_play_stem;
  handlers_["/play_stem_section"] = &Router::cs_play_stem_section;
  handlers_["/stop_stem"] = &Router::cs_stop_stem;
  handlers_["/stem_volume"] = &Router::cs_stem_volume;
  handlers_["/crossfade_levels"] = &Router::cs_crossfade_levels;
  handlers_["/deck_levels"] = &Router::cs_deck_levels;
  handlers_["/get_status"] = &Router::cs_get_status;
  handlers_["/test_tone"] = &Router::cs_test_tone;
  handlers_["/mixer_cleanup"] = &Router::cs_mixer_cleanup;
  handlers_["/deck_eq"] = &Router::cs_deck_eq;
  handlers_["/deck_eq_all"] = &Router::cs_deck_eq_all;
  handlers_["/deck_filter"] = &Router::cs_deck_filter;
  handlers_["/set_tempo"] = &Router::cs_set_tempo;
  handlers_["/dance/total_movement"] = &Router::cs_total_movement;
  handlers_["/set_meter"] = &Router::cs_set_meter;
  handlers_["/print_clock"] = &Router::cs_print_clock;
  handlers_["/reset"] = &Router::cs_reset;
  handlers_["/play"] = &Router::cs_play;
  handlers_["/cue"] = &Router::cs_cue;
  handlers_["/start_group"] = &Router::cs_start_group;
  handlers_["/fade"] = &Router::cs_fade;
  handlers_["/schedule_c_at"] = &Router::cs_schedule_c_at;
  handlers_["/dummy"] = &Router::cs_dummy;
  // Addresses the old server ignored (no handler there: python-osc dropped them), sent by
  // crowdstream clients: the detector's legacy pose frames (to every destination), the
  // sc-engine example's addresses, and old clients' /memory_cleanup. Accepted as no-ops.
  for (const char* a :
       {"/pose/keypoints", "/memory_cleanup", "/play_sound", "/set_volume", "/stop_sound", "/stop_all"}) {
    handlers_[a] = &Router::cs_ignored;
  }
}

Router::Reply Router::ignored(const OscMessage& m, const char* why) {
  ++stats_.ignored[m.address];
  spdlog::debug("OSC {}: accepted and ignored ({}), as the old crowdstream server did", m.address, why);
  return done();
}

Router::Reply Router::cs_ignored(const OscMessage& m, const Peer&) {
  return ignored(m, m.address == "/memory_cleanup" ? "the old server had no such address" : "not for the audio server");
}

Router::Reply Router::cs_load_buffer(const OscMessage& m, const Peer&) {
  ArgReader a(m);
  int id = 0;
  std::string path, name;
  if (!a.count(2, 3) || !a.id(0, id) || !a.string(1, "path", path)) return fail("arguments", a.error());
  if (a.has(2) && !a.string(2, "name", name)) return fail("arguments", a.error(), {OscArg::Int(id)});
  if (name.empty()) name = std::filesystem::path(path).stem().string();
  return load(id, path, name);
}

Router::Reply Router::cs_play_stem(const OscMessage& m, const Peer&) {
  ArgReader a(m);
  int id = 0;
  double rate = 1, volume = cfg_.crowdstream_volume, start = 0;
  bool loop = true;
  if (!a.count(1, 5) || !a.id(0, id) || !a.number_or(1, "rate", rate, 1.0) ||
      !a.number_or(2, "volume", volume, cfg_.crowdstream_volume) || !a.flag_or(3, "loop", loop, true) ||
      !a.number_or(4, "start", start, 0.0)) {
    return fail("arguments", a.error(), id ? std::vector<OscArg>{OscArg::Int(id)} : std::vector<OscArg>{});
  }
  const std::vector<OscArg> idv{OscArg::Int(id)};
  if (rate <= 0 || rate > 4) return fail("range", "rate must be > 0 and ≤ 4", idv);
  if (volume < 0 || volume > kMaxVolume) return fail("range", "volume must be 0..4", idv);
  if (start < 0) return fail("range", "start is a fraction of the file: 0 ≤ start < 1", idv);
  const io::Source* src = ctl_.source(id);
  if (src == nullptr) return fail("unknown_id", "buffer " + std::to_string(id) + " is not loaded", idv);
  if (start >= 1) {
    // Old clients sent seconds here; the old server's player then began past the end and its
    // loop wrapped to the beginning. The same, said once.
    if (!warned_start_past_end_) {
      spdlog::warn(
          "/play_stem {}: start {} is not a fraction of the file (0 ≤ start < 1) — playing from the beginning, "
          "as the old server did (warned once)",
          id, start);
      warned_start_past_end_ = true;
    }
    start = 0;
  }
  PlayOptions po;
  po.rate = static_cast<float>(rate);
  po.volume = static_cast<float>(volume);
  po.loop = loop;
  po.start_frame = static_cast<std::int64_t>(std::floor(start * static_cast<double>(src->total_frames())));
  po.deck = deck_of_id(id);
  return start_player(id, po);
}

Router::Reply Router::cs_play_stem_section(const OscMessage& m, const Peer&) {
  ArgReader a(m);
  int id = 0;
  double rate = 1, volume = 0, start = 0, duration = 0;
  bool loop = false;
  if (!a.count(5, 6) || !a.id(0, id) || !a.number(1, "rate", rate) || !a.number(2, "volume", volume) ||
      !a.flag(3, "loop", loop) || !a.number(4, "start", start) || !a.number_or(5, "duration", duration, 0.0)) {
    return fail("arguments", a.error());
  }
  const std::vector<OscArg> idv{OscArg::Int(id)};
  if (rate <= 0 || rate > 4) return fail("range", "rate must be > 0 and ≤ 4", idv);
  if (volume < 0 || volume > kMaxVolume) return fail("range", "volume must be 0..4", idv);
  if (start < 0 || start >= 1) return fail("range", "start is a fraction of the file: 0 ≤ start < 1", idv);
  if (std::string e;
      !limits::seconds_in_range(duration, 0, limits::kMaxSectionSeconds, "duration (the file's seconds)", e))
    return fail("range", e, idv);
  const io::Source* src = ctl_.source(id);
  if (src == nullptr) return fail("unknown_id", "buffer " + std::to_string(id) + " is not loaded", idv);
  // Play from `start` for `duration` seconds of the file (0 = to its end), looping that section
  // when loop = 1.
  const std::int64_t total = src->total_frames();
  const auto first = static_cast<std::int64_t>(std::floor(start * static_cast<double>(total)));
  const int file_rate = src->view.sample_rate > 0 ? src->view.sample_rate : cfg_.sample_rate;
  std::int64_t end = duration > 0 ? first + static_cast<std::int64_t>(std::llround(duration * file_rate)) : total;
  end = std::min(end, total);
  if (end <= first) return fail("range", "the section is empty", idv);
  PlayOptions po;
  po.rate = static_cast<float>(rate);
  po.volume = static_cast<float>(volume);
  po.loop = loop;
  po.start_frame = first;
  po.loop_start = first;
  po.loop_end = end;
  po.deck = deck_of_id(id);
  return start_player(id, po);
}

Router::Reply Router::cs_stop_stem(const OscMessage& m, const Peer&) {
  ArgReader a(m);
  int id = 0;
  if (!a.count(1, 1) || !a.id(0, id)) return fail("arguments", a.error());
  const std::vector<OscArg> idv{OscArg::Int(id)};
  if (ctl_.source(id) == nullptr && !player(id).valid()) {
    return fail("unknown_id", "buffer " + std::to_string(id) + " is not loaded", idv);
  }
  const VoiceHandle h = player(id);
  std::string error;
  if (h.valid() && !ctl_.stop(h, 0.0, error)) return fail("busy", error, idv);
  players_.erase(id);
  return done(idv);
}

Router::Reply Router::cs_stem_volume(const OscMessage& m, const Peer&) {
  ArgReader a(m);
  int id = 0;
  double volume = 0;
  if (!a.count(2, 2) || !a.id(0, id) || !a.number(1, "volume", volume)) return fail("arguments", a.error());
  const std::vector<OscArg> idv{OscArg::Int(id)};
  if (volume < 0 || volume > kMaxVolume) return fail("range", "volume must be 0..4", idv);
  // The energy sender sets buffer 1000 whether or not anything loaded it: the old server
  // ignored that silently.
  if (ctl_.source(id) == nullptr && !player(id).valid()) return ignored(m, "buffer not loaded");
  const VoiceHandle h = player(id);
  if (!h.valid()) {
    return fail("unknown_id", "buffer " + std::to_string(id) + (ctl_.source(id) ? " is not playing" : " is not loaded"),
                idv);
  }
  std::string error;
  if (!ctl_.set_volume(h, static_cast<float>(volume), cfg_.level_ramp_s, error)) return fail("busy", error, idv);
  return done(idv);
}

Router::Reply Router::cs_crossfade_levels(const OscMessage& m, const Peer&) {
  ArgReader a(m);
  double la = 0, lb = 0;
  if (!a.count(2, 2) || !a.number(0, "a", la) || !a.number(1, "b", lb)) return fail("arguments", a.error());
  if (la < 0 || lb < 0 || la > kMaxVolume || lb > kMaxVolume) return fail("range", "levels must be 0..4");
  if (!ctl_.can_send(2)) return fail("busy", ctl_.busy_reason(2));
  if (cfg_.equal_power) {
    // Equal power: the client's linear (1 − x, x) becomes (cos, sin) of x·π/2 — constant power
    // through the crossfade. Levels above 1 pass unchanged.
    auto law = [](double l) { return l <= 1.0 ? std::sin(l * M_PI / 2) : l; };
    la = law(la);
    lb = law(lb);
  }
  std::string error;
  if (!ctl_.set_deck_level(0, static_cast<float>(la), cfg_.level_ramp_s, error) ||
      !ctl_.set_deck_level(1, static_cast<float>(lb), cfg_.level_ramp_s, error)) {
    return fail("busy", error);
  }
  return done();
}

Router::Reply Router::cs_deck_levels(const OscMessage& m, const Peer&) {
  ArgReader a(m);
  if (!a.count(0, 4)) return fail("arguments", a.error());
  double levels[4] = {};
  static const char* names[4] = {"A", "B", "C", "D"};
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (!a.number(i, names[i], levels[i])) return fail("arguments", a.error());
    if (levels[i] < 0 || levels[i] > kMaxVolume)
      return fail("range", std::string("deck ") + names[i] + " level must be 0..4");
  }
  if (!ctl_.can_send(a.size())) return fail("busy", ctl_.busy_reason(a.size()));
  std::string error;
  for (std::size_t i = 0; i < a.size(); ++i) {  // a missing level keeps its value
    if (!ctl_.set_deck_level(static_cast<int>(i), static_cast<float>(levels[i]), cfg_.level_ramp_s, error)) {
      return fail("busy", error);
    }
  }
  return done();
}

Router::Reply Router::cs_get_status(const OscMessage& m, const Peer&) {
  ArgReader a(m);
  if (!a.count(0, 0)) return fail("arguments", a.error());
  return done(status_fields());
}

Router::Reply Router::cs_test_tone(const OscMessage& m, const Peer&) {
  ArgReader a(m);
  double freq = cfg_.tone_frequency, level = cfg_.tone_level;
  // [frequency] [level]: old clients send a level (linear peak, 0 < level ≤ 1) too.
  if (!a.count(0, 2) || !a.number_or(0, "frequency", freq, cfg_.tone_frequency) ||
      !a.number_or(1, "level", level, cfg_.tone_level)) {
    return fail("arguments", a.error());
  }
  return test_tone(freq, level, cfg_.tone_seconds);
}

// A sine with 10 ms fades at both ends, on the direct bus (deck levels don't mute it: it is for
// checking the speakers). Replaces a tone still sounding. An oscillator in the engine: nothing is
// allocated for it, however long it lasts (it used to be a rendered buffer: 230 MB for 600 s).
Router::Reply Router::test_tone(double freq, double level, double seconds) {
  const double nyquist = cfg_.sample_rate / 2.0;
  if (!(freq >= 20 && freq < nyquist)) {  // written so that NaN fails too
    return fail("range", "frequency must be 20 Hz up to " + std::to_string(static_cast<int>(nyquist)) + " Hz");
  }
  if (!(level > 0 && level <= 1)) return fail("range", "level must be > 0 and ≤ 1 (0 dBFS)");
  if (std::string e;
      !limits::seconds_in_range(seconds, limits::kMinToneSeconds, limits::kMaxToneSeconds, "length (seconds)", e)) {
    return fail("range", e);
  }
  std::string error;
  if (!ctl_.tone(freq, level, seconds, error)) return fail("busy", error);
  spdlog::info("test tone: {:.0f} Hz, {:.1f} s, peak {:.1f} dBFS", freq, seconds, 20 * std::log10(level));
  return done({OscArg::Float(freq)});
}

Router::Reply Router::cs_mixer_cleanup(const OscMessage& m, const Peer&) {
  ArgReader a(m);
  if (!a.count(0, 0)) return fail("arguments", a.error());
  ctl_.clear(0.0);  // every voice fades out (declick); buffers freed as their voices retire
  players_.clear();
  return done();
}

Router::Reply Router::cs_deck_eq(const OscMessage& m, const Peer&) {
  ArgReader a(m);
  std::string deck_name, band_name;
  double percent = 0;
  int deck = 0, band = 0;
  if (!a.count(3, 3) || !a.string(0, "deck", deck_name) || !a.string(1, "band", band_name) ||
      !a.number(2, "percent", percent)) {
    return fail("arguments", a.error());
  }
  if (!parse_deck(deck_name, deck)) return fail("arguments", "deck must be A, B, C or D, got \"" + deck_name + "\"");
  if (!parse_band(band_name, band))
    return fail("arguments", "band must be low, mid or high, got \"" + band_name + "\"");
  if (!cfg_.eq_enabled) return ignored(m, "--disable-filters");
  std::string error;
  if (!ctl_.set_deck_eq(deck, band, engine::crowdstream_eq_gain(percent), kEqGlide, error)) return fail("busy", error);
  return done();
}

Router::Reply Router::cs_deck_eq_all(const OscMessage& m, const Peer&) {
  ArgReader a(m);
  std::string deck_name;
  double p[3] = {};
  int deck = 0;
  if (!a.count(4, 4) || !a.string(0, "deck", deck_name) || !a.number(1, "low", p[0]) || !a.number(2, "mid", p[1]) ||
      !a.number(3, "high", p[2])) {
    return fail("arguments", a.error());
  }
  if (!parse_deck(deck_name, deck)) return fail("arguments", "deck must be A, B, C or D, got \"" + deck_name + "\"");
  if (!cfg_.eq_enabled) return ignored(m, "--disable-filters");
  if (!ctl_.can_send(3)) return fail("busy", ctl_.busy_reason(3));
  std::string error;
  for (int band = 0; band < 3; ++band) {  // same frame for all three: they glide together
    if (!ctl_.set_deck_eq(deck, band, engine::crowdstream_eq_gain(p[band]), kEqGlide, error))
      return fail("busy", error);
  }
  return done();
}

Router::Reply Router::cs_deck_filter(const OscMessage& m, const Peer&) {
  ArgReader a(m);
  std::string deck_name, band_name;
  int deck = 0, band = 0;
  if (!a.count(3, 3) || !a.string(0, "deck", deck_name) || !a.string(1, "band", band_name)) {
    return fail("arguments", a.error());
  }
  // The gain is coerced, not refused: negative or non-finite → 0 (the spec), above +12 dB → 4.
  double g = 0;
  const OscArg& arg = m.args[2];
  if (arg.is_number()) {
    g = arg.as_double();
  } else if (!(arg.is_string() && ArgReader::parse_double(arg.s, g))) {
    return fail("arguments", "argument 3 (gain) must be a number, got " + arg.to_string());
  }
  if (!parse_deck(deck_name, deck)) return fail("arguments", "deck must be A, B, C or D, got \"" + deck_name + "\"");
  if (!parse_band(band_name, band))
    return fail("arguments", "band must be low, mid or high, got \"" + band_name + "\"");
  if (!cfg_.eq_enabled) return ignored(m, "--disable-filters");
  std::string error;
  if (!ctl_.set_deck_eq(deck, band, engine::crowdstream_filter_gain(g), kEqGlide, error)) return fail("busy", error);
  return done();
}

Router::Reply Router::cs_set_tempo(const OscMessage& m, const Peer&) {
  ArgReader a(m);
  double bpm = 0;
  if (!a.count(1, 1) || !a.number(0, "bpm", bpm)) return fail("arguments", a.error());
  if (bpm <= 0) return fail("range", "bpm must be > 0");
  if (bpm > 999) return fail("range", "bpm must be ≤ 999");
  const double ratio = bpm / cfg_.bpm;
  if (ratio < 0.25 || ratio > 4) return fail("range", "bpm must be within 0.25–4 × the base tempo (--bpm)");
  movement_active_ = false;  // an explicit tempo overrides the movement glide
  const int failed = apply_tempo(bpm, kTempoGlide);
  if (failed > 0) {
    return fail("busy", std::to_string(failed) +
                            " players could not follow the tempo: all resamplers are in use "
                            "(--max-resampled-voices)");
  }
  return done({OscArg::Float(bpm)});
}

Router::Reply Router::cs_total_movement(const OscMessage& m, const Peer&) {
  ArgReader a(m);
  double v = 0;
  if (!a.count(1, 1) || !a.number(0, "value", v)) return fail("arguments", a.error());
  if (v < 0) return fail("range", "movement must be ≥ 0");
  // Normalise (v ≤ 1: clamp 0–1; v > 1: v / 0.6 clamped) and map to a target tempo; tick()
  // glides toward it.
  const double mv = v <= 1 ? std::clamp(v, 0.0, 1.0) : std::clamp(v / cfg_.movement_max, 0.0, 1.0);
  const double* th = cfg_.movement_thresholds;
  const double* tp = cfg_.movement_tempos;
  double target;
  if (mv < th[0]) {
    target = tp[0];
  } else if (mv < th[1]) {
    target = tp[1];
  } else if (mv < th[2]) {
    target = tp[2];
  } else {
    const double span = 0.6 - th[2];  // the old server's: up to a movement of 0.6
    target = tp[3] + (span > 0 ? std::min((mv - th[2]) / span, 1.0) : 0.0) * (tp[4] - tp[3]);
  }
  if (!movement_active_) movement_bpm_ = bpm_;
  movement_active_ = true;
  movement_target_ = std::clamp(target, cfg_.bpm * 0.25, cfg_.bpm * 4);
  return done({OscArg::Float(movement_target_)});
}

Router::Reply Router::cs_set_meter(const OscMessage& m, const Peer&) {
  ArgReader a(m);
  std::int64_t beats = 0;
  if (!a.count(1, 1) || !a.integer(0, "beats per bar", beats)) return fail("arguments", a.error());
  if (beats <= 0 || beats > 64) return fail("range", "beats per bar must be 1..64");
  meter_ = static_cast<int>(beats);
  return done();
}

Router::Reply Router::cs_print_clock(const OscMessage& m, const Peer&) {
  ArgReader a(m);
  bool on = true;
  if (!a.count(0, 1) || !a.flag_or(0, "on", on, true)) return fail("arguments", a.error());
  print_clock_ = on;  // logged once per beat by tick(), off the audio thread
  last_beat_printed_ = -1;
  return done({OscArg::Int(on ? 1 : 0)});
}

Router::Reply Router::cs_reset(const OscMessage& m, const Peer&) {
  // No arguments, or crowdstream's empty array (",[]", rewritten to no arguments on arrival).
  ArgReader a(m);
  if (!a.count(0, 0)) return fail("arguments", a.error());
  t0_frame_ = message_frame_ >= 0 ? message_frame_ : ctl_.now_frame();
  beat_origin_frame_ = t0_frame_;  // the beat clock restarts from t0
  beat_origin_beats_ = 0;
  last_beat_printed_ = -1;
  return done();
}

Router::Reply Router::cs_play(const OscMessage& m, const Peer&) {
  ArgReader a(m);
  std::string deck_name, path;
  double start_at = 0;
  int deck = 0;
  if (!a.count(3, 3) || !a.string(0, "deck", deck_name) || !a.string(1, "path", path) ||
      !a.number(2, "start_at", start_at)) {
    return fail("arguments", a.error());
  }
  if (!parse_deck(deck_name, deck)) return fail("arguments", "deck must be A, B, C or D, got \"" + deck_name + "\"");
  if (std::string e; !limits::seconds_in_range(start_at, 0, limits::kMaxAheadSeconds, "start_at", e))
    return fail("range", e);
  const int id = kDeckBase[deck];
  const std::int64_t at = frame_after(start_at);  // counted from arrival, as the old server did
  Reply r = ensure_loaded(id, path);
  if (!r.ok) return r;
  PlayOptions po;
  po.volume = static_cast<float>(cfg_.crowdstream_volume);
  po.loop = true;
  po.deck = deck;
  armed_[deck].armed = false;
  Controller::ScheduleScope when(ctl_, at);
  return start_player(id, po);
}

Router::Reply Router::cs_cue(const OscMessage& m, const Peer&) {
  ArgReader a(m);
  std::string deck_name, path;
  double start = 0;
  int deck = 0;
  if (!a.count(2, 3) || !a.string(0, "deck", deck_name) || !a.string(1, "path", path) ||
      !a.number_or(2, "start", start, 0.0)) {
    return fail("arguments", a.error());
  }
  if (!parse_deck(deck_name, deck)) return fail("arguments", "deck must be A, B, C or D, got \"" + deck_name + "\"");
  if (start < 0 || start >= 1) return fail("range", "start is a fraction of the file: 0 ≤ start < 1");
  const int id = kDeckBase[deck];
  // Cueing a deck that is playing replaces (silences) it.
  const VoiceHandle playing = player(id);
  Reply r = ensure_loaded(id, path);  // /done only once the file can start in the next callback
  if (!r.ok) return r;
  std::string error;
  if (playing.valid() && ctl_.voice_alive(playing)) ctl_.stop(playing, 0.0, error);
  players_.erase(id);
  armed_[deck] = Armed{
      true, id, static_cast<std::int64_t>(std::floor(start * static_cast<double>(ctl_.source(id)->total_frames()))),
      ctl_.load_serial(id)};
  return done({OscArg::Int(id)});
}

Router::Reply Router::cs_start_group(const OscMessage& m, const Peer&) {
  // start_at and decks in either order: every argument that parses as a number is the time
  // (the last wins); the rest are deck names.
  if (m.args.empty()) return fail("arguments", "expects a start time and at least one deck");
  double start_at = 0;
  bool want[engine::kNumDecks] = {};
  int decks = 0;
  for (const OscArg& arg : m.args) {
    double v = 0;
    if (arg.is_number() || (arg.is_string() && ArgReader::parse_double(arg.s, v))) {
      start_at = arg.is_number() ? arg.as_double() : v;
      if (!std::isfinite(start_at)) return fail("arguments", "start_at must be a finite number");
      continue;
    }
    int d = 0;
    if (!arg.is_string() || !parse_deck(arg.s, d)) return fail("arguments", "not a deck or a time: " + arg.to_string());
    if (!want[d]) ++decks;
    want[d] = true;
  }
  if (decks == 0) return fail("arguments", "expects at least one deck (A–D)");
  if (std::string e; !limits::seconds_in_range(start_at, 0, limits::kMaxAheadSeconds, "start_at", e))
    return fail("range", e);
  // Check every deck first: nothing starts unless the whole group can.
  for (int d = 0; d < engine::kNumDecks; ++d) {
    if (!want[d] || player(kDeckBase[d]).valid()) continue;  // a deck already playing continues
    if (!armed_[d].armed || ctl_.source(armed_[d].id) == nullptr) {
      return fail("unknown_id", std::string("deck ") + static_cast<char>('A' + d) + " is not cued (/cue it first)");
    }
    if (ctl_.load_serial(armed_[d].id) != armed_[d].load) {  // reloaded since /cue: its cue point meant another file
      armed_[d].armed = false;
      return fail("unknown_id", std::string("deck ") + static_cast<char>('A' + d) +
                                    " was reloaded since it was cued (/cue it again)");
    }
  }
  // Every armed deck starts on the same output sample — all of them or none ("busy").
  const std::int64_t at = frame_after(start_at);
  Controller::ScheduleScope when(ctl_, at);
  if (!ctl_.can_send(2 * engine::kNumDecks)) return fail("busy", ctl_.busy_reason(2 * engine::kNumDecks));
  std::vector<OscArg> started{OscArg::Int64(at)};
  for (int d = 0; d < engine::kNumDecks; ++d) {
    if (!want[d] || player(kDeckBase[d]).valid()) continue;
    PlayOptions po;
    po.volume = static_cast<float>(cfg_.crowdstream_volume);
    po.loop = true;
    po.deck = d;
    po.start_frame = armed_[d].start_frame;
    Reply r = start_player(armed_[d].id, po);
    if (!r.ok) return r;  // only "busy" can get here; earlier decks of the group are queued
    armed_[d].armed = false;
    started.push_back(OscArg::Str(std::string(1, static_cast<char>('A' + d))));
  }
  return done(started);
}

Router::Reply Router::cs_fade(const OscMessage& m, const Peer&) {
  ArgReader a(m);
  std::string deck_name;
  double start_at = 0, duration = 2.0;
  int deck = 0;
  if (!a.count(2, 3) || !a.string(0, "deck", deck_name) || !a.number(1, "start_at", start_at) ||
      !a.number_or(2, "duration", duration, 2.0)) {
    return fail("arguments", a.error());
  }
  if (!parse_deck(deck_name, deck)) return fail("arguments", "deck must be A, B, C or D, got \"" + deck_name + "\"");
  if (std::string e; !limits::seconds_in_range(start_at, 0, limits::kMaxAheadSeconds, "start_at", e))
    return fail("range", e);
  if (std::string e; !limits::seconds_in_range(duration, 0, limits::kMaxFadeSeconds, "duration", e))
    return fail("range", e);
  // After start_at, the deck's level ramps linearly from wherever it is then to 0.
  Controller::ScheduleScope when(ctl_, frame_after(start_at));
  std::string error;
  if (!ctl_.set_deck_level(deck, 0.0f, duration, error)) return fail("busy", error);
  return done();
}

Router::Reply Router::cs_schedule_c_at(const OscMessage& m, const Peer&) {
  ArgReader a(m);
  double at = 0;
  if (!a.count(1, 1) || !a.number(0, "seconds", at)) return fail("arguments", a.error());
  if (std::string e; !limits::seconds_in_range(at, 0, limits::kMaxAheadSeconds, "seconds since t0", e))
    return fail("range", e);
  const int id = kDeckBase[2];
  if (ctl_.source(id) == nullptr) return fail("unknown_id", "buffer 2100 (deck C) is not loaded", {OscArg::Int(id)});
  const std::int64_t frame = t0_frame_ + static_cast<std::int64_t>(std::llround(at * cfg_.sample_rate));
  // Not before the message itself takes effect (a bundle's time, --dummy_after's moment).
  const std::int64_t now = std::max(ctl_.now_frame() + cfg_.buffer_size, message_frame_);
  PlayOptions po;
  po.volume = static_cast<float>(cfg_.crowdstream_volume);
  po.loop = true;
  po.deck = 2;
  Controller::ScheduleScope when(ctl_, std::max(frame, now));
  Reply r = start_player(id, po);
  if (r.ok && frame < now) {
    char why[96];
    std::snprintf(why, sizeof why, "late by %.1f ms (started at once)",
                  1000.0 * static_cast<double>(now - frame) / cfg_.sample_rate);
    return fail("late", why, r.values);
  }
  return r;
}

Router::Reply Router::cs_dummy(const OscMessage& m, const Peer& from) {
  // Logged for the operator, escaped and at most a few lines a second: a flood of /dummy must
  // not become a flood of log (nor forge lines).
  std::uint64_t skipped = 0;
  if (log_limit_.allow("/dummy", skipped)) {
    spdlog::info("OSC /dummy from {}: {}{}", from.endpoint.to_string(), log_escape(m.to_string(), 512),
                 suppressed_note(skipped));
  }
  if (!m.args.empty() && m.args[0].is_string() && m.args[0].s == "schedule_c_at") {
    OscMessage inner;
    inner.address = "/schedule_c_at";
    inner.args.assign(m.args.begin() + 1, m.args.end());
    return cs_schedule_c_at(inner, from);
  }
  return done();
}

Router::Reply Router::cs_dance(const OscMessage&, const Peer&) {
  // The movement detector's other addresses (person count, per-limb movement, 51-float pose
  // keypoints many times a second): nothing to do; answered without parsing.
  return done();
}

}  // namespace stemd::control
