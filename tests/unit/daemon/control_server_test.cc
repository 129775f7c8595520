#include "daemon/control_server.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <asio.hpp>
#include <atomic>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <future>
#include <optional>
#include <thread>

#include "control/client.h"
#include "control/protocol.h"
#include "temp_dir.h"

namespace mobike::daemon {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

// A deliberately low-level client: the point is to send what mobikectl never would.
class RawClient {
 public:
  explicit RawClient(const std::string& path) {
    fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    std::strncpy(sa.sun_path, path.c_str(), sizeof sa.sun_path - 1);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0;
    timeval tv{5, 0};  // a broken server fails the test instead of hanging it
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  }
  ~RawClient() { ::close(fd_); }
  RawClient(const RawClient&) = delete;
  RawClient& operator=(const RawClient&) = delete;

  bool connected() const { return connected_; }

  bool send(std::string_view data) {
    while (!data.empty()) {
      ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
      if (n <= 0) return false;
      data.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
  }

  // The next line without its '\n'; nullopt on EOF, error or timeout.
  std::optional<std::string> read_line() {
    for (;;) {
      auto nl = buf_.find('\n');
      if (nl != std::string::npos) {
        std::string line = buf_.substr(0, nl);
        buf_.erase(0, nl + 1);
        return line;
      }
      char chunk[4096];
      ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
      if (n <= 0) return std::nullopt;
      buf_.append(chunk, static_cast<std::size_t>(n));
    }
  }

  json read_json() {
    auto line = read_line();
    if (!line) return json("<no line>");
    return json::parse(*line, nullptr, false);
  }

  // True when the server has closed its end (EOF or reset), false on timeout.
  bool closed_by_peer() {
    char c;
    ssize_t n = ::recv(fd_, &c, 1, 0);
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
  }

 private:
  int fd_ = -1;
  bool connected_ = false;
  std::string buf_;
};

class ControlServerTest : public ::testing::Test {
 protected:
  void SetUp() override { path_ = dir_.file("mobiked.sock"); }
  void TearDown() override { halt(); }

  // An echoing handler unless told otherwise.
  void start(ControlServer::Handler handler = nullptr) {
    if (!handler)
      handler = [this](const json& request) {
        ++calls_;
        return control::ok_response(json{{"echo", request}});
      };
    auto r = ControlServer::start(io_, path_, std::move(handler));
    ASSERT_TRUE(r) << r.error();
    server_ = std::move(*r);
    thread_ = std::thread([this] { io_.run(); });
  }

  void start_async(ControlServer::AsyncHandler handler) {
    auto r = ControlServer::start_async(io_, path_, std::move(handler));
    ASSERT_TRUE(r) << r.error();
    server_ = std::move(*r);
    thread_ = std::thread([this] { io_.run(); });
  }

  // Stops the io thread so that the server may be touched from the test's thread.
  void halt() {
    io_.stop();
    if (thread_.joinable()) thread_.join();
  }

  testing::TempDir dir_;
  std::string path_;
  asio::io_context io_;
  std::unique_ptr<ControlServer> server_;
  std::thread thread_;
  std::atomic<int> calls_{0};
};

TEST_F(ControlServerTest, AnswersARequestThroughTheClient) {
  start();
  auto request = control::request_to_json(control::InitiateRequest{"home"});
  auto answer = control::call(path_, request, 5s);
  ASSERT_TRUE(answer) << answer.error();
  auto response = control::response_from_json(*answer);
  ASSERT_TRUE(response) << response.error();
  EXPECT_TRUE(response->ok);
  EXPECT_EQ(response->result["echo"], request);
  EXPECT_EQ(calls_, 1);
}

TEST_F(ControlServerTest, SocketIsPrivate) {
  start();
  struct stat st {};
  ASSERT_EQ(::stat(path_.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST_F(ControlServerTest, PipelinedRequestsAreAnsweredInOrder) {
  start();
  RawClient c(path_);
  ASSERT_TRUE(c.connected());
  ASSERT_TRUE(c.send("{\"n\":1}\n{\"n\":2}\n{\"n\":3}\n"));
  for (int i = 1; i <= 3; ++i) EXPECT_EQ(c.read_json()["result"]["echo"]["n"], i);
}

TEST_F(ControlServerTest, GarbageGetsAnErrorAndTheConnectionStaysUsable) {
  start();
  RawClient c(path_);
  ASSERT_TRUE(c.send("this is not json\n"));
  auto r = c.read_json();
  EXPECT_EQ(r["ok"], false);
  EXPECT_NE(r["error"].get<std::string>().find("not valid JSON"), std::string::npos);

  ASSERT_TRUE(c.send("[1, 2]\n"));
  r = c.read_json();
  EXPECT_EQ(r["ok"], false);
  EXPECT_NE(r["error"].get<std::string>().find("not a JSON object"), std::string::npos);

  ASSERT_TRUE(c.send(std::string("\0\xff\x01\n", 4)));
  EXPECT_EQ(c.read_json()["ok"], false);
  EXPECT_EQ(calls_, 0);

  ASSERT_TRUE(c.send("{\"command\":\"stats\"}\n"));
  EXPECT_EQ(c.read_json()["ok"], true);
  EXPECT_EQ(calls_, 1);
}

TEST_F(ControlServerTest, DeeplyNestedInputDoesNotCrash) {
  start();
  RawClient c(path_);
  // Valid JSON nested 30000 deep (within the line limit): parsed, then refused as not an object.
  ASSERT_TRUE(c.send(std::string(30000, '[') + std::string(30000, ']') + "\n"));
  EXPECT_EQ(c.read_json()["ok"], false);
  ASSERT_TRUE(c.send(std::string(60000, '{') + "\n"));
  EXPECT_EQ(c.read_json()["ok"], false);
  EXPECT_EQ(calls_, 0);
}

TEST_F(ControlServerTest, LineOfExactlyTheLimitIsAccepted) {
  start();
  RawClient c(path_);
  const std::string head = "{\"pad\":\"", tail = "\"}";
  std::string line = head + std::string(control::kMaxRequestLine - head.size() - tail.size(), 'a') + tail;
  ASSERT_EQ(line.size(), control::kMaxRequestLine);
  ASSERT_TRUE(c.send(line + "\n"));
  EXPECT_EQ(c.read_json()["ok"], true);
  EXPECT_EQ(calls_, 1);
}

TEST_F(ControlServerTest, OversizeLineGetsAnErrorAndIsClosed) {
  start();
  RawClient c(path_);
  ASSERT_TRUE(c.send(std::string(control::kMaxRequestLine + 1, 'x')));
  auto r = c.read_json();
  EXPECT_EQ(r["ok"], false);
  EXPECT_NE(r["error"].get<std::string>().find("longer than 65536"), std::string::npos);
  EXPECT_TRUE(c.closed_by_peer());
  EXPECT_EQ(calls_, 0);

  // Other clients are unaffected.
  RawClient d(path_);
  ASSERT_TRUE(d.send("{}\n"));
  EXPECT_EQ(d.read_json()["ok"], true);
}

TEST_F(ControlServerTest, HandlerExceptionsBecomeErrorResponses) {
  start([](const json& request) -> json {
    if (request.contains("boom")) throw std::runtime_error("kaput");
    return control::ok_response();
  });
  RawClient c(path_);
  ASSERT_TRUE(c.send("{\"boom\":1}\n{}\n"));
  auto r = c.read_json();
  EXPECT_EQ(r["ok"], false);
  EXPECT_NE(r["error"].get<std::string>().find("kaput"), std::string::npos);
  EXPECT_EQ(c.read_json()["ok"], true);
}

TEST_F(ControlServerTest, NonUtf8InAResponseIsReplacedNotFatal) {
  start([](const json&) { return control::ok_response(std::string("id \xff")); });
  RawClient c(path_);
  ASSERT_TRUE(c.send("{}\n"));
  auto r = c.read_json();
  EXPECT_EQ(r["ok"], true);
  EXPECT_TRUE(r["result"].is_string());
}

TEST_F(ControlServerTest, RemovesAStaleSocketFile) {
  {
    // What a crashed daemon leaves behind: a bound socket file nobody listens on.
    int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    std::strncpy(sa.sun_path, path_.c_str(), sizeof sa.sun_path - 1);
    ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
    ::close(fd);
  }
  ASSERT_TRUE(std::filesystem::exists(path_));
  start();
  auto answer = control::call(path_, json{{"command", "stats"}}, 5s);
  ASSERT_TRUE(answer) << answer.error();
  EXPECT_EQ((*answer)["ok"], true);
}

TEST_F(ControlServerTest, RefusesASocketSomeoneListensOn) {
  start();
  asio::io_context other;
  auto second = ControlServer::start(other, path_, [](const json&) { return json(); });
  ASSERT_FALSE(second);
  EXPECT_NE(second.error().find(path_), std::string::npos) << second.error();
  EXPECT_NE(second.error().find("already running"), std::string::npos) << second.error();
  // The first server keeps working.
  auto answer = control::call(path_, json::object(), 5s);
  ASSERT_TRUE(answer) << answer.error();
  EXPECT_EQ((*answer)["ok"], true);
}

TEST_F(ControlServerTest, RefusesToReplaceSomethingThatIsNotASocket) {
  std::ofstream(path_) << "precious";
  auto r = ControlServer::start(io_, path_, [](const json&) { return json(); });
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().find("not a socket"), std::string::npos) << r.error();
  std::ifstream in(path_);
  std::string content;
  in >> content;
  EXPECT_EQ(content, "precious");
}

TEST_F(ControlServerTest, FailsClearlyWhenTheDirectoryIsMissing) {
  // Only the socket's own directory is created (/run/mobiked/): a deeper missing path is
  // a mistake in the configuration.
  auto r = ControlServer::start(io_, dir_.file("no/such/dir/x.sock"), [](const json&) { return json(); });
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().find("cannot create directory " + dir_.file("no/such/dir")), std::string::npos) << r.error();
}

TEST_F(ControlServerTest, CreatesTheSocketsOwnDirectoryPrivate) {
  path_ = dir_.file("mobiked/mobiked.sock");
  start();
  struct stat st {};
  ASSERT_EQ(::stat(dir_.file("mobiked").c_str(), &st), 0);
  EXPECT_TRUE(S_ISDIR(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  auto answer = control::call(path_, control::request_to_json(control::InitiateRequest{"home"}), 5s);
  EXPECT_TRUE(answer) << answer.error();
}

TEST_F(ControlServerTest, StopClosesClientsAndRemovesTheSocketFile) {
  start();
  RawClient c(path_);
  ASSERT_TRUE(c.send("{}\n"));
  ASSERT_EQ(c.read_json()["ok"], true);
  EXPECT_EQ(server_->connection_count(), 1u);
  halt();
  server_->stop();
  EXPECT_FALSE(std::filesystem::exists(path_));
  EXPECT_TRUE(c.closed_by_peer());
  EXPECT_EQ(server_->connection_count(), 0u);
  server_.reset();  // destructor after stop(): nothing left to do, nothing to crash on
}

TEST_F(ControlServerTest, StopLeavesAReplacedSocketFileAlone) {
  start();
  halt();
  // Another daemon took over the path meanwhile.
  std::filesystem::remove(path_);
  std::ofstream(path_) << "new owner";
  server_->stop();
  EXPECT_TRUE(std::filesystem::exists(path_));
}

TEST_F(ControlServerTest, TooManyConnectionsAreTurnedAway) {
  start();
  std::vector<std::unique_ptr<RawClient>> clients;
  for (std::size_t i = 0; i < ControlServer::kMaxConnections; ++i) {
    clients.push_back(std::make_unique<RawClient>(path_));
    // A round trip makes sure the server has accepted this one before the next.
    ASSERT_TRUE(clients.back()->send("{}\n"));
    ASSERT_EQ(clients.back()->read_json()["ok"], true) << i;
  }
  RawClient extra(path_);
  auto r = extra.read_json();
  EXPECT_EQ(r["ok"], false);
  EXPECT_NE(r["error"].get<std::string>().find("too many"), std::string::npos);
  EXPECT_TRUE(extra.closed_by_peer());

  clients.pop_back();  // one leaves; a newcomer is served again
  for (int attempt = 0; attempt < 100; ++attempt) {
    RawClient again(path_);
    ASSERT_TRUE(again.send("{}\n"));
    if (again.read_json()["ok"] == true) return;
    std::this_thread::sleep_for(10ms);  // the server may not have seen the close yet
  }
  ADD_FAILURE() << "a freed slot was never reused";
}

// A bulk command in the manner of the daemon's: `steps` progress lines `every` apart on
// the io thread, then the reply.
struct SlowJob : std::enable_shared_from_this<SlowJob> {
  SlowJob(asio::io_context& io, ControlServer::Reply r, ControlServer::Progress p, int steps,
          std::chrono::milliseconds every)
      : timer(io), reply(std::move(r)), progress(std::move(p)), steps(steps), every(every) {}
  void run() {
    if (done == steps) {
      finished = true;
      reply(control::ok_response(json{{"steps", steps}}));
      if (progress)
        progress(control::progress_line({static_cast<std::uint64_t>(steps), 0, 0, 0, 9}));  // too late: dropped
      return;
    }
    if (progress)
      progress(control::progress_line(
          {static_cast<std::uint64_t>(done), 0, static_cast<std::uint64_t>(steps - done), 0, 0.1 * done}));
    ++done;
    timer.expires_after(every);
    timer.async_wait([self = shared_from_this()](const asio::error_code& ec) {
      if (!ec) self->run();
    });
  }
  asio::steady_timer timer;
  ControlServer::Reply reply;
  ControlServer::Progress progress;
  int steps;
  std::chrono::milliseconds every;
  int done = 0;
  std::atomic<bool> finished{false};
};

TEST_F(ControlServerTest, ProgressLinesOnlyForAClientThatAsks) {
  std::atomic<int> with_sender{0};
  start_async([&](const json& request, ControlServer::Reply reply, ControlServer::Progress progress) {
    if (progress) ++with_sender;
    std::make_shared<SlowJob>(io_, std::move(reply), std::move(progress), request.value("steps", 0), 1ms)->run();
  });
  RawClient c(path_);
  // Asked: the interim lines, then the response, then the next (pipelined) request's.
  ASSERT_TRUE(c.send("{\"steps\":3,\"progress\":true}\n{\"steps\":2}\n"));
  for (int i = 0; i < 3; ++i) {
    auto line = c.read_json();
    ASSERT_TRUE(control::is_progress_line(line)) << line;
    auto p = control::progress_from_json(line);
    ASSERT_TRUE(p) << p.error();
    EXPECT_EQ(p->done + p->remaining, 3u);
  }
  EXPECT_EQ(c.read_json(), control::ok_response(json{{"steps", 3}}));
  // Not asked (or "progress": false): exactly one line, as before progress existed.
  EXPECT_EQ(c.read_json(), control::ok_response(json{{"steps", 2}}));
  ASSERT_TRUE(c.send("{\"steps\":2,\"progress\":false}\n{\"steps\":1,\"progress\":\"yes\"}\n"));
  EXPECT_EQ(c.read_json(), control::ok_response(json{{"steps", 2}}));
  EXPECT_EQ(c.read_json(), control::ok_response(json{{"steps", 1}}));
  EXPECT_EQ(with_sender, 1);
}

TEST_F(ControlServerTest, AClientThatHangsUpMidJobCostsNothing) {
  std::promise<void> started;
  std::shared_ptr<SlowJob> job;
  start_async([&](const json& request, ControlServer::Reply reply, ControlServer::Progress progress) {
    if (!request.contains("progress")) return reply(control::ok_response("still here"));
    // Many lines, quickly: some are written to a socket already closed by the client.
    job = std::make_shared<SlowJob>(io_, std::move(reply), std::move(progress), 300, 1ms);
    job->run();
    started.set_value();
  });
  {
    RawClient c(path_);
    ASSERT_TRUE(c.send("{\"progress\":true}\n"));
    ASSERT_TRUE(control::is_progress_line(c.read_json()));
  }  // hangs up
  started.get_future().wait();
  // The job runs to its end, the connection is dropped, and others are served meanwhile.
  auto connections = [&] {  // read on the io thread, which owns the set
    std::promise<std::size_t> n;
    asio::post(io_, [&] { n.set_value(server_->connection_count()); });
    return n.get_future().get();
  };
  for (int attempt = 0; attempt < 500 && connections() != 0; ++attempt) std::this_thread::sleep_for(5ms);
  EXPECT_EQ(connections(), 0u);
  auto answer = control::call(path_, json::object(), 5s);
  ASSERT_TRUE(answer) << answer.error();
  EXPECT_EQ((*answer)["result"], "still here");
  for (int attempt = 0; attempt < 500 && !job->finished; ++attempt) std::this_thread::sleep_for(5ms);
  halt();
  EXPECT_TRUE(job->finished) << "the job did not run to its end";
  EXPECT_EQ(job->done, 300);
}

TEST_F(ControlServerTest, ClientGetsProgressAndItsDeadlineIsOnSilence) {
  start_async([&](const json& request, ControlServer::Reply reply, ControlServer::Progress progress) {
    std::make_shared<SlowJob>(io_, std::move(reply), std::move(progress), request.value("steps", 0),
                              std::chrono::milliseconds(request.value("every_ms", 0)))
        ->run();
  });
  // 10 lines 50 ms apart: 0.5 s in all, longer than the 300 ms timeout, never silent that long.
  std::vector<control::Progress> seen;
  auto answer = control::call_cancellable(path_, json{{"steps", 10}, {"every_ms", 50}, {"progress", true}}, nullptr, {},
                                          300ms, [&](const control::Progress& p) { seen.push_back(p); });
  ASSERT_TRUE(answer) << answer.error();
  EXPECT_EQ((*answer)["result"]["steps"], 10);
  ASSERT_EQ(seen.size(), 10u);
  EXPECT_EQ(seen.front().done, 0u);
  EXPECT_EQ(seen.back().done, 9u);
  // Silent for longer than the timeout between two lines: given up, and said why.
  auto silent = control::call_cancellable(path_, json{{"steps", 2}, {"every_ms", 600}, {"progress", true}}, nullptr, {},
                                          200ms, [](const control::Progress&) {});
  ASSERT_FALSE(silent);
  EXPECT_NE(silent.error().find("went silent for 200 ms"), std::string::npos) << silent.error();
}

TEST(ControlClient, RefusesAMalformedProgressLine) {
  testing::TempDir dir;
  const auto path = dir.file("odd.sock");
  int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  std::strncpy(sa.sun_path, path.c_str(), sizeof sa.sun_path - 1);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
  ASSERT_EQ(::listen(fd, 4), 0);
  std::thread odd([fd] {
    int c = ::accept(fd, nullptr, nullptr);
    char buf[256];
    (void)::recv(c, buf, sizeof buf, 0);
    std::string lines = "{\"progress\":{\"done\":1}}\n{\"ok\":true,\"result\":null}\n";
    (void)::send(c, lines.data(), lines.size(), MSG_NOSIGNAL);
    ::close(c);
  });
  auto r = control::call_cancellable(path, json{{"progress", true}}, nullptr, {}, 5s, [](const control::Progress&) {});
  odd.join();
  ::close(fd);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().find("bad progress line from mobiked: progress has no \"failed\""), std::string::npos)
      << r.error();
}

TEST(ControlClient, ReportsAMissingDaemon) {
  testing::TempDir dir;
  auto r = control::call(dir.file("absent.sock"), json::object(), 1s);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().find(dir.file("absent.sock")), std::string::npos) << r.error();
  EXPECT_NE(r.error().find("is mobiked running"), std::string::npos) << r.error();
}

TEST(ControlClient, GivesUpOnASilentDaemon) {
  testing::TempDir dir;
  const auto path = dir.file("silent.sock");
  int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  std::strncpy(sa.sun_path, path.c_str(), sizeof sa.sun_path - 1);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
  ASSERT_EQ(::listen(fd, 4), 0);  // accepts into the backlog, never answers
  auto start = std::chrono::steady_clock::now();
  auto r = control::call(path, json::object(), 200ms);
  auto took = std::chrono::steady_clock::now() - start;
  ::close(fd);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().find("no answer"), std::string::npos) << r.error();
  EXPECT_LT(took, 5s);
}

TEST(ControlClient, ReportsAHangUpWithoutAnswer) {
  testing::TempDir dir;
  const auto path = dir.file("rude.sock");
  int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  std::strncpy(sa.sun_path, path.c_str(), sizeof sa.sun_path - 1);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
  ASSERT_EQ(::listen(fd, 4), 0);
  std::thread rude([fd] {
    int c = ::accept(fd, nullptr, nullptr);
    char buf[256];
    (void)::recv(c, buf, sizeof buf, 0);
    ::close(c);
  });
  auto r = control::call(path, json::object(), 5s);
  rude.join();
  ::close(fd);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().find("closed the connection"), std::string::npos) << r.error();
}

}  // namespace
}  // namespace mobike::daemon
