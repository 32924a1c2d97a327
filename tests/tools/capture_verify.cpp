// stemd-capture-verify: checks that a capture of stemd's output holds a reference signal
// sample for sample.
//
// The capture is what jack_capture recorded from system:playback_1/2 (32-bit float WAV);
// the reference is the file stemd was told to play (or, with --sum, the sample-wise float
// sum of several files that played together; mono references play on every channel).
// The tool finds where the reference starts in the capture by looking up a run of 64
// reference frames exactly (falling back to normalised cross-correlation, and saying so),
// then walks the reference one period at a time. Each period is exact, a *slip* (its data
// is in the capture but shifted: a JACK xrun repeated or skipped a cycle; the walk
// re-aligns and continues) or *unmatched* (wrong data: an underrun, a gain, a bad mix).
// Exit 0 only if every period is present and exact (slips allowed with --allow-slips),
// 1 if the verification fails, 2 on usage or file errors.
//
//   stemd-capture-verify --ref REF [--ref REF2 --sum] --capture CAP.wav [--period 1024]
//       [--tolerance 0] [--expect-frames N] [--allow-slips] [--search-frames N] [--json]

#include <sndfile.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace stemd::tools {
namespace {

constexpr long long kAnchorFrames = 64;  // run looked up to find the offset
constexpr long long kMinRun = 8;         // shorter runs (file ends) are too ambiguous
constexpr long long kNoOffset = std::numeric_limits<long long>::min();

struct Audio {
  int channels = 0;
  int rate = 0;
  long long frames = 0;
  std::vector<float> data;  // interleaved
  const float* frame(long long i) const { return data.data() + i * channels; }
};

struct Options {
  std::vector<std::string> refs;
  std::string capture;
  long long period = 1024;
  double tolerance = 0;
  long long expect_frames = -1;
  long long search_frames = -1;  // re-align window; default: 1 s at the capture's rate
  bool sum = false;
  bool json = false;
  bool allow_slips = false;
};

[[noreturn]] void usage(const std::string& why) {
  std::fprintf(stderr,
               "stemd-capture-verify: %s\n"
               "usage: stemd-capture-verify --ref REF.wav [--ref REF2.wav ... --sum] --capture CAP.wav\n"
               "         [--period 1024] [--tolerance 0] [--expect-frames N] [--allow-slips]\n"
               "         [--search-frames N] [--json]\n",
               why.c_str());
  std::exit(2);
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) usage(std::string(a) + " needs a value");
      return argv[++i];
    };
    try {
      if (a == "--ref")
        o.refs.push_back(value());
      else if (a == "--capture")
        o.capture = value();
      else if (a == "--period")
        o.period = std::stoll(value());
      else if (a == "--tolerance")
        o.tolerance = std::stod(value());
      else if (a == "--expect-frames")
        o.expect_frames = std::stoll(value());
      else if (a == "--search-frames")
        o.search_frames = std::stoll(value());
      else if (a == "--sum")
        o.sum = true;
      else if (a == "--json")
        o.json = true;
      else if (a == "--allow-slips")
        o.allow_slips = true;
      else if (a == "-h" || a == "--help")
        usage("help");
      else
        usage("unknown argument " + std::string(a));
    } catch (const std::logic_error&) {
      usage("bad value for " + std::string(a));
    }
  }
  if (o.refs.empty() || o.capture.empty()) usage("--ref and --capture are required");
  if (o.refs.size() > 1 && !o.sum) usage("several --ref need --sum");
  if (o.period < 1) usage("--period must be positive");
  if (o.tolerance < 0) usage("--tolerance must be >= 0");
  return o;
}

std::optional<Audio> load(const std::string& path) {
  SF_INFO info{};
  SNDFILE* f = sf_open(path.c_str(), SFM_READ, &info);
  if (!f) {
    std::fprintf(stderr, "stemd-capture-verify: %s: %s\n", path.c_str(), sf_strerror(nullptr));
    return std::nullopt;
  }
  Audio a;
  a.channels = info.channels;
  a.rate = info.samplerate;
  a.data.resize(static_cast<size_t>(info.frames) * static_cast<size_t>(info.channels));
  // Read in chunks until EOF rather than trusting info.frames: a capture cut short
  // (killed recorder) can have a header that disagrees with its data.
  long long got = 0;
  while (got < info.frames) {
    const sf_count_t n =
        sf_readf_float(f, a.data.data() + got * a.channels, std::min<sf_count_t>(65536, info.frames - got));
    if (n <= 0) break;
    got += n;
  }
  sf_close(f);
  a.frames = got;
  a.data.resize(static_cast<size_t>(got) * static_cast<size_t>(a.channels));
  return a;
}

// Brings a reference to the capture's channel count: mono plays on every channel.
bool fit_channels(Audio& a, int channels, const std::string& name) {
  if (a.channels == channels) return true;
  if (a.channels != 1) {
    std::fprintf(stderr, "stemd-capture-verify: %s has %d channels, capture has %d\n", name.c_str(), a.channels,
                 channels);
    return false;
  }
  std::vector<float> out(static_cast<size_t>(a.frames) * static_cast<size_t>(channels));
  for (long long i = 0; i < a.frames; ++i)
    for (int c = 0; c < channels; ++c) out[static_cast<size_t>(i * channels + c)] = a.data[static_cast<size_t>(i)];
  a.data = std::move(out);
  a.channels = channels;
  return true;
}

// The whole walk works on interleaved floats with a fixed channel count.
struct Matcher {
  const Audio& ref;
  const Audio& cap;
  long long ref_frames;  // may be fewer than ref.frames (--expect-frames)
  double tol;

  bool same(const float* a, const float* b, long long frames) const {
    const long long n = frames * ref.channels;
    if (tol == 0) {
      for (long long i = 0; i < n; ++i)
        if (a[i] != b[i]) return false;
    } else {
      for (long long i = 0; i < n; ++i)
        if (!(std::fabs(static_cast<double>(a[i]) - b[i]) <= tol)) return false;
    }
    return true;
  }
  bool frame_same(long long r, long long c) const { return same(ref.frame(r), cap.frame(c), 1); }
  // Reference frames [r, r+n) at capture frame c?
  bool run_at(long long r, long long c, long long n) const {
    if (r < 0 || c < 0 || r + n > ref_frames || c + n > cap.frames) return false;
    return same(ref.frame(r), cap.frame(c), n);
  }
};

struct Report {
  bool anchored = false;
  std::string anchor = "none";  // "exact" or "xcorr"
  double xcorr_peak = 0;
  long long offset = 0;  // capture frame = reference frame + offset (at the start)
  long long final_offset = 0;
  long long ref_frames = 0, capture_frames = 0;
  long long periods = 0, exact_periods = 0, slip_periods = 0, unmatched_periods = 0;
  long long missing_periods = 0;  // not in the capture at all (it started late / ended early)
  long long slips = 0, inserted_frames = 0, dropped_frames = 0;
  long long first_bad_frame = -1;  // first reference frame of the first non-exact period
  long long frames_compared = 0;
  long long missing_start = 0, missing_end = 0;
  double max_abs_diff = 0;
  double signal_energy = 0, error_energy = 0;
  long long leading_silence = 0, trailing_silence = 0;
  int channels = 0, rate = 0;
  long long swapped_offset = kNoOffset;  // set when only an L/R-swapped match exists
  bool ok = false;
};

// Diagnosis only: is the anchor there with the two channels exchanged? A failed test
// then says "L/R swapped" instead of just "not found".
long long find_swapped(const Audio& ref, const Audio& cap, long long s, long long L) {
  if (cap.channels != 2) return kNoOffset;
  const long long w = std::min(kAnchorFrames, L - s);
  for (long long p = 0; p + w <= cap.frames; ++p) {
    long long i = 0;
    while (i < w && ref.frame(s + i)[0] == cap.frame(p + i)[1] && ref.frame(s + i)[1] == cap.frame(p + i)[0]) ++i;
    if (i == w) return p - s;
  }
  return kNoOffset;
}

// First reference frame from `from` whose 64-frame window is mostly non-silent: an anchor in a silent
// lead-in would match any silence in the capture.
long long pick_anchor(const Audio& ref, long long from, long long frames) {
  const long long w = std::min(kAnchorFrames, frames);
  for (long long s = std::max(0LL, from); s + w <= frames; ++s) {
    bool loud = false;
    for (int c = 0; c < ref.channels; ++c) loud |= ref.frame(s)[c] != 0.0f;
    if (!loud) continue;
    long long nonzero = 0;
    for (long long i = s; i < s + w; ++i) {
      bool nz = false;
      for (int c = 0; c < ref.channels; ++c) nz |= ref.frame(i)[c] != 0.0f;
      nonzero += nz;
    }
    if (nonzero * 4 >= w * 3) return s;
  }
  return -1;
}

// Normalised cross-correlation of a reference window against the capture's first
// `limit` frames. O(limit * window): fine for test captures, bounded for long ones.
long long xcorr_find(const Audio& ref, const Audio& cap, long long s, long long ref_frames, long long limit,
                     double& peak) {
  const int ch = ref.channels;
  const long long w = std::min<long long>(2048, ref_frames - s);
  peak = 0;
  if (w < kMinRun || cap.frames < w) return -1;
  const float* r = ref.frame(s);
  double rr = 0;
  for (long long i = 0; i < w * ch; ++i) rr += static_cast<double>(r[i]) * r[i];
  if (rr == 0) return -1;
  const long long last = std::min(cap.frames - w, limit);
  double cc = 0;  // running energy of the capture window
  for (long long i = 0; i < w * ch; ++i) cc += static_cast<double>(cap.data[i]) * cap.data[i];
  long long best = -1;
  for (long long p = 0; p <= last; ++p) {
    const float* c = cap.frame(p);
    double dot = 0;
    for (long long i = 0; i < w * ch; ++i) dot += static_cast<double>(r[i]) * c[i];
    if (cc > 0) {
      const double v = dot / std::sqrt(rr * cc);
      if (v > peak) peak = v, best = p;
    }
    if (p < last) {
      for (int k = 0; k < ch; ++k) {
        const double out = c[k], in = c[w * ch + k];
        cc += in * in - out * out;
      }
      cc = std::max(cc, 0.0);
    }
  }
  return best;
}

// After a mismatch at reference frame f (capture frame f + o): the nearest shift d that
// makes the data line up again. Either the capture has d extra frames before reference
// frame f (a repeated cycle, inserted silence) or d reference frames never reached it (a
// skipped cycle). Nearest first, so a one-period xrun is found before any coincidence.
struct Shift {
  long long delta = 0;  // + inserted into the capture, - dropped from it
};
std::optional<Shift> realign(const Matcher& m, long long f, long long o, long long window) {
  const long long c = f + o;
  for (long long d = 1; d <= window; ++d) {
    // inserted: reference frames from f appear d frames later in the capture
    const long long n_ins = std::min({kAnchorFrames, m.ref_frames - f, m.cap.frames - (c + d)});
    if (n_ins >= kMinRun && m.run_at(f, c + d, n_ins)) return Shift{d};
    // dropped: the capture at c holds reference frames from f + d
    const long long n_drop = std::min({kAnchorFrames, m.ref_frames - (f + d), m.cap.frames - c});
    if (n_drop >= kMinRun && m.run_at(f + d, c, n_drop)) return Shift{-d};
  }
  return std::nullopt;
}

Report verify(const Options& opt, const Audio& ref, const Audio& cap) {
  Report rep;
  rep.channels = cap.channels;
  rep.rate = cap.rate;
  rep.capture_frames = cap.frames;
  const long long L = opt.expect_frames >= 0 ? std::min(opt.expect_frames, ref.frames) : ref.frames;
  rep.ref_frames = L;
  const long long P = opt.period;
  rep.periods = (L + P - 1) / P;
  Matcher m{ref, cap, L, opt.tolerance};

  // Silence around the signal in the capture (exact zeros): latency and tail checks.
  const int ch = cap.channels;
  auto silent = [&](long long i) {
    for (int c = 0; c < ch; ++c)
      if (cap.frame(i)[c] != 0.0f) return false;
    return true;
  };
  while (rep.leading_silence < cap.frames && silent(rep.leading_silence)) ++rep.leading_silence;
  if (rep.leading_silence < cap.frames)
    while (silent(cap.frames - 1 - rep.trailing_silence)) ++rep.trailing_silence;

  // 1. Anchor: a loud 64-frame run of the reference, looked up in the capture. The first
  // one is tried first; if the capture started late (or the start is damaged), later
  // ones at doubling distances, so a capture missing any prefix is still located.
  const long long s = pick_anchor(ref, 0, L);
  if (s < 0) return rep;  // a silent reference cannot be located
  for (long long step = 0, a = s; a >= 0 && !rep.anchored;
       step = step ? step * 2 : 1024, a = pick_anchor(ref, s + step, L)) {
    const long long w = std::min(kAnchorFrames, L - a);
    const float first = ref.frame(a)[0];
    for (long long p = 0; p + w <= cap.frames; ++p) {
      // Cheap first-sample filter before the full run comparison.
      if (opt.tolerance == 0 ? cap.frame(p)[0] != first
                             : !(std::fabs(static_cast<double>(cap.frame(p)[0]) - first) <= opt.tolerance))
        continue;
      if (m.run_at(a, p, w)) {
        rep.anchored = true;
        rep.anchor = "exact";
        rep.offset = p - a;
        break;
      }
    }
  }
  if (!rep.anchored) {
    // Bounded search: the signal starts within the first minute of any test capture.
    // Two windows, best peak wins: the first may be exactly the part a player lost
    // while connecting, and then only the tones correlate (at a wrong lag).
    const long long limit = 60LL * cap.rate;
    for (long long a : {s, pick_anchor(ref, s + (L - s) / 3, L)}) {
      if (a < 0) continue;
      double peak = 0;
      const long long p = xcorr_find(ref, cap, a, L, limit, peak);
      if (p >= 0 && peak > rep.xcorr_peak) {
        rep.xcorr_peak = peak;
        rep.offset = p - a;
      }
    }
    if (rep.xcorr_peak < 0.5) {
      rep.offset = 0;
      rep.swapped_offset = find_swapped(ref, cap, s, L);
      return rep;
    }
    rep.anchored = true;
    rep.anchor = "xcorr";
  }

  // 2. Walk the reference. Periods default to exact; a mismatch marks its period.
  enum class Kind : unsigned char { Exact, Slip, Unmatched, Missing };
  std::vector<Kind> kind(static_cast<size_t>(rep.periods), Kind::Exact);
  auto mark = [&](long long frame, Kind k) {
    Kind& cur = kind[static_cast<size_t>(frame / P)];
    if (static_cast<int>(k) > static_cast<int>(cur)) cur = k;
    if (rep.first_bad_frame < 0 || frame < rep.first_bad_frame) rep.first_bad_frame = frame;
  };
  const long long window = opt.search_frames >= 0 ? opt.search_frames : cap.rate;
  long long o = rep.offset;
  long long r = 0;
  if (o < 0) {  // the capture started after the reference did
    rep.missing_start = -o;
    for (long long i = 0; i < std::min(L, -o); i = (i / P + 1) * P) mark(i, Kind::Missing);
    r = std::min(L, -o);
  }
  auto account = [&](long long rf, long long cf) {
    const float* a = ref.frame(rf);
    const float* b = cap.frame(cf);
    for (int c = 0; c < ch; ++c) {
      const double d = std::fabs(static_cast<double>(a[c]) - b[c]);
      rep.max_abs_diff = std::max(rep.max_abs_diff, d);
      rep.signal_energy += static_cast<double>(a[c]) * a[c];
      rep.error_energy += d * d;
    }
    ++rep.frames_compared;
  };
  while (r < L) {
    if (r + o >= cap.frames) {  // the capture ended before the reference did
      rep.missing_end = L - r;
      for (long long i = r; i < L; i = (i / P + 1) * P) mark(i, Kind::Missing);
      break;
    }
    const long long end = std::min({(r / P + 1) * P, L, cap.frames - o});
    long long f = r;
    while (f < end && m.frame_same(f, f + o)) account(f, f + o), ++f;
    if (f == end) {
      r = end;
      continue;
    }
    if (auto sh = realign(m, f, o, window)) {
      ++rep.slips;
      if (sh->delta > 0) {
        rep.inserted_frames += sh->delta;
        mark(f, Kind::Slip);
        o += sh->delta;
        r = f;
      } else {
        const long long d = -sh->delta;
        rep.dropped_frames += d;
        for (long long i = f; i < f + d; i = (i / P + 1) * P) mark(i, Kind::Slip);
        o -= d;
        r = f + d;
      }
      continue;
    }
    // Wrong data: compare the rest of the period as it stands (for max diff / SNR).
    mark(f, Kind::Unmatched);
    for (long long i = f; i < end; ++i) account(i, i + o);
    r = end;
  }
  rep.final_offset = o;
  for (Kind k : kind) {
    if (k == Kind::Exact)
      ++rep.exact_periods;
    else if (k == Kind::Slip)
      ++rep.slip_periods;
    else if (k == Kind::Unmatched)
      ++rep.unmatched_periods;
    else
      ++rep.missing_periods;
  }
  rep.ok = rep.anchored && rep.missing_start == 0 && rep.missing_end == 0 && rep.unmatched_periods == 0 &&
           (opt.allow_slips || rep.slips == 0) && rep.periods > 0;
  return rep;
}

double snr_db(const Report& r) {
  if (r.error_energy == 0) return std::numeric_limits<double>::infinity();
  if (r.signal_energy == 0) return -std::numeric_limits<double>::infinity();
  return 10.0 * std::log10(r.signal_energy / r.error_energy);
}

void print(const Report& r, const Options& o) {
  const double snr = snr_db(r);
  if (o.json) {
    // JSON has no infinity: an exact match reports snr_db null.
    char snr_s[32];
    if (std::isfinite(snr))
      std::snprintf(snr_s, sizeof snr_s, "%.2f", snr);
    else
      std::snprintf(snr_s, sizeof snr_s, "null");
    std::printf(
        "{\"ok\":%s,\"anchor\":\"%s\",\"xcorr_peak\":%.4f,\"offset\":%lld,\"final_offset\":%lld,"
        "\"ref_frames\":%lld,\"capture_frames\":%lld,\"frames_compared\":%lld,\"period\":%lld,"
        "\"periods\":%lld,\"exact_periods\":%lld,\"slip_periods\":%lld,\"slips\":%lld,"
        "\"inserted_frames\":%lld,\"dropped_frames\":%lld,\"unmatched_periods\":%lld,"
        "\"missing_periods\":%lld,"
        "\"first_bad_frame\":%lld,\"max_abs_diff\":%.9g,\"snr_db\":%s,\"whole_ref_found\":%s,"
        "\"missing_start\":%lld,\"missing_end\":%lld,\"leading_silence\":%lld,"
        "\"trailing_silence\":%lld,\"channels_swapped\":%s,\"channels\":%d,\"rate\":%d}\n",
        r.ok ? "true" : "false", r.anchor.c_str(), r.xcorr_peak, r.offset, r.final_offset, r.ref_frames,
        r.capture_frames, r.frames_compared, o.period, r.periods, r.exact_periods, r.slip_periods, r.slips,
        r.inserted_frames, r.dropped_frames, r.unmatched_periods, r.missing_periods, r.first_bad_frame, r.max_abs_diff,
        snr_s, (r.anchored && r.missing_start == 0 && r.missing_end == 0) ? "true" : "false", r.missing_start,
        r.missing_end, r.leading_silence, r.trailing_silence, r.swapped_offset != kNoOffset ? "true" : "false",
        r.channels, r.rate);
    return;
  }
  std::printf("capture-verify: %s\n", r.ok ? "PASS" : "FAIL");
  if (!r.anchored) {
    std::printf("  reference not found in the capture (xcorr peak %.3f)\n", r.xcorr_peak);
    if (r.swapped_offset != kNoOffset)
      std::printf("  but found with LEFT/RIGHT SWAPPED at offset %lld\n", r.swapped_offset);
    std::printf("  capture %lld frames, leading silence %lld, trailing silence %lld\n", r.capture_frames,
                r.leading_silence, r.trailing_silence);
    return;
  }
  std::printf("  anchor            %s%s\n", r.anchor.c_str(),
              r.anchor == "xcorr" ? " (no exact 64-frame match; cross-correlation)" : "");
  if (r.anchor == "xcorr") std::printf("  xcorr peak        %.4f\n", r.xcorr_peak);
  std::printf("  offset            %lld frames (%.3f ms)\n", r.offset, 1000.0 * r.offset / r.rate);
  if (r.final_offset != r.offset) std::printf("  final offset      %lld frames\n", r.final_offset);
  std::printf("  reference         %lld frames, %lld periods of %lld\n", r.ref_frames, r.periods, o.period);
  std::printf("  frames compared   %lld\n", r.frames_compared);
  std::printf("  exact periods     %lld\n", r.exact_periods);
  if (r.missing_periods) std::printf("  missing periods   %lld (not in the capture)\n", r.missing_periods);
  std::printf("  slips             %lld (%lld periods; %lld frames inserted, %lld dropped)\n", r.slips, r.slip_periods,
              r.inserted_frames, r.dropped_frames);
  std::printf("  unmatched periods %lld\n", r.unmatched_periods);
  if (r.first_bad_frame >= 0) std::printf("  first non-exact   reference frame %lld\n", r.first_bad_frame);
  std::printf("  max |diff|        %.9g\n", r.max_abs_diff);
  if (std::isfinite(snr)) std::printf("  SNR               %.2f dB\n", snr);
  std::printf("  whole reference   %s (missing %lld at start, %lld at end)\n",
              (r.missing_start == 0 && r.missing_end == 0) ? "found" : "NOT found", r.missing_start, r.missing_end);
  std::printf("  capture           %lld frames, leading silence %lld, trailing silence %lld\n", r.capture_frames,
              r.leading_silence, r.trailing_silence);
}

}  // namespace
}  // namespace stemd::tools

int main(int argc, char** argv) {
  using namespace stemd::tools;
  const Options opt = parse(argc, argv);
  auto cap = load(opt.capture);
  if (!cap) return 2;
  std::optional<Audio> ref;
  for (const auto& path : opt.refs) {
    auto a = load(path);
    if (!a || !fit_channels(*a, cap->channels, path)) return 2;
    if (a->rate != cap->rate) {
      std::fprintf(stderr, "stemd-capture-verify: %s is %d Hz, capture is %d Hz\n", path.c_str(), a->rate, cap->rate);
      return 2;
    }
    if (!ref) {
      ref = std::move(a);
      continue;
    }
    // --sum: the mix of files that played together; the shorter ones end in silence.
    if (a->frames > ref->frames) {
      ref->data.resize(a->data.size(), 0.0f);
      ref->frames = a->frames;
    }
    for (size_t i = 0; i < a->data.size(); ++i) ref->data[i] += a->data[i];
  }
  if (opt.expect_frames > ref->frames) {
    std::fprintf(stderr, "stemd-capture-verify: --expect-frames %lld exceeds the reference (%lld)\n", opt.expect_frames,
                 ref->frames);
    return 2;
  }
  const Report rep = verify(opt, *ref, *cap);
  print(rep, opt);
  return rep.ok ? 0 : 1;
}
