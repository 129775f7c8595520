#include "cluster/sa_blob.h"

#include <algorithm>
#include <cstring>

#include "cluster/sa_codec.h"
#include "crypto/aead.h"
#include "crypto/wipe.h"

namespace mobike::cluster {

namespace {

constexpr std::uint8_t kMagic[4] = {'M', 'K', 'S', 'B'};
constexpr std::uint8_t kFormat = 1;
constexpr std::size_t kHeaderSize = sizeof kMagic + 1 + crypto::Aead::kNonceSize;

Bytes additional_data(ByteView header, std::string_view name) {
  Bytes aad(header.begin(), header.end());
  aad.insert(aad.end(), name.begin(), name.end());
  return aad;
}

}  // namespace

const char* to_string(BlobError e) {
  switch (e) {
    case BlobError::kMalformed: return "malformed";
    case BlobError::kUnknownFormat: return "unknown format";
    case BlobError::kAuthentication: return "authentication failed";
    case BlobError::kContent: return "bad content";
  }
  return "?";
}

Bytes seal_snapshot(const ike::IkeSaSnapshot& s, const ClusterKey& key, std::string_view name,
                    crypto::Random& random) {
  Bytes header(kMagic, kMagic + sizeof kMagic);
  header.push_back(kFormat);
  Bytes nonce = random.bytes(crypto::Aead::kNonceSize);
  header.insert(header.end(), nonce.begin(), nonce.end());
  auto aead = crypto::Aead::create(crypto::AeadAlg::kAes256Gcm, key);
  Bytes plain = encode_snapshot(s);
  Bytes sealed = aead->seal(nonce, additional_data(header, name), plain);
  // The plaintext holds the SA's keys: do not leave it in freed memory.
  crypto::wipe(plain);
  header.insert(header.end(), sealed.begin(), sealed.end());
  return header;
}

Expected<ike::IkeSaSnapshot, BlobFailure> open_snapshot(ByteView blob, const ClusterKey& key,
                                                        std::string_view name) {
  if (blob.size() < kHeaderSize + crypto::Aead::kTagSize || std::memcmp(blob.data(), kMagic, sizeof kMagic) != 0)
    return unexpected(BlobFailure{BlobError::kMalformed, "not an SA state blob"});
  if (blob[sizeof kMagic] != kFormat)
    return unexpected(BlobFailure{BlobError::kUnknownFormat,
                                  "blob format " + std::to_string(blob[sizeof kMagic]) + "; this node reads " +
                                      std::to_string(kFormat)});
  auto aead = crypto::Aead::create(crypto::AeadAlg::kAes256Gcm, key);
  ByteView header = blob.first(kHeaderSize);
  auto plain = aead->open(header.subspan(sizeof kMagic + 1), additional_data(header, name), blob.subspan(kHeaderSize));
  if (!plain)
    return unexpected(BlobFailure{BlobError::kAuthentication, "the blob for '" + std::string(name) +
                                                                  "' does not authenticate under the cluster key"});
  auto s = decode_snapshot(*plain);
  crypto::wipe(*plain);
  if (!s) {
    bool version = s.error().find("version") != std::string::npos;
    return unexpected(BlobFailure{version ? BlobError::kUnknownFormat : BlobError::kContent, s.error()});
  }
  return std::move(*s);
}

void wipe_snapshot_keys(ike::IkeSaSnapshot& s) {
  for (Bytes* k : {&s.sk_d, &s.sk_ai, &s.sk_ar, &s.sk_ei, &s.sk_er}) crypto::wipe(*k);
  for (auto& c : s.children)
    for (Bytes* k : {&c.keys.encr_in, &c.keys.integ_in, &c.keys.encr_out, &c.keys.integ_out}) crypto::wipe(*k);
}

}  // namespace mobike::cluster
