// stemctl: the command-line client of stemd's native OSC dialect.
//
//   stemctl load 1 drums.wav          stemctl play 1 --volume 0.8 --loop
//   stemctl status                    stemctl watch
//   stemctl send /stemd/volume i:1 f:0.5
//
// Every command sends one message and waits for its reply (/done or /fail whose first argument
// is the address sent; notifications arriving meanwhile are ignored). Exit codes: 0 /done,
// 1 /fail (reason on stderr) or a local error, 2 usage, 3 no reply (time-out or nothing
// listening). The only OSC code is control/osc.hpp's; sockets are control/net.hpp's.
//
// The commands are a table (commands.cpp); the connection and the exit codes are session.hpp's;
// watch and events are live.cpp's.
#include "commands.hpp"
#include "control/suggest.hpp"
#include "format_text.hpp"

#include <cstdio>
#include <memory>
#include <CLI/CLI.hpp>

namespace stemd::ctl {
namespace {

// The raw words of `send` (everything after it) go to `words`; returns how many of argv's
// entries CLI11 parses. Global options before `send` are skipped with their values.
int split_send(int argc, char** argv, std::vector<std::string>& words) {
  for (int i = 1; i < argc; ++i) {
    const std::string t = argv[i];
    if (t == "--host" || t == "-p" || t == "--port" || t == "-t" || t == "--timeout") {
      ++i;
      continue;
    }
    if (t.size() > 1 && t[0] == '-') continue;  // a flag, --opt=value or -p57120
    if (t != "send") return argc;
    words.assign(argv + i + 1, argv + argc);
    if (!words.empty() && (words[0] == "-h" || words[0] == "--help")) return i + 2;  // send's help
    return i + 1;
  }
  return argc;
}

// The command word: the first argument that is neither an option nor a global option's value.
std::string first_word(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    const std::string t = argv[i];
    if (t == "--host" || t == "-p" || t == "--port" || t == "-t" || t == "--timeout") {
      ++i;
      continue;
    }
    if (t.size() > 1 && t[0] == '-') continue;
    return t;
  }
  return {};
}

// An unknown command: say so, with the closest one (CLI11 would only say that one is required).
bool known_command(const CLI::App& app, const std::string& cmd) {
  control::ClosestWord near(cmd);
  bool known = false;
  for (const CLI::App* sub : app.get_subcommands({})) {
    known = known || sub->get_name() == cmd;
    near.consider(sub->get_name());
  }
  if (!known) {
    error_line("unknown command \"" + cmd + "\"" +
               (near.best().empty() ? std::string() : " (did you mean \"" + near.best() + "\"?)") +
               "; see 'stemctl --help'");
  }
  return known;
}

// Every command's usage line with its positionals' words (usage_text): "stemctl tone [OPTIONS]
// [FREQ [LEVEL_DB [SECONDS]]]", where CLI11 wrote "[ARGS(0x)]" (new-user pass 24).
class UsageFormatter : public CLI::Formatter {
 public:
  std::string make_option_usage(const CLI::Option* opt) const override {
    const std::string* text = usage_text(opt);
    return text != nullptr ? *text : CLI::Formatter::make_option_usage(opt);
  }
};

void add_global_options(CLI::App& app, ClientOptions& co, bool& quiet) {
  app.add_option("--host", co.host, "Where stemd listens: an IPv4/IPv6 address or a host name")
      ->envname("STEMD_HOST")
      ->capture_default_str();
  app.add_option("-p,--port", co.port, "stemd's OSC port (UDP, or TCP with --tcp)")
      ->envname("STEMD_PORT")
      ->check(CLI::Range(1, 65535))
      ->capture_default_str();
  app.add_option("-t,--timeout", co.timeout_s, "Seconds to wait for a reply")
      ->check(CLI::Range(0.001, 3600.0))
      ->capture_default_str();
  app.add_flag("--tcp", co.tcp, "Talk OSC 1.0 over TCP (stemd --osc-tcp-port) instead of UDP");
  app.add_flag("-q,--quiet", quiet, "Print nothing on success (tables and send replies still print)");
  // Handled before the command line is parsed (version_main): no command is needed with it.
  static bool version = false;  // the flag's place in --help and the completions; version_main acts on it
  app.add_flag("--version", version,
               "Print stemctl's version and, when stemd answers within 0.5 s (--timeout), the version of the daemon "
               "running (after a package upgrade: restart the service to run the new one)");
}

// `stemctl --version`: its own version and, when a daemon answers within a short time-out (0.5 s
// unless --timeout says), the daemon's with where it runs. An upgraded package gives a new
// stemctl while the old daemon plays on until the service restarts: stemctl's number alone made
// users believe the upgrade had taken effect (new-user pass 23, MEDIUM 5). No daemon: its own
// version only, exit 0.
int version_main(int argc, char** argv) {
  std::printf("stemctl %s\n", STEMD_VERSION);
  CLI::App app{"", "stemctl"};
  ClientOptions co;
  bool quiet = false;
  add_global_options(app, co, quiet);
  app.allow_extras();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError&) {
    return kExitOk;  // a bad --port or --host: the client's version is all there is to say
  }
  if (app.count("--timeout") == 0) co.timeout_s = 0.5;
  std::string error;
  bool gone = false;
  auto client = Client::open(co, error, gone);
  if (!client) return kExitOk;
  const Result r = client->request(msg("/stemd/status"));
  if (r.wait != Wait::kMessage || !r.done()) return kExitOk;
  const StatusFields f = status_fields(r.reply);
  const OscArg* v = find_field(f, "version");
  std::printf("%s on %s\n",
              v != nullptr ? detail::value_text(*v).c_str() : "stemd (a build older than its version key)",
              client->where().c_str());
  return kExitOk;
}

bool asks_version(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    if (std::string(argv[i]) == "--version") return true;
  }
  return false;
}

int stemctl_main(int argc, char** argv) {
  CLI::App app{"stemctl: control a running stemd over OSC (its native /stemd/ dialect).", "stemctl"};
  app.footer(
      "Each command waits for the daemon's reply. Exit status: 0 done, 1 refused by stemd (reason on\n"
      "stderr), 2 usage error, 3 no reply (stemd not running, wrong --host/--port, or time-out).\n"
      "Run 'stemctl COMMAND --help' for a command's options.\n"
      "Environment: STEMD_HOST and STEMD_PORT set --host and --port (as MPD_HOST/MPD_PORT for mpc);\n"
      "--host/--port on the command line win.");
  app.fallthrough();                                  // global options are accepted after the command too
  app.formatter(std::make_shared<UsageFormatter>());  // before the commands: they take the app's
  app.require_subcommand(1);

  ClientOptions co;
  bool quiet = false;
  add_global_options(app, co, quiet);
  Args a;
  std::vector<std::pair<const Command*, CLI::App*>> subs;
  for (const Command& c : commands()) {
    CLI::App* sub = app.add_subcommand(c.name, c.description);
    c.define(*sub, a);
    subs.emplace_back(&c, sub);
  }
  const int cli_argc = split_send(argc, argv, a.words);
  if (asks_version(cli_argc, argv)) return version_main(cli_argc, argv);
  if (const std::string cmd = first_word(argc, argv); !cmd.empty() && !known_command(app, cmd)) return kExitUsage;
  try {
    app.parse(cli_argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    // No command at all (`stemctl`, `stemctl --port 5`): the list of commands, not CLI11's "A
    // subcommand is required" (outside pass 20, user 5).
    if (dynamic_cast<const CLI::RequiredError*>(&e) != nullptr && app.get_subcommands().empty()) {
      std::fprintf(stderr, "%s\nstemctl: name a command (listed above)\n", app.help().c_str());
      return kExitUsage;
    }
    if (dynamic_cast<const CLI::ValidationError*>(&e) != nullptr) {
      for (const auto& [command, sub] : subs) {
        if (sub->parsed()) return app.exit(CLI::ValidationError(argument_error(*sub, e.what()))), kExitUsage;
      }
    }
    app.exit(e);
    return kExitUsage;
  }

  Session s(co, quiet);
  for (const auto& [command, sub] : subs) {
    if (sub->parsed()) return command->run(s, a, *sub);
  }
  return kExitUsage;
}

}  // namespace
}  // namespace stemd::ctl

int main(int argc, char** argv) { return stemd::ctl::stemctl_main(argc, argv); }
