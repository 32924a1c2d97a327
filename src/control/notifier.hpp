// The notifier: who subscribed (/stemd/notify 1), for how long, and the notifications fanned out
// to them (engine events, device changes) [control]. Subscriptions are budgeted: at most
// max_subscribers, each lasting ttl_s seconds of wall time unless renewed. Whether a source may
// subscribe at all (the cookie) is the router's decision. Thread: the control thread only.
#pragma once

#include "controller.hpp"
#include "router_types.hpp"

#include <chrono>
#include <string>
#include <vector>

namespace stemd::control {

class Notifier {
 public:
  using Clock = std::chrono::steady_clock;

  Notifier(std::size_t max_subscribers, double ttl_s) : max_(max_subscribers), ttl_s_(ttl_s) {}

  // Subscribes `from` (or renews its subscription) until now + ttl; fails kLimit when full.
  Reply subscribe(const Peer& from, Clock::time_point now);
  void unsubscribe(const Peer& from);
  // Drops `p` (unreachable, disconnected), logged.
  void drop(const Peer& p);
  // Drops subscriptions not renewed within the ttl.
  void expire(Clock::time_point now);

  void on_event(const engine::Event& e, const VoiceInfo& v);
  void device(const std::string& what, const std::vector<OscArg>& values);
  // A slot loaded (/stemd/source/loaded id name duration_s) or unloaded (/stemd/source/unloaded id).
  void source(int slot, const io::Source* s);
  void take(std::vector<Outgoing>& out);

  std::size_t size() const { return subscribers_.size(); }
  std::size_t count_local(std::uint64_t local) const;  // the in-process peer `local`'s subscriptions (0 or 1)
  std::vector<Peer> peers() const;
  double ttl_s() const { return ttl_s_; }

 private:
  struct Subscriber {
    Peer peer;
    Clock::time_point expires;
  };
  void fan_out(const OscMessage& m);
  std::size_t max_;
  double ttl_s_;
  std::vector<Subscriber> subscribers_;
  std::vector<Outgoing> pending_;
};

}  // namespace stemd::control
