// The state blob a cluster stores per IKE SA: the encoded snapshot (sa_codec.h) sealed
// with the cluster key, so that the store (etcd) never sees key material in clear and a
// blob that was altered, or moved under another SA's name, is refused.
//
//   "MKSB" | format (1 octet) | nonce (12) | AES-256-GCM(snapshot) | tag (16)
//
// The additional data is the header plus the name the blob is stored under.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/bytes.h"
#include "common/expected.h"
#include "crypto/random.h"
#include "ike/sa_snapshot.h"

namespace mobike::cluster {

inline constexpr std::size_t kClusterKeySize = 32;
using ClusterKey = std::array<std::uint8_t, kClusterKeySize>;

enum class BlobError : std::uint8_t {
  kMalformed,       // too short, wrong magic
  kUnknownFormat,   // a format (or snapshot version) this node does not read
  kAuthentication,  // altered, sealed with another key, or stored under another name
  kContent,         // authentic but the snapshot inside does not decode
};
const char* to_string(BlobError e);

struct BlobFailure {
  BlobError error = BlobError::kMalformed;
  std::string detail;
};

Bytes seal_snapshot(const ike::IkeSaSnapshot& s, const ClusterKey& key, std::string_view name,
                    crypto::Random& random);
// A snapshot holds the SA's keys in clear: wiped once sealed or imported.
void wipe_snapshot_keys(ike::IkeSaSnapshot& s);

Expected<ike::IkeSaSnapshot, BlobFailure> open_snapshot(ByteView blob, const ClusterKey& key, std::string_view name);

}  // namespace mobike::cluster
