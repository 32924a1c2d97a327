// The notifier (see notifier.hpp). [control]
#include "notifier.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>

namespace stemd::control {

Reply Notifier::subscribe(const Peer& from, Clock::time_point now) {
  const auto expires = now + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(ttl_s_));
  auto it = std::find_if(subscribers_.begin(), subscribers_.end(), [&](const Subscriber& s) { return s.peer == from; });
  if (it == subscribers_.end()) {
    if (subscribers_.size() >= max_) {
      return Reply::fail(ErrorKind::kLimit,
                         "too many subscribers (limit " + std::to_string(max_) + ", --max-subscribers)");
    }
    subscribers_.push_back(Subscriber{from, expires});
  } else {
    it->expires = expires;
  }
  return Reply::done({OscArg::Int(1), OscArg::Float(ttl_s_)});
}

void Notifier::unsubscribe(const Peer& from) {
  auto it = std::find_if(subscribers_.begin(), subscribers_.end(), [&](const Subscriber& s) { return s.peer == from; });
  if (it != subscribers_.end()) subscribers_.erase(it);
}

void Notifier::drop(const Peer& p) {
  const auto before = subscribers_.size();
  std::erase_if(subscribers_, [&](const Subscriber& s) {
    if (p.local != 0) return s.peer.local == p.local;
    return p.tcp_fd >= 0 ? s.peer.tcp_fd == p.tcp_fd
                         : (s.peer.tcp_fd < 0 && s.peer.local == 0 && s.peer.endpoint == p.endpoint);
  });
  if (subscribers_.size() != before) {
    spdlog::info("OSC: subscriber {} expired (unreachable or disconnected)", p.endpoint.to_string());
  }
}

void Notifier::expire(Clock::time_point now) {
  for (std::size_t i = 0; i < subscribers_.size();) {
    if (subscribers_[i].expires > now) {
      ++i;
      continue;
    }
    spdlog::info("OSC: subscriber {} expired (not renewed within {:g} s, --subscription-ttl)",
                 subscribers_[i].peer.endpoint.to_string(), ttl_s_);
    subscribers_.erase(subscribers_.begin() + static_cast<std::ptrdiff_t>(i));
  }
}

void Notifier::fan_out(const OscMessage& m) {
  const auto bytes = osc_serialise(m);
  for (const Subscriber& s : subscribers_) pending_.push_back(Outgoing{s.peer, bytes});
}

void Notifier::on_event(const engine::Event& e, const VoiceInfo& v) {
  if (subscribers_.empty()) return;
  OscMessage m;
  switch (e.type) {
    case engine::EventType::kVoiceStarted:
      m.address = "/stemd/voice/started";
      m.args = {OscArg::Int(v.slot), OscArg::Int(e.voice), OscArg::Str(v.name)};
      break;
    case engine::EventType::kVoiceEnded:
      m.address = "/stemd/voice/ended";
      m.args = {OscArg::Int(v.slot), OscArg::Int(e.voice), OscArg::Str(end_reason_text(e.reason, v))};
      break;
    case engine::EventType::kVoiceUnderrun:
      m.address = "/stemd/voice/underrun";
      m.args = {OscArg::Int(v.slot), OscArg::Int(e.voice), OscArg::Int64(static_cast<std::int64_t>(e.count))};
      break;
    case engine::EventType::kVoiceDeferred:  // heard `count` output frames late (start, seek or tempo change; on the
                                             // grid)
      m.address = "/stemd/voice/deferred";
      m.args = {OscArg::Int(v.slot), OscArg::Int(e.voice), OscArg::Int64(static_cast<std::int64_t>(e.count))};
      break;
    default:
      return;
  }
  fan_out(m);
}

void Notifier::device(const std::string& what, const std::vector<OscArg>& values) {
  if (subscribers_.empty()) return;
  OscMessage m;
  m.address = "/stemd/device/" + what;
  m.args = values;
  fan_out(m);
}

void Notifier::source(int slot, const io::Source* s) {
  if (subscribers_.empty()) return;
  OscMessage m;
  m.args.push_back(OscArg::Int(slot));
  if (s == nullptr) {
    m.address = "/stemd/source/unloaded";
  } else {
    m.address = "/stemd/source/loaded";
    m.args.push_back(OscArg::Str(s->name));
    const int rate = s->info.sample_rate > 0 ? s->info.sample_rate : 1;
    m.args.push_back(OscArg::Float(static_cast<double>(s->total_frames()) / rate));  // file seconds
  }
  fan_out(m);
}

void Notifier::take(std::vector<Outgoing>& out) {
  for (auto& n : pending_) out.push_back(std::move(n));
  pending_.clear();
}

std::size_t Notifier::count_local(std::uint64_t local) const {
  std::size_t n = 0;
  for (const Subscriber& s : subscribers_) n += s.peer.local == local ? 1 : 0;
  return n;
}

std::vector<Peer> Notifier::peers() const {
  std::vector<Peer> v;
  v.reserve(subscribers_.size());
  for (const Subscriber& s : subscribers_) v.push_back(s.peer);
  return v;
}

}  // namespace stemd::control
