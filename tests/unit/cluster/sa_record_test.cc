// The record a cluster keeps under sas/<spi_i>-<spi_r> (cluster/node.h).
#include <gtest/gtest.h>

#include "cluster/node.h"

namespace mobike::cluster {
namespace {

TEST(SaRecord, RoundTripsAndRefusesDamage) {
  SaRecord r{SaRecord::Phase::kMoving, "gw2", "gw1", Bytes(100, 0x5a), ""};
  auto back = decode_record(encode_record(r));
  ASSERT_TRUE(back) << back.error();
  EXPECT_EQ(*back, r);
  SaRecord returned{SaRecord::Phase::kReturned, "gw1", "gw2", {}, "the client refused the switch"};
  back = decode_record(encode_record(returned));
  ASSERT_TRUE(back) << back.error();
  EXPECT_EQ(*back, returned);

  const Bytes b = encode_record(r);
  for (std::size_t n = 0; n < b.size(); ++n) EXPECT_FALSE(decode_record(ByteView(b.data(), n))) << n;
  Bytes longer = b;
  longer.push_back(0);
  EXPECT_FALSE(decode_record(longer));
  Bytes phase = b;
  phase[1] = 9;
  EXPECT_FALSE(decode_record(phase));
  Bytes version = b;
  version[0] = 2;
  auto v = decode_record(version);
  ASSERT_FALSE(v);
  EXPECT_NE(v.error().find("unknown version 2"), std::string::npos);
}

TEST(SaRecord, NamesAreFixedWidthHex) {
  EXPECT_EQ(Node::sa_name(0x1, 0xfedcba9876543210ull), "0000000000000001-fedcba9876543210");
}

}  // namespace
}  // namespace mobike::cluster
