// The web monitor's recent events (/ws/events): the last kCapacity, in fixed memory, numbered
// for the service's whole run. A page that (re)connects with `?since=SEQ` receives those after SEQ
// first, so what happened while it was away — a device loss whose hand-over to a new image closed
// its socket (outside pass 28, user L4) — is in its Events. They cross a hand-over (recovery.cpp:
// the hand-over's carry file), so the numbers go on and the loss is there after the re-exec.
// [network thread; the main thread before start() and after stop()]
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace stemd::web {

struct PastEvent {
  std::uint64_t seq = 0;     // 1, 2, … for the service's run (carried across hand-overs)
  std::int64_t unix_ms = 0;  // when it was broadcast (the system's wall clock, ms since 1970)
  std::string json;          // as sent: {"seq":…,"time_ms":…,"event":…} — at most kMaxBytes
};

class EventBacklog {
 public:
  static constexpr std::size_t kCapacity = 64;
  // An event kept is at most this long (a longer one is kept cut: web_server.cpp builds it with
  // event_json's bound); 64 × 2 KiB = 128 KiB, allocated once.
  static constexpr std::size_t kMaxBytes = 2048;

  EventBacklog() : slots_(new Slot[kCapacity]) {}
  ~EventBacklog() { delete[] slots_; }
  EventBacklog(const EventBacklog&) = delete;
  EventBacklog& operator=(const EventBacklog&) = delete;

  // The service's run: a random token (16 hex digits) made at the first image's start and carried
  // across hand-overs (set_run). A page sends it back with its last number: another run's number
  // (the service restarted) gets everything kept — a number alone could not tell, so a page that
  // had seen 10 events missed the new run's first 10 once it had more (closing note 29).
  const std::string& run() const { return run_; }
  // Takes the previous image's token: 1 to 32 hex digits, else false (this one's kept).
  bool set_run(std::string_view run);
  static bool valid_run(std::string_view run);
  // The number the next event gets.
  std::uint64_t next_seq() const { return next_seq_; }
  // Keeps `json` (the whole text sent, with its seq: stamp() made it) as event `seq`, the oldest
  // let go past kCapacity. Refused (false) when longer than kMaxBytes or not after the last one.
  bool add(std::uint64_t seq, std::int64_t unix_ms, std::string_view json);
  // The next number, taken (next_seq() moves on).
  std::uint64_t take_seq() { return next_seq_++; }
  // {"event":…} → {"seq":N,"time_ms":T,"event":…}, or with `run`: {"seq":N,"time_ms":T,"run":"R","event":…}.
  static std::string stamp(std::string_view json, std::int64_t unix_ms, std::uint64_t seq, std::string_view run = {});
  // Those a page that has seen up to `since` of run `run` has not, oldest first. A `since` at or
  // past next_seq(), or a `run` given that is not this one, is another run's number (the service
  // restarted): everything kept.
  std::vector<PastEvent> after(std::uint64_t since, std::string_view run = {}) const;
  std::size_t size() const { return count_; }

 private:
  struct Slot {
    std::uint64_t seq = 0;
    std::int64_t unix_ms = 0;
    std::uint16_t len = 0;
    std::array<char, kMaxBytes> text{};
  };
  Slot* slots_;
  std::size_t first_ = 0, count_ = 0;
  std::uint64_t next_seq_ = 1;
  std::string run_ = new_run();
  static std::string new_run();
};

}  // namespace stemd::web
