// The config file's reader (app/config_reader.hpp) and parse_options over a file: a list over
// several lines as TOML writes it (new-user pass 23: `play = [` over lines failed, and the check
// showed later lines of the file glued into a "path"), an unclosed list or string one problem at
// its own line.
#include "app/config_reader.hpp"
#include "app/options.hpp"
#include "common/fixtures.hpp"

#include <gtest/gtest.h>

#include <fstream>

namespace stemd::app {
namespace {

using options_detail::ConfigEntry;
using options_detail::ConfigTextError;
using options_detail::read_config_entries;

std::vector<ConfigEntry> read_ok(const std::string& text, const std::set<int>& skip = {}) {
  std::vector<ConfigEntry> out;
  ConfigTextError e;
  EXPECT_TRUE(read_config_entries(text, skip, out, e)) << e.line << ": " << e.what;
  return out;
}

ConfigTextError read_bad(const std::string& text, const std::set<int>& skip = {}) {
  std::vector<ConfigEntry> out;
  ConfigTextError e;
  EXPECT_FALSE(read_config_entries(text, skip, out, e)) << text;
  return e;
}

TEST(ConfigReader, AListSpansLinesWithCommentsAndATrailingComma) {
  const auto entries = read_ok(
      "backend = \"null\"\n"
      "play = [\n"
      "  \"/m/a48.wav\",   # the first stem\n"
      "\n"
      "  \"/m/b#44.wav\", '/m/c.wav',\n"
      "]  # done\n"
      "loop = true\n");
  ASSERT_EQ(entries.size(), 3u);
  const ConfigEntry& play = entries[1];
  EXPECT_EQ(play.key, "play");
  EXPECT_EQ(play.line, 2);
  EXPECT_TRUE(play.list);
  ASSERT_EQ(play.elements.size(), 3u);
  EXPECT_EQ(play.elements[0].line, 3);
  EXPECT_EQ(play.elements[0].text, "\"/m/a48.wav\"");
  EXPECT_EQ(play.elements[1].line, 5);  // a '#' inside quotes is not a comment
  EXPECT_EQ(play.elements[1].text, "\"/m/b#44.wav\"");
  EXPECT_EQ(play.elements[2].line, 5);
  EXPECT_EQ(options_detail::unquoted(play.elements[2].text), "/m/c.wav");
  EXPECT_EQ(play.value, "[\"/m/a48.wav\", \"/m/b#44.wav\", '/m/c.wav']");
  EXPECT_EQ(entries[2].key, "loop");
  EXPECT_EQ(entries[2].line, 7);
  EXPECT_EQ(entries[2].value, "true");
}

// ml.conf of the pass: the list's second line closes it; nothing after it belongs to the list.
TEST(ConfigReader, AListClosedOnItsSecondLineLeavesTheNextKeyAlone) {
  const auto entries = read_ok("play = [\"/m/a.wav\",\n        \"/m/b.wav\"]\nloop = true\nvolume = 0.8 # quiet\n");
  ASSERT_EQ(entries.size(), 3u);
  EXPECT_EQ(entries[0].value, "[\"/m/a.wav\", \"/m/b.wav\"]");
  EXPECT_EQ(entries[1].value, "true");
  EXPECT_EQ(entries[2].value, "0.8");
}

// Not closed: one problem at the line the list opens on, naming where the reader gave up — and
// no other line's text taken as an element. --check-config reads on with that line skipped: the
// list's lines are left out with it, the settings after it are read.
TEST(ConfigReader, AnUnclosedListIsOneProblemAtTheLineItOpens) {
  const std::string text =
      "backend = \"null\"\n"
      "play = [\"/m/a.wav\", \"/m/b.wav\",\n"
      "        \"/m/c.wav\", \"/m/d.wav\",\n"
      "loop = true\n"
      "volume = 0.8\n";
  const auto e = read_bad(text);
  EXPECT_EQ(e.line, 2);
  EXPECT_NE(e.what.find("key 'play': the list opened here is not closed (no ']' before line 4)"), std::string::npos)
      << e.what;
  EXPECT_EQ(e.what.find("loop"), std::string::npos) << e.what;
  const auto rest = read_ok(text, {2});
  ASSERT_EQ(rest.size(), 3u);
  EXPECT_EQ(rest[1].key, "loop");
  EXPECT_EQ(rest[2].key, "volume");

  const auto at_end = read_bad("play = [\n  \"/m/a.wav\",\n  \"/m/b.wav\"\n");
  EXPECT_EQ(at_end.line, 1);
  EXPECT_NE(at_end.what.find("not closed (no ']' before the end of the file)"), std::string::npos) << at_end.what;
  // A section after it ends it too.
  EXPECT_EQ(read_bad("play = [\"/m/a.wav\",\n[osc]\nport = 1\n").line, 1);
}

// A quoted value ends on its line: one problem there, in a list at the element's line.
TEST(ConfigReader, AQuotedStringNotClosedOnItsLineIsOneProblemThere) {
  auto e = read_bad("backend = \"null\"\nstate-file = \"/var/lib/stemd/state\nloop = true\n");
  EXPECT_EQ(e.line, 2);
  EXPECT_NE(e.what.find("key 'state-file': the quoted value opened here (\"/var/lib/stemd/state) is not closed on "
                        "this line"),
            std::string::npos)
      << e.what;
  e = read_bad("play = [\n  \"/m/a.wav\",\n  \"/m/b.wav,\n  \"/m/c.wav\",\n]\n");
  EXPECT_EQ(e.line, 3);
  EXPECT_NE(e.what.find("(\"/m/b.wav,) is not closed on this line"), std::string::npos) << e.what;
  // Skipped (reported already), the list is left out whole and the reading goes on after it.
  const auto rest = read_ok("play = [\n  \"/m/a.wav\",\n  \"/m/b.wav,\n  \"/m/c.wav\",\n]\nloop = true\n", {3});
  ASSERT_EQ(rest.size(), 1u);
  EXPECT_EQ(rest[0].key, "loop");
  e = read_bad("script = \"\"\"\nline\n\"\"\"\n");
  EXPECT_EQ(e.line, 1);
  EXPECT_NE(e.what.find("multi-line strings (\"\"\") are not read"), std::string::npos) << e.what;
}

// Each element's problem at the element's line.
TEST(ConfigReader, AnElementsProblemIsAtItsLine) {
  auto e = read_bad("play = [\n  \"/m/a.wav\",\n  \"/m/b.wav\" \"/m/c.wav\",\n]\n");
  EXPECT_EQ(e.line, 3);
  EXPECT_NE(e.what.find("key 'play': ',' or ']' expected after \"/m/b.wav\", not '\"/m/c.wav\",'"), std::string::npos)
      << e.what;
  e = read_bad("levels = [1, 1,\n , 0.5]\n");
  EXPECT_EQ(e.line, 2);
  EXPECT_NE(e.what.find("a ',' with no element before it"), std::string::npos) << e.what;
  e = read_bad("play = [\"/m/a.wav\"] \"/m/b.wav\"\n");
  EXPECT_EQ(e.line, 1);
  EXPECT_NE(e.what.find("after the list's ']'"), std::string::npos) << e.what;
  e = read_bad("loop = true\n\"/m/b.wav\"]\n");
  EXPECT_EQ(e.line, 2);
  EXPECT_NE(e.what.find("is not a 'key = value' line"), std::string::npos) << e.what;
}

int parse_with(const std::string& conf, Options& o, std::string& error) {
  std::vector<std::string> args{"stemd", "--config", conf};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  return parse_options(static_cast<int>(argv.size()), argv.data(), o, &error);
}

// What the options get from lists over lines (play, levels, ab), in sections too, as a start and
// a SIGHUP reload read them (both are parse_options).
TEST(ConfigReader, ParseOptionsTakesListsOverSeveralLines) {
  test::TempDir dir;
  const std::string conf = dir.file("stemd.conf");
  std::ofstream(conf) << "backend = \"null\"\n"
                         "play = [\"/m/stem1.wav\", \"/m/stem2.wav\",\n"
                         "        \"/m/stem #3.wav\",  # a '#' in a name\n"
                         "        \"/m/stem4.wav\",\n"
                         "]\n"
                         "loop = true\n"
                         "levels = [\n  1.0,\n  0.5,\n  0.25, 0.0\n]\n"
                         "volume = 0.8\n"
                         "ab = [0.5,\n      0.75]\n"
                         "[osc]\n"
                         "port = 47901\n"
                         "allow = \"127.0.0.1, 10.0.0.0/8\" # one string, commas inside\n";
  Options o;
  std::string e;
  ASSERT_EQ(parse_with(conf, o, e), -1) << e;
  EXPECT_EQ(o.play, (std::vector<std::string>{"/m/stem1.wav", "/m/stem2.wav", "/m/stem #3.wav", "/m/stem4.wav"}));
  EXPECT_TRUE(o.loop);
  EXPECT_EQ(o.levels, (std::vector<float>{1.0f, 0.5f, 0.25f, 0.0f}));
  EXPECT_FLOAT_EQ(o.volume, 0.8f);
  EXPECT_EQ(o.osc_port, 47901);
  EXPECT_EQ(o.allow, "127.0.0.1, 10.0.0.0/8");
  EXPECT_EQ(o.ab, (std::vector<float>{0.5f, 0.75f}));
  EXPECT_EQ(o.config_lines.at("play"), 2);
  EXPECT_EQ(o.config_lines.at("levels"), 7);
  EXPECT_EQ(o.config_lines.at("volume"), 12);
  EXPECT_EQ(o.config_lines.at("ab"), 13);
  EXPECT_EQ(o.config_lines.at("osc-port"), 16);

  // Unclosed: the error names the line the list opens on, and no text of the lines after it.
  std::ofstream(conf)
      << "backend = \"null\"\nplay = [\"/m/a.wav\",\n        \"/m/b.wav\",\nloop = true\nvolume = 0.8\n";
  Options bad;
  EXPECT_EQ(parse_with(conf, bad, e), 2);
  EXPECT_EQ(e, conf +
                   ":2: key 'play': the list opened here is not closed (no ']' before line 4); a list may span "
                   "lines, its elements separated by commas, up to its ']'");
  EXPECT_TRUE(bad.play.empty());
}

}  // namespace
}  // namespace stemd::app
