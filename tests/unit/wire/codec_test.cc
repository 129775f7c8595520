#include "wire/codec.h"

#include <gtest/gtest.h>

#include <string>

#include "common/bytes.h"
#include "common/ip_address.h"

namespace mobike::wire {
namespace {

Bytes hex(std::string_view h) {
  Bytes b = from_hex(h);
  EXPECT_TRUE(!b.empty() || h.find_first_not_of(" ") == std::string_view::npos)
      << "bad hex in test: " << h;
  return b;
}

IpAddress ip(std::string_view text) { return *IpAddress::parse(text); }

std::uint8_t u8(PayloadType t) { return static_cast<std::uint8_t>(t); }

// One payload of `type`, last in its chain, with the given body.
Bytes raw_payload(std::uint8_t flags, const Bytes& body, std::uint8_t next = 0) {
  std::size_t len = body.size() + 4;
  Bytes out = {next, flags, static_cast<std::uint8_t>(len >> 8), static_cast<std::uint8_t>(len)};
  append(out, body);
  return out;
}

DecodeResult<std::vector<Payload>> decode_one(PayloadType type, std::string_view body_hex) {
  return decode_payloads(u8(type), raw_payload(0, hex(body_hex)));
}

void expect_syntax_error(const DecodeResult<std::vector<Payload>>& r, std::string_view why) {
  ASSERT_FALSE(r.has_value()) << why;
  EXPECT_EQ(r.error().kind, DecodeErrorKind::kInvalidSyntax) << why << ": " << r.error().detail;
}

Bytes encode_one(const Payload& p) {
  std::uint8_t first = 0xff;
  Bytes b = encode_payloads({p}, &first);
  EXPECT_EQ(first, u8(p.type));
  return b;
}

// ----------------------------------------------------------------- samples

Payload sample_sa() {
  SaPayload sa;
  Proposal p1;
  p1.number = 1;
  p1.protocol = ProtocolId::kIke;
  p1.transforms = {
      {TransformType::kEncr, static_cast<std::uint16_t>(EncrId::kAesCbc), 256},
      {TransformType::kPrf, static_cast<std::uint16_t>(PrfId::kHmacSha256), std::nullopt},
      {TransformType::kInteg, static_cast<std::uint16_t>(IntegId::kHmacSha256_128), std::nullopt},
      {TransformType::kDh, static_cast<std::uint16_t>(DhGroup::kCurve25519), std::nullopt},
  };
  Proposal p2;
  p2.number = 2;
  p2.protocol = ProtocolId::kIke;
  p2.spi = hex("0102030405060708");
  Transform odd{TransformType::kEncr, 999, std::nullopt};
  odd.other_attributes = {{0x1234, true, hex("abcd")}, {0x0042, false, hex("010203")}};
  p2.transforms = {odd, {TransformType::kDh, 14, std::nullopt}};
  sa.proposals = {p1, p2};
  return Payload{PayloadType::kSa, sa};
}

Payload sample_esp_sa() {
  Proposal p;
  p.number = 3;  // a response echoes the accepted proposal's number
  p.protocol = ProtocolId::kEsp;
  p.spi = hex("c0ffee01");
  p.transforms = {{TransformType::kEncr, 20, 128}, {TransformType::kEsn, 0, std::nullopt}};
  return Payload{PayloadType::kSa, SaPayload{{p}}};
}

TrafficSelector v4_selector() {
  return TrafficSelector{TsType::kIpv4AddrRange, 17, 500, 4500, ip("10.1.0.0"), ip("10.1.255.255")};
}

TrafficSelector v6_selector() {
  return TrafficSelector{TsType::kIpv6AddrRange, 0, 0, 65535, ip("2001:db8::"),
                         ip("2001:db8::ffff")};
}

// Every payload kind of RFC 7296 §3 (and an unknown one), in an order a real message
// would not use but the codec must not care about.
std::vector<Payload> every_payload_kind() {
  std::vector<Payload> v;
  v.push_back(sample_sa());
  v.push_back(sample_esp_sa());
  v.push_back(Payload{PayloadType::kKe, KePayload{31, Bytes(32, 0x5a)}});
  v.push_back(Payload{PayloadType::kIdi, IdPayload{IdType::kRfc822Addr, to_bytes("ini@example.test")}});
  v.push_back(Payload{PayloadType::kIdr, IdPayload{IdType::kIpv4Addr, hex("c0000201")}});
  v.push_back(Payload{PayloadType::kIdr, IdPayload{IdType::kIpv6Addr, ip("2001:db8::1").to_bytes()}});
  v.push_back(Payload{PayloadType::kCert, CertPayload{4, hex("3082010a")}});
  v.push_back(Payload{PayloadType::kCertReq, CertPayload{4, Bytes(20, 0x11)}});
  v.push_back(Payload{PayloadType::kAuth, AuthPayload{AuthMethod::kSharedKeyMic, Bytes(32, 0xa5)}});
  v.push_back(Payload{PayloadType::kNonce, NoncePayload{Bytes(32, 0x77)}});
  v.push_back(make_notify(NotifyType::kMobikeSupported));
  v.push_back(make_notify(NotifyType::kRekeySa, {}, ProtocolId::kEsp, hex("11223344")));
  v.push_back(make_notify(61440, hex("c0000214")));
  v.push_back(Payload{PayloadType::kDelete, DeletePayload{ProtocolId::kEsp, 4, {hex("aaaaaaaa"), hex("bbbbbbbb")}}});
  v.push_back(Payload{PayloadType::kDelete, DeletePayload{ProtocolId::kIke, 0, {}}});
  v.push_back(Payload{PayloadType::kVendorId, VendorIdPayload{to_bytes("mobiked")}});
  v.push_back(Payload{PayloadType::kTsi, TsPayload{{v4_selector(), v6_selector()}}});
  v.push_back(Payload{PayloadType::kTsr, TsPayload{{v4_selector()}}});
  v.push_back(Payload{PayloadType::kCp, CpPayload{CfgType::kReply, {{1, hex("0a000002")}, {0x7fff, {}}}}});
  v.push_back(Payload{PayloadType::kEap, EapPayload{hex("0201000501")}});
  v.push_back(Payload{static_cast<PayloadType>(200), UnknownPayload{200, false, hex("0102")}});
  v.push_back(Payload{PayloadType::kSk, SkPayload{u8(PayloadType::kIdi), Bytes(48, 0xee)}});
  return v;
}

Message sample_message() {
  Message m;
  m.header.spi_i = 0x0123456789abcdefull;
  m.header.spi_r = 0xfedcba9876543210ull;
  m.header.exchange = ExchangeType::kIkeAuth;
  m.header.flags = kFlagInitiator;
  m.header.message_id = 1;
  m.payloads = every_payload_kind();
  return m;
}

// ----------------------------------------------------------------- round trips

class RoundTrip : public ::testing::TestWithParam<std::size_t> {};

TEST_P(RoundTrip, EachPayloadKindAlone) {
  Payload p = every_payload_kind()[GetParam()];
  Bytes b = encode_one(p);
  auto back = decode_payloads(u8(p.type), b);
  ASSERT_TRUE(back.has_value()) << back.error().detail;
  ASSERT_EQ(back->size(), 1u);
  EXPECT_EQ(back->front(), p) << "payload " << payload_name(u8(p.type));
  // And it re-encodes to the same octets.
  EXPECT_EQ(encode_one(back->front()), b);
}

INSTANTIATE_TEST_SUITE_P(Wire, RoundTrip,
                         ::testing::Range<std::size_t>(0, every_payload_kind().size()));

TEST(Codec, WholeMessageRoundTrips) {
  Message m = sample_message();
  Bytes b = encode_message(m);
  auto back = decode_message(b);
  ASSERT_TRUE(back.has_value()) << back.error().detail;
  m.header.next_payload = u8(PayloadType::kSa);
  m.header.length = static_cast<std::uint32_t>(b.size());
  EXPECT_EQ(back->header, m.header);
  EXPECT_EQ(back->payloads, m.payloads);
  EXPECT_EQ(encode_message(*back), b);
}

TEST(Codec, EmptyChain) {
  std::uint8_t first = 0xff;
  EXPECT_TRUE(encode_payloads({}, &first).empty());
  EXPECT_EQ(first, 0);
  auto r = decode_payloads(0, {});
  ASSERT_TRUE(r.has_value());
  EXPECT_TRUE(r->empty());

  Message m;
  Bytes b = encode_message(m);
  EXPECT_EQ(b.size(), kHeaderSize);
  auto back = decode_message(b);
  ASSERT_TRUE(back.has_value());
  EXPECT_TRUE(back->payloads.empty());
  EXPECT_EQ(back->header.length, kHeaderSize);
}

TEST(Codec, EncodePayloadsToleratesNullFirstType) {
  Bytes b = encode_payloads({make_notify(NotifyType::kCookie2, Bytes(8, 1))}, nullptr);
  EXPECT_EQ(b.size(), 4u + 4 + 8);
}

TEST(Codec, ChainLinksEachNextPayloadToTheFollowingType) {
  std::vector<Payload> v = {Payload{PayloadType::kNonce, NoncePayload{Bytes(16, 1)}},
                            make_notify(NotifyType::kMobikeSupported)};
  Bytes b = encode_payloads(v, nullptr);
  EXPECT_EQ(b[0], u8(PayloadType::kNotify));
  EXPECT_EQ(b[20], 0);
}

// ----------------------------------------------------------------- golden encodings
// Written out by hand from the RFC 7296 §3 diagrams, not produced by this encoder.

TEST(Golden, MobikeSupportedNotify) {
  EXPECT_EQ(to_hex(encode_one(make_notify(NotifyType::kMobikeSupported, {0x52}))),
            "00000009000040" "0c52");
}

TEST(Golden, SwitchToIpAddressNotify) {
  // docs/switch.md §4.2 example: value 61440, IPv4 192.0.2.20.
  Payload p = make_notify(NotifyType::kSwitchToIpAddressDefault, ip("192.0.2.20").to_bytes());
  EXPECT_EQ(encode_one(p), hex("00 00 00 0C 00 00 F0 00 C0 00 02 14"));
}

TEST(Golden, NotifyWithEspSpi) {
  Payload p = make_notify(NotifyType::kRekeySa, {}, ProtocolId::kEsp, hex("01020304"));
  EXPECT_EQ(encode_one(p), hex("00 00 00 0c  03 04 40 09  01 02 03 04"));
}

TEST(Golden, KePayload) {
  Payload p{PayloadType::kKe, KePayload{31, hex("deadbeef")}};
  EXPECT_EQ(encode_one(p), hex("00 00 00 0c  00 1f 00 00  de ad be ef"));
}

TEST(Golden, EspSaProposal) {
  Proposal prop;
  prop.number = 1;
  prop.protocol = ProtocolId::kEsp;
  prop.spi = hex("11223344");
  prop.transforms = {{TransformType::kEncr, 20, 128}, {TransformType::kEsn, 0, std::nullopt}};
  Payload p{PayloadType::kSa, SaPayload{{prop}}};
  EXPECT_EQ(encode_one(p), hex("00 00 00 24"                  // generic header, 36
                               "00 00 00 20 01 03 04 02"      // last proposal, 32, #1, ESP, SPI 4, 2 transforms
                               "11 22 33 44"                  // SPI
                               "03 00 00 0c 01 00 00 14"      // more, ENCR AES-GCM-16
                               "80 0e 00 80"                  // TV Key Length 128
                               "00 00 00 08 05 00 00 00"));   // last, ESN none
}

TEST(Golden, Ipv4TrafficSelector) {
  TrafficSelector ts{TsType::kIpv4AddrRange, 0, 0, 65535, ip("10.0.0.0"), ip("10.255.255.255")};
  Payload p{PayloadType::kTsi, TsPayload{{ts}}};
  EXPECT_EQ(encode_one(p), hex("00 00 00 18  01 00 00 00"
                               "07 00 00 10  00 00 ff ff  0a 00 00 00  0a ff ff ff"));
}

TEST(Golden, Ipv6TrafficSelectorIs40Octets) {
  Payload p{PayloadType::kTsr, TsPayload{{v6_selector()}}};
  Bytes b = encode_one(p);
  ASSERT_EQ(b.size(), 4u + 4 + 40);
  EXPECT_EQ(to_hex(ByteView(b).subspan(8, 4)), "08000028");
}

TEST(Golden, DeleteEspSpis) {
  Payload p{PayloadType::kDelete, DeletePayload{ProtocolId::kEsp, 4, {hex("aaaaaaaa"), hex("bbbbbbbb")}}};
  EXPECT_EQ(encode_one(p), hex("00 00 00 10  03 04 00 02  aa aa aa aa  bb bb bb bb"));
}

TEST(Golden, CpRequest) {
  Payload p{PayloadType::kCp, CpPayload{CfgType::kRequest, {{1, {}}, {8, {}}}}};
  EXPECT_EQ(encode_one(p), hex("00 00 00 10  01 00 00 00  00 01 00 00  00 08 00 00"));
}

TEST(Golden, Header) {
  Header h;
  h.spi_i = 0x0102030405060708ull;
  h.exchange = ExchangeType::kInformational;
  h.flags = kFlagInitiator | kFlagResponse;
  h.message_id = 0x0a0b0c0d;
  EXPECT_EQ(encode_header(h, u8(PayloadType::kSk), 80),
            hex("0102030405060708 0000000000000000 2e 20 25 28 0a0b0c0d 00000050"));
}

TEST(Golden, SkPayloadCarriesFirstInnerTypeAsNextPayload) {
  Message m;
  m.header.exchange = ExchangeType::kInformational;
  m.payloads = {Payload{PayloadType::kSk, SkPayload{u8(PayloadType::kNotify), hex("0102030405")}}};
  Bytes b = encode_message(m);
  EXPECT_EQ(to_hex(ByteView(b).subspan(16)), "2e202500" "00000000" "00000025" "29000009" "0102030405");
}

// ----------------------------------------------------------------- header rules

Bytes valid_datagram() { return encode_message(sample_message()); }

void set_length(Bytes& b, std::uint32_t len) {
  b[24] = static_cast<std::uint8_t>(len >> 24);
  b[25] = static_cast<std::uint8_t>(len >> 16);
  b[26] = static_cast<std::uint8_t>(len >> 8);
  b[27] = static_cast<std::uint8_t>(len);
}

TEST(Header, DecodesFieldsWithoutThePayloads) {
  Bytes b = valid_datagram();
  auto h = decode_header(b);
  ASSERT_TRUE(h.has_value());
  EXPECT_EQ(h->spi_i, 0x0123456789abcdefull);
  EXPECT_EQ(h->spi_r, 0xfedcba9876543210ull);
  EXPECT_EQ(h->next_payload, u8(PayloadType::kSa));
  EXPECT_EQ(h->exchange, ExchangeType::kIkeAuth);
  EXPECT_TRUE(h->from_original_initiator());
  EXPECT_FALSE(h->is_response());
  EXPECT_EQ(h->message_id, 1u);
  EXPECT_EQ(h->length, b.size());
}

TEST(Header, ShorterThanHeaderIsTruncated) {
  Bytes b = valid_datagram();
  for (std::size_t n = 0; n < kHeaderSize; ++n) {
    auto h = decode_header(ByteView(b).first(n));
    ASSERT_FALSE(h.has_value()) << n;
    EXPECT_EQ(h.error().kind, DecodeErrorKind::kTruncated) << n;
  }
}

TEST(Header, DatagramShorterThanLengthFieldIsTruncated) {
  Bytes b = valid_datagram();
  b.pop_back();
  auto h = decode_header(b);
  ASSERT_FALSE(h.has_value());
  EXPECT_EQ(h.error().kind, DecodeErrorKind::kTruncated);
}

TEST(Header, DatagramLongerThanLengthFieldIsInvalidSyntax) {
  Bytes b = valid_datagram();
  b.push_back(0);
  auto h = decode_header(b);
  ASSERT_FALSE(h.has_value());
  EXPECT_EQ(h.error().kind, DecodeErrorKind::kInvalidSyntax);
  auto m = decode_message(b);
  ASSERT_FALSE(m.has_value());
  EXPECT_EQ(m.error().kind, DecodeErrorKind::kInvalidSyntax);
}

TEST(Header, LengthFieldBelowHeaderSizeIsInvalid) {
  Bytes b(kHeaderSize, 0);
  b[17] = kIkeV2Version;
  set_length(b, 20);
  auto h = decode_header(b);
  ASSERT_FALSE(h.has_value());
  EXPECT_EQ(h.error().kind, DecodeErrorKind::kInvalidSyntax);
}

TEST(Header, HigherMajorVersionIsReported) {
  Bytes b = valid_datagram();
  b[17] = 0x30;
  auto h = decode_header(b);
  ASSERT_FALSE(h.has_value());
  EXPECT_EQ(h.error().kind, DecodeErrorKind::kInvalidMajorVersion);
  // Even when the rest would not parse as IKEv2: the version decides first.
  b.resize(40);
  auto m = decode_message(b);
  ASSERT_FALSE(m.has_value());
  EXPECT_EQ(m.error().kind, DecodeErrorKind::kInvalidMajorVersion);
}

TEST(Header, OlderMajorVersionIsInvalidSyntax) {
  Bytes b = valid_datagram();
  b[17] = 0x10;
  auto h = decode_header(b);
  ASSERT_FALSE(h.has_value());
  EXPECT_EQ(h.error().kind, DecodeErrorKind::kInvalidSyntax);
}

TEST(Header, HigherMinorVersionIsAccepted) {
  Bytes b = valid_datagram();
  b[17] = 0x21;
  auto m = decode_message(b);
  ASSERT_TRUE(m.has_value()) << m.error().detail;
  EXPECT_EQ(m->header.version, 0x21);
}

// ----------------------------------------------------------------- chain rules

TEST(Chain, PayloadLengthBelowFourIsInvalid) {
  for (std::uint8_t len = 0; len < 4; ++len) {
    Bytes b = {0, 0, 0, len, 0, 0, 0, 0};
    expect_syntax_error(decode_payloads(u8(PayloadType::kVendorId), b), "length < 4");
  }
}

TEST(Chain, PayloadLengthBeyondTheEndIsInvalid) {
  Bytes b = raw_payload(0, hex("01020304"));
  b[3] += 1;
  expect_syntax_error(decode_payloads(u8(PayloadType::kVendorId), b), "beyond end");
}

TEST(Chain, PayloadLengthBeyondTheMessageInsideADatagram) {
  Message m;
  m.payloads = {Payload{PayloadType::kVendorId, VendorIdPayload{hex("0102")}}};
  Bytes b = encode_message(m);
  b[kHeaderSize + 3] = 0x40;
  auto r = decode_message(b);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().kind, DecodeErrorKind::kInvalidSyntax);
}

TEST(Chain, NextPayloadWithoutFollowingBytesIsInvalid) {
  Bytes b = raw_payload(0, hex("0102"), u8(PayloadType::kNotify));
  expect_syntax_error(decode_payloads(u8(PayloadType::kVendorId), b), "dangling next");
}

TEST(Chain, BytesAfterTheLastPayloadAreInvalid) {
  Bytes b = raw_payload(0, hex("0102"));
  b.push_back(0);
  expect_syntax_error(decode_payloads(u8(PayloadType::kVendorId), b), "trailing");
  expect_syntax_error(decode_payloads(0, hex("00")), "bytes with an empty chain");
}

TEST(Chain, SkMustBeLast) {
  Bytes b = raw_payload(0, hex("aabbccdd"), u8(PayloadType::kIdi));
  append(b, raw_payload(0, hex("02000000") ));
  expect_syntax_error(decode_payloads(u8(PayloadType::kSk), b), "SK followed by a payload");
}

TEST(Chain, SkReturnsItsBodyAndFirstInnerType) {
  Bytes b = raw_payload(0, hex("aabbccdd"), u8(PayloadType::kIdi));
  auto r = decode_payloads(u8(PayloadType::kSk), b);
  ASSERT_TRUE(r.has_value());
  ASSERT_EQ(r->size(), 1u);
  auto* sk = std::get_if<SkPayload>(&r->front().body);
  ASSERT_NE(sk, nullptr);
  EXPECT_EQ(sk->first_inner, u8(PayloadType::kIdi));
  EXPECT_EQ(sk->body, hex("aabbccdd"));
}

TEST(Chain, IdiAndIdrAreToldApartByType) {
  auto r = decode_payloads(u8(PayloadType::kIdi),
                           encode_payloads({Payload{PayloadType::kIdi, IdPayload{IdType::kFqdn, to_bytes("a")}},
                                            Payload{PayloadType::kIdr, IdPayload{IdType::kFqdn, to_bytes("b")}},
                                            Payload{PayloadType::kTsi, TsPayload{{v4_selector()}}},
                                            Payload{PayloadType::kTsr, TsPayload{{v6_selector()}}}},
                                           nullptr));
  ASSERT_TRUE(r.has_value()) << r.error().detail;
  EXPECT_EQ(find_payload<IdPayload>(*r, PayloadType::kIdi)->data, to_bytes("a"));
  EXPECT_EQ(find_payload<IdPayload>(*r, PayloadType::kIdr)->data, to_bytes("b"));
  EXPECT_TRUE(find_payload<TsPayload>(*r, PayloadType::kTsi)->selectors[0].start_address.is_v4());
  EXPECT_TRUE(find_payload<TsPayload>(*r, PayloadType::kTsr)->selectors[0].start_address.is_v6());
}

TEST(Chain, CriticalBitOnKnownPayloadIsIgnored) {
  Bytes b = raw_payload(0x80, hex("0102"));
  auto r = decode_payloads(u8(PayloadType::kVendorId), b);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(std::get<VendorIdPayload>(r->front().body).data, hex("0102"));
}

// ----------------------------------------------------------------- unknown payloads

TEST(Unknown, NonCriticalIsKeptAndParsingContinues) {
  Bytes b = raw_payload(0, hex("cafe"), u8(PayloadType::kNotify));
  append(b, raw_payload(0, hex("0000400c")));
  auto r = decode_payloads(77, b);
  ASSERT_TRUE(r.has_value()) << r.error().detail;
  ASSERT_EQ(r->size(), 2u);
  EXPECT_EQ(static_cast<std::uint8_t>((*r)[0].type), 77);
  auto* u = std::get_if<UnknownPayload>(&(*r)[0].body);
  ASSERT_NE(u, nullptr);
  EXPECT_EQ(u->type, 77);
  EXPECT_FALSE(u->critical);
  EXPECT_EQ(u->data, hex("cafe"));
  EXPECT_NE(find_notify(*r, NotifyType::kMobikeSupported), nullptr);
  // Re-encoded exactly as received.
  std::uint8_t first = 0;
  EXPECT_EQ(encode_payloads(*r, &first), b);
  EXPECT_EQ(first, 77);
}

TEST(Unknown, CriticalIsRejectedNamingTheType) {
  Bytes b = raw_payload(0, hex("0000400c"), 99);
  append(b, raw_payload(0x80, hex("cafe")));
  auto r = decode_payloads(u8(PayloadType::kNotify), b);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().kind, DecodeErrorKind::kUnsupportedCriticalPayload);
  EXPECT_EQ(r.error().payload_type, 99);
}

TEST(Unknown, CriticalInsideAMessage) {
  Message m;
  // (53 was unknown here until RFC 7383's SKF; 200 is private use.)
  m.payloads = {Payload{static_cast<PayloadType>(200), UnknownPayload{200, true, hex("00")}}};
  auto r = decode_message(encode_message(m));
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().kind, DecodeErrorKind::kUnsupportedCriticalPayload);
  EXPECT_EQ(r.error().payload_type, 200);
}

TEST(Unknown, ReservedTypesBelowSaAreUnknownToo) {
  auto r = decode_payloads(1, raw_payload(0, hex("00")));
  ASSERT_TRUE(r.has_value());
  EXPECT_TRUE(std::holds_alternative<UnknownPayload>(r->front().body));
}

// ----------------------------------------------------------------- SA rules

// A one-proposal IKE SA body: proposal #1, no SPI, ENCR AES-CBC/128 then DH 31.
constexpr std::string_view kSaBody =
    "00 00 00 1c 01 01 00 02"
    "03 00 00 0c 01 00 00 0c 80 0e 00 80"
    "00 00 00 08 04 00 00 1f";

TEST(Sa, ValidBodyDecodes) {
  auto r = decode_one(PayloadType::kSa, kSaBody);
  ASSERT_TRUE(r.has_value()) << r.error().detail;
  const auto& sa = std::get<SaPayload>(r->front().body);
  ASSERT_EQ(sa.proposals.size(), 1u);
  const auto& p = sa.proposals[0];
  EXPECT_EQ(p.number, 1);
  EXPECT_EQ(p.protocol, ProtocolId::kIke);
  EXPECT_TRUE(p.spi.empty());
  ASSERT_EQ(p.transforms.size(), 2u);
  EXPECT_EQ(p.transforms[0], (Transform{TransformType::kEncr, 12, 128}));
  EXPECT_EQ(p.transforms[1], (Transform{TransformType::kDh, 31, std::nullopt}));
}

std::string sa_with(std::size_t offset, std::string_view byte_hex) {
  std::string s;
  for (char c : kSaBody)
    if (c != ' ') s.push_back(c);
  s.replace(offset * 2, 2, byte_hex);
  return s;
}

TEST(Sa, ProposalLastFlagMustBeZeroOrTwo) {
  expect_syntax_error(decode_one(PayloadType::kSa, sa_with(0, "01")), "proposal last=1");
  expect_syntax_error(decode_one(PayloadType::kSa, sa_with(0, "03")), "proposal last=3");
  expect_syntax_error(decode_one(PayloadType::kSa, sa_with(0, "02")), "final proposal says more");
}

TEST(Sa, TransformLastFlagMustBeZeroOrThree) {
  expect_syntax_error(decode_one(PayloadType::kSa, sa_with(8, "02")), "transform last=2");
  expect_syntax_error(decode_one(PayloadType::kSa, sa_with(8, "00")), "last transform is not last");
  expect_syntax_error(decode_one(PayloadType::kSa, sa_with(20, "03")), "final transform says more");
}

TEST(Sa, TransformCountMustMatch) {
  expect_syntax_error(decode_one(PayloadType::kSa, sa_with(7, "03")), "count 3 of 2");
  expect_syntax_error(decode_one(PayloadType::kSa, sa_with(7, "01")), "count 1 of 2");
}

TEST(Sa, ProposalLengthIsChecked) {
  expect_syntax_error(decode_one(PayloadType::kSa, sa_with(3, "07")), "proposal length < 8");
  expect_syntax_error(decode_one(PayloadType::kSa, sa_with(3, "1d")), "proposal beyond SA");
  expect_syntax_error(decode_one(PayloadType::kSa, sa_with(3, "1b")), "proposal cuts a transform");
}

TEST(Sa, TransformLengthIsChecked) {
  expect_syntax_error(decode_one(PayloadType::kSa, sa_with(11, "07")), "transform length < 8");
  expect_syntax_error(decode_one(PayloadType::kSa, sa_with(11, "0e")), "transform beyond proposal");
  expect_syntax_error(decode_one(PayloadType::kSa, sa_with(11, "0a")), "transform cuts its attribute");
}

TEST(Sa, SpiSizeMustSuitTheProtocol) {
  // IKE with a 4-octet SPI (the proposal grows by 4 to hold it).
  expect_syntax_error(decode_one(PayloadType::kSa,
                                 "00 00 00 14 01 01 04 01 11223344 00 00 00 08 04 00 00 1f"),
                      "IKE SPI of 4");
  expect_syntax_error(decode_one(PayloadType::kSa, "00 00 00 10 01 03 00 01 00 00 00 08 01 00 00 14"),
                      "ESP without SPI");
  expect_syntax_error(decode_one(PayloadType::kSa, "00 00 00 10 01 00 00 01 00 00 00 08 01 00 00 14"),
                      "protocol 0");
  auto ike8 = decode_one(PayloadType::kSa,
                         "00 00 00 18 01 01 08 01 0102030405060708 00 00 00 08 04 00 00 1f");
  ASSERT_TRUE(ike8.has_value()) << ike8.error().detail;
  EXPECT_EQ(std::get<SaPayload>(ike8->front().body).proposals[0].spi, hex("0102030405060708"));
  expect_syntax_error(decode_one(PayloadType::kSa, "00 00 00 0a 01 03 04 01 1122"),
                      "SPI beyond the proposal");
  expect_syntax_error(decode_one(PayloadType::kSa,
                                 "00 00 00 18 01 03 08 01 1122334455667788 00 00 00 08 01 00 00 14"),
                      "ESP SPI of 8");
}

TEST(Sa, ProposalNumbersCountUpFromOne) {
  std::string one = "02 00 00 10 01 01 00 01 00 00 00 08 04 00 00 1f";
  std::string two = "00 00 00 10 02 01 00 01 00 00 00 08 04 00 00 1f";
  std::string three = "00 00 00 10 03 01 00 01 00 00 00 08 04 00 00 1f";
  auto ok = decode_one(PayloadType::kSa, one + two);
  ASSERT_TRUE(ok.has_value()) << ok.error().detail;
  EXPECT_EQ(std::get<SaPayload>(ok->front().body).proposals[1].number, 2);
  expect_syntax_error(decode_one(PayloadType::kSa, one + three), "1 then 3");
  std::string two_more = "02 00 00 10 02 01 00 01 00 00 00 08 04 00 00 1f";
  expect_syntax_error(decode_one(PayloadType::kSa, two_more + three), "starts at 2");
  // A response's single proposal keeps the number it was offered under.
  auto response = decode_one(PayloadType::kSa, three);
  ASSERT_TRUE(response.has_value());
  EXPECT_EQ(std::get<SaPayload>(response->front().body).proposals[0].number, 3);
  expect_syntax_error(decode_one(PayloadType::kSa, "00 00 00 10 00 01 00 01 00 00 00 08 04 00 00 1f"),
                      "number 0");
  expect_syntax_error(decode_one(PayloadType::kSa, "00 00 00 10 01 01 00 01 00 00 00 08 04 00 00 1f" + two),
                      "proposal after the last one");
}

TEST(Sa, EmptySaIsInvalid) {
  expect_syntax_error(decode_payloads(u8(PayloadType::kSa), raw_payload(0, {})), "no proposals");
}

TEST(Sa, UnknownAttributesAreKeptNotDropped) {
  // ENCR 12 with Key Length, an unknown TV attribute 0x0101 and a TLV attribute 0x0202.
  auto r = decode_one(PayloadType::kSa,
                      "00 00 00 1d 01 01 00 01"
                      "00 00 00 15 01 00 00 0c 80 0e 00 80 81 01 00 07 02 02 00 01 ff");
  ASSERT_TRUE(r.has_value()) << r.error().detail;
  const auto& t = std::get<SaPayload>(r->front().body).proposals[0].transforms[0];
  EXPECT_EQ(t.key_length, 128);
  ASSERT_EQ(t.other_attributes.size(), 2u);
  EXPECT_EQ(t.other_attributes[0], (TransformAttribute{0x0101, true, hex("0007")}));
  EXPECT_EQ(t.other_attributes[1], (TransformAttribute{0x0202, false, hex("ff")}));
  EXPECT_EQ(encode_one(r->front()), raw_payload(0, hex("00 00 00 1d 01 01 00 01"
                                                       "00 00 00 15 01 00 00 0c 80 0e 00 80 81 01 00 07 02 02 00 01 ff")));
}

TEST(Sa, KeyLengthInTlvFormOrRepeatedIsNotTakenAsKeyLength) {
  auto r = decode_one(PayloadType::kSa,
                      "00 00 00 18 01 01 00 01"
                      "00 00 00 10 01 00 00 0c 00 0e 00 00 80 0e 00 80");
  ASSERT_TRUE(r.has_value()) << r.error().detail;
  const auto& t = std::get<SaPayload>(r->front().body).proposals[0].transforms[0];
  EXPECT_EQ(t.key_length, 128);
  ASSERT_EQ(t.other_attributes.size(), 1u);
  EXPECT_FALSE(t.other_attributes[0].tv);

  auto twice = decode_one(PayloadType::kSa,
                          "00 00 00 18 01 01 00 01"
                          "00 00 00 10 01 00 00 0c 80 0e 00 80 80 0e 01 00");
  ASSERT_TRUE(twice.has_value());
  const auto& t2 = std::get<SaPayload>(twice->front().body).proposals[0].transforms[0];
  EXPECT_EQ(t2.key_length, 128);
  ASSERT_EQ(t2.other_attributes.size(), 1u);
  EXPECT_EQ(t2.other_attributes[0].value, hex("0100"));
}

TEST(Sa, AttributeTruncationsAreInvalid) {
  expect_syntax_error(decode_one(PayloadType::kSa,
                                 "00 00 00 12 01 01 00 01 00 00 00 0a 01 00 00 0c 80 0e"),
                      "TV attribute cut");
  expect_syntax_error(decode_one(PayloadType::kSa,
                                 "00 00 00 14 01 01 00 01 00 00 00 0c 01 00 00 0c 01 01 00 05"),
                      "TLV value beyond transform");
}

// ----------------------------------------------------------------- other payload rules

TEST(Ke, ShorterThanFixedPartIsInvalid) {
  expect_syntax_error(decode_one(PayloadType::kKe, "00 1f 00"), "KE of 3");
  auto r = decode_one(PayloadType::kKe, "00 1f 00 00 01 02");
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(std::get<KePayload>(r->front().body), (KePayload{31, hex("0102")}));
}

TEST(Id, AddressIdsMustHaveAddressLength) {
  expect_syntax_error(decode_one(PayloadType::kIdi, "01 000000 c00002"), "IPv4 ID of 3");
  expect_syntax_error(decode_one(PayloadType::kIdr, "05 000000 c0000201"), "IPv6 ID of 4");
  expect_syntax_error(decode_one(PayloadType::kIdi, "02 0000"), "fixed part cut");
  auto r = decode_one(PayloadType::kIdr, "01 000000 c0000201");
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->front().type, PayloadType::kIdr);
}

TEST(Cert, NeedsEncodingOctet) {
  expect_syntax_error(decode_payloads(u8(PayloadType::kCert), raw_payload(0, {})), "empty CERT");
  expect_syntax_error(decode_payloads(u8(PayloadType::kCertReq), raw_payload(0, {})), "empty CERTREQ");
}

TEST(Auth, ShorterThanFixedPartIsInvalid) {
  expect_syntax_error(decode_one(PayloadType::kAuth, "02 0000"), "AUTH of 3");
}

TEST(Nonce, LengthMustBe16To256) {
  for (std::size_t n : {0, 1, 15, 257, 300}) {
    expect_syntax_error(decode_payloads(u8(PayloadType::kNonce), raw_payload(0, Bytes(n, 7))),
                        "nonce of " + std::to_string(n));
  }
  for (std::size_t n : {16, 32, 256}) {
    auto r = decode_payloads(u8(PayloadType::kNonce), raw_payload(0, Bytes(n, 7)));
    ASSERT_TRUE(r.has_value()) << n;
    EXPECT_EQ(std::get<NoncePayload>(r->front().body).data.size(), n);
  }
}

TEST(Notify, SpiSizeMustSuitTheProtocol) {
  expect_syntax_error(decode_one(PayloadType::kNotify, "03 03 40 09 010203"), "ESP SPI of 3");
  expect_syntax_error(decode_one(PayloadType::kNotify, "00 04 40 09 01020304"), "SPI without protocol");
  expect_syntax_error(decode_one(PayloadType::kNotify, "01 04 40 09 01020304"), "IKE SPI of 4");
  expect_syntax_error(decode_one(PayloadType::kNotify, "03 04 40 09 0102"), "SPI beyond payload");
  expect_syntax_error(decode_one(PayloadType::kNotify, "00 00 40"), "fixed part cut");
  auto ike = decode_one(PayloadType::kNotify, "01 08 40 09 0102030405060708");
  ASSERT_TRUE(ike.has_value());
  EXPECT_EQ(std::get<NotifyPayload>(ike->front().body).spi.size(), 8u);
  // With no SPI the protocol is ignored, whatever it says.
  auto any = decode_one(PayloadType::kNotify, "07 00 40 0c");
  ASSERT_TRUE(any.has_value());
  EXPECT_EQ(std::get<NotifyPayload>(any->front().body).notify_type(), NotifyType::kMobikeSupported);
}

TEST(Delete, SpiSizeTimesCountMustFillThePayload) {
  auto ok = decode_one(PayloadType::kDelete, "03 04 0002 aaaaaaaa bbbbbbbb");
  ASSERT_TRUE(ok.has_value());
  EXPECT_EQ(std::get<DeletePayload>(ok->front().body).spis.size(), 2u);
  expect_syntax_error(decode_one(PayloadType::kDelete, "03 04 0002 aaaaaaaa bbbbbb"), "one short");
  expect_syntax_error(decode_one(PayloadType::kDelete, "03 04 0001 aaaaaaaa bbbbbbbb"), "one extra");
  expect_syntax_error(decode_one(PayloadType::kDelete, "03 04 ffff aaaaaaaa"), "count overflows");
  expect_syntax_error(decode_one(PayloadType::kDelete, "03 00 0000"), "ESP without SPI size");
  expect_syntax_error(decode_one(PayloadType::kDelete, "01 04 0001 aaaaaaaa"), "IKE with SPIs");
  expect_syntax_error(decode_one(PayloadType::kDelete, "00 00 0000"), "protocol 0");
  expect_syntax_error(decode_one(PayloadType::kDelete, "03 04 00"), "fixed part cut");
  auto ike = decode_one(PayloadType::kDelete, "01 00 0000");
  ASSERT_TRUE(ike.has_value());
  EXPECT_EQ(std::get<DeletePayload>(ike->front().body).protocol, ProtocolId::kIke);
}

TEST(Ts, SelectorLengthMustMatchItsType) {
  std::string v4 = "07 00 0010 0000 ffff 0a000000 0affffff";
  auto ok = decode_one(PayloadType::kTsi, "01 000000" + v4);
  ASSERT_TRUE(ok.has_value()) << ok.error().detail;
  expect_syntax_error(decode_one(PayloadType::kTsi, "01 000000 07 00 000f 0000 ffff 0a000000 0affff"),
                      "IPv4 selector of 15");
  expect_syntax_error(decode_one(PayloadType::kTsi, "01 000000 07 00 0011 0000 ffff 0a000000 0affffff 00"),
                      "IPv4 selector of 17");
  expect_syntax_error(decode_one(PayloadType::kTsi, "01 000000 08 00 0010 0000 ffff 0a000000 0affffff"),
                      "IPv6 type with IPv4 length");
  expect_syntax_error(decode_one(PayloadType::kTsi, "01 000000 07 00 0010 0000 ffff 0a000000"),
                      "selector beyond payload");
  expect_syntax_error(decode_one(PayloadType::kTsi, "01 000000 0a 00 0010 0000 ffff 0a000000 0affffff"),
                      "unknown selector type");
  expect_syntax_error(decode_one(PayloadType::kTsr, "02 000000" + v4), "count 2 of 1");
  expect_syntax_error(decode_one(PayloadType::kTsr, "00 000000" + v4), "count 0 of 1");
  expect_syntax_error(decode_one(PayloadType::kTsr, "01 00"), "fixed part cut");
}

TEST(Ts, Ipv6SelectorAndReversedRangesDecode) {
  auto r = decode_one(PayloadType::kTsr,
                      "01 000000 08 06 0028 0050 0010"
                      "20010db8000000000000000000000009 20010db8000000000000000000000001");
  ASSERT_TRUE(r.has_value()) << r.error().detail;
  const auto& s = std::get<TsPayload>(r->front().body).selectors[0];
  EXPECT_EQ(s.ts_type, TsType::kIpv6AddrRange);
  EXPECT_EQ(s.ip_protocol, 6);
  EXPECT_EQ(s.start_port, 80);
  EXPECT_EQ(s.end_port, 16);
  EXPECT_EQ(s.start_address, ip("2001:db8::9"));
  EXPECT_EQ(s.end_address, ip("2001:db8::1"));
}

TEST(Cp, AttributesUseFifteenBitTypes) {
  auto r = decode_one(PayloadType::kCp, "02 000000 8001 0004 0a000001 0003 0000");
  ASSERT_TRUE(r.has_value()) << r.error().detail;
  const auto& cp = std::get<CpPayload>(r->front().body);
  EXPECT_EQ(cp.cfg_type, CfgType::kReply);
  ASSERT_EQ(cp.attributes.size(), 2u);
  EXPECT_EQ(cp.attributes[0].type, 1) << "the reserved top bit is not part of the type";
  EXPECT_EQ(cp.attributes[0].value, hex("0a000001"));
  EXPECT_EQ(cp.attributes[1].type, 3);
  expect_syntax_error(decode_one(PayloadType::kCp, "01 000000 0001 0005 0a000001"), "value beyond");
  expect_syntax_error(decode_one(PayloadType::kCp, "01 000000 0001 00"), "attribute header cut");
  expect_syntax_error(decode_one(PayloadType::kCp, "01 0000"), "fixed part cut");
}

TEST(Eap, IsOpaque) {
  auto r = decode_one(PayloadType::kEap, "01 02 0005 01");
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(std::get<EapPayload>(r->front().body).data, hex("0102000501"));
}

// ----------------------------------------------------------------- robustness

// Every prefix of a valid message, with its length field made to agree, must be
// rejected: a chain cut anywhere cannot fill the message exactly.
TEST(Robustness, EveryTruncationIsAnError) {
  Bytes full = valid_datagram();
  for (std::size_t n = 0; n < full.size(); ++n) {
    Bytes cut(full.begin(), full.begin() + static_cast<std::ptrdiff_t>(n));
    auto plain = decode_message(cut);
    ASSERT_FALSE(plain.has_value()) << n;
    EXPECT_EQ(plain.error().kind, DecodeErrorKind::kTruncated) << n;
    if (n >= kHeaderSize) {
      set_length(cut, static_cast<std::uint32_t>(n));
      auto fixed = decode_message(cut);
      ASSERT_FALSE(fixed.has_value()) << n;
      EXPECT_EQ(fixed.error().kind, DecodeErrorKind::kInvalidSyntax) << n;
    }
  }
}

TEST(Robustness, EveryTruncationOfAChainIsAnError) {
  std::vector<Payload> v = every_payload_kind();
  std::uint8_t first = 0;
  Bytes chain = encode_payloads(v, &first);
  for (std::size_t n = 0; n < chain.size(); ++n) {
    auto r = decode_payloads(first, ByteView(chain).first(n));
    ASSERT_FALSE(r.has_value()) << n;
  }
  auto all = decode_payloads(first, chain);
  ASSERT_TRUE(all.has_value());
  EXPECT_EQ(*all, v);
}

// Single-octet corruptions anywhere: whatever decodes must re-encode and decode to the
// same value (the fuzz target's property, on a deterministic sample).
TEST(Robustness, CorruptedOctetsDecodeConsistentlyOrFail) {
  Bytes full = valid_datagram();
  std::size_t accepted = 0, rejected = 0;
  for (std::size_t i = 0; i < full.size(); ++i) {
    for (std::uint8_t mask : {0x01, 0x80, 0xff}) {
      Bytes b = full;
      b[i] ^= mask;
      auto m = decode_message(b);
      if (!m) {
        ++rejected;
        continue;
      }
      ++accepted;
      auto again = decode_message(encode_message(*m));
      ASSERT_TRUE(again.has_value()) << i << ": " << again.error().detail;
      EXPECT_EQ(*again, *m) << "offset " << i;
    }
  }
  // Both outcomes happen: payload data is free-form, lengths are not.
  EXPECT_GT(accepted, 0u);
  EXPECT_GT(rejected, 0u);
}

}  // namespace
}  // namespace mobike::wire
