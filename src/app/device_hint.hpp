// What `stemd --list-devices` adds when PortAudio has no output device (device_hint.cpp): where it
// looked and what to check. [main] thread only.
#pragma once

#include "audio/backend.hpp"

#include <string>
#include <vector>

namespace stemd::app {

// The host APIs PortAudio looked at, then what to check on this machine: a sound card (/dev/snd),
// a JACK or PipeWire server for this user, membership of group audio, and --backend null.
std::string no_device_hint(const std::vector<audio::HostApiInfo>& apis);

}  // namespace stemd::app
