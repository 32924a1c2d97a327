// stemctl's connection to stemd: one request and its reply, paged tables, the exit codes and
// the message helpers every command uses. [stemctl's one thread]
#pragma once

#include "client.hpp"
#include "format.hpp"

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace stemd::ctl {

constexpr int kExitOk = 0;
constexpr int kExitFail = 1;
constexpr int kExitUsage = 2;
constexpr int kExitNoReply = 3;

// Set by SIGINT/SIGTERM once install_signals() ran (watch, events).
extern std::atomic<bool> g_stop;
void install_signals();

std::string seconds_text(double s);        // "%g"
std::string num(double v);                 // the same, for any number
void error_line(const std::string& text);  // "stemctl: TEXT" on stderr
OscMessage msg(std::string address, std::vector<OscArg> args = {});

class Session {
 public:
  explicit Session(ClientOptions o, bool quiet) : opts_(std::move(o)), quiet_(quiet) {}

  // Opens the connection; an exit code other than kExitOk when that failed (message printed).
  int connect();
  Client& client() { return *client_; }
  std::string target_text() const;
  // The exit code for a request that got no /done (message printed), or kExitOk.
  int check(const Result& r);
  // Sends `m`, waits for the reply; on /done calls `on_done` with it.
  int run(const OscMessage& m, const std::function<void(const OscMessage&)>& on_done = nullptr);
  // A paged table (/stemd/list, /stemd/voices): asks for page after page (offset = the previous
  // reply's next) until the last, handing each reply to `take` with its fields per row. A daemon
  // that does not page answers everything at once (next −1). `wide`, when given, are arguments
  // after offset and count that ask for wider rows of `wide_fields` each (/stemd/voices' mix): a
  // daemon older than them refuses the first page, which is then asked for without them.
  using PageTaker = std::function<bool(const OscMessage&, std::size_t fields_per_row, std::string&)>;
  // A table stops (kExitFail, what arrived kept) when a page does not start where the last ended
  // or past kMaxTableRows rows (--max-sources' most) or kMaxTableBytes of replies.
  static constexpr std::int64_t kMaxTableRows = 1'000'000;
  static constexpr std::size_t kMaxTableBytes = std::size_t{256} << 20;
  int pages(const std::string& address, std::size_t fields_per_row, const PageTaker& take,
            const std::vector<OscArg>& wide = {}, std::size_t wide_fields = 0);
  // Prints `text` unless --quiet.
  void say(const std::string& text) const {
    if (!quiet_) std::printf("%s\n", text.c_str());
  }
  const ClientOptions& opts() const { return opts_; }

 private:
  ClientOptions opts_;
  bool quiet_ = false;
  std::unique_ptr<Client> client_;
};

}  // namespace stemd::ctl
