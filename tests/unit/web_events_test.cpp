// The web monitor's event socket (/ws/events) over a real connection to an in-process server:
// every event the daemon emits once a client has read the 101 reaches that client, however late
// the server's network thread gets round to the handshake's completion.
#include "web_rig.hpp"

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <condition_variable>
#include <functional>
#include <future>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace stemd::test {
namespace {

namespace beast = boost::beast;
namespace net = boost::asio;
using tcp = net::ip::tcp;
using Json = nlohmann::json;

// The race of an ASan CI run (worked around in web_api.py by commit 8e49eff): the server wrote
// the 101, the client read it and made the daemon emit an event, and that event was broadcast on
// the network thread before the handshake's completion handler had joined the session to the
// event listeners, so this client never got it. The hook holds the connection at that handler
// until the event's broadcast has run, which a busy network thread does by chance.
TEST(WebEvents, EveryEventAfterThe101ReachesTheClient) {
  WebRig w;
  std::mutex mu;
  std::condition_variable cv;
  std::function<void()> resume;
  w.web.set_handshake_hook([&](std::function<void()> r) {
    std::lock_guard lock(mu);
    resume = std::move(r);
    cv.notify_all();
  });
  std::string error;
  ASSERT_TRUE(w.start(error)) << error;
  ASSERT_EQ(w.wait_subscribed(), 1u);

  net::io_context io;
  beast::websocket::stream<beast::tcp_stream> ws(io);
  ws.next_layer().connect(tcp::endpoint(net::ip::address_v4::loopback(), w.web.local_port()));
  ws.handshake("127.0.0.1", "/ws/events");  // returns once the client has read the 101
  {
    std::unique_lock lock(mu);
    ASSERT_TRUE(cv.wait_for(lock, std::chrono::seconds(30), [&] { return resume != nullptr; }));
  }
  // Event 1 after the client read the 101, while the server is still in the handshake's
  // completion. The control thread hands a pass's notifications to the web server after that
  // pass's posted work, so `resume`, posted in the next pass, lands on the network thread behind
  // event 1's broadcast; event 2 comes once the connection has gone on.
  w.underflow(1);
  w.on_control([&] { resume(); });
  w.underflow(2);

  for (std::int64_t want : {1, 2}) {
    beast::flat_buffer buf;
    beast::error_code ec;
    bool read = false;
    ws.next_layer().expires_after(std::chrono::seconds(30));  // a hang guard, not a measure
    ws.async_read(buf, [&](beast::error_code e, std::size_t) {
      ec = e;
      read = true;
    });
    io.restart();
    io.run();
    ASSERT_TRUE(read);
    ASSERT_FALSE(ec) << ec.message();
    const Json j = Json::parse(beast::buffers_to_string(buf.data()), nullptr, false);
    EXPECT_EQ(j.value("event", ""), "/stemd/device/underflow") << j.dump();
    ASSERT_EQ(j["args"], Json::array({want})) << "event " << want << " lost; got " << j.dump();
  }
  beast::error_code ec;
  ws.next_layer().socket().close(ec);
}

// Outside pass 28, user L4: a page whose socket closed with a lost device's hand-over never saw
// /stemd/device/lost (the new image did not know of it). The server keeps its last events, those
// of the previous image carried in (carry_events), and sends a socket that asks with ?since=SEQ
// those after SEQ first, numbered on; one that does not ask gets none of them.
TEST(WebEvents, APageAskingSinceItsLastEventGetsWhatItMissedFirst) {
  WebRig w;
  std::vector<web::PastEvent> carried;
  for (std::uint64_t s = 1; s <= 3; ++s) {
    const std::string json = web::EventBacklog::stamp(
        s == 3 ? R"({"event":"/stemd/device/lost","args":["gone"]})" : R"({"event":"/x","args":[]})", 1000, s);
    carried.push_back({s, 1000, json});
  }
  w.web.carry_events(carried, "00c0ffee");  // the previous image's run: this image's events are of it
  std::string error;
  ASSERT_TRUE(w.start(error)) << error;
  ASSERT_EQ(w.wait_subscribed(), 1u);
  net::io_context io;
  auto read_json = [&](beast::websocket::stream<beast::tcp_stream>& ws) {
    beast::flat_buffer buf;
    ws.next_layer().expires_after(std::chrono::seconds(30));  // a hang guard, not a measure
    ws.read(buf);
    return Json::parse(beast::buffers_to_string(buf.data()), nullptr, false);
  };
  beast::websocket::stream<beast::tcp_stream> page(io), plain(io);
  page.next_layer().connect(tcp::endpoint(net::ip::address_v4::loopback(), w.web.local_port()));
  page.handshake("127.0.0.1", "/ws/events?since=1");
  plain.next_layer().connect(tcp::endpoint(net::ip::address_v4::loopback(), w.web.local_port()));
  plain.handshake("127.0.0.1", "/ws/events");
  w.underflow(7);  // the new image's first event
  Json j = read_json(page);
  EXPECT_EQ(j.value("seq", 0), 2) << j.dump();
  j = read_json(page);
  EXPECT_EQ(j.value("seq", 0), 3) << j.dump();
  EXPECT_EQ(j.value("event", ""), "/stemd/device/lost") << j.dump();
  EXPECT_EQ(j.value("time_ms", 0), 1000) << "when the previous image sent it";
  j = read_json(page);
  EXPECT_EQ(j.value("seq", 0), 4) << "numbered on from the carried ones: " << j.dump();
  EXPECT_EQ(j.value("event", ""), "/stemd/device/underflow") << j.dump();
  EXPECT_EQ(j.value("run", ""), "00c0ffee") << "the run goes on across the hand-over: " << j.dump();
  j = read_json(plain);
  EXPECT_EQ(j.value("seq", 0), 4) << "without ?since, only what comes from now: " << j.dump();
  // A since that is not a number is refused, as a bad query is.
  beast::websocket::stream<beast::tcp_stream> bad(io);
  bad.next_layer().connect(tcp::endpoint(net::ip::address_v4::loopback(), w.web.local_port()));
  beast::error_code ec;
  bad.handshake("127.0.0.1", "/ws/events?since=-1", ec);
  EXPECT_TRUE(ec) << "a WebSocket opened with since=-1";
  beast::websocket::stream<beast::tcp_stream> bad_run(io);
  bad_run.next_layer().connect(tcp::endpoint(net::ip::address_v4::loopback(), w.web.local_port()));
  bad_run.handshake("127.0.0.1", "/ws/events?since=1&run=../x", ec);
  EXPECT_TRUE(ec) << "a WebSocket opened with run=../x";
}

}  // namespace
}  // namespace stemd::test
