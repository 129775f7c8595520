// An IKE SA snapshot (ike/sa_snapshot.h) as octets and back: the plaintext of the
// state blob a cluster keeps per SA (docs/cluster.md). Versioned: a reader refuses a
// version it does not know rather than guess; every length is checked before use.
#pragma once

#include <cstdint>
#include <string>

#include "common/bytes.h"
#include "common/expected.h"
#include "ike/sa_snapshot.h"

namespace mobike::cluster {

// 2 added the peer's RFC 6311 claims; version 1 is still read (as no claims).
inline constexpr std::uint8_t kSnapshotVersion = 2;

Bytes encode_snapshot(const ike::IkeSaSnapshot& s);
Expected<ike::IkeSaSnapshot, std::string> decode_snapshot(ByteView in);

}  // namespace mobike::cluster
