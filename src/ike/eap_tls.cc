#include "ike/eap_tls.h"

#include "crypto/wipe.h"
#include "ike/authenticator.h"
#include "wire/reader.h"
#include "wire/writer.h"

namespace mobike::ike::eap {

namespace {
constexpr std::uint8_t kLength = 0x80, kMore = 0x40, kStart = 0x20;
}

// ---------------------------------------------------------------- framing

void TlsFraming::queue(Bytes records) {
  out_ = std::move(records);
  sent_ = 0;
}

Bytes TlsFraming::next_fragment() {
  const std::size_t left = out_.size() - sent_;
  const std::size_t n = std::min(left, kFragmentSize);
  const bool first = sent_ == 0, more = n < left;
  wire::Writer w;
  // The total length rides on the first fragment of a fragmented message only.
  w.u8(static_cast<std::uint8_t>((first && more ? kLength : 0) | (more ? kMore : 0)));
  if (first && more) w.u32(static_cast<std::uint32_t>(out_.size()));
  w.bytes(ByteView(out_).subspan(sent_, n));
  sent_ += n;
  if (!sending()) {
    out_.clear();
    sent_ = 0;
  }
  return std::move(w).take();
}

TlsFraming::Received TlsFraming::receive(ByteView data, Bytes& message, std::string& why) {
  wire::Reader r(data);
  std::uint8_t flags = 0;
  if (!r.read_u8(flags)) {
    why = "EAP-TLS packet without flags";
    return Received::kError;
  }
  if (flags & kStart) return Received::kStart;
  std::uint32_t total = 0;
  if ((flags & kLength) && !r.read_u32(total)) {
    why = "EAP-TLS length truncated";
    return Received::kError;
  }
  ByteView part = r.read_rest();
  if (part.empty() && !(flags & kMore) && in_.empty()) return Received::kAck;
  if (flags & kLength) {
    if (total > kMaxMessage || total < part.size()) {
      why = "EAP-TLS message length " + std::to_string(total) + " refused";
      return Received::kError;
    }
    if (in_.empty()) in_total_ = total;
  }
  if (in_.size() + part.size() > kMaxMessage || (in_total_ && in_.size() + part.size() > in_total_)) {
    why = "EAP-TLS fragments beyond the announced length";
    return Received::kError;
  }
  append(in_, part);
  if (flags & kMore) return Received::kMore;
  if (in_total_ && in_.size() != in_total_) {
    why = "EAP-TLS message shorter than announced";
    return Received::kError;
  }
  message = std::move(in_);
  in_.clear();
  in_total_ = 0;
  return Received::kComplete;
}

Expected<Bytes, std::string> tls_msk(const crypto::TlsSession& tls, Tls13Scheme scheme) {
  const bool rfc9190 = tls.is_tls13() && scheme == Tls13Scheme::kRfc9190;
  // TLS 1.3's exporter hashes the context even when there is none: "no context" is the
  // empty one there, which is what the scheme before RFC 9190 used.
  auto km = rfc9190 ? tls.export_keying_material("EXPORTER_EAP_TLS_Key_Material", 128,
                                                 Bytes{static_cast<std::uint8_t>(Type::kTls)}, true)
                    : tls.export_keying_material("client EAP encryption", 128, {}, false);
  if (!km) return km;
  Bytes msk(km->begin(), km->begin() + 64);
  crypto::wipe(*km);
  return msk;
}

std::string tls_negotiated(const crypto::TlsSession* tls) {
  if (!tls || !tls->established()) return {};
  std::string v = tls->version();  // "TLSv1.3"
  if (v.rfind("TLSv", 0) == 0) v = "TLS " + v.substr(4);
  return v + " with " + tls->cipher_suite();
}

namespace {

// The other end's certificate against our anchors, and whatever else the caller asks.
Expected<bool, std::string> judge_peer(const crypto::TlsSession& tls, const Credentials& c) {
  auto cert = tls.peer_certificate();
  if (!cert) return unexpected(std::string("no certificate in the TLS handshake"));
  if (!c.trust || c.trust->empty()) return unexpected(std::string("no trust anchors (cacerts) for the TLS certificate"));
  if (auto ok = c.trust->verify(*cert, tls.peer_chain()); !ok)
    return unexpected("TLS certificate \"" + cert->subject() + "\": " + ok.error());
  if (c.check_peer)
    if (auto ok = c.check_peer(*cert); !ok) return ok;
  return true;
}

crypto::TlsSession::Config tls_config(bool server, const Credentials& c) {
  crypto::TlsSession::Config t;
  t.server = server;
  t.key = c.key;
  t.certs = c.certs;
  return t;
}

}  // namespace

// ---------------------------------------------------------------- server

TlsServer::TlsServer(std::string identity, Credentials credentials)
    : identity_(std::move(identity)), credentials_(std::move(credentials)) {}

TlsServer::~TlsServer() { crypto::wipe(msk_); }

Bytes TlsServer::start(std::uint8_t identifier) {
  return encode({Code::kRequest, identifier, Type::kTls, TlsFraming::start()});
}

Step TlsServer::request(std::uint8_t identifier, Bytes type_data) {
  return {Outcome::kContinue, encode({Code::kRequest, identifier, Type::kTls, std::move(type_data)}), {}};
}

Step TlsServer::finish() {
  if (auto ok = judge_peer(*tls_, credentials_); !ok) return {Outcome::kFailure, {}, ok.error()};
  // The user is who the certificate names: the EAP identity must be in it (as text, or
  // the DER of a DN, as strongSwan sends a DN identity).
  auto cert = tls_->peer_certificate();
  auto id = Identity::parse(identity_);
  Identity dn{wire::IdType::kDerAsn1Dn, Bytes(identity_.begin(), identity_.end())};
  if (!(id && identity_in_certificate(*id, *cert)) && !identity_in_certificate(dn, *cert))
    return {Outcome::kFailure, {}, "EAP identity '" + identity_ + "' is not in TLS certificate \"" + cert->subject() + "\""};
  auto msk = tls_msk(*tls_, credentials_.tls13);
  if (!msk) return {Outcome::kFailure, {}, msk.error()};
  msk_ = std::move(*msk);
  return {Outcome::kSuccess, {}, {}};
}

std::string TlsServer::negotiated() const { return tls_negotiated(tls_.get()); }

Step TlsServer::process(const Packet& response, std::uint8_t next_identifier) {
  if (!tls_) {
    auto t = crypto::TlsSession::create(tls_config(true, credentials_));
    if (!t) return {Outcome::kFailure, {}, t.error()};
    tls_ = std::move(*t);
  }
  Bytes message;
  std::string why;
  switch (framing_.receive(response.data, message, why)) {
    case TlsFraming::Received::kError: return {Outcome::kFailure, {}, why};
    case TlsFraming::Received::kStart: return {Outcome::kFailure, {}, "the client sent an EAP-TLS Start"};
    case TlsFraming::Received::kMore: return request(next_identifier, TlsFraming::ack());
    case TlsFraming::Received::kAck:
      if (framing_.sending()) return request(next_identifier, framing_.next_fragment());
      // The client acknowledged our last flight: it has all it needs.
      if (final_flight_sent_) return finish();
      return {Outcome::kFailure, {}, "an EAP-TLS acknowledgement with nothing sent"};
    case TlsFraming::Received::kComplete: break;
  }
  if (auto fed = tls_->feed(message); !fed) return {Outcome::kFailure, {}, fed.error()};
  if (tls_->established() && !final_flight_sent_ && tls_->is_tls13() && credentials_.tls13 == Tls13Scheme::kRfc9190) {
    // RFC 9190 §2.5: one octet of application data commits to no further handshake.
    // (Before RFC 9190 there was none: EAP-Success follows the client's Finished, and
    // strongSwan 5.9.8's client even crashes on application data.)
    if (auto w = tls_->write_application_data(Bytes{0}); !w) return {Outcome::kFailure, {}, w.error()};
  }
  Bytes out = tls_->take_output();
  if (tls_->established()) final_flight_sent_ = true;
  if (out.empty()) {
    if (tls_->established()) return finish();
    return {Outcome::kFailure, {}, "the TLS handshake stalled"};
  }
  framing_.queue(std::move(out));
  return request(next_identifier, framing_.next_fragment());
}

// ---------------------------------------------------------------- peer

TlsPeer::TlsPeer(std::string identity, Credentials credentials)
    : identity_(std::move(identity)), credentials_(std::move(credentials)) {}

TlsPeer::~TlsPeer() { crypto::wipe(msk_); }

Step TlsPeer::response(std::uint8_t identifier, Bytes type_data) {
  return {Outcome::kContinue, encode({Code::kResponse, identifier, Type::kTls, std::move(type_data)}), {}};
}

Step TlsPeer::process(const Packet& request) {
  Bytes message;
  std::string why;
  switch (framing_.receive(request.data, message, why)) {
    case TlsFraming::Received::kError: return {Outcome::kFailure, {}, why};
    case TlsFraming::Received::kStart: {
      if (tls_) return {Outcome::kFailure, {}, "a second EAP-TLS Start"};
      auto t = crypto::TlsSession::create(tls_config(false, credentials_));
      if (!t) return {Outcome::kFailure, {}, t.error()};
      tls_ = std::move(*t);
      if (auto ok = tls_->start(); !ok) return {Outcome::kFailure, {}, ok.error()};
      framing_.queue(tls_->take_output());
      return response(request.identifier, framing_.next_fragment());
    }
    case TlsFraming::Received::kMore: return response(request.identifier, TlsFraming::ack());
    case TlsFraming::Received::kAck:
      if (framing_.sending()) return response(request.identifier, framing_.next_fragment());
      return {Outcome::kFailure, {}, "an EAP-TLS acknowledgement with nothing sent"};
    case TlsFraming::Received::kComplete: break;
  }
  if (!tls_) return {Outcome::kFailure, {}, "EAP-TLS data before the Start"};
  if (auto fed = tls_->feed(message); !fed) return {Outcome::kFailure, {}, fed.error()};
  Bytes out = tls_->take_output();
  if (tls_->established() && !done_) {
    if (!verified_) {
      if (auto ok = judge_peer(*tls_, credentials_); !ok) return {Outcome::kFailure, {}, ok.error()};
      verified_ = true;
    }
    // TLS 1.3: the gateway's commitment message ends the handshake (RFC 9190 §2.5);
    // before RFC 9190 our complete handshake did, and EAP-Success is what comes next.
    if (!tls_->is_tls13() || credentials_.tls13 == Tls13Scheme::kPreRfc9190 || !tls_->take_application_data().empty()) {
      auto msk = tls_msk(*tls_, credentials_.tls13);
      if (!msk) return {Outcome::kFailure, {}, msk.error()};
      msk_ = std::move(*msk);
      done_ = true;
    }
  }
  if (out.empty()) {
    Step s = response(request.identifier, TlsFraming::ack());
    if (done_) s.outcome = Outcome::kSuccess;
    return s;
  }
  framing_.queue(std::move(out));
  return response(request.identifier, framing_.next_fragment());
}

std::string TlsPeer::negotiated() const { return tls_negotiated(tls_.get()); }

}  // namespace mobike::ike::eap
