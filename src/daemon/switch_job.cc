#include "daemon/switch_job.h"

#include <algorithm>
#include <cmath>

namespace mobike::daemon {

using json = nlohmann::json;

SwitchJob::SwitchJob(std::vector<std::uint64_t> ids, std::vector<std::pair<std::uint64_t, std::string>> skipped,
                     IpAddress to, double rate, ike::TimePoint now)
    : ids_(std::move(ids)), to_(to), rate_(rate), started_(now) {
  for (auto& [id, why] : skipped) entries_[id] = {Outcome::kNotStarted, std::move(why)};
  total_ = ids_.size() + entries_.size();
  ended_ = failed_ = entries_.size();
}

std::optional<ike::TimePoint> SwitchJob::start_due(ike::TimePoint now, const Starter& start) {
  std::size_t due = ids_.size();
  if (rate_ > 0) {
    double elapsed = std::chrono::duration<double>(now - started_).count();
    due = std::min(ids_.size(), static_cast<std::size_t>(std::floor(elapsed * rate_)) + 1);
  }
  for (; next_ < due; ++next_) {
    auto id = ids_[next_];
    if (auto ok = start(id, to_); !ok) {
      entries_[id] = {Outcome::kNotStarted, ok.error()};
      ended_++;
      failed_++;
    } else {
      entries_[id] = {Outcome::kRunning, ""};  // the outcome comes as an event, later
      running_++;
    }
  }
  if (next_ == ids_.size()) return std::nullopt;
  return started_ + std::chrono::duration_cast<ike::Duration>(std::chrono::duration<double>(next_ / rate_));
}

void SwitchJob::finish(std::uint64_t id, Outcome outcome, std::string detail) {
  auto it = entries_.find(id);
  if (it == entries_.end() || it->second.outcome != Outcome::kRunning) return;
  it->second = {outcome, std::move(detail)};
  running_--;
  ended_++;
  if (outcome != Outcome::kSwitched) failed_++;
}

void SwitchJob::on_event(const ike::Event& e) {
  switch (e.kind) {
    case ike::EventKind::kSwitchSucceeded:
      finish(e.ike_sa_id, Outcome::kSwitched, e.detail);
      break;
    case ike::EventKind::kSwitchRefused:
      finish(e.ike_sa_id, Outcome::kRefused, e.detail);
      break;
    case ike::EventKind::kSwitchFailed:
      finish(e.ike_sa_id, Outcome::kFailed, e.detail);
      break;
    case ike::EventKind::kIkeRekeyed:
      // The switch goes on with the new IKE SA (its outcome comes under the new id);
      // the old one's deletion is no failure.
      if (auto it = entries_.find(e.replaces); e.replaces && it != entries_.end()) {
        auto entry = std::move(it->second);
        entries_.erase(it);
        entry.detail = "IKE SA #" + std::to_string(e.replaces) + " rekeyed to #" + std::to_string(e.ike_sa_id);
        entries_[e.ike_sa_id] = std::move(entry);
      }
      for (auto& id : ids_)
        if (id == e.replaces) id = e.ike_sa_id;  // not started yet: start the successor
      break;
    case ike::EventKind::kIkeDeleted:
    case ike::EventKind::kIkeFailed:
      finish(e.ike_sa_id, Outcome::kFailed, "the IKE SA ended: " + e.detail);
      break;
    default:
      break;
  }
}

std::size_t SwitchJob::cancel(const std::string& why) {
  std::size_t n = ids_.size() - next_;
  for (; next_ < ids_.size(); ++next_) entries_[ids_[next_]] = {Outcome::kNotStarted, why};
  ended_ += n;
  failed_ += n;
  return n;
}

void SwitchJob::abandon(const std::string& why) {
  cancel(why);
  for (auto& [id, e] : entries_)
    if (e.outcome == Outcome::kRunning) e = {Outcome::kFailed, why};
  ended_ += running_;
  failed_ += running_;
  running_ = 0;
}

control::Progress SwitchJob::progress(ike::TimePoint now) const {
  control::Progress p;
  p.done = ended_;
  p.failed = failed_;
  p.remaining = total_ > ended_ ? total_ - ended_ : 0;
  p.in_flight = std::min<std::uint64_t>(running_, p.remaining);
  p.seconds = std::chrono::duration<double>(now - started_).count();
  return p;
}

json SwitchJob::result(ike::TimePoint now) const {
  std::uint64_t counts[5] = {};
  json sas = json::array();
  for (const auto& [id, e] : entries_) {
    counts[static_cast<int>(e.outcome)]++;
    static constexpr const char* kNames[] = {"running", "switched", "refused", "failed", "not started"};
    sas.push_back({{"sa", id}, {"result", kNames[static_cast<int>(e.outcome)]}, {"detail", e.detail}});
  }
  return {{"to", to_.to_string()},
          {"switched", counts[1]},
          {"refused", counts[2]},
          {"failed", counts[3]},
          {"not_started", counts[4]},
          {"seconds", std::chrono::duration<double>(now - started_).count()},
          {"sas", std::move(sas)}};
}

}  // namespace mobike::daemon
