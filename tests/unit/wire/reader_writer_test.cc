#include <gtest/gtest.h>

#include "common/bytes.h"
#include "wire/reader.h"
#include "wire/writer.h"

namespace mobike::wire {
namespace {

TEST(Reader, ReadsBigEndianIntegersOfEveryWidth) {
  Bytes b = from_hex("01 0203 04050607 08090a0b0c0d0e0f");
  Reader r(b);
  std::uint8_t a = 0;
  std::uint16_t c = 0;
  std::uint32_t d = 0;
  std::uint64_t e = 0;
  ASSERT_TRUE(r.read_u8(a));
  ASSERT_TRUE(r.read_u16(c));
  ASSERT_TRUE(r.read_u32(d));
  ASSERT_TRUE(r.read_u64(e));
  EXPECT_EQ(a, 0x01);
  EXPECT_EQ(c, 0x0203);
  EXPECT_EQ(d, 0x04050607u);
  EXPECT_EQ(e, 0x08090a0b0c0d0e0full);
  EXPECT_TRUE(r.empty());
}

TEST(Reader, FailedReadDoesNotAdvanceOrWrite) {
  Bytes b = from_hex("aabbcc");
  Reader r(b);
  std::uint32_t v = 0x12345678;
  EXPECT_FALSE(r.read_u32(v));
  EXPECT_EQ(v, 0x12345678u);
  EXPECT_EQ(r.offset(), 0u);
  Bytes out = {9};
  EXPECT_FALSE(r.read_bytes(4, out));
  EXPECT_EQ(out, Bytes{9});
  EXPECT_FALSE(r.skip(4));
  EXPECT_FALSE(r.sub_reader(4).has_value());
  EXPECT_EQ(r.remaining(), 3u);
  // A read that fits still works after the failures.
  std::uint16_t w = 0;
  ASSERT_TRUE(r.read_u16(w));
  EXPECT_EQ(w, 0xaabb);
}

TEST(Reader, ReadsExactlyToTheEndButNotBeyond) {
  Bytes b = from_hex("0102");
  Reader r(b);
  ByteView v;
  ASSERT_TRUE(r.read_view(2, v));
  EXPECT_EQ(to_hex(v), "0102");
  std::uint8_t x = 0;
  EXPECT_FALSE(r.read_u8(x));
  EXPECT_TRUE(r.read_view(0, v));
  EXPECT_TRUE(v.empty());
}

TEST(Reader, HugeLengthsDoNotWrapAround) {
  Bytes b = from_hex("01020304");
  Reader r(b);
  ASSERT_TRUE(r.skip(1));
  ByteView v;
  EXPECT_FALSE(r.read_view(SIZE_MAX, v));
  EXPECT_FALSE(r.skip(SIZE_MAX));
  EXPECT_EQ(r.remaining(), 3u);
}

TEST(Reader, SubReaderIsConfinedToItsRegion) {
  Bytes b = from_hex("0002 aabb cc");
  Reader r(b);
  std::uint16_t len = 0;
  ASSERT_TRUE(r.read_u16(len));
  auto sub = r.sub_reader(len);
  ASSERT_TRUE(sub);
  std::uint16_t inner = 0;
  ASSERT_TRUE(sub->read_u16(inner));
  EXPECT_EQ(inner, 0xaabb);
  std::uint8_t beyond = 0;
  EXPECT_FALSE(sub->read_u8(beyond)) << "the sub-reader must not see the parent's next octet";
  ASSERT_TRUE(r.read_u8(beyond));
  EXPECT_EQ(beyond, 0xcc);
}

TEST(Reader, ReadRestEmptiesTheReader) {
  Bytes b = from_hex("010203");
  Reader r(b);
  ASSERT_TRUE(r.skip(1));
  EXPECT_EQ(to_hex(r.peek_rest()), "0203");
  EXPECT_EQ(r.read_rest_bytes(), from_hex("0203"));
  EXPECT_TRUE(r.empty());
}

TEST(Writer, WritesBigEndian) {
  Writer w;
  w.u8(0x01);
  w.u16(0x0203);
  w.u32(0x04050607);
  w.u64(0x08090a0b0c0d0e0f);
  w.zeros(2);
  Bytes tail = {0xee};
  w.bytes(tail);
  EXPECT_EQ(to_hex(std::move(w).take()), "0102030405060708090a0b0c0d0e0f0000ee");
}

TEST(Writer, PatchesReservedLengthsWithTheCoveredSize) {
  Writer w;
  w.u8(0xff);  // not covered
  std::size_t start = w.size();
  w.u8(0x00);
  w.u8(0x00);
  auto len16 = w.open_length16(start);
  w.u32(0xdeadbeef);
  EXPECT_TRUE(w.close(len16));
  auto len32 = w.open_length32(0);
  w.u8(0x99);
  w.close(len32);
  w.patch_u8(1, 0x2a);
  EXPECT_EQ(to_hex(w.data()), "ff2a000008deadbeef0000000e99");
}

TEST(Writer, ReaderReadsBackWhatWriterWrote) {
  Writer w;
  w.u16(0xbeef);
  w.u64(0x0123456789abcdefull);
  Bytes b = std::move(w).take();
  Reader r(b);
  std::uint16_t a = 0;
  std::uint64_t c = 0;
  ASSERT_TRUE(r.read_u16(a));
  ASSERT_TRUE(r.read_u64(c));
  EXPECT_EQ(a, 0xbeef);
  EXPECT_EQ(c, 0x0123456789abcdefull);
}

}  // namespace
}  // namespace mobike::wire
