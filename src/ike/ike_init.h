// IKE_SA_INIT (RFC 7296 §1.2, §2.6 cookies, §2.7 INVALID_KE_PAYLOAD, §2.23 NAT-D).
#pragma once

#include <optional>
#include <vector>

#include "ike/task.h"

namespace mobike::ike {

class IkeInitTask final : public Task {
 public:
  wire::ExchangeType exchange() const override { return wire::ExchangeType::kIkeSaInit; }
  const char* name() const override { return "IKE_SA_INIT"; }
  std::optional<std::vector<wire::Payload>> build_request(IkeSa& sa, Services& s) override;
  TaskResult process_response(IkeSa& sa, Services& s,
                              const std::vector<wire::Payload>& payloads) override;

 private:
  std::uint16_t group_ = 0;  // 0 = first group of our first proposal
  int retries_ = 0;
};

// Responder: builds the response to an IKE_SA_INIT request for a fresh SA whose
// SPIs, endpoints and config are set. On failure returns the error notify to send
// (and the SA is to be discarded).
struct InitResponse {
  std::vector<wire::Payload> payloads;
  bool ok = false;
};
InitResponse respond_ike_sa_init(IkeSa& sa, Services& s,
                                 const std::vector<wire::Payload>& request);

// Both sides: derives SK_* from the exchanged material and sets up the SK ciphers;
// `rekeyed` is the IKE SA being replaced, if any.
bool derive_ike_sa_keys(IkeSa& sa, ByteView shared_secret, const IkeSa* rekeyed);
// Both sides: NAT detection from the peer's NAT_DETECTION_*_IP notifies.
void evaluate_nat_detection(IkeSa& sa, const std::vector<wire::Payload>& payloads,
                            bool force_encap);
// Our NAT_DETECTION_SOURCE_IP and _DESTINATION_IP notifies for the SA's endpoints.
void add_nat_detection(const IkeSa& sa, std::vector<wire::Payload>& out, bool force_encap,
                       crypto::Random& random);

}  // namespace mobike::ike
