// Logging set-up (spdlog) for the main thread [main]. Nothing logs from the audio thread.
#pragma once

#include <spdlog/common.h>

#include <string>
#include <vector>

namespace stemd::app {

// The names --log-level takes (stemd and stemd tune): the ones the log prints, and spdlog's short
// forms (warn, err). spdlog::level::from_str() reads each of them.
inline const std::vector<std::string> kLogLevelNames = {"trace", "debug", "info",     "warning", "warn",
                                                        "error", "err",   "critical", "off"};

// Logs to stderr. Under systemd (JOURNAL_STREAM naming stderr's device:inode) each line starts
// with its syslog priority "<N>" and has no timestamp or colour: journald adds its own.
void setup_logging(const std::string& level);

// The syslog priority of a level (sd-daemon.h): critical 2, error 3, warning 4, info 6, debug
// and trace 7.
int syslog_priority(spdlog::level::level_enum level);

// Whether JOURNAL_STREAM ("DEV:INO") names the file stderr is open on.
bool stderr_is_journal(const char* journal_stream);

}  // namespace stemd::app
