// The state file's writes [main] (state.hpp): what poll() and capture_now() queued, written by
// write_file_atomic — in the daemon in a helper process (state_io.hpp), one at a time, looked at
// without waiting: a file system that stops answering holds the helper, never the main loop
// (the systemd watchdog's pings, the stop signals) nor the exit.
#include "state.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <thread>

namespace stemd::app {

bool StateKeeper::flush() { return flush_within(true); }

// The write budget (Config::budget_bytes_per_min), a token bucket of a minute's bytes: a write
// may start while what the last one took has come back (or a minute's worth, for a state larger
// than that); it may leave the bucket in debt, paid back before the next.
bool StateKeeper::budget_allows(std::chrono::steady_clock::time_point now) {
  const double per_min = static_cast<double>(cfg_.budget_bytes_per_min);
  if (!tokens_started_) {
    tokens_started_ = true;
    tokens_ = per_min;
  } else {
    const double dt = std::chrono::duration<double>(now - tokens_at_).count();
    tokens_ = std::min(per_min, tokens_ + dt * per_min / 60.0);
  }
  tokens_at_ = now;
  if (tokens_ >= per_min) held_logged_ = false;  // a full minute's worth: the next hold is said again
  const double need = std::min(per_min, static_cast<double>(last_bytes_));
  if (tokens_ >= need) return true;
  counters_->held.fetch_add(1, std::memory_order_relaxed);
  if (!held_logged_) {
    held_logged_ = true;
    spdlog::warn(
        "state file {}: its writes are held to {:.1f} MB a minute (a state of {:.1f} MB) — the newest state is "
        "written in about {:.0f} s, and every change until then waits for that write (said once)",
        cfg_.path, per_min / 1e6, static_cast<double>(last_bytes_) / 1e6, (need - tokens_) * 60.0 / per_min);
  }
  return false;
}

void StateKeeper::spend(std::size_t bytes) {
  last_bytes_ = bytes;
  tokens_ -= static_cast<double>(bytes);
}

bool StateKeeper::flush_within(bool budget) {
  if (job_ && !settle_job()) return false;  // the newest state waits behind the write under way
  if (unread_) return false;                // nothing is queued (queue()); never written
  std::shared_ptr<const DaemonState> snapshot;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!pending_ && !have_retry_) return true;
  }
  if (budget && !budget_allows(std::chrono::steady_clock::now())) return false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    snapshot = std::move(pending_);
    pending_.reset();
  }
  std::string text;
  if (snapshot) {  // made here [main], not on the control thread that took the snapshot
    if (cfg_.on_format) cfg_.on_format();
    text = format_state(*snapshot, cfg_.writer);
    snapshot.reset();
  } else {
    text = std::move(retry_text_);
  }
  have_retry_ = false;
  retry_text_.clear();
  spend(text.size());
  std::string error;
  if (!cfg_.helper.empty()) {
    std::vector<std::string> argv = cfg_.helper;
    argv.insert(argv.end(), {"write", cfg_.path});
    job_ = FileJob::start(argv, text, error);
    if (!job_ && !helper_failed_) {  // a sandbox that refuses it: written here, as before, rather than never
      spdlog::warn("state file {}: {} — writing it from the main loop instead", cfg_.path, error);
      helper_failed_ = true;
    }
  }
  if (!job_) {
    // A symlinked state file (kept on another partition) stays a link: its target is written.
    const bool ok = write_file_atomic(cfg_.path, text, error,
                                      AtomicWrite{.follow_symlink = true, .remove_stale_temporaries = true});
    written(ok, std::move(text), error);
    return ok;
  }
  job_reads_ = false;
  stuck_logged_ = false;
  job_text_ = std::move(text);
  settle_job();
  return false;  // the next flush (or save()) looks at how it went
}

// The helper's write (or the start's read, given up on) has returned, or not yet (false).
bool StateKeeper::settle_job() {
  const FileJob::Status st = job_->poll();
  if (st == FileJob::Status::kRunning) {
    if (!stuck_logged_ && job_->seconds() > cfg_.io_timeout_s) {
      stuck_logged_ = true;
      save_failing_->store(true);
      spdlog::warn(
          "state file {}: {} has not answered after {:g} s (its file system hung?) — the state is not being saved; "
          "stemd goes on and writes the newest state once it answers",
          cfg_.path, job_reads_ ? "its read" : "its write", cfg_.io_timeout_s);
    }
    return false;
  }
  const std::unique_ptr<FileJob> job = std::move(job_);
  if (job_reads_) {  // the start gave up on it (unread_): this run still does not write the file
    spdlog::warn(
        "state file {} answers again ({}) — it was not restored in this run and is not written by it, so what it "
        "holds is kept: restart stemd to restore it",
        cfg_.path, st == FileJob::Status::kOk ? "read" : job->output());
    return true;
  }
  if (stuck_logged_)
    spdlog::info("state file {}: the write that hung has returned after {:.0f} s", cfg_.path, job->seconds());
  written(st == FileJob::Status::kOk, std::move(job_text_), job->output());
  return true;
}

void StateKeeper::written(bool ok, std::string text, const std::string& error) {
  save_failing_->store(!ok);
  if (!ok) {
    ++failures_;
    last_failure_ = error;
    if (error != last_error_) {
      spdlog::warn("state file: {} — {}; retrying every second", error,
                   file_there_ ? "the previous state file is unchanged" : "nothing is saved until it can be written");
      last_error_ = error;
    }
    std::lock_guard<std::mutex> lock(mu_);
    if (!pending_) {  // nothing newer queued meanwhile: retry this one
      retry_text_ = std::move(text);
      have_retry_ = true;
    }
    return;
  }
  counters_->writes.fetch_add(1, std::memory_order_relaxed);
  counters_->bytes.store(text.size(), std::memory_order_relaxed);
  if (!last_error_.empty()) {
    spdlog::info("state file {} written again", cfg_.path);
    last_error_.clear();
  }
  file_there_ = true;
  spdlog::debug("state file {} written ({} bytes)", cfg_.path, text.size());
}

std::string StateKeeper::trouble() const {
  if (unread_) return "state file not read at start (not written)";
  if (job_ && job_->seconds() > cfg_.io_timeout_s) {
    return fmt::format("state file not saved (its write has not answered for {:.0f} s)", job_->seconds());
  }
  return last_error_.empty() ? std::string() : "state file not saved (its write failed)";
}

bool StateKeeper::save(double max_wait_s) {
  if (unread_) {
    spdlog::warn("state file {}: not saved — it could not be read at start, so it keeps what it held then", cfg_.path);
    return false;
  }
  const auto until = std::chrono::steady_clock::now() + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                                                            std::chrono::duration<double>(max_wait_s));
  const std::uint64_t failed_before = failures_;
  for (;;) {
    if (flush_within(false)) return true;  // not held to the write budget: the last state counts
    // A write that failed (a missing directory, a full disk): said with its own reason. Before, the
    // retries went on until the deadline and the warning blamed a file system that does not answer,
    // "has not finished after 0.0 s" (outside pass 26, user L5).
    if (failures_ != failed_before) {
      spdlog::warn("state file {}: the state was NOT saved — {}; the file keeps its previous state", cfg_.path,
                   last_failure_);
      return false;
    }
    if (!job_) return false;  // failed before this save: flush() said why
    if (std::chrono::steady_clock::now() >= until) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  spdlog::warn(
      "state file {}: the state was NOT saved — its write has not finished after {:.1f} s (its file system does not "
      "answer?); the file keeps its previous state",
      cfg_.path, job_->seconds());
  return false;
}

}  // namespace stemd::app
