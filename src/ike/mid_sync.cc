#include "ike/mid_sync.h"

#include <algorithm>

#include "wire/reader.h"
#include "wire/writer.h"

namespace mobike::ike {

using wire::NotifyType;
using wire::Payload;

Bytes encode_mid_sync(const MidSyncData& d) {
  wire::Writer w;
  w.bytes(ByteView(d.nonce.data(), d.nonce.size()));
  w.u32(d.send);
  w.u32(d.recv);
  return std::move(w).take();
}

std::optional<MidSyncData> decode_mid_sync(ByteView data) {
  wire::Reader r(data);
  MidSyncData d;
  ByteView nonce;
  if (!r.read_view(d.nonce.size(), nonce) || !r.read_u32(d.send) || !r.read_u32(d.recv) || !r.empty())
    return std::nullopt;
  std::copy(nonce.begin(), nonce.end(), d.nonce.begin());
  return d;
}

Bytes encode_replay_delta(std::uint64_t delta, bool esn) {
  wire::Writer w;
  if (esn)
    w.u64(delta);
  else
    w.u32(static_cast<std::uint32_t>(std::min<std::uint64_t>(delta, 0xffffffffu)));
  return std::move(w).take();
}

std::optional<std::uint64_t> decode_replay_delta(ByteView data) {
  wire::Reader r(data);
  if (data.size() == 4) {
    std::uint32_t v = 0;
    if (r.read_u32(v)) return v;
  } else if (data.size() == 8) {
    std::uint64_t v = 0;
    if (r.read_u64(v)) return v;
  }
  return std::nullopt;
}

std::uint64_t seq_jump(std::uint64_t last, std::uint64_t max) {
  const std::uint64_t left = last < max ? max - last : 0;
  return left / 2 >= kSeqJump ? kSeqJump : left / 2;
}

std::optional<std::vector<Payload>> MidSyncTask::build_request(IkeSa& sa, Services& s) {
  if (sa.state != IkeState::kEstablished || !sa.mid_sync) return std::nullopt;
  MidSyncData d;
  s.random().fill(d.nonce);
  d.send = sa.next_request_mid;
  d.recv = sa.expected_peer_mid;
  sent_ = d;
  std::vector<Payload> out{wire::make_notify(NotifyType::kIkev2MessageIdSync, encode_mid_sync(d))};
  if (replay_delta_ && sa.replay_sync) {
    // All Child SAs of the IKE SA must agree on ESN (§6): 8 octets if any uses it.
    const bool esn = std::any_of(sa.children.begin(), sa.children.end(), [](const ChildSa& c) { return c.keys.esn; });
    out.push_back(wire::make_notify(NotifyType::kIpsecReplayCounterSync, encode_replay_delta(replay_delta_, esn)));
  }
  add_payloads(sa, s, out);
  return out;
}

bool MidSyncTask::accepts_response(const IkeSa&, const std::vector<Payload>& payloads) const {
  // Only the synchronisation notify, with our nonce (§5.1): anything else is not the
  // answer, and the request is retransmitted as before.
  if (payloads.size() != 1 || !sent_) return false;
  const auto* n = std::get_if<wire::NotifyPayload>(&payloads.front().body);
  if (!n || n->notify_type() != NotifyType::kIkev2MessageIdSync) return false;
  auto d = decode_mid_sync(n->data);
  return d && d->nonce == sent_->nonce;
}

TaskResult MidSyncTask::process_response(IkeSa& sa, Services& s, const std::vector<Payload>& payloads) {
  const auto d = decode_mid_sync(std::get<wire::NotifyPayload>(payloads.front().body).data);
  // The response's values: P2 (the peer's next request) and M2 (what it expects from
  // us); by §5.1 neither is below what we proposed, and we never go back anyway.
  const std::uint32_t m2 = std::max(d->recv, sent_->send);
  const std::uint32_t p2 = std::max(d->send, sent_->recv);
  sa.next_request_mid = std::max(sa.next_request_mid, m2);
  if (p2 != sa.expected_peer_mid) {
    sa.expected_peer_mid = p2;
    // A response cached for the old numbering answers nothing any more.
    sa.last_response.clear();
    sa.last_request_hash = 0;
  }
  s.stats().mid_syncs_completed++;
  const std::string detail = "next request " + std::to_string(sa.next_request_mid) + ", next expected " +
                             std::to_string(sa.expected_peer_mid);
  s.log(LogLevel::kInfo, &sa, "Message IDs synchronised (RFC 6311): " + detail);
  s.event(EventKind::kMidSynced, sa, 0, detail);
  // §7: our sequence numbers jumped and the peer's may have; fresh keys soon, spread a
  // little so that many SAs taken over at once do not rekey in one burst.
  for (auto& c : sa.children) {
    std::uint16_t spread = 0;
    s.random().fill(std::span<std::uint8_t>(reinterpret_cast<std::uint8_t*>(&spread), sizeof spread));
    if (c.state == ChildState::kInstalled) c.rekey_at = s.now() + Duration(spread % 1000);
  }
  synced(sa, s);
  return TaskResult::kDone;
}

}  // namespace mobike::ike
