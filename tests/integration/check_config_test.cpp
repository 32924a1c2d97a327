// The config search as documented: the man page's and the README's lists are the order the binary
// searches in (a new-user pass: the man page called /etc/stemd/stemd.conf the last place, the
// binary also searched PREFIX/etc/stemd/stemd.conf).
#include "common/fixtures.hpp"
#include "common/run_process.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include <unistd.h>

namespace stemd::test {
namespace {

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// The items of a numbered list of paths in a document: the first path of each item, in order.
std::vector<std::string> listed(const std::string& text, const std::regex& item) {
  std::vector<std::string> out;
  for (std::sregex_iterator it(text.begin(), text.end(), item), end; it != end; ++it) out.push_back((*it)[1]);
  return out;
}

// The search order the binary uses (its "looked for …" with nothing found, run as PREFIX/bin/stemd
// with XDG_CONFIG_HOME set) is the order the man page and the README list, and every place is in
// the man page's FILES.
TEST(CheckConfig, TheDocumentedSearchOrderIsTheBinarys) {
  if (::access("/etc/stemd/stemd.conf", F_OK) == 0) GTEST_SKIP() << "this machine has /etc/stemd/stemd.conf";
  TempDir dir;
  std::filesystem::create_directories(dir.file("pfx/bin"));
  const std::string exe = dir.file("pfx/bin/stemd");
  std::filesystem::copy_file(STEMD_BINARY, exe);
  std::filesystem::permissions(exe, std::filesystem::perms::owner_all);
  const auto r = run_process("env -u STEMD_NO_CONFIG_SEARCH XDG_CONFIG_HOME=" + dir.file("xdg") + " " + exe +
                             " --backend null --no-osc --duration 0.05");
  std::smatch m;
  ASSERT_TRUE(std::regex_search(r.output, m, std::regex(R"(no config file \(looked for ([^)]*)\))"))) << r.output;
  std::vector<std::string> searched;
  std::istringstream in(m.str(1));
  for (std::string p; std::getline(in, p, ',');) {
    p = p.substr(p.find_first_not_of(' '));
    if (p.rfind(dir.file("xdg"), 0) == 0) p = "$XDG_CONFIG_HOME" + p.substr(dir.file("xdg").size());
    if (p.rfind(dir.file("pfx"), 0) == 0) p = "PREFIX" + p.substr(dir.file("pfx").size());
    searched.push_back(p);
  }
  ASSERT_EQ(searched.size(), 3u) << r.output;

  const std::string man = read_text(std::string(STEMD_SOURCE_DIR) + "/man/stemd.h2m");
  const auto conf_at = man.find("[CONFIGURATION FILE]");
  const std::string conf_section = man.substr(conf_at, man.find("\n[", conf_at + 1) - conf_at);
  EXPECT_EQ(listed(conf_section, std::regex(R"(\n\.IP \d+\. \d+\n\\fI([^\\]+)\\fR)")), searched) << conf_section;
  const std::string readme = read_text(std::string(STEMD_SOURCE_DIR) + "/README.md");
  const auto where = readme.find("**Where stemd looks.**");
  ASSERT_NE(where, std::string::npos);
  const std::string looks = readme.substr(where, readme.find("The start-up log says", where) - where);
  EXPECT_EQ(listed(looks, std::regex(R"(\n\d\. `([^`]+)`)")), searched) << looks;

  const auto files_at = man.find("[FILES]");
  const std::string files = man.substr(files_at, man.find("\n[", files_at + 1) - files_at);
  for (std::string p : searched) {
    if (p.rfind("$XDG_CONFIG_HOME", 0) == 0) p = "~/.config" + p.substr(16);
    EXPECT_NE(files.find("\n.I " + p + "\n"), std::string::npos) << p << " is not in FILES: " << files;
  }
  EXPECT_EQ(files.find("the last place"), std::string::npos) << files;
}

}  // namespace
}  // namespace stemd::test
