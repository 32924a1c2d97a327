// What a browser may ask of the web monitor (web_internal.hpp: request_problem), and which
// WebSocket upgrades can be accepted (websocket_problem).
#include "web_internal.hpp"

#include <arpa/inet.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>

namespace stemd::web {
namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return std::tolower(c); });
  return out;
}

// The name part of a Host header ("pi.local:8080" → "pi.local", "[::1]:80" → "::1").
std::string host_name(std::string_view host) {
  if (!host.empty() && host.front() == '[') {
    const auto end = host.find(']');
    return end == std::string_view::npos ? std::string() : std::string(host.substr(1, end - 1));
  }
  return std::string(host.substr(0, host.find(':')));
}

// An address, "localhost", or this machine's own name, alone or with a domain ("pi", "pi.local",
// "pi.lan"): a name a page can reach this machine by without a DNS server the page's owner runs.
bool names_this_machine(const std::string& name) {
  if (name.empty()) return false;
  in6_addr a6{};
  in_addr a4{};
  const std::string bare = name.substr(0, name.find('%'));  // a link-local address's zone
  if (::inet_pton(AF_INET, name.c_str(), &a4) == 1 || ::inet_pton(AF_INET6, bare.c_str(), &a6) == 1) return true;
  const std::string n = lower(name);
  if (n == "localhost" || n == "localhost.") return true;
  char own[256] = {};
  if (::gethostname(own, sizeof own - 1) != 0 || own[0] == '\0') return false;
  const std::string me = lower(own);
  return n == me || (n.size() > me.size() && n.compare(0, me.size(), me) == 0 && n[me.size()] == '.');
}

}  // namespace

std::string request_problem(const http::request<http::string_body>& req) {
  const auto host_field = req.find(http::field::host);
  std::string_view host;
  if (host_field != req.end()) host = std::string_view(host_field->value().data(), host_field->value().size());
  // DNS rebinding: a page whose name was made to resolve to this machine sends its own name.
  if (!host.empty() && !names_this_machine(host_name(host))) {
    return "Host '" + std::string(host) +
           "' is not this machine's address or name: open the monitor by its address (http://192.0.2.7:PORT/), "
           "localhost or the machine's host name (a guard against pages that rename themselves to reach it)";
  }
  // Another site's page in the visitor's browser: its requests carry its origin. Without the
  // header (curl, scripts, stemctl) the request is not a browser's on another site's behalf.
  const bool changes = req.method() == http::verb::post || websocket::is_upgrade(req);
  const auto origin = req.find(http::field::origin);
  if (changes && origin != req.end()) {
    const std::string o = lower(std::string_view(origin->value().data(), origin->value().size()));
    if (host.empty() || (o != "http://" + lower(host) && o != "https://" + lower(host))) {
      return "a page from another origin (" + std::string(origin->value()) +
             ") may not control or listen to stemd: only the monitor's own page can";
    }
  }
  return {};
}

std::pair<http::status, std::string> websocket_problem(const http::request<http::string_body>& req) {
  if (req.find(http::field::host) == req.end()) {
    return {http::status::bad_request, "a WebSocket upgrade without a Host header"};
  }
  const auto key = req.find(http::field::sec_websocket_key);
  if (key == req.end() || key->value().empty()) {
    return {http::status::bad_request,
            "a WebSocket upgrade without Sec-WebSocket-Key (the handshake needs one: 16 random bytes in base64)"};
  }
  if (key->value().size() > 24) {  // 16 bytes in base64; Beast's accept holds no more
    return {http::status::bad_request, "Sec-WebSocket-Key longer than 16 bytes in base64 (24 characters)"};
  }
  const auto version = req.find(http::field::sec_websocket_version);
  if (version == req.end()) {
    return {http::status::bad_request, "a WebSocket upgrade without Sec-WebSocket-Version (this server speaks 13)"};
  }
  if (version->value() != "13") {
    return {http::status::upgrade_required, "Sec-WebSocket-Version " + std::string(version->value().substr(0, 20)) +
                                                " is not spoken here: this server speaks 13"};
  }
  return {http::status::ok, {}};
}

}  // namespace stemd::web
