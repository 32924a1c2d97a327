// stemctl's commands (see commands.hpp): each declares its arguments and sends its message.
#include "commands.hpp"

#include "control/limits.hpp"

#include "format_text.hpp"
#include "terminal.hpp"
#include "live.hpp"

#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <tuple>

namespace stemd::ctl {
namespace {

// A validator for numbers in [lo, hi] that also refuses NaN and infinities (CLI::Range lets NaN
// through): "LEVEL: must be 0..4, got 5".
CLI::Validator number_in(double lo, double hi) {
  const std::string range = seconds_text(lo) + ".." + seconds_text(hi);
  return CLI::Validator(
      [lo, hi, range](std::string& text) -> std::string {
        char* end = nullptr;
        const double v = std::strtod(text.c_str(), &end);
        if (text.empty() || end != text.c_str() + text.size() || !std::isfinite(v)) {
          return "must be a number " + range + ", got \"" + text + "\"";
        }
        if (v < lo || v > hi) return "must be " + range + ", got " + text;
        return std::string();
      },
      "NUMBER " + range);
}

// A finite number ≥ 0 (a start position): "must be a number ≥ 0, got -2".
CLI::Validator at_least_zero() {
  return CLI::Validator(
      [](std::string& text) -> std::string {
        char* end = nullptr;
        const double v = std::strtod(text.c_str(), &end);
        if (text.empty() || end != text.c_str() + text.size() || !std::isfinite(v)) {
          return "must be a number ≥ 0, got \"" + text + "\"";
        }
        return v < 0 ? "must be ≥ 0, got " + text : std::string();
      },
      "NUMBER ≥ 0");
}

// A deck name: A, B, C or D (either case), as the daemon takes it.
bool is_deck(const std::string& d) {
  return d.size() == 1 && std::toupper(static_cast<unsigned char>(d[0])) >= 'A' &&
         std::toupper(static_cast<unsigned char>(d[0])) <= 'D';
}

// An EQ band: low, mid or high, or a prefix of one ("lo", "hi"), either case — the daemon's rule.
bool is_band(const std::string& b) {
  if (b.empty()) return false;
  std::string l;
  for (char c : b) l += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  for (const char* name : {"low", "mid", "high"}) {
    if (std::string(name).rfind(l, 0) == 0) return true;
  }
  return false;
}

std::map<const CLI::Option*, std::string>& usage_texts() {
  static std::map<const CLI::Option*, std::string> texts;
  return texts;
}

// The names errors give positionals whose help placeholder is a letter or a word in capitals
// (argument_error): "pan: must be -1..1, got 5", not "P: …".
std::map<const CLI::Option*, std::string>& argument_names() {
  static std::map<const CLI::Option*, std::string> names;
  return names;
}
CLI::Option* named(CLI::Option* o, const char* name) {
  argument_names()[o] = name;
  return o;
}
// A positional's words in its command's usage line (usage_text): CLI11 writes "[ARGS(0x)]" for an
// optional list of up to three.
CLI::Option* usage(CLI::Option* o, const char* text) {
  usage_texts()[o] = text;
  return o;
}

CLI::Validator units() { return CLI::IsMember({"s", "frac", "frames"}); }

CLI::Validator deck_name() {
  return CLI::Validator(
      [](std::string& d) { return is_deck(d) ? std::string() : "must be A, B, C or D, got \"" + d + "\""; }, "DECK");
}

void id_arg(CLI::App& sub, Args& a) { sub.add_option("ID", a.id, "Buffer id")->required(); }

void fade_opt(CLI::App& sub, Args& a, const char* what) {
  sub.add_option("--fade", a.fade, what)->check(number_in(0, 3600));  // the daemon's own range
}

bool given(const CLI::App& sub, const char* option) { return sub.get_option(option)->count() > 0; }

std::string id_text(const Args& a) { return std::to_string(a.id); }

// ------------------------------------------------------------------------------- sources, voices

void define_load(CLI::App& sub, Args& a) {
  id_arg(sub, a);
  sub.add_option("PATH", a.path, "Audio file, as the daemon sees it: relative paths resolve against its --media-root")
      ->required();
  sub.add_option("--name", a.name, "Display name (default: the file name without extension)");
  sub.add_flag("-a,--absolute", a.absolute, "Send PATH made absolute against this shell's directory");
}

int run_load(Session& s, Args& a, const CLI::App&) {
  std::string path = a.path;
  if (a.absolute) path = std::filesystem::absolute(path).lexically_normal().string();
  std::vector<OscArg> args{OscArg::Int(a.id), OscArg::Str(path)};
  if (!a.name.empty()) args.push_back(OscArg::Str(a.name));
  return s.run(msg("/stemd/load", args), [&](const OscMessage&) { s.say("loaded " + id_text(a) + ": " + path); });
}

void define_unload(CLI::App& sub, Args& a) { id_arg(sub, a); }

int run_unload(Session& s, Args& a, const CLI::App&) {
  return s.run(msg("/stemd/unload", {OscArg::Int(a.id)}), [&](const OscMessage&) { s.say("unloaded " + id_text(a)); });
}

void define_play(CLI::App& sub, Args& a) {
  id_arg(sub, a);
  sub.add_option("--volume", a.volume, "Linear gain 0..4")->check(number_in(0, 4))->capture_default_str();
  sub.add_flag("--loop", a.loop, "Loop until stopped");
  sub.add_option("--start", a.start, "Start position (in --unit; s = the file's own seconds)")
      ->check(at_least_zero())
      ->capture_default_str();
  sub.add_option("--unit", a.unit, "Unit of --start: s, frac (fraction of the file) or frames")
      ->check(units())
      ->capture_default_str();
  sub.add_option("--rate", a.rate, "Playback rate 0.25..4")->check(number_in(0.25, 4));
  sub.add_option("--deck", a.deck, "Mix on deck A, B, C or D (default: the ID's own deck; below 100: D)")
      ->check(deck_name());
}

int run_play(Session& s, Args& a, const CLI::App& sub) {
  std::vector<OscArg> args{OscArg::Int(a.id), OscArg::Float(a.volume), OscArg::Int(a.loop ? 1 : 0),
                           OscArg::Float(a.start), OscArg::Str(a.unit)};
  // --rate only when asked (see --help), or before a --deck (positional: the rate comes first).
  if (given(sub, "--rate") || given(sub, "--deck")) args.push_back(OscArg::Float(a.rate));
  if (given(sub, "--deck")) args.push_back(OscArg::Str(a.deck));
  return s.run(msg("/stemd/play", args), [&](const OscMessage& r) {
    const auto v = reply_values(r);
    std::string text = "playing " + id_text(a);
    if (v.size() >= 2 && v[1].is_number()) text += " (voice " + v[1].to_string() + ")";
    // A quantised start (/stemd/quantize) waits for the beat grid: the daemon says how long.
    if (v.size() >= 4 && v[2].is_number() && v[3].is_number() && v[2].as_double() > 0) {
      text.replace(0, 7, "starting");
      text += " on the next bar (every " + num(v[3].as_double()) + " beats: /stemd/quantize), in " +
              detail::fmt("%.2f s", v[2].as_double());
    }
    if (a.loop) text += ", looping";
    if (given(sub, "--deck")) text += " on deck " + a.deck;
    s.say(text);
  });
}

void define_stop(CLI::App& sub, Args& a) {
  id_arg(sub, a);
  fade_opt(sub, a, "Fade-out seconds (default: a click-free minimum)");
}
void define_pause(CLI::App& sub, Args& a) {
  id_arg(sub, a);
  fade_opt(sub, a, "Fade-out seconds");
}
void define_resume(CLI::App& sub, Args& a) {
  id_arg(sub, a);
  fade_opt(sub, a, "Fade-in seconds");
}

std::vector<OscArg> id_and_fade(const Args& a, const CLI::App& sub) {
  std::vector<OscArg> args{OscArg::Int(a.id)};
  if (given(sub, "--fade")) args.push_back(OscArg::Float(a.fade));
  return args;
}

std::string faded_text(const std::string& verb, const Args& a, const CLI::App& sub) {
  return verb + " " + id_text(a) + (given(sub, "--fade") && a.fade > 0 ? " (over " + num(a.fade) + " s)" : "");
}

// As `mpc stop`: stopping what is not playing is not an error.
int run_stop(Session& s, Args& a, const CLI::App& sub) {
  if (int rc = s.connect(); rc != kExitOk) return rc;
  const Result r = s.client().request(msg("/stemd/stop", id_and_fade(a, sub)));
  const std::string why =
      r.failed() && !r.reply.args.empty() && r.reply.args.back().is_string() ? r.reply.args.back().s : std::string();
  const std::string not_playing = "is not playing";  // the daemon's "id N is not playing"
  if (why.size() >= not_playing.size() &&
      why.compare(why.size() - not_playing.size(), not_playing.size(), not_playing) == 0) {
    s.say(id_text(a) + " is not playing");
    return kExitOk;
  }
  if (int rc = s.check(r); rc != kExitOk) return rc;
  s.say(faded_text("stopped", a, sub));
  return kExitOk;
}

int run_pause(Session& s, Args& a, const CLI::App& sub) {
  return s.run(msg("/stemd/pause", id_and_fade(a, sub)),
               [&](const OscMessage&) { s.say(faded_text("paused", a, sub)); });
}

int run_resume(Session& s, Args& a, const CLI::App& sub) {
  return s.run(msg("/stemd/resume", id_and_fade(a, sub)),
               [&](const OscMessage&) { s.say(faded_text("resumed", a, sub)); });
}

void define_seek(CLI::App& sub, Args& a) {
  id_arg(sub, a);
  sub.add_option("POS", a.position, "Position (in --unit; s = the file's own seconds)")->required();
  sub.add_option("--unit", a.unit, "s, frac (fraction of the file) or frames")->check(units())->capture_default_str();
}

int run_seek(Session& s, Args& a, const CLI::App&) {
  return s.run(msg("/stemd/seek", {OscArg::Int(a.id), OscArg::Float(a.position), OscArg::Str(a.unit)}),
               [&](const OscMessage&) {
                 s.say(id_text(a) + " moved to " + num(a.position) + (a.unit == "s" ? " s" : " " + a.unit));
               });
}

// ------------------------------------------------------------------------------- levels: [id] value [--ramp]

void ramp_opt(CLI::App& sub, Args& a, const char* what = "Glide seconds") {
  sub.add_option("--ramp", a.ramp, what)->check(number_in(0, 3600));
}

// Sends `args` + the value (+ the ramp when given); "WHAT WHO → V [over R s]".
int run_level(Session& s, Args& a, const CLI::App& sub, const char* address, std::vector<OscArg> args,
              const std::string& what) {
  args.push_back(OscArg::Float(a.value));
  const bool ramped = given(sub, "--ramp");
  if (ramped) args.push_back(OscArg::Float(a.ramp));
  return s.run(msg(address, args), [&](const OscMessage&) {
    s.say(what + " → " + num(a.value) + (ramped ? " over " + num(a.ramp) + " s" : ""));
  });
}

void define_volume(CLI::App& sub, Args& a) {
  id_arg(sub, a);
  named(sub.add_option("V", a.value, "Linear gain 0..4")->required()->check(number_in(0, 4)), "volume");
  ramp_opt(sub, a, "Glide seconds (default: the daemon's, ~20 ms)");
}
int run_volume(Session& s, Args& a, const CLI::App& sub) {
  return run_level(s, a, sub, "/stemd/volume", {OscArg::Int(a.id)}, "volume of " + id_text(a));
}

void define_pan(CLI::App& sub, Args& a) {
  id_arg(sub, a);
  named(sub.add_option("P", a.value, "-1 (left) .. 1 (right)")->required()->check(number_in(-1, 1)), "pan");
  ramp_opt(sub, a);
}
int run_pan(Session& s, Args& a, const CLI::App& sub) {
  return run_level(s, a, sub, "/stemd/pan", {OscArg::Int(a.id)}, "pan of " + id_text(a));
}

void define_rate(CLI::App& sub, Args& a) {
  id_arg(sub, a);
  named(sub.add_option("R", a.value, "0.25..4")->required()->check(number_in(0.25, 4)), "rate");
  ramp_opt(sub, a);
}
int run_rate(Session& s, Args& a, const CLI::App& sub) {
  return run_level(s, a, sub, "/stemd/rate", {OscArg::Int(a.id)}, "rate of " + id_text(a));
}

void define_master(CLI::App& sub, Args& a) {
  named(sub.add_option("V", a.value, "Linear gain 0..4")->required()->check(number_in(0, 4)), "volume");
  ramp_opt(sub, a);
}
int run_master(Session& s, Args& a, const CLI::App& sub) {
  return run_level(s, a, sub, "/stemd/master", {}, "master volume");
}

void define_deck(CLI::App& sub, Args& a) {
  named(sub.add_option("DECK", a.deck, "A, B, C or D")->required()->check(deck_name()), "deck");
  named(sub.add_option("LEVEL", a.value, "Linear gain 0..4")->required()->check(number_in(0, 4)), "level");
  ramp_opt(sub, a);
}
int run_deck(Session& s, Args& a, const CLI::App& sub) {
  return run_level(s, a, sub, "/stemd/deck", {OscArg::Str(a.deck)}, "level of deck " + a.deck);
}

// ------------------------------------------------------------------------------- decks

void define_levels(CLI::App& sub, Args& a) {
  usage(named(sub.add_option("LEVELS", a.levels, "Linear gains 0..4, deck A first")
                  ->required()
                  ->expected(1, 4)
                  ->check(number_in(0, 4)),
              "level"),
        "A [B [C [D]]]");
}

int run_levels(Session& s, Args& a, const CLI::App&) {
  std::vector<OscArg> args;
  std::string text;
  for (std::size_t i = 0; i < a.levels.size(); ++i) {
    args.push_back(OscArg::Float(a.levels[i]));
    text += std::string(i == 0 ? "" : ", ") + static_cast<char>('A' + i) + " " + num(a.levels[i]);
  }
  return s.run(msg("/deck_levels", args), [&](const OscMessage&) { s.say("deck levels → " + text); });
}

void define_crossfade(CLI::App& sub, Args& a) {
  named(sub.add_option("X", a.value, "0..1")->required()->check(number_in(0, 1)), "crossfade");
}

int run_crossfade(Session& s, Args& a, const CLI::App&) {
  const double x = a.value;
  return s.run(msg("/crossfade_levels", {OscArg::Float(1.0 - x), OscArg::Float(x)}), [&](const OscMessage&) {
    s.say("crossfade " + num(x) + ": deck A " + num(1.0 - x) + ", deck B " + num(x));
  });
}

void define_eq(CLI::App& sub, Args& a) {
  named(sub.add_option("DECK", a.deck, "A, B, C or D")->required()->check(deck_name()), "deck");
  usage(sub.add_option("VALUES", a.eq, "BAND PERCENT (band: low, mid, high) or LOW MID HIGH")
            ->type_name("BAND PERCENT | LOW MID HIGH")
            ->required()
            ->expected(2, 3),
        "(BAND PERCENT | LOW MID HIGH)");
  sub.footer(
      "Percent per band: 0 kills the band, 50 is flat (the EQ only cuts: above 50 is flat too), between\n"
      "them 10^((p/50 - 1) * 24/20). Bands glide over 50 ms. A daemon started with --disable-filters,\n"
      "or in crowdstream mode (--port) without --enable-filters, accepts and ignores EQ: stemctl says so.");
}

// " (ignored: EQ off: …)" when the daemon answers EQ and ignores it (--disable-filters, or
// crowdstream mode's default): /deck_eq's /done is the same either way (the crowdstream dialect's),
// so the status says. stemctl said "deck A low → 20%" and nothing changed (outside pass 26, user L2).
std::string eq_ignored(Session& s) {
  const Result r = s.client().request(msg("/stemd/status"));
  if (!r.done()) return {};
  const StatusFields f = status_fields(r.reply);
  const OscArg* on = find_field(f, "eq_enabled");
  if (on == nullptr || !on->is_number() || on->as_double() > 0) return {};  // on, or an older daemon
  const OscArg* why = find_field(f, "eq_off_reason");
  return " (ignored: EQ off: " + (why != nullptr ? detail::value_text(*why) : std::string("--disable-filters")) + ")";
}

int run_eq(Session& s, Args& a, const CLI::App&) {
  std::vector<double> p;
  std::string band;
  const bool one_band = a.eq.size() == 2;
  if (one_band) {
    band = a.eq[0];
    if (!is_band(band)) {
      error_line("eq: a band is low, mid or high, got \"" + band +
                 "\" (stemctl eq DECK BAND PERCENT | eq DECK LOW MID HIGH)");
      return kExitUsage;
    }
  }
  for (std::size_t i = one_band ? 1 : 0; i < a.eq.size(); ++i) {
    std::string t = a.eq[i];
    const std::string why = number_in(0, 100)(t);
    if (!why.empty()) {
      error_line("eq: percent " + why + " (0 kills the band, 50 is flat)");
      return kExitUsage;
    }
    p.push_back(std::strtod(t.c_str(), nullptr));
  }
  if (one_band) {
    return s.run(
        msg("/deck_eq", {OscArg::Str(a.deck), OscArg::Str(band), OscArg::Float(p[0])}),
        [&](const OscMessage&) { s.say("deck " + a.deck + " " + band + " → " + num(p[0]) + "%" + eq_ignored(s)); });
  }
  return s.run(
      msg("/deck_eq_all", {OscArg::Str(a.deck), OscArg::Float(p[0]), OscArg::Float(p[1]), OscArg::Float(p[2])}),
      [&](const OscMessage&) {
        s.say("deck " + a.deck + " EQ → low " + num(p[0]) + "%, mid " + num(p[1]) + "%, high " + num(p[2]) + "%" +
              eq_ignored(s));
      });
}

void define_fade(CLI::App& sub, Args& a) {
  id_arg(sub, a);
  named(sub.add_option("TARGET", a.value, "Linear gain 0..4")->required()->check(number_in(0, 4)), "volume");
  named(
      sub.add_option("SECONDS", a.ramp, "Length in seconds of output, 0..3600")->required()->check(number_in(0, 3600)),
      "seconds");
  named(sub.add_option("CURVE", a.curve, "linear (default), exponential, equal_power or s_curve")
            ->check(CLI::Validator(
                [](std::string& c) {
                  for (const char* name : {"linear", "exponential", "equal_power", "s_curve"}) {
                    if (c == name) return std::string();
                  }
                  return "must be linear, exponential, equal_power or s_curve, got \"" + c + "\"";
                },
                "CURVE")),
        "curve");
}

int run_fade(Session& s, Args& a, const CLI::App&) {
  std::vector<OscArg> args{OscArg::Int(a.id), OscArg::Float(a.value), OscArg::Float(a.ramp)};
  if (!a.curve.empty()) args.push_back(OscArg::Str(a.curve));
  return s.run(msg("/stemd/fade", args), [&](const OscMessage&) {
    s.say("fading " + id_text(a) + " to " + num(a.value) + " over " + num(a.ramp) + " s" +
          (a.curve.empty() ? "" : " (" + a.curve + ")"));
  });
}

// The tone's ranges are the daemon's (control/limits.hpp), so the help, this check and
// /stemd/tone's refusal name one number each.
using control::limits::kMaxToneSeconds, control::limits::kMinToneDb, control::limits::kMinToneHz,
    control::limits::kMinToneSeconds;

void define_tone(CLI::App& sub, Args& a) {
  usage(sub.add_option("ARGS", a.tone,
                       "Frequency (Hz, >= " + num(kMinToneHz) + "), level (dBFS, " + num(kMinToneDb) +
                           "..0), seconds of output (" + num(kMinToneSeconds) + ".." + num(kMaxToneSeconds) + ")")
            ->type_name("[FREQ [LEVEL_DB [SECONDS]]]")
            ->expected(0, 3),
        "[FREQ [LEVEL_DB [SECONDS]]]");
}

int run_tone(Session& s, Args& a, const CLI::App&) {
  // frequency, level_db, seconds: each checked here; the upper frequency (Nyquist) by the daemon.
  static const struct {
    const char* name;
    double lo, hi;
  } kToneArgs[] = {
      {"frequency", kMinToneHz, 1e6}, {"level_db", kMinToneDb, 0}, {"seconds", kMinToneSeconds, kMaxToneSeconds}};
  std::vector<OscArg> args;
  for (std::size_t i = 0; i < a.tone.size(); ++i) {
    const double v = a.tone[i];
    if (!std::isfinite(v) || v < kToneArgs[i].lo || v > kToneArgs[i].hi) {
      error_line(std::string("tone: ") + kToneArgs[i].name + " must be " +
                 (i == 0 ? "at least " + num(kMinToneHz) + " Hz" : num(kToneArgs[i].lo) + ".." + num(kToneArgs[i].hi)) +
                 ", got " + num(v) + " (stemctl tone [FREQ] [LEVEL_DB] [SECONDS])");
      return kExitUsage;
    }
    args.push_back(OscArg::Float(v));
  }
  return s.run(msg("/stemd/tone", args), [&](const OscMessage& r) {
    const auto v = reply_values(r);
    s.say("tone" + (!v.empty() && v[0].is_number() ? " " + num(v[0].as_double()) + " Hz" : std::string()) +
          (a.tone.size() >= 3 ? " for " + num(a.tone[2]) + " s" : std::string()));
  });
}

// ------------------------------------------------------------------------------- live, ping, send

void define_events(CLI::App& sub, Args& a) {
  sub.add_flag("--json", a.json, "One JSON object a line: {time (UTC), event, args, and the args by name}");
  sub.add_option("--count", a.count, "Exit after this many events (0: until Ctrl-C or SIGTERM)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
}

int run_events_command(Session& s, Args& a, const CLI::App&) { return run_events(s, a.json, a.count); }

void define_ping(CLI::App&, Args&) {}

int run_ping(Session& s, Args&, const CLI::App&) {
  if (int rc = s.connect(); rc != kExitOk) return rc;
  const auto t0 = Clock::now();
  const Result r = s.client().request(msg("/stemd/ping"));
  const int rc = s.check(r);
  if (rc == kExitOk) {
    const double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.2f", ms);
    s.say("stemd at " + s.target_text() + " answered in " + buf + " ms");
  }
  return rc;
}

void define_watch(CLI::App& sub, Args& a) {
  sub.add_option("--interval", a.interval, "Seconds between refreshes (into a pipe or a file: 1)")
      ->check(CLI::Range(0.05, 3600.0))
      ->capture_default_str();
  sub.add_option("--count", a.count, "Stop after this many refreshes (0: until Ctrl-C)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  sub.footer(kFileSecondsNote);
}

int run_watch_command(Session& s, Args& a, const CLI::App& sub) {
  return run_watch(s, a.interval, a.count, sub.count("--interval") > 0);
}

// Everything after `send` is the message, taken as it is ("-x", "--", "--port" too): it is
// split off before CLI11 sees the command line (see split_send() in stemctl.cpp).
void define_send(CLI::App& sub, Args&) {
  sub.footer(
      "Usage: stemctl [OPTIONS] send ADDRESS [ARGS...]\n"
      "  ADDRESS  an OSC address, e.g. /stemd/status or /get_status\n"
      "  ARGS     typed i:5 h:7 f:1.0 d:2 s:abc S:sym c:x T F N I, or inferred: 42 -> i, 0.5 or 1e3 -> f,\n"
      "           true/false -> T/F, anything else -> s. Everything after ADDRESS is an argument.\n"
      "Examples: stemctl send /stemd/volume i:1 f:0.5\n"
      "          stemctl send /load_buffer 1001 /music/a.wav drums");
}

int run_send(Session& s, Args& a, const CLI::App&) {
  std::vector<std::string>& words = a.words;
  if (!words.empty() && words.front() == "--") words.erase(words.begin());
  if (words.empty()) {
    error_line("send: which address? (stemctl send ADDRESS [ARGS...])");
    return kExitUsage;
  }
  const std::string address = words.front();
  if (address[0] != '/') {
    error_line("send: an OSC address starts with '/': \"" + address + "\"");
    return kExitUsage;
  }
  OscMessage m = msg(address);
  for (std::size_t i = 1; i < words.size(); ++i) {
    OscArg arg;
    std::string error;
    if (!parse_send_arg(words[i], arg, error)) {
      error_line("send: " + error);
      return kExitUsage;
    }
    m.args.push_back(std::move(arg));
  }
  return s.run(m, [&](const OscMessage& reply) { std::printf("%s\n", message_text(reply).c_str()); });
}

}  // namespace

const std::string* usage_text(const CLI::Option* positional) {
  const auto it = usage_texts().find(positional);
  return it == usage_texts().end() ? nullptr : &it->second;
}

std::string argument_error(const CLI::App& sub, const std::string& what) {
  for (const CLI::Option* option : sub.get_options()) {
    const auto name = argument_names().find(option);
    if (name == argument_names().end()) continue;
    const std::string prefix = option->get_name() + ": ";
    if (what.rfind(prefix, 0) == 0) return name->second + ": " + what.substr(prefix.size());
  }
  return what;
}

const std::vector<Command>& commands() {
  static const std::vector<Command> all{
      {"load", "Load a file into buffer ID (replies once it can start at once)", define_load, run_load},
      {"unload", "Unload buffer ID (stops its voice)", define_unload, run_unload},
      {"play", "Play buffer ID (replacing its voice if it is playing)", define_play, run_play},
      {"stop", "Stop buffer ID's voice", define_stop, run_stop},
      {"pause", "Pause buffer ID's voice", define_pause, run_pause},
      {"resume", "Resume buffer ID's paused voice", define_resume, run_resume},
      {"seek", "Move buffer ID's voice to POS", define_seek, run_seek},
      {"volume", "Set buffer ID's voice volume", define_volume, run_volume},
      {"pan", "Set buffer ID's voice pan", define_pan, run_pan},
      {"rate", "Set buffer ID's voice playback rate", define_rate, run_rate},
      {"master", "Set the master volume", define_master, run_master},
      {"deck", "Set a deck's level: deck A 0.8", define_deck, run_deck},
      {"levels", "Set the deck levels A [B [C [D]]] at once (a missing one keeps its value)", define_levels,
       run_levels},
      {"crossfade", "Crossfade deck A to deck B: X = 0 is all A, 1 all B (levels 1-X and X)", define_crossfade,
       run_crossfade},
      {"eq", "Set a deck's EQ: eq A low 25, or eq A 50 50 50 (low mid high)", define_eq, run_eq},
      {"fade", "Fade buffer ID's voice to a volume over SECONDS: fade 1 0 4 s_curve", define_fade, run_fade},
      {"tone", "Play a test tone on the direct bus: tone [FREQ 440] [LEVEL_DB -12] [SECONDS 2]", define_tone, run_tone},
      {"list", "Table of loaded sources", define_list, run_list},
      {"voices", "Table of playing voices", define_voices, run_voices},
      {"status", "The daemon's status in short: latency, voices, memory, underruns…", define_status, run_status},
      {"events", "Print stemd's notifications as they happen, one a line, until Ctrl-C", define_events,
       run_events_command},
      {"ping", "Check that stemd answers; print the round-trip time", define_ping, run_ping},
      {"watch", "Live view of status, voices and events until Ctrl-C", define_watch, run_watch_command},
      {"send", "Send any OSC message and print the reply: send ADDRESS [ARGS...]", define_send, run_send},
  };
  return all;
}

}  // namespace stemd::ctl
