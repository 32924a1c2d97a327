// The crowdstream dialect's deck buffer ids, in one place [control; any thread, constants].
//
// Deck d (0 = A … 3 = D) plays from buffer id kDeckBase[d] when started by /play_stem, /a … /d or
// the start-up flags --a … --d; its stems take the ids after it.
#pragma once

#include "stemd/command.hpp"

#include <cctype>
#include <string>

namespace stemd::control {

inline constexpr int kDeckBase[engine::kNumDecks] = {100, 1100, 2100, 3100};

// Crowdstream's id → deck map: 100–1099 A, 1100–2099 B, 2100–3099 C, 3100–4099 D, else D.
inline int deck_of_id(int id) {
  for (int d = 0; d + 1 < engine::kNumDecks; ++d)
    if (id >= kDeckBase[d] && id < kDeckBase[d + 1]) return d;
  return engine::kNumDecks - 1;
}

// "A".."D" (either case) → 0..3; false for anything else.
inline bool parse_deck(const std::string& name, int& deck) {
  if (name.size() == 1) {
    const char c = static_cast<char>(std::toupper(static_cast<unsigned char>(name[0])));
    if (c >= 'A' && c <= 'D') {
      deck = c - 'A';
      return true;
    }
  }
  return false;
}

}  // namespace stemd::control
