// stemctl's terminal output: a live view's frame drawn in place. [stemctl's one thread]
#pragma once

#include <cstddef>
#include <string>

namespace stemd::ctl {

// A watch frame for a terminal `width` columns wide, drawn over the last one in place: home, each
// line cleared to its end, everything below the frame cleared — never the whole screen first
// (that flickered). A line of "a · b · c" fields wider than the terminal is wrapped at its
// separators, each further line indented by two. `width` 0: not known, nothing wrapped.
std::string terminal_frame(const std::string& text, std::size_t width);

}  // namespace stemd::ctl
