// MOBIKE (RFC 4555) address updates: the initiator's UPDATE_SA_ADDRESSES exchange with
// NAT detection and a COOKIE2 return-routability check (§3.5, §3.7), and the
// responder's processing of it. Path probing, address lists and the responder-initiated
// switch build on this (issues 4 and 5).
#pragma once

#include "ike/task.h"

namespace mobike::ike {

class MobikeUpdateTask final : public Task {
 public:
  wire::ExchangeType exchange() const override { return wire::ExchangeType::kInformational; }
  const char* name() const override { return "MOBIKE_UPDATE"; }
  std::optional<std::vector<wire::Payload>> build_request(IkeSa& sa, Services& s) override;
  TaskResult process_response(IkeSa& sa, Services& s,
                              const std::vector<wire::Payload>& payloads) override;

 private:
  Bytes cookie2_;
  Endpoint sent_from_;
};

// Responder side of an INFORMATIONAL request that arrived on (local, remote): handles
// UPDATE_SA_ADDRESSES (moves the IKE SA and its Child SAs to the request's addresses),
// answers NAT detection and echoes COOKIE2 (any INFORMATIONAL may carry them).
// Appends the notifies for the response.
void respond_mobike(IkeSa& sa, Services& s, const std::vector<wire::Payload>& request, const Endpoint& local,
                    const Endpoint& remote, std::vector<wire::Payload>& response);

// The one place that moves an IKE SA: new endpoints, NAT conditions, every Child SA in
// the data plane, one event.
void move_ike_sa(IkeSa& sa, Services& s, const Endpoint& local, const Endpoint& remote);

}  // namespace mobike::ike
