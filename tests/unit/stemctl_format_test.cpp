// What stemctl, the health line and `stemd tune` print, checked on replies and facts made here
// (a new user's pass 24, LOW 1, 2, 3, 4, 6, 7): a paused voice is not counted as playing; the
// health line says the device is missing instead of "0 voices, … unknown"; bytes are MiB and say
// so; "CPU" says whose share of what; the tempo row only while a tempo is in use; `voices` shows
// the volume (and dB) and the rate and tempo where set, and its JSON has them; tune's verdict says
// when it measured without real-time scheduling.
#include "app/glitch_advice.hpp"
#include "app/tune.hpp"
#include "ctl/format.hpp"
#include "ctl/terminal.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <regex>
#include <string>
#include <vector>

namespace stemd::test {
namespace {

using control::OscArg;
using control::OscMessage;

// A /done /stemd/status reply of these fields.
ctl::StatusFields fields(const std::vector<std::pair<std::string, OscArg>>& kv) {
  OscMessage m{"/done", {OscArg::Str("/stemd/status")}};
  for (const auto& [k, v] : kv) {
    m.args.push_back(OscArg::Str(k));
    m.args.push_back(v);
  }
  return ctl::status_fields(m);
}

// The row of `label` in a status table: its value column, or "<none>".
std::string row(const std::string& table, const std::string& label) {
  std::smatch m;
  if (!std::regex_search(table, m, std::regex("(^|\n)  " + label + "  +([^\n]*)"))) return "<none>";
  return m[2];
}

// A device lost and back is said in the short status (outside pass 26, user M1: after a week
// the row read "running", the losses only in --all and the underflows at 0 again).
TEST(StemctlFormat, TheDeviceRowSaysHowOftenItWasLost) {
  auto f = fields({{"device", OscArg::Str("running")}, {"device_losses", OscArg::Int(2)}});
  EXPECT_EQ(row(ctl::status_summary(f), "device"), "running (lost 2 times since stemd started: the log says when)");
  f = fields({{"device", OscArg::Str("running")}, {"device_losses", OscArg::Int(1)}});
  EXPECT_EQ(row(ctl::status_summary(f), "device"), "running (lost 1 time since stemd started: the log says when)");
  EXPECT_EQ(row(ctl::status_summary(fields({{"device", OscArg::Str("running")}, {"device_losses", OscArg::Int(0)}})),
                "device"),
            "running");
  f = fields(
      {{"device", OscArg::Str("lost")}, {"device_lost_s", OscArg::Float(3.5f)}, {"device_losses", OscArg::Int(1)}});
  EXPECT_EQ(row(ctl::status_summary(f), "device"), "lost for 3.5 s");
  // Since the loss was carried across the audio side's restart: when the last began, how long it lasted.
  f = fields({{"device", OscArg::Str("running")},
              {"device_losses", OscArg::Int(2)},
              {"device_last_loss_age_s", OscArg::Float(1263.0f)},
              {"device_last_loss_s", OscArg::Float(6.04f)}});
  EXPECT_EQ(row(ctl::status_summary(f), "device"),
            "running (lost 2 times since stemd started; the last 0:21:03 ago, for 6.0 s)");
  EXPECT_EQ(row(ctl::status_table(f), "device last lost"), "0:21:03 ago");
  EXPECT_EQ(row(ctl::status_table(f), "device last lost for"), "6.0 s");
}

// EQ off is said with its cause, and the web monitor's own subscription is not a client's
// (outside pass 26, user L2 and L7).
TEST(StemctlFormat, TheAllTableSaysWhyEqIsOffAndWhoseSubscriptionItIs) {
  auto f = fields({{"eq_enabled", OscArg::Int(0)},
                   {"eq_off_reason", OscArg::Str("crowdstream mode's default (--port without --enable-filters)")},
                   {"subscribers", OscArg::Int(1)},
                   {"subscribers_monitor", OscArg::Int(1)}});
  const std::string t = ctl::status_table(f);
  EXPECT_EQ(row(t, "deck EQ"),
            "off: crowdstream mode's default (--port without --enable-filters); EQ messages are answered and ignored");
  EXPECT_EQ(row(t, "event subscribers"), "1 (the web monitor's own: no client)");
  EXPECT_EQ(t.find("eq_off_reason"), std::string::npos) << t;
  EXPECT_EQ(t.find("subscribers_monitor"), std::string::npos) << t;
  f = fields(
      {{"eq_enabled", OscArg::Int(1)}, {"subscribers", OscArg::Int(3)}, {"subscribers_monitor", OscArg::Int(1)}});
  EXPECT_EQ(row(ctl::status_table(f), "deck EQ"), "applied");
  EXPECT_EQ(row(ctl::status_table(f), "event subscribers"), "3 (the web monitor's own and 2 clients)");
  f = fields({{"subscribers", OscArg::Int(2)}, {"subscribers_monitor", OscArg::Int(0)}});
  EXPECT_EQ(row(ctl::status_table(f), "event subscribers"), "2");
}

TEST(StemctlFormat, APausedVoiceIsCountedApartFromThePlayingOnes) {
  const auto f = fields({{"voices", OscArg::Int(3)}, {"voices_paused", OscArg::Int(1)}});
  EXPECT_EQ(row(ctl::status_summary(f), "voices"), "2 playing, 1 paused") << ctl::status_summary(f);
  EXPECT_NE(ctl::status_line(f).find("voices 2 playing, 1 paused · "), std::string::npos) << ctl::status_line(f);
  EXPECT_EQ(row(ctl::status_table(f), "voices paused"), "1");
  // None paused: no ", 0 paused"; a daemon that does not say: all of them, as it counted them.
  EXPECT_EQ(row(ctl::status_summary(fields({{"voices", OscArg::Int(2)}, {"voices_paused", OscArg::Int(0)}})), "voices"),
            "2 playing");
  EXPECT_EQ(row(ctl::status_summary(fields({{"voices", OscArg::Int(2)}})), "voices"), "2 playing");
}

TEST(StemctlFormat, TheTempoRowIsShownOnlyWhileATempoIsInUse) {
  std::vector<std::pair<std::string, OscArg>> kv{{"tempo_bpm", OscArg::Float(120)},  {"beat", OscArg::Float(6.5)},
                                                 {"beat_phase", OscArg::Float(2.5)}, {"quantum", OscArg::Float(4)},
                                                 {"link", OscArg::Int(0)},           {"tempo_in_use", OscArg::Int(0)}};
  EXPECT_EQ(ctl::status_summary(fields(kv)).find("tempo"), std::string::npos) << ctl::status_summary(fields(kv));
  EXPECT_NE(row(ctl::status_table(fields(kv)), "tempo in use").rfind("no (none set", 0), std::string::npos);
  kv.back().second = OscArg::Int(1);
  EXPECT_EQ(row(ctl::status_summary(fields(kv)), "tempo"), "120.00 bpm, beat 6.50 (phase 2.50 of 4)");
  kv.pop_back();  // a daemon that does not say whether: shown, as it was
  EXPECT_EQ(row(ctl::status_summary(fields(kv)), "tempo"), "120.00 bpm, beat 6.50 (phase 2.50 of 4)");
}

// New-user pass 26 (L7): sync.md tells a user to start a synchronised cue once every box's clock
// has tracked ~8 s, and promised "the clock DLL error" in `stemctl status`; the short status had
// neither (clock_locked_s was only in --all). Now a clock row, with --link or once timed bundles came.
TEST(StemctlFormat, TheShortStatusHasAClockRowWithLinkOrTimetags) {
  std::vector<std::pair<std::string, OscArg>> kv{{"clock_error_us", OscArg::Float(2.5f)},
                                                 {"clock_error_max_us", OscArg::Float(12.25f)},
                                                 {"clock_resets", OscArg::Int64(0)},
                                                 {"clock_locked_s", OscArg::Float(3.25f)},
                                                 {"link", OscArg::Int(0)},
                                                 {"timed_messages", OscArg::Int64(0)}};
  EXPECT_EQ(row(ctl::status_summary(fields(kv)), "clock"), "<none>") << "neither Link nor timetags: no row";
  kv[4].second = OscArg::Int(1);  // --link
  EXPECT_EQ(row(ctl::status_summary(fields(kv)), "clock"),
            "settling: tracked 3.2 s of the ~8 s a synchronised start waits for, error max 12.2 µs");
  kv[4].second = OscArg::Int(0);
  kv[5].second = OscArg::Int64(2);  // timed bundles came, no Link
  kv[3].second = OscArg::Float(75.0f);
  EXPECT_EQ(row(ctl::status_summary(fields(kv)), "clock"),
            "ready for synchronised starts (tracked 0:01:15), error max 12.2 µs");
  kv[1].second = OscArg::Float(740.0f);  // tracking, but the device's timing jumps
  kv[2].second = OscArg::Int64(1);
  kv[3].second = OscArg::Float(9.0f);
  EXPECT_EQ(row(ctl::status_summary(fields(kv)), "clock"),
            "tracked 9.0 s, but unsteady: its error reached 740 µs in the last 1–2 s (the device's timing), error max "
            "740.0 µs, 1 restart");
  EXPECT_EQ(row(ctl::status_table(fields(kv)), "OSC messages of timed bundles \\(on time or late\\)"), "2");
}

// New-user pass 28, L4: a frozen server (device lost, the stream kept) showed "3 playing" while
// nothing was heard; a killed one said its voices wait.
TEST(StemctlFormat, VoicesOfALostDeviceAreNotHeard) {
  std::vector<std::pair<std::string, OscArg>> kv{{"device", OscArg::Str("lost")},
                                                 {"voices", OscArg::Int(4)},
                                                 {"voices_paused", OscArg::Int(1)},
                                                 {"voices_waiting", OscArg::Int(0)}};
  EXPECT_EQ(row(ctl::status_summary(fields(kv)), "voices"),
            "3 playing, 1 paused (not heard while the device is lost: they play on when it is back)");
  kv[0].second = OscArg::Str("running");
  EXPECT_EQ(row(ctl::status_summary(fields(kv)), "voices"), "3 playing, 1 paused");
  kv[0].second = OscArg::Str("lost");
  kv[1].second = OscArg::Int(1);
  EXPECT_EQ(row(ctl::status_summary(fields(kv)), "voices"), "0 playing, 1 paused") << "nothing plays: nothing to say";
}

// New-user pass 26 (M3, L7): the peers in the health line, and "1 peer", not "1 peers".
TEST(StemctlFormat, TheTempoRowSaysOnePeer) {
  std::vector<std::pair<std::string, OscArg>> kv{{"tempo_bpm", OscArg::Float(120)},  {"beat", OscArg::Float(6.5)},
                                                 {"beat_phase", OscArg::Float(2.5)}, {"quantum", OscArg::Float(4)},
                                                 {"link", OscArg::Int(1)},           {"link_peers", OscArg::Int(1)}};
  EXPECT_EQ(row(ctl::status_summary(fields(kv)), "tempo"), "120.00 bpm, beat 6.50 (phase 2.50 of 4), Link: 1 peer");
}

TEST(StemctlFormat, BytesAreMebibytesAndSaySo) {
  EXPECT_EQ(ctl::fmt_bytes(1024.0 * 1024.0), "1.00 MiB");
  EXPECT_EQ(ctl::fmt_bytes(2048.0 * 1024.0 * 1024.0), "2048.0 MiB");
  const auto f =
      fields({{"memory_bytes", OscArg::Int64(22LL << 20)}, {"memory_limit_bytes", OscArg::Int64(2048LL << 20)}});
  EXPECT_EQ(row(ctl::status_summary(f), "memory held"), "22.0 MiB of 2048.0 MiB (--max-memory-mb)");
  EXPECT_EQ(row(ctl::status_table(f), "memory limit"), "2048.0 MiB (--max-memory-mb)");
}

// The short status's open files (new-user pass 25, M2): only `status --all` had them.
TEST(StemctlFormat, TheShortStatusHasAnOpenFilesRow) {
  std::vector<std::pair<std::string, OscArg>> kv{
      {"fds_open", OscArg::Int(75)}, {"fds_limit", OscArg::Int(100)}, {"fds_reserve", OscArg::Int(25)}};
  EXPECT_EQ(row(ctl::status_summary(fields(kv)), "open files"), "75 of 100 in use, a reserve of 25 kept");
  kv.emplace_back("fds_refused", OscArg::Int64(3));
  EXPECT_EQ(row(ctl::status_summary(fields(kv)), "open files"),
            "75 of 100 in use, a reserve of 25 kept; streamed loads refused: 3");
  EXPECT_EQ(row(ctl::status_table(fields(kv)), "streamed loads refused for descriptors"), "3");
}

TEST(StemctlFormat, CpuSaysWhoseShareOfWhat) {
  const auto f = fields({{"cpu_load", OscArg::Float(0.25)}, {"loader_cpu_pct", OscArg::Float(3.5)}});
  EXPECT_EQ(row(ctl::status_table(f), "audio callback CPU"), "25.0% of one core");
  EXPECT_EQ(row(ctl::status_table(f), "loader CPU \\(last 100 ms\\)"), "3.5% of one core");
  EXPECT_NE(ctl::status_line(f).find(" · audio callback 25.0% of one core · "), std::string::npos)
      << ctl::status_line(f);
}

// A /done /stemd/voices reply: count, rows of `per_row` values, total, next.
OscMessage voices_reply(const std::vector<std::vector<OscArg>>& rows) {
  OscMessage m{"/done", {OscArg::Str("/stemd/voices"), OscArg::Int(static_cast<std::int64_t>(rows.size()))}};
  for (const auto& r : rows) m.args.insert(m.args.end(), r.begin(), r.end());
  m.args.push_back(OscArg::Int(static_cast<std::int64_t>(rows.size())));
  m.args.push_back(OscArg::Int(-1));
  return m;
}
std::vector<OscArg> voice(int id, const char* name, const char* state) {
  return {OscArg::Int(id),    OscArg::Str(name), OscArg::Float(1.5), OscArg::Float(30),
          OscArg::Float(1.0), OscArg::Int64(0),  OscArg::Str(state)};
}
std::vector<OscArg> with_mix(std::vector<OscArg> v, double volume, double rate, double tempo) {
  v.insert(v.end(), {OscArg::Float(volume), OscArg::Float(rate), OscArg::Float(tempo)});
  return v;
}

TEST(StemctlFormat, VoicesShowTheVolumeAndTheRateAndTempoWhereSet) {
  const OscMessage m = voices_reply({with_mix(voice(1, "drums", "playing"), 1.0, 1.0, 1.0),
                                     with_mix(voice(2, "bass", "paused"), 0.5, 1.25, 1.0),
                                     with_mix(voice(3, "pad", "waiting (device lost)"), -1, -1, -1)});
  std::vector<ctl::VoiceRow> rows;
  std::string error;
  ASSERT_TRUE(ctl::parse_voices(m, rows, error, ctl::kVoiceFieldsMix)) << error;
  ASSERT_EQ(rows.size(), 3u);
  const std::string t = ctl::voices_table(rows);
  EXPECT_TRUE(std::regex_search(t, std::regex("^ID +NAME +POSITION +DURATION +VOLUME +RATE +RING +UNDERRUNS +STATE\n")))
      << t;
  EXPECT_TRUE(std::regex_search(t, std::regex(R"(\n 1 +drums .* 1\.00 \(\+0\.0 dB\) +1\.00 +\[)"))) << t;
  EXPECT_TRUE(std::regex_search(t, std::regex(R"(\n 2 +bass .* 0\.50 \(-6\.0 dB\) +1\.25 +\[.* paused\n)"))) << t;
  EXPECT_TRUE(std::regex_search(t, std::regex("\n 3 +pad .* — +— +\\["))) << "not known while it waits: " << t;
  EXPECT_EQ(t.find("TEMPO"), std::string::npos) << "no voice is time-stretched: " << t;

  const auto j = nlohmann::json::parse(ctl::voices_json(rows));
  ASSERT_EQ(j.size(), 3u);
  EXPECT_EQ(j[1]["volume"], 0.5);
  EXPECT_NEAR(j[1]["volume_db"].get<double>(), -6.0206, 1e-4);
  EXPECT_EQ(j[1]["rate"], 1.25);
  EXPECT_EQ(j[1]["tempo"], 1.0);
  EXPECT_TRUE(j[2]["volume"].is_null() && j[2]["volume_db"].is_null() && j[2]["rate"].is_null()) << j[2];

  // A stretched voice: the TEMPO column; silence: −∞ dB is no JSON number.
  ASSERT_TRUE(ctl::parse_voices(voices_reply({with_mix(voice(4, "vox", "playing"), 0.0, 1.0, 0.9)}), rows, error, 10))
      << error;
  EXPECT_TRUE(std::regex_search(ctl::voices_table(rows), std::regex(R"(VOLUME +TEMPO +RING)")))
      << ctl::voices_table(rows);
  EXPECT_NE(ctl::voices_table(rows).find(" 0.90 "), std::string::npos) << ctl::voices_table(rows);
  EXPECT_TRUE(nlohmann::json::parse(ctl::voices_json(rows))[0]["volume_db"].is_null());
}

// An older daemon's rows (no mix fields): the table as it was, no empty columns; JSON without them.
TEST(StemctlFormat, VoicesOfADaemonWithoutTheMixFieldsKeepTheirColumns) {
  std::vector<ctl::VoiceRow> rows;
  std::string error;
  ASSERT_TRUE(ctl::parse_voices(voices_reply({voice(1, "drums", "playing")}), rows, error)) << error;
  EXPECT_TRUE(std::regex_search(ctl::voices_table(rows), std::regex("^ID +NAME +POSITION +DURATION +RING ")))
      << ctl::voices_table(rows);
  EXPECT_FALSE(nlohmann::json::parse(ctl::voices_json(rows))[0].contains("volume"));
}

app::HealthLine health(bool running) {
  app::HealthLine h;
  h.voices = 0;
  h.cpu_pct = 1.4;
  h.resident_bytes = 33.1 * 1024 * 1024;
  h.device_running = running;
  h.device = running ? "running" : "waiting";
  return h;
}

// stemctl watch on a terminal: each frame cleared the screen first (it flickered), and its summary
// line (≈ 125 columns) wrapped mid-word at 80 (new-user pass 25, L7).
TEST(StemctlFormat, AWatchFrameIsDrawnInPlaceAndItsFieldsWrapAtTheirSeparators) {
  const std::string text =
      "stemd 127.0.0.1:57120 · 12:00:00 · Ctrl-C to quit\n"
      "voices 1 playing · audio callback 0.4% of one core · p99 1.2% of budget · underruns 0 · device underflows 0 "
      "· uptime 3 min\n";
  const std::string frame = ctl::terminal_frame(text, 80);
  EXPECT_EQ(frame.find("\x1b[2J"), std::string::npos) << "the whole screen is not cleared";
  EXPECT_EQ(frame,
            "\x1b[H"
            "stemd 127.0.0.1:57120 · 12:00:00 · Ctrl-C to quit\x1b[K\n"
            "voices 1 playing · audio callback 0.4% of one core · p99 1.2% of budget\x1b[K\n"
            "  underruns 0 · device underflows 0 · uptime 3 min\x1b[K\n"
            "\x1b[J");
  // Wide enough (or the width unknown): the line stays whole.
  EXPECT_NE(ctl::terminal_frame(text, 200).find("budget · underruns"), std::string::npos);
  EXPECT_NE(ctl::terminal_frame(text, 0).find("budget · underruns"), std::string::npos);
  // A line without separators is left to the terminal; an empty line is cleared too.
  EXPECT_EQ(ctl::terminal_frame(std::string(90, 'x') + "\n\n", 80),
            "\x1b[H" + std::string(90, 'x') + "\x1b[K\n\x1b[K\n\x1b[J");
}

// A source's name and path are a client's choice: stemctl printed them raw, so any OSC client could
// set the operator's window title, write the clipboard (OSC 52), clear the screen or forge a row
// (outside pass 25, N1).
TEST(StemctlFormat, StringsFromTheDaemonReachTheTerminalEscaped) {
  const auto msg = [](const char* address, std::vector<OscArg> args) { return OscMessage{address, std::move(args)}; };
  const auto Str = [](const std::string& v) { return OscArg::Str(v); };
  const auto Int = [](std::int64_t v) { return OscArg::Int(v); };
  const auto Dbl = [](double v) { return OscArg::Double(v); };
  const std::string evil =
      "\x1b]0;PWNED\a\x1b]52;c;ZWNobyBwd25lZA==\a\x1b[2J\x1b[31mRED\r\nfake line\xc2\x9b"
      "31m\xff";
  const std::string shown = ctl::terminal_text(evil);
  for (char c : shown) EXPECT_GE(static_cast<unsigned char>(c), 0x20) << shown;
  EXPECT_EQ(shown.find("\xc2\x9b"), std::string::npos) << "C1 CSI";
  EXPECT_EQ(shown, R"(\x1b]0;PWNED\x07\x1b]52;c;ZWNobyBwd25lZA==\x07\x1b[2J\x1b[31mRED\r\nfake line\u009b31m\xff)");
  EXPECT_EQ(ctl::terminal_text("Ünïcode · stems/bass.wav"), "Ünïcode · stems/bass.wav");  // valid UTF-8 kept

  // The tables (list, voices), a /fail's reason and a message (send, events) all go through it.
  std::vector<ctl::SourceRow> rows;
  std::string error;
  ASSERT_TRUE(ctl::parse_list(msg("/done", {Str("/stemd/list"), Int(1), Int(7), Str(evil), Str("/m/" + evil), Int(2),
                                            Dbl(10.0), Int(1), Int(0)}),
                              rows, error))
      << error;
  const std::string table = ctl::list_table(rows);
  EXPECT_EQ(table.find('\x1b'), std::string::npos) << table;
  EXPECT_EQ(
      ctl::describe_failure(msg("/fail", {Str("/stemd/load"), Int(1), Str("no such file: " + evil)})).find('\x1b'),
      std::string::npos);
  const std::string event = ctl::message_text(msg("/stemd/source/loaded", {Int(3), Str(evil), Dbl(10.0)}));
  EXPECT_EQ(event.find('\x1b'), std::string::npos) << event;
  EXPECT_EQ(event.rfind("/stemd/source/loaded 3 \"\\x1b]0;PWNED", 0), 0u) << event;
  // The daemon's own reasons that list devices keep a line each.
  EXPECT_EQ(ctl::terminal_lines("PortAudio sees:\n  0  system\n"), "PortAudio sees:\n  0  system\n");
}

TEST(HealthLine, AMissingDeviceIsSaidFirstNotAnUnknownPolicy) {
  app::HealthLine h = health(false);
  h.device_waiting = true;
  h.device_away_s = 3.6;
  h.device_reason = "PortAudio sees no output device";
  h.device_attempts = 3;
  h.device_name = "usb";
  EXPECT_EQ(app::health_summary(h),
            "device 'usb' not there yet, waiting 3.6 s (PortAudio sees no output device; attempt 3, retrying): "
            "nothing plays until it appears; 0 voices, CPU 1.4% of one core, memory 33.1 MiB resident");
  h.device_waiting = false;  // it ran, and went away
  h.device_reason = "the JACK server went away";
  EXPECT_EQ(app::health_summary(h).rfind("device 'usb' lost for 3.6 s (the JACK server went away; attempt 3, "
                                         "retrying): nothing plays until it is back; ",
                                         0),
            0u)
      << app::health_summary(h);
}

// The reason for a missing device may list PortAudio's devices, one per line; the health line stays one
// line, and says where the list is (CI on stop 35: "... (no output device matches 'x'. PortAudio sees:"
// and the list ran on below the health line).
TEST(HealthLine, AReasonThatListsDevicesStaysOnOneLine) {
  app::HealthLine h = health(false);
  h.device_waiting = true;
  h.device_away_s = 1.3;
  h.device_reason =
      "no output device matches 'usb'. PortAudio sees:\n  0  system (JACK Audio Connection Kit)\n"
      "  1  default (ALSA)\n";
  h.device_name = "usb";
  EXPECT_EQ(app::health_summary(h),
            "device 'usb' not there yet, waiting 1.3 s (no output device matches 'usb'; PortAudio sees 2 devices, "
            "--list-devices names them): nothing plays until it appears; 0 voices, CPU 1.4% of one core, "
            "memory 33.1 MiB resident");
  h.device_reason = "first\nsecond";  // any other line break is a space
  EXPECT_EQ(app::health_summary(h).find('\n'), std::string::npos) << app::health_summary(h);
}

TEST(HealthLine, ARunningDeviceKeepsTheLineScriptsRead) {
  app::HealthLine h = health(true);
  h.voices = 3;
  h.callback_pct = 0.7;
  h.rt_policy = "SCHED_FIFO 70";
  EXPECT_EQ(app::health_summary(h),
            "3 voices, CPU 1.4% of one core (audio callback 0.7%), SCHED_FIFO 70, lowest ring fill 100%, voice "
            "underruns 0, device underflows 0, memory 33.1 MiB resident, device running");
  h.link_peers = 1;  // --link: the peers last (new-user pass 26, M3)
  EXPECT_EQ(app::health_summary(h),
            "3 voices, CPU 1.4% of one core (audio callback 0.7%), SCHED_FIFO 70, lowest ring fill 100%, voice "
            "underruns 0, device underflows 0, memory 33.1 MiB resident, device running, Link: 1 peer");
  h.voices = 1;  // "1 voices" (new-user passes 26 and 28, L7)
  EXPECT_EQ(app::health_summary(h).rfind("1 voice, CPU", 0), 0u) << app::health_summary(h);
  h.voices = 3;
  h.link_peers = 0;
  EXPECT_NE(app::health_summary(h).find(", device running, Link: 0 peers"), std::string::npos)
      << app::health_summary(h);
  h.device_running = false;  // the device missing: the peers still said
  EXPECT_NE(app::health_summary(h).find(" MiB resident, Link: 0 peers"), std::string::npos) << app::health_summary(h);
  h.device_running = true;
  h.link_peers = -1;
  h.rt_policy.clear();  // the audio thread not seen yet: said in words, not "unknown"
  EXPECT_NE(app::health_summary(h).find(", audio thread not started yet, "), std::string::npos)
      << app::health_summary(h);
}

app::TuneResult measured(const char* scheduling, bool realtime) {
  app::TuneResult r;
  r.buffer_size = 256;
  r.sample_rate = 48000;
  r.callbacks = 100;
  r.scheduling = scheduling;
  r.realtime = realtime;
  return r;
}

TEST(TuneVerdict, SaysWhenItMeasuredWithoutRealTimeSchedulingAndWhatThatMeans) {
  EXPECT_EQ(app::tune_scheduling_note({measured("SCHED_FIFO 70", true)}, false), "");
  EXPECT_EQ(app::tune_scheduling_note({measured("", false)}, false), "") << "not known: nothing claimed";
  app::TuneResult other = measured("SCHED_OTHER", false);
  other.rt_refused = "SCHED_FIFO 70: Operation not permitted";
  const std::string note = app::tune_scheduling_note({measured("SCHED_FIFO 70", true), other}, false);
  EXPECT_NE(note.find("WITHOUT real-time scheduling: the audio thread ran SCHED_OTHER (raising it was not "
                      "permitted: SCHED_FIFO 70: Operation not permitted)"),
            std::string::npos)
      << note;
  EXPECT_NE(note.find("underflows and p99 above include waits"), std::string::npos) << note;
  EXPECT_NE(note.find("errs large"), std::string::npos) << note;
  EXPECT_NE(note.find("LimitRTPRIO=95"), std::string::npos) << note;
  EXPECT_NE(app::tune_scheduling_note({other}, true).find("jackd with -R"), std::string::npos);
}

}  // namespace
}  // namespace stemd::test
