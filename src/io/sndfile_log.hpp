// What libsndfile's open noted in its log (SFC_GET_LOG_INFO) that its SF_INFO does not say.
#pragma once

#include <sndfile.h>

#include <cstdint>

namespace stemd::io {

// libsndfile counts a WAV's or AIFF's frames from what the file holds when its data chunk claims
// more, and notes the claim in its log: "data : 768000 (should be 384000)" (AIFF: "SSND : ...").
// The frames the header declared, from that line; `frames` when there is none.
std::int64_t declared_frames(SNDFILE* sf, std::int64_t frames);

}  // namespace stemd::io
