// libFuzzer: one datagram → control::parse_packet(), the one parse of a packet, and the two
// passes it replaced (check_packet(), then OscDispatcher over the same bytes). Every message is
// handed to a trivial handler that touches every argument (so ASan sees any bad pointer liblo
// gives us) and round-trips it through osc_serialise()/osc_parse().
//
// Invariants checked (a violation aborts, i.e. is a finding):
//   - check_packet() refusing a packet always gives a reason;
//   - a packet it accepts holds ≥ 1 message (unless it is a bundle: empty bundles are valid), and, when rewritten
//   (",[]"),
//     the rewritten bytes pass check_packet() again unchanged;
//   - whatever passed the structural check, liblo does not crash on it;
//   - parse_packet() accepts exactly what the two passes accept, refuses the rest with the same
//     reason, and yields the same messages (address, arguments, timetag) in the same order;
//   - a message liblo yields serialises back to bytes that check_packet() accepts and
//     osc_parse() reads back with the same address and argument types.
#include "control/osc.hpp"
#include "control/osc_packet.hpp"

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

using namespace stemd::control;

namespace {

[[noreturn]] void violated(const char* what, const std::string& detail) {
  std::fprintf(stderr, "fuzz_osc_packet: invariant violated: %s: %s\n", what, detail.c_str());
  std::abort();
}

OscDispatcher& dispatcher() {
  static OscDispatcher* d = new OscDispatcher();  // leaked on purpose: no destructor at exit
  return *d;
}

volatile std::uint64_t g_sink = 0;

// Known findings (README "Findings") are stepped around so the fuzzer can go on looking for
// new ones; STEMD_FUZZ_STRICT=1 turns them back into crashes (to check a fix).
bool g_strict = false;

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  g_strict = std::getenv("STEMD_FUZZ_STRICT") != nullptr;
  if (!dispatcher().ok()) {
    std::fprintf(stderr, "fuzz_osc_packet: %s\n", dispatcher().error().c_str());
    std::abort();
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  PacketLimits limits;  // the daemon's defaults
  const PacketCheck check = check_packet(data, size, limits);
  if (!check.ok) {
    if (check.reason.empty()) violated("refused without a reason", std::to_string(size) + " bytes");
    const PacketCheck once = parse_packet(data, size, limits);
    if (once.ok || once.reason != check.reason) violated("parse_packet() refuses otherwise", once.reason);
    return 0;
  }
  // An empty bundle is valid OSC and holds no message; anything else holds at least one.
  if (check.messages < 1 && !check.bundle)
    violated("accepted a message that is not one", std::to_string(size) + " bytes");
  const std::uint8_t* bytes = check.rewritten ? check.data.data() : data;
  const std::size_t n = check.rewritten ? check.data.size() : size;
  if (check.rewritten) {
    const PacketCheck again = check_packet(bytes, n, limits);
    if (!again.ok) violated("rewritten packet no longer passes", again.reason);
    if (again.rewritten) violated("rewritten packet would be rewritten again", check.address);
  }

  std::vector<OscMessage> two_pass;
  std::string error;
  const bool two_pass_ok = dispatcher().dispatch(
      bytes, n, [&](const OscMessage& m) { two_pass.push_back(m); }, error);
  const PacketCheck once = parse_packet(data, size, limits);
  if (once.ok != two_pass_ok) violated("parse_packet() and the two passes disagree", once.reason + " / " + error);
  if (!once.ok) {
    if (once.reason != error) violated("parse_packet() gives another reason", once.reason + " / " + error);
    return 0;
  }
  if (once.parsed.size() != two_pass.size()) violated("parse_packet() yields another count", check.address);
  for (std::size_t i = 0; i < two_pass.size(); ++i) {
    const OscMessage& a = once.parsed[i];
    const OscMessage& b = two_pass[i];
    if (a.to_string() != b.to_string() || a.types() != b.types() || a.timetag != b.timetag)
      violated("parse_packet() yields another message", a.to_string() + " / " + b.to_string());
  }
  for (const OscMessage& m : once.parsed) {
    [&] {
      std::uint64_t h = m.address.size() + m.timetag;
      for (const OscArg& a : m.args) {
        h += static_cast<std::uint64_t>(a.type) + static_cast<std::uint64_t>(a.i) + a.s.size();
        if (!a.s.empty()) h += static_cast<unsigned char>(a.s.back());
        h += static_cast<std::uint64_t>(a.to_string().size());
      }
      g_sink = g_sink + h;
      // What the router sends back is built the same way: serialise, then parse again
      // (only the types osc_serialise() documents; 'r' and the like are receive-only).
      for (const OscArg& a : m.args) {
        if (std::string_view("ihfdsScTFNImtb").find(a.type) == std::string_view::npos) return;
        // Finding 2: osc_serialise() of an empty blob crashes in liblo (lo_blob_new(0) is null).
        if (a.type == 'b' && a.s.empty() && !g_strict) return;
      }
      const std::vector<std::uint8_t> out = osc_serialise(m);
      if (out.empty()) return;  // liblo refuses to serialise some addresses (e.g. empty)
      OscMessage back;
      std::string perr;
      if (!osc_parse(out.data(), out.size(), back, perr)) violated("own serialisation does not parse", perr);
      if (back.address != m.address) violated("address changed in a round trip", m.address + " → " + back.address);
      if (back.types() != m.types()) violated("types changed in a round trip", m.types() + " → " + back.types());
      const PacketCheck rc = check_packet(out.data(), out.size(), limits);
      if (!rc.ok && rc.reason.find("arrays") == std::string::npos) {
        violated("own serialisation fails the structural check", rc.reason + " (" + m.to_string() + ")");
      }
    }();
  }
  return 0;
}
