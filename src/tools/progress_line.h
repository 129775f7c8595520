// mobikectl's live progress line for bulk commands (switch, cluster move/drain/
// rebalance): drawn on a terminal (stderr) and redrawn in place with '\r' as progress
// lines arrive from mobiked, e.g.
//   switch: 40/100 done, 2 failed, 60 remaining (8 in flight), 12.5 SAs/s
// and ended with a newline before the usual output. Disabled (not a terminal, or
// --json) it writes nothing at all, so that the output is exactly what it was without it.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <utility>

#include "control/protocol.h"

namespace mobike::tools {

// Whether to draw: only for a person watching stderr, and never with --json.
bool progress_wanted(bool stderr_is_terminal, bool json_output);

class ProgressLine {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;
  using Clock = std::function<TimePoint()>;
  // The rate is taken over about this much of the latest history.
  static constexpr std::chrono::milliseconds kRateWindow{3000};
  // Less history than this gives no rate yet.
  static constexpr std::chrono::milliseconds kMinRateSpan{200};

  ProgressLine(std::ostream& out, bool enabled, std::string label, Clock clock = std::chrono::steady_clock::now);

  // One progress line from mobiked: redraws the line.
  void update(const control::Progress& p);
  // The command has its answer: a newline after the line, if one was drawn. Idempotent.
  void finish();

  // SAs done per second over the last kRateWindow (from the injected clock); nullopt
  // while less than kMinRateSpan of history is known.
  std::optional<double> rate() const;

  // The text of the line, without '\r' or padding.
  static std::string format(std::string_view label, const control::Progress& p, std::optional<double> rate);

 private:
  std::ostream& out_;
  bool enabled_;
  std::string label_;
  Clock clock_;
  std::deque<std::pair<TimePoint, std::uint64_t>> samples_;  // (when, done)
  // Width of the line on screen; 0: nothing drawn.
  std::size_t drawn_ = 0;
  bool finished_ = false;
};

}  // namespace mobike::tools
