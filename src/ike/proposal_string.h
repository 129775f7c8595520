// Proposals as written in configuration files, in strongSwan's keyword syntax
// ("aes128gcm16-prfsha256-x25519, aes256-sha384-ecp384"), and the reverse for logs.
//
// Keywords: encryption aes128 aes256 (CBC), aes128gcm16 aes256gcm16 (aliases aes128gcm
// aes256gcm), chacha20poly1305; integrity sha256 sha384 sha512 (HMAC-SHA2 truncated to
// half the hash); prf prfsha256 prfsha384 prfsha512; groups modp2048 modp3072 ecp256
// ecp384 x25519 curve25519; ESP only esn noesn. Keywords are case-insensitive.
//
// As in strongSwan, an IKE proposal without an explicit prf takes the PRF of each
// integrity hash; an ESP proposal without esn/noesn gets NO_ESN; a group in an ESP
// proposal is its PFS group. Unlike strongSwan, AEAD combined with an integrity
// algorithm is an error rather than silently split into two proposals, so what is
// offered is exactly what is written.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "common/expected.h"
#include "wire/payloads.h"

namespace mobike::ike {

// Comma-separated proposals; numbered 1..n in order, no SPI. Errors are one sentence
// naming the offending keyword or proposal, e.g. "unknown algorithm 'aes129'".
Expected<std::vector<wire::Proposal>, std::string> parse_ike_proposals(std::string_view text);
Expected<std::vector<wire::Proposal>, std::string> parse_esp_proposals(std::string_view text);

// IANA-style names joined by '/', in the form swanctl --list-sas prints:
// "AES_GCM_16-128/PRF_HMAC_SHA2_256/CURVE_25519", "AES_CBC-256/HMAC_SHA2_384_192/
// PRF_HMAC_SHA2_384/ECP_384", "AES_GCM_16-128/ESN". A lone NO_ESN is left out (it is the
// default); ESN and NO_ESN offered together print as "ESN/NO_ESN". Values this code does
// not know print as "ENCR_<id>", "PRF_<id>", "INTEG_<id>", "DH_<id>", "ESN_<id>".
std::string proposal_to_string(const wire::Proposal& p);
// Several proposals separated by ", ".
std::string proposals_to_string(const std::vector<wire::Proposal>& ps);

}  // namespace mobike::ike
