#include "tools/progress_line.h"

#include <gtest/gtest.h>

#include <sstream>

namespace mobike::tools {
namespace {

using namespace std::chrono_literals;
using control::Progress;

// A clock the test moves by hand.
struct FakeClock {
  ProgressLine::TimePoint now{};
  ProgressLine::Clock fn() {
    return [this] { return now; };
  }
};

TEST(ProgressLine, FormatNamesEveryCountAndTheRate) {
  EXPECT_EQ(ProgressLine::format("switch", Progress{40, 2, 60, 8, 1.5}, 12.46),
            "switch: 40/100 done, 2 failed, 60 remaining (8 in flight), 12.5 SAs/s");
  // No rate yet, nothing in flight: both left out.
  EXPECT_EQ(ProgressLine::format("cluster drain", Progress{0, 0, 5, 0, 0}, std::nullopt),
            "cluster drain: 0/5 done, 0 failed, 5 remaining");
  EXPECT_EQ(ProgressLine::format("switch", Progress{5, 0, 0, 0, 2}, 0.0),
            "switch: 5/5 done, 0 failed, 0 remaining, 0.0 SAs/s");
}

TEST(ProgressLine, RedrawsInPlaceAndEndsWithANewline) {
  FakeClock clock;
  std::ostringstream out;
  ProgressLine line(out, true, "switch", clock.fn());
  line.update(Progress{0, 0, 12, 3, 0});
  EXPECT_EQ(out.str(), "\rswitch: 0/12 done, 0 failed, 12 remaining (3 in flight)");
  clock.now += 1s;
  line.update(Progress{4, 1, 8, 0, 1});
  EXPECT_EQ(out.str(),
            "\rswitch: 0/12 done, 0 failed, 12 remaining (3 in flight)"
            "\rswitch: 4/12 done, 1 failed, 8 remaining, 4.0 SAs/s    ");
  line.finish();
  line.finish();  // once only
  EXPECT_EQ(out.str().back(), '\n');
  EXPECT_EQ(out.str().find('\n'), out.str().size() - 1);
  line.update(Progress{12, 1, 0, 0, 3});  // after finish: nothing
  EXPECT_EQ(out.str().back(), '\n');
}

TEST(ProgressLine, ShorterLinesWipeWhatTheLongerOneLeft) {
  FakeClock clock;
  std::ostringstream out;
  ProgressLine line(out, true, "x", clock.fn());
  line.update(Progress{0, 0, 1000, 1000, 0});
  const std::string first = ProgressLine::format("x", Progress{0, 0, 1000, 1000, 0}, std::nullopt);
  out.str("");
  line.update(Progress{1, 0, 999, 0, 0});  // same instant: no rate
  const std::string second = ProgressLine::format("x", Progress{1, 0, 999, 0, 0}, std::nullopt);
  ASSERT_LT(second.size(), first.size());
  EXPECT_EQ(out.str(), "\r" + second + std::string(first.size() - second.size(), ' '));
}

TEST(ProgressLine, RateComesFromTheInjectedClockOverARecentWindow) {
  FakeClock clock;
  std::ostringstream out;
  ProgressLine line(out, true, "switch", clock.fn());
  EXPECT_FALSE(line.rate());
  line.update(Progress{0, 0, 100, 0, 0});
  EXPECT_FALSE(line.rate());  // one sample: no rate
  clock.now += 100ms;
  line.update(Progress{1, 0, 99, 0, 0});
  EXPECT_FALSE(line.rate());  // less than kMinRateSpan of history
  clock.now += 900ms;
  line.update(Progress{10, 0, 90, 0, 0});
  ASSERT_TRUE(line.rate());
  EXPECT_DOUBLE_EQ(*line.rate(), 10.0);  // 10 SAs in 1 s
  // 10 s at 2/s: the window forgets the faster start.
  for (int i = 1; i <= 10; ++i) {
    clock.now += 1s;
    line.update(Progress{10 + 2u * i, 0, 90 - 2u * i, 0, 0});
  }
  ASSERT_TRUE(line.rate());
  EXPECT_DOUBLE_EQ(*line.rate(), 2.0);
  // Nothing moves for a while: the rate falls to 0.
  for (int i = 0; i < 4; ++i) {
    clock.now += 1s;
    line.update(Progress{30, 0, 70, 0, 0});
  }
  EXPECT_DOUBLE_EQ(*line.rate(), 0.0);
  EXPECT_NE(out.str().find("0.0 SAs/s"), std::string::npos);
}

TEST(ProgressLine, DisabledWritesNothingAtAll) {
  FakeClock clock;
  std::ostringstream out;
  ProgressLine line(out, false, "switch", clock.fn());
  line.update(Progress{0, 0, 2, 0, 0});
  clock.now += 1s;
  line.update(Progress{2, 0, 0, 0, 1});
  line.finish();
  EXPECT_EQ(out.str(), "");
}

TEST(ProgressLine, NoNewlineWhenNothingWasDrawn) {
  std::ostringstream out;
  ProgressLine line(out, true, "switch");
  line.finish();  // an answer without any progress line (an old mobiked, an error)
  EXPECT_EQ(out.str(), "");
}

TEST(ProgressLine, DrawnOnlyForATerminalWithoutJson) {
  EXPECT_TRUE(progress_wanted(true, false));
  EXPECT_FALSE(progress_wanted(true, true));
  EXPECT_FALSE(progress_wanted(false, false));
  EXPECT_FALSE(progress_wanted(false, true));
}

}  // namespace
}  // namespace mobike::tools
