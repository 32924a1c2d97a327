// Structural check of OSC packets (see osc_packet.hpp).
#include "osc_packet.hpp"

#include <cstring>
#include <utility>

namespace stemd::control {

namespace {

std::size_t pad4(std::size_t n) { return (n + 3) & ~std::size_t{3}; }

std::uint32_t be32(const std::uint8_t* p) {
  return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) | p[3];
}

// A message the walk accepted: where its bytes are (null: the rewritten copy in PacketCheck::data)
// and the timetag of the bundle holding it.
struct Span {
  const std::uint8_t* data;
  std::size_t size;
  std::uint64_t timetag;
};

class Walker {
 public:
  // `spans` (may be null) receives every message the walk accepts, in order.
  Walker(const PacketLimits& l, PacketCheck& out, std::vector<Span>* spans) : limits_(l), out_(out), spans_(spans) {}

  bool fail(std::string why) {
    out_.ok = false;
    if (out_.reason.empty()) out_.reason = std::move(why);
    return false;
  }

  // A padded OSC string at [pos, end): returns its length, advances pos past the padding.
  bool string(const std::uint8_t* d, std::size_t end, std::size_t& pos, std::string& s, const char* what) {
    const void* nul = std::memchr(d + pos, 0, end - pos);
    if (!nul) return fail(std::string(what) + " is not NUL-terminated (truncated packet?)");
    const std::size_t len = static_cast<const std::uint8_t*>(nul) - (d + pos);
    if (len > limits_.max_string) {
      return fail(std::string(what) + " is " + std::to_string(len) + " bytes, over the limit of " +
                  std::to_string(limits_.max_string));
    }
    s.assign(reinterpret_cast<const char*>(d + pos), len);
    const std::size_t next = pos + pad4(len + 1);
    if (next > end) return fail(std::string(what) + " padding runs past the end of the packet");
    for (std::size_t i = pos + len + 1; i < next; ++i) {
      // liblo refuses these too; refusing the whole packet here keeps a bundle all-or-nothing
      if (d[i] != 0) return fail(std::string(what) + " has non-zero padding");
    }
    pos = next;
    return true;
  }

  bool element(const std::uint8_t* d, std::size_t size, int depth, bool top, std::uint64_t timetag) {
    if (size == 0) return fail("empty packet");
    if (size % 4 != 0) return fail("packet size " + std::to_string(size) + " is not a multiple of 4");
    if (size >= 8 && std::memcmp(d, "#bundle", 8) == 0) return bundle(d, size, depth);
    if (d[0] != '/') return fail("not an OSC packet: it must start with '/' or '#bundle'");
    if (!message(d, size, top)) return false;
    if (spans_ != nullptr) spans_->push_back(Span{out_.rewritten ? nullptr : d, size, timetag});
    return true;
  }

  bool bundle(const std::uint8_t* d, std::size_t size, int depth) {
    out_.bundle = true;
    if (depth >= limits_.max_depth) {
      return fail("bundles nested deeper than " + std::to_string(limits_.max_depth) + " levels");
    }
    if (size < 16) return fail("bundle too short for its timetag");
    const std::uint64_t timetag = (static_cast<std::uint64_t>(be32(d + 8)) << 32) | be32(d + 12);
    std::size_t pos = 16;
    while (pos < size) {
      if (size - pos < 4) return fail("bundle element size is truncated");
      // OSC's element size is an int32: one with the top bit set is negative, and named so.
      const auto size32 = static_cast<std::int32_t>(be32(d + pos));
      pos += 4;
      if (size32 <= 0 || size32 % 4 != 0)
        return fail("bundle element size " + std::to_string(size32) + " is not a positive multiple of 4");
      const auto n = static_cast<std::size_t>(size32);
      if (n > size - pos) return fail("bundle element of " + std::to_string(n) + " bytes runs past the end");
      if (!element(d + pos, n, depth + 1, false, timetag)) return false;
      pos += n;
    }
    return true;
  }

  bool message(const std::uint8_t* d, std::size_t size, bool top) {
    std::size_t pos = 0;
    std::string address;
    if (!string(d, size, pos, address, "address")) return false;
    if (out_.address.empty()) out_.address = address;
    for (unsigned char c : address) {
      if (c < 0x20 || c == 0x7f) return fail("address contains control characters");
    }
    if (++out_.messages > limits_.max_messages) {
      return fail("over " + std::to_string(limits_.max_messages) + " messages in one packet: send fewer per bundle");
    }
    if (pos == size) return fail("missing type tag string");
    if (d[pos] != ',') return fail("type tag string must start with ','");
    std::string tags;
    const std::size_t tags_at = pos;
    if (!string(d, size, pos, tags, "type tag string")) return false;
    if (tags.size() - 1 > limits_.max_args) {
      return fail(std::to_string(tags.size() - 1) + " arguments, over the limit of " +
                  std::to_string(limits_.max_args));
    }
    bool arrays = false;
    int depth = 0;
    for (std::size_t i = 1; i < tags.size(); ++i) {
      const char t = tags[i];
      std::string s;
      switch (t) {
        case 'i':
        case 'f':
        case 'c':
        case 'm':  // not 'r' (RGBA): liblo 0.31 refuses it
          if (size - pos < 4) return fail(std::string("argument '") + t + "' runs past the end");
          pos += 4;
          break;
        case 'h':
        case 'd':
        case 't':
          if (size - pos < 8) return fail(std::string("argument '") + t + "' runs past the end");
          pos += 8;
          break;
        case 's':
        case 'S':
          if (pos >= size) return fail("string argument runs past the end");
          if (!string(d, size, pos, s, "string argument")) return false;
          break;
        case 'b': {
          if (size - pos < 4) return fail("blob size runs past the end");
          const auto size32 = static_cast<std::int32_t>(be32(d + pos));  // an OSC int32, as above
          pos += 4;
          if (size32 < 0) return fail("blob size " + std::to_string(size32) + " is negative");
          const auto n = static_cast<std::size_t>(size32);
          if (n > size - pos || pad4(n) > size - pos)
            return fail("blob of " + std::to_string(n) + " bytes runs past the end");
          for (std::size_t k = pos + n; k < pos + pad4(n); ++k) {
            if (d[k] != 0) return fail("blob has non-zero padding");
          }
          pos += pad4(n);
          break;
        }
        case 'T':
        case 'F':
        case 'N':
        case 'I':
          break;
        case '[':
          arrays = true;
          ++depth;
          if (i + 1 >= tags.size() || tags[i + 1] != ']') return fail("OSC arrays are not supported");
          break;
        case ']':
          arrays = true;
          if (--depth < 0) return fail("unbalanced ']' in the type tags");
          break;
        default:
          return fail(std::string("unknown type tag '") + (t >= 0x20 && t < 0x7f ? std::string(1, t) : "?") + "'");
      }
    }
    if (depth != 0) return fail("unbalanced '[' in the type tags");
    if (pos != size) return fail(std::to_string(size - pos) + " bytes left after the arguments");
    if (arrays) {
      // Only empty arrays reach here (",[]" as crowdstream's /reset sends): drop them.
      if (!top) return fail("OSC arrays inside bundles are not supported");
      std::string clean;
      for (char c : tags) {
        if (c != '[' && c != ']') clean += c;
      }
      std::vector<std::uint8_t> out(d, d + tags_at);
      out.insert(out.end(), clean.begin(), clean.end());
      out.resize(tags_at + pad4(clean.size() + 1), 0);
      out.insert(out.end(), d + tags_at + pad4(tags.size() + 1), d + size);
      out_.rewritten = true;
      out_.data = std::move(out);
    }
    return true;
  }

 private:
  const PacketLimits& limits_;
  PacketCheck& out_;
  std::vector<Span>* spans_;
};

}  // namespace

PacketCheck check_packet(const std::uint8_t* data, std::size_t size, const PacketLimits& limits) {
  PacketCheck out;
  Walker w(limits, out, nullptr);
  out.ok = w.element(data, size, 0, true, kOscImmediately);
  return out;
}

// One walk over the packet records where each message is; only when all of it passed does liblo
// decode the messages, each once, straight from the packet's bytes. So the walk's reasons come
// first, as they did when liblo saw the packet after the check, and a bundle with one message
// liblo refuses is refused whole.
PacketCheck parse_packet(const std::uint8_t* data, std::size_t size, const PacketLimits& limits) {
  PacketCheck out;
  std::vector<Span> spans;
  Walker w(limits, out, &spans);
  out.ok = w.element(data, size, 0, true, kOscImmediately);
  if (!out.ok) return out;
  out.parsed.resize(spans.size());
  for (std::size_t i = 0; i < spans.size(); ++i) {
    const Span& s = spans[i];
    const std::uint8_t* bytes = s.data != nullptr ? s.data : out.data.data();
    const std::size_t n = s.data != nullptr ? s.size : out.data.size();
    if (!osc_parse(bytes, n, out.parsed[i], out.reason)) {
      out.ok = false;
      out.parsed.clear();
      return out;
    }
    out.parsed[i].timetag = s.timetag;
  }
  return out;
}

}  // namespace stemd::control
