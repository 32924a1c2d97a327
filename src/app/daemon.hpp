// stemd's entry point, kept out of main.cpp so tests can run the daemon in-process.
#pragma once

namespace stemd::app {

// Runs the daemon with these arguments; returns the process exit code.
int run(int argc, char** argv);

}  // namespace stemd::app
