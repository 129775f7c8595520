// The responder-initiated address switch (SWITCH_TO_IP_ADDRESS; the
// draft, our reading of it and our choices are in docs/switch.md). The responder asks, from
// its current address, that the initiator move the IKE SA to another responder address;
// the initiator answers and at once runs UPDATE_SA_ADDRESSES towards the new address,
// which opens the NAT mapping there; only that update moves anything.
#pragma once

#include <string>

#include "common/expected.h"
#include "ike/task.h"
#include "mobility/mobike.h"
#include "mobility/sa_state.h"

namespace mobike::mobility {

inline constexpr std::uint8_t kResponderSwitchFlag = 0x52;  // 'R' in MOBIKE_SUPPORTED
inline constexpr const char* kSwitchTaskName = "MOBIKE_SWITCH";

class SwitchTask final : public ike::Task {
 public:
  // `switch_id`: SaState::switch_id of the switch this request is for. A request still
  // retransmitted after its switch ended must not act on the next one.
  explicit SwitchTask(std::uint64_t switch_id) : switch_id_(switch_id) {}
  std::uint64_t switch_id() const { return switch_id_; }
  wire::ExchangeType exchange() const override { return wire::ExchangeType::kInformational; }
  const char* name() const override { return kSwitchTaskName; }
  std::optional<std::vector<wire::Payload>> build_request(ike::IkeSa& sa, ike::Services& s) override;
  ike::TaskResult process_response(ike::IkeSa& sa, ike::Services& s,
                                   const std::vector<wire::Payload>& payloads) override;
  void abort(ike::IkeSa& sa, ike::Services& s) override;
  void abandon(ike::IkeSa& sa, ike::Services& s) override;

 private:
  std::uint64_t switch_id_;
};

// Responder: whether the SA can be switched to `to` now; the reason if not.
Expected<void, std::string> switch_allowed(const ike::IkeSa& sa, const IpAddress& to);
// Responder: starts the switch (queues the request).
void start_switch(ike::IkeSa& sa, ike::Services& s, const IpAddress& to);
// Responder: the switch to `to` is under way (from the SA's current address) since
// `now`; returns its SaState::switch_id. start_switch() without the request and the log line.
std::uint64_t begin_switch(ike::IkeSa& sa, const IpAddress& to, TimePoint now);
// Responder: the switch ended; publishes the outcome and records it, with the time
// since begin_switch(), in Stats::switches.
enum class SwitchOutcome : std::uint8_t { kSucceeded, kRefused, kFailed };
void end_switch(ike::IkeSa& sa, ike::Services& s, SwitchOutcome outcome, const std::string& detail);

// Initiator: a request carried SWITCH_TO_IP_ADDRESS. Validates it, sets where the
// response goes, and queues the update.
void handle_switch_request(ike::IkeSa& sa, ike::Services& s, const wire::NotifyPayload& notify,
                           const Endpoint& remote, Endpoint& respond_to);

}  // namespace mobike::mobility
