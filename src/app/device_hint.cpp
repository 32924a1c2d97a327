// `stemd --list-devices` without an output device: where PortAudio looked, what to check (see
// device_hint.hpp).
#include "device_hint.hpp"

#include <cstdlib>
#include <string>
#include <vector>

#include <dirent.h>
#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

namespace stemd::app {

namespace {

// ALSA playback devices (/dev/snd/pcmC*D*p); -1 when /dev/snd is missing or cannot be read.
int alsa_playback_nodes() {
  DIR* d = ::opendir("/dev/snd");
  if (d == nullptr) return -1;
  int n = 0;
  while (const dirent* e = ::readdir(d)) {
    const std::string name = e->d_name;
    if (name.rfind("pcmC", 0) == 0 && name.back() == 'p') ++n;
  }
  ::closedir(d);
  return n;
}

std::string user_name() {
  const passwd* pw = ::getpwuid(::geteuid());
  return pw != nullptr ? pw->pw_name : "uid " + std::to_string(::geteuid());
}

// Whether this process has group `name` (its primary or a supplementary group).
bool in_group(const char* name) {
  const group* g = ::getgrnam(name);
  if (g == nullptr) return false;
  if (::getegid() == g->gr_gid) return true;
  std::vector<gid_t> groups(static_cast<std::size_t>(std::max(0, ::getgroups(0, nullptr))));
  const int n = ::getgroups(static_cast<int>(groups.size()), groups.data());
  for (int i = 0; i < n; ++i) {
    if (groups[static_cast<std::size_t>(i)] == g->gr_gid) return true;
  }
  return false;
}

// A PipeWire server's socket for this user ($XDG_RUNTIME_DIR/pipewire-0).
bool pipewire_socket() {
  const char* dir = std::getenv("XDG_RUNTIME_DIR");
  struct stat st {};
  return dir != nullptr && *dir != '\0' && ::stat((std::string(dir) + "/pipewire-0").c_str(), &st) == 0;
}

}  // namespace

std::string no_device_hint(const std::vector<audio::HostApiInfo>& apis) {
  std::string looked;
  bool jack = false;
  for (const auto& a : apis) {
    looked += (looked.empty() ? "" : ", ") + a.name + " (" + std::to_string(a.output_devices) + " output device" +
              (a.output_devices == 1 ? "" : "s") + ")";
    jack = jack || a.name.find("JACK") != std::string::npos;
  }
  const std::string user = user_name();
  std::string out = "PortAudio looked at: " + (looked.empty() ? std::string("no host API") : looked) + ".\n";
  if (!jack) out += "No JACK server answered for user " + user + " (PortAudio lists JACK only while one runs).\n";
  out += "Check:\n";
  const int nodes = alsa_playback_nodes();
  out += nodes < 0    ? "  - a sound card: there is no /dev/snd (no card, or its driver is not loaded; `aplay -l`)\n"
         : nodes == 0 ? "  - a sound card: /dev/snd has no playback device (`aplay -l` lists the cards ALSA sees)\n"
                      : "  - a sound card: /dev/snd has " + std::to_string(nodes) +
                            " playback device(s) PortAudio could not open: busy, or not this user's (`aplay -l`)\n";
  out += "  - is JACK or PipeWire running for this user (" + user +
         ")? `jack_lsp`, `systemctl --user status pipewire`; a desktop session's server is not there for a "
         "system service or over ssh";
  out += pipewire_socket() ? " (a PipeWire socket is there: try --device pipewire, with pipewire-alsa)\n" : "\n";
  if (::geteuid() == 0) {
    out += "  - group audio: not needed as root\n";
  } else {
    out += in_group("audio")
               ? "  - group audio: " + user + " is in it\n"
               : "  - group audio: " + user + " is not in it, and /dev/snd is the group's (sudo usermod -aG audio " +
                     user + ", then log in again)\n";
  }
  out += "  - to run without sound: --backend null (real-time paced, nothing heard) or --render-to FILE\n";
  return out;
}

}  // namespace stemd::app
