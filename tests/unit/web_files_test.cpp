// The web file browser over a share that stops answering (attack finding MEDIUM 6): its lost
// listings are keyed by the file system they were stuck on, not by folder. Before, a listing
// lost in a dead share refused only its own folder: four folders of that share clicked cost four
// threads, the pool's lost cap, and then every listing, the local disk's too, answered busy
// until the share came back; a listing of the folder holding the share's mount point, or of a
// symlink into it, lost a thread too (each entry lstat'ed, each symlink followed).
// The dead share is simulated: the mount table is given (share/ a file system of its own) and
// the listing threads block, as a dead share's calls do, where they would look at a path under
// share/ (WebServer::set_listing_hooks), until the test lets them go.
#include "web_rig.hpp"

#include "common/fixtures.hpp"

#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>

namespace stemd::test {
namespace {

namespace fs = std::filesystem;
namespace beast = boost::beast;
namespace http = beast::http;
using Json = nlohmann::json;

// A share that does not answer until it is revived: a look at a path under it blocks.
struct DeadShare {
  std::string mount;
  std::mutex m;
  std::condition_variable cv;
  bool dead = true;
  int looks = 0;  // looks that reached it (each one a thread held)
  void look(const std::string& path) {
    if (!control::within(path, mount)) return;
    std::unique_lock g(m);
    ++looks;
    cv.wait(g, [&] { return !dead; });
  }
  int reached() {
    std::lock_guard g(m);
    return looks;
  }
  void revive() {
    {
      std::lock_guard g(m);
      dead = false;
    }
    cv.notify_all();
  }
};

struct Answer {
  unsigned status = 0;
  Json body;
};

Answer get(std::uint16_t port, const std::string& target) {
  const std::string bytes = loopback_talk(port, http_request("GET", target, "Connection: close\r\n"));
  http::response_parser<http::string_body> p;
  p.eager(true);
  beast::error_code ec;
  p.put(boost::asio::buffer(bytes), ec);
  if (!p.is_done()) p.put_eof(ec);
  if (!p.is_done()) return {};
  return {p.get().result_int(), Json::parse(p.get().body(), nullptr, false)};
}

class WebFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    fs::create_directories(root + "/local");
    std::ofstream(root + "/local/x.wav") << "12345";
    for (const char* d : {"a", "b", "c", "d"}) fs::create_directories(root + "/share/" + d);
    fs::create_directory_symlink("share/a", root + "/fav");
    std::ofstream(root + "/z.wav") << "1";
    std::string error;
    ASSERT_TRUE(media.configure(root, true, error)) << error;
    share.mount = root + "/share";
    web::WebConfig wc = WebRig::web_config();
    wc.listing_timeout_s = 1;  // the walk reaches share/ well before (a slow machine too)
    server = std::make_unique<web::WebServer>(wc, rig.ctl, rig.router, media,
                                              [this](std::function<void()> f) { rig.inst.post(std::move(f)); });
    const std::string table = "21 1 8:1 / / rw\n40 21 0:99 / " + share.mount + " rw\n";
    server->set_listing_hooks({[table] {
                                 std::istringstream in(table);
                                 return control::MountTable::parse(in);
                               },
                               [this](const std::string& path) { share.look(path); }});
    ASSERT_TRUE(server->open(error)) << error;
    rig.inst.set_local_sink(server->sink());
    rig.inst.start_control();
    server->start();
    port = server->local_port();
  }
  void TearDown() override {
    share.revive();  // the held threads return before what they hold goes
    for (int i = 0; i < 500 && lost() != 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    server->stop();
    rig.inst.stop_control();
  }
  long lost() {
    const Answer a = get(port, "/api/status");
    return a.body.is_object() ? a.body["status"].value("listings_lost", -1L) : -1L;
  }

  TempDir tmp;
  std::string root = fs::canonical(tmp.path()).string();
  RouterRig rig{WebRig::monitor_config()};
  control::MediaPolicy media;
  DeadShare share;
  std::unique_ptr<web::WebServer> server;
  std::uint16_t port = 0;
};

TEST_F(WebFiles, OneDeadShareCostsOneThreadAndTheRestListsOn) {
  Answer a = get(port, "/api/files?dir=share/a");
  ASSERT_EQ(a.status, 504u) << a.body.dump();
  const std::string timed_out = a.body.value("error", "");
  EXPECT_NE(timed_out.find("listing of '/share/a' timed out after 1 s"), std::string::npos) << timed_out;
  EXPECT_NE(timed_out.find("the file system mounted at '/share' is not listed again until it returns"),
            std::string::npos)
      << timed_out;
  EXPECT_EQ(share.reached(), 1);
  EXPECT_EQ(lost(), 1);
  // Three more folders of the share, however spelled: refused at once, naming the stuck one.
  const std::pair<std::string, std::string> folders[] = {
      {"share/b", "share/b"}, {"./share//c/", "share/c"}, {"share/d", "share/d"}, {"share", "share"}};
  for (const auto& [dir, key] : folders) {
    a = get(port, "/api/files?dir=" + dir);
    EXPECT_EQ(a.status, 504u) << dir;
    const std::string why = a.body.value("error", "");
    EXPECT_EQ(why.rfind("busy: '/" + key +
                            "' is on a file system that does not answer: the file system mounted at "
                            "'/share' has not answered for ",
                        0),
              0u)
        << why;
    EXPECT_NE(why.find("(the listing of '/share/a' is stuck there past --load-timeout)"), std::string::npos) << why;
  }
  // Through a symlink into it: refused by the listing's walk, before it looks into the share.
  a = get(port, "/api/files?dir=fav");
  EXPECT_EQ(a.status, 504u) << a.body.dump();
  EXPECT_EQ(a.body.value("error", "").rfind("busy: '/fav' is on a file system that does not answer", 0), 0u)
      << a.body.dump();
  // The local disk lists; so does the folder holding the mount point and the symlink, with
  // both entries unreachable, untouched.
  a = get(port, "/api/files?dir=local");
  ASSERT_EQ(a.status, 200u) << a.body.dump();
  ASSERT_EQ(a.body["entries"].size(), 1u);
  EXPECT_EQ(a.body["entries"][0]["size"], 5);
  a = get(port, "/api/files");
  ASSERT_EQ(a.status, 200u) << a.body.dump();
  EXPECT_EQ(a.body["unreachable"], 2);
  std::vector<std::string> names;
  for (const Json& e : a.body["entries"]) {
    const bool unreachable = e.contains("unreachable");
    names.push_back(e.value("name", "") +
                    (unreachable        ? "!"
                     : e["dir"] == true ? "/"
                                        : "") +
                    (e.value("link", false) ? "@" : ""));
    if (unreachable) {
      EXPECT_TRUE(e["dir"].is_null()) << e.dump();
      EXPECT_NE(e["unreachable"].get<std::string>().find("mounted at '/share' has not answered for"), std::string::npos)
          << e.dump();
    }
  }
  EXPECT_EQ(names, (std::vector<std::string>{"fav!@", "local/", "share!", "z.wav"}));
  EXPECT_EQ(share.reached(), 1) << "a listing looked into the dead share again";
  EXPECT_EQ(lost(), 1);
  // The share answers again: its lost listing returns, and its folders list.
  share.revive();
  for (int i = 0; i < 500 && lost() != 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_EQ(lost(), 0);
  a = get(port, "/api/files?dir=share/b");
  EXPECT_EQ(a.status, 200u) << a.body.dump();
  a = get(port, "/api/files");
  EXPECT_EQ(a.body["unreachable"], 0);
}

// The first listing of the folder holding a dead mount point is the one that finds it: its
// thread is lost looking at the mount point, and is keyed by the share (not by the folder's
// own disk): the folder then lists, the mount point unreachable, and the local disk lists.
TEST_F(WebFiles, TheParentOfADeadMountPointLosesAThreadOnceKeyedByTheShare) {
  Answer a = get(port, "/api/files");
  ASSERT_EQ(a.status, 504u) << a.body.dump();
  EXPECT_NE(a.body.value("error", "").find("the file system mounted at '/share' is not listed again"),
            std::string::npos)
      << a.body.dump();
  a = get(port, "/api/files");
  ASSERT_EQ(a.status, 200u) << a.body.dump();
  EXPECT_EQ(a.body["unreachable"], 2) << a.body.dump();
  EXPECT_EQ(get(port, "/api/files?dir=local").status, 200u);
  EXPECT_EQ(get(port, "/api/files?dir=share/c").status, 504u);
  EXPECT_EQ(share.reached(), 1);
  EXPECT_EQ(lost(), 1);
}

}  // namespace
}  // namespace stemd::test
