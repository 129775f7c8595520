// Public-key signatures for IKEv2 authentication: the classic AUTH methods of RFC 7296
// §3.8 (RSA PKCS#1 v1.5 with SHA-1, ECDSA with raw r|s of RFC 4754) and RFC 7427's
// "Digital Signature" method, whose AUTH data names the scheme in an ASN.1
// AlgorithmIdentifier. Keys are OpenSSL 3 EVP_PKEYs behind two value types.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/bytes.h"
#include "common/expected.h"

typedef struct evp_pkey_st EVP_PKEY;

namespace mobike::crypto {

enum class KeyType : std::uint8_t { kRsa, kEcdsaP256, kEcdsaP384, kEcdsaP521, kEd25519, kOther };
const char* key_type_name(KeyType t);

// RFC 7427 §7 hash algorithm identifiers (SIGNATURE_HASH_ALGORITHMS notify).
enum class HashAlgorithm : std::uint16_t { kSha1 = 1, kSha256 = 2, kSha384 = 3, kSha512 = 4, kIdentity = 5 };
// The set we announce and accept under RFC 7427 (SHA-1 is not among them, RFC 8247).
std::vector<HashAlgorithm> supported_hash_algorithms();

enum class SignatureKind : std::uint8_t { kRsaPkcs1, kRsaPss, kEcdsa, kEd25519 };

struct SignatureScheme {
  SignatureKind kind = SignatureKind::kRsaPkcs1;
  HashAlgorithm hash = HashAlgorithm::kSha256;  // kIdentity for Ed25519
  friend bool operator==(const SignatureScheme&, const SignatureScheme&) = default;
};
std::string scheme_name(const SignatureScheme& s);

// The DER AlgorithmIdentifier of a scheme (RSA-PSS: MGF1 with the same hash, salt as
// long as the hash), and back. parse_algorithm_identifier accepts what peers send:
// absent or NULL parameters, any PSS salt length; it fails on anything unknown.
Bytes algorithm_identifier(const SignatureScheme& s);
struct ParsedScheme {
  SignatureScheme scheme;
  int pss_salt_length = -1;  // from the PSS parameters
};
Expected<ParsedScheme, std::string> parse_algorithm_identifier(ByteView der);

class PublicKey {
 public:
  explicit PublicKey(EVP_PKEY* owned);  // takes ownership
  ~PublicKey();
  PublicKey(const PublicKey&) = delete;
  PublicKey& operator=(const PublicKey&) = delete;

  KeyType type() const { return type_; }
  int bits() const;
  // `signature`: DER ECDSA-Sig-Value for kEcdsa (RFC 7427); raw_ecdsa verifies the
  // fixed-length r|s of the classic ECDSA AUTH methods instead.
  bool verify(const SignatureScheme& s, ByteView data, ByteView signature, int pss_salt_length = -1) const;
  bool verify_raw_ecdsa(HashAlgorithm hash, ByteView data, ByteView signature) const;
  Bytes der() const;  // SubjectPublicKeyInfo
  EVP_PKEY* get() const { return key_; }

 private:
  EVP_PKEY* key_;
  KeyType type_;
};

class PrivateKey {
 public:
  // PEM (PKCS#8, or the traditional RSA/EC forms), unencrypted.
  static Expected<std::shared_ptr<PrivateKey>, std::string> from_pem(const std::string& pem);
  // A fresh key, for tests and benchmarks.
  static std::shared_ptr<PrivateKey> generate(KeyType type);
  explicit PrivateKey(EVP_PKEY* owned);
  ~PrivateKey();
  PrivateKey(const PrivateKey&) = delete;
  PrivateKey& operator=(const PrivateKey&) = delete;

  KeyType type() const { return type_; }
  // Empty on failure (a scheme that does not fit the key).
  Bytes sign(const SignatureScheme& s, ByteView data) const;
  Bytes sign_raw_ecdsa(HashAlgorithm hash, ByteView data) const;
  // DER SubjectPublicKeyInfo, to check that a certificate belongs to this key.
  Bytes public_key_der() const;
  EVP_PKEY* get() const { return key_; }

 private:
  EVP_PKEY* key_;
  KeyType type_;
};

KeyType key_type_of(EVP_PKEY* key);

}  // namespace mobike::crypto
