// stemctl's commands: a table, one entry a command — its name and help line, the function that
// declares its arguments (CLI11) and the one that runs it. [stemctl's one thread]
#pragma once

#include "session.hpp"

#include <CLI/CLI.hpp>

#include <string>
#include <vector>

namespace stemd::ctl {

// Every command's arguments (CLI11 writes them; a command reads its own).
struct Args {
  int id = 0;
  std::string path, name, unit = "s", deck;
  double volume = 1.0, start = 0.0, fade = 0.0, position = 0.0, value = 0.0, ramp = 0.0, rate = 1.0;
  double interval = 0.25;
  int count = 0;
  bool loop = false, absolute = false, json = false, all = false;
  std::vector<std::string> eq;  // eq: BAND PERCENT or LOW MID HIGH
  std::vector<double> levels, tone;
  std::string curve;
  std::vector<std::string> words;  // send: everything after it, as typed (see split_send)
};

struct Command {
  const char* name;
  const char* description;                               // the line in stemctl --help
  void (*define)(CLI::App& sub, Args& a);                // its arguments, options and footer
  int (*run)(Session& s, Args& a, const CLI::App& sub);  // an exit code (kExit*)
};

// The table commands (commands_tables.cpp): list, voices and status.
void define_list(CLI::App& sub, Args& a);
int run_list(Session& s, Args& a, const CLI::App&);
void define_voices(CLI::App& sub, Args& a);
int run_voices(Session& s, Args& a, const CLI::App&);
void define_status(CLI::App& sub, Args& a);
int run_status(Session& s, Args& a, const CLI::App&);

// The voices and watch tables' POSITION and DURATION, in their --help (new-user pass 25).
inline constexpr const char* kFileSecondsNote =
    "POSITION and DURATION are file seconds: the file's own frames divided by its own sample rate,\n"
    "whatever the output's rate (a voice at rate 2 moves 2 file seconds a second of output).";

// In the order stemctl --help lists them.
const std::vector<Command>& commands();
// A refusal of `sub`'s arguments as CLI11 words it ("P: must be -1..1, got 5"), saying the
// argument's name instead of its help placeholder ("pan: must be -1..1, got 5"); else as it is.
std::string argument_error(const CLI::App& sub, const std::string& what);
// The words a positional stands for in its command's usage line ("[FREQ [LEVEL_DB [SECONDS]]]"),
// where CLI11's own ("[ARGS(0x)]", "LEVELS(1x)") would say nothing to a user; null: CLI11's.
const std::string* usage_text(const CLI::Option* positional);

}  // namespace stemd::ctl
