// The native dialect, under /stemd/ [control]. Reference: README "OSC reference".
//
// Ids are buffer ids, as in crowdstream: an id holds one loaded file and at most one player
// (playing it again replaces the player). Positions in a file are in the FILE's own seconds
// (file frames / file rate) unless a unit is given ("s", "frac" = fraction of the file, "frames"
// = file frames); fades and ramps are seconds of output. Every message gets one reply:
// /done <address> [id] [values…] or /fail <address> [id] <reason>.
#include "args.hpp"
#include "deck_ids.hpp"
#include "dialects.hpp"
#include "limits.hpp"
#include "router.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>

namespace stemd::control {

namespace {

using K = ErrorKind;
using limits::kMaxVolume;

using dialect_reply::done;
using dialect_reply::fail;
constexpr const char* kCurves = "curve must be linear, exponential, equal_power or s_curve";

// "<what> must be 0..4, got v": a level or volume out of range, with what was sent.
std::string level_range(const char* what, double v) {
  char buf[96];
  std::snprintf(buf, sizeof buf, "%s must be 0..4, got %.10g", what, v);
  return buf;
}

// position + unit → file frame; false with a reason. Seconds are the FILE's own seconds: `rate`
// is the file's sample rate, not the output's.
bool to_frame(double pos, const std::string& unit, std::int64_t total, int rate, std::int64_t& out,
              std::string& error) {
  double f = 0;
  if (unit == "s" || unit == "sec" || unit == "seconds") {
    f = pos * rate;
  } else if (unit == "frac" || unit == "fraction") {
    if (pos < 0 || pos >= 1) {
      error = "a fraction must be 0 ≤ position < 1";
      return false;
    }
    f = pos * static_cast<double>(total);
  } else if (unit == "frames" || unit == "frame") {
    f = pos;
  } else {
    error = "unit must be s, frac or frames, got \"" + unit + "\"";
    return false;
  }
  if (f < 0 || (total > 0 && f >= static_cast<double>(total))) {
    char buf[128];
    if (unit == "frames" || unit == "frame") {  // in the unit given (it said "< 10 s" to 500000 frames)
      std::snprintf(buf, sizeof buf, "position is outside the file (0 ≤ position < %lld frames, %g file seconds)",
                    static_cast<long long>(total), static_cast<double>(total) / rate);
    } else {
      std::snprintf(buf, sizeof buf, "position is outside the file (0 ≤ position < %g file seconds)",
                    static_cast<double>(total) / rate);
    }
    error = buf;
    return false;
  }
  out = static_cast<std::int64_t>(std::floor(f));
  return true;
}

// "linear", "exponential" (or "exp"), "equal_power" (or "equal-power", "power"), "s_curve" ("s").
bool parse_curve(const std::string& name, engine::Curve& c) {
  if (name == "linear" || name == "lin") {
    c = engine::Curve::kLinear;
  } else if (name == "exponential" || name == "exp") {
    c = engine::Curve::kExponential;
  } else if (name == "equal_power" || name == "equal-power" || name == "power") {
    c = engine::Curve::kEqualPower;
  } else if (name == "s_curve" || name == "s-curve" || name == "s") {
    c = engine::Curve::kSCurve;
  } else {
    return false;
  }
  return true;
}

}  // namespace

NativeDialect::NativeDialect(Router& r, CrowdstreamDialect& cs) : r_(r), cs_(cs), ctl_(r.ctl_), cfg_(r.cfg_) {}

void NativeDialect::register_into(HandlerTable& t) {
  constexpr auto kOnArrival = HandlerSpec::Timing::kOnArrival;
  auto add = [&](const char* address, std::size_t lo, std::size_t hi, Reply (NativeDialect::*fn)(const Call&),
                 HandlerSpec::Timing timing = HandlerSpec::Timing::kTimed) {
    t.add(
        address, lo, hi, [this, fn](const Call& c) { return (this->*fn)(c); }, timing);
  };
  // The same as /load_buffer.
  t.add(
      "/stemd/load", 2, 3, [this](const Call& c) { return cs_.load_buffer(c); }, kOnArrival);
  add("/stemd/unload", 1, 1, &NativeDialect::unload, kOnArrival);
  add("/stemd/play", 1, 7, &NativeDialect::play);
  add("/stemd/play_region", 3, 8, &NativeDialect::play_region);
  add("/stemd/stop", 1, 3, &NativeDialect::stop);
  t.add("/stemd/pause", 1, 2, [this](const Call& c) { return pause_or_resume(c, true); });
  t.add("/stemd/resume", 1, 2, [this](const Call& c) { return pause_or_resume(c, false); });
  add("/stemd/seek", 2, 3, &NativeDialect::seek);
  add("/stemd/volume", 2, 3, &NativeDialect::volume);
  add("/stemd/fade", 3, 4, &NativeDialect::fade);
  add("/stemd/pan", 2, 3, &NativeDialect::pan);
  add("/stemd/rate", 2, 3, &NativeDialect::rate);
  add("/stemd/master", 1, 3, &NativeDialect::master);
  add("/stemd/deck", 2, 5, &NativeDialect::deck);
  add("/stemd/list", 0, 2, &NativeDialect::list, kOnArrival);
  add("/stemd/voices", 0, 3, &NativeDialect::voices, kOnArrival);
  add("/stemd/status", 0, 0, &NativeDialect::status, kOnArrival);
  add("/stemd/notify", 0, 1, &NativeDialect::notify, kOnArrival);
  t.add(
      "/stemd/ping", 0, 0, [](const Call&) { return done(); }, kOnArrival);
  add("/stemd/tone", 0, 3, &NativeDialect::tone);
  add("/stemd/stretch", 2, 2, &NativeDialect::stretch);
  add("/stemd/quantize", 1, 1, &NativeDialect::quantize);
  add("/stemd/cookie", 0, 1, &NativeDialect::cookie, kOnArrival);
  add("/stemd/clear_schedule", 0, 0, &NativeDialect::clear_schedule, kOnArrival);
}

// /stemd/unload id
Reply NativeDialect::unload(const Call& c) {
  ArgReader a(c.m);
  int id = 0;
  if (!a.id(0, id)) return fail(K::kArguments, a.error(), a.id_values());
  std::string error;
  // A state file's source waiting for its file is given up too (also when a retry loaded it
  // meanwhile: otherwise the next retry brought it back).
  const bool waited = r_.forget_waiting(id);
  if (!ctl_.unload(c.at, id, error)) {
    if (waited) return done({OscArg::Int(id)});
    return fail(K::kUnknownId, error, {OscArg::Int(id)});
  }
  r_.players_.erase(id);
  return done({OscArg::Int(id)});
}

std::int64_t NativeDialect::start_frame(const Call& c) const {
  return r_.quantising() ? r_.quantized_start(r_.frame_after(c, 0.0)) : c.at;
}

// /stemd/play id [volume 1] [loop 0] [position 0] [unit "s"] [rate 1] [deck] → /done /stemd/play id voice
Reply NativeDialect::play(const Call& c) {
  ArgReader a(c.m);
  int id = 0;
  double volume = 1, pos = 0, rate = 1;
  bool loop = false;
  std::string unit = "s";
  if (!a.id(0, id) || !a.number_or(1, "volume", volume, 1.0) || !a.flag_or(2, "loop", loop, false) ||
      !a.number_or(3, "position", pos, 0.0) || (a.has(4) && !a.string(4, "unit", unit)) ||
      !a.number_or(5, "rate", rate, 1.0)) {
    return fail(K::kArguments, a.error(), a.id_values());
  }
  const std::vector<OscArg> idv{OscArg::Int(id)};
  int deck = 0;
  if (Reply r; !deck_arg(a, 6, id, deck, r)) return r;
  if (volume < 0 || volume > kMaxVolume) return fail(K::kRange, level_range("volume", volume), idv);
  if (!limits::rate_in_range(rate)) return fail(K::kRange, limits::kRateRange, idv);
  const io::Source* src = ctl_.source(id);
  if (src == nullptr) return fail(K::kUnknownId, "id " + std::to_string(id) + " is not loaded", idv);
  PlayOptions po;
  std::string error;
  if (!to_frame(pos, unit, src->total_frames(), r_.file_rate(*src), po.start_frame, error))
    return fail(K::kRange, error, idv);
  po.rate = static_cast<float>(rate);
  po.volume = static_cast<float>(volume);
  po.loop = loop;
  po.deck = deck;
  const std::int64_t at = start_frame(c);
  Reply r = r_.start_player(id, po, at);
  if (r.ok) r.values.push_back(OscArg::Int(r_.player(id).id));
  add_quantised_wait(r, at);
  return r;
}

// With /stemd/quantize the start waits for the next multiple of the quantum: the answer says so,
// `id voice starts_in_s quantum` (output seconds from now; without a quantum it is `id voice`).
// stemctl said "playing" while the voice waited up to a bar (outside pass 26, user L7).
void NativeDialect::add_quantised_wait(Reply& r, std::int64_t at) const {
  const double quantum = r_.tempo_.quantum_beats();
  if (!r.ok || !r_.quantising()) return;
  const std::int64_t used = r_.play_resume_ != nullptr ? r_.play_resume_->at : at;  // a streamed play's
  const double wait = static_cast<double>(used - ctl_.now_frame()) / cfg_.sample_rate;
  r.values.push_back(OscArg::Float(std::max(0.0, wait)));
  r.values.push_back(OscArg::Float(quantum));
}

// /stemd/play_region id start end [loop 1] [count 0] [volume 1] [unit s] [deck]: play [start, end),
// looping it `count` times in all (0 = forever) — or once, as a section, when loop = 0.
Reply NativeDialect::play_region(const Call& c) {
  ArgReader a(c.m);
  int id = 0;
  double start = 0, end = 0, volume = 1;
  bool loop = true;
  std::int64_t count = 0;
  std::string unit = "s";
  if (!a.id(0, id) || !a.number(1, "start", start) || !a.number(2, "end", end) || !a.flag_or(3, "loop", loop, true) ||
      (a.has(4) && !a.integer(4, "count", count)) || !a.number_or(5, "volume", volume, 1.0) ||
      (a.has(6) && !a.string(6, "unit", unit))) {
    return fail(K::kArguments, a.error(), a.id_values());
  }
  const std::vector<OscArg> idv{OscArg::Int(id)};
  int deck = 0;
  if (Reply r; !deck_arg(a, 7, id, deck, r)) return r;
  if (count < 0 || count > limits::kMaxLoopCount) return fail(K::kRange, "count must be 0 (forever) .. 1000000", idv);
  if (volume < 0 || volume > kMaxVolume) return fail(K::kRange, level_range("volume", volume), idv);
  const io::Source* src = ctl_.source(id);
  if (src == nullptr) return fail(K::kUnknownId, "id " + std::to_string(id) + " is not loaded", idv);
  const int rate = r_.file_rate(*src);  // start and end are file seconds
  std::int64_t f0 = 0, f1 = 0;
  std::string error;
  if (!to_frame(start, unit, src->total_frames(), rate, f0, error)) return fail(K::kRange, "start: " + error, idv);
  const bool to_end = (unit == "frac" || unit == "fraction") && end >= 1.0;
  if (to_end) {
    f1 = src->total_frames();
  } else if (!to_frame(end, unit, src->total_frames() + 1, rate, f1, error)) {
    return fail(K::kRange, "end: " + error, idv);
  }
  if (f1 <= f0) return fail(K::kRange, "the region is empty (end ≤ start)", idv);
  PlayOptions po;
  po.volume = static_cast<float>(volume);
  po.loop = loop;
  po.loop_count = static_cast<std::uint32_t>(count);
  po.start_frame = f0;
  po.loop_start = f0;
  po.loop_end = f1;
  po.deck = deck;
  const std::int64_t at = start_frame(c);
  Reply r = r_.start_player(id, po, at);
  if (r.ok) r.values.push_back(OscArg::Int(r_.player(id).id));
  add_quantised_wait(r, at);
  return r;
}

bool NativeDialect::deck_arg(ArgReader& a, std::size_t i, int id, int& deck, Reply& r) {
  deck = deck_of_id(id);
  if (!a.has(i)) return true;  // the id's own deck
  std::string name;
  if (!a.string(i, "deck", name)) {
    r = fail(K::kArguments, a.error(), {OscArg::Int(id)});
    return false;
  }
  if (!parse_deck(name, deck)) {
    r = fail(K::kArguments, "deck must be A, B, C or D, got \"" + name + "\"", {OscArg::Int(id)});
    return false;
  }
  return true;
}

bool NativeDialect::playing(int id, VoiceHandle& h, Reply& r) {
  h = r_.player(id);
  if (h.valid()) return true;
  r = fail(K::kUnknownId, "id " + std::to_string(id) + " is not playing", {OscArg::Int(id)});
  return false;
}

// /stemd/stop id [fade_s] [curve]
Reply NativeDialect::stop(const Call& c) {
  ArgReader a(c.m);
  int id = 0;
  double fade = 0;
  std::string curve_name = "linear";
  if (!a.id(0, id) || !a.number_or(1, "fade", fade, 0.0) || (a.has(2) && !a.string(2, "curve", curve_name))) {
    return fail(K::kArguments, a.error(), a.id_values());
  }
  const std::vector<OscArg> idv{OscArg::Int(id)};
  engine::Curve curve;
  if (!parse_curve(curve_name, curve)) return fail(K::kArguments, kCurves, idv);
  if (std::string e; !limits::seconds_in_range(fade, 0, limits::kMaxFadeSeconds, "fade", e))
    return fail(K::kRange, e, idv);
  // A voice waiting for its file (it stopped reading mid-play: state_held.cpp) is not started again.
  const bool waited = r_.forget_lost_voice(id);
  VoiceHandle h;
  if (Reply r; !playing(id, h, r)) {
    if (waited) return done(idv);
    r.quiet = ctl_.source(id) != nullptr;  // loaded, nothing playing: nothing to stop (as `mpc stop`)
    return r;
  }
  std::string error;
  if (!ctl_.stop(c.at, h, fade, error, curve)) return fail(K::kBusy, error, idv);
  r_.end_player(id, c.at, fade, curve);  // and what it was to take over from
  return done(idv);
}

// /stemd/pause id [fade_s], /stemd/resume id [fade_s]
Reply NativeDialect::pause_or_resume(const Call& c, bool pause) {
  ArgReader a(c.m);
  int id = 0;
  double fade = 0;
  if (!a.id(0, id) || !a.number_or(1, "fade", fade, 0.0)) return fail(K::kArguments, a.error(), a.id_values());
  const std::vector<OscArg> idv{OscArg::Int(id)};
  if (std::string e; !limits::seconds_in_range(fade, 0, limits::kMaxFadeSeconds, "fade", e))
    return fail(K::kRange, e, idv);
  VoiceHandle h;
  if (Reply r; !playing(id, h, r)) return r;
  std::string error;
  if (!(pause ? ctl_.pause(c.at, h, fade, error) : ctl_.resume(c.at, h, fade, error)))
    return fail(K::kBusy, error, idv);
  return done(idv);
}

// /stemd/seek id position [unit "s"]
Reply NativeDialect::seek(const Call& c) {
  ArgReader a(c.m);
  int id = 0;
  double pos = 0;
  std::string unit = "s";
  if (!a.id(0, id) || !a.number(1, "position", pos) || (a.has(2) && !a.string(2, "unit", unit))) {
    return fail(K::kArguments, a.error(), a.id_values());
  }
  const std::vector<OscArg> idv{OscArg::Int(id)};
  VoiceHandle h;
  if (Reply r; !playing(id, h, r)) return r;
  std::int64_t frame = 0;
  std::string error;
  const io::Source& src = *ctl_.source(id);
  if (!to_frame(pos, unit, src.total_frames(), r_.file_rate(src), frame, error)) return fail(K::kRange, error, idv);
  // A streamed voice's new stream opens off the control thread first (the message is re-run then).
  std::unique_ptr<io::LoaderThread::Opened> opened;
  std::int64_t at = c.at;
  if (r_.play_resume_ != nullptr) {
    at = r_.play_resume_->at;
    if (Reply t = r_.take_stream(id, opened); !t.ok) return t;
  } else if (Reply p = r_.prepare_seek(id, h, frame, c.at); !p.ok) {
    return p;
  }
  const std::uint64_t busy_before = ctl_.busy_refusals();
  if (!ctl_.seek(at, h, frame, error, std::move(opened)))
    return fail(ctl_.busy_refusals() != busy_before ? K::kBusy : K::kFile, error, idv);
  return done(idv);
}

// /stemd/volume id volume [ramp_s]
Reply NativeDialect::volume(const Call& c) {
  ArgReader a(c.m);
  int id = 0;
  double v = 0, ramp = cfg_.level_ramp_s;
  if (!a.id(0, id) || !a.number(1, "volume", v) || !a.number_or(2, "ramp", ramp, cfg_.level_ramp_s)) {
    return fail(K::kArguments, a.error(), a.id_values());
  }
  const std::vector<OscArg> idv{OscArg::Int(id)};
  if (v < 0 || v > kMaxVolume) return fail(K::kRange, level_range("volume", v), idv);
  if (std::string e; !limits::seconds_in_range(ramp, 0, limits::kMaxFadeSeconds, "ramp", e))
    return fail(K::kRange, e, idv);
  VoiceHandle h;
  if (Reply r; !playing(id, h, r)) return r;
  std::string error;
  if (!ctl_.set_volume(c.at, h, static_cast<float>(v), ramp, error)) return fail(K::kBusy, error, idv);
  return done(idv);
}

// /stemd/fade id target seconds [curve linear]: the player's volume to `target` along a curve.
Reply NativeDialect::fade(const Call& c) {
  ArgReader a(c.m);
  int id = 0;
  double target = 0, seconds = 0;
  std::string curve_name = "linear";
  if (!a.id(0, id) || !a.number(1, "target", target) || !a.number(2, "seconds", seconds) ||
      (a.has(3) && !a.string(3, "curve", curve_name))) {
    return fail(K::kArguments, a.error(), a.id_values());
  }
  const std::vector<OscArg> idv{OscArg::Int(id)};
  engine::Curve curve;
  if (!parse_curve(curve_name, curve)) return fail(K::kArguments, kCurves, idv);
  if (target < 0 || target > kMaxVolume) return fail(K::kRange, level_range("target volume", target), idv);
  if (std::string e; !limits::seconds_in_range(seconds, 0, limits::kMaxFadeSeconds, "fade", e))
    return fail(K::kRange, e, idv);
  VoiceHandle h;
  if (Reply r; !playing(id, h, r)) return r;
  std::string error;
  if (!ctl_.set_volume(c.at, h, static_cast<float>(target), seconds, error, curve)) return fail(K::kBusy, error, idv);
  return done(idv);
}

// /stemd/pan id pan(-1..1) [ramp_s]
Reply NativeDialect::pan(const Call& c) {
  ArgReader a(c.m);
  int id = 0;
  double p = 0, ramp = cfg_.level_ramp_s;
  if (!a.id(0, id) || !a.number(1, "pan", p) || !a.number_or(2, "ramp", ramp, cfg_.level_ramp_s)) {
    return fail(K::kArguments, a.error(), a.id_values());
  }
  const std::vector<OscArg> idv{OscArg::Int(id)};
  if (p < -1 || p > 1) return fail(K::kRange, "pan must be -1 (left) .. 1 (right)", idv);
  if (std::string e; !limits::seconds_in_range(ramp, 0, limits::kMaxFadeSeconds, "ramp", e))
    return fail(K::kRange, e, idv);
  VoiceHandle h;
  if (Reply r; !playing(id, h, r)) return r;
  std::string error;
  if (!ctl_.set_pan(c.at, h, static_cast<float>(p), ramp, error)) return fail(K::kBusy, error, idv);
  return done(idv);
}

// /stemd/rate id rate [ramp_s]
Reply NativeDialect::rate(const Call& c) {
  ArgReader a(c.m);
  int id = 0;
  double rate = 1, ramp = 0;
  if (!a.id(0, id) || !a.number(1, "rate", rate) || !a.number_or(2, "ramp", ramp, 0.0)) {
    return fail(K::kArguments, a.error(), a.id_values());
  }
  const std::vector<OscArg> idv{OscArg::Int(id)};
  if (!limits::rate_in_range(rate)) return fail(K::kRange, limits::kRateRange, idv);
  if (std::string e; !limits::seconds_in_range(ramp, 0, limits::kMaxFadeSeconds, "ramp", e))
    return fail(K::kRange, e, idv);
  VoiceHandle h;
  if (Reply r; !playing(id, h, r)) return r;
  std::string error;
  if (!ctl_.set_rate(c.at, h, r_.player_rate(rate), ramp, error)) return fail(K::kBusy, error, idv);
  r_.player_rate_[id] = static_cast<float>(rate);
  return done(idv);
}

// /stemd/master volume [ramp_s] [from]: `from` (0..4) starts the ramp there (a jump to it first:
// for a fade the state file restores where it was heard; live, the jump is a step).
Reply NativeDialect::master(const Call& c) {
  ArgReader a(c.m);
  double v = 0, ramp = cfg_.level_ramp_s, from = -1;
  if (!a.number(0, "volume", v) || !a.number_or(1, "ramp", ramp, cfg_.level_ramp_s) ||
      (a.has(2) && !a.number(2, "from", from))) {
    return fail(K::kArguments, a.error(), a.id_values());
  }
  if (v < 0 || v > kMaxVolume) return fail(K::kRange, level_range("master volume", v));
  if (a.has(2) && (from < 0 || from > kMaxVolume)) return fail(K::kRange, level_range("from", from));
  if (std::string e; !limits::seconds_in_range(ramp, 0, limits::kMaxFadeSeconds, "ramp", e)) return fail(K::kRange, e);
  std::string error;
  if (!ctl_.set_master(c.at, static_cast<float>(v), ramp, error, static_cast<float>(from))) {
    return fail(K::kBusy, error);
  }
  return done();
}

// /stemd/deck deck(A–D) level [ramp_s] [curve] [from]: `from` as /stemd/master's.
Reply NativeDialect::deck(const Call& c) {
  ArgReader a(c.m);
  std::string name, curve_name = "linear";
  double v = 0, ramp = cfg_.level_ramp_s, from = -1;
  int deck = 0;
  if (!a.string(0, "deck", name) || !a.number(1, "level", v) || !a.number_or(2, "ramp", ramp, cfg_.level_ramp_s) ||
      (a.has(3) && !a.string(3, "curve", curve_name)) || (a.has(4) && !a.number(4, "from", from))) {
    return fail(K::kArguments, a.error(), a.id_values());
  }
  if (a.has(4) && (from < 0 || from > kMaxVolume)) return fail(K::kRange, level_range("from", from));
  if (!parse_deck(name, deck)) return fail(K::kArguments, "deck must be A, B, C or D, got \"" + name + "\"");
  engine::Curve curve;
  if (!parse_curve(curve_name, curve)) return fail(K::kArguments, kCurves);
  if (v < 0 || v > kMaxVolume) return fail(K::kRange, level_range("level", v));
  if (std::string e; !limits::seconds_in_range(ramp, 0, limits::kMaxFadeSeconds, "ramp", e)) return fail(K::kRange, e);
  std::string error;
  if (!ctl_.set_deck_level(c.at, deck, static_cast<float>(v), ramp, error, curve, static_cast<float>(from))) {
    return fail(K::kBusy, error);
  }
  return done();
}

// /stemd/notify 1|0: subscribe the sender to events for --subscription-ttl seconds (sending it
// again renews), or unsubscribe. → /done /stemd/notify 1 ttl_s, or /done /stemd/notify 0.
Reply NativeDialect::notify(const Call& c) {
  ArgReader a(c.m);
  bool on = true;
  if (!a.flag_or(0, "on", on, true)) return fail(K::kArguments, a.error(), a.id_values());
  const auto now = std::chrono::steady_clock::now();
  if (!on) {
    r_.notifier_.unsubscribe(c.from);
    return done({OscArg::Int(0)});
  }
  // A stream of notifications to a forged address would be a reflector: only a source that
  // proved it receives (the cookie) may subscribe.
  if (r_.unvalidated_)
    return fail(K::kCookie, "cookie required", {OscArg::Str(r_.validator_.mint(c.from.endpoint, now))});
  return r_.notifier_.subscribe(c.from, now);
}

// /stemd/cookie → /done /stemd/cookie token; /stemd/cookie token (the one this source was sent)
// → /done /stemd/cookie seconds: the source's address is validated for that long, and its
// replies are no longer limited to 3× its requests. A wrong or expired token → /fail with a
// fresh one.
Reply NativeDialect::cookie(const Call& c) {
  ArgReader a(c.m);
  std::string token;
  if (a.has(0) && !a.string(0, "cookie", token)) return fail(K::kArguments, a.error(), a.id_values());
  const auto now = std::chrono::steady_clock::now();
  AddressValidator& v = r_.validator_;
  if (!a.has(0)) return done({OscArg::Str(v.mint(c.from.endpoint, now))});
  if (!v.verify(c.from.endpoint, token, now)) {
    return fail(K::kCookie, "bad or expired cookie", {OscArg::Str(v.mint(c.from.endpoint, now))});
  }
  if (c.from.tcp_fd < 0) v.validate(c.from.endpoint, now);
  r_.unvalidated_ = false;
  return done({OscArg::Int(AddressValidator::kValidFor.count())});
}

// /stemd/stretch id tempo(0.25..4): speed without pitch change (Rubber Band); 1 = normal speed.
Reply NativeDialect::stretch(const Call& c) {
  ArgReader a(c.m);
  int id = 0;
  double tempo = 1;
  if (!a.id(0, id) || !a.number(1, "tempo", tempo)) return fail(K::kArguments, a.error(), a.id_values());
  const std::vector<OscArg> idv{OscArg::Int(id)};
  if (!limits::rate_in_range(tempo)) return fail(K::kRange, "tempo must be 0.25..4", idv);
  VoiceHandle h;
  if (Reply r; !playing(id, h, r)) return r;
  std::string error;
  if (!ctl_.set_stretch(c.at, h, static_cast<float>(tempo), error)) return fail(K::kBusy, error, idv);
  return done(idv);
}

// /stemd/quantize beats: /stemd/play and /stemd/play_region start on the next multiple of
// `beats` of the beat clock (from /reset's t0, at the current tempo); 0 = at once.
Reply NativeDialect::quantize(const Call& c) {
  ArgReader a(c.m);
  double beats = 0;
  if (!a.number(0, "beats", beats)) return fail(K::kArguments, a.error(), a.id_values());
  if (beats != 0 && !(beats >= limits::kMinQuantumBeats && beats <= limits::kMaxQuantumBeats))
    return fail(K::kRange, "beats must be 0 (off) or 1/64 .. 256");
  r_.tempo_.set_quantum(beats);
  return done({OscArg::Float(beats)});
}

// /stemd/tone [frequency 440] [level_db −12] [seconds 2]
Reply NativeDialect::tone(const Call& c) {
  ArgReader a(c.m);
  double freq = 0, level_db = 0, seconds = 0;
  if (!a.number_or(0, "frequency", freq, cfg_.tone_frequency) ||
      !a.number_or(1, "level_db", level_db, 20 * std::log10(cfg_.tone_level)) ||
      !a.number_or(2, "seconds", seconds, cfg_.tone_seconds)) {
    return fail(K::kArguments, a.error(), a.id_values());
  }
  if (!(level_db >= limits::kMinToneDb && level_db <= 0)) return fail(K::kRange, "level must be −60..0 dBFS");
  return r_.test_tone(freq, std::pow(10.0, level_db / 20.0), seconds, c.at);
}

// /stemd/clear_schedule → /done /stemd/clear_schedule count: drops every timed command still
// waiting for its time (a play scheduled but not started ends, stopped); count = how many.
// At once, whatever the message's own time.
Reply NativeDialect::clear_schedule(const Call&) {
  std::size_t cleared = 0;
  std::string error;
  if (!ctl_.clear_schedule(cleared, error)) return fail(K::kBusy, error);
  return done({OscArg::Int(static_cast<std::int64_t>(cleared))});
}

}  // namespace stemd::control
