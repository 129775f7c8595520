// INFORMATIONAL exchanges (RFC 7296 §1.4): liveness checks (§2.4), IKE SA and Child SA
// deletion (§1.4.1).
#pragma once

#include "ike/task.h"

namespace mobike::ike {

class LivenessTask final : public Task {
 public:
  wire::ExchangeType exchange() const override { return wire::ExchangeType::kInformational; }
  const char* name() const override { return "DPD"; }
  std::optional<std::vector<wire::Payload>> build_request(IkeSa& sa, Services& s) override;
  TaskResult process_response(IkeSa& sa, Services& s, const std::vector<wire::Payload>& payloads) override;
};

class IkeDeleteTask final : public Task {
 public:
  wire::ExchangeType exchange() const override { return wire::ExchangeType::kInformational; }
  const char* name() const override { return "IKE_DELETE"; }
  std::optional<std::vector<wire::Payload>> build_request(IkeSa& sa, Services& s) override;
  TaskResult process_response(IkeSa& sa, Services& s,
                              const std::vector<wire::Payload>& payloads) override;
};

class ChildDeleteTask final : public Task {
 public:
  explicit ChildDeleteTask(std::uint64_t child_id) : child_id_(child_id) {}
  wire::ExchangeType exchange() const override { return wire::ExchangeType::kInformational; }
  const char* name() const override { return "CHILD_DELETE"; }
  std::optional<std::vector<wire::Payload>> build_request(IkeSa& sa, Services& s) override;
  TaskResult process_response(IkeSa& sa, Services& s,
                              const std::vector<wire::Payload>& payloads) override;
  std::uint64_t child_id() const { return child_id_; }

 private:
  std::uint64_t child_id_;
  std::uint32_t spi_in_ = 0;
};

struct InformationalResponse {
  std::vector<wire::Payload> payloads;
  bool delete_ike = false;  // the peer deleted the IKE SA: reap after responding
};
InformationalResponse respond_informational(IkeSa& sa, Services& s,
                                            const std::vector<wire::Payload>& request);

// Removes a Child SA from the IKE SA and the data plane.
void remove_child(IkeSa& sa, std::uint64_t child_id, Services& s);

}  // namespace mobike::ike
