// The log's writer [any thread that logs]: stderr, never waited on.
//
// A reader that is alive but stops reading — a terminal paused with Ctrl-S, `stemd | less` left
// at its prompt, a stuck log shipper — fills the pipe, and a blocking write() then held spdlog's
// lock: every thread that logged waited behind it, so OSC stopped answering and SIGTERM's last
// line never returned (outside pass 25, N6: 18 s of client traffic filled 64 KB). Here stderr is
// written without blocking: on its own open file description with O_NONBLOCK (a pipe, a FIFO, a
// terminal: the shell's description is left as it was), or by send(MSG_DONTWAIT) (journald's
// socket). What does not fit is kept, up to 64 KiB, and written first at the next line; lines
// past that are dropped and counted, and once the reader reads again a line says how many. A
// regular file is written as before (it has no reader to wait for).
#pragma once

#include <spdlog/details/log_msg.h>
#include <spdlog/sinks/base_sink.h>

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <string>

namespace stemd::app {

class LogSink final : public spdlog::sinks::base_sink<std::mutex> {
 public:
  static constexpr std::size_t kHeldMax = 64 * 1024;  // bytes kept while the reader does not read

  // Writes to `fd` (stderr), colouring the level where the pattern marks it (%^ %$) if `colour`.
  LogSink(int fd, bool colour);
  ~LogSink() override;
  LogSink(const LogSink&) = delete;
  LogSink& operator=(const LogSink&) = delete;

  // Lines dropped since the start (the reader did not read), and bytes held now.
  std::uint64_t dropped() const;
  std::size_t held() const;

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override;
  void flush_() override;

 private:
  bool write_held();  // true when nothing is held any more
  void write_or_hold(std::string line);
  std::string dropped_note();

  int fd_;
  bool own_fd_ = false;  // fd_ is our own description of stderr (closed at the end)
  bool socket_ = false;
  bool colour_;
  std::string held_;
  std::uint64_t dropped_ = 0, dropped_total_ = 0;
};

}  // namespace stemd::app
