// An Instance with its own control thread (no OSC sockets) and the web monitor on a free
// loopback port, wired as the daemon wires them (app/startup.cpp: open_web), for unit tests that
// talk to the web server over real connections (web_events_test.cpp, web_http_test.cpp).
#pragma once

#include "router_rig.hpp"
#include "web/web_server.hpp"

#include <cstdint>
#include <functional>
#include <future>
#include <string>
#include <utility>

namespace stemd::test {

struct WebRig {
  RouterRig rig;
  web::WebServer web;

  static app::InstanceConfig monitor_config(control::RouterConfig rc = {}) {
    app::InstanceConfig ic = RouterRig::instance_config(std::move(rc));
    ic.engine.monitor = true;  // the web server needs the master's tap
    return ic;
  }
  static web::WebConfig web_config() {
    web::WebConfig wc;
    wc.root = std::string(STEMD_SOURCE_DIR) + "/web";
    return wc;
  }
  explicit WebRig(control::RouterConfig rc = {})
      : rig(monitor_config(std::move(rc))),
        web(web_config(), rig.ctl, rig.router, rig.media, [this](std::function<void()> f) { post(f); }) {}
  ~WebRig() {
    web.stop();
    rig.inst.stop_control();
  }
  void post(std::function<void()> f) { rig.inst.post(std::move(f)); }
  bool start(std::string& error) {
    if (!web.open(error)) return false;
    rig.inst.set_local_sink(web.sink());
    rig.inst.start_control();
    web.start();
    return true;
  }
  // Runs f on the control thread and waits for it.
  void on_control(std::function<void()> f) {
    std::promise<void> done;
    post([&] {
      f();
      done.set_value();
    });
    done.get_future().wait();
  }
  std::size_t subscribers() {
    std::size_t n = 0;
    on_control([&] { n = rig.router.subscribers(); });
    return n;
  }
  // A device underflow as the OSC server's tick reports one (osc_server.cpp).
  void underflow(std::int64_t total) {
    on_control([&] { rig.router.notify_device("underflow", {control::OscArg::Int64(total)}); });
  }
};

}  // namespace stemd::test
