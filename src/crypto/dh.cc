#include "crypto/dh.h"

#include <openssl/crypto.h>
#include <openssl/dh.h>
#include <openssl/obj_mac.h>

#include "crypto/openssl_util.h"

namespace mobike::crypto {

namespace {

using detail::BnCtxPtr;
using detail::BnPtr;
using detail::EcGroupPtr;
using detail::EcPointPtr;
using detail::ParamBldPtr;
using detail::ParamPtr;
using detail::PkeyCtxPtr;
using detail::PkeyPtr;

enum class Kind { kModp, kEcp, kX25519 };

struct GroupInfo {
  Kind kind;
  const char* key_type;    // OpenSSL key type name
  const char* group_name;  // OpenSSL group name (nullptr for X25519)
  int curve_nid;           // ECP only
  std::size_t public_size;
};

GroupInfo info(DhGroupId g) {
  switch (g) {
    case DhGroupId::kModp2048: return {Kind::kModp, "DH", SN_modp_2048, 0, 256};
    case DhGroupId::kModp3072: return {Kind::kModp, "DH", SN_modp_3072, 0, 384};
    case DhGroupId::kEcp256:
      return {Kind::kEcp, "EC", SN_X9_62_prime256v1, NID_X9_62_prime256v1, 64};
    case DhGroupId::kEcp384: return {Kind::kEcp, "EC", SN_secp384r1, NID_secp384r1, 96};
    case DhGroupId::kCurve25519: return {Kind::kX25519, "X25519", nullptr, 0, 32};
    case DhGroupId::kNone: break;
  }
  detail::fatal("unsupported DH group");
}

Unexpected<std::string> fail(const char* what) {
  return unexpected(detail::openssl_error(what));
}

// RFC 3526 primes as OpenSSL ships them; used for range checks and the test hook.
BnPtr modp_prime(DhGroupId g) {
  BnPtr p(g == DhGroupId::kModp2048 ? BN_get_rfc3526_prime_2048(nullptr)
                                    : BN_get_rfc3526_prime_3072(nullptr));
  if (!p) detail::fatal("BN_get_rfc3526_prime");
  return p;
}

// Builds an EVP_PKEY of `key_type` from the parameters collected in `bld`.
Expected<PkeyPtr, std::string> from_params(const char* key_type, OSSL_PARAM_BLD* bld,
                                           int selection) {
  ParamPtr params(OSSL_PARAM_BLD_to_param(bld));
  PkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_name(nullptr, key_type, nullptr));
  if (!params || !ctx || EVP_PKEY_fromdata_init(ctx.get()) != 1) return fail("fromdata init");
  EVP_PKEY* raw = nullptr;
  if (EVP_PKEY_fromdata(ctx.get(), &raw, selection, params.get()) != 1) {
    return fail("invalid key data");
  }
  return PkeyPtr(raw);
}

class EvpKeyExchange final : public KeyExchange {
 public:
  EvpKeyExchange(DhGroupId group, PkeyPtr key, Bytes pub)
      : group_(group), key_(std::move(key)), public_(std::move(pub)) {}

  DhGroupId group() const override { return group_; }
  const Bytes& public_value() const override { return public_; }

  Expected<Bytes, std::string> shared_secret(ByteView peer) const override {
    const GroupInfo gi = info(group_);
    if (peer.size() != gi.public_size) {
      return unexpected("KE data has " + std::to_string(peer.size()) + " octets, expected " +
                        std::to_string(gi.public_size));
    }
    Expected<PkeyPtr, std::string> peer_key = parse_peer(gi, peer);
    if (!peer_key) return unexpected(peer_key.error());

    PkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_pkey(nullptr, key_.get(), nullptr));
    if (!ctx || EVP_PKEY_derive_init(ctx.get()) != 1) return fail("derive init");
    // RFC 7296 §2.14: g^ir is the fixed-length, zero-padded value; OpenSSL strips
    // leading zeros unless told otherwise.
    if (gi.kind == Kind::kModp && EVP_PKEY_CTX_set_dh_pad(ctx.get(), 1) != 1) {
      return fail("set DH padding");
    }
    // Validation already happened in parse_peer with the checks RFC 6989 asks for;
    // OpenSSL's default full check would add a second modular exponentiation for MODP.
    if (EVP_PKEY_derive_set_peer_ex(ctx.get(), peer_key->get(), 0) != 1) {
      return fail("peer key rejected");
    }
    std::size_t len = 0;
    if (EVP_PKEY_derive(ctx.get(), nullptr, &len) != 1) return fail("derive");
    Bytes secret(len);
    if (EVP_PKEY_derive(ctx.get(), secret.data(), &len) != 1) {
      // X25519 lands here for low-order peer points (all-zero output).
      OPENSSL_cleanse(secret.data(), secret.size());
      return fail("key agreement failed");
    }
    secret.resize(len);
    const std::size_t expected = gi.kind == Kind::kEcp ? gi.public_size / 2 : gi.public_size;
    if (len != expected) {
      OPENSSL_cleanse(secret.data(), secret.size());
      return unexpected(std::string("shared secret has unexpected length"));
    }
    if (gi.kind == Kind::kX25519) {
      // RFC 8031 §2.3 / RFC 7748 §6.1: an all-zero result means a low-order point.
      // Checked here too so the rule does not depend on one OpenSSL version's behaviour.
      std::uint8_t acc = 0;
      for (auto b : secret) acc |= b;
      if (acc == 0) return unexpected(std::string("X25519 shared secret is all zero"));
    }
    return secret;
  }

 private:
  Expected<PkeyPtr, std::string> parse_peer(const GroupInfo& gi, ByteView peer) const {
    switch (gi.kind) {
      case Kind::kX25519: {
        PkeyPtr k(EVP_PKEY_new_raw_public_key_ex(nullptr, "X25519", nullptr, peer.data(),
                                                 peer.size()));
        if (!k) return fail("invalid X25519 public value");
        return k;
      }
      case Kind::kModp: {
        BnPtr y(BN_bin2bn(peer.data(), static_cast<int>(peer.size()), nullptr));
        BnPtr p_minus_1 = modp_prime(group_);
        if (!y || BN_sub_word(p_minus_1.get(), 1) != 1) detail::fatal("BN");
        // RFC 6989 §2.1: for safe-prime groups, 1 < y < p-1 excludes every small-subgroup
        // element; no exponentiation check is needed.
        if (BN_cmp(y.get(), BN_value_one()) <= 0 || BN_cmp(y.get(), p_minus_1.get()) >= 0) {
          return unexpected(std::string("MODP public value out of range"));
        }
        ParamBldPtr bld(OSSL_PARAM_BLD_new());
        if (!bld ||
            OSSL_PARAM_BLD_push_utf8_string(bld.get(), OSSL_PKEY_PARAM_GROUP_NAME,
                                            gi.group_name, 0) != 1 ||
            OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_PUB_KEY, y.get()) != 1) {
          detail::fatal("OSSL_PARAM_BLD");
        }
        return from_params(gi.key_type, bld.get(), EVP_PKEY_PUBLIC_KEY);
      }
      case Kind::kEcp: {
        // RFC 5903 §7 carries x || y without SEC1's 0x04 prefix.
        Bytes sec1;
        sec1.reserve(peer.size() + 1);
        sec1.push_back(0x04);
        append(sec1, peer);
        ParamBldPtr bld(OSSL_PARAM_BLD_new());
        if (!bld ||
            OSSL_PARAM_BLD_push_utf8_string(bld.get(), OSSL_PKEY_PARAM_GROUP_NAME,
                                            gi.group_name, 0) != 1 ||
            OSSL_PARAM_BLD_push_octet_string(bld.get(), OSSL_PKEY_PARAM_PUB_KEY, sec1.data(),
                                             sec1.size()) != 1) {
          detail::fatal("OSSL_PARAM_BLD");
        }
        // Decoding already refuses coordinates >= p and points off the curve
        // (RFC 6989 §2.3); the quick check also rules out the point at infinity.
        auto key = from_params(gi.key_type, bld.get(), EVP_PKEY_PUBLIC_KEY);
        if (!key) return unexpected("ECP point rejected: " + key.error());
        PkeyCtxPtr check(EVP_PKEY_CTX_new_from_pkey(nullptr, key->get(), nullptr));
        if (!check || EVP_PKEY_public_check_quick(check.get()) != 1) {
          return fail("ECP point not on the curve");
        }
        return key;
      }
    }
    detail::fatal("unsupported DH group");
  }

  DhGroupId group_;
  PkeyPtr key_;
  Bytes public_;
};

Expected<Bytes, std::string> encode_public(const GroupInfo& gi, EVP_PKEY* key) {
  Bytes out(gi.public_size);
  switch (gi.kind) {
    case Kind::kX25519: {
      std::size_t len = out.size();
      if (EVP_PKEY_get_raw_public_key(key, out.data(), &len) != 1 || len != out.size()) {
        return fail("X25519 public key");
      }
      return out;
    }
    case Kind::kModp: {
      BIGNUM* raw = nullptr;
      if (EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_PUB_KEY, &raw) != 1) {
        return fail("DH public key");
      }
      BnPtr y(raw);
      if (BN_bn2binpad(y.get(), out.data(), static_cast<int>(out.size())) < 0) {
        return fail("DH public key size");
      }
      return out;
    }
    case Kind::kEcp: {
      Bytes sec1(gi.public_size + 1);
      std::size_t len = 0;
      if (EVP_PKEY_get_octet_string_param(key, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, sec1.data(),
                                          sec1.size(), &len) != 1 ||
          len != sec1.size() || sec1[0] != 0x04) {
        return fail("EC public key");
      }
      std::copy(sec1.begin() + 1, sec1.end(), out.begin());
      return out;
    }
  }
  detail::fatal("unsupported DH group");
}

Expected<std::unique_ptr<KeyExchange>, std::string> wrap(DhGroupId group, PkeyPtr key) {
  auto pub = encode_public(info(group), key.get());
  if (!pub) return unexpected(pub.error());
  return std::unique_ptr<KeyExchange>(
      std::make_unique<EvpKeyExchange>(group, std::move(key), std::move(*pub)));
}

Expected<PkeyPtr, std::string> modp_with_private(DhGroupId group, const GroupInfo& gi,
                                                 ByteView priv) {
  BnPtr x(BN_bin2bn(priv.data(), static_cast<int>(priv.size()), nullptr));
  BnPtr p = modp_prime(group);
  BnPtr p_minus_1(BN_dup(p.get()));
  BnPtr y(BN_new());
  BnPtr two(BN_new());
  BnCtxPtr bnctx(BN_CTX_new());
  if (!x || !p_minus_1 || !y || !two || !bnctx || BN_sub_word(p_minus_1.get(), 1) != 1 ||
      BN_set_word(two.get(), 2) != 1) {
    detail::fatal("BN");
  }
  if (BN_cmp(x.get(), BN_value_one()) <= 0 || BN_cmp(x.get(), p_minus_1.get()) >= 0) {
    return unexpected(std::string("MODP private exponent out of range"));
  }
  if (BN_mod_exp(y.get(), two.get(), x.get(), p.get(), bnctx.get()) != 1) return fail("modexp");
  ParamBldPtr bld(OSSL_PARAM_BLD_new());
  if (!bld ||
      OSSL_PARAM_BLD_push_utf8_string(bld.get(), OSSL_PKEY_PARAM_GROUP_NAME, gi.group_name,
                                      0) != 1 ||
      OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_PUB_KEY, y.get()) != 1 ||
      OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_PRIV_KEY, x.get()) != 1) {
    detail::fatal("OSSL_PARAM_BLD");
  }
  return from_params(gi.key_type, bld.get(), EVP_PKEY_KEYPAIR);
}

Expected<PkeyPtr, std::string> ecp_with_private(const GroupInfo& gi, ByteView priv) {
  if (priv.size() != gi.public_size / 2) {
    return unexpected(std::string("ECP private scalar has the wrong size"));
  }
  EcGroupPtr group(EC_GROUP_new_by_curve_name(gi.curve_nid));
  BnPtr d(BN_bin2bn(priv.data(), static_cast<int>(priv.size()), nullptr));
  BnCtxPtr bnctx(BN_CTX_new());
  if (!group || !d || !bnctx) detail::fatal("EC setup");
  if (BN_is_zero(d.get()) || BN_cmp(d.get(), EC_GROUP_get0_order(group.get())) >= 0) {
    return unexpected(std::string("ECP private scalar out of range"));
  }
  EcPointPtr q(EC_POINT_new(group.get()));
  Bytes sec1(gi.public_size + 1);
  if (!q || EC_POINT_mul(group.get(), q.get(), d.get(), nullptr, nullptr, bnctx.get()) != 1 ||
      EC_POINT_point2oct(group.get(), q.get(), POINT_CONVERSION_UNCOMPRESSED, sec1.data(),
                         sec1.size(), bnctx.get()) != sec1.size()) {
    return fail("EC public point");
  }
  ParamBldPtr bld(OSSL_PARAM_BLD_new());
  if (!bld ||
      OSSL_PARAM_BLD_push_utf8_string(bld.get(), OSSL_PKEY_PARAM_GROUP_NAME, gi.group_name,
                                      0) != 1 ||
      OSSL_PARAM_BLD_push_octet_string(bld.get(), OSSL_PKEY_PARAM_PUB_KEY, sec1.data(),
                                       sec1.size()) != 1 ||
      OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_PRIV_KEY, d.get()) != 1) {
    detail::fatal("OSSL_PARAM_BLD");
  }
  return from_params(gi.key_type, bld.get(), EVP_PKEY_KEYPAIR);
}

}  // namespace

bool dh_group_supported(std::uint16_t group) {
  switch (static_cast<DhGroupId>(group)) {
    case DhGroupId::kModp2048:
    case DhGroupId::kModp3072:
    case DhGroupId::kEcp256:
    case DhGroupId::kEcp384:
    case DhGroupId::kCurve25519:
      return true;
    case DhGroupId::kNone:
      break;
  }
  return false;
}

std::size_t dh_public_size(DhGroupId group) {
  // May be asked about a group number straight from a peer's KE payload: answer 0
  // rather than reaching info()'s abort.
  return dh_group_supported(static_cast<std::uint16_t>(group)) ? info(group).public_size : 0;
}

Expected<std::unique_ptr<KeyExchange>, std::string> KeyExchange::create(DhGroupId group) {
  if (!dh_group_supported(static_cast<std::uint16_t>(group))) {
    return unexpected(std::string("unsupported DH group"));
  }
  const GroupInfo gi = info(group);
  PkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_name(nullptr, gi.key_type, nullptr));
  if (!ctx || EVP_PKEY_keygen_init(ctx.get()) != 1) return fail("keygen init");
  if (gi.group_name != nullptr) {
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME,
                                         const_cast<char*>(gi.group_name), 0),
        OSSL_PARAM_construct_end()};
    if (EVP_PKEY_CTX_set_params(ctx.get(), params) != 1) return fail("keygen group");
  }
  EVP_PKEY* raw = nullptr;
  if (EVP_PKEY_generate(ctx.get(), &raw) != 1) return fail("keygen");
  return wrap(group, PkeyPtr(raw));
}

Expected<std::unique_ptr<KeyExchange>, std::string> KeyExchange::create_with_private(
    DhGroupId group, ByteView priv) {
  if (!dh_group_supported(static_cast<std::uint16_t>(group))) {
    return unexpected(std::string("unsupported DH group"));
  }
  const GroupInfo gi = info(group);
  Expected<PkeyPtr, std::string> key = unexpected(std::string());
  switch (gi.kind) {
    case Kind::kX25519: {
      if (priv.size() != 32) return unexpected(std::string("X25519 private key must be 32 octets"));
      PkeyPtr k(EVP_PKEY_new_raw_private_key_ex(nullptr, "X25519", nullptr, priv.data(),
                                                priv.size()));
      if (!k) return fail("X25519 private key");
      key = std::move(k);
      break;
    }
    case Kind::kModp: key = modp_with_private(group, gi, priv); break;
    case Kind::kEcp: key = ecp_with_private(gi, priv); break;
  }
  if (!key) return unexpected(key.error());
  return wrap(group, std::move(*key));
}

}  // namespace mobike::crypto
