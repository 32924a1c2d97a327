// The config file's read through the helper process (app/config_io.hpp): a helper that hangs — as
// one on a file system that stops answering does — is given up on after the deadline, naming the
// file it waited on; a stop signal ends the wait; the helper's answer (read_config_main, run here
// with its output captured) is decoded as the read on the calling thread decides; a text read
// beforehand (SIGHUP's) is parsed without the file being read again; --check-config's passes share
// one read. The helper here is a shell script standing in for `stemd --internal-state-io` (the
// real one: config_stall.sh).
#include "app/config_io.hpp"
#include "app/options.hpp"
#include "common/fixtures.hpp"

#include <gtest/gtest.h>

#include <fstream>
#include <set>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace stemd::app {
namespace {

using Kind = ConfigRead::Kind;

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// `sh -c SCRIPT sh read-config MAX given|search PATH…`; each start appends a line to `starts`.
std::vector<std::string> helper(const test::TempDir& dir, const std::string& script) {
  return {"/bin/sh", "-c", "echo \"$1\" >> '" + dir.file("starts") + "'; " + script, "sh"};
}

ConfigPlan given(const std::string& path) {
  ConfigPlan p;
  p.candidates = {path};
  return p;
}

ConfigPlan search(std::vector<std::string> paths) {
  ConfigPlan p;
  p.candidates = std::move(paths);
  p.search = true;
  return p;
}

// A helper side's output and exit status for these arguments (its standard output captured):
// read_config_main's, or another mode's (read_page_main).
std::pair<std::string, int> run_helper_side(const test::TempDir& dir, std::vector<std::string> args,
                                            int (*side)(int, char**) = read_config_main) {
  const std::string out = dir.file("helper.out");
  const int fd = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  const int saved = ::dup(1);
  ::dup2(fd, 1);
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  const int rc = side(static_cast<int>(argv.size()), argv.data());
  ::dup2(saved, 1);
  ::close(saved);
  ::close(fd);
  return {slurp(out), rc};
}

// The helper's side, then the same answer decoded by a ConfigJob (a script replaying it).
ConfigRead through_helper(const test::TempDir& dir, const ConfigPlan& plan) {
  std::vector<std::string> args = {std::to_string(kMaxConfigBytes), plan.search ? "search" : "given"};
  args.insert(args.end(), plan.candidates.begin(), plan.candidates.end());
  const auto [out, rc] = run_helper_side(dir, args);
  std::ofstream(dir.file("answer"), std::ios::binary) << out;
  ConfigInput in;
  in.helper = helper(dir, "cat '" + dir.file("answer") + "'; exit " + std::to_string(rc));
  in.timeout_s = 30;
  return read_config(plan, in);
}

TEST(ConfigIo, AHelperThatHangsIsGivenUpOnNamingTheFileItWaitsOn) {
  test::TempDir dir;
  ConfigInput in;
  // The search's second file is where it hangs: named, as a file system that does not answer a
  // lookup holds the helper there.
  in.helper = helper(dir, "printf '%s\\0%s\\0' \"$4\" \"$5\"; exec sleep 30");
  in.timeout_s = 0.3;
  in.deadline_note = "the note";
  const ConfigRead r = read_config(search({"/nowhere/a.conf", "/share/stemd.conf"}), in);
  EXPECT_EQ(r.kind, Kind::kTimedOut);
  EXPECT_EQ(r.path, "/share/stemd.conf");
  EXPECT_EQ(r.error,
            "config file /share/stemd.conf: the file system of /share/stemd.conf did not answer within 0.3 s (the "
            "note; a network share or a disk that hung?)");
  // Nothing named yet (it hangs before its first look): the first candidate.
  in.helper = helper(dir, "exec sleep 30");
  EXPECT_EQ(read_config(given("/share/x.conf"), in).path, "/share/x.conf");
}

TEST(ConfigIo, AStopSignalEndsTheWait) {
  test::TempDir dir;
  ConfigInput in;
  in.helper = helper(dir, "exec sleep 30");
  in.timeout_s = 30;
  int looks = 0;
  in.wait_ms = [&looks](int) { return ++looks < 3; };
  const ConfigRead r = read_config(given("/share/x.conf"), in);
  EXPECT_EQ(r.kind, Kind::kStopped);
  EXPECT_EQ(looks, 3);
  EXPECT_NE(r.error.find("config file /share/x.conf: stopped by a signal"), std::string::npos) << r.error;
}

TEST(ConfigIo, AJobGivenUpOnIsLookedAtUntilItsProcessHasEnded) {
  test::TempDir dir;
  std::string e;
  auto job = ConfigJob::start(helper(dir, "printf '%s\\0' \"$4\"; exec sleep 30"), given("/share/x.conf"), e);
  ASSERT_NE(job, nullptr) << e;
  EXPECT_FALSE(job->poll().has_value());
  for (int i = 0; i < 500 && job->waiting_on().empty(); ++i) usleep(2000);
  EXPECT_EQ(job->waiting_on(), "/share/x.conf");
  const ConfigRead r = job->give_up(1.5, "--load-timeout");
  EXPECT_EQ(r.kind, Kind::kTimedOut);
  EXPECT_NE(r.error.find("did not answer within 1.5 s (--load-timeout;"), std::string::npos) << r.error;
  std::optional<ConfigRead> ended;
  for (int i = 0; i < 1000 && !ended; ++i) {
    ended = job->poll();
    usleep(5000);
  }
  ASSERT_TRUE(ended.has_value()) << "killed, the helper's end is seen";
  EXPECT_EQ(ended->kind, Kind::kError);
  EXPECT_NE(ended->error.find("killed (signal 9)"), std::string::npos) << ended->error;
}

TEST(ConfigIo, TheHelpersAnswerIsTheReadOnTheCallingThreads) {
  test::TempDir dir;
  std::ofstream(dir.file("a.conf")) << "osc-port = 57001\n";
  ::mkfifo(dir.file("fifo").c_str(), 0600);
  ::symlink(dir.file("nothing").c_str(), dir.file("dangling").c_str());
  const std::vector<ConfigPlan> plans = {
      given(dir.file("a.conf")),
      given(dir.file("missing.conf")),
      given(dir.file("fifo")),
      search({dir.file("missing.conf"), dir.file("a.conf/under"), dir.file("a.conf")}),
      search({dir.file("missing.conf"), dir.file("dangling"), dir.file("a.conf")}),
      search({dir.file("missing.conf"), dir.file("other-missing.conf")}),
  };
  for (const ConfigPlan& plan : plans) {
    const ConfigRead here = read_config(plan, ConfigInput{});
    const ConfigRead there = through_helper(dir, plan);
    EXPECT_EQ(static_cast<int>(there.kind), static_cast<int>(here.kind)) << plan.candidates.back();
    EXPECT_EQ(there.path, here.path);
    EXPECT_EQ(there.text, here.text);
    EXPECT_EQ(there.error, here.error);
  }
  // What each says.
  ConfigRead r = read_config(plans[0], {});
  EXPECT_EQ(r.kind, Kind::kOk);
  EXPECT_EQ(r.text, "osc-port = 57001\n");
  r = read_config(plans[1], {});
  EXPECT_EQ(r.kind, Kind::kError);
  EXPECT_EQ(r.error, "config file " + dir.file("missing.conf") + ": cannot read it: No such file or directory");
  EXPECT_EQ(read_config(plans[2], {}).error, "config file " + dir.file("fifo") + ": not a regular file (a FIFO)");
  r = read_config(plans[3], {});  // ENOTDIR under a file: not there, the search goes on
  EXPECT_EQ(r.kind, Kind::kOk);
  EXPECT_EQ(r.path, dir.file("a.conf"));
  r = read_config(plans[4], {});  // a link to nothing is there: its problem is said
  EXPECT_EQ(r.kind, Kind::kError);
  EXPECT_EQ(r.path, dir.file("dangling"));
  EXPECT_EQ(read_config(plans[5], {}).kind, Kind::kNone);
}

// The web monitor's page (--web-root), read as the config file is (outside pass 25, N2: before,
// the web server read it on the main thread, and a share that stopped answering held the start).
// Its files of the types given, not below the directory, not a FIFO (never opened: it would
// block), at most the bound; the helper's answer decodes to the same read.
TEST(ConfigIo, AWebPageIsItsFilesOfTheTypesGivenReadAsTheConfigIs) {
  test::TempDir dir;
  const std::string root = dir.file("web");
  ::mkdir(root.c_str(), 0700);
  const std::string binary("\x89PNG\0\r\n\0tail", 12);
  std::ofstream(root + "/index.html") << "<html></html>";
  std::ofstream(root + "/app.js") << "let x = 1;";
  std::ofstream(root + "/logo.png", std::ios::binary) << binary;
  std::ofstream(root + "/notes.txt") << "not a page type";
  std::ofstream(root + "/.hidden.js") << "hidden";
  ::mkdir((root + "/dir.css").c_str(), 0700);    // a folder named as a page file
  ::mkfifo((root + "/pipe.css").c_str(), 0600);  // opened, it would block the start
  const std::vector<std::string> types = {".html", ".js", ".css", ".png"};
  const ConfigRead r = read_page_dir(root, "--web-root", 1 << 20, types, ConfigInput{});
  ASSERT_EQ(r.kind, Kind::kOk) << r.error;
  std::vector<std::pair<std::string, std::string>> files;
  ASSERT_TRUE(split_page(r.text, files));
  const std::vector<std::pair<std::string, std::string>> want = {
      {"app.js", "let x = 1;"}, {"index.html", "<html></html>"}, {"logo.png", binary}};
  EXPECT_EQ(files, want);

  // The helper's side gives the same bytes, after the paths it looked at.
  const auto [out, rc] = run_helper_side(dir, {"1048576", root, ".html", ".js", ".css", ".png"}, read_page_main);
  EXPECT_EQ(rc, 0);
  const std::string looked = root + "/index.html" + '\0' + root + '\0' + root + "/app.js" + '\0' + root + "/dir.css" +
                             '\0' + root + "/index.html" + '\0' + root + "/logo.png" + '\0' + root + "/pipe.css" +
                             '\0' + '\0';
  EXPECT_EQ(out, looked + r.text);

  // What is wrong is said, beginning with the flag.
  EXPECT_EQ(read_page_dir(dir.file("none"), "--web-root", 1 << 20, types, {}).error,
            "--web-root " + dir.file("none") + ": no index.html there");
  const ConfigRead big = read_page_dir(root, "--web-root", 20, types, {});
  EXPECT_EQ(big.kind, Kind::kError);
  EXPECT_EQ(big.error, "--web-root " + root + ": over 20 bytes of files");
  std::vector<std::pair<std::string, std::string>> cut;
  EXPECT_FALSE(split_page(r.text.substr(0, r.text.size() - 1), cut)) << "a text cut short is not a page";
  EXPECT_FALSE(split_page(std::string("a.js\0x\0", 7), cut));
}

std::vector<char*> argv_of(std::vector<std::string>& args) {
  std::vector<char*> v;
  for (auto& a : args) v.push_back(a.data());
  return v;
}

TEST(ConfigIo, AParseGivenTheTextReadBeforehandDoesNotReadTheFileAgain) {
  // SIGHUP: the helper read the text; the parse takes it (the path is not there any more).
  std::vector<std::string> args = {"stemd", "--config", "/nowhere/stemd.conf", "--backend", "null"};
  auto argv = argv_of(args);
  ConfigInput in;
  in.read = ConfigRead{Kind::kOk, "/nowhere/stemd.conf", "osc-port = 57002\n[limits]\nmax-voices = 9\n", ""};
  Options o;
  std::string e;
  ASSERT_EQ(parse_options(static_cast<int>(argv.size()), argv.data(), o, &e, &in), -1) << e;
  EXPECT_EQ(o.osc_port, 57002);
  EXPECT_EQ(o.max_voices, 9u);
  EXPECT_EQ(o.config_path, "/nowhere/stemd.conf");
  EXPECT_EQ(o.config_lines.at("max-voices"), 3);
  // Timed out: the parse refuses, naming the file.
  in.read = ConfigRead{Kind::kTimedOut, "/nowhere/stemd.conf", "",
                       "config file /nowhere/stemd.conf: the file "
                       "system of /nowhere/stemd.conf did not answer"};
  Options t;
  EXPECT_EQ(parse_options(static_cast<int>(argv.size()), argv.data(), t, &e, &in), 2);
  EXPECT_EQ(e, in.read->error);
}

TEST(ConfigIo, TheCheckConfigPassesShareOneRead) {
  test::TempDir dir;
  // Two bad lines: --check-config parses three times (each bad line skipped in turn).
  std::ofstream(dir.file("c.conf")) << "max-voices = 0\nbuffer-size = 7\n";
  std::vector<std::string> args = {"stemd", "--config", dir.file("c.conf"), "--backend", "null"};
  auto argv = argv_of(args);
  ConfigInput in;
  in.helper = helper(dir, "printf '%s\\0\\0' \"$4\"; cat \"$4\"");
  in.timeout_s = 30;
  std::set<int> skip;
  std::vector<int> blamed;
  int errors = 0;
  for (int pass = 0; pass < 3; ++pass) {
    Options o;
    std::string e;
    if (parse_options_skipping(static_cast<int>(argv.size()), argv.data(), o, e, skip, blamed, &in) < 0) break;
    ++errors;
    skip.insert(e.find(dir.file("c.conf") + ":1:") != std::string::npos ? 1 : 2);
  }
  EXPECT_EQ(errors, 2);
  EXPECT_EQ(slurp(dir.file("starts")), "read-config\n") << "one helper for every pass";
}

TEST(ConfigIo, TheDeadlineIsTheCommandLinesLoadTimeoutElseTenSeconds) {
  auto of = [](std::vector<std::string> args) {
    auto argv = argv_of(args);
    return command_line_load_timeout(static_cast<int>(argv.size()), argv.data());
  };
  EXPECT_EQ(of({"stemd"}), 10.0);
  EXPECT_EQ(of({"stemd", "--load-timeout", "2.5"}), 2.5);
  EXPECT_EQ(of({"stemd", "--load-timeout=3", "--backend", "null"}), 3.0);
  EXPECT_EQ(of({"stemd", "--load-timeout", "2", "--load-timeout", "4"}), 4.0);  // as CLI11 takes it: the last
  EXPECT_EQ(of({"stemd", "--load-timeout", "nan"}), 10.0);                      // refused by the parse
  EXPECT_EQ(of({"stemd", "--load-timeout", "0"}), 10.0);
  EXPECT_EQ(of({"stemd", "--load-timeout"}), 10.0);
}

}  // namespace
}  // namespace stemd::app
