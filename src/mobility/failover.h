// Cluster failover (docs/cluster.md "Failover"): a node continues the SAs of a node that
// died, from their last checkpoints, and synchronises each with its peer (RFC 6311).
// Where the peer announced the responder-initiated switch, the synchronisation request
// carries SWITCH_TO_IP_ADDRESS too — the first drafts' combined message
// (docs/switch.md §5.5): sent from the dead node's address, so that it passes the
// peer's NAT, and answered towards the survivor, where the peer then updates.
#pragma once

#include <optional>

#include "common/expected.h"
#include "ike/engine.h"
#include "ike/mid_sync.h"

namespace mobike::mobility {

// The synchronisation request with the switch to `to_` in it.
class FailoverSwitchTask final : public ike::MidSyncTask {
 public:
  FailoverSwitchTask(std::uint64_t replay_delta, IpAddress to) : MidSyncTask(replay_delta), to_(to) {}
  const char* name() const override { return "MID_SYNC+SWITCH"; }
  void abort(ike::IkeSa& sa, ike::Services& s) override;

 protected:
  void add_payloads(ike::IkeSa& sa, ike::Services& s, std::vector<wire::Payload>& out) override;
  void synced(ike::IkeSa& sa, ike::Services& s) override;

 private:
  IpAddress to_;
  std::uint64_t switch_id_ = 0;
};

enum class FailoverSync : std::uint8_t {
  kCombined,  // synchronisation + switch to our address: the peer follows by itself
  kPlain,     // synchronisation only: we must receive on the snapshot's (dead node's) address
};
struct TakenOver {
  std::uint64_t ike_sa_id = 0;
  FailoverSync sync = FailoverSync::kPlain;
};

// How the SA of `checkpoint` would be synchronised with `to` as our address (without
// importing it), or why it cannot be (the peer did not negotiate RFC 6311's Message
// ID synchronisation: such SAs are lost with their node).
Expected<FailoverSync, std::string> failover_sync(const ike::IkeSaSnapshot& checkpoint,
                                                  const std::optional<IpAddress>& to);

// Continues the SA of `checkpoint` here (Engine::take_over) and starts its
// synchronisation, combined with a switch to `to` where the peer follows switches.
Expected<TakenOver, std::string> take_over(ike::Engine& engine, const ike::IkeSaSnapshot& checkpoint,
                                           const std::optional<IpAddress>& to, ike::TimePoint now);

}  // namespace mobike::mobility
