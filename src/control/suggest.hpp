// "Did you mean …?": the closest of a few known words to a mistyped one (stemctl's commands, the
// daemon's OSC addresses). Header-only; the distance allocates nothing (rows on the stack).
//
// Cost is bounded by the caller: a word longer than kMaxSuggestLength is never compared (the
// daemon computes a suggestion only for an unknown address, and an address that long cannot be
// a typo of a known one), and a pair whose lengths differ by more than the allowed distance is
// skipped without work.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <string>
#include <vector>

namespace stemd::control {

inline constexpr std::size_t kMaxSuggestLength = 64;

inline char lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

// Optimal string alignment distance (Levenshtein plus adjacent transpositions, so "stauts" is one
// edit from "status"); letters compare case-insensitively ("/PLAY_STEM" is 0 from "/play_stem").
// Stops early, returning `limit`, once the distance is sure to reach `limit`. No allocation:
// words longer than kMaxSuggestLength are not compared (the result is then `limit`).
inline std::size_t edit_distance(const std::string& a, const std::string& b, std::size_t limit = kMaxSuggestLength) {
  const std::size_t n = a.size(), m = b.size();
  if (n > kMaxSuggestLength || m > kMaxSuggestLength) return limit;
  std::array<std::size_t, kMaxSuggestLength + 1> rows[3];
  std::size_t* prev2 = rows[0].data();
  std::size_t* prev = rows[1].data();
  std::size_t* cur = rows[2].data();
  for (std::size_t j = 0; j <= m; ++j) prev[j] = j;
  for (std::size_t i = 1; i <= n; ++i) {
    cur[0] = i;
    std::size_t row_min = cur[0];
    for (std::size_t j = 1; j <= m; ++j) {
      const std::size_t cost = lower(a[i - 1]) == lower(b[j - 1]) ? 0 : 1;
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost});
      if (i > 1 && j > 1 && lower(a[i - 1]) == lower(b[j - 2]) && lower(a[i - 2]) == lower(b[j - 1])) {
        cur[j] = std::min(cur[j], prev2[j - 2] + 1);
      }
      row_min = std::min(row_min, cur[j]);
    }
    if (row_min >= limit) return limit;  // every path already costs that much
    std::size_t* t = prev2;
    prev2 = prev;
    prev = cur;
    cur = t;
  }
  return std::min(prev[m], limit);
}

// Finds the known word closest to `word` when it is close enough to be a typo: at most 2 edits,
// and at most a third of the word. Feed it candidates with consider(); ties go to the first.
class ClosestWord {
 public:
  explicit ClosestWord(const std::string& word)
      : word_(word), best_d_(std::min<std::size_t>(2, std::max<std::size_t>(1, word.size() / 3)) + 1) {
    if (word.empty() || word.size() > kMaxSuggestLength) best_d_ = 0;  // never compared
  }
  void consider(const std::string& cand) {
    const std::size_t diff = cand.size() > word_.size() ? cand.size() - word_.size() : word_.size() - cand.size();
    if (diff >= best_d_ || cand.size() > kMaxSuggestLength || cand == word_) return;
    const std::size_t d = edit_distance(word_, cand, best_d_);
    if (d < best_d_) {
      best_d_ = d;
      best_ = cand;
    }
  }
  const std::string& best() const { return best_; }  // "" when nothing is close

 private:
  const std::string& word_;
  std::size_t best_d_;
  std::string best_;
};

}  // namespace stemd::control
