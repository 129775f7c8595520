#include "daemon/progress_reporter.h"

#include <gtest/gtest.h>

#include <asio.hpp>

namespace mobike::daemon {
namespace {

using namespace std::chrono_literals;
using control::Progress;

TEST(ProgressThrottle, AtMostTenASecondAndAHeartbeatWhenNothingMoves) {
  ProgressThrottle t;
  ike::TimePoint t0{};
  EXPECT_TRUE(t.update(Progress{0, 0, 10, 0, 0}));
  EXPECT_LE(t.due(), t0);  // the first line at once
  t.sent(t0, Progress{0, 0, 10, 0, 0});
  // Unchanged counts: only the heartbeat (seconds do not count as a change).
  EXPECT_FALSE(t.update(Progress{0, 0, 10, 0, 0.05}));
  EXPECT_EQ(t.due(), t0 + ProgressThrottle::kHeartbeat);
  // A change: due kMinInterval after the last line.
  EXPECT_TRUE(t.update(Progress{1, 0, 9, 0, 0.05}));
  EXPECT_EQ(t.due(), t0 + ProgressThrottle::kMinInterval);
  t.sent(t0 + 100ms, Progress{1, 0, 9, 0, 0.1});
  EXPECT_EQ(t.due(), t0 + 100ms + ProgressThrottle::kHeartbeat);
  EXPECT_TRUE(t.update(Progress{1, 1, 9, 0, 0.1}));  // failed changed
  EXPECT_TRUE(t.update(Progress{1, 1, 9, 0, 0.1}));  // still unsent: still a change
  EXPECT_EQ(t.due(), t0 + 200ms);
}

TEST(ProgressReporter, SendsThrottledLinesThenTheLastOne) {
  asio::io_context io;
  std::vector<Progress> sent;
  Progress now{0, 0, 100, 0, 0};
  ProgressReporter r(
      io, [&](nlohmann::json line) { sent.push_back(control::progress_from_json(line).value()); }, [&] { return now; });
  r.changed();  // the first: at once
  ASSERT_EQ(sent.size(), 1u);
  for (int i = 1; i <= 50; ++i) {  // a burst: held back, then one line with the latest counts
    now.done = static_cast<std::uint64_t>(i);
    now.remaining = 100 - now.done;
    r.changed();
  }
  EXPECT_EQ(sent.size(), 1u);
  io.run_for(150ms);
  ASSERT_EQ(sent.size(), 2u);
  EXPECT_EQ(sent.back().done, 50u);
  // Nothing changes: a heartbeat within about a second.
  io.restart();
  io.run_for(1100ms);
  ASSERT_EQ(sent.size(), 3u);
  EXPECT_EQ(sent.back().done, 50u);
  // The end: a last line at once, however recent the previous one; then nothing more.
  now = Progress{100, 2, 0, 0, 1.5};
  r.finish();
  ASSERT_EQ(sent.size(), 4u);
  EXPECT_EQ(sent.back(), now);
  r.changed();
  io.restart();
  io.run_for(1200ms);
  EXPECT_EQ(sent.size(), 4u);
}

}  // namespace
}  // namespace mobike::daemon
