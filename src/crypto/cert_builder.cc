#include "crypto/cert_builder.h"

#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <functional>

#include "crypto/openssl_util.h"

namespace mobike::crypto {
namespace {

using BioPtr = std::unique_ptr<BIO, detail::Deleter<BIO_free>>;

const EVP_MD* digest_for(const PrivateKey& key) {
  return key.type() == KeyType::kEd25519 ? nullptr : EVP_sha256();
}

bool add_ext(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer ? issuer : cert, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
  if (!ext) return false;
  bool ok = X509_add_ext(cert, ext, -1) == 1;
  X509_EXTENSION_free(ext);
  return ok;
}

std::string pem_of(const std::function<int(BIO*)>& write) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || write(bio.get()) != 1) detail::fatal("PEM write");
  char* data = nullptr;
  long len = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<std::size_t>(len));
}

}  // namespace

std::shared_ptr<const Certificate> issue_certificate(const CertRequest& req, const PrivateKey& key,
                                                     const Certificate* issuer, const PrivateKey& issuer_key) {
  auto subject = dn_from_text(req.subject);
  if (!subject) return nullptr;
  X509* x = X509_new();
  if (!x) detail::fatal("X509_new");
  std::unique_ptr<X509, detail::Deleter<X509_free>> guard(x);
  const unsigned char* p = subject->data();
  X509_NAME* name = d2i_X509_NAME(nullptr, &p, static_cast<long>(subject->size()));
  std::time_t now = std::time(nullptr);
  bool ok = name && X509_set_version(x, 2) == 1 && ASN1_INTEGER_set(X509_get_serialNumber(x), req.serial) == 1 &&
            X509_set_subject_name(x, name) == 1 &&
            X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer->get()) : name) == 1 &&
            X509_time_adj_ex(X509_getm_notBefore(x), 0, 0, req.not_before ? const_cast<std::time_t*>(&req.not_before) : nullptr) &&
            X509_time_adj_ex(X509_getm_notAfter(x), 0, 0, req.not_after ? const_cast<std::time_t*>(&req.not_after) : nullptr) &&
            X509_set_pubkey(x, key.get()) == 1;
  X509_NAME_free(name);
  if (ok && !req.not_before) {
    std::time_t hour_ago = now - 3600;
    ok = X509_time_adj_ex(X509_getm_notBefore(x), 0, 0, &hour_ago) != nullptr;
  }
  if (ok && !req.not_after) {
    std::time_t month = now + 30 * 86400;
    ok = X509_time_adj_ex(X509_getm_notAfter(x), 0, 0, &month) != nullptr;
  }
  X509* issuer_x = issuer ? issuer->get() : nullptr;
  ok = ok && add_ext(x, issuer_x, NID_basic_constraints, req.ca ? "critical,CA:TRUE" : "CA:FALSE") &&
       add_ext(x, issuer_x, NID_subject_key_identifier, "hash") &&
       add_ext(x, issuer_x, NID_key_usage, req.ca ? "critical,keyCertSign,cRLSign" : "digitalSignature");
  if (ok && issuer) ok = add_ext(x, issuer_x, NID_authority_key_identifier, "keyid:always");
  std::string san;
  for (const auto& d : req.san_dns) san += (san.empty() ? "" : ",") + std::string("DNS:") + d;
  for (const auto& e : req.san_email) san += (san.empty() ? "" : ",") + std::string("email:") + e;
  for (const auto& i : req.san_ip) san += (san.empty() ? "" : ",") + std::string("IP:") + i;
  if (ok && !san.empty()) ok = add_ext(x, issuer_x, NID_subject_alt_name, san);
  ok = ok && X509_sign(x, issuer_key.get(), digest_for(issuer_key)) > 0;
  if (!ok) {
    detail::clear_errors();
    return nullptr;
  }
  return std::make_shared<Certificate>(guard.release());
}

std::shared_ptr<const Crl> issue_crl(const Certificate& issuer, const PrivateKey& issuer_key,
                                     const std::vector<long>& serials) {
  X509_CRL* crl = X509_CRL_new();
  if (!crl) detail::fatal("X509_CRL_new");
  std::unique_ptr<X509_CRL, detail::Deleter<X509_CRL_free>> guard(crl);
  std::time_t now = std::time(nullptr);
  std::time_t next = now + 7 * 86400;
  std::unique_ptr<ASN1_TIME, detail::Deleter<ASN1_TIME_free>> last_t(ASN1_TIME_set(nullptr, now));
  std::unique_ptr<ASN1_TIME, detail::Deleter<ASN1_TIME_free>> next_t(ASN1_TIME_set(nullptr, next));
  bool ok = last_t && next_t && X509_CRL_set_version(crl, 1) == 1 &&
            X509_CRL_set_issuer_name(crl, X509_get_subject_name(issuer.get())) == 1 &&
            X509_CRL_set1_lastUpdate(crl, last_t.get()) == 1 && X509_CRL_set1_nextUpdate(crl, next_t.get()) == 1;
  for (long serial : serials) {
    if (!ok) break;
    X509_REVOKED* r = X509_REVOKED_new();
    std::unique_ptr<ASN1_INTEGER, detail::Deleter<ASN1_INTEGER_free>> sn(ASN1_INTEGER_new());
    ok = r && sn && ASN1_INTEGER_set(sn.get(), serial) == 1 && X509_REVOKED_set_serialNumber(r, sn.get()) == 1 &&
         X509_REVOKED_set_revocationDate(r, last_t.get()) == 1 && X509_CRL_add0_revoked(crl, r) == 1;
    if (!ok) X509_REVOKED_free(r);
  }
  ok = ok && X509_CRL_sort(crl) == 1 && X509_CRL_sign(crl, issuer_key.get(), digest_for(issuer_key)) > 0;
  if (!ok) {
    detail::clear_errors();
    return nullptr;
  }
  return std::make_shared<Crl>(guard.release());
}

std::string to_pem(const Certificate& cert) {
  return pem_of([&](BIO* b) { return PEM_write_bio_X509(b, cert.get()); });
}

std::string to_pem(const PrivateKey& key) {
  return pem_of([&](BIO* b) { return PEM_write_bio_PrivateKey(b, key.get(), nullptr, nullptr, 0, nullptr, nullptr); });
}

std::string to_pem(const Crl& crl) {
  return pem_of([&](BIO* b) { return PEM_write_bio_X509_CRL(b, crl.get()); });
}

}  // namespace mobike::crypto
