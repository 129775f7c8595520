// The etcd client (src/platform/etcd_client.h) against real etcd processes, for
// tests/netns/test_etcd_client.py, which runs it inside a network namespace of its own
// (only lo, 127.0.0.2 blackholed) and passes:
//
//   MOBIKE_ETCD             the etcd binary (Debian's etcd-server: /usr/bin/etcd)
//   MOBIKE_ETCD_DIR         a scratch directory: data directories and member logs
//   MOBIKE_ETCD_BLACKHOLE   an address whose TCP SYNs are dropped (connect timeouts)
//   MOBIKE_ETCD_IN_NETNS=1  the namespace is private; without it the binary exits 77
//
// The tests start, kill (SIGKILL) and restart etcd members themselves, on 127.0.0.1:
// one member shared by most tests, one killed and restarted under a watch, and a
// three-member cluster for failover. Every member runs with a 50 ms heartbeat and a
// 500 ms election timeout, so that elections and lease expiry take a second, not ten.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "platform/etcd_client.h"
#include "platform/etcd_json.h"

extern char** environ;

namespace mobike::platform {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using etcd::Compare;
using etcd::Op;
using etcd::WatchEvent;
using etcd::WatchUpdate;
using Kind = EtcdError::Kind;

std::string env_or(const char* name, const char* fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? v : fallback;
}

std::filesystem::path scratch() { return env_or("MOBIKE_ETCD_DIR", "/tmp"); }

long long ms_since(Clock::time_point start) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count();
}

// ----------------------------------------------------------------------- etcd processes

class EtcdMember {
 public:
  EtcdMember(std::string name, int client_port, int peer_port)
      : name_(std::move(name)), client_port_(client_port), peer_port_(peer_port) {}
  EtcdMember(const EtcdMember&) = delete;
  EtcdMember& operator=(const EtcdMember&) = delete;
  ~EtcdMember() { kill(); }

  std::string client_url() const { return "http://127.0.0.1:" + std::to_string(client_port_); }
  std::string peer_url() const { return "http://127.0.0.1:" + std::to_string(peer_port_); }
  std::string cluster_entry() const { return name_ + "=" + peer_url(); }
  std::filesystem::path data_dir() const { return scratch() / (name_ + ".data"); }
  std::filesystem::path log_path() const { return scratch() / (name_ + ".log"); }

  // Removes what an earlier run left (a fresh member, not a restart).
  void wipe() {
    std::error_code ec;
    std::filesystem::remove_all(data_dir(), ec);
    std::filesystem::remove(log_path(), ec);
  }

  // Starts etcd as a member of `initial_cluster` ("n1=http://...,n2=..."); with an existing
  // data directory, a restart of the same member.
  void start(const std::string& initial_cluster) {
    ASSERT_EQ(pid_, -1) << name_ << " runs already";
    // clang-format off
    std::vector<std::string> argv = {
        env_or("MOBIKE_ETCD", "/usr/bin/etcd"),
        "--name", name_,
        "--data-dir", data_dir().string(),
        "--listen-client-urls", client_url(),
        "--advertise-client-urls", client_url(),
        "--listen-peer-urls", peer_url(),
        "--initial-advertise-peer-urls", peer_url(),
        "--initial-cluster", initial_cluster,
        "--initial-cluster-state", "new",
        "--initial-cluster-token", "mobike-it",
        "--heartbeat-interval", "50",
        "--election-timeout", "500",
        "--logger", "zap",
        "--log-level", "warn",
    };
    // clang-format on
    std::vector<char*> args;
    for (auto& a : argv) args.push_back(a.data());
    args.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&actions, 1, log_path().c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    posix_spawn_file_actions_adddup2(&actions, 1, 2);
    pid_t pid = -1;
    int rc = posix_spawn(&pid, args[0], &actions, nullptr, args.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    ASSERT_EQ(rc, 0) << "posix_spawn " << argv[0] << ": " << std::strerror(rc);
    pid_ = pid;
  }

  void kill() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
  }

  bool running() const { return pid_ > 0; }

  // The member answers a read (with a leader: the client asks for one).
  ::testing::AssertionResult wait_ready(std::chrono::milliseconds within = 10s) const {
    auto client = EtcdClient::create({.endpoints = {client_url()}, .timeout = 300ms});
    if (!client) return ::testing::AssertionFailure() << client.error().to_string();
    auto deadline = Clock::now() + within;
    std::string last;
    while (Clock::now() < deadline) {
      auto r = client->get("ready-probe");
      if (r) return ::testing::AssertionSuccess();
      last = r.error().to_string();
      std::this_thread::sleep_for(50ms);
    }
    return ::testing::AssertionFailure() << name_ << " not ready within " << within.count() << " ms: " << last << "\n"
                                         << log_tail();
  }

  std::string log_tail(std::size_t lines = 20) const {
    std::ifstream in(log_path());
    std::vector<std::string> all;
    for (std::string line; std::getline(in, line);) all.push_back(line);
    std::string out;
    for (std::size_t i = all.size() > lines ? all.size() - lines : 0; i < all.size(); ++i) out += all[i] + "\n";
    return out;
  }

 private:
  std::string name_;
  int client_port_;
  int peer_port_;
  pid_t pid_ = -1;
};

// ----------------------------------------------------------------------- watch recorder

// Collects a watch's updates; the test thread waits for what it expects.
class Recorder {
 public:
  EtcdWatch::Callback callback() {
    return [this](const WatchUpdate& u) {
      std::lock_guard lock(mutex_);
      updates_.push_back(u);
      changed_.notify_all();
    };
  }

  bool wait_for(const std::function<bool(const std::vector<WatchUpdate>&)>& done, std::chrono::milliseconds within) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, within, [&] { return done(updates_); });
  }

  bool wait_events(std::size_t n, std::chrono::milliseconds within = 5s) {
    return wait_for([&](const auto& ups) { return count_events(ups) >= n; }, within);
  }

  bool wait_kind(WatchUpdate::Kind kind, std::chrono::milliseconds within = 5s, std::size_t nth = 1) {
    return wait_for(
        [&](const auto& ups) {
          return static_cast<std::size_t>(std::count_if(ups.begin(), ups.end(),
                                                        [&](const WatchUpdate& u) { return u.kind == kind; })) >= nth;
        },
        within);
  }

  std::vector<WatchUpdate> updates() {
    std::lock_guard lock(mutex_);
    return updates_;
  }

  std::vector<WatchEvent> events() {
    std::vector<WatchEvent> out;
    for (const auto& u : updates())
      for (const auto& e : u.events) out.push_back(e);
    return out;
  }

  std::string describe() {
    std::ostringstream out;
    for (const auto& u : updates()) {
      out << "  " << etcd::to_string(u.kind) << " rev=" << u.revision << " at " << u.endpoint;
      for (const auto& e : u.events)
        out << " [" << (e.type == WatchEvent::Type::kPut ? "PUT " : "DELETE ") << e.kv.key << "@" << e.kv.mod_revision
            << "]";
      if (u.error) out << " " << u.error->to_string();
      if (u.resumed) out << " (resumed)";
      out << "\n";
    }
    return out.str();
  }

 private:
  static std::size_t count_events(const std::vector<WatchUpdate>& ups) {
    std::size_t n = 0;
    for (const auto& u : ups) n += u.events.size();
    return n;
  }

  std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<WatchUpdate> updates_;
};

std::vector<std::string> keys_of(const std::vector<WatchEvent>& events) {
  std::vector<std::string> out;
  for (const auto& e : events) out.push_back(e.kv.key);
  return out;
}

EtcdClient make_client(std::vector<std::string> endpoints, std::chrono::milliseconds timeout = 2000ms) {
  auto c = EtcdClient::create({.endpoints = std::move(endpoints), .timeout = timeout, .connect_timeout = 300ms});
  if (!c) {
    ADD_FAILURE() << c.error().to_string();
    std::abort();
  }
  return std::move(*c);
}

// ----------------------------------------------------------------------- one member

class EtcdSingle : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    member_ = new EtcdMember("single", 23790, 23800);
    member_->wipe();
    member_->start(member_->cluster_entry());
    ASSERT_TRUE(member_->wait_ready());
  }
  static void TearDownTestSuite() {
    delete member_;
    member_ = nullptr;
  }
  void SetUp() override {
    if (member_ == nullptr || !member_->running()) GTEST_SKIP() << "the etcd member did not start";
  }
  void TearDown() override {
    if (HasFailure()) std::cerr << "---- " << member_->log_path() << ":\n" << member_->log_tail();
  }

  static EtcdMember* member_;
};
EtcdMember* EtcdSingle::member_ = nullptr;

TEST_F(EtcdSingle, LeaseGrantKeepaliveExpiryAndRevoke) {
  auto client = make_client({member_->client_url()});
  auto lease = client.lease_grant(2);
  ASSERT_TRUE(lease) << lease.error().to_string();
  EXPECT_NE(lease->id, 0);
  EXPECT_EQ(lease->ttl, 2);
  ASSERT_TRUE(client.put("lease/node", "alive", lease->id));
  auto kv = client.get("lease/node");
  ASSERT_TRUE(kv && kv->kvs.size() == 1);
  EXPECT_EQ(kv->kvs[0].lease, lease->id);

  // Kept alive well past its TTL.
  auto start = Clock::now();
  auto last_keepalive = start;
  while (Clock::now() - start < 2500ms) {
    auto ttl = client.lease_keepalive(lease->id);
    ASSERT_TRUE(ttl) << ttl.error().to_string();
    last_keepalive = Clock::now();
    EXPECT_EQ(*ttl, 2);
    std::this_thread::sleep_for(500ms);
  }
  ASSERT_EQ(client.get("lease/node")->kvs.size(), 1u) << "the key went with a lease that was kept alive";

  // Left alone, the lease expires and takes its key along.
  bool gone = false;
  while (!gone && Clock::now() - last_keepalive < 6s) {
    std::this_thread::sleep_for(100ms);
    auto r = client.get("lease/node");
    ASSERT_TRUE(r) << r.error().to_string();
    gone = r->kvs.empty();
  }
  auto expired_after = ms_since(last_keepalive);
  ASSERT_TRUE(gone) << "key still there " << expired_after << " ms after the last keepalive";
  EXPECT_GE(expired_after, 1800);
  std::cout << "lease of TTL 2 s expired " << expired_after << " ms after the last keepalive\n";
  auto late = client.lease_keepalive(lease->id);
  ASSERT_FALSE(late);
  EXPECT_EQ(late.error().kind, Kind::kLeaseNotFound) << late.error().to_string();
  auto orphan = client.put("lease/orphan", "x", lease->id);
  ASSERT_FALSE(orphan);
  EXPECT_EQ(orphan.error().kind, Kind::kLeaseNotFound) << orphan.error().to_string();

  // A revoked lease takes its key at once.
  auto other = client.lease_grant(60);
  ASSERT_TRUE(other);
  ASSERT_TRUE(client.put("lease/revoked", "x", other->id));
  ASSERT_TRUE(client.lease_revoke(other->id));
  EXPECT_TRUE(client.get("lease/revoked")->kvs.empty());
  auto again = client.lease_revoke(other->id);
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().kind, Kind::kLeaseNotFound);
}

TEST_F(EtcdSingle, PutGetRangeDelete) {
  auto client = make_client({member_->client_url()});
  const std::string binary = std::string("\0\xff\n\"", 4);
  auto r1 = client.put("pgrd/a", binary);
  ASSERT_TRUE(r1) << r1.error().to_string();
  auto r2 = client.put("pgrd/b", "2");
  auto r3 = client.put("pgrd/c", "");
  ASSERT_TRUE(r2 && r3);
  EXPECT_LT(*r1, *r2);
  EXPECT_LT(*r2, *r3);
  ASSERT_TRUE(client.put("pgrd0", "just past the prefix"));
  ASSERT_TRUE(client.put("pgrc/z", "just before it"));

  auto a = client.get("pgrd/a");
  ASSERT_TRUE(a) << a.error().to_string();
  ASSERT_EQ(a->kvs.size(), 1u);
  EXPECT_EQ(a->kvs[0].key, "pgrd/a");
  EXPECT_EQ(a->kvs[0].value, binary);
  EXPECT_EQ(a->kvs[0].create_revision, *r1);
  EXPECT_EQ(a->kvs[0].mod_revision, *r1);
  EXPECT_EQ(a->kvs[0].version, 1);
  EXPECT_EQ(a->kvs[0].lease, 0);
  EXPECT_GE(a->revision(), *r3);

  auto r4 = client.put("pgrd/a", "changed");
  ASSERT_TRUE(r4);
  a = client.get("pgrd/a");
  EXPECT_EQ(a->kvs.at(0).version, 2);
  EXPECT_EQ(a->kvs.at(0).create_revision, *r1);
  EXPECT_EQ(a->kvs.at(0).mod_revision, *r4);

  auto all = client.range("pgrd/");
  ASSERT_TRUE(all) << all.error().to_string();
  ASSERT_EQ(all->kvs.size(), 3u);
  EXPECT_EQ(all->count, 3);
  EXPECT_EQ(all->kvs[0].key, "pgrd/a");
  EXPECT_EQ(all->kvs[1].key, "pgrd/b");
  EXPECT_EQ(all->kvs[2].key, "pgrd/c");
  EXPECT_EQ(all->kvs[2].value, "");
  auto limited = client.range(etcd::RangeRequest{.key = "pgrd/", .range_end = "pgrd0", .limit = 1});
  ASSERT_TRUE(limited);
  EXPECT_EQ(limited->kvs.size(), 1u);
  EXPECT_TRUE(limited->more);
  EXPECT_EQ(limited->count, 3);

  auto missing = client.get("pgrd/none");
  ASSERT_TRUE(missing);
  EXPECT_TRUE(missing->kvs.empty());
  EXPECT_GT(missing->revision(), 0);

  auto d = client.del("pgrd/a");
  ASSERT_TRUE(d) << d.error().to_string();
  EXPECT_EQ(d->deleted, 1);
  EXPECT_TRUE(client.get("pgrd/a")->kvs.empty());
  EXPECT_EQ(client.del("pgrd/a")->deleted, 0);
  auto dp = client.del_prefix("pgrd/");
  ASSERT_TRUE(dp);
  EXPECT_EQ(dp->deleted, 2);
  EXPECT_TRUE(client.range("pgrd/")->kvs.empty());
  EXPECT_EQ(client.get("pgrd0")->kvs.size(), 1u);
  EXPECT_EQ(client.get("pgrc/z")->kvs.size(), 1u);
}

TEST_F(EtcdSingle, TxnOwnershipComparesOnModRevision) {
  auto node_a = make_client({member_->client_url()});
  auto node_b = make_client({member_->client_url()});
  const std::string key = "own/sas/0123456789abcdef-fedcba9876543210";

  // Creation: only if absent (create_revision 0).
  std::vector<Compare> absent = {Compare::create_revision(key, Compare::Result::kEqual, 0)};
  std::vector<Op> claim_a = {Op::put_kv(key, "owner=A")};
  auto created = node_a.txn(absent, claim_a);
  ASSERT_TRUE(created) << created.error().to_string();
  EXPECT_TRUE(created->succeeded);
  std::vector<Op> claim_b = {Op::put_kv(key, "owner=B")};
  std::vector<Op> read = {Op::get(key)};
  auto lost = node_b.txn(absent, claim_b, read);
  ASSERT_TRUE(lost) << lost.error().to_string();
  EXPECT_FALSE(lost->succeeded);
  ASSERT_EQ(lost->responses.size(), 1u);
  ASSERT_EQ(lost->responses[0].kind, Op::Kind::kRange);
  ASSERT_EQ(lost->responses[0].range.kvs.size(), 1u);
  EXPECT_EQ(lost->responses[0].range.kvs[0].value, "owner=A");

  // Both nodes read the same mod_revision; A hands the SA to B first, so B's stale write
  // (a node that has not seen the handoff) fails, and its failure op shows why.
  std::int64_t seen = node_b.get(key)->kvs.at(0).mod_revision;
  EXPECT_EQ(seen, created->revision());
  std::vector<Compare> unchanged = {Compare::mod_revision(key, Compare::Result::kEqual, seen)};
  std::vector<Op> handoff = {Op::put_kv(key, "owner=B;from=A")};
  auto moved = node_a.txn(unchanged, handoff, read);
  ASSERT_TRUE(moved) << moved.error().to_string();
  EXPECT_TRUE(moved->succeeded);
  ASSERT_EQ(moved->responses.size(), 1u);
  EXPECT_EQ(moved->responses[0].kind, Op::Kind::kPut);
  EXPECT_EQ(moved->responses[0].put.revision(), moved->revision());
  std::vector<Op> stale_write = {Op::put_kv(key, "owner=C")};
  auto stale = node_b.txn(unchanged, stale_write, read);
  ASSERT_TRUE(stale) << stale.error().to_string();
  EXPECT_FALSE(stale->succeeded);
  ASSERT_EQ(stale->responses.at(0).range.kvs.size(), 1u);
  EXPECT_EQ(stale->responses[0].range.kvs[0].value, "owner=B;from=A");
  EXPECT_EQ(stale->responses[0].range.kvs[0].mod_revision, moved->revision());
  EXPECT_EQ(stale->revision(), moved->revision()) << "a failed txn changes nothing";
}

TEST_F(EtcdSingle, TxnComparesOnEveryTarget) {
  auto client = make_client({member_->client_url()});
  auto lease = client.lease_grant(30);
  ASSERT_TRUE(lease);
  ASSERT_TRUE(client.put("cmp/k", "v1", lease->id));
  ASSERT_TRUE(client.put("cmp/k", "v2", lease->id));  // version 2
  struct Case {
    Compare compare;
    bool holds;
  };
  const std::vector<Case> cases = {
      {Compare::version("cmp/k", Compare::Result::kEqual, 2), true},
      {Compare::version("cmp/k", Compare::Result::kGreater, 2), false},
      {Compare::version("cmp/k", Compare::Result::kLess, 3), true},
      {Compare::version("cmp/k", Compare::Result::kNotEqual, 2), false},
      {Compare::create_revision("cmp/k", Compare::Result::kGreater, 0), true},
      {Compare::mod_revision("cmp/k", Compare::Result::kLess, 1), false},
      {Compare::value_is("cmp/k", Compare::Result::kEqual, "v2"), true},
      {Compare::value_is("cmp/k", Compare::Result::kNotEqual, "v2"), false},
      {Compare::value_is("cmp/k", Compare::Result::kGreater, "v1"), true},
      {Compare::lease("cmp/k", Compare::Result::kEqual, lease->id), true},
      {Compare::lease("cmp/k", Compare::Result::kEqual, 0), false},
      {Compare::version("cmp/missing", Compare::Result::kEqual, 0), true},
  };
  for (std::size_t i = 0; i < cases.size(); ++i) {
    std::vector<Compare> cmp = {cases[i].compare};
    auto r = client.txn(cmp, {}, {});
    ASSERT_TRUE(r) << i << ": " << r.error().to_string();
    EXPECT_EQ(r->succeeded, cases[i].holds) << "case " << i;
  }
  ASSERT_TRUE(client.lease_revoke(lease->id));
}

TEST_F(EtcdSingle, BatchOfThousandPutsSplitIntoTransactions) {
  auto client = make_client({member_->client_url()});
  ASSERT_EQ(client.max_txn_ops(), 128u);
  std::vector<etcd::PutRequest> puts;
  for (int i = 0; i < 1000; ++i) {
    char key[32];
    std::snprintf(key, sizeof key, "batch/%04d", i);
    puts.push_back({.key = key, .value = std::string(200, static_cast<char>('a' + i % 26))});
  }
  auto start = Clock::now();
  auto r = client.put_batch(puts);
  ASSERT_TRUE(r) << r.error().to_string();
  std::cout << "1000 puts of 200 octets in " << r->txns << " transactions: " << ms_since(start) << " ms\n";
  EXPECT_EQ(r->txns, 8u);  // 7 x 128 + 104
  auto all = client.range("batch/");
  ASSERT_TRUE(all) << all.error().to_string();
  ASSERT_EQ(all->kvs.size(), 1000u);
  EXPECT_EQ(all->kvs[999].key, "batch/0999");
  EXPECT_EQ(all->kvs[999].value, std::string(200, static_cast<char>('a' + 999 % 26)));
  EXPECT_EQ(all->kvs[999].mod_revision, r->revision);

  // Why the split: etcd refuses one op more than its limit, and a key twice in a txn.
  std::vector<Op> too_many;
  for (int i = 0; i < 129; ++i) too_many.push_back(Op::put_kv("batch/x" + std::to_string(i), "v"));
  auto refused = client.txn({}, too_many);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().kind, Kind::kEtcd);
  EXPECT_EQ(refused.error().http_status, 400);
  EXPECT_NE(refused.error().message.find("too many operations"), std::string::npos) << refused.error().to_string();
  std::vector<etcd::PutRequest> repeated = {{.key = "batch/r", .value = "1"},
                                            {.key = "batch/s", .value = "1"},
                                            {.key = "batch/r", .value = "2"}};
  auto twice = client.put_batch(repeated);
  ASSERT_TRUE(twice) << twice.error().to_string();
  EXPECT_EQ(twice->txns, 2u);
  EXPECT_EQ(client.get("batch/r")->kvs.at(0).value, "2");
  EXPECT_EQ(client.del_prefix("batch/")->deleted, 1002);
}

TEST_F(EtcdSingle, WatchFromAPastRevisionGetsHistoryThenLiveEvents) {
  auto client = make_client({member_->client_url()});
  auto r1 = client.put("w/k1", "one");
  ASSERT_TRUE(r1);
  ASSERT_TRUE(client.put("w/k2", "two"));
  ASSERT_TRUE(client.put("w/k1", "one again"));
  ASSERT_TRUE(client.del("w/k2"));
  ASSERT_TRUE(client.put("wx", "outside the prefix"));

  Recorder rec;
  auto watch = client.watch({.key = "w/",
                             .range_end = etcd::prefix_range_end("w/"),
                             .start_revision = *r1,
                             .prev_kv = true},
                            rec.callback());
  ASSERT_TRUE(watch) << watch.error().to_string();
  ASSERT_TRUE(rec.wait_events(4)) << rec.describe();
  auto history = rec.events();
  ASSERT_EQ(history.size(), 4u) << rec.describe();
  EXPECT_EQ(keys_of(history), (std::vector<std::string>{"w/k1", "w/k2", "w/k1", "w/k2"}));
  EXPECT_EQ(history[0].type, WatchEvent::Type::kPut);
  EXPECT_EQ(history[0].kv.mod_revision, *r1);
  EXPECT_FALSE(history[0].prev_kv);
  EXPECT_EQ(history[2].kv.value, "one again");
  ASSERT_TRUE(history[2].prev_kv);
  EXPECT_EQ(history[2].prev_kv->value, "one");
  EXPECT_EQ(history[3].type, WatchEvent::Type::kDelete);
  ASSERT_TRUE(history[3].prev_kv);
  EXPECT_EQ(history[3].prev_kv->value, "two");
  for (std::size_t i = 1; i < history.size(); ++i)
    EXPECT_GT(history[i].kv.mod_revision, history[i - 1].kv.mod_revision);
  EXPECT_EQ(rec.updates().front().kind, WatchUpdate::Kind::kCreated);

  auto live = client.put("w/k3", "live");
  ASSERT_TRUE(live);
  ASSERT_TRUE(rec.wait_events(5)) << rec.describe();
  EXPECT_EQ(rec.events().back().kv.key, "w/k3");
  EXPECT_EQ(rec.events().back().kv.mod_revision, *live);
  EXPECT_EQ(watch->next_revision(), *live + 1);

  // stop() ends the idle stream at once, not at a progress tick; no callback after it.
  auto start = Clock::now();
  watch->stop();
  auto stop_ms = ms_since(start);
  std::cout << "watch stop() took " << stop_ms << " ms\n";
  EXPECT_LT(stop_ms, 200);
  EXPECT_FALSE(watch->running());
  auto seen = rec.updates().size();
  ASSERT_TRUE(client.put("w/k4", "after stop"));
  std::this_thread::sleep_for(200ms);
  EXPECT_EQ(rec.updates().size(), seen);
}

TEST_F(EtcdSingle, FailsOverPastUnreachableEndpointsAndRemembersTheOneThatAnswered) {
  // 127.0.0.2 drops SYNs (a connect timeout); port 23797 refuses.
  const std::string blackhole = "http://" + env_or("MOBIKE_ETCD_BLACKHOLE", "127.0.0.2") + ":2379";
  auto client = make_client({blackhole, "http://127.0.0.1:23797", member_->client_url()}, 2000ms);
  auto start = Clock::now();
  auto first = client.put("failover/k", "v");
  auto first_ms = ms_since(start);
  ASSERT_TRUE(first) << first.error().to_string();
  EXPECT_EQ(client.current_endpoint(), member_->client_url());
  EXPECT_GE(first_ms, 250) << "the blackholed endpoint was not tried first";
  start = Clock::now();
  ASSERT_TRUE(client.get("failover/k"));
  EXPECT_LT(ms_since(start), 250) << "the next call did not go to the endpoint that answered";
  std::cout << "first call past a blackholed and a refusing endpoint: " << first_ms << " ms\n";
}

// ----------------------------------------------------------------------- no etcd

TEST(EtcdUnreachable, RefusedEndpointFailsAtOnceNamingIt) {
  auto client = make_client({"http://127.0.0.1:23797"}, 1000ms);
  auto start = Clock::now();
  auto r = client.get("k");
  auto elapsed = ms_since(start);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, Kind::kUnreachable);
  EXPECT_EQ(r.error().endpoint, "http://127.0.0.1:23797");
  EXPECT_NE(r.error().to_string().find("refused"), std::string::npos) << r.error().to_string();
  EXPECT_LT(elapsed, 500);
  std::cout << r.error().to_string() << " (" << elapsed << " ms)\n";
}

TEST(EtcdUnreachable, BlackholedEndpointTimesOutWithinTheTimeout) {
  const std::string blackhole = "http://" + env_or("MOBIKE_ETCD_BLACKHOLE", "127.0.0.2") + ":2379";
  auto client = make_client({blackhole}, 800ms);
  auto start = Clock::now();
  auto r = client.get("k");
  auto elapsed = ms_since(start);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, Kind::kUnreachable) << r.error().to_string();
  EXPECT_NE(r.error().message.find("connect timed out"), std::string::npos) << r.error().to_string();
  EXPECT_LT(elapsed, 900);
  std::cout << r.error().to_string() << " (" << elapsed << " ms)\n";
}

TEST(EtcdUnreachable, SilentServerTimesOutWithinTheTimeout) {
  // A listening socket that never accepts: the kernel completes the handshake and takes
  // the request, and no answer ever comes.
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(23796);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0) << std::strerror(errno);
  ASSERT_EQ(::listen(fd, 8), 0);
  auto client = make_client({"http://127.0.0.1:23796"}, 600ms);
  auto start = Clock::now();
  auto r = client.put("k", "v");
  auto elapsed = ms_since(start);
  ::close(fd);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, Kind::kTimeout) << r.error().to_string();
  EXPECT_GE(elapsed, 550);
  EXPECT_LT(elapsed, 1000);
  std::cout << r.error().to_string() << " (" << elapsed << " ms)\n";
}

// ----------------------------------------------------------------------- a killed member

TEST(EtcdRestart, WatchReportsAKilledEtcdAndResumesAfterTheLastEvent) {
  EtcdMember member("restart", 23791, 23801);
  member.wipe();
  member.start(member.cluster_entry());
  ASSERT_TRUE(member.wait_ready());
  auto client = make_client({member.client_url()});
  Recorder rec;
  auto watch = client.watch({.key = "r/", .range_end = etcd::prefix_range_end("r/")}, rec.callback(),
                            {.retry_min = 50ms, .retry_max = 400ms});
  ASSERT_TRUE(watch) << watch.error().to_string();
  ASSERT_TRUE(rec.wait_kind(WatchUpdate::Kind::kCreated)) << rec.describe();
  auto r1 = client.put("r/1", "before");
  ASSERT_TRUE(r1);
  ASSERT_TRUE(rec.wait_events(1)) << rec.describe();

  auto killed = Clock::now();
  member.kill();
  ASSERT_TRUE(rec.wait_kind(WatchUpdate::Kind::kDisconnected, 3s)) << rec.describe();
  std::cout << "watch reported the killed etcd after " << ms_since(killed) << " ms\n";
  auto down = client.get("r/1");
  ASSERT_FALSE(down);
  EXPECT_EQ(down.error().kind, Kind::kUnreachable) << down.error().to_string();

  member.start(member.cluster_entry());
  ASSERT_TRUE(member.wait_ready());
  auto r2 = client.put("r/2", "after");
  ASSERT_TRUE(r2) << r2.error().to_string();
  ASSERT_TRUE(rec.wait_events(2)) << rec.describe();
  std::cout << "watch resumed " << ms_since(killed) << " ms after the kill\n";
  std::this_thread::sleep_for(200ms);
  auto events = rec.events();
  EXPECT_EQ(keys_of(events), (std::vector<std::string>{"r/1", "r/2"})) << rec.describe();
  auto updates = rec.updates();
  auto resumed = std::find_if(updates.begin(), updates.end(),
                              [](const WatchUpdate& u) { return u.kind == WatchUpdate::Kind::kCreated && u.resumed; });
  ASSERT_NE(resumed, updates.end()) << rec.describe();
  auto disconnected = std::find_if(updates.begin(), updates.end(),
                                   [](const WatchUpdate& u) { return u.kind == WatchUpdate::Kind::kDisconnected; });
  ASSERT_TRUE(disconnected->error);
  EXPECT_EQ(disconnected->error->endpoint, member.client_url());
  EXPECT_EQ(disconnected->revision, *r1);
  EXPECT_TRUE(watch->running());
}

// ----------------------------------------------------------------------- three members

class EtcdCluster : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string initial;
    for (int i = 0; i < 3; ++i) {
      members_.push_back(std::make_unique<EtcdMember>("cluster" + std::to_string(i + 1), 23792 + i, 23802 + i));
      initial += (i ? "," : "") + members_.back()->cluster_entry();
    }
    for (auto& m : members_) {
      m->wipe();
      m->start(initial);
    }
    for (auto& m : members_) ASSERT_TRUE(m->wait_ready());
  }
  void TearDown() override {
    if (HasFailure())
      for (auto& m : members_) std::cerr << "---- " << m->log_path() << ":\n" << m->log_tail();
    members_.clear();
  }
  // The index of the member the live members agree is the leader; -1 if none within 5 s.
  int leader_index() {
    auto deadline = Clock::now() + 5s;
    while (Clock::now() < deadline) {
      for (std::size_t i = 0; i < members_.size(); ++i) {
        if (!members_[i]->running()) continue;
        auto client = EtcdClient::create({.endpoints = {members_[i]->client_url()}, .timeout = 300ms});
        auto st = client ? client->status() : Expected<etcd::MemberStatus, EtcdError>(unexpected(client.error()));
        if (st && st->is_leader()) return static_cast<int>(i);
      }
      std::this_thread::sleep_for(50ms);
    }
    return -1;
  }

  std::vector<std::unique_ptr<EtcdMember>> members_;
};

TEST_F(EtcdCluster, CallsAndWatchFailOverWhenAFollowerIsKilled) {
  int leader = leader_index();
  ASSERT_GE(leader, 0);
  // The client and its watch start at a follower; the leader comes last.
  std::vector<int> order;
  for (int i = 0; i < 3; ++i)
    if (i != leader) order.push_back(i);
  order.push_back(leader);
  std::vector<std::string> endpoints;
  for (int i : order) endpoints.push_back(members_[i]->client_url());
  auto client = make_client(endpoints);
  ASSERT_TRUE(client.put("c/1", "on a follower"));
  ASSERT_EQ(client.current_endpoint(), endpoints[0]);
  Recorder rec;
  auto watch = client.watch({.key = "c/", .range_end = etcd::prefix_range_end("c/"), .start_revision = 1},
                            rec.callback(), {.retry_min = 50ms, .retry_max = 400ms});
  ASSERT_TRUE(watch) << watch.error().to_string();
  ASSERT_TRUE(rec.wait_events(1)) << rec.describe();

  auto killed = Clock::now();
  members_[order[0]]->kill();
  auto r2 = client.put("c/2", "after the first member died");
  auto put_ms = ms_since(killed);
  ASSERT_TRUE(r2) << r2.error().to_string();
  EXPECT_EQ(client.current_endpoint(), endpoints[1]);
  EXPECT_LT(put_ms, 500) << "a refused endpoint should cost nothing";
  std::vector<Compare> same = {Compare::mod_revision("c/2", Compare::Result::kEqual, *r2)};
  std::vector<Op> put3 = {Op::put_kv("c/3", "txn")};
  auto txn_ok = client.txn(same, put3);
  ASSERT_TRUE(txn_ok) << txn_ok.error().to_string();
  EXPECT_TRUE(txn_ok->succeeded);

  ASSERT_TRUE(rec.wait_events(3)) << rec.describe();
  auto resumed_ms = ms_since(killed);
  std::this_thread::sleep_for(200ms);
  EXPECT_EQ(keys_of(rec.events()), (std::vector<std::string>{"c/1", "c/2", "c/3"})) << rec.describe();
  auto updates = rec.updates();
  auto created = std::find_if(updates.begin(), updates.end(),
                              [](const WatchUpdate& u) { return u.kind == WatchUpdate::Kind::kCreated && u.resumed; });
  ASSERT_NE(created, updates.end()) << rec.describe();
  EXPECT_NE(created->endpoint, endpoints[0]);
  std::cout << "follower killed: the next put answered after " << put_ms << " ms by " << client.current_endpoint()
            << "; the watch resumed on " << created->endpoint << ", every event in after " << resumed_ms << " ms\n";
}

TEST_F(EtcdCluster, LeaderKilledCallsRecoverAndTheWatchLosesNothing) {
  int leader = leader_index();
  ASSERT_GE(leader, 0);
  std::vector<std::string> endpoints = {members_[leader]->client_url()};
  for (int i = 0; i < 3; ++i)
    if (i != leader) endpoints.push_back(members_[i]->client_url());
  auto client = make_client(endpoints, 1000ms);
  ASSERT_TRUE(client.put("l/0", "before"));
  Recorder rec;
  auto watch = client.watch({.key = "l/", .range_end = etcd::prefix_range_end("l/"), .start_revision = 1},
                            rec.callback(), {.retry_min = 50ms, .retry_max = 400ms});
  ASSERT_TRUE(watch) << watch.error().to_string();
  ASSERT_TRUE(rec.wait_events(1)) << rec.describe();

  // A put the dead leader took may never be answered (a timeout: it may or may not have
  // been applied, so the client does not send it again); the caller tries again, under a
  // new key each time, until a new leader answers.
  auto killed = Clock::now();
  members_[leader]->kill();
  std::vector<std::string> written = {"l/0"}, unknown;
  std::string errors;
  while (written.size() < 3 && Clock::now() - killed < 8s) {
    std::string key = "l/" + std::to_string(written.size() + unknown.size());
    auto start = Clock::now();
    auto r = client.put(key, "v");
    EXPECT_LT(ms_since(start), 1500) << "a call overran its timeout";
    if (r) {
      written.push_back(key);
    } else {
      unknown.push_back(key);
      errors += "  " + r.error().to_string() + "\n";
    }
  }
  auto recovered_ms = ms_since(killed);
  ASSERT_EQ(written.size(), 3u) << "no put succeeded within 8 s of the leader's death:\n" << errors;
  std::cout << "leader killed: puts answered again after " << recovered_ms << " ms (" << unknown.size()
            << " unanswered before):\n"
            << errors;

  // Every put that succeeded reaches the watch exactly once, in order; an unanswered one
  // at most once.
  ASSERT_TRUE(rec.wait_events(written.size())) << rec.describe();
  std::this_thread::sleep_for(300ms);
  auto seen = keys_of(rec.events());
  for (const auto& key : written)
    EXPECT_EQ(std::count(seen.begin(), seen.end(), key), 1) << key << "\n" << rec.describe();
  for (const auto& key : unknown) EXPECT_LE(std::count(seen.begin(), seen.end(), key), 1) << key;
  EXPECT_TRUE(std::is_sorted(seen.begin(), seen.end(), [](const std::string& a, const std::string& b) {
    return std::stoi(a.substr(2)) < std::stoi(b.substr(2));
  })) << rec.describe();

  // Two of three gone: no quorum. The last member refuses ("no leader", which the client
  // asks for) once it notices, instead of holding requests until they time out.
  int second = leader == 0 ? 1 : 0;
  members_[second]->kill();
  auto quorum_lost = Clock::now();
  std::optional<EtcdError> last;
  std::string seen_errors;
  while (Clock::now() - quorum_lost < 5s) {
    auto start = Clock::now();
    auto r = client.get("l/0", 500ms);
    EXPECT_LT(ms_since(start), 900);
    if (!r) seen_errors += "  " + r.error().to_string() + "\n";
    if (!r && etcd::is_no_leader(r.error())) {
      last = r.error();
      break;
    }
    std::this_thread::sleep_for(100ms);
  }
  ASSERT_TRUE(last) << "the surviving member never said it has no leader:\n" << seen_errors;
  std::cout << "quorum lost: " << last->to_string() << " after " << ms_since(quorum_lost) << " ms\n";
}

}  // namespace
}  // namespace mobike::platform

namespace {

// Only interfaces of a private namespace: lo and nothing else.
bool only_loopback(std::string& found) {
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/sys/class/net", ec)) {
    std::string name = entry.path().filename().string();
    if (name != "lo") found += name + " ";
  }
  return !ec && found.empty();
}

}  // namespace

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  if (std::getenv("MOBIKE_ETCD_IN_NETNS") == nullptr) {
    std::cout << "SKIP: runs only inside the namespace test_etcd_client.py creates (MOBIKE_ETCD_IN_NETNS)\n";
    return 77;
  }
  std::string others;
  if (!only_loopback(others)) {
    std::cerr << "refusing to run: this namespace has interfaces besides lo: " << others << "\n";
    return 1;
  }
  ::signal(SIGPIPE, SIG_IGN);
  return RUN_ALL_TESTS();
}
