// The descriptor budget (src/io/fd_budget.hpp): media files counted from their open until their
// close returns, streamed loads refused at the reserve with the reason while in-memory loads are
// not, the soft RLIMIT_NOFILE raised to the hard one at most to a cap (in a child process: the
// limit is the process's), the reserve's size.
#include "common/fixtures.hpp"
#include "io/fd_budget.hpp"
#include "io/file_closer.hpp"
#include "io/source.hpp"

#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <mutex>

namespace stemd::test {
namespace {

// Media descriptors come back only once the closer's close() has returned: a close stuck on a
// dead share still holds its descriptor, and counts.
TEST(FdBudget, AMediaFileCountsFromItsOpenUntilItsCloseReturns) {
  std::mutex mu;
  std::condition_variable cv;
  bool release = false;
  io::FileCloser::Options opt;
  opt.close_fn = [&](int fd) {
    std::unique_lock lock(mu);
    cv.wait(lock, [&] { return release; });
    return ::close(fd);
  };
  io::FileCloser closer(opt);
  io::FileCloser::set_process_for_tests(&closer);
  TempDir dir;
  make_wav(dir.file("a.wav"), 4800, 1);
  const std::int64_t before = io::media_files_open();
  std::string err;
  auto file = io::FileHandle::open(dir.file("a.wav"), err);
  ASSERT_TRUE(file) << err;
  EXPECT_EQ(io::media_files_open(), before + 1);
  file.reset();  // handed to the closer, whose close does not return yet
  EXPECT_EQ(io::media_files_open(), before + 1);
  EXPECT_EQ(closer.unclosed(), 1);
  {
    std::lock_guard lock(mu);
    release = true;
  }
  cv.notify_all();
  EXPECT_TRUE(wait_until([&] { return io::media_files_open() == before; }));
  EXPECT_TRUE(closer.wait_idle(2000));
  io::FileCloser::set_process_for_tests(nullptr);
}

// A budget with room for one streamed file more: the first streamed load keeps its descriptor,
// the second is refused before its head is decoded, saying why (and its descriptor goes back); a
// file held in memory loads at the line all the same (it closes its descriptor once decoded).
TEST(FdBudget, AStreamedLoadIsRefusedAtTheReserveAndAnInMemoryOneIsNot) {
  TempDir dir;
  make_wav(dir.file("long.wav"), 48000, 2);
  make_wav(dir.file("short.wav"), 4800, 3);
  io::FileCloser::process().wait_idle(2000);
  const std::int64_t base = io::media_files_open();
  auto budget = std::make_shared<io::FdBudget>(base + 64 + 1, 64);  // nothing else measured: others 0
  io::LoadOptions streamed;
  streamed.preload_limit_bytes = 0;
  streamed.fds = budget;
  streamed.cache = nullptr;
  io::LoadResult first = io::load_source(dir.file("long.wav"), "a", streamed);
  ASSERT_TRUE(first.source) << first.error;
  EXPECT_TRUE(first.source->streamed());
  EXPECT_EQ(budget->in_use(), base + 1);
  EXPECT_EQ(budget->room(), 0);

  io::LoadResult second = io::load_source(dir.file("long.wav"), "b", streamed);
  EXPECT_FALSE(second.source);
  EXPECT_EQ(second.error, dir.file("long.wav") + ": too many open files: " + std::to_string(base + 1) +
                              " of the limit " + std::to_string(base + 65) +
                              " in use; a reserve of 64 is kept for clients, the device and helpers (streamed files "
                              "keep theirs open: unload some, load smaller files into memory (--preload-limit-mb), "
                              "or raise the limit: LimitNOFILE)");
  EXPECT_TRUE(wait_until([&] { return io::media_files_open() == base + 1; })) << "the refused file's descriptor";

  io::LoadOptions in_memory = streamed;
  in_memory.preload_limit_bytes = 16 << 20;
  io::LoadResult third = io::load_source(dir.file("short.wav"), "c", in_memory);
  ASSERT_TRUE(third.source) << third.error;
  EXPECT_FALSE(third.source->streamed());
  EXPECT_TRUE(wait_until([&] { return io::media_files_open() == base + 1; })) << "closed once decoded";

  first.source.reset();  // unloaded: its descriptor goes back, and a streamed load fits again
  EXPECT_TRUE(wait_until([&] { return io::media_files_open() == base; }));
  io::LoadResult again = io::load_source(dir.file("long.wav"), "d", streamed);
  EXPECT_TRUE(again.source) << again.error;
}

// measure() counts what is open besides media files: a descriptor opened here is seen.
TEST(FdBudget, MeasureCountsTheDescriptorsThatAreNotMediaFiles) {
  io::FdBudget b(1 << 20, 64);
  ASSERT_TRUE(b.measure());
  const std::int64_t others = b.others();
  EXPECT_GE(others, 3);  // stdio at least
  int p[2];
  ASSERT_EQ(pipe(p), 0);
  ASSERT_TRUE(b.measure());
  EXPECT_EQ(b.others(), others + 2);
  close(p[0]);
  close(p[1]);
  ASSERT_TRUE(b.measure());
  EXPECT_EQ(b.others(), others);
}

// In a child (the limit is the process's): each check's number as the exit code, 0 when all hold.
int raise_in_child(rlim_t soft, rlim_t hard, std::uint64_t cap, std::uint64_t want_now, bool want_capped) {
  const pid_t pid = fork();
  if (pid == 0) {
    const rlimit rl{soft, hard};
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0) _exit(10);
    const io::NofileRaise r = io::raise_nofile(cap);
    if (r.was != soft || r.hard != hard) _exit(1);
    if (r.now != want_now || r.capped != want_capped || r.error != 0) _exit(2);
    rlimit after{};
    getrlimit(RLIMIT_NOFILE, &after);
    if (after.rlim_cur != want_now || after.rlim_max != hard) _exit(3);
    _exit(0);
  }
  int st = 0;
  waitpid(pid, &st, 0);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 100;
}

TEST(FdBudget, TheSoftLimitIsRaisedToTheHardOneAtMostToTheCapAndNeverLowered) {
  rlimit ours{};
  getrlimit(RLIMIT_NOFILE, &ours);
  if (ours.rlim_max < 1024) GTEST_SKIP() << "hard RLIMIT_NOFILE below 1024";
  EXPECT_EQ(raise_in_child(256, 1024, 65536, 1024, false), 0);  // to the hard limit
  EXPECT_EQ(raise_in_child(256, 1024, 512, 512, true), 0);      // to the cap
  EXPECT_EQ(raise_in_child(1024, 1024, 512, 1024, true), 0);    // above the cap already: left
  EXPECT_EQ(raise_in_child(256, 256, 65536, 256, false), 0);    // nothing to raise
}

TEST(FdBudget, DescribeSaysWhatTheLimitIsAndWhere) {
  io::NofileRaise r{256, 4096, 4096, false, 0};
  EXPECT_EQ(io::describe(r), "open-file limit 4096 (raised from 256)");
  r = io::NofileRaise{1024, 65536, 524288, true, 0};
  EXPECT_EQ(io::describe(r),
            "open-file limit 65536 (raised from 1024; the hard limit 524288 is more than stemd takes)");
  r = io::NofileRaise{1024, 1024, 1024, false, 0};
  EXPECT_EQ(io::describe(r), "open-file limit 1024 (the hard limit)");
}

TEST(FdBudget, TheReserveHoldsEveryClientAndAMarginWithinAQuarterOfTheLimit) {
  EXPECT_EQ(io::fd_reserve(65536, 16, 32), 80);  // 32 + 16 TCP clients + 32 web connections
  EXPECT_EQ(io::fd_reserve(65536, 0, 0), 64);    // at least 64
  EXPECT_EQ(io::fd_reserve(65536, 1024, 256), 1312);
  EXPECT_EQ(io::fd_reserve(256, 16, 32), 64);  // a quarter of the limit at most
  EXPECT_EQ(io::fd_reserve(100, 16, 32), 25);
  // --link: Link's measurement sockets (a socket per forged session id, outside pass 26 L1).
  EXPECT_EQ(io::fd_reserve(65536, 16, 32, true), 80 + io::kLinkFds);
  EXPECT_EQ(io::fd_reserve(1024, 16, 32, true), 256);  // still a quarter of the limit at most
}

// A refusal asks for a new listing of what is open (the main thread's next health tick), instead
// of up to 10 s later: fds_open said 17 while Link held 1,024 (outside pass 26, L1).
// The test holds eight descriptors of its own: under CI's ctest a test process inherits only
// stdin, stdout and stderr, and 3 + a reserve of 4 fit a limit of 8 (stop 36's red CI).
TEST(FdBudget, ARefusalAsksForAMeasureAtOnce) {
  struct Held {
    int fds[8];
    Held() {
      for (int& fd : fds) fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    }
    ~Held() {
      for (int fd : fds) ::close(fd);
    }
  } held;
  for (int fd : held.fds) ASSERT_GE(fd, 0);
  io::FdBudget fds(8, 4);
  ASSERT_TRUE(fds.measure());  // at least the 8 held, besides media files
  EXPECT_FALSE(fds.take_remeasure());
  std::string why;
  EXPECT_FALSE(fds.admit_held(why));
  EXPECT_TRUE(fds.take_remeasure());
  EXPECT_FALSE(fds.take_remeasure());  // once per refusal
}

}  // namespace
}  // namespace stemd::test
