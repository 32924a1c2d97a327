// The router's parts (issue 13, item 2): both dialects are tables of handlers (address →
// argument count, handler) reached through one HandlerTable; every refusal carries a typed
// kind (ErrorKind), never decided from its text; a handler gets its scheduled frame explicitly
// (Call::at) and sends at it; each argument is validated once (a crowdstream rate below 0.25
// is refused with the range, not clamped later); the tempo clock is its own class.
#include "common/engine_driver.hpp"
#include "common/log_capture.hpp"

#include "router_rig.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <map>
#include <set>

namespace stemd::test {
namespace {

using control::ErrorKind;
using control::OscArg;
using control::OscMessage;

OscMessage msg(std::string address, std::vector<OscArg> args = {}) {
  return OscMessage{std::move(address), std::move(args)};
}

// The rig, a temporary directory, and a short WAV loaded into an id.
struct Rig : RouterRig {
  using RouterRig::RouterRig;
  TempDir dir;
  void load(int id) {
    const std::string path = dir.file("stem" + std::to_string(id) + ".wav");
    make_wav(path, 4800, static_cast<std::uint32_t>(id));
    const auto r = reply(msg("/load_buffer", {OscArg::Int(id), OscArg::Str(path)}));
    ASSERT_TRUE(r.ok) << r.reason;
  }
};

TEST(RouterTable, BothDialectsAreReachedThroughTheTable) {
  Rig rig;
  const auto& table = rig.router.handlers();
  for (const char* a : {"/load_buffer", "/play_stem", "/set_tempo", "/cue", "/start_group", "/dummy", "/stemd/load",
                        "/stemd/play", "/stemd/list", "/stemd/notify", "/stemd/cookie", "/pose/keypoints"}) {
    EXPECT_NE(table.find(a), nullptr) << a;
  }
  EXPECT_NE(table.find("/dance/person_count"), nullptr) << "the movement detector's addresses: a prefix";
  EXPECT_EQ(table.find("/no_such_address"), nullptr);
  EXPECT_GE(table.all().size(), 50u);
}

TEST(RouterTable, TheTableChecksEveryAddressArgumentCount) {
  Rig rig;
  std::size_t checked = 0;
  for (const auto& [address, spec] : rig.router.handlers().all()) {
    if (spec.max_args == control::HandlerSpec::kAny) continue;
    std::vector<OscArg> args(spec.max_args + 1, OscArg::Int(1));
    const auto r = rig.reply(msg(address, args));
    ASSERT_FALSE(r.ok) << address;
    EXPECT_EQ(r.kind, ErrorKind::kArguments) << address;
    EXPECT_EQ(r.reason.rfind("expects ", 0), 0u) << address << ": " << r.reason;
    ++checked;
  }
  EXPECT_GE(checked, 40u);
  EXPECT_EQ(rig.router.stats().bad.at("arguments"), checked);
}

TEST(RouterErrors, EachRefusalHasItsKind) {
  control::RouterConfig rc;
  rc.max_sources = 1;
  Rig rig(rc);
  rig.load(100);
  auto kind_of = [&](const OscMessage& m) {
    const auto r = rig.reply(m);
    EXPECT_FALSE(r.ok) << m.to_string();
    return r.kind;
  };
  EXPECT_EQ(kind_of(msg("/stemd/play", {OscArg::Str("x")})), ErrorKind::kArguments);
  EXPECT_EQ(kind_of(msg("/stemd/rate", {OscArg::Int(100), OscArg::Float(0.1f)})), ErrorKind::kRange);
  EXPECT_EQ(kind_of(msg("/stemd/stop", {OscArg::Int(5)})), ErrorKind::kUnknownId);
  EXPECT_EQ(kind_of(msg("/no_such_address")), ErrorKind::kUnknownAddress);
  EXPECT_EQ(kind_of(msg("/load_buffer", {OscArg::Int(7), OscArg::Str("")})), ErrorKind::kPath);
  EXPECT_EQ(kind_of(msg("/load_buffer", {OscArg::Int(100), OscArg::Str(rig.dir.file("missing.wav"))})),
            ErrorKind::kPath);
  {
    std::ofstream(rig.dir.file("text.wav")) << "not audio at all";
    EXPECT_EQ(kind_of(msg("/load_buffer", {OscArg::Int(100), OscArg::Str(rig.dir.file("text.wav"))})),
              ErrorKind::kFile);
  }
  const std::string other = rig.dir.file("other.wav");
  make_wav(other, 480, 9);
  EXPECT_EQ(kind_of(msg("/load_buffer", {OscArg::Int(8), OscArg::Str(other)})), ErrorKind::kLimit) << "--max-sources 1";
  EXPECT_EQ(kind_of(msg("/stemd/cookie", {OscArg::Str("wrong")})), ErrorKind::kCookie);
  OscMessage timed = msg("/stemd/master", {OscArg::Float(0.9f)});
  timed.timetag = control::ntp_now();  // the stream is not running: every time has passed
  EXPECT_EQ(kind_of(timed), ErrorKind::kLate);
  // The command queue full (nothing renders here): busy, and the counters say so by kind.
  control::Reply r;
  for (int i = 0; i < 10000 && r.ok; ++i) r = rig.reply(msg("/stemd/master", {OscArg::Float(0.5f)}));
  ASSERT_FALSE(r.ok) << "the queue never filled";
  EXPECT_EQ(r.kind, ErrorKind::kBusy) << r.reason;
  // Malformed packets never reach a handler; counted by kind too.
  const std::uint8_t junk[8] = {'x', 'y', 'z', 0, 0, 0, 0, 0};
  std::vector<control::Outgoing> out;
  rig.router.handle_packet(junk, sizeof junk, control::Peer{}, out);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(rig.router.stats().bad.at("malformed"), 1u);
  for (const char* k :
       {"arguments", "range", "unknown_id", "unknown_address", "path", "file", "limit", "cookie", "late", "busy"}) {
    EXPECT_GE(rig.router.stats().bad.count(k), 1u) << k;
  }
}

// A refusal of a message whose id was read carries the id, so a client can tell which of its
// commands failed (a NaN seek used to come back as a bare "/fail /stemd/seek <reason>").
TEST(RouterErrors, AnArgumentRefusalCarriesTheIdOnceRead) {
  Rig rig;
  rig.load(100);
  const double nan = std::nan("");
  for (const OscMessage& m : {msg("/stemd/seek", {OscArg::Int(100), OscArg::Float(nan)}),
                              msg("/stemd/volume", {OscArg::Int(100), OscArg::Str("loud")}),
                              msg("/stemd/fade", {OscArg::Int(100), OscArg::Float(0.5), OscArg::Str("1e999")})}) {
    const auto r = rig.reply(m);
    EXPECT_FALSE(r.ok) << m.to_string();
    EXPECT_EQ(r.kind, ErrorKind::kArguments) << m.to_string();
    ASSERT_EQ(r.values.size(), 1u) << m.to_string() << ": " << r.reason;
    EXPECT_EQ(r.values[0].i, 100) << m.to_string();
    EXPECT_NE(r.reason.find(" must be a "), std::string::npos) << r.reason;
  }
  // "1e999" is a number too large to be finite, not "not a number".
  const auto big = rig.reply(msg("/stemd/volume", {OscArg::Int(100), OscArg::Str("1e999")}));
  EXPECT_NE(big.reason.find("must be a finite number"), std::string::npos) << big.reason;
  // No id read (the first argument is none): no values.
  const auto none = rig.reply(msg("/stemd/seek", {OscArg::Str("x"), OscArg::Float(1)}));
  EXPECT_FALSE(none.ok);
  EXPECT_TRUE(none.values.empty());
}

// A position out of the file is refused in the unit it was given in: 500000 frames said "< 0.1 s"
// (new-user pass 21); seconds keep their answer, and say whose seconds they are: the file's
// (new-user pass 25: "< 10 s" read as output seconds).
TEST(RouterErrors, APositionOutsideTheFileNamesTheLimitInTheUnitGiven) {
  Rig rig;
  rig.load(100);  // 4800 frames at 48 kHz: 0.1 s
  ASSERT_TRUE(rig.reply(msg("/stemd/play", {OscArg::Int(100)})).ok);
  auto r = rig.reply(msg("/stemd/seek", {OscArg::Int(100), OscArg::Float(500000), OscArg::Str("frames")}));
  EXPECT_FALSE(r.ok);
  EXPECT_NE(r.reason.find("position is outside the file (0 ≤ position < 4800 frames, 0.1 file seconds)"),
            std::string::npos)
      << r.reason;
  r = rig.reply(msg("/stemd/seek", {OscArg::Int(100), OscArg::Float(5)}));
  EXPECT_FALSE(r.ok);
  EXPECT_NE(r.reason.find("position is outside the file (0 ≤ position < 0.1 file seconds)"), std::string::npos)
      << r.reason;
}

// What acts on arrival whatever its bundle's time (loads, unloads, queries) is not "late" in a
// late bundle: it ran as it would have on time. The outside pass got `/fail /load_buffer … late by`
// for a load that had worked.
TEST(RouterErrors, ALateBundlesLoadsAndQueriesAreDoneNotLate) {
  Rig rig;
  const std::string f = rig.dir.file("a.wav");
  make_wav(f, 480, 3);
  auto late = [](OscMessage m) {
    m.timetag = control::ntp_now();  // the stream is not running: every time has passed
    return m;
  };
  for (const OscMessage& m : {late(msg("/stemd/load", {OscArg::Int(7), OscArg::Str(f)})),
                              late(msg("/load_buffer", {OscArg::Int(8), OscArg::Str(f)})), late(msg("/stemd/status")),
                              late(msg("/stemd/list")), late(msg("/stemd/unload", {OscArg::Int(8)}))}) {
    const auto r = rig.reply(m);
    EXPECT_TRUE(r.ok) << m.to_string() << ": " << r.reason;
  }
  EXPECT_EQ(rig.router.stats().bad.count("late"), 0u);
  const auto played = rig.reply(late(msg("/stemd/play", {OscArg::Int(7)})));  // timed: it ran late
  EXPECT_FALSE(played.ok);
  EXPECT_EQ(played.kind, ErrorKind::kLate) << played.reason;
}

// Stopping a loaded id that is not playing is answered as before (/fail … is not playing: stemctl
// exits 0, as `mpc stop`) but is no client's mistake: not counted as bad input, so not logged as a
// warning (a new user's pass found `warning OSC unknown_id` in the journal for every such stop).
TEST(RouterErrors, StoppingALoadedIdThatIsNotPlayingIsNoBadInput) {
  Rig rig;
  rig.load(100);
  const auto r = rig.reply(msg("/stemd/stop", {OscArg::Int(100)}));
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.kind, ErrorKind::kUnknownId);
  EXPECT_NE(r.reason.find("is not playing"), std::string::npos) << r.reason;
  EXPECT_EQ(rig.router.stats().bad.count("unknown_id"), 0u);
  const auto gone = rig.reply(msg("/stemd/stop", {OscArg::Int(555)}));  // not loaded: a mistake
  EXPECT_FALSE(gone.ok);
  EXPECT_EQ(rig.router.stats().bad.count("unknown_id"), 1u);
}

// The log names a refusal in words, not by its status key ("warning OSC unknown_id: …" read as
// an internal code to a new user), and a command for an id that is not there (a voice that just
// ended, a client's own bookkeeping) is information, not a warning of the daemon's; a message the
// daemon cannot read stays a warning.
TEST(RouterErrors, TheLogNamesARefusalInWordsAndAnUnknownIdIsNoWarning) {
  Rig rig;
  stemd::test::LogCapture log;
  EXPECT_FALSE(rig.reply(msg("/stemd/stop", {OscArg::Int(555)})).ok);
  rig.router.log_bad_input();
  const std::string text = log.text();
  EXPECT_NE(text.find("[info] OSC refused (unknown id): /stemd/stop — "), std::string::npos) << text;
  EXPECT_EQ(text.find("unknown_id"), std::string::npos) << text;
  EXPECT_EQ(text.find("[warning]"), std::string::npos) << text;
  stemd::test::LogCapture log2;
  EXPECT_FALSE(rig.reply(msg("/stemd/master", {OscArg::Str("loud")})).ok);
  rig.router.log_bad_input();
  EXPECT_NE(log2.text().find("[warning] OSC refused (wrong arguments): /stemd/master — "), std::string::npos)
      << log2.text();
}

// Status says how long ago the last device underflow was (new-user pass 23, MEDIUM 6: after
// weeks, "device underflows 6" could be the first day's or the last minute's).
TEST(RouterStatus, TheLastDeviceUnderflowsAgeIsReported) {
  Rig rig;
  auto age = [&] {
    const control::OscMessage st = rig.router.handle(msg("/stemd/status"), control::Peer{});
    for (std::size_t i = 1; i + 1 < st.args.size(); i += 2)
      if (st.args[i].s == "device_underflow_age_s") return static_cast<double>(st.args[i + 1].f);
    return -2.0;  // not reported
  };
  EXPECT_EQ(age(), -1.0) << "none since start";
  std::vector<float> out(256 * 2);
  rig.e.process(out.data(), 256, true);  // the device played a gap
  const double a = age();
  EXPECT_GE(a, 0.0);
  EXPECT_LT(a, 5.0);
}

TEST(RouterSchedule, TheMessagesFrameIsPassedExplicitly) {
  Rig rig;
  rig.load(1100);
  ASSERT_EQ(rig.ctl.scheduled(), 0u);
  // handle_at: the message takes effect at frame 48000 — its commands are timed...
  ASSERT_EQ(rig.router.handle_at(msg("/stemd/master", {OscArg::Float(0.5f)}), 48000).address, "/done");
  EXPECT_EQ(rig.ctl.scheduled(), 1u);
  // ...and nothing is left behind for the next message: it applies at once (the Controller
  // keeps no frame of its own: each call is given its frame).
  ASSERT_EQ(rig.router.handle(msg("/stemd/master", {OscArg::Float(0.7f)}), control::Peer{}).address, "/done");
  EXPECT_EQ(rig.ctl.scheduled(), 1u);
  // A crowdstream start at its frame: /play_stem of a loaded id.
  ASSERT_EQ(rig.router.handle_at(msg("/play_stem", {OscArg::Int(1100)}), 96000).address, "/done");
  EXPECT_EQ(rig.ctl.scheduled(), 2u);
  // A frame computed from it (/fade start_at 1 s after the message's own frame): still timed.
  ASSERT_EQ(rig.router.handle_at(msg("/fade", {OscArg::Str("B"), OscArg::Float(1.0f)}), 48000).address, "/done");
  EXPECT_EQ(rig.ctl.scheduled(), 3u);
  ASSERT_EQ(rig.router.handle(msg("/stemd/master", {OscArg::Float(0.9f)}), control::Peer{}).address, "/done");
  EXPECT_EQ(rig.ctl.scheduled(), 3u) << "an untimed message after timed ones applies at once";
}

// The spec's /fade: "duration ≤ 0 → at once". A negative duration was refused (outside pass
// 20's crowdstream replay); not a number or an infinite one still is.
TEST(RouterCompat, AFadeOfNegativeDurationIsAtOnce) {
  Rig rig;
  const OscMessage r =
      rig.router.handle(msg("/fade", {OscArg::Str("A"), OscArg::Float(0.0f), OscArg::Float(-1.0f)}), control::Peer{});
  EXPECT_EQ(r.address, "/done") << r.to_string();
  EXPECT_FLOAT_EQ(rig.ctl.deck_level(0), 0.0f);
  for (float bad : {std::nanf(""), -INFINITY}) {
    const OscMessage f =
        rig.router.handle(msg("/fade", {OscArg::Str("B"), OscArg::Float(0.0f), OscArg::Float(bad)}), control::Peer{});
    EXPECT_EQ(f.address, "/fail") << f.to_string();
  }
  EXPECT_FLOAT_EQ(rig.ctl.deck_level(1), 1.0f);
}

// Issue 13 item 5: `/play_stem id 0.1` passed the crowdstream check (rate > 0) and was then
// clamped to 0.25 by the router without a word. Now the rate is checked once, against the range
// the engine plays (limits.hpp), and refused with that range; nothing starts.
TEST(RouterLimits, ACrowdstreamRateBelowTheRangeIsRefusedNotClamped) {
  Rig rig;
  rig.load(1100);
  for (const OscMessage& m : {msg("/play_stem", {OscArg::Int(1100), OscArg::Float(0.1f)}),
                              msg("/play_stem_section", {OscArg::Int(1100), OscArg::Float(0.1f), OscArg::Float(0.8f),
                                                         OscArg::Int(1), OscArg::Float(0.0f)})}) {
    const auto r = rig.reply(m);
    ASSERT_FALSE(r.ok) << m.address;
    EXPECT_EQ(r.kind, ErrorKind::kRange) << m.address;
    EXPECT_EQ(r.reason, "rate must be 0.25..4") << m.address;
    EXPECT_FALSE(rig.router.player(1100).valid()) << m.address << ": nothing started";
  }
  const auto ok = rig.reply(msg("/play_stem", {OscArg::Int(1100), OscArg::Float(0.25f)}));
  EXPECT_TRUE(ok.ok) << ok.reason;
  EXPECT_FLOAT_EQ(rig.router.player_rate(1100), 0.25f);
}

// /stemd/play and /stemd/play_region take an optional deck (A–D) after their other arguments:
// the player mixes on that deck instead of its id's own (an id below 100 is deck D's). The
// start-up --play files (ids 1…N) use it to play on deck A, where --levels and --ab apply.
TEST(RouterDeck, APlayMayNameTheDeckItMixesOn) {
  Rig rig;
  rig.load(1);
  auto deck_of_player = [&] { return rig.ctl.voice_info(rig.router.player(1)).deck; };
  ASSERT_TRUE(rig.reply(msg("/stemd/play", {OscArg::Int(1)})).ok);
  EXPECT_EQ(deck_of_player(), 3) << "without the argument: its id's own deck (D)";
  auto r = rig.reply(msg("/stemd/play", {OscArg::Int(1), OscArg::Float(1), OscArg::Int(0), OscArg::Float(0),
                                         OscArg::Str("s"), OscArg::Float(1), OscArg::Str("a")}));
  ASSERT_TRUE(r.ok) << r.reason;
  EXPECT_EQ(deck_of_player(), 0) << "deck A";
  r = rig.reply(msg("/stemd/play_region", {OscArg::Int(1), OscArg::Float(0), OscArg::Float(0.05f), OscArg::Int(1),
                                           OscArg::Int(0), OscArg::Float(1), OscArg::Str("s"), OscArg::Str("C")}));
  ASSERT_TRUE(r.ok) << r.reason;
  EXPECT_EQ(deck_of_player(), 2) << "deck C";
  // A deck that is not one: refused, naming the decks; the player it had plays on, on C.
  const control::VoiceHandle before = rig.router.player(1);
  r = rig.reply(msg("/stemd/play", {OscArg::Int(1), OscArg::Float(1), OscArg::Int(0), OscArg::Float(0),
                                    OscArg::Str("s"), OscArg::Float(1), OscArg::Str("E")}));
  ASSERT_FALSE(r.ok);
  EXPECT_EQ(r.kind, ErrorKind::kArguments);
  EXPECT_EQ(r.reason, "deck must be A, B, C or D, got \"E\"");
  EXPECT_EQ(rig.router.player(1).generation, before.generation);
  EXPECT_EQ(deck_of_player(), 2);
  // The deck's level applies: deck C muted (a jump: ramp 0 is the declick), the rest silent.
  ASSERT_TRUE(rig.reply(msg("/stemd/deck", {OscArg::Str("C"), OscArg::Float(0), OscArg::Float(0)})).ok);
  rig.render(1024);
  const auto out = rig.render(1024);
  EXPECT_TRUE(std::all_of(out.begin(), out.end(), [](float x) { return x == 0.0f; })) << "deck C is at 0";
}

// Which addresses act on arrival whatever their bundle's time is a flag of their handler
// (HandlerSpec::Timing): exactly these — loads and unloads, /cue, and what only asks or answers.
TEST(RouterTable, WhatActsOnArrivalIsAFlagOfItsHandler) {
  Rig rig;
  std::set<std::string> on_arrival;
  for (const auto& [address, spec] : rig.router.handlers().all()) {
    if (spec.timing == control::HandlerSpec::Timing::kOnArrival) on_arrival.insert(address);
  }
  const std::set<std::string> expected = {"/stemd/load", "/stemd/unload",        "/load_buffer",  "/cue",
                                          "/stemd/list", "/stemd/voices",        "/stemd/status", "/stemd/notify",
                                          "/stemd/ping", "/stemd/cookie",        "/get_status",   "/print_clock",
                                          "/dummy",      "/stemd/clear_schedule"};
  EXPECT_EQ(on_arrival, expected);
  EXPECT_TRUE(rig.router.handlers().acts_on_arrival("/stemd/load"));
  EXPECT_FALSE(rig.router.handlers().acts_on_arrival("/stemd/play"));
  EXPECT_FALSE(rig.router.handlers().acts_on_arrival("/dance/person_count")) << "a prefix's handler is timed";
  EXPECT_FALSE(rig.router.handlers().acts_on_arrival("/no_such_address"));
}

// A message answered later — a load run on an opener thread, or a message that waited behind one —
// reaches the outcome observer typed: its address, the id it names, who sent it, and its reply's
// kind and reason, the ones the answer sent says. Nobody parses the answer to learn them (the
// state file's restore did, and took every later failure for a path's).
TEST(RouterOutcomes, ALoadThatFailsOnAnOpenerThreadGivesTheObserverItsKindAndReason) {
  Rig rig;
  const std::string good = rig.dir.file("good.wav"), missing = rig.dir.file("gone/missing.wav");
  const std::string junk = rig.dir.file("junk.wav");
  make_wav(good, 4800, 1);
  std::ofstream(junk) << "not a sound file, only text";
  rig.router.enable_async_loads(nullptr);
  std::vector<control::Outcome> seen;
  rig.router.set_outcome_observer([&](const control::Outcome& o) { seen.push_back(o); });
  control::Peer client;
  client.local = 7;
  const std::vector<OscMessage> msgs = {msg("/stemd/load", {OscArg::Int(1), OscArg::Str(missing)}),
                                        msg("/stemd/play", {OscArg::Int(1)}),  // waits behind the load
                                        msg("/load_buffer", {OscArg::Int(2), OscArg::Str(junk)}),
                                        msg("/stemd/load", {OscArg::Int(3), OscArg::Str(good)})};
  const auto packet = control::osc_serialise_bundle(msgs, control::kOscImmediately);
  std::vector<control::Outgoing> out;
  rig.router.handle_packet(packet.data(), packet.size(), client, out);
  EXPECT_TRUE(out.empty()) << "every message waits for a load";
  ASSERT_TRUE(rig.settle_loads());
  rig.router.take_replies(out);
  ASSERT_EQ(seen.size(), 4u);
  ASSERT_EQ(out.size(), 4u);
  std::map<std::string, control::Outcome> by;  // "address id" → its outcome
  for (const control::Outcome& o : seen) {
    EXPECT_TRUE(o.has_id) << o.address;
    EXPECT_TRUE(o.from == client) << o.address;
    by[o.address + " " + std::to_string(o.id)] = o;
  }
  const control::Reply& gone = by.at("/stemd/load 1").reply;
  EXPECT_FALSE(gone.ok);
  EXPECT_EQ(gone.kind, ErrorKind::kPath);
  EXPECT_NE(gone.reason.find("No such file or directory"), std::string::npos) << gone.reason;
  const control::Reply& play = by.at("/stemd/play 1").reply;
  EXPECT_FALSE(play.ok);
  EXPECT_EQ(play.kind, ErrorKind::kUnknownId) << play.reason;
  const control::Reply& bad = by.at("/load_buffer 2").reply;
  EXPECT_FALSE(bad.ok);
  EXPECT_EQ(bad.kind, ErrorKind::kFile) << "opened, not a sound file: " << bad.reason;
  EXPECT_TRUE(by.at("/stemd/load 3").reply.ok);
  // The answers sent say the same.
  for (const control::Outgoing& o : out) {
    control::OscMessage m;
    std::string error;
    ASSERT_TRUE(control::osc_parse(o.data.data(), o.data.size(), m, error)) << error;
    ASSERT_GE(m.args.size(), 2u);
    const control::Reply& r = by.at(m.args[0].s + " " + std::to_string(m.args[1].i)).reply;
    EXPECT_EQ(m.address, r.ok ? "/done" : "/fail");
    if (!r.ok) {
      EXPECT_EQ(m.args.back().s, r.reason);
    }
  }
  // Answered at once: no outcome (the caller has the reply).
  ASSERT_TRUE(rig.reply(msg("/stemd/ping")).ok);
  EXPECT_EQ(seen.size(), 4u);
}

TEST(TempoClock, BeatsCarryOnAcrossATempoChangeAndQuantizeRoundsUp) {
  control::TempoClock clock(120.0, 4, 48000, 0.3, 30.0);
  EXPECT_DOUBLE_EQ(clock.beats_at(48000), 2.0);  // 120 bpm: 2 beats a second
  clock.change(60.0, 48000);
  EXPECT_DOUBLE_EQ(clock.ratio(), 0.5);
  EXPECT_DOUBLE_EQ(clock.beats_at(48000), 2.0);
  EXPECT_DOUBLE_EQ(clock.beats_at(96000), 3.0);  // then 1 beat a second
  clock.set_quantum(4);
  EXPECT_EQ(clock.quantized(96000), 48000 + 2 * 48000) << "beat 4 is 2 s after the change";
  EXPECT_EQ(clock.quantized(144000), 144000) << "on the grid: unchanged";
  clock.restart(0);
  EXPECT_DOUBLE_EQ(clock.beats_at(48000), 1.0);
  EXPECT_DOUBLE_EQ(clock.follow_movement(1000.0), 480.0) << "held to 4 × the base tempo";
  EXPECT_NEAR(control::TempoClock::glide(100, 200, 0.3, 0.3, 30), 100 + 100 * (1 - std::exp(-1.0)), 1e-9);
}

// The server loop's sleep (Router::wait_ms): 100 ms when nothing moves, so an idle daemon wakes
// 10 times a second instead of 100; about one audio period (10–50 ms) while a voice plays or a
// movement glide runs, so engine events and glides are serviced once per callback.
TEST(RouterWait, TheServerSleepsLongWhenNothingMovesAndAboutAPeriodWhileVoicesPlay) {
  control::RouterConfig rc;
  rc.buffer_size = 1024;
  rc.sample_rate = 48000;
  Rig rig(rc);
  EXPECT_EQ(rig.router.wait_ms(), 100) << "idle";
  rig.load(1);
  EXPECT_EQ(rig.router.wait_ms(), 100) << "loaded, nothing playing";
  ASSERT_TRUE(rig.reply(msg("/stemd/play", {OscArg::Int(1)})).ok);
  EXPECT_EQ(rig.router.wait_ms(), 21) << "a voice plays: one 1024-frame period at 48 kHz";
  EXPECT_EQ(rig.router.wait_ms(false, 100), 100)
      << "a voice plays, but the engine's bell tells the loop of its events: no pass every period";
  EXPECT_EQ(rig.router.wait_ms(false, 5000), 5000);
  ASSERT_TRUE(rig.reply(msg("/stemd/stop", {OscArg::Int(1)})).ok);
  rig.render(48000);  // the fade-out ends; the voice is retired
  rig.ctl.service();
  EXPECT_EQ(rig.router.wait_ms(), 100) << "the voice ended";

  control::RouterConfig small;
  small.buffer_size = 64;
  Rig low(small);
  low.load(1);
  ASSERT_TRUE(low.reply(msg("/stemd/play", {OscArg::Int(1)})).ok);
  EXPECT_EQ(low.router.wait_ms(), 10) << "never below 10 ms, however small the period";
}

// /set_tempo is all or nothing: a /fail changes nothing. With more players than free resamplers it
// answered "/fail … busy: all 2 resamplers are in use" (now: the resampling budget's) after it had changed the tempo
// and moved two players to the new rate, leaving the mix at two tempos (outside pass 25, N5).
TEST(RouterTempo, ASetTempoThatNotEveryPlayerCanFollowChangesNothing) {
  engine::EngineConfig ec = RouterRig::config();
  ec.max_resampled_voices = 2;
  Rig rig(RouterRig::instance_config({}, ec));
  for (int id : {100, 101, 102}) {
    rig.load(id);
    ASSERT_TRUE(
        rig.reply(msg("/play_stem", {OscArg::Int(id), OscArg::Float(1.0f), OscArg::Float(1.0f), OscArg::Int(1)})).ok);
  }
  rig.render(1024);
  const double before = rig.router.tempo().bpm();
  const auto r = rig.reply(msg("/set_tempo", {OscArg::Float(static_cast<float>(before * 1.1))}));
  ASSERT_FALSE(r.ok);
  EXPECT_EQ(r.kind, ErrorKind::kBusy) << r.reason;
  EXPECT_NE(r.reason.find("3 players"), std::string::npos) << r.reason;
  EXPECT_NE(r.reason.find("2 free"), std::string::npos) << r.reason;
  EXPECT_DOUBLE_EQ(rig.router.tempo().bpm(), before) << "a /fail changes nothing";
  EXPECT_EQ(rig.ctl.resample_units_free(), 2000u) << "no player moved to the new rate";
  for (const auto& v : rig.ctl.voices()) EXPECT_FLOAT_EQ(v.rate_set, 1.0f) << v.slot;

  // Two players can follow two resamplers: then it is done.
  ASSERT_TRUE(rig.reply(msg("/stop_stem", {OscArg::Int(102)})).ok);
  rig.render(4096);
  EXPECT_TRUE(rig.reply(msg("/set_tempo", {OscArg::Float(static_cast<float>(before * 1.1))})).ok);
  EXPECT_DOUBLE_EQ(rig.router.tempo().bpm(), before * 1.1);
}

}  // namespace
}  // namespace stemd::test
