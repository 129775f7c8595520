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
  version[0] = 3;
  auto v = decode_record(version);
  ASSERT_FALSE(v);
  EXPECT_NE(v.error().find("unknown version 3"), std::string::npos);
  Bytes flags = b;
  flags[flags.size() - 2] = 0x80;
  EXPECT_FALSE(decode_record(flags)) << "an unknown flag";
  Bytes address = b;
  address.back() = 5;
  address.insert(address.end(), 5, 1);
  EXPECT_FALSE(decode_record(address)) << "an address of 5 octets";
}

TEST(SaRecord, CarriesTheOldNodeSendsFlowAndReadsVersion1) {
  SaRecord moving{SaRecord::Phase::kMoving, "gw2", "gw1", Bytes(10, 1), ""};
  moving.old_node_sends = true;
  SaRecord ready{SaRecord::Phase::kReady, "gw2", "gw1", {}, ""};
  ready.switch_to = IpAddress::parse("2001:db8::12");
  SaRecord returned{SaRecord::Phase::kReturned, "gw1", "gw2", {}, "no update"};
  returned.answered = true;
  for (const SaRecord& r : {moving, ready, returned}) {
    auto back = decode_record(encode_record(r));
    ASSERT_TRUE(back) << back.error();
    EXPECT_EQ(*back, r);
  }
  // What a node of the previous version wrote: no flags, no address.
  Bytes v1 = encode_record(SaRecord{SaRecord::Phase::kOwned, "gw1", "", {}, ""});
  v1.resize(v1.size() - 2);
  v1[0] = 1;
  auto back = decode_record(v1);
  ASSERT_TRUE(back) << back.error();
  EXPECT_EQ(back->phase, SaRecord::Phase::kOwned);
  EXPECT_EQ(back->owner, "gw1");
  Bytes v1_ready = v1;
  v1_ready[1] = 4;
  EXPECT_FALSE(decode_record(v1_ready)) << "version 1 had no {ready}";
}

TEST(SaRecord, NamesAreFixedWidthHex) {
  EXPECT_EQ(Node::sa_name(0x1, 0xfedcba9876543210ull), "0000000000000001-fedcba9876543210");
}

}  // namespace
}  // namespace mobike::cluster
