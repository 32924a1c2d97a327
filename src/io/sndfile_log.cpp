// libsndfile's open log, read for what SF_INFO leaves out (sndfile_log.hpp).
#include "sndfile_log.hpp"

#include <cstdio>
#include <cstring>
#include <string>

namespace stemd::io {

std::int64_t declared_frames(SNDFILE* sf, std::int64_t frames) {
  if (frames <= 0) return frames;
  std::string log(8192, '\0');
  sf_command(sf, SFC_GET_LOG_INFO, log.data(), static_cast<int>(log.size()));
  log.resize(std::strlen(log.c_str()));
  std::size_t at = 0;
  std::int64_t comm = 0, data = 0;
  while (at < log.size()) {
    std::size_t end = log.find('\n', at);
    if (end == std::string::npos) end = log.size();
    const std::string line = log.substr(at, end - at);
    at = end + 1;
    long long claimed = 0, held = 0;
    char tag[8] = {};
    if (std::sscanf(line.c_str(), " Frames : %lld", &claimed) == 1) {  // AIFF's COMM chunk says it outright
      if (claimed > frames) comm = claimed;
      continue;
    }
    if (std::sscanf(line.c_str(), " %4s : %lld (should be %lld)", tag, &claimed, &held) != 3) continue;
    const bool ssnd = std::strcmp(tag, "SSND") == 0;
    if (!ssnd && std::strcmp(tag, "data") != 0) continue;
    if (ssnd) {  // its size counts an 8-byte offset and block size before the samples
      claimed -= 8;
      held -= 8;
    }
    if (held <= 0 || claimed <= held) continue;
    const long double per_frame = static_cast<long double>(held) / static_cast<long double>(frames);
    data = frames + static_cast<std::int64_t>(static_cast<long double>(claimed - held) / per_frame + 0.5L);
  }
  if (data <= frames) return frames;  // the samples' chunk is whole: whatever COMM says, nothing is cut
  return comm > frames ? comm : data;
}

}  // namespace stemd::io
