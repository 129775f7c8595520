// Engine::initiate to an address the daemon chose (what a DNS name in remote_addrs
// resolved to) and the failure the daemon then tries the name's next address on: an
// IKE_SA_INIT that got no answer at all (Event::unanswered), told apart from failures
// with an answer.
#include <gtest/gtest.h>

#include "ike_pair.h"

namespace mobike::sim {
namespace {

const ike::Event* last_failure(const Host& h) {
  for (auto it = h.events.rbegin(); it != h.events.rend(); ++it)
    if (it->kind == EventKind::kIkeFailed) return &*it;
  return nullptr;
}

TEST(InitiateSim, AnExplicitRemoteIsDialledAndSilenceThereIsReportedAsUnanswered) {
  ike::EngineConfig ini_cfg;
  ini_cfg.retransmit_timeout = Duration(500);
  ini_cfg.retransmit_tries = 2;
  Pair p(true, {}, 1, ini_cfg);
  // The initiator's connection names its gateway only by name: the engine itself has
  // nothing to dial.
  p.configure(psk_connection("home", "vpn.example.test", "ini@example.test", "res@example.test"),
              psk_connection("gw", "%any", "res@example.test", "ini@example.test"));
  auto none = p.ini->engine->initiate("home", ip("10.1.0.2"), p.net.now());
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error(), "connection 'home' has no remote address to initiate to");
  auto family = p.ini->engine->initiate("home", ip("10.1.0.2"), p.net.now(), ip("2001:db8::10"));
  ASSERT_FALSE(family);
  EXPECT_EQ(family.error(), "cannot initiate to 2001:db8::10 from 10.1.0.2");

  // Nobody has 198.51.100.99: every retransmission goes unanswered.
  auto dead = p.ini->engine->initiate("home", ip("10.1.0.2"), p.net.now(), ip("198.51.100.99"));
  ASSERT_TRUE(dead) << dead.error();
  p.net.collect(*p.ini);
  ASSERT_TRUE(p.net.run_until([&] { return last_failure(*p.ini) != nullptr; }));
  const ike::Event* f = last_failure(*p.ini);
  EXPECT_EQ(f->ike_sa_id, *dead);
  EXPECT_TRUE(f->unanswered);
  EXPECT_EQ(f->detail, "IKE_SA_INIT request not answered after 2 retransmissions");
  EXPECT_EQ(p.ini->engine->ike_sa_count(), 0u);
  EXPECT_EQ(p.res->engine->ike_sa_count(), 0u);

  // The next address answers.
  auto live = p.ini->engine->initiate("home", ip("10.1.0.2"), p.net.now(), ip("198.51.100.10"));
  ASSERT_TRUE(live) << live.error();
  p.net.collect(*p.ini);
  ASSERT_TRUE(p.net.run_until([&] { return p.both_established(); }));
  EXPECT_EQ(only_sa(*p.ini)->id, *live);
  EXPECT_EQ(only_sa(*p.ini)->remote.address, ip("198.51.100.10"));
  EXPECT_EQ(count_events(*p.ini, EventKind::kIkeFailed), 1u);
}

TEST(InitiateSim, AFailureWithAnAnswerIsNotUnanswered) {
  Pair p(false);
  auto r = psk_connection("gw", "%any", "res@example.test", "ini@example.test");
  r.psk = to_bytes("another-secret");
  p.configure(psk_connection("home", "vpn.example.test", "ini@example.test", "res@example.test"), r);
  ASSERT_TRUE(p.ini->engine->initiate("home", ip("198.51.100.3"), p.net.now(), ip("198.51.100.10")));
  p.net.collect(*p.ini);
  ASSERT_TRUE(p.net.run_until([&] { return last_failure(*p.ini) != nullptr; }));
  EXPECT_FALSE(last_failure(*p.ini)->unanswered) << last_failure(*p.ini)->detail;

  // IKE_SA_INIT answered, IKE_AUTH lost: the peer is there, another address would not
  // help.
  Pair q(false);
  q.configure(psk_connection("home", "vpn.example.test", "ini@example.test", "res@example.test"),
              psk_connection("gw", "%any", "res@example.test", "ini@example.test"));
  int seen = 0;
  q.net.drop = [&](const Packet& pk) { return pk.from == "ini" && seen++ >= 1; };
  ASSERT_TRUE(q.ini->engine->initiate("home", ip("198.51.100.3"), q.net.now(), ip("198.51.100.10")));
  q.net.collect(*q.ini);
  ASSERT_TRUE(q.net.run_until([&] { return last_failure(*q.ini) != nullptr; }, Duration(600000)));
  EXPECT_FALSE(last_failure(*q.ini)->unanswered) << last_failure(*q.ini)->detail;
  EXPECT_NE(last_failure(*q.ini)->detail.find("IKE_AUTH"), std::string::npos) << last_failure(*q.ini)->detail;
}

}  // namespace
}  // namespace mobike::sim
