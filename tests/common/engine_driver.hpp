// Driving an Engine and its LoaderThread from a test, the way the render backend does (wait,
// bounded, for the loader), and reading what it did. The fixtures themselves are in fixtures.hpp.
//
// Threads: the test thread plays [control] *and* [audio] (it calls process() itself); the only
// other thread is io::LoaderThread's [loader]. Nothing here sleeps to make an assertion true:
// waits are bounded polls for a condition, and a timeout fails the test instead of hanging it.
#pragma once

#include "common/fixtures.hpp"
#include "common/sanitized.hpp"
#include "io/loader_thread.hpp"
#include "io/source.hpp"
#include "stemd/command.hpp"
#include "stemd/engine.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <ostream>
#include <string>
#include <thread>
#include <vector>

namespace stemd::engine {
// Readable gtest failure messages for the engine's enums.
inline void PrintTo(EndReason r, std::ostream* os) { *os << to_string(r); }
inline void PrintTo(EventType t, std::ostream* os) {
  switch (t) {
    case EventType::kVoiceStarted:
      *os << "kVoiceStarted";
      return;
    case EventType::kVoiceEnded:
      *os << "kVoiceEnded";
      return;
    case EventType::kVoiceUnderrun:
      *os << "kVoiceUnderrun";
      return;
    case EventType::kCommandLate:
      *os << "kCommandLate";
      return;
    case EventType::kCommandDropped:
      *os << "kCommandDropped";
      return;
    case EventType::kVoiceDeferred:
      *os << "kVoiceDeferred";
      return;
  }
  *os << "EventType(" << static_cast<int>(t) << ")";
}
}  // namespace stemd::engine

namespace stemd::test {

// Generous: a wait that times out is a failure, never a pass, so a long bound costs nothing.
inline constexpr std::chrono::seconds kWaitLimit{kSanitized ? 30 : 10};

// Polls `cond` until true or the limit; returns its last value.
inline bool wait_for(const std::function<bool()>& cond, std::chrono::milliseconds limit = kWaitLimit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!cond()) {
    if (std::chrono::steady_clock::now() > deadline) return cond();
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  return true;
}

// One audio callback, fed like the render backend feeds it: apply commands, and if a streaming
// voice could not render the block, wake the loader and wait (bounded) until it can.
// Returns false when the loader did not catch up in time (the block is rendered anyway).
inline bool process_fed(engine::Engine& e, io::LoaderThread& loader, float* out, std::uint32_t frames) {
  e.apply_commands();
  bool ready = e.streams_ready(frames);
  if (!ready) {
    ready = wait_for([&] {
      if (e.streams_ready(frames)) return true;
      loader.wake();
      return false;
    });
  }
  e.process(out, frames);
  return ready;
}

// Events and retirees drained from an engine (the test's stand-in for the controller).
struct Drained {
  std::vector<engine::Event> events;
  std::vector<engine::Retired> retired;

  void drain(engine::Engine& e, io::LoaderThread* loader = nullptr) {
    engine::Event ev;
    while (e.poll_event(ev)) events.push_back(ev);
    engine::Retired r;
    while (e.poll_retired(r)) {
      retired.push_back(r);
      if (loader != nullptr) loader->release(r.stream);
    }
  }
  const engine::Event* find(engine::EventType t) const {
    for (const auto& e : events)
      if (e.type == t) return &e;
    return nullptr;
  }
  std::size_t count(engine::EventType t) const {
    std::size_t n = 0;
    for (const auto& e : events) n += e.type == t ? 1 : 0;
    return n;
  }
};

inline engine::Command play_command(engine::VoiceId voice, std::uint32_t gen, const engine::VoiceSource* src,
                                    Stream* stream, std::int64_t position, float gain = 1.0f, bool loop = false) {
  engine::Command c{};
  c.type = engine::CommandType::kPlay;
  c.voice = voice;
  c.generation = gen;
  c.play = engine::PlayParams{src, stream, position, gain, loop};
  return c;
}

// Index of the first sample where `got` and `want` differ (or -1), for readable failures.
inline std::int64_t first_mismatch(const float* got, const float* want, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i)
    if (got[i] != want[i]) return static_cast<std::int64_t>(i);
  return -1;
}

}  // namespace stemd::test
