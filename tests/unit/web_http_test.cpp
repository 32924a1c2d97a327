// The web monitor's HTTP answers over raw connections to an in-process server (an outside test
// pass): HEAD answers carry no body, so a pipelined request after one is read as sent (RFC 9110
// §9.3.2); WebSocket routes take a query string as HTTP routes do; a WebSocket upgrade the server
// cannot accept, and a POST of the wrong type, are answered in JSON with the reason; the status
// says whether the decks' EQ is applied (--disable-filters).
#include "web_rig.hpp"

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <sys/socket.h>
#include <unistd.h>

#include <string>
#include <string_view>

namespace stemd::test {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using Json = nlohmann::json;

// The head of the first answer in `bytes` ("HTTP/1.1 101 …\r\n…\r\n\r\n"), for a WebSocket's.
std::string status_line(const std::string& bytes) { return bytes.substr(0, bytes.find("\r\n")); }

// One response parsed from the front of `bytes` (a HEAD's: no body, whatever its Content-Length
// says); `used` is how many bytes it took. `ok` false when the bytes are not one whole response.
struct Parsed {
  http::response<http::string_body> res;
  std::size_t used = 0;
  bool ok = false;
  std::string error;
};
Parsed parse(std::string_view bytes, bool head) {
  Parsed out;
  http::response_parser<http::string_body> p;
  p.eager(true);
  p.skip(head);
  p.body_limit(16u << 20);
  beast::error_code ec;
  while (!p.is_done()) {
    const std::size_t n = p.put(net::buffer(bytes.data() + out.used, bytes.size() - out.used), ec);
    out.used += n;
    if (ec == http::error::need_more && out.used == bytes.size()) {
      ec.clear();
      p.put_eof(ec);  // a body that runs to the close
      if (!p.is_done() && !ec) ec = http::error::partial_message;
    }
    if (ec == http::error::need_more) {
      ec.clear();
      continue;
    }
    if (ec) {
      out.error = ec.message() + " at byte " + std::to_string(out.used) + " of: " + std::string(bytes.substr(0, 300));
      return out;
    }
  }
  out.res = p.release();
  out.ok = true;
  return out;
}

class WebHttp : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string error;
    ASSERT_TRUE(w.start(error)) << error;
    port = w.web.local_port();
  }
  WebRig w;
  std::uint16_t port = 0;
};

// RFC 9110 §9.3.2: a HEAD's answer is the GET's status and headers without a body. Before, the
// errors carried their JSON body (404, 405, 426, 403), and /api/status and /api/files were 405:
// the next answer on the connection then began `{"error":…}HTTP/1.1 200 OK` to the client.
TEST_F(WebHttp, HeadAnswersCarryNoBodyAndThePipelinedAnswerAfterParses) {
  struct Case {
    std::string target;
    unsigned status;
  };
  const Case cases[] = {
      {"/nope", 404},      {"/api/status", 200},    {"/api/status?page=p1", 200},
      {"/api/files", 409},  // the GET's: no --media-root here
      {"/ws/audio", 426},  {"/ws/events?x=1", 426}, {"/api/osc", 405},
      {"/", 200},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE("HEAD " + c.target);
    bool closed = false;
    const std::string got = loopback_talk(
        port, http_request("HEAD", c.target) + http_request("GET", "/api/status", "Connection: close\r\n"), &closed);
    EXPECT_TRUE(closed) << "the connection was not closed after the GET that asked for it";
    const Parsed first = parse(got, true);
    ASSERT_TRUE(first.ok) << first.error;
    EXPECT_EQ(first.res.result_int(), c.status);
    // The GET's own answer, for its status and headers; a close asked for is a close (the 426's
    // "Connection: Upgrade" had replaced the "close": the connection was held 10 s).
    const Parsed get =
        parse(loopback_talk(port, http_request("GET", c.target, "Connection: close\r\n"), &closed), false);
    ASSERT_TRUE(get.ok) << get.error;
    EXPECT_TRUE(closed) << "GET " << c.target << " with Connection: close left the connection open";
    EXPECT_EQ(first.res.result_int(), get.res.result_int());
    EXPECT_EQ(first.res[http::field::content_type], get.res[http::field::content_type]);
    EXPECT_EQ(first.res[http::field::allow], get.res[http::field::allow]);
    EXPECT_EQ(first.res[http::field::upgrade], get.res[http::field::upgrade]);
    if (c.target == "/nope" || c.target == "/") {  // a fixed body: the HEAD states the GET's length
      EXPECT_EQ(first.res[http::field::content_length], std::to_string(get.res.body().size()));
    }
    const std::string rest = got.substr(first.used);
    ASSERT_EQ(rest.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << "after HEAD " << c.target << ": " << rest.substr(0, 120);
    const Parsed second = parse(rest, false);
    ASSERT_TRUE(second.ok) << second.error;
    EXPECT_EQ(second.used, rest.size()) << "bytes left over: " << rest.substr(second.used, 120);
    EXPECT_TRUE(Json::parse(second.res.body(), nullptr, false).contains("status")) << second.res.body().substr(0, 120);
  }
}

// A refusal before routing (a Host that is not this machine's: 403) closes the connection: its
// answer alone, without the body.
TEST_F(WebHttp, HeadWithAForeignHostIsRefusedWithoutABody) {
  const std::string got =
      loopback_talk(port, "HEAD / HTTP/1.1\r\nHost: evil.example\r\n\r\n" + http_request("GET", "/api/status"));
  const Parsed first = parse(got, true);
  ASSERT_TRUE(first.ok) << first.error;
  EXPECT_EQ(first.res.result_int(), 403u);
  EXPECT_EQ(got.substr(first.used), "") << "a body after the head";
}

const std::string kKey = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";
const std::string kVersion = "Sec-WebSocket-Version: 13\r\n";

// `GET /ws/events?x=1` was 404: the HTTP routes dropped the query, the WebSocket routes did not.
TEST_F(WebHttp, WebSocketRoutesTakeAQueryString) {
  for (const std::string target : {"/ws/events?x=1", "/ws/audio?x=1&y", "/ws/events?"}) {
    SCOPED_TRACE(target);
    const int fd = loopback_connect(port);
    ASSERT_GE(fd, 0);
    ASSERT_TRUE(loopback_send(fd, ws_upgrade(target, kKey + kVersion, "Upgrade")));
    std::string head;
    char c;
    while (head.find("\r\n\r\n") == std::string::npos && ::recv(fd, &c, 1, 0) == 1) head.push_back(c);
    ::close(fd);
    EXPECT_EQ(status_line(head), "HTTP/1.1 101 Switching Protocols") << head;
  }
  // An unknown WebSocket path is still 404, named without its query.
  const Parsed p = parse(loopback_talk(port, ws_upgrade("/ws/nope?x=1", kKey + kVersion)), false);
  ASSERT_TRUE(p.ok) << p.error;
  EXPECT_EQ(p.res.result_int(), 404u);
  EXPECT_NE(p.res.body().find("/ws/nope\""), std::string::npos) << p.res.body();
}

// An upgrade Beast would refuse was answered with its plain-text 400 ("Missing
// Sec-WebSocket-Key"): every other refusal of this server is JSON with the reason.
TEST_F(WebHttp, AnUpgradeThatCannotBeAcceptedIsRefusedInJsonSayingWhatIsWrong) {
  struct Case {
    std::string headers;
    unsigned status;
    std::string words;
  };
  const Case cases[] = {
      {kVersion, 400, "Sec-WebSocket-Key"},
      {"Sec-WebSocket-Key: " + std::string(40, 'A') + "\r\n" + kVersion, 400, "Sec-WebSocket-Key"},
      {kKey, 400, "Sec-WebSocket-Version"},
      {kKey + "Sec-WebSocket-Version: 8\r\n", 426, "Sec-WebSocket-Version"},
  };
  for (const Case& c : cases) {
    for (const std::string target : {"/ws/events", "/ws/audio"}) {
      SCOPED_TRACE(target + " with " + c.headers);
      const Parsed p = parse(loopback_talk(port, ws_upgrade(target, c.headers)), false);
      ASSERT_TRUE(p.ok) << p.error;
      EXPECT_EQ(p.res.result_int(), c.status);
      EXPECT_EQ(p.res[http::field::content_type], "application/json");
      const Json j = Json::parse(p.res.body(), nullptr, false);
      ASSERT_TRUE(j.is_object() && j.contains("error")) << p.res.body();
      EXPECT_NE(j["error"].get<std::string>().find(c.words), std::string::npos) << p.res.body();
      if (c.status == 426) {
        EXPECT_EQ(p.res[http::field::sec_websocket_version], "13");
      }
    }
  }
  EXPECT_EQ(w.web.stats().listeners.load(), 0u);
}

// The 415 names the type it takes and the one it was given (a curl -d without -H sends
// application/x-www-form-urlencoded).
TEST_F(WebHttp, TheWrongContentTypeIsAnsweredWithTheExpectedAndTheGivenOne) {
  const std::string body = R"({"address":"/stemd/ping"})";
  struct Case {
    std::string header, given;
  };
  const Case cases[] = {{"Content-Type: application/x-www-form-urlencoded\r\n", "application/x-www-form-urlencoded"},
                        {"Content-Type: text/plain\r\n", "text/plain"},
                        {"", "none"}};
  for (const Case& c : cases) {
    SCOPED_TRACE(c.given);
    const Parsed p =
        parse(loopback_talk(port, http_request("POST", "/api/osc",
                                               c.header + "Content-Length: " + std::to_string(body.size()) +
                                                   "\r\nConnection: close\r\n") +
                                      body),
              false);
    ASSERT_TRUE(p.ok) << p.error;
    EXPECT_EQ(p.res.result_int(), 415u);
    const std::string error = Json::parse(p.res.body(), nullptr, false).value("error", "");
    EXPECT_NE(error.find("Content-Type: application/json"), std::string::npos) << error;
    EXPECT_NE(error.find(c.given), std::string::npos) << error;
  }
}

Json status_of(std::uint16_t port) {
  const Parsed p = parse(loopback_talk(port, http_request("GET", "/api/status", "Connection: close\r\n")), false);
  return p.ok ? Json::parse(p.res.body(), nullptr, false) : Json();
}

// --disable-filters (crowdstream's production line): the EQ is answered and ignored. The page
// showed sliders that moved and did nothing: the status says whether the EQ is applied.
TEST(WebStatus, SaysWhetherTheDecksEqIsApplied) {
  for (const bool enabled : {true, false}) {
    control::RouterConfig rc;
    rc.eq_enabled = enabled;
    WebRig w(rc);
    std::string error;
    ASSERT_TRUE(w.start(error)) << error;
    const Json j = status_of(w.web.local_port());
    ASSERT_TRUE(j.contains("eq_enabled")) << j.dump().substr(0, 200);
    EXPECT_EQ(j["eq_enabled"], enabled);
  }
}

}  // namespace
}  // namespace stemd::test
