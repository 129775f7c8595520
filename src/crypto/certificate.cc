#include "crypto/certificate.h"

#include <openssl/pem.h>
#include <openssl/sha.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <cctype>

#include "crypto/openssl_util.h"

namespace mobike::crypto {
namespace {

using BioPtr = std::unique_ptr<BIO, detail::Deleter<BIO_free>>;
using NamePtr = std::unique_ptr<X509_NAME, detail::Deleter<X509_NAME_free>>;
using StorePtr = std::unique_ptr<X509_STORE, detail::Deleter<X509_STORE_free>>;
using StoreCtxPtr = std::unique_ptr<X509_STORE_CTX, detail::Deleter<X509_STORE_CTX_free>>;
using GeneralNamesPtr = std::unique_ptr<GENERAL_NAMES, detail::Deleter<GENERAL_NAMES_free>>;

struct X509StackFree {
  void operator()(STACK_OF(X509) * s) const { sk_X509_free(s); }
};
struct X509StackPopFree {
  void operator()(STACK_OF(X509) * s) const { sk_X509_pop_free(s, X509_free); }
};

std::string utf8(const ASN1_STRING* s) {
  unsigned char* out = nullptr;
  int n = ASN1_STRING_to_UTF8(&out, s);
  if (n < 0) {
    detail::clear_errors();
    return {};
  }
  std::string r(reinterpret_cast<char*>(out), static_cast<std::size_t>(n));
  OPENSSL_free(out);
  return r;
}

// The attribute keys a DN text may use, matched ignoring case ("cn=" as "CN="); the
// one-letter aliases are strongSwan's.
int nid_of_key(std::string_view key) {
  static constexpr std::pair<std::string_view, int> kKeys[] = {
      {"C", NID_countryName}, {"ST", NID_stateOrProvinceName}, {"S", NID_stateOrProvinceName},
      {"L", NID_localityName}, {"O", NID_organizationName}, {"OU", NID_organizationalUnitName},
      {"CN", NID_commonName}, {"E", NID_pkcs9_emailAddress}, {"email", NID_pkcs9_emailAddress},
      {"emailAddress", NID_pkcs9_emailAddress}, {"DC", NID_domainComponent}, {"SN", NID_surname},
      {"GN", NID_givenName}, {"G", NID_givenName}, {"UID", NID_userId}, {"serialNumber", NID_serialNumber},
      {"title", NID_title}, {"initials", NID_initials}, {"pseudonym", NID_pseudonym}, {"N", NID_name},
      {"street", NID_streetAddress}, {"postalCode", NID_postalCode}, {"dnQualifier", NID_dnQualifier},
  };
  auto same = [](std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i)
      if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i]))) return false;
    return true;
  };
  for (const auto& [name, nid] : kKeys)
    if (same(key, name)) return nid;
  return NID_undef;
}

const char* key_of_nid(int nid) {
  switch (nid) {
    case NID_pkcs9_emailAddress: return "E";
    case NID_userId: return "UID";
    default: return OBJ_nid2sn(nid);
  }
}

std::string trim(std::string_view s) {
  while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
  while (!s.empty() && s.back() == ' ') s.remove_suffix(1);
  return std::string(s);
}

std::optional<Bytes> name_der(const X509_NAME* name) {
  unsigned char* der = nullptr;
  int len = i2d_X509_NAME(name, &der);
  if (len <= 0) {
    detail::clear_errors();
    return std::nullopt;
  }
  Bytes out(der, der + len);
  OPENSSL_free(der);
  return out;
}

NamePtr name_of(ByteView der) {
  const unsigned char* p = der.data();
  NamePtr n(d2i_X509_NAME(nullptr, &p, static_cast<long>(der.size())));
  if (!n || p != der.data() + der.size()) {
    detail::clear_errors();
    return nullptr;
  }
  return n;
}

std::string name_text(const X509_NAME* name) {
  std::string out;
  for (int i = 0; i < X509_NAME_entry_count(name); ++i) {
    const X509_NAME_ENTRY* e = X509_NAME_get_entry(name, i);
    int nid = OBJ_obj2nid(X509_NAME_ENTRY_get_object(e));
    if (!out.empty()) out += ", ";
    if (nid != NID_undef) {
      out += key_of_nid(nid);
    } else {
      char oid[80];
      OBJ_obj2txt(oid, sizeof oid, X509_NAME_ENTRY_get_object(e), 1);
      out += oid;
    }
    out += '=';
    // Escape what would split the text, and anything a log line or JSON must not carry.
    for (unsigned char c : utf8(X509_NAME_ENTRY_get_data(e))) {
      if (c == ',' || c == '\\') {
        out += '\\';
        out += static_cast<char>(c);
      } else if (c < 0x20 || c == 0x7f) {
        static constexpr char kHex[] = "0123456789abcdef";
        out += "\\x";
        out += kHex[c >> 4];
        out += kHex[c & 0xf];
      } else {
        out += static_cast<char>(c);
      }
    }
  }
  return out;
}

bool equal_ignoring_case(const std::string& a, const std::string& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i])))
      return false;
  return true;
}

Bytes sha1_of(const Bytes& data) {
  Bytes out(SHA_DIGEST_LENGTH);
  SHA1(data.data(), data.size(), out.data());
  return out;
}

std::string describe(X509* cert) {
  auto der = name_der(X509_get_subject_name(cert));
  return der ? "\"" + dn_to_text(*der).value_or("?") + "\"" : "?";
}

}  // namespace

// --- Certificate --------------------------------------------------------------------------

Certificate::Certificate(X509* owned) : x509_(owned) {
  unsigned char* der = nullptr;
  int len = i2d_X509(x509_, &der);
  if (len <= 0) detail::fatal("i2d_X509");
  der_.assign(der, der + len);
  OPENSSL_free(der);
  subject_der_ = name_der(X509_get_subject_name(x509_)).value_or(Bytes{});
  unsigned char* spki = nullptr;
  len = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(x509_), &spki);
  if (len <= 0) detail::fatal("i2d_X509_PUBKEY");
  key_id_ = sha1_of(Bytes(spki, spki + len));
  OPENSSL_free(spki);
  EVP_PKEY* key = X509_get_pubkey(x509_);
  if (!key) detail::fatal("X509_get_pubkey");
  key_ = std::make_unique<PublicKey>(key);
  GeneralNamesPtr names(static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(x509_, NID_subject_alt_name, nullptr, nullptr)));
  for (int i = 0; names && i < sk_GENERAL_NAME_num(names.get()); ++i) {
    const GENERAL_NAME* n = sk_GENERAL_NAME_value(names.get(), i);
    if (n->type == GEN_DNS) san_dns_.push_back(utf8(n->d.dNSName));
    if (n->type == GEN_EMAIL) san_email_.push_back(utf8(n->d.rfc822Name));
    if (n->type == GEN_IPADD) {
      const unsigned char* d = ASN1_STRING_get0_data(n->d.iPAddress);
      san_ip_.emplace_back(d, d + ASN1_STRING_length(n->d.iPAddress));
    }
  }
  detail::clear_errors();
}

Certificate::~Certificate() { X509_free(x509_); }

Expected<std::shared_ptr<const Certificate>, std::string> Certificate::from_der(ByteView der) {
  const unsigned char* p = der.data();
  X509* x = d2i_X509(nullptr, &p, static_cast<long>(der.size()));
  if (!x || p != der.data() + der.size()) {
    X509_free(x);
    detail::clear_errors();
    return unexpected(std::string("malformed X.509 certificate"));
  }
  EVP_PKEY* key = X509_get0_pubkey(x);
  if (!key) {
    X509_free(x);
    detail::clear_errors();
    return unexpected(std::string("certificate with an unreadable public key"));
  }
  return std::shared_ptr<const Certificate>(std::make_shared<Certificate>(x));
}

Expected<std::vector<std::shared_ptr<const Certificate>>, std::string> Certificate::from_pem(const std::string& pem) {
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (!bio) detail::fatal("BIO_new_mem_buf");
  std::vector<std::shared_ptr<const Certificate>> out;
  while (X509* x = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) {
    if (!X509_get0_pubkey(x)) {
      X509_free(x);
      detail::clear_errors();
      return unexpected(std::string("certificate with an unreadable public key"));
    }
    out.push_back(std::make_shared<Certificate>(x));
  }
  detail::clear_errors();  // the end of the text reads as "no start line"
  if (out.empty()) return unexpected(std::string("no PEM certificate"));
  return out;
}

std::string Certificate::subject() const { return dn_to_text(subject_der_).value_or("?"); }

std::string Certificate::issuer() const {
  auto der = name_der(X509_get_issuer_name(x509_));
  return der ? dn_to_text(*der).value_or("?") : "?";
}

bool Certificate::is_ca() const { return X509_check_ca(x509_) > 0; }

// --- Crl ----------------------------------------------------------------------------------

Crl::Crl(X509_CRL* owned) : crl_(owned) {}
Crl::~Crl() { X509_CRL_free(crl_); }

Expected<std::vector<std::shared_ptr<const Crl>>, std::string> Crl::from_pem_or_der(const std::string& content) {
  std::vector<std::shared_ptr<const Crl>> out;
  BioPtr bio(BIO_new_mem_buf(content.data(), static_cast<int>(content.size())));
  if (!bio) detail::fatal("BIO_new_mem_buf");
  while (X509_CRL* c = PEM_read_bio_X509_CRL(bio.get(), nullptr, nullptr, nullptr))
    out.push_back(std::make_shared<Crl>(c));
  detail::clear_errors();
  if (out.empty()) {
    const unsigned char* p = reinterpret_cast<const unsigned char*>(content.data());
    X509_CRL* c = d2i_X509_CRL(nullptr, &p, static_cast<long>(content.size()));
    detail::clear_errors();
    if (!c) return unexpected(std::string("no PEM or DER CRL"));
    out.push_back(std::make_shared<Crl>(c));
  }
  return out;
}

// --- TrustStore ---------------------------------------------------------------------------

Expected<bool, std::string> TrustStore::verify(const Certificate& end_entity,
                                               const std::vector<std::shared_ptr<const Certificate>>& intermediates,
                                               std::optional<std::time_t> at) const {
  if (anchors_.empty()) return unexpected(std::string("no trust anchors (cacerts) configured"));
  StorePtr store(X509_STORE_new());
  std::unique_ptr<STACK_OF(X509), X509StackFree> untrusted(sk_X509_new_null());
  StoreCtxPtr ctx(X509_STORE_CTX_new());
  if (!store || !untrusted || !ctx) detail::fatal("X509_STORE");
  for (const auto& a : anchors_) X509_STORE_add_cert(store.get(), a->get());
  for (const auto& c : intermediates) sk_X509_push(untrusted.get(), c->get());
  detail::clear_errors();  // a duplicate anchor is reported and harmless
  if (X509_STORE_CTX_init(ctx.get(), store.get(), end_entity.get(), untrusted.get()) != 1)
    detail::fatal("X509_STORE_CTX_init");
  X509_VERIFY_PARAM* param = X509_STORE_CTX_get0_param(ctx.get());
  // Any configured CA certificate is an anchor, root or not (swanctl's cacerts).
  X509_VERIFY_PARAM_set_flags(param, X509_V_FLAG_PARTIAL_CHAIN | X509_V_FLAG_X509_STRICT);
  if (at) X509_VERIFY_PARAM_set_time(param, *at);
  if (X509_verify_cert(ctx.get()) != 1) {
    int err = X509_STORE_CTX_get_error(ctx.get());
    X509* where = X509_STORE_CTX_get_current_cert(ctx.get());
    detail::clear_errors();
    return unexpected(std::string(X509_verify_cert_error_string(err)) +
                      (where ? " (" + describe(where) + ")" : std::string()));
  }
  std::unique_ptr<STACK_OF(X509), X509StackPopFree> chain(X509_STORE_CTX_get1_chain(ctx.get()));
  int n = chain ? sk_X509_num(chain.get()) : 0;
  for (int i = 0; i + 1 < n; ++i) {
    X509* cert = sk_X509_value(chain.get(), i);
    X509* issuer = sk_X509_value(chain.get(), i + 1);
    for (const auto& crl : crls_) {
      if (X509_NAME_cmp(X509_CRL_get_issuer(crl->get()), X509_get_subject_name(issuer)) != 0) continue;
      if (X509_CRL_verify(crl->get(), X509_get0_pubkey(issuer)) != 1) {
        detail::clear_errors();
        continue;  // not this issuer's CRL (same name, other key), or forged
      }
      X509_REVOKED* revoked = nullptr;
      if (X509_CRL_get0_by_cert(crl->get(), &revoked, cert) == 1)
        return unexpected("certificate revoked (" + describe(cert) + ", CRL of " + describe(issuer) + ")");
    }
  }
  detail::clear_errors();
  return true;
}

// --- Distinguished names ------------------------------------------------------------------

std::optional<Bytes> dn_from_text(const std::string& text) {
  std::string_view s = text;
  char sep = ',';
  if (!s.empty() && s.front() == '/') {
    sep = '/';
    s.remove_prefix(1);
  }
  std::vector<std::string> parts;
  std::string cur;
  for (std::size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c == '\\' && i + 1 < s.size()) {
      cur += s[++i];
      continue;
    }
    if (c == sep || (sep == ',' && c == ';')) {
      parts.push_back(cur);
      cur.clear();
      continue;
    }
    cur += c;
  }
  parts.push_back(cur);
  NamePtr name(X509_NAME_new());
  if (!name) detail::fatal("X509_NAME_new");
  for (const auto& part : parts) {
    auto eq = part.find('=');
    if (eq == std::string::npos) return std::nullopt;
    std::string key = trim(std::string_view(part).substr(0, eq));
    std::string value = trim(std::string_view(part).substr(eq + 1));
    int nid = nid_of_key(key);
    if (nid == NID_undef || value.empty()) return std::nullopt;
    if (X509_NAME_add_entry_by_NID(name.get(), nid, MBSTRING_UTF8,
                                   reinterpret_cast<const unsigned char*>(value.data()),
                                   static_cast<int>(value.size()), -1, 0) != 1) {
      detail::clear_errors();  // e.g. a country code longer than two letters
      return std::nullopt;
    }
  }
  return name_der(name.get());
}

std::optional<std::string> dn_to_text(ByteView der) {
  auto name = name_of(der);
  if (!name) return std::nullopt;
  return name_text(name.get());
}

bool dn_matches(ByteView der, ByteView pattern) {
  auto a = name_of(der);
  auto p = name_of(pattern);
  if (!a || !p) return false;
  int n = X509_NAME_entry_count(a.get());
  if (n != X509_NAME_entry_count(p.get())) return false;
  for (int i = 0; i < n; ++i) {
    const X509_NAME_ENTRY* ea = X509_NAME_get_entry(a.get(), i);
    const X509_NAME_ENTRY* ep = X509_NAME_get_entry(p.get(), i);
    if (OBJ_cmp(X509_NAME_ENTRY_get_object(ea), X509_NAME_ENTRY_get_object(ep)) != 0) return false;
    std::string vp = utf8(X509_NAME_ENTRY_get_data(ep));
    if (vp == "*") continue;
    if (!equal_ignoring_case(utf8(X509_NAME_ENTRY_get_data(ea)), vp)) return false;
  }
  return true;
}

}  // namespace mobike::crypto
