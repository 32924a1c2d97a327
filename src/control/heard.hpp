// A voice setting that a command timed for later changes: the value last sent, and what is heard
// until that command's engine frame (output frames). [control] The controller keeps one per
// setting (pan, rate, tempo, paused) to answer "what is heard now" (VoiceInfo, the state file,
// the web status) while the command still waits in the engine's schedule; the engine itself only
// ever sees the commands. A plain value: no allocation, trivially copyable.
#pragma once

#include <cstdint>
#include <type_traits>

namespace stemd::control {

template <typename T>
struct Heard {
  T value{};            // as last sent
  T before{};           // what is heard until engine frame `at`
  std::int64_t at = 0;  // the engine frame `value` is heard from (0: already)

  constexpr Heard() = default;
  constexpr explicit Heard(T steady) noexcept : value(steady), before(steady) {}

  // What is heard at engine frame `now`: `value` from frame `at` on (at `at` itself too). It keeps
  // no history: `now` is no earlier than the frame the latest set() was sent at.
  constexpr T heard_at(std::int64_t now) const noexcept { return at <= now ? value : before; }

  // `next` sent for engine frame `when` (negative, i.e. kNow: at once), `now` being the engine
  // frame as it is sent. Until `when`, what is heard now goes on being heard. Only the latest
  // command counts: one sent over a timed one still to come replaces it, and keeps what that one
  // would have replaced.
  constexpr void set(T next, std::int64_t when, std::int64_t now) noexcept {
    before = heard_at(now);
    value = next;
    at = when < 0 ? 0 : when;
  }
};

static_assert(std::is_trivially_copyable_v<Heard<float>> && std::is_trivially_copyable_v<Heard<bool>>);
static_assert(sizeof(Heard<float>) == 16 && sizeof(Heard<bool>) == 16);

}  // namespace stemd::control
