// Descriptors as a budget (attack pass 24, F6): the real stemd binary started with a lowered
// RLIMIT_NOFILE (set in the child before exec, as `ulimit -n` or systemd's LimitNOFILE do).
//
// Every streamed source keeps its file open. Before, nothing counted descriptors: ~1,000
// streamed loads under the 1,024 soft limit took them all, and from then on everything else that
// needed one failed with the loads — a TCP client's accept, a play, a helper. Now a streamed load
// is refused while fewer than the reserve would stay free, saying so, and what the reserve is
// kept for still works. The soft limit is raised to the hard one at start (at most 65,536), and
// --check-config says when --max-sources cannot fit the limit.
#include "common/fixtures.hpp"
#include "common/free_port.hpp"
#include "common/run_process.hpp"
#include "osc_harness.hpp"

#include <gtest/gtest.h>

#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <regex>
#include <sstream>
#include <thread>

namespace stemd::test {
namespace {

using osc::Client;
using osc::OscMessage;

std::string read_all(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

control::Endpoint loopback_at(std::uint16_t port) {
  std::string e;
  return *control::parse_endpoint("127.0.0.1", port, e);
}

std::int64_t status_field(const std::map<std::string, control::OscArg>& st, const std::string& k) {
  const auto it = st.find(k);
  return it == st.end() || !it->second.is_number() ? -1 : static_cast<std::int64_t>(it->second.as_double());
}

// stemd --backend null as a child whose RLIMIT_NOFILE is {soft, hard} from before its exec;
// ready once it answers a ping. SIGTERM (then SIGKILL) at the end.
class LimitedStemd {
 public:
  LimitedStemd(rlim_t soft, rlim_t hard, const std::vector<std::string>& extra) {
    for (int attempt = 0; attempt < 5 && !ready_; ++attempt) {
      port_ = free_port();
      tcp_port_ = free_port();
      std::vector<std::string> argv{STEMD_BINARY,
                                    "--backend",
                                    "null",
                                    "--config",
                                    "none",
                                    "--osc-port",
                                    std::to_string(port_),
                                    "--osc-tcp-port",
                                    std::to_string(tcp_port_),
                                    "--log-level",
                                    "info"};
      argv.insert(argv.end(), extra.begin(), extra.end());
      const rlimit rl{soft, hard};
      child_ = spawn_logged(argv, dir_.file("stemd.log"), [rl] { return setrlimit(RLIMIT_NOFILE, &rl) == 0; });
      ready_ = wait_until([&] { return !child_.running() || pinged(); }, 10.0) && child_.running();
    }
  }
  LimitedStemd(const LimitedStemd&) = delete;
  LimitedStemd& operator=(const LimitedStemd&) = delete;

  bool ready() const { return ready_; }
  pid_t pid() const { return child_.pid(); }
  std::string log() const { return child_.output(); }
  control::Endpoint udp() const { return loopback_at(port_); }
  control::Endpoint tcp() const { return loopback_at(tcp_port_); }
  const TempDir& dir() const { return dir_; }

  // "Max open files" of /proc/PID/limits: {soft, hard}.
  std::pair<std::string, std::string> nofile() const {
    std::istringstream in(read_all("/proc/" + std::to_string(pid()) + "/limits"));
    std::string line;
    while (std::getline(in, line)) {
      if (line.rfind("Max open files", 0) != 0) continue;
      std::istringstream w(line.substr(14));
      std::string soft, hard;
      w >> soft >> hard;
      return {soft, hard};
    }
    return {};
  }

 private:
  bool pinged() {
    Client c(udp());
    c.post(osc::msg("/stemd/ping"));
    const auto r = c.next_reply(std::chrono::milliseconds(200));
    return r && r->address == "/done";
  }

  TempDir dir_;
  Child child_;  // after dir_: ended before its log's directory goes
  std::uint16_t port_ = 0, tcp_port_ = 0;
  bool ready_ = false;
};

// The current hard limit of this process: a child cannot be given more unless we are privileged.
rlim_t hard_nofile() {
  rlimit rl{};
  getrlimit(RLIMIT_NOFILE, &rl);
  return rl.rlim_max;
}

// 256 descriptors: streamed loads (--preload-limit-mb 0) of one file into id after id stop at
// the reserve with the budget's reason, never the kernel's EMFILE; TCP clients still connect
// and are answered, a loaded id still plays (its stream needs no descriptor of its own), the
// status counts what is held; unloads give descriptors back and loads go on. Before: loads went
// on until EMFILE ("Too many open files"), and the TCP clients were never answered.
TEST(FdBudgetDaemon, StreamedLoadsStopAtTheReserveAndClientsStillConnect) {
  if (hard_nofile() < 256) GTEST_SKIP() << "hard RLIMIT_NOFILE below 256";
  LimitedStemd d(256, 256, {"--preload-limit-mb", "0", "--max-tcp-clients-per-address", "16"});
  ASSERT_TRUE(d.ready()) << d.log();
  const std::string wav = d.dir().file("stem.wav");
  write_wav16(wav, make_tone_noise16(48000, 2, 3), 2);

  Client c(d.udp());
  int done = 0;
  std::vector<std::string> refusals;
  for (int id = 1; id <= 250; ++id) {
    const OscMessage r = c.send("/stemd/load", id, wav);
    if (osc::is_done(r, "/stemd/load")) {
      ASSERT_TRUE(refusals.empty()) << "a load went through after a refusal: " << refusals.front();
      ++done;
    } else {
      refusals.push_back(osc::reason(r));
    }
  }
  ASSERT_FALSE(refusals.empty()) << done << " streamed loads went through under a limit of 256\n" << d.log();
  std::size_t budget_refusals = 0;
  for (const std::string& why : refusals) {
    budget_refusals += why.find("too many open files: ") != std::string::npos &&
                       why.find(" of the limit 256 in use; a reserve of ") != std::string::npos;
  }
  EXPECT_EQ(budget_refusals, refusals.size()) << "the first refusal: " << refusals.front();
  auto st = osc::status_map(c.send("/stemd/status"));
  const std::int64_t reserve = status_field(st, "fds_reserve");
  EXPECT_EQ(status_field(st, "fds_limit"), 256);
  EXPECT_GE(reserve, 48) << "the reserve must hold the TCP clients (16) and the web's (32)";
  EXPECT_LE(reserve, 64) << "a quarter of the limit at most";
  EXPECT_GE(done, 120) << "the start's own descriptors are a few tens";
  EXPECT_LE(done, 256 - reserve);
  EXPECT_GE(status_field(st, "fds_open"), done);
  // A refused load's file is closed by the closer thread, after the refusal is answered: on a busy
  // machine some are still open when the last answer comes (fds_open 214 against 192 once).
  // They are given back without another load: the count comes down to the line by itself.
  EXPECT_TRUE(wait_until(
      [&] {
        st = osc::status_map(c.send("/stemd/status"));
        return status_field(st, "fds_open") <= 256 - reserve;
      },
      5.0))
      << "fds_open " << status_field(st, "fds_open");
  // What the kernel says stemd holds: within the reserve's reach of the limit, not at it.
  const std::filesystem::directory_iterator fds("/proc/" + std::to_string(d.pid()) + "/fd");
  EXPECT_LE(std::distance(fds, std::filesystem::directory_iterator{}), 256 - reserve + 4);

  // What the reserve is for: TCP clients (the most stemd takes: --max-tcp-clients 16) connect and
  // are answered, and a streamed id plays.
  std::vector<std::unique_ptr<Client>> tcp;
  for (int i = 0; i < 16; ++i) {
    tcp.push_back(std::make_unique<Client>(d.tcp(), Client::Proto::kTcp));
    ASSERT_TRUE(tcp.back()->ok());
    ASSERT_EQ(tcp.back()->send("/stemd/ping").address, "/done") << "TCP client " << i << "\n" << d.log();
  }
  EXPECT_EQ(tcp.front()->send("/stemd/play", 1).address, "/done");
  EXPECT_TRUE(wait_until([&] { return status_field(osc::status_map(c.send("/stemd/status")), "voices") == 1; }));
  tcp.clear();

  // Unloads give their descriptors back (closed on the closer's threads): loads go on.
  for (int id = 2; id <= 11; ++id) EXPECT_EQ(c.send("/stemd/unload", id).address, "/done");
  EXPECT_TRUE(wait_until([&] { return osc::is_done(c.send("/stemd/load", 2, wav), "/stemd/load"); }))
      << osc::reason(c.send("/stemd/load", 2, wav));
}

// The start's "at most N streamed sources fit" is exact: N streamed loads go through, the next is
// refused. It said 66 under a limit of 100, and the 66th was refused: it counted what was open
// before the OSC server's start dup'd its wake-up descriptor (new-user pass 25, L1).
// Then, near and at the reserve, the health line says so first, with the figures and what to
// do, and the short `stemctl status` has an "open files" row: both said nothing while loads were
// refused (new-user pass 25, M2).
TEST(FdBudgetDaemon, TheStartsCountIsExactAndTheHealthLineAndStatusSayWhenLoadsAreRefused) {
  if (hard_nofile() < 100) GTEST_SKIP() << "hard RLIMIT_NOFILE below 100";
  LimitedStemd d(100, 100, {"--preload-limit-mb", "0", "--health-interval", "1"});
  ASSERT_TRUE(d.ready()) << d.log();
  std::smatch m;
  std::string start_log;  // outlives the lambda: m points into it (asan: a use after free)
  const std::regex fit_line(R"(at most (\d+) streamed sources fit the open-file limit 100)");
  ASSERT_TRUE(wait_until(
      [&] {
        start_log = d.log();
        return std::regex_search(start_log, m, fit_line);
      },
      5.0))
      << d.log();
  const int fit = std::stoi(m[1]);
  ASSERT_GT(fit, 10) << d.log();
  // After the first health line: its tick measures what is open again (loads sent before it
  // counted against the start's measure, and matched the start's number by chance).
  ASSERT_TRUE(wait_until([&] { return d.log().find(" info health: ") != std::string::npos; }, 5.0)) << d.log();
  const std::string wav = d.dir().file("stem.wav");
  write_wav16(wav, make_tone_noise16(4800, 2, 3), 2);
  Client c(d.udp());
  int done = 0;
  std::string refused;
  for (int id = 1; id <= fit + 3 && refused.empty(); ++id) {
    const OscMessage r = c.send("/stemd/load", id, wav);
    if (osc::is_done(r, "/stemd/load")) {
      ++done;
    } else {
      refused = osc::reason(r);
    }
  }
  EXPECT_EQ(done, fit) << "the start said " << fit << " fit; refused: " << refused << "\n" << d.log();
  EXPECT_NE(refused.find("too many open files: "), std::string::npos) << refused;

  // The health line (every second here), first: the figures, the refusal, what to do.
  const std::regex health(
      R"(health: open files: (\d+) of 100 in use, a reserve of (\d+) kept: (\d+) streamed loads? refused in the last )"
      R"(\d+ s; raise LimitNOFILE \(systemd\) or nofile in limits.conf, unload streamed sources, or hold files in )"
      R"(memory \(--preload-limit-mb\); \d+ voices, )");
  EXPECT_TRUE(wait_until(
      [&] {
        const std::string log = d.log();
        return std::regex_search(log, m, health);
      },
      5.0))
      << d.log();
  // The short status: a row with the same figures and the refusals since start.
  const auto st = run_process(std::string(STEMCTL_BINARY) + " -p " + std::to_string(d.udp().port()) + " status");
  EXPECT_EQ(st.exit_code, 0) << st.output;
  EXPECT_TRUE(std::regex_search(
      st.output, std::regex(R"(open files +\d+ of 100 in use, a reserve of \d+ kept; streamed loads refused: 1\n)")))
      << st.output;
}

// A soft limit below the hard one is raised to it at start, and the log and status say so.
// (The raise predates this test; the log line and the status fields are new.)
TEST(FdBudgetDaemon, StartRaisesTheSoftLimitToTheHardOne) {
  if (hard_nofile() < 4096) GTEST_SKIP() << "hard RLIMIT_NOFILE below 4096";
  LimitedStemd d(256, 4096, {});
  ASSERT_TRUE(d.ready()) << d.log();
  EXPECT_EQ(d.nofile(), std::make_pair(std::string("4096"), std::string("4096")));
  EXPECT_NE(d.log().find("open-file limit 4096 (raised from 256"), std::string::npos) << d.log();
  Client c(d.udp());
  const auto st = osc::status_map(c.send("/stemd/status"));
  EXPECT_EQ(status_field(st, "fds_limit"), 4096);
  EXPECT_GT(status_field(st, "fds_open"), 3);      // stdio, the sockets
  EXPECT_EQ(status_field(st, "fds_reserve"), 64);  // at least 64: 32 + --max-tcp-clients 16 (no web monitor)
}

// A hard limit past 65,536 (systemd's default is 524,288) is not taken whole: the soft limit goes
// to 65,536, which holds --max-sources' most and keeps a scan of /proc/self/fd short.
TEST(FdBudgetDaemon, TheRaiseStopsAt65536) {
  if (hard_nofile() < 200000) {
    const rlimit probe{1024, 200000};
    pid_t p = fork();
    if (p == 0) _exit(setrlimit(RLIMIT_NOFILE, &probe) == 0 ? 0 : 1);
    int st = 0;
    waitpid(p, &st, 0);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) GTEST_SKIP() << "cannot give a child a hard limit of 200000";
  }
  LimitedStemd d(1024, 200000, {});
  ASSERT_TRUE(d.ready()) << d.log();
  EXPECT_EQ(d.nofile(), std::make_pair(std::string("65536"), std::string("200000")));
  EXPECT_NE(d.log().find("open-file limit 65536 (raised from 1024; the hard limit 200000 is more than stemd takes)"),
            std::string::npos)
      << d.log();
}

// --check-config says when --max-sources streamed sources cannot all stay open under the limit.
TEST(FdBudgetDaemon, CheckConfigWarnsWhenMaxSourcesCannotFitTheLimit) {
  auto r = run_process("ulimit -n 512 && exec " + std::string(STEMD_BINARY) + " --check-config --config none");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("warning: the open-file limit here is 512 (a service's is its unit's LimitNOFILE"),
            std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("--max-sources 4096 streamed sources do not fit — about 416 do"), std::string::npos)
      << r.output;
  r = run_process("ulimit -n 512 && exec " + std::string(STEMD_BINARY) +
                  " --check-config --config none --max-sources 300");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(r.output.find("open-file limit"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace stemd::test
