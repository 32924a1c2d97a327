// stemctl's text: reading arguments typed on a command line, and printing the daemon's replies
// (status, list, voices) as tables people can read.
#pragma once

#include "control/osc.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace stemd::ctl {

using control::OscArg;
using control::OscMessage;

// One `send` argument: "i:5 h:7 f:1.0 d:2 s:abc S:sym c:x T F N I", or inferred: an integer
// → i (h beyond 32 bits), a number with a dot or exponent → f, true/false → T/F, else s.
// False with a reason for an explicit type whose value does not parse ("i:abc").
bool parse_send_arg(const std::string& text, OscArg& out, std::string& error);

// The parts of a reply: its values after the address.
std::vector<OscArg> reply_values(const OscMessage& reply);
// "stemctl: /stemd/play 5: id 5 is not loaded" (without the "stemctl: ").
std::string describe_failure(const OscMessage& reply);

// key → value pairs of a status reply, in order.
using StatusFields = std::vector<std::pair<std::string, OscArg>>;
StatusFields status_fields(const OscMessage& reply);
const OscArg* find_field(const StatusFields& f, const std::string& key);
double field_number(const StatusFields& f, const std::string& key, double def = 0.0);

struct SourceRow {
  std::int64_t id = 0;
  std::string name, path;
  double duration_s = 0;
  bool streamed = false, playing = false;
};
// /done /stemd/list count, then id name path duration_s streamed playing per source.
bool parse_list(const OscMessage& reply, std::vector<SourceRow>& rows, std::string& error);

struct VoiceRow {
  std::int64_t id = 0;
  std::string name;
  double position_s = 0, duration_s = 0, ring_fill = 0;
  std::int64_t underruns = 0;
  std::string state;
  // With /stemd/voices' `mix` 1 (kVoiceFieldsMix): its volume (linear gain, as set), playback
  // rate (speed and pitch, as heard) and time-stretch tempo (1 = none); −1 where the daemon does
  // not know them (a voice waiting for the device). has_mix false: a reply without them.
  bool has_mix = false;
  double volume = 1, rate = 1, tempo = 1;
};
// Fields per row of /stemd/voices: without its `mix` argument, and with `mix` 1.
inline constexpr std::size_t kVoiceFields = 7, kVoiceFieldsMix = 10;
// /done /stemd/voices count, then id name position_s duration_s ring_fill underruns state per voice
// (then volume rate tempo with `fields_per_row` kVoiceFieldsMix).
bool parse_voices(const OscMessage& reply, std::vector<VoiceRow>& rows, std::string& error,
                  std::size_t fields_per_row = kVoiceFields);
// A paged reply's (/stemd/list, /stemd/voices) next offset: the last of the two values after
// the rows (total, next). −1 when this was the last page, or from a daemon that does not page.
std::int64_t next_page(const OscMessage& reply, std::size_t fields_per_row);
// The rows a paged reply announces (its count; 0 when it has none).
std::size_t page_rows(const OscMessage& reply);

// Text.
std::string fmt_time(double seconds);               // "3:05.2", "1:02:03.0"
std::string fmt_uptime(double seconds);             // "1d 02:03:04", "0:01:23"
std::string fmt_bytes(double bytes);                // "0.75 MiB", "123.4 MiB" (2^20 bytes, as --max-memory-mb)
std::string ring_bar(double fill, int width = 10);  // "[#######---]"

// Every field of a status reply (`status --all`).
std::string status_table(const StatusFields& f);
// What a user needs (`status`, at most 11 lines after the heading): backend and rate, the
// device's state when the daemon reports one, latency,
// voices (playing and paused), sources, memory held of the limit, underruns, device underflows,
// callback p99 against the budget, uptime, the test tone while it sounds, the tempo when one is
// in use (tempo_in_use; always from a daemon that does not say), and the stream clock (its DLL:
// ready for synchronised starts?) with --link or once timed bundles came. Fields the daemon did not
// send are left out.
std::string status_summary(const StatusFields& f);

// JSON (`--json`), one document, newline-terminated. Numbers stay numbers (ints as integers,
// floats as floats; NaN/Inf, which JSON has not, become null), strings are escaped, and bytes
// that are not UTF-8 become U+FFFD — the output is always valid JSON.
std::string status_json(const StatusFields& f);             // {"key": value, …} in the daemon's order
std::string list_json(const std::vector<SourceRow>& rows);  // [{"id":…, "name":…, …}, …]
// [{"id":…, "position_s":…, …, and with the mix fields "volume", "volume_db", "rate", "tempo"
// (null where the daemon does not know them)}, …]
std::string voices_json(const std::vector<VoiceRow>& rows);
// One notification as one line of JSON: {"time": "2026-12-02T15:31:06.123Z", "event":
// "/stemd/voice/ended", "args": [...], and the arguments by name for the known events:
// "id", "voice", "name" / "reason" / "count", or "total" for /stemd/device/underflow}.
std::string event_json(const OscMessage& m, const std::string& utc_time);
std::string list_table(const std::vector<SourceRow>& rows);
// With the mix fields: VOLUME (gain and dB), and RATE and TEMPO when a voice's differs from 1.
std::string voices_table(const std::vector<VoiceRow>& rows);
// The one-line summary of watch: voices, the audio callback's CPU (of one core), underruns,
// device underflows, uptime.
std::string status_line(const StatusFields& f);
// stemctl list's last line: the sources the daemon waits for (status sources_waiting, their files
// missing), "" when none.
std::string list_waiting_line(const StatusFields& f);

}  // namespace stemd::ctl
