// Two engines (initiator "ini", responder "res") on the simulated network, optionally
// with the initiator behind a NAT; shared by the sim tests.
#pragma once

#include <gtest/gtest.h>

#include <cstdio>

#include "ike/ike_sa.h"
#include "sim_network.h"

namespace mobike::sim {

using ike::EventKind;
using ike::IkeState;

inline IpAddress ip(const char* s) { return *IpAddress::parse(s); }

struct Pair {
  Network net;
  Host* ini = nullptr;
  Host* res = nullptr;
  Nat* nat = nullptr;

  explicit Pair(bool behind_nat, ike::EngineConfig res_cfg = {}, std::uint64_t seed = 1,
                ike::EngineConfig ini_cfg = {}) {
    ini = &net.add_host("ini", {ip("10.1.0.2")}, ini_cfg, seed * 2 - 1);
    res = &net.add_host("res", {ip("198.51.100.10")}, res_cfg, seed * 2);
    if (behind_nat) {
      nat = &net.add_nat("nat", ip("198.51.100.2"));
      net.put_behind(*ini, *nat);
    } else {
      net.set_addresses(*ini, {ip("198.51.100.3")});
    }
  }
  ~Pair() {
    if (!::testing::Test::HasFailure()) return;
    for (Host* h : {ini, res}) {
      const auto& st = h->engine->counters();
      std::fprintf(stderr, "--- %s: in %llu out %llu malformed %llu unknown_spi %llu bad_mid %llu integrity %llu unexpected %llu\n",
                   h->name.c_str(), (unsigned long long)st.datagrams_in, (unsigned long long)st.datagrams_out,
                   (unsigned long long)st.dropped_malformed, (unsigned long long)st.dropped_unknown_spi,
                   (unsigned long long)st.dropped_bad_message_id, (unsigned long long)st.dropped_integrity,
                   (unsigned long long)st.dropped_unexpected);
      for (const auto& l : h->log) std::fprintf(stderr, "  %s\n", l.c_str());
    }
  }
  void configure(ike::ConnectionConfig i, ike::ConnectionConfig r) {
    ini->engine->set_connections({std::move(i)});
    res->engine->set_connections({std::move(r)});
  }
  void configure_default() {
    configure(psk_connection("home", "198.51.100.10", "ini@example.test", "res@example.test"),
              psk_connection("gw", "%any", "res@example.test", "ini@example.test"));
  }
  std::uint64_t initiate() {
    auto id = ini->engine->initiate("home", ini->addresses.front(), net.now());
    EXPECT_TRUE(id) << (id ? "" : id.error());
    net.collect(*ini);
    return id ? *id : 0;
  }
  bool both_established() {
    auto* a = only_sa(*ini);
    auto* b = only_sa(*res);
    return a && b && a->state == IkeState::kEstablished && b->state == IkeState::kEstablished &&
           a->children.size() == 1 && b->children.size() == 1;
  }
};

inline void expect_matching_children(const ike::IkeSa& a, const ike::IkeSa& b) {
  ASSERT_EQ(a.children.size(), 1u);
  ASSERT_EQ(b.children.size(), 1u);
  const auto& ca = a.children[0];
  const auto& cb = b.children[0];
  EXPECT_EQ(ca.spi_in, cb.spi_out);
  EXPECT_EQ(ca.spi_out, cb.spi_in);
  EXPECT_EQ(ca.keys.encr_out, cb.keys.encr_in);
  EXPECT_EQ(ca.keys.encr_in, cb.keys.encr_out);
  EXPECT_EQ(ca.keys.integ_out, cb.keys.integ_in);
  EXPECT_GE(ca.keys.encr_out.size(), 16u);  // at least an AES-128 key
  EXPECT_NE(ca.keys.encr_out, ca.keys.encr_in);
  EXPECT_EQ(ca.local_ts, cb.remote_ts);
  EXPECT_EQ(ca.remote_ts, cb.local_ts);
}

}  // namespace mobike::sim
