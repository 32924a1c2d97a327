// The page's file browser (GET /api/files?dir=REL) and the query strings of requests. The
// listing itself is MediaPolicy::list (the same confinement as loads); this file turns it
// into an HTTP answer, and keeps the listings' time-out rules. [files] runs files_answer,
// [network] the rest.
#include "web_internal.hpp"

#include "base/log_guard.hpp"

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <cstdio>

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

// How a folder is named in a reason and the log: "/a/b" ("/" the media root).
std::string shown(const std::string& key) { return "'/" + base::log_escape(key, 300) + "'"; }

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
    case E::kNoRoot: {  // "no_media_root": the page says how to set one instead of an error
      const nlohmann::json j{{"error", l.reason + " (loads then take paths relative to it); without one, type a path"},
                             {"no_media_root", true}};
      return {http::status::conflict, j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)};
    }
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

std::string listing_key(const std::string& dir) {
  std::string key;
  std::size_t at = 0;
  while (at <= dir.size()) {
    const std::size_t slash = std::min(dir.find('/', at), dir.size());
    const std::string_view c = std::string_view(dir).substr(at, slash - at);
    if (!c.empty() && c != ".") key.append(key.empty() ? "" : "/").append(c);
    at = slash + 1;
  }
  return key;
}

std::pair<http::status, std::string> listing_refusal(Shared& sh, const std::string& key) {
  control::LoadPool& pool = *sh.lister;
  std::erase_if(sh.stuck_listings, [&](const auto& e) { return !pool.still_lost(e.second.ticket); });
  if (const auto it = sh.stuck_listings.find(key); it != sh.stuck_listings.end()) {
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - it->second.since).count();
    char why[200];
    std::snprintf(why, sizeof why,
                  "has waited on the file system for %.0f s (past the listing time-out, --load-timeout %g s); not "
                  "tried again until it returns",
                  s, sh.cfg.listing_timeout_s);
    return {http::status::gateway_timeout, error_json("busy: the last listing of " + shown(key) + " " + why)};
  }
  if (const std::size_t lost = pool.lost(); lost >= pool.max_lost()) {
    return {http::status::service_unavailable,
            error_json("busy: " + std::to_string(lost) +
                       " listings are stuck in the file system past --load-timeout (listings refused until one "
                       "returns)")};
  }
  if (pool.in_flight() >= pool.max_in_flight()) {
    return {http::status::service_unavailable,
            error_json("busy: " + std::to_string(pool.max_in_flight()) + " listings under way (try again)")};
  }
  return {http::status::ok, {}};
}

std::string listing_timed_out(Shared& sh, const std::string& key, std::uint64_t ticket, bool lost,
                              std::chrono::steady_clock::time_point since) {
  char after[96];
  std::snprintf(after, sizeof after, "timed out after %g s (--load-timeout: the file system did not answer)",
                sh.cfg.listing_timeout_s);
  std::string note;
  if (lost) {
    sh.stuck_listings[key] = Shared::StuckListing{ticket, since};
    note = "; its thread is lost until the file system answers (" + std::to_string(sh.lister->lost()) + " lost, " +
           std::to_string(sh.lister->max_lost()) + " at most: then listings answer busy), and " + shown(key) +
           " is not listed again until it returns";
  }
  const std::string why = "listing of " + shown(key) + " " + after + note;
  spdlog::warn("web: {}", why);
  return why;
}

}  // namespace stemd::web
