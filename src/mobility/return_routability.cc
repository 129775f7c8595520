#include "mobility/return_routability.h"

#include <algorithm>

#include "mobility/update.h"

namespace mobike::mobility {

using ike::IkeSa;
using ike::LogLevel;
using ike::Services;
using ike::TaskResult;
using wire::NotifyType;
using wire::Payload;

void queue_return_routability(IkeSa& sa, Services& s) {
  if (!waiting(sa, kReturnRoutabilityTaskName)) s.queue(sa, std::make_unique<ReturnRoutabilityTask>());
}

std::optional<std::vector<Payload>> ReturnRoutabilityTask::build_request(IkeSa& sa, Services& s) {
  auto& st = state(sa);
  if (!st.rr_pending) return std::nullopt;
  if (sa.state != ike::IkeState::kEstablished) {
    if (sa.state == ike::IkeState::kRekeying || sa.rekeyed_to) forward_return_routability(sa, s);
    return std::nullopt;
  }
  cookie2_ = s.random().bytes(16);
  checked_ = {sa.local, sa.remote};
  return std::vector<Payload>{wire::make_notify(NotifyType::kCookie2, cookie2_)};
}

void ReturnRoutabilityTask::abort(IkeSa& sa, Services& s) {
  // The IKE SA was replaced before the check was answered: the new one checks.
  if (sa.rekeyed_to && state(sa).rr_pending) forward_return_routability(sa, s);
}

TaskResult ReturnRoutabilityTask::process_response(IkeSa& sa, Services& s, const std::vector<Payload>& payloads) {
  auto* cookie = wire::find_notify(payloads, NotifyType::kCookie2);
  if (!cookie || !equal_ct(cookie->data, cookie2_)) {
    // §3.7: the sender MUST close the IKE SA when the cookie does not come back.
    s.log(LogLevel::kWarn, &sa, "COOKIE2 missing or wrong in the return-routability answer");
    return TaskResult::kFailed;
  }
  auto& st = state(sa);
  Path now{sa.local, sa.remote};
  if (st.last_response_path == now && now == checked_) {
    move_ike_sa(sa, s, sa.local, sa.remote);
    s.stats().moves_followed++;
  } else if (st.rr_pending) {
    // The initiator moved again meanwhile, or the answer took another path: check anew.
    queue_return_routability(sa, s);
  }
  return TaskResult::kDone;
}

}  // namespace mobike::mobility
