// Helpers for the sim tests of the responder-initiated switch (SWITCH_TO_IP_ADDRESS,
// docs/switch.md): the seed topology of the slides — a client behind a
// restricted-cone NAT, a gateway with two addresses — and predicates over the tapped
// messages of the flow.
#pragma once

#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "mobility/switch.h"
#include "mobike_helpers.h"

namespace mobike::sim {

using std::chrono::minutes;
using std::chrono::seconds;

inline constexpr std::uint16_t kSwitchNotify = 61440;  // ike::EngineConfig::switch_notify_type

// The gateway's addresses (R1: the SA's address at first, R2: where it moves), the
// client inside and outside its NAT.
inline IpAddress R1() { return ip("198.51.100.10"); }
inline IpAddress R2() { return ip("198.51.100.20"); }
inline constexpr const char* kIniInside = "10.1.0.2";
inline constexpr const char* kIniPublic = "198.51.100.2";

struct SwitchSetup {
  bool gen1 = true;  // the initiator answers towards the new address (switch_response_to_new)
  bool nat = true;   // the initiator sits behind the restricted-cone NAT
  std::vector<IpAddress> res_addresses{R1(), R2()};
  std::vector<IpAddress> ini_extra;  // more addresses of the initiator (direct, no NAT)
  std::function<void(ike::ConnectionConfig& ini, ike::ConnectionConfig& res)> tweak;
  // ike::EngineConfig::switch_notify_type of each side.
  std::uint16_t ini_notify = kSwitchNotify;
  std::uint16_t res_notify = kSwitchNotify;
  // The gateway is a cluster member (claims RFC 6311 as the responder).
  bool ha_member = false;
};

inline ike::EngineConfig engine_with_notify(std::uint16_t type, bool ha_member = false) {
  ike::EngineConfig c;
  c.switch_notify_type = type;
  c.ha_sync_member = ha_member;
  return c;
}

// The SWITCH request and its answer on the tapped wire.
inline bool switch_request(const Seen& s) {
  return s.from == "res" && s.informational_request() && wire::find_notify(s.payloads, kSwitchNotify);
}
// The initiator's liveness check: an INFORMATIONAL request with nothing but NAT detection.
inline bool liveness_request(const Seen& s) {
  if (s.from != "ini" || !s.informational_request() || !s.opened) return false;
  for (const auto& p : s.payloads) {
    auto* n = std::get_if<wire::NotifyPayload>(&p.body);
    if (!n || (n->notify_type() != NotifyType::kNatDetectionSourceIp &&
               n->notify_type() != NotifyType::kNatDetectionDestinationIp))
      return false;
  }
  return true;
}
inline Bytes switch_data(const Seen& s) {
  auto* n = wire::find_notify(s.payloads, kSwitchNotify);
  return n ? n->data : Bytes{};
}

struct Sw {
  Pair p;
  SwitchSetup setup;
  std::unique_ptr<Tap> tap;
  Spis spis_i, spis_r;
  std::size_t filter_drops = 0;  // the NAT's filter drops once established
  Endpoint ini_public;           // the initiator as the gateway sees it
  std::uint16_t port = 4500;     // the gateway's IKE port (500 without NAT traversal)

  explicit Sw(SwitchSetup s = {})
      : p(s.nat, engine_with_notify(s.res_notify, s.ha_member), 1, engine_with_notify(s.ini_notify)), setup(std::move(s)) {
    p.net.set_addresses(*p.res, setup.res_addresses);
    if (!setup.ini_extra.empty()) {
      auto all = p.ini->addresses;
      for (const auto& a : setup.ini_extra) {
        all.push_back(a);
        if (setup.nat) p.net.put_behind(*p.ini, nullptr, a);  // direct
      }
      p.net.set_addresses(*p.ini, all);
    }
    auto i = ini_conn(Duration(0));
    auto r = res_conn(Duration(0));
    i.switch_response_to_new = setup.gen1;
    if (setup.tweak) setup.tweak(i, r);
    p.configure(i, r);
    tap = std::make_unique<Tap>(p);
    ini_public = setup.nat ? ep(kIniPublic) : Endpoint{p.ini->addresses.front(), 4500};
  }

  // Establishes from the initiator's first address and lets the NAT-mapping liveness
  // check finish.
  bool start() {
    if (!establish(p, p.ini->addresses.front())) return false;
    p.net.run_for(seconds(1));
    if (!idle()) return false;
    spis_i = spis_of(*p.ini);
    spis_r = spis_of(*p.res);
    port = res().local.port;
    if (!setup.nat) ini_public = ini().local;
    filter_drops = p.nat ? p.nat->dropped_by_filter : 0;
    return true;
  }

  const ike::IkeSa& ini() const { return *only_sa(*p.ini); }
  const ike::IkeSa& res() const { return *only_sa(*p.res); }
  bool idle() const {
    auto* i = only_sa(*p.ini);
    auto* r = only_sa(*p.res);
    if (!i || !r || i->active || r->active || !i->queue.empty() || !r->queue.empty()) return false;
    auto v = mobility::view(*i);
    return !v || !v->probing;  // not between a probe's answers and its update either
  }

  Expected<void, std::string> request(const IpAddress& to) {
    auto r = mobility::switch_address(*p.res->engine, res().id, to, p.net.now());
    p.net.collect(*p.res);
    return r;
  }
  // Until the responder reports the outcome and both sides have nothing outstanding.
  bool run_to_outcome(Duration limit = seconds(30)) {
    return p.net.run_until([&] {
      return count_events(*p.res, EventKind::kSwitchSucceeded) + switch_failures(*p.res) > 0 &&
             idle();
    }, limit);
  }

  // The initiator's answer to a SWITCH request (same IKE SA, same Message ID).
  bool switch_response(const Seen& s) const {
    if (s.from != "ini" || !s.informational_response()) return false;
    return tap->count([&](const Seen& q) { return switch_request(q) && q.mid == s.mid && q.spi_i == s.spi_i; }) > 0;
  }
  bool update_response(const Seen& s) const { return tap->update_response(s); }
  std::vector<const Tap::Recorded*> all(const std::function<bool(const Seen&)>& pred) const { return tap->all(pred); }
  std::vector<const Tap::Recorded*> switch_requests() const { return all(switch_request); }
  std::vector<const Tap::Recorded*> switch_responses() const {
    return all([&](const Seen& s) { return switch_response(s); });
  }
  std::vector<const Tap::Recorded*> updates() const { return all(Tap::update_request); }
  std::vector<const Tap::Recorded*> update_responses() const {
    return all([&](const Seen& s) { return update_response(s); });
  }
  // Index of a recorded message in the tap (for the order of messages on the wire).
  std::size_t index(const Tap::Recorded* r) const { return static_cast<std::size_t>(r - tap->seen.data()); }

  // Both sides on (gateway `to`, initiator as before), nothing re-keyed, both data
  // planes moved there.
  void expect_switched(const IpAddress& to) {
    const Endpoint gw{to, port};
    EXPECT_EQ(res().local, gw);
    EXPECT_EQ(res().remote, ini_public);
    EXPECT_EQ(ini().remote, gw);
    EXPECT_EQ(view_of(*p.res).committed, (mobility::Path{gw, ini_public}));
    EXPECT_EQ(view_of(*p.ini).committed.remote, gw);
    EXPECT_FALSE(view_of(*p.res).switching_to.has_value());
    EXPECT_FALSE(view_of(*p.res).rr_pending);
    ASSERT_FALSE(update_ops(*p.res).empty());
    EXPECT_EQ(update_ops(*p.res).back().local, gw);
    EXPECT_EQ(update_ops(*p.res).back().remote, ini_public);
    EXPECT_EQ(update_ops(*p.res).back().spi_in, spis_r.child_in);
    EXPECT_EQ(update_ops(*p.res).back().udp_encap, setup.nat);
    ASSERT_FALSE(update_ops(*p.ini).empty());
    EXPECT_EQ(update_ops(*p.ini).back().remote, gw);
    EXPECT_EQ(update_ops(*p.ini).back().local, ini().local);
    EXPECT_EQ(update_ops(*p.ini).back().spi_in, spis_i.child_in);
    EXPECT_EQ(update_ops(*p.ini).back().udp_encap, setup.nat);
    EXPECT_EQ(spis_of(*p.ini), spis_i);
    EXPECT_EQ(spis_of(*p.res), spis_r);
    if (p.nat) {
      EXPECT_EQ(p.nat->dropped_by_filter, filter_drops);
    }
  }
  // Nothing moved: both sides on R1, no data-plane update anywhere.
  void expect_unmoved() {
    const Endpoint gw{R1(), port};
    EXPECT_EQ(res().local, gw);
    EXPECT_EQ(res().remote, ini_public);
    EXPECT_EQ(ini().remote, gw);
    EXPECT_EQ(view_of(*p.res).committed, (mobility::Path{gw, ini_public}));
    EXPECT_EQ(view_of(*p.ini).committed.remote, gw);
    EXPECT_TRUE(update_ops(*p.res).empty());
    EXPECT_TRUE(update_ops(*p.ini).empty());
    EXPECT_EQ(spis_of(*p.ini), spis_i);
    EXPECT_EQ(spis_of(*p.res), spis_r);
  }
  std::size_t failures() const {
    return count_events(*p.ini, EventKind::kIkeFailed) + count_events(*p.res, EventKind::kIkeFailed);
  }
};

}  // namespace mobike::sim
