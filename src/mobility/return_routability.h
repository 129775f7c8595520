// The responder's return-routability check (RFC 4555 §3.7): an INFORMATIONAL request
// with a fresh COOKIE2 on the initiator's new path; the Child SAs move there only when
// the answer carries the cookie back, and arrives on that very path.
#pragma once

#include "ike/task.h"
#include "mobility/sa_state.h"

namespace mobike::mobility {

inline constexpr const char* kReturnRoutabilityTaskName = "MOBIKE_RR_CHECK";

class ReturnRoutabilityTask final : public ike::Task {
 public:
  wire::ExchangeType exchange() const override { return wire::ExchangeType::kInformational; }
  const char* name() const override { return kReturnRoutabilityTaskName; }
  std::optional<std::vector<wire::Payload>> build_request(ike::IkeSa& sa, ike::Services& s) override;
  ike::TaskResult process_response(ike::IkeSa& sa, ike::Services& s,
                                   const std::vector<wire::Payload>& payloads) override;
  void abort(ike::IkeSa& sa, ike::Services& s) override;

 private:
  Bytes cookie2_;
  Path checked_;
};

// Queues a check unless one is waiting to be sent (it will check the newest path).
void queue_return_routability(ike::IkeSa& sa, ike::Services& s);

}  // namespace mobike::mobility
