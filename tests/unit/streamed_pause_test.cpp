// A pause that waits behind its play's stream open (session 28's "Left", quant28). A play of a
// file streamed from disk is deferred until its stream has opened off the control thread; a pause
// of the same id waits behind it and ran after the play had been sent to the engine. When an audio
// callback fell between the two, the voice started, was heard for that period and then faded out
// over the pause's fade: a voice played and paused "at once" (one bundle, or a pause sent while
// the open was in flight) sounded, and its position ran on while it was listed paused. The
// observer here renders one period right after the play is answered, before the pause runs: the
// callback that falls between them. The voice must start paused: silent, at its first frame.
#include "common/fixtures.hpp"
#include "router_rig.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

namespace stemd::test {
namespace {

using control::OscArg;
using control::OscMessage;

constexpr int kRate = 48000;

struct Rig {
  static app::InstanceConfig config() {
    io::LoadOptions lo;
    lo.preload_limit_bytes = 0;  // every file streams from disk
    lo.head_frames = 1'000;
    return RouterRig::instance_config({}, RouterRig::config(), lo);
  }
  Rig() : rig(config()) {
    make_wav(dir.file("a.wav"), 4 * kRate, 31);
    rig.ok("/stemd/load", {OscArg::Int(2), OscArg::Str(dir.file("a.wav"))});  // loaded at once (not async yet)
    EXPECT_TRUE(rig.ctl.source(2) != nullptr && rig.ctl.source(2)->streamed());
    rig.router.enable_async_loads(nullptr);
    rig.loader.start();  // the rings refilled as in the daemon (a resumed voice plays past its head)
    // An audio callback right after the play is answered, before what waits behind it runs.
    rig.router.set_outcome_observer([this](const control::Outcome& o) {
      if (o.address != "/stemd/play") return;
      played = o.reply.ok;
      const std::vector<float> o1 = rig.render(1024);
      out.insert(out.end(), o1.begin(), o1.end());
    });
  }
  // A client's datagram: these messages in one bundle, or one message alone.
  void send(const std::vector<OscMessage>& msgs) {
    const std::vector<std::uint8_t> p = msgs.size() == 1
                                            ? control::osc_serialise(msgs.front())
                                            : control::osc_serialise_bundle(msgs, control::kOscImmediately);
    std::vector<control::Outgoing> replies;
    rig.router.handle_packet(p.data(), p.size(), control::Peer{}, replies);
  }
  void render(double seconds) {
    const std::vector<float> o = rig.render(static_cast<std::size_t>(seconds * kRate));
    out.insert(out.end(), o.begin(), o.end());
    rig.ctl.service();
  }
  // After the start, rendering runs at the device's pace (a period, then a period's time), so the
  // loader keeps the ring fed as in the daemon.
  void render_paced(double seconds) {
    for (int left = static_cast<int>(seconds * kRate); left > 0; left -= 1024) {
      const std::vector<float> o = rig.render(static_cast<std::size_t>(std::min(left, 1024)));
      out.insert(out.end(), o.begin(), o.end());
      rig.ctl.service();
      std::this_thread::sleep_for(std::chrono::microseconds(1'000'000 * 1024 / kRate));
    }
  }
  float peak() const {
    float m = 0;
    for (float x : out) m = std::max(m, std::fabs(x));
    return m;
  }
  control::VoiceInfo voice() {
    const auto vs = rig.ctl.voices();
    EXPECT_EQ(vs.size(), 1u);
    return vs.empty() ? control::VoiceInfo{} : vs.front();
  }
  void expect_paused_silent() {
    ASSERT_TRUE(rig.settle_loads());
    ASSERT_TRUE(played) << "the play did not wait for its stream (nothing fell between it and its pause)";
    render(0.5);
    EXPECT_EQ(peak(), 0.0f) << "a voice played and paused at once sounded";
    const control::VoiceInfo v = voice();
    EXPECT_STREQ(v.state_name(), "paused");
    EXPECT_EQ(v.position, 0) << "the paused voice's position ran on";
    EXPECT_EQ(rig.status("voices_paused"), 1);
    // A resume plays it from its first frame.
    rig.ok("/stemd/resume", {OscArg::Int(2)});
    out.clear();
    render_paced(0.25);
    EXPECT_GT(peak(), 0.1f);
    EXPECT_STREQ(voice().state_name(), "playing");
  }
  TempDir dir;
  RouterRig rig;
  std::vector<float> out;
  bool played = false;
};

const OscMessage kPlay{"/stemd/play", {OscArg::Int(2)}};
const OscMessage kPause{"/stemd/pause", {OscArg::Int(2)}};

TEST(StreamedPause, APlayAndItsPauseInOneBundleStartPaused) {
  Rig r;
  r.send({kPlay, kPause});
  r.expect_paused_silent();
}

TEST(StreamedPause, APauseSentWhileThePlaysStreamOpensStartsItPaused) {
  Rig r;
  r.send({kPlay});
  r.send({kPause});  // the stream is still opening: the pause waits behind the play
  ASSERT_EQ(r.rig.router.messages_waiting(), 1u);
  r.expect_paused_silent();
}

TEST(StreamedPause, APauseWithAFadeBehindThePlayStartsItPausedToo) {
  Rig r;
  r.send({kPlay, OscMessage{"/stemd/pause", {OscArg::Int(2), OscArg::Float(2.0f)}}});
  r.expect_paused_silent();
}

// What waits behind the play and is not a pause of it leaves the start alone.
TEST(StreamedPause, APlayFollowedByAVolumeStartsPlaying) {
  Rig r;
  r.send({kPlay, OscMessage{"/stemd/volume", {OscArg::Int(2), OscArg::Float(0.5f)}}});
  ASSERT_TRUE(r.rig.settle_loads());
  ASSERT_TRUE(r.played);
  r.render_paced(0.25);
  EXPECT_GT(r.peak(), 0.05f);
  EXPECT_STREQ(r.voice().state_name(), "playing");
}

}  // namespace
}  // namespace stemd::test
