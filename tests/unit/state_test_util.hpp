// Helpers of the state file's tests (state_test.cpp, state_restore_test.cpp): files, a log
// capture and the router rig with a loader running.
#pragma once

#include "app/state.hpp"
#include "common/engine_driver.hpp"
#include "router_rig.hpp"

#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <sys/stat.h>

namespace stemd::app::state_test {

using control::OscArg;
using control::OscMessage;

inline std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

inline void spit(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
}

inline bool exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

// Captures what the daemon logs while alive (warnings name the file and the line).
class LogCapture {
 public:
  LogCapture() : sink_(std::make_shared<spdlog::sinks::ostream_sink_mt>(out_)) {
    old_ = spdlog::default_logger();
    auto logger = std::make_shared<spdlog::logger>("state_test", sink_);
    logger->set_level(spdlog::level::debug);
    logger->set_pattern("%l %v");
    spdlog::set_default_logger(logger);
  }
  ~LogCapture() { spdlog::set_default_logger(old_); }
  std::string text() const { return out_.str(); }

 private:
  std::ostringstream out_;
  std::shared_ptr<spdlog::sinks::ostream_sink_mt> sink_;
  std::shared_ptr<spdlog::logger> old_;
};

// The daemon's owner object (app::Instance, through the router test rig: no OSC sockets), its
// loader thread running.
struct Rig : test::RouterRig {
  static io::LoadOptions lo(bool streamed) {
    io::LoadOptions o;
    o.preload_limit_bytes = streamed ? 0 : 64ll << 20;
    o.head_frames = 2000;
    return o;
  }
  static InstanceConfig ic(bool streamed, std::uint32_t max_voices = 32, double load_timeout_s = 10.0) {
    engine::EngineConfig ec;
    ec.max_block_frames = 4096;
    ec.max_voices = max_voices;
    control::RouterConfig rc;
    rc.buffer_size = 256;
    rc.load_timeout_s = load_timeout_s;
    return instance_config(rc, ec, lo(streamed));
  }
  explicit Rig(bool streamed = false) : RouterRig(ic(streamed)) { loader.start(); }
  explicit Rig(const InstanceConfig& c) : RouterRig(c) { loader.start(); }
  ~Rig() {
    loader.stop();
    ctl.service();
  }
  void render(std::uint32_t frames) {
    std::vector<float> out(frames * 2);
    test::process_fed(e, loader, out.data(), frames);
    ctl.service();
  }
  OscMessage send(OscMessage m) { return router.handle(m, control::Peer{}); }
  // Loads `path` into `id` and plays it (looping), then renders a period: the voice is heard.
  // False (with the failure reported) when a message was refused.
  bool load_and_play(int id, const std::string& path, float volume = 1.0f) {
    for (const OscMessage& m :
         {OscMessage{"/stemd/load", {OscArg::Int(id), OscArg::Str(path)}},
          OscMessage{"/stemd/play", {OscArg::Int(id), OscArg::Float(volume), OscArg::Bool(true)}}}) {
      const OscMessage r = send(m);
      if (r.address != "/done") {
        ADD_FAILURE() << m.to_string() << " → " << r.to_string();
        return false;
      }
    }
    render(256);
    return true;
  }
};

// The daemon's restore at start: the state file `path` written with `text` (unless it is empty),
// the log captured, a rig (its loads on opener threads when `async`, as the daemon's are), the
// keeper, and what its restore() reported.
struct Restored {
  struct Options {
    bool voices = true;  // --restore-voices
    double retry_s = 5.0;
    bool async = false;
    InstanceConfig ic = Rig::ic(false);
  };
  Restored(const std::string& path, const std::string& text, const Options& o)
      : rig(o.ic), keeper({path, o.voices, 5.0, "test", o.retry_s}) {
    if (!text.empty()) spit(path, text);
    if (o.async) rig.router.enable_async_loads(nullptr);
    report = keeper.restore(rig.router);
  }
  Restored(const std::string& path, const std::string& text) : Restored(path, text, Options{}) {}
  LogCapture log;
  Rig rig;
  StateKeeper keeper;
  RestoreReport report;
};

template <typename... A>
OscMessage msg(std::string address, A... args) {
  OscMessage m;
  m.address = std::move(address);
  (m.args.push_back(args), ...);
  return m;
}

inline std::string show(const OscMessage& m) { return m.to_string(); }

}  // namespace stemd::app::state_test
