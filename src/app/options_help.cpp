// stemd --help (within 100 columns, in groups) and --version (see options_internal.hpp).
#include "io/sound_file.hpp"
#include "options_internal.hpp"

#include "git_revision.hpp"  // generated at build time (cmake/git_revision.cmake)

#include <sstream>

#ifndef STEMD_VERSION
#define STEMD_VERSION "0.0.0"
#endif

namespace stemd::app::options_detail {

namespace {

// Columns (code points) of UTF-8 text.
std::size_t columns(const std::string& s) {
  std::size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80 ? 1 : 0;
  return n;
}

// --help within 100 columns: names in a 34-column left part, descriptions wrapped at word
// boundaries to the rest (CLI11 2.1 does not wrap).
constexpr std::size_t kHelpWidth = 100, kHelpNameColumn = 34;
std::string wrap(const std::string& text, std::size_t width) {
  std::string out, line;
  std::istringstream words(text);
  std::string w;
  while (words >> w) {
    if (!line.empty() && columns(line) + 1 + columns(w) > width) {
      out += line + "\n";
      line.clear();
    }
    line += (line.empty() ? "" : " ") + w;
  }
  return out + line;
}

class WrappingFormatter : public CLI::Formatter {
 public:
  WrappingFormatter() { column_width(kHelpNameColumn); }
  std::string make_option_desc(const CLI::Option* opt) const override {
    return wrap(opt->get_description(), kHelpWidth - kHelpNameColumn);
  }
  // "Options:" above the groups: help2man makes it the man page's OPTIONS section, with each
  // group a subsection.
  std::string make_usage(const CLI::App* app, std::string name) const override {
    return CLI::Formatter::make_usage(app, std::move(name)) + "\nOptions:\n";
  }
  std::string make_description(const CLI::App* app) const override {
    return wrap(app->get_description(), kHelpWidth) + "\n";
  }
  std::string make_footer(const CLI::App* app) const override {
    std::string out, para;
    std::istringstream in(app->get_footer());
    while (std::getline(in, para)) out += wrap(para, kHelpWidth) + "\n";
    return out;
  }
};

std::string indent(std::string text, const std::string& by) {
  for (std::size_t at = text.find('\n'); at != std::string::npos; at = text.find('\n', at + 1)) {
    text.insert(at + 1, by);
  }
  return text;
}

}  // namespace

// The --help groups (and config-file sections, kSections): every option belongs to one.
void assign_groups(CLI::App& app) {
  static const std::pair<const char*, std::vector<std::string>> kGroups[] = {
      {"Output",
       {"backend", "device", "sample-rate", "preset", "buffer-size", "list-devices", "on-device-loss", "render-to",
        "duration"}},
      {"Playback and sound",
       {"play", "loop", "volume", "limiter", "limiter-threshold-db", "master", "resample-quality", "crossfade-law",
        "tone-level-db", "tone-seconds", "shutdown-fade-ms", "script", "stretch-engine"}},
      {"Files and streaming",
       {"preload-limit-mb", "ring-ms", "ring-min-ms", "ring-max-ms", "head-ms", "loader-priority", "state-file",
        "restore-voices", "state-interval", "load-timeout"}},
      {"OSC and network",
       {"no-osc", "osc-port", "osc-bind", "osc-tcp-port", "allow", "media-root", "tcp-idle-timeout",
        "tcp-frame-timeout", "subscription-ttl", "cookie-exempt", "http-port", "http-bind", "http-host", "web-root",
        "http-max-clients", "http-max-clients-per-address", "http-max-listeners", "link"}},
      {"Limits and security",
       {"max-voices", "max-resampled-voices", "max-stretched-voices", "stretch-buses", "stretch-bus-share",
        "stretch-primes-per-callback", "max-sources", "max-memory-mb", "max-channels", "max-subscribers", "max-string",
        "max-tcp-clients", "max-tcp-clients-per-address"}},
      {"Service and logging",
       {"config", "check-config", "log-level", "watch", "health-interval", "mlock", "help", "version"}},
  };
  for (CLI::Option* opt : app.get_options()) {
    std::string group = "crowdstream compatibility";  // the old server's flags: everything else
    for (const auto& [name, keys] : kGroups) {
      for (const auto& k : keys) {
        if (opt->check_lname(k)) group = name;
      }
    }
    opt->group(group);
  }
}

std::shared_ptr<CLI::Formatter> help_formatter() { return std::make_shared<WrappingFormatter>(); }

}  // namespace stemd::app::options_detail

namespace stemd::app {
std::string build_version() { return std::string("stemd ") + STEMD_VERSION + " (git " + STEMD_GIT_REVISION + ")"; }
}  // namespace stemd::app

namespace stemd::app::options_detail {

std::string version_text() {
  std::string formats;
  for (const auto& f : io::sndfile_formats()) formats += (formats.empty() ? "" : ", ") + f;
  return build_version() + "\n" + io::sndfile_version() +
         "\nreads: " + indent(wrap(formats, kHelpWidth - 7), "       ");
}

}  // namespace stemd::app::options_detail
