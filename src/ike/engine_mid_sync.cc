// The peer's side of RFC 6311 (§5.1, §7): a gateway cluster member that took our IKE SA
// over asks, with a Message-ID-0 INFORMATIONAL, to synchronise Message IDs (and skip
// ESP sequence numbers). With the responder-initiated switch's first drafts the same
// request may carry SWITCH_TO_IP_ADDRESS (docs/switch.md §5.5): it comes from the dead
// node's address and is answered towards the survivor.
#include <algorithm>

#include "ike/child_sa.h"
#include "ike/engine.h"
#include "ike/mid_sync.h"
#include "ike/protection.h"
#include "ike/task.h"

namespace mobike::ike {

using wire::ExchangeType;
using wire::NotifyType;

bool Engine::handle_mid_sync(IkeSa& sa, const Endpoint& local, const Endpoint& remote, const wire::Message& m,
                             ByteView data) {
  auto opened = open_message(sa, m, data);
  if (!opened) {
    // Forged or altered: nothing of it counts, whatever it claims to be.
    if (opened.error().error != OpenError::kIntegrity && opened.error().error != OpenError::kNotProtected)
      return false;  // authentic but malformed: the ordinary path answers
    stats_.dropped_integrity++;
    return true;
  }
  const auto& payloads = *opened;
  const wire::NotifyPayload* sync = nullptr;
  const wire::NotifyPayload* replay = nullptr;
  const wire::NotifyPayload* to = nullptr;
  bool other = false;
  for (const auto& p : payloads) {
    const auto* n = std::get_if<wire::NotifyPayload>(&p.body);
    const auto type = n ? n->type : 0;
    if (n && type == static_cast<std::uint16_t>(NotifyType::kIkev2MessageIdSync) && !sync)
      sync = n;
    else if (n && type == static_cast<std::uint16_t>(NotifyType::kIpsecReplayCounterSync) && !replay)
      replay = n;
    else if (n && type == config_.switch_notify_type && !to)
      to = n;
    else
      other = true;
  }
  if (!sync) return false;

  const std::uint64_t hash = request_hash(data);
  if (const IkeSaExtras& x = sa.extras(); !x.sync_response.empty() && hash == x.sync_request_hash) {
    // Our answer was lost: the same request again gets the same answer, to where the
    // first one went (nothing is applied twice).
    stats_.retransmits_answered++;
    send(sa, local, x.sync_response_to, x.sync_response);
    return true;
  }
  auto drop = [&](const std::string& why) {
    stats_.dropped_sync++;
    log(LogLevel::kWarn, &sa, "Message ID synchronisation request from " + remote.to_string() + " dropped: " + why);
    return true;
  };
  if (!sa.mid_sync) return drop("IKEV2_MESSAGE_ID_SYNC was not negotiated");
  if (sa.state != IkeState::kEstablished) return drop("the IKE SA is " + std::string(to_string(sa.state)));
  // §5.1: nothing but the synchronisation notifies; the switch's first drafts add one.
  if (other) return drop("it carries other payloads");
  if (replay && !sa.replay_sync) return drop("IPSEC_REPLAY_COUNTER_SYNC was not negotiated");
  if (to && !(mobility_ && sa.config->switch_enabled && sa.original_initiator))
    return drop("it carries a switch request we did not announce support for");
  const auto d = decode_mid_sync(sync->data);
  if (!d) return drop("malformed IKEV2_MESSAGE_ID_SYNC (" + std::to_string(sync->data.size()) + " octets)");
  std::optional<std::uint64_t> delta;
  if (replay) {
    delta = decode_replay_delta(replay->data);
    if (!delta) return drop("malformed IPSEC_REPLAY_COUNTER_SYNC (" + std::to_string(replay->data.size()) + " octets)");
  }
  // §5.1: M1 at or below what the cluster already used, or at or below an earlier
  // synchronisation's: stale or replayed.
  const IkeSaExtras& seen = sa.extras();
  if (d->send < sa.expected_peer_mid || (seen.sync_seen && d->send <= seen.sync_highest_m1))
    return drop("stale or replayed (M1 " + std::to_string(d->send) + ", expected at least " +
                std::to_string(seen.sync_seen ? std::max(seen.sync_highest_m1 + 1, sa.expected_peer_mid)
                                              : sa.expected_peer_mid) +
                ")");

  sa.edit_extras().sync_seen = true;
  sa.edit_extras().sync_highest_m1 = d->send;
  sa.last_inbound = now_;
  if (sa.config && sa.config->dpd_delay.count() > 0) sa.dpd_at = now_ + sa.config->dpd_delay;
  const std::uint32_t m2 = std::max(d->send, sa.expected_peer_mid);
  // Our request in flight went to the node that died (or its answer was lost with it):
  // it goes out again, as the first request of the new numbering.
  if (sa.active && !sa.active_adopted && sa.active->exchange() != ExchangeType::kIkeSaInit) {
    sa.queue.insert(sa.queue.begin(), std::move(sa.active));
    sa.active_request.clear();
    sa.retransmit_at = TimePoint::max();
  }
  const std::uint32_t p2 = std::max(d->recv, sa.next_request_mid);
  if (m2 != sa.expected_peer_mid) {
    sa.last_response.clear();
    sa.last_request_hash = 0;
  }
  sa.expected_peer_mid = m2;
  sa.next_request_mid = p2;
  if (delta) {
    // §7: after the synchronisation, every Child SA's outbound counter skips the delta.
    for (const auto& c : sa.children) {
      DataplaneOp op = dataplane_op(DataplaneOp::Kind::kAdvanceOutbound, sa, c);
      op.advance = *delta;
      dataplane(std::move(op));
    }
  }

  responding_ = &sa;
  Endpoint respond_to = remote;
  if (to) {
    // The switch request's own rules decide (announced or allowed address, family);
    // accepted, the answer goes to the survivor: the sender's address is the dead node's.
    std::vector<wire::Payload> ignored;
    const std::vector<wire::Payload> just_switch{{wire::PayloadType::kNotify, *to}};
    mobility_->respond_informational(sa, *this, just_switch, local, remote, respond_to, ignored);
    auto target = to->data.size() == 4 || to->data.size() == 16 ? IpAddress::from_bytes(to->data) : std::nullopt;
    if (target && sa.remote.address == *target) respond_to = sa.remote;
  }
  MidSyncData answer{d->nonce, p2, m2};
  Bytes resp = build_message(sa, ExchangeType::kInformational, true, 0,
                             {wire::make_notify(NotifyType::kIkev2MessageIdSync, encode_mid_sync(answer))}, random_);
  IkeSaExtras& x = sa.edit_extras();
  x.sync_request_hash = hash;
  x.sync_response = resp;
  x.sync_response_to = respond_to;
  send(sa, local, respond_to, std::move(resp));
  responding_ = nullptr;
  stats_.mid_syncs_answered++;
  const std::string detail = "next request " + std::to_string(p2) + ", next expected " + std::to_string(m2) +
                             (delta ? ", ESP sequence numbers +" + std::to_string(*delta) : "");
  log(LogLevel::kInfo, &sa, "the gateway's cluster synchronised Message IDs (RFC 6311): " + detail);
  event(EventKind::kMidSynced, sa, 0, detail);
  start_next(sa);
  return true;
}

}  // namespace mobike::ike
