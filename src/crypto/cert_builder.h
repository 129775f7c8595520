// Issues certificates and CRLs in memory: for mobike-bench's clients and for tests,
// which make their own PKI rather than check in keys. Not for a production CA.
#pragma once

#include <ctime>
#include <memory>
#include <string>
#include <vector>

#include "crypto/certificate.h"
#include "crypto/signature.h"

namespace mobike::crypto {

struct CertRequest {
  std::string subject;                // "C=CH, O=Example, CN=gw"
  std::vector<std::string> san_dns, san_email, san_ip;  // san_ip as text
  bool ca = false;
  std::time_t not_before = 0;  // 0: an hour ago
  std::time_t not_after = 0;   // 0: in 30 days
  long serial = 1;
};

// Signed by `issuer_key` as `issuer` (nullptr: self-signed with `key`), with SHA-256
// (Ed25519: no digest). nullptr on a request OpenSSL refuses.
std::shared_ptr<const Certificate> issue_certificate(const CertRequest& req, const PrivateKey& key,
                                                     const Certificate* issuer, const PrivateKey& issuer_key);

// A CRL of `issuer` revoking `serials`.
std::shared_ptr<const Crl> issue_crl(const Certificate& issuer, const PrivateKey& issuer_key,
                                     const std::vector<long>& serials);

std::string to_pem(const Certificate& cert);
std::string to_pem(const PrivateKey& key);
std::string to_pem(const Crl& crl);

}  // namespace mobike::crypto
