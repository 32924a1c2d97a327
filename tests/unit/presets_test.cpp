// Issue 13 item 5: the platform presets have one definition, config/presets/NAME.conf. The
// values --preset NAME applies (compiled in from those files) are checked against each file as
// stemd reads it with --config, and the set of files against the set of presets.
#include "app/options.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <set>

namespace stemd::app {
namespace {

const std::string kPresetDir = std::string(STEMD_SOURCE_DIR) + "/config/presets";

int parse(std::vector<std::string> args, Options& o, std::string& error) {
  args.insert(args.begin(), "stemd");
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  return parse_options(static_cast<int>(argv.size()), argv.data(), o, &error);
}

TEST(Presets, EveryShippedFileIsAPresetAndEveryPresetAFile) {
  std::set<std::string> files, builtin;
  for (const auto& e : std::filesystem::directory_iterator(kPresetDir)) {
    if (e.path().extension() == ".conf") files.insert(e.path().stem().string());
  }
  for (const auto& p : builtin_presets()) builtin.insert(p.name);
  EXPECT_EQ(files, builtin);
  EXPECT_EQ(builtin.size(), 5u);  // pi4 pi5 desktop workstation live
}

TEST(Presets, DashPresetAppliesTheSameValuesAsTheShippedFile) {
  for (const auto& p : builtin_presets()) {
    SCOPED_TRACE(p.name);
    Options flag, file;
    std::string e;
    ASSERT_EQ(parse({"--config", "none", "--preset", p.name}, flag, e), -1) << e;
    ASSERT_EQ(parse({"--config", kPresetDir + "/" + p.name + ".conf"}, file, e), -1) << e;
    EXPECT_TRUE(file.buffer_size_given);  // the file sets buffer-size itself
    EXPECT_FALSE(flag.buffer_size_given);
    EXPECT_EQ(flag.buffer_size, p.buffer_size);
    EXPECT_EQ(file.buffer_size, p.buffer_size);
    EXPECT_EQ(flag.max_memory_mb, p.max_memory_mb);
    EXPECT_EQ(file.max_memory_mb, p.max_memory_mb);
    EXPECT_EQ(flag.preset_reason, "preset '" + p.name + "' (" + p.what + ", --preset)");
    // The stretch settings a preset may carry (the defaults where it says nothing).
    const std::string engine = p.stretch_engine.empty() ? "finer" : p.stretch_engine;
    EXPECT_EQ(flag.stretch_engine, engine);
    EXPECT_EQ(file.stretch_engine, engine);
    EXPECT_EQ(flag.stretch_bus_share, p.stretch_bus_share == 1);
    EXPECT_EQ(file.stretch_bus_share, p.stretch_bus_share == 1);
    // The file's first line names the preset and what it is for (the log's reason).
    std::ifstream in(kPresetDir + "/" + p.name + ".conf");
    std::string first;
    std::getline(in, first);
    EXPECT_EQ(first.rfind("# stemd preset \"" + p.name + "\" (--preset " + p.name + "): " + p.what + ":", 0), 0u)
        << first;
  }
}

// The pi4 preset carries stretch settings: R2 (faster) and one stretch bus for both decks; the
// others leave them at the defaults (finer, a bus per deck).
TEST(Presets, Pi4CarriesTheStretchEngineAndTheSharedBus) {
  std::map<std::string, PresetValues> by_name;
  for (const auto& p : builtin_presets()) by_name[p.name] = p;
  EXPECT_EQ(by_name["pi4"].stretch_engine, "faster");
  EXPECT_EQ(by_name["pi4"].stretch_bus_share, 1);
  for (const char* other : {"pi5", "desktop", "workstation", "live"}) {
    EXPECT_EQ(by_name[other].stretch_engine, "") << other;
    EXPECT_EQ(by_name[other].stretch_bus_share, -1) << other;
  }
  Options o;
  std::string e;
  ASSERT_EQ(parse({"--config", "none", "--preset", "pi4"}, o, e), -1) << e;
  EXPECT_EQ(o.stretch_engine, "faster");
  EXPECT_TRUE(o.stretch_bus_share);
  Options d;
  ASSERT_EQ(parse({"--config", "none", "--preset", "desktop"}, d, e), -1) << e;
  EXPECT_EQ(d.stretch_engine, "finer");
  EXPECT_FALSE(d.stretch_bus_share);
}

// A value given explicitly wins over the preset's, on the command line or in the config file — as
// --buffer-size and --max-memory-mb do.
TEST(Presets, AnExplicitStretchSettingWinsOverThePresets) {
  std::string e;
  Options flags;
  ASSERT_EQ(parse({"--config", "none", "--preset", "pi4", "--stretch-engine", "finer", "--stretch-bus-share=false",
                   "--buffer-size", "512"},
                  flags, e),
            -1)
      << e;
  EXPECT_EQ(flags.stretch_engine, "finer");
  EXPECT_FALSE(flags.stretch_bus_share);
  EXPECT_EQ(flags.buffer_size, 512u);
  EXPECT_EQ(flags.max_memory_mb, 256u) << "what was not given still comes from the preset";

  const std::string conf = ::testing::TempDir() + "/stemd_presets_test.conf";
  {
    std::ofstream out(conf);
    out << "preset = \"pi4\"\nstretch-engine = \"finer\"\nstretch-bus-share = false\n";
  }
  Options file;
  ASSERT_EQ(parse({"--config", conf}, file, e), -1) << e;
  EXPECT_EQ(file.stretch_engine, "finer");
  EXPECT_FALSE(file.stretch_bus_share);
  EXPECT_EQ(file.buffer_size, 1024u) << "the preset's buffer size";
  std::filesystem::remove(conf);
}

}  // namespace
}  // namespace stemd::app
