// stemd: the daemon, and `stemd tune` (the buffer-size tuner). Everything they run lives in the
// stemd_core library.
#include "app/daemon.hpp"
#include "app/tune.hpp"

#include <cstring>

int main(int argc, char** argv) {
  if (argc > 1 && std::strcmp(argv[1], "tune") == 0) return stemd::app::run_tune(argc - 1, argv + 1);
  return stemd::app::run(argc, argv);
}
