// The page's file browser (GET /api/files?dir=REL) and the query strings of requests. The
// listing itself is MediaPolicy::list (the same confinement as loads); this file turns it
// into an HTTP answer. [files] runs files_answer, [network] url_query.
#include "web_internal.hpp"

#include <nlohmann/json.hpp>

namespace stemd::web {

namespace {

int hex(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool decode(std::string_view in, std::string& out, std::string& error) {
  out.clear();
  for (std::size_t i = 0; i < in.size(); ++i) {
    char c = in[i];
    if (c == '+') {
      c = ' ';
    } else if (c == '%') {
      const int hi = i + 2 < in.size() ? hex(in[i + 1]) : -1;
      const int lo = i + 2 < in.size() ? hex(in[i + 2]) : -1;
      if (hi < 0 || lo < 0) {
        error = "bad %-escape in the query";
        return false;
      }
      c = static_cast<char>(hi * 16 + lo);
      i += 2;
    }
    if (c == '\0') {
      error = "a NUL byte in the query";
      return false;
    }
    out.push_back(c);
  }
  return true;
}

}  // namespace

bool url_query(std::string_view target, std::map<std::string, std::string>& out, std::string& error) {
  out.clear();
  const std::size_t q = target.find('?');
  if (q == std::string_view::npos) return true;
  std::string_view rest = target.substr(q + 1);
  while (!rest.empty()) {
    const std::size_t amp = rest.find('&');
    const std::string_view pair = rest.substr(0, amp);
    rest = amp == std::string_view::npos ? std::string_view() : rest.substr(amp + 1);
    if (pair.empty()) continue;
    const std::size_t eq = pair.find('=');
    std::string key, value;
    if (!decode(pair.substr(0, eq), key, error)) return false;
    if (eq != std::string_view::npos && !decode(pair.substr(eq + 1), value, error)) return false;
    if (!out.emplace(std::move(key), std::move(value)).second) {
      error = "a query parameter given twice";
      return false;
    }
  }
  return true;
}

std::pair<http::status, std::string> files_answer(const control::MediaPolicy& media, const std::string& dir) {
  using E = control::MediaListing::Error;
  const control::MediaListing l = media.list(dir, Shared::kMaxListed);
  switch (l.error) {
    case E::kNone:
      break;
    case E::kNoRoot:
      return {http::status::conflict,
              error_json(l.reason + " (loads then take paths relative to it); without one, type a path")};
    case E::kRootMissing:  // a disk not mounted yet: try again later
      return {http::status::service_unavailable, error_json(l.reason)};
    case E::kBadPath:
    case E::kNotDir:
      return {http::status::bad_request, error_json(l.reason)};
    case E::kOutside:
    case E::kDenied:
      return {http::status::forbidden, error_json(l.reason)};
    case E::kNotFound:
      return {http::status::not_found, error_json(l.reason)};
    case E::kOther:
      return {http::status::internal_server_error, error_json(l.reason)};
  }
  using Json = nlohmann::ordered_json;
  Json entries = Json::array();
  for (const auto& e : l.entries) {
    Json j{{"name", e.name}, {"path", e.path}, {"dir", e.dir}};
    if (!e.dir) j["size"] = e.size;
    if (e.link) j["link"] = true;
    entries.push_back(std::move(j));
  }
  const std::size_t slash = l.dir.rfind('/');
  Json parent = l.dir.empty() ? Json(nullptr) : Json(slash == std::string::npos ? "" : l.dir.substr(0, slash));
  Json j{{"dir", l.dir},
         {"parent", std::move(parent)},
         {"entries", std::move(entries)},
         {"truncated", l.truncated},
         {"read_all", l.read_all},  // false: the entries are the first by name of the first `scanned` read
         {"scanned", control::MediaPolicy::kMaxScanned},
         {"cap", Shared::kMaxListed},
         {"skipped", l.skipped}};
  return {http::status::ok, j.dump(-1, ' ', false, Json::error_handler_t::replace)};
}

}  // namespace stemd::web
