// IKE SA rekey with CREATE_CHILD_SA (RFC 7296 §1.3.2, §2.18; collisions §2.8.2).
#pragma once

#include <memory>

#include "crypto/dh.h"
#include "ike/task.h"

namespace mobike::ike {

class IkeRekeyTask final : public Task {
 public:
  wire::ExchangeType exchange() const override { return wire::ExchangeType::kCreateChildSa; }
  const char* name() const override { return "IKE_REKEY"; }
  std::optional<std::vector<wire::Payload>> build_request(IkeSa& sa, Services& s) override;
  TaskResult process_response(IkeSa& sa, Services& s,
                              const std::vector<wire::Payload>& payloads) override;
  void abort(IkeSa& sa, Services& s) override;

 private:
  std::uint64_t spi_ = 0;
  std::uint16_t group_ = 0;
  Bytes nonce_;
  std::unique_ptr<crypto::KeyExchange> dh_;
  int retries_ = 0;
};

// Responder half, called for a CREATE_CHILD_SA whose proposals are for IKE.
std::vector<wire::Payload> respond_ike_rekey(IkeSa& sa, Services& s,
                                             const std::vector<wire::Payload>& request);

// Moves every Child SA of `from` to `to` (the data plane keeps them as they are).
void move_children(IkeSa& from, IkeSa& to);

}  // namespace mobike::ike
