// Which node sends a cluster move's switch request (docs/cluster.md, planned move).
#pragma once

#include <cstdint>

namespace mobike::cluster {

// kNewNode: the importer, from the old node's address (one store round trip less, but
// the network must let it send with that source address). kOldNode: the node the SA
// leaves, from its own address, once the importer has written {ready}.
enum class SwitchSender : std::uint8_t { kNewNode, kOldNode };

}  // namespace mobike::cluster
