// The render backend: runs the engine faster than real time and writes the master to a file.
//
// Output is deterministic: before each block the render thread waits until every streaming
// voice's ring holds the block (waking the loader), so disk timing never shows in the result.
// The render thread is the engine's audio thread [audio] for the process() call; the waiting
// and the file writing around it are allowed here because nothing real-time is waiting on us.
#include "backend.hpp"

#include "io/loader_thread.hpp"
#include "io/sound_file.hpp"

#include <spdlog/spdlog.h>

#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <thread>
#include <vector>

namespace stemd::audio {

namespace {

class RenderBackend final : public Backend {
 public:
  RenderBackend(const BackendConfig& cfg, io::LoaderThread* loader) : cfg_(cfg), loader_(loader) {}
  ~RenderBackend() override {
    stop();
    if (!temp_path_.empty()) ::unlink(temp_path_.c_str());  // never committed: the target stays as it was
  }

  bool open(std::string& error) override {
    rate_ = cfg_.sample_rate > 0 ? cfg_.sample_rate : 48000;
    buf_.resize(static_cast<std::size_t>(cfg_.buffer_size) * 2);
    if (cfg_.render_path.empty()) return true;
    // Written to a temporary file beside the target (same folder, so the rename is atomic and on
    // the same file system), in the target's format; commit() renames it over the target.
    const std::filesystem::path target(cfg_.render_path);
    const std::filesystem::path folder = target.has_parent_path() ? target.parent_path() : ".";
    std::string name = target.filename().string();
    name.insert(name.begin(), '.');
    name += ".XXXXXX";
    std::string tmpl = (folder / name).string();
    const int fd = ::mkstemp(tmpl.data());
    if (fd < 0) {
      error = cfg_.render_path + ": cannot create a temporary file in " + folder.string() + ": " + std::strerror(errno);
      return false;
    }
    // mkstemp makes it 0600: give it the mode a new file would get (or the target's own).
    struct stat st {};
    mode_t mode = 0;
    if (::stat(cfg_.render_path.c_str(), &st) == 0) {
      mode = st.st_mode & 07777;
    } else {
      const mode_t mask = ::umask(0);
      ::umask(mask);
      mode = 0666 & ~mask;
    }
    ::fchmod(fd, mode);
    ::close(fd);
    temp_path_ = tmpl;
    if (!writer_.open(temp_path_, rate_, error, cfg_.render_path)) {
      error = cfg_.render_path + ": " + error;
      ::unlink(temp_path_.c_str());
      temp_path_.clear();
      return false;
    }
    return true;
  }

  bool commit(std::string& error) override {
    if (temp_path_.empty()) return true;
    writer_.close();
    if (write_failed_.load()) return false;  // failure() says why; the destructor removes the file
    if (std::rename(temp_path_.c_str(), cfg_.render_path.c_str()) != 0) {
      error = "cannot rename " + temp_path_ + " to " + cfg_.render_path + ": " + std::strerror(errno);
      return false;
    }
    temp_path_.clear();
    return true;
  }

  bool start(engine::Engine& engine, std::string&) override {
    engine_ = &engine;
    running_ = true;
    thread_ = std::thread([this] { run(); });
    return true;
  }

  void stop() override {
    running_ = false;
    if (thread_.joinable()) thread_.join();
    writer_.close();
  }

  int sample_rate() const override { return rate_; }
  std::uint32_t buffer_size() const override { return cfg_.buffer_size; }
  double output_latency_seconds() const override { return 0; }
  std::string describe() const override {
    return "render to " + (cfg_.render_path.empty() ? std::string("nowhere (discarded)") : cfg_.render_path);
  }
  bool finished() const override { return done_.load(); }
  bool failed() const override { return write_failed_.load(); }
  std::string failure() const override { return "writing " + cfg_.render_path + " failed: " + writer_.error(); }

  std::int64_t frames_rendered() const { return rendered_.load(); }

 private:
  void run() {
    const std::int64_t total =
        cfg_.render_seconds > 0 ? static_cast<std::int64_t>(std::llround(cfg_.render_seconds * rate_)) : -1;
    std::int64_t done = 0;
    bool started = false;  // in "until idle" mode, wait for the first voice before stopping
    while (running_.load(std::memory_order_relaxed) && (total < 0 || done < total)) {
      const auto n = static_cast<std::uint32_t>(total < 0 ? cfg_.buffer_size
                                                          : std::min<std::int64_t>(cfg_.buffer_size, total - done));
      engine_->apply_commands();
      // Wait for the loader, bounded: a stalled disk must not hang a render forever (the block
      // then plays what there is, and the underrun is counted and reported like any other).
      for (int i = 0; !engine_->streams_ready(n) && running_.load(std::memory_order_relaxed); ++i) {
        if (i == 10100) {
          spdlog::error("render: streams not ready after 10 s; rendering on (expect underruns)");
          break;
        }
        if (loader_) loader_->wake();
        std::this_thread::sleep_for(std::chrono::microseconds(i < 100 ? 50 : 1000));
      }
      engine_->process(buf_.data(), n);
      if (!cfg_.render_path.empty() && !writer_.write(buf_.data(), n)) {
        write_failed_ = true;
        break;
      }
      done += n;
      rendered_.store(done);
      if (engine_->active_voices() > 0) started = true;
      if (total < 0 && started && engine_->active_voices() == 0) break;
      if (total < 0 && !started && done >= 10LL * rate_) {
        spdlog::warn("render: nothing played in the first 10 s; stopping");
        break;
      }
    }
    writer_.close();
    done_ = true;
  }

  BackendConfig cfg_;
  io::LoaderThread* loader_;
  io::SoundFileWriter writer_;
  std::string temp_path_;  // what is being written; empty once renamed over the target
  engine::Engine* engine_ = nullptr;
  int rate_ = 48000;
  std::vector<float> buf_;
  std::thread thread_;
  std::atomic<bool> running_{false};
  std::atomic<bool> done_{false};
  std::atomic<bool> write_failed_{false};
  std::atomic<std::int64_t> rendered_{0};
};

}  // namespace

bool render_target_is_free(const std::string& render_path, const std::vector<std::string>& inputs, std::string& error) {
  if (render_path.empty()) return true;
  namespace fs = std::filesystem;
  struct stat target {};
  const bool exists = ::stat(render_path.c_str(), &target) == 0;
  std::error_code ec;
  const fs::path resolved = fs::weakly_canonical(render_path, ec);
  for (const std::string& in : inputs) {
    if (in.empty()) continue;
    struct stat st {};
    bool same = false;
    if (exists) {
      same = ::stat(in.c_str(), &st) == 0 && st.st_dev == target.st_dev && st.st_ino == target.st_ino;
    } else {
      std::error_code ec2;
      const fs::path r = fs::weakly_canonical(in, ec2);
      same = !ec && !ec2 && r == resolved;
    }
    if (same) {
      error = "--render-to " + render_path + " is also an input (" + in +
              "): rendering would overwrite it; render to another file";
      return false;
    }
  }
  return true;
}

std::unique_ptr<Backend> make_render_backend(const BackendConfig& cfg, io::LoaderThread* loader) {
  return std::make_unique<RenderBackend>(cfg, loader);
}

}  // namespace stemd::audio
