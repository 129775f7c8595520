// X.509 certificates for IKEv2 (RFC 7296 §3.6/§3.7, RFC 4945 profile): the end-entity
// and intermediate certificates a peer sends in CERT payloads, the trust anchors and CRLs
// that decide whether to believe them, and the CERTREQ authority hashes (SHA-1 of a
// CA's SubjectPublicKeyInfo).
#pragma once

#include <ctime>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/bytes.h"
#include "common/expected.h"
#include "crypto/signature.h"

typedef struct x509_st X509;
typedef struct X509_crl_st X509_CRL;

namespace mobike::crypto {

class Certificate {
 public:
  static Expected<std::shared_ptr<const Certificate>, std::string> from_der(ByteView der);
  // Every certificate of a PEM text, in order.
  static Expected<std::vector<std::shared_ptr<const Certificate>>, std::string> from_pem(const std::string& pem);
  explicit Certificate(X509* owned);  // takes ownership
  ~Certificate();
  Certificate(const Certificate&) = delete;
  Certificate& operator=(const Certificate&) = delete;

  const Bytes& der() const { return der_; }
  const Bytes& subject_der() const { return subject_der_; }  // the Name, as ID_DER_ASN1_DN carries it
  std::string subject() const;                               // "C=CH, O=Example, CN=gw"
  std::string issuer() const;
  // subjectAltName entries by kind (addresses as 4 or 16 octets).
  const std::vector<std::string>& san_dns() const { return san_dns_; }
  const std::vector<std::string>& san_email() const { return san_email_; }
  const std::vector<Bytes>& san_ip() const { return san_ip_; }
  const PublicKey& public_key() const { return *key_; }
  // SHA-1 of the DER SubjectPublicKeyInfo: what CERTREQ names a CA by.
  const Bytes& key_id() const { return key_id_; }
  bool is_ca() const;
  X509* get() const { return x509_; }

 private:
  X509* x509_;
  Bytes der_, subject_der_, key_id_;
  std::vector<std::string> san_dns_, san_email_;
  std::vector<Bytes> san_ip_;
  std::unique_ptr<PublicKey> key_;
};

class Crl {
 public:
  static Expected<std::vector<std::shared_ptr<const Crl>>, std::string> from_pem_or_der(const std::string& content);
  explicit Crl(X509_CRL* owned);
  ~Crl();
  Crl(const Crl&) = delete;
  Crl& operator=(const Crl&) = delete;
  X509_CRL* get() const { return crl_; }

 private:
  X509_CRL* crl_;
};

// Trust anchors and CRLs of one connection's peer authentication.
class TrustStore {
 public:
  void add_anchor(std::shared_ptr<const Certificate> ca) { anchors_.push_back(std::move(ca)); }
  void add_crl(std::shared_ptr<const Crl> crl) { crls_.push_back(std::move(crl)); }
  const std::vector<std::shared_ptr<const Certificate>>& anchors() const { return anchors_; }
  bool empty() const { return anchors_.empty(); }

  // Builds a path from `end_entity` through `intermediates` (untrusted, as received) to
  // an anchor and checks signatures, validity at `at` (default: now), CA constraints, and
  // revocation by every CRL we hold from an issuer on the path (a CRL we do not have is
  // not an error, as strongSwan treats a missing one without strict revocation). The
  // error names the certificate and the reason.
  Expected<bool, std::string> verify(const Certificate& end_entity,
                                     const std::vector<std::shared_ptr<const Certificate>>& intermediates,
                                     std::optional<std::time_t> at = std::nullopt) const;

 private:
  std::vector<std::shared_ptr<const Certificate>> anchors_;
  std::vector<std::shared_ptr<const Crl>> crls_;
};

// --- Distinguished names (ID_DER_ASN1_DN) --------------------------------------------------

// "C=CH, O=Example Org, CN=gw.example.org" (also '/'-separated, OpenSSL style) -> DER Name,
// RDNs in the order written. Known keys: C ST L O OU CN E/emailAddress DC SN GN UID
// serialNumber title; a value may hold "\," for a comma. nullopt if not a DN.
std::optional<Bytes> dn_from_text(const std::string& text);
// The text form of a DER Name (strongSwan's "C=.., O=.., CN=.." order and separators);
// nullopt if `der` is not a Name.
std::optional<std::string> dn_to_text(ByteView der);
// Whether `der` matches `pattern`: the same attribute types in the same order, values
// equal ignoring ASCII case and the string type, a pattern value "*" matching any value.
bool dn_matches(ByteView der, ByteView pattern);

}  // namespace mobike::crypto
