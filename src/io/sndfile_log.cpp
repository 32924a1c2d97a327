// libsndfile's open log, read for what SF_INFO leaves out (sndfile_log.hpp).
#include "sndfile_log.hpp"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <string>

#include <unistd.h>

namespace stemd::io {
namespace {

// Bytes per frame of an integer or float PCM file, 0 for anything else (compressed, ADPCM...):
// only there does a byte count turn into frames exactly.
std::int64_t block_align(const SF_INFO& info) {
  int bytes = 0;
  switch (info.format & SF_FORMAT_SUBMASK) {
    case SF_FORMAT_PCM_S8:
    case SF_FORMAT_PCM_U8:
      bytes = 1;
      break;
    case SF_FORMAT_PCM_16:
      bytes = 2;
      break;
    case SF_FORMAT_PCM_24:
      bytes = 3;
      break;
    case SF_FORMAT_PCM_32:
    case SF_FORMAT_FLOAT:
      bytes = 4;
      break;
    case SF_FORMAT_DOUBLE:
      bytes = 8;
      break;
    default:
      return 0;
  }
  return static_cast<std::int64_t>(bytes) * info.channels;
}

}  // namespace

std::int64_t declared_frames(SNDFILE* sf, const SF_INFO& info, std::int64_t frames) {
  if (frames < 0) return frames;
  std::string log(8192, '\0');  // (libsndfile keeps at most 2 KiB of it)
  sf_command(sf, SFC_GET_LOG_INFO, log.data(), static_cast<int>(log.size()));
  log.resize(std::strlen(log.c_str()));
  const int major = info.format & SF_FORMAT_TYPEMASK;
  const bool w64 = major == SF_FORMAT_W64;
  const std::int64_t align = block_align(info);
  std::int64_t comm = 0, data = 0, ds64 = 0;
  std::size_t at = 0;
  while (at < log.size()) {
    std::size_t end = log.find('\n', at);
    if (end == std::string::npos) end = log.size();
    const std::string line = log.substr(at, end - at);
    at = end + 1;
    long long claimed = 0, held = 0;
    char tag[8] = {};
    if (std::sscanf(line.c_str(), "*** Calculated frame count %lld does not match value from 'ds64' chunk of %lld",
                    &held, &claimed) == 2) {  // RF64: the ds64 chunk's frame count
      ds64 = claimed;
      continue;
    }
    if (major == SF_FORMAT_AIFF && std::sscanf(line.c_str(), " Frames : %lld", &claimed) == 1) {  // COMM says it
      comm = claimed;
      continue;
    }
    const int n = std::sscanf(line.c_str(), " %4s : %lld (should be %lld)", tag, &claimed, &held);
    const bool ssnd = std::strcmp(tag, "SSND") == 0;
    if (n < 2 || (!ssnd && std::strcmp(tag, "data") != 0)) continue;
    // The samples' chunk declares `claimed` bytes (WAV and AIFF log the mismatch as "(should
    // be ...)"; W64 logs its size alone, its 24-byte chunk header included).
    if (w64) {
      claimed -= 24;
    } else if (n != 3) {
      continue;
    } else if (claimed >= 0x7f000000LL) {
      // A 32-bit size left at its placeholder by a writer that could not seek back (a pipe):
      // 0xFFFFFFFF, 0x7FFFFFFF, sox's 0x7FFFF000 (WAV) and 0x7F000008 (AIFF's SSND). A real
      // chunk that large (3 hours of 16-bit stereo at 48 kHz) cut short goes unnamed.
      continue;
    }
    if (ssnd) claimed -= 8;  // its offset and block size come before the samples
    if (align > 0 && claimed > 0) data = claimed / align;
  }
  if (ds64 > frames) return ds64;
  if (data <= frames) return frames;  // the samples' chunk holds what it declares: nothing is cut
  return comm > frames ? comm : data;
}

std::int64_t empty_wav_data_size_at(int fd, std::int64_t file_size) {
  auto le32 = [](const unsigned char* p) {
    return static_cast<std::uint32_t>(p[0]) | static_cast<std::uint32_t>(p[1]) << 8 |
           static_cast<std::uint32_t>(p[2]) << 16 | static_cast<std::uint32_t>(p[3]) << 24;
  };
  unsigned char b[12];
  if (::pread(fd, b, 12, 0) != 12 || std::memcmp(b, "RIFF", 4) != 0 || std::memcmp(b + 8, "WAVE", 4) != 0) return -1;
  std::int64_t at = 12;
  for (int n = 0; n < 64 && at + 8 <= file_size; ++n) {
    if (::pread(fd, b, 8, at) != 8) return -1;
    const std::uint32_t size = le32(b + 4);
    if (std::memcmp(b, "data", 4) == 0) return size == 0 && file_size > at + 8 ? at + 4 : -1;
    at += 8 + static_cast<std::int64_t>(size) + (size & 1);
  }
  return -1;
}

std::string caf_cut_short(int fd, std::int64_t file_size) {
  auto be = [](const unsigned char* p, int n) {
    std::uint64_t v = 0;
    for (int i = 0; i < n; ++i) v = v << 8 | p[i];
    return v;
  };
  unsigned char b[32];
  if (::pread(fd, b, 8, 0) != 8 || std::memcmp(b, "caff", 4) != 0) return {};
  double bytes_per_second = 0;  // from 'desc' (linear PCM: a packet is a frame)
  std::int64_t at = 8;
  for (int n = 0; n < 1024; ++n) {
    if (at == file_size) return {};  // whole chunks and no 'data': malformed indeed
    if (at + 12 > file_size) {
      return "it ends at byte " + std::to_string(file_size) + ", inside a chunk's header (before the samples)";
    }
    if (::pread(fd, b, 12, at) != 12) return {};
    const std::string type(reinterpret_cast<const char*>(b), 4);
    const auto size = static_cast<std::int64_t>(be(b + 4, 8));
    const bool data = type == "data";
    if (size < 0) return {};  // -1: a 'data' chunk running to the end of the file
    if (type == "desc" && size >= 32 && at + 12 + 32 <= file_size && ::pread(fd, b, 32, at + 12) == 32) {
      const std::uint64_t rate_bits = be(b, 8);
      double rate = 0;
      std::memcpy(&rate, &rate_bits, sizeof rate);
      const auto packet_bytes = static_cast<double>(be(b + 16, 4)), packet_frames = static_cast<double>(be(b + 20, 4));
      if (std::memcmp(b + 8, "lpcm", 4) == 0 && packet_frames > 0 && rate > 0) {
        bytes_per_second = rate * packet_bytes / packet_frames;
      }
    }
    if (at + 12 + size > file_size) {
      if (!data) {
        return "it ends at byte " + std::to_string(file_size) + ", inside its '" + type +
               "' chunk (before the samples)";
      }
      // The 'data' chunk starts with a 4-byte edit count: the samples follow it.
      const std::int64_t declared = size - 4, held = std::max<std::int64_t>(0, file_size - at - 12 - 4);
      char seconds[48] = "";
      if (bytes_per_second > 0) {
        std::snprintf(seconds, sizeof seconds, " (%.1f s)", static_cast<double>(declared) / bytes_per_second);
      }
      return "its 'data' chunk declares " + std::to_string(declared) + " bytes" + seconds + ", the file holds " +
             std::to_string(held) + " of them";
    }
    if (data) return {};
    at += 12 + size;
  }
  return {};
}

}  // namespace stemd::io
