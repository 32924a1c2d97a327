// stemd: the daemon. Everything it runs lives in the stemd_core library.
#include "app/daemon.hpp"

int main(int argc, char** argv) { return stemd::app::run(argc, argv); }
