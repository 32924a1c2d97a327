// Structural check of an incoming OSC packet, before liblo sees it (our own code, no liblo).
//
// Every datagram from the network passes through check_packet(): it walks messages and bundles
// and refuses, with a reason a user can act on, anything malformed — wrong size, unterminated
// strings, unknown type tags, arguments running past the end, strings over the length limit,
// bundles nested too deep, non-empty OSC arrays. It also rewrites the one array form real
// clients send: crowdstream's `/reset` with an empty array (type tags ",[]"), which liblo 0.31
// rejects, becomes `/reset` with no arguments. The fuzzer feeds this function first.
// Thread: any (pure function).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace stemd::control {

struct PacketLimits {
  std::size_t max_string = 1024;  // bytes, addresses and string arguments
  std::size_t max_args = 256;     // per message
  int max_depth = 4;              // bundle nesting
};

struct PacketCheck {
  bool ok = false;
  std::string reason;   // why not ok
  std::string address;  // the first message's address, when it could be read (for the reply)
  bool bundle = false;
  int messages = 0;
  bool rewritten = false;  // use `data` instead of the original bytes
  std::vector<std::uint8_t> data;
};

PacketCheck check_packet(const std::uint8_t* data, std::size_t size, const PacketLimits& limits);

}  // namespace stemd::control
