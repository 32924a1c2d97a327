// stemctl's status text: `status` (the summary), `status --all` (every field, labelled) and
// watch's one line (see format.hpp).
#include "format.hpp"
#include "format_text.hpp"
#include "terminal.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>

namespace stemd::ctl {

using namespace detail;

namespace {

// The stream clock is ready for synchronised starts once its DLL has tracked this long (seconds)
// with its recent error under kClockSteadyUs (µs): docs/sync.md's "~8 s" and bench_sync's 0.5 ms.
constexpr double kClockReadyS = 8.0;
constexpr double kClockSteadyUs = 500.0;

// The sync fields (router_sync.cpp): the tempo clock, the Link session, the stream clock's DLL.
bool sync_field_text(const std::string& k, double x, std::string& label, std::string& text) {
  if (k == "tempo_bpm") {
    label = "tempo", text = fmt("%.2f bpm", x);
  } else if (k == "tempo_held_bpm") {
    label = "players held at",
    text = x > 0 ? fmt("%.2f bpm", x) + " (the work budget: they drift from the grid)" : "no";
  } else if (k == "beat") {
    label = "beat", text = fmt("%.2f", x);
  } else if (k == "beat_phase") {
    label = "beat phase", text = fmt("%.2f", x);
  } else if (k == "quantum") {
    label = "phase quantum", text = fmt("%.0f beats", x);
  } else if (k == "link") {
    label = "Ableton Link", text = x > 0 ? "on" : "off";
  } else if (k == "link_peers") {
    label = "Link peers";
  } else if (k == "clock_error_us") {
    label = "clock DLL error", text = fmt("%.1f µs", x);
  } else if (k == "clock_error_max_us") {
    label = "clock DLL error max", text = fmt("%.1f µs", x) + " (last 1–2 s)";
  } else if (k == "clock_locked_s") {
    label = "clock DLL tracking", text = fmt("%.1f s", x) + " (since its last restart; ready for sync after ~8 s)";
  } else if (k == "clock_resets") {
    label = "clock DLL restarts";
  } else if (k == "clock_rate_ppm") {
    label = "device rate", text = fmt("%+.1f ppm", x) + " against CLOCK_MONOTONIC";
  } else {
    return false;
  }
  return true;
}

// The summary's one sync row: tempo, beat and phase, and the Link session's peers (the clock's
// own row: clock_rows).
// Left out while no tempo is in use (tempo_in_use 0: nobody set one, the clock ticks at --bpm's
// default and nothing follows it — a new user read "120.00 bpm" as something they had set).
void sync_rows(const StatusFields& f, std::vector<std::vector<std::string>>& rows) {
  if (find_field(f, "tempo_bpm") == nullptr) return;
  if (const OscArg* used = find_field(f, "tempo_in_use");
      used != nullptr && used->is_number() && used->as_double() == 0) {
    return;
  }
  std::string t = fmt("%.2f bpm", field_number(f, "tempo_bpm")) + ", beat " + fmt("%.2f", field_number(f, "beat")) +
                  " (phase " + fmt("%.2f", field_number(f, "beat_phase")) + " of " +
                  fmt("%.0f", field_number(f, "quantum")) + ")";
  if (field_number(f, "link") > 0) {
    const auto peers = static_cast<std::int64_t>(field_number(f, "link_peers"));
    t += ", Link: " + std::to_string(peers) + (peers == 1 ? " peer" : " peers");
  }
  if (const double held = field_number(f, "tempo_held_bpm"); held > 0) {
    t += "; players held at " + fmt("%.2f bpm", held) + " (the work budget)";
  }
  rows.push_back({"  tempo", t});
}

// The summary's clock row, with --link or once timed bundles came (timed_messages): whether the
// stream clock's DLL has tracked the ~8 s a synchronised start waits for (docs/sync.md), and its
// error. New-user pass 26 (L7): sync.md promised "the clock DLL error" in `stemctl status`, and
// clock_locked_s was only in --all. Left out by a daemon that has no such fields.
void clock_rows(const StatusFields& f, std::vector<std::vector<std::string>>& rows) {
  if (find_field(f, "clock_locked_s") == nullptr) return;
  if (field_number(f, "link") <= 0 && field_number(f, "timed_messages") <= 0) return;
  const double locked = field_number(f, "clock_locked_s"), err = field_number(f, "clock_error_max_us");
  const std::string tracked = locked < 60 ? fmt("%.1f s", locked) : fmt_uptime(locked);
  std::string t;
  if (locked < kClockReadyS) {
    t = "settling: tracked " + tracked + " of the ~8 s a synchronised start waits for";
  } else if (err >= kClockSteadyUs) {
    t = "tracked " + tracked + ", but unsteady: its error reached " + fmt("%.0f µs", err) +
        " in the last 1–2 s (the device's timing)";
  } else {
    t = "ready for synchronised starts (tracked " + tracked + ")";
  }
  t += ", error max " + fmt("%.1f µs", err);
  if (const auto resets = static_cast<std::int64_t>(field_number(f, "clock_resets")); resets > 0) {
    t += ", " + std::to_string(resets) + (resets == 1 ? " restart" : " restarts");
  }
  rows.push_back({"  clock", t});
}

// The device row: its state, how long it has been lost and why — or, for the null backend, that
// nothing is heard ("null (no audio output: --backend null)"), where the state alone said "running".
std::string device_text(const StatusFields& f) {
  std::string t = value_text(*find_field(f, "device"));
  const OscArg* backend = find_field(f, "backend");
  if (const OscArg* note = find_field(f, "device_note"); t == "running" && note != nullptr) {
    t = "null (" + value_text(*note) + ")";
  } else if (t == "running" && backend != nullptr && value_text(*backend) == "null") {  // an older daemon
    t = "null (no audio output)";
  }
  if (find_field(f, "device_lost_s") != nullptr) t += " for " + fmt("%.1f s", field_number(f, "device_lost_s"));
  // How often it was lost since stemd started (outside pass 26, user M1: after a week the short
  // status read "running" with the underflows at 0 again, its losses only in --all).
  if (const auto losses = static_cast<std::int64_t>(field_number(f, "device_losses")); losses > 0 && t == "running") {
    t += " (lost " + std::to_string(losses) + (losses == 1 ? " time" : " times") + " since stemd started";
    if (const OscArg* ago = find_field(f, "device_last_loss_age_s"); ago != nullptr && ago->is_number()) {
      t += "; the last " + fmt_uptime(ago->as_double()) + " ago, for " +
           fmt("%.1f s", field_number(f, "device_last_loss_s")) + ")";
    } else {
      t += ": the log says when)";  // an older daemon
    }
  }
  if (const OscArg* e = find_field(f, "device_error"); e != nullptr && !value_text(*e).empty()) {
    t += ": " + (e->is_string() ? terminal_lines(e->s) : value_text(*e));  // PortAudio's device list: a line each
  }
  return t;
}

// The labels of the fields `status --all` shows as they are (nullptr: not one of them).
const char* plain_label(const std::string& k) {
  static const char* const kLabels[][2] = {
      {"backend", "backend"},
      {"version", "version"},
      {"voices", "voices (playing or paused)"},
      {"voices_paused", "voices paused"},
      {"voices_waiting", "voices waiting for the device"},
      {"sources", "sources loaded"},
      {"sources_cut_short", "sources cut short (file shorter than its header said)"},
      {"loads_in_flight", "loads in flight"},
      {"plays_opening", "plays opening their stream"},
      {"loads_lost", "loads stuck past --load-timeout"},
      {"listings_lost", "web file-browser listings stuck past --load-timeout"},
      {"voice_underruns", "voice underruns"},
      {"device_underflows", "device underflows"},
      {"frames", "frames rendered (since the service started)"},
      {"stream_frames", "frames rendered since the device was last handed over (the stream clock)"},
      {"loader_reads", "loader reads"},
      {"read_errors", "read errors"},
      {"stuck_reads", "reads that did not return (a disk or share stopped answering)"},
      {"reads_stuck_now", "reads still not returned"},
      {"closes_stuck_now", "file closes not returned for 1 s (a share stopped answering)"},
      {"closes_waiting", "files let go but kept open (every closer thread stuck)"},
      {"fds_open", "file descriptors open"},
      {"fds_limit", "file descriptors at most (RLIMIT_NOFILE)"},
      {"fds_reserve", "file descriptors kept free (streamed loads refused past it)"},
      {"fds_refused", "streamed loads refused for descriptors"},
      {"rings_ran_dry", "rings run dry"},
      {"loader_rt_demotions", "loader left SCHED_FIFO (too much CPU)"},
      {"messages", "OSC messages"},
      {"bad_messages", "OSC messages refused"},
      {"late_messages", "OSC messages late (bundle time passed)"},
      {"timed_messages", "OSC messages of timed bundles (on time or late)"},
      {"busy_messages", "OSC messages refused as busy (try again)"},
      {"ignored_messages", "OSC messages ignored (as the old server did)"},
      {"subscribers", "event subscribers"},
      {"replies_withheld", "replies withheld (until the cookie)"},
      {"cookies_sent", "cookies sent"},
      {"scheduled", "timed commands waiting"},
      {"schedule_refused", "timed commands refused (schedule full)"},
      {"schedule_due_max", "timed commands in one callback (most)"},
      {"datagrams", "datagrams received"},
      {"refused_sources", "refused (not --allow'ed)"},
      {"dropped_datagrams", "dropped by the kernel"},
      {"replies_dropped", "replies not sent"},
      {"tcp_clients", "TCP clients"},
      {"tcp_refused", "TCP connections refused"},
      {"tcp_timed_out", "TCP connections timed out"},
      {"device_losses", "device losses"},
      {"sources_waiting", "sources waiting for their files"},
      {"sources_waiting_for", "sources waiting for"},
      {"device_error", "device error"},
      {"device_attempts", "device attempts"},
      {"rt_policy", "audio thread scheduling"},
      {"stretch_buses", "stretch buses"},
      {"stretch_buses_running", "stretch buses running"},
      {"stretch_bus_voices", "voices on stretch buses"},
      {"stretch_primes", "stretcher primes (audio thread)"},
      {"stretch_primes_max", "stretcher primes in one callback (most)"},
      {"stretch_starts_deferred", "voices heard late (--stretch-primes-per-callback)"},
      {"stretch_handovers", "starts handed over onto a running stretch bus"},
      {"stretch_joins_lost", "starts on a running stretch bus that lost their first lookahead"},
      {"stretch_rejoins", "voices back onto a stretch bus from a stretcher of their own"},
  };
  for (const auto& l : kLabels) {
    if (k == l[0]) return l[1];
  }
  return nullptr;
}

// The fields `status --all` shows in units: their label and text. False: not one of them.
bool unit_field_text(const StatusFields& f, const std::string& k, const OscArg& v, std::string& label,
                     std::string& text) {
  const double x = v.is_number() ? v.as_double() : 0.0;
  static const char* const kMs[][2] = {
      {"latency_ms", "buffer latency"},
      {"ring_target_ms_min", "ring target min"},
      {"ring_target_ms_mean", "ring target mean"},
      {"ring_target_ms_max", "ring target max"},
      {"read_wait_ms", "wait for disk"},
      {"read_wait_sd_ms", "wait for disk σ"},
      {"read_max_ms", "slowest read (recent)"},
  };
  for (const auto& m : kMs) {
    if (k == m[0]) {
      label = m[1], text = fmt(k.rfind("ring_", 0) == 0 ? "%.0f ms" : "%.1f ms", x);
      return true;
    }
  }
  if (k == "sample_rate") {
    label = "sample rate", text = integer_text(v) + " Hz";
  } else if (k == "buffer_size") {
    label = "buffer", text = integer_text(v) + " frames";
  } else if (k == "output_latency_ms") {
    label = "output latency", text = fmt("%.1f ms", x) + " (device)";
  } else if (k == "memory_bytes" || k == "ring_bytes") {
    label = k == "ring_bytes" ? "ring memory" : "memory held", text = fmt_bytes(x);
  } else if (k == "memory_limit_bytes") {
    label = "memory limit", text = x > 0 ? fmt_bytes(x) + " (--max-memory-mb)" : "none";
  } else if (k == "budget_us") {
    label = "callback budget", text = fmt("%.0f µs", x);
  } else if (k == "cpu_load") {
    label = "audio callback CPU", text = fmt("%.1f%% of one core", 100.0 * x);
  } else if (k == "uptime_s") {  // and the totals: across a lost device's hand-overs to a new image
    label = "uptime", text = fmt_uptime(x) + " (since the service started; the counters too)";
  } else if (k == "voice_underrun_age_s" || k == "device_underflow_age_s") {
    label = k[0] == 'v' ? "last voice underrun" : "last device underflow";
    text = x < 0 ? "none since start" : fmt_uptime(x) + " ago";
  } else if (k == "device_up_s") {
    label = "device up", text = fmt_uptime(x) + " (since it last opened)";
  } else if (k == "device_last_loss_age_s") {
    label = "device last lost", text = fmt_uptime(x) + " ago";
  } else if (k == "device_last_loss_s") {
    label = "device last lost for", text = fmt("%.1f s", x);
  } else if (k == "device_lost_s" || k == "device_waiting_s") {
    label = k == "device_lost_s" ? "device lost for" : "device waited for", text = fmt("%.1f s", x);
  } else if (k == "device") {
    label = "device", text = value_text(v) == "running" ? device_text(f) : value_text(v);
  } else if (k == "master") {
    label = "master level", text = level_text(x);
  } else if (k.size() == 6 && k.rfind("deck_", 0) == 0) {
    label = std::string("deck ") + static_cast<char>(std::toupper(static_cast<unsigned char>(k[5]))) + " level";
    text = level_text(x);
  } else if (k.size() > 5 && k.rfind("eq_", 0) == 0 && k[4] == '_') {  // eq_a_low: deck A's EQ, low band
    label =
        std::string("deck ") + static_cast<char>(std::toupper(static_cast<unsigned char>(k[3]))) + " EQ " + k.substr(5);
    text = level_text(x);
  } else if (k == "loader_cpu_pct") {
    label = "loader CPU (last 100 ms)", text = fmt("%.1f%% of one core", x);
  } else if (k == "loader_rt_priority") {
    label = "loader priority", text = x > 0 ? fmt("SCHED_FIFO %.0f", x) : std::string("normal");
  } else if (k == "tempo_in_use") {
    label = "tempo in use",
    text = x > 0 ? "yes" : "no (none set: the clock ticks at --bpm's default, nothing follows it)";
  } else if (k == "resample_units" || k == "stretch_units") {
    label = k[0] == 'r' ? "resampling budget used" : "stretching budget used";
    text = fmt("%.2f units", x) + " of " +
           fmt("%.0f", field_number(f, k[0] == 'r' ? "resample_units_max" : "stretch_units_max"));
  } else if (k == "resample_units_max" || k == "stretch_units_max") {
    label = k[0] == 'r' ? "resampling budget" : "stretching budget";
    text = fmt("%.0f units", x) + (k[0] == 'r' ? " (--max-resampled-voices)" : " (--max-stretched-voices)");
  } else if (k == "eq_enabled") {  // with why it is off (outside pass 26, user L2)
    const OscArg* why = find_field(f, "eq_off_reason");
    label = "deck EQ", text = x > 0 ? std::string("applied")
                                    : "off: " + (why != nullptr ? value_text(*why) : std::string("--disable-filters")) +
                                          "; EQ messages are answered and ignored";
  } else if (k == "subscribers") {  // the web monitor's own subscription is not a client's (user L7)
    const auto mon = static_cast<std::int64_t>(field_number(f, "subscribers_monitor"));
    const auto clients = static_cast<std::int64_t>(x) - mon;
    label = "event subscribers", text = integer_text(v);
    if (mon > 0) {
      text += clients == 0 ? " (the web monitor's own: no client)"
                           : " (the web monitor's own and " + std::to_string(clients) +
                                 (clients == 1 ? " client)" : " clients)");
    }
  } else if (k == "tone_hz") {
    label = "test tone", text = x > 0 ? fmt("%.0f Hz", x) : "off";
  } else if (k == "state_save_failing") {
    label = "state file", text = x > 0 ? "NOT being saved (a write failed or hangs: see the log)" : "saved";
  } else {
    return false;
  }
  return true;
}

// "2 playing, 1 paused", "3 playing": `voices` counts both (a daemon without voices_paused: all
// as playing, as it counted them).
std::string voices_text(const StatusFields& f) {
  const auto all = static_cast<std::int64_t>(field_number(f, "voices"));
  const auto paused = std::clamp<std::int64_t>(static_cast<std::int64_t>(field_number(f, "voices_paused")), 0, all);
  return std::to_string(all - paused) + " playing" + (paused > 0 ? ", " + std::to_string(paused) + " paused" : "");
}

}  // namespace

std::string status_table(const StatusFields& f) {
  const double budget = field_number(f, "budget_us", 0);
  std::vector<std::vector<std::string>> rows;
  for (const auto& [k, v] : f) {
    const double x = v.is_number() ? v.as_double() : 0.0;
    std::string label = terminal_text(k), text = value_text(v);
    if (k == "device_note" || k == "eq_off_reason" || k == "subscribers_monitor") continue;  // in another row
    if (sync_field_text(k, x, label, text) || unit_field_text(f, k, v, label, text)) {
    } else if (k == "callback_p50_us" || k == "callback_p99_us" || k == "callback_max_us") {
      label = "callback " + k.substr(9, k.size() - 12);
      text = fmt("%.1f µs", x);
      if (budget > 0) {
        text += " (" + fmt("%.1f", 100.0 * x / budget) + "% of the " + fmt("%.0f", budget) + " µs budget)";
      }
    } else if (const char* l = plain_label(k); l != nullptr) {
      label = l;
    }
    rows.push_back({"  " + label, text});
  }
  return table(rows, {});
}

std::string list_waiting_line(const StatusFields& f) {
  const auto n = static_cast<std::int64_t>(field_number(f, "sources_waiting"));
  if (n <= 0) return {};
  const OscArg* why = find_field(f, "sources_waiting_for");
  const std::string text = why != nullptr ? value_text(*why) : std::string();
  return "waiting: " +  // not loaded, or (a voice whose file stopped reading) not playing
         (text.empty()
              ? std::to_string(n) + (n == 1 ? " source whose file is" : " sources whose files are") + " missing"
              : terminal_text(text)) +
         "\n";
}

std::string status_line(const StatusFields& f) {
  std::string s = "voices " + voices_text(f);
  s += " · audio callback " + fmt("%.1f%%", 100.0 * field_number(f, "cpu_load")) + " of one core";
  if (find_field(f, "callback_p99_us") != nullptr && field_number(f, "budget_us") > 0) {
    s += " · p99 " + fmt("%.1f%%", 100.0 * field_number(f, "callback_p99_us") / field_number(f, "budget_us")) +
         " of budget";
  }
  s += " · underruns " + std::to_string(static_cast<std::int64_t>(field_number(f, "voice_underruns")));
  s += " · device underflows " + std::to_string(static_cast<std::int64_t>(field_number(f, "device_underflows")));
  s += " · uptime " + fmt_uptime(field_number(f, "uptime_s"));
  return s;
}

std::string status_summary(const StatusFields& f) {
  std::vector<std::vector<std::string>> rows;
  auto has = [&](const char* k) { return find_field(f, k) != nullptr; };
  auto integer = [&](const char* k) { return integer_text(*find_field(f, k)); };
  if (has("backend")) {
    std::string t = value_text(*find_field(f, "backend"));
    if (has("sample_rate")) t += ", " + integer("sample_rate") + " Hz";
    if (has("buffer_size")) t += ", " + integer("buffer_size") + " frames";
    rows.push_back({"  backend", t});
  }
  // A device state, from a daemon that reports one ("lost" while its device is away).
  if (find_field(f, "device") != nullptr) rows.push_back({"  device", device_text(f)});
  if (has("latency_ms")) {
    std::string t = fmt("%.1f ms", field_number(f, "latency_ms"));
    if (has("output_latency_ms"))
      t += " (buffer) + " + fmt("%.1f ms", field_number(f, "output_latency_ms")) + " (device)";
    rows.push_back({"  latency", t});
  }
  if (has("voices")) {
    std::string t = voices_text(f);
    if (const auto waiting = static_cast<std::int64_t>(field_number(f, "voices_waiting")); waiting > 0) {
      const OscArg* device = find_field(f, "device");
      const bool late = device != nullptr && value_text(*device) == "waiting";  // not there yet at start
      t += " (" + std::to_string(waiting) + (waiting == 1 ? " waits" : " wait") + " for the device to " +
           (late ? "appear" : "play again") + ")";
    } else if (const OscArg* device = find_field(f, "device");
               device != nullptr && value_text(*device) == "lost" && t.rfind("0 playing", 0) != 0) {
      // A frozen server: the stream is kept, the voices stand where they were heard last and play
      // on when it runs again — nothing is heard meanwhile (new-user pass 28, L4).
      t += " (not heard while the device is lost: they play on when it is back)";
    }
    rows.push_back({"  voices", t});
  }
  if (has("sources")) rows.push_back({"  sources loaded", integer("sources")});
  // Sources of the state file whose files are missing (a stick not mounted): why nothing plays
  // (new-user pass 29, M2).
  if (field_number(f, "sources_waiting") > 0) {
    const OscArg* why = find_field(f, "sources_waiting_for");
    rows.push_back({"  sources waiting", why != nullptr && !value_text(*why).empty()
                                             ? value_text(*why)
                                             : integer("sources_waiting") + " (their files are missing)"});
  }
  if (has("memory_bytes")) {
    std::string t = fmt_bytes(field_number(f, "memory_bytes"));
    const double limit = field_number(f, "memory_limit_bytes");
    t += limit > 0 ? " of " + fmt_bytes(limit) + " (--max-memory-mb)" : " (no limit)";
    rows.push_back({"  memory held", t});
  }
  // Descriptors: streamed sources keep theirs open, and past the reserve their loads are refused.
  if (has("fds_open") && has("fds_limit")) {
    std::string t = integer("fds_open") + " of " + integer("fds_limit") + " in use";
    if (has("fds_reserve")) t += ", a reserve of " + integer("fds_reserve") + " kept";
    if (field_number(f, "fds_refused") > 0) t += "; streamed loads refused: " + integer("fds_refused");
    rows.push_back({"  open files", t});
  }
  // With the last one's age: a glitch on the first day is not read as a recent one after weeks.
  auto glitches = [&](const char* key, const char* age_key) {
    std::string t = integer(key);
    if (const double age = field_number(f, age_key); has(age_key) && age >= 0 && field_number(f, key) > 0)
      t += " (the last " + fmt_uptime(age) + " ago)";
    return t;
  };
  if (has("voice_underruns"))
    rows.push_back({"  voice underruns", glitches("voice_underruns", "voice_underrun_age_s")});
  if (has("device_underflows"))
    rows.push_back({"  device underflows", glitches("device_underflows", "device_underflow_age_s")});
  if (has("callback_p99_us")) {
    const double us = field_number(f, "callback_p99_us"), budget = field_number(f, "budget_us");
    std::string t = fmt("%.1f µs", us);
    if (budget > 0) t += " (" + fmt("%.1f", 100.0 * us / budget) + "% of the " + fmt("%.0f", budget) + " µs budget)";
    rows.push_back({"  callback p99", t});
  }
  if (has("uptime_s")) {  // a lost device hands over to a new image: uptime and counters go on
    const auto losses = static_cast<std::int64_t>(field_number(f, "device_losses"));
    rows.push_back({"  uptime", fmt_uptime(field_number(f, "uptime_s")) +
                                    (losses > 0 ? " (since the service started; counters too, across the device's "
                                                  "hand-overs)"
                                                : "")});
  }
  if (field_number(f, "tone_hz") > 0) rows.push_back({"  test tone", fmt("%.0f Hz", field_number(f, "tone_hz"))});
  if (field_number(f, "state_save_failing") > 0) rows.push_back({"  state file", "NOT being saved (see the log)"});
  // With --stretch-method time_stretch: how much of the shared stretching is in use.
  if (field_number(f, "stretch_buses") > 0) {
    const auto n = [&](const char* k) { return std::to_string(static_cast<std::int64_t>(field_number(f, k))); };
    rows.push_back({"  stretch buses", n("stretch_buses_running") + " of " + n("stretch_buses") + " running, " +
                                           n("stretch_bus_voices") + " voices on them (--stretch-buses)"});
    if (field_number(f, "stretch_rejoins") > 0) {
      rows.push_back({"  rejoined a bus", n("stretch_rejoins") + " (voices from a stretcher of their own)"});
    }
    if (field_number(f, "stretch_joins_lost") > 0) {
      rows.push_back({"  starts on a running bus", n("stretch_handovers") + " handed over, " + n("stretch_joins_lost") +
                                                       " lost their first ≈ 45 ms"});
    }
  }
  sync_rows(f, rows);
  clock_rows(f, rows);
  return table(rows, {});
}

}  // namespace stemd::ctl
