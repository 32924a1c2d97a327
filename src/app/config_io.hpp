// The config file's read through the state file's helper process (state_io.hpp), given up on
// after a deadline: a config file on a file system that stops answering (a home directory on NFS
// under the user unit, sshfs, a USB bridge that hung) holds the helper, not stemd. [main]
//
// Before, the search, the open and the read ran on the main thread: a start hung with no log
// line, `--check-config` (the unit's ExecStartPre) hung in state D, and a SIGHUP held the main
// thread in the kernel so SIGTERM was never acted on (attack pass 24, F4). Now:
//   - at start and in --check-config, parse_options waits for the helper (read_config) up to
//     --load-timeout AS GIVEN ON THE COMMAND LINE, else 10 s — one set in the file itself cannot
//     apply to reading it — while SIGTERM and SIGINT still stop the wait;
//   - at SIGHUP the main loop starts a ConfigJob and looks at it on each pass, so it keeps
//     answering signals; the reload runs once the text is there (parse_options with `read` set).
//
// The helper is `stemd --internal-state-io read-config MAX given|search PATH…`. It writes, as it
// goes, each PATH it looks at followed by a NUL — so while it waits, the last one names the file
// whose file system does not answer —, then a NUL, then the file's text (exit 0) or the reason
// it could not be read (exit 1); none found by the search, or the given file missing: exit 3.
// Without a helper (unit tests) the same read runs on the calling thread, with no time-out.
#pragma once

#include "state_io.hpp"

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace stemd::app {

inline constexpr std::size_t kMaxConfigBytes = 1u << 20;

// Where a parse of argv finds its config file — decided without touching a file system.
struct ConfigPlan {
  std::vector<std::string> candidates;  // empty: no file is read (no_file says why)
  bool search = false;                  // no --config: the first of candidates that is there
  bool none_flag = false;               // --config none (CLI11 must not look for a file "none")
  std::string no_file;                  // "--config none", "STEMD_NO_CONFIG_SEARCH is set"
  std::string what = "config file";     // what its errors begin with ("--bpm-config": read_start_file)
  std::size_t max_bytes = kMaxConfigBytes;
  // Not empty: candidates[0] is a page directory, read as read_page_dir says (these its types).
  std::vector<std::string> page_types;
};
ConfigPlan config_plan(int argc, char** argv);  // options_config.cpp

// The outcome of a read.
struct ConfigRead {
  enum class Kind { kOk, kNone, kError, kTimedOut, kStopped };
  Kind kind = Kind::kNone;  // kNone: the search found no file
  std::string path;         // the file read; or the one whose file system did not answer
  std::string text;         // kOk: its bytes
  std::string error;        // otherwise a sentence beginning "config file PATH: "
};

// How parse_options reads the config file.
struct ConfigInput {
  // {"/proc/self/exe", kStateIoFlag} in stemd (self_helper()); empty: on the calling thread, no
  // time-out (unit tests).
  std::vector<std::string> helper;
  double timeout_s = 10.0;
  // Said after "did not answer within N s" (where the deadline comes from).
  std::string deadline_note = "--load-timeout";
  // Called between looks (20 ms): false stops the wait (a stop signal), the read then kStopped.
  std::function<bool(int ms)> wait_ms;
  // The outcome, once read: kept for the next parse of the same argv (--check-config's passes);
  // given beforehand (a SIGHUP's, read by a ConfigJob), used as it is.
  std::optional<ConfigRead> read;
};

std::vector<std::string> self_helper();  // {"/proc/self/exe", kStateIoFlag}
// --load-timeout as given on the command line (the last, when given twice), else 10 s — also for
// a value the parse will refuse (its own error is reported then).
double command_line_load_timeout(int argc, char** argv);

// A read in its helper process, looked at without waiting (SIGHUP).
class ConfigJob {
 public:
  // Null with `error` when the helper could not be started (plan.candidates not empty).
  static std::unique_ptr<ConfigJob> start(const std::vector<std::string>& helper, const ConfigPlan& plan,
                                          std::string& error);
  // The outcome once the helper has exited; nullopt while it runs.
  std::optional<ConfigRead> poll();
  // Waits until `timeout_s` after its start, or until `wait_ms` says stop (`stopped` set).
  void wait(double timeout_s, const std::function<bool(int ms)>& wait_ms, bool& stopped) {
    job_->wait(timeout_s, wait_ms, &stopped);
  }
  // Gives up on it (SIGKILL: it dies when its system call returns — a FUSE request already sent
  // never returns until the file system answers): kTimedOut naming the file it waited on.
  // poll() then says when the process is gone (its outcome is to be ignored).
  ConfigRead give_up(double timeout_s, const std::string& deadline_note);
  // The file it is looking at now (the last it named), else the first candidate.
  std::string waiting_on() const;
  double seconds() const { return job_->seconds(); }

 private:
  ConfigJob() = default;
  std::unique_ptr<FileJob> job_;
  ConfigPlan plan_;
};

// At start and in --check-config: the helper, --load-timeout from the command line (else 10 s),
// and a wait that SIGTERM or SIGINT ends (when blocked: a new image after a device hand-over
// inherits the daemon's mask; else their default action ends the process at once) — `stop_signal`
// then says which, for die_of().
ConfigInput start_config_input(int argc, char** argv, int& stop_signal);
// Ends the process by `sig`, at its default action (as if it had never been blocked).
[[noreturn]] void die_of(int sig);

// Reads plan's file as `in` says (its helper, deadline and wait) and returns the outcome. Not for
// an empty plan.
ConfigRead read_config(const ConfigPlan& plan, const ConfigInput& in);

// Another file a start (or --check-config) reads — --bpm-config, --script — read as the config
// file is: through the helper, given up on after in.timeout_s, a stop signal ending the wait
// (in.wait_ms); on the calling thread when in.helper is empty. Before, they were read on the main
// thread with no deadline: a share that stopped answering held the start in the kernel, SIGTERM
// ignored, and --check-config hung on --bpm-config (outside pass 25, N2). Errors begin with `what`.
ConfigRead read_start_file(const std::string& path, const std::string& what, std::size_t max_bytes,
                           const ConfigInput& in);

// The web monitor's page (--web-root DIR, or the installed one), read as the config file is —
// before, the web server read it on the main thread at start: a --web-root on a share that
// stopped answering held the start in the kernel with SIGTERM ignored (outside pass 25, N2).
// DIR/index.html must be a regular file; then every regular file of DIR (not below it) whose
// name ends in one of `types`, at most max_bytes in all. A kOk read's text holds them: take them
// with split_page. Errors begin with `what` (e.g. "--web-root DIR: no index.html there").
ConfigRead read_page_dir(const std::string& dir, const std::string& what, std::size_t max_bytes,
                         const std::vector<std::string>& types, const ConfigInput& in);
// A kOk read_page_dir's files (name, bytes); false when the text is not one.
bool split_page(const std::string& text, std::vector<std::pair<std::string, std::string>>& files);

// The helper's side (state_io_main, "read-config" and "read-page"): argv after the mode.
int read_config_main(int argc, char** argv);
int read_page_main(int argc, char** argv);

}  // namespace stemd::app
