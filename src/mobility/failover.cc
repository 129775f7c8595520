#include "mobility/failover.h"

#include "mobility/sa_state.h"
#include "mobility/sa_state_codec.h"
#include "mobility/switch.h"

namespace mobike::mobility {

using ike::IkeSa;
using ike::Services;
using Switch = SaState::Switch;

void FailoverSwitchTask::add_payloads(IkeSa& sa, Services& s, std::vector<wire::Payload>& out) {
  auto& st = state(sa);
  // Built once: retransmissions resend the same octets.
  if (st.switch_state == Switch::kIdle) {
    s.log(ike::LogLevel::kInfo, &sa, "asking the initiator to switch to " + to_.to_string() + " after a failover");
    switch_id_ = begin_switch(sa, to_, s.now());
  }
  out.push_back(wire::make_notify(s.config().switch_notify_type, to_.to_bytes()));
}

void FailoverSwitchTask::synced(IkeSa& sa, Services& s) {
  auto& st = state(sa);
  if (st.switch_state != Switch::kSent || st.switch_id != switch_id_) return;
  // As for a switch request answered: the update at our address moves the SA.
  st.switch_state = Switch::kAwaitUpdate;
  st.switch_deadline = s.now() + std::max(s.config().retransmit_timeout * 5, ike::Duration(5000));
  sa.mobility_at = std::min(sa.mobility_at, st.switch_deadline);
  // The Child SA rekeys wait until the peer is likely on our address: a request from the
  // dead node's address would be answered there.
  for (auto& c : sa.children)
    if (c.rekey_at != TimePoint::max()) c.rekey_at = std::max(c.rekey_at, s.now() + s.config().retransmit_timeout);
}

void FailoverSwitchTask::abort(IkeSa& sa, Services& s) {
  if (auto& st = state(sa); st.switch_id == switch_id_ && st.switch_state != Switch::kIdle)
    end_switch(sa, s, SwitchOutcome::kFailed, "the IKE SA ended");
}

Expected<FailoverSync, std::string> failover_sync(const ike::IkeSaSnapshot& checkpoint,
                                                  const std::optional<IpAddress>& to) {
  if (!checkpoint.mid_sync)
    return unexpected(std::string(checkpoint.peer_mid_sync ? "RFC 6311 claimed by the peer only (a checkpoint of an "
                                                             "older node)"
                                                           : "the peer does not do RFC 6311"));
  if (!to || checkpoint.original_initiator || !checkpoint.peer_mobike || checkpoint.mobility.empty())
    return FailoverSync::kPlain;
  SaState st;
  if (!decode(checkpoint.mobility, st)) return unexpected(std::string("unreadable MOBIKE state in the checkpoint"));
  return st.peer_switch && *to != checkpoint.local.address ? FailoverSync::kCombined : FailoverSync::kPlain;
}

Expected<TakenOver, std::string> take_over(ike::Engine& engine, const ike::IkeSaSnapshot& checkpoint,
                                           const std::optional<IpAddress>& to, ike::TimePoint now) {
  auto how = failover_sync(checkpoint, to);
  if (!how) return unexpected(how.error());
  std::unique_ptr<ike::Task> task;
  const std::uint64_t delta = checkpoint.replay_sync ? ike::kSeqJump : 0;
  if (*how == FailoverSync::kCombined) task = std::make_unique<FailoverSwitchTask>(delta, *to);
  auto id = engine.take_over(checkpoint, std::move(task), now);
  if (!id) return unexpected(id.error());
  return TakenOver{*id, *how};
}

}  // namespace mobike::mobility
