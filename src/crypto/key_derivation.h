// Key derivation of RFC 7296 §2.13-§2.14 (IKE SA), §2.18 (IKE SA rekey) and §2.17
// (Child SA keymat).
#pragma once

#include <cstdint>

#include "common/bytes.h"
#include "crypto/prf.h"

namespace mobike::crypto {

struct IkeKeys {
  Bytes sk_d, sk_ai, sk_ar, sk_ei, sk_er, sk_pi, sk_pr;
};

struct IkeKeySizes {
  std::size_t encr = 0;   // per direction, incl. AEAD salt
  std::size_t integ = 0;  // per direction, 0 for AEAD
};

// SKEYSEED = prf(Ni | Nr, g^ir); for the PRFs here (HMAC) the whole Ni | Nr is the key.
Bytes skeyseed(const Prf& prf, ByteView ni, ByteView nr, ByteView shared_secret);
// Rekeyed IKE SA: SKEYSEED = prf(SK_d(old), g^ir(new) | Ni | Nr), with the OLD SA's prf.
Bytes skeyseed_rekey(const Prf& old_prf, ByteView old_sk_d, ByteView shared_secret,
                     ByteView ni, ByteView nr);
// {SK_d | SK_ai | SK_ar | SK_ei | SK_er | SK_pi | SK_pr} = prf+(SKEYSEED, Ni | Nr | SPIi | SPIr)
IkeKeys derive_ike_keys(const Prf& prf, ByteView skeyseed, ByteView ni, ByteView nr,
                        std::uint64_t spi_i, std::uint64_t spi_r, IkeKeySizes sizes);

// KEYMAT = prf+(SK_d, [g^ir (new) |] Ni | Nr), `length` octets. The caller splits it:
// initiator->responder keys first (encr then integ), then responder->initiator.
Bytes child_keymat(const Prf& prf, ByteView sk_d, ByteView shared_secret_or_empty, ByteView ni,
                   ByteView nr, std::size_t length);

// AUTH for a pre-shared key (RFC 7296 §2.15): prf(prf(PSK, "Key Pad for IKEv2"), octets).
Bytes psk_auth(const Prf& prf, ByteView psk, ByteView signed_octets);

}  // namespace mobike::crypto
