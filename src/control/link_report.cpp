// What the log says about the Link session (see link_report.hpp). [control]
#include "link_report.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <map>

#include <ifaddrs.h>
#include <net/if.h>
#include <sys/socket.h>

namespace stemd::control {

std::string peers_text(std::size_t n) { return std::to_string(n) + (n == 1 ? " peer" : " peers"); }

ChangeBurst::ChangeBurst(double initial, const Limits& limits, Clock::time_point now)
    : limits_(limits),
      value_(initial),
      from_(initial),
      lo_(initial),
      hi_(initial),
      tokens_(limits.burst),
      tokens_at_(now) {}

void ChangeBurst::feed(double value, Clock::time_point now) {
  if (value == value_) return;
  if (changes_ == 0) first_ = now;
  ++changes_;
  last_ = now;
  value_ = value;
  lo_ = std::min(lo_, value);
  hi_ = std::max(hi_, value);
}

bool ChangeBurst::take(Clock::time_point now, Report& r) {
  if (changes_ == 0) return false;
  if (now - last_ < limits_.settle && now - first_ < limits_.longest) return false;  // still changing
  const double refill_s = std::chrono::duration<double>(limits_.refill).count();
  tokens_ =
      std::min<double>(limits_.burst, tokens_ + std::chrono::duration<double>(now - tokens_at_).count() / refill_s);
  tokens_at_ = now;
  if (tokens_ < 1.0) {
    held_ = true;
    return false;
  }
  tokens_ -= 1.0;
  r.from = from_;
  r.to = value_;
  r.lo = lo_;
  r.hi = hi_;
  r.changes = changes_;
  r.seconds = std::chrono::duration<double>(now - first_).count();
  r.held = held_;
  from_ = lo_ = hi_ = value_;
  changes_ = 0;
  held_ = false;
  return true;
}

void ChangeBurst::reset(double value, Clock::time_point now) {
  value_ = from_ = lo_ = hi_ = value;
  changes_ = 0;
  held_ = false;
  (void)now;
}

namespace {

// " (5 changes in 42 s, between 0 and 3 peers; …)" — what a summed line adds; "" for one change.
std::string summed(const ChangeBurst::Report& r, const std::string& range) {
  std::string t;
  if (r.changes > 1) t = fmt::format("{} changes in {:.0f} s, {}", r.changes, std::max(1.0, r.seconds), range);
  if (r.held) t += std::string(t.empty() ? "" : "; ") + "at most one line per 30 s while it keeps changing";
  return t;
}

}  // namespace

std::string peers_line(const ChangeBurst::Report& r, double bpm) {
  const auto n = [](double x) { return static_cast<std::size_t>(std::max(0.0, x)); };
  std::string t = r.to == r.from ? "link: " + peers_text(n(r.to)) + ", as before"
                                 : "link: " + peers_text(n(r.from)) + " → " + peers_text(n(r.to));
  const std::string more =
      summed(r, r.lo == r.hi ? "" : fmt::format("between {} and {}", n(r.lo), peers_text(n(r.hi))));
  if (!more.empty()) t += " (" + more + ")";
  if (r.to == 0 && r.from != 0) {
    t += fmt::format(
        ": this box plays on alone at {:.2f} bpm, keeping its beat (Link peers vanish ~5 s after their last message; "
        "is the network or multicast down?)",
        bpm);
  }
  return t;
}

std::string tempo_line(const TempoLine& t) {
  const ChangeBurst::Report& c = t.change;
  std::string head = fmt::format("link: session tempo {:.2f} bpm (from {:.2f}", c.to, c.from);
  if (const std::string more = summed(c, fmt::format("between {:.2f} and {:.2f} bpm", c.lo, c.hi)); !more.empty())
    head += ", " + more;
  head += "; " + peers_text(t.peers) + "): ";
  if (!t.moves_players) {
    return head + "players stay at their own rate (--disable-time-stretch: only the beat clock follows the session)";
  }
  const double wanted = c.to / t.base_bpm;
  std::string rate =
      std::fabs(t.rate - 1.0) < 5e-5 ? "players at their own rate" : fmt::format("players at rate {:.2f}", t.rate);
  if (t.stretch) rate += " (time-stretched: the pitch kept)";
  std::string why = fmt::format("session {:.2f} bpm ÷ --bpm {:g}, the stems' own tempo", c.to, t.base_bpm);
  if (t.held_bpm > 0) {
    why = fmt::format("held at {:.2f} bpm by the work budget: the session's {:.2f} would be rate {:.2f}", t.held_bpm,
                      c.to, wanted);
  } else if (std::fabs(t.rate - wanted) > 5e-5) {
    why = fmt::format("the most they follow, 0.25–4 × --bpm {:g}: the session's {:.2f} bpm would be rate {:.2f}",
                      t.base_bpm, c.to, wanted);
  }
  return head + rate + " (" + why + ")";
}

std::vector<NetInterface> scan_interfaces() {
  std::vector<NetInterface> out;
  ifaddrs* list = nullptr;
  if (getifaddrs(&list) != 0) return out;
  std::map<std::string, NetInterface> by_name;
  for (const ifaddrs* a = list; a != nullptr; a = a->ifa_next) {
    if (a->ifa_name == nullptr) continue;
    NetInterface& i = by_name[a->ifa_name];
    i.name = a->ifa_name;
    i.up = (a->ifa_flags & IFF_UP) != 0;
    i.running = (a->ifa_flags & IFF_RUNNING) != 0;
    i.loopback = (a->ifa_flags & IFF_LOOPBACK) != 0;
    i.multicast = (a->ifa_flags & IFF_MULTICAST) != 0;
    if (a->ifa_addr != nullptr && a->ifa_addr->sa_family == AF_INET) i.ipv4 = true;
  }
  freeifaddrs(list);
  for (auto& [name, i] : by_name) out.push_back(std::move(i));
  return out;
}

namespace {

bool carries(const NetInterface& i) { return i.up && i.running && i.multicast && i.ipv4; }

std::string why_not(const NetInterface& i) {
  if (!i.up) return i.name + " is down";
  if (!i.running) return i.name + " has no carrier";
  if (!i.ipv4) return i.name + " has no IPv4 address";
  return i.name + " does not do multicast";
}

}  // namespace

LinkReach link_reach(const std::vector<NetInterface>& ifs) {
  LinkReach r = LinkReach::kNone;
  for (const NetInterface& i : ifs) {
    if (!i.loopback && carries(i)) return LinkReach::kNetwork;
    if (i.loopback && i.up && i.ipv4) r = LinkReach::kLoopback;  // Link uses loopback with or without its flag
  }
  return r;
}

std::string link_reach_text(LinkReach reach, const std::vector<NetInterface>& ifs, bool at_start) {
  std::vector<std::string> names;
  for (const NetInterface& i : ifs) {
    if (i.loopback) continue;
    if (reach == LinkReach::kNetwork ? carries(i) : true)
      names.push_back(reach == LinkReach::kNetwork ? i.name : why_not(i));
  }
  std::string list;
  constexpr std::size_t kNamed = 6;
  for (std::size_t k = 0; k < names.size() && k < kNamed; ++k) list += (k > 0 ? ", " : "") + names[k];
  if (names.size() > kNamed) list += fmt::format(" and {} more", names.size() - kNamed);
  if (reach == LinkReach::kNetwork) {
    return at_start ? std::string()
                    : "link: " + list + " can carry Link's multicast now: other boxes can find this one";
  }
  if (list.empty()) list = "there is no other interface";
  const std::string later =
      "Link looks for new interfaces every 5 s, and this log says when one can carry it "
      "(224.76.78.75 udp 20808 needs an interface that is up, with an IPv4 address and multicast)";
  if (reach == LinkReach::kLoopback) {
    return "link: no network interface but loopback can carry Link's multicast (" + list +
           "): Link finds only peers on this machine — right for a single box that syncs with Link programs on "
           "itself, but no other box finds this one until an interface comes up; " +
           later;
  }
  return "link: no network interface is up, not even loopback (" + list +
         "): Link finds no peer at all, not even on "
         "this machine; " +
         later;
}

}  // namespace stemd::control
