// --state-file end to end: the real stemd binary (null backend) in the background, driven over
// OSC (both dialects), stopped with SIGTERM (or killed, as a crash) and started again with the
// same state file; what came back is checked through the daemon's own replies (/stemd/list,
// /stemd/voices, /stemd/status) and its log.
//
// Waits poll a condition with a generous bound; the one fixed sleep is an observation window.
#include "common/fixtures.hpp"
#include "control/net.hpp"
#include "osc_harness.hpp"

#include <gtest/gtest.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <sstream>
#include <thread>

namespace stemd::test {
namespace {

using namespace std::chrono_literals;
using osc::Client;
using osc::msg;
using Clock = std::chrono::steady_clock;

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

bool wait_until(const std::function<bool()>& cond, double seconds) {
  const auto end = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
  for (;;) {
    if (cond()) return true;
    if (Clock::now() > end) return false;
    std::this_thread::sleep_for(10ms);
  }
}

std::uint16_t free_port() {
  for (int attempt = 0; attempt < 20; ++attempt) {
    std::string error;
    auto at = control::parse_endpoint("127.0.0.1", 0, error);
    auto udp = control::UdpSocket::bind(*at, error);
    if (udp) return udp->local().port();
  }
  return 0;
}

// stemd in the background with its output in a log file; SIGTERM (then SIGKILL) at the end.
class Stemd {
 public:
  Stemd(const std::string& log_path, const std::vector<std::string>& extra) : log_(log_path) {
    for (int attempt = 0; attempt < 5; ++attempt) {
      port_ = free_port();
      std::vector<std::string> argv{STEMD_BINARY,  "--backend", "null",          "--osc-port", std::to_string(port_),
                                    "--log-level", "info",      "--buffer-size", "512"};
      argv.insert(argv.end(), extra.begin(), extra.end());
      pid_ = fork();
      if (pid_ == 0) {
        const int fd = open(log_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd >= 0) {
          dup2(fd, 1);
          dup2(fd, 2);
        }
        std::vector<char*> args;
        for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
        args.push_back(nullptr);
        execv(args[0], args.data());
        _exit(127);
      }
      // Ready once it logged its start line (the socket is bound before that; the server
      // answers from then on) — or gone (a port taken meanwhile: another one).
      wait_until([&] { return !running() || log().find(" started: ") != std::string::npos; }, 10.0);
      if (running()) {
        std::string e;
        client_ = std::make_unique<Client>(*control::parse_endpoint("127.0.0.1", port_, e));
        return;
      }
    }
  }
  ~Stemd() { terminate(); }

  bool ready() { return client_ != nullptr && running(); }
  Client& client() { return *client_; }
  std::string log() const { return slurp(log_); }

  bool running() {
    if (exited_) return false;
    int st = 0;
    if (waitpid(pid_, &st, WNOHANG) == pid_) {
      exited_ = true;
      status_ = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    }
    return !exited_;
  }
  int signal(int sig, double wait_s = 10.0) {
    if (pid_ <= 0 || !running()) return status_;
    client_.reset();
    kill(pid_, sig);
    wait_until([&] { return !running(); }, wait_s);
    if (running()) {
      kill(pid_, SIGKILL);
      int st = 0;
      waitpid(pid_, &st, 0);
      exited_ = true;
      status_ = 128 + SIGKILL;
    }
    return status_;
  }
  int terminate() { return signal(SIGTERM); }

 private:
  std::string log_;
  std::uint16_t port_ = 0;
  pid_t pid_ = -1;
  bool exited_ = false;
  int status_ = -1;
  std::unique_ptr<Client> client_;
};

const osc::VoiceRow* voice_of(const std::vector<osc::VoiceRow>& v, int slot) {
  for (const auto& r : v)
    if (r.slot == slot) return &r;
  return nullptr;
}

struct Files {
  TempDir dir;
  std::string a, b, state;
  Files() : a(dir.file("alpha one.wav")), b(dir.file("b.wav")), state(dir.file("stemd.state")) {
    write_wav16(a, make_pcm16(10 * 48000, 2, 1), 2);  // 10 s
    write_wav16(b, make_pcm16(6 * 48000, 2, 2), 2);   // 6 s
  }
};

#define ASSERT_UP(d) ASSERT_TRUE((d).ready()) << "stemd did not start:\n" << (d).log()

TEST(StateFile, SourcesLevelsAndVoicesSurviveARestart) {
  Files f;
  const std::vector<std::string> args{"--state-file", f.state, "--restore-voices"};
  double pos_before = 0;
  {
    Stemd d(f.dir.file("run1.log"), args);
    ASSERT_UP(d);
    Client& c = d.client();
    EXPECT_TRUE(osc::is_done(c.send("/stemd/load", 3, f.a, "alpha"), "/stemd/load"));
    EXPECT_TRUE(osc::is_done(c.send("/load_buffer", 1100, f.b), "/load_buffer"));  // crowdstream dialect
    EXPECT_TRUE(osc::is_done(c.send("/stemd/play", 3, 0.5, true, 2.0), "/stemd/play"));
    EXPECT_TRUE(osc::is_done(c.send("/play_stem", 1100, 1.0, 0.7, 1), "/play_stem"));
    EXPECT_TRUE(osc::is_done(c.send("/deck_levels", 0.4, 0.6), "/deck_levels"));
    EXPECT_TRUE(osc::is_done(c.send("/stemd/master", 0.8), "/stemd/master"));
    EXPECT_TRUE(osc::is_done(c.send("/deck_eq", "A", "low", 25.0), "/deck_eq"));
    // Positions move on: wait until the voice is well past where it started.
    EXPECT_TRUE(osc::eventually(
        [&] {
          const auto rows = osc::voices(c);
          const auto* v = voice_of(rows, 3);
          return v != nullptr && v->position > 3.0;
        },
        10s));
    const auto v = osc::voices(c);
    ASSERT_NE(voice_of(v, 3), nullptr);
    pos_before = voice_of(v, 3)->position;
    EXPECT_EQ(d.terminate(), 0) << d.log();
    const std::string log = d.log();
    EXPECT_NE(log.find("info state file " + f.state + " does not exist yet"), std::string::npos) << log;
    EXPECT_NE(log.find("state saved to " + f.state), std::string::npos) << log;
  }
  const std::string saved = slurp(f.state);
  EXPECT_EQ(saved.find("stemd-state 1\n"), saved.find("stemd-state"));
  EXPECT_NE(saved.find("/stemd/load 3 \"" + f.a + "\" \"alpha\"\n"), std::string::npos) << saved;
  EXPECT_NE(saved.find("/stemd/play 1100 0.7 true "), std::string::npos) << saved;
  EXPECT_EQ(saved.substr(saved.size() - 4), "end\n") << saved;

  Stemd d(f.dir.file("run2.log"), args);
  ASSERT_UP(d);
  Client& c = d.client();
  const auto src = osc::sources(c);
  ASSERT_EQ(src.size(), 2u) << d.log();
  EXPECT_EQ(src[0].id, 3);
  EXPECT_EQ(src[0].name, "alpha");
  EXPECT_EQ(src[0].path, f.a);
  EXPECT_EQ(src[1].id, 1100);
  EXPECT_EQ(src[1].name, "b");
  const auto st = osc::status(c);
  EXPECT_NEAR(st.at("deck_a").as_double(), 0.4, 1e-6);
  EXPECT_NEAR(st.at("deck_b").as_double(), 0.6, 1e-6);
  EXPECT_NEAR(st.at("master").as_double(), 0.8, 1e-6);
  EXPECT_NEAR(st.at("eq_a_low").as_double(), osc::eq_gain(25), 1e-6);
  const auto v = osc::voices(c);
  ASSERT_EQ(v.size(), 2u) << d.log();
  const auto* v3 = voice_of(v, 3);
  ASSERT_NE(v3, nullptr);
  EXPECT_EQ(v3->state, "playing");
  // Where it was: not back at the start (a fresh play from 2.0 s would be near 2.x), and not
  // further on than the time that passed (generous: the machine is shared and slow).
  EXPECT_GE(v3->position, pos_before - 0.05) << d.log();
  EXPECT_LT(v3->position, pos_before + 3.0) << d.log();
  // The crowdstream player is its id's player again (the router's bookkeeping came back too).
  EXPECT_TRUE(osc::is_done(c.send("/stop_stem", 1100), "/stop_stem"));
  EXPECT_TRUE(osc::eventually([&] { return osc::voices(c).size() == 1; }, 5s));
  EXPECT_NE(d.log().find("state file " + f.state + ": restored 2 of 2 sources, 2 voices"), std::string::npos)
      << d.log();
  EXPECT_EQ(d.terminate(), 0) << d.log();
}

TEST(StateFile, WithoutRestoreVoicesOnlySourcesAndLevelsComeBack) {
  Files f;
  {
    Stemd d(f.dir.file("run1.log"), {"--state-file", f.state});
    ASSERT_UP(d);
    Client& c = d.client();
    EXPECT_TRUE(osc::is_done(c.send("/stemd/load", 3, f.a), "/stemd/load"));
    EXPECT_TRUE(osc::is_done(c.send("/stemd/play", 3), "/stemd/play"));
    EXPECT_TRUE(osc::is_done(c.send("/stemd/deck", "C", 0.25), "/stemd/deck"));
    EXPECT_EQ(d.terminate(), 0) << d.log();
  }
  EXPECT_EQ(slurp(f.state).find("/stemd/play"), std::string::npos) << slurp(f.state);
  Stemd d(f.dir.file("run2.log"), {"--state-file", f.state});
  ASSERT_UP(d);
  EXPECT_EQ(osc::sources(d.client()).size(), 1u);
  EXPECT_TRUE(osc::voices(d.client()).empty());
  EXPECT_NEAR(osc::status(d.client()).at("deck_c").as_double(), 0.25, 1e-6);
  EXPECT_EQ(d.terminate(), 0) << d.log();
}

// A crash (SIGKILL: no shutdown save) loses at most the last second: a change is written
// within about a second of being made.
TEST(StateFile, AChangeIsWrittenWithinSecondsSoACrashKeepsIt) {
  Files f;
  {
    Stemd d(f.dir.file("run1.log"), {"--state-file", f.state});
    ASSERT_UP(d);
    EXPECT_TRUE(osc::is_done(d.client().send("/stemd/load", 9, f.b, "bee"), "/stemd/load"));
    EXPECT_TRUE(wait_until([&] { return slurp(f.state).find("/stemd/load 9 ") != std::string::npos; }, 10.0))
        << slurp(f.state) << d.log();
    EXPECT_EQ(d.signal(SIGKILL), 128 + SIGKILL);
  }
  Stemd d(f.dir.file("run2.log"), {"--state-file", f.state});
  ASSERT_UP(d);
  const auto src = osc::sources(d.client());
  ASSERT_EQ(src.size(), 1u) << d.log();
  EXPECT_EQ(src[0].id, 9);
  EXPECT_EQ(src[0].name, "bee");
  EXPECT_EQ(d.terminate(), 0) << d.log();
}

TEST(StateFile, ACorruptFileIsReportedSetAsideAndStemdStartsEmpty) {
  Files f;
  const std::string corrupt = "stemd-state 1\n/stemd/master 0.5 0\n/stemd/load 3 \"" + f.a + "\" \"a\"\n/stemd/pl";
  {
    std::ofstream out(f.state);
    out << corrupt;
  }
  Stemd d(f.dir.file("run.log"), {"--state-file", f.state, "--restore-voices"});
  ASSERT_UP(d);
  EXPECT_TRUE(osc::sources(d.client()).empty());
  EXPECT_NEAR(osc::status(d.client()).at("master").as_double(), 1.0, 1e-6);
  EXPECT_EQ(d.terminate(), 0) << d.log();
  const std::string log = d.log();
  EXPECT_NE(log.find("warning state file " + f.state + ":4: truncated: the file ends without its \"end\" line"),
            std::string::npos)
      << log;
  EXPECT_NE(log.find("ignored (kept as " + f.state + ".bad); starting empty"), std::string::npos) << log;
  EXPECT_EQ(slurp(f.state + ".bad"), corrupt);
  // The shutdown wrote a fresh, valid (empty) state in its place.
  const std::string fresh = slurp(f.state);
  EXPECT_NE(fresh.find("stemd-state 1\n"), std::string::npos) << fresh;
  EXPECT_EQ(fresh.find("/stemd/load"), std::string::npos) << fresh;
}

TEST(StateFile, AWrongVersionIsReportedAndIgnored) {
  Files f;
  {
    std::ofstream out(f.state);
    out << "stemd-state 99\n/stemd/master 0.5 0\nend\n";
  }
  Stemd d(f.dir.file("run.log"), {"--state-file", f.state});
  ASSERT_UP(d);
  EXPECT_NEAR(osc::status(d.client()).at("master").as_double(), 1.0, 1e-6);
  EXPECT_EQ(d.terminate(), 0) << d.log();
  EXPECT_NE(d.log().find(f.state + ":1: version \"99\": this stemd reads version 1"), std::string::npos) << d.log();
}

TEST(StateFile, AVanishedSourceIsAWarningAndTheOthersComeBack) {
  Files f;
  const std::string gone = f.dir.file("gone.wav");
  {
    std::ofstream out(f.state);
    out << "stemd-state 1\n/stemd/load 1 \"" << gone << "\" \"gone\"\n/stemd/load 2 \"" << f.b
        << "\" \"b\"\n/stemd/play 1 1 true 0 frames 1\n/stemd/play 2 1 true 48000 frames 1\nend\n";
  }
  Stemd d(f.dir.file("run.log"), {"--state-file", f.state, "--restore-voices"});
  ASSERT_UP(d);
  const auto src = osc::sources(d.client());
  ASSERT_EQ(src.size(), 1u);
  EXPECT_EQ(src[0].id, 2);
  const auto v = osc::voices(d.client());
  ASSERT_EQ(v.size(), 1u);
  EXPECT_GE(v[0].position, 1.0 - 0.01);
  EXPECT_EQ(d.terminate(), 0) << d.log();
  const std::string log = d.log();
  EXPECT_NE(log.find("warning state file " + f.state + ":2: source 1 not restored: " + gone), std::string::npos) << log;
  EXPECT_NE(log.find("restored 1 of 2 sources, 1 voices"), std::string::npos) << log;
}

// The state file cannot be written (its directory is a plain file — so this holds as root too):
// stemd runs on, says so once (not every second), and exits cleanly.
TEST(StateFile, AnUnwritableStateFileIsOneWarningAndStemdRunsOn) {
  Files f;
  const std::string blocked = f.dir.file("not-a-dir");
  {
    std::ofstream out(blocked);
    out << "x";
  }
  const std::string path = blocked + "/state";
  Stemd d(f.dir.file("run.log"), {"--state-file", path});
  ASSERT_UP(d);
  EXPECT_TRUE(osc::is_done(d.client().send("/stemd/deck", "A", 0.5), "/stemd/deck"));
  const std::string warning = "warning state file: cannot create " + path + ".tmp.";
  EXPECT_TRUE(wait_until([&] { return d.log().find(warning) != std::string::npos; }, 10.0)) << d.log();
  EXPECT_TRUE(osc::is_done(d.client().send("/stemd/deck", "B", 0.5), "/stemd/deck"));
  std::this_thread::sleep_for(2500ms);  // a window for repeated attempts (one a second): the warning must not repeat
  EXPECT_TRUE(osc::is_done(d.client().send("/stemd/ping"), "/stemd/ping"));
  EXPECT_EQ(d.terminate(), 0) << d.log();
  const std::string log = d.log();
  const auto first = log.find(warning);
  EXPECT_EQ(log.find(warning, first + 1), std::string::npos) << log;  // once
  EXPECT_EQ(slurp(blocked), "x");
}

}  // namespace
}  // namespace stemd::test
