// What the daemon reports of its voices (a new user's pass 24, LOW 1, 4, 5, 6, 10): the status
// counts the paused voices apart (voices_paused) and says whether a tempo is in use at all
// (tempo_in_use); /stemd/voices with `mix` 1 carries each voice's volume, rate and tempo; a voice
// that reaches the end of its section ends "end of section" (not "end of file"), one a play or a
// load of its id takes the place of ends "replaced" (not "stopped"), and the log names its id as
// "id" (it said "slot", a word stemctl and the OSC replies do not use).
#include "app/daemon_run.hpp"
#include "common/log_capture.hpp"

#include "router_rig.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace stemd::test {
namespace {

using control::OscArg;
using control::OscMessage;

struct Rig : RouterRig {
  explicit Rig(control::RouterConfig rc = {}) : RouterRig(with_log(instance_config(std::move(rc)), reasons)) {
    load("dc", 2, 480000);  // 10 s
  }
  // The reasons voices ended with (as the notifier sends them), in order; the log lines go through
  // the daemon's own function (app::log_voice_event).
  std::vector<std::string> reasons;

  static app::InstanceConfig with_log(app::InstanceConfig ic, std::vector<std::string>& reasons) {
    ic.on_event = [&reasons](const engine::Event& e, const control::VoiceInfo& v, base::LogLimiter* limit) {
      if (e.type == engine::EventType::kVoiceEnded) reasons.push_back(control::end_reason_text(e.reason, v));
      app::log_voice_event(e, v, limit);
    };
    return ic;
  }
  // `frames` of DC at 48 kHz (the output rate) into `id`, held in memory.
  void load(const char* name, int id, std::size_t frames) {
    std::string err;
    ASSERT_TRUE(ctl.load_generated(control::kNow, id, name, std::vector<float>(frames * 2, 0.25f), err)) << err;
  }
  // Renders `seconds` of output and takes the engine's events.
  void play_for(double seconds) {
    render(static_cast<std::size_t>(seconds * 48000));
    ctl.service();
  }
};

TEST(VoiceReport, TheStatusCountsThePausedVoicesApart) {
  Rig rig;
  rig.load("dc3", 3, 480000);
  rig.ok("/stemd/play", {OscArg::Int(2), OscArg::Float(1.0f), OscArg::Int(1)});
  rig.ok("/stemd/play", {OscArg::Int(3), OscArg::Float(1.0f), OscArg::Int(1)});
  rig.play_for(0.1);
  rig.ok("/stemd/pause", {OscArg::Int(2)});
  rig.play_for(0.1);
  EXPECT_EQ(rig.status("voices"), 2);
  EXPECT_EQ(rig.status("voices_paused"), 1);
  rig.ok("/stemd/resume", {OscArg::Int(2)});
  EXPECT_EQ(rig.status("voices_paused"), 0);
}

TEST(VoiceReport, ATempoIsInUseOnceOneIsGivenSetOrFollowed) {
  {
    Rig rig;
    EXPECT_EQ(rig.status("tempo_in_use"), 0) << "nobody set one: the clock ticks at --bpm's default";
    EXPECT_EQ(rig.status("tempo_bpm"), 120) << "the field itself stays";
    rig.ok("/set_tempo", {OscArg::Float(128.0f)});
    EXPECT_EQ(rig.status("tempo_in_use"), 1);
  }
  {
    control::RouterConfig rc;
    rc.bpm = 100;
    rc.bpm_set = true;  // --bpm given
    Rig rig(rc);
    EXPECT_EQ(rig.status("tempo_in_use"), 1);
  }
  {
    Rig rig;
    rig.ok("/stemd/quantize", {OscArg::Float(4.0f)});  // starts on the beat grid
    EXPECT_EQ(rig.status("tempo_in_use"), 1);
    rig.ok("/stemd/quantize", {OscArg::Float(0.0f)});
    EXPECT_EQ(rig.status("tempo_in_use"), 0);
  }
}

TEST(VoiceReport, VoicesWithMixCarryVolumeRateAndTempo) {
  Rig rig;
  rig.ok("/stemd/play", {OscArg::Int(2), OscArg::Float(0.5f), OscArg::Int(1)});
  rig.ok("/stemd/rate", {OscArg::Int(2), OscArg::Float(1.25f)});
  rig.play_for(0.1);
  control::Reply r = rig.ok("/stemd/voices", {OscArg::Int(0), OscArg::Int(0), OscArg::Int(1)});
  ASSERT_EQ(r.values.size(), 1u + 10u + 2u);  // count, a row of 10, total, next
  EXPECT_EQ(r.values[0].i, 1);
  EXPECT_EQ(r.values[1].i, 2);            // id
  EXPECT_EQ(r.values[7].s, "playing");    // state
  EXPECT_FLOAT_EQ(r.values[8].f, 0.5f);   // volume
  EXPECT_FLOAT_EQ(r.values[9].f, 1.25f);  // rate
  EXPECT_FLOAT_EQ(r.values[10].f, 1.0f);  // tempo
  // Without mix the rows are what they were (older clients count 7 a row).
  EXPECT_EQ(rig.ok("/stemd/voices").values.size(), 1u + 7u + 2u);
  EXPECT_EQ(rig.ok("/stemd/voices", {OscArg::Int(0), OscArg::Int(0), OscArg::Int(0)}).values.size(), 1u + 7u + 2u);
  const control::Reply bad = rig.reply(OscMessage{"/stemd/voices", {OscArg::Int(0), OscArg::Int(0), OscArg::Int(2)}});
  EXPECT_FALSE(bad.ok);
  EXPECT_EQ(bad.kind, control::ErrorKind::kRange) << bad.reason;
}

TEST(VoiceReport, EndReasonsSaySectionAndReplacedAndTheLogSaysId) {
  Rig rig;
  LogCapture log;
  // A section of 0.1 s played once: it ends at the section's end, 9.8 s before the file's.
  rig.ok("/stemd/play_region", {OscArg::Int(2), OscArg::Float(0.1f), OscArg::Float(0.2f), OscArg::Int(0)});
  rig.play_for(0.3);
  ASSERT_EQ(rig.reasons, std::vector<std::string>{"end of section"});
  EXPECT_NE(log.text().find("(id 2 'dc') ended: end of section"), std::string::npos) << log.text();
  // A play of the id replaces its voice; so does a load into it (a paused voice too).
  rig.ok("/stemd/play", {OscArg::Int(2), OscArg::Float(1.0f), OscArg::Int(1)});
  rig.play_for(0.05);
  rig.ok("/stemd/play", {OscArg::Int(2), OscArg::Float(1.0f), OscArg::Int(1)});
  rig.play_for(0.05);
  rig.ok("/stemd/pause", {OscArg::Int(2)});
  rig.play_for(0.05);
  rig.load("dc again", 2, 480000);
  rig.play_for(0.05);
  // Stopped by its user, then the id played again: "stopped", not "replaced".
  rig.ok("/stemd/play", {OscArg::Int(2), OscArg::Float(1.0f), OscArg::Int(1)});
  rig.play_for(0.05);
  rig.ok("/stemd/stop", {OscArg::Int(2)});
  rig.ok("/stemd/play", {OscArg::Int(2), OscArg::Float(1.0f), OscArg::Int(0)});
  rig.play_for(0.05);
  // A whole (short) file: "end of file" still.
  rig.load("blip", 4, 2400);
  rig.ok("/stemd/play", {OscArg::Int(4)});
  rig.play_for(0.1);
  EXPECT_EQ(rig.reasons,
            (std::vector<std::string>{"end of section", "replaced", "replaced", "stopped", "end of file"}));
  const std::string text = log.text();
  EXPECT_NE(text.find("(id 2 'dc') ended: replaced"), std::string::npos) << text;
  EXPECT_NE(text.find("(id 2 'dc again') ended: stopped"), std::string::npos) << text;
  EXPECT_NE(text.find("(id 4 'blip') ended: end of file"), std::string::npos) << text;
  EXPECT_EQ(text.find("slot"), std::string::npos) << text;
}

}  // namespace
}  // namespace stemd::test
