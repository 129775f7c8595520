// Linux XFRM (kernel IPsec) netlink messages, built and parsed without system calls so
// that every byte can be checked against golden captures (tests/data/xfrm/).
//
// Only what an IKEv2 daemon needs: ESP tunnel-mode SAs (optionally UDP-encapsulated,
// RFC 3948), their policies, address migration (XFRM_MSG_MIGRATE) and reading an SA's
// counters back. Builders leave nlmsg_seq and nlmsg_pid at zero; XfrmSocket fills the
// sequence number when it sends.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/bytes.h"
#include "common/expected.h"
#include "common/ip_address.h"
#include "platform/sys_error.h"
#include "wire/payloads.h"

namespace mobike::platform {

// Numerically XFRM_POLICY_IN / OUT / FWD.
enum class XfrmDir : std::uint8_t { kIn = 0, kOut = 1, kFwd = 2 };
const char* to_string(XfrmDir d);

// The ESP transforms of one SA direction, with IKEv2 (IANA) transform ids.
struct EspTransforms {
  std::uint16_t encr_id = 0;        // 12 AES-CBC, 20 AES-GCM-16, 28 ChaCha20-Poly1305
  std::uint16_t encr_key_bits = 0;  // AES: 128/192/256; ChaCha20: 256 or 0
  std::uint16_t integ_id = 0;       // 12/13/14 HMAC-SHA2-256-128/384-192/512-256; 0 for AEAD
  bool esn = false;
  Bytes encr_key;   // AEAD: key || 4-octet salt (RFC 4106 §8.1, RFC 7634 §2)
  Bytes integ_key;  // empty for AEAD
};

// Kernel-enforced limits; 0 means none. The soft limits make the kernel send
// XFRM_MSG_EXPIRE (soft) to the daemon, the hard ones delete the SA.
struct SaLifetime {
  std::uint64_t soft_bytes = 0, hard_bytes = 0;
  std::uint64_t soft_packets = 0, hard_packets = 0;
  std::uint64_t soft_add_seconds = 0, hard_add_seconds = 0;
  friend bool operator==(const SaLifetime&, const SaLifetime&) = default;
};

// One direction of a Child SA, tunnel mode.
struct XfrmSa {
  Endpoint local;  // our IKE endpoint; the port only matters with udp_encap
  Endpoint remote;
  std::uint32_t spi = 0;  // host order
  bool inbound = false;   // inbound: remote -> local, with our SPI
  std::uint32_t reqid = 0;
  EspTransforms transforms;
  bool udp_encap = false;  // ESP in UDP (RFC 3948) between the two endpoints' ports
  SaLifetime lifetime;
  // Anti-replay window in packets. Up to 32 fits the legacy field; larger windows and
  // ESN need XFRMA_REPLAY_ESN_VAL (the kernel then wants the legacy field at 0).
  std::uint32_t replay_window = 32;

  const Endpoint& src() const { return inbound ? remote : local; }
  const Endpoint& dst() const { return inbound ? local : remote; }
};

struct SaUsage {
  std::uint64_t bytes = 0;
  std::uint64_t packets = 0;
  std::uint64_t add_time = 0;  // seconds since the epoch
  std::uint64_t use_time = 0;  // first use, seconds since the epoch; 0: never used
  friend bool operator==(const SaUsage&, const SaUsage&) = default;
};

// Sequence numbers and the replay bitmap, as the kernel reports them.
struct SaReplayState {
  std::uint32_t oseq = 0, seq = 0, oseq_hi = 0, seq_hi = 0;
  std::uint32_t replay_window = 0;    // ESN format only
  std::vector<std::uint32_t> bitmap;  // legacy format: one word
  bool esn_format = false;            // came as XFRMA_REPLAY_ESN_VAL
  friend bool operator==(const SaReplayState&, const SaReplayState&) = default;
};

// What survives when an SA is re-created at new addresses: without the output
// sequence number the peer would drop our packets as replays.
struct SaCarryOver {
  std::optional<SaReplayState> replay;
  std::optional<SaUsage> usage;  // XFRMA_LTIME_VAL: byte/packet/time limits keep counting
};

// The kernel's per-SA drop counters (struct xfrm_stats). Each drop is also in the
// namespace's /proc/net/xfrm_stat (XfrmInStateSeqError, XfrmInStateProtoError).
struct SaStats {
  std::uint32_t replay_window = 0;     // outside the replay window
  std::uint32_t replay = 0;            // replayed (already received)
  std::uint32_t integrity_failed = 0;  // ICV verification failed
  friend bool operator==(const SaStats&, const SaStats&) = default;
};

// An SA as the kernel describes it (the reply to XFRM_MSG_GETSA).
struct XfrmSaInfo {
  IpAddress src, dst;
  std::uint32_t spi = 0;
  std::uint32_t reqid = 0;
  std::uint8_t flags = 0;  // XFRM_STATE_*
  std::optional<std::uint16_t> encap_sport, encap_dport;
  std::uint8_t proto = 0;  // IPPROTO_ESP for ours
  SaUsage usage;
  SaStats stats;
  std::uint64_t last_used = 0;  // XFRMA_LASTUSED: last packet, 0 if absent
  std::optional<SaReplayState> replay;
};

// A kernel selector: prefixes and port/mask pairs (ports in host order).
struct XfrmSelector {
  IpPrefix src, dst;
  std::uint8_t proto = 0;  // 0: any
  std::uint16_t sport = 0, sport_mask = 0;
  std::uint16_t dport = 0, dport_mask = 0;
  friend bool operator==(const XfrmSelector&, const XfrmSelector&) = default;
};
std::string to_string(const XfrmSelector& s);

struct XfrmPolicy {
  XfrmSelector selector;
  XfrmDir dir = XfrmDir::kOut;
  IpAddress tunnel_src, tunnel_dst;  // outer addresses of the ESP template
  std::uint32_t reqid = 0;
  std::uint32_t priority = 0;  // lower wins
};

// One template/SA address change for XFRM_MSG_MIGRATE.
struct XfrmMigration {
  IpAddress old_src, old_dst, new_src, new_dst;
  std::uint32_t reqid = 0;
};

struct EncapPorts {
  std::uint16_t sport = 0, dport = 0;
};

enum class SaRequest : std::uint8_t { kNew, kUpdate };

// XFRM_MSG_NEWSA / UPDSA. Fails (EINVAL, ENOTSUP) on transforms the kernel backend does
// not map or on key lengths that do not fit them.
Expected<Bytes, SysError> build_sa_add(const XfrmSa& sa, SaRequest kind = SaRequest::kNew,
                                       const SaCarryOver* carry = nullptr);
// XFRM_MSG_DELSA / GETSA. The kernel finds ESP SAs by (dst, spi); src rides along in
// XFRMA_SRCADDR as ip(8) sends it.
Bytes build_sa_delete(const IpAddress& src, const IpAddress& dst, std::uint32_t spi);
Bytes build_sa_get(const IpAddress& src, const IpAddress& dst, std::uint32_t spi);
// XFRM_MSG_GETSA with NLM_F_DUMP: every SA of the namespace, one XFRM_MSG_NEWSA each
// (parse_sa), in as many datagrams as the kernel needs, then NLMSG_DONE.
Bytes build_sa_dump();
// XFRM_MSG_NEWPOLICY / UPDPOLICY (update replaces the policy with the same selector and
// direction, or adds it).
Bytes build_policy_add(const XfrmPolicy& p, bool update = false);
Bytes build_policy_delete(const XfrmSelector& sel, XfrmDir dir);
// XFRM_MSG_MIGRATE for the policy (sel, dir): moves its ESP tunnel template and every SA
// with (old addresses, reqid) to the new addresses; encap replaces the SAs' UDP
// encapsulation (without it the kernel keeps what they had, so removing the
// encapsulation is not expressible).
Bytes build_migrate(const XfrmSelector& sel, XfrmDir dir, const XfrmMigration& m,
                    const std::optional<EncapPorts>& encap);

// Parses an XFRM_MSG_NEWSA message (GETSA reply).
Expected<XfrmSaInfo, SysError> parse_sa(ByteView message);

// XFRM_MSG_MAPPING (multicast group XFRMNLGRP_MAPPING): ESP-in-UDP of an inbound SA
// arrived, authenticated, from another address or port than its encapsulation names.
struct XfrmMapping {
  IpAddress dst;          // our address (the inbound SA's destination)
  std::uint32_t spi = 0;  // the inbound SA's SPI: our spi_in
  std::uint32_t reqid = 0;
  Endpoint old_src, new_src;
};
Expected<XfrmMapping, SysError> parse_mapping(ByteView message);
// The message the kernel sends (for tests).
Bytes build_mapping(const XfrmMapping& m);

// XFRM_MSG_EXPIRE (multicast group XFRMNLGRP_EXPIRE): an SA reached a soft limit of
// its SaLifetime, or a hard one (the kernel deleted it then).
struct XfrmExpire {
  enum class Limit : std::uint8_t { kBytes, kPackets, kTime };
  IpAddress src, dst;
  std::uint32_t spi = 0;  // 0 for the kernel's placeholder of an unanswered acquire
  std::uint32_t reqid = 0;
  bool hard = false;
  // Which limit, read off the counters the message carries: the kernel does not say.
  Limit limit = Limit::kTime;
  SaLifetime lifetime;
  SaUsage usage;
};
Expected<XfrmExpire, SysError> parse_expire(ByteView message);
// The message the kernel sends (for tests); `limit` is not written, only the counters.
Bytes build_expire(const XfrmExpire& e);

// XFRM_MSG_ACQUIRE (multicast group XFRMNLGRP_ACQUIRE): a packet matched a policy
// whose template no SA satisfies (a trap policy, start = "trap").
struct XfrmAcquire {
  IpAddress src, dst;   // the template's tunnel endpoints
  XfrmSelector flow;    // the packet's addresses, protocol and ports
  XfrmSelector policy;  // the selector of the policy it matched
  XfrmDir dir = XfrmDir::kOut;
  std::uint32_t seq = 0;  // the kernel's number for this acquire
};
Expected<XfrmAcquire, SysError> parse_acquire(ByteView message);
Bytes build_acquire(const XfrmAcquire& a);

// "XFRM_MSG_NEWSA", ... for logs and errors.
std::string xfrm_message_name(std::uint16_t type);

// --- traffic selectors -> kernel selectors

// The fewest prefixes covering exactly [first, last]; empty when the families differ or
// first > last.
std::vector<IpPrefix> range_to_prefixes(const IpAddress& first, const IpAddress& last);

struct PortBlock {
  std::uint16_t value = 0, mask = 0;
  friend bool operator==(const PortBlock&, const PortBlock&) = default;
};
// Aligned blocks covering exactly [first, last] (0-65535 is one block with mask 0).
std::vector<PortBlock> port_range_to_blocks(std::uint16_t first, std::uint16_t last);

// Kernel selectors for the packets from `from` to `to` (out: local TS -> remote TS; in
// and fwd: remote -> local). A range that is not a prefix becomes several selectors.
// For ICMP/ICMPv6 the 16-bit "port" is type << 8 | code (RFC 7296 §3.13.1) and the
// kernel matches type in sport and code in dport; the two TSs' ranges are intersected.
// Empty when the pair cannot match anything (different families or protocols).
// E2BIG when a pair would need more than kMaxSelectorsPerPair selectors.
inline constexpr std::size_t kMaxSelectorsPerPair = 64;
Expected<std::vector<XfrmSelector>, SysError> selectors_for(const wire::TrafficSelector& from,
                                                            const wire::TrafficSelector& to);

// More specific selectors get a lower (preferred) priority.
std::uint32_t default_priority(const XfrmSelector& s);

}  // namespace mobike::platform
