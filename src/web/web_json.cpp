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

Json meter_json(const engine::BusMeter& b, float peak) {
  auto db = [](float x) { return x > 1e-6f ? 20.0 * std::log10(static_cast<double>(x)) : -120.0; };
  const float rms = b.rms.load(std::memory_order_relaxed);
  return Json{{"peak", peak}, {"rms", rms}, {"peak_db", db(peak)}, {"rms_db", db(rms)}};
}

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

// The callback's durations since start, [[bin's upper edge ns, count], …] (non-empty bins): a
// client differences two to see any window's percentiles and maximum.
Json callback_histogram(const engine::Metrics& m) {
  const auto hist = m.callback_ns.snapshot();
  Json bins = Json::array();
  for (int i = 0; i < engine::DurationHistogram::kBins; ++i) {
    if (hist[static_cast<std::size_t>(i)] != 0) {
      bins.push_back(Json::array({engine::DurationHistogram::upper_ns(i), hist[static_cast<std::size_t>(i)]}));
    }
  }
  return bins;
}

Json voices_json(Shared& sh) {
  Json voices = Json::array();
  for (const auto& v : sh.ctl.voices()) {
    const double rate = v.sample_rate > 0 ? v.sample_rate : sh.cfg.sample_rate;  // the file's own seconds
    voices.push_back(Json{{"id", v.slot},
                          {"name", v.name},
                          {"position_s", static_cast<double>(v.position) / rate},
                          {"duration_s", static_cast<double>(v.total_frames) / rate},
                          {"ring_fill", v.ring_fill_permille / 1000.0},
                          {"streamed", v.streamed},
                          {"underruns", v.underruns},
                          {"deck", std::string(1, static_cast<char>('A' + std::min(v.deck, 4)))},
                          {"volume", v.volume},  // where it goes (as set); heard now: volume_now
                          // heard: its volume × its envelope (a stop's or a pause's fade)
                          {"volume_now", v.level * v.envelope},
                          {"fade_s", sh.ctl.output_seconds(std::max(v.fade_frames_left, v.envelope_frames_left))},
                          {"loop", v.loop},
                          // as listed by /stemd/voices: a stopped or replaced voice is "stopping"
                          {"state", v.state_name()}});
  }
  // Voices waiting for the device (a --play at start before the device is there, a lost device's
  // voices): listed with their state, as /stemd/voices lists them, not left out.
  const auto& waiting = sh.router.waiting_voices();
  const auto sources = waiting.empty() ? std::vector<control::SourceInfo>{} : sh.ctl.sources();
  for (const auto& w : waiting) {
    Json j{{"id", w.id},        {"name", ""},     {"position_s", 0.0}, {"duration_s", 0.0}, {"ring_fill", 0.0},
           {"streamed", false}, {"underruns", 0}, {"deck", ""},        {"volume", nullptr}, {"volume_now", nullptr},
           {"fade_s", 0.0},     {"loop", false},  {"state", w.state},  {"waiting", true}};
    for (const auto& s : sources) {
      if (s.slot != w.id) continue;
      const double rate = s.sample_rate > 0 ? s.sample_rate : sh.cfg.sample_rate;
      j["name"] = s.name;
      j["position_s"] = static_cast<double>(w.position) / rate;
      j["duration_s"] = static_cast<double>(s.frames) / rate;
    }
    voices.push_back(std::move(j));
  }
  return voices;
}

}  // namespace

std::string status_json(Shared& sh, const std::string& page, bool take_peaks) {
  control::Peer self;
  self.local = Shared::kEventsPeer;
  const control::OscMessage r = sh.router.handle(control::osc_message("/stemd/status"), self);
  Json status = Json::object();
  for (std::size_t i = 1; i + 1 < r.args.size(); i += 2) status[r.args[i].s] = control::osc_arg_json(r.args[i + 1]);
  const auto now = std::chrono::steady_clock::now();
  if (sh.ctl.changes() != sh.voices_changes || now - sh.voices_at > std::chrono::milliseconds(Shared::kVoicesKeepMs)) {
    sh.voices_json = dump(voices_json(sh));
    sh.voices_changes = sh.ctl.changes();
    sh.voices_at = now;
    sh.stats.voices_built.fetch_add(1, std::memory_order_relaxed);
  }
  engine::Metrics& m = sh.ctl.engine().metrics();
  const auto peaks = take_page_peaks(sh, page, take_peaks);
  Json decks = Json::array();
  for (int d = 0; d < engine::kNumDecks; ++d) {
    const control::LevelInfo heard = sh.ctl.deck_heard(d);
    Json deck{{"name", std::string(1, static_cast<char>('A' + d))},
              {"level", sh.ctl.deck_level(d)},
              {"level_now", heard.now},
              {"fade_s", sh.ctl.output_seconds(heard.frames_left)},
              {"eq", Json::array({sh.ctl.deck_eq(d, 0), sh.ctl.deck_eq(d, 1), sh.ctl.deck_eq(d, 2)})}};
    deck["meter"] = meter_json(m.meters[d], peaks[static_cast<std::size_t>(d)]);
    decks.push_back(std::move(deck));
  }
  const control::LevelInfo master_heard = sh.ctl.master_heard();
  Json master{{"level", sh.ctl.master_level()},
              {"level_now", master_heard.now},
              {"fade_s", sh.ctl.output_seconds(master_heard.frames_left)},
              {"meter", meter_json(m.meters[engine::kNumDecks], peaks[engine::kNumDecks])}};
  const WebStats& s = sh.stats;
  Json monitor{{"listeners", s.listeners.load()},
               {"audio_messages", s.audio_messages.load()},
               {"audio_dropped", s.audio_dropped.load()},
               {"tap_dropped", sh.tap ? sh.tap->dropped() : 0},
               {"connections", s.connections.load()},
               {"refused", s.refused.load()},
               {"bad_requests", s.bad_requests.load()},
               {"listeners_held", s.listeners_held.load()},
               {"voices_built", s.voices_built.load()},
               {"event_clients", s.event_clients.load()},
               {"ws_timed_out", s.ws_timed_out.load()},
               {"events_behind", s.events_behind.load()},
               {"accept_failures", s.accept_failures.load()}};
  Json j{{"status", std::move(status)},
         {"voices", nullptr},  // spliced in below, as kept
         {"decks", std::move(decks)},
         // false: started with --disable-filters, EQ messages are answered and ignored
         {"eq_enabled", sh.router.config().eq_enabled},
         {"master", std::move(master)},
         {"callback_hist", callback_histogram(m)},
         {"monitor", std::move(monitor)}};
  std::string out = dump(j);
  const std::size_t at = out.find("\"voices\":null");
  if (at != std::string::npos) out.replace(at + 9, 4, sh.voices_json);
  return out;
}

}  // namespace stemd::web
