#include "tools/progress_line.h"

#include <cstdio>

namespace mobike::tools {

bool progress_wanted(bool stderr_is_terminal, bool json_output) { return stderr_is_terminal && !json_output; }

ProgressLine::ProgressLine(std::ostream& out, bool enabled, std::string label, Clock clock)
    : out_(out), enabled_(enabled), label_(std::move(label)), clock_(std::move(clock)) {}

std::string ProgressLine::format(std::string_view label, const control::Progress& p, std::optional<double> rate) {
  std::string s(label);
  s += ": " + std::to_string(p.done) + "/" + std::to_string(p.total()) + " done, " + std::to_string(p.failed) +
       " failed, " + std::to_string(p.remaining) + " remaining";
  if (p.in_flight) s += " (" + std::to_string(p.in_flight) + " in flight)";
  if (rate) {
    char buf[48];
    std::snprintf(buf, sizeof buf, ", %.1f SAs/s", *rate);
    s += buf;
  }
  return s;
}

std::optional<double> ProgressLine::rate() const {
  if (samples_.size() < 2) return std::nullopt;
  const auto& [t0, d0] = samples_.front();
  const auto& [t1, d1] = samples_.back();
  const auto span = std::chrono::duration<double>(t1 - t0).count();
  if (t1 - t0 < kMinRateSpan || span <= 0) return std::nullopt;
  return d1 >= d0 ? static_cast<double>(d1 - d0) / span : 0.0;
}

void ProgressLine::update(const control::Progress& p) {
  if (!enabled_ || finished_) return;
  const auto now = clock_();
  samples_.emplace_back(now, p.done);
  // Keep one sample at or before the window's start, so that the span covers it.
  while (samples_.size() > 2 && samples_[1].first <= now - kRateWindow) samples_.pop_front();
  std::string line = format(label_, p, rate());
  const std::size_t width = line.size();
  if (width < drawn_) line.append(drawn_ - width, ' ');  // wipe what the longer line left
  out_ << '\r' << line << std::flush;
  drawn_ = width;
}

void ProgressLine::finish() {
  if (finished_) return;
  finished_ = true;
  if (enabled_ && drawn_ > 0) out_ << '\n' << std::flush;
}

}  // namespace mobike::tools
