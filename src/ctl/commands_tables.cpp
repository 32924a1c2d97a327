// stemctl's table commands (see commands.hpp): list, voices and status — each reads a report of
// the daemon's (paged for list and voices) and prints it as a table or JSON. [stemctl's one thread]
#include "commands.hpp"
#include "format_text.hpp"

#include <cstdio>

namespace stemd::ctl {
namespace {

// A paged table: every page's rows, then printed as a table or JSON.
template <class Row>
int run_table(Session& s, const char* address, std::size_t fields_per_row,
              bool (*parse)(const OscMessage&, std::vector<Row>&, std::string&, std::size_t),
              std::string (*as_text)(const std::vector<Row>&), std::string (*as_json)(const std::vector<Row>&),
              bool json, const std::vector<OscArg>& wide = {}, std::size_t wide_fields = 0) {
  std::vector<Row> all;
  const int r = s.pages(
      address, fields_per_row,
      [&](const OscMessage& reply, std::size_t fields, std::string& error) {
        std::vector<Row> rows;
        if (!parse(reply, rows, error, fields)) return false;
        all.insert(all.end(), rows.begin(), rows.end());
        return true;
      },
      wide, wide_fields);
  // A table stopped short (a reply that is not a stemd's) is printed as far as it came.
  if (r == kExitOk || !all.empty()) std::fputs((json ? as_json(all) : as_text(all)).c_str(), stdout);
  return r;
}

bool parse_list_rows(const OscMessage& reply, std::vector<SourceRow>& rows, std::string& error, std::size_t) {
  return parse_list(reply, rows, error);
}

}  // namespace

void define_list(CLI::App& sub, Args& a) {
  sub.add_flag("--json", a.json, "Print JSON: an array of {id, name, path, duration_s, streamed, playing}");
}

// Then the sources the daemon waits for (the state file's, their files missing: a stick not
// mounted), from its status: "no sources loaded" alone read as an empty daemon (new-user pass 29, M2).
int run_list(Session& s, Args& a, const CLI::App&) {
  const int r = run_table<SourceRow>(s, "/stemd/list", 6, parse_list_rows, list_table, list_json, a.json);
  if (r != kExitOk || a.json) return r;
  std::string line;
  s.run(msg("/stemd/status"), [&](const OscMessage& reply) { line = list_waiting_line(status_fields(reply)); });
  std::fputs(line.c_str(), stdout);
  return r;
}

void define_voices(CLI::App& sub, Args& a) {
  sub.add_flag("--json", a.json,
               "Print JSON: an array of {id, name, position_s, duration_s, ring_fill, underruns, state, volume, "
               "volume_db, rate, tempo}");
  sub.footer(kFileSecondsNote);
}

// With /stemd/voices' mix 1: each voice's volume, rate and tempo too (not from a daemon older than it).
int run_voices(Session& s, Args& a, const CLI::App&) {
  return run_table<VoiceRow>(s, "/stemd/voices", kVoiceFields, parse_voices, voices_table, voices_json, a.json,
                             {OscArg::Int(1)}, kVoiceFieldsMix);
}

void define_status(CLI::App& sub, Args& a) {
  sub.add_flag("-a,--all", a.all, "Every field the daemon reports");
  sub.add_flag("--json", a.json, "Print every field as one JSON object (numbers as numbers)");
}

int run_status(Session& s, Args& a, const CLI::App&) {
  return s.run(msg("/stemd/status"), [&](const OscMessage& reply) {
    const StatusFields f = status_fields(reply);
    if (a.json) {
      std::fputs(status_json(f).c_str(), stdout);
      return;
    }
    // The build running heads the table ("stemd 0.1.0 (git …) at 127.0.0.1:57120"); an older daemon: "stemd at …".
    const OscArg* v = find_field(f, "version");
    std::printf("%s at %s\n%s", v != nullptr ? detail::value_text(*v).c_str() : "stemd", s.target_text().c_str(),
                (a.all ? status_table(f) : status_summary(f)).c_str());
  });
}

}  // namespace stemd::ctl
