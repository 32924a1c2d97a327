// libFuzzer: one datagram → Router::handle_packet() on a live mixer, as the OSC server's loop
// does it: Engine + LoaderThread (started) + Controller + MediaPolicy (loopback, a media root
// holding a few tiny generated files) + Router — the daemon's owner object app::Instance without
// its OSC server — built once. After each input the controller
// is serviced and notifications are taken; every kProcessEvery inputs the engine renders a
// block on this thread, so loads, plays, stops, seeks and retirements really happen.
//
// Invariants checked (a violation aborts, i.e. is a finding):
//   - every packet gets ≥ 1 reply (but a valid bundle holding no message: none); a packet check_packet() accepts gets
//   exactly one reply per
//     message inside it ("every message gets exactly one reply");
//   - every reply goes to the sender, parses with osc_parse(), is /done or /fail, and its
//     first argument is a string (the address answered); a /fail's last argument is a
//     non-empty string (the reason);
//   - notifications parse and go to a subscriber;
//   - the engine's output is finite;
//   - the controller's counts stay within the limits configured here.
#include "app/instance.hpp"
#include "control/controller.hpp"
#include "control/media_policy.hpp"
#include "control/net.hpp"
#include "control/osc.hpp"
#include "control/osc_packet.hpp"
#include "control/router.hpp"
#include "io/loader_thread.hpp"
#include "stemd/engine.hpp"

#include <sndfile.h>
#include <spdlog/spdlog.h>

#include <cerrno>
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

using namespace stemd;
using namespace stemd::control;

namespace {

constexpr int kRate = 48000;
constexpr std::uint32_t kBlock = 256;
constexpr int kProcessEvery = 8;
constexpr std::size_t kMaxSources = 24;
constexpr std::uint32_t kMaxVoices = 32;

// Known findings (README "Findings") are stepped around so the fuzzer can go on looking for
// new ones; STEMD_FUZZ_STRICT=1 turns them back into crashes (to check a fix).
bool g_strict = false;
std::uint64_t g_partial_noted = 0;

[[noreturn]] void violated(const char* what, const std::string& detail) {
  std::fprintf(stderr, "fuzz_osc_router: invariant violated: %s: %s\n", what, detail.c_str());
  std::abort();
}

void write_wav(const std::string& path, int frames, int channels, int rate, int format) {
  SF_INFO info{};
  info.samplerate = rate;
  info.channels = channels;
  info.format = format;
  SNDFILE* f = sf_open(path.c_str(), SFM_WRITE, &info);
  if (!f) violated("cannot write a fixture", path + ": " + sf_strerror(nullptr));
  std::vector<float> buf(static_cast<std::size_t>(frames) * channels);
  for (int i = 0; i < frames; ++i) {
    for (int c = 0; c < channels; ++c) {
      buf[static_cast<std::size_t>(i) * channels + c] = 0.25f * std::sin(0.05f * (i + 1) * (c + 1));
    }
  }
  sf_writef_float(f, buf.data(), frames);
  sf_close(f);
}

struct Rig {
  std::string root;
  app::Instance inst;  // the daemon's owner object, built as app::run() builds it
  engine::Engine& engine;
  io::LoaderThread& loader;
  Controller& ctl;
  Router* router = nullptr;
  Peer peer;
  std::vector<Outgoing> out;
  std::vector<float> block = std::vector<float>(kBlock * 2);
  std::uint64_t inputs = 0;

  static engine::EngineConfig engine_config() {
    engine::EngineConfig ec;
    ec.sample_rate = kRate;
    ec.max_block_frames = 1024;
    ec.max_voices = kMaxVoices;
    return ec;
  }
  static io::LoaderConfig loader_config() {
    io::LoaderConfig lc;
    lc.ring_frames = 4096;
    lc.chunk_frames = 1024;
    lc.prefill_frames = 1024;
    return lc;
  }
  static io::LoadOptions load_options() {
    io::LoadOptions lo;
    lo.output_rate = kRate;
    lo.preload_limit_bytes = 64 * 1024;  // tone.wav (4800 frames, 38 KB decoded) in memory; long.wav streams
    lo.head_frames = 2400;
    return lo;
  }

  // A media root holding the names the seed corpus and osc.dict use.
  static std::string make_root() {
    char tmpl[] = "/tmp/stemd-fuzz-router-XXXXXX";
    if (!mkdtemp(tmpl)) violated("mkdtemp", std::strerror(errno));
    const std::string root = tmpl;
    write_wav(root + "/tone.wav", 4800, 2, kRate, SF_FORMAT_WAV | SF_FORMAT_PCM_16);
    write_wav(root + "/mono.wav", 3000, 1, kRate, SF_FORMAT_WAV | SF_FORMAT_FLOAT);
    write_wav(root + "/long.wav", 24000, 2, kRate, SF_FORMAT_WAV | SF_FORMAT_PCM_16);  // streamed
    write_wav(root + "/rate44.wav", 441, 2, 44100, SF_FORMAT_WAV | SF_FORMAT_PCM_16);  // refused: rate
    if (FILE* f = std::fopen((root + "/junk.wav").c_str(), "wb")) {                    // refused: format
      std::fputs("RIFF\x10\0\0\0WAVEjunk", f);
      std::fclose(f);
    }
    mkdir((root + "/sub").c_str(), 0700);
    write_wav(root + "/sub/a.wav", 480, 2, kRate, SF_FORMAT_WAV | SF_FORMAT_PCM_24);
    if (symlink("/etc", (root + "/escape").c_str()) != 0) { /* refusal is tested without it too */
    }
    return root;
  }
  // The daemon's owner object, built as app::run() builds it; the fuzzer's sizes in its config.
  static app::InstanceConfig instance_config(const std::string& root) {
    app::InstanceConfig ic;
    ic.engine = engine_config();
    ic.loader = loader_config();
    ic.load = load_options();
    ic.media_root = root;
    ic.media_loopback_only = true;
    RouterConfig& rc = ic.router;
    rc.sample_rate = kRate;
    rc.buffer_size = kBlock;
    rc.max_sources = kMaxSources;
    rc.max_subscribers = 4;
    rc.tone_seconds = 0.05;  // /test_tone: a short tone
    return ic;
  }

  Rig()
      : root(make_root()),
        inst(instance_config(root)),
        engine(inst.engine()),
        loader(inst.loader()),
        ctl(inst.controller()) {
    spdlog::set_level(std::getenv("STEMD_FUZZ_LOG") ? spdlog::level::debug : spdlog::level::off);
    std::string err;
    if (!inst.open_control(err)) violated("media root", err);  // never destroyed: the process exits with it
    router = &inst.router();
    loader.start();
    auto ep = parse_endpoint("127.0.0.1", 57121, err);
    if (!ep) violated("endpoint", err);
    peer.endpoint = *ep;
  }
};

Rig& rig() {
  static Rig* r = new Rig();  // leaked on purpose: destroying it at exit would race the loader
  return *r;
}

void check_reply(const Outgoing& o, const Peer& peer, const char* what) {
  if (!(o.to == peer)) violated("reply to someone else", what);
  OscMessage m;
  std::string err;
  if (!osc_parse(o.data.data(), o.data.size(), m, err)) violated("reply does not parse", err);
  if (m.address != "/done" && m.address != "/fail") violated("reply is neither /done nor /fail", m.address);
  if (m.args.empty() || !m.args[0].is_string()) violated("reply does not name the address", m.to_string());
  if (m.address == "/fail" && (m.args.size() < 2 || !m.args.back().is_string() || m.args.back().s.empty())) {
    violated("/fail without a reason", m.to_string());
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  g_strict = std::getenv("STEMD_FUZZ_STRICT") != nullptr;
  rig();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  Rig& r = rig();
  r.out.clear();
  r.router->handle_packet(data, size, r.peer, r.out);

  const PacketCheck check = check_packet(data, size, PacketLimits{});
  // Only a valid bundle holding no message at all (nested empties too) gets no reply.
  const bool empty_bundle = check.ok && check.bundle && check.messages == 0;
  if (r.out.empty() && !empty_bundle) violated("no reply", std::to_string(size) + " bytes");
  for (const Outgoing& o : r.out) check_reply(o, r.peer, "handle_packet");
  if (check.ok && !r.out.empty()) {
    // After check_packet() passed, liblo may still refuse the packet, or the rest of a bundle
    // from one message on (e.g. non-zero string padding, which liblo checks and
    // check_packet() does not): the router then answers the refused part with one /fail
    // (named "#bundle" when messages before it were handled). Finding 3: the check should
    // refuse all that liblo refuses, so no bundle is ever half applied.
    OscMessage last;
    std::string err;
    const Outgoing& o = r.out.back();
    const bool refused = osc_parse(o.data.data(), o.data.size(), last, err) && last.address == "/fail" &&
                         last.args.size() >= 2 &&
                         (last.args[0].s == "#bundle" || last.args.back().s.find("liblo") != std::string::npos ||
                          last.args.back().s == "malformed OSC packet");
    const auto msgs = static_cast<std::size_t>(check.messages);
    if (refused) {
      if (g_strict) violated("liblo refused what check_packet() passed", last.to_string());
      if (g_partial_noted++ == 0) {
        std::fprintf(stderr, "fuzz_osc_router: note: liblo refused a packet check_packet() passed (finding 3): %s\n",
                     last.to_string().c_str());
      }
      if (r.out.size() > std::max<std::size_t>(msgs, 1)) {
        violated("more replies than messages",
                 std::to_string(check.messages) + " messages, " + std::to_string(r.out.size()) + " replies");
      }
    } else if (r.out.size() != msgs) {
      violated("not one reply per message",
               std::to_string(check.messages) + " messages, " + std::to_string(r.out.size()) + " replies");
    }
  }
  if (!check.ok && r.out.size() != 1) violated("a refused packet got more than one reply", check.reason);

  r.ctl.service();
  r.out.clear();
  r.router->take_notifications(r.out);
  for (const Outgoing& o : r.out) {
    OscMessage m;
    std::string err;
    if (!osc_parse(o.data.data(), o.data.size(), m, err)) violated("notification does not parse", err);
    if (m.address.rfind("/stemd/", 0) != 0) violated("notification address", m.address);
  }

  if (++r.inputs % kProcessEvery == 0) {
    r.engine.process(r.block.data(), kBlock);
    for (float x : r.block) {
      if (!std::isfinite(x)) violated("engine output is not finite", std::to_string(x));
    }
    r.ctl.service();
  }
  if (r.ctl.sources_loaded() > kMaxSources + 1) {  // + the test tone's slot
    violated("more sources than --max-sources", std::to_string(r.ctl.sources_loaded()));
  }
  if (r.ctl.voices_playing() > kMaxVoices)
    violated("more voices than max_voices", std::to_string(r.ctl.voices_playing()));
  return 0;
}
