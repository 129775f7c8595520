// RFC 7383 between two engines: IKE_AUTH with RSA certificate chains and a small
// fragment_size goes out as SKF fragments both ways; a lost fragment of the request or
// of the response is recovered by retransmission; a peer without fragmentation gets
// whole messages.
#include <gtest/gtest.h>

#include "crypto/cert_builder.h"
#include "ike/fragmentation.h"
#include "ike/ike_sa.h"
#include "ike_pair.h"

namespace mobike::sim {
namespace {

using crypto::KeyType;

constexpr std::size_t kFragmentSize = 576;  // IPv4's minimum: IKE messages of at most 548 octets

struct Issued {
  std::shared_ptr<crypto::PrivateKey> key;
  std::shared_ptr<const crypto::Certificate> cert;
};

// A root and an intermediate, both RSA, so that each IKE_AUTH carries two RSA
// certificates and an RSA signature: ~2 kB, several fragments of 548 octets.
struct RsaPki {
  Issued root, mid;
  RsaPki() {
    root.key = crypto::PrivateKey::generate(KeyType::kRsa);
    root.cert = crypto::issue_certificate({.subject = "C=CH, O=Mobike Test, CN=Root", .ca = true}, *root.key, nullptr,
                                          *root.key);
    mid.key = crypto::PrivateKey::generate(KeyType::kRsa);
    mid.cert = crypto::issue_certificate({.subject = "C=CH, O=Mobike Test, CN=Intermediate", .ca = true, .serial = 2},
                                         *mid.key, root.cert.get(), *root.key);
  }
  void use(ike::ConnectionConfig& c, const std::string& cn, long serial) const {
    Issued own;
    own.key = crypto::PrivateKey::generate(KeyType::kRsa);
    own.cert = crypto::issue_certificate({.subject = "C=CH, O=Mobike Test, CN=" + cn, .serial = serial}, *own.key,
                                         mid.cert.get(), *mid.key);
    c.local_auth = c.remote_auth = ike::AuthClass::kPubkey;
    c.private_key = own.key;
    c.local_certs = {own.cert, mid.cert};
    c.send_cert = ike::SendCert::kAlways;
    auto trust = std::make_shared<crypto::TrustStore>();
    trust->add_anchor(root.cert);
    c.trust = trust;
    c.local_id = ike::Identity{wire::IdType::kDerAsn1Dn, own.cert->subject_der()};
  }
};

const RsaPki& pki() {
  static const RsaPki p;  // RSA keys are slow to make: one PKI for every test
  return p;
}

// The SKF header of a datagram, if it is a fragment.
std::optional<std::pair<std::uint16_t, std::uint16_t>> skf_numbers(const Packet& p) {
  const Bytes& d = p.data;
  if (p.keepalive || d.size() < wire::kHeaderSize + 8 || d[16] != static_cast<std::uint8_t>(wire::PayloadType::kSkf))
    return std::nullopt;
  auto u16 = [&](std::size_t at) { return static_cast<std::uint16_t>(d[at] << 8 | d[at + 1]); };
  return std::pair{u16(wire::kHeaderSize + 4), u16(wire::kHeaderSize + 6)};
}
bool is_response(const Packet& p) { return p.data.size() > 19 && (p.data[19] & wire::kFlagResponse); }

struct FragPair : Pair {
  explicit FragPair(bool ini_fragmentation = true, bool res_fragmentation = true)
      : Pair(true, engine_config(), 1, engine_config()) {
    auto i = psk_connection("home", "198.51.100.10", "ini@example.test", "");
    auto r = psk_connection("gw", "%any", "res@example.test", "");
    pki().use(i, "client", 10);
    pki().use(r, "gw.example.test", 11);
    i.fragmentation = ini_fragmentation;
    r.fragmentation = res_fragmentation;
    configure(i, r);
  }
  static ike::EngineConfig engine_config() {
    ike::EngineConfig c;
    c.fragment_size = kFragmentSize;
    return c;
  }
  const ike::Stats& ini_stats() const { return ini->engine->counters(); }
  const ike::Stats& res_stats() const { return res->engine->counters(); }
};

TEST(FragmentationSim, IkeAuthIsFragmentedBothWaysAndEstablishes) {
  FragPair p;
  std::size_t largest = 0, fragments_seen = 0;
  p.net.drop = [&](const Packet& pk) {
    largest = std::max(largest, pk.data.size());
    fragments_seen += skf_numbers(pk).has_value();
    return false;
  };
  p.initiate();
  ASSERT_TRUE(p.net.run_until([&] { return p.both_established(); }));
  expect_matching_children(*only_sa(*p.ini), *only_sa(*p.res));
  EXPECT_TRUE(only_sa(*p.ini)->fragmentation);
  EXPECT_TRUE(only_sa(*p.res)->fragmentation);
  // Behind the NAT both sides moved to port 4500: the non-ESP marker leaves 544 octets.
  EXPECT_LE(largest, ike::ike_message_limit(kFragmentSize, false, true));
  EXPECT_GE(p.ini_stats().fragments_sent, 4u);
  EXPECT_GE(p.res_stats().fragments_sent, 4u);
  EXPECT_EQ(p.ini_stats().fragments_sent + p.res_stats().fragments_sent, fragments_seen);
  EXPECT_EQ(p.res_stats().fragments_received, p.ini_stats().fragments_sent);
  EXPECT_EQ(p.ini_stats().fragments_received, p.res_stats().fragments_sent);
  EXPECT_EQ(p.ini_stats().reassembled, 1u);
  EXPECT_EQ(p.res_stats().reassembled, 1u);
  EXPECT_EQ(p.ini_stats().dropped_fragment + p.res_stats().dropped_fragment, 0u);
  EXPECT_EQ(p.ini_stats().retransmits_sent, 0u);

  // Later exchanges stay whole while they fit: a liveness check is one datagram each way.
  auto before = p.ini_stats().fragments_sent;
  ASSERT_TRUE(p.ini->engine->rekey_ike(only_sa(*p.ini)->id, p.net.now()));
  p.net.collect(*p.ini);
  ASSERT_TRUE(p.net.run_until([&] {
    return count_events(*p.ini, EventKind::kIkeRekeyed) > 0 && only_sa(*p.ini) && only_sa(*p.res);
  }));
  EXPECT_EQ(p.ini_stats().fragments_sent, before);
  // The rekeyed IKE SA inherits what IKE_SA_INIT agreed (RFC 7383).
  EXPECT_TRUE(only_sa(*p.ini)->fragmentation);
  EXPECT_TRUE(only_sa(*p.res)->fragmentation);
}

TEST(FragmentationSim, ALostRequestFragmentIsRecoveredByRetransmission) {
  FragPair p;
  bool dropped = false;
  p.net.drop = [&](const Packet& pk) {
    auto n = skf_numbers(pk);
    if (!dropped && n && n->first == 2 && pk.from == "ini" && !is_response(pk)) return dropped = true;
    return false;
  };
  p.initiate();
  ASSERT_TRUE(p.net.run_until([&] { return p.both_established(); }));
  EXPECT_TRUE(dropped);
  EXPECT_EQ(p.ini_stats().retransmits_sent, 1u);
  // The retransmission resent every fragment; those already held are duplicates.
  auto total = p.res_stats().fragments_received + p.res_stats().dropped_fragment;
  EXPECT_EQ(total, p.ini_stats().fragments_sent - 1);
  EXPECT_GE(p.res_stats().dropped_fragment, 2u);
  EXPECT_EQ(p.res_stats().reassembled, 1u);
  EXPECT_EQ(p.res_stats().retransmits_answered, 0u);
}

TEST(FragmentationSim, ALostResponseFragmentIsResentOnceForTheRetransmission) {
  FragPair p;
  bool dropped = false;
  p.net.drop = [&](const Packet& pk) {
    auto n = skf_numbers(pk);
    if (!dropped && n && n->first == 2 && pk.from == "res" && is_response(pk)) return dropped = true;
    return false;
  };
  p.initiate();
  ASSERT_TRUE(p.net.run_until([&] { return p.both_established(); }));
  EXPECT_TRUE(dropped);
  EXPECT_EQ(p.ini_stats().retransmits_sent, 1u);
  // Fragment 1 of the retransmitted request is answered with every fragment of the
  // cached response; the request's other fragments are not (RFC 7383 §2.6.1).
  EXPECT_EQ(p.res_stats().retransmits_answered, 1u);
  EXPECT_GE(p.res_stats().dropped_fragment, 3u);
  EXPECT_EQ(p.res_stats().reassembled, 1u);
  EXPECT_EQ(p.ini_stats().reassembled, 1u);
  // Fragment 1, held already, is a duplicate; 2 completes the message; those after it
  // answer a request no longer outstanding.
  EXPECT_EQ(p.ini_stats().dropped_fragment, 1u);
  EXPECT_GE(p.ini_stats().dropped_bad_message_id, 1u);
}

TEST(FragmentationSim, ReorderedAndDuplicatedFragmentsEstablish) {
  FragPair p;
  std::uint64_t n = 0;
  p.net.jitter = [&](const Packet& pk) { return skf_numbers(pk) ? Duration((n++ * 7) % 13) : Duration(0); };
  p.net.duplicates = [&](const Packet& pk) { return skf_numbers(pk) ? 1 : 0; };
  p.initiate();
  ASSERT_TRUE(p.net.run_until([&] { return p.both_established(); }));
  EXPECT_GT(p.res_stats().dropped_fragment, 0u);
  EXPECT_EQ(p.res_stats().reassembled, 1u);
  EXPECT_EQ(p.ini_stats().reassembled, 1u);
}

TEST(FragmentationSim, PeersWithoutFragmentationGetWholeMessages) {
  for (auto [ini_on, res_on] : {std::pair{true, false}, {false, true}}) {
    SCOPED_TRACE(ini_on ? "responder without" : "initiator without");
    FragPair p(ini_on, res_on);
    std::size_t largest = 0;
    p.net.drop = [&](const Packet& pk) {
      largest = std::max(largest, pk.data.size());
      return false;
    };
    p.initiate();
    ASSERT_TRUE(p.net.run_until([&] { return p.both_established(); }));
    EXPECT_FALSE(only_sa(*p.ini)->fragmentation);
    EXPECT_FALSE(only_sa(*p.res)->fragmentation);
    EXPECT_EQ(only_sa(*p.ini)->peer_fragmentation, res_on);
    EXPECT_EQ(only_sa(*p.res)->peer_fragmentation, ini_on);
    EXPECT_EQ(p.ini_stats().fragments_sent + p.res_stats().fragments_sent, 0u);
    // Those whole messages are beyond what fragmentation would have sent.
    EXPECT_GT(largest, 1500u);
  }
}

}  // namespace
}  // namespace mobike::sim
