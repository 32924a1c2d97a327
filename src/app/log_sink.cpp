// The log's writer (see log_sink.hpp).
#include "log_sink.hpp"

#include <spdlog/fmt/fmt.h>

#include <cerrno>
#include <chrono>

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

namespace stemd::app {

namespace {

// spdlog's colours for its levels (its ansicolor sink's): trace white, debug cyan, info green,
// warning bold yellow, error bold red, critical bold on red.
const char* colour_of(spdlog::level::level_enum level) {
  switch (level) {
    case spdlog::level::trace:
      return "\033[37m";
    case spdlog::level::debug:
      return "\033[36m";
    case spdlog::level::info:
      return "\033[32m";
    case spdlog::level::warn:
      return "\033[33m\033[1m";
    case spdlog::level::err:
      return "\033[31m\033[1m";
    case spdlog::level::critical:
      return "\033[1m\033[41m";
    default:
      return "";
  }
}

}  // namespace

LogSink::LogSink(int fd, bool colour) : fd_(fd), colour_(colour) {
  struct stat st {};
  if (fstat(fd, &st) != 0) return;
  if (S_ISSOCK(st.st_mode)) {
    socket_ = true;  // send(MSG_DONTWAIT): no flag on the shared description
  } else if (S_ISFIFO(st.st_mode) || S_ISCHR(st.st_mode)) {
    // Our own open file description of the same pipe or terminal, non-blocking; the one stderr
    // shares with the shell that started us keeps its flags. A FIFO without a reader cannot be
    // opened so (ENXIO): then stderr as it is.
    const std::string path = "/proc/self/fd/" + std::to_string(fd);
    const int own = ::open(path.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    if (own >= 0) {
      fd_ = own;
      own_fd_ = true;
    }
  }
}

LogSink::~LogSink() {
  // What is still held gets a last chance: up to 200 ms for the reader, never longer.
  const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(200);
  while (!write_held() && std::chrono::steady_clock::now() < until) {
    pollfd p{fd_, POLLOUT, 0};
    ::poll(&p, 1, 20);
  }
  if (own_fd_) ::close(fd_);
}

std::uint64_t LogSink::dropped() const {
  std::lock_guard<std::mutex> lock(const_cast<std::mutex&>(mutex_));
  return dropped_total_;
}

std::size_t LogSink::held() const {
  std::lock_guard<std::mutex> lock(const_cast<std::mutex&>(mutex_));
  return held_.size();
}

bool LogSink::write_held() {
  while (!held_.empty()) {
    const ssize_t n = socket_ ? ::send(fd_, held_.data(), held_.size(), MSG_DONTWAIT | MSG_NOSIGNAL)
                              : ::write(fd_, held_.data(), held_.size());
    if (n > 0) {
      held_.erase(0, static_cast<std::size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return false;  // the reader is not reading
    held_.clear();  // the reader has gone (EPIPE) or the disk is full: those lines are lost
  }
  return true;
}

std::string LogSink::dropped_note() {
  const std::string text = fmt::format(
      "{} log line{} dropped: the log's reader did not read (a paused terminal, a full pipe) and stemd does not "
      "wait for it",
      dropped_, dropped_ == 1 ? " was" : "s were");
  spdlog::details::log_msg note("", spdlog::level::warn, text);
  spdlog::memory_buf_t formatted;
  formatter_->format(note, formatted);
  dropped_ = 0;
  return std::string(formatted.data(), formatted.size());
}

void LogSink::write_or_hold(std::string line) {
  const bool clear = write_held();
  if (clear && dropped_ > 0) line = dropped_note() + line;
  if (held_.size() + line.size() > kHeldMax) {
    ++dropped_;
    ++dropped_total_;
    return;
  }
  held_ += line;
  write_held();
}

void LogSink::sink_it_(const spdlog::details::log_msg& msg) {
  spdlog::memory_buf_t formatted;
  formatter_->format(msg, formatted);
  std::string line;
  if (colour_ && msg.color_range_end > msg.color_range_start) {
    line.append(formatted.data(), msg.color_range_start);
    line += colour_of(msg.level);
    line.append(formatted.data() + msg.color_range_start, msg.color_range_end - msg.color_range_start);
    line += "\033[0m";
    line.append(formatted.data() + msg.color_range_end, formatted.size() - msg.color_range_end);
  } else {
    line.assign(formatted.data(), formatted.size());
  }
  write_or_hold(std::move(line));
}

void LogSink::flush_() { write_held(); }

}  // namespace stemd::app
