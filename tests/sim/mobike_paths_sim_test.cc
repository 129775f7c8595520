// MOBIKE path testing (RFC 4555 §3.4, §3.10, §3.11) over the simulated network: an
// initiator that loses its only address keeps the SA while it probes and moves when a
// new address appears, gives up after the path timeout, ranks the paths that answer
// (configured local preference, then address family), and a responder that waits long
// for an initiator that has lost its path.
#include <gtest/gtest.h>

#include "mobike_helpers.h"

namespace mobike::sim {
namespace {

using std::chrono::minutes;
using std::chrono::seconds;

bool on_address(const Seen& s, const IpAddress& a) { return s.src.address == a || s.dst.address == a; }

TEST(MobikePathsSim, OnlyAddressGoneThenNewOneMinutesLater) {
  Pair p(false);
  p.configure(ini_conn(Duration(10000)), res_conn());
  Tap tap(p);
  ASSERT_TRUE(establish(p, ip("198.51.100.3")));
  auto spis_i = spis_of(*p.ini);
  auto spis_r = spis_of(*p.res);
  auto lost_at = p.net.now();

  p.net.set_addresses(*p.ini, {});
  // The next liveness check goes nowhere; after its retransmissions probing starts.
  ASSERT_TRUE(p.net.run_until([&] { return view_of(*p.ini).probing; }, Duration(60000)));
  EXPECT_EQ(only_sa(*p.ini)->state, IkeState::kEstablished);

  // Only unusable addresses come up (link-local, loopback): nothing to probe from.
  p.net.run_for(minutes(2));
  p.net.set_addresses(*p.ini, {ip("169.254.3.3"), ip("fe80::5"), ip("127.0.0.1")});
  // Three minutes without any address: the SA is kept and still probing — far beyond
  // the ~45 s of RFC 7296 retransmissions.
  p.net.run_for(std::chrono::duration_cast<Duration>(minutes(3) - (p.net.now() - lost_at)));
  ASSERT_NE(only_sa(*p.ini), nullptr);
  EXPECT_EQ(only_sa(*p.ini)->state, IkeState::kEstablished);
  EXPECT_TRUE(view_of(*p.ini).probing);
  EXPECT_GE(p.ini->engine->counters().retransmits_sent, 10u);
  ASSERT_NE(only_sa(*p.res), nullptr);  // the responder waits too (§3.11)
  EXPECT_EQ(count_events(*p.ini, EventKind::kIkeFailed) + count_events(*p.res, EventKind::kIkeFailed), 0u);
  EXPECT_EQ(tap.count([&](const Seen& s) { return s.from == "ini" && s.at > lost_at; }), 0u);  // nothing got out
  EXPECT_TRUE(update_ops(*p.ini).empty());

  // A new address: the outstanding request goes out on it at once, is answered, and
  // the SA moves there with UPDATE_SA_ADDRESSES.
  auto back_at = p.net.now();
  p.net.set_addresses(*p.ini, {ip("198.51.100.33")});
  ASSERT_TRUE(p.net.run_until([&] { return update_ops(*p.res).size() == 1 && update_ops(*p.ini).size() == 1; },
                              Duration(10000)));
  EXPECT_LE(p.net.now() - back_at, Duration(1000));  // not at the next back-off step
  EXPECT_EQ(only_sa(*p.ini)->local, ep("198.51.100.33"));
  EXPECT_EQ(only_sa(*p.res)->remote, ep("198.51.100.33"));
  EXPECT_EQ(update_ops(*p.res)[0].remote, ep("198.51.100.33"));
  EXPECT_EQ(update_ops(*p.ini)[0].local, ep("198.51.100.33"));
  EXPECT_FALSE(update_ops(*p.res)[0].udp_encap);
  EXPECT_FALSE(view_of(*p.ini).probing);
  EXPECT_EQ(view_of(*p.ini).committed, (mobility::Path{ep("198.51.100.33"), ep("198.51.100.10")}));
  EXPECT_EQ(view_of(*p.res).committed, (mobility::Path{ep("198.51.100.10"), ep("198.51.100.33")}));
  EXPECT_EQ(spis_of(*p.ini), spis_i);
  EXPECT_EQ(spis_of(*p.res), spis_r);
  auto updates = tap.all(Tap::update_request);
  ASSERT_EQ(updates.size(), 1u);
  EXPECT_EQ(updates[0]->src, ep("198.51.100.33"));

  // Working again: liveness checks both ways, no failure, no further moves.
  p.net.run_for(minutes(3));
  EXPECT_EQ(count_events(*p.ini, EventKind::kIkeFailed) + count_events(*p.res, EventKind::kIkeFailed), 0u);
  EXPECT_EQ(update_ops(*p.res).size(), 1u);
  EXPECT_GE(tap.count([](const Seen& s) { return s.from == "res" && s.informational_response() &&
                                                 s.dst == ep("198.51.100.33"); }), 10u);
}

TEST(MobikePathsSim, ProbingGivesUpAfterThePathTimeout) {
  Pair p(false);
  p.configure(ini_conn(Duration(10000)), res_conn(Duration(0)));
  ASSERT_TRUE(establish(p, ip("198.51.100.3")));
  p.net.set_addresses(*p.ini, {});
  ASSERT_TRUE(p.net.run_until([&] { return view_of(*p.ini).probing; }, Duration(60000)));
  auto since = p.net.now();
  const auto timeout = mobility::Config{}.path_timeout;
  ASSERT_EQ(timeout, minutes(5));
  p.net.run_for(timeout - seconds(10));
  ASSERT_NE(only_sa(*p.ini), nullptr);
  EXPECT_EQ(count_events(*p.ini, EventKind::kIkeFailed), 0u);
  ASSERT_TRUE(p.net.run_until([&] { return count_events(*p.ini, EventKind::kIkeFailed) == 1; }, seconds(60)));
  EXPECT_GE(p.net.now() - since, timeout);
  EXPECT_LE(p.net.now() - since, timeout + mobility::Config{}.max_retransmit_interval);
  EXPECT_EQ(p.ini->engine->ike_sa_count(), 0u);
  EXPECT_EQ(count_events(*p.ini, EventKind::kChildDeleted), 1u);
  // The probes backed off to the configured maximum, not to RFC 7296's give-up.
  EXPECT_GE(p.ini->engine->counters().retransmits_sent, 20u);
}

TEST(MobikePathsSim, ExplicitProbeFindsTheWorkingAddress) {
  Pair p(false);
  p.net.set_addresses(*p.ini, {ip("198.51.100.3"), ip("198.51.100.4")});
  p.configure(ini_conn(Duration(0)), res_conn(Duration(0)));
  Tap tap(p);
  ASSERT_TRUE(establish(p, ip("198.51.100.3")));
  auto spis = spis_of(*p.ini);
  EXPECT_FALSE(mobility::probe_paths(*p.res->engine, only_sa(*p.res)->id, p.net.now()));  // initiator only

  // The link of .3 dies silently (the address stays): the daemon's hint is all we get.
  tap.drop_if = [](const Seen& s) { return on_address(s, ip("198.51.100.3")); };
  ASSERT_TRUE(mobility::probe_paths(*p.ini->engine, only_sa(*p.ini)->id, p.net.now()));
  p.net.collect(*p.ini);
  EXPECT_TRUE(view_of(*p.ini).probing);
  ASSERT_TRUE(p.net.run_until([&] { return update_ops(*p.res).size() == 1; }, Duration(10000)));
  // One probe (a plain INFORMATIONAL) on each path, with the same Message ID.
  auto probes = tap.all([](const Seen& s) {
    return s.from == "ini" && s.informational_request() && !s.has(NotifyType::kUpdateSaAddresses);
  });
  ASSERT_EQ(probes.size(), 2u);
  EXPECT_EQ(probes[0]->mid, probes[1]->mid);
  EXPECT_EQ(probes[0]->src, ep("198.51.100.3"));
  EXPECT_EQ(probes[1]->src, ep("198.51.100.4"));
  EXPECT_TRUE(probes[0]->has(NotifyType::kNatDetectionDestinationIp));
  EXPECT_EQ(only_sa(*p.ini)->local, ep("198.51.100.4"));
  EXPECT_EQ(only_sa(*p.res)->remote, ep("198.51.100.4"));
  EXPECT_EQ(update_ops(*p.res)[0].remote, ep("198.51.100.4"));
  EXPECT_EQ(spis_of(*p.ini), spis);
  EXPECT_FALSE(view_of(*p.ini).probing);
}

// ini: N = 10.1.0.2 behind a NAT (public 198.51.100.2) and D = 198.51.100.4 direct.
struct Multihomed {
  Pair p{false};
  Nat* nat = nullptr;
  static IpAddress N() { return ip("10.1.0.2"); }
  static IpAddress D() { return ip("198.51.100.4"); }
  explicit Multihomed(std::vector<IpAddress> local_pref) {
    nat = &p.net.add_nat("nat", ip("198.51.100.2"));
    p.net.set_addresses(*p.ini, {N(), D()});
    p.net.put_behind(*p.ini, nat, N());
    auto i = ini_conn(Duration(10000));
    i.local_addrs = std::move(local_pref);
    p.configure(i, res_conn(Duration(0)));
  }
};

TEST(MobikePathsSim, DeadPathIsFoundByRetransmissionsAndTheNatPathTaken) {
  Multihomed m({});
  Pair& p = m.p;
  Tap tap(p);
  ASSERT_TRUE(establish(p, Multihomed::D()));
  EXPECT_FALSE(only_sa(*p.ini)->nat_local);
  auto spis = spis_of(*p.ini);
  tap.drop_if = [](const Seen& s) { return on_address(s, Multihomed::D()); };
  ASSERT_TRUE(p.net.run_until([&] { return update_ops(*p.res).size() == 1; }, Duration(60000)));
  // The liveness check went out on D, twice more, then on both paths.
  auto dpd = tap.all([](const Seen& s) {
    return s.from == "ini" && s.informational_request() && !s.has(NotifyType::kUpdateSaAddresses);
  });
  ASSERT_GE(dpd.size(), 4u);
  for (const auto* s : dpd) EXPECT_EQ(s->mid, dpd[0]->mid);
  EXPECT_TRUE(std::any_of(dpd.begin(), dpd.end(), [](const Seen* s) { return s->src == ep("198.51.100.2"); }));
  EXPECT_GE(std::count_if(dpd.begin(), dpd.end(), [](const Seen* s) { return s->src == ep("198.51.100.4"); }), 3);

  const auto* i = only_sa(*p.ini);
  const auto* r = only_sa(*p.res);
  EXPECT_EQ(i->local, ep("10.1.0.2"));
  EXPECT_TRUE(i->nat_local);
  EXPECT_EQ(r->remote, ep("198.51.100.2"));
  EXPECT_TRUE(r->nat_remote);
  EXPECT_EQ(update_ops(*p.res)[0].remote, ep("198.51.100.2"));
  EXPECT_TRUE(update_ops(*p.res)[0].udp_encap);
  ASSERT_FALSE(update_ops(*p.ini).empty());
  EXPECT_TRUE(update_ops(*p.ini).back().udp_encap);
  EXPECT_EQ(update_ops(*p.ini).back().local, ep("10.1.0.2"));
  EXPECT_EQ(spis_of(*p.ini), spis);
  // Behind a NAT now: keepalives keep its mapping (RFC 3948).
  auto ka = p.ini->keepalives_sent;
  p.net.run_for(seconds(60));
  EXPECT_GE(p.ini->keepalives_sent, ka + 2);
  EXPECT_EQ(tap.count(Tap::update_request), 1u);  // the new mapping is learned, not mistaken for a change
  EXPECT_EQ(count_events(*p.ini, EventKind::kIkeFailed) + count_events(*p.res, EventKind::kIkeFailed), 0u);
}

TEST(MobikePathsSim, ConfiguredLocalPreferenceBeatsTheFirstAnswerWithinTheGrace) {
  struct Case {
    const char* name;
    std::vector<IpAddress> pref;
    IpAddress start, slow;
    Duration delay;
    IpAddress expected;
    bool nat_after;
  };
  const Case cases[] = {
      {"prefer D, N answers first", {Multihomed::D(), Multihomed::N()}, Multihomed::N(), Multihomed::D(), Duration(40),
       Multihomed::D(), false},
      {"prefer N, D answers first", {Multihomed::N(), Multihomed::D()}, Multihomed::D(), Multihomed::N(), Duration(40),
       Multihomed::N(), true},
      {"prefer D, but it answers after the grace", {Multihomed::D(), Multihomed::N()}, Multihomed::N(),
       Multihomed::D(), Duration(300), Multihomed::N(), true},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    Multihomed m(c.pref);
    Pair& p = m.p;
    Tap tap(p);
    ASSERT_TRUE(establish(p, c.start));
    p.net.run_for(seconds(1));  // the NAT mapping check after IKE_AUTH is done
    auto spis = spis_of(*p.ini);
    auto slow = c.slow;
    p.net.jitter = [&](const Packet& pk) {
      return pk.from == "ini" && (pk.src.address == slow || (slow == Multihomed::N() && pk.src == ep("198.51.100.2")))
                 ? c.delay
                 : Duration(0);
    };
    ASSERT_TRUE(mobility::probe_paths(*p.ini->engine, only_sa(*p.ini)->id, p.net.now()));
    p.net.collect(*p.ini);
    ASSERT_TRUE(p.net.run_until([&] { return !update_ops(*p.res).empty() && !only_sa(*p.ini)->active; },
                                Duration(10000)));
    p.net.jitter = nullptr;
    p.net.run_for(seconds(1));
    // Both paths answered the same probe.
    auto answers = tap.all([](const Seen& s) {
      return s.from == "res" && s.informational_response() && !s.has(NotifyType::kCookie2);
    });
    EXPECT_GE(answers.size(), 2u);
    const auto* i = only_sa(*p.ini);
    const auto* r = only_sa(*p.res);
    EXPECT_EQ(i->local.address, c.expected);
    EXPECT_EQ(i->nat_local, c.nat_after);
    Endpoint seen_by_res = c.nat_after ? ep("198.51.100.2") : Endpoint{c.expected, 4500};
    EXPECT_EQ(r->remote, seen_by_res);
    EXPECT_EQ(update_ops(*p.res).back().remote, seen_by_res);
    EXPECT_EQ(update_ops(*p.res).back().udp_encap, c.nat_after);
    EXPECT_EQ(update_ops(*p.ini).back().udp_encap, c.nat_after);
    EXPECT_EQ(tap.count(Tap::update_request), 1u);
    EXPECT_EQ(spis_of(*p.ini), spis);
    EXPECT_FALSE(view_of(*p.ini).probing);
  }
}

TEST(MobikePathsSim, AddressFamilyRanksAfterConfiguredPreference) {
  struct Case {
    const char* name;
    std::vector<IpAddress> pref;
    bool v4_dead;
    bool v4_slow;
    bool expect_v6;
  };
  const Case cases[] = {
      {"v6 answers first, the usual family wins", {}, false, true, false},
      {"v4 dead: move to v6", {}, true, false, true},
      {"configured v6 first beats the family", {ip("2001:db8:1::3"), ip("198.51.100.3")}, false, false, true},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    Pair p(false);
    p.net.set_addresses(*p.ini, {ip("198.51.100.3"), ip("2001:db8:1::3")});
    p.net.set_addresses(*p.res, {ip("198.51.100.10"), ip("2001:db8::10")});
    auto i = ini_conn(Duration(0));
    i.local_addrs = c.pref;
    p.configure(i, res_conn(Duration(0)));
    Tap tap(p);
    ASSERT_TRUE(establish(p, ip("198.51.100.3")));
    auto spis = spis_of(*p.ini);
    if (c.v4_dead) tap.drop_if = [](const Seen& s) { return s.src.address.is_v4(); };
    if (c.v4_slow)
      p.net.jitter = [](const Packet& pk) { return pk.src.address.is_v4() ? Duration(40) : Duration(0); };
    ASSERT_TRUE(mobility::probe_paths(*p.ini->engine, only_sa(*p.ini)->id, p.net.now()));
    p.net.collect(*p.ini);
    ASSERT_TRUE(p.net.run_until([&] { return !update_ops(*p.res).empty() && !only_sa(*p.ini)->active; },
                                Duration(10000)));
    p.net.jitter = nullptr;
    Endpoint ini_ep = c.expect_v6 ? ep("2001:db8:1::3") : ep("198.51.100.3");
    Endpoint res_ep = c.expect_v6 ? ep("2001:db8::10") : ep("198.51.100.10");
    EXPECT_EQ(only_sa(*p.ini)->local, ini_ep);
    EXPECT_EQ(only_sa(*p.ini)->remote, res_ep);
    EXPECT_EQ(only_sa(*p.res)->local, res_ep);
    EXPECT_EQ(only_sa(*p.res)->remote, ini_ep);
    EXPECT_EQ(update_ops(*p.res).back().local, res_ep);
    EXPECT_EQ(update_ops(*p.res).back().remote, ini_ep);
    EXPECT_EQ(update_ops(*p.ini).back().remote, res_ep);
    EXPECT_FALSE(update_ops(*p.res).back().udp_encap);
    EXPECT_EQ(spis_of(*p.ini), spis);
    // The v6 probe went to the responder's announced v6 address.
    EXPECT_EQ(tap.count([](const Seen& s) {
      return s.from == "ini" && s.informational_request() && s.dst == ep("2001:db8::10");
    }), c.expect_v6 ? 2u : 1u);  // probe (+ update when moving there)
  }
}

TEST(MobikePathsSim, ResponderRenumbersMakeBeforeBreak) {
  Pair p(false);
  p.configure(ini_conn(Duration(10000)), res_conn());
  Tap tap(p);
  ASSERT_TRUE(establish(p, ip("198.51.100.3")));
  auto spis = spis_of(*p.ini);
  // The gateway gets its new address first and announces it ...
  p.net.set_addresses(*p.res, {ip("198.51.100.10"), ip("198.51.100.11")});
  ASSERT_TRUE(p.net.run_until([&] { return view_of(*p.ini).peer_addresses == std::vector{ip("198.51.100.11")}; },
                              Duration(5000)));
  // ... then loses the old one. The initiator's next liveness check fails, probing
  // tries the announced address and the SA follows it.
  p.net.set_addresses(*p.res, {ip("198.51.100.11")});
  ASSERT_TRUE(p.net.run_until([&] { return update_ops(*p.res).size() == 1; }, Duration(60000)));
  EXPECT_EQ(only_sa(*p.ini)->remote, ep("198.51.100.11"));
  EXPECT_EQ(only_sa(*p.res)->local, ep("198.51.100.11"));
  EXPECT_EQ(only_sa(*p.res)->remote, ep("198.51.100.3"));
  EXPECT_EQ(update_ops(*p.res)[0].local, ep("198.51.100.11"));
  EXPECT_EQ(update_ops(*p.ini).back().remote, ep("198.51.100.11"));
  EXPECT_EQ(spis_of(*p.ini), spis);
  auto updates = tap.all(Tap::update_request);
  ASSERT_EQ(updates.size(), 1u);
  EXPECT_EQ(updates[0]->dst, ep("198.51.100.11"));
  p.net.run_for(seconds(60));
  EXPECT_EQ(tap.count(Tap::update_request), 1u);
  EXPECT_EQ(count_events(*p.ini, EventKind::kIkeFailed) + count_events(*p.res, EventKind::kIkeFailed), 0u);
}

TEST(MobikePathsSim, MobikeResponderRetransmitsForThePathTimeout) {
  for (bool mobike : {true, false}) {
    SCOPED_TRACE(mobike ? "MOBIKE" : "plain IKEv2");
    Pair p(false);
    auto i = ini_conn(Duration(0));  // the initiator stays silent
    i.mobike = mobike;
    p.configure(i, res_conn(Duration(10000)));
    ASSERT_TRUE(establish(p, ip("198.51.100.3")));
    Tap tap(p);
    p.net.set_addresses(*p.ini, {});  // gone, and not coming back
    auto start = p.net.now();
    ASSERT_TRUE(p.net.run_until([&] { return count_events(*p.res, EventKind::kIkeFailed) == 1; }, minutes(10)));
    auto died = p.net.now() - start;
    auto sent = tap.all([](const Seen& s) { return s.from == "res" && s.informational_request(); });
    ASSERT_GE(sent.size(), 6u);
    for (const auto* s : sent) EXPECT_EQ(s->mid, sent[0]->mid);  // one liveness check, retransmitted
    auto first = sent.front()->at;
    if (mobike) {
      // §3.11: at least 5 minutes of retransmissions, spaced at most 15 s apart.
      EXPECT_GE(p.net.now() - first, mobility::Config{}.path_timeout);
      EXPECT_LE(p.net.now() - first, mobility::Config{}.path_timeout + mobility::Config{}.max_retransmit_interval);
      // After RFC 7296's tries (1 + 5 sends, the last back-off step 37.8 s), every
      // max_retransmit_interval.
      for (std::size_t k = 7; k < sent.size(); ++k)
        EXPECT_LE(sent[k]->at - sent[k - 1]->at, mobility::Config{}.max_retransmit_interval);
      EXPECT_GE(sent.size(), 18u);
    } else {
      // RFC 7296: retransmit_tries retransmissions with exponential back-off.
      EXPECT_EQ(sent.size(), 6u);
      EXPECT_LT(died, seconds(120));
    }
    EXPECT_EQ(p.res->engine->ike_sa_count(), 0u);
  }
}

}  // namespace
}  // namespace mobike::sim
