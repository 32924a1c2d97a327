// The native dialect, under /stemd/ [control]. Reference: README "OSC reference".
//
// Ids are buffer ids, as in crowdstream: an id holds one loaded file and at most one player
// (playing it again replaces the player). Positions in a file are in the FILE's own seconds
// (file frames / file rate) unless a unit is given ("s", "frac" = fraction of the file, "frames"
// = file frames); fades and ramps are seconds of output. Every message gets one reply:
// /done <address> [id] [values…] or /fail <address> [id] <reason>.
#include "args.hpp"
#include "limits.hpp"
#include "router.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>

namespace stemd::control {

namespace {

constexpr double kMaxVolume = 4.0;

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
    char buf[96];
    std::snprintf(buf, sizeof buf, "position is outside the file (0 ≤ position < %g s)",
                  static_cast<double>(total) / rate);
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

const char* state_name(std::uint8_t s, bool paused) {
  if (paused) return "paused";
  switch (s) {
    case 1:
      return "playing";
    case 2:
      return "starved";
    case 3:
      return "stopping";
    case 4:
      return "paused";
    default:
      return "starting";
  }
}

}  // namespace

void Router::register_native() {
  handlers_["/stemd/load"] = &Router::cs_load_buffer;  // id path [name]: the same as /load_buffer
  handlers_["/stemd/unload"] = &Router::n_unload;
  handlers_["/stemd/play"] = &Router::n_play;
  handlers_["/stemd/play_region"] = &Router::n_play_region;
  handlers_["/stemd/stop"] = &Router::n_stop;
  handlers_["/stemd/pause"] = &Router::n_pause;
  handlers_["/stemd/resume"] = &Router::n_resume;
  handlers_["/stemd/seek"] = &Router::n_seek;
  handlers_["/stemd/volume"] = &Router::n_volume;
  handlers_["/stemd/fade"] = &Router::n_fade;
  handlers_["/stemd/pan"] = &Router::n_pan;
  handlers_["/stemd/rate"] = &Router::n_rate;
  handlers_["/stemd/master"] = &Router::n_master;
  handlers_["/stemd/deck"] = &Router::n_deck;
  handlers_["/stemd/list"] = &Router::n_list;
  handlers_["/stemd/voices"] = &Router::n_voices;
  handlers_["/stemd/status"] = &Router::n_status;
  handlers_["/stemd/notify"] = &Router::n_notify;
  handlers_["/stemd/ping"] = &Router::n_ping;
  handlers_["/stemd/tone"] = &Router::n_tone;
  handlers_["/stemd/stretch"] = &Router::n_stretch;
  handlers_["/stemd/quantize"] = &Router::n_quantize;
  handlers_["/stemd/cookie"] = &Router::n_cookie;
  handlers_["/stemd/clear_schedule"] = &Router::n_clear_schedule;
}

// /stemd/unload id
Router::Reply Router::n_unload(const OscMessage& m, const Peer&) {
  ArgReader a(m);
  int id = 0;
  if (!a.count(1, 1) || !a.id(0, id)) return fail("arguments", a.error());
  std::string error;
  if (!ctl_.unload(id, error)) return fail("unknown_id", error, {OscArg::Int(id)});
  players_.erase(id);
  return done({OscArg::Int(id)});
}

// /stemd/play id [volume 1] [loop 0] [position 0] [unit "s"] [rate 1] → /done /stemd/play id voice
Router::Reply Router::n_play(const OscMessage& m, const Peer&) {
  ArgReader a(m);
  int id = 0;
  double volume = 1, pos = 0, rate = 1;
  bool loop = false;
  std::string unit = "s";
  if (!a.count(1, 6) || !a.id(0, id) || !a.number_or(1, "volume", volume, 1.0) || !a.flag_or(2, "loop", loop, false) ||
      !a.number_or(3, "position", pos, 0.0) || (a.has(4) && !a.string(4, "unit", unit)) ||
      !a.number_or(5, "rate", rate, 1.0)) {
    return fail("arguments", a.error());
  }
  const std::vector<OscArg> idv{OscArg::Int(id)};
  if (volume < 0 || volume > kMaxVolume) return fail("range", "volume must be 0..4", idv);
  if (rate < 0.25 || rate > 4) return fail("range", "rate must be 0.25..4", idv);
  const io::Source* src = ctl_.source(id);
  if (src == nullptr) return fail("unknown_id", "id " + std::to_string(id) + " is not loaded", idv);
  PlayOptions po;
  std::string error;
  if (!to_frame(pos, unit, src->total_frames(), file_rate(*src), po.start_frame, error))
    return fail("range", error, idv);
  po.rate = static_cast<float>(rate);
  po.volume = static_cast<float>(volume);
  po.loop = loop;
  po.deck = deck_of_id(id);
  const std::int64_t at = quantum_beats_ > 0 ? quantized(frame_after(0.0)) : message_frame_;
  Controller::ScheduleScope when(ctl_, at);
  Reply r = start_player(id, po);
  if (r.ok) r.values.push_back(OscArg::Int(player(id).id));
  return r;
}

// /stemd/play_region id start end [loop 1] [count 0] [volume 1] [unit s]: play [start, end),
// looping it `count` times in all (0 = forever) — or once, as a section, when loop = 0.
Router::Reply Router::n_play_region(const OscMessage& m, const Peer&) {
  ArgReader a(m);
  int id = 0;
  double start = 0, end = 0, volume = 1;
  bool loop = true;
  std::int64_t count = 0;
  std::string unit = "s";
  if (!a.count(3, 7) || !a.id(0, id) || !a.number(1, "start", start) || !a.number(2, "end", end) ||
      !a.flag_or(3, "loop", loop, true) || (a.has(4) && !a.integer(4, "count", count)) ||
      !a.number_or(5, "volume", volume, 1.0) || (a.has(6) && !a.string(6, "unit", unit))) {
    return fail("arguments", a.error());
  }
  const std::vector<OscArg> idv{OscArg::Int(id)};
  if (count < 0 || count > 1000000) return fail("range", "count must be 0 (forever) .. 1000000", idv);
  if (volume < 0 || volume > kMaxVolume) return fail("range", "volume must be 0..4", idv);
  const io::Source* src = ctl_.source(id);
  if (src == nullptr) return fail("unknown_id", "id " + std::to_string(id) + " is not loaded", idv);
  const int rate = file_rate(*src);  // start and end are file seconds
  std::int64_t f0 = 0, f1 = 0;
  std::string error;
  if (!to_frame(start, unit, src->total_frames(), rate, f0, error)) return fail("range", "start: " + error, idv);
  const bool to_end = (unit == "frac" || unit == "fraction") && end >= 1.0;
  if (to_end) {
    f1 = src->total_frames();
  } else if (!to_frame(end, unit, src->total_frames() + 1, rate, f1, error)) {
    return fail("range", "end: " + error, idv);
  }
  if (f1 <= f0) return fail("range", "the region is empty (end ≤ start)", idv);
  PlayOptions po;
  po.volume = static_cast<float>(volume);
  po.loop = loop;
  po.loop_count = static_cast<std::uint32_t>(count);
  po.start_frame = f0;
  po.loop_start = f0;
  po.loop_end = f1;
  po.deck = deck_of_id(id);
  const std::int64_t at = quantum_beats_ > 0 ? quantized(frame_after(0.0)) : message_frame_;
  Controller::ScheduleScope when(ctl_, at);
  Reply r = start_player(id, po);
  if (r.ok) r.values.push_back(OscArg::Int(player(id).id));
  return r;
}

// The id's player, or the /fail that says it has none.
bool Router::playing(int id, VoiceHandle& h, Reply& r) {
  h = player(id);
  if (h.valid()) return true;
  r = fail("unknown_id", "id " + std::to_string(id) + " is not playing", {OscArg::Int(id)});
  return false;
}

// /stemd/stop id [fade_s] [curve]
Router::Reply Router::n_stop(const OscMessage& m, const Peer&) {
  ArgReader a(m);
  int id = 0;
  double fade = 0;
  std::string curve_name = "linear";
  if (!a.count(1, 3) || !a.id(0, id) || !a.number_or(1, "fade", fade, 0.0) ||
      (a.has(2) && !a.string(2, "curve", curve_name))) {
    return fail("arguments", a.error());
  }
  const std::vector<OscArg> idv{OscArg::Int(id)};
  engine::Curve curve;
  if (!parse_curve(curve_name, curve)) {
    return fail("arguments", "curve must be linear, exponential, equal_power or s_curve", idv);
  }
  if (std::string e; !limits::seconds_in_range(fade, 0, limits::kMaxFadeSeconds, "fade", e))
    return fail("range", e, idv);
  VoiceHandle h;
  if (Reply r; !playing(id, h, r)) return r;
  std::string error;
  if (!ctl_.stop(h, fade, error, curve)) return fail("busy", error, idv);
  players_.erase(id);
  return done(idv);
}

// /stemd/pause id [fade_s], /stemd/resume id [fade_s]
Router::Reply Router::n_pause(const OscMessage& m, const Peer&) { return pause_or_resume(m, true); }
Router::Reply Router::n_resume(const OscMessage& m, const Peer&) { return pause_or_resume(m, false); }

Router::Reply Router::pause_or_resume(const OscMessage& m, bool pause) {
  ArgReader a(m);
  int id = 0;
  double fade = 0;
  if (!a.count(1, 2) || !a.id(0, id) || !a.number_or(1, "fade", fade, 0.0)) return fail("arguments", a.error());
  const std::vector<OscArg> idv{OscArg::Int(id)};
  if (std::string e; !limits::seconds_in_range(fade, 0, limits::kMaxFadeSeconds, "fade", e))
    return fail("range", e, idv);
  VoiceHandle h;
  if (Reply r; !playing(id, h, r)) return r;
  std::string error;
  if (!(pause ? ctl_.pause(h, fade, error) : ctl_.resume(h, fade, error))) return fail("busy", error, idv);
  return done(idv);
}

// /stemd/seek id position [unit "s"]
Router::Reply Router::n_seek(const OscMessage& m, const Peer&) {
  ArgReader a(m);
  int id = 0;
  double pos = 0;
  std::string unit = "s";
  if (!a.count(2, 3) || !a.id(0, id) || !a.number(1, "position", pos) || (a.has(2) && !a.string(2, "unit", unit))) {
    return fail("arguments", a.error());
  }
  const std::vector<OscArg> idv{OscArg::Int(id)};
  VoiceHandle h;
  if (Reply r; !playing(id, h, r)) return r;
  std::int64_t frame = 0;
  std::string error;
  const io::Source& src = *ctl_.source(id);
  if (!to_frame(pos, unit, src.total_frames(), file_rate(src), frame, error)) {
    return fail("range", error, idv);
  }
  if (!ctl_.seek(h, frame, error)) return fail(error.rfind("busy", 0) == 0 ? "busy" : "file", error, idv);
  return done(idv);
}

// /stemd/volume id volume [ramp_s]
Router::Reply Router::n_volume(const OscMessage& m, const Peer&) {
  ArgReader a(m);
  int id = 0;
  double v = 0, ramp = cfg_.level_ramp_s;
  if (!a.count(2, 3) || !a.id(0, id) || !a.number(1, "volume", v) || !a.number_or(2, "ramp", ramp, cfg_.level_ramp_s)) {
    return fail("arguments", a.error());
  }
  const std::vector<OscArg> idv{OscArg::Int(id)};
  if (v < 0 || v > kMaxVolume) return fail("range", "volume must be 0..4", idv);
  if (std::string e; !limits::seconds_in_range(ramp, 0, limits::kMaxFadeSeconds, "ramp", e))
    return fail("range", e, idv);
  VoiceHandle h;
  if (Reply r; !playing(id, h, r)) return r;
  std::string error;
  if (!ctl_.set_volume(h, static_cast<float>(v), ramp, error)) return fail("busy", error, idv);
  return done(idv);
}

// /stemd/fade id target seconds [curve linear]: the player's volume to `target` along a curve.
Router::Reply Router::n_fade(const OscMessage& m, const Peer&) {
  ArgReader a(m);
  int id = 0;
  double target = 0, seconds = 0;
  std::string curve_name = "linear";
  if (!a.count(3, 4) || !a.id(0, id) || !a.number(1, "target", target) || !a.number(2, "seconds", seconds) ||
      (a.has(3) && !a.string(3, "curve", curve_name))) {
    return fail("arguments", a.error());
  }
  const std::vector<OscArg> idv{OscArg::Int(id)};
  engine::Curve curve;
  if (!parse_curve(curve_name, curve)) {
    return fail("arguments", "curve must be linear, exponential, equal_power or s_curve", idv);
  }
  if (target < 0 || target > kMaxVolume) return fail("range", "target volume must be 0..4", idv);
  if (std::string e; !limits::seconds_in_range(seconds, 0, limits::kMaxFadeSeconds, "fade", e))
    return fail("range", e, idv);
  VoiceHandle h;
  if (Reply r; !playing(id, h, r)) return r;
  std::string error;
  if (!ctl_.set_volume(h, static_cast<float>(target), seconds, error, curve)) return fail("busy", error, idv);
  return done(idv);
}

// /stemd/pan id pan(-1..1) [ramp_s]
Router::Reply Router::n_pan(const OscMessage& m, const Peer&) {
  ArgReader a(m);
  int id = 0;
  double p = 0, ramp = cfg_.level_ramp_s;
  if (!a.count(2, 3) || !a.id(0, id) || !a.number(1, "pan", p) || !a.number_or(2, "ramp", ramp, cfg_.level_ramp_s)) {
    return fail("arguments", a.error());
  }
  const std::vector<OscArg> idv{OscArg::Int(id)};
  if (p < -1 || p > 1) return fail("range", "pan must be -1 (left) .. 1 (right)", idv);
  if (std::string e; !limits::seconds_in_range(ramp, 0, limits::kMaxFadeSeconds, "ramp", e))
    return fail("range", e, idv);
  VoiceHandle h;
  if (Reply r; !playing(id, h, r)) return r;
  std::string error;
  if (!ctl_.set_pan(h, static_cast<float>(p), ramp, error)) return fail("busy", error, idv);
  return done(idv);
}

// /stemd/rate id rate [ramp_s]
Router::Reply Router::n_rate(const OscMessage& m, const Peer&) {
  ArgReader a(m);
  int id = 0;
  double r = 1, ramp = 0;
  if (!a.count(2, 3) || !a.id(0, id) || !a.number(1, "rate", r) || !a.number_or(2, "ramp", ramp, 0.0)) {
    return fail("arguments", a.error());
  }
  const std::vector<OscArg> idv{OscArg::Int(id)};
  if (r < 0.25 || r > 4) return fail("range", "rate must be 0.25..4", idv);
  if (std::string e; !limits::seconds_in_range(ramp, 0, limits::kMaxFadeSeconds, "ramp", e))
    return fail("range", e, idv);
  VoiceHandle h;
  if (Reply r; !playing(id, h, r)) return r;
  std::string error;
  const double effective = std::clamp(r * tempo_ratio(), 0.25, 4.0);
  if (!ctl_.set_rate(h, static_cast<float>(effective), ramp, error)) return fail("busy", error, idv);
  player_rate_[id] = static_cast<float>(r);
  return done(idv);
}

// /stemd/master volume [ramp_s]
Router::Reply Router::n_master(const OscMessage& m, const Peer&) {
  ArgReader a(m);
  double v = 0, ramp = cfg_.level_ramp_s;
  if (!a.count(1, 2) || !a.number(0, "volume", v) || !a.number_or(1, "ramp", ramp, cfg_.level_ramp_s)) {
    return fail("arguments", a.error());
  }
  if (v < 0 || v > kMaxVolume) return fail("range", "master volume must be 0..4");
  if (std::string e; !limits::seconds_in_range(ramp, 0, limits::kMaxFadeSeconds, "ramp", e)) return fail("range", e);
  std::string error;
  if (!ctl_.set_master(static_cast<float>(v), ramp, error)) return fail("busy", error);
  return done();
}

// /stemd/deck deck(A–D) level [ramp_s] [curve]
Router::Reply Router::n_deck(const OscMessage& m, const Peer&) {
  ArgReader a(m);
  std::string name, curve_name = "linear";
  double v = 0, ramp = cfg_.level_ramp_s;
  int deck = 0;
  if (!a.count(2, 4) || !a.string(0, "deck", name) || !a.number(1, "level", v) ||
      !a.number_or(2, "ramp", ramp, cfg_.level_ramp_s) || (a.has(3) && !a.string(3, "curve", curve_name))) {
    return fail("arguments", a.error());
  }
  if (!parse_deck(name, deck)) return fail("arguments", "deck must be A, B, C or D, got \"" + name + "\"");
  engine::Curve curve;
  if (!parse_curve(curve_name, curve))
    return fail("arguments", "curve must be linear, exponential, equal_power or s_curve");
  if (v < 0 || v > kMaxVolume) return fail("range", "level must be 0..4");
  if (std::string e; !limits::seconds_in_range(ramp, 0, limits::kMaxFadeSeconds, "ramp", e)) return fail("range", e);
  std::string error;
  if (!ctl_.set_deck_level(deck, static_cast<float>(v), ramp, error, curve)) return fail("busy", error);
  return done();
}

namespace {

// OSC bytes of a string argument (NUL and padding) and its type tag.
std::size_t str_bytes(const std::string& v) { return ((v.size() + 4) & ~std::size_t{3}) + 1; }

constexpr const char* kTooMuchInOnePacket = "the answers to this packet passed 1 MiB: ask for fewer pages per packet";

// Reads the [offset] [count] of a paged request. False with the reply's reason.
bool page_args(ArgReader& a, std::int64_t& offset, std::int64_t& count, std::string& kind, std::string& error) {
  offset = 0;
  count = 0;
  if (!a.count(0, 2) || (a.has(0) && !a.integer(0, "offset", offset)) || (a.has(1) && !a.integer(1, "count", count))) {
    kind = "arguments";
    error = a.error();
    return false;
  }
  if (offset < 0 || count < 0) {
    kind = "range";
    error = "offset and count must be ≥ 0 (count 0: as many as fit)";
    return false;
  }
  return true;
}

}  // namespace

// /stemd/list [offset 0] [count 0 = as many as fit] → count, then per source: id name path
// duration_s streamed playing; then total and the next page's offset (−1: this was the last).
// A page holds at most --page bytes of rows (one UDP datagram): bigger tables are paged,
// never cut.
Router::Reply Router::n_list(const OscMessage& m, const Peer&) {
  ArgReader a(m);
  std::int64_t offset = 0, count = 0;
  std::string kind, error;
  if (!page_args(a, offset, count, kind, error)) return fail(kind, error);
  if (packet_answer_bytes_ >= kMaxPacketAnswer) return fail("limit", kTooMuchInOnePacket);
  const auto sources = ctl_.sources();
  const auto total = static_cast<std::int64_t>(sources.size());
  if (offset > total)
    return fail("range",
                "offset " + std::to_string(offset) + " is past the end (" + std::to_string(total) + " sources)");
  std::vector<OscArg> v;
  v.push_back(OscArg::Int(0));
  std::size_t bytes = 0;
  std::int64_t i = offset, rows = 0;
  for (; i < total && (count == 0 || rows < count); ++i) {
    const auto& s = sources[static_cast<std::size_t>(i)];
    const std::size_t row = 6 + 4 + str_bytes(s.name) + str_bytes(s.path) + 12;
    if (rows > 0 && bytes + row > cfg_.page_bytes) break;  // the next page starts here
    bytes += row;
    ++rows;
    v.push_back(OscArg::Int(s.slot));
    v.push_back(OscArg::Str(s.name));
    v.push_back(OscArg::Str(s.path));
    v.push_back(OscArg::Float(file_seconds(s.frames, s.sample_rate)));
    v.push_back(OscArg::Int(s.streamed ? 1 : 0));
    v.push_back(OscArg::Int(player(s.slot).valid() ? 1 : 0));
  }
  v[0] = OscArg::Int(rows);
  v.push_back(OscArg::Int(total));
  v.push_back(OscArg::Int(i < total ? i : -1));
  return done(v);
}

// /stemd/voices [offset 0] [count 0] → count, then per voice: id name position_s duration_s
// ring_fill(0..1) underruns state; then total and the next page's offset (−1: the last).
Router::Reply Router::n_voices(const OscMessage& m, const Peer&) {
  ArgReader a(m);
  std::int64_t offset = 0, count = 0;
  std::string kind, error;
  if (!page_args(a, offset, count, kind, error)) return fail(kind, error);
  if (packet_answer_bytes_ >= kMaxPacketAnswer) return fail("limit", kTooMuchInOnePacket);
  const auto voices = ctl_.voices();
  const auto total = static_cast<std::int64_t>(voices.size());
  if (offset > total)
    return fail("range",
                "offset " + std::to_string(offset) + " is past the end (" + std::to_string(total) + " voices)");
  std::vector<OscArg> v;
  v.push_back(OscArg::Int(0));
  std::size_t bytes = 0;
  std::int64_t i = offset, rows = 0;
  for (; i < total && (count == 0 || rows < count); ++i) {
    const auto& vi = voices[static_cast<std::size_t>(i)];
    const auto& t = ctl_.engine().telemetry(vi.handle.id);
    const char* state = state_name(t.state.load(std::memory_order_relaxed), vi.paused);
    const std::size_t row = 7 + 4 + str_bytes(vi.name) + 12 + 8 + str_bytes(state);
    if (rows > 0 && bytes + row > cfg_.page_bytes) break;
    bytes += row;
    ++rows;
    v.push_back(OscArg::Int(vi.slot));
    v.push_back(OscArg::Str(vi.name));
    v.push_back(OscArg::Float(file_seconds(vi.position, vi.sample_rate)));
    v.push_back(OscArg::Float(file_seconds(vi.total_frames, vi.sample_rate)));
    v.push_back(OscArg::Float(vi.ring_fill_permille / 1000.0));
    v.push_back(OscArg::Int64(static_cast<std::int64_t>(vi.underruns)));
    v.push_back(OscArg::Str(state));
  }
  v[0] = OscArg::Int(rows);
  v.push_back(OscArg::Int(total));
  v.push_back(OscArg::Int(i < total ? i : -1));
  return done(v);
}

Router::Reply Router::n_status(const OscMessage& m, const Peer&) {
  ArgReader a(m);
  if (!a.count(0, 0)) return fail("arguments", a.error());
  std::vector<OscArg> f = status_fields();
  // Adaptive prefetch (native dialect only: /get_status keeps the crowdstream server's fields).
  const auto ls = ctl_.loader().stats();
  auto kv = [&](const char* k, OscArg v) {
    f.push_back(OscArg::Str(k));
    f.push_back(std::move(v));
  };
  kv("ring_target_ms_min", OscArg::Float(ls.target_ms_min));
  kv("ring_target_ms_mean", OscArg::Float(ls.target_ms_mean));
  kv("ring_target_ms_max", OscArg::Float(ls.target_ms_max));
  kv("ring_bytes", OscArg::Int64(static_cast<std::int64_t>(ls.ring_bytes)));
  kv("rings_ran_dry", OscArg::Int64(static_cast<std::int64_t>(ls.rings_ran_dry)));
  kv("read_wait_ms", OscArg::Float(ls.wait_ms_mean));
  kv("read_wait_sd_ms", OscArg::Float(ls.wait_ms_sd));
  kv("read_max_ms", OscArg::Float(ls.read_ms_max));
  return done(f);
}

// /stemd/notify 1|0: subscribe the sender to events for --subscription-ttl seconds (sending it
// again renews), or unsubscribe. → /done /stemd/notify 1 ttl_s, or /done /stemd/notify 0.
Router::Reply Router::n_notify(const OscMessage& m, const Peer& from) {
  ArgReader a(m);
  bool on = true;
  if (!a.count(0, 1) || !a.flag_or(0, "on", on, true)) return fail("arguments", a.error());
  const auto now = std::chrono::steady_clock::now();
  auto it = std::find_if(subscribers_.begin(), subscribers_.end(), [&](const Subscriber& s) { return s.peer == from; });
  if (on) {
    // A stream of notifications to a forged address would be a reflector: only a source that
    // proved it receives (the cookie) may subscribe.
    if (unvalidated_) return fail("cookie", "cookie required", {OscArg::Str(validator_.mint(from.endpoint, now))});
    const auto expires = now + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                                   std::chrono::duration<double>(cfg_.subscription_ttl_s));
    if (it == subscribers_.end()) {
      if (subscribers_.size() >= cfg_.max_subscribers) {
        return fail("limit",
                    "too many subscribers (limit " + std::to_string(cfg_.max_subscribers) + ", --max-subscribers)");
      }
      subscribers_.push_back(Subscriber{from, expires});
    } else {
      it->expires = expires;
    }
    return done({OscArg::Int(1), OscArg::Float(cfg_.subscription_ttl_s)});
  }
  if (it != subscribers_.end()) subscribers_.erase(it);
  return done({OscArg::Int(0)});
}

// /stemd/cookie → /done /stemd/cookie token; /stemd/cookie token (the one this source was sent)
// → /done /stemd/cookie seconds: the source's address is validated for that long, and its
// replies are no longer limited to 3× its requests. A wrong or expired token → /fail with a
// fresh one.
Router::Reply Router::n_cookie(const OscMessage& m, const Peer& from) {
  ArgReader a(m);
  std::string token;
  if (!a.count(0, 1) || (a.has(0) && !a.string(0, "cookie", token))) return fail("arguments", a.error());
  const auto now = std::chrono::steady_clock::now();
  if (!a.has(0)) return done({OscArg::Str(validator_.mint(from.endpoint, now))});
  if (!validator_.verify(from.endpoint, token, now)) {
    return fail("cookie", "bad or expired cookie", {OscArg::Str(validator_.mint(from.endpoint, now))});
  }
  if (from.tcp_fd < 0) validator_.validate(from.endpoint, now);
  unvalidated_ = false;
  return done({OscArg::Int(AddressValidator::kValidFor.count())});
}

// /stemd/stretch id tempo(0.25..4): speed without pitch change (Rubber Band); 1 = normal speed.
Router::Reply Router::n_stretch(const OscMessage& m, const Peer&) {
  ArgReader a(m);
  int id = 0;
  double tempo = 1;
  if (!a.count(2, 2) || !a.id(0, id) || !a.number(1, "tempo", tempo)) return fail("arguments", a.error());
  const std::vector<OscArg> idv{OscArg::Int(id)};
  if (tempo < 0.25 || tempo > 4) return fail("range", "tempo must be 0.25..4", idv);
  VoiceHandle h;
  if (Reply r; !playing(id, h, r)) return r;
  std::string error;
  if (!ctl_.set_stretch(h, static_cast<float>(tempo), error)) return fail("busy", error, idv);
  return done(idv);
}

// /stemd/quantize beats: /stemd/play and /stemd/play_region start on the next multiple of
// `beats` of the beat clock (from /reset's t0, at the current tempo); 0 = at once.
Router::Reply Router::n_quantize(const OscMessage& m, const Peer&) {
  ArgReader a(m);
  double beats = 0;
  if (!a.count(1, 1) || !a.number(0, "beats", beats)) return fail("arguments", a.error());
  if (beats < 0 || beats > 256) return fail("range", "beats must be 0 (off) .. 256");
  quantum_beats_ = beats;
  return done({OscArg::Float(beats)});
}

std::int64_t Router::quantized(std::int64_t frame) const {
  if (quantum_beats_ <= 0) return frame;
  const double frames_per_beat = 60.0 * cfg_.sample_rate / bpm_;
  const double q = quantum_beats_ * frames_per_beat;
  const double since = static_cast<double>(frame - beat_origin_frame_) + beat_origin_beats_ * frames_per_beat;
  const double n = std::ceil(since / q - 1e-9);
  return beat_origin_frame_ + static_cast<std::int64_t>(std::llround(n * q - beat_origin_beats_ * frames_per_beat));
}

// /stemd/tone [frequency 440] [level_db −12] [seconds 2]
Router::Reply Router::n_tone(const OscMessage& m, const Peer&) {
  ArgReader a(m);
  double freq = 0, level_db = 0, seconds = 0;
  if (!a.count(0, 3) || !a.number_or(0, "frequency", freq, cfg_.tone_frequency) ||
      !a.number_or(1, "level_db", level_db, 20 * std::log10(cfg_.tone_level)) ||
      !a.number_or(2, "seconds", seconds, cfg_.tone_seconds)) {
    return fail("arguments", a.error());
  }
  if (!(level_db >= -60 && level_db <= 0)) return fail("range", "level must be −60..0 dBFS");
  return test_tone(freq, std::pow(10.0, level_db / 20.0), seconds);
}

// /stemd/clear_schedule → /done /stemd/clear_schedule count: drops every timed command still
// waiting for its time (a play scheduled but not started ends, stopped); count = how many.
Router::Reply Router::n_clear_schedule(const OscMessage& m, const Peer&) {
  ArgReader a(m);
  if (!a.count(0, 0)) return fail("arguments", a.error());
  std::size_t cleared = 0;
  std::string error;
  if (!ctl_.clear_schedule(cleared, error)) return fail("busy", error);
  return done({OscArg::Int(static_cast<std::int64_t>(cleared))});
}

Router::Reply Router::n_ping(const OscMessage& m, const Peer&) {
  ArgReader a(m);
  if (!a.count(0, 0)) return fail("arguments", a.error());
  return done();
}

}  // namespace stemd::control
