// Planned moves between gateway nodes, driven by cluster::Node over an in-memory store
// with etcd's compare-and-put semantics (docs/cluster.md): node A (198.51.100.10) hands
// a live SA to node B (198.51.100.20), the client behind the restricted-cone NAT
// follows; a client that refuses, an SA busy with an exchange, a blob sealed with
// another key, a record changed under the mover and a new node that leaves mid-move
// are each handled without losing the SA. Throughout every test, no two nodes send on
// one Child SA.
#include <algorithm>
#include <set>

#include "cluster_helpers.h"
#include "ike/informational.h"

namespace mobike::sim {
namespace {

using cluster::MoveOutcome;
using cluster::Node;
using cluster::SaRecord;

struct Client {
  bool allows_b = true;
  bool gen1 = true;  // answers a switch request towards the new address, not to its source
  // The nodes: the old node sends the switch request (from its own address), and no node
  // may send from another's address (a network with source address validation).
  bool old_node_sends = false;
};

class ClusterMove : public ::testing::Test {
 protected:
  explicit ClusterMove(Client client = {})
      : s(SwitchSetup{.gen1 = client.gen1,
                      .res_addresses = {R1()},
                      .tweak = [client_allows_b = client.allows_b](ike::ConnectionConfig& i, ike::ConnectionConfig&) {
                        i.dpd_delay = seconds(10);
                        if (client_allows_b) i.switch_allow = {*IpPrefix::parse("198.51.100.0/24")};
                      }}) {
    b = &s.p.net.add_host("gw-b", {R2()}, engine_with_notify(kSwitchNotify), 77);
    b->engine->set_connections({res_conn(Duration(0))});
    sender = client.old_node_sends ? cluster::SwitchSender::kOldNode : cluster::SwitchSender::kNewNode;
    // Each node may send from the others' addresses (one LAN, no source filtering),
    // unless the old node sends.
    if (!client.old_node_sends) {
      b->nonlocal_sources = {R1()};
      s.p.res->nonlocal_sources = {R2()};
    }
    node_a = make_node("a", *s.p.res, R1(), key_of(1));
    node_b = make_node("b", *b, R2(), key_of(1));
    s.p.net.wakeups.push_back([this] { return earliest(); });
  }

  std::unique_ptr<Node> make_node(const std::string& name, Host& h, const IpAddress& addr,
                                  const cluster::ClusterKey& k) {
    cluster::NodeConfig c;
    c.name = name;
    c.key = k;
    c.addresses = {addr};
    c.export_patience = seconds(5);
    c.switch_sender = sender;
    c.relay_patience = seconds(60);
    cluster::DataplaneAccess dp;
    dp.apply_pending = [this, &h] { s.p.net.collect(h); };
    // The simulation carries no ESP: the sequence numbers are those of a fresh SA.
    dp.esp_state = [](std::uint64_t) { return std::optional<ike::EspState>(ike::EspState{}); };
    Host* hp = &h;
    return std::make_unique<Node>(c, *h.engine, dp, *h.random,
                                  [hp](ike::LogLevel, const std::string& m) { hp->log.push_back(m); });
  }

  std::optional<TimePoint> earliest() const {
    if (!late.empty()) return s.p.net.now();
    std::optional<TimePoint> t;
    for (const Node* n : {node_a.get(), node_b.get()})
      if (auto u = n->next_timeout(); u && (!t || *u < *t)) t = u;
    return t;
  }

  // Moves everything along once: node timers, engine events into the nodes, store
  // writes, their results and the watch events. A node that is gone takes part in
  // none of it; writes held back wait in `held`.
  void pump() {
    const TimePoint now = s.p.net.now();
    std::vector<std::pair<Host*, Node*>> pairs;
    for (auto [h, n] : {std::pair{s.p.res, node_a.get()}, std::pair{b, node_b.get()}})
      if (!gone.count(n)) pairs.emplace_back(h, n);
    for (int round = 0; round < 4; ++round) {
      for (auto& deliver : std::exchange(late, {})) deliver();
      for (auto [h, n] : pairs) {
        if (auto t = n->next_timeout(); t && *t <= now) n->on_timeout(now);
        s.p.net.collect(*h);
        std::size_t& seen = events_seen[h];
        for (; seen < h->events.size(); ++seen) n->on_engine_event(h->events[seen], now);
        s.p.net.collect(*h);
      }
      for (auto [h, n] : pairs)
        for (auto& w : n->take_writes()) held.emplace_back(n, std::move(w));
      std::vector<std::pair<Node*, cluster::StoreWriteResult>> results;
      std::vector<cluster::StoreEvent> events;
      if (!hold_writes) {
        // The store orders concurrent writes as it likes; a test may say who comes first.
        std::stable_partition(held.begin(), held.end(), [&](const auto& w) { return w.first == first_writer; });
        std::vector<std::pair<Node*, cluster::StoreWrite>> still;
        for (auto& [n, w] : std::exchange(held, {})) {
          if (n == held_node)
            still.emplace_back(n, std::move(w));
          else if (!gone.count(n))
            store.apply(*n, w, results, events);
        }
        held = std::move(still);
      }
      for (auto& [n, r] : results) {
        if (gone.count(n)) continue;
        if (n == results_held_for) {
          held_results.emplace_back(n, r);
          continue;
        }
        if (n == late_watcher)
          late.push_back([n, r, now] { n->on_write_result(r, now); });
        else
          n->on_write_result(r, now);
      }
      for (const auto& e : events)
        for (auto [h, n] : pairs) {
          if (n == late_watcher)
            late.push_back([n, e, now] { n->on_store_event(e, now); });
          else
            n->on_store_event(e, now);
        }
      for (auto [h, n] : pairs) {
        s.p.net.collect(*h);
        auto o = n->take_outcomes();
        outcomes.insert(outcomes.end(), o.begin(), o.end());
      }
      // Never two senders on one key (docs/cluster.md), at any moment of any move.
      std::set<std::uint32_t> both;
      auto on_a = sending(*s.p.res), on_b = sending(*b);
      std::set_intersection(on_a.begin(), on_a.end(), on_b.begin(), on_b.end(), std::inserter(both, both.end()));
      if (!both.empty() && !two_senders++) ADD_FAILURE() << "A and B both send on Child SA " << *both.begin();
    }
  }
  std::size_t held_from(const Node* n) const {
    return static_cast<std::size_t>(std::count_if(held.begin(), held.end(), [&](const auto& w) { return w.first == n; }));
  }
  // The record's latest value as the watch reported it (for a node that missed it).
  cluster::StoreEvent record_event() const {
    const auto& [k, e] = *store.kv.begin();
    return {k, e.value, e.mod_revision};
  }
  Duration since(TimePoint t) const { return std::chrono::duration_cast<Duration>(s.p.net.now() - t); }
  // The client's liveness check, started now.
  void client_checks_liveness() {
    s.p.ini->engine->with_sa(only_sa(*s.p.ini)->id, s.p.net.now(), [](ike::IkeSa& sa, ike::Services& sv) {
      sv.queue(sa, std::make_unique<ike::LivenessTask>());
      return true;
    });
    s.p.net.collect(*s.p.ini);
  }
  // A Child SA rekey started by `by`, completed on the client's side.
  bool rekey_completes(Host& by) {
    const std::size_t before = count_events(*s.p.ini, EventKind::kChildRekeyed);
    if (!by.engine->rekey_child(only_sa(by)->children[0].id, s.p.net.now())) return false;
    s.p.net.collect(by);
    bool done = run_until([&] { return count_events(*s.p.ini, EventKind::kChildRekeyed) > before; }, seconds(10));
    s.p.net.run_for(seconds(2));  // the old Child SA's delete
    return done;
  }
  std::size_t requests_from_b() const {
    return s.tap->count([](const Seen& x) { return x.from == "gw-b" && x.informational_request(); });
  }
  bool run_until(const std::function<bool()>& cond, Duration limit = seconds(20)) {
    return s.p.net.run_until([&] {
      pump();
      return cond();
    }, limit);
  }
  std::size_t sas(const Host& h) const { return h.engine->ike_sa_count(); }
  std::optional<SaRecord> record() const {
    for (const auto& [k, e] : store.kv)
      if (auto r = cluster::decode_record(e.value)) return *r;
    return std::nullopt;
  }

  ~ClusterMove() override {
    EXPECT_EQ(two_senders, 0u);
    if (!HasFailure()) return;
    for (const auto& l : s.p.res->log) std::fprintf(stderr, "  gw-a: %s\n", l.c_str());
    for (const auto& l : b->log) std::fprintf(stderr, "  gw-b: %s\n", l.c_str());
    for (const auto& o : outcomes) std::fprintf(stderr, "  outcome: %s %s\n", to_string(o.result), o.detail.c_str());
  }

  cluster::SwitchSender sender = cluster::SwitchSender::kNewNode;
  Sw s;
  Host* b = nullptr;
  FakeStore store;
  std::unique_ptr<Node> node_a, node_b;
  std::map<Host*, std::size_t> events_seen;
  std::vector<MoveOutcome> outcomes;
  bool hold_writes = false;
  std::vector<std::pair<Node*, cluster::StoreWrite>> held;
  const Node* first_writer = nullptr;
  const Node* held_node = nullptr;  // this node's writes wait in `held` while set
  // This node's write results wait in `held_results` (its store connection is slow).
  const Node* results_held_for = nullptr;
  std::vector<std::pair<Node*, cluster::StoreWriteResult>> held_results;
  // This node hears from the store a round later than the other: the window in which
  // one node has acted on a record and the other has not seen it yet.
  const Node* late_watcher = nullptr;
  std::vector<std::function<void()>> late;
  std::set<const Node*> gone;
  std::size_t two_senders = 0;
};

TEST_F(ClusterMove, ALiveSaMovesAndTheClientFollowsThroughItsNat) {
  ASSERT_TRUE(s.start());
  const Spis before = spis_of(*s.p.ini);
  const std::uint64_t client_sa = only_sa(*s.p.ini)->id;
  // As if the client had claimed RFC 6311 Message ID sync only, and the node both: the
  // claims move with the SA.
  s.p.res->engine->with_sa(only_sa(*s.p.res)->id, s.p.net.now(), [](ike::IkeSa& sa, ike::Services&) {
    sa.peer_mid_sync = sa.mid_sync = true;
    sa.peer_replay_sync = sa.replay_sync = false;
    return true;
  });
  ASSERT_TRUE(node_a->move(only_sa(*s.p.res)->id, "b", s.p.net.now()));
  ASSERT_TRUE(run_until([&] { return !outcomes.empty(); }));
  ASSERT_EQ(outcomes.size(), 1u);
  EXPECT_EQ(outcomes[0].result, MoveOutcome::Result::kMoved) << outcomes[0].detail;
  EXPECT_EQ(outcomes[0].to, "b");
  EXPECT_EQ(sas(*s.p.res), 0u) << "A kept its copy";
  ASSERT_EQ(sas(*b), 1u);
  auto rec = record();
  ASSERT_TRUE(rec);
  EXPECT_EQ(rec->phase, SaRecord::Phase::kOwned);
  EXPECT_EQ(rec->owner, "b");
  EXPECT_TRUE(rec->blob.empty());

  s.p.net.run_for(seconds(2));
  ASSERT_NE(only_sa(*s.p.ini), nullptr);
  EXPECT_EQ(only_sa(*s.p.ini)->id, client_sa);
  EXPECT_EQ(spis_of(*s.p.ini), before);
  EXPECT_EQ(only_sa(*s.p.ini)->remote.address, R2());
  EXPECT_EQ(only_sa(*b)->remote, s.ini_public);
  EXPECT_TRUE(only_sa(*b)->peer_mid_sync);
  EXPECT_TRUE(only_sa(*b)->mid_sync);
  EXPECT_FALSE(only_sa(*b)->peer_replay_sync);
  EXPECT_FALSE(only_sa(*b)->replay_sync);
  EXPECT_EQ(node_a->stats().moves_out, 1u);
  EXPECT_EQ(node_b->stats().moves_in, 1u);
  EXPECT_TRUE(sending(*s.p.res).empty());
  EXPECT_FALSE(sending(*b).empty()) << "B's claim won, yet its Child SA does not send";

  // And back again, B to A: the record's revision is B's now.
  ASSERT_TRUE(node_b->move(only_sa(*b)->id, "a", s.p.net.now()));
  outcomes.clear();
  ASSERT_TRUE(run_until([&] { return !outcomes.empty(); }));
  EXPECT_EQ(outcomes[0].result, MoveOutcome::Result::kMoved) << outcomes[0].detail;
  s.p.net.run_for(seconds(2));
  EXPECT_EQ(sas(*b), 0u);
  ASSERT_EQ(sas(*s.p.res), 1u);
  EXPECT_EQ(only_sa(*s.p.ini)->remote.address, R1());
  EXPECT_EQ(spis_of(*s.p.ini), before);
  EXPECT_EQ(store.refused_writes, 0u);
}

TEST_F(ClusterMove, ASaBusyWithAnExchangeMovesOnceItIsDone) {
  ASSERT_TRUE(s.start());
  const auto id = only_sa(*s.p.res)->id;
  s.p.net.run_for(seconds(2));  // the old Child SA's delete
  ASSERT_EQ(only_sa(*s.p.res)->children.size(), 1u);
  ASSERT_TRUE(s.p.res->engine->rekey_child(only_sa(*s.p.res)->children[0].id, s.p.net.now()));
  s.p.net.collect(*s.p.res);
  ASSERT_TRUE(node_a->move(id, "b", s.p.net.now()));
  EXPECT_TRUE(store.kv.empty());
  ASSERT_TRUE(run_until([&] { return !outcomes.empty(); }));
  EXPECT_EQ(outcomes[0].result, MoveOutcome::Result::kMoved) << outcomes[0].detail;
  EXPECT_EQ(count_events(*s.p.res, EventKind::kChildRekeyed), 1u) << "the rekey in flight did not finish first";
  ASSERT_EQ(sas(*b), 1u);
  EXPECT_EQ(only_sa(*b)->children.size(), 1u);
}

class ClusterMoveRefused : public ClusterMove {
 protected:
  ClusterMoveRefused() : ClusterMove(Client{.allows_b = false}) {}
};

TEST_F(ClusterMoveRefused, AClientThatRefusesKeepsItsSaOnTheFirstNode) {
  // B's address is neither announced by A nor allowed by the client: it refuses. Its
  // refusal goes to the old address, A's (docs/switch.md §5.4), followed by a liveness
  // check there; A takes the SA back itself without waiting for B's retransmissions to
  // run out, and continues it past the Message ID B's request used.
  ASSERT_TRUE(s.start());
  late_watcher = node_b.get();
  const Spis before = spis_of(*s.p.ini);
  const TimePoint start = s.p.net.now();
  ASSERT_TRUE(node_a->move(only_sa(*s.p.res)->id, "b", s.p.net.now()));
  ASSERT_TRUE(run_until([&] { return !outcomes.empty(); }, seconds(120)));
  // B's first retransmission would be due after 2 s, its last gives up after ~45 s.
  EXPECT_LT(since(start), seconds(1)) << "the return waited for B";
  ASSERT_EQ(outcomes.size(), 1u);
  EXPECT_EQ(outcomes[0].result, MoveOutcome::Result::kReturned) << outcomes[0].detail;
  EXPECT_NE(outcomes[0].detail.find("the client answered at 198.51.100.10"), std::string::npos) << outcomes[0].detail;
  EXPECT_EQ(count_events(*s.p.res, EventKind::kHandoffAnswered), 1u);
  EXPECT_EQ(sas(*b), 0u);
  ASSERT_EQ(sas(*s.p.res), 1u);
  EXPECT_EQ(only_sa(*s.p.res)->handoff, ike::Handoff::kNone);
  EXPECT_EQ(node_a->stats().taken_back, 1u);
  EXPECT_EQ(node_a->stats().failed, 0u);
  EXPECT_EQ(node_b->stats().withdrawn, 1u);
  EXPECT_EQ(node_b->stats().returned, 0u);
  auto rec = record();
  ASSERT_TRUE(rec);
  EXPECT_EQ(rec->phase, SaRecord::Phase::kReturned);
  EXPECT_EQ(rec->owner, "a");
  EXPECT_EQ(rec->from, "b");
  EXPECT_EQ(rec->detail, outcomes[0].detail);

  // The SA works on A as before: the client's checks are answered, and rekeys started
  // by either side complete (A's request uses the next Message ID the client expects).
  // B sent nothing but its switch request: no retransmission, no DELETE.
  s.p.net.run_for(seconds(30));
  EXPECT_EQ(requests_from_b(), 1u);
  ASSERT_TRUE(rekey_completes(*s.p.ini));
  ASSERT_EQ(only_sa(*s.p.res)->children.size(), 1u);
  ASSERT_TRUE(rekey_completes(*s.p.res));
  EXPECT_EQ(only_sa(*s.p.ini)->spi_i, before.ike_i);
  EXPECT_EQ(only_sa(*s.p.ini)->remote.address, R1());
  EXPECT_EQ(count_events(*s.p.ini, EventKind::kIkeFailed), 0u);
  EXPECT_EQ(count_events(*s.p.res, EventKind::kIkeFailed), 0u);
  EXPECT_EQ(store.refused_writes, 0u);
}

TEST_F(ClusterMoveRefused, BGivingUpFirstStillReturnsTheSa) {
  // The refusal never reaches A (lost between the client's NAT and A): B's request goes
  // unanswered, B gives up and hands the SA back as before.
  ASSERT_TRUE(s.start());
  s.tap->drop_if = [](const Seen& x) { return x.from == "ini" && x.dst.address == R1(); };
  ASSERT_TRUE(node_a->move(only_sa(*s.p.res)->id, "b", s.p.net.now()));
  ASSERT_TRUE(run_until([&] { return !outcomes.empty(); }, seconds(120)));
  s.tap->drop_if = nullptr;
  ASSERT_EQ(outcomes.size(), 1u);
  EXPECT_EQ(outcomes[0].result, MoveOutcome::Result::kReturned) << outcomes[0].detail;
  EXPECT_NE(outcomes[0].detail.find("returned by b: the switch failed"), std::string::npos) << outcomes[0].detail;
  EXPECT_EQ(node_b->stats().returned, 1u);
  EXPECT_EQ(node_a->stats().taken_back, 0u);
  EXPECT_EQ(sas(*b), 0u);
  ASSERT_EQ(sas(*s.p.res), 1u);
  auto rec = record();
  ASSERT_TRUE(rec);
  EXPECT_EQ(rec->phase, SaRecord::Phase::kOwned);
  EXPECT_EQ(rec->owner, "a");
}

TEST_F(ClusterMoveRefused, AClientTheClusterAnnouncedItsNodesToFollowsWithoutAllowingThem) {
  // The same client, but A announced B's address with its own (MOBIKE additional
  // addresses, in IKE_AUTH): the client needs no policy of its own to follow.
  s.p.res->engine->set_cluster_addresses({R2()});
  ASSERT_TRUE(s.start());
  const Spis before = spis_of(*s.p.ini);
  ASSERT_TRUE(node_a->move(only_sa(*s.p.res)->id, "b", s.p.net.now()));
  ASSERT_TRUE(run_until([&] { return !outcomes.empty(); }));
  EXPECT_EQ(outcomes[0].result, MoveOutcome::Result::kMoved) << outcomes[0].detail;
  s.p.net.run_for(seconds(2));
  EXPECT_EQ(only_sa(*s.p.ini)->remote.address, R2());
  EXPECT_EQ(spis_of(*s.p.ini), before);
  EXPECT_EQ(count_events(*s.p.ini, EventKind::kSwitchRefused), 0u);
}

class ClusterMoveGen2 : public ClusterMove {
 protected:
  ClusterMoveGen2() : ClusterMove(Client{.gen1 = false}) {}
};

TEST_F(ClusterMoveGen2, AnAnswerAtTheOldAddressFromAClientThatFollowsIsNoRefusal) {
  // A generation-2 client answers at the old address, A's, and then updates at B's: A
  // must not take that answer for a refusal.
  ASSERT_TRUE(s.start());
  const Spis before = spis_of(*s.p.ini);
  const auto dropped = s.p.res->engine->counters().dropped_handed_over;
  ASSERT_TRUE(node_a->move(only_sa(*s.p.res)->id, "b", s.p.net.now()));
  ASSERT_TRUE(run_until([&] { return !outcomes.empty(); }));
  EXPECT_EQ(outcomes[0].result, MoveOutcome::Result::kMoved) << outcomes[0].detail;
  EXPECT_GT(s.p.res->engine->counters().dropped_handed_over, dropped) << "the answer did not reach A";
  EXPECT_EQ(count_events(*s.p.res, EventKind::kHandoffAnswered), 0u);
  EXPECT_EQ(sas(*s.p.res), 0u);
  ASSERT_EQ(sas(*b), 1u);
  s.p.net.run_for(seconds(2));
  EXPECT_EQ(only_sa(*s.p.ini)->remote.address, R2());
  ASSERT_TRUE(rekey_completes(*s.p.ini));
  EXPECT_EQ(only_sa(*s.p.ini)->spi_i, before.ike_i);
  EXPECT_EQ(count_events(*s.p.ini, EventKind::kIkeFailed), 0u);
}

// The client follows B, but a liveness check it sent to A just before is delayed past
// its answer to B's request: A sees the answer and then the check, takes the client to
// stay and writes its return while B writes its claim. The store orders the two writes;
// whichever wins, one node keeps the SA and the other drops its copy, and no moment
// has both sending.
class ClusterMoveRace : public ClusterMoveGen2 {
 protected:
  void race(const Node* first) {
    ASSERT_TRUE(s.start());
    late_watcher = first == node_a.get() ? node_b.get() : node_a.get();
    s.p.net.jitter = [](const Packet& p) { return p.from == "ini" ? Duration(500) : Duration(0); };
    client_checks_liveness();
    s.p.net.jitter = nullptr;
    ASSERT_TRUE(node_a->move(only_sa(*s.p.res)->id, "b", s.p.net.now()));
    ASSERT_TRUE(run_until([&] { return sas(*b) == 1; }, seconds(1)));
    hold_writes = true;
    ASSERT_TRUE(run_until([&] { return held_from(node_a.get()) && held_from(node_b.get()); }, seconds(2)));
    EXPECT_EQ(count_events(*b, EventKind::kSwitchSucceeded), 1u);
    EXPECT_EQ(count_events(*s.p.res, EventKind::kHandoffAnswered), 1u);
    first_writer = first;
    hold_writes = false;
    ASSERT_TRUE(run_until([&] { return !outcomes.empty(); }, seconds(1)));
    ASSERT_EQ(outcomes.size(), 1u);
    EXPECT_EQ(store.refused_writes, 1u);
  }
};

TEST_F(ClusterMoveRace, AsReturnWinsAndBDropsItsClaimedCopy) {
  race(node_a.get());
  EXPECT_EQ(outcomes[0].result, MoveOutcome::Result::kReturned) << outcomes[0].detail;
  EXPECT_EQ(sas(*b), 0u);
  EXPECT_EQ(node_b->stats().withdrawn, 1u);
  EXPECT_EQ(node_b->stats().moves_in, 0u);
  ASSERT_EQ(sas(*s.p.res), 1u);
  EXPECT_EQ(only_sa(*s.p.res)->handoff, ike::Handoff::kNone);
  EXPECT_FALSE(sending(*s.p.res).empty());
  EXPECT_TRUE(sending(*b).empty());
  // The client did follow B: with B's copy gone, the SA is lost to it. A safe end, and
  // one only a reordered packet leads to.
}

TEST_F(ClusterMoveRace, BsClaimWinsAndAFollowsIt) {
  race(node_b.get());
  EXPECT_EQ(outcomes[0].result, MoveOutcome::Result::kMoved) << outcomes[0].detail;
  EXPECT_EQ(sas(*s.p.res), 0u);
  EXPECT_EQ(node_a->stats().taken_back, 0u);
  EXPECT_EQ(node_a->stats().moves_out, 1u);
  EXPECT_EQ(node_b->stats().moves_in, 1u);
  ASSERT_EQ(sas(*b), 1u);
  EXPECT_FALSE(sending(*b).empty());
  auto rec = record();
  ASSERT_TRUE(rec);
  EXPECT_EQ(rec->phase, SaRecord::Phase::kOwned);
  EXPECT_EQ(rec->owner, "b");
  ASSERT_TRUE(rekey_completes(*s.p.ini));
  EXPECT_EQ(count_events(*s.p.ini, EventKind::kIkeFailed), 0u);
}

TEST_F(ClusterMove, ABlobSealedWithAnotherKeyIsRefusedAndTheSaStays) {
  node_b = make_node("b", *b, R2(), key_of(2));  // B has the wrong cluster key
  ASSERT_TRUE(s.start());
  ASSERT_TRUE(node_a->move(only_sa(*s.p.res)->id, "b", s.p.net.now()));
  ASSERT_TRUE(run_until([&] { return !outcomes.empty(); }));
  EXPECT_EQ(outcomes[0].result, MoveOutcome::Result::kReturned) << outcomes[0].detail;
  EXPECT_EQ(node_b->stats().blobs_refused, 1u);
  EXPECT_EQ(sas(*b), 0u);
  ASSERT_EQ(sas(*s.p.res), 1u);
  // A resumed its own copy: it answers the client again.
  const auto expected = only_sa(*s.p.res)->expected_peer_mid;
  s.p.net.run_for(seconds(25));
  EXPECT_GT(only_sa(*s.p.res)->expected_peer_mid, expected);
  EXPECT_EQ(only_sa(*s.p.res)->handoff, ike::Handoff::kNone);
}

TEST_F(ClusterMove, ARecordChangedUnderTheMoverStopsTheMove) {
  ASSERT_TRUE(s.start());
  const auto* sa = only_sa(*s.p.res);
  // Another node wrote the SA's record since A last looked (A has not seen it).
  store.kv[node_a->config().prefix + "sas/" + Node::sa_name(sa->spi_i, sa->spi_r)] = {Bytes{1}, ++store.revision};
  ASSERT_TRUE(node_a->move(sa->id, "b", s.p.net.now()));
  ASSERT_TRUE(run_until([&] { return !outcomes.empty(); }));
  EXPECT_EQ(outcomes[0].result, MoveOutcome::Result::kFailed);
  EXPECT_NE(outcomes[0].detail.find("changed meanwhile"), std::string::npos) << outcomes[0].detail;
  EXPECT_EQ(store.refused_writes, 1u);
  EXPECT_EQ(sas(*b), 0u);
  ASSERT_EQ(sas(*s.p.res), 1u);
  EXPECT_EQ(only_sa(*s.p.res)->handoff, ike::Handoff::kNone);
}

TEST_F(ClusterMove, AnSaWhoseSequenceNumbersAreUnknownStaysAndSendsAgain) {
  // A data plane that cannot tell (the kernel backend today): the move fails at once,
  // nothing is written, and the Child SA that stopped sending for the export sends again.
  cluster::NodeConfig c;
  c.name = "a";
  c.key = key_of(1);
  c.addresses = {R1()};
  cluster::DataplaneAccess dp;
  dp.apply_pending = [this] { s.p.net.collect(*s.p.res); };
  dp.esp_state = [](std::uint64_t) { return std::optional<ike::EspState>(); };
  node_a = std::make_unique<Node>(c, *s.p.res->engine, dp, *s.p.res->random);
  ASSERT_TRUE(s.start());
  ASSERT_TRUE(node_a->move(only_sa(*s.p.res)->id, "b", s.p.net.now()));
  pump();
  ASSERT_EQ(outcomes.size(), 1u);
  EXPECT_EQ(outcomes[0].result, MoveOutcome::Result::kFailed);
  EXPECT_NE(outcomes[0].detail.find("sequence numbers"), std::string::npos) << outcomes[0].detail;
  EXPECT_TRUE(store.kv.empty());
  EXPECT_EQ(only_sa(*s.p.res)->handoff, ike::Handoff::kNone);
  ASSERT_GE(s.p.res->dataplane.size(), 2u);
  EXPECT_EQ(s.p.res->dataplane[s.p.res->dataplane.size() - 2].kind, ike::DataplaneOp::Kind::kSuspendOutbound);
  EXPECT_EQ(s.p.res->dataplane.back().kind, ike::DataplaneOp::Kind::kActivateOutbound);
}

TEST_F(ClusterMove, MoveRefusesWhatCannotMove) {
  ASSERT_TRUE(s.start());
  const auto id = only_sa(*s.p.res)->id;
  EXPECT_FALSE(node_a->move(id, "a", s.p.net.now()));
  EXPECT_FALSE(node_a->move(id + 100, "b", s.p.net.now()));
  ASSERT_TRUE(node_a->move(id, "b", s.p.net.now()));
  auto again = node_a->move(id, "b", s.p.net.now());
  ASSERT_FALSE(again);
  EXPECT_NE(again.error().find("moving already"), std::string::npos);
}

// B leaves the cluster (its lease expired) after it imported the SA and before the
// client answered it: A does not wait for B's record, which will never come.
TEST_F(ClusterMove, ANewNodeThatLeavesDuringTheMoveGivesTheSaBack) {
  ASSERT_TRUE(s.start());
  const Spis before = spis_of(*s.p.ini);
  s.tap->drop_if = [](const Seen& x) { return x.from == "gw-b"; };  // its switch request goes nowhere
  ASSERT_TRUE(node_a->move(only_sa(*s.p.res)->id, "b", s.p.net.now()));
  ASSERT_TRUE(run_until([&] { return sas(*b) == 1; }, seconds(1)));
  gone.insert(node_b.get());
  s.p.net.run_for(seconds(3));
  EXPECT_TRUE(outcomes.empty());
  const TimePoint left = s.p.net.now();
  node_a->on_node_gone("b", s.p.net.now());
  ASSERT_TRUE(run_until([&] { return !outcomes.empty(); }, seconds(1)));
  EXPECT_EQ(since(left), Duration(0)) << "A waited for something after B was gone";
  ASSERT_EQ(outcomes.size(), 1u);
  EXPECT_EQ(outcomes[0].result, MoveOutcome::Result::kReturned) << outcomes[0].detail;
  EXPECT_EQ(outcomes[0].detail, "b left the cluster during the move");
  EXPECT_EQ(node_a->stats().taken_back, 1u);
  auto rec = record();
  ASSERT_TRUE(rec);
  EXPECT_EQ(rec->phase, SaRecord::Phase::kOwned);
  EXPECT_EQ(rec->owner, "a");
  ASSERT_EQ(sas(*s.p.res), 1u);
  EXPECT_EQ(only_sa(*s.p.res)->handoff, ike::Handoff::kNone);

  // B only seemed gone (cut off from the store): its copy never sent, and it drops it
  // as soon as it sees the record.
  EXPECT_TRUE(sending(*b).empty());
  ASSERT_EQ(sas(*b), 1u);
  node_b->on_store_event(record_event(), s.p.net.now());
  s.p.net.collect(*b);
  EXPECT_EQ(sas(*b), 0u);
  EXPECT_EQ(node_b->stats().withdrawn, 1u);
  EXPECT_TRUE(node_b->take_writes().empty());

  // The client never heard of B: the SA goes on with A, same SPIs, both sides' requests
  // answered (A's past the Message ID B's request used).
  s.p.net.run_for(seconds(25));
  ASSERT_TRUE(rekey_completes(*s.p.ini));
  ASSERT_TRUE(rekey_completes(*s.p.res));
  EXPECT_EQ(only_sa(*s.p.ini)->spi_i, before.ike_i);
  EXPECT_EQ(only_sa(*s.p.ini)->remote.address, R1());
  EXPECT_EQ(count_events(*s.p.ini, EventKind::kIkeFailed), 0u);
}

TEST_F(ClusterMove, ANewNodeThatLeavesBeforeTheExportEndsTheMove) {
  ASSERT_TRUE(s.start());
  s.p.net.run_for(seconds(2));  // the old Child SA's delete
  const auto id = only_sa(*s.p.res)->id;
  ASSERT_TRUE(s.p.res->engine->rekey_child(only_sa(*s.p.res)->children[0].id, s.p.net.now()));
  s.p.net.collect(*s.p.res);
  ASSERT_TRUE(node_a->move(id, "b", s.p.net.now()));  // waits for the rekey
  node_a->on_node_gone("c", s.p.net.now());
  EXPECT_TRUE(node_a->take_outcomes().empty()) << "a move to another node ended";
  node_a->on_node_gone("b", s.p.net.now());
  pump();
  ASSERT_EQ(outcomes.size(), 1u);
  EXPECT_EQ(outcomes[0].result, MoveOutcome::Result::kFailed);
  EXPECT_EQ(outcomes[0].detail, "not moved: b left the cluster");
  EXPECT_TRUE(store.kv.empty());
  EXPECT_EQ(only_sa(*s.p.res)->handoff, ike::Handoff::kNone);
  EXPECT_FALSE(node_a->next_timeout()) << "the export is still retried";
  ASSERT_TRUE(s.p.net.run_until([&] { return count_events(*s.p.res, EventKind::kChildRekeyed) == 1; }, seconds(10)));
  EXPECT_EQ(sas(*b), 0u);
}

TEST_F(ClusterMove, ANewNodeThoughtGoneThatClaimedTheSaFirstKeepsIt) {
  // A hears that B left while B's claim is on its way to the store: the claim lands
  // first, A's return loses, and A follows the record as for any completed move.
  ASSERT_TRUE(s.start());
  late_watcher = node_a.get();
  ASSERT_TRUE(node_a->move(only_sa(*s.p.res)->id, "b", s.p.net.now()));
  ASSERT_TRUE(run_until([&] { return sas(*b) == 1; }, seconds(1)));
  hold_writes = true;
  ASSERT_TRUE(run_until([&] { return held_from(node_b.get()) == 1; }, seconds(2)));
  node_a->on_node_gone("b", s.p.net.now());
  pump();
  ASSERT_EQ(held_from(node_a.get()), 1u);
  first_writer = node_b.get();
  hold_writes = false;
  ASSERT_TRUE(run_until([&] { return !outcomes.empty(); }, seconds(1)));
  EXPECT_EQ(outcomes[0].result, MoveOutcome::Result::kMoved) << outcomes[0].detail;
  EXPECT_EQ(store.refused_writes, 1u);
  EXPECT_EQ(sas(*s.p.res), 0u);
  ASSERT_EQ(sas(*b), 1u);
  EXPECT_FALSE(sending(*b).empty());
  EXPECT_EQ(node_a->stats().taken_back, 0u);
  EXPECT_EQ(node_b->stats().moves_in, 1u);
}


// --- The old node sends the switch request (cluster::SwitchSender::kOldNode): B only
// imports, writes {ready} and expects the answer; A asks the client from its own
// address. Neither node may send from the other's address here.

// Any node's switch request, and the client's answer to one.
bool node_switch_request(const Seen& x) {
  return (x.from == "res" || x.from == "gw-b") && x.informational_request() && wire::find_notify(x.payloads, kSwitchNotify);
}

class ClusterMoveOldSends : public ClusterMove {
 protected:
  explicit ClusterMoveOldSends(Client c = {.old_node_sends = true}) : ClusterMove(c) {}
  std::size_t from_b_with_a_source() const {
    return s.tap->count([](const Seen& x) { return x.from == "gw-b" && x.src.address == R1(); });
  }
  // After a move that ended on `owner`: the SA works there with the same SPIs, both
  // sides' requests are answered (so the Message IDs agree), nothing failed.
  void works_on(Host& owner, const IpAddress& at, const Spis& before) {
    s.p.net.run_for(seconds(2));
    ASSERT_EQ(sas(owner), 1u);
    EXPECT_EQ(only_sa(*s.p.ini)->remote.address, at);
    ASSERT_TRUE(rekey_completes(*s.p.ini));
    ASSERT_TRUE(rekey_completes(owner));
    EXPECT_EQ(only_sa(*s.p.ini)->spi_i, before.ike_i);
    EXPECT_EQ(only_sa(*s.p.ini)->spi_r, before.ike_r);
    EXPECT_EQ(count_events(*s.p.ini, EventKind::kIkeFailed), 0u);
    EXPECT_EQ(count_events(owner, EventKind::kIkeFailed), 0u);
  }
};

TEST_F(ClusterMoveOldSends, ASendsTheRequestFromItsAddressAndBTakesTheAnswer) {
  ASSERT_TRUE(s.start());
  const Spis before = spis_of(*s.p.ini);
  const std::uint32_t mid = only_sa(*s.p.res)->next_request_mid;
  ASSERT_TRUE(node_a->move(only_sa(*s.p.res)->id, "b", s.p.net.now()));
  ASSERT_TRUE(run_until([&] { return !outcomes.empty(); }));
  ASSERT_EQ(outcomes.size(), 1u);
  EXPECT_EQ(outcomes[0].result, MoveOutcome::Result::kMoved) << outcomes[0].detail;
  auto requests = s.tap->count(node_switch_request);
  EXPECT_EQ(requests, 1u);
  EXPECT_EQ(s.tap->count([&](const Seen& x) { return node_switch_request(x) && x.from == "res" && x.mid == mid; }), 1u)
      << "the request did not come from A with the Message ID of the snapshot";
  EXPECT_EQ(from_b_with_a_source(), 0u);
  EXPECT_EQ(count_events(*b, EventKind::kSwitchSucceeded), 1u);
  EXPECT_EQ(sas(*s.p.res), 0u);
  EXPECT_EQ(spis_of(*s.p.ini), before);
  auto rec = record();
  ASSERT_TRUE(rec);
  EXPECT_EQ(rec->phase, SaRecord::Phase::kOwned);
  EXPECT_EQ(rec->owner, "b");
  EXPECT_EQ(store.refused_writes, 0u);
  EXPECT_FALSE(sending(*b).empty());
  works_on(*b, R2(), before);
}

TEST_F(ClusterMoveOldSends, BsClaimWaitsForItsReadyWriteToComeBack) {
  // The store applied B's {ready} and A, watching, sent the request; the client answered
  // B and updated there before B heard back from the store. B's {owned} must compare on
  // the {ready} record's revision, not on the {moving} one it knew when it wrote {ready}.
  ASSERT_TRUE(s.start());
  results_held_for = node_b.get();
  ASSERT_TRUE(node_a->move(only_sa(*s.p.res)->id, "b", s.p.net.now()));
  ASSERT_TRUE(run_until([&] { return count_events(*b, EventKind::kSwitchSucceeded) == 1; }, seconds(2)));
  pump();
  EXPECT_EQ(held_results.size(), 1u) << "B's {owned} went out before its {ready} came back";
  results_held_for = nullptr;
  for (auto& [n, r] : std::exchange(held_results, {})) n->on_write_result(r, s.p.net.now());
  ASSERT_TRUE(run_until([&] { return !outcomes.empty(); }, seconds(2)));
  EXPECT_EQ(outcomes[0].result, MoveOutcome::Result::kMoved) << outcomes[0].detail;
  EXPECT_EQ(store.refused_writes, 0u);
  EXPECT_EQ(node_b->stats().moves_in, 1u);
  EXPECT_EQ(node_b->stats().withdrawn, 0u);
}

TEST_F(ClusterMoveOldSends, TheNewNodeAloneCannotReachTheClientHere) {
  // The same network with the new node asking, from A's address: its request never
  // leaves B (source address validation), and the move comes back. What the old-node
  // variant is for.
  sender = cluster::SwitchSender::kNewNode;
  node_a = make_node("a", *s.p.res, R1(), key_of(1));
  node_b = make_node("b", *b, R2(), key_of(1));
  ASSERT_TRUE(s.start());
  const Spis before = spis_of(*s.p.ini);
  ASSERT_TRUE(node_a->move(only_sa(*s.p.res)->id, "b", s.p.net.now()));
  ASSERT_TRUE(run_until([&] { return !outcomes.empty(); }, seconds(120)));
  EXPECT_EQ(outcomes[0].result, MoveOutcome::Result::kReturned) << outcomes[0].detail;
  EXPECT_EQ(s.tap->count(node_switch_request), 0u);
  works_on(*s.p.res, R1(), before);
}

class ClusterMoveOldSendsGen2 : public ClusterMoveOldSends {
 protected:
  ClusterMoveOldSendsGen2() : ClusterMoveOldSends(Client{.gen1 = false, .old_node_sends = true}) {}
};

TEST_F(ClusterMoveOldSendsGen2, AnswerAtATheUpdateAtB) {
  ASSERT_TRUE(s.start());
  const Spis before = spis_of(*s.p.ini);
  ASSERT_TRUE(node_a->move(only_sa(*s.p.res)->id, "b", s.p.net.now()));
  ASSERT_TRUE(run_until([&] { return !outcomes.empty(); }));
  EXPECT_EQ(outcomes[0].result, MoveOutcome::Result::kMoved) << outcomes[0].detail;
  EXPECT_EQ(s.tap->count([](const Seen& x) { return x.from == "ini" && x.informational_response() && x.dst.address == R1(); }),
            1u) << "the answer went elsewhere";
  EXPECT_EQ(from_b_with_a_source(), 0u);
  EXPECT_EQ(count_events(*s.p.res, EventKind::kHandoffAnswered), 0u);
  works_on(*b, R2(), before);
}

class ClusterMoveOldSendsRefused : public ClusterMoveOldSends {
 protected:
  ClusterMoveOldSendsRefused() : ClusterMoveOldSends(Client{.allows_b = false, .old_node_sends = true}) {}
};

TEST_F(ClusterMoveOldSendsRefused, TheRefusalReachesAWhichTakesTheSaBack) {
  ASSERT_TRUE(s.start());
  const Spis before = spis_of(*s.p.ini);
  const TimePoint start = s.p.net.now();
  ASSERT_TRUE(node_a->move(only_sa(*s.p.res)->id, "b", s.p.net.now()));
  ASSERT_TRUE(run_until([&] { return !outcomes.empty(); }, seconds(120)));
  EXPECT_LT(since(start), seconds(1));
  ASSERT_EQ(outcomes.size(), 1u);
  EXPECT_EQ(outcomes[0].result, MoveOutcome::Result::kReturned) << outcomes[0].detail;
  // Our client refuses with an empty answer and a liveness check on the old path.
  EXPECT_NE(outcomes[0].detail.find("the client answered at 198.51.100.10"), std::string::npos) << outcomes[0].detail;
  EXPECT_EQ(node_a->stats().taken_back, 1u);
  EXPECT_EQ(node_b->stats().withdrawn, 1u);
  EXPECT_EQ(sas(*b), 0u);
  EXPECT_EQ(only_sa(*s.p.res)->handoff, ike::Handoff::kNone);
  EXPECT_FALSE(only_sa(*s.p.res)->relaying);
  auto rec = record();
  ASSERT_TRUE(rec);
  EXPECT_EQ(rec->phase, SaRecord::Phase::kReturned);
  EXPECT_EQ(rec->owner, "a");
  EXPECT_EQ(s.tap->count(node_switch_request), 1u);
  // A's next request uses the Message ID after the refused one.
  works_on(*s.p.res, R1(), before);
  EXPECT_EQ(s.tap->count(node_switch_request), 1u) << "the refused request was sent again";
}

TEST_F(ClusterMoveOldSends, NoAnswerAtAllReturnsTheSaAndItsMessageIdIsReused) {
  // Every switch request is lost: A gives up after its retransmissions, takes the SA
  // back, and sends its next request with the Message ID the client still expects.
  ASSERT_TRUE(s.start());
  const Spis before = spis_of(*s.p.ini);
  const std::uint32_t mid = only_sa(*s.p.res)->next_request_mid;
  s.tap->drop_if = node_switch_request;
  ASSERT_TRUE(node_a->move(only_sa(*s.p.res)->id, "b", s.p.net.now()));
  ASSERT_TRUE(run_until([&] { return !outcomes.empty(); }, seconds(120)));
  s.tap->drop_if = nullptr;
  ASSERT_EQ(outcomes.size(), 1u);
  EXPECT_EQ(outcomes[0].result, MoveOutcome::Result::kReturned) << outcomes[0].detail;
  EXPECT_NE(outcomes[0].detail.find("no answer"), std::string::npos) << outcomes[0].detail;
  EXPECT_GT(s.tap->count(node_switch_request), 1u) << "A did not retransmit";
  EXPECT_EQ(sas(*b), 0u);
  ASSERT_EQ(sas(*s.p.res), 1u);
  EXPECT_EQ(only_sa(*s.p.res)->next_request_mid, mid);
  works_on(*s.p.res, R1(), before);
}

TEST_F(ClusterMoveOldSends, TheNewNodeLeavingBeforeTheRequestGivesTheSaBack) {
  // A hears that B left while B's {ready} is on its way to the store. B's write lands
  // first and A's take-back loses; A, still wanting the SA back from a node it thinks
  // gone, tries again on the {ready} revision instead of sending the request for it.
  ASSERT_TRUE(s.start());
  const Spis before = spis_of(*s.p.ini);
  held_node = node_b.get();
  ASSERT_TRUE(node_a->move(only_sa(*s.p.res)->id, "b", s.p.net.now()));
  ASSERT_TRUE(run_until([&] { return held_from(node_b.get()) == 1; }, seconds(2)));
  hold_writes = true;
  node_a->on_node_gone("b", s.p.net.now());
  pump();
  ASSERT_EQ(held_from(node_a.get()), 1u);
  held_node = nullptr;
  first_writer = node_b.get();
  hold_writes = false;
  ASSERT_TRUE(run_until([&] { return !outcomes.empty(); }, seconds(2)));
  EXPECT_EQ(outcomes[0].result, MoveOutcome::Result::kReturned) << outcomes[0].detail;
  EXPECT_EQ(outcomes[0].detail, "b left the cluster during the move");
  EXPECT_EQ(store.refused_writes, 1u) << "A's first take-back did not lose";
  EXPECT_EQ(s.tap->count(node_switch_request), 0u);
  EXPECT_EQ(record()->owner, "a");
  EXPECT_EQ(record()->phase, SaRecord::Phase::kOwned);
  pump();
  EXPECT_EQ(sas(*b), 0u) << "B kept its copy after seeing A's record";
  EXPECT_EQ(node_b->stats().withdrawn, 1u);
  works_on(*s.p.res, R1(), before);
}

// Each message of a move lost once, for both senders and both generations of clients:
// the switch request, the client's answer, its UPDATE_SA_ADDRESSES and that update's
// answer. Every loss is repaired by a retransmission or the cache; the move completes.
struct MoveLoss {
  const char* name;
  enum Which { kRequest, kAnswer, kUpdate, kUpdateAnswer } which;
  bool old_node_sends;
  bool gen1;
  int times = 1;
};
void PrintTo(const MoveLoss& l, std::ostream* os) { *os << l.name; }

class ClusterMoveLoss : public ClusterMove, public ::testing::WithParamInterface<MoveLoss> {
 protected:
  ClusterMoveLoss()
      : ClusterMove(Client{.gen1 = GetParam().gen1, .old_node_sends = GetParam().old_node_sends}) {}
};

TEST_P(ClusterMoveLoss, TheMoveCompletes) {
  const MoveLoss loss = GetParam();
  ASSERT_TRUE(s.start());
  const Spis before = spis_of(*s.p.ini);
  std::optional<std::uint32_t> request_mid, update_mid;
  int dropped = 0;
  s.tap->drop_if = [&](const Seen& x) {
    if (node_switch_request(x)) request_mid = x.mid;
    if (Tap::update_request(x)) update_mid = x.mid;
    bool hit = false;
    switch (loss.which) {
      case MoveLoss::kRequest: hit = node_switch_request(x); break;
      case MoveLoss::kAnswer:
        hit = x.from == "ini" && x.informational_response() && request_mid && x.mid == *request_mid;
        break;
      case MoveLoss::kUpdate: hit = Tap::update_request(x); break;
      case MoveLoss::kUpdateAnswer:
        hit = x.from == "gw-b" && x.informational_response() && update_mid && x.mid == *update_mid;
        break;
    }
    if (!hit || dropped >= loss.times) return false;
    ++dropped;
    return true;
  };
  ASSERT_TRUE(node_a->move(only_sa(*s.p.res)->id, "b", s.p.net.now()));
  ASSERT_TRUE(run_until([&] { return !outcomes.empty(); }, seconds(60)));
  s.tap->drop_if = nullptr;
  EXPECT_EQ(dropped, loss.times);
  ASSERT_EQ(outcomes.size(), 1u);
  EXPECT_EQ(outcomes[0].result, MoveOutcome::Result::kMoved) << outcomes[0].detail;
  EXPECT_EQ(sas(*s.p.res), 0u);
  ASSERT_EQ(sas(*b), 1u);
  EXPECT_EQ(store.refused_writes, 0u);
  s.p.net.run_for(seconds(2));
  EXPECT_EQ(only_sa(*s.p.ini)->remote.address, R2());
  ASSERT_TRUE(rekey_completes(*s.p.ini));
  ASSERT_TRUE(rekey_completes(*b));
  EXPECT_EQ(spis_of(*s.p.ini).ike_i, before.ike_i);
  EXPECT_EQ(count_events(*s.p.ini, EventKind::kIkeFailed), 0u);
  EXPECT_EQ(count_events(*b, EventKind::kIkeFailed), 0u);
}

INSTANTIATE_TEST_SUITE_P(
    EachMessage, ClusterMoveLoss,
    ::testing::Values(MoveLoss{"NewSendsRequest", MoveLoss::kRequest, false, true},
                      MoveLoss{"NewSendsAnswer", MoveLoss::kAnswer, false, true},
                      MoveLoss{"NewSendsUpdate", MoveLoss::kUpdate, false, true},
                      MoveLoss{"NewSendsUpdateAnswer", MoveLoss::kUpdateAnswer, false, true},
                      MoveLoss{"NewSendsGen2Answer", MoveLoss::kAnswer, false, false},
                      MoveLoss{"NewSendsGen2Update", MoveLoss::kUpdate, false, false},
                      MoveLoss{"OldSendsRequest", MoveLoss::kRequest, true, true},
                      MoveLoss{"OldSendsRequestTwice", MoveLoss::kRequest, true, true, 2},
                      MoveLoss{"OldSendsAnswer", MoveLoss::kAnswer, true, true},
                      MoveLoss{"OldSendsUpdate", MoveLoss::kUpdate, true, true},
                      MoveLoss{"OldSendsUpdateAnswer", MoveLoss::kUpdateAnswer, true, true},
                      MoveLoss{"OldSendsGen2Request", MoveLoss::kRequest, true, false},
                      MoveLoss{"OldSendsGen2Answer", MoveLoss::kAnswer, true, false},
                      MoveLoss{"OldSendsGen2Update", MoveLoss::kUpdate, true, false},
                      MoveLoss{"OldSendsGen2UpdateAnswer", MoveLoss::kUpdateAnswer, true, false}),
    [](const ::testing::TestParamInfo<MoveLoss>& i) { return std::string(i.param.name); });

}  // namespace
}  // namespace mobike::sim
