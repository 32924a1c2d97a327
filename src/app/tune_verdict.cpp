// `stemd tune`'s pure helpers (see tune.hpp) [any thread]: the stability rule, the
// recommendation, and the config-file edit of --write-config.
#include "tune.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstring>
#include <sstream>
#include <string>
#include <vector>

namespace stemd::app {

// ---------------------------------------------------------------- the rule and the config file

std::string tune_verdict(const TuneResult& r, double max_load) {
  std::string why;
  auto add = [&why](const std::string& s) { why += (why.empty() ? "" : ", ") + s; };
  if (r.voice_underruns > 0) add("voice underruns");
  if (r.device_underflows > 0) add("device underflows");
  if (static_cast<double>(r.p99_ns) > max_load * r.budget_ns()) {
    add(fmt::format("p99 over {:.0f} %", max_load * 100.0));
  }
  if (r.callbacks == 0) add("no callbacks");
  return why.empty() ? "stable" : "no: " + why;
}

// The smallest size from which every larger size measured was stable too: one unlucky glitch
// at a small size does not count as "stable", and a stable small size next to unstable larger
// ones is noise, not a recommendation.
int tune_recommend(const std::vector<TuneResult>& results, double max_load) {
  int best = -1;
  for (int i = static_cast<int>(results.size()); i-- > 0;) {
    if (tune_verdict(results[static_cast<std::size_t>(i)], max_load) != "stable") break;
    best = i;
  }
  return best;
}

std::string tune_scheduling_note(const std::vector<TuneResult>& results, bool jack) {
  const auto it = std::find_if(results.begin(), results.end(),
                               [](const TuneResult& r) { return !r.scheduling.empty() && !r.realtime; });
  if (it == results.end()) return "";
  std::string why = it->rt_refused.empty() ? std::string() : " (raising it was not permitted: " + it->rt_refused + ")";
  std::string allow = jack ? "the JACK server decides it: start jackd with -R (real-time)"
                           : "under systemd the unit's LimitRTPRIO=95 allows it; by hand, root or a user with an "
                             "rtprio limit: group audio, /etc/security/limits.d";
  return fmt::format(
      "measured WITHOUT real-time scheduling: the audio thread ran {}{}. Other processes could delay its callback, "
      "so the device underflows and p99 above include waits that a daemon with SCHED_FIFO does not have: the "
      "recommendation errs large for a daemon that runs real-time ({}), and holds for one that runs as this did. "
      "Run stemd tune with real-time scheduling for figures that match such a daemon.",
      it->scheduling, why, allow);
}

namespace {

bool is_key_line(const std::string& line, std::size_t& value_start, std::size_t& value_end) {
  std::size_t p = line.find_first_not_of(" \t");
  if (p == std::string::npos) return false;
  bool matched = false;
  for (const char* key : {"buffer-size", "\"buffer-size\""}) {
    const std::size_t n = std::strlen(key);
    if (line.compare(p, n, key) == 0) {
      p += n;
      matched = true;
      break;
    }
  }
  if (!matched) return false;
  p = line.find_first_not_of(" \t", p);
  if (p == std::string::npos || line[p] != '=') return false;
  p = line.find_first_not_of(" \t", p + 1);
  if (p == std::string::npos) p = line.size();
  value_start = p;
  std::size_t e = line.find('#', p);
  if (e == std::string::npos) e = line.size();
  while (e > p && (line[e - 1] == ' ' || line[e - 1] == '\t' || line[e - 1] == '\r' || line[e - 1] == '\n')) --e;
  value_end = e;
  return true;
}

}  // namespace

std::string set_buffer_size_in_config(const std::string& text, std::uint32_t buffer_size, const std::string& note) {
  std::vector<std::string> lines;
  {
    std::size_t start = 0;
    while (start < text.size()) {
      const std::size_t nl = text.find('\n', start);
      if (nl == std::string::npos) {
        lines.push_back(text.substr(start));
        break;
      }
      lines.push_back(text.substr(start, nl - start + 1));  // keeps its '\n'
      start = nl + 1;
    }
  }
  const std::string value = std::to_string(buffer_size);
  bool replaced = false;
  std::size_t first_section = lines.size();
  bool in_output = true;  // top level, or [output] (where buffer-size is the same key)
  for (std::size_t i = 0; i < lines.size(); ++i) {
    const std::size_t p = lines[i].find_first_not_of(" \t");
    if (p != std::string::npos && lines[i][p] == '[') {
      if (first_section == lines.size()) first_section = i;
      const std::size_t close = lines[i].find(']', p);
      std::string name = close == std::string::npos ? std::string() : lines[i].substr(p + 1, close - p - 1);
      name.erase(0, name.find_first_not_of(" \t"));
      name.erase(name.find_last_not_of(" \t") + 1);
      in_output = name == "output";  // the key under another [section] is not buffer-size
      continue;
    }
    std::size_t vs = 0, ve = 0;
    if (in_output && is_key_line(lines[i], vs, ve)) {
      lines[i] = lines[i].substr(0, vs) + value + lines[i].substr(ve);
      replaced = true;  // every top-level occurrence: whichever the parser takes gets the new value
    }
  }
  if (!replaced) {
    std::string add = (note.empty() ? std::string() : "# " + note + "\n") + "buffer-size = " + value + "\n";
    if (first_section < lines.size()) {
      lines.insert(lines.begin() + static_cast<std::ptrdiff_t>(first_section), add + "\n");
    } else {
      if (!lines.empty() && lines.back().back() != '\n') lines.back() += '\n';
      if (!lines.empty()) add = "\n" + add;
      lines.push_back(add);
    }
  }
  std::string out;
  for (const auto& l : lines) out += l;
  return out;
}

}  // namespace stemd::app
