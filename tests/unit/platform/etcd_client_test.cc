// The parts of EtcdClient that need no etcd (tests/netns/test_etcd_client.py runs it
// against real ones): endpoints and arguments are checked before anything is sent.
#include "platform/etcd_client.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace mobike::platform {
namespace {

TEST(EtcdEndpoint, NormalisesHostPortAndUrls) {
  EXPECT_EQ(*normalize_etcd_endpoint("127.0.0.1:2379"), "http://127.0.0.1:2379");
  EXPECT_EQ(*normalize_etcd_endpoint("http://10.0.0.1:2379/"), "http://10.0.0.1:2379");
  EXPECT_EQ(*normalize_etcd_endpoint("https://etcd.example.org:2379"), "https://etcd.example.org:2379");
  EXPECT_EQ(*normalize_etcd_endpoint("http://[2001:db8::1]:2379"), "http://[2001:db8::1]:2379");
  for (const char* bad : {"ftp://h:1", "unix:///run/etcd.sock", "http://", "", "http://h:1/v3", ":2379"}) {
    auto e = normalize_etcd_endpoint(bad);
    ASSERT_FALSE(e) << bad;
    EXPECT_EQ(e.error().kind, EtcdError::Kind::kInvalidArgument) << bad;
  }
}

TEST(EtcdClient, RefusesNoOrBadEndpoints) {
  auto none = EtcdClient::create({});
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error().kind, EtcdError::Kind::kInvalidArgument);
  auto bad = EtcdClient::create({.endpoints = {"127.0.0.1:2379", "gopher://x:70"}});
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message.find("gopher://x:70"), std::string::npos);
}

TEST(EtcdClient, ChecksArgumentsBeforeSending) {
  // Endpoint port 9 (discard) is never contacted: every call below fails its checks first.
  auto client = EtcdClient::create({.endpoints = {"127.0.0.1:9"}});
  ASSERT_TRUE(client) << client.error().to_string();
  EXPECT_EQ(client->current_endpoint(), "http://127.0.0.1:9");
  EXPECT_EQ(client->max_txn_ops(), EtcdClient::kDefaultMaxTxnOps);
  EXPECT_EQ(client->put("", "v").error().kind, EtcdError::Kind::kInvalidArgument);
  EXPECT_EQ(client->get("").error().kind, EtcdError::Kind::kInvalidArgument);
  EXPECT_EQ(client->del("").error().kind, EtcdError::Kind::kInvalidArgument);
  EXPECT_EQ(client->lease_grant(0).error().kind, EtcdError::Kind::kInvalidArgument);
  auto batch = client->put_batch({});
  ASSERT_TRUE(batch);
  EXPECT_EQ(batch->txns, 0u);
}

TEST(EtcdWatch, RefusesAnEmptyKeyOrNoCallback) {
  auto w = EtcdWatch::start({"127.0.0.1:9"}, 0, {.key = ""}, [](const etcd::WatchUpdate&) {});
  ASSERT_FALSE(w);
  EXPECT_EQ(w.error().kind, EtcdError::Kind::kInvalidArgument);
  auto no_cb = EtcdWatch::start({"127.0.0.1:9"}, 0, {.key = "a"}, nullptr);
  ASSERT_FALSE(no_cb);
  auto no_ep = EtcdWatch::start({}, 0, {.key = "a"}, [](const etcd::WatchUpdate&) {});
  ASSERT_FALSE(no_ep);
}

}  // namespace
}  // namespace mobike::platform
