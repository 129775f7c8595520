#include "daemon/progress_reporter.h"

namespace mobike::daemon {

bool ProgressThrottle::same_counts(const control::Progress& a, const control::Progress& b) {
  return a.done == b.done && a.failed == b.failed && a.remaining == b.remaining && a.in_flight == b.in_flight;
}

bool ProgressThrottle::update(const control::Progress& p) {
  if (!last_sent_ || !same_counts(*last_sent_, p)) dirty_ = true;
  return dirty_;
}

ike::TimePoint ProgressThrottle::due() const {
  if (!last_) return ike::TimePoint::min();
  return *last_ + (dirty_ ? kMinInterval : kHeartbeat);
}

void ProgressThrottle::sent(ike::TimePoint now, const control::Progress& p) {
  last_ = now;
  last_sent_ = p;
  dirty_ = false;
}

ProgressReporter::ProgressReporter(asio::io_context& io, ControlServer::Progress send, Snapshot snapshot)
    : timer_(io), send_(std::move(send)), snapshot_(std::move(snapshot)) {}

ProgressReporter::~ProgressReporter() { timer_.cancel(); }

void ProgressReporter::changed() {
  if (finished_) return;
  throttle_.update(snapshot_());
  const auto now = ike::Clock::now();
  if (now >= throttle_.due()) send_now(now);
  arm(throttle_.due());
}

void ProgressReporter::finish() {
  if (finished_) return;
  send_now(ike::Clock::now());
  finished_ = true;
  timer_.cancel();
}

void ProgressReporter::send_now(ike::TimePoint now) {
  auto p = snapshot_();
  throttle_.sent(now, p);
  if (send_) send_(control::progress_line(p));
}

void ProgressReporter::arm(ike::TimePoint at) {
  if (armed_at_ && *armed_at_ == at) return;  // already waiting for it
  armed_at_ = at;
  timer_.expires_at(at);
  // The handler runs (aborted) even after the reporter is gone: `this` only when not aborted.
  timer_.async_wait([this](const std::error_code& ec) {
    if (ec) return;
    armed_at_.reset();
    changed();
  });
}

}  // namespace mobike::daemon
