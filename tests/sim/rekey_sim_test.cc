// CREATE_CHILD_SA over the simulated network: new Child SAs, Child SA and IKE SA
// rekeys from either side, with PFS, automatic by lifetime, and simultaneous rekeys.
#include <gtest/gtest.h>

#include <map>

#include "ike/proposal_select.h"
#include "ike/traffic_selector.h"
#include "ike_pair.h"

namespace mobike::sim {
namespace {

bool settled(Pair& p) {
  return p.ini->engine->ike_sa_count() == 1 && p.res->engine->ike_sa_count() == 1 && p.both_established();
}

TEST(RekeySim, ChildRekeyFromEitherSideKeepsOneFreshChild) {
  for (bool by_initiator : {true, false}) {
    Pair p(true);
    p.configure_default();
    p.initiate();
    ASSERT_TRUE(p.net.run_until([&] { return p.both_established(); }));
    auto old_in = only_sa(*p.ini)->children[0].spi_in;
    Host* by = by_initiator ? p.ini : p.res;
    ASSERT_TRUE(by->engine->rekey_child(only_sa(*by)->children[0].id, p.net.now()));
    ASSERT_TRUE(p.net.run_until([&] {
      return p.both_established() && only_sa(*p.ini)->children[0].spi_in != old_in;
    }, Duration(10000)));
    expect_matching_children(*only_sa(*p.ini), *only_sa(*p.res));
    EXPECT_EQ(count_events(*p.ini, EventKind::kChildRekeyed), 1u);
    EXPECT_EQ(count_events(*p.res, EventKind::kChildRekeyed), 1u);
    // Data plane: install old, install new, delete old — on both sides; the side that
    // responded installed the new SA receive-only and lets it send when the old one is
    // deleted (the initiator knows the new SA by then), just before the old one goes:
    // a kernel between the two would have no outbound SA for the policy.
    Host* rekey_responder = by_initiator ? p.res : p.ini;
    for (Host* h : {p.ini, p.res}) {
      bool responder = h == rekey_responder;
      ASSERT_EQ(h->dataplane.size(), responder ? 4u : 3u) << h->name;
      EXPECT_EQ(h->dataplane[1].kind, ike::DataplaneOp::Kind::kInstall);
      EXPECT_EQ(h->dataplane[1].outbound_deferred, responder);
      std::size_t del = responder ? 3 : 2;
      EXPECT_EQ(h->dataplane[del].kind, ike::DataplaneOp::Kind::kDelete);
      EXPECT_EQ(h->dataplane[del].spi_in, h->dataplane[0].spi_in);
      if (responder) {
        EXPECT_EQ(h->dataplane[2].kind, ike::DataplaneOp::Kind::kActivateOutbound);
        EXPECT_EQ(h->dataplane[2].spi_in, h->dataplane[1].spi_in);
      }
    }
  }
}

TEST(RekeySim, ChildRekeyWithPfsUsesAFreshKeyExchange) {
  Pair p(false);
  auto i = psk_connection("home", "198.51.100.10", "ini@example.test", "res@example.test",
                          "aes128gcm16-prfsha256-x25519", "aes256gcm16-ecp256");
  auto r = psk_connection("gw", "%any", "res@example.test", "ini@example.test",
                          "aes128gcm16-prfsha256-x25519", "aes256gcm16-ecp256");
  p.configure(i, r);
  p.initiate();
  ASSERT_TRUE(p.net.run_until([&] { return p.both_established(); }));
  // IKE_AUTH carries no key exchange: the first Child SA has no DH transform.
  EXPECT_EQ(ike::transform_id(only_sa(*p.ini)->children[0].proposal, wire::TransformType::kDh), 0);
  ASSERT_TRUE(p.ini->engine->rekey_child(only_sa(*p.ini)->children[0].id, p.net.now()));
  ASSERT_TRUE(p.net.run_until([&] { return p.both_established() && count_events(*p.res, EventKind::kChildRekeyed) == 1; },
                              Duration(10000)));
  p.net.run_for(Duration(1000));
  const auto& c = only_sa(*p.ini)->children.at(0);
  EXPECT_EQ(ike::transform_id(c.proposal, wire::TransformType::kDh), 19);
  EXPECT_EQ(c.keys.encr_out.size(), 36u);  // AES-256 + salt
  expect_matching_children(*only_sa(*p.ini), *only_sa(*p.res));
}

TEST(RekeySim, NewChildSaOnAnEstablishedIkeSa) {
  Pair p(false);
  auto i = psk_connection("home", "198.51.100.10", "ini@example.test", "res@example.test");
  ike::ChildConfig second;
  second.name = "second";
  second.local_ts = {*IpPrefix::parse("10.20.0.0/16")};
  second.remote_ts = {*IpPrefix::parse("10.30.0.0/16")};
  second.esp_proposals = i.children[0].esp_proposals;
  i.children.push_back(second);
  auto r = psk_connection("gw", "%any", "res@example.test", "ini@example.test");
  std::swap(second.local_ts, second.remote_ts);
  r.children.push_back(second);
  p.configure(i, r);
  p.initiate();
  ASSERT_TRUE(p.net.run_until([&] { return p.both_established(); }));
  ASSERT_TRUE(p.ini->engine->initiate_child(only_sa(*p.ini)->id, "second", p.net.now()));
  ASSERT_TRUE(p.net.run_until([&] { return only_sa(*p.res)->children.size() == 2; }, Duration(5000)));
  p.net.run_for(Duration(100));
  const auto& c = only_sa(*p.ini)->children.at(1);
  EXPECT_EQ(c.name, "second");
  EXPECT_EQ(ike::ts_to_string(c.local_ts.at(0)), "10.20.0.0/16");
  EXPECT_EQ(only_sa(*p.res)->children.at(1).name, "second");
  EXPECT_EQ(only_sa(*p.res)->children.at(1).spi_out, c.spi_in);
  EXPECT_FALSE(p.ini->engine->initiate_child(only_sa(*p.ini)->id, "no-such-child", p.net.now()));
}

TEST(RekeySim, IkeRekeyFromEitherSideMovesChildren) {
  for (bool by_initiator : {true, false}) {
    Pair p(true);
    p.configure_default();
    p.initiate();
    ASSERT_TRUE(p.net.run_until([&] { return p.both_established(); }));
    auto old_spi_i = only_sa(*p.ini)->spi_i;
    auto child_spi = only_sa(*p.ini)->children[0].spi_in;
    Host* by = by_initiator ? p.ini : p.res;
    ASSERT_TRUE(by->engine->rekey_ike(only_sa(*by)->id, p.net.now()));
    ASSERT_TRUE(p.net.run_until([&] { return settled(p) && only_sa(*p.ini)->spi_i != old_spi_i; }, Duration(10000)));
    auto* a = only_sa(*p.ini);
    auto* b = only_sa(*p.res);
    EXPECT_EQ(a->spi_i, b->spi_i);
    EXPECT_EQ(a->spi_r, b->spi_r);
    EXPECT_EQ(a->initiator, by_initiator);
    EXPECT_EQ(b->initiator, !by_initiator);
    // RFC 4555 roles stay with the first IKE SA.
    EXPECT_TRUE(a->original_initiator);
    EXPECT_FALSE(b->original_initiator);
    EXPECT_TRUE(a->nat_local);
    EXPECT_TRUE(b->nat_remote);
    ASSERT_EQ(a->children.size(), 1u);
    EXPECT_EQ(a->children[0].spi_in, child_spi);
    expect_matching_children(*a, *b);
    EXPECT_EQ(count_events(*p.ini, EventKind::kIkeRekeyed), 1u);
    EXPECT_EQ(count_events(*p.ini, EventKind::kChildDeleted), 0u);
    EXPECT_EQ(p.ini->dataplane.size(), 1u);  // nothing touched the ESP SAs
    // The new SA works: a Child SA rekey over it.
    ASSERT_TRUE(p.ini->engine->rekey_child(a->children[0].id, p.net.now()));
    ASSERT_TRUE(p.net.run_until([&] { return count_events(*p.res, EventKind::kChildRekeyed) == 1; }, Duration(10000)));
  }
}

TEST(RekeySim, SimultaneousChildRekeyLeavesExactlyOnePair) {
  Pair p(false);
  p.configure_default();
  p.initiate();
  ASSERT_TRUE(p.net.run_until([&] { return p.both_established(); }));
  ASSERT_TRUE(p.ini->engine->rekey_child(only_sa(*p.ini)->children[0].id, p.net.now()));
  ASSERT_TRUE(p.res->engine->rekey_child(only_sa(*p.res)->children[0].id, p.net.now()));
  p.net.run_for(Duration(10000));
  ASSERT_TRUE(p.both_established());
  expect_matching_children(*only_sa(*p.ini), *only_sa(*p.res));
  auto installs = [](const Host& h) {
    return std::count_if(h.dataplane.begin(), h.dataplane.end(),
                         [](const ike::DataplaneOp& o) { return o.kind == ike::DataplaneOp::Kind::kInstall; });
  };
  // Three Child SAs existed (old + two new), two were deleted, and the survivor sends
  // on both sides.
  EXPECT_EQ(installs(*p.ini), 3);
  for (Host* h : {p.ini, p.res}) {
    std::map<std::uint32_t, bool> sending;  // by inbound SPI
    for (const auto& op : h->dataplane) {
      if (op.kind == ike::DataplaneOp::Kind::kInstall) sending[op.spi_in] = !op.outbound_deferred;
      if (op.kind == ike::DataplaneOp::Kind::kActivateOutbound) sending[op.spi_in] = true;
      if (op.kind == ike::DataplaneOp::Kind::kDelete) sending.erase(op.spi_in);
    }
    ASSERT_EQ(sending.size(), 1u) << h->name;
    EXPECT_TRUE(sending.begin()->second) << h->name;
  }
}

TEST(RekeySim, SimultaneousIkeRekeyLeavesExactlyOneIkeSa) {
  for (std::uint64_t seed = 1; seed <= 6; ++seed) {
    Pair p(false, {}, seed);
    p.configure_default();
    p.initiate();
    ASSERT_TRUE(p.net.run_until([&] { return p.both_established(); }));
    auto child_spi = only_sa(*p.ini)->children[0].spi_in;
    ASSERT_TRUE(p.ini->engine->rekey_ike(only_sa(*p.ini)->id, p.net.now()));
    ASSERT_TRUE(p.res->engine->rekey_ike(only_sa(*p.res)->id, p.net.now()));
    p.net.run_for(Duration(10000));
    ASSERT_TRUE(settled(p)) << "seed " << seed;
    auto* a = only_sa(*p.ini);
    auto* b = only_sa(*p.res);
    EXPECT_EQ(a->spi_i, b->spi_i);
    EXPECT_EQ(a->spi_r, b->spi_r);
    ASSERT_EQ(a->children.size(), 1u);
    EXPECT_EQ(a->children[0].spi_in, child_spi);
    EXPECT_EQ(p.ini->dataplane.size(), 1u);
    // It still works.
    ASSERT_TRUE(p.res->engine->terminate_ike(b->id, p.net.now()));
    ASSERT_TRUE(p.net.run_until([&] { return p.ini->engine->ike_sa_count() == 0; }, Duration(5000)));
  }
}

TEST(RekeySim, LifetimesRekeyAutomatically) {
  Pair p(true);
  auto i = psk_connection("home", "198.51.100.10", "ini@example.test", "res@example.test");
  i.rekey_time = Duration(600000);
  i.children[0].rekey_time = Duration(120000);
  auto r = psk_connection("gw", "%any", "res@example.test", "ini@example.test");
  r.rekey_time = Duration(0);
  r.children[0].rekey_time = Duration(0);
  p.configure(i, r);
  p.initiate();
  ASSERT_TRUE(p.net.run_until([&] { return p.both_established(); }));
  p.net.run_for(Duration(1300000));  // ~21 minutes
  ASSERT_TRUE(settled(p));
  // Child rekeys every <=120 s, IKE SA rekeys every <=600 s.
  EXPECT_GE(count_events(*p.ini, EventKind::kChildRekeyed), 10u);
  EXPECT_GE(count_events(*p.ini, EventKind::kIkeRekeyed), 2u);
  EXPECT_EQ(count_events(*p.ini, EventKind::kIkeFailed), 0u);
  expect_matching_children(*only_sa(*p.ini), *only_sa(*p.res));
}

TEST(RekeySim, HardLifetimeWithoutRekeyDeletesTheChild) {
  Pair p(false);
  auto i = psk_connection("home", "198.51.100.10", "ini@example.test", "res@example.test");
  i.children[0].rekey_time = Duration(0);  // never rekey...
  i.children[0].lifetime = Duration(70000);  // ...but expire after 70 s
  p.configure(i, psk_connection("gw", "%any", "res@example.test", "ini@example.test"));
  p.initiate();
  ASSERT_TRUE(p.net.run_until([&] { return p.both_established(); }));
  p.net.run_for(Duration(69000));
  EXPECT_EQ(only_sa(*p.ini)->children.size(), 1u);
  ASSERT_TRUE(p.net.run_until([&] { return only_sa(*p.res)->children.empty() && only_sa(*p.ini)->children.empty(); }, Duration(2000)));
  EXPECT_TRUE(only_sa(*p.ini)->children.empty());
  EXPECT_EQ(only_sa(*p.ini)->state, IkeState::kEstablished);
  EXPECT_EQ(count_events(*p.res, EventKind::kChildDeleted), 1u);
  EXPECT_EQ(count_events(*p.ini, EventKind::kChildRekeyed), 0u);
}

}  // namespace
}  // namespace mobike::sim
