// IKE_AUTH (RFC 7296 §1.2; authentication in ike/authenticator.h) and the first Child SA
// (§1.3 in IKE_AUTH, §2.9 traffic selectors); MOBIKE_SUPPORTED (RFC 4555 §3.2). With EAP
// (§2.16) the exchange runs several rounds: the first request carries everything but the
// client's AUTH, the rounds between carry EAP, and the last the AUTH of both ends made
// with the EAP method's MSK; the responder answers the first request's Child SA, CP and
// notifies only then, as strongSwan does.
#pragma once

#include <memory>
#include <optional>

#include "ike/eap.h"
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
  TaskResult process_eap(IkeSa& sa, Services& s, const std::vector<wire::Payload>& payloads);
  TaskResult finish(IkeSa& sa, Services& s, const std::vector<wire::Payload>& payloads);

  enum class Round : std::uint8_t { kFirst, kEap, kEapAuth };
  Round round_ = Round::kFirst;
  std::unique_ptr<eap::Peer> eap_;
  Bytes eap_out_;  // the next EAP Response
  const ChildConfig* child_config_ = nullptr;
  std::uint32_t spi_in_ = 0;
  std::vector<wire::TrafficSelector> ts_local_, ts_remote_;
};

// The gateway's EAP conversation during IKE_AUTH: the first request waits here for the
// last round, which answers its Child SA, configuration request and notifies.
struct EapSession {
  std::unique_ptr<eap::Server> server;
  std::vector<wire::Payload> first_request;
  Identity peer_id;  // IDi, which the final AUTH covers
  bool succeeded = false;
};

// Responder. `failed` is set when the IKE SA must be deleted after the response.
// `pending`: an EAP round; the IKE SA is not established yet.
struct AuthResponse {
  std::vector<wire::Payload> payloads;
  bool failed = false;
  bool pending = false;
};
AuthResponse respond_ike_auth(IkeSa& sa, Services& s, const std::vector<wire::Payload>& request);

}  // namespace mobike::ike
