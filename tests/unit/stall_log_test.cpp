// Follow-up to outside pass 26, M1: an audio server that stalls every 2 s wrote two or three lines
// per stall (a week: ≈ 900,000 lines to an SD card's journal). StallLog: the first stall in full,
// again once an hour; those between counted and summed up every 10 minutes.
#include "app/stall_log.hpp"

#include <gtest/gtest.h>

#include <ctime>

#include <string>

namespace stemd::app {
namespace {

// A week of 1.2-s stalls every 2 s, each lost (the server did not answer the helper): the lines
// the log gets are bounded by the hour and the 10 minutes, not by the stalls.
TEST(StallLog, AWeekOfStallsEveryTwoSecondsWritesAFewLinesAnHour) {
  StallLog log;
  std::uint64_t full = 0, summaries = 0, stalls = 0;
  const double week = 7 * 24 * 3600.0;
  for (double t = 10; t < week; t += 2.0) {
    const std::string s = log.summary(t);
    if (!s.empty()) ++summaries;
    if (log.begin(t)) ++full;
    log.end(1.2, true);
    ++stalls;
  }
  const std::string last = log.summary(week, true);
  EXPECT_FALSE(last.empty());
  ++summaries;
  const double hours = week / 3600;
  EXPECT_EQ(full, static_cast<std::uint64_t>(hours)) << "one stall in full an hour";
  EXPECT_LE(summaries, static_cast<std::uint64_t>(hours * 6) + 1) << "a summary every 10 minutes at most";
  EXPECT_GE(summaries, static_cast<std::uint64_t>(hours * 6) - 1);
  EXPECT_EQ(stalls, 302'395u);
}

TEST(StallLog, TheFirstStallIsLoggedAndTheSummaryCountsTheOthers) {
  StallLog log;
  EXPECT_EQ(log.summary(0), "");
  EXPECT_TRUE(log.begin(100)) << "the first stall: in full";
  log.end(1.3, true);
  EXPECT_EQ(log.counted(), 0u) << "a stall logged in full is not counted again";
  EXPECT_FALSE(log.begin(102));
  log.end(1.1, false);
  EXPECT_FALSE(log.begin(104));
  log.end(2.4, true);
  EXPECT_FALSE(log.begin(106));
  log.end(1.0, true);
  EXPECT_EQ(log.counted(), 3u);
  EXPECT_EQ(log.summary(500), "") << "not 10 minutes since the full one yet";
  const std::string s = log.summary(700);
  EXPECT_EQ(
      s,
      "the audio device stalled 3 more times in the last 600 s (no callback for 1.0 to 2.4 s each) and the stream "
      "played on after each; in 2 of them the audio server did not answer (the device counted lost meanwhile)");
  EXPECT_EQ(log.summary(900), "") << "nothing counted since";
  EXPECT_FALSE(log.begin(1000));
  log.end(1.2, false);
  EXPECT_EQ(log.summary(1200), "") << "10 minutes from the last line (the summary at 700 s), not from the stall";
  EXPECT_EQ(log.quiet_stalls(), 4u);
  log.add_underflows(2);
  const std::string one = log.summary(700 + StallLog::kSummaryEverySeconds);
  EXPECT_NE(one.find("stalled 1 more time in the last 600 s (no callback for 1.2 s)"), std::string::npos) << one;
  EXPECT_NE(one.find("; 2 device underflows came with them (not warned of one by one)"), std::string::npos) << one;
  EXPECT_EQ(one.find("did not answer"), std::string::npos) << "none lost: not said" << one;
}

// A summary logged 10 minutes on says at what time of day the longest stall began (new-user
// pass 28, L6: "stalled 1 more time in the last 600 s" could not be placed in the journal).
TEST(StallLog, TheSummarySaysWhenTheLongestBegan) {
  StallLog log;
  EXPECT_TRUE(log.begin(10));
  log.end(1.5, false);
  EXPECT_FALSE(log.begin(40));  // 30 s after the start
  log.end(3.0, true);
  EXPECT_FALSE(log.begin(50));
  log.end(1.2, false);
  // The summary at 610 s on the steady clock is 12:00:00 local time: the longest began 570 s before.
  std::tm noon{};
  noon.tm_year = 126, noon.tm_mon = 11, noon.tm_mday = 7, noon.tm_hour = 12, noon.tm_isdst = -1;
  const double wall = static_cast<double>(std::mktime(&noon));
  const std::string s = log.summary(610, false, wall);
  EXPECT_NE(s.find("(no callback for 1.2 to 3.0 s each; the longest began at 11:50:30)"), std::string::npos) << s;
  EXPECT_FALSE(log.begin(700));
  log.end(2.0, false);
  const std::string one = log.summary(1300, false, wall + 690);
  EXPECT_NE(one.find("(no callback for 2.0 s; it began at 12:01:30)"), std::string::npos) << one;
}

// An hour after the last stall in full, the next one is in full again, and what was counted
// before it is summed up first (the caller asks for the summary before begin()).
TEST(StallLog, AnHourOnTheNextStallIsInFullAfterTheSummary) {
  StallLog log;
  EXPECT_TRUE(log.begin(0));
  log.end(1.5, false);
  int summaries = 0;
  for (double t = 3000; t < 3100; t += 2) {
    if (!log.summary(t).empty()) ++summaries;  // at 3002: the stall of 3000, 10 minutes after the full one
    EXPECT_FALSE(log.begin(t));
    log.end(1.1, false);
  }
  EXPECT_EQ(summaries, 1);
  EXPECT_EQ(log.summary(3500), "") << "not 10 minutes since the summary at 3002 s";
  const std::string s = log.summary(StallLog::kFullEverySeconds);
  EXPECT_NE(s.find("stalled 49 more times in the last 598 s"), std::string::npos) << s;
  EXPECT_TRUE(log.begin(StallLog::kFullEverySeconds));
  EXPECT_EQ(log.summary(StallLog::kFullEverySeconds + 1, true), "") << "nothing counted: nothing to say";
}

}  // namespace
}  // namespace stemd::app
