#include "esp/replay_window.h"

#include <gtest/gtest.h>

#include <random>
#include <set>

namespace mobike::esp {
namespace {

bool accept(ReplayWindow& w, std::uint32_t low) {
  auto s = w.check(low);
  if (!s) return false;
  w.update(*s);
  return true;
}

TEST(ReplayWindow, ValidSizes) {
  EXPECT_TRUE(ReplayWindow::valid_size(32));
  EXPECT_TRUE(ReplayWindow::valid_size(1024));
  EXPECT_TRUE(ReplayWindow::valid_size(1u << 20));
  EXPECT_FALSE(ReplayWindow::valid_size(0));
  EXPECT_FALSE(ReplayWindow::valid_size(16));
  EXPECT_FALSE(ReplayWindow::valid_size(1000));
  EXPECT_FALSE(ReplayWindow::valid_size(1u << 21));
  EXPECT_EQ(ReplayWindow().size(), 1024u);
  // An invalid size never yields a window smaller than asked for.
  EXPECT_EQ(ReplayWindow(1000).size(), 1024u);
  EXPECT_EQ(ReplayWindow(3).size(), 32u);
}

TEST(ReplayWindow, CheckDoesNotMarkOnlyUpdateDoes) {
  ReplayWindow w;
  // A packet whose ICV then fails must not block the genuine one with that number.
  ASSERT_EQ(w.check(1), 1u);
  ASSERT_EQ(w.check(1), 1u);
  w.update(1);
  EXPECT_FALSE(w.check(1));
  EXPECT_EQ(w.highest(), 1u);
}

TEST(ReplayWindow, ZeroIsNeverValid) {
  ReplayWindow w;
  EXPECT_FALSE(w.check(0));
  ReplayWindow esn(1024, true);
  EXPECT_FALSE(esn.check(0));
}

TEST(ReplayWindow, EdgesOfTheWindow) {
  ReplayWindow w(1024);
  ASSERT_TRUE(accept(w, 5000));
  // 5000 - 1023 is the oldest number still inside a 1024-packet window.
  EXPECT_EQ(w.check(5000 - 1023), std::optional<std::uint64_t>(5000 - 1023));
  EXPECT_FALSE(w.check(5000 - 1024));
  EXPECT_TRUE(accept(w, 5000 - 1023));
  EXPECT_FALSE(w.check(5000 - 1023));
  EXPECT_TRUE(accept(w, 4999));
  EXPECT_TRUE(accept(w, 5001));
  // The window slid by one: 5000 - 1023 is now too old even though never seen twice.
  EXPECT_FALSE(w.check(5001 - 1024));
  EXPECT_TRUE(accept(w, 5001 - 1023));
}

TEST(ReplayWindow, OutOfOrderAcceptedOnce) {
  ReplayWindow w(64);
  for (std::uint32_t s : {10u, 3u, 7u, 12u, 1u, 11u}) EXPECT_TRUE(accept(w, s)) << s;
  for (std::uint32_t s : {10u, 3u, 7u, 12u, 1u, 11u}) EXPECT_FALSE(w.check(s)) << s;
  for (std::uint32_t s : {2u, 4u, 5u, 6u, 8u, 9u}) EXPECT_TRUE(accept(w, s)) << s;
}

TEST(ReplayWindow, LargeJumpForgetsOldBits) {
  ReplayWindow w(1024);
  for (std::uint32_t s = 1; s <= 3000; ++s) ASSERT_TRUE(accept(w, s));
  // Jump exactly one ring forward and beyond: stale bits of the ring must not make
  // never-seen numbers look replayed.
  for (std::uint32_t jump : {3000u + 2048u, 3000u + 100000u}) {
    ASSERT_TRUE(accept(w, jump));
    for (std::uint32_t s = jump - 1023; s < jump; ++s) ASSERT_TRUE(accept(w, s)) << s;
  }
}

// Compares with a naive model (a set of every number seen) under random traffic.
class ReplayWindowModel : public ::testing::TestWithParam<std::uint32_t> {};

TEST_P(ReplayWindowModel, MatchesNaiveModel) {
  const std::uint32_t size = GetParam();
  ReplayWindow w(size);
  std::set<std::uint64_t> seen;
  std::uint64_t top = 0;
  std::mt19937_64 rng(size);
  std::uint64_t next = 1;
  int accepted = 0, rejected = 0;
  for (int i = 0; i < 20000; ++i) {
    // Mostly advancing, with reordering, duplicates and occasional jumps.
    std::uint64_t s;
    switch (rng() % 6) {
      case 0: s = next + rng() % (size * 3); break;
      case 1: s = next > size ? next - rng() % (size * 2) : next; break;
      case 2: s = next > 10 ? next - rng() % 10 : next; break;
      default: s = next++; break;
    }
    if (s == 0 || s > 0xffffffffu) continue;
    next = std::max(next, s + 1);
    const bool expect = !seen.count(s) && (s > top || top - s < size);
    auto got = w.check(static_cast<std::uint32_t>(s));
    ASSERT_EQ(got.has_value(), expect) << "seq " << s << " top " << top;
    if (got) {
      w.update(*got);
      seen.insert(s);
      top = std::max(top, s);
      ++accepted;
    } else {
      ++rejected;
    }
  }
  // The traffic mix must exercise both outcomes.
  EXPECT_GT(accepted, 1000);
  EXPECT_GT(rejected, 1000);
}

INSTANTIATE_TEST_SUITE_P(Sizes, ReplayWindowModel, ::testing::Values(32u, 64u, 128u, 1024u, 4096u));

TEST(ReplayWindowEsn, InfersHighBitsAcrossTheWrap) {
  ReplayWindow w(1024, true);
  ASSERT_TRUE(accept(w, 2000));
  // Same subspace, far ahead (case A, number above the window's bottom).
  ASSERT_EQ(w.check(0xfffffff0u), std::optional<std::uint64_t>(0xfffffff0u));
  w.update(0xfffffff0u);
  // Below the bottom of a window inside one subspace: it belongs to the next one.
  EXPECT_EQ(w.check(3), std::optional<std::uint64_t>(0x100000003ull));
  w.update(0x100000003ull);
  // The window now straddles the boundary (case B): high numbers are the old subspace.
  EXPECT_EQ(w.check(0xfffffff5u), std::optional<std::uint64_t>(0xfffffff5ull));
  EXPECT_FALSE(w.check(0xfffffff0u));  // already seen, 2^32 - 16
  EXPECT_EQ(w.check(0), std::optional<std::uint64_t>(0x100000000ull));  // low half 0 is fine now
  EXPECT_EQ(w.check(2), std::optional<std::uint64_t>(0x100000002ull));
  EXPECT_FALSE(w.check(3));
  // Below the straddling window's bottom: indistinguishable from a number far ahead,
  // and RFC 4303 A2.2 reads it that way; the ICV over the guessed high half then
  // rejects an old packet (kAuth), never delivers it.
  EXPECT_EQ(w.check(0xfffffff0u - 2000), std::optional<std::uint64_t>(0x1fffff820ull));
  EXPECT_EQ(w.highest(), 0x100000003ull);
}

TEST(ReplayWindowEsn, NoSubspaceBelowTheFirst) {
  ReplayWindow w(1024, true);
  // A fresh window straddles "below zero": numbers just under 2^32 would need a
  // high half of -1.
  EXPECT_FALSE(w.check(0xffffffffu));
  EXPECT_FALSE(w.check(0xfffffc01u));
  EXPECT_EQ(w.check(0xfffffc00u), std::optional<std::uint64_t>(0xfffffc00u));
}

TEST(ReplayWindowEsn, NoSubspaceAboveTheLast) {
  ReplayWindow w(64, true);
  // Walk up to the last subspace through jumps the inference can follow.
  std::uint64_t s = 100;
  ASSERT_TRUE(accept(w, static_cast<std::uint32_t>(s)));
  w.update(0xffffffff00000100ull);  // as if the history had got there
  EXPECT_EQ(w.highest(), 0xffffffff00000100ull);
  EXPECT_EQ(w.check(0x200), std::optional<std::uint64_t>(0xffffffff00000200ull));
  // Below the window in the last subspace would be 2^64 + x: refused.
  EXPECT_FALSE(w.check(0x10));
}

TEST(ReplayWindowEsn, RandomWalkAcrossBoundaries) {
  // The sender's real numbers around several 2^32 boundaries, delivered with
  // reordering within the window: every one must be inferred exactly.
  ReplayWindow w(256, true);
  std::mt19937_64 rng(7);
  std::uint64_t real = 1;
  ASSERT_TRUE(accept(w, 1));
  for (std::uint64_t boundary : {0x100000000ull, 0x200000000ull, 0x700000000ull}) {
    // Jump close to the boundary in steps the window can follow (< 2^31 each).
    while (boundary - real > 600) {
      real += std::min<std::uint64_t>(boundary - real - 500, 0x40000000ull);
      auto got = w.check(static_cast<std::uint32_t>(real));
      ASSERT_EQ(got, std::optional<std::uint64_t>(real));
      w.update(real);
    }
    for (int i = 0; i < 1000; ++i) {
      const std::uint64_t s = real + 1 + rng() % 8;
      const std::uint64_t late = s > 200 ? s - rng() % 200 : s;
      for (std::uint64_t x : {s, late}) {
        auto got = w.check(static_cast<std::uint32_t>(x));
        if (got) {
          ASSERT_EQ(*got, x);
          w.update(x);
        }
      }
      real = std::max(real, s);
    }
    EXPECT_GT(w.highest(), boundary);
  }
}

// A window another node continues from (cluster moves) accepts and refuses exactly
// what the original would.
TEST(ReplayWindow, StateRestoresTheSameDecisions) {
  std::mt19937_64 rng(42);
  for (bool esn : {false, true}) {
    ReplayWindow w(256, esn);
    const std::uint64_t base = esn ? 0xfffffe00ull : 1000;
    for (int i = 0; i < 600; ++i) {
      const std::uint64_t seq = base + rng() % 700;
      if (auto got = w.check(static_cast<std::uint32_t>(seq)); got && *got == seq) w.update(seq);
    }
    ReplayWindow copy(256, esn);
    copy.restore(w.state());
    EXPECT_EQ(copy.state(), w.state());
    EXPECT_EQ(copy.highest(), w.highest());
    for (std::uint64_t seq = w.highest() - 300; seq <= w.highest() + 5; ++seq)
      EXPECT_EQ(copy.check(static_cast<std::uint32_t>(seq)), w.check(static_cast<std::uint32_t>(seq))) << seq;

    // A smaller window keeps the newest part of the history.
    ReplayWindow small(64, esn);
    small.restore(w.state());
    for (std::uint64_t seq = w.highest() - 63; seq <= w.highest(); ++seq)
      EXPECT_EQ(small.check(static_cast<std::uint32_t>(seq)), w.check(static_cast<std::uint32_t>(seq))) << seq;
    // Behind the small window (under ESN the low bits read as the next subspace instead).
    const std::uint64_t behind = w.highest() - 64;
    EXPECT_NE(small.check(static_cast<std::uint32_t>(behind)), std::optional<std::uint64_t>(behind));
  }
}

TEST(ReplayWindow, StateOfAFreshWindowIsEmpty) {
  ReplayWindow w(128);
  auto s = w.state();
  EXPECT_EQ(s.top, 0u);
  ASSERT_EQ(s.received.size(), 2u);
  EXPECT_EQ(s.received[0] | s.received[1], 0u);
  ReplayWindow copy(128);
  copy.restore(s);
  EXPECT_EQ(copy.check(1), std::optional<std::uint64_t>(1));
}

}  // namespace
}  // namespace mobike::esp
