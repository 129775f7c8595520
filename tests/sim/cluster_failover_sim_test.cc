// Failover driven by cluster::Node over the in-memory store (docs/cluster.md "Failover"):
// three nodes a (198.51.100.10), b (.20) and c (.30); a checkpoints the client's SA into
// its record, dies, and exactly one survivor claims the SA and continues it with the
// combined synchronisation + switch (the client follows through its NAT) or, for a
// client without the switch, from a's address, which that survivor takes over. A node
// taken for dead that comes back drops what was claimed from it.
#include <algorithm>

#include "cluster_helpers.h"
#include "ike/mid_sync.h"

namespace mobike::sim {
namespace {

using cluster::Node;
using cluster::SaRecord;

inline IpAddress R3() { return ip("198.51.100.30"); }

struct ClientKind {
  bool follows_switch = true;
  bool ha_sync = true;
};

class ClusterFailover : public ::testing::Test {
 protected:
  explicit ClusterFailover(ClientKind kind = {})
      : s(SwitchSetup{.res_addresses = {R1()},
                      .tweak =
                          [kind](ike::ConnectionConfig& i, ike::ConnectionConfig& r) {
                            i.dpd_delay = seconds(10);
                            r.dpd_delay = seconds(0);
                            i.switch_allow = {*IpPrefix::parse("198.51.100.0/24")};
                            i.switch_enabled = kind.follows_switch;
                            i.ha_sync = kind.ha_sync;
                          },
                      .ha_member = true}) {
    auto cfg = engine_with_notify(kSwitchNotify, true);
    for (auto [name, addr, seed] : {std::tuple{"gw-b", R2(), 77}, std::tuple{"gw-c", R3(), 78}}) {
      Host& h = s.p.net.add_host(name, {addr}, cfg, seed);
      h.engine->set_connections({res_conn(Duration(0))});
      h.nonlocal_sources = {R1()};  // one LAN: a survivor may send as the dead node
      hosts.push_back(&h);
    }
    hosts.insert(hosts.begin(), s.p.res);
    const char* names[] = {"a", "b", "c"};
    const IpAddress addrs[] = {R1(), R2(), R3()};
    for (std::size_t i = 0; i < 3; ++i) nodes.push_back(make_node(names[i], *hosts[i], addrs[i]));
    for (auto& n : nodes) n->set_members({"a", "b", "c"});
    s.p.net.wakeups.push_back([this] { return earliest(); });
  }

  std::unique_ptr<Node> make_node(const std::string& name, Host& h, const IpAddress& addr) {
    cluster::NodeConfig c;
    c.name = name;
    c.key = key_of(1);
    c.addresses = {addr};
    c.checkpoint_interval = seconds(5);
    cluster::DataplaneAccess dp;
    dp.apply_pending = [this, &h] { s.p.net.collect(h); };
    dp.esp_state = [this](std::uint64_t) { return std::optional<ike::EspState>(esp); };
    Host* hp = &h;
    return std::make_unique<Node>(c, *h.engine, dp, *h.random,
                                  [hp](ike::LogLevel, const std::string& m) { hp->log.push_back(m); });
  }

  std::optional<TimePoint> earliest() const {
    std::optional<TimePoint> t;
    if (!driving) return t;  // only run_until() below pumps the nodes
    for (std::size_t i = 0; i < nodes.size(); ++i)
      if (!cut_off.count(i))
        if (auto u = nodes[i]->next_timeout(); u && (!t || *u < *t)) t = std::max(*u, s.p.net.now());
    return t;
  }

  // Node timers, engine events into the nodes, store writes, results and watch events.
  // A node that is cut off (dead, or partitioned from the store) takes part in none of it.
  void pump() {
    const TimePoint now = s.p.net.now();
    for (int round = 0; round < 4; ++round) {
      std::vector<std::pair<Node*, cluster::StoreWriteResult>> results;
      std::vector<cluster::StoreEvent> events;
      for (std::size_t i = 0; i < nodes.size(); ++i) {
        if (cut_off.count(i)) continue;
        Host& h = *hosts[i];
        Node& n = *nodes[i];
        if (auto t = n.next_timeout(); t && *t <= now) n.on_timeout(now);
        s.p.net.collect(h);
        std::size_t& seen = events_seen[&h];
        for (; seen < h.events.size(); ++seen) n.on_engine_event(h.events[seen], now);
        s.p.net.collect(h);
        for (auto& w : n.take_writes()) {
          writes++;
          batched += w.batch;
          store.apply(n, w, results, events);
        }
        for (const auto& r : n.take_reads()) {
          reads++;
          std::vector<cluster::StoreEvent> records;
          for (const auto& [k, e] : store.kv)
            if (k.starts_with(r.prefix)) records.push_back({k, e.value, e.mod_revision});
          n.on_read_result(r.tag, records, now);
        }
      }
      for (auto& [n, r] : results) n->on_write_result(r, now);
      for (const auto& e : events)
        for (std::size_t i = 0; i < nodes.size(); ++i)
          if (!cut_off.count(i)) nodes[i]->on_store_event(e, now);
      for (std::size_t i = 0; i < nodes.size(); ++i) {
        s.p.net.collect(*hosts[i]);
        for (const auto& addr : nodes[i]->take_address_takeovers()) take_address(i, addr);
      }
    }
  }
  // The daemon's part of an address takeover: the address moves to node i's host.
  void take_address(std::size_t i, const IpAddress& addr) {
    takeovers.emplace_back(i, addr);
    const bool sent_before = s.tap->count([&](const Seen& m) { return m.from == hosts[i]->name && m.src.address == addr; });
    EXPECT_EQ(sent_before, 0u) << "a synchronisation left before the address was ours";
    for (std::size_t j = 0; j < hosts.size(); ++j) {
      auto a = hosts[j]->addresses;
      std::erase(a, addr);
      if (j == i) a.push_back(addr);
      s.p.net.set_addresses(*hosts[j], a);
      std::erase(hosts[j]->nonlocal_sources, addr);
    }
    nodes[i]->address_taken(addr, s.p.net.now());
    s.p.net.collect(*hosts[i]);
  }
  bool run_until(const std::function<bool()>& cond, Duration limit = seconds(20)) {
    driving = true;
    const bool ok = s.p.net.run_until([&] {
      pump();
      return cond();
    }, limit);
    driving = false;
    return ok;
  }
  void run_for(Duration d) { run_until([] { return false; }, d); }

  // Node a dies: nothing it sends arrives, its lease expires, the others see it gone.
  void kill_a() {
    cut_off.insert(0);
    s.tap->drop_if = [](const Seen& m) { return m.from == "res"; };
    for (std::size_t i = 1; i < nodes.size(); ++i) {
      nodes[i]->set_members({"b", "c"});
      nodes[i]->on_node_gone("a", s.p.net.now());
    }
  }
  std::optional<SaRecord> record() const {
    for (const auto& [k, e] : store.kv)
      if (auto r = cluster::decode_record(e.value)) return *r;
    return std::nullopt;
  }
  std::size_t claimed() const {
    std::size_t n = 0;
    for (const auto& node : nodes) n += node->stats().claimed;
    return n;
  }
  // The survivor that continues the client's SA.
  std::size_t survivor() const {
    for (std::size_t i = 1; i < nodes.size(); ++i)
      if (nodes[i]->stats().claimed) return i;
    return 0;
  }

  ~ClusterFailover() override {
    if (!HasFailure()) return;
    for (std::size_t i = 0; i < hosts.size(); ++i)
      for (const auto& l : hosts[i]->log) std::fprintf(stderr, "  %s: %s\n", hosts[i]->name.c_str(), l.c_str());
  }

  Sw s;
  std::vector<Host*> hosts;
  std::vector<std::unique_ptr<Node>> nodes;
  FakeStore store;
  std::map<Host*, std::size_t> events_seen;
  std::set<std::size_t> cut_off;
  std::vector<std::pair<std::size_t, IpAddress>> takeovers;
  std::size_t writes = 0, batched = 0, reads = 0;
  bool driving = false;
  ike::EspState esp{500, 7, 300, {0x1u}, 0, 0, 0, 0};
};

TEST_F(ClusterFailover, ExactlyOneSurvivorContinuesTheSaAndTheClientFollows) {
  ASSERT_TRUE(s.start());
  const auto ike_before = std::pair(s.ini().spi_i, s.ini().spi_r);
  const std::uint64_t client_sa = s.ini().id;
  // Checkpointed as soon as it was established: a's record with its sealed state.
  ASSERT_TRUE(run_until([&] { return record().has_value(); }, seconds(2)));
  EXPECT_EQ(record()->phase, SaRecord::Phase::kOwned);
  EXPECT_EQ(record()->owner, "a");
  EXPECT_FALSE(record()->blob.empty());
  EXPECT_EQ(nodes[0]->stats().checkpoints, 1u);
  EXPECT_EQ(batched, writes) << "checkpoints go out batchable";

  kill_a();
  ASSERT_TRUE(run_until([&] { return survivor() && count_events(*hosts[survivor()], EventKind::kSwitchSucceeded); },
                        seconds(10)));
  const std::size_t w = survivor();
  const std::size_t other = w == 1 ? 2 : 1;
  EXPECT_EQ(claimed(), 1u);
  EXPECT_EQ(nodes[other]->stats().claimed + nodes[other]->stats().claims_lost, 0u)
      << "the other survivor wrote a claim: rendezvous hashing should have left it alone";
  EXPECT_EQ(nodes[w]->stats().claimed_combined, 1u);
  EXPECT_EQ(nodes[w]->stats().failovers, 1u);
  EXPECT_TRUE(takeovers.empty()) << "an address was taken over for a client that follows switches";
  const IpAddress w_addr = w == 1 ? R2() : R3();
  EXPECT_EQ(s.ini().remote.address, w_addr);
  EXPECT_EQ(s.ini().id, client_sa);
  EXPECT_EQ(std::pair(s.ini().spi_i, s.ini().spi_r), ike_before);
  EXPECT_EQ(s.p.ini->engine->counters().ike_established, 1u);
  // The record is the survivor's, with its own checkpoint after the synchronisation.
  ASSERT_TRUE(run_until([&] { return nodes[w]->stats().checkpoints > 0; }, seconds(10)));
  EXPECT_EQ(record()->owner, w == 1 ? "b" : "c");
  run_for(seconds(20));
  EXPECT_EQ(count_events(*s.p.ini, EventKind::kIkeFailed), 0u);
  EXPECT_EQ(count_events(*hosts[w], EventKind::kIkeFailed), 0u);
  EXPECT_GT(count_events(*hosts[w], EventKind::kChildRekeyed), 0u);
}

TEST_F(ClusterFailover, TwoSurvivorsThatBothClaimAreDecidedByTheStore) {
  ASSERT_TRUE(s.start());
  ASSERT_TRUE(run_until([&] { return record().has_value(); }, seconds(2)));
  // Each survivor believes itself the only one (their views of the members differ):
  // both claim, the compare-and-put lets one through.
  cut_off.insert(0);
  s.tap->drop_if = [](const Seen& m) { return m.from == "res"; };
  nodes[1]->set_members({"b"});
  nodes[2]->set_members({"c"});
  nodes[1]->on_node_gone("a", s.p.net.now());
  nodes[2]->on_node_gone("a", s.p.net.now());
  ASSERT_TRUE(run_until([&] { return survivor() && count_events(*hosts[survivor()], EventKind::kSwitchSucceeded); },
                        seconds(10)));
  EXPECT_EQ(claimed(), 1u);
  EXPECT_EQ(nodes[1]->stats().claims_lost + nodes[2]->stats().claims_lost, 1u);
  const std::size_t loser = survivor() == 1 ? 2 : 1;
  EXPECT_EQ(hosts[loser]->engine->ike_sa_count(), 0u) << "the survivor that lost its claim runs the SA too";
}

TEST_F(ClusterFailover, ANodeTakenForDeadDropsWhatWasClaimedFromIt) {
  ASSERT_TRUE(s.start());
  ASSERT_TRUE(run_until([&] { return record().has_value(); }, seconds(2)));
  kill_a();
  ASSERT_TRUE(run_until([&] { return claimed() == 1; }, seconds(10)));
  // a was only cut off from the store (paused, partitioned): it comes back and hears of
  // the claim. Its SA goes, without a DELETE to the client; its checkpoint writes in
  // between compare on the revision it knew, and fail.
  ASSERT_EQ(hosts[0]->engine->ike_sa_count(), 1u);
  cut_off.erase(0);
  s.tap->drop_if = nullptr;
  nodes[0]->on_store_event({store.kv.begin()->first, store.kv.begin()->second.value,
                            store.kv.begin()->second.mod_revision},
                           s.p.net.now());
  s.p.net.collect(*hosts[0]);
  EXPECT_EQ(hosts[0]->engine->ike_sa_count(), 0u);
  EXPECT_EQ(nodes[0]->stats().fenced, 1u);
  EXPECT_FALSE(s.tap->count([](const Seen& m) { return m.from == "res" && m.has(NotifyType::kInvalidSyntax); }));
  const std::size_t refused = store.refused_writes;
  run_for(seconds(6));
  pump();
  EXPECT_EQ(store.refused_writes, refused) << "the fenced node still writes";
  EXPECT_EQ(record()->owner, survivor() == 1 ? "b" : "c");
  EXPECT_EQ(count_events(*s.p.ini, EventKind::kIkeFailed), 0u);
}

TEST_F(ClusterFailover, AtRestNoCheckpointIsWrittenAndADeletedSaTakesItsRecordAlong) {
  ASSERT_TRUE(s.start());
  ASSERT_TRUE(run_until([&] { return record().has_value(); }, seconds(2)));
  const std::size_t before = writes;
  // The client's liveness checks every 10 s move Message IDs, far below the drift that
  // needs a checkpoint; no ESP moved.
  run_for(seconds(60));
  EXPECT_EQ(writes, before);
  // Traffic arrives: the next tick checkpoints the replay window.
  esp.in_top += 10;
  run_for(seconds(6));
  EXPECT_EQ(writes, before + 1);
  ASSERT_TRUE(s.p.ini->engine->terminate_ike(s.ini().id, s.p.net.now()));
  s.p.net.collect(*s.p.ini);
  ASSERT_TRUE(run_until([&] { return store.kv.empty(); }, seconds(10)));
  EXPECT_EQ(nodes[0]->stats().checkpoint_deletes, 1u);
}

TEST_F(ClusterFailover, TheSurvivorDiesDuringTheTakeoverAndTheLastOneTakesOver) {
  ASSERT_TRUE(s.start());
  const auto ike_before = std::pair(s.ini().spi_i, s.ini().spi_r);
  ASSERT_TRUE(run_until([&] { return record().has_value(); }, seconds(2)));
  kill_a();
  // The first survivor claims the SA and sends its synchronisation; it dies before its
  // own checkpoint: the last one continues from the claim, further ahead.
  ASSERT_TRUE(run_until([&] { return claimed() == 1; }, seconds(10)));
  const std::size_t first = survivor();
  const std::size_t last = first == 1 ? 2 : 1;
  EXPECT_EQ(nodes[first]->stats().checkpoints, 0u);
  cut_off.insert(first);
  const std::string first_name = first == 1 ? "gw-b" : "gw-c";
  s.tap->drop_if = [first_name](const Seen& m) { return m.from == "res" || m.from == first_name; };
  nodes[last]->set_members({last == 1 ? "b" : "c"});
  nodes[last]->on_node_gone(first == 1 ? "b" : "c", s.p.net.now());
  ASSERT_TRUE(run_until([&] { return nodes[last]->stats().claimed == 1 &&
                                     count_events(*hosts[last], EventKind::kSwitchSucceeded); },
                        seconds(20)));
  EXPECT_EQ(s.ini().remote.address, last == 1 ? R2() : R3());
  EXPECT_EQ(std::pair(s.ini().spi_i, s.ini().spi_r), ike_before);
  EXPECT_GE(s.p.ini->engine->counters().mid_syncs_answered, 1u);
  EXPECT_EQ(record()->owner, last == 1 ? "b" : "c");
  run_for(seconds(20));
  EXPECT_EQ(count_events(*s.p.ini, EventKind::kIkeFailed), 0u);
  EXPECT_EQ(count_events(*hosts[last], EventKind::kIkeFailed), 0u);
}

TEST_F(ClusterFailover, ANodeRestartedBeforeItsLeaseRanOutContinuesItsOwnSas) {
  ASSERT_TRUE(s.start());
  const auto ike_before = std::pair(s.ini().spi_i, s.ini().spi_r);
  ASSERT_TRUE(run_until([&] { return record().has_value(); }, seconds(2)));
  // a's process dies and starts again at once: its engine is empty, its lease (and so
  // its membership) never lapsed, so nobody else takes its SA over. Reading the records
  // at its join, it finds its own and continues it, from its own address.
  cut_off.insert(0);
  ASSERT_TRUE(hosts[0]->engine->release(only_sa(*hosts[0])->id, s.p.net.now()));
  s.p.net.collect(*hosts[0]);
  nodes[0] = make_node("a", *hosts[0], R1());
  nodes[0]->set_members({"a", "b", "c"});
  for (const auto& [k, e] : store.kv) nodes[0]->on_store_event({k, e.value, e.mod_revision}, s.p.net.now());
  nodes[0]->adopt_orphans(s.p.net.now());
  cut_off.erase(0);
  ASSERT_TRUE(run_until([&] { return count_events(*hosts[0], EventKind::kMidSynced) > 0; }, seconds(10)));
  EXPECT_EQ(nodes[0]->stats().claimed_plain, 1u);
  EXPECT_TRUE(takeovers.empty()) << "a took its own address over";
  EXPECT_EQ(nodes[1]->stats().claimed + nodes[2]->stats().claimed, 0u);
  EXPECT_EQ(s.ini().remote.address, R1());
  EXPECT_EQ(std::pair(s.ini().spi_i, s.ini().spi_r), ike_before);
  run_for(seconds(20));
  EXPECT_EQ(count_events(*s.p.ini, EventKind::kIkeFailed), 0u);
  EXPECT_EQ(record()->owner, "a");
}

class ClusterFailoverWithoutSwitch : public ClusterFailover {
 protected:
  ClusterFailoverWithoutSwitch() : ClusterFailover(ClientKind{.follows_switch = false}) {}
};

TEST_F(ClusterFailoverWithoutSwitch, OneSurvivorTakesTheAddressOverAndSyncsFromThere) {
  ASSERT_TRUE(s.start());
  ASSERT_TRUE(run_until([&] { return record().has_value(); }, seconds(2)));
  kill_a();
  ASSERT_TRUE(run_until([&] { return survivor() && count_events(*hosts[survivor()], EventKind::kMidSynced); },
                        seconds(10)));
  const std::size_t w = survivor();
  EXPECT_EQ(claimed(), 1u);
  EXPECT_EQ(nodes[w]->stats().claimed_plain, 1u);
  ASSERT_EQ(takeovers.size(), 1u);
  EXPECT_EQ(takeovers[0], std::pair(w, R1()));
  EXPECT_EQ(s.ini().remote.address, R1());
  run_for(seconds(20));
  EXPECT_EQ(count_events(*s.p.ini, EventKind::kIkeFailed), 0u);
  EXPECT_GT(hosts[w]->engine->counters().datagrams_in, 2u);
}

class ClusterFailoverWithoutHaSync : public ClusterFailover {
 protected:
  ClusterFailoverWithoutHaSync() : ClusterFailover(ClientKind{.ha_sync = false}) {}
};

TEST_F(ClusterFailoverWithoutHaSync, TheSaIsLostCountedOnceAndItsRecordRemoved) {
  ASSERT_TRUE(s.start());
  ASSERT_TRUE(run_until([&] { return record().has_value(); }, seconds(2)));
  kill_a();
  ASSERT_TRUE(run_until([&] { return store.kv.empty(); }, seconds(10)));
  EXPECT_EQ(claimed(), 0u);
  EXPECT_EQ(nodes[1]->stats().lost + nodes[2]->stats().lost, 1u) << "lost counted by both survivors, or by none";
  const auto& by = (nodes[1]->stats().lost ? nodes[1] : nodes[2])->stats().lost_by_reason;
  ASSERT_EQ(by.count("no RFC 6311"), 1u);
  EXPECT_EQ(by.at("no RFC 6311"), 1u);
  EXPECT_EQ(hosts[1]->engine->ike_sa_count() + hosts[2]->engine->ike_sa_count(), 0u);
}

}  // namespace
}  // namespace mobike::sim
