// Scripted sessions (--script FILE) [main, before the stream starts].
//
// A script is text, one OSC message per line, each at a time in seconds from the start of the
// stream: "12.5 /cue B stems/bass.wav 0.0". Arguments are typed as stemctl infers them
// (integers, numbers with a point or exponent, true/false, otherwise strings; "quotes" keep
// spaces). Blank lines and lines starting with # are skipped. Every message is routed at its
// exact frame before the stream starts, in time order (lines at one time in the file's order),
// so an offline render of a script is deterministic.
#pragma once

#include "control/osc.hpp"

#include <string>
#include <vector>

namespace stemd::app {

struct ScriptLine {
  double seconds = 0;
  control::OscMessage message;
  int line = 0;
};

// False with "FILE:LINE: reason" on the first bad line.
bool load_script(const std::string& path, std::vector<ScriptLine>& out, std::string& error);
// The same for FILE's text, already read (at start: through the helper, read_start_file).
inline constexpr std::size_t kMaxScriptBytes = std::size_t{64} << 20;
bool parse_script(const std::string& path, const std::string& text, std::vector<ScriptLine>& out, std::string& error);

}  // namespace stemd::app
