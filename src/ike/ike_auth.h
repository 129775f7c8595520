// IKE_AUTH (RFC 7296 §1.2; authentication in ike/authenticator.h) and the first Child SA
// (§1.3 in IKE_AUTH, §2.9 traffic selectors); MOBIKE_SUPPORTED (RFC 4555 §3.2).
#pragma once

#include <optional>

#include "ike/task.h"

namespace mobike::ike {

class IkeAuthTask final : public Task {
 public:
  wire::ExchangeType exchange() const override { return wire::ExchangeType::kIkeAuth; }
  const char* name() const override { return "IKE_AUTH"; }
  std::optional<std::vector<wire::Payload>> build_request(IkeSa& sa, Services& s) override;
  TaskResult process_response(IkeSa& sa, Services& s,
                              const std::vector<wire::Payload>& payloads) override;

 private:
  const ChildConfig* child_config_ = nullptr;
  std::uint32_t spi_in_ = 0;
  std::vector<wire::TrafficSelector> ts_local_, ts_remote_;
};

// Responder. `failed` is set when the IKE SA must be deleted after the response.
struct AuthResponse {
  std::vector<wire::Payload> payloads;
  bool failed = false;
};
AuthResponse respond_ike_auth(IkeSa& sa, Services& s, const std::vector<wire::Payload>& request);

}  // namespace mobike::ike
