// The audio and loader threads' real-time priorities: the decisions and the log line (see
// rt_priority.hpp). Pure logic: health.cpp reads and sets the threads' scheduling.
#include "rt_priority.hpp"

#include <fmt/format.h>

#include <algorithm>

namespace stemd::app {

std::string ThreadSched::text() const {
  if (!realtime) return "SCHED_OTHER";
  return fmt::format("{} {}", round_robin ? "SCHED_RR" : "SCHED_FIFO", priority);
}

std::vector<int> audio_raise_steps(const ThreadSched& audio, int wanted, long rtprio_limit) {
  std::vector<int> steps;
  const int own = audio.realtime ? audio.priority : 0;
  if (wanted <= own) return steps;
  steps.push_back(wanted);
  if (rtprio_limit > own && rtprio_limit < wanted) steps.push_back(static_cast<int>(rtprio_limit));
  return steps;
}

int loader_priority_cap(const ThreadSched& audio) { return audio.realtime ? std::max(audio.priority - 1, 0) : 0; }

namespace {

// How the audio thread came to its priority: raised by stemd, left where its owner put it (and
// why), or nothing to say (stemd's own pacer at the priority it wants).
std::string audio_origin(const PolicyReport& r) {
  if (r.now.priority > (r.before.realtime ? r.before.priority : 0)) {
    return r.before.realtime ? fmt::format(" (raised from {}, {}'s choice)", r.before.priority, r.owner)
                             : std::string(" (raised from SCHED_OTHER)");
  }
  if (r.wanted <= 0) return " (set by " + r.owner + ")";
  if (r.now.priority >= r.wanted) return "";
  std::string s = " (" + r.owner + "'s choice";
  if (!r.refused.empty()) {
    s += fmt::format("; raising it to {} was not permitted: {} — under systemd the unit's LimitRTPRIO=95 allows it",
                     r.wanted, r.refused);
  }
  return s + ")";
}

// Where the loader thread stands against the audio thread, once capped below it.
std::string loader_part(const PolicyReport& r) {
  if (r.loader_configured <= 0) return "; the loader thread runs at normal scheduling (--loader-priority 0)";
  if (r.loader_now <= 0) return "; the loader thread runs at normal scheduling";
  const int cap = loader_priority_cap(r.now);
  if (r.loader_now <= cap) return fmt::format("; the loader thread's SCHED_FIFO {} is below it", r.loader_now);
  if (cap > 0) {
    return fmt::format("; the loader thread goes from SCHED_FIFO {} to {}, below it (--loader-priority {} is not)",
                       r.loader_now, cap, r.loader_configured);
  }
  return fmt::format(
      "; the loader thread goes from SCHED_FIFO {} to normal scheduling, below it (--loader-priority {} would equal "
      "it: two SCHED_FIFO threads of one priority do not preempt each other)",
      r.loader_now, r.loader_configured);
}

}  // namespace

std::string policy_line(const PolicyReport& r) {
  if (!r.now.realtime) {
    if (r.loader_now <= 0) return "";
    return fmt::format(
        "; the loader thread goes from SCHED_FIFO {} to normal scheduling too (a real-time loader would take the "
        "audio thread's CPU)",
        r.loader_now);
  }
  return fmt::format("{} priority {}{}{}", r.now.round_robin ? "SCHED_RR" : "SCHED_FIFO", r.now.priority,
                     audio_origin(r), loader_part(r));
}

}  // namespace stemd::app
