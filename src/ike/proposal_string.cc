#include "ike/proposal_string.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <optional>

namespace mobike::ike {
namespace {

using wire::TransformType;

enum class Side { kIke, kEsp };

struct Keyword {
  std::string_view name;
  TransformType type;
  std::uint16_t id;
  std::uint16_t key_bits;  // 0 = no Key Length attribute
  bool aead;
  std::uint16_t implied_prf;  // integrity keywords: the PRF of the same hash (IKE only)
};

constexpr std::uint16_t u16(auto e) { return static_cast<std::uint16_t>(e); }

constexpr std::array kKeywords = {
    Keyword{"aes128", TransformType::kEncr, u16(wire::EncrId::kAesCbc), 128, false, 0},
    Keyword{"aes256", TransformType::kEncr, u16(wire::EncrId::kAesCbc), 256, false, 0},
    Keyword{"aes128gcm16", TransformType::kEncr, u16(wire::EncrId::kAesGcm16), 128, true, 0},
    Keyword{"aes128gcm", TransformType::kEncr, u16(wire::EncrId::kAesGcm16), 128, true, 0},
    Keyword{"aes256gcm16", TransformType::kEncr, u16(wire::EncrId::kAesGcm16), 256, true, 0},
    Keyword{"aes256gcm", TransformType::kEncr, u16(wire::EncrId::kAesGcm16), 256, true, 0},
    // RFC 7634 §2: ChaCha20-Poly1305 has a fixed key size and must not carry the attribute.
    Keyword{"chacha20poly1305", TransformType::kEncr, u16(wire::EncrId::kChaCha20Poly1305), 0,
            true, 0},
    Keyword{"sha256", TransformType::kInteg, u16(wire::IntegId::kHmacSha256_128), 0, false,
            u16(wire::PrfId::kHmacSha256)},
    Keyword{"sha384", TransformType::kInteg, u16(wire::IntegId::kHmacSha384_192), 0, false,
            u16(wire::PrfId::kHmacSha384)},
    Keyword{"sha512", TransformType::kInteg, u16(wire::IntegId::kHmacSha512_256), 0, false,
            u16(wire::PrfId::kHmacSha512)},
    Keyword{"prfsha256", TransformType::kPrf, u16(wire::PrfId::kHmacSha256), 0, false, 0},
    Keyword{"prfsha384", TransformType::kPrf, u16(wire::PrfId::kHmacSha384), 0, false, 0},
    Keyword{"prfsha512", TransformType::kPrf, u16(wire::PrfId::kHmacSha512), 0, false, 0},
    Keyword{"modp2048", TransformType::kDh, u16(wire::DhGroup::kModp2048), 0, false, 0},
    Keyword{"modp3072", TransformType::kDh, u16(wire::DhGroup::kModp3072), 0, false, 0},
    Keyword{"ecp256", TransformType::kDh, u16(wire::DhGroup::kEcp256), 0, false, 0},
    Keyword{"ecp384", TransformType::kDh, u16(wire::DhGroup::kEcp384), 0, false, 0},
    Keyword{"x25519", TransformType::kDh, u16(wire::DhGroup::kCurve25519), 0, false, 0},
    Keyword{"curve25519", TransformType::kDh, u16(wire::DhGroup::kCurve25519), 0, false, 0},
    Keyword{"esn", TransformType::kEsn, u16(wire::EsnId::kEsn), 0, false, 0},
    Keyword{"noesn", TransformType::kEsn, u16(wire::EsnId::kNoEsn), 0, false, 0},
};

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

const Keyword* find_keyword(std::string_view name) {
  for (const auto& k : kKeywords)
    if (k.name == name) return &k;
  return nullptr;
}

std::vector<std::string_view> split(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  for (;;) {
    auto pos = s.find(sep);
    out.push_back(s.substr(0, pos));
    if (pos == std::string_view::npos) return out;
    s.remove_prefix(pos + 1);
  }
}

wire::Transform make_transform(TransformType type, std::uint16_t id, std::uint16_t key_bits) {
  wire::Transform t{type, id, std::nullopt};
  if (key_bits) t.key_length = key_bits;
  return t;
}

bool contains(const std::vector<wire::Transform>& v, const wire::Transform& t) {
  return std::find(v.begin(), v.end(), t) != v.end();
}

Expected<wire::Proposal, std::string> parse_one(std::string_view text, Side side) {
  std::vector<wire::Transform> encr, prf, integ, dh, esn;
  std::vector<wire::Transform> implied_prf;
  const Keyword* first_aead = nullptr;
  const Keyword* first_plain = nullptr;
  const Keyword* first_integ = nullptr;
  // Built by appending: GCC 12 at -O3 warns falsely (-Wrestrict) on "'" + std::string.
  std::string quoted(1, '\'');
  quoted.append(text).push_back('\'');

  for (auto raw : split(text, '-')) {
    auto token = trim(raw);
    if (token.empty()) return unexpected("empty algorithm in proposal " + quoted);
    const Keyword* k = find_keyword(lower(token));
    if (!k) return unexpected("unknown algorithm '" + std::string(token) + "'");
    if (side == Side::kIke && k->type == TransformType::kEsn)
      return unexpected("'" + std::string(token) + "' is only valid in ESP proposals");
    if (side == Side::kEsp && k->type == TransformType::kPrf)
      return unexpected("'" + std::string(token) + "' is only valid in IKE proposals");

    auto t = make_transform(k->type, k->id, k->key_bits);
    std::vector<wire::Transform>* list = nullptr;
    switch (k->type) {
      case TransformType::kEncr:
        list = &encr;
        if (k->aead && !first_aead) first_aead = k;
        if (!k->aead && !first_plain) first_plain = k;
        break;
      case TransformType::kPrf: list = &prf; break;
      case TransformType::kInteg:
        list = &integ;
        if (!first_integ) first_integ = k;
        break;
      case TransformType::kDh: list = &dh; break;
      case TransformType::kEsn: list = &esn; break;
    }
    // Aliases (aes128gcm/aes128gcm16, x25519/curve25519) land here too.
    if (contains(*list, t))
      return unexpected("duplicate algorithm '" + std::string(token) + "' in proposal " + quoted);
    list->push_back(t);
    if (k->implied_prf) {
      auto p = make_transform(TransformType::kPrf, k->implied_prf, 0);
      if (!contains(implied_prf, p)) implied_prf.push_back(p);
    }
  }

  if (encr.empty()) return unexpected("proposal " + quoted + " has no encryption algorithm");
  if (first_aead && first_plain)
    return unexpected("proposal " + quoted + " mixes AEAD ('" + std::string(first_aead->name) +
                      "') and non-AEAD ('" + std::string(first_plain->name) + "') encryption");
  const bool aead = first_aead != nullptr;
  if (aead && first_integ) {
    std::string msg = "AEAD algorithm '" + std::string(first_aead->name) +
                      "' must not be combined with integrity algorithm '" +
                      std::string(first_integ->name) + "'";
    if (side == Side::kIke) msg += " (write prf" + std::string(first_integ->name) + " for the PRF)";
    return unexpected(msg);
  }
  if (!aead && integ.empty())
    return unexpected("proposal " + quoted + " needs an integrity algorithm");
  if (side == Side::kIke) {
    if (prf.empty()) {
      if (aead) return unexpected("AEAD proposal " + quoted + " needs a prf (e.g. prfsha256)");
      prf = implied_prf;
    }
    // RFC 7296 §3.3.3: a key exchange method is mandatory in IKE proposals.
    if (dh.empty()) return unexpected("proposal " + quoted + " needs a key exchange group");
  } else if (esn.empty()) {
    // RFC 7296 §3.3.3: ESP proposals must say whether extended sequence numbers are used.
    esn.push_back(make_transform(TransformType::kEsn, u16(wire::EsnId::kNoEsn), 0));
  }

  wire::Proposal p;
  p.protocol = side == Side::kIke ? wire::ProtocolId::kIke : wire::ProtocolId::kEsp;
  for (auto* list : {&encr, &prf, &integ, &dh, &esn})
    p.transforms.insert(p.transforms.end(), list->begin(), list->end());
  return p;
}

Expected<std::vector<wire::Proposal>, std::string> parse_list(std::string_view text, Side side) {
  if (trim(text).empty()) return unexpected(std::string("no proposals given"));
  std::vector<wire::Proposal> out;
  for (auto raw : split(text, ',')) {
    auto piece = trim(raw);
    if (piece.empty()) return unexpected(std::string("empty proposal in list"));
    // The proposal number is one octet (RFC 7296 §3.3.1).
    if (out.size() == 255) return unexpected(std::string("more than 255 proposals"));
    auto p = parse_one(piece, side);
    if (!p) return unexpected(p.error());
    p->number = static_cast<std::uint8_t>(out.size() + 1);
    out.push_back(std::move(*p));
  }
  return out;
}

std::optional<std::string_view> encr_name(std::uint16_t id) {
  switch (id) {
    case 3: return "3DES";
    case 11: return "NULL";
    case 12: return "AES_CBC";
    case 13: return "AES_CTR";
    case 14: return "AES_CCM_8";
    case 15: return "AES_CCM_12";
    case 16: return "AES_CCM_16";
    case 18: return "AES_GCM_8";
    case 19: return "AES_GCM_12";
    case 20: return "AES_GCM_16";
    case 23: return "CAMELLIA_CBC";
    case 28: return "CHACHA20_POLY1305";
  }
  return std::nullopt;
}

std::optional<std::string_view> prf_name(std::uint16_t id) {
  switch (id) {
    case 1: return "PRF_HMAC_MD5";
    case 2: return "PRF_HMAC_SHA1";
    case 4: return "PRF_AES128_XCBC";
    case 5: return "PRF_HMAC_SHA2_256";
    case 6: return "PRF_HMAC_SHA2_384";
    case 7: return "PRF_HMAC_SHA2_512";
    case 8: return "PRF_AES128_CMAC";
  }
  return std::nullopt;
}

std::optional<std::string_view> integ_name(std::uint16_t id) {
  switch (id) {
    case 1: return "HMAC_MD5_96";
    case 2: return "HMAC_SHA1_96";
    case 5: return "AES_XCBC_96";
    case 8: return "AES_CMAC_96";
    case 12: return "HMAC_SHA2_256_128";
    case 13: return "HMAC_SHA2_384_192";
    case 14: return "HMAC_SHA2_512_256";
  }
  return std::nullopt;
}

std::optional<std::string_view> dh_name(std::uint16_t id) {
  switch (id) {
    case 2: return "MODP_1024";
    case 5: return "MODP_1536";
    case 14: return "MODP_2048";
    case 15: return "MODP_3072";
    case 16: return "MODP_4096";
    case 17: return "MODP_6144";
    case 18: return "MODP_8192";
    case 19: return "ECP_256";
    case 20: return "ECP_384";
    case 21: return "ECP_521";
    case 31: return "CURVE_25519";
    case 32: return "CURVE_448";
  }
  return std::nullopt;
}

std::string transform_name(const wire::Transform& t) {
  auto named = [&](std::optional<std::string_view> n, std::string_view prefix) {
    return n ? std::string(*n) : std::string(prefix) + "_" + std::to_string(t.id);
  };
  switch (t.type) {
    case TransformType::kEncr: {
      auto s = named(encr_name(t.id), "ENCR");
      if (t.key_length) s.append("-").append(std::to_string(*t.key_length));
      return s;
    }
    case TransformType::kPrf: return named(prf_name(t.id), "PRF");
    case TransformType::kInteg: return named(integ_name(t.id), "INTEG");
    case TransformType::kDh: return named(dh_name(t.id), "DH");
    case TransformType::kEsn:
      if (t.id == u16(wire::EsnId::kEsn)) return "ESN";
      if (t.id == u16(wire::EsnId::kNoEsn)) return "NO_ESN";
      return "ESN_" + std::to_string(t.id);
  }
  return "TRANSFORM" + std::to_string(static_cast<unsigned>(t.type)) + "_" + std::to_string(t.id);
}

}  // namespace

Expected<std::vector<wire::Proposal>, std::string> parse_ike_proposals(std::string_view text) {
  return parse_list(text, Side::kIke);
}

Expected<std::vector<wire::Proposal>, std::string> parse_esp_proposals(std::string_view text) {
  return parse_list(text, Side::kEsp);
}

std::string proposal_to_string(const wire::Proposal& p) {
  const bool has_esn = std::any_of(p.transforms.begin(), p.transforms.end(), [](const auto& t) {
    return t.type == TransformType::kEsn && t.id == u16(wire::EsnId::kEsn);
  });
  std::string out;
  // swanctl's order, which is not the wire order: ENCR, INTEG, PRF, DH, ESN.
  for (auto type : {TransformType::kEncr, TransformType::kInteg, TransformType::kPrf,
                    TransformType::kDh, TransformType::kEsn}) {
    for (const auto& t : p.transforms) {
      if (t.type != type) continue;
      // "None" values carry no information in a summary line.
      if ((type == TransformType::kInteg && t.id == u16(wire::IntegId::kNone)) ||
          (type == TransformType::kDh && t.id == u16(wire::DhGroup::kNone)) ||
          (type == TransformType::kEsn && t.id == u16(wire::EsnId::kNoEsn) && !has_esn))
        continue;
      if (!out.empty()) out += '/';
      out += transform_name(t);
    }
  }
  // Transform types beyond ESN (e.g. RFC 9370 additional key exchanges).
  for (const auto& t : p.transforms) {
    if (static_cast<unsigned>(t.type) <= static_cast<unsigned>(TransformType::kEsn)) continue;
    if (!out.empty()) out += '/';
    out += transform_name(t);
  }
  return out;
}

std::string proposals_to_string(const std::vector<wire::Proposal>& ps) {
  std::string out;
  for (const auto& p : ps) {
    if (!out.empty()) out += ", ";
    out += proposal_to_string(p);
  }
  return out;
}

}  // namespace mobike::ike
