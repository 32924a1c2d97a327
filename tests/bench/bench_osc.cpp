// OSC parse cost: one incoming packet turned into OscMessages, the control thread's work per
// datagram before any handler runs.
//
//   osc/two_pass/<packet>    check_packet() then OscDispatcher::dispatch() over the same bytes:
//                            the router's path before parse_packet() (the walk, then a second
//                            walk of the bundles and liblo decoding each message)
//   osc/parse_once/<packet>  parse_packet(): one walk, liblo decodes each message once
//   osc/memcpy/<packet>      memcpy of the packet's bytes: the floor, for a ratio in the same run
//
// Packets: `load` one crowdstream /load_buffer (4 arguments, a path), `bundle16` a bundle of 16
// /stemd/gain messages with a timetag, `args256` one message with 256 float arguments (the
// per-message limit). Counter bytes_per_second = packet bytes parsed.
#include "control/osc.hpp"
#include "control/osc_packet.hpp"

#include <benchmark/benchmark.h>

#include <cstring>
#include <string>
#include <vector>

namespace stemd::bench {
namespace {

using control::OscArg;
using control::OscMessage;

enum class Packet { kLoad, kBundle16, kArgs256 };

std::vector<std::uint8_t> packet(Packet p) {
  switch (p) {
    case Packet::kLoad:
      return control::osc_serialise(OscMessage{"/load_buffer",
                                               {OscArg::Int(1001), OscArg::Str("/srv/music/set/track-01/bass.wav"),
                                                OscArg::Str("track-01"), OscArg::Str("bass")}});
    case Packet::kBundle16: {
      std::vector<OscMessage> ms;
      for (int i = 0; i < 16; ++i) {
        ms.push_back(OscMessage{"/stemd/gain", {OscArg::Int(i), OscArg::Float(0.5), OscArg::Float(0.02)}});
      }
      return control::osc_serialise_bundle(ms, control::unix_seconds_to_ntp(2e9));
    }
    case Packet::kArgs256: {
      OscMessage m{"/stemd/levels", {}};
      for (int i = 0; i < 256; ++i) m.args.push_back(OscArg::Float(i * 0.001));
      return control::osc_serialise(m);
    }
  }
  return {};
}

void bm_two_pass(benchmark::State& state, Packet p) {
  const auto bytes = packet(p);
  const control::PacketLimits limits;
  control::OscDispatcher d;
  std::size_t seen = 0;
  for (auto _ : state) {
    const control::PacketCheck check = control::check_packet(bytes.data(), bytes.size(), limits);
    const auto& b = check.rewritten ? check.data : bytes;
    std::string error;
    d.dispatch(
        b.data(), b.size(), [&](const OscMessage& m) { seen += m.args.size(); }, error);
    benchmark::DoNotOptimize(seen);
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * bytes.size()));
}

void bm_parse_once(benchmark::State& state, Packet p) {
  const auto bytes = packet(p);
  const control::PacketLimits limits;
  std::size_t seen = 0;
  for (auto _ : state) {
    const control::PacketCheck parsed = control::parse_packet(bytes.data(), bytes.size(), limits);
    for (const OscMessage& m : parsed.parsed) seen += m.args.size();
    benchmark::DoNotOptimize(seen);
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * bytes.size()));
}

void bm_memcpy(benchmark::State& state, Packet p) {
  const auto bytes = packet(p);
  std::vector<std::uint8_t> dst(bytes.size());
  for (auto _ : state) {
    std::memcpy(dst.data(), bytes.data(), bytes.size());
    benchmark::DoNotOptimize(dst.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * bytes.size()));
}

[[maybe_unused]] const bool registered = [] {
  const std::pair<Packet, const char*> packets[] = {
      {Packet::kLoad, "load"}, {Packet::kBundle16, "bundle16"}, {Packet::kArgs256, "args256"}};
  for (const auto& [p, name] : packets) {
    benchmark::RegisterBenchmark((std::string("osc/two_pass/") + name).c_str(), bm_two_pass, p);
    benchmark::RegisterBenchmark((std::string("osc/parse_once/") + name).c_str(), bm_parse_once, p);
    benchmark::RegisterBenchmark((std::string("osc/memcpy/") + name).c_str(), bm_memcpy, p);
  }
  return true;
}();

}  // namespace
}  // namespace stemd::bench
