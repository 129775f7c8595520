// MOBIKE (RFC 4555) as the engine's Mobility extension: address lists, updates with
// NAT detection and COOKIE2, NAT mapping changes noticed in liveness checks, path
// probing when the current path fails, return-routability checks by the responder.
// install() puts it into an engine; the free functions are the operator's and the
// daemon's commands on one IKE SA.
#pragma once

#include <optional>
#include <vector>

#include "common/expected.h"
#include "ike/engine.h"
#include "ike/mobility.h"
#include "mobility/sa_state.h"

namespace mobike::mobility {

using ike::Duration;

struct Config {
  // Start probing other paths after this many unanswered retransmissions (§3.4).
  int probe_after_retransmits = 2;
  // After a first answer, how long other (better-ranked) paths may still answer.
  Duration probe_grace{100};
  // Probes and the responder's retransmissions back off to at most this interval.
  Duration max_retransmit_interval{15000};
  // How long an SA without a working path is kept: probing (initiator) or
  // retransmitting (responder, §3.11 asks for at least 5 minutes).
  Duration path_timeout{std::chrono::minutes(5)};
};

class Mobike final : public ike::Mobility {
 public:
  explicit Mobike(Config config) : config_(config) {}
  const Config& config() const { return config_; }

  void auth_payloads(ike::IkeSa& sa, ike::Services& s, std::vector<wire::Payload>& out) override;
  void auth_received(ike::IkeSa& sa, ike::Services& s, const std::vector<wire::Payload>& in) override;
  std::optional<wire::NotifyType> auth_refusal(const ike::IkeSa& sa, ike::Services& s,
                                               const std::vector<wire::Payload>& request) override;
  void respond_informational(ike::IkeSa& sa, ike::Services& s, const std::vector<wire::Payload>& request,
                             const Endpoint& local, const Endpoint& remote, Endpoint& respond_to,
                             std::vector<wire::Payload>& response) override;
  void liveness_request(ike::IkeSa& sa, ike::Services& s, std::vector<wire::Payload>& out) override;
  void liveness_response(ike::IkeSa& sa, ike::Services& s, const std::vector<wire::Payload>& in) override;
  void response_path(ike::IkeSa& sa, ike::Services& s, const Endpoint& local, const Endpoint& remote) override;
  bool wants_late_response(const ike::IkeSa& sa, std::uint32_t message_id) const override;
  void late_response(ike::IkeSa& sa, ike::Services& s, const Endpoint& local, const Endpoint& remote) override;
  bool transmit(ike::IkeSa& sa, ike::Services& s) override;
  RetransmitVerdict on_retransmit(ike::IkeSa& sa, ike::Services& s) override;
  void on_timer(ike::IkeSa& sa, ike::Services& s) override;
  void local_addresses_changed(ike::IkeSa& sa, ike::Services& s) override;
  void inherit(const ike::IkeSa& old, ike::IkeSa& fresh) override;
  Expected<Bytes, std::string> export_state(const ike::IkeSa& sa) const override;
  Expected<void, std::string> import_state(ike::IkeSa& sa, ike::Services& s, ByteView state) override;

 private:
  Config config_;
};

// Installs MOBIKE into `engine` (before any SA exists).
void install(ike::Engine& engine, Config config = {});

// The original initiator moves the IKE SA to `local` (UPDATE_SA_ADDRESSES, §3.5).
bool update_addresses(ike::Engine& engine, std::uint64_t ike_sa_id, const IpAddress& local, TimePoint now);
// The original initiator's current path is gone: probe the others (§3.4).
bool probe_paths(ike::Engine& engine, std::uint64_t ike_sa_id, TimePoint now);
// The original initiator learnt the peer's addresses elsewhere: the daemon looked the
// name in remote_addrs up again after EventKind::kNoPath. They replace the previous
// lookup's and are probed besides the peer's own list, at once if probing is under way.
// False if the SA cannot move (not established, not the MOBIKE initiator).
bool add_peer_addresses(ike::Engine& engine, std::uint64_t ike_sa_id, std::vector<IpAddress> addresses, TimePoint now);

// The responder asks the initiator to move the IKE SA to our address `to`
// (SWITCH_TO_IP_ADDRESS); the outcome arrives as a kSwitchSucceeded, kSwitchRefused or kSwitchFailed
// event. The reason when it cannot start (not the responder, peer without support, a
// switch or IKE rekey in flight, ...). This is the cluster manager's entry point too.
Expected<void, std::string> switch_address(ike::Engine& engine, std::uint64_t ike_sa_id, const IpAddress& to,
                                           TimePoint now);

// Cluster moves where the node the SA leaves asks (docs/cluster.md, planned move step 4).
// relay_switch: on that node, the exported SA sends the switch request to `to` (the new
// node's address) from its own address, with the Message ID the snapshot recorded; a
// refusal or no answer comes out as kSwitchRefused / kSwitchFailed here.
// adopt_switch: on the new node, the imported SA expects the answer to that request
// and the UPDATE_SA_ADDRESSES after it (kSwitchSucceeded), or kSwitchFailed by `until`.
Expected<void, std::string> relay_switch(ike::Engine& engine, std::uint64_t ike_sa_id, const IpAddress& to,
                                         TimePoint now);
Expected<void, std::string> adopt_switch(ike::Engine& engine, std::uint64_t ike_sa_id, const IpAddress& to,
                                         TimePoint until, TimePoint now);

// MOBIKE's view of one IKE SA, for `mobikectl list-sas`.
struct SaView {
  std::vector<IpAddress> peer_addresses;
  std::vector<IpAddress> announced;  // ours, as last told to the peer
  Path committed;
  bool probing = false;
  bool rr_pending = false;
  std::uint64_t updates = 0;
  bool peer_switch = false;
  std::optional<IpAddress> switching_to;
};
std::optional<SaView> view(const ike::IkeSa& sa);

// True if the SA is one this side may move (original initiator, both sides MOBIKE).
bool may_update(const ike::IkeSa& sa);

}  // namespace mobike::mobility
