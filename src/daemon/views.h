// What the control commands show: `list-sas` and `stats` as JSON, built from the
// engine's SA table and counters, the data plane's and the daemon's own counters.
#pragma once

#include <cstdint>

#include <nlohmann/json.hpp>

#include "daemon/address_follower.h"
#include "daemon/dataplane.h"
#include "ike/engine.h"

namespace mobike::daemon {

// Counters of the daemon's own I/O (the engine and the data plane keep theirs).
struct IoCounters {
  std::uint64_t keepalives_in = 0;
  std::uint64_t send_errors = 0;
  std::uint64_t oversize_datagrams = 0;
};

nlohmann::json sa_list_view(const ike::Engine& engine, const Dataplane* dataplane, ike::TimePoint now);
// `list-conns`: each connection as loaded (remote_addrs as written: names stay names),
// without secrets.
nlohmann::json connection_list_view(const std::vector<const ike::ConnectionConfig*>& conns);
nlohmann::json stats_view(const ike::Engine& engine, const IoCounters& io, const AddressFollower::Counters& addresses,
                          const Dataplane* dataplane);

}  // namespace mobike::daemon
