// The per-SA state a cluster stores: the snapshot codec (every field survives, every
// truncation and unknown version is refused) and the sealed blob (altered octets,
// another key, another name and unknown formats are refused, never crash).
#include <gtest/gtest.h>

#include <algorithm>

#include "cluster/sa_blob.h"
#include "cluster/sa_codec.h"
#include "crypto/aead.h"
#include "crypto/random.h"

namespace mobike::cluster {
namespace {

using ike::Duration;

Bytes filled(std::size_t n, std::uint8_t seed) {
  Bytes b(n);
  for (std::size_t i = 0; i < n; ++i) b[i] = static_cast<std::uint8_t>(seed + i * 13);
  return b;
}

wire::TrafficSelector selector(const char* from, const char* to, std::uint8_t proto = 0) {
  wire::TrafficSelector t;
  auto a = *IpAddress::parse(from);
  t.ts_type = a.is_v4() ? wire::TsType::kIpv4AddrRange : wire::TsType::kIpv6AddrRange;
  t.ip_protocol = proto;
  t.start_port = proto ? 500 : 0;
  t.end_port = proto ? 4500 : 65535;
  t.start_address = a;
  t.end_address = *IpAddress::parse(to);
  return t;
}

// Every field set to something other than its default.
ike::IkeSaSnapshot sample() {
  ike::IkeSaSnapshot s;
  s.connection = "gw";
  s.initiator = false;
  s.original_initiator = false;
  s.spi_i = 0x0123456789abcdefull;
  s.spi_r = 0xfedcba9876543210ull;
  s.local = {*IpAddress::parse("198.51.100.10"), 4500};
  s.remote = {*IpAddress::parse("2001:db8::2"), 61234};
  s.nat_local = false;
  s.nat_remote = true;
  s.peer_mobike = true;
  s.peer_nat_d = true;
  s.peer_mid_sync = true;
  s.peer_replay_sync = false;
  s.mid_sync = true;
  s.replay_sync = false;
  s.peer_fragmentation = s.fragmentation = true;
  s.nat_d_dest_seen = filled(20, 1);
  s.remote_id = ike::Identity{wire::IdType::kRfc822Addr, filled(12, 2)};
  s.remote_eap_id = "CORP\\carol";
  s.remote_vips = {*IpAddress::parse("10.3.0.7"), *IpAddress::parse("2001:db8:3::7")};
  s.ike_proposal.number = 2;
  s.ike_proposal.protocol = wire::ProtocolId::kIke;
  s.ike_proposal.transforms = {{wire::TransformType::kEncr, 20, 256, {}},
                               {wire::TransformType::kPrf, 5, std::nullopt, {}},
                               {wire::TransformType::kDh, 31, std::nullopt, {}}};
  s.sk_d = filled(32, 3);
  s.sk_ai = {};
  s.sk_ar = {};
  s.sk_ei = filled(36, 4);
  s.sk_er = filled(36, 5);
  s.next_request_mid = 7;
  s.expected_peer_mid = 0x10001;
  s.last_response = {filled(300, 6), filled(120, 7)};
  s.last_response_to = {*IpAddress::parse("198.51.100.2"), 4501};
  s.last_response_redirected = true;
  s.last_request_hash = 0xdeadbeefcafef00dull;
  s.age = Duration(123456);
  s.since_inbound = Duration(789);
  s.rekey_in = Duration(3600000);
  s.expire_in = std::nullopt;
  s.mobility = filled(40, 7);
  for (int i = 0; i < 2; ++i) {
    ike::ChildSaSnapshot c;
    c.config_name = i ? "net6" : "net";
    c.spi_in = 0xc0000001u + static_cast<std::uint32_t>(i);
    c.spi_out = 0xd0000001u + static_cast<std::uint32_t>(i);
    c.proposal.protocol = wire::ProtocolId::kEsp;
    c.proposal.spi = {0xc0, 0, 0, 1};
    c.proposal.transforms = {{wire::TransformType::kEncr, 12, 128, {}},
                             {wire::TransformType::kInteg, 12, std::nullopt, {}},
                             {wire::TransformType::kEsn, 1, std::nullopt, {}}};
    c.local_ts = {selector("10.1.0.0", "10.1.0.255"), selector("2001:db8:1::", "2001:db8:1::ffff", 17)};
    c.remote_ts = {selector("10.2.0.0", "10.2.255.255")};
    c.keys = {12, 128, 12, true, filled(16, 8), filled(32, 9), filled(16, 10), filled(32, 11)};
    c.age = Duration(5000 + i);
    c.rekey_in = Duration(100);
    c.expire_in = Duration(200);
    ike::EspState e;
    e.out_seq = 0x100000005ull;
    e.out_iv_mask = 0x1122334455667788ull;
    e.in_top = 99;
    e.in_received = {0xffff0000ffff0000ull, 1, 2, 3};
    e.bytes_in = 10, e.bytes_out = 20, e.packets_in = 30, e.packets_out = 40;
    if (i == 0) c.esp = e;  // the second without: optional on the wire too
    s.children.push_back(std::move(c));
  }
  return s;
}

ClusterKey key(std::uint8_t seed) {
  ClusterKey k{};
  for (std::size_t i = 0; i < k.size(); ++i) k[i] = static_cast<std::uint8_t>(seed + i);
  return k;
}

TEST(SaCodec, EveryFieldSurvives) {
  const auto s = sample();
  auto back = decode_snapshot(encode_snapshot(s));
  ASSERT_TRUE(back) << back.error();
  EXPECT_EQ(*back, s);
  EXPECT_EQ(encode_snapshot(*back), encode_snapshot(s));
}

TEST(SaCodec, EveryTruncationIsRefused) {
  const Bytes full = encode_snapshot(sample());
  for (std::size_t n = 0; n < full.size(); ++n) {
    auto r = decode_snapshot(ByteView(full.data(), n));
    ASSERT_FALSE(r) << "a snapshot cut to " << n << " of " << full.size() << " octets decoded";
  }
}

TEST(SaCodec, UnknownVersionAndTrailingOctetsAreRefused) {
  Bytes b = encode_snapshot(sample());
  Bytes longer = b;
  longer.push_back(0);
  auto r = decode_snapshot(longer);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().find("trailing"), std::string::npos) << r.error();
  b[0] = kSnapshotVersion + 1;
  r = decode_snapshot(b);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().find("versions 1 to 5"), std::string::npos) << r.error();
}

// The offset of the RFC 6311 flags: version 1, connection 4 + 2, two flags, two SPIs
// 16, an IPv4 and an IPv6 endpoint 7 + 19, four flags.
constexpr std::size_t kHaFlagsAt = 1 + 6 + 2 + 16 + 7 + 19 + 4;

// What a node of version 3 sealed: no RFC 7383 flags after the RFC 6311 ones, and the
// cached response as one datagram (no count before its length).
ike::IkeSaSnapshot sample_v3() {
  auto s = sample();
  s.peer_fragmentation = s.fragmentation = false;
  s.last_response = {filled(300, 6)};
  s.remote_eap_id.clear();
  s.remote_vips.clear();
  return s;
}
// Version 5 added the EAP identity and the virtual IPs at the end: 6 octets when empty.
Bytes without_v5_tail(Bytes b) {
  const Bytes empty_tail{0, 0, 0, 0, 0, 0};
  EXPECT_TRUE(b.size() > 6 && Bytes(b.end() - 6, b.end()) == empty_tail) << "the version 5 tail is not empty";
  b.resize(b.size() - 6);
  return b;
}
Bytes as_v3(Bytes b) {
  b = without_v5_tail(std::move(b));
  b[0] = 3;
  EXPECT_EQ(b[kHaFlagsAt + 4], 0) << "peer_fragmentation is not where expected";
  b.erase(b.begin() + kHaFlagsAt + 4, b.begin() + kHaFlagsAt + 6);
  const Bytes count_and_length{0, 1, 0, 0, 0x01, 0x2c};  // one datagram of 300 octets
  auto at = std::search(b.begin(), b.end(), count_and_length.begin(), count_and_length.end());
  EXPECT_NE(at, b.end());
  if (at != b.end()) b.erase(at, at + 2);
  return b;
}

TEST(SaCodec, Version4IsReadWithoutEapIdentityOrVirtualIps) {
  Bytes b = without_v5_tail(encode_snapshot(sample_v3()));
  b[0] = 4;
  auto r = decode_snapshot(b);
  ASSERT_TRUE(r) << r.error();
  EXPECT_EQ(*r, sample_v3());
  // And the tail of a version 5 snapshot is read back as written.
  auto full = decode_snapshot(encode_snapshot(sample()));
  ASSERT_TRUE(full) << full.error();
  EXPECT_EQ(full->remote_eap_id, "CORP\\carol");
  EXPECT_EQ(full->remote_vips, sample().remote_vips);
}

TEST(SaCodec, Version3IsReadAsNoFragmentation) {
  auto r = decode_snapshot(as_v3(encode_snapshot(sample_v3())));
  ASSERT_TRUE(r) << r.error();
  EXPECT_EQ(*r, sample_v3());
}

TEST(SaCodec, Version1IsReadAsNoHaClaims) {
  // What a node of version 1 sealed: no RFC 6311 flags after peer_nat_d.
  Bytes b = as_v3(encode_snapshot(sample_v3()));
  ASSERT_EQ(b[kHaFlagsAt], 1) << "peer_mid_sync is not where expected";
  b.erase(b.begin() + kHaFlagsAt, b.begin() + kHaFlagsAt + 4);
  b[0] = 1;
  auto r = decode_snapshot(b);
  ASSERT_TRUE(r) << r.error();
  auto expected = sample_v3();
  expected.peer_mid_sync = expected.peer_replay_sync = expected.mid_sync = expected.replay_sync = false;
  EXPECT_EQ(*r, expected);
}

TEST(SaCodec, Version2IsReadAsClaimsNoneUsable) {
  // Version 2 kept the peer's claims only: whether we claimed too is unknown, so
  // nothing is usable (a failover cannot synchronise such an SA).
  Bytes b = as_v3(encode_snapshot(sample_v3()));
  ASSERT_EQ(b[kHaFlagsAt + 2], 1) << "mid_sync is not where expected";
  b.erase(b.begin() + kHaFlagsAt + 2, b.begin() + kHaFlagsAt + 4);
  b[0] = 2;
  auto r = decode_snapshot(b);
  ASSERT_TRUE(r) << r.error();
  auto expected = sample_v3();
  expected.mid_sync = expected.replay_sync = false;
  EXPECT_EQ(*r, expected);
}

TEST(SaCodec, CorruptLengthsNeitherCrashNorAllocateMuch) {
  // Flip every octet in turn: each result either decodes or is refused; the sanitizers
  // and the bounds in the reader do the rest.
  const Bytes full = encode_snapshot(sample());
  std::size_t refused = 0;
  for (std::size_t i = 0; i < full.size(); ++i) {
    Bytes b = full;
    b[i] ^= 0xff;
    refused += !decode_snapshot(b);
  }
  EXPECT_GT(refused, full.size() / 10);
}

TEST(SaBlob, SealsAndOpens) {
  crypto::SeededRandom random(1);
  const auto s = sample();
  Bytes blob = seal_snapshot(s, key(1), "sas/a-b", random);
  // No key octet appears in clear.
  const Bytes& secret = s.sk_ei;
  EXPECT_EQ(std::search(blob.begin(), blob.end(), secret.begin(), secret.end()), blob.end());
  auto back = open_snapshot(blob, key(1), "sas/a-b");
  ASSERT_TRUE(back) << back.error().detail;
  EXPECT_EQ(*back, s);
  // Two seals of one snapshot differ (fresh nonce).
  EXPECT_NE(seal_snapshot(s, key(1), "sas/a-b", random), blob);
}

TEST(SaBlob, AlteredBlobsAnotherKeyOrNameAreRefused) {
  crypto::SeededRandom random(2);
  const Bytes blob = seal_snapshot(sample(), key(1), "sas/a-b", random);
  auto wrong_key = open_snapshot(blob, key(2), "sas/a-b");
  ASSERT_FALSE(wrong_key);
  EXPECT_EQ(wrong_key.error().error, BlobError::kAuthentication);
  auto wrong_name = open_snapshot(blob, key(1), "sas/c-d");
  ASSERT_FALSE(wrong_name);
  EXPECT_EQ(wrong_name.error().error, BlobError::kAuthentication);
  for (std::size_t i = 0; i < blob.size(); ++i) {
    Bytes b = blob;
    b[i] ^= 0x01;
    auto r = open_snapshot(b, key(1), "sas/a-b");
    ASSERT_FALSE(r) << "octet " << i << " altered and accepted";
    const BlobError expected = i < 4 ? BlobError::kMalformed : i == 4 ? BlobError::kUnknownFormat
                                                                      : BlobError::kAuthentication;
    EXPECT_EQ(r.error().error, expected) << "octet " << i << ": " << r.error().detail;
  }
  for (std::size_t n = 0; n < 40; ++n) {
    auto r = open_snapshot(ByteView(blob.data(), n), key(1), "sas/a-b");
    ASSERT_FALSE(r);
  }
}

TEST(SaBlob, ASnapshotOfAnotherVersionInsideIsAnUnknownFormat) {
  // An authentic blob whose snapshot is of a version this node does not read (a newer
  // node sealed it): refused as unknown, not as corrupt.
  crypto::SeededRandom random(3);
  Bytes plain = encode_snapshot(sample());
  plain[0] = 9;
  Bytes header = {'M', 'K', 'S', 'B', 1};
  Bytes nonce = random.bytes(12);
  header.insert(header.end(), nonce.begin(), nonce.end());
  auto aead = crypto::Aead::create(crypto::AeadAlg::kAes256Gcm, key(1));
  Bytes aad = header;
  const std::string name = "sas/x";
  aad.insert(aad.end(), name.begin(), name.end());
  Bytes sealed = aead->seal(nonce, aad, plain);
  header.insert(header.end(), sealed.begin(), sealed.end());
  auto r = open_snapshot(header, key(1), name);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().error, BlobError::kUnknownFormat) << r.error().detail;
}

}  // namespace
}  // namespace mobike::cluster
