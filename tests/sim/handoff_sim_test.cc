// A live IKE SA moves from one gateway node to another (docs/cluster.md, planned move):
// node A (198.51.100.10) quiesces and exports it, the snapshot travels sealed with the
// cluster key, node B (198.51.100.20) imports it and asks the client behind the
// restricted-cone NAT to switch to B, sending from A's address; the client follows
// through its NAT. The client must not notice anything but the address change: same
// SPIs, Message IDs that continue, no rekey, and later exchanges answered by B.
#include "cluster/sa_blob.h"
#include "ike/protection.h"
#include "switch_helpers.h"

namespace mobike::sim {
namespace {

using ike::DataplaneOp;

cluster::ClusterKey test_key() {
  cluster::ClusterKey k{};
  for (std::size_t i = 0; i < k.size(); ++i) k[i] = static_cast<std::uint8_t>(i * 7 + 1);
  return k;
}

class Handoff : public ::testing::Test {
 protected:
  Handoff()
      : s(SwitchSetup{.res_addresses = {R1()},
                      .tweak = [](ike::ConnectionConfig& i, ike::ConnectionConfig& r) {
                        i.dpd_delay = seconds(10);
                        r.dpd_delay = seconds(2);
                        // The client follows the gateway's nodes: B's address is no
                        // address A announced.
                        i.switch_allow = {*IpPrefix::parse("198.51.100.0/24")};
                      }}) {
    b = &s.p.net.add_host("gw-b", {R2()}, engine_with_notify(kSwitchNotify), 77);
    auto r = res_conn(seconds(30));
    b->engine->set_connections({r});
    // B speaks from A's address for the switch request only (docs/cluster.md).
    b->nonlocal_sources = {R1()};
  }

  Host& a() { return *s.p.res; }
  Host& client() { return *s.p.ini; }
  const ike::IkeSa* sa_on(const Host& h) const { return only_sa(h); }
  TimePoint now() const { return s.p.net.now(); }

  // A's SA as B receives it: exported, its data-plane state added (nothing sent yet in
  // the simulation), sealed and opened under the name the cluster stores it by.
  Expected<ike::IkeSaSnapshot, std::string> export_from_a() {
    const std::uint64_t id = sa_on(a())->id;
    if (!a().engine->quiesce(id, now())) return unexpected(std::string("quiesce refused"));
    auto snap = a().engine->export_sa(id, now());
    s.p.net.collect(a());
    if (!snap) return snap;
    for (auto& c : snap->children) c.esp = ike::EspState{};
    crypto::SeededRandom random(5);
    Bytes blob = cluster::seal_snapshot(*snap, key, name(*snap), random);
    auto opened = cluster::open_snapshot(blob, key, name(*snap));
    if (!opened) return unexpected(opened.error().detail);
    return std::move(*opened);
  }
  static std::string name(const ike::IkeSaSnapshot& snap) {
    return "sas/" + std::to_string(snap.spi_i) + "-" + std::to_string(snap.spi_r);
  }

  // Imports into B and has B ask the client to move there; true once B reports success.
  bool move_to_b(const ike::IkeSaSnapshot& snap) {
    auto id = b->engine->import_sa(snap, now());
    s.p.net.collect(*b);
    if (!id) {
      ADD_FAILURE() << "import: " << id.error();
      return false;
    }
    auto r = mobility::switch_address(*b->engine, *id, R2(), now());
    s.p.net.collect(*b);
    if (!r) {
      ADD_FAILURE() << "switch: " << r.error();
      return false;
    }
    return s.p.net.run_until([&] { return count_events(*b, EventKind::kSwitchSucceeded) > 0; }, seconds(10));
  }

  Sw s;
  Host* b = nullptr;
  cluster::ClusterKey key = test_key();
};

TEST_F(Handoff, TheClientFollowsTheSaToAnotherNodeThroughItsNat) {
  ASSERT_TRUE(s.start());
  const Spis before = spis_of(client());
  const std::uint64_t client_sa = sa_on(client())->id;
  const std::uint32_t client_mid = sa_on(client())->next_request_mid;
  const std::size_t b_installs_before = b->dataplane.size();

  auto snap = export_from_a();
  ASSERT_TRUE(snap) << snap.error();
  // A stops sending on the Child SA before anyone reads its sequence numbers.
  ASSERT_FALSE(a().dataplane.empty());
  EXPECT_EQ(a().dataplane.back().kind, DataplaneOp::Kind::kSuspendOutbound);
  EXPECT_EQ(snap->spi_i, before.ike_i);
  ASSERT_EQ(snap->children.size(), 1u);
  EXPECT_EQ(snap->children[0].spi_in, before.child_out);  // A's inbound SPI is the client's outbound

  ASSERT_TRUE(move_to_b(*snap));
  ASSERT_TRUE(a().engine->release(sa_on(a())->id, now()));
  s.p.net.collect(a());
  EXPECT_EQ(a().engine->ike_sa_count(), 0u);
  EXPECT_EQ(a().dataplane.back().kind, DataplaneOp::Kind::kDelete);

  // B installed the Child SA continuing A's (sequence numbers from the snapshot).
  ASSERT_GT(b->dataplane.size(), b_installs_before);
  const auto& install = b->dataplane[b_installs_before];
  EXPECT_EQ(install.kind, DataplaneOp::Kind::kInstall);
  EXPECT_EQ(install.spi_in, before.child_out);
  EXPECT_TRUE(install.resume.has_value());
  // Receive-only until the cluster confirms B owns it (A could still take it back).
  EXPECT_TRUE(install.outbound_deferred);
  ASSERT_TRUE(b->engine->confirm_import(sa_on(*b)->id, now()));
  s.p.net.collect(*b);
  EXPECT_EQ(b->dataplane.back().kind, DataplaneOp::Kind::kActivateOutbound);
  EXPECT_EQ(b->dataplane.back().spi_in, before.child_out);
  EXPECT_FALSE(b->engine->confirm_import(sa_on(*b)->id, now())) << "confirmed twice";

  // B's switch request left from A's address (so that it passed the client's NAT); the
  // client's update went to B.
  auto requests = s.all([](const Seen& x) { return x.from == "gw-b" && x.informational_request(); });
  ASSERT_FALSE(requests.empty());
  EXPECT_EQ(requests.front()->src.address, R1());
  EXPECT_TRUE(switch_data(*requests.front()) == R2().to_bytes()) << "not a SWITCH_TO_IP_ADDRESS(B) request";
  auto updates = s.updates();
  ASSERT_FALSE(updates.empty());
  EXPECT_EQ(updates.back()->dst.address, R2());
  EXPECT_EQ(s.p.net.unsendable, 0u);

  s.p.net.run_for(seconds(1));
  const ike::IkeSa* c = sa_on(client());
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->id, client_sa) << "the client made a new IKE SA";
  EXPECT_EQ(spis_of(client()), before);
  EXPECT_EQ(c->remote.address, R2());
  EXPECT_GT(c->next_request_mid, client_mid) << "the client's UPDATE_SA_ADDRESSES went out";
  EXPECT_EQ(sa_on(*b)->local.address, R2());
  EXPECT_EQ(sa_on(*b)->remote, s.ini_public);
  EXPECT_EQ(count_events(client(), EventKind::kIkeRekeyed), 0u);
  EXPECT_EQ(client().engine->counters().ike_established, 1u);

  // Later exchanges go to B and are answered there: the client's liveness checks, a
  // Child SA rekey and an IKE SA rekey.
  const auto b_in = b->engine->counters().datagrams_in;
  s.p.net.run_for(seconds(25));
  EXPECT_GT(b->engine->counters().datagrams_in, b_in);
  ASSERT_TRUE(client().engine->rekey_child(c->children[0].id, now()));
  s.p.net.collect(client());
  ASSERT_TRUE(s.p.net.run_until([&] { return count_events(client(), EventKind::kChildRekeyed) == 1; }, seconds(10)));
  ASSERT_TRUE(client().engine->rekey_ike(client_sa, now()));
  s.p.net.collect(client());
  ASSERT_TRUE(s.p.net.run_until([&] { return count_events(client(), EventKind::kIkeRekeyed) == 1; }, seconds(10)));
  s.p.net.run_for(seconds(2));
  ASSERT_NE(sa_on(client()), nullptr);
  ASSERT_NE(sa_on(*b), nullptr);
  EXPECT_EQ(sa_on(client())->spi_i, sa_on(*b)->spi_i);
  EXPECT_EQ(sa_on(*b)->children.size(), 1u);
  EXPECT_EQ(count_events(client(), EventKind::kIkeFailed), 0u);
  EXPECT_EQ(count_events(*b, EventKind::kIkeFailed), 0u);
}

TEST_F(Handoff, AQuiescedSaAnswersThePeerButStartsNoExchange) {
  ASSERT_TRUE(s.start());
  const std::uint64_t id = sa_on(a())->id;
  // A's own liveness checks would be due every 2 s.
  ASSERT_TRUE(a().engine->quiesce(id, now()));
  const std::uint32_t a_mid = sa_on(a())->next_request_mid;
  const std::uint32_t a_expected = sa_on(a())->expected_peer_mid;
  s.p.net.run_for(seconds(45));
  EXPECT_EQ(sa_on(a())->next_request_mid, a_mid) << "a quiesced SA sent a request";
  EXPECT_GT(sa_on(a())->expected_peer_mid, a_expected) << "the client's liveness checks were not answered";
  EXPECT_EQ(sa_on(client())->state, IkeState::kEstablished);
  // The liveness check that came due meanwhile is not lost: it starts once the SA runs again.
  ASSERT_TRUE(a().engine->resume(id, now()));
  s.p.net.collect(a());
  s.p.net.run_for(seconds(1));
  EXPECT_GT(sa_on(a())->next_request_mid, a_mid);
}

TEST_F(Handoff, ExportWaitsUntilTheExchangeInFlightIsDone) {
  ASSERT_TRUE(s.start());
  const std::uint64_t id = sa_on(a())->id;
  // A request of A's in flight: a Child SA rekey.
  ASSERT_TRUE(a().engine->rekey_child(sa_on(a())->children[0].id, now()));
  s.p.net.collect(a());
  ASSERT_TRUE(a().engine->quiesce(id, now()));
  auto early = a().engine->export_sa(id, now());
  ASSERT_FALSE(early);
  EXPECT_NE(early.error().find("outstanding"), std::string::npos) << early.error();
  ASSERT_TRUE(s.p.net.run_until([&] { return count_events(a(), EventKind::kChildRekeyed) == 1 && s.idle(); },
                                seconds(10)));
  auto snap = a().engine->export_sa(id, now());
  ASSERT_TRUE(snap) << snap.error();
  EXPECT_EQ(snap->children.size(), 1u);
}

TEST_F(Handoff, AnExportedSaAnswersNothingUntilItResumes) {
  ASSERT_TRUE(s.start());
  const std::uint64_t id = sa_on(a())->id;
  auto snap = export_from_a();
  ASSERT_TRUE(snap) << snap.error();
  const std::uint32_t expected = sa_on(a())->expected_peer_mid;
  s.p.net.run_for(seconds(11));  // a client liveness check arrives and goes unanswered
  EXPECT_EQ(sa_on(a())->expected_peer_mid, expected);
  EXPECT_GT(a().engine->counters().dropped_handed_over, 0u);
  EXPECT_FALSE(a().engine->terminate_ike(id, now())) << "an exported SA is another node's to delete";

  // The move failed (B never took it): A runs the SA again, its Child SA sends again,
  // and the client's retransmitted check is answered before it gives up.
  ASSERT_TRUE(a().engine->resume(id, now()));
  s.p.net.collect(a());
  EXPECT_EQ(a().dataplane.back().kind, DataplaneOp::Kind::kActivateOutbound);
  s.p.net.run_for(seconds(20));
  EXPECT_GT(sa_on(a())->expected_peer_mid, expected);
  ASSERT_NE(sa_on(client()), nullptr);
  EXPECT_EQ(sa_on(client())->state, IkeState::kEstablished);
  EXPECT_EQ(count_events(client(), EventKind::kIkeFailed), 0u);
}

// The old node sees the answer to the new owner's first request when the client answers
// at the old address. It reports it only once the answer shows that the client stays
// there — an error in it, or the client's next request arriving after it — and only
// once: an answer without an error is also what a generation-2 client that follows
// sends to the old address.
TEST_F(Handoff, AnExportedSaReportsAnAnswerOnlyWhenThePeerStays) {
  ASSERT_TRUE(s.start());
  ASSERT_TRUE(export_from_a());
  const ike::IkeSa& c = *sa_on(client());
  const std::uint32_t handed_over = sa_on(a())->next_request_mid;
  const std::uint32_t expected = sa_on(a())->expected_peer_mid;
  ASSERT_EQ(c.next_request_mid, expected);
  crypto::SeededRandom random(9);
  const auto dropped = a().engine->counters().dropped_handed_over;
  auto to_a = [&](Bytes data) {
    s.p.net.inject({s.ini_public, sa_on(a())->local, std::move(data), false, "ini"});
    s.p.net.run_for(Duration(50));
  };
  auto answer = [&](std::uint32_t mid, std::vector<wire::Payload> payloads = {}) {
    return ike::build_message(c, ExchangeType::kInformational, true, mid, payloads, random);
  };
  auto request = [&] { return ike::build_message(c, ExchangeType::kInformational, false, expected, {}, random); };

  to_a(request());  // before any answer: the client was not asked yet
  to_a(answer(handed_over + 1));
  Bytes forged = answer(handed_over);
  forged.back() ^= 1;
  to_a(forged);
  EXPECT_FALSE(sa_on(a())->handoff_answered);
  to_a(answer(handed_over));
  EXPECT_TRUE(sa_on(a())->handoff_answered);
  EXPECT_EQ(count_events(a(), EventKind::kHandoffAnswered), 0u) << "an answer without an error is no refusal";
  to_a(answer(handed_over));
  to_a(request());
  ASSERT_EQ(count_events(a(), EventKind::kHandoffAnswered), 1u);
  EXPECT_NE(a().events.back().detail.find("next request"), std::string::npos) << a().events.back().detail;
  EXPECT_EQ(a().events.back().ike_sa_id, sa_on(a())->id);
  to_a(request());
  EXPECT_EQ(count_events(a(), EventKind::kHandoffAnswered), 1u);
  EXPECT_EQ(a().engine->counters().dropped_handed_over, dropped + 7);
  EXPECT_EQ(sa_on(a())->expected_peer_mid, expected) << "an exported SA answered";

  // Resumed, the SA skips the Message ID the new owner's request used.
  ASSERT_TRUE(a().engine->resume(sa_on(a())->id, now()));
  EXPECT_EQ(sa_on(a())->next_request_mid, handed_over + 1);
}

TEST_F(Handoff, AnExportedSaReportsAnErrorAnswerAtOnce) {
  ASSERT_TRUE(s.start());
  ASSERT_TRUE(export_from_a());
  const ike::IkeSa& c = *sa_on(client());
  crypto::SeededRandom random(9);
  Bytes refusal = ike::build_message(c, ExchangeType::kInformational, true, sa_on(a())->next_request_mid,
                                     {wire::make_notify(NotifyType::kInvalidSyntax)}, random);
  s.p.net.inject({s.ini_public, sa_on(a())->local, refusal, false, "ini"});
  s.p.net.inject({s.ini_public, sa_on(a())->local, refusal, false, "ini"});
  s.p.net.run_for(Duration(50));
  ASSERT_EQ(count_events(a(), EventKind::kHandoffAnswered), 1u);
  EXPECT_NE(a().events.back().detail.find("INVALID_SYNTAX"), std::string::npos) << a().events.back().detail;
}

TEST_F(Handoff, ImportRefusesWhatItCannotContinue) {
  ASSERT_TRUE(s.start());
  auto snap = export_from_a();
  ASSERT_TRUE(snap) << snap.error();

  auto other = *snap;
  other.connection = "elsewhere";
  auto r = b->engine->import_sa(other, now());
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().find("no connection 'elsewhere'"), std::string::npos) << r.error();

  other = *snap;
  other.children[0].esp.reset();
  r = b->engine->import_sa(other, now());
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().find("sequence numbers are unknown"), std::string::npos) << r.error();

  other = *snap;
  other.sk_ei.resize(3);
  r = b->engine->import_sa(other, now());
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().find("keys are unusable"), std::string::npos) << r.error();

  other = *snap;
  other.mobility = {9};  // a MOBIKE state of an unknown version
  r = b->engine->import_sa(other, now());
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().find("MOBIKE state"), std::string::npos) << r.error();
  EXPECT_EQ(b->engine->ike_sa_count(), 0u) << "a refused import left an SA behind";

  ASSERT_TRUE(b->engine->import_sa(*snap, now()));
  r = b->engine->import_sa(*snap, now());
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().find("exists here already"), std::string::npos) << r.error();
  EXPECT_EQ(b->engine->counters().ike_imported, 1u);
}

}  // namespace
}  // namespace mobike::sim
