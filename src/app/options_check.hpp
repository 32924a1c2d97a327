// stemd --check-config (options_check.cpp): the command line and the config file checked as a
// start would read them, without opening the device or binding a port. [main] thread only.
#pragma once

namespace stemd::app {

// True when argv asks for --check-config (before a "--").
bool wants_check_config(int argc, char** argv);
// Parses argv and the config file as parse_options does — every problem of the file, not only
// the first: a bad line is reported and read as a comment by the next parse — then checks what a
// start would refuse (media root, files to play, script, render target, addresses, allow-lists,
// the web page) or warn about (--state-file's directory, a state file it cannot read). Prints
// the config source, one line per problem (FILE:LINE: where a key of the file is the cause) and
// a verdict on stdout. Returns 0 when a start would run, 2 when it would not (0 after --help).
int check_config(int argc, char** argv);

}  // namespace stemd::app
