// The web API's JSON (nlohmann::json): requests to OSC messages, replies and status to JSON.
#include "web_internal.hpp"

#include "control/osc_json.hpp"

#include <algorithm>
#include <cmath>

#include <nlohmann/json.hpp>

namespace stemd::web {

namespace {

using Json = nlohmann::ordered_json;

constexpr std::size_t kMaxArgs = 64;

std::string dump(const Json& j) { return j.dump(-1, ' ', false, Json::error_handler_t::replace); }

bool arg_from_json(const nlohmann::json& v, std::size_t i, control::OscArg& out, std::string& error) {
  using control::OscArg;
  if (v.is_boolean()) {
    out = OscArg::Bool(v.get<bool>());
  } else if (v.is_number_integer()) {
    const auto n = v.is_number_unsigned() && v.get<std::uint64_t>() > INT64_MAX ? INT64_MAX : v.get<std::int64_t>();
    out = (n >= INT32_MIN && n <= INT32_MAX) ? OscArg::Int(n) : OscArg::Int64(n);
  } else if (v.is_number_float()) {
    out = OscArg::Float(v.get<double>());
  } else if (v.is_string()) {
    out = OscArg::Str(v.get<std::string>());
  } else if (v.is_null()) {
    out = OscArg{};  // N
  } else {
    error = "args[" + std::to_string(i) + "] must be a number, string, boolean or null";
    return false;
  }
  return true;
}

}  // namespace

bool message_from_json(const std::string& body, control::OscMessage& m, std::string& error) {
  nlohmann::json doc;
  try {
    doc = nlohmann::json::parse(body);
  } catch (const nlohmann::json::exception& e) {
    error = std::string("not JSON: ") + e.what();
    return false;
  }
  if (!doc.is_object()) {
    error = "the body must be a JSON object {\"address\": \"/stemd/…\", \"args\": […]}";
    return false;
  }
  auto a = doc.find("address");
  if (a == doc.end() || !a->is_string() || a->get<std::string>().empty() || a->get<std::string>()[0] != '/') {
    error = "\"address\" must be a string starting with '/'";
    return false;
  }
  // OSC strings end at their first NUL: "a.wav\u0000.x" would load a.wav (an outside test pass).
  if (a->get<std::string>().find('\0') != std::string::npos) {
    error = "\"address\" holds a NUL character (\\u0000)";
    return false;
  }
  m = control::osc_message(a->get<std::string>());
  auto args = doc.find("args");
  if (args == doc.end() || args->is_null()) return true;
  if (!args->is_array()) {
    error = "\"args\" must be an array";
    return false;
  }
  if (args->size() > kMaxArgs) {
    error = "at most " + std::to_string(kMaxArgs) + " args";
    return false;
  }
  for (std::size_t i = 0; i < args->size(); ++i) {
    control::OscArg arg;
    if (!arg_from_json((*args)[i], i, arg, error)) return false;
    if (arg.is_string() && arg.s.find('\0') != std::string::npos) {
      error = "args[" + std::to_string(i) + "] holds a NUL character (\\u0000): an OSC string ends at its first";
      return false;
    }
    m.args.push_back(std::move(arg));
  }
  return true;
}

std::string reply_json(const std::vector<std::uint8_t>& packet, bool event) {
  control::OscMessage m;
  std::string error;
  if (!control::osc_parse(packet.data(), packet.size(), m, error)) return error_json("unreadable reply: " + error);
  Json j = Json::object();
  Json args = Json::array();
  if (event) {
    j["event"] = m.address;
    for (const auto& a : m.args) args.push_back(control::osc_arg_json(a));
  } else {
    j["reply"] = m.address;  // /done or /fail
    j["address"] = !m.args.empty() ? control::osc_arg_json(m.args[0]) : Json(nullptr);
    for (std::size_t i = 1; i < m.args.size(); ++i) args.push_back(control::osc_arg_json(m.args[i]));
    if (m.address == "/fail" && !m.args.empty()) j["reason"] = control::osc_arg_json(m.args.back());
  }
  j["args"] = std::move(args);
  return dump(j);
}

namespace {

// A string value longer than `max` bytes cut to them, with "…" (dump() replaces a split UTF-8
// sequence).
Json cut_string(Json v, std::size_t max) {
  if (v.is_string() && v.get_ref<const std::string&>().size() > max) {
    v = v.get_ref<const std::string&>().substr(0, max) + "…";
  }
  return v;
}

}  // namespace

std::string event_json(const std::vector<std::uint8_t>& packet, bool api, std::size_t max_bytes) {
  control::OscMessage m;
  std::string error;
  if (!control::osc_parse(packet.data(), packet.size(), m, error)) return error_json("unreadable reply: " + error);
  constexpr std::size_t kMaxText = 1024;  // an address or a reason, in an event cut short
  Json j = Json::object();
  std::size_t first = 0;
  if (api) {
    j["event"] = "api";
    j["reply"] = m.address;
    j["address"] = !m.args.empty() ? cut_string(control::osc_arg_json(m.args[0]), kMaxText) : Json(nullptr);
    if (m.address == "/fail" && !m.args.empty())
      j["reason"] = cut_string(control::osc_arg_json(m.args.back()), kMaxText);
    first = 1;
  } else {
    j["event"] = m.address;
  }
  // The args that fit, in order; the rest counted in args_cut (room kept for it and "args":[]).
  std::size_t used = dump(j).size() + 40;
  Json args = Json::array();
  std::size_t cut = 0;
  for (std::size_t i = first; i < m.args.size(); ++i) {
    Json a = control::osc_arg_json(m.args[i]);
    const std::size_t size = dump(a).size() + 1;
    if (cut == 0 && used + size <= max_bytes) {
      args.push_back(std::move(a));
      used += size;
    } else {
      ++cut;
    }
  }
  j["args"] = std::move(args);
  if (cut > 0) j["args_cut"] = cut;
  return dump(j);
}

std::string error_json(const std::string& reason) { return dump(Json{{"error", reason}}); }

namespace {

// The peaks for `page`: what the audio thread held since anyone looked goes to every page's
// hold; the asking page gets its own and starts again, so pages never take each other's. With
// `take` false (a HEAD) the page's hold is left as it was.
std::array<float, engine::Metrics::kMeters> take_page_peaks(Shared& sh, const std::string& page, bool take) {
  engine::Metrics& m = sh.ctl.engine().metrics();
  std::array<float, engine::Metrics::kMeters> fresh{};
  for (int i = 0; i < engine::Metrics::kMeters; ++i) fresh[static_cast<std::size_t>(i)] = m.meters[i].take_peak();
  const auto now = std::chrono::steady_clock::now();
  std::erase_if(sh.pages, [&](const auto& kv) { return now - kv.second.used > std::chrono::minutes(1); });
  if (sh.pages.count(page) == 0 && sh.pages.size() >= Shared::kMaxPages) {
    sh.pages.erase(std::min_element(sh.pages.begin(), sh.pages.end(),
                                    [](const auto& a, const auto& b) { return a.second.used < b.second.used; }));
  }
  sh.pages[page];  // a new page's hold starts empty
  std::array<float, engine::Metrics::kMeters> out{};
  for (auto& [name, hold] : sh.pages) {
    for (std::size_t i = 0; i < fresh.size(); ++i) hold.peak[i] = std::max(hold.peak[i], fresh[i]);
    if (name != page) continue;
    out = hold.peak;
    if (!take) continue;  // a HEAD: held for the page's next request
    hold.peak = {};
    hold.used = now;
  }
  return out;
}

// `name` cut to VoicesSnapshot::kMaxNameBytes at a UTF-8 character's start, with "…".
std::string cut_name(const std::string& name, bool& cut) {
  cut = name.size() > VoicesSnapshot::kMaxNameBytes;
  if (!cut) return name;
  std::size_t n = VoicesSnapshot::kMaxNameBytes;
  while (n > 0 && (static_cast<unsigned char>(name[n]) & 0xC0) == 0x80) --n;  // not inside a character
  return name.substr(0, n) + "…";
}

// [control] The voices (playing, paused, stopping; then those waiting for the device), the first
// kMaxVoices by id, names cut: what GET /api/status lists.
std::shared_ptr<const VoicesSnapshot> take_voices(Shared& sh) {
  const auto t0 = std::chrono::steady_clock::now();
  auto snap = std::make_shared<VoicesSnapshot>();
  auto& rows = snap->rows;
  const std::vector<control::VoiceInfo> voices = sh.ctl.voices();
  const auto& waiting = sh.router.waiting_voices();
  rows.reserve(std::min(voices.size() + waiting.size(), VoicesSnapshot::kMaxVoices + 1));
  // The kMaxVoices lowest (id, order listed) are kept as they come: a bounded heap would do no
  // better at these counts, and a row is built only when it is kept.
  std::vector<std::pair<int, std::size_t>> order;  // (id, index: voices, then waiting)
  order.reserve(voices.size() + waiting.size());
  for (std::size_t i = 0; i < voices.size(); ++i) order.emplace_back(voices[i].slot, i);
  for (std::size_t i = 0; i < waiting.size(); ++i) order.emplace_back(waiting[i].id, voices.size() + i);
  snap->total = order.size();
  const std::size_t keep = std::min(order.size(), VoicesSnapshot::kMaxVoices);
  std::partial_sort(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(keep), order.end());
  order.resize(keep);
  const auto sources = waiting.empty() ? std::vector<control::SourceInfo>{} : sh.ctl.sources();
  for (const auto& [id, i] : order) {
    VoiceRow r;
    r.id = id;
    if (i < voices.size()) {
      const auto& v = voices[i];
      const double rate = v.sample_rate > 0 ? v.sample_rate : sh.cfg.sample_rate;  // the file's own seconds
      r.name = cut_name(v.name, r.name_cut);
      r.position_s = static_cast<double>(v.position) / rate;
      r.duration_s = static_cast<double>(v.total_frames) / rate;
      r.ring_fill = v.ring_fill_permille / 1000.0;
      r.streamed = v.streamed;
      r.underruns = v.underruns;
      r.deck = std::string(1, static_cast<char>('A' + std::min(v.deck, 4)));
      r.volume = v.volume;                  // where it goes (as set); heard now: volume_now
      r.volume_now = v.level * v.envelope;  // heard: its volume × its envelope (a stop's or a pause's fade)
      r.fade_s = sh.ctl.output_seconds(std::max(v.fade_frames_left, v.envelope_frames_left));
      r.loop = v.loop;
      r.state = v.state_text();  // as /stemd/voices lists it: "stopping" for a stopped or replaced voice,
                                 // "starting in 1.3 s" for a quantised start
    } else {
      // Waiting for the device (a --play at start before the device is there, a lost device's
      // voices): listed with their state, as /stemd/voices lists them, not left out.
      const auto& w = waiting[i - voices.size()];
      r.waiting = true;
      r.state = w.state;
      for (const auto& s : sources) {
        if (s.slot != w.id) continue;
        const double rate = s.sample_rate > 0 ? s.sample_rate : sh.cfg.sample_rate;
        r.name = cut_name(s.name, r.name_cut);
        r.position_s = static_cast<double>(w.position) / rate;
        r.duration_s = static_cast<double>(s.frames) / rate;
      }
    }
    rows.push_back(std::move(r));
  }
  snap->built = std::chrono::steady_clock::now() - t0;
  return snap;
}

// [network] The voices as JSON (an array).
std::string voices_text(const VoicesSnapshot& snap) {
  Json voices = Json::array();
  for (const VoiceRow& r : snap.rows) {
    Json j{{"id", r.id},
           {"name", r.name},
           {"position_s", r.position_s},
           {"duration_s", r.duration_s},
           {"ring_fill", r.ring_fill},
           {"streamed", r.streamed},
           {"underruns", r.underruns},
           {"deck", r.deck},
           {"volume", r.waiting ? Json(nullptr) : Json(r.volume)},
           {"volume_now", r.waiting ? Json(nullptr) : Json(r.volume_now)},
           {"fade_s", r.fade_s},
           {"loop", r.loop},
           {"state", r.state}};
    if (r.waiting) j["waiting"] = true;
    if (r.name_cut) j["name_cut"] = true;
    voices.push_back(std::move(j));
  }
  return dump(voices);
}

// [control] The kept voices, or new ones when they changed or are older than the keep time.
std::shared_ptr<const VoicesSnapshot> kept_voices(Shared& sh) {
  const auto now = std::chrono::steady_clock::now();
  std::chrono::nanoseconds keep{0};
  if (sh.voices) {
    const auto cost = sh.voices->built + std::chrono::nanoseconds(sh.voices_format_ns.load(std::memory_order_relaxed));
    keep = std::max<std::chrono::nanoseconds>(sh.ctl.changes() == sh.voices_changes
                                                  ? std::chrono::milliseconds(Shared::kVoicesKeepMs)
                                                  : std::chrono::nanoseconds(0),
                                              cost * Shared::kBuildsApart);
  }
  if (!sh.voices || now - sh.voices_at >= keep) {
    sh.voices = take_voices(sh);
    sh.voices_changes = sh.ctl.changes();
    sh.voices_at = now;
    sh.stats.voices_built.fetch_add(1, std::memory_order_relaxed);
    sh.stats.voices_build_ns.store(static_cast<std::uint64_t>(sh.voices->built.count()), std::memory_order_relaxed);
  }
  return sh.voices;
}

Json level_json(const StatusSnapshot::Level& l) {
  auto db = [](float x) { return x > 1e-6f ? 20.0 * std::log10(static_cast<double>(x)) : -120.0; };
  return Json{{"peak", l.peak}, {"rms", l.rms}, {"peak_db", db(l.peak)}, {"rms_db", db(l.rms)}};
}

Json monitor_json(const Shared& sh) {
  const WebStats& s = sh.stats;
  return Json{{"listeners", s.listeners.load()},         {"audio_messages", s.audio_messages.load()},
              {"audio_dropped", s.audio_dropped.load()}, {"tap_dropped", sh.tap ? sh.tap->dropped() : 0},
              {"connections", s.connections.load()},     {"refused", s.refused.load()},
              {"bad_requests", s.bad_requests.load()},   {"listeners_held", s.listeners_held.load()},
              {"voices_built", s.voices_built.load()},   {"voices_build_us", s.voices_build_ns.load() / 1000},
              {"event_clients", s.event_clients.load()}, {"ws_timed_out", s.ws_timed_out.load()},
              {"events_behind", s.events_behind.load()}, {"accept_failures", s.accept_failures.load()},
              {"answer_bytes", sh.answer_bytes.load()},  {"answers_refused", s.answers_refused.load()}};
}

}  // namespace

StatusSnapshot status_snapshot(Shared& sh, const std::string& page, bool take_peaks) {
  StatusSnapshot out;
  control::Peer self;
  self.local = Shared::kEventsPeer;
  out.status = sh.router.handle(control::osc_message("/stemd/status"), self).args;
  out.voices = kept_voices(sh);
  engine::Metrics& m = sh.ctl.engine().metrics();
  const auto peaks = take_page_peaks(sh, page, take_peaks);
  for (int d = 0; d <= engine::kNumDecks; ++d) {
    auto& l = out.levels[static_cast<std::size_t>(d)];
    const bool master = d == engine::kNumDecks;
    const control::LevelInfo heard = master ? sh.ctl.master_heard() : sh.ctl.deck_heard(d);
    l.level = master ? sh.ctl.master_level() : sh.ctl.deck_level(d);
    l.level_now = heard.now;
    l.fade_s = sh.ctl.output_seconds(heard.frames_left);
    if (!master) l.eq = {sh.ctl.deck_eq(d, 0), sh.ctl.deck_eq(d, 1), sh.ctl.deck_eq(d, 2)};
    l.peak = peaks[static_cast<std::size_t>(d)];
    l.rms = m.meters[d].rms.load(std::memory_order_relaxed);
  }
  out.eq_enabled = sh.router.config().eq_enabled;
  if (!out.eq_enabled) out.eq_off_reason = sh.router.config().eq_off_reason;
  // The callback's durations since start, the non-empty bins: a client differences two to see
  // any window's percentiles and maximum.
  const auto hist = m.callback_ns.snapshot();
  for (int i = 0; i < engine::DurationHistogram::kBins; ++i) {
    if (hist[static_cast<std::size_t>(i)] != 0)
      out.hist.emplace_back(engine::DurationHistogram::upper_ns(i), hist[static_cast<std::size_t>(i)]);
  }
  return out;
}

std::string status_json(Shared& sh, const StatusSnapshot& snap) {
  if (sh.status_hook) sh.status_hook();
  Json status = Json::object();
  const auto& f = snap.status;
  for (std::size_t i = 1; i + 1 < f.size(); i += 2) status[f[i].s] = control::osc_arg_json(f[i + 1]);
  if (snap.voices != sh.voices_formatted_of) {  // formatted once per snapshot, whoever asks
    const auto t0 = std::chrono::steady_clock::now();
    sh.voices_text = voices_text(*snap.voices);
    sh.voices_formatted_of = snap.voices;
    sh.voices_format_ns.store(std::chrono::nanoseconds(std::chrono::steady_clock::now() - t0).count(),
                              std::memory_order_relaxed);
  }
  Json decks = Json::array();
  for (int d = 0; d < engine::kNumDecks; ++d) {
    const auto& l = snap.levels[static_cast<std::size_t>(d)];
    decks.push_back(Json{{"name", std::string(1, static_cast<char>('A' + d))},
                         {"level", l.level},
                         {"level_now", l.level_now},
                         {"fade_s", l.fade_s},
                         {"eq", Json::array({l.eq[0], l.eq[1], l.eq[2]})},
                         {"meter", level_json(l)}});
  }
  const auto& ml = snap.levels[engine::kNumDecks];
  Json master{{"level", ml.level}, {"level_now", ml.level_now}, {"fade_s", ml.fade_s}, {"meter", level_json(ml)}};
  Json hist = Json::array();
  for (const auto& [upper, n] : snap.hist) hist.push_back(Json::array({upper, n}));
  const std::size_t listed = snap.voices->rows.size();
  Json j{{"status", std::move(status)},
         {"voices", nullptr},  // spliced in below, as formatted
         // every voice; the list holds the first VoicesSnapshot::kMaxVoices by id
         {"voices_total", snap.voices->total},
         {"voices_cut", snap.voices->total - listed},
         {"decks", std::move(decks)},
         // false: EQ messages are answered and ignored (--disable-filters, or crowdstream mode's
         // default), eq_off_reason says which ("" when on)
         {"eq_enabled", snap.eq_enabled},
         {"eq_off_reason", snap.eq_off_reason},
         {"master", std::move(master)},
         {"callback_hist", std::move(hist)},
         {"monitor", monitor_json(sh)}};
  std::string out = dump(j);
  const std::size_t at = out.find("\"voices\":null");
  if (at != std::string::npos) out.replace(at + 9, 4, sh.voices_text);
  return out;
}

}  // namespace stemd::web
