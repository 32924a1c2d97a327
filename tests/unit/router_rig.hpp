// A Router over a real Controller and Engine, for unit tests that drive OSC messages without a
// socket: nothing renders unless the test calls render() (the engine's process on this thread).
#pragma once

#include "control/router.hpp"

#include <algorithm>
#include <string>
#include <vector>

namespace stemd::test {

struct RouterRig {
  engine::Engine e{config()};
  io::LoaderThread loader{io::LoaderConfig{}};
  control::Controller ctl{e, loader, io::LoadOptions{}};
  control::MediaPolicy media;
  control::Router router;
  static engine::EngineConfig config() {
    engine::EngineConfig ec;
    ec.max_voices = 8;
    ec.max_block_frames = 1024;
    return ec;
  }
  explicit RouterRig(control::RouterConfig rc = {}) : router(ctl, rc, media) {
    std::string err;
    media.configure("", true, err);
  }
  // The reply message, and the handler's typed reply (Router::handle_reply).
  control::OscMessage send(const control::OscMessage& m) { return router.handle(m, control::Peer{}); }
  control::Reply reply(const control::OscMessage& m) { return router.handle_reply(m, control::Peer{}); }
  // `frames` of output, rendered a period of 1024 at a time.
  std::vector<float> render(std::size_t frames) {
    std::vector<float> out(frames * 2);
    for (std::size_t f = 0; f < frames; f += 1024) {
      e.process(out.data() + f * 2, static_cast<std::uint32_t>(std::min<std::size_t>(1024, frames - f)));
    }
    return out;
  }
};

}  // namespace stemd::test
