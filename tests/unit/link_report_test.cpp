// What the log says about the Link session (new-user pass 26, M3, L1, L7): the peer count's and
// the session tempo's lines, told once a change has settled and within a rate limit a flapping
// Wi-Fi cannot flood an SD card's journal with; the rate the players take; whether an interface can
// carry Link's multicast. Synthetic times and interface lists: no network, no clock.
#include "control/link_report.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <vector>

namespace stemd::control {
namespace {

using Clock = ChangeBurst::Clock;
using std::chrono::milliseconds;
using std::chrono::seconds;

const Clock::time_point t0{};

TEST(LinkReport, PeersSayOnePeer) {
  EXPECT_EQ(peers_text(0), "0 peers");
  EXPECT_EQ(peers_text(1), "1 peer");
  EXPECT_EQ(peers_text(2), "2 peers");
}

// One change is told once it has held a second, as "from → to"; nothing before, nothing twice.
TEST(LinkReport, AChangeIsToldOnceItHasSettled) {
  ChangeBurst b(2, kPeerLimits, t0);
  ChangeBurst::Report r;
  EXPECT_FALSE(b.take(t0 + seconds(5), r)) << "nothing changed";
  b.feed(2, t0 + seconds(6));  // the same value: no change
  EXPECT_FALSE(b.take(t0 + seconds(8), r));
  b.feed(1, t0 + seconds(10));
  EXPECT_FALSE(b.take(t0 + milliseconds(10500), r)) << "not settled yet";
  ASSERT_TRUE(b.take(t0 + seconds(11), r));
  EXPECT_EQ(r.from, 2);
  EXPECT_EQ(r.to, 1);
  EXPECT_EQ(r.changes, 1);
  EXPECT_FALSE(r.held);
  EXPECT_EQ(peers_line(r, 120), "link: 2 peers → 1 peer");
  EXPECT_FALSE(b.take(t0 + seconds(12), r)) << "told once";
}

// Boxes starting together (0 → 1 → 2 within the second) are one line.
TEST(LinkReport, ChangesWithinTheSettlingTimeAreOneLine) {
  ChangeBurst b(0, kPeerLimits, t0);
  ChangeBurst::Report r;
  b.feed(1, t0 + milliseconds(500));
  b.feed(2, t0 + milliseconds(900));
  EXPECT_FALSE(b.take(t0 + milliseconds(1600), r));
  ASSERT_TRUE(b.take(t0 + milliseconds(1900), r));
  EXPECT_EQ(peers_line(r, 120), "link: 0 peers → 2 peers (2 changes in 1 s, between 0 and 2 peers)");
}

// Losing every peer says what this box does now.
TEST(LinkReport, NoPeersLeftSaysTheBoxPlaysOnAlone) {
  ChangeBurst b(1, kPeerLimits, t0);
  ChangeBurst::Report r;
  b.feed(0, t0 + seconds(1));
  ASSERT_TRUE(b.take(t0 + seconds(3), r));
  const std::string line = peers_line(r, 126);
  EXPECT_EQ(line.rfind("link: 1 peer → 0 peers: this box plays on alone at 126.00 bpm, keeping its beat", 0), 0u)
      << line;
}

// A flapping Wi-Fi: a peer lost and back every 3 s for an hour. The first 3 changes are told at
// once, then at most one line per 30 s, each summing the changes since the last one — 120 lines
// an hour at most, whatever the flapping.
TEST(LinkReport, AFlappingNetworkWritesAtMostOneLinePer30Seconds) {
  ChangeBurst b(2, kPeerLimits, t0);
  ChangeBurst::Report r;
  int lines = 0, changes = 0, held = 0;
  std::string last;
  for (int ms = 0; ms < 3600 * 1000; ms += 100) {
    const auto now = t0 + milliseconds(ms);
    if (ms % 3000 == 0) {
      b.feed(ms % 6000 == 0 ? 1 : 2, now);
      ++changes;
    }
    if (b.take(now, r)) {
      ++lines;
      held += r.held ? 1 : 0;
      if (lines == 4) last = peers_line(r, 120);
    }
  }
  EXPECT_EQ(changes, 1200);
  EXPECT_LE(lines, 3 + 3600 / 30) << "the rate limit";
  EXPECT_GE(lines, 3600 / 30 - 1) << "the flapping is still told, summed";
  EXPECT_GT(held, 100);
  // The fourth line waited for the limit: it sums what changed meanwhile, and says so.
  EXPECT_NE(last.find(" changes in "), std::string::npos) << last;
  EXPECT_NE(last.find("between 1 and 2 peers"), std::string::npos) << last;
  EXPECT_NE(last.find("at most one line per 30 s"), std::string::npos) << last;
}

// A value that keeps changing (a peer dragging its tempo, a flood) is told after `longest`
// anyway; a quiet spell refills the burst.
TEST(LinkReport, AValueThatNeverSettlesIsToldAfterTheLongestWait) {
  ChangeBurst b(120, kTempoLimits, t0);
  ChangeBurst::Report r;
  int lines = 0;
  for (int ms = 0; ms <= 65 * 1000; ms += 50) {
    b.feed(120 + (ms / 50) % 7, t0 + milliseconds(ms));  // a change every 50 ms
    if (b.take(t0 + milliseconds(ms), r)) ++lines;
  }
  EXPECT_EQ(lines, 2) << "at 30 s and 60 s";
  EXPECT_GT(r.changes, 500);
  EXPECT_EQ(r.lo, 120);
  EXPECT_EQ(r.hi, 126);
}

// L1: a box whose --bpm differs from the session's says what rate its players take.
TEST(LinkReport, TheTempoLineSaysWhatRateThePlayersTake) {
  TempoLine t;
  t.change.from = 100;
  t.change.to = 120;
  t.change.lo = 100;
  t.change.hi = 120;
  t.change.changes = 1;
  t.peers = 2;
  t.base_bpm = 100;
  t.rate = 1.2;
  EXPECT_EQ(tempo_line(t),
            "link: session tempo 120.00 bpm (from 100.00; 2 peers): players at rate 1.20 (session 120.00 bpm ÷ --bpm "
            "100, the stems' own tempo)");
  t.base_bpm = 120;  // the session at this box's own tempo again
  t.rate = 1.0;
  t.change.from = 126;
  t.peers = 1;
  EXPECT_EQ(tempo_line(t),
            "link: session tempo 120.00 bpm (from 126.00; 1 peer): players at their own rate (session 120.00 bpm ÷ "
            "--bpm 120, the stems' own tempo)");
  t.rate = 4.0;  // beyond what they follow
  t.change.to = 600;
  EXPECT_NE(tempo_line(t).find("players at rate 4.00 (the most they follow, 0.25–4 × --bpm 120: the session's 600.00 "
                               "bpm would be rate 5.00)"),
            std::string::npos)
      << tempo_line(t);
  t.rate = 1.25;  // held by the work budget
  t.held_bpm = 150;
  EXPECT_NE(tempo_line(t).find("players at rate 1.25 (held at 150.00 bpm by the work budget"), std::string::npos)
      << tempo_line(t);
  t.moves_players = false;
  EXPECT_NE(tempo_line(t).find("players stay at their own rate (--disable-time-stretch"), std::string::npos)
      << tempo_line(t);
}

NetInterface iface(const char* name, bool up, bool running, bool multicast, bool ipv4, bool loopback = false) {
  NetInterface i;
  i.name = name;
  i.up = up;
  i.running = running;
  i.multicast = multicast;
  i.ipv4 = ipv4;
  i.loopback = loopback;
  return i;
}

// M3: stemd said "joined" in a namespace with every interface down.
TEST(LinkReport, TheNetworkCheckSaysWhyNoInterfaceCarriesLink) {
  const NetInterface lo_up = iface("lo", true, true, false, true, true);  // Link uses it without the flag
  const NetInterface lo_down = iface("lo", false, false, false, true, true);
  EXPECT_EQ(link_reach({lo_up, iface("eth0", true, true, true, true)}), LinkReach::kNetwork);
  EXPECT_EQ(link_reach_text(LinkReach::kNetwork, {lo_up, iface("eth0", true, true, true, true)}, true), "");

  const std::vector<NetInterface> only_lo{lo_up, iface("eth0", true, false, true, true),  // cable out
                                          iface("wlan0", true, true, true, false),        // no DHCP lease yet
                                          iface("wg0", true, true, false, true),          // a tunnel
                                          iface("eth1", false, false, true, true)};
  ASSERT_EQ(link_reach(only_lo), LinkReach::kLoopback);
  const std::string w = link_reach_text(LinkReach::kLoopback, only_lo, true);
  EXPECT_EQ(w.rfind("link: no network interface but loopback can carry Link's multicast (eth0 has no carrier, wlan0 "
                    "has no IPv4 address, wg0 does not do multicast, eth1 is down): Link finds only peers on this "
                    "machine — right for a single box that syncs with Link programs on itself, but no other box "
                    "finds this one",
                    0),
            0u)
      << w;
  EXPECT_NE(w.find("Link looks for new interfaces every 5 s"), std::string::npos) << w;

  ASSERT_EQ(link_reach({lo_down}), LinkReach::kNone);
  EXPECT_EQ(link_reach_text(LinkReach::kNone, {lo_down}, true)
                .rfind("link: no network interface is up, not even loopback (there is no other interface): Link finds "
                       "no peer at all",
                       0),
            0u);
  // It came up later: said once, as information.
  EXPECT_EQ(link_reach_text(LinkReach::kNetwork, {lo_up, iface("eth0", true, true, true, true)}, false),
            "link: eth0 can carry Link's multicast now: other boxes can find this one");
}

}  // namespace
}  // namespace stemd::control
