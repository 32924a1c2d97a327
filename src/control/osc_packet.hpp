// Structural check of an incoming OSC packet, before liblo sees it (our own code, no liblo).
//
// Every datagram from the network passes through check_packet(): it walks messages and bundles
// and refuses, with a reason a user can act on, anything malformed — wrong size, unterminated
// strings, unknown type tags, arguments running past the end, strings over the length limit,
// bundles nested too deep, non-empty OSC arrays. It also rewrites the one array form real
// clients send: crowdstream's `/reset` with an empty array (type tags ",[]"), which liblo 0.31
// rejects, becomes `/reset` with no arguments. The fuzzer feeds this function first.
//
// parse_packet() is the one parse of a packet: the same walk, and then liblo decodes each
// message it accepted (lo_message_deserialise, straight from the packet's bytes) into `parsed`,
// each with the timetag of the bundle holding it. What liblo still refuses after the walk fails
// the packet whole, with liblo's reason. Hand `parsed` on; do not parse the bytes again.
// Thread: any (pure functions).
#pragma once

#include <cstddef>
#include "osc.hpp"

#include <cstdint>
#include <string>
#include <vector>

namespace stemd::control {

struct PacketLimits {
  std::size_t max_string = 1024;  // bytes, addresses and string arguments
  std::size_t max_args = 256;     // per message
  int max_depth = 4;              // bundle nesting
  // Messages in one packet, nested bundles' included: the control thread's work per datagram is
  // bounded (a 64 KB bundle held 3,249 pings or 2,707 status queries: 50 such datagrams held the
  // control thread for 0.4–1.7 s). 4 × the schedule's 256 starts per period.
  int max_messages = 1024;
};

struct PacketCheck {
  bool ok = false;
  std::string reason;   // why not ok
  std::string address;  // the first message's address, when it could be read (for the reply)
  bool bundle = false;
  int messages = 0;
  bool rewritten = false;  // use `data` instead of the original bytes
  std::vector<std::uint8_t> data;
  // parse_packet() only, when ok: every message of the packet, in order, with its bundle's
  // timetag (kOscImmediately outside a bundle). Empty for an empty bundle.
  std::vector<OscMessage> parsed;
};

// The structural check alone (no message decoded).
PacketCheck check_packet(const std::uint8_t* data, std::size_t size, const PacketLimits& limits);
// The check and the decode, in one pass over the packet (see above).
PacketCheck parse_packet(const std::uint8_t* data, std::size_t size, const PacketLimits& limits);

}  // namespace stemd::control
