// What stemctl's text files share (format.cpp, format_status.cpp): cells, tables and values as
// text. Internal to src/ctl.
#pragma once

#include "format.hpp"

#include <string>
#include <vector>

namespace stemd::ctl::detail {

std::string fmt(const char* f, double v);  // printf of one number
// Rows of cells; the first row is the header. Columns in `right` are right-aligned.
std::string table(const std::vector<std::vector<std::string>>& rows, const std::vector<bool>& right);
std::string value_text(const OscArg& a);  // a string through terminal_text, anything else as OSC prints it
std::string raw_text(const OscArg& a);    // a string as sent (for --json), anything else as OSC prints it
std::string level_text(double v);         // "0.50 (-6.0 dB)"
std::string integer_text(const OscArg& a);

}  // namespace stemd::ctl::detail
