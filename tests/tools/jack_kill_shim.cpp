// The JACK server killed at the exact moment stemd registers its output port: an LD_PRELOAD
// library for tests/integration/jack_device_kill_in_open.sh. A JACK server that dies between
// the probe helper's check and stemd's own open (Pa_OpenStream registering stemd:out_0) made
// PortAudio 19.6 abort the daemon (pa_jack.c CleanUpStream or Terminate, `assert(err == 0)`);
// a loop of kills hits that window 2 times in 3 (outside pass 29, loss29), this hits it every
// time.
//
// STEMD_KILL_SHIM_FILE names a file of "PID [PORT]". When jack_port_register is called (for the
// port named PORT, or any port without one) and the file is there, the file is removed (one kill
// per file), PID gets SIGKILL (a pulled USB interface, as scripts/testbed.sh's testbed_kill_jackd),
// and once it is dead (gone, or a zombie of the test script) the real jack_port_register runs.
// Without the file the call goes straight through. PortAudio registers out_0, then out_1: killed
// at out_1, its clean-up unregisters out_0 and asserts at once (pa_jack.c CleanUpStream); at
// out_0, the failed open's Pa_Terminate asserts (pa_jack.c Terminate, at stemd's next open).
#include <dlfcn.h>
#include <jack/jack.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <unistd.h>

namespace {

// Dead: no /proc/PID, or its state is Z (the test script reaps it later).
bool dead(long pid) {
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%ld/stat", pid);
  std::FILE* f = std::fopen(path, "r");
  if (f == nullptr) return true;
  char buf[512] = {};
  const std::size_t n = std::fread(buf, 1, sizeof buf - 1, f);
  std::fclose(f);
  buf[n] = '\0';
  const char* close = std::strrchr(buf, ')');
  return close != nullptr && close[1] == ' ' && (close[2] == 'Z' || close[2] == 'X');
}

void kill_server_if_asked(const char* port_name) {
  const char* file = std::getenv("STEMD_KILL_SHIM_FILE");
  if (file == nullptr || *file == '\0') return;
  std::FILE* f = std::fopen(file, "r");
  if (f == nullptr) return;
  long pid = 0;
  char port[64] = {};
  const int got = std::fscanf(f, "%ld %63s", &pid, port);
  std::fclose(f);
  const bool read = got >= 1;
  if (got == 2 && (port_name == nullptr || std::strcmp(port, port_name) != 0)) return;  // not this port
  std::remove(file);
  if (!read || pid <= 1) return;
  if (::kill(static_cast<pid_t>(pid), SIGKILL) != 0) {
    std::fprintf(stderr, "jack_kill_shim: cannot kill %ld: %s\n", pid, std::strerror(errno));
    return;
  }
  for (int i = 0; i < 200 && !dead(pid); ++i) {  // at most 2 s
    timespec ten_ms{0, 10'000'000L};
    nanosleep(&ten_ms, nullptr);
  }
  std::fprintf(stderr, "jack_kill_shim: the JACK server (pid %ld) killed as jack_port_register(%s) was called%s\n", pid,
               port_name != nullptr ? port_name : "", dead(pid) ? "" : " (still not dead after 2 s)");
}

}  // namespace

extern "C" jack_port_t* jack_port_register(jack_client_t* client, const char* port_name, const char* port_type,
                                           unsigned long flags, unsigned long buffer_size) {
  using Fn = jack_port_t* (*)(jack_client_t*, const char*, const char*, unsigned long, unsigned long);
  static Fn real = reinterpret_cast<Fn>(dlsym(RTLD_NEXT, "jack_port_register"));
  kill_server_if_asked(port_name);
  return real == nullptr ? nullptr : real(client, port_name, port_type, flags, buffer_size);
}
