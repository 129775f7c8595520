// The responder-initiated switch and IKE SA rekeys (spec §3, §6.1.4, §8): no switch
// while a rekey is in flight, the roles and the initiator's 0x52 survive rekeys by
// either side, and rekeys that overlap a switch.
#include <gtest/gtest.h>

#include "switch_helpers.h"

namespace mobike::sim {
namespace {

bool settled(Sw& s) { return s.p.ini->engine->ike_sa_count() == 1 && s.p.res->engine->ike_sa_count() == 1 && s.idle(); }

const ike::IkeSa* sa_by_id(const Host& h, std::uint64_t id) { return h.engine->find_ike_sa(id); }

TEST(SwitchRekeySim, RefusedWhileAnIkeRekeyIsInFlight) {
  Sw s;
  ASSERT_TRUE(s.start());
  auto old_id = s.res().id;
  // Our own rekey, in flight.
  ASSERT_TRUE(s.p.res->engine->rekey_ike(old_id, s.p.net.now()));
  s.p.net.collect(*s.p.res);
  auto r = s.request(R2());
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().find("rekey"), std::string::npos) << r.error();
  ASSERT_TRUE(s.p.net.run_until([&] { return settled(s) && s.res().id != old_id; }, seconds(10)));

  // Our own rekey, queued behind another exchange.
  auto answer = std::make_shared<std::vector<wire::Payload>>();
  ASSERT_TRUE(send_raw(s.p.net, *s.p.res, {}, answer));
  ASSERT_TRUE(s.p.res->engine->rekey_ike(s.res().id, s.p.net.now()));
  s.p.net.collect(*s.p.res);
  ASSERT_TRUE(s.res().active);
  ASSERT_EQ(s.res().queue.size(), 1u);
  r = s.request(R2());
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().find("rekey"), std::string::npos) << r.error();
  old_id = s.res().id;
  ASSERT_TRUE(s.p.net.run_until([&] { return settled(s) && s.res().id != old_id; }, seconds(10)));

  // The initiator's rekey: the gateway's old SA waits for the initiator's delete.
  old_id = s.res().id;
  int held = 0;
  s.tap->drop_if = [&](const Seen& m) {
    bool del = m.from == "ini" && m.informational_request() && !m.payloads.empty() &&
               std::holds_alternative<wire::DeletePayload>(m.payloads[0].body);
    return del && held++ < 1;
  };
  ASSERT_TRUE(s.p.ini->engine->rekey_ike(s.ini().id, s.p.net.now()));
  s.p.net.collect(*s.p.ini);
  ASSERT_TRUE(s.p.net.run_until([&] { return held == 1; }, seconds(5)));
  ASSERT_NE(sa_by_id(*s.p.res, old_id), nullptr);
  EXPECT_EQ(sa_by_id(*s.p.res, old_id)->state, IkeState::kRekeying);
  r = mobility::switch_address(*s.p.res->engine, old_id, R2(), s.p.net.now());
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().find("rekey"), std::string::npos) << r.error();
  ASSERT_TRUE(s.p.net.run_until([&] { return settled(s) && s.res().id != old_id; }, seconds(10)));
  EXPECT_EQ(s.switch_requests().size(), 0u);
  EXPECT_EQ(s.failures(), 0u);

  // Once the rekeys are done, the switch goes through on the newest IKE SA.
  s.spis_i = spis_of(*s.p.ini);
  s.spis_r = spis_of(*s.p.res);
  EXPECT_EQ(s.spis_r.child_in, s.spis_i.child_out);
  ASSERT_TRUE(s.request(R2()));
  ASSERT_TRUE(s.run_to_outcome());
  EXPECT_EQ(count_events(*s.p.res, EventKind::kSwitchSucceeded), 1u);
  s.expect_switched(R2());
}

// The roles of RFC 4555 and the R flag belong to the chain of IKE SAs, whoever rekeyed.
TEST(SwitchRekeySim, RolesAndSupportSurviveIkeRekeysByEitherSide) {
  for (bool by_initiator : {true, false}) {
    SCOPED_TRACE(by_initiator ? "rekeyed by the initiator" : "rekeyed by the gateway");
    Sw s;
    ASSERT_TRUE(s.start());
    auto old_ini = s.ini().id, old_res = s.res().id;
    auto old_spi_i = s.ini().spi_i;
    Host& by = by_initiator ? *s.p.ini : *s.p.res;
    ASSERT_TRUE(by.engine->rekey_ike(only_sa(by)->id, s.p.net.now()));
    s.p.net.collect(by);
    ASSERT_TRUE(s.p.net.run_until([&] { return settled(s) && s.ini().spi_i != old_spi_i; }, seconds(10)));
    EXPECT_NE(s.ini().id, old_ini);
    EXPECT_NE(s.res().id, old_res);
    EXPECT_EQ(s.ini().initiator, by_initiator);  // RFC 7296 roles follow the rekey
    EXPECT_EQ(s.res().initiator, !by_initiator);
    EXPECT_TRUE(s.ini().original_initiator);  // RFC 4555 / switch roles do not
    EXPECT_FALSE(s.res().original_initiator);
    EXPECT_TRUE(view_of(*s.p.res).peer_switch);
    EXPECT_FALSE(view_of(*s.p.ini).peer_switch);
    EXPECT_EQ(view_of(*s.p.ini).peer_addresses, std::vector<IpAddress>{R2()});
    EXPECT_EQ(s.switch_requests().size(), 0u);
    // The initiator still cannot ask, the gateway still can.
    auto r = mobility::switch_address(*s.p.ini->engine, s.ini().id, R2(), s.p.net.now());
    ASSERT_FALSE(r);
    s.spis_i = spis_of(*s.p.ini);
    s.spis_r = spis_of(*s.p.res);
    ASSERT_TRUE(s.request(R2()));
    ASSERT_TRUE(s.run_to_outcome());
    EXPECT_EQ(count_events(*s.p.res, EventKind::kSwitchSucceeded), 1u);
    s.expect_switched(R2());
    auto req = s.switch_requests();
    ASSERT_EQ(req.size(), 1u);
    EXPECT_EQ(req[0]->spi_i, s.ini().spi_i);  // on the new IKE SA
    EXPECT_EQ(update_ops(*s.p.res).size(), 1u);
    EXPECT_EQ(update_ops(*s.p.ini).size(), 1u);
    EXPECT_EQ(s.failures(), 0u);
  }
}

// The gateway asks for the switch and rekeys right away: the rekey waits for the
// switch exchange; the update and the rekey then cross. Whichever IKE SA the Child
// SAs end up on, both data planes end on the new address.
TEST(SwitchRekeySim, RekeyQueuedBehindTheSwitch) {
  for (bool gen1 : {true, false}) {
    SCOPED_TRACE(gen1 ? "generation 1" : "generation 2");
    Sw s({.gen1 = gen1});
    ASSERT_TRUE(s.start());
    auto old_spi_i = s.ini().spi_i;
    ASSERT_TRUE(s.request(R2()));
    ASSERT_TRUE(s.p.res->engine->rekey_ike(s.res().id, s.p.net.now()));
    s.p.net.collect(*s.p.res);
    ASSERT_TRUE(s.p.net.run_until([&] {
      return settled(s) && s.ini().spi_i != old_spi_i && count_events(*s.p.res, EventKind::kSwitchSucceeded) == 1;
    }, seconds(30)));
    s.p.net.run_for(seconds(5));
    EXPECT_EQ(switch_failures(*s.p.res), 0u);
    EXPECT_EQ(s.res().local, ep("198.51.100.20"));
    EXPECT_EQ(s.ini().remote, ep("198.51.100.20"));
    EXPECT_EQ(view_of(*s.p.res).committed.local, ep("198.51.100.20"));
    EXPECT_EQ(view_of(*s.p.ini).committed.remote, ep("198.51.100.20"));
    ASSERT_FALSE(update_ops(*s.p.res).empty());
    ASSERT_FALSE(update_ops(*s.p.ini).empty());
    EXPECT_EQ(update_ops(*s.p.res).back().local, ep("198.51.100.20"));
    EXPECT_EQ(update_ops(*s.p.res).back().spi_in, s.res().children.at(0).spi_in);
    EXPECT_EQ(update_ops(*s.p.ini).back().remote, ep("198.51.100.20"));
    EXPECT_EQ(update_ops(*s.p.ini).back().spi_in, s.ini().children.at(0).spi_in);
    EXPECT_EQ(s.res().children.at(0).spi_in, s.spis_r.child_in);
    EXPECT_TRUE(view_of(*s.p.res).peer_switch);
    EXPECT_EQ(s.failures(), 0u);
  }
}

// Spec §8: a rekey that completes between the switch exchange and the update: the
// update goes on the new IKE SA, and the gateway's expectation went with it.
TEST(SwitchRekeySim, IkeRekeyBetweenTheAnswerAndTheUpdate) {
  Sw s;
  ASSERT_TRUE(s.start());
  auto old_spi_i = s.ini().spi_i;
  bool hold = true;
  s.tap->drop_if = [&](const Seen& m) { return hold && Tap::update_request(m); };
  ASSERT_TRUE(s.request(R2()));
  ASSERT_TRUE(s.p.net.run_until([&] { return !s.res().active && s.switch_responses().size() == 1; }, seconds(1)));
  ASSERT_EQ(view_of(*s.p.res).switching_to, R2());
  ASSERT_TRUE(s.p.res->engine->rekey_ike(s.res().id, s.p.net.now()));
  s.p.net.collect(*s.p.res);
  ASSERT_TRUE(s.p.net.run_until([&] {
    return s.p.ini->engine->ike_sa_count() == 1 && s.p.res->engine->ike_sa_count() == 1 &&
           s.ini().spi_i != old_spi_i;
  }, seconds(5)));
  // The gateway's new IKE SA still expects the update.
  EXPECT_EQ(view_of(*s.p.res).switching_to, R2());
  hold = false;
  ASSERT_TRUE(s.run_to_outcome(seconds(30)));
  EXPECT_EQ(count_events(*s.p.res, EventKind::kSwitchSucceeded), 1u);
  EXPECT_EQ(switch_failures(*s.p.res), 0u);
  auto upd = s.updates();
  ASSERT_FALSE(upd.empty());
  EXPECT_EQ(upd.back()->spi_i, s.ini().spi_i);  // sent on the new IKE SA
  EXPECT_EQ(upd.back()->dst, ep("198.51.100.20"));
  s.spis_i = spis_of(*s.p.ini);
  s.spis_r = spis_of(*s.p.res);
  s.expect_switched(R2());
  EXPECT_EQ(s.failures(), 0u);
}

// The gateway rekeys right after the answer while the update is still on its way: the
// update lands on the old IKE SA, which is being deleted; the new one, which took over
// the Child SAs and the expectation, moves with it — and reports nothing more.
TEST(SwitchRekeySim, UpdateLandsOnTheOldIkeSaDuringTheGatewaysRekey) {
  Sw s;
  ASSERT_TRUE(s.start());
  auto old_spi_i = s.ini().spi_i;
  int delayed = 0;
  s.p.net.jitter = [&](const Packet& pk) {
    auto seen = s.updates();
    bool first_update = !seen.empty() && pk.data == seen.front()->data && delayed++ == 0;
    return first_update ? Duration(25) : Duration(0);
  };
  ASSERT_TRUE(s.request(R2()));
  ASSERT_TRUE(s.p.net.run_until([&] { return !s.res().active && s.switch_responses().size() == 1; }, seconds(1)));
  ASSERT_EQ(view_of(*s.p.res).switching_to, R2());
  ASSERT_TRUE(s.p.res->engine->rekey_ike(s.res().id, s.p.net.now()));
  s.p.net.collect(*s.p.res);
  ASSERT_TRUE(s.p.net.run_until([&] {
    return settled(s) && s.ini().spi_i != old_spi_i && count_events(*s.p.res, EventKind::kSwitchSucceeded) == 1;
  }, seconds(10)));
  s.p.net.run_for(seconds(30));
  EXPECT_EQ(delayed, 1);
  EXPECT_EQ(count_events(*s.p.res, EventKind::kSwitchSucceeded), 1u);
  EXPECT_EQ(switch_failures(*s.p.res), 0u);
  EXPECT_FALSE(view_of(*s.p.res).switching_to.has_value());
  // The first update went on the old IKE SA.
  auto upd = s.updates();
  ASSERT_FALSE(upd.empty());
  EXPECT_EQ(upd.front()->spi_i, old_spi_i);
  s.spis_i = spis_of(*s.p.ini);
  s.spis_r = spis_of(*s.p.res);
  s.expect_switched(R2());
  EXPECT_EQ(s.failures(), 0u);
}

}  // namespace
}  // namespace mobike::sim
