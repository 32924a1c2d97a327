// The audio and loader threads' priorities (new-user pass 23, MEDIUM 4): on PortAudio/ALSA the
// callback thread ran SCHED_FIFO 1 and the loader SCHED_FIFO 1 too, while the log said the loader
// was "below the audio thread's". The decisions: raise the audio thread where stemd owns it, cap
// the loader below whatever the audio thread runs at, and a log line that says what is true.
#include "app/rt_priority.hpp"

#include <gtest/gtest.h>

namespace stemd::app {
namespace {

ThreadSched fifo(int p) { return ThreadSched{true, false, p}; }
const ThreadSched kOther{};

TEST(RtPriority, TheAudioThreadIsRaisedToStemdsPriorityThenToTheRtprioLimit) {
  EXPECT_EQ(audio_raise_steps(fifo(1), 70, 95), (std::vector<int>{70}));
  EXPECT_EQ(audio_raise_steps(fifo(1), 70, 50), (std::vector<int>{70, 50}));  // an rtprio limit of 50
  EXPECT_EQ(audio_raise_steps(fifo(1), 70, 1), (std::vector<int>{70}));       // the limit is no gain
  EXPECT_EQ(audio_raise_steps(kOther, 70, 10), (std::vector<int>{70, 10}));
  EXPECT_TRUE(audio_raise_steps(fifo(70), 70, 95).empty());  // the null backend's pacer, already there
  EXPECT_TRUE(audio_raise_steps(fifo(80), 70, 95).empty());  // never lowered
  EXPECT_TRUE(audio_raise_steps(fifo(5), 0, 95).empty());    // the JACK server's thread: not stemd's
}

TEST(RtPriority, TheLoaderIsCappedOneStepBelowTheAudioThread) {
  EXPECT_EQ(loader_priority_cap(fifo(70)), 69);
  EXPECT_EQ(loader_priority_cap(fifo(5)), 4);
  EXPECT_EQ(loader_priority_cap(fifo(1)), 0);  // equal SCHED_FIFO threads do not preempt each other
  EXPECT_EQ(loader_priority_cap(kOther), 0);   // a real-time loader would take its CPU outright
}

PolicyReport report(ThreadSched before, ThreadSched now, int wanted, int loader_now) {
  PolicyReport r;
  r.before = before;
  r.now = now;
  r.wanted = wanted;
  r.owner = wanted > 0 ? "PortAudio's ALSA host API" : "the JACK server";
  r.loader_configured = 1;
  r.loader_now = loader_now;
  return r;
}

TEST(RtPriority, TheLogLineSaysWhereBothThreadsStand) {
  EXPECT_EQ(policy_line(report(fifo(1), fifo(70), 70, 1)),
            "SCHED_FIFO priority 70 (raised from 1, PortAudio's ALSA host API's choice); the loader thread's "
            "SCHED_FIFO 1 is below it");
  EXPECT_EQ(policy_line(report(fifo(70), fifo(70), 70, 1)),
            "SCHED_FIFO priority 70; the loader thread's SCHED_FIFO 1 is below it");
  EXPECT_EQ(policy_line(report(fifo(5), fifo(5), 0, 1)),
            "SCHED_FIFO priority 5 (set by the JACK server); the loader thread's SCHED_FIFO 1 is below it");
  EXPECT_EQ(policy_line(report(fifo(1), fifo(1), 0, 1)),
            "SCHED_FIFO priority 1 (set by the JACK server); the loader thread goes from SCHED_FIFO 1 to normal "
            "scheduling, below it (--loader-priority 1 would equal it: two SCHED_FIFO threads of one priority do "
            "not preempt each other)");
  auto refused = report(fifo(1), fifo(1), 70, 1);
  refused.refused = "SCHED_FIFO 70: Operation not permitted";
  const std::string line = policy_line(refused);
  EXPECT_NE(line.find("SCHED_FIFO priority 1 (PortAudio's ALSA host API's choice; raising it to 70 was not "
                      "permitted: SCHED_FIFO 70: Operation not permitted"),
            std::string::npos)
      << line;
  EXPECT_NE(line.find("the loader thread goes from SCHED_FIFO 1 to normal scheduling, below it"), std::string::npos)
      << line;
  EXPECT_EQ(line.find("is below it"), std::string::npos) << line;
  auto loader3 = report(fifo(3), fifo(3), 0, 5);
  loader3.loader_configured = 5;
  EXPECT_EQ(policy_line(loader3),
            "SCHED_FIFO priority 3 (set by the JACK server); the loader thread goes from SCHED_FIFO 5 to 2, below it "
            "(--loader-priority 5 is not)");
  EXPECT_EQ(policy_line(report(fifo(1), fifo(50), 70, 0)),
            "SCHED_FIFO priority 50 (raised from 1, PortAudio's ALSA host API's choice); the loader thread runs at "
            "normal scheduling");
}

TEST(RtPriority, AnAudioThreadThatIsNotRealTimeTakesTheLoaderDownToo) {
  EXPECT_EQ(policy_line(report(kOther, kOther, 70, 1)),
            "; the loader thread goes from SCHED_FIFO 1 to normal scheduling too (a real-time loader would take the "
            "audio thread's CPU)");
  EXPECT_EQ(policy_line(report(kOther, kOther, 70, 0)), "");
  EXPECT_EQ(fifo(70).text(), "SCHED_FIFO 70");
  EXPECT_EQ(kOther.text(), "SCHED_OTHER");
}

}  // namespace
}  // namespace stemd::app
