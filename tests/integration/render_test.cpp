// Offline render, end to end through the stemd binary: what the render backend writes must be
// exactly what should have played, sample for sample. 16-bit sources decode to floats exactly,
// unity gain adds nothing, and a sum of two 16-bit values is exact in float, so every
// comparison here is exact (max |diff| = 0), not within a tolerance.
#include "common/fixtures.hpp"
#include "common/run_process.hpp"

#include <gtest/gtest.h>
#include <sndfile.h>

#include <sys/stat.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <tuple>
#include <iterator>

namespace stemd::test {
namespace {

std::vector<float> read_stereo(const std::string& path, int* rate = nullptr) {
  SF_INFO info{};
  SNDFILE* sf = sf_open(path.c_str(), SFM_READ, &info);
  EXPECT_NE(sf, nullptr) << path << ": " << sf_strerror(nullptr);
  if (!sf) return {};
  EXPECT_EQ(info.channels, 2);
  std::vector<float> out(static_cast<std::size_t>(info.frames * info.channels));
  sf_readf_float(sf, out.data(), info.frames);
  sf_close(sf);
  if (rate) *rate = info.samplerate;
  return out;
}

// Expects `got` to start with `want` exactly and to be silent afterwards (the last block is
// padded with silence). Reports the first mismatch.
void expect_exact_prefix(const std::vector<float>& got, const std::vector<float>& want) {
  ASSERT_GE(got.size(), want.size()) << "rendered output is shorter than the expected signal";
  std::size_t mismatches = 0, first = 0;
  for (std::size_t i = 0; i < want.size(); ++i) {
    if (got[i] != want[i]) {
      if (mismatches++ == 0) first = i;
    }
  }
  EXPECT_EQ(mismatches, 0u) << "first mismatch at frame " << first / 2 << " channel " << first % 2 << ": got "
                            << got[first] << " want " << want[first];
  for (std::size_t i = want.size(); i < got.size(); ++i) {
    ASSERT_EQ(got[i], 0.0f) << "non-silent tail at frame " << i / 2;
  }
}

class Render : public ::testing::Test {
 protected:
  TempDir dir;
  std::string out() const { return dir.file("out.wav"); }
  void render(const std::string& args) {
    const auto r = run_stemd("--render-to " + shell_quote(out()) + " " + args);
    ASSERT_EQ(r.exit_code, 0) << r.output;
  }
};

TEST_F(Render, InMemoryFileIsBitExact) {
  const auto src = make_tone_noise16(48000 * 2 + 123, 2, 11);
  write_wav16(dir.file("a.wav"), src, 2);
  render("--play " + dir.file("a.wav"));
  expect_exact_prefix(read_stereo(out()), src);
}

TEST_F(Render, StreamedFileIsBitExact) {
  const auto src = make_tone_noise16(48000 * 6 + 77, 2, 12);
  write_wav16(dir.file("a.wav"), src, 2);
  // preload limit 0: streamed through the loader; small ring and head to cross many refills
  render("--play " + dir.file("a.wav") + " --preload-limit-mb 0 --ring-ms 50 --head-ms 20 --buffer-size 256");
  expect_exact_prefix(read_stereo(out()), src);
}

TEST_F(Render, TwoFilesRenderToTheirExactSum) {
  const auto a = make_tone_noise16(48000 * 3, 2, 21);
  const auto b = make_tone_noise16(48000 * 2 + 500, 2, 22);
  write_wav16(dir.file("a.wav"), a, 2);
  write_wav16(dir.file("b.wav"), b, 2);
  // the sum peaks near 1.0: the safety limiter would (rightly) hold it at −1 dBFS
  render("--play " + dir.file("a.wav") + " --play " + dir.file("b.wav") + " --preload-limit-mb 1 --limiter false");
  std::vector<float> sum = a;
  for (std::size_t i = 0; i < b.size(); ++i) sum[i] += b[i];
  expect_exact_prefix(read_stereo(out()), sum);
}

TEST_F(Render, MonoPlaysOnBothChannels) {
  const auto m = make_tone_noise16(48000, 1, 31);
  write_wav16(dir.file("m.wav"), m, 1);
  render("--play " + dir.file("m.wav"));
  expect_exact_prefix(read_stereo(out()), to_stereo(m, 1));
}

TEST_F(Render, LoopSeamIsSampleExact) {
  const std::int64_t frames = 30011;  // prime: never a multiple of the block size
  const auto src = make_tone_noise16(frames, 2, 41);
  write_wav16(dir.file("l.wav"), src, 2);
  for (const std::string mode : {"--preload-limit-mb 16", "--preload-limit-mb 0 --head-ms 100 --ring-ms 100"}) {
    SCOPED_TRACE(mode);
    render("--play " + dir.file("l.wav") + " --loop --duration 3 " + mode);
    const auto got = read_stereo(out());
    ASSERT_EQ(got.size(), static_cast<std::size_t>(3 * 48000 * 2));
    std::size_t bad = 0;
    for (std::size_t i = 0; i < got.size(); ++i) bad += got[i] != src[i % src.size()];
    EXPECT_EQ(bad, 0u);
  }
}

TEST_F(Render, HalfVolumeIsExactlyHalf) {
  const auto src = make_tone_noise16(48000, 2, 51);
  write_wav16(dir.file("a.wav"), src, 2);
  render("--play " + dir.file("a.wav") + " --volume 0.5");
  auto want = src;
  for (auto& s : want) s *= 0.5f;
  expect_exact_prefix(read_stereo(out()), want);
}

// The --play files play on deck A (ids 1…N would be deck D's: /stemd/play's deck argument puts
// them on A), so --levels and --ab apply to them from the first sample.
TEST_F(Render, PlayFilesAreOnDeckASoTheDeckLevelsApply) {
  const auto src = make_tone_noise16(48000, 2, 52);
  write_wav16(dir.file("a.wav"), src, 2);
  auto want = src;
  for (auto& s : want) s *= 0.5f;
  render("--play " + dir.file("a.wav") + " --levels 0.5 1 1 0");
  expect_exact_prefix(read_stereo(out()), want);
  render("--play " + dir.file("a.wav") + " --ab 0.5 0");
  expect_exact_prefix(read_stereo(out()), want);
}

TEST_F(Render, OldServerDeckFlagsAndLevels) {
  // --a/--c load into 100/2100 and play looped at --vol on decks A and C (C started by --c_at 0:
  // without it --c only loads, as on the old server); --levels sets the decks. --c_at puts stemd in
  // crowdstream mode: --master 1 --limiter true keep the sum exact.
  const auto a = make_tone_noise16(48000, 2, 71);
  const auto c = make_tone_noise16(48000, 2, 72);
  write_wav16(dir.file("a.wav"), a, 2);
  write_wav16(dir.file("c.wav"), c, 2);
  render("--a " + dir.file("a.wav") + " --c " + dir.file("c.wav") +
         " --c_at 0 --master 1 --limiter true --vol 1 --levels 0.5 1 0.25 1 --duration 1.5");
  const auto got = read_stereo(out());
  ASSERT_EQ(got.size(), static_cast<std::size_t>(72000 * 2));
  std::size_t bad = 0;
  for (std::size_t i = 0; i < got.size(); ++i) {
    const float want = a[i % a.size()] * 0.5f + c[i % c.size()] * 0.25f;
    bad += got[i] != want;
  }
  EXPECT_EQ(bad, 0u) << "decks must mix at their levels from the first sample, looped";
}

// The old crowdstream server's output stage (issue 11): master 0.8, then 0.9·tanh(0.9·x) on every
// sample — what --limiter soft_clip --master 0.8 (crowdstream mode's defaults) render.
TEST_F(Render, SoftClipAndMasterAreTheOldServersOutputStage) {
  const auto a = make_tone_noise16(48000, 2, 91);
  write_wav16(dir.file("a.wav"), a, 2);
  for (const std::string flags : {"--limiter soft_clip --master 0.8", "--disable-filters"}) {
    SCOPED_TRACE(flags);
    render("--play " + dir.file("a.wav") + " --volume 2.5 " + flags);  // peaks ≈ 1.2 before the clip
    const auto got = read_stereo(out());
    ASSERT_GE(got.size(), a.size());
    double worst = 0;
    float peak = 0;
    for (std::size_t i = 0; i < a.size(); ++i) {
      const double want = 0.9 * std::tanh(0.9 * 0.8 * (2.5 * static_cast<double>(a[i])));
      worst = std::max(worst, std::fabs(got[i] - want));
      peak = std::max(peak, std::fabs(got[i]));
    }
    EXPECT_LT(worst, 1e-6);
    EXPECT_LE(peak, 0.9f);
  }
}

// The old server's deck C flags (issue 11): --c alone only loads (the old server then waited for
// /schedule_c_at); --c_at S starts it S seconds of output after the start; --c_preload loads it
// and --dummy_after N --dummy_args schedule_c_at X starts it at X on the t0 timeline, no
// earlier than N. Exact sums (--master 1 --limiter false; every run is in crowdstream mode).
TEST_F(Render, OldServerDeckCFlags) {
  const auto a = make_tone_noise16(48000, 2, 101);
  const auto c = make_tone_noise16(30011, 2, 102);
  write_wav16(dir.file("a.wav"), a, 2);
  write_wav16(dir.file("c.wav"), c, 2);
  const std::string exact = " --master 1 --limiter false --vol 1 --duration 2";
  // (flags, the frame deck C starts at or -1, its volume: --vol, or /schedule_c_at's 0.8 as on the
  // old server; deck A playing)
  const std::vector<std::tuple<std::string, std::int64_t, float, bool>> cases = {
      {"--a " + dir.file("a.wav") + " --c " + dir.file("c.wav") + " --disable-filters", -1, 1.0f, true},
      {"--a " + dir.file("a.wav") + " --c " + dir.file("c.wav") + " --c_at 0.5", 24000, 1.0f, true},
      {"--c_preload " + dir.file("c.wav") + " --dummy_after 0.25 --dummy_args schedule_c_at 1.5", 72000, 0.8f, false},
      {"--c_preload " + dir.file("c.wav") + " --dummy_after 1 --dummy_args schedule_c_at 0.5", 48000, 0.8f, false},
      {"--c_preload " + dir.file("c.wav"), -1, 1.0f, false},
  };
  for (const auto& [flags, c_start, c_vol, with_a] : cases) {
    SCOPED_TRACE(flags);
    render(flags + exact);
    const auto got = read_stereo(out());
    ASSERT_EQ(got.size(), static_cast<std::size_t>(2 * 48000 * 2));
    std::size_t bad = 0, first = 0;
    for (std::size_t i = 0; i < got.size(); ++i) {
      const auto frame = static_cast<std::int64_t>(i / 2);
      float want = with_a ? a[i % a.size()] : 0.0f;
      if (c_start >= 0 && frame >= c_start) want += c[(i - 2 * static_cast<std::size_t>(c_start)) % c.size()] * c_vol;
      if (got[i] != want && bad++ == 0) first = i;
    }
    EXPECT_EQ(bad, 0u) << "first mismatch at frame " << first / 2;
  }
}

// --disable-time-stretch with --stretch-method pyrubberband (the old server's meaning): a tempo
// change moves the clock only; the players keep their rate (the output is the file, exactly).
TEST_F(Render, DisableTimeStretchKeepsPlayersAtTheirOwnRate) {
  const auto a = make_tone_noise16(48000, 2, 111);
  write_wav16(dir.file("a.wav"), a, 2);
  std::ofstream(dir.file("tempo.txt")) << "0.25 /set_tempo 90.0\n0.5 /dance/total_movement 0.9\n";
  render("--a " + dir.file("a.wav") + " --stretch-method pyrubberband --disable-time-stretch --script " +
         dir.file("tempo.txt") + " --master 1 --limiter false --vol 1 --duration 1.5");
  const auto got = read_stereo(out());
  ASSERT_EQ(got.size(), static_cast<std::size_t>(72000 * 2));
  std::size_t bad = 0;
  for (std::size_t i = 0; i < got.size(); ++i) bad += got[i] != a[i % a.size()];
  EXPECT_EQ(bad, 0u);
}

TEST_F(Render, LimiterHoldsEightFullScaleStemsUnderItsCeiling) {
  // Eight copies of a loud file (peaks ≈ 0.5 each, summing far beyond full scale).
  const auto a = make_tone_noise16(48000, 2, 81);
  write_wav16(dir.file("a.wav"), a, 2);
  std::string args;
  for (int i = 0; i < 8; ++i) args += " --play " + dir.file("a.wav");
  render(args + " --limiter-threshold-db -1");
  const auto got = read_stereo(out());
  float peak = 0;
  for (float s : got) peak = std::max(peak, std::fabs(s));
  EXPECT_LE(peak, 0.8913f) << "the limiter's ceiling is −1 dBFS";
  EXPECT_GT(peak, 0.85f) << "the limiter holds peaks at the ceiling, it does not squash everything";
  // Below the threshold it is exactly transparent: a single quiet copy renders bit-exactly.
  render("--play " + dir.file("a.wav"));
  expect_exact_prefix(read_stereo(out()), a);
}

TEST_F(Render, ScriptedSessionIsSampleExact) {
  // A scripted session: cue at 0.25 s, a group start at 0.5 s, a stop at 1.0 s. Offline, every
  // message takes effect on its exact frame, so the render is deterministic to the sample.
  const auto a = make_tone_noise16(48000 * 2, 2, 91);
  write_wav16(dir.file("a.wav"), a, 2);
  std::ofstream(dir.file("s.txt")) << "# a tiny session\n"
                                   << "0.25 /cue A \"" << dir.file("a.wav") << "\" 0.0\n"
                                   << "0.5 /start_group 0.0 A\n"
                                   << "1.0 /stop_stem 100\n";
  render("--script " + dir.file("s.txt") + " --duration 1.5");
  const auto got = read_stereo(out());
  ASSERT_EQ(got.size(), static_cast<std::size_t>(72000 * 2));
  for (std::size_t f = 0; f < 24000; ++f) ASSERT_EQ(got[2 * f], 0.0f) << "sound before the group start, frame " << f;
  for (std::size_t i = 0; i < 24000 * 2; ++i) {
    ASSERT_EQ(got[24000 * 2 + i], a[i] * 0.8f) << "frame " << 24000 + i / 2 << " (the old server's volume 0.8)";
  }
  for (std::size_t f = 48000; f < 48240; ++f) ASSERT_LE(std::fabs(got[2 * f]), std::fabs(a[2 * (f - 24000)] * 0.8f));
  for (std::size_t f = 48240; f < 72000; ++f) ASSERT_EQ(got[2 * f], 0.0f) << "sound after the stop's fade";
  // Twice the same: identical files.
  const auto first = got;
  render("--script " + dir.file("s.txt") + " --duration 1.5");
  EXPECT_EQ(read_stereo(out()), first);
}

TEST_F(Render, QuantisedPlayStartsOnTheBeat) {
  // At 120 bpm a beat is 24,000 frames: a play asked for at 0.3 s starts on the beat at 0.5 s.
  const auto a = make_tone_noise16(48000, 2, 93);
  write_wav16(dir.file("a.wav"), a, 2);
  std::ofstream(dir.file("s.txt")) << "0 /load_buffer 1 \"" << dir.file("a.wav") << "\"\n"
                                   << "0 /reset\n0 /stemd/quantize 1\n0.3 /stemd/play 1\n";
  render("--script " + dir.file("s.txt") + " --duration 1.25 --bpm 120");
  const auto got = read_stereo(out());
  for (std::size_t f = 0; f < 24000; ++f) ASSERT_EQ(got[2 * f], 0.0f) << "frame " << f;
  for (std::size_t i = 0; i < 24000 * 2; ++i) ASSERT_EQ(got[24000 * 2 + i], a[i]) << "frame " << 24000 + i / 2;
}

TEST_F(Render, APauseBeforeAQuantisedStartHoldsTheVoiceSilent) {
  // Outside pass 28, user H1: a pause sent while a quantised play waited for its bar was lost,
  // and the voice played from the bar on while every report said "paused". Here the play and
  // its pause come at 0.3 s, the bar is at 2 s: nothing may sound until the resume at 2.5 s,
  // which plays the file from its first frame (on the next block: a resume fades in).
  const auto a = make_tone_noise16(48000 * 3, 2, 97);
  write_wav16(dir.file("a.wav"), a, 2);
  std::ofstream(dir.file("s.txt")) << "0 /load_buffer 1 \"" << dir.file("a.wav") << "\"\n"
                                   << "0 /reset\n0 /stemd/quantize 4\n0.3 /stemd/play 1\n0.3 /stemd/pause 1\n"
                                   << "2.5 /stemd/resume 1\n";
  render("--script " + dir.file("s.txt") + " --duration 3 --bpm 120");
  const auto got = read_stereo(out());
  ASSERT_EQ(got.size(), static_cast<std::size_t>(144000 * 2));
  for (std::size_t f = 0; f < 120000; ++f) ASSERT_EQ(got[2 * f], 0.0f) << "sound while paused, frame " << f;
  // From the resume's fade on: the file from its first frame, exactly once the fade is over.
  for (std::size_t f = 121024; f < 144000; ++f) ASSERT_EQ(got[2 * f], a[2 * (f - 120000)]) << "frame " << f;
}

TEST_F(Render, EqualPowerCrossfadeLaw) {
  const auto a = make_tone_noise16(48000 * 2, 2, 95);
  write_wav16(dir.file("a.wav"), a, 2);
  std::ofstream(dir.file("s.txt")) << "0 /load_buffer 100 \"" << dir.file("a.wav") << "\"\n"
                                   << "0 /play_stem 100 1 1 0 0\n0.5 /crossfade_levels 0.5 0.5\n";
  render("--script " + dir.file("s.txt") + " --duration 1.5 --crossfade-law equal_power");
  const auto got = read_stereo(out());
  const float g = static_cast<float>(std::sin(0.5 * M_PI / 2));  // −3 dB, not −6 dB
  for (std::size_t f = 0; f < 24000; ++f) ASSERT_EQ(got[2 * f], a[2 * f]);
  for (std::size_t f = 26000; f < 72000; ++f) ASSERT_EQ(got[2 * f], a[2 * f] * g) << "frame " << f;
}

TEST_F(Render, TestToneHasItsFrequencyLevelAndLength) {
  // A tone asked for at 0.5 s: 1 kHz at −6 dBFS for 0.5 s with 10 ms fades, on its exact frame.
  // An oscillator in the engine (issue 10, item 1): rendered, it is the sine it should be.
  std::ofstream(dir.file("s.txt")) << "0.5 /stemd/tone 1000 -6 0.5\n";
  render("--script " + dir.file("s.txt") + " --duration 1.5");
  const auto got = read_stereo(out());
  ASSERT_EQ(got.size(), static_cast<std::size_t>(72000 * 2));
  const double level = std::pow(10.0, -6.0 / 20.0);
  const int fade = 480, length = 24000;
  for (std::size_t f = 0; f < 24000; ++f) ASSERT_EQ(got[2 * f], 0.0f) << "sound before the tone, frame " << f;
  double err = 0, peak = 0;
  for (int i = 0; i < length; ++i) {
    double env = 1.0;
    if (i < fade) env = static_cast<double>(i) / fade;
    if (length - i < fade) env = static_cast<double>(length - i) / fade;
    const double want = level * env * std::sin(2 * M_PI * 1000.0 * i / 48000.0);
    const std::size_t k = 2 * (24000 + static_cast<std::size_t>(i));
    ASSERT_EQ(got[k], got[k + 1]) << "both channels, frame " << i;
    err = std::max(err, std::fabs(got[k] - want));
    peak = std::max(peak, static_cast<double>(std::fabs(got[k])));
  }
  EXPECT_LT(err, 1e-6) << "the tone is not a 1 kHz sine at −6 dBFS with 10 ms fades";
  EXPECT_NEAR(20 * std::log10(peak), -6.0, 0.01);
  for (std::size_t f = 48000; f < 72000; ++f) ASSERT_EQ(got[2 * f], 0.0f) << "sound after the tone, frame " << f;
}

TEST_F(Render, BadScriptLineNamesFileAndLine) {
  std::ofstream(dir.file("s.txt")) << "0 /stemd/ping\nsoon /stemd/ping\n";
  const auto r = run_stemd("--render-to " + out() + " --script " + dir.file("s.txt") + " --duration 1");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("s.txt:2"), std::string::npos) << r.output;
}

TEST_F(Render, FlacOutputHoldsTheSignal) {
  const auto src = make_tone_noise16(48000, 2, 61);
  write_wav16(dir.file("a.wav"), src, 2);
  const auto flac = dir.file("out.flac");
  const auto r = run_stemd("--render-to " + shell_quote(flac) + " --play " + dir.file("a.wav"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto got = read_stereo(flac);
  ASSERT_GE(got.size(), src.size());
  double err = 0;
  for (std::size_t i = 0; i < src.size(); ++i) err = std::max(err, static_cast<double>(std::fabs(got[i] - src[i])));
  EXPECT_LT(err, 1.0 / (1 << 22)) << "24-bit FLAC must hold a 16-bit signal to within its LSB";
}

// ---- a render replaces its target only when it succeeds (issue 12, defect 2)

std::string file_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

std::vector<std::string> files_in(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& e : std::filesystem::directory_iterator(dir)) out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

TEST_F(Render, AFailedRenderLeavesItsTargetAsItWas) {
  // Was: exit 1 and out.wav truncated to its 88-byte header.
  write_wav16(dir.file("a.wav"), make_tone_noise16(4800, 2, 31), 2);
  std::filesystem::copy_file(dir.file("a.wav"), out());
  const std::string before = file_bytes(out());
  const auto r = run_stemd("--render-to " + shell_quote(out()) + " --play " + shell_quote(dir.file("missing.wav")));
  EXPECT_NE(r.exit_code, 0) << r.output;
  const std::string after = file_bytes(out());
  EXPECT_TRUE(after == before) << "the target must be untouched by a render that failed: " << before.size()
                               << " bytes before, " << after.size() << " after";
  EXPECT_EQ(files_in(dir.path()), (std::vector<std::string>{"a.wav", "out.wav"})) << "no temporary file left";
}

TEST_F(Render, ASuccessfulRenderReplacesItsTargetAndLeavesNoTemporaryFile) {
  const auto src = make_tone_noise16(4800, 2, 32);
  write_wav16(dir.file("a.wav"), src, 2);
  std::ofstream(out()) << "an old file";
  render("--play " + dir.file("a.wav"));
  expect_exact_prefix(read_stereo(out()), src);
  EXPECT_EQ(files_in(dir.path()), (std::vector<std::string>{"a.wav", "out.wav"}));
  struct stat st {};
  ASSERT_EQ(::stat(out().c_str(), &st), 0);
  EXPECT_NE(st.st_mode & 0044, 0u) << "readable as a new file would be (not mkstemp's 0600)";
}

TEST_F(Render, ATargetThatIsAlsoAnInputIsRefused) {
  // Was: --render-to x.wav --play x.wav destroyed x.wav.
  write_wav16(dir.file("x.wav"), make_tone_noise16(4800, 2, 33), 2);
  const std::string before = file_bytes(dir.file("x.wav"));
  auto r = run_stemd("--render-to " + shell_quote(dir.file("x.wav")) + " --play " + shell_quote(dir.file("x.wav")));
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("also an input"), std::string::npos) << r.output;
  EXPECT_TRUE(file_bytes(dir.file("x.wav")) == before) << "x.wav was changed";
  // The same file through another name (a hard link: same device and inode).
  std::filesystem::create_hard_link(dir.file("x.wav"), dir.file("y.wav"));
  r = run_stemd("--render-to " + shell_quote(dir.file("y.wav")) + " --a " + shell_quote(dir.file("x.wav")) +
                " --duration 0.1");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_TRUE(file_bytes(dir.file("x.wav")) == before) << "x.wav was changed through its other name";
  // A target that does not exist yet: the same resolved path as an input is refused too.
  std::filesystem::create_directory(dir.file("sub"));
  r = run_stemd("--render-to " + shell_quote(dir.file("sub/../new.wav")) + " --play " +
                shell_quote(dir.file("new.wav")));
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("also an input"), std::string::npos) << r.output;
}

// ---- positions are the FILE's own seconds (issue 12, defect 1)
//
// A file whose every frame says where in the file it is, in the file's own seconds, whatever its
// sample rate: both channels are kRamp × (file frame / file rate). A linear ramp survives the
// resampler (file rate → 48 kHz output) to within a few ULPs away from its ends, so reading the
// render at an output frame tells which file second was playing there.
constexpr double kRamp = 0.02;  // 12 s → 0.24: well under the limiter's threshold
// A voice that starts on a resampled file is heard where the file says, to a frame (the
// eighteenth session: it was up to 3 ms off — +3.1 ms at 22.05 kHz, +0.2 ms at 44.1 kHz, −1.3 ms
// at 96 kHz — its resampler gliding from ratio 1 to the file's over its first 256 frames).
constexpr double kStartSlack = 0.00003;

void write_time_ramp(const std::string& path, int rate, double seconds) {
  const auto frames = static_cast<sf_count_t>(std::llround(seconds * rate));
  std::vector<float> buf(static_cast<std::size_t>(frames) * 2);
  for (sf_count_t f = 0; f < frames; ++f) {
    const auto v = static_cast<float>(kRamp * static_cast<double>(f) / rate);
    buf[2 * static_cast<std::size_t>(f)] = buf[2 * static_cast<std::size_t>(f) + 1] = v;
  }
  SF_INFO info{};
  info.samplerate = rate;
  info.channels = 2;
  info.format = SF_FORMAT_WAV | SF_FORMAT_FLOAT;
  SNDFILE* sf = sf_open(path.c_str(), SFM_WRITE, &info);
  ASSERT_NE(sf, nullptr) << path;
  ASSERT_EQ(sf_writef_float(sf, buf.data(), frames), frames);
  sf_close(sf);
}

// The file second heard at `out_seconds` of the 48 kHz render.
double file_second_at(const std::vector<float>& got, double out_seconds) {
  const auto f = static_cast<std::size_t>(std::llround(out_seconds * 48000));
  EXPECT_LT(2 * f + 1, got.size());
  if (2 * f + 1 >= got.size()) return -1;
  return got[2 * f] / kRamp;
}

class RenderFileSeconds : public Render, public ::testing::WithParamInterface<int> {};

TEST_P(RenderFileSeconds, SeekLandsOnTheFilesSecond) {
  // seek 10 on a 12 s file: 0.25 s of output later the file is at 10.25 s of ITS time (it was
  // 10.88 s + 0.25 at 44.1 kHz when seconds were taken as the output's 48 kHz).
  const int rate = GetParam();
  write_time_ramp(dir.file("t.wav"), rate, 12.0);
  std::ofstream(dir.file("s.txt")) << "0 /stemd/load 1 \"" << dir.file("t.wav") << "\"\n"
                                   << "0 /stemd/play 1\n0.5 /stemd/seek 1 10\n";
  render("--script " + dir.file("s.txt") + " --duration 1 --sample-rate 48000");
  const auto got = read_stereo(out());
  EXPECT_NEAR(file_second_at(got, 0.25), 0.25, kStartSlack) << "before the seek, the file plays at its own pace";
  // A timed seek fades the old position out for 5 ms (the declick) before its time and plays
  // from exactly 10 s at its time (it came a declick late before the eighteenth session).
  EXPECT_NEAR(file_second_at(got, 0.75), 10.25, 0.001) << "the seek lands on 10 s of the file at 0.5 s";
}

TEST_P(RenderFileSeconds, PlayStartIsTheFilesSecond) {
  const int rate = GetParam();
  write_time_ramp(dir.file("t.wav"), rate, 12.0);
  std::ofstream(dir.file("s.txt")) << "0 /stemd/load 1 \"" << dir.file("t.wav") << "\"\n"
                                   << "0 /stemd/play 1 1 0 5\n";
  render("--script " + dir.file("s.txt") + " --duration 0.5 --sample-rate 48000");
  const auto got = read_stereo(out());
  EXPECT_NEAR(file_second_at(got, 0.25), 5.25, kStartSlack) << "play from 5 s of the file";
}

TEST_P(RenderFileSeconds, SectionPlaysItsSecondsOfTheFile) {
  // A crowdstream section from 0.25 of the 12 s file (3 s) for 2 s, and a native region from
  // 6 s to 8 s: each plays 2 s of the file, then ends.
  const int rate = GetParam();
  write_time_ramp(dir.file("t.wav"), rate, 12.0);
  std::ofstream(dir.file("s.txt")) << "0 /load_buffer 1 \"" << dir.file("t.wav") << "\"\n"
                                   << "0 /play_stem_section 1 1 1 0 0.25 2\n"
                                   << "0 /stemd/load 2 \"" << dir.file("t.wav") << "\"\n"
                                   << "3 /stemd/play_region 2 6 8 0\n";
  render("--script " + dir.file("s.txt") + " --duration 6 --sample-rate 48000");
  const auto got = read_stereo(out());
  EXPECT_NEAR(file_second_at(got, 1.0), 4.0, kStartSlack);
  EXPECT_NEAR(file_second_at(got, 1.9), 4.9, kStartSlack);
  EXPECT_NEAR(file_second_at(got, 2.05), 0.0, 0.01) << "the section ends after 2 s of the file";
  EXPECT_NEAR(file_second_at(got, 4.0), 7.0, kStartSlack);
  EXPECT_NEAR(file_second_at(got, 4.9), 7.9, kStartSlack);
  EXPECT_NEAR(file_second_at(got, 5.05), 0.0, 0.01) << "the region ends at 8 s of the file";
}

INSTANTIATE_TEST_SUITE_P(Rates, RenderFileSeconds, ::testing::Values(22050, 44100, 96000),
                         [](const ::testing::TestParamInfo<int>& i) { return std::to_string(i.param); });

}  // namespace
}  // namespace stemd::test
