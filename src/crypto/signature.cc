#include "crypto/signature.h"

#include <openssl/ec.h>
#include <openssl/ecdsa.h>
#include <openssl/obj_mac.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "crypto/openssl_util.h"

namespace mobike::crypto {
namespace {

using detail::PkeyCtxPtr;

// --- a minimal DER writer for the AlgorithmIdentifiers we send ---------------------------

Bytes tlv(std::uint8_t tag, const Bytes& content) {
  Bytes out{tag};
  std::size_t n = content.size();
  if (n < 0x80) {
    out.push_back(static_cast<std::uint8_t>(n));
  } else if (n < 0x100) {
    out.push_back(0x81);
    out.push_back(static_cast<std::uint8_t>(n));
  } else {
    out.push_back(0x82);
    out.push_back(static_cast<std::uint8_t>(n >> 8));
    out.push_back(static_cast<std::uint8_t>(n));
  }
  append(out, content);
  return out;
}

Bytes cat(std::initializer_list<Bytes> parts) {
  Bytes out;
  for (const auto& p : parts) append(out, p);
  return out;
}

// OID contents (without tag and length).
const Bytes kOidRsaEncryptionArc = {0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01};  // 1.2.840.113549.1.1
const Bytes kOidEcdsaSigArc = {0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03};            // 1.2.840.10045.4.3
const Bytes kOidHashArc = {0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02};          // 2.16.840.1.101.3.4.2
const Bytes kOidEd25519 = {0x2b, 0x65, 0x70};                                          // 1.3.101.112

Bytes oid(const Bytes& arc, std::optional<std::uint8_t> last = std::nullopt) {
  Bytes c = arc;
  if (last) c.push_back(*last);
  return tlv(0x06, c);
}

const Bytes kNull = {0x05, 0x00};

std::uint8_t hash_oid_last(HashAlgorithm h) {
  switch (h) {
    case HashAlgorithm::kSha384: return 2;
    case HashAlgorithm::kSha512: return 3;
    default: return 1;  // SHA-256
  }
}

std::size_t hash_length(HashAlgorithm h) {
  switch (h) {
    case HashAlgorithm::kSha1: return 20;
    case HashAlgorithm::kSha384: return 48;
    case HashAlgorithm::kSha512: return 64;
    default: return 32;
  }
}

const EVP_MD* md_of(HashAlgorithm h) {
  switch (h) {
    case HashAlgorithm::kSha1: return EVP_sha1();
    case HashAlgorithm::kSha256: return EVP_sha256();
    case HashAlgorithm::kSha384: return EVP_sha384();
    case HashAlgorithm::kSha512: return EVP_sha512();
    case HashAlgorithm::kIdentity: return nullptr;
  }
  return nullptr;
}

std::optional<HashAlgorithm> hash_of_nid(int nid) {
  switch (nid) {
    case NID_sha1: return HashAlgorithm::kSha1;
    case NID_sha256: return HashAlgorithm::kSha256;
    case NID_sha384: return HashAlgorithm::kSha384;
    case NID_sha512: return HashAlgorithm::kSha512;
    default: return std::nullopt;
  }
}

bool kind_fits(SignatureKind k, KeyType t) {
  switch (k) {
    case SignatureKind::kRsaPkcs1:
    case SignatureKind::kRsaPss: return t == KeyType::kRsa;
    case SignatureKind::kEcdsa:
      return t == KeyType::kEcdsaP256 || t == KeyType::kEcdsaP384 || t == KeyType::kEcdsaP521;
    case SignatureKind::kEd25519: return t == KeyType::kEd25519;
  }
  return false;
}

std::size_t ecdsa_scalar_bytes(KeyType t) {
  switch (t) {
    case KeyType::kEcdsaP256: return 32;
    case KeyType::kEcdsaP384: return 48;
    case KeyType::kEcdsaP521: return 66;
    default: return 0;
  }
}

// Prepares a digest-sign/verify context with the scheme's padding.
bool configure(EVP_MD_CTX* md_ctx, EVP_PKEY* key, const SignatureScheme& s, bool sign, int salt) {
  EVP_PKEY_CTX* pctx = nullptr;
  const EVP_MD* md = s.kind == SignatureKind::kEd25519 ? nullptr : md_of(s.hash);
  if (s.kind != SignatureKind::kEd25519 && !md) return false;
  int ok = sign ? EVP_DigestSignInit(md_ctx, &pctx, md, nullptr, key)
                : EVP_DigestVerifyInit(md_ctx, &pctx, md, nullptr, key);
  if (ok != 1) return false;
  if (s.kind == SignatureKind::kRsaPkcs1) return EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) == 1;
  if (s.kind == SignatureKind::kRsaPss) {
    int salt_len = salt >= 0 ? salt : static_cast<int>(hash_length(s.hash));
    return EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) == 1 &&
           EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, md) == 1 &&
           EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, salt_len) == 1;
  }
  return true;
}

using MdCtxPtr = std::unique_ptr<EVP_MD_CTX, detail::Deleter<EVP_MD_CTX_free>>;
using EcdsaSigPtr = std::unique_ptr<ECDSA_SIG, detail::Deleter<ECDSA_SIG_free>>;
using AlgorPtr = std::unique_ptr<X509_ALGOR, detail::Deleter<X509_ALGOR_free>>;
using PssPtr = std::unique_ptr<RSA_PSS_PARAMS, detail::Deleter<RSA_PSS_PARAMS_free>>;

Bytes sign_der(EVP_PKEY* key, KeyType type, const SignatureScheme& s, ByteView data) {
  if (!kind_fits(s.kind, type)) return {};
  MdCtxPtr ctx(EVP_MD_CTX_new());
  if (!ctx || !configure(ctx.get(), key, s, true, -1)) {
    detail::clear_errors();
    return {};
  }
  std::size_t len = 0;
  if (EVP_DigestSign(ctx.get(), nullptr, &len, data.data(), data.size()) != 1) {
    detail::clear_errors();
    return {};
  }
  Bytes sig(len);
  if (EVP_DigestSign(ctx.get(), sig.data(), &len, data.data(), data.size()) != 1) {
    detail::clear_errors();
    return {};
  }
  sig.resize(len);
  return sig;
}

bool verify_der(EVP_PKEY* key, KeyType type, const SignatureScheme& s, ByteView data, ByteView sig, int salt) {
  if (!kind_fits(s.kind, type)) return false;
  MdCtxPtr ctx(EVP_MD_CTX_new());
  bool ok = ctx && configure(ctx.get(), key, s, false, salt) &&
            EVP_DigestVerify(ctx.get(), sig.data(), sig.size(), data.data(), data.size()) == 1;
  detail::clear_errors();
  return ok;
}

SignatureScheme ecdsa(HashAlgorithm h) { return {SignatureKind::kEcdsa, h}; }

Bytes spki_der(EVP_PKEY* key) {
  unsigned char* der = nullptr;
  int len = i2d_PUBKEY(key, &der);
  if (len <= 0) detail::fatal("i2d_PUBKEY");
  Bytes out(der, der + len);
  OPENSSL_free(der);
  return out;
}

}  // namespace

const char* key_type_name(KeyType t) {
  switch (t) {
    case KeyType::kRsa: return "RSA";
    case KeyType::kEcdsaP256: return "ECDSA P-256";
    case KeyType::kEcdsaP384: return "ECDSA P-384";
    case KeyType::kEcdsaP521: return "ECDSA P-521";
    case KeyType::kEd25519: return "Ed25519";
    case KeyType::kOther: break;
  }
  return "unsupported key";
}

std::vector<HashAlgorithm> supported_hash_algorithms() {
  return {HashAlgorithm::kSha256, HashAlgorithm::kSha384, HashAlgorithm::kSha512, HashAlgorithm::kIdentity};
}

std::string scheme_name(const SignatureScheme& s) {
  const char* h = s.hash == HashAlgorithm::kSha1     ? "SHA-1"
                  : s.hash == HashAlgorithm::kSha256 ? "SHA-256"
                  : s.hash == HashAlgorithm::kSha384 ? "SHA-384"
                  : s.hash == HashAlgorithm::kSha512 ? "SHA-512"
                                                     : "";
  switch (s.kind) {
    case SignatureKind::kRsaPkcs1: return std::string("RSA PKCS#1 v1.5 ") + h;
    case SignatureKind::kRsaPss: return std::string("RSA-PSS ") + h;
    case SignatureKind::kEcdsa: return std::string("ECDSA ") + h;
    case SignatureKind::kEd25519: return "Ed25519";
  }
  return "?";
}

Bytes algorithm_identifier(const SignatureScheme& s) {
  switch (s.kind) {
    case SignatureKind::kRsaPkcs1: {
      // sha1WithRSAEncryption (.5), sha256/384/512WithRSAEncryption (.11/.12/.13)
      std::uint8_t last = s.hash == HashAlgorithm::kSha1     ? 5
                          : s.hash == HashAlgorithm::kSha384 ? 12
                          : s.hash == HashAlgorithm::kSha512 ? 13
                                                             : 11;
      return tlv(0x30, cat({oid(kOidRsaEncryptionArc, last), kNull}));
    }
    case SignatureKind::kRsaPss: {
      Bytes hash_alg = tlv(0x30, cat({oid(kOidHashArc, hash_oid_last(s.hash)), kNull}));
      Bytes mgf = tlv(0x30, cat({oid(kOidRsaEncryptionArc, 8), hash_alg}));  // id-mgf1
      Bytes salt = tlv(0x02, Bytes{static_cast<std::uint8_t>(hash_length(s.hash))});
      Bytes params = tlv(0x30, cat({tlv(0xa0, hash_alg), tlv(0xa1, mgf), tlv(0xa2, salt)}));
      return tlv(0x30, cat({oid(kOidRsaEncryptionArc, 10), params}));  // id-RSASSA-PSS
    }
    case SignatureKind::kEcdsa: {
      std::uint8_t last = s.hash == HashAlgorithm::kSha384 ? 3 : s.hash == HashAlgorithm::kSha512 ? 4 : 2;
      return tlv(0x30, oid(kOidEcdsaSigArc, last));  // no parameters (RFC 5758)
    }
    case SignatureKind::kEd25519: return tlv(0x30, oid(kOidEd25519));
  }
  return {};
}

Expected<ParsedScheme, std::string> parse_algorithm_identifier(ByteView der) {
  const unsigned char* p = der.data();
  AlgorPtr alg(d2i_X509_ALGOR(nullptr, &p, static_cast<long>(der.size())));
  if (!alg || p != der.data() + der.size()) {
    detail::clear_errors();
    return unexpected(std::string("malformed AlgorithmIdentifier"));
  }
  const ASN1_OBJECT* obj = nullptr;
  int ptype = 0;
  const void* pval = nullptr;
  X509_ALGOR_get0(&obj, &ptype, &pval, alg.get());
  int nid = OBJ_obj2nid(obj);
  ParsedScheme r;
  switch (nid) {
    case NID_sha1WithRSAEncryption: r.scheme = {SignatureKind::kRsaPkcs1, HashAlgorithm::kSha1}; return r;
    case NID_sha256WithRSAEncryption: r.scheme = {SignatureKind::kRsaPkcs1, HashAlgorithm::kSha256}; return r;
    case NID_sha384WithRSAEncryption: r.scheme = {SignatureKind::kRsaPkcs1, HashAlgorithm::kSha384}; return r;
    case NID_sha512WithRSAEncryption: r.scheme = {SignatureKind::kRsaPkcs1, HashAlgorithm::kSha512}; return r;
    case NID_ecdsa_with_SHA256: r.scheme = ecdsa(HashAlgorithm::kSha256); return r;
    case NID_ecdsa_with_SHA384: r.scheme = ecdsa(HashAlgorithm::kSha384); return r;
    case NID_ecdsa_with_SHA512: r.scheme = ecdsa(HashAlgorithm::kSha512); return r;
    case NID_ED25519: r.scheme = {SignatureKind::kEd25519, HashAlgorithm::kIdentity}; return r;
    case NID_rsassaPss: break;
    default: {
      char name[80];
      OBJ_obj2txt(name, sizeof name, obj, 1);
      return unexpected(std::string("unsupported signature algorithm ") + name);
    }
  }
  if (ptype != V_ASN1_SEQUENCE || !pval) return unexpected(std::string("RSA-PSS without parameters"));
  const ASN1_STRING* seq = static_cast<const ASN1_STRING*>(pval);
  const unsigned char* q = ASN1_STRING_get0_data(seq);
  PssPtr pss(d2i_RSA_PSS_PARAMS(nullptr, &q, ASN1_STRING_length(seq)));
  if (!pss) {
    detail::clear_errors();
    return unexpected(std::string("malformed RSA-PSS parameters"));
  }
  // RFC 4055 defaults: SHA-1, MGF1 with SHA-1, salt 20.
  auto hash = HashAlgorithm::kSha1;
  if (pss->hashAlgorithm) {
    auto h = hash_of_nid(OBJ_obj2nid(pss->hashAlgorithm->algorithm));
    if (!h) return unexpected(std::string("RSA-PSS with an unsupported hash"));
    hash = *h;
  }
  auto mgf_hash = HashAlgorithm::kSha1;
  if (pss->maskGenAlgorithm) {
    if (OBJ_obj2nid(pss->maskGenAlgorithm->algorithm) != NID_mgf1)
      return unexpected(std::string("RSA-PSS with a mask generation other than MGF1"));
    const ASN1_TYPE* param = pss->maskGenAlgorithm->parameter;
    if (!param || param->type != V_ASN1_SEQUENCE) return unexpected(std::string("MGF1 without a hash"));
    const unsigned char* m = param->value.sequence->data;
    AlgorPtr mh(d2i_X509_ALGOR(nullptr, &m, param->value.sequence->length));
    auto h = mh ? hash_of_nid(OBJ_obj2nid(mh->algorithm)) : std::nullopt;
    detail::clear_errors();
    if (!h) return unexpected(std::string("MGF1 with an unsupported hash"));
    mgf_hash = *h;
  }
  if (mgf_hash != hash) return unexpected(std::string("RSA-PSS with different message and MGF1 hashes"));
  long salt = 20;
  if (pss->saltLength) salt = ASN1_INTEGER_get(pss->saltLength);
  if (salt < 0 || salt > 1024) return unexpected(std::string("RSA-PSS salt length out of range"));
  r.scheme = {SignatureKind::kRsaPss, hash};
  r.pss_salt_length = static_cast<int>(salt);
  return r;
}

KeyType key_type_of(EVP_PKEY* key) {
  switch (EVP_PKEY_get_base_id(key)) {
    case EVP_PKEY_RSA: return KeyType::kRsa;
    case EVP_PKEY_ED25519: return KeyType::kEd25519;
    case EVP_PKEY_EC: {
      char group[64] = {};
      std::size_t len = 0;
      if (EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group, &len) != 1) {
        detail::clear_errors();
        return KeyType::kOther;
      }
      std::string g(group, len);
      if (g == "prime256v1" || g == "P-256") return KeyType::kEcdsaP256;
      if (g == "secp384r1" || g == "P-384") return KeyType::kEcdsaP384;
      if (g == "secp521r1" || g == "P-521") return KeyType::kEcdsaP521;
      return KeyType::kOther;
    }
    default: return KeyType::kOther;
  }
}

// --- PublicKey ----------------------------------------------------------------------------

PublicKey::PublicKey(EVP_PKEY* owned) : key_(owned), type_(key_type_of(owned)) {}
PublicKey::~PublicKey() { EVP_PKEY_free(key_); }
int PublicKey::bits() const { return EVP_PKEY_get_bits(key_); }

bool PublicKey::verify(const SignatureScheme& s, ByteView data, ByteView signature, int salt) const {
  return verify_der(key_, type_, s, data, signature, salt);
}

bool PublicKey::verify_raw_ecdsa(HashAlgorithm hash, ByteView data, ByteView signature) const {
  std::size_t n = ecdsa_scalar_bytes(type_);
  if (!n || signature.size() != 2 * n) return false;
  EcdsaSigPtr sig(ECDSA_SIG_new());
  BIGNUM* r = BN_bin2bn(signature.data(), static_cast<int>(n), nullptr);
  BIGNUM* s = BN_bin2bn(signature.data() + n, static_cast<int>(n), nullptr);
  if (!sig || !r || !s || ECDSA_SIG_set0(sig.get(), r, s) != 1) {
    BN_free(r);
    BN_free(s);
    detail::clear_errors();
    return false;
  }
  unsigned char* der = nullptr;
  int len = i2d_ECDSA_SIG(sig.get(), &der);
  if (len <= 0) {
    detail::clear_errors();
    return false;
  }
  Bytes d(der, der + len);
  OPENSSL_free(der);
  return verify_der(key_, type_, ecdsa(hash), data, d, -1);
}

// --- PrivateKey ---------------------------------------------------------------------------

Expected<std::shared_ptr<PrivateKey>, std::string> PrivateKey::from_pem(const std::string& pem) {
  std::unique_ptr<BIO, detail::Deleter<BIO_free>> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (!bio) detail::fatal("BIO_new_mem_buf");
  // A null passphrase callback: an encrypted key fails here instead of prompting.
  EVP_PKEY* key = PEM_read_bio_PrivateKey(bio.get(), nullptr, [](char*, int, int, void*) { return 0; }, nullptr);
  if (!key) return unexpected(detail::openssl_error("not an unencrypted PEM private key"));
  auto k = std::make_shared<PrivateKey>(key);
  if (k->type() == KeyType::kOther) return unexpected(std::string("unsupported key type (RSA, ECDSA P-256/384/521 or Ed25519)"));
  return k;
}

std::shared_ptr<PrivateKey> PrivateKey::generate(KeyType type) {
  EVP_PKEY* key = nullptr;
  switch (type) {
    case KeyType::kRsa: key = EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", static_cast<size_t>(2048)); break;
    case KeyType::kEcdsaP256: key = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"); break;
    case KeyType::kEcdsaP384: key = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-384"); break;
    case KeyType::kEcdsaP521: key = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-521"); break;
    case KeyType::kEd25519: key = EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519"); break;
    case KeyType::kOther: break;
  }
  if (!key) detail::fatal("key generation");
  return std::make_shared<PrivateKey>(key);
}

PrivateKey::PrivateKey(EVP_PKEY* owned) : key_(owned), type_(key_type_of(owned)) {}
PrivateKey::~PrivateKey() { EVP_PKEY_free(key_); }

Bytes PrivateKey::sign(const SignatureScheme& s, ByteView data) const { return sign_der(key_, type_, s, data); }

Bytes PrivateKey::sign_raw_ecdsa(HashAlgorithm hash, ByteView data) const {
  std::size_t n = ecdsa_scalar_bytes(type_);
  if (!n) return {};
  Bytes der = sign_der(key_, type_, ecdsa(hash), data);
  if (der.empty()) return {};
  const unsigned char* p = der.data();
  EcdsaSigPtr sig(d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(der.size())));
  if (!sig) {
    detail::clear_errors();
    return {};
  }
  Bytes out(2 * n);
  if (BN_bn2binpad(ECDSA_SIG_get0_r(sig.get()), out.data(), static_cast<int>(n)) < 0 ||
      BN_bn2binpad(ECDSA_SIG_get0_s(sig.get()), out.data() + n, static_cast<int>(n)) < 0)
    return {};
  return out;
}

Bytes PublicKey::der() const { return spki_der(key_); }

Bytes PrivateKey::public_key_der() const { return spki_der(key_); }

}  // namespace mobike::crypto
