// stemctl's JSON output (--json, see format.hpp): nlohmann::json, in the daemon's order.
#include "format.hpp"

#include "control/osc_json.hpp"

#include <cmath>

#include <nlohmann/json.hpp>

namespace stemd::ctl {

namespace {

using Json = nlohmann::ordered_json;

// Invalid UTF-8 → U+FFFD instead of an exception; control characters are escaped.
std::string dump(const Json& j, int indent) {
  return j.dump(indent, ' ', false, Json::error_handler_t::replace) + "\n";
}

}  // namespace

std::string status_json(const StatusFields& f) {
  Json j = Json::object();
  for (const auto& [k, v] : f) j[k] = control::osc_arg_json(v);
  return dump(j, 2);
}

std::string list_json(const std::vector<SourceRow>& rows) {
  Json j = Json::array();
  for (const auto& r : rows) {
    j.push_back(Json{{"id", r.id},
                     {"name", r.name},
                     {"path", r.path},
                     {"duration_s", r.duration_s},
                     {"streamed", r.streamed},
                     {"playing", r.playing}});
  }
  return dump(j, 2);
}

std::string voices_json(const std::vector<VoiceRow>& rows) {
  Json j = Json::array();
  for (const auto& r : rows) {
    j.push_back(Json{{"id", r.id},
                     {"name", r.name},
                     {"position_s", r.position_s},
                     {"duration_s", r.duration_s},
                     {"ring_fill", r.ring_fill},
                     {"underruns", r.underruns},
                     {"state", r.state}});
    if (!r.has_mix) continue;
    // The mix fields: null where the daemon does not know them (a voice waiting for the device).
    auto known = [](double x, const Json& v) { return x >= 0 && std::isfinite(x) ? v : Json(nullptr); };
    Json& o = j.back();
    o["volume"] = known(r.volume, r.volume);
    o["volume_db"] = r.volume > 0 && std::isfinite(r.volume) ? Json(20.0 * std::log10(r.volume)) : Json(nullptr);
    o["rate"] = known(r.rate, r.rate);
    o["tempo"] = known(r.tempo, r.tempo);
  }
  return dump(j, 2);
}

std::string event_json(const OscMessage& m, const std::string& utc_time) {
  Json j = Json::object();
  j["time"] = utc_time;
  j["event"] = m.address;
  Json args = Json::array();
  for (const auto& a : m.args) args.push_back(control::osc_arg_json(a));
  j["args"] = args;
  std::vector<const char*> names;
  if (m.address == "/stemd/voice/started") {
    names = {"id", "voice", "name"};
  } else if (m.address == "/stemd/voice/ended") {
    names = {"id", "voice", "reason"};
  } else if (m.address == "/stemd/voice/underrun") {
    names = {"id", "voice", "count"};
  } else if (m.address == "/stemd/voice/deferred") {
    names = {"id", "voice", "frames"};
  } else if (m.address == "/stemd/source/loaded") {
    names = {"id", "name", "duration_s"};
  } else if (m.address == "/stemd/source/unloaded") {
    names = {"id"};
  } else if (m.address == "/stemd/device/underflow") {
    names = {"total"};
  }
  for (std::size_t i = 0; i < names.size() && i < m.args.size(); ++i) j[names[i]] = control::osc_arg_json(m.args[i]);
  return dump(j, -1);
}

}  // namespace stemd::ctl
