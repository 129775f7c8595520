// UPDATE_SA_ADDRESSES (RFC 4555 §3.5): the initiator's exchange with NAT detection (or
// NO_NATS_ALLOWED) and COOKIE2, the responder's processing of it, and the one function
// that moves an IKE SA and its Child SAs.
#pragma once

#include "ike/task.h"
#include "mobility/sa_state.h"

namespace mobike::mobility {

inline constexpr const char* kUpdateTaskName = "MOBIKE_UPDATE";

class MobikeUpdateTask final : public ike::Task {
 public:
  // `since`: when the move began (Stats::moves measures from there to its outcome).
  explicit MobikeUpdateTask(TimePoint since) : since_(since) {}
  wire::ExchangeType exchange() const override { return wire::ExchangeType::kInformational; }
  const char* name() const override { return kUpdateTaskName; }
  std::optional<std::vector<wire::Payload>> build_request(ike::IkeSa& sa, ike::Services& s) override;
  ike::TaskResult process_response(ike::IkeSa& sa, ike::Services& s,
                                   const std::vector<wire::Payload>& payloads) override;
  void abort(ike::IkeSa& sa, ike::Services& s) override;

 private:
  Bytes cookie2_;
  Path sent_;  // the path this request announces (the SA may move on while it runs)
  TimePoint since_;
};

// Queues an update unless one is already waiting to be sent (it will carry the newest
// addresses; one in flight is followed by this one: a change while waiting restarts
// the procedure, §3.5). `since`: when the move began, if before now (an update
// carried over to the SA that replaced this one).
void queue_update(ike::IkeSa& sa, ike::Services& s, std::optional<TimePoint> since = std::nullopt);

// Records a move this side asked for in Stats::moves.
void record_move(ike::Services& s, ike::MobilityOutcome outcome, TimePoint since);

// Responder: UPDATE_SA_ADDRESSES arrived on (local, remote). Adds the notifies of the
// response (UNACCEPTABLE_ADDRESSES on refusal).
void respond_update(ike::IkeSa& sa, ike::Services& s, const std::vector<wire::Payload>& request,
                    const Endpoint& local, const Endpoint& remote, std::vector<wire::Payload>& response);

// Re-arms the timer that runs work deferred during an IKE SA rekey shortly.
void defer_during_rekey(ike::IkeSa& sa, ike::Services& s);
// An update or return-routability check met an IKE SA that is being rekeyed or was
// replaced: runs it on the successor if that is up, else marks it due (SaState
// update_due / rr_due) for the timer or for the successor to inherit.
void forward_update(ike::IkeSa& sa, ike::Services& s);
void forward_return_routability(ike::IkeSa& sa, ike::Services& s);

// The one place that moves an IKE SA: new endpoints, keepalives, every Child SA in the
// data plane, the committed path, one event.
void move_ike_sa(ike::IkeSa& sa, ike::Services& s, const Endpoint& local, const Endpoint& remote);

}  // namespace mobike::mobility
