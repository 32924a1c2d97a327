// stemctl's terminal output: a live view's frame drawn in place. [stemctl's one thread]
#pragma once

#include "control/osc.hpp"

#include <cstddef>
#include <string>
#include <string_view>

namespace stemd::ctl {

// A watch frame for a terminal `width` columns wide, drawn over the last one in place: home, each
// line cleared to its end, everything below the frame cleared — never the whole screen first
// (that flickered). A line of "a · b · c" fields wider than the terminal is wrapped at its
// separators, each further line indented by two. `width` 0: not known, nothing wrapped.
std::string terminal_frame(const std::string& text, std::size_t width);

// A string from the daemon as it may reach the operator's terminal — a source's name and path are
// a client's choice (outside pass 25, N1: they went out raw, so any OSC client could set the
// window title, clear the screen, forge a table row or write the clipboard through OSC 52): one
// line, control characters (C0, DEL, C1), backslashes and invalid UTF-8 shown as escapes (\x1b,
// \u009b, \n, \\), as the daemon's log shows them (base::log_escape), never cut.
std::string terminal_text(std::string_view s);
// The same line by line, the line breaks kept: the daemon's own reasons that list things.
std::string terminal_lines(std::string_view s);
// A message as OSC prints it (address "string" 1 2.5), its address and strings through terminal_text.
std::string message_text(const control::OscMessage& m);

}  // namespace stemd::ctl
