// ALSA device names and the "device busy" message (src/audio/alsa_devices.cpp), on a fake /proc
// tree: this machine has no sound card, and a real busy hw device needs one (issue 14, item 2).
#include "audio/alsa_devices.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <utility>
#include <fstream>
#include <unistd.h>

namespace fs = std::filesystem;
using namespace stemd::audio;

// Not in the anonymous namespace: the unity build includes this file, and g++ warns
// (-Wsubobject-linkage) when a TEST_F's class derives from a type with internal linkage there.
class FakeProc : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() / ("stemd-alsa-proc-" + std::to_string(getpid()) + "-" +
                                         ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root_);
    fs::create_directories(root_ / "asound");
  }
  void TearDown() override { fs::remove_all(root_); }
  void write(const fs::path& rel, const std::string& text) {
    fs::create_directories((root_ / rel).parent_path());
    std::ofstream(root_ / rel) << text;
  }
  void card(int n, const std::string& id) { write("asound/card" + std::to_string(n) + "/id", id + "\n"); }
  void substream(int card, int dev, int sub, const std::string& status) {
    write(
        "asound/card" + std::to_string(card) + "/pcm" + std::to_string(dev) + "p/sub" + std::to_string(sub) + "/status",
        status);
  }
  std::string root() const { return root_.string(); }
  fs::path root_;
};

namespace {

const char* kRunning =
    "state: RUNNING\nowner_pid   : 812\ntrigger_time: 100.5\ntstamp      : 101.0\ndelay       : 1024\n";

}  // namespace

TEST_F(FakeProc, HwNamesBecomeThePartOfPortAudiosNameTheyMatch) {
  card(0, "Headphones");
  card(1, "DAC");
  // ALSA name → the part of PortAudio's name it matches ("" = not an hw name, or no such card).
  const std::pair<const char*, const char*> cases[] = {
      {"hw:CARD=DAC,DEV=0", "(hw:1,0)"},
      {"hw:CARD=DAC", "(hw:1,0)"},
      {"plughw:CARD=Headphones,DEV=1", "(hw:0,1)"},
      {"hw:1,0", "(hw:1,0)"},
      {"hw:DAC", "(hw:1,0)"},
      {"hw:CARD=DAC,DEV=0,SUBDEV=0", "(hw:1,0)"},
      {"hw:CARD=Missing", ""},
      {"hw:5,0", ""},
      {"default", ""},
      {"pipewire", ""},
      {"hw:CARD=DAC,DEV=x", ""},
  };
  for (const auto& [alsa, portaudio] : cases) EXPECT_EQ(alsa_portaudio_name(alsa, root()), portaudio) << alsa;
  EXPECT_EQ(alsa_card_of("hw:CARD=DAC", root()), 1);
  EXPECT_EQ(alsa_card_of("USB DAC", root()), -1);
}

TEST_F(FakeProc, HoldersAreTheOpenPlaybackSubstreamsWithTheirProcess) {
  card(0, "Headphones");
  card(1, "DAC");
  substream(0, 0, 0, "closed\n");
  substream(1, 0, 0, kRunning);
  substream(1, 0, 1, "closed\n");
  write("asound/card1/pcm0c/sub0/status", kRunning);  // capture: not a playback holder
  write("812/comm", "pipewire\n");
  const auto holders = alsa_playback_holders(root());
  ASSERT_EQ(holders.size(), 1u);
  EXPECT_EQ(holders[0].card, 1);
  EXPECT_EQ(holders[0].card_id, "DAC");
  EXPECT_EQ(holders[0].device, 0);
  EXPECT_EQ(holders[0].subdevice, 0);
  EXPECT_EQ(holders[0].pid, 812);
  EXPECT_EQ(holders[0].command, "pipewire");
}

TEST_F(FakeProc, BusyMessageNamesTheProcessHoldingTheCard) {
  card(0, "Headphones");
  card(1, "DAC");
  substream(0, 0, 0, "state: RUNNING\nowner_pid   : 77\n");
  substream(1, 0, 0, kRunning);
  write("812/comm", "pipewire\n");
  write("77/comm", "aplay\n");
  const auto holders = alsa_playback_holders(root());
  const std::string msg = alsa_busy_message("hw:CARD=DAC,DEV=0", holders, root());
  EXPECT_NE(msg.find("the ALSA device 'hw:CARD=DAC,DEV=0' is busy"), std::string::npos) << msg;
  EXPECT_NE(msg.find("card 1 'DAC' device 0 is held open by pid 812 (pipewire)"), std::string::npos) << msg;
  EXPECT_EQ(msg.find("aplay"), std::string::npos) << "another card's holder named: " << msg;
  // A name that points at no card: every holder is listed.
  const std::string any = alsa_busy_message("USB DAC", holders, root());
  EXPECT_NE(any.find("pid 812 (pipewire)"), std::string::npos) << any;
  EXPECT_NE(any.find("pid 77 (aplay)"), std::string::npos) << any;
}

TEST_F(FakeProc, BusyMessageSaysWhenNobodyIsSeenHoldingIt) {
  card(1, "DAC");
  substream(1, 0, 0, "state: RUNNING\n");  // open, but no owner_pid line (older kernel)
  const auto holders = alsa_playback_holders(root());
  ASSERT_EQ(holders.size(), 1u);
  EXPECT_EQ(holders[0].pid, -1);
  EXPECT_NE(alsa_busy_message("hw:1", holders, root()).find("held open by a process the kernel does not name"),
            std::string::npos);
  const std::string none = alsa_busy_message("hw:1", {}, root());
  EXPECT_NE(none.find("/proc/asound shows no open playback on card 1"), std::string::npos) << none;
  EXPECT_NE(none.find("fuser -v /dev/snd/*"), std::string::npos) << none;
}

TEST_F(FakeProc, PortAudiosHwNamesGetTheirStableAlsaName) {
  card(0, "Headphones");
  card(1, "DAC");
  // PortAudio's name → the stable ALSA name ("" = no "(hw:N,M)", or card N has no id).
  const std::pair<const char*, const char*> cases[] = {
      {"USB Audio DAC: USB Audio (hw:1,0)", "hw:CARD=DAC,DEV=0"},
      {"bcm2835 Headphones: - (hw:0,0)", "hw:CARD=Headphones,DEV=0"},
      {"HDMI: 3 (hw:0,3)", "hw:CARD=Headphones,DEV=3"},
      {"Gone (hw:7,0)", ""},
      {"default", ""},
      {"pipewire", ""},
      {"odd (hw:1)", ""},
  };
  for (const auto& [portaudio, alsa] : cases) EXPECT_EQ(alsa_stable_name(portaudio, root()), alsa) << portaudio;
  // Round trip: the stable name finds the same PortAudio name again.
  EXPECT_EQ(alsa_portaudio_name(alsa_stable_name("USB Audio DAC: USB Audio (hw:1,0)", root()), root()), "(hw:1,0)");
}
