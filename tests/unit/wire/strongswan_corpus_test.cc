// Real messages of a strongSwan 5.9.8 session (tests/data/wire/strongswan-5.9.8/,
// extracted from a capture by extract_pcap.py next to them): our decoder must read what
// a widely deployed peer sends, and our encoder must produce the same octets from it.
#include <gtest/gtest.h>

#include <fstream>
#include <iterator>
#include <string>

#include "common/bytes.h"
#include "wire/codec.h"

namespace mobike::wire {
namespace {

constexpr std::uint64_t kSpiI = 0xcb7c7ab020dbf8baull;
constexpr std::uint64_t kSpiR = 0x02bbe9dbfec7d182ull;
// The IKE SA created by the rekey (messages 17..24).
constexpr std::uint64_t kRekeyedSpiI = 0x0f60cb95eaa8418eull;
constexpr std::uint64_t kRekeyedSpiR = 0x380c15dcd93fd3acull;

Bytes load(const std::string& name) {
  std::string path = std::string(MOBIKE_TEST_DATA) + "/wire/strongswan-5.9.8/" + name;
  std::ifstream f(path, std::ios::binary);
  EXPECT_TRUE(f.good()) << path;
  return Bytes(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

Message decode_file(const std::string& name) {
  Bytes b = load(name);
  auto m = decode_message(b);
  EXPECT_TRUE(m.has_value()) << name << ": " << (m ? "" : m.error().detail);
  return m ? *m : Message{};
}

std::uint8_t u8(PayloadType t) { return static_cast<std::uint8_t>(t); }

std::vector<PayloadType> types_of(const Message& m) {
  std::vector<PayloadType> v;
  for (const auto& p : m.payloads) v.push_back(p.type);
  return v;
}

std::vector<std::uint16_t> notify_types(const Message& m) {
  std::vector<std::uint16_t> v;
  for (const auto& p : m.payloads)
    if (auto* n = std::get_if<NotifyPayload>(&p.body)) v.push_back(n->type);
  return v;
}

constexpr std::uint16_t n(NotifyType t) { return static_cast<std::uint16_t>(t); }

TEST(StrongSwan, IkeSaInitRequest) {
  Message m = decode_file("00_ike_sa_init_request.bin");
  EXPECT_EQ(m.header.spi_i, kSpiI);
  EXPECT_EQ(m.header.spi_r, 0u);
  EXPECT_EQ(m.header.exchange, ExchangeType::kIkeSaInit);
  EXPECT_EQ(m.header.flags, kFlagInitiator);
  EXPECT_EQ(m.header.message_id, 0u);
  EXPECT_EQ(m.header.length, 276u);
  EXPECT_EQ(types_of(m), (std::vector<PayloadType>{PayloadType::kSa, PayloadType::kKe,
                                                   PayloadType::kNonce, PayloadType::kNotify,
                                                   PayloadType::kNotify, PayloadType::kNotify,
                                                   PayloadType::kNotify, PayloadType::kNotify}));

  // aes128-sha256-x25519, then aes128gcm16-prfsha256-x25519 (the README's proposals).
  const auto* sa = find_payload<SaPayload>(m.payloads, PayloadType::kSa);
  ASSERT_NE(sa, nullptr);
  ASSERT_EQ(sa->proposals.size(), 2u);
  const Proposal& p1 = sa->proposals[0];
  EXPECT_EQ(p1.number, 1);
  EXPECT_EQ(p1.protocol, ProtocolId::kIke);
  EXPECT_TRUE(p1.spi.empty());
  EXPECT_EQ(p1.transforms,
            (std::vector<Transform>{{TransformType::kEncr, 12, 128},
                                    {TransformType::kInteg, 12, std::nullopt},
                                    {TransformType::kPrf, 5, std::nullopt},
                                    {TransformType::kDh, 31, std::nullopt}}));
  const Proposal& p2 = sa->proposals[1];
  EXPECT_EQ(p2.number, 2);
  EXPECT_EQ(p2.transforms, (std::vector<Transform>{{TransformType::kEncr, 20, 128},
                                                   {TransformType::kPrf, 5, std::nullopt},
                                                   {TransformType::kDh, 31, std::nullopt}}));

  const auto* ke = find_payload<KePayload>(m.payloads, PayloadType::kKe);
  ASSERT_NE(ke, nullptr);
  EXPECT_EQ(ke->group, static_cast<std::uint16_t>(DhGroup::kCurve25519));
  EXPECT_EQ(to_hex(ke->data), "da2a250609f2f2c6950c55d831c352438b0b4cb1468d539a91344702c0bc1302");

  const auto* nonce = find_payload<NoncePayload>(m.payloads, PayloadType::kNonce);
  ASSERT_NE(nonce, nullptr);
  EXPECT_EQ(to_hex(nonce->data), "efc806edea921f7e0b9bc225aec5aa45311cb986270c5f412a6b7f96b1428808");

  EXPECT_EQ(notify_types(m),
            (std::vector<std::uint16_t>{n(NotifyType::kNatDetectionSourceIp),
                                        n(NotifyType::kNatDetectionDestinationIp),
                                        n(NotifyType::kIkev2FragmentationSupported),
                                        n(NotifyType::kSignatureHashAlgorithms),
                                        n(NotifyType::kRedirectSupported)}));
  const auto* src = find_notify(m.payloads, NotifyType::kNatDetectionSourceIp);
  ASSERT_NE(src, nullptr);
  EXPECT_EQ(src->protocol, ProtocolId::kNone);
  EXPECT_TRUE(src->spi.empty());
  EXPECT_EQ(to_hex(src->data), "538f700f66c0ae13acbf69aa06c3209a6da428d9");
  const auto* dst = find_notify(m.payloads, NotifyType::kNatDetectionDestinationIp);
  ASSERT_NE(dst, nullptr);
  EXPECT_EQ(to_hex(dst->data), "d958d75b61ed70b6d548cac656553134a0c11eb7");
  const auto* sigs = find_notify(m.payloads, NotifyType::kSignatureHashAlgorithms);
  ASSERT_NE(sigs, nullptr);
  EXPECT_EQ(to_hex(sigs->data), "0002000300040005");
}

TEST(StrongSwan, IkeSaInitResponse) {
  Message m = decode_file("01_ike_sa_init_response.bin");
  EXPECT_EQ(m.header.spi_i, kSpiI);
  EXPECT_EQ(m.header.spi_r, kSpiR);
  EXPECT_EQ(m.header.exchange, ExchangeType::kIkeSaInit);
  EXPECT_TRUE(m.header.is_response());
  EXPECT_FALSE(m.header.from_original_initiator());
  EXPECT_EQ(m.header.message_id, 0u);
  EXPECT_EQ(m.header.length, 248u);

  const auto* sa = find_payload<SaPayload>(m.payloads, PayloadType::kSa);
  ASSERT_NE(sa, nullptr);
  ASSERT_EQ(sa->proposals.size(), 1u);
  EXPECT_EQ(sa->proposals[0].number, 1);
  EXPECT_EQ(sa->proposals[0].transforms,
            (std::vector<Transform>{{TransformType::kEncr, 12, 128},
                                    {TransformType::kInteg, 12, std::nullopt},
                                    {TransformType::kPrf, 5, std::nullopt},
                                    {TransformType::kDh, 31, std::nullopt}}));
  const auto* ke = find_payload<KePayload>(m.payloads, PayloadType::kKe);
  ASSERT_NE(ke, nullptr);
  EXPECT_EQ(ke->group, 31);
  EXPECT_EQ(to_hex(ke->data), "cd1dccc444bd23c1cc937ebfdb43a2c859227513" "08c8d6d5c20eed00fea1de5b");
  const auto* nonce = find_payload<NoncePayload>(m.payloads, PayloadType::kNonce);
  ASSERT_NE(nonce, nullptr);
  EXPECT_EQ(to_hex(nonce->data), "7db7f4eb3e11e983b96087f29dd9f731ef32036296ac21a92a2363392bd74eee");
  EXPECT_EQ(notify_types(m),
            (std::vector<std::uint16_t>{n(NotifyType::kNatDetectionSourceIp),
                                        n(NotifyType::kNatDetectionDestinationIp),
                                        n(NotifyType::kIkev2FragmentationSupported),
                                        n(NotifyType::kSignatureHashAlgorithms),
                                        n(NotifyType::kChildlessIkev2Supported),
                                        n(NotifyType::kMultipleAuthSupported)}));
  EXPECT_EQ(to_hex(find_notify(m.payloads, NotifyType::kNatDetectionSourceIp)->data),
            "1a417497b4e8239880c2a73db8857a99bb57bfb0");
  EXPECT_EQ(to_hex(find_notify(m.payloads, NotifyType::kNatDetectionDestinationIp)->data),
            "663d69ef9ff7e77ed65c76ce79c1b399a67db916");
}

TEST(StrongSwan, IkeSaInitReencodesByteForByte) {
  for (const char* name : {"00_ike_sa_init_request.bin", "01_ike_sa_init_response.bin"}) {
    Bytes original = load(name);
    auto m = decode_message(original);
    ASSERT_TRUE(m.has_value()) << name;
    EXPECT_EQ(to_hex(encode_message(*m)), to_hex(original)) << name;
  }
}

struct Protected {
  const char* file;
  std::uint64_t spi_i;
  std::uint64_t spi_r;
  ExchangeType exchange;
  std::uint8_t flags;
  std::uint32_t message_id;
  PayloadType first_inner;
  std::uint32_t length;
};

constexpr std::uint8_t kI = kFlagInitiator;
constexpr std::uint8_t kR = kFlagResponse;
constexpr ExchangeType kAuth = ExchangeType::kIkeAuth;
constexpr ExchangeType kChild = ExchangeType::kCreateChildSa;
constexpr ExchangeType kInfo = ExchangeType::kInformational;
constexpr PayloadType kEmpty = PayloadType::kNone;

// Header fields and the SK payload's first inner type, as read with an independent
// tool (tcpdump and a hex dump) from the capture.
const Protected kProtected[] = {
    {"02_ike_auth_request.bin", kSpiI, kSpiR, kAuth, kI, 1, PayloadType::kIdi, 336},
    {"03_ike_auth_response.bin", kSpiI, kSpiR, kAuth, kR, 1, PayloadType::kIdr, 240},
    {"04_informational_request.bin", kSpiI, kSpiR, kInfo, kI, 2, PayloadType::kNotify, 80},
    {"05_informational_response.bin", kSpiI, kSpiR, kInfo, kR, 2, kEmpty, 80},
    {"06_informational_request.bin", kSpiI, kSpiR, kInfo, kI, 3, PayloadType::kNotify, 80},
    {"07_informational_response.bin", kSpiI, kSpiR, kInfo, kR, 3, kEmpty, 80},
    {"08_informational_request.bin", kSpiI, kSpiR, kInfo, 0, 0, kEmpty, 80},
    {"09_create_child_sa_request.bin", kSpiI, kSpiR, kChild, kI, 4, PayloadType::kNotify, 288},
    {"10_create_child_sa_response.bin", kSpiI, kSpiR, kChild, kR, 4, PayloadType::kSa, 240},
    {"11_informational_request.bin", kSpiI, kSpiR, kInfo, kI, 5, PayloadType::kDelete, 80},
    {"12_informational_response.bin", kSpiI, kSpiR, kInfo, kR, 5, PayloadType::kDelete, 80},
    {"13_create_child_sa_request.bin", kSpiI, kSpiR, kChild, kI, 6, PayloadType::kSa, 256},
    {"14_create_child_sa_response.bin", kSpiI, kSpiR, kChild, kR, 6, PayloadType::kSa, 208},
    {"15_informational_request.bin", kSpiI, kSpiR, kInfo, kI, 7, PayloadType::kDelete, 80},
    {"16_informational_response.bin", kSpiI, kSpiR, kInfo, kR, 7, kEmpty, 80},
    {"17_informational_request.bin", kRekeyedSpiI, kRekeyedSpiR, kInfo, 0, 0, kEmpty, 80},
    {"18_informational_response.bin", kRekeyedSpiI, kRekeyedSpiR, kInfo, kI | kR, 0, kEmpty, 80},
    {"19_informational_request.bin", kRekeyedSpiI, kRekeyedSpiR, kInfo, kI, 0, PayloadType::kNotify, 80},
    {"20_informational_response.bin", kRekeyedSpiI, kRekeyedSpiR, kInfo, kR, 0, kEmpty, 80},
    {"21_informational_request.bin", kRekeyedSpiI, kRekeyedSpiR, kInfo, 0, 1, kEmpty, 80},
    {"22_informational_response.bin", kRekeyedSpiI, kRekeyedSpiR, kInfo, kI | kR, 1, kEmpty, 80},
    {"23_informational_request.bin", kRekeyedSpiI, kRekeyedSpiR, kInfo, kI, 1, PayloadType::kDelete, 80},
    {"24_informational_response.bin", kRekeyedSpiI, kRekeyedSpiR, kInfo, kR, 1, kEmpty, 80},
};

class StrongSwanProtected : public ::testing::TestWithParam<Protected> {};

TEST_P(StrongSwanProtected, HeaderAndSkPayload) {
  const Protected& want = GetParam();
  Bytes original = load(want.file);
  ASSERT_EQ(original.size(), want.length);
  auto m = decode_message(original);
  ASSERT_TRUE(m.has_value()) << m.error().detail;
  EXPECT_EQ(m->header.spi_i, want.spi_i);
  EXPECT_EQ(m->header.spi_r, want.spi_r);
  EXPECT_EQ(m->header.exchange, want.exchange);
  EXPECT_EQ(m->header.flags, want.flags);
  EXPECT_EQ(m->header.message_id, want.message_id);
  EXPECT_EQ(m->header.next_payload, u8(PayloadType::kSk));
  EXPECT_EQ(m->header.length, want.length);
  ASSERT_EQ(m->payloads.size(), 1u);
  ASSERT_EQ(m->payloads[0].type, PayloadType::kSk);
  const auto& sk = std::get<SkPayload>(m->payloads[0].body);
  EXPECT_EQ(sk.first_inner, u8(want.first_inner));
  EXPECT_EQ(sk.body.size(), want.length - kHeaderSize - 4);
  // The body is the tail of the datagram: what the engine authenticates and decrypts.
  EXPECT_TRUE(std::equal(sk.body.begin(), sk.body.end(), original.end() - static_cast<std::ptrdiff_t>(sk.body.size())));
  EXPECT_EQ(encode_message(*m), original);
}

INSTANTIATE_TEST_SUITE_P(Wire, StrongSwanProtected, ::testing::ValuesIn(kProtected),
                         [](const ::testing::TestParamInfo<Protected>& info) {
                           std::string s = info.param.file;
                           s = s.substr(0, s.find('.'));
                           for (auto& c : s)
                             if (c == '-') c = '_';
                           return s;
                         });

// Truncations and length-consistent truncations of every real message fail cleanly.
TEST(StrongSwan, EveryTruncationOfEveryMessageIsRejected) {
  std::vector<std::string> files = {"00_ike_sa_init_request.bin", "01_ike_sa_init_response.bin"};
  for (const auto& p : kProtected) files.push_back(p.file);
  for (const auto& f : files) {
    Bytes full = load(f);
    ASSERT_FALSE(full.empty()) << f;
    for (std::size_t len = 0; len < full.size(); ++len) {
      Bytes cut(full.begin(), full.begin() + static_cast<std::ptrdiff_t>(len));
      ASSERT_FALSE(decode_message(cut).has_value()) << f << " cut to " << len;
      if (len >= kHeaderSize) {
        cut[24] = static_cast<std::uint8_t>(len >> 24);
        cut[25] = static_cast<std::uint8_t>(len >> 16);
        cut[26] = static_cast<std::uint8_t>(len >> 8);
        cut[27] = static_cast<std::uint8_t>(len);
        auto r = decode_message(cut);
        ASSERT_FALSE(r.has_value()) << f << " cut to " << len << " with length fixed";
        EXPECT_EQ(r.error().kind, DecodeErrorKind::kInvalidSyntax);
      }
    }
  }
}

}  // namespace
}  // namespace mobike::wire
