// UPDATE_SA_ADDRESSES and return routability (RFC 4555 §3.5, §3.7) over the simulated
// network: refusals, the responder's COOKIE2 check and its policies, forged and
// replayed updates, loss of every message of the flow, and changes that overlap.
#include <gtest/gtest.h>

#include "mobike_helpers.h"

namespace mobike::sim {
namespace {

using std::chrono::minutes;
using std::chrono::seconds;

TEST(MobikeUpdateSim, UnacceptableAddressRevertsToTheCommittedPath) {
  Pair p(false);
  p.net.set_addresses(*p.ini, {ip("198.51.100.3"), ip("203.0.113.5")});
  auto r = res_conn();
  r.remote_addrs = {"198.51.100.0/24"};  // the gateway only takes peers from here
  p.configure(ini_conn(Duration(5000)), r);
  Tap tap(p);
  ASSERT_TRUE(establish(p, ip("198.51.100.3")));
  auto spis = spis_of(*p.ini);

  ASSERT_TRUE(mobility::update_addresses(*p.ini->engine, only_sa(*p.ini)->id, ip("203.0.113.5"), p.net.now()));
  ASSERT_TRUE(p.net.run_until([&] { return count_events(*p.ini, EventKind::kAddressUpdateRefused) == 1; },
                              Duration(5000)));
  EXPECT_EQ(event_count(*p.ini, EventKind::kAddressUpdateRefused, "UNACCEPTABLE_ADDRESSES"), 1u);
  auto updates = tap.all(Tap::update_request);
  ASSERT_EQ(updates.size(), 1u);
  EXPECT_EQ(updates[0]->src, ep("203.0.113.5"));
  auto refusal = tap.all([&](const Seen& s) { return tap.update_response(s); });
  ASSERT_EQ(refusal.size(), 1u);
  EXPECT_TRUE(refusal[0]->has(NotifyType::kUnacceptableAddresses));
  EXPECT_EQ(tap.count(Tap::rr_request), 0u);

  const auto* i = only_sa(*p.ini);
  EXPECT_EQ(i->local, ep("198.51.100.3"));
  EXPECT_EQ(i->remote, ep("198.51.100.10"));
  EXPECT_EQ(only_sa(*p.res)->remote, ep("198.51.100.3"));
  EXPECT_EQ(only_sa(*p.res)->local, ep("198.51.100.10"));
  EXPECT_EQ(view_of(*p.res).committed, (mobility::Path{ep("198.51.100.10"), ep("198.51.100.3")}));
  EXPECT_EQ(view_of(*p.ini).committed, (mobility::Path{ep("198.51.100.3"), ep("198.51.100.10")}));
  EXPECT_TRUE(update_ops(*p.ini).empty());
  EXPECT_TRUE(update_ops(*p.res).empty());
  EXPECT_EQ(spis_of(*p.ini), spis);

  // It keeps working on the old path: a Child SA rekey and liveness checks.
  auto sent_before = tap.seen.size();
  ASSERT_TRUE(p.ini->engine->rekey_child(i->children[0].id, p.net.now()));
  ASSERT_TRUE(p.net.run_until([&] { return count_events(*p.res, EventKind::kChildRekeyed) == 1; }, Duration(5000)));
  p.net.run_for(seconds(30));
  for (std::size_t k = sent_before; k < tap.seen.size(); ++k) {
    if (tap.seen[k].from == "ini") {
      EXPECT_EQ(tap.seen[k].src, ep("198.51.100.3"));
    }
  }
  EXPECT_EQ(count_events(*p.ini, EventKind::kIkeFailed) + count_events(*p.res, EventKind::kIkeFailed), 0u);
}

// ini 198.51.100.3 and .4; a move from .3 to .4.
struct Move {
  Pair p{false};
  std::unique_ptr<Tap> tap;
  Spis spis_i, spis_r;
  explicit Move(ike::ReturnRoutability rr = ike::ReturnRoutability::kAlways, Duration ini_dpd = Duration(0)) {
    p.net.set_addresses(*p.ini, {ip("198.51.100.3"), ip("198.51.100.4")});
    auto r = res_conn(Duration(0));
    r.return_routability = rr;
    p.configure(ini_conn(ini_dpd), r);
    tap = std::make_unique<Tap>(p);
  }
  bool start() {
    if (!establish(p, ip("198.51.100.3"))) return false;
    spis_i = spis_of(*p.ini);
    spis_r = spis_of(*p.res);
    return true;
  }
  bool move(const char* to) {
    bool ok = mobility::update_addresses(*p.ini->engine, only_sa(*p.ini)->id, ip(to), p.net.now());
    p.net.collect(*p.ini);
    return ok;
  }
  void expect_moved(const char* to) {
    EXPECT_EQ(only_sa(*p.ini)->local, ep(to));
    EXPECT_EQ(only_sa(*p.res)->remote, ep(to));
    EXPECT_EQ(view_of(*p.res).committed.remote, ep(to));
    EXPECT_EQ(view_of(*p.ini).committed.local, ep(to));
    ASSERT_FALSE(update_ops(*p.res).empty());
    EXPECT_EQ(update_ops(*p.res).back().remote, ep(to));
    EXPECT_FALSE(update_ops(*p.res).back().udp_encap);
    ASSERT_FALSE(update_ops(*p.ini).empty());
    EXPECT_EQ(update_ops(*p.ini).back().local, ep(to));
    EXPECT_FALSE(view_of(*p.res).rr_pending);
    EXPECT_EQ(spis_of(*p.ini), spis_i);
    EXPECT_EQ(spis_of(*p.res), spis_r);
  }
};

TEST(MobikeUpdateSim, CookiesAreEchoedVerbatimAndChildSasMoveAfterTheCheck) {
  Move m;
  ASSERT_TRUE(m.start());
  Pair& p = m.p;
  ASSERT_TRUE(m.move("198.51.100.4"));
  ASSERT_TRUE(p.net.run_until([&] { return update_ops(*p.res).size() == 1; }, Duration(5000)));
  m.expect_moved("198.51.100.4");
  auto& tap = *m.tap;
  auto upd = tap.all(Tap::update_request);
  auto upd_resp = tap.all([&](const Seen& s) { return tap.update_response(s); });
  auto rr = tap.all(Tap::rr_request);
  auto rr_resp = tap.all([&](const Seen& s) { return tap.rr_response(s); });
  ASSERT_EQ(upd.size(), 1u);
  ASSERT_EQ(upd_resp.size(), 1u);
  ASSERT_EQ(rr.size(), 1u);
  ASSERT_EQ(rr_resp.size(), 1u);
  auto cookie = [](const Seen* s) { return wire::find_notify(s->payloads, NotifyType::kCookie2)->data; };
  ASSERT_TRUE(upd_resp[0]->has(NotifyType::kCookie2));
  ASSERT_TRUE(rr_resp[0]->has(NotifyType::kCookie2));
  EXPECT_EQ(cookie(upd[0]), cookie(upd_resp[0]));
  EXPECT_EQ(cookie(rr[0]), cookie(rr_resp[0]));
  EXPECT_NE(cookie(upd[0]), cookie(rr[0]));
  EXPECT_GE(cookie(rr[0]).size(), 8u);
  // The check goes to the new address, and the Child SAs move only once it is answered.
  EXPECT_EQ(rr[0]->dst, ep("198.51.100.4"));
  EXPECT_GT(update_ops(*p.res).size(), 0u);
  EXPECT_TRUE(upd_resp[0]->has(NotifyType::kNatDetectionDestinationIp));
  EXPECT_EQ(count_events(*p.res, EventKind::kAddressesUpdated), 1u);
}

TEST(MobikeUpdateSim, ChildSasWaitForTheReturnRoutabilityCheck) {
  Move m;
  ASSERT_TRUE(m.start());
  Pair& p = m.p;
  auto& tap = *m.tap;
  auto until = p.net.now() + seconds(30);
  tap.drop_if = [&](const Seen& s) { return Tap::rr_request(s) && p.net.now() < until; };
  ASSERT_TRUE(m.move("198.51.100.4"));
  // The initiator is done once the update is answered; the responder's IKE SA follows
  // at once, its Child SAs do not.
  ASSERT_TRUE(p.net.run_until([&] { return update_ops(*p.ini).size() == 1; }, Duration(5000)));
  p.net.run_for(seconds(20));
  EXPECT_EQ(only_sa(*p.res)->remote, ep("198.51.100.4"));
  EXPECT_TRUE(view_of(*p.res).rr_pending);
  EXPECT_EQ(view_of(*p.res).committed.remote, ep("198.51.100.3"));
  EXPECT_TRUE(update_ops(*p.res).empty());
  EXPECT_EQ(count_events(*p.res, EventKind::kAddressesUpdated), 0u);
  auto rr = tap.all(Tap::rr_request);
  ASSERT_GE(rr.size(), 3u);  // first try and retransmissions, all lost
  for (const auto* s : rr) {
    EXPECT_EQ(s->mid, rr[0]->mid);
    EXPECT_EQ(s->dst, ep("198.51.100.4"));
  }
  // The path heals: the next retransmission is answered and the Child SAs follow.
  ASSERT_TRUE(p.net.run_until([&] { return update_ops(*p.res).size() == 1; }, seconds(60)));
  EXPECT_GE(p.net.now(), until);
  m.expect_moved("198.51.100.4");
  EXPECT_GE(p.res->engine->counters().retransmits_sent, 3u);
}

TEST(MobikeUpdateSim, UnansweredReturnRoutabilityNeverMovesTheChildSas) {
  Move m(ike::ReturnRoutability::kAlways, Duration(10000));
  ASSERT_TRUE(m.start());
  Pair& p = m.p;
  m.tap->drop_if = [](const Seen& s) { return Tap::rr_request(s); };
  ASSERT_TRUE(m.move("198.51.100.4"));
  ASSERT_TRUE(p.net.run_until([&] { return count_events(*p.res, EventKind::kIkeFailed) == 1; }, minutes(10)));
  // Given up after the responder's long timeout, never having moved ESP.
  EXPECT_GE(p.net.now(), ike::TimePoint{} + mobility::Config{}.path_timeout);
  EXPECT_TRUE(update_ops(*p.res).empty());
  EXPECT_EQ(event_count(*p.res, EventKind::kIkeFailed, "MOBIKE_RR_CHECK"), 1u);
}

TEST(MobikeUpdateSim, ReturnRoutabilityPolicies) {
  // kNever: the Child SAs move with the update, no check is made.
  {
    SCOPED_TRACE("never");
    Move m(ike::ReturnRoutability::kNever);
    ASSERT_TRUE(m.start());
    ASSERT_TRUE(m.move("198.51.100.4"));
    Pair& p = m.p;
    // As soon as the request is processed, before the response even reaches the initiator.
    ASSERT_TRUE(p.net.run_until([&] { return update_ops(*p.res).size() == 1; }, Duration(5000)));
    EXPECT_TRUE(update_ops(*p.ini).empty());
    ASSERT_TRUE(p.net.run_until([&] { return update_ops(*p.ini).size() == 1; }, Duration(5000)));
    p.net.run_for(seconds(5));
    EXPECT_EQ(m.tap->count(Tap::rr_request), 0u);
    m.expect_moved("198.51.100.4");
  }
  // kUnannounced: only addresses the initiator did not list are checked.
  {
    SCOPED_TRACE("unannounced");
    Move m(ike::ReturnRoutability::kUnannounced);
    ASSERT_TRUE(m.start());
    Pair& p = m.p;
    ASSERT_EQ(view_of(*p.res).peer_addresses, std::vector{ip("198.51.100.4")});  // from IKE_AUTH
    ASSERT_TRUE(m.move("198.51.100.4"));
    ASSERT_TRUE(p.net.run_until([&] { return update_ops(*p.res).size() == 1 && update_ops(*p.ini).size() == 1; },
                                Duration(5000)));
    EXPECT_EQ(m.tap->count(Tap::rr_request), 0u);
    m.expect_moved("198.51.100.4");

    // A brand-new address was never announced: checked.
    p.net.set_addresses(*p.ini, {ip("198.51.100.3"), ip("198.51.100.4"), ip("198.51.100.5")});
    ASSERT_TRUE(m.move("198.51.100.5"));
    ASSERT_TRUE(p.net.run_until([&] { return update_ops(*p.res).size() == 2; }, Duration(5000)));
    EXPECT_EQ(m.tap->count(Tap::rr_request), 1u);
    m.expect_moved("198.51.100.5");

    // Back to the first address: listed in the last update, not checked.
    ASSERT_TRUE(m.move("198.51.100.3"));
    ASSERT_TRUE(p.net.run_until([&] { return update_ops(*p.res).size() == 3 && update_ops(*p.ini).size() == 3; },
                                Duration(5000)));
    EXPECT_EQ(m.tap->count(Tap::rr_request), 1u);
    m.expect_moved("198.51.100.3");
  }
}

TEST(MobikeUpdateSim, ForgedUpdateFromAnotherSourceDoesNotMoveTheChildSas) {
  Move m;
  ASSERT_TRUE(m.start());
  Pair& p = m.p;
  auto& tap = *m.tap;
  // An on-path attacker holds back the initiator's update and replays it from a
  // victim's address first.
  std::optional<Packet> captured;
  tap.drop_if = [&](const Seen& s) {
    if (!Tap::update_request(s) || captured) return false;
    captured = Packet{s.src, s.dst, s.data, false, "attacker"};
    return true;
  };
  ASSERT_TRUE(m.move("198.51.100.4"));
  ASSERT_TRUE(captured);
  const Endpoint victim = ep("203.0.113.66");
  Packet forged = *captured;
  forged.src = victim;
  p.net.inject(forged);
  p.net.run_for(seconds(60));
  // The IKE SA answered wherever the request came from, but ESP never went to the
  // victim: the check sent there is never answered.
  auto rr = tap.all(Tap::rr_request);
  ASSERT_FALSE(rr.empty());
  EXPECT_EQ(rr[0]->dst, victim);
  EXPECT_LE(tap.count([&](const Seen& s) { return s.dst == victim; }), 8u);  // a few IKE messages at most
  for (const auto& op : update_ops(*p.res)) EXPECT_NE(op.remote, victim);
  EXPECT_NE(view_of(*p.res).committed.remote, victim);
  EXPECT_EQ(spis_of(*p.res), m.spis_r);
}

TEST(MobikeUpdateSim, ReplayedUpdateIsAnsweredFromTheCacheOnly) {
  Move m;
  ASSERT_TRUE(m.start());
  Pair& p = m.p;
  ASSERT_TRUE(m.move("198.51.100.4"));
  ASSERT_TRUE(p.net.run_until([&] { return update_ops(*p.res).size() == 1; }, Duration(5000)));
  p.net.run_for(seconds(1));
  auto upd = m.tap->all(Tap::update_request);
  ASSERT_EQ(upd.size(), 1u);
  auto answered = p.res->engine->counters().retransmits_answered;
  const Endpoint victim = ep("203.0.113.66");
  p.net.inject(Packet{victim, upd[0]->dst, upd[0]->data, false, "attacker"});
  p.net.run_for(seconds(30));
  EXPECT_EQ(p.res->engine->counters().retransmits_answered, answered + 1);
  EXPECT_EQ(m.tap->count([&](const Seen& s) { return s.dst == victim; }), 1u);  // the cached response
  EXPECT_EQ(m.tap->count(Tap::rr_request), 1u);
  EXPECT_EQ(update_ops(*p.res).size(), 1u);
  m.expect_moved("198.51.100.4");
}

TEST(MobikeUpdateSim, WrongCookie2ClosesTheIkeSa) {
  for (bool in_rr : {true, false}) {
    SCOPED_TRACE(in_rr ? "return-routability answer" : "update answer");
    Move m;
    ASSERT_TRUE(m.start());
    Pair& p = m.p;
    auto& tap = *m.tap;
    std::optional<Seen> held;
    tap.drop_if = [&](const Seen& s) {
      bool hit = in_rr ? tap.rr_response(s) : tap.update_response(s);
      if (hit && !held) held = s;
      return hit;
    };
    ASSERT_TRUE(m.move("198.51.100.4"));
    ASSERT_TRUE(p.net.run_until([&] { return held.has_value(); }, Duration(5000)));
    // A response of the right SA, Message ID and keys, but a cookie of its own.
    Host& answerer = in_rr ? *p.ini : *p.res;
    Bytes forged = ike::build_message(*only_sa(answerer), ExchangeType::kInformational, true, held->mid,
                                      {wire::make_notify(NotifyType::kCookie2, Bytes(16, 0x42))}, *answerer.random);
    p.net.inject(Packet{held->src, held->dst, forged, false, "forger"});
    Host& asker = in_rr ? *p.res : *p.ini;
    ASSERT_TRUE(p.net.run_until([&] { return count_events(asker, EventKind::kIkeFailed) == 1; }, Duration(5000)));
    EXPECT_TRUE(logged(asker, "COOKIE2 missing or wrong"));
    EXPECT_EQ(asker.engine->ike_sa_count(), 0u);
    EXPECT_TRUE(update_ops(asker).empty());
  }
}

// Which message of the update flow is lost, and how often.
struct Loss {
  const char* name;
  int which;  // 0 UPDATE request, 1 its response, 2 RR request, 3 its response
  int times;
};

class MobikeLossSim : public ::testing::TestWithParam<Loss> {};

TEST_P(MobikeLossSim, EveryMessageOfTheFlowIsRetransmitted) {
  const Loss loss = GetParam();
  Pair p(true);  // behind NAT A; the move goes behind NAT B
  p.configure(ini_conn(Duration(0)), res_conn(Duration(0)));
  Tap tap(p);
  ASSERT_TRUE(establish(p, ip("10.1.0.2")));
  p.net.run_for(seconds(1));  // the liveness check that learns the NAT mapping
  auto spis_i = spis_of(*p.ini);
  auto spis_r = spis_of(*p.res);
  Nat& b = p.net.add_nat("nat-b", ip("203.0.113.77"));
  p.net.set_addresses(*p.ini, {ip("10.2.0.9")});
  p.net.put_behind(*p.ini, b);
  int dropped = 0;
  tap.drop_if = [&](const Seen& s) {
    bool hit = loss.which == 0 ? Tap::update_request(s)
             : loss.which == 1 ? tap.update_response(s)
             : loss.which == 2 ? Tap::rr_request(s)
                               : tap.rr_response(s);
    return hit && dropped++ < loss.times;
  };
  auto ini_rx = p.ini->engine->counters().retransmits_sent;
  auto ini_ans = p.ini->engine->counters().retransmits_answered;
  auto res_rx = p.res->engine->counters().retransmits_sent;
  auto res_ans = p.res->engine->counters().retransmits_answered;
  ASSERT_TRUE(mobility::update_addresses(*p.ini->engine, only_sa(*p.ini)->id, ip("10.2.0.9"), p.net.now()));
  p.net.collect(*p.ini);
  ASSERT_TRUE(p.net.run_until([&] {
    return !update_ops(*p.res).empty() && !update_ops(*p.ini).empty() && !only_sa(*p.ini)->active &&
           !only_sa(*p.res)->active;
  }, seconds(60)));
  p.net.run_for(seconds(5));
  EXPECT_EQ(std::count_if(tap.seen.begin(), tap.seen.end(), [](const Tap::Recorded& s) { return s.dropped; }),
            loss.times);
  const auto* i = only_sa(*p.ini);
  const auto* r = only_sa(*p.res);
  EXPECT_EQ(i->local, ep("10.2.0.9"));
  EXPECT_TRUE(i->nat_local);
  EXPECT_EQ(r->remote, ep("203.0.113.77"));
  EXPECT_TRUE(r->nat_remote);
  EXPECT_EQ(update_ops(*p.res).back().remote, ep("203.0.113.77"));
  EXPECT_TRUE(update_ops(*p.res).back().udp_encap);
  EXPECT_EQ(update_ops(*p.ini).back().local, ep("10.2.0.9"));
  EXPECT_EQ(spis_of(*p.ini), spis_i);
  EXPECT_EQ(spis_of(*p.res), spis_r);
  EXPECT_FALSE(view_of(*p.res).rr_pending);
  EXPECT_FALSE(view_of(*p.ini).probing);
  // Who had to retransmit, and who answered from its cache.
  auto d_ini_rx = p.ini->engine->counters().retransmits_sent - ini_rx;
  auto d_ini_ans = p.ini->engine->counters().retransmits_answered - ini_ans;
  auto d_res_rx = p.res->engine->counters().retransmits_sent - res_rx;
  auto d_res_ans = p.res->engine->counters().retransmits_answered - res_ans;
  auto times = static_cast<std::uint64_t>(loss.times);
  switch (loss.which) {
    case 0:
      EXPECT_EQ(d_ini_rx, times);
      EXPECT_EQ(d_res_ans, 0u);
      break;
    case 1:
      EXPECT_EQ(d_ini_rx, times);
      EXPECT_EQ(d_res_ans, times);
      break;
    case 2:
      EXPECT_EQ(d_res_rx, times);
      EXPECT_EQ(d_ini_ans, 0u);
      EXPECT_EQ(d_ini_rx, 0u);
      break;
    case 3:
      EXPECT_EQ(d_res_rx, times);
      EXPECT_EQ(d_ini_ans, times);
      EXPECT_EQ(d_ini_rx, 0u);
      break;
  }
  // Every retransmission of the update went out from the new address.
  for (const auto* s : tap.all(Tap::update_request)) EXPECT_EQ(s->src, ep("203.0.113.77"));
  EXPECT_EQ(count_events(*p.ini, EventKind::kIkeFailed) + count_events(*p.res, EventKind::kIkeFailed), 0u);
}

INSTANTIATE_TEST_SUITE_P(, MobikeLossSim,
                         ::testing::Values(Loss{"UpdateRequest", 0, 1}, Loss{"UpdateRequestTwice", 0, 2},
                                           Loss{"UpdateResponse", 1, 1}, Loss{"UpdateResponseTwice", 1, 2},
                                           Loss{"RrRequest", 2, 1}, Loss{"RrRequestThrice", 2, 3},
                                           Loss{"RrResponse", 3, 1}, Loss{"RrResponseTwice", 3, 2}),
                         [](const ::testing::TestParamInfo<Loss>& i) { return std::string(i.param.name); });

TEST(MobikeUpdateSim, SecondMoveWhileTheFirstIsInFlightEndsOnTheNewest) {
  Pair p(false);
  p.net.set_addresses(*p.ini, {ip("198.51.100.3"), ip("198.51.100.4"), ip("198.51.100.5")});
  p.configure(ini_conn(Duration(0)), res_conn(Duration(0)));
  Tap tap(p);
  ASSERT_TRUE(establish(p, ip("198.51.100.3")));
  auto spis = spis_of(*p.ini);
  auto id = only_sa(*p.ini)->id;
  ASSERT_TRUE(mobility::update_addresses(*p.ini->engine, id, ip("198.51.100.4"), p.net.now()));
  p.net.collect(*p.ini);
  ASSERT_TRUE(mobility::update_addresses(*p.ini->engine, id, ip("198.51.100.5"), p.net.now()));
  p.net.collect(*p.ini);
  ASSERT_TRUE(p.net.run_until([&] {
    return !update_ops(*p.res).empty() && update_ops(*p.res).back().remote == ep("198.51.100.5") &&
           !only_sa(*p.ini)->active && !only_sa(*p.res)->active && only_sa(*p.ini)->queue.empty();
  }, seconds(10)));
  p.net.run_for(seconds(5));
  auto upd = tap.all(Tap::update_request);
  ASSERT_EQ(upd.size(), 2u);
  EXPECT_EQ(upd[0]->src, ep("198.51.100.4"));
  EXPECT_EQ(upd[1]->src, ep("198.51.100.5"));
  EXPECT_EQ(only_sa(*p.ini)->local, ep("198.51.100.5"));
  EXPECT_EQ(only_sa(*p.res)->remote, ep("198.51.100.5"));
  EXPECT_EQ(view_of(*p.ini).committed.local, ep("198.51.100.5"));
  EXPECT_EQ(view_of(*p.res).committed.remote, ep("198.51.100.5"));
  EXPECT_EQ(update_ops(*p.ini).back().local, ep("198.51.100.5"));
  // No NAT anywhere, at no point: the data plane was never told to encapsulate.
  for (const Host* h : {p.ini, p.res})
    for (const auto& op : update_ops(*h)) EXPECT_FALSE(op.udp_encap) << h->name << " " << op.local.to_string();
  EXPECT_FALSE(only_sa(*p.ini)->nat_local);
  EXPECT_FALSE(only_sa(*p.res)->nat_remote);
  EXPECT_EQ(spis_of(*p.ini), spis);
  EXPECT_EQ(p.ini->keepalives_sent, 0u);
}

TEST(MobikeUpdateSim, RefusedFirstMoveDoesNotUndoTheNewerOne) {
  Pair p(false);
  p.net.set_addresses(*p.ini, {ip("198.51.100.3"), ip("203.0.113.5"), ip("198.51.100.5")});
  auto r = res_conn(Duration(0));
  r.remote_addrs = {"198.51.100.0/24"};
  p.configure(ini_conn(Duration(0)), r);
  Tap tap(p);
  ASSERT_TRUE(establish(p, ip("198.51.100.3")));
  auto id = only_sa(*p.ini)->id;
  ASSERT_TRUE(mobility::update_addresses(*p.ini->engine, id, ip("203.0.113.5"), p.net.now()));
  p.net.collect(*p.ini);
  ASSERT_TRUE(mobility::update_addresses(*p.ini->engine, id, ip("198.51.100.5"), p.net.now()));
  p.net.collect(*p.ini);
  ASSERT_TRUE(p.net.run_until([&] {
    return !only_sa(*p.ini)->active && !only_sa(*p.res)->active && only_sa(*p.ini)->queue.empty() &&
           count_events(*p.ini, EventKind::kAddressUpdateRefused) == 1;
  }, seconds(10)));
  p.net.run_for(seconds(5));
  EXPECT_EQ(only_sa(*p.ini)->local, ep("198.51.100.5"));
  EXPECT_EQ(only_sa(*p.res)->remote, ep("198.51.100.5"));
  ASSERT_FALSE(update_ops(*p.res).empty());
  EXPECT_EQ(update_ops(*p.res).back().remote, ep("198.51.100.5"));
  EXPECT_EQ(view_of(*p.ini).committed.local, ep("198.51.100.5"));
  auto upd = tap.all(Tap::update_request);
  ASSERT_EQ(upd.size(), 2u);
  EXPECT_EQ(upd[1]->src, ep("198.51.100.5"));
}

TEST(MobikeUpdateSim, BothPeersChangeAtOnce) {
  Pair p(false);
  p.net.set_addresses(*p.ini, {ip("198.51.100.3"), ip("198.51.100.4")});
  p.configure(ini_conn(Duration(0)), res_conn(Duration(0)));
  Tap tap(p);
  ASSERT_TRUE(establish(p, ip("198.51.100.3")));
  auto spis = spis_of(*p.ini);
  // At the same instant: the gateway gains an address (and announces it to the
  // initiator's old address), the initiator loses its address and moves.
  p.net.set_addresses(*p.res, {ip("198.51.100.10"), ip("198.51.100.11")});
  p.net.set_addresses(*p.ini, {ip("198.51.100.4")});
  ASSERT_TRUE(mobility::update_addresses(*p.ini->engine, only_sa(*p.ini)->id, ip("198.51.100.4"), p.net.now()));
  p.net.collect(*p.ini);
  ASSERT_TRUE(p.net.run_until([&] {
    return update_ops(*p.res).size() == 1 && view_of(*p.ini).peer_addresses == std::vector{ip("198.51.100.11")} &&
           !only_sa(*p.res)->active && !only_sa(*p.ini)->active;
  }, seconds(30)));
  EXPECT_EQ(only_sa(*p.ini)->local, ep("198.51.100.4"));
  EXPECT_EQ(only_sa(*p.res)->remote, ep("198.51.100.4"));
  EXPECT_EQ(update_ops(*p.res).back().remote, ep("198.51.100.4"));
  EXPECT_EQ(view_of(*p.res).peer_addresses, std::vector<IpAddress>{});  // .4 is in the header, .3 is gone
  // The announcement first went to the old address (lost), then followed the update.
  auto lists = tap.all([](const Seen& s) {
    return s.from == "res" && s.informational_request() && s.has(NotifyType::kAdditionalIp4Address);
  });
  ASSERT_EQ(lists.size(), 2u);
  EXPECT_EQ(lists[0]->mid, lists[1]->mid);
  EXPECT_EQ(lists[0]->dst, ep("198.51.100.3"));
  EXPECT_EQ(lists[1]->dst, ep("198.51.100.4"));
  EXPECT_EQ(spis_of(*p.ini), spis);
  EXPECT_EQ(count_events(*p.ini, EventKind::kIkeFailed) + count_events(*p.res, EventKind::kIkeFailed), 0u);
}

}  // namespace
}  // namespace mobike::sim
