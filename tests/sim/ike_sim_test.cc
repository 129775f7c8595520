// Two engines over the simulated network: IKE_SA_INIT, IKE_AUTH, Child SA, NAT
// traversal, retransmission, deletion and liveness, with exact checks of both views.
#include <gtest/gtest.h>

#include <cstdio>

#include "ike/ike_sa.h"
#include "ike/proposal_select.h"
#include "ike/traffic_selector.h"
#include "ike_pair.h"

namespace mobike::sim {
namespace {

using ike::EventKind;
using ike::IkeState;

TEST(IkeSim, EstablishesWithoutNatAndFloatsToNattPortForMobike) {
  Pair p(false);
  p.configure_default();
  p.initiate();
  ASSERT_TRUE(p.net.run_until([&] { return p.both_established(); }));
  auto* a = only_sa(*p.ini);
  auto* b = only_sa(*p.res);
  EXPECT_EQ(a->spi_i, b->spi_i);
  EXPECT_EQ(a->spi_r, b->spi_r);
  EXPECT_TRUE(a->initiator);
  EXPECT_FALSE(b->initiator);
  EXPECT_FALSE(a->nat_local || a->nat_remote || b->nat_local || b->nat_remote);
  // RFC 4555 §3.3: both support MOBIKE and NAT-T, so IKE_AUTH moved to 4500.
  EXPECT_EQ(a->local.port, 4500);
  EXPECT_EQ(a->remote, (Endpoint{ip("198.51.100.10"), 4500}));
  EXPECT_EQ(b->remote, (Endpoint{ip("198.51.100.3"), 4500}));
  EXPECT_TRUE(a->peer_mobike);
  EXPECT_TRUE(b->peer_mobike);
  expect_matching_children(*a, *b);
  EXPECT_EQ(count_events(*p.ini, EventKind::kIkeEstablished), 1u);
  EXPECT_EQ(count_events(*p.res, EventKind::kChildEstablished), 1u);
  ASSERT_EQ(p.ini->dataplane.size(), 1u);
  EXPECT_EQ(p.ini->dataplane[0].kind, ike::DataplaneOp::Kind::kInstall);
  EXPECT_FALSE(p.ini->dataplane[0].udp_encap);
  // Exactly two exchanges: four messages.
  EXPECT_EQ(p.net.delivered, 4u);
}

TEST(IkeSim, EstablishesThroughNatWithDetectionOnTheRightSide) {
  Pair p(true);
  p.configure_default();
  p.initiate();
  ASSERT_TRUE(p.net.run_until([&] { return p.both_established(); }));
  auto* a = only_sa(*p.ini);
  auto* b = only_sa(*p.res);
  EXPECT_TRUE(a->nat_local);
  EXPECT_FALSE(a->nat_remote);
  EXPECT_FALSE(b->nat_local);
  EXPECT_TRUE(b->nat_remote);
  EXPECT_EQ(b->remote, (Endpoint{ip("198.51.100.2"), 4500}));
  EXPECT_EQ(a->local, (Endpoint{ip("10.1.0.2"), 4500}));
  expect_matching_children(*a, *b);
  EXPECT_TRUE(p.ini->dataplane.at(0).udp_encap);
  EXPECT_TRUE(p.res->dataplane.at(0).udp_encap);
  // NAT keepalives come from the side behind the NAT only (RFC 3948 §4).
  p.net.run_for(Duration(65000));
  EXPECT_GE(p.ini->keepalives_sent, 3u);
  EXPECT_EQ(p.res->keepalives_sent, 0u);
}

TEST(IkeSim, SurvivesLossOfEachFirstMessage) {
  for (int lost = 0; lost < 4; ++lost) {
    Pair p(true);
    p.configure_default();
    int seen = 0;
    p.net.drop = [&](const Packet& pk) { return !pk.keepalive && seen++ == lost; };
    p.initiate();
    ASSERT_TRUE(p.net.run_until([&] { return p.both_established(); })) << "lost message " << lost;
    expect_matching_children(*only_sa(*p.ini), *only_sa(*p.res));
    EXPECT_EQ(p.ini->engine->counters().retransmits_sent, 1u) << lost;
    // A lost response means the responder saw the request twice and answered from its cache.
    EXPECT_EQ(p.res->engine->counters().retransmits_answered, lost % 2 == 1 ? 1u : 0u) << lost;
  }
}

TEST(IkeSim, SurvivesReorderingAndDuplication) {
  for (std::uint64_t seed = 1; seed <= 8; ++seed) {
    Pair p(true, {}, seed);
    p.configure_default();
    crypto::SeededRandom r(seed);
    // Every packet delayed 0..3 s (so later ones overtake earlier ones and retransmissions
    // race their originals) and sent two or three times.
    p.net.jitter = [&](const Packet&) { return Duration(static_cast<long>(r.u64() % 3000)); };
    p.net.duplicates = [&](const Packet&) { return static_cast<int>(1 + r.u64() % 2); };
    p.initiate();
    ASSERT_TRUE(p.net.run_until([&] { return p.both_established(); })) << "seed " << seed;
    ASSERT_TRUE(p.ini->engine->rekey_child(only_sa(*p.ini)->children[0].id, p.net.now()));
    ASSERT_TRUE(p.res->engine->rekey_ike(only_sa(*p.res)->id, p.net.now()));
    // A duplicate IKE_SA_INIT that arrives after IKE_AUTH completed opens a half-open SA
    // that is never completed: it expires after half_open_timeout (30 s).
    p.net.run_for(Duration(45000));
    ASSERT_EQ(p.ini->engine->ike_sa_count(), 1u) << "seed " << seed;
    ASSERT_EQ(p.res->engine->ike_sa_count(), 1u) << "seed " << seed;
    ASSERT_TRUE(p.both_established()) << "seed " << seed;
    expect_matching_children(*only_sa(*p.ini), *only_sa(*p.res));
    EXPECT_EQ(only_sa(*p.ini)->spi_i, only_sa(*p.res)->spi_i);
    EXPECT_GT(p.res->engine->counters().retransmits_answered + p.res->engine->counters().dropped_bad_message_id, 0u);
  }
}

TEST(IkeSim, NoCommonEspProposalFailsOnlyTheChild) {
  Pair p(false);
  p.configure(psk_connection("home", "198.51.100.10", "ini@example.test", "res@example.test",
                             "aes128gcm16-prfsha256-x25519", "aes256gcm16"),
              psk_connection("gw", "%any", "res@example.test", "ini@example.test",
                             "aes128gcm16-prfsha256-x25519", "aes128-sha256"));
  p.initiate();
  p.net.run_for(Duration(3000));
  ASSERT_NE(only_sa(*p.ini), nullptr);
  EXPECT_EQ(only_sa(*p.ini)->state, IkeState::kEstablished);
  EXPECT_TRUE(only_sa(*p.ini)->children.empty());
  EXPECT_EQ(count_events(*p.ini, EventKind::kChildFailed), 1u);
  bool logged = false;
  for (const auto& l : p.ini->log) logged |= l.find("NO_PROPOSAL_CHOSEN") != std::string::npos;
  EXPECT_TRUE(logged);
}

TEST(IkeSim, WrongPskFailsOnBothSides) {
  Pair p(false);
  auto r = psk_connection("gw", "%any", "res@example.test", "ini@example.test");
  r.psk = to_bytes("another-secret");
  p.configure(psk_connection("home", "198.51.100.10", "ini@example.test", "res@example.test"), r);
  p.initiate();
  p.net.run_for(Duration(10000));
  EXPECT_EQ(p.ini->engine->ike_sa_count(), 0u);
  EXPECT_EQ(p.res->engine->ike_sa_count(), 0u);
  EXPECT_EQ(count_events(*p.ini, EventKind::kIkeFailed), 1u);
  EXPECT_EQ(count_events(*p.res, EventKind::kIkeFailed), 1u);
  EXPECT_EQ(count_events(*p.ini, EventKind::kIkeEstablished), 0u);
  EXPECT_TRUE(p.ini->dataplane.empty());
}

TEST(IkeSim, UnknownIdentityIsRefused) {
  Pair p(false);
  p.configure(psk_connection("home", "198.51.100.10", "mallory@example.test", ""),
              psk_connection("gw", "%any", "res@example.test", "ini@example.test"));
  p.initiate();
  p.net.run_for(Duration(10000));
  EXPECT_EQ(count_events(*p.ini, EventKind::kIkeFailed), 1u);
  EXPECT_EQ(p.res->engine->ike_sa_count(), 0u);
}

TEST(IkeSim, ResponderNarrowsTrafficSelectors) {
  Pair p(false);
  auto i = psk_connection("home", "198.51.100.10", "ini@example.test", "res@example.test");
  i.children[0].local_ts = {*IpPrefix::parse("10.99.0.0/16")};
  i.children[0].remote_ts = {*IpPrefix::parse("0.0.0.0/0")};
  auto r = psk_connection("gw", "%any", "res@example.test", "ini@example.test");
  r.children[0].local_ts = {*IpPrefix::parse("192.0.2.0/24")};
  r.children[0].remote_ts = {*IpPrefix::parse("10.99.7.0/24")};
  p.configure(i, r);
  p.initiate();
  ASSERT_TRUE(p.net.run_until([&] { return p.both_established(); }));
  auto& c = only_sa(*p.ini)->children[0];
  ASSERT_EQ(c.local_ts.size(), 1u);
  EXPECT_EQ(ike::ts_to_string(c.local_ts[0]), "10.99.7.0/24");
  EXPECT_EQ(ike::ts_to_string(c.remote_ts[0]), "192.0.2.0/24");
  expect_matching_children(*only_sa(*p.ini), *only_sa(*p.res));
}

TEST(IkeSim, DisjointSelectorsGiveTsUnacceptableButKeepTheIkeSa) {
  Pair p(false);
  auto i = psk_connection("home", "198.51.100.10", "ini@example.test", "res@example.test");
  i.children[0].remote_ts = {*IpPrefix::parse("172.16.0.0/12")};
  auto r = psk_connection("gw", "%any", "res@example.test", "ini@example.test");
  r.children[0].local_ts = {*IpPrefix::parse("192.0.2.0/24")};
  p.configure(i, r);
  p.initiate();
  p.net.run_for(Duration(5000));
  ASSERT_NE(only_sa(*p.ini), nullptr);
  EXPECT_EQ(only_sa(*p.ini)->state, IkeState::kEstablished);
  EXPECT_TRUE(only_sa(*p.ini)->children.empty());
  EXPECT_TRUE(only_sa(*p.res)->children.empty());
  EXPECT_EQ(count_events(*p.ini, EventKind::kChildFailed), 1u);
  EXPECT_EQ(count_events(*p.res, EventKind::kChildFailed), 1u);
}

TEST(IkeSim, NoCommonIkeProposal) {
  Pair p(false);
  p.configure(psk_connection("home", "198.51.100.10", "ini@example.test", "res@example.test",
                             "aes256-sha384-ecp384"),
              psk_connection("gw", "%any", "res@example.test", "ini@example.test"));
  p.initiate();
  p.net.run_for(Duration(5000));
  EXPECT_EQ(p.ini->engine->ike_sa_count(), 0u);
  EXPECT_EQ(p.res->engine->ike_sa_count(), 0u);
  EXPECT_EQ(count_events(*p.ini, EventKind::kIkeFailed), 1u);
}

TEST(IkeSim, InvalidKePayloadRetriesWithTheRequestedGroup) {
  Pair p(false);
  p.configure(psk_connection("home", "198.51.100.10", "ini@example.test", "res@example.test",
                             "aes128gcm16-prfsha256-x25519-ecp256"),
              psk_connection("gw", "%any", "res@example.test", "ini@example.test",
                             "aes128gcm16-prfsha256-ecp256"));
  p.initiate();
  ASSERT_TRUE(p.net.run_until([&] { return p.both_established(); }));
  EXPECT_EQ(ike::transform_id(only_sa(*p.ini)->ike_proposal, wire::TransformType::kDh), 19);
  EXPECT_EQ(p.net.delivered, 6u);  // INVALID_KE round trip first
}

TEST(IkeSim, CookieRoundTripWhenHalfOpenThresholdIsReached) {
  ike::EngineConfig cfg;
  cfg.half_open_threshold = 0;  // always demand a cookie
  Pair p(false, cfg);
  p.configure_default();
  p.initiate();
  ASSERT_TRUE(p.net.run_until([&] { return p.both_established(); }));
  EXPECT_EQ(p.res->engine->counters().cookies_sent, 1u);
  EXPECT_EQ(p.net.delivered, 6u);
}

TEST(IkeSim, DeleteFromEitherSide) {
  for (bool from_initiator : {true, false}) {
    Pair p(true);
    p.configure_default();
    p.initiate();
    ASSERT_TRUE(p.net.run_until([&] { return p.both_established(); }));
    Host* by = from_initiator ? p.ini : p.res;
    Host* other = from_initiator ? p.res : p.ini;
    ASSERT_TRUE(by->engine->terminate_ike(only_sa(*by)->id, p.net.now()));
    ASSERT_TRUE(p.net.run_until([&] {
      return p.ini->engine->ike_sa_count() == 0 && p.res->engine->ike_sa_count() == 0;
    }, Duration(5000)));
    EXPECT_EQ(count_events(*other, EventKind::kIkeDeleted), 1u);
    EXPECT_EQ(count_events(*other, EventKind::kChildDeleted), 1u);
    EXPECT_EQ(other->dataplane.back().kind, ike::DataplaneOp::Kind::kDelete);
    EXPECT_EQ(count_events(*other, EventKind::kIkeFailed), 0u);
  }
}

TEST(IkeSim, ChildDeleteLeavesIkeSa) {
  Pair p(false);
  p.configure_default();
  p.initiate();
  ASSERT_TRUE(p.net.run_until([&] { return p.both_established(); }));
  auto child = only_sa(*p.res)->children[0].id;
  ASSERT_TRUE(p.res->engine->terminate_child(child, p.net.now()));
  ASSERT_TRUE(p.net.run_until([&] {
    return only_sa(*p.ini)->children.empty() && only_sa(*p.res)->children.empty();
  }, Duration(5000)));
  EXPECT_EQ(only_sa(*p.ini)->state, IkeState::kEstablished);
  EXPECT_EQ(count_events(*p.ini, EventKind::kChildDeleted), 1u);
}

TEST(IkeSim, LivenessChecksRunAndADeadPeerIsGivenUp) {
  Pair p(false);
  auto i = psk_connection("home", "198.51.100.10", "ini@example.test", "res@example.test");
  i.dpd_delay = Duration(10000);
  i.mobike = false;  // RFC 7296 alone; MOBIKE keeps probing for longer (mobike_sim_test)
  p.configure(i, psk_connection("gw", "%any", "res@example.test", "ini@example.test"));
  p.initiate();
  ASSERT_TRUE(p.net.run_until([&] { return p.both_established(); }));
  auto before = p.net.delivered;
  p.net.run_for(Duration(35000));
  // Three idle periods: three empty INFORMATIONAL exchanges, all answered.
  EXPECT_EQ(p.net.delivered - before, 6u);
  EXPECT_EQ(only_sa(*p.ini)->state, IkeState::kEstablished);
  // The responder vanishes: retransmissions, then the SA is given up.
  p.net.drop = [](const Packet&) { return true; };
  ASSERT_TRUE(p.net.run_until([&] { return p.ini->engine->ike_sa_count() == 0; }, Duration(200000)));
  EXPECT_EQ(p.ini->engine->counters().retransmits_sent, 5u);
  EXPECT_EQ(count_events(*p.ini, EventKind::kIkeFailed), 1u);
}

TEST(IkeSim, HalfOpenSaExpiresAtTheResponder) {
  Pair p(false);
  p.configure_default();
  // Only IKE_SA_INIT request gets through; nothing after it.
  int n = 0;
  p.net.drop = [&](const Packet&) { return n++ > 0; };
  p.initiate();
  p.net.run_for(Duration(1000));
  EXPECT_EQ(p.res->engine->half_open_count(), 1u);
  p.net.run_for(Duration(40000));
  EXPECT_EQ(p.res->engine->half_open_count(), 0u);
  EXPECT_EQ(p.res->engine->ike_sa_count(), 0u);
  EXPECT_EQ(p.res->engine->counters().half_open_expired, 1u);
}

TEST(IkeSim, GarbageIsCountedAndDoesNotDisturbAnEstablishedSa) {
  Pair p(false);
  p.configure_default();
  p.initiate();
  ASSERT_TRUE(p.net.run_until([&] { return p.both_established(); }));
  auto* b = only_sa(*p.res);
  Endpoint res_ep = b->local, ini_ep = b->remote;
  crypto::SeededRandom r(7);
  for (int i = 0; i < 200; ++i) {
    Bytes junk = r.bytes(1 + r.u64() % 300);
    if (i % 3 == 0 && junk.size() >= 28) {
      // Right SPIs, garbage after: must fail integrity, not parsing.
      for (int k = 0; k < 8; ++k) junk[k] = static_cast<std::uint8_t>(b->spi_i >> (56 - 8 * k));
      for (int k = 0; k < 8; ++k) junk[8 + k] = static_cast<std::uint8_t>(b->spi_r >> (56 - 8 * k));
    }
    p.net.inject(Packet{ini_ep, res_ep, junk, false, "attacker"});
  }
  p.net.run_for(Duration(1000));
  const auto& st = p.res->engine->counters();
  EXPECT_EQ(st.datagrams_in, 2u + 200u);
  EXPECT_EQ(st.dropped_malformed + st.dropped_unknown_spi + st.dropped_bad_message_id + st.dropped_integrity +
                st.dropped_unexpected,
            200u);
  EXPECT_EQ(only_sa(*p.res)->state, IkeState::kEstablished);
  // Still working: a liveness check goes through.
  ASSERT_TRUE(p.ini->engine->terminate_ike(only_sa(*p.ini)->id, p.net.now()));
  EXPECT_TRUE(p.net.run_until([&] { return p.res->engine->ike_sa_count() == 0; }, Duration(5000)));
}

}  // namespace
}  // namespace mobike::sim
