// Real-time tripwire (see tripwire.cpp): counts allocations, locks, waits, sleeps and file I/O
// made by a thread while it is marked as the audio thread.
#pragma once

namespace stemd::test::tripwire {

void enter_audio() noexcept;  // mark the calling thread as the audio thread
void leave_audio() noexcept;
bool in_audio() noexcept;
long violations() noexcept;
const char* first_violation() noexcept;  // name of the first forbidden call, "" if none
void reset() noexcept;

struct AudioScope {
  AudioScope() noexcept { enter_audio(); }
  ~AudioScope() { leave_audio(); }
};

}  // namespace stemd::test::tripwire
