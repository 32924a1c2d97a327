// The state file (see state.hpp).
#include "state.hpp"

#include "control/deck_ids.hpp"

#include "base/log_guard.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdint>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <set>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace stemd::app {

namespace {

constexpr const char* kDeckNames[4] = {"A", "B", "C", "D"};
constexpr const char* kBandNames[3] = {"low", "mid", "high"};

// The shortest text that reads back as the same float (0.8f → "0.8", not "0.800000012").
std::string fmt_float(float v) {
  char buf[32];
  for (int digits = 6; digits <= 9; ++digits) {
    std::snprintf(buf, sizeof buf, "%.*g", digits, static_cast<double>(v));
    if (std::strtof(buf, nullptr) == v) break;
  }
  return buf;
}

std::string fmt_double(double v) {
  char buf[40];
  for (int digits = 6; digits <= 17; ++digits) {
    std::snprintf(buf, sizeof buf, "%.*g", digits, v);
    if (std::strtod(buf, nullptr) == v) break;
  }
  return buf;
}

// Appends s in double quotes to out (no snprintf a byte: a state of megabytes is made in
// tens of milliseconds).
void append_quoted(std::string& out, const std::string& s) {
  static constexpr char kHex[] = "0123456789abcdef";
  out += '"';
  for (const char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (u < 0x20 || u == 0x7f) {
      const char esc[4] = {'\\', 'x', kHex[u >> 4], kHex[u & 15]};
      out.append(esc, 4);
    } else {
      out += c;
    }
  }
  out += '"';
}

std::string quote(const std::string& s) {
  std::string out;
  out.reserve(s.size() + 2);
  append_quoted(out, s);
  return out;
}

int hex(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// A bare word: true/false, an integer, a finite number, otherwise a string.
control::OscArg infer_word(const std::string& w) {
  if (w == "true" || w == "false") return control::OscArg::Bool(w == "true");
  char* end = nullptr;
  errno = 0;
  const long long i = std::strtoll(w.c_str(), &end, 10);
  if (end && *end == '\0' && errno == 0) {
    return i >= INT32_MIN && i <= INT32_MAX ? control::OscArg::Int(i) : control::OscArg::Int64(i);
  }
  const double d = std::strtod(w.c_str(), &end);
  if (end && *end == '\0' && std::isfinite(d)) return control::OscArg::Float(d);
  return control::OscArg::Str(w);
}

// One line → words (quoted ones are always strings). False with a reason.
bool tokenize(const std::string& line, std::vector<control::OscArg>& words, std::string& error) {
  words.clear();
  std::size_t i = 0;
  const std::size_t n = line.size();
  while (i < n) {
    if (line[i] == ' ' || line[i] == '\t') {
      ++i;
      continue;
    }
    if (line[i] == '"') {
      std::string s;
      ++i;
      bool closed = false;
      while (i < n) {
        const char c = line[i++];
        if (c == '"') {
          closed = true;
          break;
        }
        if (c != '\\') {
          s += c;
          continue;
        }
        if (i >= n) break;
        const char e = line[i++];
        if (e == '"' || e == '\\') {
          s += e;
        } else if (e == 'n') {
          s += '\n';
        } else if (e == 't') {
          s += '\t';
        } else if (e == 'x' && i + 1 < n && hex(line[i]) >= 0 && hex(line[i + 1]) >= 0) {
          s += static_cast<char>(hex(line[i]) * 16 + hex(line[i + 1]));
          i += 2;
        } else {
          error = std::string("unknown escape \\") + e + " in a quoted string";
          return false;
        }
      }
      if (!closed) {
        error = "unterminated quoted string";
        return false;
      }
      if (i < n && line[i] != ' ' && line[i] != '\t') {
        error = "a quoted string must be followed by a space";
        return false;
      }
      words.push_back(control::OscArg::Str(std::move(s)));
      continue;
    }
    const std::size_t start = i;
    while (i < n && line[i] != ' ' && line[i] != '\t') {
      if (line[i] == '"') {
        error = "a quote inside a word (quote the whole string)";
        return false;
      }
      ++i;
    }
    words.push_back(infer_word(line.substr(start, i - start)));
  }
  return true;
}

std::string trim(const std::string& s) {
  const auto a = s.find_first_not_of(" \t\r");
  if (a == std::string::npos) return {};
  const auto b = s.find_last_not_of(" \t\r");
  return s.substr(a, b - a + 1);
}

}  // namespace

// "/stemd/load 3 \"x\"" — the message as a line of the file (for logs and held sources).
std::string state_line(const control::OscMessage& m) {
  std::string s = m.timetag == control::kOscImmediately || m.timetag == 0
                      ? m.address
                      : time_prefix(control::ntp_to_unix_seconds(m.timetag)) + m.address;
  for (const auto& a : m.args) {
    s += ' ';
    if (a.is_string()) {
      s += quote(a.s);
    } else if (a.type == 'T' || a.type == 'F') {
      s += a.type == 'T' ? "true" : "false";
    } else if (a.type == 'f' || a.type == 'd') {
      s += fmt_double(a.f);
    } else {
      s += a.to_string();
    }
  }
  return s;
}

// ---------------------------------------------------------------- capture

namespace {
// A level heard `now`, `frames_left` OUTPUT frames from its target along `curve` (0: no fade).
StateFade fade_of(const control::Controller& ctl, float now, std::uint32_t frames_left, engine::Curve curve) {
  return frames_left == 0 ? StateFade{}
                          : StateFade{std::clamp(now, 0.0f, 4.0f), ctl.output_seconds(frames_left), curve};
}
}  // namespace

DaemonState capture_state(const control::Controller& ctl, const control::Router& router, bool with_voices) {
  DaemonState s;
  // The levels as heard: a timed command still to come is not kept (as no scheduled command is),
  // and one sent but not yet applied is written once it is (the heard target changes then).
  const control::LevelInfo m = ctl.master_heard();
  s.master = m.heard_target;
  s.master_fade = fade_of(ctl, m.now, m.frames_left, m.curve);
  for (int d = 0; d < 4; ++d) {
    const control::LevelInfo l = ctl.deck_heard(d);
    s.decks[static_cast<std::size_t>(d)] = l.heard_target;
    s.deck_fades[static_cast<std::size_t>(d)] = fade_of(ctl, l.now, l.frames_left, l.curve);
    for (int b = 0; b < 3; ++b) s.eq[static_cast<std::size_t>(d)][static_cast<std::size_t>(b)] = ctl.deck_eq(d, b);
  }
  const control::RouterConfig& rc = router.config();
  s.bpm = router.bpm();
  s.base_bpm = rc.bpm;
  s.meter = router.meter();
  s.base_meter = rc.meter;
  s.quantum = router.quantum_beats();
  s.base_quantum = rc.quantum;
  std::vector<control::SourceInfo> infos = ctl.sources();
  s.sources.reserve(infos.size());
  for (control::SourceInfo& src : infos) {
    if (src.path == "(generated)") continue;  // made in memory, not a file (a negative id is a client's)
    s.sources.push_back(StateSource{src.slot, std::move(src.path), std::move(src.name)});
  }
  if (!with_voices) return s;
  // An id's player, and before it the player it takes over from at its (timed) start — heard until
  // then: restored in this order, the first plays until the second's time, as it did.
  auto add_voice = [&](int id, control::VoiceHandle h, bool outgoing) {
    const io::Source* src = ctl.source(id);
    if (!ctl.voice_alive(h) || src == nullptr || src->path == "(generated)") return;
    const control::VoiceInfo vi = ctl.voice_info(h);
    if (outgoing && vi.stopping) return;  // its time has come
    StateVoice v = state_voice(ctl, router, id, vi);
    // The router keeps the own rate of an id's player; the outgoing one's is its heard rate ÷ the ratio.
    if (outgoing) {
      const double ratio = rc.tempo_moves_players && !rc.time_stretch ? router.players_ratio() : 1.0;
      v.rate = std::clamp(static_cast<float>(vi.rate / (ratio > 0 ? ratio : 1.0)), 0.25f, 4.0f);
    }
    // Without a quantum it waits for its time: kept as the wall time it is heard at.
    if (v.starting && router.quantum_beats() <= 0) v.start_unix = heard_unix_time(ctl, router, vi.start_at);
    s.voices.push_back(v);
  };
  for (const auto& [id, h] : router.players()) {
    add_voice(id, router.outgoing(id), true);
    add_voice(id, h, false);
  }
  return s;
}

StateVoice state_voice(const control::Controller& ctl, const control::Router& router, int id,
                       const control::VoiceInfo& vi) {
  const control::RouterConfig& rc = router.config();
  StateVoice v;
  v.id = id;
  v.volume = std::clamp(vi.level_target, 0.0f, 4.0f);  // as heard (see the levels above)
  v.fade = fade_of(ctl, vi.level, vi.fade_frames_left, vi.fade_curve);
  v.loop = vi.loop;
  v.position = std::clamp<std::int64_t>(vi.position, 0, std::max<std::int64_t>(0, vi.total_frames - 1));
  // Its own rate as heard: one timed for later is not yet (the heard rate ÷ the one sent).
  const float own = router.player_rate(id) * (vi.rate_set > 0.0f ? vi.rate / vi.rate_set : 1.0f);
  v.rate = std::clamp(own, 0.25f, 4.0f);
  v.pan = std::clamp(vi.pan, -1.0f, 1.0f);
  // A stretch of its own: any tempo but what the router gives every player (1, or the tempo
  // ratio with --stretch-method time_stretch).
  const double expected = rc.time_stretch ? std::clamp(router.players_ratio(), 0.25, 4.0) : 1.0;
  if (std::fabs(static_cast<double>(vi.tempo) - expected) > 1e-4) v.stretch = std::clamp(vi.tempo, 0.25f, 4.0f);
  v.paused = vi.paused;
  v.deck = vi.deck;
  v.starting = vi.starts_in_s >= 0;  // its play waits in the schedule (its bar, or its time)
  if (vi.loop_end > 0 || vi.loop_start > 0) {
    v.region_start = vi.loop_start;
    v.region_end = vi.loop_end > 0 ? vi.loop_end : vi.total_frames;
    v.region_count = vi.loop_count;
  }
  return v;
}

StateChange state_change(const DaemonState& a, const DaemonState& b) {
  // What a restart must have at once: what is loaded, which voices play and how.
  if (a.meter != b.meter || a.quantum != b.quantum || a.sources != b.sources || a.voices.size() != b.voices.size() ||
      a.held != b.held || a.unplayed != b.unplayed || a.unplayed_starting != b.unplayed_starting) {
    return StateChange::kStructure;
  }
  for (std::size_t i = 0; i < a.voices.size(); ++i) {
    const StateVoice &x = a.voices[i], &y = b.voices[i];
    if (x.id != y.id || x.loop != y.loop || x.paused != y.paused || x.deck != y.deck ||
        x.region_start != y.region_start || x.region_end != y.region_end || x.region_count != y.region_count ||
        x.starting != y.starting || (x.start_unix > 0) != (y.start_unix > 0)) {
      return StateChange::kStructure;
    }
  }
  // What moves continuously (a client's faders, a fade's progress, positions, a gliding tempo):
  // a fade that starts or ends is a change too (one that ended must not come back after a
  // restart), written with the rest at most every --state-interval.
  if (a.master != b.master || a.decks != b.decks || a.eq != b.eq || a.bpm != b.bpm || a.master_fade != b.master_fade ||
      a.deck_fades != b.deck_fades) {
    return StateChange::kContinuous;
  }
  for (std::size_t i = 0; i < a.voices.size(); ++i) {
    const StateVoice &x = a.voices[i], &y = b.voices[i];
    // A waiting start's wall time is the same start unless it moved by more than the stream
    // clock's jitter (it is mapped from frames at each look).
    if (x.volume != y.volume || x.rate != y.rate || x.pan != y.pan || x.stretch != y.stretch ||
        x.position != y.position || x.fade != y.fade || std::fabs(x.start_unix - y.start_unix) > 1e-3) {
      return StateChange::kContinuous;
    }
  }
  return StateChange::kNone;
}

// ---------------------------------------------------------------- format

namespace {

// A voice's lines (format_state).
void append_voice(std::string& out, const StateVoice& v) {
  const std::string id = std::to_string(v.id);
  // A player on another deck than its id's (a --play file on deck A) names its deck.
  const std::string deck = v.deck >= 0 && v.deck < 4 && v.deck != control::deck_of_id(v.id)
                               ? std::string(" ") + kDeckNames[v.deck]
                               : std::string();
  const float start_volume = v.fade.seconds > 0 ? v.fade.now : v.volume;  // then the rest of its fade
  if (v.start_unix > 0) out += time_prefix(v.start_unix);                 // its play waits for this time
  if (v.region_end > 0) {
    out += "/stemd/play_region " + id + " " + std::to_string(v.region_start) + " " + std::to_string(v.region_end) +
           " " + (v.loop ? "true" : "false") + " " + std::to_string(v.region_count) + " " + fmt_float(start_volume) +
           " frames" + deck + "\n";
    if (v.position != v.region_start) out += "/stemd/seek " + id + " " + std::to_string(v.position) + " frames\n";
    if (v.rate != 1.0f) out += "/stemd/rate " + id + " " + fmt_float(v.rate) + " 0\n";
  } else {
    out += "/stemd/play " + id + " " + fmt_float(start_volume) + " " + (v.loop ? "true" : "false") + " " +
           std::to_string(v.position) + " frames " + fmt_float(v.rate) + deck + "\n";
  }
  if (v.fade.seconds > 0) {
    out += "/stemd/fade " + id + " " + fmt_float(v.volume) + " " + fmt_double(v.fade.seconds) + " " +
           engine::to_string(v.fade.curve) + "\n";
  }
  if (v.pan != 0.0f) out += "/stemd/pan " + id + " " + fmt_float(v.pan) + " 0\n";
  if (v.stretch > 0.0f) out += "/stemd/stretch " + id + " " + fmt_float(v.stretch) + "\n";
  if (v.paused) out += "/stemd/pause " + id + " 0\n";
}

}  // namespace

std::string voice_lines(const StateVoice& v) {
  std::string out;
  append_voice(out, v);
  return out;
}

std::string format_state(const DaemonState& s, const std::string& writer) {
  std::string out;
  out += "# stemd state file (--state-file), written by " + writer +
         ". Restored at start: each line is an OSC\n"
         "# message, routed in order as if a client had sent it (README: \"State file\"). Edit with care:\n"
         "# the first message line must be the version, the last one \"end\".\n";
  out += "stemd-state " + std::to_string(kStateVersion) + "\n";
  // A fade under way: the rest of it, from the level heard (`from`; the master's is linear).
  if (s.master_fade.seconds > 0) {
    out += "/stemd/master " + fmt_float(s.master) + " " + fmt_double(s.master_fade.seconds) + " " +
           fmt_float(s.master_fade.now) + "\n";
  } else {
    out += "/stemd/master " + fmt_float(s.master) + " 0\n";
  }
  for (std::size_t d = 0; d < 4; ++d) {
    const std::string deck = "/stemd/deck " + std::string(kDeckNames[d]) + " ";
    const StateFade& f = s.deck_fades[d];
    if (f.seconds > 0) {
      out += deck + fmt_float(s.decks[d]) + " " + fmt_double(f.seconds) + " " + engine::to_string(f.curve) + " " +
             fmt_float(f.now) + "\n";
    } else {
      out += deck + fmt_float(s.decks[d]) + " 0\n";
    }
  }
  for (std::size_t d = 0; d < 4; ++d) {
    for (std::size_t b = 0; b < 3; ++b) {
      if (s.eq[d][b] == 1.0f) continue;  // flat, as at start
      out += "/deck_filter " + std::string(kDeckNames[d]) + " " + kBandNames[b] + " " + fmt_float(s.eq[d][b]) + "\n";
    }
  }
  if (s.bpm > 0 && s.bpm != s.base_bpm) out += "/set_tempo " + fmt_double(s.bpm) + "\n";
  if (s.meter > 0 && s.meter != s.base_meter) out += "/set_meter " + std::to_string(s.meter) + "\n";
  for (const StateSource& src : s.sources) {
    out += "/stemd/load " + std::to_string(src.id) + " ";
    append_quoted(out, src.path);
    out += ' ';
    append_quoted(out, src.name);
    out += '\n';
  }
  // The voices heard (or paused) first, each from its frame at once; then the settings; the
  // voices still waiting for their bar after /stemd/quantize, so that they wait for it again.
  for (const StateVoice& v : s.voices) {
    if (!v.starting) append_voice(out, v);
  }
  for (const std::string& line : s.unplayed) out += line + "\n";
  for (const std::string& line : s.held) out += line + "\n";
  // After the voices: restored players start at once, not on the next quantum.
  // (0 too when --quantize set one: a client's "off" outlives the flag's start value.)
  if (s.quantum > 0 || s.base_quantum > 0) out += "/stemd/quantize " + fmt_double(s.quantum) + "\n";
  for (const StateVoice& v : s.voices) {
    if (v.starting) append_voice(out, v);
  }
  for (const std::string& line : s.unplayed_starting) out += line + "\n";
  out += "end\n";
  return out;
}

// ---------------------------------------------------------------- parse

bool parse_state(const std::string& text, std::vector<StateMessage>& out, std::string& error) {
  out.clear();
  bool have_version = false, have_end = false;
  int line_no = 0, last_line = 0;
  std::size_t pos = 0;
  std::vector<control::OscArg> words;
  while (pos < text.size()) {
    std::size_t nl = text.find('\n', pos);
    if (nl == std::string::npos) nl = text.size();
    const std::string line = trim(text.substr(pos, nl - pos));
    pos = nl + 1;
    ++line_no;
    if (line.empty() || line[0] == '#') continue;
    last_line = line_no;
    auto bad = [&](const std::string& why) {
      error = std::to_string(line_no) + ": " + why;
      return false;
    };
    if (line.find('\0') != std::string::npos) return bad("a NUL byte (not a text file)");
    if (have_end) return bad("text after the \"end\" line");
    if (!have_version) {
      const std::string prefix = "stemd-state ";
      if (line.rfind(prefix, 0) != 0) {
        return bad("expected the version line \"stemd-state " + std::to_string(kStateVersion) +
                   "\" (is this a stemd state file?)");
      }
      const std::string v = trim(line.substr(prefix.size()));
      if (v != std::to_string(kStateVersion)) {
        return bad("version \"" + v + "\": this stemd reads version " + std::to_string(kStateVersion));
      }
      have_version = true;
      continue;
    }
    if (line == "end") {
      have_end = true;
      continue;
    }
    std::string why, body = line;
    std::uint64_t timetag = control::kOscImmediately;  // "@TIME /stemd/play …": a waiting timed start
    if (!take_time_prefix(body, timetag, why)) return bad(why);
    if (body[0] != '/') return bad("expected an OSC message (\"/address args…\") or \"end\"");
    if (!tokenize(body, words, why)) return bad(why);
    StateMessage sm;
    sm.line = line_no;
    sm.message.timetag = timetag;
    sm.message.address = words[0].s;
    sm.message.args.assign(words.begin() + 1, words.end());
    out.push_back(std::move(sm));
  }
  if (!have_version) {
    error = std::to_string(std::max(line_no, 1)) + ": empty (no version line)";
    out.clear();
    return false;
  }
  if (!have_end) {
    error = std::to_string(last_line) + ": truncated: the file ends without its \"end\" line";
    out.clear();
    return false;
  }
  return true;
}

bool is_voice_message(const control::OscMessage& m) {
  static const std::set<std::string> kVoice = {
      "/stemd/play",   "/stemd/play_region", "/stemd/seek",  "/stemd/pause",  "/stemd/resume",
      "/stemd/pan",    "/stemd/stretch",     "/stemd/rate",  "/stemd/volume", "/stemd/fade",
      "/play_stem",    "/play_stem_section", "/stem_volume", "/play",         "/start_group",
      "/schedule_c_at"};
  return kVoice.count(m.address) != 0;
}

// ---------------------------------------------------------------- files

std::size_t state_bytes_bound(std::size_t max_sources, std::size_t max_string) {
  // A path is the one opened (a media root before it: up to PATH_MAX more); an escaped byte
  // takes at most 4 ("\x01"); 64 for the rest of the line, 512 for the lines of its voice.
  const std::size_t per_source = 4 * (2 * max_string + 4096) + 64 + 512;
  const std::size_t floor = std::size_t{16} << 20;
  if (max_sources > (SIZE_MAX - floor) / per_source) return SIZE_MAX;
  return std::max(floor, (std::size_t{64} << 10) + max_sources * per_source);
}

StateRead read_state_file(const std::string& path, std::vector<StateMessage>& out, std::string& error,
                          std::size_t max_bytes) {
  out.clear();
  std::string text;
  switch (read_regular_file(path, max_bytes, text, error)) {  // a FIFO is refused, never waited on
    case ReadResult::kMissing:
      if (const std::string dir = missing_directory(path); !dir.empty()) error = state_dir_missing(dir);
      return StateRead::kMissing;
    case ReadResult::kError:
      return StateRead::kBad;
    case ReadResult::kOk:
      break;
  }
  std::string why;
  if (!parse_state(text, out, why)) {
    error = path + ":" + why;
    return StateRead::kBad;
  }
  return StateRead::kOk;
}

// ---------------------------------------------------------------- keeper

StateKeeper::StateKeeper(Config c) : cfg_(std::move(c)) {}

void StateKeeper::poll(const control::Controller& ctl, control::Router& router) {
  watch_voices(router);
  take_lost(ctl, router);  // voices whose files stopped reading: they wait for them (state_lost.cpp)
  check_resumed();
  const auto now = std::chrono::steady_clock::now();
  // A held source's retry answered (an opener thread's load): its voice lines go at once, fitted to
  // the file as it is now (route_held_voices), not at the next look.
  if (!held_.empty() && !outcomes_->empty()) retry_held(ctl, router);
  if (last_ && now - last_poll_ < std::chrono::seconds(1)) return;
  last_poll_ = now;
  retry_held(ctl, router);
  DaemonState s = capture(ctl, router);
  if (last_) {
    // Levels, EQ, fades, positions and the tempo: at most every interval_s — a crossfade of 41
    // steps was 41 writes, and a client's one /stemd/master a second rewrote a state it had made
    // 17 MB large every second (outside pass 25, N3). Without --restore-voices no position
    // moves, but a master fade-out cut short must come back where it was heard.
    switch (state_change(*last_, s)) {
      case StateChange::kNone:
        return;
      case StateChange::kContinuous:
        if (now - last_queued_ < std::chrono::duration<double>(cfg_.interval_s)) return;
        break;
      case StateChange::kStructure:
        break;
    }
  }
  queue(std::move(s));
  last_queued_ = now;
}

void StateKeeper::capture_now(const control::Controller& ctl, const control::Router& router) {
  queue(capture(ctl, router));
  last_queued_ = std::chrono::steady_clock::now();
}

void StateKeeper::queue(DaemonState s) {
  // A restore cut short, or a file that could not be read: it keeps what the next start needs.
  if (interrupted_ || unread_) return;
  // A snapshot only: the text (megabytes for a state a client made large) is made on the main
  // thread by flush(), never on the control thread.
  last_ = std::make_shared<const DaemonState>(std::move(s));
  std::lock_guard<std::mutex> lock(mu_);
  pending_ = last_;
}

}  // namespace stemd::app
