// The native dialect's reports: /stemd/list, /stemd/voices (paged) and /stemd/status [control].
// (The rest of the dialect: native.cpp.)
#include "args.hpp"
#include "carried_totals.hpp"
#include "dialects.hpp"
#include "router.hpp"

namespace stemd::control {

namespace {

using K = ErrorKind;

// OSC bytes of a string argument (NUL and padding) and its type tag.
std::size_t str_bytes(const std::string& v) { return ((v.size() + 4) & ~std::size_t{3}) + 1; }

constexpr const char* kTooMuchInOnePacket = "the answers to this packet passed 1 MiB: ask for fewer pages per packet";

// Reads the [offset] [count] of a paged request. False with the reply's reason.
bool page_args(ArgReader& a, std::int64_t& offset, std::int64_t& count, Reply& r) {
  offset = 0;
  count = 0;
  if ((a.has(0) && !a.integer(0, "offset", offset)) || (a.has(1) && !a.integer(1, "count", count))) {
    r = Reply::fail(ErrorKind::kArguments, a.error(), a.id_values());
    return false;
  }
  if (offset < 0 || count < 0) {
    r = Reply::fail(ErrorKind::kRange, "offset and count must be ≥ 0 (count 0: as many as fit)");
    return false;
  }
  return true;
}

// One page of a table of `total` rows from `offset`: at most `count` rows (0 = as many as fit)
// and at most `page_bytes` of them (but at least one), each `row_bytes(i)` bytes, appended by
// `emit(i, v)` → count, the rows, then total and the next page's offset (−1: this was the last).
template <class RowBytes, class Emit>
Reply page(std::int64_t offset, std::int64_t count, std::int64_t total, const char* what, std::size_t page_bytes,
           RowBytes row_bytes, Emit emit) {
  if (offset > total) {
    return Reply::fail(K::kRange, "offset " + std::to_string(offset) + " is past the end (" + std::to_string(total) +
                                      " " + what + ")");
  }
  std::vector<OscArg> v;
  v.push_back(OscArg::Int(0));
  std::size_t bytes = 0;
  std::int64_t i = offset, rows = 0;
  for (; i < total && (count == 0 || rows < count); ++i) {
    const std::size_t row = row_bytes(static_cast<std::size_t>(i));
    if (rows > 0 && bytes + row > page_bytes) break;  // the next page starts here
    bytes += row;
    ++rows;
    emit(static_cast<std::size_t>(i), v);
  }
  v[0] = OscArg::Int(rows);
  v.push_back(OscArg::Int(total));
  v.push_back(OscArg::Int(i < total ? i : -1));
  return Reply::done(std::move(v));
}

}  // namespace

bool NativeDialect::page_request(const Call& c, std::int64_t& offset, std::int64_t& count, Reply& r) const {
  ArgReader a(c.m);
  if (!page_args(a, offset, count, r)) return false;
  if (r_.packet_answer_bytes_ < Router::kMaxPacketAnswer) return true;
  r = Reply::fail(K::kLimit, kTooMuchInOnePacket);
  return false;
}

// /stemd/list [offset 0] [count 0 = as many as fit] → count, then per source: id name path
// duration_s streamed playing; then total and the next page's offset (−1: this was the last).
// A page holds at most --page bytes of rows (one UDP datagram): bigger tables are paged,
// never cut.
Reply NativeDialect::list(const Call& c) {
  std::int64_t offset = 0, count = 0;
  if (Reply r; !page_request(c, offset, count, r)) return r;
  const auto sources = ctl_.sources();
  return page(
      offset, count, static_cast<std::int64_t>(sources.size()), "sources", cfg_.page_bytes,
      [&](std::size_t i) { return 6 + 4 + str_bytes(sources[i].name) + str_bytes(sources[i].path) + 12; },
      [&](std::size_t i, std::vector<OscArg>& v) {
        const auto& s = sources[i];
        v.push_back(OscArg::Int(s.slot));
        v.push_back(OscArg::Str(s.name));
        v.push_back(OscArg::Str(s.path));
        v.push_back(OscArg::Float(r_.file_seconds(s.frames, s.sample_rate)));
        v.push_back(OscArg::Int(s.streamed ? 1 : 0));
        v.push_back(OscArg::Int(r_.player(s.slot).valid() ? 1 : 0));
      });
}

// /stemd/voices [offset 0] [count 0] [mix 0] → count, then per voice: id name position_s
// duration_s ring_fill(0..1) underruns state, and with mix 1 also volume (linear, as set) rate
// (playback rate as heard: its own × the tempo's) tempo (time-stretch, 1: none), −1 each where not
// known; then total and the next page's offset (−1: the last). After the playing voices, those
// waiting for the device (state "waiting (device lost)", or "waiting (device not there yet)" for
// the start-up flags' voices while a configured device is missing).
Reply NativeDialect::voices(const Call& c) {
  std::int64_t offset = 0, count = 0, mix = 0;
  if (Reply r; !page_request(c, offset, count, r)) return r;
  if (ArgReader a(c.m); a.has(2)) {
    if (!a.integer(2, "mix", mix)) return Reply::fail(K::kArguments, a.error());
    if (mix < 0 || mix > 1) return Reply::fail(K::kRange, "mix must be 0 or 1");
  }
  struct Row {
    int id;
    std::string name;
    double position_s, duration_s, ring_fill;
    std::int64_t underruns;
    std::string state;  // read once: the row's size and its text agree
    double volume = -1, rate = -1, tempo = -1;
  };
  std::vector<Row> rows;
  for (const auto& vi : ctl_.voices()) {
    rows.push_back({vi.slot, vi.name, r_.file_seconds(vi.position, vi.sample_rate),
                    r_.file_seconds(vi.total_frames, vi.sample_rate), vi.ring_fill_permille / 1000.0,
                    static_cast<std::int64_t>(vi.underruns), vi.state_text(), vi.volume, vi.rate, vi.tempo});
  }
  if (!r_.waiting_voices().empty()) {
    const auto sources = ctl_.sources();
    for (const auto& w : r_.waiting_voices()) {
      Row row{w.id, "", 0, 0, 0, 0, w.state};
      for (const auto& s : sources) {
        if (s.slot != w.id) continue;
        row.name = s.name;
        row.position_s = r_.file_seconds(w.position, s.sample_rate);
        row.duration_s = r_.file_seconds(s.frames, s.sample_rate);
      }
      rows.push_back(std::move(row));
    }
  }
  return page(
      offset, count, static_cast<std::int64_t>(rows.size()), "voices", cfg_.page_bytes,
      [&](std::size_t i) {
        return 7 + 4 + str_bytes(rows[i].name) + 12 + 8 + str_bytes(rows[i].state) + (mix ? 3 + 12 : 0);
      },
      [&](std::size_t i, std::vector<OscArg>& v) {
        const Row& row = rows[i];
        v.push_back(OscArg::Int(row.id));
        v.push_back(OscArg::Str(row.name));
        v.push_back(OscArg::Float(row.position_s));
        v.push_back(OscArg::Float(row.duration_s));
        v.push_back(OscArg::Float(row.ring_fill));
        v.push_back(OscArg::Int64(row.underruns));
        v.push_back(OscArg::Str(row.state));
        if (mix == 0) return;
        v.push_back(OscArg::Float(row.volume));
        v.push_back(OscArg::Float(row.rate));
        v.push_back(OscArg::Float(row.tempo));
      });
}

Reply NativeDialect::status(const Call&) {
  std::vector<OscArg> f = r_.status_fields();
  const std::size_t own = f.size();  // the native fields from here: their carried totals added below
  // Adaptive prefetch (native dialect only: /get_status keeps the crowdstream server's fields).
  const auto ls = ctl_.loader().stats();
  auto kv = [&](const char* k, OscArg v) {
    f.push_back(OscArg::Str(k));
    f.push_back(std::move(v));
  };
  kv("sources_cut_short", OscArg::Int(static_cast<std::int32_t>(ctl_.sources_cut_short())));
  // Of `voices`, those paused (as heard); and whether a tempo is in use at all (tempo_clock.hpp):
  // without one, the tempo fields are --bpm's default that nothing follows.
  kv("voices_paused", OscArg::Int(static_cast<std::int32_t>(ctl_.voices_paused())));
  kv("tempo_in_use", OscArg::Int(r_.tempo_.in_use() ? 1 : 0));
  // Messages of bundles whose time had passed: they ran at once and were answered /fail "late by".
  const auto late = r_.stats_.bad.find(to_string(ErrorKind::kLate));
  kv("late_messages", OscArg::Int64(static_cast<std::int64_t>(late == r_.stats_.bad.end() ? 0 : late->second)));
  // Messages of bundles with a time, on time or late: timetags are in use (stemctl status shows the clock).
  kv("timed_messages", OscArg::Int64(static_cast<std::int64_t>(r_.stats_.timed)));
  // Refused as busy (a queue, the loads in flight, the schedule full): try again. Not bad_messages.
  const auto busy = r_.stats_.bad.find(to_string(ErrorKind::kBusy));
  kv("busy_messages", OscArg::Int64(static_cast<std::int64_t>(busy == r_.stats_.bad.end() ? 0 : busy->second)));
  kv("ring_target_ms_min", OscArg::Float(ls.target_ms_min));
  kv("ring_target_ms_mean", OscArg::Float(ls.target_ms_mean));
  kv("ring_target_ms_max", OscArg::Float(ls.target_ms_max));
  kv("ring_bytes", OscArg::Int64(static_cast<std::int64_t>(ls.ring_bytes)));
  kv("rings_ran_dry", OscArg::Int64(static_cast<std::int64_t>(ls.rings_ran_dry)));
  kv("read_wait_ms", OscArg::Float(ls.wait_ms_mean));
  kv("read_wait_sd_ms", OscArg::Float(ls.wait_ms_sd));
  kv("read_max_ms", OscArg::Float(ls.read_ms_max));
  // The loader thread: its CPU (of one core, last 100 ms), its SCHED_FIFO priority now (0: normal
  // scheduling) and how often it left SCHED_FIFO for using too much CPU (io/loader_thread.hpp).
  kv("loader_cpu_pct", OscArg::Float(static_cast<float>(ls.cpu_fraction * 100)));
  kv("loader_rt_priority", OscArg::Int(ls.rt_priority));
  kv("loader_rt_demotions", OscArg::Int64(static_cast<std::int64_t>(ls.rt_demotions)));
  // The work budgets (work_budget.hpp), in units: held by the voices' resamplers and stretchers,
  // and --max-resampled-voices / --max-stretched-voices.
  kv("resample_units", OscArg::Float(static_cast<double>(ctl_.resample_units_used()) / 1000.0));
  kv("resample_units_max", OscArg::Float(static_cast<double>(ctl_.resample_budget()) / 1000.0));
  kv("stretch_units", OscArg::Float(static_cast<double>(ctl_.stretch_units_used()) / 1000.0));
  kv("stretch_units_max", OscArg::Float(static_cast<double>(ctl_.stretch_budget()) / 1000.0));
  // Stretch buses (engine/stretch_bus.hpp): made at start, running now, voices on them.
  const auto& m = ctl_.engine().metrics();
  kv("stretch_buses", OscArg::Int(static_cast<std::int32_t>(ctl_.engine().stretch_buses())));
  kv("stretch_buses_running",
     OscArg::Int(static_cast<std::int32_t>(m.stretch_buses_running.load(std::memory_order_relaxed))));
  kv("stretch_bus_voices",
     OscArg::Int(static_cast<std::int32_t>(m.stretch_bus_voices.load(std::memory_order_relaxed))));
  // Rubber Band primes on the audio thread since start, and the most in one callback (bounded by
  // EngineConfig::stretch_primes_per_callback plus the buses: engine/stretcher.hpp); the voices
  // that started (or seeked) past that bound and were heard later, on the grid (kVoiceDeferred;
  // the log says so at most 5 times a second).
  kv("stretch_primes", OscArg::Int64(static_cast<std::int64_t>(m.stretch_primes.load(std::memory_order_relaxed))));
  kv("stretch_primes_max",
     OscArg::Int(static_cast<std::int32_t>(m.stretch_primes_max.load(std::memory_order_relaxed))));
  kv("stretch_starts_deferred",
     OscArg::Int64(static_cast<std::int64_t>(m.stretch_starts_deferred.load(std::memory_order_relaxed))));
  // Voices started on a running bus since start: handed over (attack kept), or joined without a
  // stretcher, prime or tap to spare (their first ≈ 45 ms lost): engine/stretch_bus.hpp.
  kv("stretch_handovers",
     OscArg::Int64(static_cast<std::int64_t>(m.stretch_handovers.load(std::memory_order_relaxed))));
  kv("stretch_joins_lost",
     OscArg::Int64(static_cast<std::int64_t>(m.stretch_joins_lost.load(std::memory_order_relaxed))));
  // Voices back onto a running bus from a stretcher of their own since start (stretch_bus.hpp).
  kv("stretch_rejoins", OscArg::Int64(static_cast<std::int64_t>(m.stretch_rejoins.load(std::memory_order_relaxed))));
  if (r_.native_status_extra_) r_.native_status_extra_(f);
  r_.add_carried_totals(f, own);
  return Reply::done(f);
}

// The totals of the images before a hand-over (carried_totals.hpp), added where they appear.
void Router::add_carried_totals(std::vector<OscArg>& f, std::size_t from) const {
  if (carried_totals_.empty()) return;
  for (std::size_t i = from; i + 1 < f.size(); i += 2) {
    if (f[i].type != 's' || (f[i + 1].type != 'h' && f[i + 1].type != 'i')) continue;
    for (const auto& [k, n] : carried_totals_) {
      if (k != f[i].s) continue;
      f[i + 1].i += static_cast<std::int64_t>(n);  // its OSC type kept
      break;
    }
  }
}

std::vector<std::pair<std::string, std::uint64_t>> Router::totals_of(const std::vector<OscArg>& fields) {
  std::vector<std::pair<std::string, std::uint64_t>> out;
  for (std::size_t i = 0; i + 1 < fields.size(); i += 2) {
    const OscArg& k = fields[i];
    const OscArg& v = fields[i + 1];
    if (k.type == 's' && (v.type == 'h' || v.type == 'i') && v.i >= 0 && is_carried_total(k.s))
      out.emplace_back(k.s, static_cast<std::uint64_t>(v.i));
  }
  return out;
}

}  // namespace stemd::control
