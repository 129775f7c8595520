// Progress lines of a bulk command (switch, cluster move/drain/rebalance) for the client
// that asked for them ("progress": true, control/protocol.h): sent as SAs finish, at most
// one per kMinInterval; at least one per kHeartbeat while the job runs, even when
// nothing moved, so that the client can give up on a silent daemon rather than on a long
// job; and the last one when the job ends, just before its answer.
#pragma once

#include <chrono>
#include <functional>
#include <optional>

#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>

#include "control/protocol.h"
#include "daemon/control_server.h"
#include "ike/types.h"

namespace mobike::daemon {

// When to send: no I/O, no clock of its own.
class ProgressThrottle {
 public:
  static constexpr ike::Duration kMinInterval{100};
  static constexpr ike::Duration kHeartbeat{1000};

  // The counts now; true when they differ from those last sent (a line is then due
  // kMinInterval after the last one, else kHeartbeat after it).
  bool update(const control::Progress& now_counts);
  // When the next line is due (may have passed; the first one is due at once).
  ike::TimePoint due() const;
  void sent(ike::TimePoint now, const control::Progress& p);

 private:
  static bool same_counts(const control::Progress& a, const control::Progress& b);
  std::optional<ike::TimePoint> last_;
  std::optional<control::Progress> last_sent_;
  bool dirty_ = true;
};

class ProgressReporter {
 public:
  using Snapshot = std::function<control::Progress()>;
  // `send`: the control server's interim sender; `snapshot`: the job's counts now.
  ProgressReporter(asio::io_context& io, ControlServer::Progress send, Snapshot snapshot);
  ~ProgressReporter();
  ProgressReporter(const ProgressReporter&) = delete;
  ProgressReporter& operator=(const ProgressReporter&) = delete;

  // SAs may have finished: a line now if one is due, else the timer brings it.
  void changed();
  // The job ended: the last line now, whatever the interval; nothing after it.
  void finish();

 private:
  void send_now(ike::TimePoint now);
  void arm(ike::TimePoint at);

  asio::steady_timer timer_;
  ControlServer::Progress send_;
  Snapshot snapshot_;
  ProgressThrottle throttle_;
  std::optional<ike::TimePoint> armed_at_;
  bool finished_ = false;
};

}  // namespace mobike::daemon
