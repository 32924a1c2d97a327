// The crowdstream dialect's deck buffer ids, in one place [control; any thread, constants].
//
// Deck d (0 = A … 3 = D) plays from buffer id kDeckBase[d] when started by /play_stem, /a … /d or
// the start-up flags --a … --d; its stems take the ids after it.
#pragma once

#include "stemd/command.hpp"

namespace stemd::control {

inline constexpr int kDeckBase[engine::kNumDecks] = {100, 1100, 2100, 3100};

}  // namespace stemd::control
