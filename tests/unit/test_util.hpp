// Shared helpers for the unit tests: temp dirs, generated WAV fixtures, and an engine driver
// that feeds process() the way the render backend does (wait, bounded, for the loader).
//
// Threads: the test thread plays [control] *and* [audio] (it calls process() itself); the only
// other thread is io::LoaderThread's [loader]. Nothing here sleeps to make an assertion true:
// waits are bounded polls for a condition, and a timeout fails the test instead of hanging it.
#pragma once

#include "io/loader_thread.hpp"
#include "io/source.hpp"
#include "stemd/command.hpp"
#include "stemd/engine.hpp"

#include <gtest/gtest.h>
#include <sndfile.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <ostream>
#include <string>
#include <thread>
#include <vector>

#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
#define STEMD_TEST_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer) || __has_feature(address_sanitizer)
#define STEMD_TEST_SANITIZED 1
#endif
#endif
#ifndef STEMD_TEST_SANITIZED
#define STEMD_TEST_SANITIZED 0
#endif

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
  }
  *os << "EventType(" << static_cast<int>(t) << ")";
}
}  // namespace stemd::engine

namespace stemd::test {

inline constexpr bool kSanitized = STEMD_TEST_SANITIZED != 0;

// Generous: a wait that times out is a failure, never a pass, so a long bound costs nothing.
inline constexpr std::chrono::seconds kWaitLimit{kSanitized ? 30 : 10};

// A fresh directory under testing::TempDir(), removed with everything in it.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = ::testing::TempDir();
    if (tmpl.empty() || tmpl.back() != '/') tmpl += '/';
    tmpl += "stemd_unit_XXXXXX";
    std::vector<char> buf(tmpl.begin(), tmpl.end());
    buf.push_back('\0');
    const char* p = ::mkdtemp(buf.data());
    if (p == nullptr) throw std::runtime_error("mkdtemp failed for " + tmpl);
    path_ = p;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  std::string file(const std::string& name) const { return (path_ / name).string(); }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// Deterministic 16-bit noise, different on each channel, so an offset of one frame or an L/R
// swap can never compare equal. Returns interleaved shorts (channels per frame).
inline std::vector<short> make_pcm16(std::int64_t frames, int channels, std::uint32_t seed) {
  std::vector<short> s(static_cast<std::size_t>(frames * channels));
  std::uint32_t x = seed * 2654435761u + 12345u;
  for (auto& v : s) {
    x = x * 1664525u + 1013904223u;
    v = static_cast<short>(static_cast<std::int32_t>(x >> 16) - 32768);
  }
  return s;
}

// What stemd must decode from `pcm` (stereo float, x / 32768 exactly; mono copied to both sides).
inline std::vector<float> to_stereo_float(const std::vector<short>& pcm, int channels) {
  const std::size_t frames = pcm.size() / static_cast<std::size_t>(channels);
  std::vector<float> out(frames * 2);
  for (std::size_t f = 0; f < frames; ++f) {
    const float l = static_cast<float>(pcm[f * channels]) / 32768.0f;
    const float r = channels > 1 ? static_cast<float>(pcm[f * channels + 1]) / 32768.0f : l;
    out[2 * f] = l;
    out[2 * f + 1] = r;
  }
  return out;
}

inline void write_wav16(const std::string& path, const std::vector<short>& pcm, int channels, int rate = 48000) {
  SF_INFO info{};
  info.samplerate = rate;
  info.channels = channels;
  info.format = SF_FORMAT_WAV | SF_FORMAT_PCM_16;
  SNDFILE* sf = sf_open(path.c_str(), SFM_WRITE, &info);
  ASSERT_NE(sf, nullptr) << path << ": " << sf_strerror(nullptr);
  const sf_count_t frames = static_cast<sf_count_t>(pcm.size() / static_cast<std::size_t>(channels));
  EXPECT_EQ(sf_writef_short(sf, pcm.data(), frames), frames);
  sf_close(sf);
}

inline void write_wav_float(const std::string& path, const std::vector<float>& stereo, int rate = 48000) {
  SF_INFO info{};
  info.samplerate = rate;
  info.channels = 2;
  info.format = SF_FORMAT_WAV | SF_FORMAT_FLOAT;
  SNDFILE* sf = sf_open(path.c_str(), SFM_WRITE, &info);
  ASSERT_NE(sf, nullptr) << path << ": " << sf_strerror(nullptr);
  const sf_count_t frames = static_cast<sf_count_t>(stereo.size() / 2);
  EXPECT_EQ(sf_writef_float(sf, stereo.data(), frames), frames);
  sf_close(sf);
}

// A 16-bit stereo WAV of `frames` frames; returns the decoded frames stemd must produce.
inline std::vector<float> make_wav(const std::string& path, std::int64_t frames, std::uint32_t seed, int channels = 2) {
  const auto pcm = make_pcm16(frames, channels, seed);
  write_wav16(path, pcm, channels);
  return to_stereo_float(pcm, channels);
}

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
