#include "glitch_advice.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <string_view>

namespace stemd::app {

namespace {
double share(std::uint64_t ns, const GlitchWindow& w) {
  const double budget_ns = w.budget_ms * 1e6;
  return budget_ns > 0 ? static_cast<double>(ns) / budget_ns : 0;
}
bool callback_is_cause(const GlitchWindow& w) {
  return share(w.callback_max_ns, w) >= kCallbackMaxCause || share(w.callback_p99_ns, w) >= kCallbackP99Cause;
}
}  // namespace

bool only_pacing_late(const GlitchWindow& w) {
  return w.clock_paced && w.device_underflows > 0 && w.voice_underruns == 0 && !callback_is_cause(w);
}

std::string callback_times(const GlitchWindow& w, std::uint64_t p50_ns, std::uint64_t max_since_start_ns) {
  return fmt::format(
      "callback in the last second p50 {:.0f} µs p99 {:.0f} µs max {:.0f} µs (since start max {:.0f} µs) of a "
      "{:.0f} µs budget",
      p50_ns / 1e3, w.callback_p99_ns / 1e3, w.callback_max_ns / 1e3, max_since_start_ns / 1e3, w.budget_ms * 1e3);
}

std::string glitch_advice(const GlitchWindow& w) {
  std::string out;
  if (w.device_underflows > 0) {
    const double max_share = share(w.callback_max_ns, w);
    const double p99_share = share(w.callback_p99_ns, w);
    if (callback_is_cause(w)) {
      out = fmt::format(
          " — audio is glitching and stemd's callback is the cause (max {:.0f} %, p99 {:.0f} % of its {:.1f} ms "
          "budget): raise --buffer-size (now {}) or play fewer voices",
          100 * max_share, 100 * p99_share, w.budget_ms, w.buffer_size);
    } else if (w.clock_paced) {
      // No device, no audio server: the system clock's pacing thread woke late (outside pass 20,
      // user 6: the advice named a device and an audio server).
      out = fmt::format(
          " — the null backend's pacing (the system clock) woke late: the machine was busy (other work, CPU "
          "frequency scaling); stemd's callback used at most {:.0f} % of its {:.1f} ms budget. Nothing is heard on "
          "the null backend",
          100 * max_share, w.budget_ms);
    } else {
      out = fmt::format(
          " — {} missed its deadline; stemd's callback used at most {:.0f} % of its {:.1f} ms budget (p99 {:.0f} %), "
          "so a bigger --buffer-size in stemd is not the fix: look at the device or audio server (its xruns, its "
          "period, CPU frequency scaling, other clients)",
          w.device.empty() ? std::string("the device") : w.device, 100 * max_share, w.budget_ms, 100 * p99_share);
    }
  }
  if (w.voice_underruns > 0) {
    out += out.empty() ? " — " : "; ";
    // A read that does not return (outside attack pass 21: the advice was the ring's while a dead
    // share held the loader): no ring is long enough; the voices of that file system wait for it.
    // A read slower than a whole ring, not yet given up (outside attack pass 23: "raise --ring-ms"
    // while a share's read had lasted seconds): the ring is not what failed.
    if (w.stuck_reads > 0) {
      out +=
          "a read on a disk or share has not returned (the error above names its file): the voices of that file "
          "system wait until it answers, the others play on; a larger --ring-ms is not the fix";
    } else if (w.slow_read_ms > 0) {
      out += fmt::format(
          "a read on a disk or share has taken {:.0f} ms, longer than a stream's ring holds ({:.0f} ms): the voices "
          "of that file system wait for it; a larger --ring-ms helps only if that disk or share is always this slow",
          w.slow_read_ms, w.ring_ms);
    } else {
      out += "a stream's read-ahead ran dry (the disk was slower than playback): raise --ring-ms or --ring-min-ms";
    }
  }
  return out;
}

std::string AdviceRepeat::next(const std::string& advice, double now_s) {
  std::string key;
  for (char c : advice) {
    if (c < '0' || c > '9') key += c;
  }
  if (advice.empty() || key != key_ || now_s - at_s_ >= kEverySeconds) {
    key_ = std::move(key);
    at_s_ = now_s;
    return advice;
  }
  return fmt::format(" — the same cause as the warning {:.0f} s ago, whose advice holds (given in full once an hour)",
                     now_s - at_s_);
}

namespace {

// The health line is one line: a reason that lists PortAudio's devices (one per line, logged in full when
// the device is looked for) is cut to how many it sees, and any other line break is a space.
std::string one_line(const std::string& reason) {
  static constexpr std::string_view kList = ". PortAudio sees:\n";
  const auto at = reason.find(kList);
  if (at != std::string::npos) {
    std::size_t devices = 0;
    for (std::size_t i = at + kList.size(); i < reason.size();) {
      const auto end = std::min(reason.find('\n', i), reason.size());
      const auto first = reason.find_first_not_of(' ', i);
      if (first < end && reason[first] != '(') ++devices;  // not "(no output devices)"
      i = end + 1;
    }
    return reason.substr(0, at) +
           fmt::format("; PortAudio sees {} device{}, --list-devices names them", devices, devices == 1 ? "" : "s");
  }
  std::string out = reason;
  while (!out.empty() && out.back() == '\n') out.pop_back();
  for (char& c : out)
    if (c == '\n' || c == '\r') c = ' ';
  return out;
}

}  // namespace

std::string open_files_trouble(const HealthLine& h) {
  if (h.fds_limit <= 0) return {};
  const std::int64_t budget = std::max<std::int64_t>(0, h.fds_limit - h.fds_reserve);  // streamed sources' share
  const std::int64_t room = std::max<std::int64_t>(0, budget - h.fds_open);
  if (h.fds_refused == 0 && room * 10 >= budget) return {};
  std::string what;
  if (h.fds_refused > 0) {
    what = fmt::format("{} streamed load{} refused in the last {:.0f} s", h.fds_refused, h.fds_refused == 1 ? "" : "s",
                       std::max(1.0, h.fds_refused_window_s));
  } else if (room == 0) {
    what = "streamed loads are refused";
  } else {
    what = fmt::format("room for {} more streamed source{}", room, room == 1 ? "" : "s");
  }
  return fmt::format(
      "open files: {} of {} in use, a reserve of {} kept: {}; raise LimitNOFILE (systemd) or nofile in limits.conf, "
      "unload streamed sources, or hold files in memory (--preload-limit-mb)",
      h.fds_open, h.fds_limit, h.fds_reserve, what);
}

std::string health_summary(const HealthLine& h) {
  const double mib = h.resident_bytes / (1024.0 * 1024.0);
  std::string fds = open_files_trouble(h);
  if (!fds.empty()) fds += "; ";
  const std::string link =
      h.link_peers < 0 ? "" : fmt::format(", Link: {} {}", h.link_peers, h.link_peers == 1 ? "peer" : "peers");
  if (!h.device_running) {
    const std::string name = h.device_name.empty() ? "" : " '" + h.device_name + "'";
    std::string why = one_line(h.device_reason);
    if (h.device_attempts > 0)
      why += (why.empty() ? "" : "; ") + fmt::format("attempt {}, retrying", h.device_attempts);
    return fmt::format(
        "device{} {} {:.1f} s{}: nothing plays until it {}; {}{} voice{}, CPU {:.1f}% of one core, memory {:.1f} MiB "
        "resident{}",
        name, h.device_waiting ? "not there yet, waiting" : "lost for", h.device_away_s,
        why.empty() ? "" : " (" + why + ")", h.device_waiting ? "appears" : "is back", fds, h.voices,
        h.voices == 1 ? "" : "s", h.cpu_pct, mib, link);
  }
  return fmt::format(
      "{}{} voice{}, CPU {:.1f}% of one core (audio callback {:.1f}%), {}, lowest ring fill {}%, voice underruns {}, "
      "device underflows {}, memory {:.1f} MiB resident, device {}{}",
      fds, h.voices, h.voices == 1 ? "" : "s", h.cpu_pct, h.callback_pct,
      h.rt_policy.empty() ? "audio thread not started yet" : h.rt_policy, h.lowest_ring_fill_pct, h.voice_underruns,
      h.device_underflows, mib, h.device, link);
}

}  // namespace stemd::app
