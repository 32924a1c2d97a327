// The null backend: no hardware. A thread wakes at absolute CLOCK_MONOTONIC deadlines, one per
// period, and runs the engine, so voices advance in real time on a headless machine. The
// pacer thread is the audio thread [audio]; its output is discarded.
#include "backend.hpp"

#include <atomic>
#include <ctime>
#include <pthread.h>
#include <sched.h>
#include <thread>
#include <vector>

namespace stemd::audio {

namespace {

class NullBackend final : public Backend {
 public:
  explicit NullBackend(const BackendConfig& cfg) : cfg_(cfg) {}
  ~NullBackend() override { stop(); }

  bool open(std::string&) override {
    rate_ = cfg_.sample_rate > 0 ? cfg_.sample_rate : 48000;
    buf_.resize(static_cast<std::size_t>(cfg_.buffer_size) * 2);
    return true;
  }

  bool start(engine::Engine& engine, std::string&) override {
    engine_ = &engine;
    running_ = true;
    thread_ = std::thread([this] { run(); });
    return true;
  }

  void stop() override {
    if (!running_.exchange(false)) return;
    if (thread_.joinable()) thread_.join();
  }

  int sample_rate() const override { return rate_; }
  std::uint32_t buffer_size() const override { return cfg_.buffer_size; }
  double output_latency_seconds() const override { return static_cast<double>(cfg_.buffer_size) / rate_; }
  std::string describe() const override { return "null (no hardware, paced by the system clock)"; }
  int wanted_rt_priority() const override { return kAudioRtPriority; }

 private:
  void run() {
    // Real-time priority where permitted (the daemon logs the policy in force).
    sched_param sp{};
    sp.sched_priority = kAudioRtPriority;
    pthread_setschedparam(pthread_self(), SCHED_FIFO, &sp);
    const long period_ns = static_cast<long>(1e9 * cfg_.buffer_size / rate_);
    timespec next{};
    clock_gettime(CLOCK_MONOTONIC, &next);
    while (running_.load(std::memory_order_relaxed)) {
      timespec now{};
      clock_gettime(CLOCK_MONOTONIC, &now);
      const bool late =
          (now.tv_sec > next.tv_sec) || (now.tv_sec == next.tv_sec && now.tv_nsec > next.tv_nsec + period_ns);
      engine_->process(buf_.data(), cfg_.buffer_size, late);
      if (late) next = now;  // we fell a whole period behind: count it, don't try to catch up
      next.tv_nsec += period_ns;
      while (next.tv_nsec >= 1'000'000'000L) {
        next.tv_nsec -= 1'000'000'000L;
        ++next.tv_sec;
      }
      // Sleep to the next period in steps of at most 50 ms, so that stop() returns within
      // 50 ms whatever the period (8192 frames at 8 kHz is a second).
      for (;;) {
        timespec step{};
        clock_gettime(CLOCK_MONOTONIC, &step);
        step.tv_nsec += 50'000'000L;
        if (step.tv_nsec >= 1'000'000'000L) {
          step.tv_nsec -= 1'000'000'000L;
          ++step.tv_sec;
        }
        const bool last = step.tv_sec > next.tv_sec || (step.tv_sec == next.tv_sec && step.tv_nsec >= next.tv_nsec);
        clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, last ? &next : &step, nullptr);
        if (last || !running_.load(std::memory_order_relaxed)) break;
      }
    }
  }

  BackendConfig cfg_;
  engine::Engine* engine_ = nullptr;
  int rate_ = 48000;
  std::vector<float> buf_;
  std::thread thread_;
  std::atomic<bool> running_{false};
};

}  // namespace

std::unique_ptr<Backend> make_null_backend(const BackendConfig& cfg) { return std::make_unique<NullBackend>(cfg); }

}  // namespace stemd::audio
