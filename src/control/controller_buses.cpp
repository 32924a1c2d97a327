// The work budgets and the engine's stretch buses (engine/stretch_bus.hpp; controller.hpp,
// work_budget.hpp): the stems of a deck at one tempo ride one bus, stretched once and then
// resampled once, so a bus is charged as the converters it runs — one stretcher at its tempo and,
// for a source rate other than the output's, one resampler at that step — not one per member.
// A model of the buses follows the engine's rules when a command is sent (who joins which bus,
// who leaves it) and is checked against what the engine reports each voice rides once its
// changes are heard (reconcile_buses). [control] thread only.
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
// A voice's ride is checked against the engine's report once its last change is this old (output
// seconds: a handover's own stretcher, a switch fade and a split's wait are all shorter).
constexpr double kReconcileSeconds = 0.2;
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

// The engine makes --stretch-buses buses for each distinct rate of stretch_bus_rates, in order
// (engine.cpp, make_buses). When it could not make them all the model has none: every voice is
// charged its own converters (never less than it costs).
void Controller::make_bus_model() {
  const engine::EngineConfig& c = engine_.config();
  if (c.stretch_buses == 0 || engine_.stretch_buses() == 0) return;
  int rates[2] = {0, 0};
  int n = 0;
  for (int k = 0; k < 2; ++k) {
    const int rate = c.stretch_bus_rates[k] > 0 ? c.stretch_bus_rates[k] : c.sample_rate;
    if (k == 1 && rate == rates[0]) break;
    rates[n++] = rate;
  }
  if (engine_.stretch_buses() != static_cast<std::uint32_t>(n) * c.stretch_buses) return;
  for (int k = 0; k < n; ++k) {
    for (std::uint32_t i = 0; i < c.stretch_buses; ++i) {
      buses_.push_back(BusModel{.rate = rates[k], .ratio = static_cast<double>(rates[k]) / c.sample_rate});
    }
  }
}

void Controller::book(const VoiceSlot& vs, bool add) {
  const std::uint64_t rs = vs.bus < 0 ? vs.rs_units : 0, st = vs.bus < 0 ? vs.st_units : 0;
  const std::uint32_t slot = vs.st_units > 0 ? 1 : 0;
  if (add) {
    rs_units_used_ += rs;
    st_units_used_ += st;
    st_slots_ += slot;
  } else {
    rs_units_used_ -= rs;
    st_units_used_ -= st;
    st_slots_ -= slot;
  }
}

Controller::BusWork Controller::bus_work(const std::vector<BusModel>& buses) const {
  BusWork w;
  const std::int64_t now = now_frame();
  for (const BusModel& b : buses) {
    if (b.members == 0 && b.busy_until <= now) continue;  // idle: its converters do nothing
    w.st += work::stretch_units(b.peak_tempo);
    if (b.ratio != 1.0) w.rs += work::resample_units(b.ratio, 1.0);  // after the stretch: the rate's step
  }
  return w;
}

std::uint64_t Controller::resample_units_used() const noexcept { return rs_units_used_ + bus_work(buses_).rs; }
std::uint64_t Controller::stretch_units_used() const noexcept { return st_units_used_ + bus_work(buses_).st; }

std::uint32_t Controller::stretch_slots_free() const noexcept {
  const std::uint32_t n = engine_.max_stretched_voices();
  return n > st_slots_ ? n - st_slots_ : 0;
}

// The bus a voice of `vs`'s file and deck at `tempo` (rate 1) joins, as the engine chooses
// (stretch_bus.cpp, bus_join): a running bus of its rate and deck (any deck when shared) at that
// tempo, else the first idle one of its rate; -1: none (it takes a stretcher of its own).
// `fresh_only`: not a running one (a bus moving to that tempo in the same change may not have yet).
int Controller::bus_for(const std::vector<BusModel>& buses, const VoiceSlot& vs, float tempo, bool fresh_only) const {
  const bool shared = engine_.config().stretch_bus_share;
  if (buses.empty() || tempo == 1.0f || vs.rate.value != 1.0f || (shared && vs.deck >= engine::kNumDecks)) return -1;
  const std::int64_t now = now_frame();
  int idle = -1;
  for (std::size_t i = 0; i < buses.size(); ++i) {
    const BusModel& b = buses[i];
    if (b.rate != vs.src_rate) continue;
    const bool running = b.members > 0 || b.busy_until > now;
    if (running && !fresh_only && (shared || b.deck == vs.deck) && b.tempo == tempo) return static_cast<int>(i);
    if (!running && idle < 0) idle = static_cast<int>(i);
  }
  return idle;
}

void Controller::join_bus(BusModel& b, int deck, float tempo) const {
  if (b.members == 0 && b.busy_until <= now_frame()) {  // idle: it starts afresh for this deck and tempo
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
  vs.bus = -1;
  book(vs, true);
}

// A play's check: on a bus it adds what the bus's converters then cost more (nothing on a running
// bus at its tempo), else its own converters; a stretched voice takes a place in the pool either way.
bool Controller::play_fits(const PlayOptions& opts, int src_rate, std::uint32_t rs_units, std::uint32_t st_units,
                           int& bus, std::string& error) {
  const bool stretched = st_units > 0;
  VoiceSlot probe;
  probe.src_rate = src_rate;
  probe.deck = opts.deck;
  probe.rate.value = opts.rate;
  bus = stretched ? bus_for(buses_, probe, opts.tempo, false) : -1;
  std::vector<BusModel> with = buses_;
  if (bus >= 0) join_bus(with[static_cast<std::size_t>(bus)], opts.deck, opts.tempo);
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
    join_bus(p.buses[static_cast<std::size_t>(bus)], vs.deck, tempo);
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
  buses_ = std::move(p.buses);
  return all;
}

// A bus's charge falls to its tempo's once its changes are heard.
void Controller::settle_buses(std::int64_t now) {
  for (BusModel& b : buses_) {
    if (b.settle_at > 0 && b.settle_at <= now) {
      b.peak_tempo = b.tempo;
      b.settle_at = 0;
    }
  }
}

// What the engine reports each voice rides (VoiceTelemetry::bus), once its last change is heard:
// a voice the engine kept off a bus (or put back on one: a rejoin) is charged as it runs.
void Controller::reconcile_buses() {
  if (buses_.empty()) return;
  const std::int64_t now = now_frame(), quiet = frames_for(kReconcileSeconds);
  std::vector<std::uint32_t> before(buses_.size());
  for (std::size_t i = 0; i < buses_.size(); ++i) before[i] = buses_[i].members;
  for (BusModel& b : buses_) b.members = 0;
  for (std::size_t i = 0; i < voices_.size(); ++i) {
    VoiceSlot& vs = voices_[i];
    if (!vs.used) continue;
    const engine::VoiceTelemetry& t = engine_.telemetry(static_cast<engine::VoiceId>(i));
    const std::uint8_t state = t.state.load(std::memory_order_relaxed);
    const bool steady = state == 1 || state == 2 || state == 4;  // playing, starved, paused (not stopping)
    if (vs.changed_at + quiet < now && steady && vs.st_units > 0 &&
        t.generation.load(std::memory_order_relaxed) == vs.generation) {
      const int rides = static_cast<int>(t.bus.load(std::memory_order_relaxed)) - 1;
      if (rides != vs.bus && rides < static_cast<int>(buses_.size())) {
        book(vs, false);
        vs.bus = rides;
        book(vs, true);
        if (rides >= 0) {
          BusModel& b = buses_[static_cast<std::size_t>(rides)];
          b.tempo = vs.tempo.value;
          b.peak_tempo = std::max(b.peak_tempo, vs.peak_tempo);
          b.deck = vs.deck;
        }
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
