// What a browser may ask of the web monitor (web_internal.hpp: host_problem, origin_problem),
// and which WebSocket upgrades can be accepted (websocket_problem).
#include "web_internal.hpp"

#include "base/log_guard.hpp"

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

// `name` without one trailing dot ("pi.local." is "pi.local"), in lower case.
std::string plain(std::string_view name) {
  if (!name.empty() && name.back() == '.') name.remove_suffix(1);
  return lower(name);
}

bool ip_literal(const std::string& name) {
  in6_addr a6{};
  in_addr a4{};
  const std::string bare = name.substr(0, name.find('%'));  // a link-local address's zone
  return ::inet_pton(AF_INET, name.c_str(), &a4) == 1 || ::inet_pton(AF_INET6, bare.c_str(), &a6) == 1;
}

// A name a page can reach this machine by, which no page's owner can make resolve to a server
// of theirs: an address, "localhost", this machine's host name alone ("pi"; as set, and its
// first label when it is set as "pi.example.org"), NAME.local (mDNS answers it on the LAN
// alone), or a name the operator listed (--http-host, normalised by WebServer::open).
// Not "NAME.<any domain>": the attacker picks the domain (`pi.attacker.example`, its DNS
// answering first with its own server, then with this machine's address: DNS rebinding; outside
// pass 24). Not the machine's FQDN from its resolver either (docs/security.md says why).
bool names_this_machine(const std::string& name, const std::vector<std::string>& hosts) {
  if (name.empty()) return false;
  if (ip_literal(name)) return true;
  const std::string n = plain(name);
  if (n == "localhost") return true;
  if (std::find(hosts.begin(), hosts.end(), n) != hosts.end()) return true;
  char own[256] = {};
  if (::gethostname(own, sizeof own - 1) != 0 || own[0] == '\0') return false;
  const std::string me = plain(own);
  const std::string first = me.substr(0, me.find('.'));
  return n == me || n == first || n == first + ".local";
}

}  // namespace

std::string host_problem(const http::request<http::string_body>& req, const std::vector<std::string>& hosts) {
  const auto host_field = req.find(http::field::host);
  if (host_field == req.end() || host_field->value().empty()) return {};
  const std::string_view host(host_field->value().data(), host_field->value().size());
  // DNS rebinding: a page whose name was made to resolve to this machine sends its own name.
  if (names_this_machine(host_name(host), hosts)) return {};
  const std::string name = host_name(host);
  const std::string shown = base::log_escape(name, 100);
  std::string fix;  // what the operator can do, when the name could be one of this machine's
  if (!name.empty() && host_name_problem(name).empty()) {
    fix = ". If '" + shown + "' is this machine's name on your network, start stemd with --http-host " + shown +
          " (config file: http-host = [\"" + shown + "\"])";
  }
  return "Host '" + shown +
         "' is not a name this machine answers to: open the monitor by its address (http://192.0.2.7:PORT/), "
         "localhost, its host name alone or NAME.local (a guard against pages that rename themselves to reach it, "
         "DNS rebinding)" +
         fix;
}

std::string origin_problem(const http::request<http::string_body>& req) {
  const auto host_field = req.find(http::field::host);
  std::string_view host;
  if (host_field != req.end()) host = std::string_view(host_field->value().data(), host_field->value().size());
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

std::string host_name_problem(const std::string& name) {
  if (name.empty()) return "an empty name";
  if (ip_literal(name)) return {};  // accepted anyway; harmless to list
  if (name.find('/') != std::string::npos) return "'" + name + "' is a URL: give the name alone (pi.lan)";
  if (name.find(':') != std::string::npos) return "'" + name + "': give the name without a port (pi.lan)";
  if (name.find('*') != std::string::npos) {
    return "'" + name + "': no wildcards: list each name (--http-host is repeatable)";
  }
  const std::string n = plain(name);
  if (n.empty() || n.size() > 253) return "'" + name + "' is not a host name (1 to 253 characters)";
  std::size_t label = 0;
  for (std::size_t i = 0; i <= n.size(); ++i) {
    if (i == n.size() || n[i] == '.') {
      if (label == 0 || label > 63) return "'" + name + "' is not a host name (a label of 1 to 63 characters)";
      label = 0;
      continue;
    }
    const unsigned char c = static_cast<unsigned char>(n[i]);
    if (!std::isalnum(c) && c != '-' && c != '_') {
      return "'" + name + "' is not a host name (letters, digits, '-' and '.')";
    }
    ++label;
  }
  return {};
}

std::vector<std::string> normalise_hosts(const std::vector<std::string>& names) {
  std::vector<std::string> out;
  for (const auto& n : names) out.push_back(ip_literal(n) ? n : plain(n));
  return out;
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
