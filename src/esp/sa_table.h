// The userspace data plane's SAD and SPD (RFC 4301 §4.4) in one: Child SAs installed by
// the IKE engine, found by SPI for inbound ESP and by traffic selectors for outbound
// inner packets, with the inbound policy check and per-Child-SA counters.
//
// Rekeying (RFC 7296 §2.8) needs nothing special: the new Child SA is installed next to
// the old one, which keeps accepting inbound packets under its SPI until it is removed,
// while outbound lookups prefer the most recently installed of equally specific
// matches, so traffic moves to the new SA at install.
//
// Not thread-safe: one owner (the data-plane thread) calls everything.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "common/ip_address.h"
#include "esp/esp_sa.h"
#include "esp/inner_packet.h"
#include "wire/payloads.h"

namespace mobike::esp {

using TsList = std::vector<wire::TrafficSelector>;

// Outer addressing of a Child SA, for the caller that sends the ESP packets; MOBIKE
// changes it (update_path).
struct EspPath {
  Endpoint local;
  Endpoint remote;
  bool udp_encap = false;  // RFC 3948 ESP-in-UDP
  friend bool operator==(const EspPath&, const EspPath&) = default;
};

// Where a Child SA stands, so that another node can continue it (cluster moves). The
// outbound IV mask travels in ChildSaSpec::out.iv_mask.
struct ChildSaProgress {
  std::uint64_t out_seq = 0;  // the last sequence number sent
  ReplayWindow::State in;
  std::uint64_t packets_in = 0, bytes_in = 0, packets_out = 0, bytes_out = 0;
  friend bool operator==(const ChildSaProgress&, const ChildSaProgress&) = default;
};

// Volume limits of each direction of a Child SA (0: none); see SaTable::take_expires().
struct VolumeLimits {
  std::uint64_t soft_bytes = 0, hard_bytes = 0;
  std::uint64_t soft_packets = 0, hard_packets = 0;
  bool any() const { return soft_bytes || hard_bytes || soft_packets || hard_packets; }
  friend bool operator==(const VolumeLimits&, const VolumeLimits&) = default;
};

// A Child SA to report to the engine: rekey it (soft) or delete it (hard).
struct ExpireReport {
  enum class Cause : std::uint8_t { kBytes, kPackets, kSequence };
  std::uint64_t child_sa_id = 0;
  bool hard = false;
  Cause cause = Cause::kBytes;
  friend bool operator==(const ExpireReport&, const ExpireReport&) = default;
};

// What a DataplaneOp::kInstall carries, with the keys split per direction.
struct ChildSaSpec {
  std::uint64_t child_sa_id = 0;
  std::uint64_t ike_sa_id = 0;
  EspSaParams in;   // spi = our SPI (spi_in); keys encr_in / integ_in
  EspSaParams out;  // spi = the peer's SPI (spi_out); keys encr_out / integ_out
  EspPath path;
  TsList local_ts;   // our side: outbound sources, inbound destinations
  TsList remote_ts;  // the peer's side
  // False for the responder of a Child SA rekey: the new SA receives at once but sends
  // only after activate_outbound(), i.e. once the initiator (who learns our SPI and
  // keys only from our response) deleted the old SA, so that none of our packets
  // arrive before the peer can decrypt them.
  bool outbound_active = true;
  // A Child SA another node held: continue from there.
  std::optional<ChildSaProgress> resume;
  VolumeLimits limits;
};

struct ChildSaCounters {
  SaCounters in;   // packets/bytes delivered, inbound drops (auth, replay, policy, ...)
  SaCounters out;  // packets/bytes protected, outbound drops (sequence overflow, ...)
};

class ChildSaEntry final : private InnerPolicy {
 public:
  std::uint64_t child_sa_id() const { return child_sa_id_; }
  std::uint64_t ike_sa_id() const { return ike_sa_id_; }
  std::uint32_t spi_in() const { return inbound_.spi(); }
  std::uint32_t spi_out() const { return outbound_.spi(); }
  const EspPath& path() const { return path_; }
  std::span<const wire::TrafficSelector> local_ts() const { return {ts_.get(), n_local_}; }
  std::span<const wire::TrafficSelector> remote_ts() const { return {ts_.get() + n_local_, n_remote_}; }
  const InboundEspSa& inbound() const { return inbound_; }
  const OutboundEspSa& outbound() const { return outbound_; }
  bool outbound_active() const { return outbound_active_; }
  // Past a hard limit: it carries nothing more, either way.
  bool expired() const { return limits_ && limits_->hard_reported; }
  ChildSaCounters counters() const { return {inbound_.counters(), outbound_.counters()}; }
  ChildSaProgress progress() const;

  // RFC 4301 selector match: some local selector covers the flow's source and some
  // remote one its destination (`reversed`: the other way round, for inbound packets).
  bool covers(const Flow& f, bool reversed) const;

  // Only SaTable can make a Key, so only SaTable creates entries (in its map's nodes).
  class Key {
    friend class SaTable;
    Key() = default;
  };
  ChildSaEntry(Key, const ChildSaSpec& spec, InboundEspSa in, OutboundEspSa out, std::uint64_t serial);
  ChildSaEntry(const ChildSaEntry&) = delete;
  ChildSaEntry& operator=(const ChildSaEntry&) = delete;

 private:
  friend class SaTable;
  bool allows(ByteView inner) const override;
  // After a packet was counted in `c`: the first limit it crossed, if any.
  std::optional<ExpireReport> check_limits(const SaCounters& c);

  std::uint64_t child_sa_id_;
  std::uint64_t ike_sa_id_;
  std::uint64_t serial_;  // install order: the newest wins among equal matches
  // Only for Child SAs with volume limits (most have none): one pointer otherwise.
  struct LimitState {
    VolumeLimits limits;
    bool soft_reported = false, hard_reported = false;
  };
  std::unique_ptr<LimitState> limits_;
  EspPath path_;
  // Behind the 42-octet path, where they fill what would be padding.
  bool outbound_active_ = true;
  bool rekey_requested_ = false;
  // Both selector lists in one allocation, local ones first: a gateway holds one entry
  // per client, and this saves a second heap block and vector per entry.
  std::uint16_t n_local_ = 0, n_remote_ = 0;
  std::unique_ptr<wire::TrafficSelector[]> ts_;
  InboundEspSa inbound_;
  OutboundEspSa outbound_;
};

struct SaTableOptions {
  // Ask for a rekey when an outbound SA has this many sequence numbers left: 2^24 is
  // ~0.4% of the 32-bit space, seconds to minutes of traffic at line rate.
  std::uint64_t rekey_margin = std::uint64_t{1} << 24;
};

class SaTable {
 public:
  explicit SaTable(SaTableOptions options = {}) : options_(options) {}
  SaTable(const SaTable&) = delete;
  SaTable& operator=(const SaTable&) = delete;

  // Fails on unusable keys or parameters, a Child SA id or inbound SPI already
  // installed, or empty selector lists.
  Expected<void, std::string> install(const ChildSaSpec& spec);
  bool remove(std::uint64_t child_sa_id);
  // MOBIKE: new outer addresses or encapsulation for one Child SA, or for every Child
  // SA of an IKE SA (returns how many).
  bool update_path(std::uint64_t child_sa_id, const EspPath& path);
  // Lets a Child SA installed with outbound_active = false carry outbound traffic; it
  // becomes the newest among equal matches.
  bool activate_outbound(std::uint64_t child_sa_id);
  // Sends nothing more on the Child SA (it is moving to another node); inbound goes on.
  bool suspend_outbound(std::uint64_t child_sa_id);
  // Skips `count` outbound sequence numbers (RFC 6311 §7: the peer asked, after a
  // cluster failover, so that replays of what its old node saw are refused).
  bool advance_outbound(std::uint64_t child_sa_id, std::uint64_t count);
  std::size_t update_ike_sa_path(std::uint64_t ike_sa_id, const EspPath& path);

  struct Protected {
    EspSpan esp;  // the ESP packet within the caller's buffer
    std::uint64_t child_sa_id = 0;
    EspPath path;  // where to send it
  };
  // The inner packet is buf[inner_offset, inner_offset + inner_len) and is encrypted
  // where it lies; the ESP packet starts header_size() (16 or 24) octets before it, so
  // leave that much plus the outer headers free in front, and
  // OutboundEspSa::kMaxOverhead behind.
  Expected<Protected, Drop> protect(std::span<std::uint8_t> buf, std::size_t inner_offset,
                                    std::size_t inner_len);

  struct Delivered {
    std::span<std::uint8_t> inner;  // within the caller's buffer
    std::uint8_t next_header = 0;   // 4 or 41
    std::uint64_t child_sa_id = 0;
  };
  // One ESP packet, from the SPI on (UDP header and non-ESP marker already removed).
  Expected<Delivered, Drop> unprotect(std::span<std::uint8_t> esp_packet);

  // Frees the cipher contexts no packet used since the last call (see
  // OutboundEspSa::release_idle_cipher): called every T, a direction idle for 2T holds
  // only its key. Says how many it freed and how many stay keyed.
  struct CipherSweep {
    std::size_t released = 0, keyed = 0;
  };
  CipherSweep release_idle_ciphers();
  std::size_t keyed_ciphers() const;  // counted: for statistics, not per packet

  const ChildSaEntry* find(std::uint64_t child_sa_id) const;
  const ChildSaEntry* find_inbound(std::uint32_t spi) const;
  const ChildSaEntry* find_outbound(const Flow& flow) const;
  std::size_t size() const { return by_id_.size(); }

  // Child SAs to rekey or delete, each reported once per kind, and forgotten: soft when
  // a direction's bytes or packets passed a soft limit or the outbound sequence numbers
  // are running out (within rekey_margin: a sender may not cycle its counter, RFC 4303
  // §3.3.3); hard when a direction passed a hard limit, after which the Child SA drops
  // every packet (Drop::kExpired) until it is removed.
  std::vector<ExpireReport> take_expires() { return std::exchange(expires_, {}); }
  bool has_expires() const { return !expires_.empty(); }

  // Drops no Child SA can be charged with: unknown SPI and packets too short to carry
  // one (inbound), no covering selectors and unparsable inner packets (outbound).
  const SaCounters& unattributed_in() const { return unattributed_in_; }
  const SaCounters& unattributed_out() const { return unattributed_out_; }

 private:
  ChildSaEntry* lookup_outbound(const Flow& flow) const;

  // The entries live in by_id_'s nodes (their addresses never change); the other
  // indexes point into them.
  std::unordered_map<std::uint64_t, ChildSaEntry> by_id_;
  std::unordered_map<std::uint32_t, ChildSaEntry*> by_spi_;
  // Outbound index: Child SAs with a single-address remote selector by that address
  // (the common gateway case, one virtual IP per client), the rest scanned. One Child
  // SA per address is the rule (a rekey briefly makes two), so a lone one is held in
  // the node itself, and only two or more in a vector: one allocation per address and
  // one hash look-up per packet.
  struct AddressSlot {
    ChildSaEntry* one = nullptr;                        // the only one, or null
    std::unique_ptr<std::vector<ChildSaEntry*>> many;  // all of them, when two or more
    std::span<ChildSaEntry* const> entries() const {
      if (many) return *many;
      return one ? std::span<ChildSaEntry* const>(&one, 1) : std::span<ChildSaEntry* const>();
    }
  };
  std::unordered_map<IpAddress, AddressSlot> by_remote_address_;
  std::vector<ChildSaEntry*> ranged_;
  SaTableOptions options_;
  std::vector<ExpireReport> expires_;
  std::uint64_t next_serial_ = 1;
  SaCounters unattributed_in_;
  SaCounters unattributed_out_;
};

}  // namespace mobike::esp
