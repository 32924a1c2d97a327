// stemd: the daemon, and `stemd tune` (the buffer-size tuner). Everything they run lives in the
// stemd_core library.
#include "app/daemon.hpp"
#include "app/state_io.hpp"
#include "app/tune.hpp"

#include <csignal>
#include <cstring>

int main(int argc, char** argv) {
  // A write to a pipe or socket whose reader has gone (stdout/stderr piped into a process that
  // exited, a TCP client that vanished) must be an EPIPE error, not the end of the daemon.
  // Set before any thread starts, so every thread inherits it.
  struct sigaction ignore {};
  ignore.sa_handler = SIG_IGN;
  sigemptyset(&ignore.sa_mask);
  sigaction(SIGPIPE, &ignore, nullptr);
  // SIGCHLD at its default whatever was inherited (a launcher, `trap '' CHLD`): ignored, the kernel
  // reaps the state file's helper processes and waitpid() cannot tell how they ended.
  struct sigaction child {};
  child.sa_handler = SIG_DFL;
  sigemptyset(&child.sa_mask);
  sigaction(SIGCHLD, &child, nullptr);
  // The state file's helper process (state_io.hpp): stemd runs itself to read or write the file
  // where a file system that stops answering holds only the helper.
  if (argc > 1 && std::strcmp(argv[1], stemd::app::kStateIoFlag) == 0)
    return stemd::app::state_io_main(argc - 1, argv + 1);
  if (argc > 1 && std::strcmp(argv[1], "tune") == 0) return stemd::app::run_tune(argc - 1, argv + 1);
  return stemd::app::run(argc, argv);
}
