// MS-CHAPv2 (RFC 2759) as EAP-MSCHAPv2 uses it, with the MPPE master keys of RFC 3079
// that make its MSK. MD4 and single DES are gone from OpenSSL 3's default provider: MD4
// is implemented here, and DES runs as triple DES with three equal keys.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/bytes.h"

namespace mobike::crypto::mschapv2 {

using Hash16 = std::array<std::uint8_t, 16>;
using Challenge = std::array<std::uint8_t, 16>;
using NtResponse = std::array<std::uint8_t, 24>;

// RFC 1320.
Hash16 md4(ByteView data);

// NtPasswordHash: MD4 of the password in UTF-16LE. The password is UTF-8; characters
// outside the Basic Multilingual Plane become surrogate pairs, as Windows encodes them.
Hash16 nt_password_hash(std::string_view password);

// The user name the hashes cover: what follows a "DOMAIN\" prefix (RFC 2759 §4).
std::string_view user_name_of(std::string_view identity);

// GenerateNTResponse (RFC 2759 §8.1).
NtResponse nt_response(const Challenge& authenticator_challenge, const Challenge& peer_challenge,
                       std::string_view user_name, const Hash16& password_hash);

// GenerateAuthenticatorResponse (§8.7): the 20 octets behind "S=".
std::array<std::uint8_t, 20> authenticator_response(const Hash16& password_hash, const NtResponse& nt,
                                                    const Challenge& peer_challenge,
                                                    const Challenge& authenticator_challenge,
                                                    std::string_view user_name);

// The EAP-MSCHAPv2 MSK: MasterReceiveKey | MasterSendKey (RFC 3079 §3.4, the peer's
// view, so that both ends compute the same octets) | 32 zero octets, 64 in all.
Bytes msk(const Hash16& password_hash, const NtResponse& nt);

// RFC 3079's intermediate keys, for its test vectors.
Hash16 master_key(const Hash16& password_hash, const NtResponse& nt);
Hash16 asymmetric_start_key(const Hash16& master, bool is_send, bool is_server);

}  // namespace mobike::crypto::mschapv2
