// stemctl's connection to stemd (see session.hpp).
#include "session.hpp"

#include <signal.h>

#include <cstdio>

namespace stemd::ctl {

std::atomic<bool> g_stop{false};

namespace {
void on_signal(int) { g_stop.store(true); }
}  // namespace

void install_signals() {
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;  // no SA_RESTART: poll() returns EINTR and the loop sees the flag
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

std::string seconds_text(double s) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", s);
  return buf;
}

std::string num(double v) { return seconds_text(v); }

void error_line(const std::string& text) { std::fprintf(stderr, "stemctl: %s\n", text.c_str()); }

OscMessage msg(std::string address, std::vector<OscArg> args) {
  return control::osc_message(std::move(address), std::move(args));
}

int Session::connect() {
  if (client_) return kExitOk;
  std::string error;
  bool gone = false;
  client_ = Client::open(opts_, error, gone);
  if (client_) return kExitOk;
  if (gone) {
    error_line("cannot connect to " + target_text() + ": " + error + " — is stemd running" +
               (opts_.tcp ? " with --osc-tcp-port" : "") + "? (--port/--host)");
    return kExitNoReply;
  }
  error_line(error);
  return error.rfind("cannot resolve", 0) == 0 ? kExitUsage : kExitFail;
}

std::string Session::target_text() const {
  const bool v6 = opts_.host.find(':') != std::string::npos && opts_.host.front() != '[';
  return (v6 ? "[" + opts_.host + "]" : opts_.host) + ":" + std::to_string(opts_.port) + (opts_.tcp ? " (tcp)" : "");
}

int Session::check(const Result& r) {
  switch (r.wait) {
    case Wait::kMessage:
      if (r.done()) return kExitOk;
      error_line(describe_failure(r.reply));
      return kExitFail;
    case Wait::kTimeout:
      if (client_ && !client_->stray_source().empty()) {
        error_line("no reply from " + target_text() + " within " + seconds_text(opts_.timeout_s) +
                   " s; answers came from " + client_->stray_source() +
                   " instead, and were ignored (another address of the daemon's machine? then --host that address)");
        return kExitNoReply;
      }
      error_line("no reply from " + target_text() + " within " + seconds_text(opts_.timeout_s) +
                 " s — is stemd running? (--port/--host)");
      return kExitNoReply;
    case Wait::kGone:
      error_line(r.error + " — is stemd running? (--port/--host)");
      return kExitNoReply;
    case Wait::kInterrupted:
      return kExitFail;
  }
  return kExitFail;
}

int Session::run(const OscMessage& m, const std::function<void(const OscMessage&)>& on_done) {
  if (int rc = connect(); rc != kExitOk) return rc;
  const Result r = client_->request(m);
  const int rc = check(r);
  if (rc == kExitOk && on_done) on_done(r.reply);
  return rc;
}

namespace {
// What one page costs stemctl to keep: its rows' strings and 16 bytes a value.
std::size_t page_bytes(const OscMessage& reply) {
  std::size_t n = 0;
  for (const OscArg& a : reply.args) n += 16 + a.s.size();
  return n;
}
}  // namespace

int Session::pages(const std::string& address, std::size_t fields_per_row, const PageTaker& take,
                   const std::vector<OscArg>& wide, std::size_t wide_fields) {
  if (int rc = connect(); rc != kExitOk) return rc;
  std::int64_t offset = 0;
  std::size_t kept = 0;
  bool widen = !wide.empty();
  for (int page = 0;; ++page) {
    std::vector<OscArg> args{OscArg::Int(offset)};
    if (widen) {
      args.push_back(OscArg::Int(0));  // count 0: as many as fit
      args.insert(args.end(), wide.begin(), wide.end());
    }
    Result r = client_->request(msg(address, args));
    if (widen && page == 0 && r.wait == Wait::kMessage && !r.done()) {  // an older daemon: narrow rows
      widen = false;
      r = client_->request(msg(address, {OscArg::Int(offset)}));
    }
    if (widen) fields_per_row = wide_fields;
    if (const int rc = check(r); rc != kExitOk) return rc;
    std::string error;
    if (!take(r.reply, fields_per_row, error)) {
      error_line(error);
      return kExitFail;
    }
    const std::int64_t next = next_page(r.reply, fields_per_row);
    if (next <= offset) return kExitOk;  // −1: the last page (and never a loop)
    // Whatever answers on the port (stemd, or anything a user points stemctl at) must not keep it
    // paging for ever: a page starts where the last one ended, and the table is at most what a
    // stemd can hold (outside pass 26, L2: "next = offset + 1" pages of long names took 3.1 GB in
    // 20 s). What arrived is printed; the exit status says it is not the whole table.
    const auto rows = static_cast<std::int64_t>(page_rows(r.reply));
    kept += page_bytes(r.reply);
    if (next != offset + rows) {
      error_line(address + ": the reply's next page (" + std::to_string(next) + ") is not where its rows end (" +
                 std::to_string(offset) + " + " + std::to_string(rows) + "): not a stemd's table, stopped there");
      return kExitFail;
    }
    if (next > kMaxTableRows || kept > kMaxTableBytes) {
      error_line(address + ": over " + std::to_string(next > kMaxTableRows ? kMaxTableRows : next) + " rows (" +
                 std::to_string(kept >> 20) + " MiB), more than a stemd holds: stopped there");
      return kExitFail;
    }
    offset = next;
  }
}

}  // namespace stemd::ctl
