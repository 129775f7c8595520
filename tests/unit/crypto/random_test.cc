#include "crypto/random.h"

#include <gtest/gtest.h>

#include <set>

namespace mobike::crypto {
namespace {

TEST(SeededRandom, MatchesSplitmix64ReferenceOutput) {
  // Reference splitmix64 from seed 1234567: 6457827717110365317, 3203168211198807973;
  // fill() emits each 64-bit output least significant octet first.
  SeededRandom r(1234567);
  Bytes b = r.bytes(16);
  EXPECT_EQ(to_hex(b), "85fc08fb17d09e59a50f545884f0732c");
}

TEST(SeededRandom, SameSeedSameStreamDifferentSeedDifferentStream) {
  SeededRandom a(42), b(42), c(43);
  Bytes x = a.bytes(100);
  EXPECT_EQ(x, b.bytes(100));
  EXPECT_NE(x, c.bytes(100));
  EXPECT_NE(x, a.bytes(100));  // the stream advances
}

TEST(SeededRandom, ZeroSeedIsUsable) {
  SeededRandom r(0);
  Bytes b = r.bytes(32);
  EXPECT_NE(b, Bytes(32, 0));
  EXPECT_NE(r.u64(), r.u64());
}

TEST(SeededRandom, OddLengthsAreFilled) {
  SeededRandom r(7);
  std::set<std::string> seen;
  for (std::size_t n = 0; n < 20; ++n) {
    Bytes b = r.bytes(n);
    ASSERT_EQ(b.size(), n);
    if (n >= 8) {
      EXPECT_TRUE(seen.insert(to_hex(b)).second);
    }
  }
}

TEST(SystemRandom, ProducesDistinctValues) {
  SystemRandom r;
  std::set<std::string> seen;
  for (int i = 0; i < 64; ++i) EXPECT_TRUE(seen.insert(to_hex(r.bytes(16))).second);
  Bytes none = r.bytes(0);
  EXPECT_TRUE(none.empty());
  // All-zero output would mean the buffer was never written.
  Bytes big = r.bytes(1 << 20);
  EXPECT_NE(big, Bytes(1 << 20, 0));
}

}  // namespace
}  // namespace mobike::crypto
