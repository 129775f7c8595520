// The Encrypted Fragment payload (RFC 7383 §2.5): round trips, the golden layout and
// every malformed length and numbering the decoder must refuse.
#include <gtest/gtest.h>

#include "common/bytes.h"
#include "wire/codec.h"

namespace mobike::wire {
namespace {

std::uint8_t u8(PayloadType t) { return static_cast<std::uint8_t>(t); }

// An SKF payload as raw octets: generic header, Fragment Number, Total Fragments, body.
Bytes raw_skf(std::uint8_t next, std::uint16_t number, std::uint16_t total, const Bytes& body) {
  std::size_t len = 8 + body.size();
  Bytes out = {next, 0, static_cast<std::uint8_t>(len >> 8), static_cast<std::uint8_t>(len),
               static_cast<std::uint8_t>(number >> 8), static_cast<std::uint8_t>(number),
               static_cast<std::uint8_t>(total >> 8), static_cast<std::uint8_t>(total)};
  append(out, body);
  return out;
}

Message fragment_message(std::uint16_t number, std::uint16_t total, std::uint8_t next) {
  Message m;
  m.header.spi_i = 0x0102030405060708ull;
  m.header.spi_r = 0x1112131415161718ull;
  m.header.exchange = ExchangeType::kIkeAuth;
  m.header.flags = kFlagInitiator;
  m.header.message_id = 1;
  m.payloads = {Payload{PayloadType::kSkf, SkfPayload{next, number, total, Bytes(40, 0xab)}}};
  return m;
}

void expect_invalid(ByteView chain, std::string_view why) {
  auto r = decode_payloads(u8(PayloadType::kSkf), chain);
  ASSERT_FALSE(r.has_value()) << why;
  EXPECT_EQ(r.error().kind, DecodeErrorKind::kInvalidSyntax) << why << ": " << r.error().detail;
}

TEST(Skf, MessageRoundTrips) {
  for (auto [number, total] : {std::pair{1, 1}, {1, 3}, {2, 3}, {3, 3}, {65535, 65535}}) {
    auto m = fragment_message(static_cast<std::uint16_t>(number), static_cast<std::uint16_t>(total),
                              number == 1 ? u8(PayloadType::kIdi) : 0);
    Bytes b = encode_message(m);
    auto back = decode_message(b);
    ASSERT_TRUE(back) << back.error().detail;
    m.header.next_payload = u8(PayloadType::kSkf);
    m.header.length = static_cast<std::uint32_t>(b.size());
    EXPECT_EQ(*back, m);
  }
}

TEST(Skf, GoldenLayout) {
  // The IKE header names SKF (53); the SKF header carries the first inner type, the
  // length with the 4 numbering octets, then Fragment Number 2 and Total Fragments 3.
  auto m = fragment_message(2, 3, 0);
  m.payloads[0] = Payload{PayloadType::kSkf, SkfPayload{0, 2, 3, from_hex("c0ffee")}};
  Bytes b = encode_message(m);
  ASSERT_EQ(b.size(), kHeaderSize + 11);
  EXPECT_EQ(b[16], 53);
  EXPECT_EQ(Bytes(b.begin() + kHeaderSize, b.end()), from_hex("0000000b00020003c0ffee"));
  EXPECT_EQ(raw_skf(0, 2, 3, from_hex("c0ffee")), Bytes(b.begin() + kHeaderSize, b.end()));
}

TEST(Skf, ChainReturnsNumberingBodyAndFirstInnerType) {
  auto r = decode_payloads(u8(PayloadType::kSkf), raw_skf(u8(PayloadType::kIdi), 1, 2, from_hex("aabbccdd")));
  ASSERT_TRUE(r) << r.error().detail;
  ASSERT_EQ(r->size(), 1u);
  auto* f = std::get_if<SkfPayload>(&r->front().body);
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(r->front().type, PayloadType::kSkf);
  EXPECT_EQ(f->first_inner, u8(PayloadType::kIdi));
  EXPECT_EQ(f->fragment_number, 1);
  EXPECT_EQ(f->total_fragments, 2);
  EXPECT_EQ(f->body, from_hex("aabbccdd"));
  // An empty body is the SKF layer's business to accept; the ICV check refuses it.
  EXPECT_TRUE(decode_payloads(u8(PayloadType::kSkf), raw_skf(0, 2, 2, {})));
}

TEST(Skf, BadNumberingIsRefused) {
  expect_invalid(raw_skf(0, 0, 3, Bytes(8, 1)), "Fragment Number 0");
  expect_invalid(raw_skf(0, 1, 0, Bytes(8, 1)), "Total Fragments 0");
  expect_invalid(raw_skf(0, 0, 0, Bytes(8, 1)), "both 0");
  expect_invalid(raw_skf(0, 4, 3, Bytes(8, 1)), "number above total");
  expect_invalid(raw_skf(0, 65535, 1, Bytes(8, 1)), "number far above total");
}

TEST(Skf, EveryShortLengthIsRefused) {
  // Payload lengths 0..7 leave no room for the generic header and the numbering.
  for (std::uint16_t len = 0; len < 8; ++len) {
    Bytes b = {0, 0, static_cast<std::uint8_t>(len >> 8), static_cast<std::uint8_t>(len), 0, 1, 0, 1};
    expect_invalid(b, "length " + std::to_string(len));
  }
  // Truncated chains: a length beyond the octets there are, and a cut generic header.
  Bytes whole = raw_skf(0, 1, 1, Bytes(16, 2));
  for (std::size_t cut = 1; cut < whole.size(); ++cut)
    expect_invalid(ByteView(whole).first(cut), "cut to " + std::to_string(cut));
}

TEST(Skf, MustBeLast) {
  Bytes b = raw_skf(u8(PayloadType::kNotify), 1, 1, Bytes(16, 2));
  append(b, from_hex("0000000800004000"));
  expect_invalid(b, "SKF followed by a payload");
  // Unprotected payloads may precede it, as SK.
  Bytes chain = from_hex("3500000c0000400000000000");  // a notify whose Next Payload is SKF
  chain[0] = u8(PayloadType::kSkf);
  append(chain, raw_skf(0, 2, 2, Bytes(16, 2)));
  auto r = decode_payloads(u8(PayloadType::kNotify), chain);
  ASSERT_TRUE(r) << r.error().detail;
  EXPECT_EQ(r->back().type, PayloadType::kSkf);
}

TEST(Skf, BadNumberingInAMessageIsInvalidSyntax) {
  auto m = fragment_message(1, 1, u8(PayloadType::kIdi));
  Bytes b = encode_message(m);
  b[kHeaderSize + 4] = 0;  // Fragment Number 2 of 1
  b[kHeaderSize + 5] = 2;
  auto r = decode_message(b);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, DecodeErrorKind::kInvalidSyntax);
}

}  // namespace
}  // namespace mobike::wire
