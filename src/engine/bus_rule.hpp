// The stretch buses' rule (stretch_bus.hpp: who rides which bus), written once: the engine applies it
// on the audio thread when a voice joins or rejoins a bus (stretch_bus.cpp, bus_join;
// stretch_bus_handover.cpp, bus_rejoin), and the control thread plans its budgets with it before it
// sends a command (control/controller_buses.cpp). [any] Pure functions of their arguments: no
// allocation, no locks, no I/O (safe on the audio thread).
#pragma once

#include "stemd/command.hpp"

#include <cstddef>
#include <cstdint>

namespace stemd::engine::bus_rule {

// A bus as the rule sees it.
struct Bus {
  int rate = 0;          // the source rate it serves, Hz
  bool running = false;  // it has members or plays out its tail (an idle bus starts afresh)
  bool shared = false;   // takes the voices of every deck (--stretch-bus-share)
  int deck = 0;          // its members' deck (unused when shared)
  double tempo = 0;      // the tempo a joining voice must have (NaN: none may join it now)
};

// A voice asking for a bus.
struct Rider {
  double tempo = 1.0;    // its time-stretch
  bool rate_one = true;  // played at rate 1 (its ratio is only its file's rate / the output's)
  int src_rate = 0;      // its file's rate, Hz
  int deck = 0;
};

// Whether a voice may ride a bus at all: stretched (tempo ≠ 1) at rate 1 — a bus plays its members
// at rate 1 — and, on shared buses, of a deck (their EQs and faders are copied; the direct bus has
// none). A member for which this turns false leaves its bus (a rate ≠ 1, a tempo of 1).
inline bool may_ride(const Rider& r, bool shared) noexcept {
  return r.tempo != 1.0 && r.rate_one && !(shared && r.deck >= kNumDecks);
}

// The bus `r` joins among `n` buses (`bus(i)` gives the i-th): a running bus of its rate that takes
// its deck (any deck when shared) at its tempo, else the first idle bus of its rate; -1: none (it
// takes converters of its own). Does not check may_ride.
template <class BusAt>
int pick(std::size_t n, BusAt&& bus, const Rider& r) noexcept {
  int idle = -1;
  for (std::size_t i = 0; i < n; ++i) {
    const Bus b = bus(i);
    if (b.rate != r.src_rate) continue;
    if (b.running && (b.shared || b.deck == r.deck) && b.tempo == r.tempo) return static_cast<int>(i);
    if (!b.running && idle < 0) idle = static_cast<int>(i);
  }
  return idle;
}

// A member's tag: the engine publishes the sum of its members' tags per bus (BusTelemetry::tags),
// the control thread keeps the sum of the voices it charges as riding it; when they differ the
// control thread looks at which voice rides where (an order-free fingerprint, sums mod 2^64).
inline std::uint64_t member_tag(std::uint32_t voice, std::uint32_t generation) noexcept {
  std::uint64_t x = (static_cast<std::uint64_t>(voice) << 32 | generation) + 0x9e3779b97f4a7c15ull;  // splitmix64
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

}  // namespace stemd::engine::bus_rule
