// Issue 13 item 5: the platform presets have one definition, config/presets/NAME.conf. The
// values --preset NAME applies (compiled in from those files) are checked against each file as
// stemd reads it with --config, and the set of files against the set of presets.
#include "app/options.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
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
    // The file's first line names the preset and what it is for (the log's reason).
    std::ifstream in(kPresetDir + "/" + p.name + ".conf");
    std::string first;
    std::getline(in, first);
    EXPECT_EQ(first.rfind("# stemd preset \"" + p.name + "\" (--preset " + p.name + "): " + p.what + ":", 0), 0u)
        << first;
  }
}

}  // namespace
}  // namespace stemd::app
