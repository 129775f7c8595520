#include <gtest/gtest.h>
#include "switch_helpers.h"

// Regressions found by a review of src/mobility: rekeys crossing updates and checks, a
// switch request that outlives its switch, refusal floods, back-off overflow.

namespace mobike::sim {
namespace {

bool settled(Sw& s) { return s.p.ini->engine->ike_sa_count() == 1 && s.p.res->engine->ike_sa_count() == 1 && s.idle(); }

void dump(Sw& s, const char* tag) {
  auto vi = mobility::view(s.ini());
  auto vr = mobility::view(s.res());
  std::fprintf(stderr, "[%s] ini local %s remote %s committed %s -> %s | res local %s remote %s committed %s -> %s switching %s rr %d\n", tag,
               s.ini().local.to_string().c_str(), s.ini().remote.to_string().c_str(),
               vi->committed.local.to_string().c_str(), vi->committed.remote.to_string().c_str(),
               s.res().local.to_string().c_str(), s.res().remote.to_string().c_str(),
               vr->committed.local.to_string().c_str(), vr->committed.remote.to_string().c_str(),
               vr->switching_to ? vr->switching_to->to_string().c_str() : "-", vr->rr_pending);
  std::fprintf(stderr, "  res switch ok %zu failed %zu ; ini update ops %zu res update ops %zu\n",
               count_events(*s.p.res, EventKind::kSwitchSucceeded), switch_failures(*s.p.res),
               update_ops(*s.p.ini).size(), update_ops(*s.p.res).size());
}

// Initiator's own IKE rekey in flight when the SWITCH request arrives.
TEST(SwitchReviewSim, SwitchDuringTheInitiatorsIkeRekeyCompletes) {
  Sw s;
  ASSERT_TRUE(s.start());
  auto old_spi = s.ini().spi_i;
  ASSERT_TRUE(s.p.ini->engine->rekey_ike(s.ini().id, s.p.net.now()));
  s.p.net.collect(*s.p.ini);
  ASSERT_TRUE(s.request(R2()));
  ASSERT_TRUE(s.p.net.run_until([&] { return settled(s) && s.ini().spi_i != old_spi; }, seconds(30)));
  s.p.net.run_for(seconds(60));
  dump(s, "after rekey+switch");
  for (auto& e : s.p.res->events) std::fprintf(stderr, "  res event %d sa %llu %s\n", (int)e.kind, (unsigned long long)e.ike_sa_id, e.detail.c_str());
  EXPECT_EQ(s.ini().remote, mobility::view(s.ini())->committed.remote) << "initiator IKE path != committed path";
  EXPECT_EQ(s.ini().remote.address, R2());
  EXPECT_EQ(s.res().local.address, R2());
  ASSERT_FALSE(update_ops(*s.p.ini).empty());
  EXPECT_EQ(update_ops(*s.p.ini).back().remote.address, R2());
}

// A stale SwitchTask (kept retransmitting after end_switch) ends the next switch.
TEST(SwitchReviewSim, UnansweredSwitchRequestBlocksTheNextUntilItEnds) {
  SwitchSetup setup;
  setup.res_addresses = {R1(), R2(), ip("198.51.100.30")};
  Sw s(setup);
  ASSERT_TRUE(s.start());
  s.tap->drop_if = [&](const Seen& m) {
    return switch_request(m) && switch_data(m) == R2().to_bytes();
  };
  ASSERT_TRUE(s.request(R2()));
  ASSERT_TRUE(s.p.net.run_until([&] { return count_events(*s.p.res, EventKind::kSwitchFailed) == 1; }, minutes(2)));
  std::fprintf(stderr, "first switch failed at retransmits=%d active=%s\n", s.res().retransmits, s.res().active ? s.res().active->name() : "-");
  // The first request is still being retransmitted: a second switch must wait for it.
  auto r = s.request(ip("198.51.100.30"));
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().find("still unanswered"), std::string::npos) << r.error();
  // Once the initiator answers it (the path heals), a new switch goes out and completes.
  s.tap->drop_if = nullptr;
  ASSERT_TRUE(s.p.net.run_until([&] { return !s.res().active; }, minutes(6)));
  r = s.request(ip("198.51.100.30"));
  ASSERT_TRUE(r) << r.error();
  s.p.net.run_for(seconds(30));
  for (auto& e : s.p.res->events) std::fprintf(stderr, "  res event %d sa %llu %s\n", (int)e.kind, (unsigned long long)e.ike_sa_id, e.detail.c_str());
  std::size_t r3 = s.tap->count([&](const Seen& m) { return switch_request(m) && switch_data(m) == ip("198.51.100.30").to_bytes(); });
  std::fprintf(stderr, "SWITCH(.30) requests on the wire: %zu\n", r3);
  EXPECT_EQ(switch_failures(*s.p.res), 1u) << "second switch reported failed without being sent";
  EXPECT_GT(r3, 0u);
  EXPECT_EQ(count_events(*s.p.res, EventKind::kSwitchSucceeded), 1u);
}

// Repeated refused SWITCH requests queue one liveness check each.
TEST(SwitchReviewSim, RefusedSwitchesQueueOneLivenessCheckAtATime) {
  Sw s;
  ASSERT_TRUE(s.start());
  s.tap->drop_if = [&](const Seen& m) { return liveness_request(m); };
  for (int i = 0; i < 50; ++i) {
    ASSERT_TRUE(send_raw(s.p.net, *s.p.res, {wire::make_notify(static_cast<NotifyType>(kSwitchNotify), Bytes{1, 2, 3})}));
    s.p.net.run_for(Duration(50));
  }
  std::fprintf(stderr, "initiator queue size after 50 refused switches: %zu\n", s.ini().queue.size());
  EXPECT_LT(s.ini().queue.size(), 3u);
}

// The responder's return-routability check crossing an IKE rekey.
TEST(SwitchReviewSim, ReturnRoutabilityCheckSurvivesAnIkeRekey) {
  // The initiator's rekey crosses the gateway's outstanding check. (A rekey by the
  // gateway itself waits behind its own check: window size one, no crossing.)
  for (bool by_ini : {true}) {
  SwitchSetup setup;
  setup.ini_extra = {ip("198.51.100.77")};
  Sw s(setup);
  ASSERT_TRUE(s.start());
  bool hold = true;
  s.tap->drop_if = [&](const Seen& m) { return hold && Tap::rr_request(m); };
  ASSERT_TRUE(mobility::update_addresses(*s.p.ini->engine, s.ini().id, ip("198.51.100.77"), s.p.net.now()));
  s.p.net.collect(*s.p.ini);
  ASSERT_TRUE(s.p.net.run_until([&] { return mobility::view(s.res())->rr_pending; }, seconds(5)));
  auto old_spi = s.ini().spi_i;
  Host& by = by_ini ? *s.p.ini : *s.p.res;
  ASSERT_TRUE(by.engine->rekey_ike(only_sa(by)->id, s.p.net.now()));
  s.p.net.collect(by);
  bool ok = s.p.net.run_until([&] { return s.p.ini->engine->ike_sa_count() == 1 && s.p.res->engine->ike_sa_count() == 1 && s.ini().spi_i != old_spi; }, seconds(60));
  hold = false;
  s.p.net.run_for(seconds(60));
  ASSERT_TRUE(ok) << "rekey by " << (by_ini ? "initiator" : "responder");
  dump(s, "after");
  if (!update_ops(*s.p.res).empty()) std::fprintf(stderr, "  res last update op remote %s\n", update_ops(*s.p.res).back().remote.to_string().c_str());
  EXPECT_EQ(mobility::view(s.res())->committed.remote, s.res().remote) << "responder ESP never follows";
  }
}

}  // namespace
}  // namespace mobike::sim
namespace mobike::sim {
namespace {
TEST(SwitchReviewSim, LongPathTimeoutDoesNotOverflowTheBackoff) {
  Sw s;
  mobility::Config c;
  c.path_timeout = std::chrono::hours(2);
  mobility::install(*s.p.ini->engine, c);
  ASSERT_TRUE(s.start());
  s.p.net.drop = [&](const Packet&) { return true; };
  ASSERT_TRUE(mobility::probe_paths(*s.p.ini->engine, s.ini().id, s.p.net.now()));
  s.p.net.collect(*s.p.ini);
  auto before = s.p.ini->engine->counters().retransmits_sent;
  s.p.net.run_for(std::chrono::minutes(40));
  auto sent = s.p.ini->engine->counters().retransmits_sent - before;
  // Capped at one probe round every 15 s: about 160 in 40 minutes, not a storm, and the
  // SA is still probing (its path timeout is two hours).
  EXPECT_GE(sent, 150u);
  EXPECT_LE(sent, 175u);
  ASSERT_NE(only_sa(*s.p.ini), nullptr);
  EXPECT_TRUE(mobility::view(*only_sa(*s.p.ini))->probing);
}
}  // namespace
}  // namespace mobike::sim
namespace mobike::sim {
namespace {
}  // namespace
}  // namespace mobike::sim
