#include "platform/systemd_notify.h"

#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <optional>
#include <string>

#include "platform/unique_fd.h"

namespace mobike::platform {
namespace {

using namespace std::chrono_literals;

// Sets an environment variable for one test and puts the old value back afterwards:
// the notifier reads the process environment, as it does in the daemon.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const std::optional<std::string>& value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    if (value)
      ::setenv(name, value->c_str(), 1);
    else
      ::unsetenv(name);
  }
  ~ScopedEnv() {
    if (old_)
      ::setenv(name_, old_->c_str(), 1);
    else
      ::unsetenv(name_);
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  const char* name_;
  std::optional<std::string> old_;
};

// A service manager's notification socket, as systemd binds it: a Unix datagram socket.
class FakeManager {
 public:
  FakeManager() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "mobike-notify-XXXXXX").string();
    if (::mkdtemp(tmpl.data())) dir_ = tmpl;
    path_ = dir_ + "/notify";
    fd_.reset(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    path_.copy(sa.sun_path, sizeof sa.sun_path - 1);
    bound_ = fd_ && ::bind(fd_.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0;
  }
  ~FakeManager() {
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }
  bool bound() const { return bound_; }
  const std::string& path() const { return path_; }

  // The next datagram, or nullopt if none arrives within a second.
  std::optional<std::string> receive() {
    pollfd p{fd_.get(), POLLIN, 0};
    if (::poll(&p, 1, 1000) != 1) return std::nullopt;
    char buf[4096];
    ssize_t n = ::recv(fd_.get(), buf, sizeof buf, 0);
    if (n < 0) return std::nullopt;
    return std::string(buf, static_cast<std::size_t>(n));
  }

 private:
  std::string dir_ = "/nonexistent";
  std::string path_;
  UniqueFd fd_;
  bool bound_ = false;
};

TEST(SystemdMessages, ReadyCarriesStatusOnALineOfItsOwn) {
  EXPECT_EQ(ready_message(""), "READY=1");
  EXPECT_EQ(ready_message("3 connections"), "READY=1\nSTATUS=3 connections");
}

TEST(SystemdMessages, NewlinesInStatusCannotStartAnotherAssignment) {
  EXPECT_EQ(ready_message("bad\nSTOPPING=1"), "READY=1\nSTATUS=bad STOPPING=1");
  EXPECT_EQ(status_message("a\r\nb"), "STATUS=a  b");
}

TEST(SystemdMessages, ReloadingCarriesTheMonotonicTime) {
  EXPECT_EQ(reloading_message(123456789us, ""), "RELOADING=1\nMONOTONIC_USEC=123456789");
  EXPECT_EQ(reloading_message(5us, "reloading"), "RELOADING=1\nMONOTONIC_USEC=5\nSTATUS=reloading");
}

TEST(SystemdMessages, Stopping) {
  EXPECT_EQ(stopping_message(""), "STOPPING=1");
  EXPECT_EQ(stopping_message("deleting SAs"), "STOPPING=1\nSTATUS=deleting SAs");
}

TEST(SystemdNotifier, WithoutNotifySocketSendsNothingAndSucceeds) {
  ScopedEnv sock("NOTIFY_SOCKET", std::nullopt);
  ScopedEnv wd("WATCHDOG_USEC", "200000");
  auto n = SystemdNotifier::from_environment();
  EXPECT_FALSE(n.enabled());
  EXPECT_FALSE(n.watchdog_interval());
  EXPECT_TRUE(n.ready("x"));
  EXPECT_TRUE(n.watchdog());
}

TEST(SystemdNotifier, SendsToTheManagersSocket) {
  FakeManager m;
  ASSERT_TRUE(m.bound());
  ScopedEnv sock("NOTIFY_SOCKET", m.path());
  ScopedEnv wd("WATCHDOG_USEC", std::nullopt);
  auto n = SystemdNotifier::from_environment();
  ASSERT_TRUE(n.enabled());
  EXPECT_FALSE(n.watchdog_interval());

  ASSERT_TRUE(n.ready("2 connections"));
  EXPECT_EQ(m.receive(), "READY=1\nSTATUS=2 connections");

  auto before = std::chrono::duration_cast<std::chrono::microseconds>(
      std::chrono::steady_clock::now().time_since_epoch());
  ASSERT_TRUE(n.reloading(""));
  auto got = m.receive();
  ASSERT_TRUE(got);
  const std::string prefix = "RELOADING=1\nMONOTONIC_USEC=";
  ASSERT_EQ(got->substr(0, prefix.size()), prefix);
  // CLOCK_MONOTONIC, taken at the call: not before it, and not a different clock (the
  // realtime clock would be decades ahead).
  auto usec = std::stoll(got->substr(prefix.size()));
  EXPECT_GE(usec, before.count());
  EXPECT_LT(usec, before.count() + 10'000'000);

  ASSERT_TRUE(n.stopping(""));
  EXPECT_EQ(m.receive(), "STOPPING=1");
  ASSERT_TRUE(n.watchdog());
  EXPECT_EQ(m.receive(), "WATCHDOG=1");
}

TEST(SystemdNotifier, AMissingManagerSocketIsReported) {
  ScopedEnv sock("NOTIFY_SOCKET", "/nonexistent/mobike-notify");
  auto n = SystemdNotifier::from_environment();
  ASSERT_TRUE(n.enabled());
  auto r = n.ready("");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().context, "sd_notify");
}

TEST(SystemdNotifier, WatchdogIntervalIsHalfTheManagersTimeout) {
  FakeManager m;
  ASSERT_TRUE(m.bound());
  ScopedEnv sock("NOTIFY_SOCKET", m.path());
  ScopedEnv wd("WATCHDOG_USEC", "200000");
  {
    ScopedEnv pid("WATCHDOG_PID", std::nullopt);
    auto n = SystemdNotifier::from_environment();
    ASSERT_TRUE(n.watchdog_interval());
    EXPECT_EQ(*n.watchdog_interval(), 100ms);
  }
  {
    ScopedEnv pid("WATCHDOG_PID", std::to_string(::getpid()));
    EXPECT_TRUE(SystemdNotifier::from_environment().watchdog_interval());
  }
  {
    // The watchdog is meant for another process (e.g. ours started a helper that
    // inherited the environment): this one must not ping it.
    ScopedEnv pid("WATCHDOG_PID", std::to_string(::getpid() + 1));
    EXPECT_FALSE(SystemdNotifier::from_environment().watchdog_interval());
  }
}

TEST(JournalStream, Parses) {
  auto p = parse_journal_stream("2049:123456");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->first, 2049u);
  EXPECT_EQ(p->second, 123456u);
  EXPECT_FALSE(parse_journal_stream(""));
  EXPECT_FALSE(parse_journal_stream("2049"));
  EXPECT_FALSE(parse_journal_stream("2049:"));
  EXPECT_FALSE(parse_journal_stream(":5"));
  EXPECT_FALSE(parse_journal_stream("20x9:5"));
  EXPECT_FALSE(parse_journal_stream("-1:5"));
  EXPECT_FALSE(parse_journal_stream("1:5:6"));
}

TEST(JournalStream, MatchesOnlyStderrsOwnDeviceAndInode) {
  struct stat st {};
  ASSERT_EQ(::fstat(STDERR_FILENO, &st), 0);
  {
    ScopedEnv js("JOURNAL_STREAM", std::nullopt);
    EXPECT_FALSE(stderr_is_journal());
  }
  {
    ScopedEnv js("JOURNAL_STREAM", std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino));
    EXPECT_TRUE(stderr_is_journal());
  }
  {
    // Inherited from a unit while stderr went elsewhere: not the journal.
    ScopedEnv js("JOURNAL_STREAM", std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino + 1));
    EXPECT_FALSE(stderr_is_journal());
  }
  {
    ScopedEnv js("JOURNAL_STREAM", "garbage");
    EXPECT_FALSE(stderr_is_journal());
  }
}

}  // namespace
}  // namespace mobike::platform
