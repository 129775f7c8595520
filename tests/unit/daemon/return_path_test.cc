// The return path in hook mode: which data-plane operations run the hook, with what in
// its environment. (Proxy ARP needs a LAN: netns.proxy_arp, netns.cluster.move.)
#include "daemon/return_path.h"

#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <sstream>
#include <thread>

#include "ike/traffic_selector.h"
#include "temp_dir.h"

namespace mobike::daemon {
namespace {

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// The hook runs detached: wait for it to have written `lines` lines.
std::string wait_lines(const std::string& path, std::size_t lines) {
  for (int i = 0; i < 500; ++i) {
    auto text = read_file(path);
    if (static_cast<std::size_t>(std::count(text.begin(), text.end(), '\n')) >= lines) return text;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return read_file(path);
}

ike::DataplaneOp install(std::uint64_t ike, std::uint64_t child, std::vector<std::string> remote, bool moved = false) {
  ike::DataplaneOp op;
  op.kind = ike::DataplaneOp::Kind::kInstall;
  op.ike_sa_id = ike;
  op.child_sa_id = child;
  for (const auto& r : remote) op.remote_ts.push_back(ike::ts_from_prefix(*IpPrefix::parse(r)));
  if (moved) op.resume = ike::EspState{};
  return op;
}

ike::DataplaneOp remove(std::uint64_t child) {
  ike::DataplaneOp op;
  op.kind = ike::DataplaneOp::Kind::kDelete;
  op.child_sa_id = child;
  return op;
}

TEST(ReturnPathHook, RunsOnTakeAndReleaseWithTheSelectors) {
  testing::TempDir dir;
  const std::string out = dir.file("hook.log");
  ClusterConfig c;
  c.node = "gw2";
  c.return_traffic = ReturnTraffic::kHook;
  c.hook = "echo \"$MOBIKED_VERB $MOBIKED_NODE $MOBIKED_IKE_SA $MOBIKED_CHILD_SA [$MOBIKED_REMOTE_TS]\" >> " + out;
  auto rp = ReturnPath::create(c);
  ASSERT_TRUE(rp) << rp.error();
  (*rp)->on_dataplane_op(install(4, 7, {"192.0.2.1/32", "10.9.0.0/16"}, true));
  EXPECT_EQ(wait_lines(out, 1), "take gw2 4 7 [192.0.2.1/32 10.9.0.0/16]\n");
  // Operations that neither add nor remove a Child SA run nothing.
  ike::DataplaneOp update;
  update.kind = ike::DataplaneOp::Kind::kUpdateAddresses;
  update.child_sa_id = 7;
  (*rp)->on_dataplane_op(update);
  (*rp)->on_dataplane_op(remove(7));
  EXPECT_EQ(wait_lines(out, 2), "take gw2 4 7 [192.0.2.1/32 10.9.0.0/16]\nrelease gw2 4 7 [192.0.2.1/32 10.9.0.0/16]\n");
  // A Child SA it never saw taken is not released.
  (*rp)->on_dataplane_op(remove(99));
  // A move that came back here announces again what its Child SAs attract.
  (*rp)->on_dataplane_op(install(5, 8, {"192.0.2.2/32"}));
  (*rp)->announce(5);
  auto text = wait_lines(out, 4);
  EXPECT_EQ(text.substr(text.find("take gw2 5")), "take gw2 5 8 [192.0.2.2/32]\ntake gw2 5 8 [192.0.2.2/32]\n");
  EXPECT_EQ((*rp)->counters().taken, 2u);
  EXPECT_EQ((*rp)->counters().released, 1u);
  EXPECT_EQ((*rp)->counters().hook_runs, 4u);
}

TEST(ReturnPathHook, AFailingHookIsCounted) {
  ClusterConfig c;
  c.node = "gw1";
  c.return_traffic = ReturnTraffic::kHook;
  c.hook = "exit 3";
  auto rp = ReturnPath::create(c);
  ASSERT_TRUE(rp) << rp.error();
  (*rp)->on_dataplane_op(install(1, 2, {"192.0.2.1/32"}));
  // Reaped on a later call: give the shell time to end.
  for (int i = 0; i < 300 && (*rp)->counters().hook_failures == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    (*rp)->on_dataplane_op(remove(42));
  }
  EXPECT_EQ((*rp)->counters().hook_failures, 1u);
}

TEST(ReturnPathHook, NoneDoesNothing) {
  ClusterConfig c;
  c.return_traffic = ReturnTraffic::kNone;
  auto rp = ReturnPath::create(c);
  ASSERT_TRUE(rp) << rp.error();
  (*rp)->on_dataplane_op(install(1, 2, {"192.0.2.1/32"}));
  EXPECT_EQ((*rp)->counters().taken, 0u);
}

TEST(ReturnPathProxyArp, AMissingInterfaceIsAClearError) {
  ClusterConfig c;
  c.return_traffic = ReturnTraffic::kProxyArp;
  c.lan_interface = "no-such-if0";
  auto rp = ReturnPath::create(c);
  ASSERT_FALSE(rp);
  EXPECT_NE(rp.error().find("no-such-if0"), std::string::npos) << rp.error();
}

}  // namespace
}  // namespace mobike::daemon
