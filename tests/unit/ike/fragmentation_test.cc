// RFC 7383 in the ike module: splitting a protected message into SKF fragments sealed
// one by one, and putting them together again out of order, with duplicates, forged
// fragments and re-fragmented retransmissions.
#include "ike/fragmentation.h"

#include <gtest/gtest.h>

#include <algorithm>

#include "crypto/random.h"
#include "ike/ike_sa.h"
#include "ike/proposal_string.h"
#include "wire/codec.h"

namespace mobike::ike {
namespace {

using wire::PayloadType;

// Both ends of one IKE SA with fixed keys: `ini` seals what `res` opens.
struct KeyedPair {
  IkeSa ini, res;
  explicit KeyedPair(const char* proposal = "aes128gcm16-prfsha256-x25519") {
    auto p = (*parse_ike_proposals(proposal))[0];
    const bool aead = std::string(proposal).find("gcm") != std::string::npos;
    Bytes ei(aead ? 20 : 32, 0x11), er(aead ? 20 : 32, 0x22), ai(aead ? 0 : 32, 0x33), ar(aead ? 0 : 32, 0x44);
    for (IkeSa* sa : {&ini, &res}) {
      sa->initiator = sa == &ini;
      sa->spi_i = 0x0102030405060708ull;
      sa->spi_r = 0x1112131415161718ull;
      EXPECT_TRUE(set_ike_keys(sa->crypto, p, sa->initiator, Bytes(32, 1), ai, ar, ei, er));
    }
  }
};

std::vector<wire::Payload> large_payloads() {
  Bytes cert(3000);
  for (std::size_t i = 0; i < cert.size(); ++i) cert[i] = static_cast<std::uint8_t>(i * 7);
  return {wire::Payload{PayloadType::kIdi, wire::IdPayload{wire::IdType::kFqdn, to_bytes("client.example.test")}},
          wire::Payload{PayloadType::kCert, wire::CertPayload{4, cert}},
          wire::Payload{PayloadType::kAuth, wire::AuthPayload{wire::AuthMethod::kDigitalSignature, Bytes(400, 0x5a)}},
          wire::make_notify(wire::NotifyType::kMobikeSupported)};
}

struct Received {
  wire::Message m;
  Bytes data;
};

Received receive(const Bytes& datagram) {
  auto m = wire::decode_message(datagram);
  EXPECT_TRUE(m) << (m ? "" : m.error().detail);
  return {m ? *m : wire::Message{}, datagram};
}

FragmentVerdict add(std::unique_ptr<Reassembly>& r, const IkeSa& sa, const Bytes& datagram) {
  auto rx = receive(datagram);
  return add_fragment(r, sa, rx.m, rx.data);
}

TEST(FragmentLimit, SubtractsIpUdpAndTheNonEspMarker) {
  EXPECT_EQ(ike_message_limit(1280, false, false), 1252u);
  EXPECT_EQ(ike_message_limit(1280, false, true), 1248u);
  EXPECT_EQ(ike_message_limit(1280, true, false), 1232u);
  EXPECT_EQ(ike_message_limit(1280, true, true), 1228u);
  EXPECT_EQ(ike_message_limit(576, false, true), 544u);
  EXPECT_EQ(ike_message_limit(40, true, false), 0u);
}

TEST(Fragmentation, SmallMessagesAndNoLimitStayWhole) {
  KeyedPair k;
  crypto::SeededRandom random(1);
  auto small = std::vector<wire::Payload>{wire::make_notify(wire::NotifyType::kMobikeSupported)};
  auto one = build_datagrams(k.ini, wire::ExchangeType::kIkeAuth, false, 1, small, random, 500);
  ASSERT_EQ(one.size(), 1u);
  EXPECT_EQ(one[0][16], static_cast<std::uint8_t>(PayloadType::kSk));
  EXPECT_EQ(build_datagrams(k.ini, wire::ExchangeType::kIkeAuth, false, 1, large_payloads(), random, 0).size(), 1u);
  // A limit that leaves no room for content: the whole message rather than nothing.
  EXPECT_EQ(build_datagrams(k.ini, wire::ExchangeType::kIkeAuth, false, 1, large_payloads(), random, 60).size(), 1u);
}

class FragmentationBySuite : public ::testing::TestWithParam<const char*> {};

TEST_P(FragmentationBySuite, SplitsWithinTheLimitAndReassemblesOutOfOrderWithDuplicates) {
  KeyedPair k(GetParam());
  crypto::SeededRandom random(2);
  const auto payloads = large_payloads();
  auto frags = build_datagrams(k.ini, wire::ExchangeType::kIkeAuth, false, 1, payloads, random, 548);
  ASSERT_GE(frags.size(), 7u);
  for (std::size_t i = 0; i < frags.size(); ++i) {
    SCOPED_TRACE(i);
    EXPECT_LE(frags[i].size(), 548u);
    auto rx = receive(frags[i]);
    EXPECT_EQ(rx.m.header.message_id, 1u);
    EXPECT_EQ(rx.m.header.next_payload, static_cast<std::uint8_t>(PayloadType::kSkf));
    ASSERT_EQ(rx.m.payloads.size(), 1u);
    const auto& f = std::get<wire::SkfPayload>(rx.m.payloads[0].body);
    EXPECT_EQ(f.fragment_number, i + 1);
    EXPECT_EQ(f.total_fragments, frags.size());
    EXPECT_EQ(f.first_inner, i == 0 ? static_cast<std::uint8_t>(PayloadType::kIdi) : 0);
  }
  // All but the last are filled up to the limit (no fragment wasted).
  EXPECT_GT(frags[0].size(), 548u - 32);

  std::unique_ptr<Reassembly> r;
  std::vector<std::size_t> order(frags.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = order.size() - 1 - i;  // last first
  for (std::size_t n = 0; n < order.size(); ++n) {
    auto v = add(r, k.res, frags[order[n]]);
    if (n + 1 < order.size()) {
      EXPECT_EQ(v, FragmentVerdict::kStored) << n;
      EXPECT_EQ(add(r, k.res, frags[order[n]]), FragmentVerdict::kDuplicate) << n;
    } else {
      EXPECT_EQ(v, FragmentVerdict::kComplete);
    }
  }
  ASSERT_TRUE(r);
  EXPECT_EQ(r->first_hash, request_hash(frags[0]));
  auto back = reassemble(*r);
  ASSERT_TRUE(back);
  EXPECT_EQ(*back, payloads);
}

INSTANTIATE_TEST_SUITE_P(Suites, FragmentationBySuite,
                         ::testing::Values("aes128gcm16-prfsha256-x25519", "aes256-sha256-prfsha256-x25519"));

TEST(Fragmentation, AForgedFragmentIsNeverStored) {
  KeyedPair k;
  crypto::SeededRandom random(3);
  const auto payloads = large_payloads();
  auto frags = build_datagrams(k.ini, wire::ExchangeType::kIkeAuth, false, 1, payloads, random, 1000);
  ASSERT_EQ(frags.size(), 4u);
  std::unique_ptr<Reassembly> r;
  EXPECT_EQ(add(r, k.res, frags[0]), FragmentVerdict::kStored);
  // A bad ICV, and a fragment renumbered (the numbering is authenticated too).
  Bytes bad = frags[1];
  bad.back() ^= 1;
  EXPECT_EQ(add(r, k.res, bad), FragmentVerdict::kIntegrity);
  Bytes renumbered = frags[1];
  renumbered[wire::kHeaderSize + 5] = 3;
  EXPECT_EQ(add(r, k.res, renumbered), FragmentVerdict::kIntegrity);
  // A forged larger Total Fragments does not discard what was collected.
  Bytes retotalled = frags[1];
  retotalled[wire::kHeaderSize + 7] = 9;
  EXPECT_EQ(add(r, k.res, retotalled), FragmentVerdict::kIntegrity);
  EXPECT_EQ(r->received, 1u);
  // Our own fragments do not open with our own inbound key.
  std::unique_ptr<Reassembly> mine;
  EXPECT_EQ(add(mine, k.ini, frags[2]), FragmentVerdict::kIntegrity);
  EXPECT_FALSE(mine);
  for (std::size_t i = 1; i < frags.size(); ++i)
    EXPECT_EQ(add(r, k.res, frags[i]), i + 1 < frags.size() ? FragmentVerdict::kStored : FragmentVerdict::kComplete);
  auto back = reassemble(*r);
  ASSERT_TRUE(back);
  EXPECT_EQ(*back, payloads);
}

TEST(Fragmentation, TotalFragmentsDecidesBetweenRestartAndStale) {
  KeyedPair k;
  crypto::SeededRandom random(4);
  const auto payloads = large_payloads();
  auto coarse = build_datagrams(k.ini, wire::ExchangeType::kIkeAuth, false, 1, payloads, random, 1200);
  auto fine = build_datagrams(k.ini, wire::ExchangeType::kIkeAuth, false, 1, payloads, random, 600);
  ASSERT_LT(coarse.size(), fine.size());
  std::unique_ptr<Reassembly> r;
  EXPECT_EQ(add(r, k.res, coarse[0]), FragmentVerdict::kStored);
  // The retransmission came in more pieces (§2.6): start again with those.
  EXPECT_EQ(add(r, k.res, fine[1]), FragmentVerdict::kStored);
  EXPECT_EQ(r->total, fine.size());
  EXPECT_EQ(r->received, 1u);
  // A piece of the earlier, coarser try is stale now.
  EXPECT_EQ(add(r, k.res, coarse[1]), FragmentVerdict::kStale);
  for (std::size_t i = 0; i < fine.size(); ++i) {
    if (i == 1) continue;
    add(r, k.res, fine[i]);
  }
  ASSERT_EQ(r->received, r->total);
  auto back = reassemble(*r);
  ASSERT_TRUE(back);
  EXPECT_EQ(*back, payloads);
}

TEST(Fragmentation, AnotherMessageIdRestarts) {
  KeyedPair k;
  crypto::SeededRandom random(5);
  auto first = build_datagrams(k.ini, wire::ExchangeType::kIkeAuth, false, 1, large_payloads(), random, 1000);
  auto second = build_datagrams(k.ini, wire::ExchangeType::kInformational, false, 2, large_payloads(), random, 1000);
  std::unique_ptr<Reassembly> r;
  EXPECT_EQ(add(r, k.res, first[0]), FragmentVerdict::kStored);
  EXPECT_EQ(add(r, k.res, second[0]), FragmentVerdict::kStored);
  EXPECT_EQ(r->message_id, 2u);
  EXPECT_EQ(r->received, 1u);
}

TEST(Fragmentation, MoreThanTheBoundIsRefused) {
  KeyedPair k;
  crypto::SeededRandom random(6);
  std::vector<wire::Payload> huge{wire::Payload{PayloadType::kCert, wire::CertPayload{4, Bytes(20000, 1)}}};
  auto frags = build_datagrams(k.ini, wire::ExchangeType::kIkeAuth, false, 1, huge, random, 548);
  ASSERT_GT(frags.size(), kMaxFragments);
  std::unique_ptr<Reassembly> r;
  EXPECT_EQ(add(r, k.res, frags[0]), FragmentVerdict::kTooLarge);
  EXPECT_FALSE(r);
}

TEST(Fragmentation, AGarbledInnerChainIsMalformedOnceWhole) {
  KeyedPair k;
  crypto::SeededRandom random(7);
  wire::Header h;
  h.spi_i = k.ini.spi_i;
  h.spi_r = k.ini.spi_r;
  h.exchange = wire::ExchangeType::kIkeAuth;
  h.flags = wire::kFlagInitiator;
  h.message_id = 1;
  // Inner octets that are no payload chain: a Notify whose length runs past the end.
  Bytes inner(900, 0);
  inner[2] = 0xff;
  auto frags = seal_fragments(*k.ini.crypto.out, h, static_cast<std::uint8_t>(PayloadType::kNotify), inner, 548,
                              random);
  ASSERT_GE(frags.size(), 2u);
  std::unique_ptr<Reassembly> r;
  for (const auto& f : frags) add(r, k.res, f);
  ASSERT_EQ(r->received, r->total);
  auto back = reassemble(*r);
  ASSERT_FALSE(back);
  EXPECT_EQ(back.error().error, OpenError::kMalformed);
}

}  // namespace
}  // namespace mobike::ike
