// GET /api/status over real connections to an in-process server (outside pass 25, N4): its JSON
// is made on the network thread, never the control thread, which stays free meanwhile; voices
// are listed by id with their names cut to 64 bytes at a character's start; an answer over the
// answers' byte budget is refused 503 with the reason, and counted.
#include "common/fixtures.hpp"
#include "web_rig.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <future>
#include <string>
#include <thread>

namespace stemd::test {
namespace {

using Json = nlohmann::json;
using control::osc_message;
using control::OscArg;

// The body of a GET's answer (after the head), and its status code.
std::pair<int, std::string> get(std::uint16_t port, const std::string& target) {
  const std::string got = loopback_talk(port, http_request("GET", target, "Connection: close\r\n"));
  const auto head_end = got.find("\r\n\r\n");
  if (got.size() < 12 || head_end == std::string::npos) return {0, got};
  return {std::stoi(got.substr(9, 3)), got.substr(head_end + 4)};
}

// The hook holds the status's formatting on its thread until a job posted to the control thread
// has run: had it been on the control thread, that job would wait for it (10 s, then false).
TEST(WebStatusThreads, TheAnswerIsMadeOffTheControlThreadWhichStaysFree) {
  std::promise<std::thread::id> formatted_on;  // before the rig: they outlive its server
  std::promise<bool> control_ran;
  bool first = true;
  WebRig w;
  w.web.set_status_hook([&] {
    if (!first) return;
    first = false;
    formatted_on.set_value(std::this_thread::get_id());
    auto ran = std::make_shared<std::promise<void>>();
    auto done = ran->get_future();
    w.post([ran] { ran->set_value(); });
    control_ran.set_value(done.wait_for(std::chrono::seconds(10)) == std::future_status::ready);
  });
  std::string error;
  ASSERT_TRUE(w.start(error)) << error;
  std::thread::id control;
  w.on_control([&] { control = std::this_thread::get_id(); });
  const auto [code, body] = get(w.web.local_port(), "/api/status");
  EXPECT_EQ(code, 200) << body.substr(0, 200);
  auto on = formatted_on.get_future();
  ASSERT_EQ(on.wait_for(std::chrono::seconds(10)), std::future_status::ready);
  EXPECT_NE(on.get(), control) << "the status's JSON was made on the control thread";
  EXPECT_TRUE(control_ran.get_future().get()) << "the control thread was held while the answer was made";
}

// Voices by id, whatever order they started in; a long name cut to 64 bytes, not inside a
// character (é is two bytes: 32 of them, then "…"), and said to be cut.
TEST(WebStatusVoices, ListedByIdWithLongNamesCutAtACharacter) {
  WebRig w;
  std::string error;
  ASSERT_TRUE(w.start(error)) << error;
  TempDir dir;
  const std::string f = dir.file("a.wav");
  make_wav(f, 48000, 1);
  std::string long_name;
  for (int i = 0; i < 41; ++i) long_name += "é";  // 82 bytes
  for (const int id : {5, 3, 1}) {
    w.on_control([&] {
      w.rig.send(osc_message("/stemd/load", {OscArg::Int(id), OscArg::Str(f), OscArg::Str(id == 3 ? long_name : "x")}));
    });
  }
  ASSERT_TRUE(wait_until(
      [&] {
        std::size_t n = 0;
        w.on_control([&] { n = w.rig.ctl.sources_loaded(); });
        return n == 3;
      },
      10));
  for (const int id : {5, 3, 1}) {
    w.on_control([&] {
      w.rig.send(osc_message("/stemd/play", {OscArg::Int(id), OscArg::Float(0.1f), OscArg::Bool(true)}));
    });
  }
  const auto [code, body] = get(w.web.local_port(), "/api/status");
  ASSERT_EQ(code, 200) << body.substr(0, 200);
  const Json j = Json::parse(body, nullptr, false);
  ASSERT_TRUE(j.is_object() && j["voices"].is_array()) << body.substr(0, 300);
  ASSERT_EQ(j["voices"].size(), 3u) << j["voices"].dump();
  EXPECT_EQ(j["voices"][0]["id"], 1);
  EXPECT_EQ(j["voices"][1]["id"], 3);
  EXPECT_EQ(j["voices"][2]["id"], 5);
  EXPECT_EQ(j.value("voices_total", -1), 3);
  EXPECT_EQ(j.value("voices_cut", -1), 0);
  std::string cut;
  for (int i = 0; i < 32; ++i) cut += "é";
  EXPECT_EQ(j["voices"][1]["name"], cut + "…");
  EXPECT_EQ(j["voices"][1].value("name_cut", false), true);
  EXPECT_EQ(j["voices"][0]["name"], "x");
  EXPECT_FALSE(j["voices"][0].contains("name_cut"));
}

// One connection's answer over WebConfig::max_answer_bytes: 503 with the reason, counted; an
// answer within it goes out.
TEST(WebAnswerBudget, AnAnswerOverOneConnectionsShareIsRefused503WithTheReason) {
  web::WebConfig wc = WebRig::web_config();
  wc.max_answer_bytes = 1000;  // the page (index.html) is larger; a 404's JSON is not
  WebRig w({}, wc);
  std::string error;
  ASSERT_TRUE(w.start(error)) << error;
  const auto [code, body] = get(w.web.local_port(), "/");
  EXPECT_EQ(code, 503);
  const Json j = Json::parse(body, nullptr, false);
  EXPECT_NE(j.value("error", "").find("over the 1000 one connection may be sent at once"), std::string::npos) << body;
  EXPECT_EQ(get(w.web.local_port(), "/nope").first, 404);
  EXPECT_EQ(w.web.stats().answers_refused.load(), 1u);
}

}  // namespace
}  // namespace stemd::test
