// CREATE_CHILD_SA for Child SAs (RFC 7296 §1.3.1 new, §1.3.3 rekey, §2.8.1 collisions)
// with optional PFS; the IKE SA rekey variant lives in ike_rekey.h.
#pragma once

#include <memory>

#include "crypto/dh.h"
#include "ike/task.h"

namespace mobike::ike {

// Creates a new Child SA (`rekey_of` = 0) or replaces an existing one.
class ChildCreateTask final : public Task {
 public:
  ChildCreateTask(const ChildConfig* config, std::uint64_t rekey_of) : config_(config), rekey_of_(rekey_of) {}
  wire::ExchangeType exchange() const override { return wire::ExchangeType::kCreateChildSa; }
  const char* name() const override { return rekey_of_ ? "CHILD_REKEY" : "CHILD_CREATE"; }
  std::optional<std::vector<wire::Payload>> build_request(IkeSa& sa, Services& s) override;
  TaskResult process_response(IkeSa& sa, Services& s,
                              const std::vector<wire::Payload>& payloads) override;
  void abort(IkeSa& sa, Services& s) override;
  std::uint64_t rekey_of() const { return rekey_of_; }

 private:
  const ChildConfig* config_;
  std::uint64_t rekey_of_;
  std::uint32_t spi_in_ = 0;
  std::uint16_t group_ = 0;
  Bytes nonce_;
  std::unique_ptr<crypto::KeyExchange> dh_;
  std::vector<wire::TrafficSelector> ts_local_, ts_remote_;
  int retries_ = 0;
};

// Responder: any CREATE_CHILD_SA request (Child SA or IKE SA).
struct CreateChildResponse {
  std::vector<wire::Payload> payloads;
};
CreateChildResponse respond_create_child_sa(IkeSa& sa, Services& s,
                                            const std::vector<wire::Payload>& request);

// Lexicographically smaller nonce (RFC 7296 §2.8.1 compares nonces as octet strings).
const Bytes& min_nonce(const Bytes& a, const Bytes& b);

}  // namespace mobike::ike
