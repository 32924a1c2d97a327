// What the log says about the Link session (--link) [control]: pure logic, unit-tested
// (tests/unit/link_report_test.cpp); router_sync.cpp writes the lines. New-user pass 26 (M3, L1,
// L7): a box that lost its peers said nothing, a box whose --bpm differed from the session's
// played at another rate without a word, and "(1 peers)".
//
//   ChangeBurst        a value that changes (the peer count, the session tempo) told in few lines:
//                      once it has settled, at most `burst` lines at once, then one per `refill`,
//                      each summing what changed since the last one. Times are wall-clock
//                      (steady clock) seconds.
//   peers_line()       "link: 2 peers → 1 peer"
//   tempo_line()       "link: session tempo 120.00 bpm (from 100.00; 1 peer): players at rate 1.20 …"
//   link_network()     at start (and while it finds a problem): can any interface carry Link's
//                      multicast to another box?
//
// Thread: the control thread (ChangeBurst is not thread-safe; the rest are pure functions, except
// scan_interfaces(), which asks the kernel: getifaddrs, no blocking I/O).
#pragma once

#include <chrono>
#include <cstddef>
#include <string>
#include <vector>

namespace stemd::control {

// "1 peer", "0 peers", "2 peers".
std::string peers_text(std::size_t n);

class ChangeBurst {
 public:
  using Clock = std::chrono::steady_clock;
  struct Limits {
    Clock::duration settle;   // a change is told once the value has held this long…
    Clock::duration longest;  // …or once it has kept changing this long
    int burst;                // lines at once after a quiet spell
    Clock::duration refill;   // then one more line per this long
  };
  // What changed since the last line (or the start).
  struct Report {
    double from = 0, to = 0;  // the value at the last line, and now
    double lo = 0, hi = 0;    // the lowest and highest it took in between (from and to included)
    int changes = 0;          // changes since the last line
    double seconds = 0;       // from the first of them to now
    bool held = false;        // the line waited for the rate limit: the changes are summed
  };

  ChangeBurst(double initial, const Limits& limits, Clock::time_point now);
  // The value now (called every control pass, or on each change): an unequal value is a change.
  void feed(double value, Clock::time_point now);
  // A line is due now: true, with what changed since the last one.
  bool take(Clock::time_point now, Report& r);
  // The value is this from now on, with nothing to tell (a session left and joined afresh).
  void reset(double value, Clock::time_point now);
  double value() const { return value_; }

 private:
  Limits limits_;
  double value_, from_, lo_, hi_;
  int changes_ = 0;
  bool held_ = false;
  Clock::time_point first_{}, last_{};
  double tokens_;
  Clock::time_point tokens_at_;
};

// Peers: told once the count has held 1 s (boxes starting together are one line), or after 10 s
// of flapping; 3 lines at once, then at most one per 30 s: a flapping Wi-Fi writes at most 123
// lines an hour (≈ 18–26 kB with the journal's timestamps: about what the health line writes at
// its default interval, 17.5 kB; not the tens of MB a day of a line per change).
inline constexpr ChangeBurst::Limits kPeerLimits{std::chrono::seconds(1), std::chrono::seconds(10), 3,
                                                 std::chrono::seconds(30)};
// The session tempo: one line per change burst (a peer dragging its tempo: settled for 1 s), a
// burst longer than 30 s told every 30 s; 3 lines at once, then at most one per 30 s.
inline constexpr ChangeBurst::Limits kTempoLimits{std::chrono::seconds(1), std::chrono::seconds(30), 3,
                                                  std::chrono::seconds(30)};

// "link: 2 peers → 1 peer", with the changes summed when there were several ("(5 changes in 42 s,
// between 0 and 3 peers)") and the rate limit named when the line waited for it; at 0 peers, that
// this box plays on alone at `bpm`.
std::string peers_line(const ChangeBurst::Report& r, double bpm);

// The session's tempo reached the players: what rate they take.
struct TempoLine {
  ChangeBurst::Report change;  // the session tempo (bpm)
  std::size_t peers = 0;
  double base_bpm = 120;      // --bpm: the stems' own tempo
  double rate = 1;            // what the players take now (the tempo ratio, held within the budgets)
  bool moves_players = true;  // false: --disable-time-stretch with pyrubberband/audiotsm
  bool stretch = false;       // --stretch-method time_stretch: the pitch is kept
  double held_bpm = 0;        // > 0: held by the work budget at this tempo
};
// "link: session tempo 120.00 bpm (from 100.00; 1 peer): players at rate 1.20 (session 120.00
// bpm ÷ --bpm 100, the stems' own tempo)".
std::string tempo_line(const TempoLine& t);

// One network interface as getifaddrs() lists it (its addresses merged).
struct NetInterface {
  std::string name;
  bool up = false, running = false, loopback = false, multicast = false, ipv4 = false;
};
std::vector<NetInterface> scan_interfaces();

// Can Link reach another box? Link (1.x/3.0) finds peers by IPv4 multicast on every interface that
// is up with an IPv4 address, loopback included (several programs on one machine), and looks for
// new interfaces every 5 s.
enum class LinkReach {
  kNetwork,   // an interface besides loopback is up, running, with IPv4 and multicast
  kLoopback,  // only loopback: Link programs on this machine only
  kNone,      // not even loopback: no peer at all
};
LinkReach link_reach(const std::vector<NetInterface>& ifs);
// The warning for kLoopback and kNone, naming why each other interface cannot carry it; the info
// line when it became kNetwork (the interfaces that can). "" for kNetwork at start.
std::string link_reach_text(LinkReach reach, const std::vector<NetInterface>& ifs, bool at_start);

}  // namespace stemd::control
