// stemd --check-config [main]: the command line and the config file parsed as a start parses
// them (parse_options), then what a start would refuse or warn about that can be known without
// opening the device or binding a port. One line per problem, then a verdict; exit 0 when a
// start would run, 2 when it would not (a start exits 2 for the same problems, or 1 for a
// --play file it cannot load).
#include "options_check.hpp"

#include "audio/backend.hpp"
#include "config_io.hpp"
#include "control/media_policy.hpp"
#include "control/net.hpp"
#include "daemon_run.hpp"
#include "io/fd_budget.hpp"
#include "options_internal.hpp"
#include "script.hpp"
#include "state.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <sys/stat.h>
#include <unistd.h>

namespace stemd::app {

namespace {

// The line of a config-file problem ("FILE:LINE: …"), or 0.
int config_line(const std::string& msg, const std::string& path) {
  if (path.empty() || msg.rfind(path + ":", 0) != 0) return 0;
  std::size_t at = path.size() + 1;
  int line = 0;
  while (at < msg.size() && msg[at] >= '0' && msg[at] <= '9') line = line * 10 + (msg[at++] - '0');
  return at < msg.size() && msg[at] == ':' ? line : 0;
}

class Checker {
 public:
  Checker(int argc, char** argv, const Options& o) : argc_(argc), argv_(argv), o_(o) {}

  // Where a setting came from, as a problem's start: "FILE:LINE: key 'k': " when the config file
  // set it and the command line did not, else "" (the message names the flag).
  // `line`: the config line of this one value of a list key (play), not the key's last line.
  std::string where(const std::string& key, int line = 0) const {
    const auto it = o_.config_lines.find(key);
    if (it == o_.config_lines.end() || options_detail::on_command_line(argc_, argv_, key)) return {};
    return o_.config_path + ":" + std::to_string(line != 0 ? line : it->second) + ": key '" + key + "': ";
  }
  void error(const std::string& key, const std::string& msg, int line = 0) { add('E', errors, where(key, line) + msg); }
  void warn(const std::string& key, const std::string& msg) { add('W', warnings, where(key) + msg); }
  // In the file checks' child process (run_file_checks): each problem, and the file each step is
  // about to touch, go to the parent at once — a step that hangs leaves what came before.
  int report_fd = -1;
  void step(const std::string& what) { add('S', steps, what); }

  void check_network();
  void check_descriptors();
  void check_files();
  void check_web_root();
  void check_state_file();

  std::vector<std::string> errors, warnings, steps;

 private:
  void add(char kind, std::vector<std::string>& to, const std::string& line) {
    to.push_back(line);
    if (report_fd < 0) return;
    const std::string record = kind + line + '\0';
    for (std::size_t at = 0; at < record.size();) {
      const ssize_t n = ::write(report_fd, record.data() + at, record.size() - at);
      if (n <= 0 && errno != EINTR) break;
      if (n > 0) at += static_cast<std::size_t>(n);
    }
  }
  bool loopback(const std::string& bind) const {
    std::string e;
    const auto at = control::parse_endpoint(bind, 0, e);
    return at && at->is_loopback();
  }
  void check_input(const control::MediaPolicy& media, const std::string& flag, const std::string& path, int line = 0);

  int argc_;
  char** argv_;
  const Options& o_;
};

// --max-sources streamed sources against the open-file limit a start would have (the soft limit
// raised to the hard one, at most io::kMaxNofile), the reserve (fd_budget.hpp) and about what a
// start holds before its first load (≈ 20 descriptors on the null backend; more with a device).
void Checker::check_descriptors() {
  constexpr std::int64_t kOwn = 32;
  const auto limit = static_cast<std::int64_t>(std::min<std::uint64_t>(io::nofile_after_raise(), INT64_MAX));
  const std::size_t tcp = !o_.no_osc && o_.osc_tcp_port >= 0 ? o_.max_tcp_clients : 0;
  const std::int64_t reserve = io::fd_reserve(limit, tcp, o_.http_port >= 0 ? o_.http_max_clients : 0, o_.link);
  const std::int64_t fit = limit - reserve - kOwn;
  if (fit >= static_cast<std::int64_t>(o_.max_sources)) return;
  warn("max-sources",
       fmt::format("the open-file limit here is {} (a service's is its unit's LimitNOFILE; stemd raises the soft "
                   "limit to the hard one, at most {}): --max-sources {} streamed sources do not fit — about {} do "
                   "(a reserve of {} is kept for clients, the device and helpers, ≈ {} are stemd's own) and streamed "
                   "loads past that are refused; raise LimitNOFILE or nofile in limits.conf, or lower --max-sources",
                   limit, io::kMaxNofile, o_.max_sources, std::max<std::int64_t>(0, fit), reserve, kOwn));
}

// The OSC socket, the web monitor and the allow-lists, as OscServer::open, WebServer::open and
// the router would see them (nothing is bound).
void Checker::check_network() {
  std::string e, interface;
  if (!o_.no_osc) {
    if (!control::parse_endpoint(o_.osc_bind, o_.osc_port, e, &interface)) {
      error("osc-bind", "--osc-bind " + o_.osc_bind + ": " + e);
    } else if (o_.allow.empty() && !loopback(o_.osc_bind)) {
      error("osc-bind", "--allow is required when --osc-bind is not a loopback address (e.g. --allow 192.168.1.0/24)");
    }
    if (!interface.empty()) {  // a late interface is waited for, as a late address is
      warn("osc-bind", "--osc-bind " + o_.osc_bind + ": no network interface \"" + interface +
                           "\" yet: a start waits for it and binds OSC once it appears (`ip -brief link` lists them)");
    }
  }
  if (control::AllowList allow; !o_.allow.empty() && !allow.parse(o_.allow, e)) {
    error("allow", "--allow: " + e);
  } else if (!o_.no_osc && !o_.allow.empty() && loopback(o_.osc_bind)) {
    const auto at = control::parse_endpoint(o_.osc_bind, o_.osc_port, e);
    if (at && !allow.allows(*at)) {
      warn("allow", "--allow " + o_.allow + " does not take this machine while OSC listens on loopback (--osc-bind " +
                        o_.osc_bind + "): no client can reach it, stemctl neither");
    }
  }
  if (control::AllowList exempt; o_.cookie_exempt != "none" && !exempt.parse(o_.cookie_exempt, e)) {
    error("cookie-exempt", "--cookie-exempt: " + e);
  }
  if (o_.http_port >= 0) {
    if (!control::parse_endpoint(o_.http_bind, 0, e, &interface)) {
      error("http-bind", "--http-bind " + o_.http_bind + ": " + e);
    } else if (o_.allow.empty() && !loopback(o_.http_bind)) {
      error("http-bind", "--http-bind " + o_.http_bind + " is not loopback: give --allow (who may connect)");
    }
    if (!interface.empty()) {  // waited for at a start, as OSC's is
      warn("http-bind", "--http-bind " + o_.http_bind + ": no network interface \"" + interface +
                            "\" yet: a start waits for it and opens the web monitor once it appears");
    }
    std::string root = o_.web_root;
    if (root.empty() && !installed_web_root(root, e)) error("http-port", e);
  } else if (!o_.http_hosts.empty()) {
    warn("http-host", "--http-host is given but the web monitor is off (no --http-port): it has no effect");
  }
}

// A file given to play at start, opened as the router opens it (under the media root).
// A relative one from the config file was made the media root's by the parse; one from the
// command line is the working directory's (as a start opens it: start_flags.cpp).
void Checker::check_input(const control::MediaPolicy& media, const std::string& flag, const std::string& path,
                          int line) {
  step("--" + flag + " " + path);
  std::error_code ec;
  const std::filesystem::path p = std::filesystem::absolute(path, ec);
  std::string opened, e;
  const int fd = media.open(ec ? path : p.string(), opened, e);
  struct stat st {};
  if (fd < 0) {
    e += relative_flag_hint("--" + flag, path, o_.media_root, e);
    error(flag, "--" + flag + " " + path + ": " + e + " (a start would exit 1)", line);
  } else if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    error(flag, "--" + flag + " " + path + ": not a regular file (a start would exit 1)", line);
  }
  if (fd >= 0) ::close(fd);
}

// The media root, the files played at start, the script, the render target.
void Checker::check_files() {
  const bool reachable = (!o_.no_osc && !loopback(o_.osc_bind)) || (o_.http_port >= 0 && !loopback(o_.http_bind));
  control::MediaPolicy media;
  std::string e;
  step("--media-root " + (o_.media_root.empty() ? std::string("(none)") : o_.media_root));
  if (!media.configure(o_.media_root, !reachable, e)) {
    error("media-root", e);
    return;  // the files to play are opened under it
  }
  if (std::string why; !media.present(&why)) {
    warn("media-root", "--media-root " + media.root() + ": " + why +
                           " — a start goes ahead and refuses loads until it is there (a disk mounted later?)");
  }
  if (reachable && o_.media_root.empty()) {
    warn("osc-bind",
         "loading files is disabled: OSC or the web monitor is reachable from the network and no --media-root is set");
  }
  for (std::size_t i = 0; i < o_.play.size(); ++i) {
    check_input(media, "play", o_.play[i], i < o_.play_lines.size() ? o_.play_lines[i] : 0);
  }
  static const char* const kDecks[4] = {"a", "b", "c", "d"};
  for (int d = 0; d < 4; ++d) {
    if (!o_.deck_files[d].empty()) check_input(media, kDecks[d], o_.deck_files[d]);
  }
  if (!o_.c_preload.empty()) check_input(media, "c_preload", o_.c_preload);
  if (!o_.script.empty()) step("--script " + o_.script);
  if (std::vector<ScriptLine> lines; !o_.script.empty() && !load_script(o_.script, lines, e)) {
    error("script", "--script " + e);
  }
  if (o_.backend != "render") {
    if (!o_.device.empty() && o_.backend == "null") {
      warn("device", "--device '" + o_.device + "' is ignored: the null backend has no device");
    }
    return;
  }
  step("--render-to " + o_.render_to);
  std::vector<std::string> inputs = o_.play;
  inputs.insert(inputs.end(), std::begin(o_.deck_files), std::end(o_.deck_files));
  inputs.push_back(o_.script);
  inputs.push_back(o_.config_path);
  if (!audio::render_target_is_free(o_.render_to, inputs, e)) error("render-to", e);
  const std::filesystem::path dir = std::filesystem::path(o_.render_to).parent_path();
  const std::string d = dir.empty() ? "." : dir.string();
  if (::access(d.c_str(), W_OK | X_OK) != 0) {
    error("render-to", "--render-to " + o_.render_to + ": cannot write in " + d + ": " + std::strerror(errno));
  }
  if (o_.duration <= 0 && !o_.script.empty()) error("script", "--render-to with --script needs --duration");
  if (o_.duration <= 0 && o_.loop && !o_.play.empty()) error("loop", "--render-to with --loop needs --duration");
}

// --http-port: the page a start would serve (--web-root, else the installed one), read as a start
// reads it.
void Checker::check_web_root() {
  if (o_.http_port < 0) return;
  std::string root = o_.web_root, e;
  if (root.empty() && !installed_web_root(root, e)) return;  // check_network's error
  step("--web-root " + root);
  const ConfigRead page = read_page_dir(root, "--web-root", web::kMaxPageBytes, web::page_types(), ConfigInput{});
  if (page.kind != ConfigRead::Kind::kOk) error("web-root", page.error + " (a start would exit 2)");
}

// --state-file: a start runs whatever it finds there, so these are warnings — but a state that
// cannot be saved is lost at the next restart.
void Checker::check_state_file() {
  if (o_.state_file.empty()) return;
  step("--state-file " + o_.state_file);
  const std::filesystem::path dir = std::filesystem::path(o_.state_file).parent_path();
  const std::string d = dir.empty() ? "." : dir.string();
  if (::access(d.c_str(), W_OK | X_OK) != 0) {
    warn("state-file", "--state-file " + o_.state_file + ": this user cannot write in " + d + " (" +
                           std::strerror(errno) + "): a start runs, but the state is not saved");
  }
  std::vector<StateMessage> msgs;
  std::string e;
  if (read_state_file(o_.state_file, msgs, e, state_bytes_bound(o_.max_sources, o_.max_string)) == StateRead::kBad) {
    warn("state-file", "--state-file: " + e + ": a start sets it aside (.bad) and starts empty");
  }
}

// Before, the checks of the files ran here: a --play file or the state file on a file system
// that did not answer (a hung NFS share, a USB bridge) held --check-config — the unit's
// ExecStartPre — in the kernel for good. Now in a child process, given up on after `seconds`
// (--load-timeout): a process stuck there holds only itself. The step it hung in is a problem
// (a start would wait for that file as long, then refuse it), the state file's a warning (a
// start runs without restoring it).
void run_file_checks(Checker& c, double seconds) {
  std::fflush(nullptr);  // nothing buffered twice
  int p[2];
  const pid_t pid = ::pipe2(p, O_CLOEXEC) == 0 ? ::fork() : -1;
  if (pid == 0) {
    ::close(p[0]);
    c.report_fd = p[1];
    c.check_files();
    c.check_web_root();
    c.check_state_file();
    _exit(0);
  }
  if (pid < 0) {  // no child: here, as before
    c.check_files();
    c.check_web_root();
    c.check_state_file();
    return;
  }
  ::close(p[1]);
  std::string got;
  const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  bool ended = false;
  while (!ended) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - std::chrono::steady_clock::now());
    if (left.count() <= 0) break;
    pollfd pfd{p[0], POLLIN, 0};
    if (::poll(&pfd, 1, static_cast<int>(left.count())) <= 0) continue;
    char buf[4096];
    const ssize_t n = ::read(p[0], buf, sizeof buf);
    if (n > 0) got.append(buf, static_cast<std::size_t>(n));
    ended = n == 0 || (n < 0 && errno != EINTR);
  }
  ::close(p[0]);
  std::string last;
  for (std::size_t at = 0, end; (end = got.find('\0', at)) != std::string::npos; at = end + 1) {
    const std::string line = got.substr(at + 1, end - at - 1);
    (got[at] == 'E' ? c.errors : got[at] == 'W' ? c.warnings : c.steps).push_back(line);
    if (got[at] == 'S') last = line;
  }
  if (ended) {
    int st = 0;
    if (::waitpid(pid, &st, 0) == pid && !(WIFEXITED(st) && WEXITSTATUS(st) == 0)) {
      c.errors.push_back(
          (last.empty() ? std::string("the file checks") : last) + ": the check ended early (" +
          (WIFSIGNALED(st) ? std::string(strsignal(WTERMSIG(st))) : "exit " + std::to_string(WEXITSTATUS(st))) + ")");
    }
    return;
  }
  ::kill(pid, SIGKILL);  // it dies when the file system answers; nothing waits for it
  const std::string why = fmt::format(
      "{}: did not answer within {:g} s (--load-timeout; its file system hung?) — "
      "the checks after it were not made",
      last.empty() ? "the files" : last, seconds);
  if (last.rfind("--state-file ", 0) == 0) {
    c.warnings.push_back(why + "; a start runs without restoring the state and does not write it");
  } else {
    c.errors.push_back(why + "; a start would wait on it too (a file to play: refused after --load-timeout)");
  }
}

}  // namespace

bool wants_check_config(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--") break;
    if (a == "--check-config" || a == "--check-config=true" || a == "--check-config=1") return true;
  }
  return false;
}

int check_config(int argc, char** argv) {
  std::vector<std::string> errors;
  std::set<int> skip;  // config lines reported: read as comments by the next parse
  // The command line, less the arguments reported (a bad value, an unknown flag): CLI11 stops at
  // the first, so each is dropped and the next parse finds the next.
  std::vector<char*> args(argv, argv + argc);
  Options o;
  bool parsed = false;
  // The config file is read once, by the helper process, given up on after --load-timeout (the
  // command line's, else 10 s): every pass parses that text (the unit's ExecStartPre must end).
  int stop = 0;
  ConfigInput config = start_config_input(argc, argv, stop);
  for (int pass = 0; pass < 200; ++pass) {
    o = Options{};
    std::string e;
    std::vector<int> blamed;
    const int rc = parse_options_skipping(static_cast<int>(args.size()), args.data(), o, e, skip, blamed, &config);
    if (stop != 0) die_of(stop);
    if (rc == 0) return 0;  // --help, --version
    if (rc < 0) {
      parsed = true;
      break;
    }
    errors.push_back(e);
    if (const int line = config_line(e, o.config_path); line != 0) {
      if (!skip.insert(line).second) break;
    } else if (blamed.empty()) {
      break;  // neither a line of the file nor an argument that can be left out: the parse ends here
    } else {
      for (auto it = blamed.rbegin(); it != blamed.rend(); ++it) args.erase(args.begin() + *it);
    }
  }
  std::printf("stemd --check-config: %s\n", o.config_source.c_str());
  Checker c(static_cast<int>(args.size()), args.data(), o);
  if (parsed) {  // the settings as a start would have them (without the lines reported above)
    c.warnings = o.config_warnings;
    c.check_network();
    c.check_descriptors();
    run_file_checks(c, o.load_timeout);
  }
  errors.insert(errors.end(), c.errors.begin(), c.errors.end());
  // In the file's order, as a reader goes through it (the syntax problems were found first);
  // the command line's before it.
  auto by_line = [&](const std::string& a, const std::string& b) {
    return config_line(a, o.config_path) < config_line(b, o.config_path);
  };
  std::stable_sort(errors.begin(), errors.end(), by_line);
  std::stable_sort(c.warnings.begin(), c.warnings.end(), by_line);
  for (const auto& e : errors) std::printf("%s\n", e.c_str());
  for (const auto& w : c.warnings) std::printf("warning: %s\n", w.c_str());
  auto count = [](std::size_t n, const char* what) { return std::to_string(n) + " " + what + (n == 1 ? "" : "s"); };
  const std::string warned = c.warnings.empty() ? "" : count(c.warnings.size(), "warning");
  if (errors.empty()) {
    std::printf("stemd --check-config: OK%s: a start would run (the device and the ports were not tried)\n",
                warned.empty() ? "" : (", " + warned).c_str());
    return 0;
  }
  std::printf("stemd --check-config: %s%s: a start with this configuration would not run%s\n",
              count(errors.size(), "problem").c_str(), warned.empty() ? "" : (", " + warned).c_str(),
              parsed ? "" : " (files and addresses are checked once the settings parse)");
  return 2;
}

}  // namespace stemd::app
