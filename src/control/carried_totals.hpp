// The status counters that are totals since the service started, not since this image of stemd:
// a lost device's hand-over exec()s a fresh image (app/recovery.cpp), which starts them at 0, so
// the previous images' are carried (the hand-over's carry file) and added to this image's
// (Router::set_carried_totals). A monitor's frames ÷ uptime, or a count of OSC messages or state
// writes over weeks, does not restart at each loss (outside pass 28, user L2). Not here: the
// underruns, underflows, device losses and the callback histogram (carried on their own:
// GlitchTotals, DeviceStatus), and whatever is a figure of now (voices, ring fill, …).
#pragma once

#include <algorithm>
#include <array>
#include <string_view>

namespace stemd::control {

inline constexpr std::array<std::string_view, 27> kCarriedTotals = {"frames",
                                                                    "loader_reads",
                                                                    "read_errors",
                                                                    "stuck_reads",
                                                                    "fds_refused",
                                                                    "messages",
                                                                    "bad_messages",
                                                                    "late_messages",
                                                                    "timed_messages",
                                                                    "busy_messages",
                                                                    "ignored_messages",
                                                                    "replies_withheld",
                                                                    "cookies_sent",
                                                                    "schedule_refused",
                                                                    "datagrams",
                                                                    "refused_sources",
                                                                    "dropped_datagrams",
                                                                    "replies_dropped",
                                                                    "tcp_refused",
                                                                    "tcp_timed_out",
                                                                    "state_writes",
                                                                    "state_writes_held",
                                                                    "rings_ran_dry",
                                                                    "loader_rt_demotions",
                                                                    "stretch_primes",
                                                                    "stretch_handovers",
                                                                    "stretch_rejoins"};

inline bool is_carried_total(std::string_view key) {
  return std::find(kCarriedTotals.begin(), kCarriedTotals.end(), key) != kCarriedTotals.end();
}

}  // namespace stemd::control
