#include "script.hpp"

#include "safe_file.hpp"

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <sstream>

namespace stemd::app {

namespace {

bool split(const std::string& line, std::vector<std::string>& words, std::string& error) {
  words.clear();
  std::string cur;
  bool in_quotes = false, have = false;
  for (char c : line) {
    if (c == '"') {
      in_quotes = !in_quotes;
      have = true;
    } else if (!in_quotes && (c == ' ' || c == '\t')) {
      if (have) words.push_back(cur);
      cur.clear();
      have = false;
    } else {
      cur += c;
      have = true;
    }
  }
  if (in_quotes) {
    error = "unterminated quote";
    return false;
  }
  if (have) words.push_back(cur);
  return true;
}

control::OscArg infer(const std::string& w) {
  if (w == "true" || w == "false") return control::OscArg::Bool(w == "true");
  char* end = nullptr;
  errno = 0;
  const long long i = std::strtoll(w.c_str(), &end, 10);
  if (!w.empty() && end && *end == '\0' && errno == 0 && i >= INT32_MIN && i <= INT32_MAX) {
    return control::OscArg::Int(i);
  }
  const double d = std::strtod(w.c_str(), &end);
  if (!w.empty() && end && *end == '\0' && std::isfinite(d)) return control::OscArg::Float(d);
  return control::OscArg::Str(w);
}

}  // namespace

bool load_script(const std::string& path, std::vector<ScriptLine>& out, std::string& error) {
  std::string text;
  if (read_regular_file(path, kMaxScriptBytes, text, error) != ReadResult::kOk) return false;  // a FIFO: refused
  return parse_script(path, text, out, error);
}

bool parse_script(const std::string& path, const std::string& text, std::vector<ScriptLine>& out, std::string& error) {
  std::istringstream f(text);
  std::string line;
  std::vector<std::string> words;
  for (int n = 1; std::getline(f, line); ++n) {
    const auto first = line.find_first_not_of(" \t\r");
    if (first == std::string::npos || line[first] == '#') continue;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    std::string why;
    if (!split(line, words, why)) {
      error = path + ":" + std::to_string(n) + ": " + why;
      return false;
    }
    if (words.size() < 2) {
      error = path + ":" + std::to_string(n) + ": expected \"SECONDS /address [args…]\"";
      return false;
    }
    char* end = nullptr;
    const double t = std::strtod(words[0].c_str(), &end);
    if (!end || *end != '\0' || !std::isfinite(t) || t < 0) {
      error = path + ":" + std::to_string(n) + ": \"" + words[0] + "\" is not a time in seconds ≥ 0";
      return false;
    }
    if (words[1].empty() || words[1][0] != '/') {
      error = path + ":" + std::to_string(n) + ": \"" + words[1] + "\" is not an OSC address";
      return false;
    }
    ScriptLine sl;
    sl.seconds = t;
    sl.line = n;
    sl.message.address = words[1];
    for (std::size_t i = 2; i < words.size(); ++i) sl.message.args.push_back(infer(words[i]));
    out.push_back(std::move(sl));
  }
  // In time order (a tie keeps the file's order): every line is routed before the stream starts,
  // so a play at 1 s written above its load at 0 would find nothing loaded.
  std::stable_sort(out.begin(), out.end(),
                   [](const ScriptLine& a, const ScriptLine& b) { return a.seconds < b.seconds; });
  return true;
}

}  // namespace stemd::app
