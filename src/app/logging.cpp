#include "logging.hpp"

#include "log_sink.hpp"

#include <spdlog/pattern_formatter.h>
#include <spdlog/spdlog.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include <sys/stat.h>
#include <unistd.h>

namespace stemd::app {

namespace {

// "<N>": the line's syslog priority as sd-daemon.h defines it (SD_ERR "<3>", SD_WARNING "<4>",
// SD_INFO "<6>", SD_DEBUG "<7>"); journald reads it off a stream connected to it.
class PriorityFlag final : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& msg, const std::tm&, spdlog::memory_buf_t& dest) override {
    const int p = syslog_priority(msg.level);
    const char text[] = {'<', static_cast<char>('0' + p), '>'};
    dest.append(text, text + 3);
  }
  std::unique_ptr<custom_flag_formatter> clone() const override { return std::make_unique<PriorityFlag>(); }
};

}  // namespace

int syslog_priority(spdlog::level::level_enum level) {
  switch (level) {
    case spdlog::level::critical:
      return 2;  // SD_CRIT
    case spdlog::level::err:
      return 3;  // SD_ERR
    case spdlog::level::warn:
      return 4;  // SD_WARNING
    case spdlog::level::info:
      return 6;  // SD_INFO
    default:
      return 7;  // SD_DEBUG: debug and trace
  }
}

bool stderr_is_journal(const char* journal_stream) {
  if (journal_stream == nullptr) return false;
  unsigned long long dev = 0, ino = 0;
  char tail = 0;
  if (std::sscanf(journal_stream, "%llu:%llu%c", &dev, &ino, &tail) != 2) return false;
  struct stat st {};
  if (fstat(2, &st) != 0) return false;
  return static_cast<unsigned long long>(st.st_dev) == dev && static_cast<unsigned long long>(st.st_ino) == ino;
}

void setup_logging(const std::string& level) {
  // Under systemd JOURNAL_STREAM names the stream journald reads; when stderr is that stream
  // (not redirected elsewhere by a child's shell), lines carry their priority and no timestamp
  // or colour (journald adds its own), so `journalctl -p err` finds the errors.
  const bool journal = stderr_is_journal(std::getenv("JOURNAL_STREAM"));
  // Written without ever waiting on the reader (log_sink.hpp); coloured on a terminal, as
  // spdlog's own colour sink did.
  const char* term = std::getenv("TERM");
  const bool colour = !journal && isatty(STDERR_FILENO) == 1 && term != nullptr && std::strcmp(term, "dumb") != 0;
  auto logger = std::make_shared<spdlog::logger>("stemd", std::make_shared<LogSink>(STDERR_FILENO, colour));
  if (journal) {
    auto f = std::make_unique<spdlog::pattern_formatter>();
    f->add_flag<PriorityFlag>('*').set_pattern("%*%l: %v");
    logger->set_formatter(std::move(f));
  } else {
    logger->set_pattern("%Y-%m-%d %H:%M:%S.%e %^%l%$ %v");
  }
  logger->set_level(spdlog::level::from_str(level));
  logger->flush_on(spdlog::level::info);
  // A log line that cannot be written (stderr is a pipe whose reader has gone, a full disk) is
  // dropped: never an exception out of a logging call, never a message about it on the same
  // broken stderr (spdlog's default handler writes there).
  logger->set_error_handler([](const std::string&) {});
  spdlog::set_default_logger(logger);
}

}  // namespace stemd::app
