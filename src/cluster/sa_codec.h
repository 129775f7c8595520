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

// 2 added the peer's RFC 6311 claims, 3 what both sides claimed, 4 RFC 7383
// fragmentation (the agreement, and the cached response as a list of datagrams); older
// versions are still read (as no claims / none usable / no fragmentation).
inline constexpr std::uint8_t kSnapshotVersion = 5;

Bytes encode_snapshot(const ike::IkeSaSnapshot& s);
Expected<ike::IkeSaSnapshot, std::string> decode_snapshot(ByteView in);

}  // namespace mobike::cluster
