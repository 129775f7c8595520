// The engine's log lines carry the IKE SA they concern as data (for the daemon's journal
// fields), on both sides and behind a NAT, where the responder's view of the peer is the
// NAT's mapping.
#include <gtest/gtest.h>

#include "ike/ike_sa.h"
#include "ike_pair.h"

namespace mobike::sim {
namespace {

TEST(LogRecordSim, LinesAboutAnSaNameItsIdConnectionAndPeer) {
  Pair p(true);
  // No common ESP proposal: the responder logs why about its (established) IKE SA.
  p.configure(psk_connection("home", "198.51.100.10", "ini@example.test", "res@example.test",
                             "aes128gcm16-prfsha256-x25519", "aes256gcm16"),
              psk_connection("gw", "%any", "res@example.test", "ini@example.test", "aes128gcm16-prfsha256-x25519",
                             "aes128-sha256"));
  p.initiate();
  p.net.run_for(Duration(3000));
  const auto* res_sa = only_sa(*p.res);
  ASSERT_NE(res_sa, nullptr);
  ASSERT_EQ(res_sa->remote, (Endpoint{ip("198.51.100.2"), 4500}));

  const Host::Logged* found = nullptr;
  for (const auto& r : p.res->records)
    if (r.message.find("no acceptable ESP proposal") != std::string::npos) found = &r;
  ASSERT_NE(found, nullptr);
  ASSERT_TRUE(found->sa);
  EXPECT_EQ(found->sa->id, res_sa->id);
  EXPECT_EQ(found->sa->connection, "gw");
  EXPECT_EQ(found->sa->remote, res_sa->remote);

  // Every record's text is what the plain log shows, "[connection|id] " before the
  // message exactly when there is an SA.
  ASSERT_EQ(p.res->records.size(), p.res->log.size());
  for (std::size_t i = 0; i < p.res->records.size(); ++i) {
    const auto& r = p.res->records[i];
    std::string want = r.sa ? "[" + r.sa->connection + "|" + std::to_string(r.sa->id) + "] " + r.message : r.message;
    EXPECT_EQ(p.res->log[i], want);
  }
}

}  // namespace
}  // namespace mobike::sim
