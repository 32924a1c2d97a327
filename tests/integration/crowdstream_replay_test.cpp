// crowdstream drop-in (issue 11): the traffic of crowdstream's real clients — the three mixers,
// the movement detector, the energy sender — replayed from tests/data/crowdstream/*.txt
// (generated from the clients' own code paths by make_captures.py there) against the stemd
// binary started with the production launch line's --disable-filters, rendered offline
// (--render-to + --script: every message routed at its exact frame, deterministic).
//
// Checked: every message is answered /done (a /fail in a script is a start-up error, exit 2, so
// exit 0 means none failed; the log's count must equal the capture's), and the rendered level
// equals what the old server's math gives for the same commands — EQ ignored, master 0.8,
// 0.9·tanh(0.9·x) — computed here sample by sample from the fixture files themselves, over
// windows where the levels are steady: RMS within 0.05 dB.
//
// (The launch line's --port is left out: a render with a port listens for OSC, and a live OSC
// thread would move the movement tempo by wall-clock time during the render.)
#include "common/fixtures.hpp"
#include "common/run_process.hpp"

#include <gtest/gtest.h>
#include <sndfile.h>

#include <cmath>
#include <fstream>
#include <functional>
#include <regex>

namespace stemd::test {
namespace {

constexpr int kRate = 48000;

std::vector<float> read_file(const std::string& path, int* channels = nullptr) {
  SF_INFO info{};
  SNDFILE* sf = sf_open(path.c_str(), SFM_READ, &info);
  EXPECT_NE(sf, nullptr) << path;
  if (!sf) return {};
  std::vector<float> out(static_cast<std::size_t>(info.frames * info.channels));
  sf_readf_float(sf, out.data(), info.frames);
  sf_close(sf);
  if (channels) *channels = info.channels;
  return out;
}

// A stereo sine of `freq` Hz, 2 s (a whole number of cycles: it loops seamlessly), peak `amp`.
std::vector<float> sine(double freq, double amp) {
  std::vector<float> s(2 * 2 * kRate);
  for (std::size_t i = 0; i < s.size() / 2; ++i) {
    s[2 * i] = s[2 * i + 1] = static_cast<float>(amp * std::sin(2 * M_PI * freq * static_cast<double>(i) / kRate));
  }
  return s;
}

double db(double x) { return 20 * std::log10(x); }

// RMS (both channels) of `x` over output seconds [t0, t1).
double rms(const std::vector<float>& x, double t0, double t1) {
  const auto a = static_cast<std::size_t>(t0 * kRate) * 2, b = static_cast<std::size_t>(t1 * kRate) * 2;
  double sum = 0;
  for (std::size_t i = a; i < b && i < x.size(); ++i) sum += static_cast<double>(x[i]) * x[i];
  return std::sqrt(sum / static_cast<double>(b - a));
}

// A deck of the old server's mix: a file looping from output frame `start` at volume × level.
struct Deck {
  const std::vector<float>* file;
  std::int64_t start;
  double gain;  // player volume × deck level
};

// The old server's output for steady decks: 0.9·tanh(0.9 · 0.8 · Σ gain·x), EQ ignored.
std::vector<float> old_server(const std::vector<Deck>& decks, double t0, double t1) {
  std::vector<float> out(static_cast<std::size_t>(t1 * kRate) * 2, 0.0f);
  for (auto n = static_cast<std::int64_t>(t0 * kRate); n < static_cast<std::int64_t>(t1 * kRate); ++n) {
    for (int ch = 0; ch < 2; ++ch) {
      double sum = 0;
      for (const Deck& d : decks) {
        if (n < d.start) continue;
        const auto frames = static_cast<std::int64_t>(d.file->size() / 2);
        sum += d.gain * (*d.file)[static_cast<std::size_t>(((n - d.start) % frames) * 2 + ch)];
      }
      out[static_cast<std::size_t>(n * 2 + ch)] = static_cast<float>(0.9 * std::tanh(0.9 * 0.8 * sum));
    }
  }
  return out;
}

std::size_t capture_messages(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  std::size_t n = 0;
  while (std::getline(in, line)) n += !line.empty() && line[0] != '#';
  return n;
}

class CrowdstreamReplay : public ::testing::Test {
 protected:
  void SetUp() override {
    write_wav16(dir.file("a.wav"), sine(220, 0.5), 2);
    write_wav16(dir.file("b.wav"), sine(330, 0.5), 2);
    write_wav16(dir.file("c.wav"), sine(440, 0.4), 2);
    for (const char* f : {"a", "b", "c"}) files[f] = read_file(dir.file(std::string(f) + ".wav"));
  }
  // Renders `capture` with the production launch line (+ `extra`); returns the output.
  std::vector<float> replay(const std::string& capture, double seconds, const std::string& extra = "",
                            const std::string& launch = "--disable-filters") {
    const std::string script =
        capture[0] == '/' ? capture : std::string(STEMD_SOURCE_DIR) + "/tests/data/crowdstream/" + capture;
    const auto r =
        run_process(std::string(STEMD_BINARY) + " " + launch + " --sample-rate 48000 --media-root " +
                    shell_quote(dir.path()) + " --script " + shell_quote(script) + " --render-to " +
                    shell_quote(dir.file("out.wav")) + " --duration " + std::to_string(seconds) + " " + extra);
    EXPECT_EQ(r.exit_code, 0) << "a message was not answered /done (or stemd refused the launch line):\n" << r.output;
    const std::string want = std::to_string(capture_messages(script)) + " messages scheduled";
    EXPECT_NE(r.output.find(want), std::string::npos) << "expected \"" << want << "\" in:\n" << r.output;
    EXPECT_EQ(r.output.find("/fail"), std::string::npos) << r.output;
    EXPECT_EQ(r.output.find(" warn "), std::string::npos) << "no warning expected:\n" << r.output;
    return read_file(dir.file("out.wav"));
  }
  // stemd's RMS over [t0, t1) equals the old server's, within 0.05 dB.
  void expect_level(const std::vector<float>& got, const std::vector<Deck>& decks, double t0, double t1) {
    const double want = rms(old_server(decks, t0, t1), t0, t1), have = rms(got, t0, t1);
    ASSERT_GT(want, 0.01);
    EXPECT_NEAR(db(have), db(want), 0.05) << "window " << t0 << "–" << t1 << " s";
  }
  TempDir dir;
  std::map<std::string, std::vector<float>> files;
};

std::int64_t at(double seconds) { return std::llround(seconds * kRate); }

// mixer_tracks.py: three tracks, crossfades with /deck_eq_all per step, movement EQ (1 1 1: the
// dancers barely move) and tempo steps. Each track alone at level 1, volume 0.8 (/cue's).
TEST_F(CrowdstreamReplay, TrackMixerProduction) {
  const auto out = replay("track_mixer.txt", 16);
  // Tempo steps make the rate ≠ 1: a sine's RMS does not depend on its pitch, so the old
  // server's level is that of the file at rate 1.
  expect_level(out, {{&files["a"], at(1.0), 0.8}}, 2.0, 4.5);
  expect_level(out, {{&files["b"], at(5.0), 0.8}}, 7.5, 8.5);
  expect_level(out, {{&files["c"], at(9.0), 0.8}}, 11.5, 14.5);
}

// Without --disable-filters the same traffic is EQ'd: "/deck_eq_all A 1 1 1" is ≈ −23 dB. This
// is the production sound change of the issue, and what --disable-filters undoes.
TEST_F(CrowdstreamReplay, TrackMixerWithoutDisableFiltersAppliesTheEq) {
  const auto eq_ignored = replay("track_mixer.txt", 16);
  const auto eq_applied = replay("track_mixer.txt", 16, "", "--master 0.8 --limiter soft_clip");
  EXPECT_LT(db(rms(eq_applied, 2.0, 4.5)), db(rms(eq_ignored, 2.0, 4.5)) - 15);
}

// crowdstream's documented line has no filter flag, and the old server's filters were off by
// default on Linux: any old-server flag without --enable-filters gives the EQ-ignored sound
// (new-user pass 25, H1: here --optimized-filters alone applied the EQ, > 15 dB down). With
// --enable-filters the EQ is applied, as the old server's --enable-filters did.
TEST_F(CrowdstreamReplay, AnOldServerFlagWithoutAFilterFlagIgnoresTheEqAsTheOldServerDid) {
  const auto production = replay("track_mixer.txt", 16);
  const auto no_filter_flag = replay("track_mixer.txt", 16, "", "--optimized-filters");
  EXPECT_NEAR(db(rms(no_filter_flag, 2.0, 4.5)), db(rms(production, 2.0, 4.5)), 0.05);
  const auto enabled = replay("track_mixer.txt", 16, "", "--optimized-filters --enable-filters");
  EXPECT_LT(db(rms(enabled, 2.0, 4.5)), db(rms(production, 2.0, 4.5)) - 15);
}

// mixer.py: A and B from 0.5 and 0.63 s after /reset, both at level 1; /deck_eq bursts.
TEST_F(CrowdstreamReplay, TwoDeckMixer) {
  const auto out = replay("two_deck_mixer.txt", 25);
  expect_level(out, {{&files["a"], at(0.5), 0.8}, {&files["b"], at(0.63), 0.8}}, 1.0, 25.0);
}

// mixer_3tracks.py: A, B, C from 0.5, 4.42, 8.34 s, all at level 1; staged /deck_eq handoffs
// (which would close A and open B, C on a server with filters).
TEST_F(CrowdstreamReplay, ThreeDeckMixer) {
  const auto out = replay("three_deck_mixer.txt", 14);
  expect_level(out, {{&files["a"], at(0.5), 0.8}}, 1.0, 4.4);
  expect_level(out, {{&files["a"], at(0.5), 0.8}, {&files["b"], at(4.42), 0.8}, {&files["c"], at(8.34), 0.8}}, 9.0,
               14.0);
}

// The detector's pose frames (both forms) and movement values: all /done, nothing changes in
// the sound (deck A from --a plays on at its level; a sine's level does not follow its tempo).
TEST_F(CrowdstreamReplay, MovementDetector) {
  const auto out = replay("detector.txt", 10, "--a " + shell_quote(dir.file("a.wav")));
  expect_level(out, {{&files["a"], 0, 0.8}}, 0.5, 10.0);
}

// The energy sender: /crossfade_levels (1−x) x and /stem_volume 1000 v (never loaded: a no-op).
// Deck A (from --a) follows 1 − x: x has settled to 0.2 by 8.5 s.
TEST_F(CrowdstreamReplay, EnergySender) {
  const auto out = replay("energy_sender.txt", 10, "--a " + shell_quote(dir.file("a.wav")));
  expect_level(out, {{&files["a"], 0, 0.8 * 0.8}}, 8.5, 9.9);
}

// The energy sender's traffic while its buffer 1000 is loaded but stopped (/stop_stem at 0.5 s),
// as after a show's track: the old server ignored /stem_volume of an id without a player. Every
// message /done (a /fail would end the script: exit 2); deck A from --a plays on under the
// crossfade, 1000 stays silent.
TEST_F(CrowdstreamReplay, EnergySenderOnAStoppedBuffer) {
  std::ifstream in(std::string(STEMD_SOURCE_DIR) + "/tests/data/crowdstream/energy_sender.txt");
  std::ofstream script(dir.file("stopped.txt"));
  script << "0.0000 /load_buffer 1000 c.wav\n0.0000 /play_stem 1000 1.0 0.8 1 0.0\n0.5000 /stop_stem 1000\n";
  for (std::string line; std::getline(in, line);) script << line << "\n";
  script.close();
  const auto out = replay(dir.file("stopped.txt"), 10, "--a " + shell_quote(dir.file("a.wav")));
  expect_level(out, {{&files["a"], 0, 0.8 * 0.8}}, 8.5, 9.9);
}

// mixer_tracks.py's cue → volume → start: a /stem_volume sent to a cued deck's id before its
// /start_group is kept and the deck starts at it (the old server's armed player was in its
// active_players), not at /cue's 0.8.
TEST_F(CrowdstreamReplay, VolumeOfACuedDeckIsKeptForItsStart) {
  std::ofstream script(dir.file("cued.txt"));
  script << "0.0000 /deck_levels 0.0 1.0 0.0 0.0\n"
            "0.0000 /cue B b.wav 0.0\n"
            "0.0000 /stem_volume 1100 0.3\n"
            "0.5000 /start_group 0.0 B\n";
  script.close();
  const auto out = replay(dir.file("cued.txt"), 4);
  expect_level(out, {{&files["b"], at(0.5), 0.3}}, 1.0, 4.0);
}

}  // namespace
}  // namespace stemd::test
