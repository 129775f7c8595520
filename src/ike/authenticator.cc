#include "ike/authenticator.h"

#include <algorithm>
#include <cctype>
#include <set>

#include "ike/protection.h"
#include "ike/services.h"

namespace mobike::ike {

using crypto::HashAlgorithm;
using crypto::KeyType;
using crypto::SignatureKind;
using crypto::SignatureScheme;
using wire::AuthMethod;
using wire::NotifyType;
using wire::Payload;
using wire::PayloadType;

namespace {

std::uint8_t bit(HashAlgorithm h) { return static_cast<std::uint8_t>(1u << static_cast<unsigned>(h)); }

bool uses_pubkey(const ConnectionConfig& c) {
  return c.local_auth == AuthClass::kPubkey || c.remote_auth == AuthClass::kPubkey;
}

bool verifies_certs(const ConnectionConfig& c) {
  return c.remote_auth == AuthClass::kPubkey && c.send_certreq && c.trust && !c.trust->empty();
}

Bytes certreq_data(const std::vector<const ConnectionConfig*>& conns) {
  std::set<Bytes> seen;
  Bytes data;
  for (const auto* c : conns) {
    if (!verifies_certs(*c)) continue;
    for (const auto& a : c->trust->anchors())
      if (seen.insert(a->key_id()).second) append(data, a->key_id());
  }
  return data;
}

bool equal_ignoring_case(std::string_view a, ByteView b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(b[i])) return false;
  return true;
}

// The scheme for our key: RFC 7427 with a hash the peer announced when it announced
// any, the classic method of the key type otherwise.
struct OwnScheme {
  AuthMethod method;
  SignatureScheme scheme;
};

Expected<OwnScheme, std::string> choose_scheme(const IkeSa& sa, const ConnectionConfig& c, KeyType key) {
  const std::uint8_t peer = sa.peer_sig_hashes;
  if (peer) {
    std::vector<HashAlgorithm> order;
    switch (key) {
      case KeyType::kEd25519: order = {HashAlgorithm::kIdentity}; break;
      case KeyType::kEcdsaP384: order = {HashAlgorithm::kSha384, HashAlgorithm::kSha256, HashAlgorithm::kSha512}; break;
      case KeyType::kEcdsaP521: order = {HashAlgorithm::kSha512, HashAlgorithm::kSha384, HashAlgorithm::kSha256}; break;
      default: order = {HashAlgorithm::kSha256, HashAlgorithm::kSha384, HashAlgorithm::kSha512}; break;
    }
    for (auto h : order) {
      if (!(peer & bit(h))) continue;
      SignatureKind kind = key == KeyType::kEd25519 ? SignatureKind::kEd25519
                           : key == KeyType::kRsa   ? (c.rsa_pss ? SignatureKind::kRsaPss : SignatureKind::kRsaPkcs1)
                                                    : SignatureKind::kEcdsa;
      return OwnScheme{AuthMethod::kDigitalSignature, {kind, h}};
    }
    return unexpected(std::string("the peer announced no hash usable with our ") + crypto::key_type_name(key) + " key");
  }
  switch (key) {
    case KeyType::kRsa:
      if (c.rsa_pss) return unexpected(std::string("RSA-PSS needs RFC 7427, which the peer did not announce"));
      return OwnScheme{AuthMethod::kRsaSig, {SignatureKind::kRsaPkcs1, HashAlgorithm::kSha1}};
    case KeyType::kEcdsaP256: return OwnScheme{AuthMethod::kEcdsaSha256P256, {SignatureKind::kEcdsa, HashAlgorithm::kSha256}};
    case KeyType::kEcdsaP384: return OwnScheme{AuthMethod::kEcdsaSha384P384, {SignatureKind::kEcdsa, HashAlgorithm::kSha384}};
    case KeyType::kEcdsaP521: return OwnScheme{AuthMethod::kEcdsaSha512P521, {SignatureKind::kEcdsa, HashAlgorithm::kSha512}};
    default: return unexpected(std::string(crypto::key_type_name(key)) + " needs RFC 7427, which the peer did not announce");
  }
}

bool classic_ecdsa(AuthMethod m, KeyType key, HashAlgorithm& hash) {
  switch (m) {
    case AuthMethod::kEcdsaSha256P256: hash = HashAlgorithm::kSha256; return key == KeyType::kEcdsaP256;
    case AuthMethod::kEcdsaSha384P384: hash = HashAlgorithm::kSha384; return key == KeyType::kEcdsaP384;
    case AuthMethod::kEcdsaSha512P521: hash = HashAlgorithm::kSha512; return key == KeyType::kEcdsaP521;
    default: return false;
  }
}

Expected<std::string, std::string> verify_signature(const crypto::PublicKey& key, const wire::AuthPayload& auth,
                                                    ByteView octets) {
  const KeyType type = key.type();
  switch (auth.method) {
    case AuthMethod::kRsaSig:
      if (type != KeyType::kRsa) return unexpected(std::string("RSA signature AUTH with a non-RSA certificate"));
      if (!key.verify({SignatureKind::kRsaPkcs1, HashAlgorithm::kSha1}, octets, auth.data))
        return unexpected(std::string("RSA signature does not verify"));
      return std::string("RSA PKCS#1 v1.5 SHA-1 signature");
    case AuthMethod::kEcdsaSha256P256:
    case AuthMethod::kEcdsaSha384P384:
    case AuthMethod::kEcdsaSha512P521: {
      HashAlgorithm hash{};
      if (!classic_ecdsa(auth.method, type, hash))
        return unexpected(std::string("ECDSA AUTH method does not fit the certificate's ") + crypto::key_type_name(type) + " key");
      if (!key.verify_raw_ecdsa(hash, octets, auth.data)) return unexpected(std::string("ECDSA signature does not verify"));
      return crypto::scheme_name({SignatureKind::kEcdsa, hash}) + " signature (RFC 4754)";
    }
    case AuthMethod::kDigitalSignature: {
      if (auth.data.empty()) return unexpected(std::string("empty Digital Signature AUTH"));
      std::size_t len = auth.data[0];
      if (len == 0 || 1 + len >= auth.data.size()) return unexpected(std::string("malformed Digital Signature AUTH"));
      auto parsed = crypto::parse_algorithm_identifier(ByteView(auth.data).subspan(1, len));
      if (!parsed) return unexpected(parsed.error());
      const auto& scheme = parsed->scheme;
      // RFC 8247: SHA-1 is no longer acceptable in a signature we verify under RFC 7427.
      if (scheme.hash == HashAlgorithm::kSha1) return unexpected(std::string("SHA-1 signature refused"));
      if (!key.verify(scheme, octets, ByteView(auth.data).subspan(1 + len), parsed->pss_salt_length))
        return unexpected(crypto::scheme_name(scheme) + " signature with the " + crypto::key_type_name(type) +
                          " key does not verify");
      return crypto::scheme_name(scheme) + " signature (RFC 7427)";
    }
    default:
      return unexpected("AUTH method " + std::to_string(static_cast<unsigned>(auth.method)) + " not supported");
  }
}

}  // namespace

void add_init_auth_payloads(Services& s, const ConnectionConfig* initiator_config, std::vector<Payload>& out) {
  auto conns = initiator_config ? std::vector<const ConnectionConfig*>{initiator_config} : s.connections();
  bool pubkey = std::any_of(conns.begin(), conns.end(), [](const auto* c) { return uses_pubkey(*c); });
  if (!pubkey) return;
  if (s.config().signature_authentication) {
    Bytes hashes;
    for (auto h : crypto::supported_hash_algorithms()) {
      hashes.push_back(static_cast<std::uint8_t>(static_cast<unsigned>(h) >> 8));
      hashes.push_back(static_cast<std::uint8_t>(h));
    }
    out.push_back(wire::make_notify(NotifyType::kSignatureHashAlgorithms, std::move(hashes)));
  }
  if (!initiator_config) {
    Bytes data = certreq_data(conns);
    if (!data.empty()) out.push_back({PayloadType::kCertReq, wire::CertPayload{wire::kCertX509Signature, std::move(data)}});
  }
}

void note_peer_auth_payloads(IkeSa& sa, const std::vector<Payload>& payloads) {
  if (auto* n = wire::find_notify(payloads, NotifyType::kSignatureHashAlgorithms)) {
    for (std::size_t i = 0; i + 1 < n->data.size(); i += 2) {
      unsigned h = static_cast<unsigned>(n->data[i] << 8 | n->data[i + 1]);
      if (h >= 2 && h <= 5) sa.peer_sig_hashes |= static_cast<std::uint8_t>(1u << h);
    }
  }
  if (wire::find_payload<wire::CertPayload>(payloads, PayloadType::kCertReq)) sa.certreq_received = true;
}

bool auth_method_fits(AuthClass expected, AuthMethod method) {
  if (expected == AuthClass::kPsk) return method == AuthMethod::kSharedKeyMic;
  if (is_eap(expected)) return false;  // an EAP client's first IKE_AUTH has no AUTH
  return method == AuthMethod::kRsaSig || method == AuthMethod::kDigitalSignature ||
         method == AuthMethod::kEcdsaSha256P256 || method == AuthMethod::kEcdsaSha384P384 ||
         method == AuthMethod::kEcdsaSha512P521;
}

void add_certreq(const ConnectionConfig& c, std::vector<Payload>& out) {
  Bytes data = certreq_data({&c});
  if (!data.empty()) out.push_back({PayloadType::kCertReq, wire::CertPayload{wire::kCertX509Signature, std::move(data)}});
}

Expected<bool, std::string> add_own_auth(const IkeSa& sa, const ConnectionConfig& c, bool initiator_side,
                                         std::vector<Payload>& out) {
  if (c.local_auth == AuthClass::kPsk) {
    out.push_back({PayloadType::kAuth, wire::AuthPayload{AuthMethod::kSharedKeyMic,
                                                         psk_auth_value(sa, initiator_side, c.psk, c.local_id)}});
    return true;
  }
  if (!c.private_key) return unexpected(std::string("no private key configured"));
  auto scheme = choose_scheme(sa, c, c.private_key->type());
  if (!scheme) return unexpected(scheme.error());
  Bytes octets = signed_octets(sa, initiator_side, c.local_id);
  Bytes data;
  if (scheme->method == AuthMethod::kDigitalSignature) {
    Bytes alg = crypto::algorithm_identifier(scheme->scheme);
    Bytes sig = c.private_key->sign(scheme->scheme, octets);
    if (sig.empty()) return unexpected("signing with " + crypto::scheme_name(scheme->scheme) + " failed");
    data.push_back(static_cast<std::uint8_t>(alg.size()));
    append(data, alg);
    append(data, sig);
  } else if (scheme->method == AuthMethod::kRsaSig) {
    data = c.private_key->sign(scheme->scheme, octets);
  } else {
    data = c.private_key->sign_raw_ecdsa(scheme->scheme.hash, octets);
  }
  if (data.empty()) return unexpected(std::string("signing failed"));
  bool send = c.send_cert == SendCert::kAlways || (c.send_cert == SendCert::kIfAsked && sa.certreq_received);
  if (send)
    for (const auto& cert : c.local_certs)
      out.push_back({PayloadType::kCert, wire::CertPayload{wire::kCertX509Signature, cert->der()}});
  out.push_back({PayloadType::kAuth, wire::AuthPayload{scheme->method, std::move(data)}});
  return true;
}

Expected<std::string, std::string> verify_peer_auth(const IkeSa& sa, const ConnectionConfig& c,
                                                    const Identity& peer_id, const std::vector<Payload>& payloads) {
  auto* auth = wire::find_payload<wire::AuthPayload>(payloads, PayloadType::kAuth);
  if (!auth) return unexpected(std::string("no AUTH payload"));
  if (!auth_method_fits(c.remote_auth, auth->method))
    return unexpected(std::string("the peer used AUTH method ") + std::to_string(static_cast<unsigned>(auth->method)) +
                      ", the connection expects " + (c.remote_auth == AuthClass::kPsk ? "a PSK" : "a public key"));
  const bool peer_is_initiator = !sa.initiator;
  if (c.remote_auth == AuthClass::kPsk) {
    if (!equal_ct(auth->data, psk_auth_value(sa, peer_is_initiator, c.psk, peer_id)))
      return unexpected(std::string("PSK AUTH does not verify"));
    return std::string("pre-shared key");
  }
  std::vector<std::shared_ptr<const crypto::Certificate>> certs;
  for (const auto& p : payloads) {
    auto* cp = p.type == PayloadType::kCert ? std::get_if<wire::CertPayload>(&p.body) : nullptr;
    if (!cp || cp->encoding != wire::kCertX509Signature) continue;  // hash-and-URL etc.: not supported
    auto cert = crypto::Certificate::from_der(cp->data);
    if (!cert) return unexpected("CERT payload: " + cert.error());
    certs.push_back(std::move(*cert));
  }
  if (certs.empty()) return unexpected(std::string("the peer sent no certificate (and none is configured for it)"));
  const auto& ee = *certs.front();
  if (!c.trust) return unexpected(std::string("no trust anchors (cacerts) configured"));
  std::vector<std::shared_ptr<const crypto::Certificate>> intermediates(certs.begin() + 1, certs.end());
  auto chain = c.trust->verify(ee, intermediates);
  if (!chain) return unexpected("certificate \"" + ee.subject() + "\": " + chain.error());
  if (!identity_in_certificate(peer_id, ee))
    return unexpected("identity " + peer_id.to_string() + " is not in certificate \"" + ee.subject() + "\"");
  auto ok = verify_signature(ee.public_key(), *auth, signed_octets(sa, peer_is_initiator, peer_id));
  if (!ok) return unexpected(ok.error());
  return *ok + " of certificate \"" + ee.subject() + "\" (issuer \"" + ee.issuer() + "\")";
}

bool identity_in_certificate(const Identity& id, const crypto::Certificate& cert) {
  switch (id.type) {
    case wire::IdType::kDerAsn1Dn: return crypto::dn_matches(cert.subject_der(), id.data) && !id.is_pattern();
    case wire::IdType::kFqdn:
      return std::any_of(cert.san_dns().begin(), cert.san_dns().end(),
                         [&](const std::string& n) { return equal_ignoring_case(n, id.data); });
    case wire::IdType::kRfc822Addr:
      return std::any_of(cert.san_email().begin(), cert.san_email().end(),
                         [&](const std::string& n) { return equal_ignoring_case(n, id.data); });
    case wire::IdType::kIpv4Addr:
    case wire::IdType::kIpv6Addr:
      return std::any_of(cert.san_ip().begin(), cert.san_ip().end(), [&](const Bytes& a) { return a == id.data; });
    default: return false;
  }
}

std::optional<std::string> key_not_of_certificate(const crypto::PrivateKey& key, const crypto::Certificate& cert) {
  if (cert.public_key().der() == key.public_key_der()) return std::nullopt;
  return "is not the key of certificate '" + cert.subject() + "'";
}

std::optional<std::string> identity_not_in_certificate(Identity& id, const crypto::Certificate& cert) {
  if (id.type == wire::IdType::kDerAsn1Dn && crypto::dn_matches(cert.subject_der(), id.data))
    id.data = cert.subject_der();
  if (identity_in_certificate(id, cert)) return std::nullopt;
  return "'" + id.to_string() + "' is neither the subject nor a subjectAltName of certificate '" + cert.subject() + "'";
}

std::optional<std::string> not_a_trust_anchor(const crypto::Certificate& cert) {
  if (cert.is_ca()) return std::nullopt;
  return "'" + cert.subject() + "' is not a CA certificate";
}

}  // namespace mobike::ike
