// What libsndfile's open noted in its log (SFC_GET_LOG_INFO) that its SF_INFO does not say.
#pragma once

#include <sndfile.h>

#include <cstdint>
#include <string>

namespace stemd::io {

// libsndfile counts a file's frames from what it holds when its header claims more, and notes the
// claim only in its log: "data : 768000 (should be 384000)" (WAV), "SSND : ..." and COMM's
// "Frames : N" (AIFF), the data chunk's size alone (W64), a ds64 frame count that "does not match"
// (RF64). The frames the header declared, for PCM files (where bytes turn into frames exactly) and
// RF64; `frames` when there is no claim, when the samples' chunk is whole, or when the claim is a
// 32-bit size's placeholder (≥ 0x7fff0000: a WAV written to a pipe). Misses claims libsndfile's
// log (at most 2 KiB) has no room for, behind many chunks.
std::int64_t declared_frames(SNDFILE* sf, const SF_INFO& info, std::int64_t frames);

// A WAV written to a pipe by a writer that put the frame count it knew at the start in its
// header — 0 (Python's wave module writing to stdout) — declares an empty data chunk with the
// samples after it; libsndfile then counts no frames and parses the samples as chunks. The byte
// offset of that data chunk's size field, for SoundFile to read as the pipe placeholder
// 0xFFFFFFFF (the samples run to the end of the file, which libsndfile does follow), or -1: not
// a RIFF/WAVE file, no data chunk among its first 64, or a data chunk that declares bytes (or is
// the file's end).
std::int64_t empty_wav_data_size_at(int fd, std::int64_t file_size);

// A CAF file that ends before its chunks do (an interrupted copy or download), which libsndfile
// refuses as "Supported file format but file is malformed.": what is missing, in words ("its
// 'data' chunk declares 192000 bytes (1.0 s), the file holds 48000 of them", "it ends at byte 30,
// inside its 'desc' chunk (before the samples)"). "" when it is not a CAF file, or its chunks are
// whole up to its 'data' chunk and that one holds what it declares (or runs to the end: size -1).
std::string caf_cut_short(int fd, std::int64_t file_size);

}  // namespace stemd::io
