// The daemon's owner object, app::Instance, built as the daemon builds it (an InstanceConfig, the
// constructor, open_control()) but without OSC sockets, for unit tests that drive OSC messages
// through its Router: nothing renders unless the test calls render() (the engine's process on
// this thread), and the loader thread runs only if the test starts it. A test that needs other
// settings passes its own InstanceConfig (instance_config() gives the defaults to start from).
#pragma once

#include "app/instance.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace stemd::test {

struct RouterRig {
  app::Instance inst;
  engine::Engine& e;
  io::LoaderThread& loader;
  control::Controller& ctl;
  control::MediaPolicy& media;  // no media root; loads allowed (loopback only, as without --osc-bind)
  control::Router& router;

  static engine::EngineConfig config() {
    engine::EngineConfig ec;
    ec.max_voices = 8;
    ec.max_block_frames = 1024;
    return ec;
  }
  static app::InstanceConfig instance_config(control::RouterConfig rc = {}, engine::EngineConfig ec = config(),
                                             io::LoadOptions lo = {}) {
    app::InstanceConfig ic;
    ic.engine = ec;
    ic.load = std::move(lo);
    ic.router = std::move(rc);
    ic.media_loopback_only = true;
    ic.osc = false;
    return ic;
  }
  explicit RouterRig(control::RouterConfig rc = {}) : RouterRig(instance_config(std::move(rc))) {}
  explicit RouterRig(const app::InstanceConfig& ic)
      : inst(ic),
        e(inst.engine()),
        loader(inst.loader()),
        ctl(inst.controller()),
        media(inst.media()),
        router(open_control(inst)) {}

  // The reply message, and the handler's typed reply (Router::handle_reply).
  control::OscMessage send(const control::OscMessage& m) { return router.handle(m, control::Peer{}); }
  control::Reply reply(const control::OscMessage& m) { return router.handle_reply(m, control::Peer{}); }
  // The typed reply of a message that must be answered /done (a test failure otherwise).
  control::Reply ok(const std::string& address, std::vector<control::OscArg> args = {}) {
    control::Reply r = reply(control::OscMessage{address, std::move(args)});
    EXPECT_TRUE(r.ok) << address << ": " << r.reason;
    return r;
  }
  // A number of the native status (/stemd/status), by key.
  double status(const std::string& key) {
    const control::Reply r = ok("/stemd/status");
    for (std::size_t i = 0; i + 1 < r.values.size(); i += 2) {
      if (r.values[i].s == key) return r.values[i + 1].as_double();
    }
    ADD_FAILURE() << "no " << key << " in the status";
    return -1;
  }
  // `frames` of output, rendered a period of 1024 at a time.
  std::vector<float> render(std::size_t frames) {
    std::vector<float> out(frames * 2);
    for (std::size_t f = 0; f < frames; f += 1024) {
      e.process(out.data() + f * 2, static_cast<std::uint32_t>(std::min<std::size_t>(1024, frames - f)));
    }
    return out;
  }
  // Polls the router's loads and stream opens (opener threads: Router::enable_async_loads) until
  // none is in flight and no message waits behind one. False when that took over 5 s.
  bool settle_loads() {
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (std::chrono::steady_clock::now() < until) {
      router.poll_loads();
      if (!router.anything_in_flight() && router.messages_waiting() == 0) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    return false;
  }

 private:
  static control::Router& open_control(app::Instance& i) {
    std::string err;
    if (!i.open_control(err)) throw std::runtime_error("Instance::open_control: " + err);
    return i.router();
  }
};

}  // namespace stemd::test
