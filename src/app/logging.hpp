// Logging set-up (spdlog) for the main thread [main]. Nothing logs from the audio thread.
#pragma once

#include <string>

namespace stemd::app {

// Logs to stderr. Under systemd (JOURNAL_STREAM set) drops the timestamp and colour: journald
// adds its own.
void setup_logging(const std::string& level);

}  // namespace stemd::app
