// The names the web monitor answers to beyond the built-in ones (--http-host), checked where the
// flags are (src/app) and where requests are (web_guard.cpp).
#pragma once

#include <string>
#include <vector>

namespace stemd::web {

// Why `name` cannot be an --http-host (a port, a URL, a wildcard, not a host name), or empty.
std::string host_name_problem(const std::string& name);
// --http-host's names as requests are compared with them: lower case, without a trailing dot.
std::vector<std::string> normalise_hosts(const std::vector<std::string>& names);

}  // namespace stemd::web
