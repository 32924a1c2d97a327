// The config file's read through the helper process (config_io.hpp).
#include "config_io.hpp"

#include "safe_file.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include <pthread.h>

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

namespace stemd::app {

namespace {

// The read itself, in the helper or (no helper) on the calling thread. Each path is named to
// `looking` before it is looked at: the search takes the first that is there — or there but not
// readable (a link to nothing, a directory on the way that may not be searched), so that reading
// says what is wrong with the file meant instead of a file further down the list being used.
ReadResult read_candidates(const std::vector<std::string>& paths, bool search, std::size_t max, std::string& text,
                           std::string& error, const std::function<void(const std::string&)>& looking) {
  for (const std::string& p : paths) {
    looking(p);
    struct stat st {};
    if (search && ::lstat(p.c_str(), &st) != 0 && (errno == ENOENT || errno == ENOTDIR)) continue;
    const ReadResult r = read_regular_file(p, max, text, error);
    // Found by the search, missing to open (a link to nothing): said, not passed over.
    return search && r == ReadResult::kMissing ? ReadResult::kError : r;
  }
  return ReadResult::kMissing;  // the search found none
}

// The page directory (read_page_dir): each file as NAME NUL SIZE NUL BYTES, one after another.
ReadResult read_page(const std::string& dir, const std::vector<std::string>& types, std::size_t max, std::string& out,
                     std::string& error, const std::function<void(const std::string&)>& looking) {
  const std::string index = dir + "/index.html";
  looking(index);
  struct stat st {};
  if (::stat(index.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
    error = dir + ": no index.html there";
    return ReadResult::kError;
  }
  looking(dir);
  std::vector<std::string> names;
  if (DIR* d = ::opendir(dir.c_str())) {
    while (const dirent* e = ::readdir(d)) {
      const std::string name = e->d_name;
      const std::string ext = std::filesystem::path(name).extension().string();
      if (name[0] != '.' && std::find(types.begin(), types.end(), ext) != types.end()) names.push_back(name);
    }
    ::closedir(d);
  } else {
    error = dir + ": cannot list it: " + std::strerror(errno);
    return ReadResult::kError;
  }
  std::sort(names.begin(), names.end());
  std::size_t total = 0;
  for (const std::string& name : names) {
    const std::string path = dir + "/" + name;
    looking(path);
    if (::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;  // a folder, a FIFO: not the page's
    if (static_cast<std::uint64_t>(st.st_size) > max - total) {
      error = dir + ": over " +
              (max % (1u << 20) == 0 ? std::to_string(max >> 20) + " MiB" : std::to_string(max) + " bytes") +
              " of files";
      return ReadResult::kError;
    }
    std::string bytes;
    const ReadResult r = read_regular_file(path, max - total, bytes, error);
    if (r == ReadResult::kMissing) continue;  // gone since the listing
    if (r != ReadResult::kOk) return ReadResult::kError;
    total += bytes.size();
    out += name + '\0' + std::to_string(bytes.size()) + '\0' + bytes;
  }
  return ReadResult::kOk;
}

bool put_all(int fd, const std::string& s) {
  for (std::size_t at = 0; at < s.size();) {
    const ssize_t w = ::write(fd, s.data() + at, s.size() - at);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    at += static_cast<std::size_t>(w);
  }
  return true;
}

// The helper's output: each path it looked at and a NUL, a NUL, then the text or the reason.
// `looked` gets the paths; false when the list is not finished (the helper still looking).
bool split_output(const std::string& out, std::vector<std::string>& looked, std::string& rest) {
  std::size_t at = 0;
  for (std::size_t end; (end = out.find('\0', at)) != std::string::npos; at = end + 1) {
    if (end == at) {
      rest = out.substr(at + 1);
      return true;
    }
    looked.push_back(out.substr(at, end - at));
  }
  return false;
}

std::string did_not_answer(const std::string& what, const std::string& path, double seconds, const std::string& note) {
  return fmt::format(
      "{3} {0}: the file system of {0} did not answer within {1:g} s ({2}; a network share or a disk that "
      "hung?)",
      path, seconds, note, what);
}

ConfigRead outcome(const ConfigPlan& plan, ReadResult r, const std::string& path, std::string text,
                   const std::string& why) {
  ConfigRead out;
  out.path = path;
  if (r == ReadResult::kOk) {
    out.kind = ConfigRead::Kind::kOk;
    out.text = std::move(text);
  } else if (r == ReadResult::kMissing && plan.search) {
    out.kind = ConfigRead::Kind::kNone;
  } else {
    out.kind = ConfigRead::Kind::kError;
    out.error = plan.what + " " + why;
  }
  return out;
}

}  // namespace

std::vector<std::string> self_helper() { return {"/proc/self/exe", kStateIoFlag}; }

double command_line_load_timeout(int argc, char** argv) {
  double seconds = 10.0;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--") break;
    std::string v;
    if (a == "--load-timeout" && i + 1 < argc) {
      v = argv[++i];
    } else if (a.rfind("--load-timeout=", 0) == 0) {
      v = a.substr(15);
    } else {
      continue;
    }
    char* end = nullptr;
    const double s = std::strtod(v.c_str(), &end);
    // The flag's own range (options_flags.cpp): outside it, the parse refuses the value.
    if (end != v.c_str() && *end == '\0' && std::isfinite(s) && s >= 0.05 && s <= 3600.0) seconds = s;
  }
  return seconds;
}

ConfigInput start_config_input(int argc, char** argv, int& stop_signal) {
  ConfigInput in;
  in.helper = self_helper();
  in.timeout_s = command_line_load_timeout(argc, argv);
  in.deadline_note =
      "--load-timeout as given on the command line, else 10 s: the config file's own cannot apply "
      "to reading it";
  in.wait_ms = [&stop_signal](int ms) {
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    const timespec timeout{0, ms * 1'000'000L};
    const int sig = sigtimedwait(&stop, nullptr, &timeout);
    if (sig != SIGINT && sig != SIGTERM) return true;
    stop_signal = sig;
    return false;
  };
  return in;
}

void die_of(int sig) {
  std::fflush(nullptr);
  std::signal(sig, SIG_DFL);
  sigset_t one;
  sigemptyset(&one);
  sigaddset(&one, sig);
  ::raise(sig);  // pending while blocked: delivered as the mask lets it through
  pthread_sigmask(SIG_UNBLOCK, &one, nullptr);
  _exit(128 + sig);
}

std::unique_ptr<ConfigJob> ConfigJob::start(const std::vector<std::string>& helper, const ConfigPlan& plan,
                                            std::string& error) {
  std::vector<std::string> argv = helper;
  if (plan.page_types.empty()) {
    argv.insert(argv.end(), {"read-config", std::to_string(plan.max_bytes), plan.search ? "search" : "given"});
    argv.insert(argv.end(), plan.candidates.begin(), plan.candidates.end());
  } else {
    argv.insert(argv.end(), {"read-page", std::to_string(plan.max_bytes), plan.candidates.front()});
    argv.insert(argv.end(), plan.page_types.begin(), plan.page_types.end());
  }
  std::unique_ptr<FileJob> job = FileJob::start(argv, "", error);
  if (!job) {
    error = plan.what + " " + (plan.candidates.empty() ? std::string() : plan.candidates.front()) +
            ": cannot start the helper that reads it: " + error;
    return nullptr;
  }
  std::unique_ptr<ConfigJob> c(new ConfigJob);
  c->job_ = std::move(job);
  c->plan_ = plan;
  return c;
}

std::string ConfigJob::waiting_on() const {
  std::vector<std::string> looked;
  std::string rest;
  split_output(job_->output_so_far(), looked, rest);
  if (!looked.empty()) return looked.back();
  return plan_.candidates.empty() ? std::string() : plan_.candidates.front();
}

std::optional<ConfigRead> ConfigJob::poll() {
  const FileJob::Status st = job_->poll();
  if (st == FileJob::Status::kRunning) return std::nullopt;
  std::vector<std::string> looked;
  std::string rest;
  const bool whole = split_output(job_->output(), looked, rest);
  const std::string path = looked.empty() ? waiting_on() : looked.back();
  if (st == FileJob::Status::kBroken || !whole) {
    ConfigRead broken;
    broken.kind = ConfigRead::Kind::kError;
    broken.path = path;
    broken.error = plan_.what + " " + path + ": not read: " +
                   (st == FileJob::Status::kBroken ? job_->output() : "the helper's answer is cut short");
    return broken;
  }
  const ReadResult r = st == FileJob::Status::kOk        ? ReadResult::kOk
                       : st == FileJob::Status::kMissing ? ReadResult::kMissing
                                                         : ReadResult::kError;
  return outcome(plan_, r, path, rest, rest);
}

ConfigRead ConfigJob::give_up(double timeout_s, const std::string& deadline_note) {
  ConfigRead out;
  out.kind = ConfigRead::Kind::kTimedOut;
  out.path = waiting_on();
  out.error = did_not_answer(plan_.what, out.path, timeout_s, deadline_note);
  job_->kill();
  return out;
}

ConfigRead read_config(const ConfigPlan& plan, const ConfigInput& in) {
  if (in.helper.empty()) {
    std::string text, error, path;
    const auto looking = [&](const std::string& p) { path = p; };
    const ReadResult r =
        plan.page_types.empty()
            ? read_candidates(plan.candidates, plan.search, plan.max_bytes, text, error, looking)
            : read_page(plan.candidates.front(), plan.page_types, plan.max_bytes, text, error, looking);
    return outcome(plan, r, path, std::move(text), error);
  }
  std::string error;
  std::unique_ptr<ConfigJob> job = ConfigJob::start(in.helper, plan, error);
  if (!job) {
    ConfigRead failed;
    failed.kind = ConfigRead::Kind::kError;
    failed.path = plan.candidates.front();
    failed.error = error;
    return failed;
  }
  bool stopped = false;
  job->wait(in.timeout_s, in.wait_ms, stopped);
  if (std::optional<ConfigRead> r = job->poll()) return *r;
  ConfigRead out = job->give_up(in.timeout_s, in.deadline_note);
  if (stopped) {
    out.kind = ConfigRead::Kind::kStopped;
    out.error = plan.what + " " + out.path + ": stopped by a signal while it was read (after " +
                fmt::format("{:.1f}", job->seconds()) + " s)";
  }
  return out;  // the helper, killed, is left to the system (~FileJob)
}

ConfigRead read_start_file(const std::string& path, const std::string& what, std::size_t max_bytes,
                           const ConfigInput& in) {
  ConfigPlan plan;
  plan.candidates = {path};
  plan.what = what;
  plan.max_bytes = max_bytes;
  return read_config(plan, in);
}

ConfigRead read_page_dir(const std::string& dir, const std::string& what, std::size_t max_bytes,
                         const std::vector<std::string>& types, const ConfigInput& in) {
  ConfigPlan plan;
  plan.candidates = {dir};
  plan.what = what;
  plan.max_bytes = max_bytes;
  plan.page_types = types;  // not empty (web::page_types())
  return read_config(plan, in);
}

bool split_page(const std::string& text, std::vector<std::pair<std::string, std::string>>& files) {
  for (std::size_t at = 0; at < text.size();) {
    const std::size_t name_end = text.find('\0', at);
    const std::size_t size_end = name_end == std::string::npos ? name_end : text.find('\0', name_end + 1);
    if (size_end == std::string::npos) return false;
    std::size_t size = 0;
    for (std::size_t i = name_end + 1; i < size_end; ++i) {
      if (text[i] < '0' || text[i] > '9' || size > text.size()) return false;
      size = size * 10 + static_cast<std::size_t>(text[i] - '0');
    }
    if (size > text.size() - size_end - 1) return false;
    files.emplace_back(text.substr(at, name_end - at), text.substr(size_end + 1, size));
    at = size_end + 1 + size;
  }
  return true;
}

int read_page_main(int argc, char** argv) {
  if (argc < 2) return 2;
  const std::size_t max = static_cast<std::size_t>(std::strtoull(argv[0], nullptr, 10));
  const std::vector<std::string> types(argv + 2, argv + argc);
  std::string text, error;
  const ReadResult r = read_page(argv[1], types, max, text, error, [](const std::string& p) {
    put_all(1, p);
    put_all(1, std::string(1, '\0'));
  });
  put_all(1, std::string(1, '\0'));
  if (r == ReadResult::kOk) return put_all(1, text) ? 0 : 1;
  put_all(1, error);
  return 1;
}

int read_config_main(int argc, char** argv) {
  if (argc < 3) return 2;
  const std::size_t max = static_cast<std::size_t>(std::strtoull(argv[0], nullptr, 10));
  const bool search = std::strcmp(argv[1], "search") == 0;
  const std::vector<std::string> paths(argv + 2, argv + argc);
  std::string text, error;
  const ReadResult r = read_candidates(paths, search, max, text, error, [](const std::string& p) {
    put_all(1, p);
    put_all(1, std::string(1, '\0'));
  });
  put_all(1, std::string(1, '\0'));
  if (r == ReadResult::kOk) return put_all(1, text) ? 0 : 1;
  put_all(1, error);
  return r == ReadResult::kMissing ? kStateIoMissing : 1;
}

}  // namespace stemd::app
