#include "ike/eap.h"

#include "ike/eap_mschapv2.h"
#include "ike/eap_tls.h"
#include "wire/reader.h"
#include "wire/writer.h"

namespace mobike::ike::eap {

namespace {
const Bytes kNoKey;
}

Expected<Packet, std::string> parse(ByteView message) {
  wire::Reader r(message);
  std::uint8_t code = 0;
  Packet p;
  std::uint16_t length = 0;
  if (!r.read_u8(code) || !r.read_u8(p.identifier) || !r.read_u16(length))
    return unexpected(std::string("EAP packet shorter than its header"));
  if (length != message.size())
    return unexpected("EAP Length " + std::to_string(length) + " but " + std::to_string(message.size()) + " octets");
  if (code < 1 || code > 4) return unexpected("EAP code " + std::to_string(code) + " unknown");
  p.code = static_cast<Code>(code);
  if (p.code == Code::kSuccess || p.code == Code::kFailure) {
    if (length != 4) return unexpected(std::string("EAP Success/Failure with data"));
    return p;
  }
  std::uint8_t type = 0;
  if (!r.read_u8(type)) return unexpected(std::string("EAP Request/Response without a type"));
  p.type = static_cast<Type>(type);
  p.data = r.read_rest_bytes();
  return p;
}

Bytes encode(const Packet& p) {
  wire::Writer w;
  const bool typed = p.code == Code::kRequest || p.code == Code::kResponse;
  w.u8(static_cast<std::uint8_t>(p.code));
  w.u8(p.identifier);
  w.u16(static_cast<std::uint16_t>(4 + (typed ? 1 + p.data.size() : 0)));
  if (typed) {
    w.u8(static_cast<std::uint8_t>(p.type));
    w.bytes(p.data);
  }
  return std::move(w).take();
}

const char* type_name(Type t) {
  switch (t) {
    case Type::kIdentity: return "Identity";
    case Type::kNotification: return "Notification";
    case Type::kNak: return "Nak";
    case Type::kMd5: return "MD5";
    case Type::kTls: return "TLS";
    case Type::kMschapv2: return "MSCHAPv2";
  }
  return "unknown";
}

std::string describe(const Packet& p) {
  switch (p.code) {
    case Code::kSuccess: return "Success #" + std::to_string(p.identifier);
    case Code::kFailure: return "Failure #" + std::to_string(p.identifier);
    case Code::kRequest:
    case Code::kResponse: break;
  }
  std::string name = type_name(p.type);
  if (name == "unknown") name = "type " + std::to_string(static_cast<unsigned>(p.type));
  return std::string(p.code == Code::kRequest ? "Request/" : "Response/") + name + " #" + std::to_string(p.identifier);
}

// ---------------------------------------------------------------- server

Server::Server(Type method, std::optional<std::string> identity, Credentials credentials, crypto::Random& random)
    : method_type_(method),
      identity_(identity.value_or("")),
      identity_known_(identity.has_value()),
      credentials_(std::move(credentials)),
      random_(random) {
  std::uint8_t first = 0;
  random_.fill(std::span<std::uint8_t>(&first, 1));
  identifier_ = first;
}

Server::~Server() = default;

const Bytes& Server::msk() const { return method_ ? method_->msk() : kNoKey; }

Bytes Server::start() {
  if (identity_known_) return start_method();
  return encode({Code::kRequest, identifier_, Type::kIdentity, {}});
}

Bytes Server::start_method() {
  method_ = make_server_method(method_type_, identity_, credentials_, random_);
  return method_->start(identifier_);
}

Step Server::fail(std::string why) {
  return {Outcome::kFailure, encode({Code::kFailure, identifier_, {}, {}}), std::move(why)};
}

Step Server::process(ByteView response) {
  auto p = parse(response);
  if (!p) return fail(p.error());
  if (p->code != Code::kResponse) return fail("expected an EAP Response, got " + describe(*p));
  if (p->identifier != identifier_)
    return fail("EAP Response #" + std::to_string(p->identifier) + " to Request #" + std::to_string(identifier_));
  const std::uint8_t next = static_cast<std::uint8_t>(identifier_ + 1);
  if (!method_) {
    if (p->type != Type::kIdentity) return fail("expected EAP-Identity, got " + describe(*p));
    // RFC 3748 §5.1: the identity is not NUL-terminated; stop at a stray NUL anyway.
    std::string id(p->data.begin(), p->data.end());
    if (auto nul = id.find('\0'); nul != std::string::npos) id.resize(nul);
    if (id.empty()) return fail("empty EAP identity");
    identity_ = id;
    identity_known_ = true;
    identifier_ = next;
    return {Outcome::kContinue, start_method(), {}};
  }
  if (p->type == Type::kNak) {
    std::string offered;
    for (auto t : p->data) offered += (offered.empty() ? "" : ", ") + std::string(type_name(static_cast<Type>(t)));
    return fail(std::string("the peer refused EAP-") + type_name(method_type_) + " (Nak" +
                (offered.empty() ? "" : ", wants " + offered) + ")");
  }
  if (p->type != method_type_) return fail("expected EAP-" + std::string(type_name(method_type_)) + ", got " + describe(*p));
  Step s = method_->process(*p, next);
  switch (s.outcome) {
    case Outcome::kContinue: identifier_ = next; return s;
    case Outcome::kFailure: return fail(s.why);
    case Outcome::kSuccess:
      identity_ = method_->authenticated();
      identifier_ = next;
      return {Outcome::kSuccess, encode({Code::kSuccess, identifier_, {}, {}}), {}};
  }
  return fail("unreachable");
}

// ---------------------------------------------------------------- peer

Peer::Peer(Type method, std::string identity, Credentials credentials, crypto::Random& random)
    : method_type_(method), identity_(std::move(identity)), credentials_(std::move(credentials)), random_(random) {}

Peer::~Peer() = default;

const Bytes& Peer::msk() const { return method_ ? method_->msk() : kNoKey; }

Step Peer::process(ByteView request) {
  auto p = parse(request);
  if (!p) return {Outcome::kFailure, {}, p.error()};
  switch (p->code) {
    case Code::kSuccess:
      // RFC 3748 §4.2: a Success before the method finished is no success.
      if (!method_ || !method_->done()) return {Outcome::kFailure, {}, "EAP-Success before the method finished"};
      return {Outcome::kSuccess, {}, {}};
    case Code::kFailure: return {Outcome::kFailure, {}, "the gateway sent EAP-Failure"};
    case Code::kResponse: return {Outcome::kFailure, {}, "the gateway sent an EAP Response"};
    case Code::kRequest: break;
  }
  if (p->type == Type::kIdentity) {
    return {Outcome::kContinue,
            encode({Code::kResponse, p->identifier, Type::kIdentity, Bytes(identity_.begin(), identity_.end())}), {}};
  }
  if (p->type == Type::kNotification) return {Outcome::kContinue, encode({Code::kResponse, p->identifier, Type::kNotification, {}}), {}};
  if (p->type != method_type_) {
    // RFC 3748 §5.3.1: a Nak naming the method we would use.
    return {Outcome::kContinue,
            encode({Code::kResponse, p->identifier, Type::kNak, Bytes{static_cast<std::uint8_t>(method_type_)}}), {}};
  }
  if (!method_) method_ = make_peer_method(method_type_, identity_, credentials_, random_);
  Step s = method_->process(*p);
  if (s.outcome == Outcome::kSuccess) s.outcome = Outcome::kContinue;  // still waiting for EAP-Success
  return s;
}

// ---------------------------------------------------------------- methods

std::unique_ptr<ServerMethod> make_server_method(Type type, const std::string& identity, const Credentials& credentials,
                                                 crypto::Random& random) {
  switch (type) {
    case Type::kMschapv2: return std::make_unique<MschapV2Server>(identity, credentials.secrets, random);
    case Type::kTls: return std::make_unique<TlsServer>(identity, credentials);
    default: return nullptr;
  }
}

std::unique_ptr<PeerMethod> make_peer_method(Type type, const std::string& identity, const Credentials& credentials,
                                             crypto::Random& random) {
  switch (type) {
    case Type::kMschapv2: return std::make_unique<MschapV2Peer>(identity, credentials.secrets, random);
    case Type::kTls: return std::make_unique<TlsPeer>(identity, credentials);
    default: return nullptr;
  }
}

}  // namespace mobike::ike::eap
