// stemd --check-config, and the config search as documented: the man page's and the README's
// lists are the order the binary searches in (a new-user pass: the man page called
// /etc/stemd/stemd.conf the last place, the binary also searched PREFIX/etc/stemd/stemd.conf).
#include "common/fixtures.hpp"
#include "common/run_process.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include <sys/stat.h>
#include <unistd.h>

namespace stemd::test {
namespace {

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

int count_of(const std::string& text, const std::string& needle) {
  int n = 0;
  for (auto at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++n;
  return n;
}

// Every bad line of the file is a line of its own with FILE:LINE:, the media
// root is checked, a state file's directory that cannot be written is a
// warning; the verdict and exit 2 — the exit a start with that config has.
// Nothing is started (no "audio thread" line, no port).
TEST(CheckConfig, ListsEveryProblemWithItsLineAndExitsAsAStartWould) {
  TempDir dir;
  const std::string conf = dir.file("stemd.conf");
  std::ofstream(conf) << "# a config with three mistakes\n"
                         "buffer-sise = 512\n"
                         "media-root = \"" +
                             conf +  // a file: a media root missing is a warning (a disk mounted later)
                             "\"\n"
                             "max-voices = lots\n"
                             "state-file = \"" +
                             dir.file("no-such-dir/stemd.state") +
                             "\"\n"
                             "[osc]\n"
                             "port = 49123\n";
  const auto r = run_process(std::string(STEMD_BINARY) + " --check-config --config " + conf);
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("stemd --check-config: config file " + conf + "\n"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find(conf + ":2: unknown key 'buffer-sise' (did you mean 'buffer-size'?)"), std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find(conf + ":4: key 'max-voices': --max-voices: 'lots' "
                                 "must be an integer from 1 to 65536"),
            std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find(conf + ":3: key 'media-root': --media-root " + conf + ": Not a directory"), std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("warning: " + conf + ":5: key 'state-file': --state-file "), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("stemd --check-config: 3 problems, 1 warning: a "
                          "start with this configuration would not run"),
            std::string::npos)
      << r.output;
  EXPECT_EQ(r.output.find("audio thread"), std::string::npos) << "it started the audio: " << r.output;
  const auto start = run_process(std::string(STEMD_BINARY) + " --backend null --config " + conf);
  EXPECT_EQ(start.exit_code, 2) << start.output;
}

// A config a start accepts passes (exit 0), with its warnings; flags on the
// command line are checked with the file, and a bad one is named; --help lists
// --check-config.
// A file's problems in the file's order (the value checks used to come after the syntax ones:
// line 1 last), and a start that stops at the first says where to see them all (outside pass
// 20, user 3: four starts to find four bad lines).
TEST(CheckConfig, ProblemsComeInTheFilesOrderAndAStartPointsToTheCheck) {
  TempDir dir;
  const std::string conf = dir.file("bad.conf");
  std::ofstream(conf) << "buffer-size = 100000\nosc-port: 5\n[oscc]\nbogus\n";
  const auto r = run_process(std::string(STEMD_BINARY) + " --check-config --config " + conf);
  EXPECT_EQ(r.exit_code, 2) << r.output;
  std::size_t last = 0;
  for (int line = 1; line <= 4; ++line) {
    const std::size_t at = r.output.find(conf + ":" + std::to_string(line) + ":");
    ASSERT_NE(at, std::string::npos) << "line " << line << ": " << r.output;
    EXPECT_GT(at, last) << "line " << line << " out of order: " << r.output;
    last = at;
  }
  const auto start = run_process(std::string(STEMD_BINARY) + " --backend null --config " + conf);
  EXPECT_EQ(start.exit_code, 2) << start.output;
  EXPECT_NE(start.output.find("(stemd --check-config --config " + conf + " lists every problem of the file at once)"),
            std::string::npos)
      << start.output;
  // A command-line mistake is not the file's: no pointer to it.
  const auto flag = run_process(std::string(STEMD_BINARY) + " --backend null --config none --buffer-size 3");
  EXPECT_EQ(flag.exit_code, 2) << flag.output;
  EXPECT_EQ(flag.output.find("--check-config"), std::string::npos) << flag.output;
}

// --osc-tcp-port and --http-port the same: the check passed, the start failed "Address already in
// use" (stemd held it itself). Now both say so.
TEST(CheckConfig, OscOverTcpAndTheWebMonitorOnOnePortIsAProblem) {
  const std::string flags = " --config none --backend null --osc-port 46171 --osc-tcp-port 46170 --http-port 46170";
  const std::string why = "--http-port 46170 is also --osc-tcp-port: both are TCP, on one address";
  const auto r = run_process(std::string(STEMD_BINARY) + " --check-config" + flags);
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find(why), std::string::npos) << r.output;
  const auto start = run_process(std::string(STEMD_BINARY) + flags);
  EXPECT_EQ(start.exit_code, 2) << start.output;
  EXPECT_NE(start.output.find(why), std::string::npos) << start.output;
  EXPECT_EQ(run_process(std::string(STEMD_BINARY) + " --check-config" + flags + " --http-bind 127.0.0.2").exit_code, 0);
}

TEST(CheckConfig, AConfigThatStartsPasses) {
  TempDir dir;
  ASSERT_EQ(mkdir(dir.file("music").c_str(), 0700), 0);
  make_wav(dir.file("music/a.wav"), 4800, 1);
  const std::string conf = dir.file("stemd.conf");
  std::ofstream(conf) << "log-level = \"info\"\n[files]\nstate-file = \"" << dir.file("stemd.state")
                      << "\"\n[osc]\nport = 49124\nmedia-root = \"" << dir.file("music") << "\"\n";
  auto r = run_process(std::string(STEMD_BINARY) + " --check-config --config " + conf);
  EXPECT_NE(r.output.find("stemd --check-config: OK"), std::string::npos) << r.output;
  EXPECT_EQ(r.exit_code, 0) << r.output;
  r = run_process(std::string(STEMD_BINARY) + " --check-config --config " + conf + " --play " +
                  dir.file("music/a.wav"));
  EXPECT_EQ(r.exit_code, 0) << r.output;
  r = run_process(std::string(STEMD_BINARY) + " --check-config --config " + conf + " --play " + dir.file("b.wav"));
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("--play " + dir.file("b.wav") + ": "), std::string::npos) << r.output;
  r = run_process(std::string(STEMD_BINARY) + " --check-config --config " + conf + " --osc-bind 0.0.0.0");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("--allow is required"), std::string::npos) << r.output;
  r = run_process(std::string(STEMD_BINARY) + " --check-config --buffer-size 3");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_EQ(count_of(r.output, "\n"), 3) << "source, problem, verdict: " << r.output;
  EXPECT_NE(run_stemd("--help").output.find("--check-config"), std::string::npos);
  // Not a setting: in a file it is an unknown key.
  std::ofstream(conf) << "check-config = true\n";
  EXPECT_EQ(run_stemd("--backend null --duration 0.05 --config " + conf).exit_code, 2);
}

// A key set twice: a list (play) takes both lines' values, and the warning says so — it said "this
// one wins" and both files played (new-user pass 21); a single value given twice is a problem.
TEST(CheckConfig, AListKeySetTwiceSaysBothApply) {
  TempDir dir;
  make_wav(dir.file("a.wav"), 4800, 1);
  make_wav(dir.file("b.wav"), 4800, 2);
  const std::string conf = dir.file("stemd.conf");
  std::ofstream(conf) << "backend = \"null\"\nplay = \"" << dir.file("a.wav") << "\"\nplay = \"" << dir.file("b.wav")
                      << "\"\n";
  auto r = run_process(std::string(STEMD_BINARY) + " --check-config --config " + conf);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find(":3: 'play' is also set on line 2: both apply (a list: their values are added together)"),
            std::string::npos)
      << r.output;
  EXPECT_EQ(r.output.find("this one wins"), std::string::npos) << r.output;
  std::ofstream(conf) << "backend = \"null\"\nosc-port = 49125\nosc-port = 49126\n";
  r = run_process(std::string(STEMD_BINARY) + " --check-config --config " + conf);
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("--osc-port takes one value, got 2"), std::string::npos) << r.output;
}

// A list over several lines, as TOML writes it and as anyone writes 8 stems: read (comments after
// the elements, a trailing comma, the ']' on a line of its own). Not closed, it is one problem at
// the line it opens on, the settings after it are still checked, and no other line's text is
// shown as a path: --check-config said "--play loop = truevolume = 0.8…: outside the media root"
// and then each later line of the list "is not a 'key = value' line" (new-user pass 23, HIGH 2).
TEST(CheckConfig, AListOverSeveralLinesIsReadAndAnUnclosedOneIsOneProblemAtItsLine) {
  TempDir dir;
  std::string paths[4];
  for (int i = 0; i < 4; ++i) {
    const std::string file = dir.file("stem" + std::to_string(i + 1) + ".wav");
    make_wav(file, 4800, static_cast<std::uint32_t>(i + 1));
    paths[i] = '"' + file + '"';
  }
  const std::string conf = dir.file("stemd.conf");
  const std::string head = "backend = \"null\"\nmedia-root = \"" + dir.path() + "\"\n";
  std::ofstream(conf) << head << "play = [" << paths[0] << ", " << paths[1] << ",\n        " << paths[2]
                      << ",  # the third\n        " << paths[3] << ",\n]\nloop = true\nvolume = 0.8\n";
  auto r = run_process(std::string(STEMD_BINARY) + " --check-config --config " + conf);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("stemd --check-config: OK"), std::string::npos) << r.output;

  std::ofstream(conf) << head << "play = [" << paths[0] << ", " << paths[1] << ",\n        " << paths[2] << ", "
                      << paths[3] << ",\nloop = true\nvolume = 0.8\nmax-voices = lots\n";
  r = run_process(std::string(STEMD_BINARY) + " --check-config --config " + conf);
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find(conf + ":3: key 'play': the list opened here is not closed (no ']' before line 5)"),
            std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find(conf + ":7: key 'max-voices': --max-voices: 'lots'"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("stemd --check-config: 2 problems:"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("is not a 'key = value' line"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("--play"), std::string::npos) << r.output;
  EXPECT_EQ(count_of(r.output, "loop = true"), 0) << r.output;
  // A start stops at the same problem.
  const auto start = run_process(std::string(STEMD_BINARY) + " --osc-port 0 --config " + conf);
  EXPECT_EQ(start.exit_code, 2) << start.output;
  EXPECT_NE(start.output.find(conf + ":3: key 'play': the list opened here is not closed"), std::string::npos)
      << start.output;

  // A quoted path not closed on its line: one problem, at that line.
  std::ofstream(conf) << head << "play = [" << paths[0] << ",\n        " << paths[1].substr(0, paths[1].size() - 1)
                      << ",\n        " << paths[2] << ",\n]\nloop = true\n";
  r = run_process(std::string(STEMD_BINARY) + " --check-config --config " + conf);
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find(conf + ":4: key 'play': the quoted value opened here (" +
                          paths[1].substr(0, paths[1].size() - 1) + ",) is not closed on this line"),
            std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("stemd --check-config: 1 problem:"), std::string::npos) << r.output;
}

// A relative `play` in the config file is the media root's, whatever the working directory (`/`
// under systemd): it was the working directory's and refused as "outside the media root" (new-user
// pass 21). Without a media root it is the config file's directory's. --check-config and a start
// agree. A relative --play on the command line stays the working directory's, and its refusal
// says where the file is. Each relative file's problem comes under its own line (both came under
// the last `play` line).
TEST(CheckConfig, ARelativePlayInTheConfigIsTheMediaRootsAndEachProblemHasItsLine) {
  TempDir dir;
  ASSERT_EQ(::mkdir(dir.file("media").c_str(), 0755), 0);
  make_wav(dir.file("media/a.wav"), 4800, 1);
  make_wav(dir.file("media/b.wav"), 4800, 2);
  const std::string conf = dir.file("stemd.conf");
  const std::string stemd = "cd / && " + std::string(STEMD_BINARY) + " --osc-port 0 ";
  std::ofstream(conf) << "backend = \"null\"\nmedia-root = \"" << dir.file("media")
                      << "\"\nplay = [\"a.wav\", \"b.wav\"]\n";
  auto r = run_process(stemd + "--check-config --config " + conf);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(r.output.find("outside the media root"), std::string::npos) << r.output;
  r = run_process(stemd + "--duration 0.05 --config " + conf);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("loaded id 1 'a'"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("loaded id 2 'b'"), std::string::npos) << r.output;

  // No media root: the config file's directory.
  std::ofstream(conf) << "backend = \"null\"\nplay = \"media/a.wav\"\n";
  r = run_process(stemd + "--check-config --config " + conf);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  r = run_process(stemd + "--duration 0.05 --config " + conf);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("loaded id 1 'a'"), std::string::npos) << r.output;

  // Two relative files missing, on lines 3 and 4 (and two on one line, 5): each under its own line.
  std::ofstream(conf) << "backend = \"null\"\nmedia-root = \"" << dir.file("media")
                      << "\"\nplay = \"gone3.wav\"\nplay = \"gone4.wav\"\nplay = [\"a.wav\", \"gone5.wav\"]\n";
  r = run_process(stemd + "--check-config --config " + conf);
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find(conf + ":3: key 'play': --play " + dir.file("media/gone3.wav") + ": "), std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find(conf + ":4: key 'play': --play " + dir.file("media/gone4.wav") + ": "), std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find(conf + ":5: key 'play': --play " + dir.file("media/gone5.wav") + ": "), std::string::npos)
      << r.output;
  EXPECT_EQ(count_of(r.output, "key 'play'"), 3) << r.output;
  // Absolute paths alike (the line, not the resolution): each under its own line.
  std::ofstream(conf) << "backend = \"null\"\nplay = \"" << dir.file("gone2.wav") << "\"\nplay = \""
                      << dir.file("gone3.wav") << "\"\n";
  r = run_process(stemd + "--check-config --config " + conf);
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find(conf + ":2: key 'play': --play " + dir.file("gone2.wav") + ": "), std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find(conf + ":3: key 'play': --play " + dir.file("gone3.wav") + ": "), std::string::npos)
      << r.output;

  // The command line's relative --play: the working directory's; the refusal names the file under
  // the root, at --check-config and at a start alike.
  const std::string here = "cd " + shell_quote(dir.file("")) + " && " + std::string(STEMD_BINARY) +
                           " --osc-port 0 --config none --backend null --media-root media --play a.wav ";
  const std::string hint =
      "(did you mean " + dir.file("media/a.wav") + "? a relative --play is the working directory's";
  r = run_process(here + "--check-config");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("outside the media root"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find(hint), std::string::npos) << r.output;
  r = run_process(here + "--duration 0.05");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find(hint), std::string::npos) << r.output;
}

// Every bad value on the command line is reported, one line each — CLI11 stops
// at the first, and a user fixed one, ran again and found the next — with an
// unknown flag (and its value), a value given as --flag=value, a short flag, a
// list option; the good settings around them are still checked (the file to
// play is missing), and a start with the same line still exits 2 with the
// first problem and nothing else.
TEST(CheckConfig, ListsEveryBadCommandLineValue) {
  TempDir dir;
  const std::string bad =
      " -b 3 --volume=9 --osc-port 99999 --colour blue --levels 1 1 1 9"
      " --max-voices lots --play " +
      dir.file("missing.wav");
  const auto r = run_process(std::string(STEMD_BINARY) + " --check-config --config none --backend null" + bad);
  EXPECT_EQ(r.exit_code, 2) << r.output;
  for (const char* want : {"--buffer-size: 3 is out of range: must be an integer from 16 to 8192",
                           "--volume: 9 is outside 0–4", "--osc-port: ", "unknown flag '--colour'",
                           "--levels: 9 is outside 0–4", "--max-voices: 'lots' must be an integer"}) {
    EXPECT_EQ(count_of(r.output, want), 1) << want << " in " << r.output;
  }
  EXPECT_NE(r.output.find("--play " + dir.file("missing.wav") + ": "), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("stemd --check-config: 7 problems: a start with this configuration would not run\n"),
            std::string::npos)
      << r.output;
  EXPECT_EQ(count_of(r.output, "\n"), 9) << "source, 7 problems, verdict: " << r.output;
  const auto start = run_process(std::string(STEMD_BINARY) + " --config none --backend null" + bad);
  EXPECT_EQ(start.exit_code, 2) << start.output;
  EXPECT_NE(start.output.find("stemd: --buffer-size: 3 is out of range"), std::string::npos) << start.output;
  EXPECT_EQ(start.output.find("--volume"), std::string::npos) << "a start names the first problem: " << start.output;
  EXPECT_NE(start.output.find("Run with --help for more information."), std::string::npos) << start.output;
}

// A link-local --osc-bind or --http-bind whose interface is not there yet is what a start
// waits for (a warning), as a late address is; a malformed one is a problem.
TEST(CheckConfig, ALateInterfaceIsAWarningAMalformedAddressAProblem) {
  auto r = run_stemd("--check-config --config none --osc-bind fe80::1%stemdnoif9 --allow fe80::/10");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("warning: --osc-bind fe80::1%stemdnoif9: no network interface \"stemdnoif9\" yet: a "
                          "start waits for it"),
            std::string::npos)
      << r.output;
  r = run_stemd("--check-config --config none --osc-bind fe80::1%stemd/noif --allow fe80::/10");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("--osc-bind fe80::1%stemd/noif: no network interface"), std::string::npos) << r.output;
  // The web monitor's --http-bind waits for its interface as OSC's does (it was a problem here
  // while a start waited for it).
  r = run_stemd("--check-config --config none --http-port 0 --http-bind fe80::1%stemdnoif9 --allow fe80::/10");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("warning: --http-bind fe80::1%stemdnoif9: no network interface \"stemdnoif9\" yet: a "
                          "start waits for it"),
            std::string::npos)
      << r.output;
  r = run_stemd("--check-config --config none --http-port 0 --http-bind fe80::1%stemd/noif --allow fe80::/10");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("--http-bind fe80::1%stemd/noif: no network interface"), std::string::npos) << r.output;
}

// The items of a numbered list of paths in a document: the first path of each
// item, in order.
std::vector<std::string> listed(const std::string& text, const std::regex& item) {
  std::vector<std::string> out;
  for (std::sregex_iterator it(text.begin(), text.end(), item), end; it != end; ++it) out.push_back((*it)[1]);
  return out;
}

// The search order the binary uses (its "looked for …" with nothing found, run
// as PREFIX/bin/stemd with XDG_CONFIG_HOME set) is the order the man page and
// the README list, and every place is in the man page's FILES.
TEST(CheckConfig, TheDocumentedSearchOrderIsTheBinarys) {
  if (::access("/etc/stemd/stemd.conf", F_OK) == 0) GTEST_SKIP() << "this machine has /etc/stemd/stemd.conf";
  TempDir dir;
  std::filesystem::create_directories(dir.file("pfx/bin"));
  const std::string exe = dir.file("pfx/bin/stemd");
  std::filesystem::copy_file(STEMD_BINARY, exe);
  std::filesystem::permissions(exe, std::filesystem::perms::owner_all);
  const auto r = run_process("env -u STEMD_NO_CONFIG_SEARCH XDG_CONFIG_HOME=" + dir.file("xdg") + " " + exe +
                             " --backend null --no-osc --duration 0.05");
  std::smatch m;
  ASSERT_TRUE(std::regex_search(r.output, m, std::regex(R"(no config file \(looked for ([^)]*)\))"))) << r.output;
  std::vector<std::string> searched;
  std::istringstream in(m.str(1));
  for (std::string p; std::getline(in, p, ',');) {
    p = p.substr(p.find_first_not_of(' '));
    if (p.rfind(dir.file("xdg"), 0) == 0) p = "$XDG_CONFIG_HOME" + p.substr(dir.file("xdg").size());
    if (p.rfind(dir.file("pfx"), 0) == 0) p = "PREFIX" + p.substr(dir.file("pfx").size());
    searched.push_back(p);
  }
  ASSERT_EQ(searched.size(), 3u) << r.output;

  const std::string man = read_text(std::string(STEMD_SOURCE_DIR) + "/man/stemd.h2m");
  const auto conf_at = man.find("[CONFIGURATION FILE]");
  const std::string conf_section = man.substr(conf_at, man.find("\n[", conf_at + 1) - conf_at);
  EXPECT_EQ(listed(conf_section, std::regex(R"(\n\.IP \d+\. \d+\n\\fI([^\\]+)\\fR)")), searched) << conf_section;
  const std::string readme = read_text(std::string(STEMD_SOURCE_DIR) + "/README.md");
  const auto where = readme.find("**Where stemd looks.**");
  ASSERT_NE(where, std::string::npos);
  const std::string looks = readme.substr(where, readme.find("The start-up log says", where) - where);
  EXPECT_EQ(listed(looks, std::regex(R"(\n\d\. `([^`]+)`)")), searched) << looks;

  const auto files_at = man.find("[FILES]");
  const std::string files = man.substr(files_at, man.find("\n[", files_at + 1) - files_at);
  for (std::string p : searched) {
    if (p.rfind("$XDG_CONFIG_HOME", 0) == 0) p = "~/.config" + p.substr(16);
    EXPECT_NE(files.find("\n.I " + p + "\n"), std::string::npos) << p << " is not in FILES: " << files;
  }
  EXPECT_EQ(files.find("the last place"), std::string::npos) << files;
}

}  // namespace
}  // namespace stemd::test
