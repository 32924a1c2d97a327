// The work budgets and the engine's stretch buses (engine/stretch_bus.hpp; controller.hpp,
// work_budget.hpp): the stems of a deck at one tempo ride one bus, stretched once and then
// resampled once, so a bus is charged as the converters it runs — one stretcher at its tempo and,
// for a source rate other than the output's, one resampler at that step — not one per member.
// The plan follows the engine's rule when a command is sent — the same code: engine/bus_rule.hpp —
// and each bus is charged the higher of the plan's and what the engine last published it ran
// (BusTelemetry: running or in its tail, its tempo, the own stretchers handing voices over onto it).
// Where the engine's riders differ from the plan's (it moved a voice on its own: a rejoin; commands
// raced), it says so (BusTelemetry::tags) and reconcile_buses looks at which voice rides where.
// [control] thread only.
#include "controller.hpp"
#include "work_budget.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <limits>

namespace stemd::control {

using engine::CommandType;

namespace {
// After its last member left a bus plays out what it holds (L / ρ output frames, ≤ ≈ 0.2 s at
// tempo 0.25): charged this long (output seconds).
constexpr double kTailSeconds = 0.5;
// A voice the engine reports on a bus the plan has it off is taken as riding it once its last change
// is this old (output seconds: a split's wait and a leave's fade are shorter); one the engine reports
// off a bus the plan has it on is charged its own converters as soon as its change is heard.
constexpr double kReconcileSeconds = 0.2;
// While the engine's riders differ from the plan's, every voice slot is looked at this often at most
// (output seconds).
constexpr double kScanSeconds = 0.02;
// A play handed over onto a running bus: its own stretcher runs L / ρ output frames (≤ ≈ 0.2 s at
// tempo 0.25) plus the crossfade (stretch_bus_handover.cpp): charged this long (output seconds).
constexpr double kHandoverSeconds = 0.3;
// A plan's bus whose last member leaves: its tail's end is set when the change is sent.
constexpr std::int64_t kTailUnset = std::numeric_limits<std::int64_t>::max();
}  // namespace

struct Controller::TempoPlan {
  struct Move {
    engine::VoiceId id = 0;
    int bus = -1;  // the bus it rides after the change, -1: its own converters
    Charges own;   // its own charges after the change (what it costs when it is not on a bus)
  };
  std::vector<BusModel> buses;  // after the change
  std::vector<Move> moves;
  WorkNeed need;
};

// The engine's buses, in the order it made them (VoiceTelemetry::bus - 1, BusTelemetry).
void Controller::make_bus_model() {
  const int out = engine_.config().sample_rate;
  for (std::uint32_t i = 0; i < engine_.stretch_buses(); ++i) {
    const int rate = engine_.stretch_bus_rate(i);
    buses_.push_back(BusModel{.rate = rate, .ratio = static_cast<double>(rate) / out});
  }
}

void Controller::book(const VoiceSlot& vs, bool add) {
  const std::uint64_t rs = vs.bus < 0 ? vs.rs_units : 0, st = vs.bus < 0 ? vs.st_units : 0;
  const std::uint32_t slot = vs.st_units > 0 ? 1 : 0;
  std::uint64_t tag = 0;
  if (vs.bus >= 0) {
    const auto id = static_cast<std::uint32_t>(&vs - voices_.data());
    tag = engine::bus_rule::member_tag(id, vs.generation);
  }
  std::uint64_t& tags = vs.bus >= 0 ? buses_[static_cast<std::size_t>(vs.bus)].tags : tag;
  if (add) {
    rs_units_used_ += rs;
    st_units_used_ += st;
    st_slots_ += slot;
    tags += tag;
  } else {
    rs_units_used_ -= rs;
    st_units_used_ -= st;
    st_slots_ -= slot;
    tags -= tag;
  }
}

// Whether bus `b` (the i-th) runs in the plan: it has members, or it plays out its tail — until the
// engine, having heard the last change sent to it, says it has finished.
bool Controller::plan_runs(const BusModel& b, std::size_t i, std::int64_t now) const {
  if (b.members > 0) return true;
  if (b.busy_until <= now) return false;
  return b.heard_at > now ||
         engine_.bus_telemetry(static_cast<std::uint32_t>(i)).running.load(std::memory_order_relaxed) != 0;
}

// Each bus that runs in the plan or ran in the engine's last callback: its stretcher at the higher
// tempo, its resampler after it (the rate's step), and the own stretcher and resampler of each
// handover onto it — planned (a play sent onto it while it ran) or running (a handover, a rejoin).
Controller::BusWork Controller::bus_work(const std::vector<BusModel>& buses) const {
  BusWork w;
  const std::int64_t now = now_frame();
  for (std::size_t i = 0; i < buses.size(); ++i) {
    const BusModel& b = buses[i];
    const engine::BusTelemetry& t = engine_.bus_telemetry(static_cast<std::uint32_t>(i));
    const bool planned = plan_runs(b, i, now);
    const bool runs = t.running.load(std::memory_order_relaxed) != 0;
    if (!planned && !runs) continue;  // idle: its converters do nothing
    const float ran = runs ? t.tempo.load(std::memory_order_relaxed) : 0.0f;
    w.st += work::stretch_units(std::max(planned ? b.peak_tempo : 0.0f, ran));
    if (b.ratio != 1.0) w.rs += work::resample_units(b.ratio, 1.0);  // after the stretch: the rate's step
    // A handover: a pool stretcher at the bus's tempo (then) behind a resampler from the bus's rate.
    const auto handovers = [&](std::uint32_t groups, double tempo) {
      const std::uint64_t rs = b.ratio != 1.0 ? work::resample_units(b.ratio, tempo) : 0;
      return BusWork{groups * rs, groups * std::uint64_t{work::stretch_units(tempo)}};
    };
    const BusWork running = handovers(t.groups.load(std::memory_order_relaxed), ran);
    const BusWork sent = handovers(b.ho_until > now ? b.ho_groups : 0, b.peak_tempo);
    w.st += std::max(running.st, sent.st);
    w.rs += std::max(running.rs, sent.rs);
  }
  return w;
}

std::uint64_t Controller::resample_units_used() const noexcept {
  return rs_units_used_ + rs_held_units_ + bus_work(buses_).rs;
}

// A voice booked onto a bus by a change timed for later keeps its own resampler until then: it is
// charged (held) until the change is heard. settle_work lets it go.
void Controller::hold_resampler(std::uint32_t units, std::int64_t until) {
  if (units == 0) return;
  rs_held_.push_back({until, units});
  rs_held_units_ += units;
}

void Controller::release_held(std::int64_t now) {
  for (std::size_t i = 0; i < rs_held_.size();) {
    if (rs_held_[i].first > now) {
      ++i;
      continue;
    }
    rs_held_units_ -= rs_held_[i].second;
    rs_held_[i] = rs_held_.back();
    rs_held_.pop_back();
  }
}
std::uint64_t Controller::stretch_units_used() const noexcept { return st_units_used_ + bus_work(buses_).st; }

std::uint32_t Controller::stretch_slots_free() const noexcept {
  const std::uint32_t n = engine_.max_stretched_voices();
  return n > st_slots_ ? n - st_slots_ : 0;
}

// Bus `i` as the rule sees it: running when the plan or the engine has it running (the engine
// starts one on its own to re-form a bus from voices that rejoin), at the plan's tempo, else the
// engine's. `fresh_only`: no running bus may be joined (a bus moving to that tempo in the same
// change may not have yet).
engine::bus_rule::Bus Controller::rule_view(const std::vector<BusModel>& buses, std::size_t i, bool fresh_only) const {
  const BusModel& b = buses[i];
  const engine::BusTelemetry& t = engine_.bus_telemetry(static_cast<std::uint32_t>(i));
  const bool planned = plan_runs(b, i, now_frame());
  engine::bus_rule::Bus v{.rate = b.rate,
                          .running = planned || t.running.load(std::memory_order_relaxed) != 0,
                          .shared = engine_.config().stretch_bus_share,
                          .deck = planned ? b.deck : t.deck.load(std::memory_order_relaxed),
                          .tempo = planned ? b.tempo : t.tempo.load(std::memory_order_relaxed)};
  if (fresh_only && v.running) v.tempo = std::numeric_limits<double>::quiet_NaN();
  return v;
}

// The bus a voice of `vs`'s file, deck and rate at `tempo` joins: the engine's rule
// (engine/bus_rule.hpp) on the plan's buses; -1: none (it takes converters of its own).
int Controller::bus_for(const std::vector<BusModel>& buses, const VoiceSlot& vs, float tempo, bool fresh_only) const {
  const engine::bus_rule::Rider r{
      .tempo = tempo, .rate_one = vs.rate.value == 1.0f, .src_rate = vs.src_rate, .deck = vs.deck};
  if (buses.empty() || !engine::bus_rule::may_ride(r, engine_.config().stretch_bus_share)) return -1;
  return engine::bus_rule::pick(
      buses.size(), [&](std::size_t i) { return rule_view(buses, i, fresh_only); }, r);
}

// A play sent onto a bus that runs: the engine hands it over (an own stretcher and resampler for its
// first L / ρ; the plays of a deck starting in one block share one), so it is charged one more group
// until that is over — unless it is at the frame of the last one.
void Controller::plan_handover(BusModel& b, std::int64_t at) const {
  const std::int64_t now = now_frame(), from = std::max(at, now);
  if (b.ho_until <= now) b.ho_groups = 0;
  if (b.ho_groups == 0 || b.ho_at != at || at == kNow) ++b.ho_groups;
  b.ho_at = at;
  b.ho_until = std::max(b.ho_until, from + engine_.config().max_block_frames + frames_for(kHandoverSeconds));
}

void Controller::join_bus(std::vector<BusModel>& buses, std::size_t i, int deck, float tempo, std::int64_t at,
                          bool starting) const {
  BusModel& b = buses[i];
  const bool runs = rule_view(buses, i, false).running;
  if (starting && runs) plan_handover(b, at);
  const std::int64_t heard = std::max(at, now_frame()) + engine_.config().max_block_frames + 256;
  b.heard_at = std::max(b.heard_at, heard + engine_.declick_frames());
  if (!runs) {  // idle: it starts afresh for this deck and tempo
    b.deck = deck;
    b.peak_tempo = tempo;
  }
  b.tempo = tempo;
  b.peak_tempo = std::max(b.peak_tempo, tempo);
  ++b.members;
}

void Controller::bus_drop(VoiceSlot& vs, std::int64_t at) {
  if (vs.bus < 0) return;
  book(vs, false);
  BusModel& b = buses_[static_cast<std::size_t>(vs.bus)];
  if (b.members > 0 && --b.members == 0) {
    b.busy_until = std::max(at, now_frame()) + engine_.config().max_block_frames + frames_for(kTailSeconds);
  }
  b.heard_at = std::max(b.heard_at, std::max(at, now_frame()) + engine_.config().max_block_frames + frames_for(0.06));
  vs.bus = -1;
  book(vs, true);
}

// A play's check: on a bus it adds what the bus's converters then cost more (nothing on a running
// bus at its tempo), else its own converters; a stretched voice takes a place in the pool either way.
bool Controller::play_fits(std::int64_t at, const PlayOptions& opts, int src_rate, std::uint32_t rs_units,
                           std::uint32_t st_units, int& bus, std::string& error) {
  const bool stretched = st_units > 0;
  VoiceSlot probe;
  probe.src_rate = src_rate;
  probe.deck = opts.deck;
  probe.rate.value = opts.rate;
  bus = stretched ? bus_for(buses_, probe, opts.tempo, false) : -1;
  std::vector<BusModel> with = buses_;
  if (bus >= 0) join_bus(with, static_cast<std::size_t>(bus), opts.deck, opts.tempo, at, true);
  const BusWork was = bus_work(buses_), is = bus_work(with);
  const std::uint64_t st_need = bus >= 0 ? is.st - was.st : st_units;
  const std::uint64_t rs_need = bus >= 0 ? is.rs - was.rs : rs_units;
  if (stretched && stretch_slots_free() == 0) {
    refuse_busy(error, slots_reason(1, fmt::format("a voice at tempo {:g}", opts.tempo)));
    return false;
  }
  if (st_need > stretch_units_free()) {
    refuse_busy(error, budget_reason(true, st_need, fmt::format("a voice at tempo {:g}", opts.tempo)));
    return false;
  }
  if (rs_need > resample_units_free()) {
    refuse_busy(error, budget_reason(false, rs_need,
                                     fmt::format("a voice at rate {:g} of a {} Hz file{}", opts.rate, src_rate,
                                                 stretched ? fmt::format(", tempo {:g}", opts.tempo) : "")));
    return false;
  }
  return true;
}

// What a change of `list` to `tempo` does to the budgets: a bus whose every member (but those
// stopping) changes stays one bus at the new tempo; a member changing alone leaves it for a
// stretcher (and resampler) of its own; a voice stretched for the first time joins a bus as the
// engine would; the others change their own charges as set_stretch always did.
Controller::TempoPlan Controller::plan_tempos(const std::vector<VoiceHandle>& list, float tempo) const {
  TempoPlan p;
  p.buses = buses_;
  std::vector<std::uint32_t> moving(buses_.size()), active(buses_.size());
  for (const VoiceSlot& vs : voices_) {
    if (vs.used && vs.bus >= 0 && !vs.stopping.value) ++active[static_cast<std::size_t>(vs.bus)];
  }
  bool moves_a_bus = false;
  for (const VoiceHandle& h : list) {
    if (voice_alive(h) && voices_[h.id].bus >= 0) ++moving[static_cast<std::size_t>(voices_[h.id].bus)];
  }
  std::int64_t rs = 0, st = 0;
  std::vector<const VoiceHandle*> joiners;
  for (const VoiceHandle& h : list) {  // members first: which buses follow
    if (!voice_alive(h)) continue;
    const VoiceSlot& vs = voices_[h.id];
    const Charges c = charges_for_tempo(vs, tempo);
    if (vs.bus >= 0) {
      const auto b = static_cast<std::size_t>(vs.bus);
      if (moving[b] >= active[b]) {  // all follow: the bus glides there
        p.buses[b].tempo = tempo;
        p.buses[b].peak_tempo = std::max(p.buses[b].peak_tempo, tempo);
        p.moves.push_back({h.id, vs.bus, c});
        moves_a_bus = true;
        continue;
      }
      rs += c.rs;  // it leaves: its own stretcher and resampler from now on
      st += c.st;
      if (--p.buses[b].members == 0) p.buses[b].busy_until = kTailUnset;
      p.moves.push_back({h.id, -1, c});
    } else if (vs.st_units == 0 && c.st > 0) {
      joiners.push_back(&h);
    } else {
      rs += static_cast<std::int64_t>(c.rs) - vs.rs_units;
      st += static_cast<std::int64_t>(c.st) - vs.st_units;
      p.moves.push_back({h.id, -1, c});
    }
  }
  for (const VoiceHandle* h : joiners) {  // stretched for the first time
    const VoiceSlot& vs = voices_[h->id];
    const Charges c = charges_for_tempo(vs, tempo);
    ++p.need.slots;
    const int bus = bus_for(p.buses, vs, tempo, moves_a_bus);
    if (bus < 0) {
      rs += static_cast<std::int64_t>(c.rs) - vs.rs_units;
      st += c.st;
      p.moves.push_back({h->id, -1, c});
      continue;
    }
    join_bus(p.buses, static_cast<std::size_t>(bus), vs.deck, tempo, kNow, false);  // mid-block: no handover
    rs -= vs.rs_units;  // the bus converts the rate: its own resampler goes back
    p.moves.push_back({h->id, bus, c});
  }
  const BusWork before = bus_work(buses_), after = bus_work(p.buses);
  rs += static_cast<std::int64_t>(after.rs) - static_cast<std::int64_t>(before.rs);
  st += static_cast<std::int64_t>(after.st) - static_cast<std::int64_t>(before.st);
  p.need.resample = rs > 0 ? static_cast<std::uint64_t>(rs) : 0;
  p.need.stretch = st > 0 ? static_cast<std::uint64_t>(st) : 0;
  return p;
}

Controller::WorkNeed Controller::work_for_tempos(const std::vector<VoiceHandle>& vs, float tempo) const {
  return plan_tempos(vs, tempo).need;
}

Controller::WorkNeed Controller::work_for_tempo(VoiceHandle v, float tempo) const {
  return plan_tempos({v}, tempo).need;
}

bool Controller::set_stretch_all(std::int64_t at, const std::vector<VoiceHandle>& list, float tempo,
                                 std::string& error) {
  if (!std::isfinite(tempo) || tempo < 0.25f || tempo > 4.0f) {
    error = "tempo must be 0.25..4";
    return false;
  }
  settle_work();
  TempoPlan p = plan_tempos(list, tempo);
  const std::string what =
      list.size() == 1 ? fmt::format("tempo {:g}", tempo) : fmt::format("tempo {:g} ({} voices)", tempo, list.size());
  if (p.need.slots > stretch_slots_free()) {
    refuse_busy(error, slots_reason(p.need.slots, what));
    return false;
  }
  if (p.need.stretch > 0 && p.need.stretch > stretch_units_free()) {
    refuse_busy(error, budget_reason(true, p.need.stretch, what));
    return false;
  }
  if (p.need.resample > 0 && p.need.resample > resample_units_free()) {  // own resamplers feed their stretchers
    refuse_busy(error,
                budget_reason(false, p.need.resample, what + (list.size() == 1 ? " (its resampler feeds it)" : "")));
    return false;
  }
  bool all = true;
  for (const TempoPlan::Move& m : p.moves) {
    VoiceSlot& vs = voices_[m.id];
    const VoiceHandle h{m.id, vs.generation};
    if (!send_voice_command(at, h, CommandType::kSetTempo, tempo, 0, error)) {
      all = false;  // the queue is full: what was sent is charged (reconcile_buses puts the rest right)
      continue;
    }
    vs.tempo.set(tempo, at, now_frame());
    if (m.bus >= 0 && vs.bus < 0 && at != kNow && at > now_frame()) {  // it joins then: its resampler runs till then
      hold_resampler(vs.rs_units, at + engine_.config().max_block_frames + 256 + engine_.declick_frames());
    }
    book(vs, false);
    vs.bus = m.bus;
    book(vs, true);
    charge(vs, m.own.rs, m.own.st, at, 0);
    vs.peak_tempo = std::max(vs.peak_tempo, tempo);
  }
  const std::int64_t heard = std::max(at, now_frame()) + engine_.config().max_block_frames + 256;
  for (std::size_t i = 0; i < buses_.size(); ++i) {
    BusModel& b = p.buses[i];
    if (b.tempo != buses_[i].tempo || b.peak_tempo != buses_[i].peak_tempo) b.settle_at = std::max(b.settle_at, heard);
    if (b.busy_until == kTailUnset) b.busy_until = heard + frames_for(kTailSeconds);  // emptied: its tail
  }
  for (std::size_t i = 0; i < buses_.size(); ++i) {
    p.buses[i].tags = buses_[i].tags;  // booked above, voice by voice
    if (p.buses[i].members != buses_[i].members || p.buses[i].tempo != buses_[i].tempo) {
      p.buses[i].heard_at = std::max(p.buses[i].heard_at, heard + engine_.declick_frames());
    }
  }
  buses_ = std::move(p.buses);
  return all;
}

// A bus's charge falls to its tempo's once its changes are heard.
void Controller::settle_buses(std::int64_t now) {
  release_held(now);
  for (BusModel& b : buses_) {
    if (b.settle_at > 0 && b.settle_at <= now) {
      b.peak_tempo = b.tempo;
      b.settle_at = 0;
    }
  }
}

// The engine's riders (BusTelemetry::tags) against the booked ones, bus by bus, once what was sent
// to it is heard: where they differ, every voice slot is looked at (scan_riders), at most every
// kScanSeconds while they do. Agreeing (the engine followed the plan, the same rule), nothing is.
void Controller::reconcile_buses() {
  if (buses_.empty()) return;
  const std::int64_t now = now_frame();
  bool differ = false;
  for (std::size_t i = 0; i < buses_.size() && !differ; ++i) {
    const BusModel& b = buses_[i];
    differ = b.heard_at <= now &&
             engine_.bus_telemetry(static_cast<std::uint32_t>(i)).tags.load(std::memory_order_relaxed) != b.tags;
  }
  if (!differ || now < next_scan_) return;
  next_scan_ = now + frames_for(kScanSeconds);
  scan_riders(now);
}

// What the engine reports each voice rides (VoiceTelemetry::bus): a voice it runs off the bus it is
// booked on is charged its own converters as soon as its change is heard and its switch fade over
// (never less than runs); one it runs on a bus it is not booked on (a rejoin) gives its own back once
// its last change is kReconcileSeconds old (a leave waits its split and fades on the bus first).
void Controller::scan_riders(std::int64_t now) {
  ++bus_scans_;
  const std::int64_t quiet = frames_for(kReconcileSeconds), heard = engine_.declick_frames();
  std::vector<std::uint32_t> before(buses_.size());
  for (std::size_t i = 0; i < buses_.size(); ++i) before[i] = buses_[i].members;
  for (BusModel& b : buses_) b.members = 0;
  for (std::size_t i = 0; i < voices_.size(); ++i) {
    VoiceSlot& vs = voices_[i];
    if (!vs.used) continue;
    const engine::VoiceTelemetry& t = engine_.telemetry(static_cast<engine::VoiceId>(i));
    const std::uint8_t state = t.state.load(std::memory_order_relaxed);
    const bool steady = state == 1 || state == 2 || state == 4;  // playing, starved, paused (not stopping)
    const int rides = static_cast<int>(t.bus.load(std::memory_order_relaxed)) - 1;
    const std::int64_t wait = rides < 0 ? heard : quiet;
    if (rides != vs.bus && vs.changed_at + wait < now && steady && vs.st_units > 0 &&
        t.generation.load(std::memory_order_relaxed) == vs.generation && rides < static_cast<int>(buses_.size())) {
      book(vs, false);
      vs.bus = rides;
      book(vs, true);
      if (rides >= 0) {
        BusModel& b = buses_[static_cast<std::size_t>(rides)];
        b.tempo = vs.tempo.value;  // and its charge falls there (settle_buses): what the engine runs is charged
        b.peak_tempo = std::max(b.peak_tempo, vs.peak_tempo);
        if (b.settle_at == 0) b.settle_at = now;
        b.deck = vs.deck;
      }
    }
    if (vs.bus >= 0) ++buses_[static_cast<std::size_t>(vs.bus)].members;
  }
  for (std::size_t i = 0; i < buses_.size(); ++i) {
    BusModel& b = buses_[i];
    if (b.members == 0 && before[i] > 0) {
      b.busy_until = std::max(b.busy_until, now + engine_.config().max_block_frames + frames_for(kTailSeconds));
    }
  }
}

}  // namespace stemd::control
