// ALSA device names and the "device busy" diagnosis, read from /proc/asound (see the header).
#include "audio/alsa_devices.hpp"

#include <cctype>
#include <filesystem>
#include <fstream>
#include <string_view>

namespace stemd::audio {

namespace {

constexpr int kMaxCards = 32;  // SNDRV_CARDS

std::string read_first_line(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  if (in) std::getline(in, line);
  while (!line.empty() && std::isspace(static_cast<unsigned char>(line.back()))) line.pop_back();
  return line;
}

bool all_digits(std::string_view s) {
  if (s.empty() || s.size() > 3) return false;
  for (char c : s) {
    if (!std::isdigit(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

std::string card_id(int card, const std::string& proc_root) {
  return read_first_line(proc_root + "/asound/card" + std::to_string(card) + "/id");
}

// "hw:CARD=DAC,DEV=0" → card "DAC", device "0"; "hw:1,0" → "1", "0"; false if not hw/plughw.
bool split_hw(const std::string& name, std::string& card, std::string& device) {
  std::string_view rest(name);
  if (rest.substr(0, 3) == "hw:") {
    rest.remove_prefix(3);
  } else if (rest.substr(0, 7) == "plughw:") {
    rest.remove_prefix(7);
  } else {
    return false;
  }
  const auto comma = rest.find(',');
  std::string_view first = rest.substr(0, comma);
  std::string_view second = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
  if (first.substr(0, 5) == "CARD=") first.remove_prefix(5);
  if (second.substr(0, 4) == "DEV=") second.remove_prefix(4);
  second = second.substr(0, second.find(','));  // SUBDEV=… is not part of PortAudio's name
  card = std::string(first);
  device = second.empty() ? "0" : std::string(second);
  return !card.empty() && all_digits(device);
}

int resolve_card(const std::string& card, const std::string& proc_root) {
  if (all_digits(card)) {
    const int n = std::stoi(card);
    return std::filesystem::exists(proc_root + "/asound/card" + card) ? n : -1;
  }
  for (int n = 0; n < kMaxCards; ++n) {
    if (card_id(n, proc_root) == card) return n;
  }
  return -1;
}

// "owner_pid   : 812" in a substream's status file (kernel ≥ 2.6.x prints it while open).
long owner_pid(const std::string& status_path, bool& open) {
  std::ifstream in(status_path);
  std::string line;
  open = false;
  long pid = -1;
  while (std::getline(in, line)) {
    if (line.rfind("closed", 0) == 0) return -1;
    open = true;
    if (line.rfind("owner_pid", 0) == 0) {
      const auto colon = line.find(':');
      if (colon != std::string::npos) pid = std::strtol(line.c_str() + colon + 1, nullptr, 10);
    }
  }
  return pid;
}

}  // namespace

int alsa_card_of(const std::string& device, const std::string& proc_root) {
  std::string card, dev;
  if (!split_hw(device, card, dev)) return -1;
  return resolve_card(card, proc_root);
}

std::string alsa_portaudio_name(const std::string& device, const std::string& proc_root) {
  std::string card, dev;
  if (!split_hw(device, card, dev)) return {};
  const int n = resolve_card(card, proc_root);
  if (n < 0) return {};
  return "(hw:" + std::to_string(n) + "," + dev + ")";
}

std::string alsa_stable_name(const std::string& portaudio_name, const std::string& proc_root) {
  const auto open = portaudio_name.rfind("(hw:");
  if (open == std::string::npos || portaudio_name.back() != ')') return {};
  const std::string inner = portaudio_name.substr(open + 4, portaudio_name.size() - open - 5);  // "1,0"
  const auto comma = inner.find(',');
  if (comma == std::string::npos) return {};
  const std::string card = inner.substr(0, comma), dev = inner.substr(comma + 1);
  if (!all_digits(card) || !all_digits(dev)) return {};
  const std::string id = card_id(std::stoi(card), proc_root);
  if (id.empty()) return {};
  return "hw:CARD=" + id + ",DEV=" + dev;
}

std::vector<AlsaHolder> alsa_playback_holders(const std::string& proc_root) {
  namespace fs = std::filesystem;
  std::vector<AlsaHolder> out;
  std::error_code ec;
  for (int n = 0; n < kMaxCards; ++n) {
    const fs::path card_dir = proc_root + "/asound/card" + std::to_string(n);
    if (!fs::is_directory(card_dir, ec)) continue;
    for (const auto& pcm : fs::directory_iterator(card_dir, ec)) {
      const std::string pname = pcm.path().filename().string();  // pcm0p (playback), pcm0c
      if (pname.size() < 5 || pname.rfind("pcm", 0) != 0 || pname.back() != 'p') continue;
      const std::string dev_digits = pname.substr(3, pname.size() - 4);
      if (!all_digits(dev_digits)) continue;
      for (const auto& sub : fs::directory_iterator(pcm.path(), ec)) {
        const std::string sname = sub.path().filename().string();  // sub0
        if (sname.rfind("sub", 0) != 0 || !all_digits(sname.substr(3))) continue;
        bool open = false;
        const long pid = owner_pid((sub.path() / "status").string(), open);
        if (!open) continue;
        AlsaHolder h;
        h.card = n;
        h.card_id = card_id(n, proc_root);
        h.device = std::stoi(dev_digits);
        h.subdevice = std::stoi(sname.substr(3));
        h.pid = pid;
        if (pid > 0) h.command = read_first_line(proc_root + "/" + std::to_string(pid) + "/comm");
        out.push_back(std::move(h));
      }
    }
  }
  return out;
}

std::string alsa_busy_message(const std::string& device, const std::vector<AlsaHolder>& holders,
                              const std::string& proc_root) {
  const int card = alsa_card_of(device, proc_root);
  std::string who;
  for (const auto& h : holders) {
    if (card >= 0 && h.card != card) continue;
    if (!who.empty()) who += "; ";
    who += "card " + std::to_string(h.card) + " '" + h.card_id + "' device " + std::to_string(h.device) +
           " is held open by ";
    if (h.pid > 0) {
      who += "pid " + std::to_string(h.pid) + " (" + (h.command.empty() ? "?" : h.command) + ")";
    } else {
      who += "a process the kernel does not name";
    }
  }
  std::string msg = "the ALSA device '" + device + "' is busy (another program has it open)";
  if (who.empty()) {
    msg += card >= 0 ? ", but /proc/asound shows no open playback on card " + std::to_string(card)
                     : ", and /proc/asound shows no open playback";
    msg += " (look with: fuser -v /dev/snd/*)";
  } else {
    msg += ": " + who;
  }
  msg += ". Stop that program, or play through it (e.g. --device pipewire, or JACK)";
  return msg;
}

}  // namespace stemd::audio
