#include "logging.hpp"

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <cstdlib>

namespace stemd::app {

void setup_logging(const std::string& level) {
  const bool journal = std::getenv("JOURNAL_STREAM") != nullptr;
  auto logger = journal ? spdlog::stderr_logger_mt("stemd") : spdlog::stderr_color_mt("stemd");
  logger->set_pattern(journal ? "%l: %v" : "%Y-%m-%d %H:%M:%S.%e %^%l%$ %v");
  logger->set_level(spdlog::level::from_str(level));
  logger->flush_on(spdlog::level::info);
  // A log line that cannot be written (stderr is a pipe whose reader has gone, a full disk) is
  // dropped: never an exception out of a logging call, never a message about it on the same
  // broken stderr (spdlog's default handler writes there).
  logger->set_error_handler([](const std::string&) {});
  spdlog::set_default_logger(logger);
}

}  // namespace stemd::app
