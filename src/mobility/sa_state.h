// What MOBIKE keeps per IKE SA (RFC 4555): the peer's address set, the path the Child
// SAs use, and the progress of path probing and return-routability checks.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

#include "common/bytes.h"
#include "common/ip_address.h"
#include "ike/ike_sa.h"
#include "ike/mobility.h"

namespace mobike::mobility {

using ike::TimePoint;

struct Path {
  Endpoint local;
  Endpoint remote;
  friend bool operator==(const Path&, const Path&) = default;
};

struct SaState final : ike::MobilityState {
  // Fields are grouped by size, not by topic: a gateway holds one per client, and the
  // padding between mixed sizes cost 24 octets of each.

  // The peer's additional addresses (§3.6); the address in its IP header is implied.
  std::vector<IpAddress> peer_addresses;
  // Initiator: the peer's addresses by our own lookup of its name in remote_addrs (the
  // daemon's, when probing found no path: add_peer_addresses); probed like those above.
  std::vector<IpAddress> looked_up;
  // Our own list as last sent to the peer (responder announcements).
  std::vector<IpAddress> announced;
  // Path probing (§3.4): the outstanding request goes out on every candidate path.
  // After the first answer: other answers to the same request until decide_at.
  std::vector<Path> answers;  // in arrival order
  std::vector<Path> probed;   // where this probing sent; answers from elsewhere are ignored
  TimePoint probing_since{};
  TimePoint switch_deadline = TimePoint::max();  // of the switch below
  TimePoint switch_since{};                      // ... and when it began (Stats::switches)
  std::uint64_t updates = 0;    // completed moves of this SA
  std::uint64_t switch_id = 0;  // counts the switches of this SA (see SwitchTask)
  // The path the Child SAs use: what both peers agreed on in the last completed update.
  Path committed;
  // Where the response to our last request came from (for the RR check).
  Path last_response_path;
  // Responder-initiated switch (SWITCH_TO_IP_ADDRESS): where to and from.
  IpAddress switch_to;
  IpAddress switch_from;
  std::uint32_t probe_mid = 0;
  bool announced_once = false;
  // Responder: a new list is to be announced at the next timer (see
  // Mobike::local_addresses_changed).
  bool list_due = false;
  // An update or return-routability check that could not go out while the IKE SA was
  // being rekeyed: sent at the next timer, on the SA that replaced it if any.
  bool update_due = false;
  bool rr_due = false;
  bool probing = false;
  bool no_path_reported = false;  // this probing's EventKind::kNoPath is out
  bool deciding = false;
  // Responder: the initiator's new path awaits a return-routability check.
  bool rr_pending = false;
  // The roles are those of the first IKE SA; the flags survive IKE SA rekeys.
  bool peer_switch = false;  // responder: the initiator sent the 0x52 octet
  enum class Switch : std::uint8_t {
    kIdle,
    kSent,         // our request is out, from the old address
    kAwaitUpdate,  // answered; UPDATE_SA_ADDRESSES is expected at the new address
  };
  Switch switch_state = Switch::kIdle;
};

// The SA's MOBIKE state, created on first use.
SaState& state(ike::IkeSa& sa);
const SaState* find_state(const ike::IkeSa& sa);

// Whether a task of this name waits in the SA's queue (not yet sent): one waiting
// update, check or list always carries the newest state, so a second is never queued.
bool waiting(const ike::IkeSa& sa, std::string_view task_name);

}  // namespace mobike::mobility
