// The responder-initiated switch when messages get lost: each message of the flow,
// once or twice, in both generations; the update that never reaches the new address
// (the initiator falls back through path probing, which includes the old address);
// the update that never comes (the gateway's deadline); and spec rule 6.2.8, a switch
// request nobody answers.
#include <gtest/gtest.h>

#include "switch_helpers.h"

namespace mobike::sim {
namespace {

struct SwitchLoss {
  const char* name;
  enum Which { kRequest, kResponse, kResponseBeforeUpdate, kUpdate, kUpdateResponse } which;
  int times;
  bool gen1;
};

void PrintTo(const SwitchLoss& l, std::ostream* os) { *os << l.name; }

class SwitchLossSim : public ::testing::TestWithParam<SwitchLoss> {};

TEST_P(SwitchLossSim, EveryMessageIsRetransmittedOrAnsweredFromTheCache) {
  const SwitchLoss loss = GetParam();
  Sw s({.gen1 = loss.gen1});
  ASSERT_TRUE(s.start());
  int dropped = 0;
  s.tap->drop_if = [&](const Seen& m) {
    bool hit = false;
    switch (loss.which) {
      case SwitchLoss::kRequest: hit = switch_request(m); break;
      case SwitchLoss::kResponse: hit = s.switch_response(m); break;
      case SwitchLoss::kResponseBeforeUpdate:
        // The answer is lost, and the update held back until the gateway's
        // retransmission has been answered: that one still comes from the old address.
        if (Tap::update_request(m)) return s.switch_responses().size() < 2;
        hit = s.switch_response(m);
        break;
      case SwitchLoss::kUpdate: hit = Tap::update_request(m); break;
      case SwitchLoss::kUpdateResponse: hit = s.update_response(m); break;
    }
    if (!hit || dropped >= loss.times) return false;
    ++dropped;
    return true;
  };
  auto ini_rx = s.p.ini->engine->counters().retransmits_sent;
  auto ini_ans = s.p.ini->engine->counters().retransmits_answered;
  auto res_rx = s.p.res->engine->counters().retransmits_sent;
  auto res_ans = s.p.res->engine->counters().retransmits_answered;
  ASSERT_TRUE(s.request(R2()));
  ASSERT_TRUE(s.run_to_outcome(seconds(60)));
  s.p.net.run_for(seconds(5));
  EXPECT_EQ(dropped, loss.times);
  EXPECT_EQ(count_events(*s.p.res, EventKind::kSwitchSucceeded), 1u);
  EXPECT_EQ(switch_failures(*s.p.res), 0u);
  EXPECT_EQ(switch_failures(*s.p.ini), 0u);
  s.expect_switched(R2());
  EXPECT_EQ(s.failures(), 0u);
  EXPECT_EQ(s.tap->count(Tap::rr_request), 0u);

  auto d_ini_rx = s.p.ini->engine->counters().retransmits_sent - ini_rx;
  auto d_ini_ans = s.p.ini->engine->counters().retransmits_answered - ini_ans;
  auto d_res_rx = s.p.res->engine->counters().retransmits_sent - res_rx;
  auto d_res_ans = s.p.res->engine->counters().retransmits_answered - res_ans;
  auto times = static_cast<std::uint64_t>(loss.times);
  auto req = s.switch_requests();
  auto resp = s.switch_responses();
  auto upd = s.updates();
  // Every copy of the request is the same message (RFC 7296 §2.1).
  for (const auto* r : req) EXPECT_EQ(r->data, req[0]->data);
  for (const auto* r : resp) EXPECT_EQ(r->data, resp.at(0)->data);
  const Endpoint old_gw = ep("198.51.100.10"), new_gw = ep("198.51.100.20");
  switch (loss.which) {
    case SwitchLoss::kRequest:
      // Retransmitted from the old address, bit-identical; the initiator saw it once.
      ASSERT_EQ(req.size(), times + 1);
      for (const auto* r : req) EXPECT_EQ(r->src, old_gw);
      EXPECT_EQ(d_res_rx, times);
      EXPECT_EQ(d_ini_ans, 0u);
      ASSERT_EQ(resp.size(), 1u);
      EXPECT_EQ(resp[0]->dst, loss.gen1 ? new_gw : old_gw);
      EXPECT_EQ(upd.size(), 1u);
      EXPECT_EQ(update_ops(*s.p.res).size(), 1u);
      break;
    case SwitchLoss::kResponse:
      // The update moved the gateway meanwhile: its retransmissions leave from the new
      // address and the cached answer goes there (in generation 1 that is where the
      // first answer went too).
      ASSERT_EQ(req.size(), times + 1);
      EXPECT_EQ(req[0]->src, old_gw);
      for (std::size_t k = 1; k < req.size(); ++k) EXPECT_EQ(req[k]->src, new_gw);
      ASSERT_EQ(resp.size(), times + 1);
      EXPECT_EQ(resp[0]->dst, loss.gen1 ? new_gw : old_gw);
      for (std::size_t k = 1; k < resp.size(); ++k) EXPECT_EQ(resp[k]->dst, new_gw);
      EXPECT_EQ(d_res_rx, times);
      EXPECT_EQ(d_ini_ans, times);
      EXPECT_EQ(upd.size(), 1u);  // processed once
      EXPECT_EQ(update_ops(*s.p.res).size(), 1u);
      EXPECT_EQ(update_ops(*s.p.ini).size(), 1u);
      break;
    case SwitchLoss::kResponseBeforeUpdate:
      // Spec §6.3.7: the retransmitted request (still from the old address) is answered
      // from the cache to the same destination as the first time: the new address in
      // generation 1, the old one in generation 2.
      ASSERT_EQ(req.size(), 2u);
      for (const auto* r : req) EXPECT_EQ(r->src, old_gw);
      ASSERT_EQ(resp.size(), 2u);
      for (const auto* r : resp) EXPECT_EQ(r->dst, loss.gen1 ? new_gw : old_gw);
      EXPECT_TRUE(resp[0]->dropped);
      EXPECT_FALSE(resp[1]->dropped);
      EXPECT_EQ(d_ini_ans, 1u);
      EXPECT_EQ(d_res_rx, 1u);
      ASSERT_GE(upd.size(), 2u);
      EXPECT_EQ(upd[0]->dst, new_gw);
      break;
    case SwitchLoss::kUpdate:
      ASSERT_GE(upd.size(), times + 1);
      EXPECT_GE(d_ini_rx, times);
      EXPECT_EQ(d_res_rx, 0u);
      EXPECT_EQ(req.size(), 1u);
      EXPECT_EQ(resp.size(), 1u);
      EXPECT_GE(s.all([&](const Seen& m) { return Tap::update_request(m) && m.dst == new_gw; }).size(), times + 1);
      for (const auto* u : upd) EXPECT_EQ(u->src, s.ini_public);
      break;
    case SwitchLoss::kUpdateResponse:
      // The gateway moved on the first copy and answered the others from its cache
      // (after two losses the initiator probes, the old address too: answered from the
      // cache there as well; the new address ranks first and is confirmed by one more
      // update).
      EXPECT_EQ(req.size(), 1u);
      EXPECT_GE(d_ini_rx, times);
      if (loss.times == 1) {
        EXPECT_EQ(d_res_ans, times);
        EXPECT_EQ(update_ops(*s.p.res).size(), 1u);
        for (const auto* u : s.update_responses()) EXPECT_EQ(u->src, new_gw);
      } else {
        EXPECT_GE(d_res_ans, times);
        EXPECT_EQ(s.update_responses().front()->src, new_gw);
        EXPECT_EQ(s.update_responses().back()->src, new_gw);
        EXPECT_FALSE(s.update_responses().back()->dropped);
      }
      break;
  }
}

INSTANTIATE_TEST_SUITE_P(
    , SwitchLossSim,
    ::testing::Values(SwitchLoss{"RequestGen1", SwitchLoss::kRequest, 1, true},
                      SwitchLoss{"RequestTwiceGen1", SwitchLoss::kRequest, 2, true},
                      SwitchLoss{"RequestGen2", SwitchLoss::kRequest, 1, false},
                      SwitchLoss{"RequestThriceGen2", SwitchLoss::kRequest, 3, false},
                      SwitchLoss{"ResponseGen1", SwitchLoss::kResponse, 1, true},
                      SwitchLoss{"ResponseTwiceGen1", SwitchLoss::kResponse, 2, true},
                      SwitchLoss{"ResponseGen2", SwitchLoss::kResponse, 1, false},
                      SwitchLoss{"ResponseBeforeUpdateGen1", SwitchLoss::kResponseBeforeUpdate, 1, true},
                      SwitchLoss{"ResponseBeforeUpdateGen2", SwitchLoss::kResponseBeforeUpdate, 1, false},
                      SwitchLoss{"UpdateGen1", SwitchLoss::kUpdate, 1, true},
                      SwitchLoss{"UpdateTwiceGen1", SwitchLoss::kUpdate, 2, true},
                      SwitchLoss{"UpdateGen2", SwitchLoss::kUpdate, 1, false},
                      SwitchLoss{"UpdateResponseGen1", SwitchLoss::kUpdateResponse, 1, true},
                      SwitchLoss{"UpdateResponseTwiceGen2", SwitchLoss::kUpdateResponse, 2, false}),
    [](const ::testing::TestParamInfo<SwitchLoss>& i) { return std::string(i.param.name); });

// Spec §6.4: the update overtakes the answer (reordering) — the gateway completes on
// the update and takes the late answer as the end of its exchange; a duplicated
// request is answered from the cache, to where the first answer went.
TEST(SwitchReorderSim, UpdateOvertakesTheAnswerAndTheRequestIsDuplicated) {
  for (bool gen1 : {true, false}) {
    SCOPED_TRACE(gen1 ? "generation 1" : "generation 2");
    Sw s({.gen1 = gen1});
    ASSERT_TRUE(s.start());
    s.p.net.jitter = [&](const Packet& pk) {
      auto m = wire::decode_message(pk.data);
      bool answer = pk.from == "ini" && m && m->header.is_response() && m->header.exchange == ExchangeType::kInformational;
      return answer ? Duration(300) : Duration(0);
    };
    s.p.net.duplicates = [&](const Packet& pk) {
      auto req = s.switch_requests();  // the tap has seen this packet already
      return req.size() == 1 && pk.data == req[0]->data ? 1 : 0;
    };
    ASSERT_TRUE(s.request(R2()));
    ASSERT_TRUE(s.p.net.run_until([&] { return count_events(*s.p.res, EventKind::kSwitchSucceeded) == 1; }, seconds(5)));
    // Switched on the update while its own request still waits for the answer.
    ASSERT_TRUE(s.res().active);
    EXPECT_STREQ(s.res().active->name(), mobility::kSwitchTaskName);
    EXPECT_EQ(s.res().local, ep("198.51.100.20"));
    ASSERT_TRUE(s.run_to_outcome());
    s.p.net.run_for(seconds(5));
    EXPECT_EQ(count_events(*s.p.res, EventKind::kSwitchSucceeded), 1u);
    EXPECT_EQ(switch_failures(*s.p.res), 0u);
    s.expect_switched(R2());
    auto resp = s.switch_responses();
    ASSERT_EQ(resp.size(), 2u);  // the first and the cached one for the duplicate
    EXPECT_EQ(resp[1]->data, resp[0]->data);
    for (const auto* r : resp) EXPECT_EQ(r->dst, gen1 ? ep("198.51.100.20") : ep("198.51.100.10"));
    EXPECT_EQ(s.p.ini->engine->counters().retransmits_answered, 1u);
    EXPECT_EQ(s.p.res->engine->counters().retransmits_sent, 0u);  // the late answer ended the exchange
    EXPECT_EQ(s.updates().size(), 1u);
    EXPECT_EQ(update_ops(*s.p.res).size(), 1u);
    EXPECT_EQ(update_ops(*s.p.ini).size(), 1u);
    EXPECT_EQ(s.failures(), 0u);
  }
}

// The new address is unreachable for the initiator: its update there is never
// answered; path probing (which includes the gateway's old address) finds the old
// path, and the update there tells the gateway the switch is off (spec §6.3.6).
TEST(SwitchTimeoutSim, UpdateNeverReachesTheNewAddressFallsBackToTheOld) {
  for (bool gen1 : {true, false}) {
    SCOPED_TRACE(gen1 ? "generation 1" : "generation 2");
    Sw s({.gen1 = gen1});
    ASSERT_TRUE(s.start());
    s.tap->drop_if = [](const Seen& m) { return m.from == "ini" && m.dst.address == R2(); };
    ASSERT_TRUE(s.request(R2()));
    ASSERT_TRUE(s.run_to_outcome(seconds(30)));
    EXPECT_EQ(event_count(*s.p.res, EventKind::kSwitchFailed, "instead"), 1u);
    EXPECT_EQ(count_events(*s.p.res, EventKind::kSwitchSucceeded), 0u);
    EXPECT_FALSE(view_of(*s.p.res).switching_to.has_value());
    EXPECT_FALSE(view_of(*s.p.ini).probing);
    // Both back on the old path.
    EXPECT_EQ(s.res().local, ep("198.51.100.10"));
    EXPECT_EQ(s.res().remote, s.ini_public);
    EXPECT_EQ(s.ini().remote, ep("198.51.100.10"));
    EXPECT_EQ(view_of(*s.p.ini).committed.remote, ep("198.51.100.10"));
    EXPECT_EQ(view_of(*s.p.res).committed, (mobility::Path{ep("198.51.100.10"), s.ini_public}));
    for (const auto& op : update_ops(*s.p.res)) {
      EXPECT_EQ(op.local, ep("198.51.100.10"));
      EXPECT_EQ(op.remote, s.ini_public);
    }
    for (const auto& op : update_ops(*s.p.ini)) EXPECT_EQ(op.remote, ep("198.51.100.10"));
    // The probes went to both gateway addresses; only the old one answered.
    auto upd = s.updates();
    EXPECT_GE(s.all([](const Seen& m) { return Tap::update_request(m) && m.dst == ep("198.51.100.20"); }).size(), 3u);
    EXPECT_GE(s.all([](const Seen& m) { return Tap::update_request(m) && m.dst == ep("198.51.100.10"); }).size(), 1u);
    for (const auto* r : s.update_responses()) EXPECT_EQ(r->src, ep("198.51.100.10"));
    EXPECT_EQ(spis_of(*s.p.ini), s.spis_i);
    EXPECT_EQ(spis_of(*s.p.res), s.spis_r);
    EXPECT_FALSE(s.res().nat_local);  // the probe's hashes were for the other address
    s.p.net.run_for(minutes(6));
    EXPECT_EQ(s.failures(), 0u);
    EXPECT_EQ(s.ini().remote, ep("198.51.100.10"));
  }
}

// The initiator answers but its update never arrives: the gateway stops waiting (Q7)
// and stays; an update that comes after all is an ordinary MOBIKE update, checked for
// return routability before ESP moves.
TEST(SwitchTimeoutSim, UpdateNeverComesTheGatewayStays) {
  Sw s;
  ASSERT_TRUE(s.start());
  bool lossy = true;
  s.tap->drop_if = [&](const Seen& m) { return lossy && Tap::update_request(m); };
  auto t0 = s.p.net.now();
  ASSERT_TRUE(s.request(R2()));
  ASSERT_TRUE(s.p.net.run_until([&] { return count_events(*s.p.res, EventKind::kSwitchFailed) == 1; }, seconds(30)));
  EXPECT_EQ(event_count(*s.p.res, EventKind::kSwitchFailed, "no UPDATE_SA_ADDRESSES"), 1u);
  EXPECT_GE(s.p.net.now() - t0, Duration(5000));
  EXPECT_LE(s.p.net.now() - t0, Duration(15000));
  EXPECT_FALSE(view_of(*s.p.res).switching_to.has_value());
  EXPECT_EQ(s.res().local, ep("198.51.100.10"));
  EXPECT_TRUE(update_ops(*s.p.res).empty());
  EXPECT_TRUE(update_ops(*s.p.ini).empty());
  EXPECT_TRUE(view_of(*s.p.ini).probing);  // still trying, on both gateway addresses

  lossy = false;
  ASSERT_TRUE(s.p.net.run_until([&] { return !update_ops(*s.p.res).empty() && s.idle(); }, seconds(60)));
  EXPECT_EQ(count_events(*s.p.res, EventKind::kSwitchSucceeded), 0u);
  EXPECT_GE(s.tap->count(Tap::rr_request), 1u);
  EXPECT_EQ(update_ops(*s.p.res).back().remote, s.ini_public);
  EXPECT_EQ(update_ops(*s.p.res).back().local, s.res().local);
  EXPECT_EQ(update_ops(*s.p.ini).back().remote, s.ini().remote);
  EXPECT_EQ(s.res().local.address, s.ini().remote.address);
  EXPECT_EQ(s.failures(), 0u);
}

// Spec §6.2.8: the switch request is never answered. The IKE SA is given up only if
// its old address is gone and the gateway announced nothing else; otherwise it stays.
TEST(SwitchTimeoutSim, UnansweredRequestRule628) {
  struct Case {
    const char* name;
    bool old_gone;
    bool announced;  // the gateway had announced another address
    bool expect_sa;
  };
  for (const Case c : {Case{"old gone, nothing announced", true, false, false},
                       Case{"old gone, another announced", true, true, true},
                       Case{"old kept, nothing announced", false, false, true},
                       Case{"old kept, another announced", false, true, true}}) {
    SCOPED_TRACE(c.name);
    SwitchSetup setup;
    if (!c.announced) setup.res_addresses = {R1()};
    setup.tweak = [](ike::ConnectionConfig& i, ike::ConnectionConfig&) {
      i.switch_allow = {*IpPrefix::parse("198.51.100.20/32")};
    };
    Sw s(setup);
    ASSERT_TRUE(s.start());
    EXPECT_EQ(view_of(*s.p.ini).peer_addresses.empty(), !c.announced);
    s.tap->drop_if = [](const Seen& m) { return switch_request(m); };
    auto t0 = s.p.net.now();
    ASSERT_TRUE(s.request(R2()));
    if (c.old_gone) {
      s.p.res->nonlocal_sources = {R1()};
      s.p.net.set_addresses(*s.p.res, {R2()});
    }
    ASSERT_TRUE(s.p.net.run_until([&] { return count_events(*s.p.res, EventKind::kSwitchFailed) == 1; }, minutes(3)));
    EXPECT_EQ(event_count(*s.p.res, EventKind::kSwitchFailed, "no answer"), 1u);
    EXPECT_GE(s.p.net.now() - t0, Duration(40000));  // the ordinary retransmissions first
    EXPECT_GE(s.p.res->engine->counters().retransmits_sent, 5u);
    for (const auto* r : s.switch_requests()) EXPECT_EQ(r->src, ep("198.51.100.10"));
    s.p.net.run_for(Duration(100));
    if (c.expect_sa) {
      ASSERT_NE(only_sa(*s.p.res), nullptr);
      EXPECT_EQ(s.res().state, IkeState::kEstablished);
      EXPECT_EQ(count_events(*s.p.res, EventKind::kIkeFailed), 0u);
      EXPECT_EQ(s.res().local, ep("198.51.100.10"));
      EXPECT_TRUE(update_ops(*s.p.res).empty());
    } else {
      EXPECT_EQ(s.p.res->engine->ike_sa_count(), 0u);
      EXPECT_EQ(event_count(*s.p.res, EventKind::kIkeFailed, "MOBIKE_SWITCH"), 1u);
      // Its Child SA left the data plane.
      ASSERT_FALSE(s.p.res->dataplane.empty());
      EXPECT_EQ(s.p.res->dataplane.back().kind, ike::DataplaneOp::Kind::kDelete);
    }
    EXPECT_TRUE(update_ops(*s.p.ini).empty());
    EXPECT_EQ(s.ini().remote, ep("198.51.100.10"));
  }
}

// Without a way to send from the lost address (no IP_TRANSPARENT), the request never
// leaves the host: the sim counts each try as unsendable, the gateway reports the
// failure after its retransmissions and, having announced another address, keeps the
// IKE SA (§6.2.8) for the initiator to find it by path probing.
TEST(SwitchTimeoutSim, OldAddressGoneAndNotSendable) {
  Sw s;
  ASSERT_TRUE(s.start());
  auto seen = s.tap->seen.size();
  s.p.net.set_addresses(*s.p.res, {R2()});  // no nonlocal_sources
  ASSERT_TRUE(s.request(R2()));
  ASSERT_TRUE(s.p.net.run_until([&] { return count_events(*s.p.res, EventKind::kSwitchFailed) == 1; }, minutes(3)));
  EXPECT_EQ(event_count(*s.p.res, EventKind::kSwitchFailed, "no answer"), 1u);
  EXPECT_GE(s.p.net.unsendable, 6u);  // the request and its five retransmissions
  EXPECT_EQ(s.tap->seen.size(), seen);  // nothing got onto the wire
  ASSERT_NE(only_sa(*s.p.res), nullptr);
  EXPECT_EQ(count_events(*s.p.res, EventKind::kIkeFailed), 0u);
  EXPECT_TRUE(update_ops(*s.p.res).empty());
}

}  // namespace
}  // namespace mobike::sim
