// What libsndfile reads, as stemd opens files (see sound_file.hpp): for `stemd --version`, and
// why a file it does not recognise may not be one; and what it writes (SoundFileWriter: --render).
#include "sound_file.hpp"

#include <sndfile.h>

#include <algorithm>
#include <cctype>
#include <memory>
#include <string>
#include <vector>

namespace stemd::io {

std::string sndfile_version() { return sf_version_string(); }

namespace {

// Whether this libsndfile decodes a codec (a subtype: SF_FORMAT_VORBIS, SF_FORMAT_OPUS).
bool has_subtype(int subtype) {
  int count = 0;
  sf_command(nullptr, SFC_GET_FORMAT_SUBTYPE_COUNT, &count, sizeof count);
  for (int i = 0; i < count; ++i) {
    SF_FORMAT_INFO info{};
    info.format = i;
    if (sf_command(nullptr, SFC_GET_FORMAT_SUBTYPE, &info, sizeof info) == 0 && info.format == subtype) return true;
  }
  return false;
}

}  // namespace

// libsndfile names each container with one extension, not always the one people use (MPEG as
// .m1a, Ogg as .oga), and lists RAW, which it reads only when told the layout: stemd opens every
// file with an empty SF_INFO (the format from the header), so headerless raw is not read.
std::vector<std::string> sndfile_formats() {
  std::vector<std::string> out;
  int count = 0;
  sf_command(nullptr, SFC_GET_FORMAT_MAJOR_COUNT, &count, sizeof count);
  for (int i = 0; i < count; ++i) {
    SF_FORMAT_INFO info{};
    info.format = i;
    if (sf_command(nullptr, SFC_GET_FORMAT_MAJOR, &info, sizeof info) != 0) continue;
    std::string name = info.name != nullptr ? info.name : "?";
    std::string ext = info.extension != nullptr ? std::string(".") + info.extension : std::string();
    switch (info.format) {
      case SF_FORMAT_RAW:
        continue;
      case SF_FORMAT_MPEG:
        name = "MPEG-1/2 Audio (MP3, layers I–III)", ext = ".mp3";
        break;
      case SF_FORMAT_OGG: {
        const bool vorbis = has_subtype(SF_FORMAT_VORBIS), opus = has_subtype(SF_FORMAT_OPUS);
        name =
            std::string("Ogg (") + (vorbis ? "Vorbis" : "") + (vorbis && opus ? ", " : "") + (opus ? "Opus" : "") + ")";
        ext = std::string(vorbis ? ".ogg .oga" : ".oga") + (opus ? " .opus" : "");
        break;
      }
      case SF_FORMAT_AIFF:
        ext = ".aiff .aif";
        break;
      default:
        break;
    }
    out.push_back(ext.empty() ? name : name + " " + ext);
  }
  return out;
}

// libsndfile's "Format not recognised." says nothing of why. By the name's extension: a format it
// reads (the file is damaged, cut short, or not audio under that name), one it has no decoder for
// (AAC/M4A, WMA, APE, …: convert it), or neither.
std::string unrecognised_format_hint(const std::string& path) {
  const auto slash = path.find_last_of('/');
  const auto dot = path.find_last_of('.');
  std::string ext;
  if (dot != std::string::npos && (slash == std::string::npos || dot > slash)) ext = path.substr(dot);
  for (char& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (!ext.empty()) {
    for (const std::string& f : sndfile_formats()) {  // "NAME .ext .ext2"
      const auto at = f.find(" .");
      if (at == std::string::npos) continue;
      const std::string exts = f.substr(at) + " ";
      if (exts.find(" " + ext + " ") != std::string::npos) {
        return "not a readable " + f.substr(0, at) + " file: damaged, cut short, or not audio despite its " + ext +
               " name";
      }
    }
    static const char* const kNoDecoder[] = {".m4a", ".m4b", ".mp4",  ".aac", ".alac", ".wma", ".asf", ".ape",
                                             ".wv",  ".mka", ".webm", ".ac3", ".dts",  ".dsf", ".dff", ".amr"};
    for (const char* e : kNoDecoder) {
      if (ext == e) {
        return ext + " (AAC/M4A, WMA, APE, WavPack, Matroska, DSD, …) is not a format stemd reads: convert it, e.g. " +
               "ffmpeg -i in" + ext + " out.flac";
      }
    }
  }
  return "not a sound file stemd reads (stemd --version lists the formats)";
}

// ---------------------------------------------------------------- SoundFileWriter

struct SoundFileWriter::Impl {
  SNDFILE* sf = nullptr;
  std::string err;
};

SoundFileWriter::SoundFileWriter() : impl_(std::make_unique<Impl>()) {}
SoundFileWriter::~SoundFileWriter() { close(); }

bool SoundFileWriter::open(const std::string& path, int sample_rate, std::string& error,
                           const std::string& format_from) {
  const std::string& name = format_from.empty() ? path : format_from;
  auto ends_with = [&](const char* ext) {
    const std::string e(ext);
    if (name.size() < e.size()) return false;
    return std::equal(e.rbegin(), e.rend(), name.rbegin(),
                      [](char a, char b) { return a == std::tolower(static_cast<unsigned char>(b)); });
  };
  SF_INFO info{};
  info.samplerate = sample_rate;
  info.channels = 2;
  if (ends_with(".flac")) {
    info.format = SF_FORMAT_FLAC | SF_FORMAT_PCM_24;
  } else if (ends_with(".aiff") || ends_with(".aif")) {
    info.format = SF_FORMAT_AIFF | SF_FORMAT_FLOAT;
  } else if (ends_with(".ogg")) {
    info.format = SF_FORMAT_OGG | SF_FORMAT_VORBIS;
  } else if (ends_with(".wav")) {
    info.format = SF_FORMAT_WAV | SF_FORMAT_FLOAT;
  } else {
    error = "unknown output format (use .wav, .flac, .aiff or .ogg)";
    return false;
  }
  impl_->sf = sf_open(path.c_str(), SFM_WRITE, &info);
  if (!impl_->sf) {
    error = sf_strerror(nullptr);
    return false;
  }
  // Integer formats: clip rather than wrap if the mix exceeds full scale.
  sf_command(impl_->sf, SFC_SET_CLIPPING, nullptr, SF_TRUE);
  return true;
}

bool SoundFileWriter::write(const float* interleaved_stereo, std::int64_t frames) {
  if (!impl_->sf) return false;
  return sf_writef_float(impl_->sf, interleaved_stereo, frames) == frames;
}

void SoundFileWriter::close() {
  if (impl_->sf) {
    sf_close(impl_->sf);
    impl_->sf = nullptr;
  }
}

std::string SoundFileWriter::error() const { return impl_->sf ? sf_strerror(impl_->sf) : sf_strerror(nullptr); }

}  // namespace stemd::io
