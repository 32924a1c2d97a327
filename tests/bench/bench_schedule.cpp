// Timed commands: what one audio callback costs when many are due at once, and what clearing a
// full schedule costs — the figures control/limits.hpp's kMaxTimedPerPeriod is sized from.
//
//   schedule/due/n:N/block:64   a 64-frame callback in which N master-gain commands are due, with
//                               the schedule otherwise full (8,192 − N waiting a day ahead)
//   schedule/clear/full         the 64-frame callback that applies /stemd/clear_schedule to
//                               8,192 waiting commands
//   schedule/none/block:64      the same callback with nothing due (the reference, same run)
//
// Counter ns_per_entry = (time − reference) / N is read off by hand from the two rows.
#include "common/commands.hpp"
#include "stemd/engine.hpp"

#include <benchmark/benchmark.h>

#include <cstdint>
#include <vector>

namespace stemd::bench {
namespace {

using engine::Command;
using engine::CommandType;
using engine::Engine;
using test::master_at;

constexpr std::uint32_t kBlock = 64;
constexpr std::int64_t kADay = 48000LL * 86400;

// Sends `n` commands made by `make(i)`, in callbacks of one frame (each takes at most
// kMaxCommandsPerCallback), so the engine's clock hardly moves.
template <class Make>
void feed(Engine& e, std::vector<float>& out, std::size_t n, Make make) {
  for (std::size_t i = 0; i < n;) {
    for (std::size_t k = 0; k < Engine::kMaxCommandsPerCallback && i < n; ++k, ++i) e.send(make(i));
    e.process(out.data(), 1);
  }
}

engine::EngineConfig config() {
  engine::EngineConfig ec;
  ec.max_voices = 8;
  ec.max_block_frames = 1024;
  return ec;
}

void BM_Due(benchmark::State& state, std::size_t n) {
  Engine e(config());
  std::vector<float> out(2 * 1024);
  feed(e, out, Engine::kMaxScheduled - n,
       [&](std::size_t i) { return master_at(kADay - static_cast<std::int64_t>(i)); });
  for (auto _ : state) {
    state.PauseTiming();
    const std::int64_t due = e.frame() + 100;
    feed(e, out, n, [&](std::size_t) { return master_at(due); });
    while (e.frame() < due) e.process(out.data(), 1);
    state.ResumeTiming();
    e.process(out.data(), kBlock);  // every one of the n is due in this callback
    benchmark::DoNotOptimize(out.data());
  }
  state.counters["entries"] = static_cast<double>(n);
}

void BM_Clear(benchmark::State& state) {
  Engine e(config());
  std::vector<float> out(2 * 1024);
  for (auto _ : state) {
    state.PauseTiming();
    feed(e, out, Engine::kMaxScheduled, [&](std::size_t i) { return master_at(kADay - static_cast<std::int64_t>(i)); });
    Command clear{};
    clear.type = CommandType::kClearSchedule;
    e.send(clear);
    state.ResumeTiming();
    e.process(out.data(), kBlock);
    benchmark::DoNotOptimize(out.data());
  }
}

[[maybe_unused]] const bool registered = [] {
  for (std::size_t n : {std::size_t{0}, std::size_t{64}, std::size_t{256}, std::size_t{1024}, std::size_t{8192}}) {
    const std::string name =
        n == 0 ? std::string("schedule/none/block:64") : "schedule/due/n:" + std::to_string(n) + "/block:64";
    benchmark::RegisterBenchmark(name.c_str(), BM_Due, n)->UseRealTime();
  }
  benchmark::RegisterBenchmark("schedule/clear/full", BM_Clear)->UseRealTime();
  return true;
}();

}  // namespace
}  // namespace stemd::bench
