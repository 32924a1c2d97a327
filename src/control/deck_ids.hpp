// The crowdstream dialect's deck buffer ids, in one place [control; any thread, constants].
//
// Deck d (0 = A … 3 = D) plays from buffer id kDeckBase[d] when started by /play_stem, /a … /d or
// the start-up flags --a … --d; its stems take the ids after it.
#pragma once

#include "stemd/command.hpp"

#include <cctype>
#include <string>
#include <string_view>

namespace stemd::control {

inline constexpr int kDeckBase[engine::kNumDecks] = {100, 1100, 2100, 3100};

// Crowdstream's id → deck map: 100–1099 A, 1100–2099 B, 2100–3099 C, 3100–4099 D, else D.
inline int deck_of_id(int id) {
  for (int d = 0; d + 1 < engine::kNumDecks; ++d)
    if (id >= kDeckBase[d] && id < kDeckBase[d + 1]) return d;
  return engine::kNumDecks - 1;
}

// Blanks around a name are not part of it: crowdstream's server read every deck and band name
// with Python's str.strip().
inline std::string_view trim_blanks(std::string_view s) {
  constexpr const char* kBlanks = " \t\n\r\f\v";
  const auto first = s.find_first_not_of(kBlanks);
  if (first == std::string_view::npos) return {};
  return s.substr(first, s.find_last_not_of(kBlanks) - first + 1);
}

// "A".."D" (either case, blanks around it ignored) → 0..3; false for anything else.
inline bool parse_deck(std::string_view raw, int& deck) {
  const std::string_view name = trim_blanks(raw);
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
