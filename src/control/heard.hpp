// A voice setting that commands timed for later change: the value last sent, what is heard now,
// and the changes still to come. [control] The controller keeps one per setting (pan, rate,
// tempo, paused) to answer "what is heard at frame F" (VoiceInfo, the state file, the web status)
// while commands still wait in the engine's schedule; the engine itself only ever sees the
// commands, and applies every one at its frame — so a second command does not cancel one still
// waiting, and neither does an untimed one (outside pass 20, attack 6: two timed rates, or a timed
// pan then an untimed one, left the state file wrong for the whole window). A plain value: no
// allocation, trivially copyable.
#pragma once

#include <array>
#include <cstdint>
#include <type_traits>

namespace stemd::control {

template <typename T>
struct Heard {
  // Changes still to come, kept at most (a voice slot holds four of these, and there is one slot
  // per --max-voices): beyond, the one due first is taken as heard already (what is reported is
  // then off until its frame; the engine still plays every command).
  static constexpr std::uint32_t kPending = 4;

  T value{};  // as last sent (in arrival order, whatever its frame)
  T base{};   // heard until the first pending change's frame
  std::uint32_t count = 0;
  std::array<T, kPending> pending{};        // the changes to come, by frame; equal frames in
  std::array<std::int64_t, kPending> at{};  // arrival order; each heard from engine frame at[i]

  constexpr Heard() = default;
  constexpr explicit Heard(T steady) noexcept : value(steady), base(steady) {}

  // What is heard at engine frame `now` (a change's own frame included). `now` is no earlier
  // than the frame the latest set() was sent at.
  constexpr T heard_at(std::int64_t now) const noexcept {
    T v = base;
    for (std::uint32_t i = 0; i < count && at[i] <= now; ++i) v = pending[i];
    return v;
  }

  // `next` sent for engine frame `when` (negative, i.e. kNow, or not later than `now`: at once),
  // `now` being the engine frame as it is sent. Changes timed for later stay: the engine applies
  // them at their frames, after this one if it is sooner.
  constexpr void set(T next, std::int64_t when, std::int64_t now) noexcept {
    fold(now);
    value = next;
    if (when <= now) {  // kNow is negative
      base = next;
      return;
    }
    if (count == kPending) drop_first();
    std::uint32_t i = count;
    while (i > 0 && at[i - 1] > when) {
      pending[i] = pending[i - 1];
      at[i] = at[i - 1];
      --i;
    }
    pending[i] = next;
    at[i] = when;
    ++count;
  }

  // The frame of the last change still to come (0: none).
  constexpr std::int64_t last_at() const noexcept { return count == 0 ? 0 : at[count - 1]; }

 private:
  constexpr void drop_first() noexcept {
    base = pending[0];
    for (std::uint32_t i = 1; i < count; ++i) {
      pending[i - 1] = pending[i];
      at[i - 1] = at[i];
    }
    --count;
  }
  // Changes heard by `now` become the base.
  constexpr void fold(std::int64_t now) noexcept {
    while (count > 0 && at[0] <= now) drop_first();
  }
};

static_assert(std::is_trivially_copyable_v<Heard<float>> && std::is_trivially_copyable_v<Heard<bool>>);
static_assert(sizeof(Heard<float>) <= 64, "four per voice slot, one slot per --max-voices");

}  // namespace stemd::control
