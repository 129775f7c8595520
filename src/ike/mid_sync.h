// RFC 6311: a cluster member that took an IKE SA over from a checkpoint (its node
// failed, docs/cluster.md "Failover") synchronises the SA's Message IDs with the peer —
// and, where both claimed it, has the peer skip ESP sequence numbers so that replays of
// what the failed node received are refused. The member's request is MidSyncTask; the
// peer's side is Engine::handle_mid_sync (engine_mid_sync.cc).
#pragma once

#include <array>
#include <cstdint>
#include <optional>

#include "common/bytes.h"
#include "ike/task.h"

namespace mobike::ike {

// IKEV2_MESSAGE_ID_SYNC's data (§6): a nonce the response echoes, then the sender's
// next request Message ID and the one it expects from the other side. In the request
// these are M1 and P1; in the response P2 and M2 (the same order, seen from the peer).
struct MidSyncData {
  std::array<std::uint8_t, 4> nonce{};
  std::uint32_t send = 0;
  std::uint32_t recv = 0;
};
Bytes encode_mid_sync(const MidSyncData& d);
std::optional<MidSyncData> decode_mid_sync(ByteView data);
// IPSEC_REPLAY_COUNTER_SYNC's data: 4 octets, or 8 when the Child SAs use ESN.
Bytes encode_replay_delta(std::uint64_t delta, bool esn);
std::optional<std::uint64_t> decode_replay_delta(ByteView data);

// How far the member's own counters jump past the checkpoint it continues from. The
// Message ID margin must exceed the requests the failed node sent after its last
// checkpoint (the cluster checkpoints at least every few seconds, and an SA sends a
// request every DPD interval at most, rekeys aside); the sequence number jump must
// exceed the ESP packets sent in that time in either direction, and the Child SAs are
// rekeyed right after the synchronisation (RFC 6311 §7).
inline constexpr std::uint32_t kMidSyncMargin = 1024;
inline constexpr std::uint64_t kSeqJump = std::uint64_t{1} << 30;
// A jump that fits what is left of a sequence number space of `max` (half of the rest
// when 2^30 does not fit).
std::uint64_t seq_jump(std::uint64_t last, std::uint64_t max);

// The member's synchronisation request: Message ID 0, IKEV2_MESSAGE_ID_SYNC with
// M1 = the SA's next request ID and P1 = the peer's expected one (the caller set both
// from the checkpoint, M1 with the margin), IPSEC_REPLAY_COUNTER_SYNC when both
// claimed it. Its answer sets the SA's Message IDs and has every Child SA rekeyed.
class MidSyncTask : public Task {
 public:
  // `replay_delta`: what the peer should add to its outbound sequence numbers (0: none).
  explicit MidSyncTask(std::uint64_t replay_delta) : replay_delta_(replay_delta) {}
  wire::ExchangeType exchange() const override { return wire::ExchangeType::kInformational; }
  const char* name() const override { return "MID_SYNC"; }
  std::optional<std::uint32_t> message_id() const override { return 0; }
  std::optional<std::vector<wire::Payload>> build_request(IkeSa& sa, Services& s) override;
  bool accepts_response(const IkeSa& sa, const std::vector<wire::Payload>& payloads) const override;
  TaskResult process_response(IkeSa& sa, Services& s, const std::vector<wire::Payload>& payloads) override;

 protected:
  // More payloads for the same request (the combined switch of docs/switch.md §5.5).
  virtual void add_payloads(IkeSa&, Services&, std::vector<wire::Payload>&) {}
  // The synchronisation completed (the response came).
  virtual void synced(IkeSa&, Services&) {}

 private:
  std::uint64_t replay_delta_;
  std::optional<MidSyncData> sent_;
};

}  // namespace mobike::ike
