// Switch requests that must not move anything: unacceptable and malformed addresses
// (spec §5.4, §6.3.2, §6.3.3, Q3), a SWITCH_TO_IP_ADDRESS sent by the initiator
// (§6.3.1), peers without support (§6.1.3), and the preconditions of switch_address.
#include <gtest/gtest.h>

#include "switch_helpers.h"

namespace mobike::sim {
namespace {

struct Refusal {
  const char* name;
  // Sent with switch_address when `target` parses and switch_address accepts it;
  // otherwise the notify data is sent raw.
  const char* target;
  Bytes raw;
  const char* reason;  // part of the initiator's kSwitchRefused detail
  bool gen1;
};

void PrintTo(const Refusal& r, std::ostream* os) { *os << r.name << (r.gen1 ? " gen1" : " gen2"); }

class SwitchRefusalSim : public ::testing::TestWithParam<Refusal> {};

TEST_P(SwitchRefusalSim, EmptyAnswerOnTheOldPathThenALivenessCheck) {
  const Refusal c = GetParam();
  Sw s({.gen1 = c.gen1});
  ASSERT_TRUE(s.start());
  auto before = s.tap->seen.size();
  auto t0 = s.p.net.now();
  bool api = c.target != nullptr;
  if (api) {
    ASSERT_TRUE(s.request(ip(c.target)));
  } else {
    ASSERT_TRUE(send_raw(s.p.net, *s.p.res, {wire::make_notify(kSwitchNotify, c.raw)}));
  }
  ASSERT_TRUE(s.p.net.run_until([&] { return count_events(*s.p.ini, EventKind::kSwitchRefused) == 1 && s.idle(); },
                                seconds(5)));
  EXPECT_EQ(event_count(*s.p.ini, EventKind::kSwitchRefused, c.reason), 1u);
  // The answer: empty, on the old path even in generation 1.
  auto resp = s.switch_responses();
  ASSERT_EQ(resp.size(), 1u);
  EXPECT_EQ(resp[0]->dst, ep("198.51.100.10"));
  EXPECT_EQ(resp[0]->src, s.ini_public);
  EXPECT_TRUE(resp[0]->payloads.empty());
  // Then a liveness check of the old path, answered.
  std::vector<const Tap::Recorded*> live;
  for (const auto* m : s.all(liveness_request))
    if (s.index(m) >= before) live.push_back(m);
  ASSERT_EQ(live.size(), 1u);
  EXPECT_GT(s.index(live[0]), s.index(resp[0]));
  EXPECT_EQ(live[0]->dst, ep("198.51.100.10"));
  EXPECT_EQ(s.tap->count([&](const Seen& m) {
    return m.from == "res" && m.informational_response() && m.mid == live[0]->mid && m.spi_i == live[0]->spi_i;
  }), 1u);
  EXPECT_EQ(s.updates().size(), 0u);
  EXPECT_EQ(s.tap->seen.size() - before, 4u);  // request, answer, liveness check, answer
  if (api) {
    // The gateway learns at once, from the check on the old path, that nothing will move.
    EXPECT_EQ(event_count(*s.p.res, EventKind::kSwitchRefused, "checked the old path"), 1u);
    EXPECT_LT(s.p.net.now() - t0, Duration(1000));
  } else {
    EXPECT_EQ(switch_failures(*s.p.res), 0u);
  }
  EXPECT_EQ(count_events(*s.p.res, EventKind::kSwitchSucceeded), 0u);
  EXPECT_FALSE(view_of(*s.p.res).switching_to.has_value());
  s.expect_unmoved();
  EXPECT_EQ(count_events(*s.p.ini, EventKind::kAddressesUpdated), 0u);
  EXPECT_EQ(count_events(*s.p.res, EventKind::kAddressesUpdated), 0u);
  EXPECT_EQ(s.p.nat->dropped_by_filter, s.filter_drops);

  // The SA stays and works on the old path.
  s.p.net.run_for(seconds(60));
  EXPECT_EQ(s.failures(), 0u);
  EXPECT_EQ(count_events(*s.p.res, EventKind::kSwitchRefused), api ? 1u : 0u);
  EXPECT_EQ(count_events(*s.p.res, EventKind::kSwitchFailed), 0u);  // no late deadline report
  ASSERT_TRUE(s.p.ini->engine->rekey_child(s.ini().children[0].id, s.p.net.now()));
  s.p.net.collect(*s.p.ini);
  ASSERT_TRUE(s.p.net.run_until([&] { return count_events(*s.p.res, EventKind::kChildRekeyed) == 1; }, seconds(5)));
  EXPECT_EQ(s.ini().remote, ep("198.51.100.10"));
  EXPECT_EQ(s.res().local, ep("198.51.100.10"));
}

Bytes bytes_of(const char* a) { return ip(a).to_bytes(); }

std::vector<Refusal> refusals() {
  std::vector<Refusal> base{
      {"NotAnnouncedNotAllowed", "198.51.100.30", {}, "was not announced and is not allowed", true},
      {"NoLocalIpv6", "2001:db8::20", {}, "no local address of the family", true},
      {"Length3", nullptr, {198, 51, 100}, "malformed address (3 octets)", true},
      {"Length5", nullptr, {198, 51, 100, 20, 0}, "malformed address (5 octets)", true},
      {"Empty", nullptr, {}, "malformed address (0 octets)", true},
      {"Length15", nullptr, Bytes(15, 0x20), "malformed address (15 octets)", true},
      {"Length17", nullptr, Bytes(17, 0x20), "malformed address (17 octets)", true},
      {"Loopback", nullptr, bytes_of("127.0.0.1"), "is not a usable address", true},
      {"Loopback6", nullptr, bytes_of("::1"), "is not a usable address", true},
      {"Multicast", nullptr, bytes_of("224.0.0.5"), "is not a usable address", true},
      {"Multicast6", nullptr, bytes_of("ff02::1"), "is not a usable address", true},
      {"LinkLocal", nullptr, bytes_of("169.254.7.7"), "is not a usable address", true},
      {"LinkLocal6", nullptr, bytes_of("fe80::1"), "is not a usable address", true},
      {"Unspecified", nullptr, bytes_of("0.0.0.0"), "is not a usable address", true},
      {"Broadcast", nullptr, bytes_of("255.255.255.255"), "is not a usable address", true},
  };
  std::vector<Refusal> out;
  for (bool gen1 : {true, false})
    for (auto c : base) {
      c.gen1 = gen1;
      out.push_back(c);
    }
  return out;
}

INSTANTIATE_TEST_SUITE_P(, SwitchRefusalSim, ::testing::ValuesIn(refusals()),
                         [](const ::testing::TestParamInfo<Refusal>& i) {
                           return std::string(i.param.name) + (i.param.gen1 ? "Gen1" : "Gen2");
                         });

// The address the SA already uses: nothing to do, not even a check.
TEST(SwitchRulesSim, SwitchToTheCurrentAddressIsANoOp) {
  Sw s;
  ASSERT_TRUE(s.start());
  auto before = s.tap->seen.size();
  auto answer = std::make_shared<std::vector<wire::Payload>>(1);
  ASSERT_TRUE(send_raw(s.p.net, *s.p.res, {wire::make_notify(kSwitchNotify, R1().to_bytes())}, answer));
  s.p.net.run_for(seconds(5));
  EXPECT_TRUE(answer->empty());
  EXPECT_EQ(s.tap->seen.size() - before, 2u);
  EXPECT_EQ(s.switch_responses().at(0)->dst, ep("198.51.100.10"));
  EXPECT_EQ(switch_failures(*s.p.ini), 0u);
  s.expect_unmoved();
  // switch_address says so too.
  auto r = s.request(R1());
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().find("already on"), std::string::npos) << r.error();
}

// §6.3.1: only the responder may ask; the responder answers the initiator's notify with
// an empty response and does nothing else.
TEST(SwitchRulesSim, NotifyFromTheInitiatorIsIgnored) {
  Sw s;
  ASSERT_TRUE(s.start());
  auto before = s.tap->seen.size();
  auto answer = std::make_shared<std::vector<wire::Payload>>(1);
  ASSERT_TRUE(send_raw(s.p.net, *s.p.ini, {wire::make_notify(kSwitchNotify, R2().to_bytes())}, answer));
  s.p.net.run_for(seconds(30));
  EXPECT_TRUE(answer->empty());
  ASSERT_EQ(s.tap->seen.size() - before, 2u);
  const auto& req = s.tap->seen[before];
  const auto& resp = s.tap->seen[before + 1];
  EXPECT_EQ(req.from, "ini");
  EXPECT_EQ(switch_data(req), R2().to_bytes());
  EXPECT_EQ(resp.from, "res");
  EXPECT_TRUE(resp.informational_response());
  EXPECT_EQ(resp.src, ep("198.51.100.10"));  // to where it came from
  EXPECT_EQ(resp.dst, s.ini_public);
  EXPECT_TRUE(logged(*s.p.res, "SWITCH_TO_IP_ADDRESS from the initiator ignored"));
  for (const Host* h : {s.p.ini, s.p.res}) {
    EXPECT_EQ(switch_failures(*h), 0u) << h->name;
    EXPECT_EQ(count_events(*h, EventKind::kSwitchSucceeded), 0u) << h->name;
    EXPECT_EQ(count_events(*h, EventKind::kAddressesUpdated), 0u) << h->name;
  }
  EXPECT_FALSE(view_of(*s.p.res).switching_to.has_value());
  s.expect_unmoved();
  EXPECT_EQ(s.failures(), 0u);
}

// §6.1.3: an initiator that did not send 0x52 is never asked; one that gets asked
// anyway treats the notify as an unknown status notify (§6.3.1, our choice).
TEST(SwitchRulesSim, PeerWithoutSupport) {
  Sw s({.tweak = [](ike::ConnectionConfig& i, ike::ConnectionConfig&) { i.switch_enabled = false; }});
  ASSERT_TRUE(s.start());
  auto auth = s.all([](const Seen& x) { return x.exchange == ExchangeType::kIkeAuth && !x.response; });
  ASSERT_EQ(auth.size(), 1u);
  auto* flag = wire::find_notify(auth[0]->payloads, NotifyType::kMobikeSupported);
  ASSERT_NE(flag, nullptr);
  EXPECT_TRUE(flag->data.empty());
  EXPECT_TRUE(s.res().peer_mobike);
  EXPECT_FALSE(view_of(*s.p.res).peer_switch);

  auto before = s.tap->seen.size();
  auto r = s.request(R2());
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().find("did not announce"), std::string::npos) << r.error();
  s.p.net.run_for(seconds(5));
  EXPECT_EQ(s.tap->seen.size(), before);  // nothing was sent
  EXPECT_FALSE(view_of(*s.p.res).switching_to.has_value());

  // Asked anyway: an empty answer to where the request came from (even though this
  // initiator would answer generation-1 style), no update, no check, no event.
  auto answer = std::make_shared<std::vector<wire::Payload>>(1);
  ASSERT_TRUE(send_raw(s.p.net, *s.p.res, {wire::make_notify(kSwitchNotify, R2().to_bytes())}, answer));
  s.p.net.run_for(seconds(30));
  EXPECT_TRUE(answer->empty());
  EXPECT_EQ(s.tap->seen.size() - before, 2u);
  auto resp = s.switch_responses();
  ASSERT_EQ(resp.size(), 1u);
  EXPECT_EQ(resp[0]->dst, ep("198.51.100.10"));
  EXPECT_EQ(switch_failures(*s.p.ini), 0u);
  s.expect_unmoved();
  EXPECT_EQ(s.p.nat->dropped_by_filter, s.filter_drops);
  EXPECT_EQ(s.failures(), 0u);
}

// The notify number is configuration (spec §10: private use, no IANA value): both
// sides on another number work; a gateway using a number the initiator does not know
// gets its notify ignored as an unknown status notify (RFC 7296 §3.10.1) and gives up
// waiting for the update.
TEST(SwitchRulesSim, NotifyTypeIsConfiguration) {
  {
    SCOPED_TRACE("both on 40970");
    Sw s({.ini_notify = 40970, .res_notify = 40970});
    ASSERT_TRUE(s.start());
    ASSERT_TRUE(s.request(R2()));
    ASSERT_TRUE(s.run_to_outcome());
    EXPECT_EQ(count_events(*s.p.res, EventKind::kSwitchSucceeded), 1u);
    s.expect_switched(R2());
    auto req = s.all([](const Seen& m) { return m.from == "res" && m.informational_request() &&
                                                wire::find_notify(m.payloads, 40970); });
    ASSERT_EQ(req.size(), 1u);
    EXPECT_EQ(wire::find_notify(req[0]->payloads, 40970)->data, R2().to_bytes());
    EXPECT_EQ(s.switch_requests().size(), 0u);  // nothing carried 61440
  }
  {
    SCOPED_TRACE("gateway on 61440, initiator on 40970");
    Sw s({.ini_notify = 40970});
    ASSERT_TRUE(s.start());
    ASSERT_TRUE(s.request(R2()));
    ASSERT_TRUE(s.p.net.run_until([&] { return count_events(*s.p.res, EventKind::kSwitchFailed) == 1; }, seconds(30)));
    EXPECT_EQ(event_count(*s.p.res, EventKind::kSwitchFailed, "no UPDATE_SA_ADDRESSES"), 1u);
    auto resp = s.switch_responses();
    ASSERT_EQ(resp.size(), 1u);
    EXPECT_EQ(resp[0]->dst, ep("198.51.100.10"));  // an ordinary answer, to the source
    EXPECT_TRUE(resp[0]->payloads.empty());
    EXPECT_EQ(s.updates().size(), 0u);
    EXPECT_EQ(switch_failures(*s.p.ini), 0u);
    s.expect_unmoved();
    EXPECT_EQ(s.failures(), 0u);
  }
}

TEST(SwitchRulesSim, PeerWithoutMobike) {
  Sw s({.tweak = [](ike::ConnectionConfig& i, ike::ConnectionConfig&) { i.mobike = false; }});
  ASSERT_TRUE(s.start());
  EXPECT_FALSE(s.res().peer_mobike);
  auto r = s.request(R2());
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().find("MOBIKE"), std::string::npos) << r.error();
  EXPECT_EQ(s.switch_requests().size(), 0u);
}

TEST(SwitchRulesSim, SwitchAddressPreconditions) {
  Sw s;
  ASSERT_TRUE(s.start());
  auto err = [](const Expected<void, std::string>& r) { return r ? std::string("(accepted)") : r.error(); };
  auto now = s.p.net.now();
  // Not on the initiator's side, not for an unknown SA, not to unusable addresses.
  EXPECT_NE(err(mobility::switch_address(*s.p.ini->engine, s.ini().id, R2(), now)).find("initiator"),
            std::string::npos);
  EXPECT_NE(err(mobility::switch_address(*s.p.res->engine, 999, R2(), now)).find("no IKE SA"), std::string::npos);
  for (const char* bad : {"127.0.0.1", "224.0.0.1", "169.254.1.1", "fe80::1", "0.0.0.0", "::"})
    EXPECT_NE(err(s.request(ip(bad))).find("not a usable address"), std::string::npos) << bad;
  EXPECT_EQ(s.switch_requests().size(), 0u);
  // One switch at a time (Q5).
  ASSERT_TRUE(s.request(R2()));
  EXPECT_NE(err(s.request(ip("198.51.100.30"))).find("in flight"), std::string::npos);
  ASSERT_TRUE(s.run_to_outcome());
  EXPECT_EQ(s.switch_requests().size(), 1u);
  EXPECT_EQ(count_events(*s.p.res, EventKind::kSwitchSucceeded), 1u);
  s.expect_switched(R2());
}

}  // namespace
}  // namespace mobike::sim
