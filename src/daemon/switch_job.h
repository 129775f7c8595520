// One operator switch (`mobikectl switch`): starts the responder-initiated switch of a
// set of IKE SAs at the requested rate, gathers each SA's outcome from the engine's
// events, and knows when every one has ended. No I/O: the daemon drives it.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/expected.h"
#include "common/ip_address.h"
#include "control/protocol.h"
#include "ike/types.h"

namespace mobike::daemon {

class SwitchJob {
 public:
  // `skipped`: SAs named by the request that cannot take part, with the reason.
  SwitchJob(std::vector<std::uint64_t> ids, std::vector<std::pair<std::uint64_t, std::string>> skipped,
            IpAddress to, double rate, ike::TimePoint now);

  using Starter = std::function<Expected<void, std::string>(std::uint64_t id, const IpAddress& to)>;
  // Starts the switches due by `now`; returns when the next ones are due, if any remain.
  std::optional<ike::TimePoint> start_due(ike::TimePoint now, const Starter& start);
  // The engine's events: the outcome of a switch, or the end of an SA while switching.
  void on_event(const ike::Event& e);
  bool done() const { return next_ == ids_.size() && running_ == 0; }
  // Starts nothing more: the SAs not started yet end as "not started" with `why`. The
  // switches in flight run to their outcome (the initiators were asked already).
  // Returns how many SAs will not be started.
  std::size_t cancel(const std::string& why);
  // Ends the job at once (the daemon stops): switches in flight count as failed.
  void abandon(const std::string& why);
  nlohmann::json result(ike::TimePoint now) const;
  // Counts for progress lines (O(1)): done = every SA with an outcome, failed = those
  // not switched.
  control::Progress progress(ike::TimePoint now) const;

 private:
  enum class Outcome : std::uint8_t { kRunning, kSwitched, kRefused, kFailed, kNotStarted };
  struct Entry {
    Outcome outcome = Outcome::kRunning;
    std::string detail;
  };
  void finish(std::uint64_t id, Outcome outcome, std::string detail);

  std::vector<std::uint64_t> ids_;
  std::size_t next_ = 0;  // ids_[next_..] are not started yet
  std::size_t running_ = 0;
  std::uint64_t total_ = 0;   // every SA of the job, skipped ones included
  std::uint64_t ended_ = 0;   // with an outcome
  std::uint64_t failed_ = 0;  // of ended_: not switched
  IpAddress to_;
  double rate_;
  ike::TimePoint started_;
  std::map<std::uint64_t, Entry> entries_;
};

}  // namespace mobike::daemon
