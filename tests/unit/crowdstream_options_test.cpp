// The old crowdstream server's launch line and flags (issue 11): parse_options maps every flag to
// its meaning or refuses it clearly; --bpm-config's JSON; the movement tempo's time constants,
// derived from the old server's per-chunk smoothing.
#include "app/bpm_config.hpp"
#include "app/options.hpp"
#include "common/engine_driver.hpp"
#include "control/router.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>

namespace stemd::app {
namespace {

// parse_options over these arguments; the error (if any) in `error`.
int parse(std::vector<std::string> args, Options& o, std::string* error = nullptr) {
  std::string e;
  args.insert(args.begin(), "stemd");
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  const int rc = parse_options(static_cast<int>(argv.size()), argv.data(), o, &e);
  if (error) *error = e;
  return rc;
}

constexpr double kChunk = 1024.0 / 44100.0;  // the old server's chunk, seconds

TEST(CrowdstreamOptions, ProductionLaunchLineIsAccepted) {
  for (const char* port : {"57120", "57122"}) {  // scripts/start-crowdstream.sh, scripts/audio-mix-start.sh
    Options o;
    std::string e;
    ASSERT_EQ(parse({"--port", port, "--disable-filters"}, o, &e), -1) << e;
    EXPECT_EQ(o.osc_port, std::stoi(port));
    EXPECT_TRUE(o.disable_filters);
    EXPECT_TRUE(o.crowdstream_mode);
    EXPECT_DOUBLE_EQ(o.master, 0.8);    // the old server's fixed master
    EXPECT_EQ(o.limiter, "soft_clip");  // its 0.9·tanh(0.9·x)
    EXPECT_NEAR(o.tempo_fall_s, 69.66, 0.01);
    EXPECT_NEAR(o.tempo_rise_s, 0.2785, 0.0005);
  }
}

TEST(CrowdstreamOptions, StemdDefaultsWithoutOldServerFlags) {
  Options o;
  ASSERT_EQ(parse({"--a", "x.wav", "--bpm", "122"}, o), -1);  // flags both servers have
  EXPECT_FALSE(o.crowdstream_mode);
  EXPECT_DOUBLE_EQ(o.master, 1.0);
  EXPECT_EQ(o.limiter, "true");
  EXPECT_DOUBLE_EQ(o.tempo_fall_s, 30.0);
  EXPECT_DOUBLE_EQ(o.tempo_rise_s, 0.3);
}

// crowdstream's own docs start the old server with "--port 57122" and no filter flag (README,
// MOVEMENT-TO-MIX.md); its filters were off by default on Linux (audio_server.py: on only on a Mac
// M2 Pro / M3 Pro). That line gives the old server's sound here too: --port is the old server's
// spelling, so it is crowdstream mode, and crowdstream mode ignores EQ unless --enable-filters
// (new-user pass 25, H1: it applied the EQ, master 1.0, the limiter).
TEST(CrowdstreamOptions, TheDocumentedLaunchLineWithoutAFilterFlagSoundsAsTheOldServer) {
  Options o;
  std::string e;
  ASSERT_EQ(parse({"--port", "57122"}, o, &e), -1) << e;
  EXPECT_EQ(o.osc_port, 57122);
  EXPECT_TRUE(o.crowdstream_mode);
  EXPECT_TRUE(o.disable_filters) << "the old server's filters were off by default on Linux";
  EXPECT_DOUBLE_EQ(o.master, 0.8);
  EXPECT_EQ(o.limiter, "soft_clip");
  EXPECT_EQ(o.crowdstream_flag, "--port");

  Options stretch;  // another old-server flag alone: EQ ignored too
  ASSERT_EQ(parse({"--stretch-method", "pyrubberband"}, stretch, &e), -1) << e;
  EXPECT_TRUE(stretch.crowdstream_mode);
  EXPECT_TRUE(stretch.disable_filters);

  Options enabled;  // as on the old server: --enable-filters applies them, --disable-filters wins
  ASSERT_EQ(parse({"--port", "57122", "--enable-filters"}, enabled, &e), -1) << e;
  EXPECT_FALSE(enabled.disable_filters);
  Options both;
  ASSERT_EQ(parse({"--port", "57122", "--enable-filters", "--disable-filters"}, both, &e), -1) << e;
  EXPECT_TRUE(both.disable_filters);

  Options own;  // stemd's own spelling keeps stemd's sound
  ASSERT_EQ(parse({"--osc-port", "57122"}, own, &e), -1) << e;
  EXPECT_EQ(own.osc_port, 57122);
  EXPECT_FALSE(own.crowdstream_mode);
  EXPECT_FALSE(own.disable_filters);
  EXPECT_DOUBLE_EQ(own.master, 1.0);

  Options same;  // both spellings of one port: fine
  ASSERT_EQ(parse({"--port", "57122", "--osc-port", "57122"}, same, &e), -1) << e;
  EXPECT_EQ(same.osc_port, 57122);
  Options range;  // its range said, as --osc-port's
  EXPECT_EQ(parse({"--port", "99999"}, range, &e), 2);
  EXPECT_NE(e.find("from 0 to 65535"), std::string::npos) << e;
  Options two;
  EXPECT_EQ(parse({"--port", "57122", "--osc-port", "57123"}, two, &e), 2);
  EXPECT_NE(e.find("--port 57122 and --osc-port 57123"), std::string::npos) << e;
}

TEST(CrowdstreamOptions, EveryOldServerFlagIsAccepted) {
  Options o;
  std::string e;
  ASSERT_EQ(parse({"--port",
                   "57122",
                   "--device",
                   "0",
                   "--buffer-size",
                   "1024",
                   "--enable-filters",
                   "--disable-filters",
                   "--optimized-filters",
                   "--bpm",
                   "120",
                   "--disable-time-stretch",
                   "--stretch-method",
                   "pyrubberband",
                   "--a",
                   "a.wav",
                   "--b",
                   "b.wav",
                   "--rate",
                   "1.0",
                   "--vol",
                   "0.8",
                   "--ab",
                   "1",
                   "0",
                   "--watch",
                   "--meter",
                   "4",
                   "--dummy_after",
                   "3",
                   "--dummy_args",
                   "schedule_c_at",
                   "8",
                   "--c",
                   "c.wav",
                   "--c_at",
                   "8.0",
                   "--c_preload",
                   "c.wav",
                   "--d",
                   "d.wav",
                   "--levels",
                   "1",
                   "1",
                   "1",
                   "1"},
                  o, &e),
            -1)
      << e;
  EXPECT_TRUE(o.disable_filters && o.enable_filters && o.optimized_filters && o.disable_time_stretch);
  EXPECT_EQ(o.stretch_method, "time_stretch");
  EXPECT_EQ(o.stretch_method_given, "pyrubberband");
  EXPECT_DOUBLE_EQ(o.c_at, 8.0);
  EXPECT_EQ(o.c_preload, "c.wav");
  EXPECT_DOUBLE_EQ(o.dummy_after, 3.0);
  EXPECT_EQ(o.dummy_args, (std::vector<std::string>{"schedule_c_at", "8"}));
  EXPECT_FALSE(o.notes.empty()) << "what the flags were mapped to is logged";
}

// --max-stretched-voices is 8 by default with time_stretch, and a value given is kept (the engine
// used to take max(value, 8); Stemctl.MaxStretchedVoicesGivenIsKeptWithTimeStretch checks the daemon).
TEST(CrowdstreamOptions, MaxStretchedVoicesGivenIsKeptWithTimeStretch) {
  Options o;
  ASSERT_EQ(parse({"--stretch-method", "time_stretch"}, o), -1);
  EXPECT_EQ(o.max_stretched_voices, 8u);
  Options given;
  ASSERT_EQ(parse({"--stretch-method", "time_stretch", "--max-stretched-voices", "4"}, given), -1);
  EXPECT_EQ(given.max_stretched_voices, 4u);
  Options rate;
  ASSERT_EQ(parse({}, rate), -1);
  EXPECT_EQ(rate.max_stretched_voices, 2u);
}

TEST(CrowdstreamOptions, StretchMethodsMapToStemdsStretcher) {
  for (const char* m : {"pyrubberband", "audiotsm"}) {
    Options o;
    ASSERT_EQ(parse({"--stretch-method", m}, o), -1);
    EXPECT_EQ(o.stretch_method, "time_stretch") << m;
    EXPECT_TRUE(o.crowdstream_mode) << m;
  }
  Options o;
  EXPECT_EQ(parse({"--stretch-method", "wsola"}, o), 2);
}

TEST(CrowdstreamOptions, ExplicitValuesWinInCrowdstreamMode) {
  Options o;
  ASSERT_EQ(parse({"--disable-filters", "--master", "1", "--limiter", "true", "--tempo-fall-s", "30"}, o), -1);
  EXPECT_DOUBLE_EQ(o.master, 1.0);
  EXPECT_EQ(o.limiter, "true");
  EXPECT_DOUBLE_EQ(o.tempo_fall_s, 30.0);
}

TEST(CrowdstreamOptions, LimiterTakesSoftClipAndTheOldBooleans) {
  for (auto [given, want] : std::vector<std::pair<std::string, std::string>>{
           {"soft_clip", "soft_clip"}, {"true", "true"}, {"false", "false"}, {"on", "true"}, {"0", "false"}}) {
    Options o;
    ASSERT_EQ(parse({"--limiter", given}, o), -1) << given;
    EXPECT_EQ(o.limiter, want) << given;
  }
  Options o;
  std::string e;
  EXPECT_EQ(parse({"--limiter", "tanh"}, o, &e), 2);
  EXPECT_NE(e.find("soft_clip"), std::string::npos) << e;
  EXPECT_EQ(parse({"--master", "5"}, o), 2);
}

TEST(CrowdstreamOptions, FlagsThatCannotBeHonouredAreClearErrors) {
  Options o;
  std::string e;
  EXPECT_EQ(parse({"--c_at", "8"}, o, &e), 2);
  EXPECT_NE(e.find("--c"), std::string::npos) << e;
  o = Options{};
  EXPECT_EQ(parse({"--dummy_args", "x"}, o, &e), 2);
  EXPECT_NE(e.find("--dummy_after"), std::string::npos) << e;
  o = Options{};
  EXPECT_EQ(parse({"--bpm-config", "/nonexistent/bpm_config.json"}, o, &e), 2);
  EXPECT_NE(e.find("cannot read"), std::string::npos) << e;
}

TEST(CrowdstreamOptions, EveryNewFlagIsAConfigKey) {
  test::TempDir dir;
  const std::string conf = dir.file("stemd.conf");
  std::ofstream(conf) << "disable-filters = true\noptimized-filters = true\ndisable-time-stretch = true\n"
                         "stretch-method = audiotsm\nmaster = 0.7\nlimiter = soft_clip\nc_preload = c.wav\n"
                         "tempo-rise-s = 0.5\ntempo-fall-s = 50\n";
  Options o;
  std::string e;
  ASSERT_EQ(parse({"--config", conf}, o, &e), -1) << e;
  EXPECT_TRUE(o.config_warnings.empty()) << o.config_warnings.front();
  EXPECT_TRUE(o.disable_filters && o.optimized_filters && o.disable_time_stretch && o.crowdstream_mode);
  EXPECT_EQ(o.stretch_method, "time_stretch");
  EXPECT_DOUBLE_EQ(o.master, 0.7);
  EXPECT_EQ(o.limiter, "soft_clip");
  EXPECT_EQ(o.c_preload, dir.file("c.wav"));  // a relative file in the config: the config file's directory's
  EXPECT_DOUBLE_EQ(o.tempo_rise_s, 0.5);
  EXPECT_DOUBLE_EQ(o.tempo_fall_s, 50.0);
}

// The old server's shipped audio-mixer/bpm_config.json, and a variant.
const char* kShipped = R"({
  "movement_bpm": {
    "movement_max_value": 0.6,
    "thresholds": {"very_very_low": 0.02, "very_low": 0.05, "low": 0.10, "medium": 0.10},
    "bpm_targets": {"very_very_low": 105.0, "very_low": 110.0, "low": 115.0, "medium": 118.0, "high_max": 130.0},
    "smoothing": {"transition_time_seconds": 30.0, "audio_loop_rate_hz": 100.0,
                  "smoothing_factor_up": 0.96, "smoothing_factor_down": 0.92}
  }
})";

TEST(CrowdstreamOptions, BpmConfigFillsTheMovementTable) {
  test::TempDir dir;
  const std::string f = dir.file("bpm.json");
  std::ofstream(f) << R"({"movement_bpm": {"movement_max_value": 0.8,
      "thresholds": {"very_very_low": 0.01, "very_low": 0.04, "low": 0.2, "medium": 0.2},
      "bpm_targets": {"very_very_low": 100, "very_low": 104, "low": 112, "medium": 116, "high_max": 128},
      "smoothing": {"transition_time_seconds": 10, "audio_loop_rate_hz": 50, "smoothing_factor_down": 0.5}}})";
  Options o;
  std::string e;
  ASSERT_EQ(parse({"--bpm-config", f}, o, &e), -1) << e;
  EXPECT_EQ(o.movement_thresholds, (std::vector<double>{0.01, 0.04, 0.2}));
  EXPECT_EQ(o.movement_tempos, (std::vector<double>{100, 104, 112, 116, 128}));
  EXPECT_DOUBLE_EQ(o.movement_max, 0.8);
  EXPECT_NEAR(o.tempo_fall_s, 500 * kChunk, 1e-9);  // 10 s × 50 Hz chunks
  EXPECT_NEAR(o.tempo_rise_s, -kChunk / std::log(0.5), 1e-9);
  // Flags given explicitly win over the file.
  Options o2;
  ASSERT_EQ(parse({"--bpm-config", f, "--movement-tempos", "1", "2", "3", "4", "5", "--tempo-fall-s", "40"}, o2, &e),
            -1)
      << e;
  EXPECT_EQ(o2.movement_tempos, (std::vector<double>{1, 2, 3, 4, 5}));
  EXPECT_DOUBLE_EQ(o2.tempo_fall_s, 40.0);
}

// The old server read audio-mixer/bpm_config.json by itself; stemd started from audio-mixer/ with
// the production launch line did not (a new user's pass: a tuned file ignored without a word). In
// crowdstream mode a bpm_config.json in the working directory is read, and said so; a bad one is a
// note, not an error; outside crowdstream mode it is not looked for.
TEST(CrowdstreamOptions, ABpmConfigInTheWorkingDirectoryIsReadInCrowdstreamMode) {
  test::TempDir dir;
  std::ofstream(dir.file("bpm_config.json")) << R"({"movement_bpm": {"movement_max_value": 0.6,
      "thresholds": {"very_very_low": 0.02, "very_low": 0.05, "low": 0.1, "medium": 0.1},
      "bpm_targets": {"very_very_low": 90, "very_low": 100, "low": 110, "medium": 118, "high_max": 130}}})";
  test::TempDir bad;
  std::ofstream(bad.file("bpm_config.json")) << "{ not json";
  const auto cwd = std::filesystem::current_path();
  Options cs, native, broken;
  std::string e, e_native, e_broken;
  std::filesystem::current_path(dir.path());
  const int rc = parse({"--port", "57122", "--disable-filters"}, cs, &e);
  const int rc_native = parse({"--backend", "null"}, native, &e_native);
  std::filesystem::current_path(bad.path());
  const int rc_broken = parse({"--port", "57122", "--disable-filters"}, broken, &e_broken);
  std::filesystem::current_path(cwd);
  ASSERT_EQ(rc, -1) << e;
  EXPECT_EQ(cs.movement_tempos, (std::vector<double>{90, 100, 110, 118, 130}));
  bool said = false;
  for (const auto& n : cs.notes) said |= n.find("found in the working directory") != std::string::npos;
  EXPECT_TRUE(said);
  ASSERT_EQ(rc_native, -1) << e_native;
  EXPECT_NE(native.movement_tempos, cs.movement_tempos);
  ASSERT_EQ(rc_broken, -1) << e_broken;
  EXPECT_TRUE(broken.bpm_config.empty());
  bool noted = false;
  for (const auto& n : broken.notes) noted |= n.find("not used") != std::string::npos;
  EXPECT_TRUE(noted);
}

TEST(CrowdstreamOptions, ShippedBpmConfigIsTheDefaults) {
  test::TempDir dir;
  const std::string f = dir.file("bpm_config.json");
  std::ofstream(f) << kShipped;
  BpmConfig c;
  std::string e;
  ASSERT_TRUE(read_bpm_config(f, c, e)) << e;
  const BpmConfig defaults;
  for (int i = 0; i < 3; ++i) EXPECT_DOUBLE_EQ(c.thresholds[i], defaults.thresholds[i]);
  for (int i = 0; i < 5; ++i) EXPECT_DOUBLE_EQ(c.tempos[i], defaults.tempos[i]);
  EXPECT_NEAR(c.fall_seconds, 69.66, 0.01);
  EXPECT_NEAR(c.rise_seconds, 0.2785, 0.0005);
}

TEST(CrowdstreamOptions, BadBpmConfigsAreClearErrors) {
  test::TempDir dir;
  const std::string f = dir.file("bpm.json");
  auto refused = [&](const std::string& text, const std::string& why) {
    std::ofstream(f, std::ios::trunc) << text;
    BpmConfig c;
    std::string e;
    EXPECT_FALSE(read_bpm_config(f, c, e)) << text;
    EXPECT_NE(e.find(why), std::string::npos) << e;
  };
  refused("{ \"movement_bpm\": ", "not valid JSON");
  refused("[1, 2]", "movement_bpm");
  refused(R"({"movement_bpm": {"thresholds": {"medium": 0.2}}})", "medium");
  refused(R"({"movement_bpm": {"thresholds": {"low": "high"}}})", "must be a number");
  refused(R"({"movement_bpm": {"thresholds": {"very_low": 0.5, "low": 0.1, "medium": 0.1}}})", "must rise");
  refused(R"({"movement_bpm": {"smoothing": {"smoothing_factor_down": 1.5}}})", "smoothing_factor_down");
}

// The old server, per 1024-frame chunk: current += (target − current)·(1 − f), f = 0.92 while
// rising and exp(−1/(30·100)) while falling. stemd's glide over the same time, with the derived
// time constants, lands on the same tempo — in steps of any size.
TEST(CrowdstreamTempo, GlideMatchesTheOldServersPerChunkSmoothing) {
  Options o;
  ASSERT_EQ(parse({"--disable-filters"}, o), -1);
  for (auto [from, to, chunks] : std::vector<std::tuple<double, double, int>>{{130, 105, 3000}, {105, 130, 12}}) {
    const double f = to > from ? 0.92 : std::exp(-1.0 / (30.0 * 100.0));
    double old = from;
    for (int i = 0; i < chunks; ++i) old += (to - old) * (1 - f);
    double ours = from, ours_coarse = from;
    for (int i = 0; i < chunks; ++i) {
      ours = control::Router::glide_tempo(ours, to, kChunk, o.tempo_rise_s, o.tempo_fall_s);
    }
    const double t = chunks * kChunk;
    for (double done = 0; done < t - 1e-12;) {  // 10 ms steps, as the control thread ticks
      const double dt = std::min(0.01, t - done);
      ours_coarse = control::Router::glide_tempo(ours_coarse, to, dt, o.tempo_rise_s, o.tempo_fall_s);
      done += dt;
    }
    EXPECT_NEAR(ours, old, 1e-6) << from << " → " << to;
    EXPECT_NEAR(ours_coarse, old, 1e-6) << from << " → " << to;
  }
  // Falling for one time constant (69.66 s) leaves 1/e of the way; stemd's own default (30 s)
  // would have left much less.
  const double after = control::Router::glide_tempo(130, 105, o.tempo_fall_s, o.tempo_rise_s, o.tempo_fall_s);
  EXPECT_NEAR((after - 105) / 25, std::exp(-1.0), 1e-12);
  const double stemd = control::Router::glide_tempo(130, 105, o.tempo_fall_s, 0.3, 30.0);
  EXPECT_LT((stemd - 105) / 25, 0.1);
}

}  // namespace
}  // namespace stemd::app
