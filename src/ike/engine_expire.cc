// Child SA limits the data plane enforces (RFC 4301 §4.4.2.1 SA lifetimes by volume as
// well as time, and RFC 4303 §3.3.3 sequence number exhaustion): its reports start a
// rekey (soft) or a delete (hard), the way the engine's own timers do for time.
#include "ike/child_sa.h"
#include "ike/create_child.h"
#include "ike/engine.h"
#include "ike/informational.h"

namespace mobike::ike {

std::string_view to_string(ExpireCause c) {
  switch (c) {
    case ExpireCause::kBytes: return "bytes";
    case ExpireCause::kPackets: return "packets";
    case ExpireCause::kTime: return "time";
    case ExpireCause::kSequence: return "sequence numbers";
  }
  return "?";
}

bool Engine::on_child_expire(std::uint64_t child_sa_id, bool hard, ExpireCause cause, TimePoint now) {
  now_ = now;
  IkeSa* sa = nullptr;
  ChildSa* child = nullptr;
  for (auto& [id, candidate] : by_id_)
    if ((child = candidate->find_child(child_sa_id))) {
      sa = candidate;
      break;
    }
  // A report can overtake the delete of a Child SA the engine already replaced, and a
  // moving SA starts nothing (its timers stay due; the new owner rekeys it).
  if (!sa || sa->state == IkeState::kDead || sa->handoff != Handoff::kNone) return false;
  const std::string what = std::string(hard ? "hard" : "soft") + " limit (" + std::string(to_string(cause)) + ")";
  bool acted = false;
  if (hard) {
    if (child->state != ChildState::kDeleting) {
      // The data plane no longer carries it: tell the peer, as at the end of its lifetime.
      child->expire_at = child->rekey_at = TimePoint::max();
      stats_.child_hard_expired++;
      log(LogLevel::kInfo, sa, "Child SA " + std::to_string(child_sa_id) + " reached its " + what + ": deleting");
      queue_task(*sa, std::make_unique<ChildDeleteTask>(child_sa_id));
      acted = true;
    }
  } else if (child->state == ChildState::kInstalled && child->config && sa->state == IkeState::kEstablished &&
             child->rekeyed_to == 0 && !child->soft_expired) {
    child->rekey_at = TimePoint::max();
    child->soft_expired = true;
    stats_.child_soft_expired++;
    log(LogLevel::kInfo, sa, "Child SA " + std::to_string(child_sa_id) + " reached its " + what + ": rekeying");
    queue_task(*sa, std::make_unique<ChildCreateTask>(child->config, child_sa_id));
    acted = true;
  }
  if (acted) reschedule(*sa);
  reap();
  return acted;
}

}  // namespace mobike::ike
