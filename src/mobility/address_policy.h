// Which of the host's addresses a connection may use, and where its IKE SAs go when the
// host's addresses change. Pure functions of their inputs (the host's address set
// before and after, the SAs, a route lookup): the daemon and the simulator feed them and
// carry out the plan, so every topology can be tested as a table.
//
// One set serves every purpose: the addresses a connection announces (ADDITIONAL_*),
// probes from, moves to and asks a peer to switch to are usable_local_addresses().
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "common/ip_address.h"
#include "ike/connection.h"
#include "ike/types.h"

namespace mobike::ike {
class Engine;
}

namespace mobike::mobility {

// The host addresses `c` may use as its IKE endpoint, most preferred first:
//  - a connection that names its `local_addrs`: those the host has, wherever they sit
//    (an interface, or a loopback device as routed and anycast service addresses are),
//    in the order the configuration gives;
//  - a connection with `%any`: the host's addresses on interfaces, in the host's order.
//    An address on a loopback device is not one: nothing says that it reaches a peer
//    (a virtual IP, another tunnel's inner address).
// Never loopback, link-local, multicast or other unusable addresses (usable_address).
std::vector<IpAddress> usable_local_addresses(const ike::ConnectionConfig& c, std::span<const ike::HostAddress> host);
bool usable_local_address(const ike::ConnectionConfig& c, std::span<const ike::HostAddress> host,
                          const IpAddress& address);
bool host_has(std::span<const ike::HostAddress> host, const IpAddress& address);

// What the planner needs of one IKE SA.
struct SaFacts {
  std::uint64_t id = 0;
  const ike::ConnectionConfig* config = nullptr;
  Endpoint local;
  Endpoint remote;
  // Established, and we are the MOBIKE initiator: we choose its addresses (RFC 4555 §3.5).
  bool may_update = false;
  // Established, we are the responder, the initiator follows switch requests, and no
  // switch of this SA is in flight.
  bool may_switch = false;
  // Our addresses the peer was told about (ADDITIONAL_*): it accepts a switch to them.
  std::vector<IpAddress> announced;
};
std::vector<SaFacts> sa_facts(const ike::Engine& engine);

// The kernel's source address for packets to `peer`, if it has a route.
using RouteLookup = std::function<std::optional<IpAddress>(const IpAddress& peer)>;

struct AddressPlan {
  // The initiator moves the SA (UPDATE_SA_ADDRESSES) to `to`; without one, it probes
  // every path (RFC 4555 §3.4).
  struct Move {
    std::uint64_t sa = 0;
    std::optional<IpAddress> to;
    std::string why;
  };
  // The responder asks the initiator to follow it to `to` (SWITCH_TO_IP_ADDRESS).
  struct Switch {
    std::uint64_t sa = 0;
    IpAddress to;
    std::string why;
  };
  // An SA that lost its address and has nowhere to go.
  struct Stranded {
    std::uint64_t sa = 0;
    std::string why;
  };
  std::vector<Move> moves;
  std::vector<Switch> switches;
  std::vector<Stranded> stranded;
};

// The plan for a change of the host's addresses from `before` to `after`.
//
// Initiator (may_update), with U = usable_local_addresses(after) and R = the route's
// source towards the peer:
//  1. R in U and not the SA's address: move to R when the SA's address is no longer in
//     U; when it still is, move only if the connection takes any address (`%any`: the
//     kernel's choice changed, e.g. a preferred uplink came back) or R comes before it
//     in `local_addrs` (a preferred address came back).
//  2. The SA's address no longer in U and R not in U: probe every path.
//  3. Otherwise the SA stays.
// Responder (may_switch):
//  1. The SA's address no longer in U: switch to the best other address of U, ranked by
//     a) its place in `switch_prefer` (listed before unlisted), b) announced to the peer
//     before not, c) the SA's address family before the other, d) R before others,
//     e) the order of U. Nothing left in U: stranded.
//  2. Otherwise, an address of `switch_prefer` that is new in U and comes before the
//     SA's address there (which must be listed too): switch back to it.
AddressPlan plan_address_change(std::span<const ike::HostAddress> before, std::span<const ike::HostAddress> after,
                                std::span<const SaFacts> sas, const RouteLookup& route);

// Carries out `plan` on `engine`; returns one line per action for the log.
struct PlanOutcome {
  std::size_t moves = 0;     // moves and probes started
  std::size_t switches = 0;  // switch requests started
  std::vector<std::string> log_info;
  std::vector<std::string> log_warn;
};
PlanOutcome execute(ike::Engine& engine, const AddressPlan& plan, ike::TimePoint now);

}  // namespace mobike::mobility
