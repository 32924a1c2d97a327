// ALSA device names and "device busy" diagnosis, from /proc/asound (no libasound call, no card
// needed: the unit tests give a fake /proc tree). [main] only.
//
//   alsa_portaudio_name("hw:CARD=DAC,DEV=0")  "(hw:1,0)" when card "DAC" is card 1: the part of
//                                             PortAudio's ALSA device name ("USB DAC: - (hw:1,0)")
//                                             that --device matches, so the stable ALSA names of
//                                             `aplay -L` work as --device
//   alsa_playback_holders()                   every open playback substream and the process that
//                                             holds it (owner_pid in .../pcmNp/subN/status)
//   alsa_busy_message(device, holders)        what to tell the user when the device is busy
#pragma once

#include <string>
#include <vector>

namespace stemd::audio {

struct AlsaHolder {
  int card = -1;
  std::string card_id;  // /proc/asound/cardN/id, e.g. "DAC"
  int device = -1;
  int subdevice = -1;
  long pid = -1;        // -1 when the kernel does not say (older kernels)
  std::string command;  // /proc/PID/comm, "" if unknown
};

// "hw:CARD=DAC,DEV=0", "plughw:CARD=DAC", "hw:1,0", "hw:1" → "(hw:N,M)" (M = 0 if absent);
// "" for anything else (a PCM name such as "default", or a card that is not there).
std::string alsa_portaudio_name(const std::string& device, const std::string& proc_root = "/proc");

// The other way: PortAudio's "USB DAC: USB Audio (hw:1,0)" → "hw:CARD=DAC,DEV=0", the name that
// stays the same across boots (card numbers follow the order devices are found in); "" when the
// name has no "(hw:N,M)" or card N has no id. --list-devices prints it beside each hw device.
std::string alsa_stable_name(const std::string& portaudio_name, const std::string& proc_root = "/proc");

// The card an ALSA device name points at (-1: none, or not an hw/plughw name).
int alsa_card_of(const std::string& device, const std::string& proc_root = "/proc");

std::vector<AlsaHolder> alsa_playback_holders(const std::string& proc_root = "/proc");

// "the ALSA device 'hw:CARD=DAC' is busy: card 1 'DAC' device 0 is held open by pid 812
// (pipewire)". Holders of other cards are left out when the device names a card.
std::string alsa_busy_message(const std::string& device, const std::vector<AlsaHolder>& holders,
                              const std::string& proc_root = "/proc");

}  // namespace stemd::audio
