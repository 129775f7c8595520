// One object per exchange kind, strongSwan-style: the initiator half builds a request
// and processes its response; the responder half of the same exchange sits beside it
// in the same file (see respond_* in services.h).
#pragma once

#include <optional>
#include <vector>

#include "ike/ike_sa.h"
#include "ike/services.h"
#include "wire/payloads.h"

namespace mobike::ike {

enum class TaskResult : std::uint8_t {
  kDone,     // exchange finished
  kFailed,   // the IKE SA cannot continue: delete it
  kRestart,  // send the request again from scratch (COOKIE, INVALID_KE_PAYLOAD)
  kContinue, // another round of the same exchange with the next Message ID (IKE_AUTH with EAP)
};

class Task {
 public:
  virtual ~Task() = default;
  virtual wire::ExchangeType exchange() const = 0;
  virtual const char* name() const = 0;
  // nullopt: nothing to do any more (the SA it was for is gone): the task is dropped.
  virtual std::optional<std::vector<wire::Payload>> build_request(IkeSa& sa, Services& s) = 0;
  virtual TaskResult process_response(IkeSa& sa, Services& s,
                                      const std::vector<wire::Payload>& payloads) = 0;
  // A request sent with a fixed Message ID instead of the SA's next one (RFC 6311's
  // synchronisation uses 0).
  virtual std::optional<std::uint32_t> message_id() const { return std::nullopt; }
  // An authentic response with the request's Message ID that is still not the answer
  // (RFC 6311: the nonce not echoed): dropped, and the request retransmitted as before.
  virtual bool accepts_response(const IkeSa&, const std::vector<wire::Payload>&) const { return true; }
  // Called when the IKE SA dies with this task queued or active.
  virtual void abort(IkeSa&, Services&) {}
  // The request is given up while the IKE SA lives on: a cluster move settled it on
  // another node, or an adopted request (Engine::adopt_request) got no answer here.
  virtual void abandon(IkeSa& sa, Services& s) { abort(sa, s); }
};

}  // namespace mobike::ike
