// MOBIKE's per-SA state as a cluster move carries it (mobility/sa_state_codec.h).
#include "mobility/sa_state_codec.h"

#include <gtest/gtest.h>

namespace mobike::mobility {
namespace {

IpAddress ip(const char* s) { return *IpAddress::parse(s); }

SaState sample() {
  SaState st;
  st.peer_addresses = {ip("192.0.2.7"), ip("2001:db8::7")};
  st.announced = {ip("198.51.100.20")};
  st.announced_once = true;
  st.committed = {{ip("198.51.100.10"), 4500}, {ip("198.51.100.2"), 61000}};
  st.updates = 3;
  st.peer_switch = true;
  st.list_due = true;
  st.rr_due = true;
  return st;
}

TEST(SaStateCodec, TheLastingPartSurvives) {
  const SaState st = sample();
  SaState back;
  ASSERT_TRUE(decode(encode(st), back));
  EXPECT_EQ(back.peer_addresses, st.peer_addresses);
  EXPECT_EQ(back.announced, st.announced);
  EXPECT_TRUE(back.announced_once);
  EXPECT_EQ(back.committed, st.committed);
  EXPECT_EQ(back.updates, 3u);
  EXPECT_TRUE(back.peer_switch);
  EXPECT_TRUE(back.list_due);
  EXPECT_FALSE(back.update_due);
  EXPECT_TRUE(back.rr_due);
}

TEST(SaStateCodec, TruncatedTrailingAndUnknownVersionsAreRefused) {
  const Bytes b = encode(sample());
  for (std::size_t n = 0; n < b.size(); ++n) {
    SaState st;
    EXPECT_FALSE(decode(ByteView(b.data(), n), st)) << n;
  }
  Bytes longer = b;
  longer.push_back(0);
  SaState st;
  EXPECT_FALSE(decode(longer, st));
  Bytes other = b;
  other[0] = 2;
  auto r = decode(other, st);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().find("unknown version 2"), std::string::npos) << r.error();
}

TEST(SaStateCodec, AnExchangeUnderWayKeepsTheSaHere) {
  SaState st;
  EXPECT_EQ(busy(st), "");
  st.probing = true;
  EXPECT_NE(busy(st), "");
  st = {};
  st.rr_pending = true;
  EXPECT_NE(busy(st), "");
  st = {};
  st.switch_state = SaState::Switch::kAwaitUpdate;
  EXPECT_NE(busy(st), "");
}

}  // namespace
}  // namespace mobike::mobility
