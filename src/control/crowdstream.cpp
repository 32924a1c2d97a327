// The crowdstream dialect, unchanged (../shared/spec/crowdstream-osc.md) [control].
// Argument types are coerced as the old Python server's int()/float()/str() did (args.hpp).
// The table checks each address's argument count; every handler then reads and checks all of
// its arguments (limits.hpp) and changes state only after the last check passed.
#include "args.hpp"
#include "deck_ids.hpp"
#include "dialects.hpp"
#include "engine/deck_eq.hpp"
#include "limits.hpp"
#include "router.hpp"

#include <spdlog/spdlog.h>

#include <cmath>
#include <cstdio>
#include <filesystem>

namespace stemd::control {

namespace {

using K = ErrorKind;
using limits::kMaxVolume;
constexpr double kEqGlide = 0.05;     // EQ gains glide over ~50 ms (the spec)
constexpr double kTempoGlide = 0.05;  // a tempo change glides every player's rate
constexpr auto kAny = HandlerSpec::kAny;

using dialect_reply::done;
using dialect_reply::fail;

// Band names, any case, blanks around them ignored: a prefix of the name ("l", "lo", "low") or,
// as the old server read them (startswith "lo", "mi", "hi"), anything its first two letters
// begin ("lows", "middle", "highs").
bool parse_band(const std::string& s, int& band) {
  std::string b;
  for (char c : trim_blanks(s)) b += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (b.empty()) return false;
  for (int i = 0; i < 3; ++i) {
    const std::string names[3] = {"low", "mid", "high"};
    if (names[i].rfind(b, 0) == 0 || b.rfind(names[i].substr(0, 2), 0) == 0) {
      band = i;
      return true;
    }
  }
  return false;
}

Reply bad_deck(const std::string& name) {
  return fail(K::kArguments, "deck must be A, B, C or D, got \"" + name + "\"");
}
Reply bad_band(const std::string& name) {
  return fail(K::kArguments, "band must be low, mid or high, got \"" + name + "\"");
}
Reply not_loaded(int id) {
  return fail(K::kUnknownId, "buffer " + std::to_string(id) + " is not loaded", {OscArg::Int(id)});
}

}  // namespace

CrowdstreamDialect::CrowdstreamDialect(Router& r) : r_(r), ctl_(r.ctl_), cfg_(r.cfg_) {}

void CrowdstreamDialect::register_into(HandlerTable& t) {
  table_ = &t;
  constexpr auto kOnArrival = HandlerSpec::Timing::kOnArrival;
  auto add = [&](const char* address, std::size_t lo, std::size_t hi, Reply (CrowdstreamDialect::*fn)(const Call&),
                 HandlerSpec::Timing timing = HandlerSpec::Timing::kTimed) {
    t.add(
        address, lo, hi, [this, fn](const Call& c) { return (this->*fn)(c); }, timing);
  };
  add("/load_buffer", 2, 3, &CrowdstreamDialect::load_buffer, kOnArrival);
  add("/play_stem", 1, 5, &CrowdstreamDialect::play_stem);
  add("/play_stem_section", 5, 6, &CrowdstreamDialect::play_stem_section);
  add("/stop_stem", 1, 1, &CrowdstreamDialect::stop_stem);
  add("/stem_volume", 2, 2, &CrowdstreamDialect::stem_volume);
  add("/crossfade_levels", 2, 2, &CrowdstreamDialect::crossfade_levels);
  add("/deck_levels", 0, 4, &CrowdstreamDialect::deck_levels);
  t.add(
      "/get_status", 0, 0, [this](const Call&) { return done(r_.status_fields()); }, kOnArrival);
  add("/test_tone", 0, 2, &CrowdstreamDialect::test_tone);
  add("/mixer_cleanup", 0, 0, &CrowdstreamDialect::mixer_cleanup);
  add("/deck_eq", 3, 3, &CrowdstreamDialect::deck_eq);
  add("/deck_eq_all", 4, 4, &CrowdstreamDialect::deck_eq_all);
  add("/deck_filter", 3, 3, &CrowdstreamDialect::deck_filter);
  add("/set_tempo", 1, 1, &CrowdstreamDialect::set_tempo);
  add("/dance/total_movement", 1, 1, &CrowdstreamDialect::total_movement);
  add("/set_meter", 1, 1, &CrowdstreamDialect::set_meter);
  add("/print_clock", 0, 1, &CrowdstreamDialect::print_clock, kOnArrival);
  add("/reset", 0, 0, &CrowdstreamDialect::reset);
  add("/play", 3, 3, &CrowdstreamDialect::play);
  add("/cue", 2, 3, &CrowdstreamDialect::cue, kOnArrival);
  add("/start_group", 0, kAny, &CrowdstreamDialect::start_group);
  add("/fade", 2, 3, &CrowdstreamDialect::fade);
  add("/schedule_c_at", 1, 1, &CrowdstreamDialect::schedule_c_at);
  add("/dummy", 0, kAny, &CrowdstreamDialect::dummy, kOnArrival);
  // Addresses the old server ignored (no handler there: python-osc dropped them), sent by
  // crowdstream clients: the detector's legacy pose frames (to every destination), the
  // sc-engine example's addresses, and old clients' /memory_cleanup. Accepted as no-ops.
  for (const char* a :
       {"/pose/keypoints", "/memory_cleanup", "/play_sound", "/set_volume", "/stop_sound", "/stop_all"}) {
    t.add(a, 0, kAny, [this](const Call& c) {
      return r_.ignored(
          c.m, c.m.address == "/memory_cleanup" ? "the old server had no such address" : "not for the audio server");
    });
  }
  // The movement detector's other addresses (person count, per-limb movement, 51-float pose
  // keypoints many times a second): nothing to do; answered without parsing.
  t.add_prefix("/dance/", [](const Call&) { return done(); });
}

Reply CrowdstreamDialect::load_buffer(const Call& c) {
  ArgReader a(c.m);
  int id = 0;
  std::string path, name;
  if (!a.id(0, id) || !a.string(1, "path", path)) return fail(K::kArguments, a.error(), a.id_values());
  if (a.has(2) && !a.string(2, "name", name)) return fail(K::kArguments, a.error(), {OscArg::Int(id)});
  if (name.empty()) name = std::filesystem::path(path).stem().string();
  return r_.load_file(c, id, path, name, false);
}

Reply CrowdstreamDialect::play_stem(const Call& c) {
  ArgReader a(c.m);
  int id = 0;
  double rate = 1, volume = cfg_.crowdstream_volume, start = 0;
  bool loop = true;
  if (!a.id(0, id) || !a.number_or(1, "rate", rate, 1.0) ||
      !a.number_or(2, "volume", volume, cfg_.crowdstream_volume) || !a.flag_or(3, "loop", loop, true) ||
      !a.number_or(4, "start", start, 0.0)) {
    return fail(K::kArguments, a.error(), id ? std::vector<OscArg>{OscArg::Int(id)} : std::vector<OscArg>{});
  }
  const std::vector<OscArg> idv{OscArg::Int(id)};
  if (!limits::rate_in_range(rate)) return fail(K::kRange, limits::kRateRange, idv);
  if (volume < 0 || volume > kMaxVolume) return fail(K::kRange, "volume must be 0..4", idv);
  if (start < 0) return fail(K::kRange, "start is a fraction of the file: 0 ≤ start < 1", idv);
  const io::Source* src = ctl_.source(id);
  if (src == nullptr) return not_loaded(id);
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
  return r_.start_player(id, po, c.at);
}

Reply CrowdstreamDialect::play_stem_section(const Call& c) {
  ArgReader a(c.m);
  int id = 0;
  double rate = 1, volume = 0, start = 0, duration = 0;
  bool loop = false;
  if (!a.id(0, id) || !a.number(1, "rate", rate) || !a.number(2, "volume", volume) || !a.flag(3, "loop", loop) ||
      !a.number(4, "start", start) || !a.number_or(5, "duration", duration, 0.0)) {
    return fail(K::kArguments, a.error(), a.id_values());
  }
  const std::vector<OscArg> idv{OscArg::Int(id)};
  if (!limits::rate_in_range(rate)) return fail(K::kRange, limits::kRateRange, idv);
  if (volume < 0 || volume > kMaxVolume) return fail(K::kRange, "volume must be 0..4", idv);
  if (start < 0 || start >= 1) return fail(K::kRange, "start is a fraction of the file: 0 ≤ start < 1", idv);
  if (std::string e;
      !limits::seconds_in_range(duration, 0, limits::kMaxSectionSeconds, "duration (the file's seconds)", e))
    return fail(K::kRange, e, idv);
  const io::Source* src = ctl_.source(id);
  if (src == nullptr) return not_loaded(id);
  // Play from `start` for `duration` seconds of the file (0 = to its end), looping it when loop = 1.
  const std::int64_t total = src->total_frames();
  const auto first = static_cast<std::int64_t>(std::floor(start * static_cast<double>(total)));
  const int file_rate = src->view.sample_rate > 0 ? src->view.sample_rate : cfg_.sample_rate;
  std::int64_t end = duration > 0 ? first + static_cast<std::int64_t>(std::llround(duration * file_rate)) : total;
  end = std::min(end, total);
  if (end <= first) return fail(K::kRange, "the section is empty", idv);
  PlayOptions po;
  po.rate = static_cast<float>(rate);
  po.volume = static_cast<float>(volume);
  po.loop = loop;
  po.start_frame = first;
  po.loop_start = first;
  po.loop_end = end;
  po.deck = deck_of_id(id);
  return r_.start_player(id, po, c.at);
}

Reply CrowdstreamDialect::stop_stem(const Call& c) {
  ArgReader a(c.m);
  int id = 0;
  if (!a.id(0, id)) return fail(K::kArguments, a.error(), a.id_values());
  const std::vector<OscArg> idv{OscArg::Int(id)};
  if (ctl_.source(id) == nullptr && !r_.player(id).valid()) return not_loaded(id);
  r_.forget_lost_voice(id);  // a voice waiting for its file is not started again (state_held.cpp)
  const VoiceHandle h = r_.player(id);
  std::string error;
  if (h.valid() && !ctl_.stop(c.at, h, 0.0, error)) return fail(K::kBusy, error, idv);
  r_.end_player(id, c.at, 0.0, engine::Curve::kLinear);  // and what it was to take over from
  return done(idv);
}

Reply CrowdstreamDialect::stem_volume(const Call& c) {
  ArgReader a(c.m);
  int id = 0;
  double volume = 0;
  if (!a.id(0, id) || !a.number(1, "volume", volume)) return fail(K::kArguments, a.error(), a.id_values());
  const std::vector<OscArg> idv{OscArg::Int(id)};
  if (volume < 0 || volume > kMaxVolume) return fail(K::kRange, "volume must be 0..4", idv);
  const VoiceHandle h = r_.player(id);
  // No player: a cued deck keeps the volume for its /start_group, as the old server's armed
  // player did; any other id (not loaded, stopped, ended: the energy sender's 1000) is ignored.
  if (Armed& armed = armed_[deck_of_id(id)];
      !h.valid() && armed.armed && armed.id == id && ctl_.source(id) != nullptr && ctl_.load_serial(id) == armed.load) {
    armed.volume = static_cast<float>(volume);
    return done(idv);
  }
  if (!h.valid()) return r_.ignored(c.m, ctl_.source(id) ? "buffer not playing" : "buffer not loaded");
  std::string error;
  if (!ctl_.set_volume(c.at, h, static_cast<float>(volume), cfg_.level_ramp_s, error))
    return fail(K::kBusy, error, idv);
  return done(idv);
}

Reply CrowdstreamDialect::crossfade_levels(const Call& c) {
  ArgReader a(c.m);
  double la = 0, lb = 0;
  if (!a.number(0, "a", la) || !a.number(1, "b", lb)) return fail(K::kArguments, a.error(), a.id_values());
  if (la < 0 || lb < 0 || la > kMaxVolume || lb > kMaxVolume) return fail(K::kRange, "levels must be 0..4");
  if (!ctl_.can_send(c.at, 2)) return fail(K::kBusy, ctl_.busy_reason(c.at, 2));
  if (cfg_.equal_power) {
    // Equal power: the client's linear (1 − x, x) becomes (cos, sin) of x·π/2 — constant power
    // through the crossfade. Levels above 1 pass unchanged.
    auto law = [](double l) { return l <= 1.0 ? std::sin(l * M_PI / 2) : l; };
    la = law(la);
    lb = law(lb);
  }
  std::string error;
  if (!ctl_.set_deck_level(c.at, 0, static_cast<float>(la), cfg_.level_ramp_s, error) ||
      !ctl_.set_deck_level(c.at, 1, static_cast<float>(lb), cfg_.level_ramp_s, error)) {
    return fail(K::kBusy, error);
  }
  return done();
}

Reply CrowdstreamDialect::deck_levels(const Call& c) {
  ArgReader a(c.m);
  double levels[4] = {};
  static const char* names[4] = {"A", "B", "C", "D"};
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (!a.number(i, names[i], levels[i])) return fail(K::kArguments, a.error(), a.id_values());
    if (levels[i] < 0 || levels[i] > kMaxVolume)
      return fail(K::kRange, std::string("deck ") + names[i] + " level must be 0..4");
  }
  if (!ctl_.can_send(c.at, a.size())) return fail(K::kBusy, ctl_.busy_reason(c.at, a.size()));
  std::string error;
  for (std::size_t i = 0; i < a.size(); ++i) {  // a missing level keeps its value
    if (!ctl_.set_deck_level(c.at, static_cast<int>(i), static_cast<float>(levels[i]), cfg_.level_ramp_s, error)) {
      return fail(K::kBusy, error);
    }
  }
  return done();
}

Reply CrowdstreamDialect::test_tone(const Call& c) {
  ArgReader a(c.m);
  double freq = cfg_.tone_frequency, level = cfg_.tone_level;
  // [frequency] [level]: old clients send a level (linear peak, 0 < level ≤ 1) too.
  if (!a.number_or(0, "frequency", freq, cfg_.tone_frequency) || !a.number_or(1, "level", level, cfg_.tone_level)) {
    return fail(K::kArguments, a.error(), a.id_values());
  }
  return r_.test_tone(freq, level, cfg_.tone_seconds, c.at);
}

Reply CrowdstreamDialect::mixer_cleanup(const Call&) {
  ctl_.clear(0.0);  // at once, whatever its time; every voice fades out (declick), buffers freed as they retire
  r_.players_.clear();
  r_.forget_waiting(-1);  // and the state file's sources still waiting for their files
  return done();
}

Reply CrowdstreamDialect::deck_eq(const Call& c) {
  ArgReader a(c.m);
  std::string deck_name, band_name;
  double percent = 0;
  int deck = 0, band = 0;
  if (!a.string(0, "deck", deck_name) || !a.string(1, "band", band_name) || !a.number(2, "percent", percent)) {
    return fail(K::kArguments, a.error(), a.id_values());
  }
  if (!parse_deck(deck_name, deck)) return bad_deck(deck_name);
  if (!parse_band(band_name, band)) return bad_band(band_name);
  if (!cfg_.eq_enabled) return r_.ignored(c.m, cfg_.eq_off_reason.c_str());
  std::string error;
  if (!ctl_.set_deck_eq(c.at, deck, band, engine::crowdstream_eq_gain(percent), kEqGlide, error))
    return fail(K::kBusy, error);
  return done();
}

Reply CrowdstreamDialect::deck_eq_all(const Call& c) {
  ArgReader a(c.m);
  std::string deck_name;
  double p[3] = {};
  int deck = 0;
  if (!a.string(0, "deck", deck_name) || !a.number(1, "low", p[0]) || !a.number(2, "mid", p[1]) ||
      !a.number(3, "high", p[2])) {
    return fail(K::kArguments, a.error(), a.id_values());
  }
  if (!parse_deck(deck_name, deck)) return bad_deck(deck_name);
  if (!cfg_.eq_enabled) return r_.ignored(c.m, cfg_.eq_off_reason.c_str());
  if (!ctl_.can_send(c.at, 3)) return fail(K::kBusy, ctl_.busy_reason(c.at, 3));
  std::string error;
  for (int band = 0; band < 3; ++band) {  // same frame for all three: they glide together
    if (!ctl_.set_deck_eq(c.at, deck, band, engine::crowdstream_eq_gain(p[band]), kEqGlide, error))
      return fail(K::kBusy, error);
  }
  return done();
}

Reply CrowdstreamDialect::deck_filter(const Call& c) {
  ArgReader a(c.m);
  std::string deck_name, band_name;
  int deck = 0, band = 0;
  if (!a.string(0, "deck", deck_name) || !a.string(1, "band", band_name))
    return fail(K::kArguments, a.error(), a.id_values());
  // The gain is coerced, not refused: negative or non-finite → 0 (the spec), above +12 dB → 4.
  double g = 0;
  const OscArg& arg = c.m.args[2];
  if (arg.is_number()) {
    g = arg.as_double();
  } else if (!(arg.is_string() && ArgReader::parse_double(arg.s, g))) {
    return fail(K::kArguments, "argument 3 (gain) must be a number, got " + arg.to_string());
  }
  if (!parse_deck(deck_name, deck)) return bad_deck(deck_name);
  if (!parse_band(band_name, band)) return bad_band(band_name);
  if (!cfg_.eq_enabled) return r_.ignored(c.m, cfg_.eq_off_reason.c_str());
  std::string error;
  if (!ctl_.set_deck_eq(c.at, deck, band, engine::crowdstream_filter_gain(g), kEqGlide, error))
    return fail(K::kBusy, error);
  return done();
}

Reply CrowdstreamDialect::set_tempo(const Call& c) {
  ArgReader a(c.m);
  double bpm = 0;
  if (!a.number(0, "bpm", bpm)) return fail(K::kArguments, a.error(), a.id_values());
  if (bpm <= 0) return fail(K::kRange, "bpm must be > 0");
  if (bpm > limits::kMaxBpm) return fail(K::kRange, "bpm must be ≤ 999");
  const double ratio = bpm / cfg_.bpm;
  if (ratio < limits::kMinTempoRatio || ratio > limits::kMaxTempoRatio)
    return fail(K::kRange, "bpm must be within 0.25–4 × the base tempo (--bpm)");
  if (std::string e = r_.link_tempo_problem(); !e.empty()) return fail(K::kBusy, e);  // --link (outside pass 26, M2)
  r_.tempo_.stop_movement();  // an explicit tempo overrides the movement glide
  std::string why;            // all players follow at c.at, or nothing changes (the schedule is full)
  if (const int failed = r_.apply_tempo(bpm, kTempoGlide, c.at, &why); failed != 0)
    return fail(K::kBusy, failed < 0 ? why : std::to_string(failed) + " players could not follow the tempo: " + why);
  return done({OscArg::Float(bpm)});
}

Reply CrowdstreamDialect::total_movement(const Call& c) {
  ArgReader a(c.m);
  double v = 0;
  if (!a.number(0, "value", v)) return fail(K::kArguments, a.error(), a.id_values());
  // Normalise (v ≤ 1: clamp 0–1, a detector's -0.0001 is still no movement, as the old server
  // took it; v > 1: v / 0.6 clamped) and map to a target tempo; tick() glides toward it.
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
  return done({OscArg::Float(r_.tempo_.follow_movement(target))});
}

Reply CrowdstreamDialect::set_meter(const Call& c) {
  ArgReader a(c.m);
  std::int64_t beats = 0;
  if (!a.integer(0, "beats per bar", beats)) return fail(K::kArguments, a.error(), a.id_values());
  if (beats <= 0 || beats > limits::kMaxMeter) return fail(K::kRange, "beats per bar must be 1..64");
  r_.tempo_.set_meter(static_cast<int>(beats));
  return done();
}

Reply CrowdstreamDialect::print_clock(const Call& c) {
  ArgReader a(c.m);
  bool on = true;
  if (!a.flag_or(0, "on", on, true)) return fail(K::kArguments, a.error(), a.id_values());
  r_.tempo_.set_print(on);  // logged once per beat by tick(), off the audio thread
  return done({OscArg::Int(on ? 1 : 0)});
}

Reply CrowdstreamDialect::reset(const Call& c) {
  // No arguments, or crowdstream's empty array (",[]", rewritten to no arguments on arrival).
  t0_frame_ = c.at >= 0 ? c.at : ctl_.now_frame();
  r_.tempo_.restart(t0_frame_);  // the beat clock restarts from t0
  return done();
}

Reply CrowdstreamDialect::play(const Call& c) {
  ArgReader a(c.m);
  std::string deck_name, path;
  double start_at = 0;
  int deck = 0;
  if (!a.string(0, "deck", deck_name) || !a.string(1, "path", path) || !a.number(2, "start_at", start_at)) {
    return fail(K::kArguments, a.error(), a.id_values());
  }
  if (!parse_deck(deck_name, deck)) return bad_deck(deck_name);
  if (std::string e; !r_.start_at_in_range(c, start_at, e)) return fail(K::kRange, e);
  const int id = kDeckBase[deck];
  const std::int64_t at = r_.frame_after(c, start_at);  // counted from arrival, as the old server did
  Reply r = r_.load_file(c, id, path, std::filesystem::path(path).stem().string(), true);
  if (!r.ok) return r;
  PlayOptions po;
  po.volume = static_cast<float>(cfg_.crowdstream_volume);
  po.loop = true;
  po.deck = deck;
  armed_[deck].armed = false;
  return r_.start_player(id, po, at);
}

Reply CrowdstreamDialect::cue(const Call& c) {
  ArgReader a(c.m);
  std::string deck_name, path;
  double start = 0;
  int deck = 0;
  if (!a.string(0, "deck", deck_name) || !a.string(1, "path", path) || !a.number_or(2, "start", start, 0.0)) {
    return fail(K::kArguments, a.error(), a.id_values());
  }
  if (!parse_deck(deck_name, deck)) return bad_deck(deck_name);
  if (start < 0 || start >= 1) return fail(K::kRange, "start is a fraction of the file: 0 ≤ start < 1");
  const int id = kDeckBase[deck];
  // Cueing a deck that is playing replaces (silences) it.
  const VoiceHandle playing = r_.player(id);
  // /done only once the file can start in the next callback
  Reply r = r_.load_file(c, id, path, std::filesystem::path(path).stem().string(), true);
  if (!r.ok) return r;
  std::string error;
  if (playing.valid() && ctl_.voice_alive(playing)) ctl_.stop(c.at, playing, 0.0, error, engine::Curve::kLinear, true);
  r_.players_.erase(id);
  armed_[deck] = Armed{
      true, id, static_cast<std::int64_t>(std::floor(start * static_cast<double>(ctl_.source(id)->total_frames()))),
      ctl_.load_serial(id), static_cast<float>(cfg_.crowdstream_volume)};
  return done({OscArg::Int(id)});
}

Reply CrowdstreamDialect::start_group(const Call& c) {
  // start_at and decks in either order: every argument that parses as a number is the time
  // (the last wins); the rest are deck names.
  if (c.m.args.empty()) return fail(K::kArguments, "expects a start time and at least one deck");
  double start_at = 0;
  bool want[engine::kNumDecks] = {};
  int decks = 0;
  std::string unknown;  // names that are no deck: the old server skipped them and started the rest
  int unknown_count = 0;
  for (const OscArg& arg : c.m.args) {
    double v = 0;
    if (arg.is_number() || (arg.is_string() && ArgReader::parse_double(arg.s, v))) {
      start_at = arg.is_number() ? arg.as_double() : v;
      if (!std::isfinite(start_at)) return fail(K::kArguments, "start_at must be a finite number");
      continue;
    }
    if (!arg.is_string()) return fail(K::kArguments, "not a deck or a time: " + arg.to_string());
    int d = 0;
    if (!parse_deck(arg.s, d)) {
      if (unknown_count++ < 4) unknown += (unknown.empty() ? "\"" : ", \"") + arg.s.substr(0, 32) + "\"";
      continue;
    }
    if (!want[d]) ++decks;
    want[d] = true;
  }
  if (unknown_count > 4) unknown += " and " + std::to_string(unknown_count - 4) + " more";
  if (decks == 0)
    return fail(K::kArguments, "expects at least one deck (A–D)" + (unknown.empty() ? "" : ", got " + unknown));
  if (std::string e; !r_.start_at_in_range(c, start_at, e)) return fail(K::kRange, e);
  // Check every deck first: nothing starts unless the whole group can.
  for (int d = 0; d < engine::kNumDecks; ++d) {
    if (!want[d] || r_.player(kDeckBase[d]).valid()) continue;  // a deck already playing continues
    if (!armed_[d].armed || ctl_.source(armed_[d].id) == nullptr) {
      return fail(K::kUnknownId, std::string("deck ") + static_cast<char>('A' + d) + " is not cued (/cue it first)");
    }
    if (ctl_.load_serial(armed_[d].id) != armed_[d].load) {  // reloaded since /cue: its cue point meant another file
      armed_[d].armed = false;
      return fail(K::kUnknownId, std::string("deck ") + static_cast<char>('A' + d) +
                                     " was reloaded since it was cued (/cue it again)");
    }
  }
  // With /stemd/quantize set, the group starts on the next quantum of the beat clock (the
  // Link session's with --link) at or after start_at.
  Reply r = start_group_decks(want, r_.quantized_start(r_.frame_after(c, start_at)));
  if (unknown.empty() || (!r.ok && r.kind != K::kLate)) return r;
  // The named decks started (/done's values); /fail tells what was ignored (as "late" does).
  const std::string ignored = "not a deck (A–D), ignored: " + unknown;
  return fail(K::kUnknownId, r.ok ? ignored : ignored + "; " + r.reason, r.values);
}

// Every armed deck of `want` starts on the same output sample `at` — all of them or none ("busy").
Reply CrowdstreamDialect::start_group_decks(const bool (&want)[engine::kNumDecks], std::int64_t at) {
  if (!ctl_.can_send(at, 2 * engine::kNumDecks)) return fail(K::kBusy, ctl_.busy_reason(at, 2 * engine::kNumDecks));
  std::vector<std::pair<int, PlayOptions>> group;
  for (int d = 0; d < engine::kNumDecks; ++d) {
    if (!want[d] || r_.player(kDeckBase[d]).valid()) continue;
    PlayOptions po;
    po.volume = armed_[d].volume;  // /cue's, or a /stem_volume since
    po.loop = true;
    po.deck = d;
    po.start_frame = armed_[d].start_frame;
    group.emplace_back(armed_[d].id, po);
  }
  // Streamed decks' streams open first, all of them, off the control thread; then every deck
  // starts on `at` (the re-run keeps the frame decided now).
  if (Reply p = r_.prepare_streams(group, at); !p.ok) return p;
  if (Reply p = r_.check_streams(group); !p.ok) return p;  // a stream that failed to open: none starts
  std::vector<OscArg> started{OscArg::Int64(r_.play_resume_ != nullptr ? r_.play_resume_->at : at)};
  for (const auto& [id, po] : group) {
    const int d = po.deck;
    Reply r = r_.start_player(id, po, at);
    if (!r.ok) return r;  // only "busy" can get here (checked above); earlier decks of the group are queued
    armed_[d].armed = false;
    started.push_back(OscArg::Str(std::string(1, static_cast<char>('A' + d))));
  }
  return done(started);
}

Reply CrowdstreamDialect::fade(const Call& c) {
  ArgReader a(c.m);
  std::string deck_name;
  double start_at = 0, duration = 2.0;
  int deck = 0;
  if (!a.string(0, "deck", deck_name) || !a.number(1, "start_at", start_at) ||
      !a.number_or(2, "duration", duration, 2.0)) {
    return fail(K::kArguments, a.error(), a.id_values());
  }
  if (!parse_deck(deck_name, deck)) return bad_deck(deck_name);
  if (std::string e; !r_.start_at_in_range(c, start_at, e)) return fail(K::kRange, e);
  // The dialect's own rule: a duration ≤ 0 fades at once (it was refused below 0). Not a number
  // or an infinite one is still refused.
  if (std::isfinite(duration) && duration < 0) duration = 0;
  if (std::string e; !limits::seconds_in_range(duration, 0, limits::kMaxFadeSeconds, "duration", e))
    return fail(K::kRange, e);
  // After start_at, the deck's level ramps linearly from wherever it is then to 0.
  const std::int64_t when = r_.frame_after(c, start_at);
  std::string error;
  if (!ctl_.set_deck_level(when, deck, 0.0f, duration, error)) return fail(K::kBusy, error);
  return done();
}

Reply CrowdstreamDialect::schedule_c_at(const Call& c) {
  ArgReader a(c.m);
  double at = 0;
  if (!a.number(0, "seconds", at)) return fail(K::kArguments, a.error(), a.id_values());
  if (std::string e; !limits::seconds_in_range(at, 0, limits::kMaxAheadSeconds, "seconds since t0", e))
    return fail(K::kRange, e);
  const int id = kDeckBase[2];
  if (ctl_.source(id) == nullptr) return fail(K::kUnknownId, "buffer 2100 (deck C) is not loaded", {OscArg::Int(id)});
  const std::int64_t frame = t0_frame_ + static_cast<std::int64_t>(std::llround(at * cfg_.sample_rate));
  // Not before the message itself takes effect (a bundle's time, --dummy_after's moment).
  const std::int64_t now = std::max(ctl_.now_frame() + cfg_.buffer_size, c.at);
  PlayOptions po;
  po.volume = static_cast<float>(cfg_.crowdstream_volume);
  po.loop = true;
  po.deck = 2;
  Reply r = r_.start_player(id, po, std::max(frame, now));
  if (r.ok && frame < now) {
    char why[96];
    std::snprintf(why, sizeof why, "late by %.1f ms (started at once)",
                  1000.0 * static_cast<double>(now - frame) / cfg_.sample_rate);
    return fail(K::kLate, why, r.values);
  }
  return r;
}

Reply CrowdstreamDialect::dummy(const Call& c) {
  // Logged for the operator, escaped and at most a few lines a second: a flood of /dummy must
  // not become a flood of log (nor forge lines).
  std::uint64_t skipped = 0;
  if (r_.log_limit_.allow_info("OSC /dummy", skipped)) {
    spdlog::info("OSC /dummy from {}: {}{}", c.from.endpoint.to_string(), base::log_escape(c.m.to_string(), 512),
                 base::suppressed_note(skipped));
  }
  if (!c.m.args.empty() && c.m.args[0].is_string() && c.m.args[0].s == "schedule_c_at") {
    OscMessage inner;
    inner.address = "/schedule_c_at";
    inner.args.assign(c.m.args.begin() + 1, c.m.args.end());
    return HandlerTable::dispatch(*table_->find(inner.address), Call{inner, c.from, c.at, c.arrival});
  }
  return done();
}

}  // namespace stemd::control
