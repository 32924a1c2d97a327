// The web monitor's recent events (event_backlog.hpp).
#include "web/event_backlog.hpp"

#include <fmt/format.h>

#include <cstring>
#include <random>

namespace stemd::web {

bool EventBacklog::add(std::uint64_t seq, std::int64_t unix_ms, std::string_view json) {
  if (json.size() > kMaxBytes || seq == 0 || (count_ > 0 && seq <= slots_[(first_ + count_ - 1) % kCapacity].seq))
    return false;
  Slot* s = nullptr;
  if (count_ < kCapacity) {
    s = &slots_[(first_ + count_++) % kCapacity];
  } else {
    s = &slots_[first_];  // the oldest goes
    first_ = (first_ + 1) % kCapacity;
  }
  s->seq = seq;
  s->unix_ms = unix_ms;
  s->len = static_cast<std::uint16_t>(json.size());
  std::memcpy(s->text.data(), json.data(), json.size());
  if (seq >= next_seq_) next_seq_ = seq + 1;
  return true;
}

std::string EventBacklog::new_run() {
  std::random_device rd;
  const std::uint64_t r = (static_cast<std::uint64_t>(rd()) << 32) ^ rd();
  return fmt::format("{:016x}", r);
}

bool EventBacklog::valid_run(std::string_view run) {
  return !run.empty() && run.size() <= 32 && run.find_first_not_of("0123456789abcdef") == std::string_view::npos;
}

bool EventBacklog::set_run(std::string_view run) {
  if (!valid_run(run)) return false;
  run_ = std::string(run);
  return true;
}

std::string EventBacklog::stamp(std::string_view json, std::int64_t unix_ms, std::uint64_t seq, std::string_view run) {
  std::string out = fmt::format(R"({{"seq":{},"time_ms":{})", seq, unix_ms);
  if (!run.empty()) out += fmt::format(R"(,"run":"{}")", run);
  if (json.size() > 2) {  // "{…}" (not "{}"): its members after ours
    out += ',';
    out.append(json.substr(1));
  } else {
    out += '}';
  }
  return out;
}

std::vector<PastEvent> EventBacklog::after(std::uint64_t since, std::string_view run) const {
  if (since >= next_seq_ || (!run.empty() && run != run_)) since = 0;
  std::vector<PastEvent> out;
  for (std::size_t i = 0; i < count_; ++i) {
    const Slot& s = slots_[(first_ + i) % kCapacity];
    if (s.seq > since) out.push_back({s.seq, s.unix_ms, std::string(s.text.data(), s.len)});
  }
  return out;
}

}  // namespace stemd::web
