// Cluster failover (docs/cluster.md "Failover", RFC 6311): gateway node A (198.51.100.10)
// dies; node B (198.51.100.20) continues its SA from A's last checkpoint, which is stale
// by a few exchanges, and synchronises it with the client behind the restricted-cone
// NAT. A client that announced the switch gets the combined message (synchronisation +
// SWITCH_TO_IP_ADDRESS(B), from A's address) and follows B; one that did not (as
// strongSwan) gets the plain synchronisation from A's address, which B took over.
// Either way: same SPIs, no re-authentication, Message IDs that go on, ESP sequence
// numbers that jump ahead, Child SAs rekeyed soon after.
#include "ike/mid_sync.h"
#include "mobility/failover.h"
#include "switch_helpers.h"

namespace mobike::sim {
namespace {

using ike::DataplaneOp;
using mobility::FailoverSync;

constexpr std::uint64_t kOutSeq = 1000;  // A's last outbound sequence number at the checkpoint
constexpr std::uint64_t kInTop = 700;    // the highest inbound one

// The IKE SA's SPIs: the Child SA's change with the rekey after a failover.
std::pair<std::uint64_t, std::uint64_t> ike_spis(const Host& h) {
  const ike::IkeSa* sa = only_sa(h);
  return sa ? std::pair{sa->spi_i, sa->spi_r} : std::pair<std::uint64_t, std::uint64_t>{};
}

bool sync_request(const Seen& m) {
  return m.from == "gw-b" && m.informational_request() && m.mid == 0 && m.has(NotifyType::kIkev2MessageIdSync);
}
bool sync_response(const Seen& m) {
  return m.from == "ini" && m.informational_response() && m.mid == 0 && m.has(NotifyType::kIkev2MessageIdSync);
}

struct FailoverSetup {
  bool client_switch = true;   // the client announced the switch (a mobiked client)
  bool client_ha_sync = true;  // the client claimed RFC 6311
};

class Failover : public ::testing::TestWithParam<int> {
 protected:
  explicit Failover(FailoverSetup f = {})
      : s(SwitchSetup{.res_addresses = {R1()},
                      .tweak =
                          [f](ike::ConnectionConfig& i, ike::ConnectionConfig& r) {
                            i.dpd_delay = seconds(10);
                            r.dpd_delay = seconds(0);
                            i.switch_allow = {*IpPrefix::parse("198.51.100.0/24")};
                            i.switch_enabled = f.client_switch;
                            i.ha_sync = f.client_ha_sync;
                          },
                      .ha_member = true}) {
    auto cfg = engine_with_notify(kSwitchNotify);
    cfg.ha_sync_member = true;
    b = &s.p.net.add_host("gw-b", {R2()}, cfg, 77);
    b->engine->set_connections({res_conn(Duration(0))});
    b->nonlocal_sources = {R1()};
  }

  Host& a() { return *s.p.res; }
  Host& client() { return *s.p.ini; }
  TimePoint now() const { return s.p.net.now(); }

  // What the cluster stored of A's SA: the engine's checkpoint with the data plane's
  // numbers at that moment.
  ike::IkeSaSnapshot checkpoint_of_a() {
    auto cp = a().engine->checkpoint(only_sa(a())->id, now());
    EXPECT_TRUE(cp) << cp.error();
    if (!cp) return {};
    for (auto& c : cp->children) c.esp = ike::EspState{kOutSeq, 0x1234, kInTop, {0xffu}, 0, 0, 0, 0};
    return *cp;
  }

  // A dies: nothing it sends arrives, nothing reaches it (while it still owns R1).
  void kill_a() {
    a_dead = true;
    s.tap->drop_if = [this](const Seen& m) { return extra_drop(m) || m.from == "res" || (a_owns_r1 && m.dst.address == R1() && m.from != "gw-b"); };
  }
  // B takes A's address over (as for a client without the switch).
  void take_address() {
    a_owns_r1 = false;
    s.p.net.set_addresses(a(), {});
    b->nonlocal_sources.clear();
    s.p.net.set_addresses(*b, {R2(), R1()});
  }

  Expected<mobility::TakenOver, std::string> take_over(const ike::IkeSaSnapshot& cp) {
    auto r = mobility::take_over(*b->engine, cp, R2(), now());
    s.p.net.collect(*b);
    return r;
  }
  bool synced() const { return count_events(*b, EventKind::kMidSynced) > 0; }

  std::size_t advances(const Host& h) const {
    return static_cast<std::size_t>(std::count_if(h.dataplane.begin(), h.dataplane.end(), [](const DataplaneOp& op) {
      return op.kind == DataplaneOp::Kind::kAdvanceOutbound && op.advance == ike::kSeqJump;
    }));
  }

  // A few exchanges after the checkpoint, so that it is stale: the client's liveness
  // checks and a request of A's own.
  void drift() {
    s.p.net.run_for(seconds(31));
    ASSERT_TRUE(send_raw(s.p.net, a(), {}));
    s.p.net.run_for(seconds(1));
  }

  // Drops the first two messages `pred` matches (retransmissions carry them), counted
  // in `dropped`.
  void lose_twice(std::function<bool(const Seen&)> pred) {
    extra_drop = [this, pred = std::move(pred)](const Seen& m) {
      if (!pred(m) || dropped >= 2) return false;
      ++dropped;
      return true;
    };
  }

  Sw s;
  Host* b = nullptr;
  int dropped = 0;
  bool a_dead = false;
  bool a_owns_r1 = true;
  std::function<bool(const Seen&)> extra_drop = [](const Seen&) { return false; };
};

TEST_F(Failover, TheCombinedMessageMovesTheClientToTheSurvivor) {
  ASSERT_TRUE(s.start());
  const Spis before = spis_of(client());
  const std::uint64_t client_sa = only_sa(client())->id;
  const auto cp = checkpoint_of_a();
  EXPECT_TRUE(cp.mid_sync);
  EXPECT_TRUE(cp.replay_sync);
  drift();
  const std::uint32_t a_next = only_sa(a())->next_request_mid;
  const std::uint32_t a_expected = only_sa(a())->expected_peer_mid;
  ASSERT_GT(a_expected, cp.expected_peer_mid) << "the checkpoint is not stale";
  ASSERT_GT(a_next, cp.next_request_mid);

  kill_a();
  auto t = take_over(cp);
  ASSERT_TRUE(t) << t.error();
  EXPECT_EQ(t->sync, FailoverSync::kCombined);
  ASSERT_TRUE(s.p.net.run_until([&] { return count_events(*b, EventKind::kSwitchSucceeded) > 0; }, seconds(10)));

  // One message from A's address, Message ID 0: the synchronisation with M1 past
  // anything A used, the replay counter delta and the switch to B.
  auto reqs = s.all(sync_request);
  ASSERT_FALSE(reqs.empty());
  EXPECT_EQ(reqs.front()->src.address, R1());
  EXPECT_EQ(reqs.front()->dst, s.ini_public);
  EXPECT_TRUE(reqs.front()->has(NotifyType::kIpsecReplayCounterSync));
  EXPECT_TRUE(switch_data(*reqs.front()) == R2().to_bytes());
  auto m1 = ike::decode_mid_sync(wire::find_notify(reqs.front()->payloads, NotifyType::kIkev2MessageIdSync)->data);
  ASSERT_TRUE(m1);
  EXPECT_EQ(m1->send, cp.next_request_mid + ike::kMidSyncMargin);
  EXPECT_EQ(m1->recv, cp.expected_peer_mid);
  // Answered towards B, through a fresh NAT mapping; then the update to B.
  auto resps = s.all(sync_response);
  ASSERT_FALSE(resps.empty());
  EXPECT_EQ(resps.front()->dst.address, R2());
  EXPECT_EQ(resps.front()->payloads.size(), 1u);
  auto answer = ike::decode_mid_sync(wire::find_notify(resps.front()->payloads, NotifyType::kIkev2MessageIdSync)->data);
  ASSERT_TRUE(answer);
  EXPECT_EQ(answer->nonce, m1->nonce);
  EXPECT_EQ(answer->recv, m1->send) << "M2";
  EXPECT_EQ(answer->send, a_expected) << "P2: the client's next request, as the client knows it";
  auto updates = s.updates();
  ASSERT_FALSE(updates.empty());
  EXPECT_EQ(updates.back()->dst.address, R2());
  EXPECT_GT(s.index(updates.back()), s.index(resps.front()));
  EXPECT_EQ(s.p.net.unsendable, 0u);

  // The client kept its SA: same SPIs, no new authentication; it counted the sync and
  // skipped its outbound sequence numbers once.
  const ike::IkeSa* c = only_sa(client());
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->id, client_sa);
  EXPECT_EQ(spis_of(client()), before);
  EXPECT_EQ(c->remote.address, R2());
  EXPECT_EQ(client().engine->counters().ike_established, 1u);
  EXPECT_EQ(client().engine->counters().mid_syncs_answered, 1u);
  EXPECT_EQ(advances(client()), 1u);
  EXPECT_EQ(b->engine->counters().mid_syncs_completed, 1u);

  // B's Child SA continued A's numbers, far ahead outbound, everything up to the
  // peer's delta seen inbound; sending at once (B owns it for good).
  const DataplaneOp* install = nullptr;
  for (const auto& op : b->dataplane)
    if (op.kind == DataplaneOp::Kind::kInstall && !install) install = &op;
  ASSERT_NE(install, nullptr);
  ASSERT_TRUE(install->resume.has_value());
  EXPECT_FALSE(install->outbound_deferred);
  EXPECT_EQ(install->resume->out_seq, kOutSeq + ike::kSeqJump);
  EXPECT_EQ(install->resume->in_top, kInTop + ike::kSeqJump);
  EXPECT_EQ(install->resume->out_iv_mask, 0x1234u);

  // Later exchanges run with B: the client's liveness checks are answered there, the
  // Child SA is rekeyed soon after the sync.
  const auto b_in = b->engine->counters().datagrams_in;
  ASSERT_TRUE(s.p.net.run_until([&] { return count_events(*b, EventKind::kChildRekeyed) > 0; }, seconds(5)));
  s.p.net.run_for(seconds(25));
  EXPECT_GT(b->engine->counters().datagrams_in, b_in + 2);
  EXPECT_EQ(only_sa(client())->id, client_sa);
  EXPECT_EQ(only_sa(client())->state, IkeState::kEstablished);
  EXPECT_EQ(only_sa(client())->spi_i, before.ike_i);
  EXPECT_EQ(count_events(client(), EventKind::kIkeFailed), 0u);
  EXPECT_EQ(count_events(*b, EventKind::kIkeFailed), 0u);
  EXPECT_EQ(client().engine->counters().dropped_sync, 0u);
}

TEST_F(Failover, TheClientsRequestInFlightGoesOutAgainWithTheNewNumbering) {
  ASSERT_TRUE(s.start());
  const auto cp = checkpoint_of_a();
  drift();
  kill_a();
  // The client's liveness check goes to the dead node and is retransmitted there.
  ASSERT_TRUE(s.p.net.run_until([&] { return only_sa(client())->active != nullptr; }, seconds(11)));
  s.p.net.run_for(seconds(3));
  const std::uint32_t lost_mid = only_sa(client())->active_mid;
  ASSERT_TRUE(take_over(cp));
  ASSERT_TRUE(s.p.net.run_until([&] { return count_events(*b, EventKind::kSwitchSucceeded) > 0 && s.idle(); },
                                seconds(10)));
  // It went to B with a Message ID past the synchronised one and was answered there.
  auto to_b = s.all([&](const Seen& m) {
    return m.from == "ini" && m.informational_request() && m.dst.address == R2() && m.mid > lost_mid &&
           !m.has(NotifyType::kUpdateSaAddresses);
  });
  EXPECT_FALSE(to_b.empty());
  EXPECT_EQ(count_events(client(), EventKind::kIkeFailed), 0u);
  s.p.net.run_for(seconds(25));
  EXPECT_EQ(only_sa(client())->state, IkeState::kEstablished);
  EXPECT_EQ(count_events(client(), EventKind::kIkeFailed), 0u);
}

class FailoverWithoutSwitch : public Failover {
 protected:
  FailoverWithoutSwitch() : Failover(FailoverSetup{.client_switch = false}) {}
};

TEST_F(FailoverWithoutSwitch, ThePlainSyncComesFromTheAddressTheSurvivorTookOver) {
  ASSERT_TRUE(s.start());
  const Spis before = spis_of(client());
  const auto cp = checkpoint_of_a();
  drift();
  kill_a();
  take_address();
  auto t = take_over(cp);
  ASSERT_TRUE(t) << t.error();
  EXPECT_EQ(t->sync, FailoverSync::kPlain);
  ASSERT_TRUE(s.p.net.run_until([&] { return synced(); }, seconds(10)));
  auto reqs = s.all(sync_request);
  ASSERT_FALSE(reqs.empty());
  EXPECT_EQ(reqs.front()->src.address, R1());
  EXPECT_EQ(switch_data(*reqs.front()), Bytes{}) << "a switch to a client that did not announce it";
  auto resps = s.all(sync_response);
  ASSERT_FALSE(resps.empty());
  EXPECT_EQ(resps.front()->dst.address, R1());
  s.p.net.run_for(seconds(25));
  const ike::IkeSa* c = only_sa(client());
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(ike_spis(client()), std::pair(before.ike_i, before.ike_r));
  EXPECT_NE(spis_of(client()).child_out, before.child_out) << "the Child SA was not rekeyed after the failover";
  EXPECT_EQ(c->remote.address, R1());
  EXPECT_GT(b->engine->counters().datagrams_in, 2u);
  EXPECT_EQ(count_events(client(), EventKind::kIkeFailed), 0u);
  EXPECT_EQ(count_events(*b, EventKind::kIkeFailed), 0u);
}

class FailoverWithoutHaSync : public Failover {
 protected:
  FailoverWithoutHaSync() : Failover(FailoverSetup{.client_ha_sync = false}) {}
};

TEST_F(FailoverWithoutHaSync, TheSaCannotBeTakenOverAndIsLost) {
  ASSERT_TRUE(s.start());
  EXPECT_FALSE(only_sa(a())->mid_sync);
  EXPECT_FALSE(only_sa(a())->peer_mid_sync) << "the client claimed what it was told not to";
  const auto cp = checkpoint_of_a();
  EXPECT_FALSE(cp.mid_sync);
  auto how = mobility::failover_sync(cp, R2());
  ASSERT_FALSE(how);
  EXPECT_NE(how.error().find("RFC 6311"), std::string::npos) << how.error();
  auto t = take_over(cp);
  ASSERT_FALSE(t);
  EXPECT_EQ(b->engine->ike_sa_count(), 0u);
}

TEST_F(Failover, AnSaRekeyedBeforeTheFailoverIsSynchronisedToo) {
  ASSERT_TRUE(s.start());
  ASSERT_TRUE(client().engine->rekey_ike(only_sa(client())->id, now()));
  s.p.net.collect(client());
  ASSERT_TRUE(s.p.net.run_until([&] { return count_events(a(), EventKind::kIkeRekeyed) == 1 && s.idle(); },
                                seconds(10)));
  EXPECT_TRUE(only_sa(a())->mid_sync) << "the rekeyed IKE SA lost RFC 6311";
  EXPECT_TRUE(only_sa(client())->mid_sync);
  const auto cp = checkpoint_of_a();
  kill_a();
  ASSERT_TRUE(take_over(cp));
  ASSERT_TRUE(s.p.net.run_until([&] { return count_events(*b, EventKind::kSwitchSucceeded) > 0; }, seconds(10)));
  EXPECT_EQ(client().engine->counters().mid_syncs_answered, 1u);
}

TEST(FailoverClaims, AResponderOutsideAClusterClaimsNothing) {
  Sw s(SwitchSetup{.res_addresses = {R1()}});
  ASSERT_TRUE(s.start());
  EXPECT_TRUE(s.res().peer_mid_sync) << "a mobiked client claims RFC 6311";
  EXPECT_TRUE(s.res().peer_replay_sync);
  EXPECT_FALSE(s.res().mid_sync);
  EXPECT_FALSE(s.ini().peer_mid_sync) << "the responder claimed RFC 6311 outside a cluster";
  EXPECT_FALSE(s.ini().mid_sync);
}

TEST_F(Failover, AReplayedSyncFromAnEarlierFailoverIsDroppedSilently) {
  ASSERT_TRUE(s.start());
  const auto cp = checkpoint_of_a();
  kill_a();
  ASSERT_TRUE(take_over(cp));
  ASSERT_TRUE(s.p.net.run_until([&] { return count_events(*b, EventKind::kSwitchSucceeded) > 0 && s.idle(); },
                                seconds(10)));
  auto first = s.all(sync_request);
  ASSERT_FALSE(first.empty());
  const Packet replay{first.front()->src, first.front()->dst, first.front()->data, false, "attacker"};
  const std::size_t advances_before = advances(client());

  // Replayed while its answer is cached: a retransmission, answered again, applied once.
  s.p.net.inject(replay);
  s.p.net.run_for(seconds(1));
  EXPECT_EQ(advances(client()), advances_before);
  EXPECT_EQ(client().engine->counters().mid_syncs_answered, 1u);

  // B dies too, C... here B fails over to itself again from a later checkpoint: a second
  // synchronisation replaces the cached answer; the first request is stale from then on.
  auto cp2 = b->engine->checkpoint(only_sa(*b)->id, now());
  ASSERT_TRUE(cp2) << cp2.error();
  for (auto& c : cp2->children) c.esp = ike::EspState{kOutSeq, 0x1234, kInTop, {0xffu}, 0, 0, 0, 0};
  ASSERT_TRUE(b->engine->release(only_sa(*b)->id, now()));
  s.p.net.collect(*b);
  auto again = b->engine->take_over(*cp2, nullptr, now());
  ASSERT_TRUE(again) << again.error();
  s.p.net.collect(*b);
  ASSERT_TRUE(s.p.net.run_until([&] { return count_events(*b, EventKind::kMidSynced) >= 2; }, seconds(10)));
  EXPECT_EQ(client().engine->counters().mid_syncs_answered, 2u);
  const std::size_t advances_after = advances(client());
  EXPECT_EQ(advances_after, advances_before + 1);
  const auto dropped = client().engine->counters().dropped_sync;
  const auto answers = s.tap->count(sync_response);
  s.p.net.inject(replay);
  s.p.net.run_for(seconds(1));
  EXPECT_EQ(client().engine->counters().dropped_sync, dropped + 1);
  EXPECT_EQ(advances(client()), advances_after) << "the replay counters were synchronised twice";
  EXPECT_EQ(s.tap->count(sync_response), answers) << "a replayed sync was answered";
  EXPECT_EQ(only_sa(client())->state, IkeState::kEstablished);
}

TEST_F(Failover, AForgedSyncIsDroppedAndCounted) {
  ASSERT_TRUE(s.start());
  const auto cp = checkpoint_of_a();
  kill_a();
  ASSERT_TRUE(take_over(cp));
  ASSERT_TRUE(s.p.net.run_until([&] { return synced(); }, seconds(10)));
  auto first = s.all(sync_request);
  ASSERT_FALSE(first.empty());
  // The same header, the encrypted body altered: the integrity check fails.
  Bytes forged = first.front()->data;
  forged[forged.size() - 3] ^= 0x40;
  const auto integrity = client().engine->counters().dropped_integrity;
  const auto answers = s.tap->count(sync_response);
  s.p.net.inject({first.front()->src, first.front()->dst, forged, false, "attacker"});
  s.p.net.run_for(seconds(1));
  EXPECT_EQ(client().engine->counters().dropped_integrity, integrity + 1);
  EXPECT_EQ(s.tap->count(sync_response), answers);
  EXPECT_EQ(client().engine->counters().mid_syncs_answered, 1u);
}

// Each message of the combined flow lost in turn (twice, so that retransmissions
// carry it): the synchronisation request, its answer, the update, the update's answer.
class FailoverLoss : public Failover {};

TEST_P(FailoverLoss, TheFlowCompletesWhenOneMessageIsLost) {
  const int which = GetParam();
  ASSERT_TRUE(s.start());
  const Spis before = spis_of(client());
  const auto cp = checkpoint_of_a();
  drift();
  lose_twice([&, which](const Seen& m) {
    return (which == 0 && sync_request(m)) || (which == 1 && sync_response(m)) ||
           (which == 2 && Tap::update_request(m)) ||
           (which == 3 && m.from == "gw-b" && m.informational_response() && m.mid != 0 &&
            s.tap->count([&](const Seen& q) { return Tap::update_request(q) && q.mid == m.mid; }) > 0);
  });
  kill_a();
  ASSERT_TRUE(take_over(cp));
  ASSERT_TRUE(s.p.net.run_until([&] { return count_events(*b, EventKind::kSwitchSucceeded) > 0 && s.idle(); },
                                seconds(30)));
  EXPECT_EQ(dropped, 2);
  EXPECT_EQ(ike_spis(client()), std::pair(before.ike_i, before.ike_r));
  EXPECT_EQ(only_sa(client())->remote.address, R2());
  EXPECT_EQ(client().engine->counters().mid_syncs_answered, 1u) << "a retransmitted sync was applied again";
  EXPECT_EQ(advances(client()), 1u);
  s.p.net.run_for(seconds(25));
  EXPECT_EQ(only_sa(client())->state, IkeState::kEstablished);
  EXPECT_EQ(count_events(client(), EventKind::kIkeFailed), 0u);
  EXPECT_EQ(count_events(*b, EventKind::kIkeFailed), 0u);
}

INSTANTIATE_TEST_SUITE_P(EachMessage, FailoverLoss, ::testing::Range(0, 4));

// The plain synchronisation (a client without the switch, from the address B took over):
// its request and its answer each lost twice.
class PlainFailoverLoss : public Failover {
 protected:
  PlainFailoverLoss() : Failover(FailoverSetup{.client_switch = false}) {}
};

TEST_P(PlainFailoverLoss, TheSyncCompletesWhenOneMessageIsLost) {
  const int which = GetParam();
  ASSERT_TRUE(s.start());
  const Spis before = spis_of(client());
  const auto cp = checkpoint_of_a();
  drift();
  lose_twice([which](const Seen& m) { return (which == 0 && sync_request(m)) || (which == 1 && sync_response(m)); });
  kill_a();
  take_address();
  ASSERT_TRUE(take_over(cp));
  ASSERT_TRUE(s.p.net.run_until([&] { return synced() && s.idle(); }, seconds(30)));
  EXPECT_EQ(dropped, 2);
  EXPECT_EQ(ike_spis(client()), std::pair(before.ike_i, before.ike_r));
  EXPECT_EQ(client().engine->counters().mid_syncs_answered, 1u);
  EXPECT_EQ(advances(client()), 1u) << "a retransmitted sync was applied again";
  s.p.net.run_for(seconds(25));
  EXPECT_EQ(only_sa(client())->state, IkeState::kEstablished);
  EXPECT_EQ(count_events(client(), EventKind::kIkeFailed), 0u);
}

INSTANTIATE_TEST_SUITE_P(EachMessage, PlainFailoverLoss, ::testing::Range(0, 2));

}  // namespace
}  // namespace mobike::sim
