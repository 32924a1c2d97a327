// Compatibility: the message sequences crowdstream's own clients send (the spec's "What the
// clients send"), replayed against an in-process daemon with generated WAV files. Each message
// gets exactly one reply: /done for what stemd implements, /fail "not yet…" (and nothing else)
// for what still waits on issue 4 (none of what these clients send, now that the tempo clock,
// cue/group start and deck EQ have landed; the mechanism stays for what may come). The state afterwards is what the
// sequence describes: deck levels, players, volumes, loaded buffers.
//
// Times between messages are compressed (the clients pace themselves by beats and seconds; the
// daemon does not care), and group start times are scaled down where waiting would only slow
// the suite.
#include "osc_harness.hpp"

#include <gtest/gtest.h>

#include <cctype>
#include <cmath>
#include <map>

namespace stemd::test::osc {
namespace {

// What a reply to a replayed message must be.
enum class Expect { kDone, kNotYet };

struct Step {
  Bytes packet;
  std::string address;
  Expect expect;
  std::string text;  // for messages
  OscMessage m;      // (empty for raw packets)
};

Step step(const OscMessage& m, Expect e) { return Step{serialise(m), m.address, e, m.to_string(), m}; }

// The addresses still waiting on issue 4: their valid messages answer "not yet".
Expect expectation(const std::string& address) {
  for (const char* a : {"/play_stem_section"}) {
    if (address == a) return Expect::kNotYet;
  }
  return Expect::kDone;
}
Step step(const OscMessage& m) { return step(m, expectation(m.address)); }

class OscCompat : public ::testing::Test {
 protected:
  void SetUp() override {
    d_ = std::make_unique<Daemon>();
    ASSERT_TRUE(d_->ok()) << d_->error();
    c_ = std::make_unique<Client>(d_->udp());
    ASSERT_TRUE(c_->ok());
  }
  void TearDown() override {
    if (!c_) return;
    EXPECT_TRUE(c_->quiet(30ms)) << "a reply arrived that no message asked for";
    for (const auto& s : c_->strays()) ADD_FAILURE() << "stray reply: " << s.to_string();
  }

  // Sends the steps as a client would — without waiting — in windows of `window` messages, then
  // reads the window's replies: one per message, each what the step expects. A load (/cue,
  // /load_buffer) is answered when it is done, so replies to messages that do not wait for it
  // may overtake its reply: each reply is matched to the earliest unanswered step of its address.
  void replay(const std::vector<Step>& steps, std::size_t window = 16) {
    std::size_t done = 0, not_yet = 0;
    for (std::size_t at = 0; at < steps.size(); at += window) {
      const std::size_t end = std::min(steps.size(), at + window);
      for (std::size_t i = at; i < end; ++i) c_->post_raw(steps[i].packet);
      std::vector<bool> answered(end - at, false);
      for (std::size_t n = at; n < end; ++n) {
        auto r = c_->next_reply();
        ASSERT_TRUE(r.has_value()) << "no reply";
        ASSERT_FALSE(r->args.empty()) << r->to_string();
        std::size_t i = at;
        while (i < end && (answered[i - at] || steps[i].address != r->args[0].s)) ++i;
        ASSERT_LT(i, end) << "a reply no message of this window asked for: " << r->to_string();
        answered[i - at] = true;
        const Step& s = steps[i];
        SCOPED_TRACE("message " + std::to_string(i) + ": " + s.text);
        if (s.expect == Expect::kDone) {
          EXPECT_EQ(r->address, "/done") << r->to_string();
          ++done;
        } else {
          EXPECT_EQ(r->address, "/fail") << r->to_string();
          EXPECT_EQ(reason(*r).rfind("not yet", 0), 0u) << "only \"not yet\" is acceptable here: " << r->to_string();
          ++not_yet;
        }
      }
    }
    // Exactly one each: the ping behind them is answered next.
    auto extra = c_->send_raw_then_ping(serialise(msg("/stemd/list")));
    ASSERT_TRUE(extra.has_value());
    EXPECT_TRUE(is_done(*extra, "/stemd/list")) << "an extra reply: " << extra->to_string();
    std::printf("replayed %zu messages: %zu /done, %zu not yet\n", steps.size(), done, not_yet);
    // What the EQ should now be: the last percent asked for, per deck and band.
    for (const Step& st : steps) {
      const auto& a = st.m.args;
      auto deck = [&](const OscArg& x) { return std::toupper(static_cast<unsigned char>(x.s.at(0))) - 'A'; };
      if (st.m.address == "/deck_eq_all") {
        for (int b = 0; b < 3; ++b) eq_want_[{deck(a[0]), b}] = a[1 + b].as_double();
      } else if (st.m.address == "/deck_eq") {
        const char c0 = static_cast<char>(std::tolower(static_cast<unsigned char>(a[1].s.at(0))));
        eq_want_[{deck(a[0]), c0 == 'l' ? 0 : c0 == 'm' ? 1 : 2}] = a[2].as_double();
      }
    }
    expect_eq(eq_want_);
  }

  bool playing(std::initializer_list<int> slots) {
    return eventually([&] {
      const auto v = voices(*c_);
      for (int s : slots) {
        bool found = false;
        for (const auto& x : v) found = found || (x.slot == s && x.state == "playing");
        if (!found) return false;
      }
      return true;
    });
  }
  void expect_decks(double a, double b, double c, double d) {
    const auto st = status(*c_);
    EXPECT_FLOAT_EQ(static_cast<float>(st.at("deck_a").f), static_cast<float>(a));
    EXPECT_FLOAT_EQ(static_cast<float>(st.at("deck_b").f), static_cast<float>(b));
    EXPECT_FLOAT_EQ(static_cast<float>(st.at("deck_c").f), static_cast<float>(c));
    EXPECT_FLOAT_EQ(static_cast<float>(st.at("deck_d").f), static_cast<float>(d));
  }
  // The EQ gains the daemon reports equal what the last /deck_eq(_all) per band asked for.
  void expect_eq(const std::map<std::pair<int, int>, double>& want) {
    const auto st = status(*c_);
    const char* bands[3] = {"low", "mid", "high"};
    for (const auto& [db, percent] : want) {
      const std::string key = std::string("eq_") + static_cast<char>('a' + db.first) + "_" + bands[db.second];
      EXPECT_NEAR(st.at(key).as_double(), eq_gain(percent), 1e-5) << key << " for " << percent << " %";
    }
  }
  std::vector<int> loaded() {
    std::vector<int> ids;
    for (const auto& s : sources(*c_)) ids.push_back(s.id);
    return ids;
  }

  std::map<std::pair<int, int>, double> eq_want_;
  Media media_;
  std::unique_ptr<Daemon> d_;
  std::unique_ptr<Client> c_;
};

const char* kDecks[] = {"A", "B", "C", "D"};

// The track mixer in production: set-up, the first track on deck A, then per track a cue one
// second before its cue point and a 41-step crossfade of /deck_levels ffff with two
// /deck_eq_all siii per step, /start_group at the first step; movement input interleaves
// /deck_eq_all for decks A–C and /set_tempo.
TEST_F(OscCompat, TrackMixerProductionSequence) {
  const std::string tracks[] = {media_.path("a.wav"), media_.path("b.wav"), media_.path("c.wav")};
  std::vector<Step> s;
  s.push_back(step(msg("/reset")));
  s.push_back(step(msg("/set_tempo", 120.0)));
  s.push_back(step(msg("/deck_levels", 0.0, 0.0, 0.0, 0.0)));
  for (const char* d : {"A", "B", "C"}) s.push_back(step(msg("/deck_eq_all", d, 50, 50, 50)));
  s.push_back(step(msg("/cue", "A", tracks[0], 0.0)));
  s.push_back(step(msg("/start_group", 0.0, "A")));
  s.push_back(step(msg("/deck_levels", 1.0, 0.0, 0.0, 0.0)));
  replay(s);
  ASSERT_TRUE(playing({100}));
  expect_decks(1, 0, 0, 0);

  for (int track = 1; track <= 2; ++track) {
    const int from = track - 1, to = track;
    s.clear();
    s.push_back(step(msg("/cue", kDecks[to], tracks[track], 0.0)));
    for (int k = 0; k <= 40; ++k) {
      const double x = k / 40.0;
      double lv[4] = {0, 0, 0, 0};
      lv[from] = 1.0 - x;
      lv[to] = x;
      if (k == 0) s.push_back(step(msg("/start_group", 0.0, kDecks[to])));
      s.push_back(step(msg("/deck_levels", lv[0], lv[1], lv[2], lv[3])));
      const int bass = static_cast<int>(50 * x);
      s.push_back(step(msg("/deck_eq_all", kDecks[from], 50 - bass, 50, 50)));
      s.push_back(step(msg("/deck_eq_all", kDecks[to], bass, 50, 50)));
      if (k % 10 == 0) {  // movement input: EQ for A–C twice a second, tempo once a second
        for (const char* d : {"A", "B", "C"}) s.push_back(step(msg("/deck_eq_all", d, 40 + k % 11, 50, 45)));
        s.push_back(step(msg("/set_tempo", 118.0 + k / 10)));
      }
    }
    replay(s);
  }
  ASSERT_TRUE(playing({100, 1100, 2100}));
  expect_decks(0, 0, 1, 0);
  EXPECT_EQ(loaded(), (std::vector<int>{100, 1100, 2100}));
  d_->stop_server();
  for (const auto& v : d_->controller().voices()) {
    EXPECT_EQ(v.deck, v.slot == 100 ? 0 : v.slot == 1100 ? 1 : 2) << v.slot;
    EXPECT_FLOAT_EQ(v.volume, 0.8f);
    EXPECT_TRUE(v.loop);
  }
}

// The two-deck mixer: /reset with an empty array, levels, EQ, two cues with absolute paths,
// two group starts, then bursts of /deck_eq (214 in 25 s).
TEST_F(OscCompat, TwoDeckMixer) {
  std::vector<Step> s;
  s.push_back(Step{reset_empty_array(), "/reset", Expect::kDone, "/reset ,[]", OscMessage{}});
  s.push_back(step(msg("/deck_levels", 1.0, 1.0, 0.0, 0.0)));
  s.push_back(step(msg("/deck_eq_all", "A", 50, 50, 50)));
  s.push_back(step(msg("/deck_eq_all", "B", 50, 50, 50)));
  s.push_back(step(msg("/cue", "A", media_.path("a.wav"), 0.0)));
  s.push_back(step(msg("/cue", "B", media_.path("b.wav"), 0.0)));
  s.push_back(step(msg("/start_group", 0.5, "A")));
  s.push_back(step(msg("/start_group", 0.63, "B")));
  const char* bands[] = {"low", "mid", "high"};
  for (int i = 0; i < 214; ++i) {
    s.push_back(step(msg("/deck_eq", kDecks[i % 2], bands[(i / 2) % 3], static_cast<double>((i * 7) % 51))));
  }
  replay(s);
  ASSERT_TRUE(playing({100, 1100}));
  expect_decks(1, 1, 0, 0);
  EXPECT_EQ(loaded(), (std::vector<int>{100, 1100}));
  EXPECT_EQ(voices(*c_).size(), 2u);
}

// The three-deck mixer: decks A–C started at 0.5, ≈4.42 and ≈8.34 s (scaled down ten times
// here), then 41 steps of nine /deck_eq messages.
TEST_F(OscCompat, ThreeDeckMixer) {
  std::vector<Step> s;
  s.push_back(Step{reset_empty_array(), "/reset", Expect::kDone, "/reset ,[]", OscMessage{}});
  s.push_back(step(msg("/deck_levels", 1.0, 1.0, 1.0, 0.0)));
  for (const char* d : {"A", "B", "C"}) s.push_back(step(msg("/deck_eq_all", d, 50, 50, 50)));
  s.push_back(step(msg("/cue", "A", media_.path("a.wav"), 0.0)));
  s.push_back(step(msg("/cue", "B", media_.path("b.wav"), 0.0)));
  s.push_back(step(msg("/cue", "C", media_.path("c.wav"), 0.0)));
  s.push_back(step(msg("/start_group", 0.05, "A")));
  s.push_back(step(msg("/start_group", 0.442, "B")));
  s.push_back(step(msg("/start_group", "C", 0.834)));  // either order
  const char* bands[] = {"low", "mid", "high"};
  for (int k = 0; k <= 40; ++k) {
    for (int d = 0; d < 3; ++d) {
      for (int b = 0; b < 3; ++b) s.push_back(step(msg("/deck_eq", kDecks[d], bands[b], (k + d + b) % 51)));
    }
  }
  replay(s);
  ASSERT_TRUE(playing({100, 1100, 2100}));
  expect_decks(1, 1, 1, 0);
  EXPECT_EQ(loaded(), (std::vector<int>{100, 1100, 2100}));
}

// The movement detector: /dance/total_movement once a second, the per-person and per-limb
// values, and per-frame pose keypoints (51 floats) many times a second. Answered cheaply;
// nothing changes.
TEST_F(OscCompat, MovementDetector) {
  ASSERT_TRUE(is_done(c_->send("/load_buffer", 100, media_.path("a.wav")), "/load_buffer"));
  ASSERT_TRUE(is_done(c_->send("/play_stem", 100), "/play_stem"));
  ASSERT_TRUE(playing({100}));
  const Snapshot before = snapshot(*c_);
  std::vector<Step> s;
  for (int frame = 0; frame < 60; ++frame) {
    for (int person = 0; person < 3; ++person) {
      std::vector<OscArg> kp;
      for (int i = 0; i < 51; ++i) kp.push_back(OscArg::Float(0.01 * ((frame + person + i) % 100)));
      s.push_back(step(msg_v("/dance/pose/person/" + std::to_string(person) + "/keypoints", kp)));
    }
    if (frame % 15 == 0) {
      s.push_back(step(msg("/dance/person_count", 3)));
      s.push_back(step(msg("/dance/arm_movement", 0.12)));
      s.push_back(step(msg("/dance/leg_movement", 0.08)));
      s.push_back(step(msg("/dance/head_movement", 0.03)));
    }
    if (frame % 30 == 0) s.push_back(step(msg("/dance/total_movement", 0.07 * (frame / 30 + 1))));
  }
  replay(s);
  const Snapshot after = snapshot(*c_);
  EXPECT_EQ(after, before) << "before: " << before.describe() << "\nafter: " << after.describe();
}

// The energy sender: /crossfade_levels (1−x) x and /stem_volume 1000 v, up to ten times a second.
TEST_F(OscCompat, EnergySender) {
  ASSERT_TRUE(is_done(c_->send("/load_buffer", 1000, media_.path("a.wav")), "/load_buffer"));
  ASSERT_TRUE(is_done(c_->send("/play_stem", 1000), "/play_stem"));
  std::vector<Step> s;
  double x = 0, v = 0;
  for (int i = 0; i < 50; ++i) {
    x = 0.5 + 0.5 * std::sin(i * 0.3);
    v = 0.2 + 0.6 * (i % 7) / 6.0;
    s.push_back(step(msg("/crossfade_levels", 1.0 - x, x)));
    s.push_back(step(msg("/stem_volume", 1000, v)));
  }
  replay(s, 32);
  expect_decks(1.0 - x, x, 1, 1);
  EXPECT_EQ(loaded(), (std::vector<int>{1000}));
  ASSERT_TRUE(playing({1000}));
  d_->stop_server();
  const auto vs = d_->controller().voices();
  ASSERT_EQ(vs.size(), 1u);
  EXPECT_FLOAT_EQ(vs[0].volume, static_cast<float>(v)) << "the last /stem_volume";
  EXPECT_EQ(vs[0].deck, 0) << "1000 is on deck A";
}

// ---------------------------------------------------------------- issue 11: drop-in for real

std::int64_t status_int(Client& c, const char* key) { return static_cast<std::int64_t>(status(c).at(key).as_double()); }

// --disable-filters (the production launch line): /deck_eq, /deck_eq_all and /deck_filter are
// answered /done, counted as ignored, and change nothing; a malformed one is still refused.
TEST(OscCompatDropIn, DisableFiltersAnswersEqAndChangesNothing) {
  DaemonOptions o;
  o.disable_filters = true;
  Daemon d(o);
  ASSERT_TRUE(d.ok()) << d.error();
  Client c(d.udp());
  const Snapshot before = snapshot(c);
  EXPECT_TRUE(is_done(c.send("/deck_eq", "A", "low", 0), "/deck_eq"));
  EXPECT_TRUE(is_done(c.send("/deck_eq_all", "B", 1, 1, 1), "/deck_eq_all"));
  EXPECT_TRUE(is_done(c.send("/deck_filter", "C", "high", 0.0), "/deck_filter"));
  EXPECT_TRUE(is_fail(c.send("/deck_eq", "A", "bass", 0), "/deck_eq")) << "arguments are still checked";
  const Snapshot after = snapshot(c);
  EXPECT_EQ(after, before) << "before: " << before.describe() << "\nafter: " << after.describe();
  for (int deck = 0; deck < 4; ++deck) {
    for (int band = 0; band < 3; ++band) EXPECT_EQ(after.eq[deck][band], 1.0) << deck << " " << band;
  }
  EXPECT_EQ(status_int(c, "ignored_messages"), 3);
  EXPECT_EQ(status_int(c, "bad_messages"), 1);
}

// Without it, the same message still applies its EQ (stemd's default).
TEST(OscCompatDropIn, EqStillAppliesWithoutDisableFilters) {
  Daemon d;
  ASSERT_TRUE(d.ok()) << d.error();
  Client c(d.udp());
  EXPECT_TRUE(is_done(c.send("/deck_eq_all", "B", 1, 1, 1), "/deck_eq_all"));
  EXPECT_NEAR(status(c).at("eq_b_low").as_double(), eq_gain(1), 1e-6);
  EXPECT_EQ(status_int(c, "ignored_messages"), 0);
}

// Deck and band names as the old server read them (str(x).strip().upper() / .lower(), a band by
// startswith "lo", "mi", "hi"): blanks around a name, "lows", "Highs". stemd refused them
// ("deck must be A, B, C or D, got \" b \"", "band must be low, mid or high, got \"lows\"").
TEST(OscCompatDropIn, DeckAndBandNamesAreReadAsTheOldServerReadThem) {
  Daemon d;
  ASSERT_TRUE(d.ok()) << d.error();
  Client c(d.udp());
  EXPECT_TRUE(is_done(c.send("/deck_eq", " b ", " LOW ", 25), "/deck_eq"));
  EXPECT_NEAR(status(c).at("eq_b_low").as_double(), eq_gain(25), 1e-6);
  EXPECT_TRUE(is_done(c.send("/deck_eq", "c\t", "middle", 0), "/deck_eq"));
  EXPECT_NEAR(status(c).at("eq_c_mid").as_double(), 0.0, 1e-6);
  EXPECT_TRUE(is_done(c.send("/deck_filter", "B", "Highs", 0.5), "/deck_filter"));
  EXPECT_NEAR(status(c).at("eq_b_high").as_double(), 0.5, 1e-6);
  EXPECT_TRUE(is_done(c.send("/deck_eq_all", " a", 1, 1, 1), "/deck_eq_all"));
  EXPECT_NEAR(status(c).at("eq_a_high").as_double(), eq_gain(1), 1e-6);
  EXPECT_TRUE(is_done(c.send("/deck_eq", "A", "l", 50), "/deck_eq")) << "a prefix of the name, as before";
  EXPECT_TRUE(is_fail(c.send("/deck_eq", "A", "bass", 0), "/deck_eq"));
  EXPECT_TRUE(is_fail(c.send("/deck_eq", "AB", "low", 0), "/deck_eq"));
  EXPECT_TRUE(is_fail(c.send("/deck_eq", " ", "low", 0), "/deck_eq"));
}

// What crowdstream clients send that the old server ignored: the detector's legacy pose frames
// (sent to every destination), the sc-engine example's addresses, /memory_cleanup (the old
// server had no such address), /stem_volume of a buffer never loaded. /done, counted, nothing
// changes, nothing counted as bad input.
TEST(OscCompatDropIn, MessagesTheOldServerIgnoredAreNoOps) {
  Media media;
  Daemon d;
  ASSERT_TRUE(d.ok()) << d.error();
  Client c(d.udp());
  ASSERT_TRUE(is_done(c.send("/load_buffer", 100, media.path("a.wav")), "/load_buffer"));
  ASSERT_TRUE(is_done(c.send("/play_stem", 100), "/play_stem"));
  // Playing, not "starting": the snapshots compare voice states (slow under ASan).
  ASSERT_TRUE(eventually([&] {
    const auto v = voices(c);
    return v.size() == 1 && v[0].state == "playing";
  }));
  const Snapshot before = snapshot(c);
  std::vector<OscArg> kp{OscArg::Int(3)};
  for (int i = 0; i < 51; ++i) kp.push_back(OscArg::Float(0.01 * i));
  const std::vector<OscMessage> noops = {
      msg_v("/pose/keypoints", kp),
      msg("/memory_cleanup"),
      msg("/play_sound", "vocals", "/path/to/vocals.wav", 0.8),
      msg("/set_volume", "vocals", 0.2),
      msg("/stop_sound", "bass"),
      msg("/stop_all"),
      msg("/stem_volume", 1000, 0.5),
  };
  for (int round = 0; round < 3; ++round) {
    for (const auto& m : noops) EXPECT_TRUE(is_done(c.send(m), m.address)) << m.to_string();
  }
  const Snapshot after = snapshot(c);
  EXPECT_EQ(after, before) << "before: " << before.describe() << "\nafter: " << after.describe();
  EXPECT_EQ(status_int(c, "ignored_messages"), 21);
  EXPECT_EQ(status_int(c, "bad_messages"), 0);
}

// /stem_volume of a loaded id without a player — loaded only, stopped, or ended — is what the
// energy sender sends ten times a second once its buffer 1000 no longer plays: the old server
// ignored it silently (its active_players had no such id). /done, counted as ignored, no bad
// input (which would also log a refusal line a second).
TEST(OscCompatDropIn, StemVolumeOfALoadedIdThatDoesNotPlayIsIgnored) {
  Media media;
  Daemon d;
  ASSERT_TRUE(d.ok()) << d.error();
  Client c(d.udp());
  ASSERT_TRUE(is_done(c.send("/load_buffer", 1000, media.path("short.wav")), "/load_buffer"));
  EXPECT_TRUE(is_done(c.send("/stem_volume", 1000, 0.5), "/stem_volume")) << "loaded, never played";
  ASSERT_TRUE(is_done(c.send("/play_stem", 1000, 1.0, 0.8, 1), "/play_stem"));
  ASSERT_TRUE(is_done(c.send("/stop_stem", 1000), "/stop_stem"));
  EXPECT_TRUE(is_done(c.send("/stem_volume", 1000, 0.5), "/stem_volume")) << "stopped";
  ASSERT_TRUE(is_done(c.send("/play_stem", 1000, 1.0, 0.8, 0), "/play_stem"));  // 0.2 s, once
  ASSERT_TRUE(eventually([&] { return voices(c).empty(); })) << "short.wav did not end";
  for (int i = 0; i < 10; ++i) EXPECT_TRUE(is_done(c.send("/stem_volume", 1000, 0.1 * i), "/stem_volume")) << "ended";
  EXPECT_EQ(status_int(c, "ignored_messages"), 12);
  EXPECT_EQ(status_int(c, "bad_messages"), 0);
}

// /test_tone freq level: the level (linear peak) is taken; out of range is refused.
TEST(OscCompatDropIn, TestToneTakesALevel) {
  Daemon d;
  ASSERT_TRUE(d.ok()) << d.error();
  Client c(d.udp());
  EXPECT_TRUE(is_done(c.send("/test_tone", 440, 0.5), "/test_tone"));
  EXPECT_TRUE(is_done(c.send("/test_tone", 880.0, 1), "/test_tone"));
  EXPECT_TRUE(is_fail(c.send("/test_tone", 440, 1.5), "/test_tone"));
  EXPECT_TRUE(is_fail(c.send("/test_tone", 440, 0), "/test_tone"));
  EXPECT_TRUE(is_fail(c.send("/test_tone", 440, 0.5, 1), "/test_tone"));
}

// /play_stem with a start past the file's end (old clients sent seconds): from the beginning,
// as the old server's wrapping player did.
TEST(OscCompatDropIn, PlayStemStartBeyondTheFilePlaysFromTheBeginning) {
  Media media;
  Daemon d;
  ASSERT_TRUE(d.ok()) << d.error();
  Client c(d.udp());
  ASSERT_TRUE(is_done(c.send("/load_buffer", 100, media.path("a.wav")), "/load_buffer"));
  for (double start : {1.0, 12.0, 30.5}) {
    EXPECT_TRUE(is_done(c.send("/play_stem", 100, 1.0, 0.8, 1, start), "/play_stem")) << start;
    std::vector<VoiceRow> v;
    ASSERT_TRUE(eventually([&] {
      v = voices(c);
      return v.size() == 1 && v[0].state == "playing";
    }));
    EXPECT_LT(v[0].position, 0.5) << "start " << start << " played from " << v[0].position << " s";
  }
  EXPECT_TRUE(is_fail(c.send("/play_stem", 100, 1.0, 0.8, 1, -0.5), "/play_stem"));
}

}  // namespace
}  // namespace stemd::test::osc
