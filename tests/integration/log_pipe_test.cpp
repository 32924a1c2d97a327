// A log reader that is alive but stops reading — a terminal paused with Ctrl-S, `stemd | less` at
// its prompt, a stuck log shipper (outside pass 25, N6). Once the pipe was full, the first thread
// to log blocked in write() holding spdlog's lock: OSC stopped answering (after 18 s of client
// traffic on a 64 KB pipe) and SIGTERM never ended the daemon. The log now never waits: what
// does not fit is held (64 KiB) and the rest dropped and counted, said once the reader reads.
#include "common/fixtures.hpp"
#include "common/free_port.hpp"
#include "common/run_process.hpp"
#include "osc_harness.hpp"

#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>

namespace stemd::test {
namespace {

using control::OscMessage;
using osc::Client;
using osc::eventually;
using osc::msg;

// Everything the FIFO holds now, read without waiting.
std::string drain(int fd) {
  std::string out;
  char buf[65536];
  for (ssize_t n; (n = ::read(fd, buf, sizeof buf)) > 0;) out.append(buf, static_cast<std::size_t>(n));
  return out;
}

TEST(LogPipe, AReaderThatStopsReadingNeitherStopsOscNorHangsTheStop) {
  TempDir dir;
  const std::string fifo = dir.file("log.fifo");
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  const int reader = ::open(fifo.c_str(), O_RDONLY | O_NONBLOCK);  // held open, read only at the end
  ASSERT_GE(reader, 0);
  ASSERT_GE(::fcntl(reader, F_SETPIPE_SZ, 4096), 0);  // one page: the start's lines nearly fill it
  const std::uint16_t port = free_port();
  // --log-level debug: each /stem_volume to a buffer not loaded is a line ("accepted and ignored").
  Child d = spawn_logged({STEMD_BINARY, "--backend", "null", "--osc-port", std::to_string(port), "--log-level", "debug",
                          "--shutdown-fade-ms", "0"},
                         fifo);
  std::string e;
  Client c(*control::parse_endpoint("127.0.0.1", port, e));
  ASSERT_TRUE(eventually(
      [&] {
        c.post(msg("/stemd/ping"));
        const auto r = c.next_reply(std::chrono::milliseconds(200));
        return r.has_value();
      },
      std::chrono::seconds(10)))
      << "stemd did not answer";
  c.resync();
  // ≈ 110 bytes of log each: 60 KB, fifteen times what the pipe takes.
  for (int i = 0; i < 600; ++i) {
    const OscMessage r = c.send("/stem_volume", 1000, 0.5f);
    ASSERT_EQ(r.address, "/done") << "message " << i << ": " << r.to_string();
  }
  EXPECT_EQ(c.send("/stemd/ping").address, "/done");

  // The reader reads again: what was held comes, then a line says how many were dropped.
  std::string log;
  for (int i = 0; i < 400 && log.find("log lines were dropped") == std::string::npos; ++i) {
    log += drain(reader);
    c.send("/stem_volume", 1000, 0.5f);  // a line: what is held is written before it
  }
  log += drain(reader);
  EXPECT_NE(log.find("log lines were dropped: the log's reader did not read"), std::string::npos)
      << log.substr(0, 2000);

  // Stopped again, the reader does not hold up the end.
  for (int i = 0; i < 600; ++i) c.post(msg("/stem_volume", 1000, 0.5f));
  c.resync();  // their 600 answers, then a ping's
  EXPECT_EQ(c.send("/stemd/ping").address, "/done") << "OSC answers with the pipe full again";
  EXPECT_EQ(d.stop(SIGTERM, 10.0), 0) << "SIGTERM must end it (128 + 9: it had to be killed)";
  ::close(reader);
}

}  // namespace
}  // namespace stemd::test
