// EAP (RFC 3748) inside IKE_AUTH (RFC 7296 §2.16): the packet codec, and the two ends
// of one conversation — the gateway's (authenticator: EAP-Identity, then the method,
// then EAP-Success or EAP-Failure) and the client's (peer). Sans-IO like the rest of the
// core: EAP packets in, EAP packets out; IKE carries them (ike/ike_auth.cc).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/bytes.h"
#include "common/expected.h"
#include "crypto/certificate.h"
#include "crypto/random.h"
#include "crypto/signature.h"

namespace mobike::ike::eap {

enum class Code : std::uint8_t { kRequest = 1, kResponse = 2, kSuccess = 3, kFailure = 4 };
enum class Type : std::uint8_t { kIdentity = 1, kNotification = 2, kNak = 3, kMd5 = 4, kTls = 13, kMschapv2 = 26 };

// A Request or Response carries a type and its data; Success and Failure neither.
struct Packet {
  Code code = Code::kRequest;
  std::uint8_t identifier = 0;
  Type type = Type::kIdentity;
  Bytes data;  // after the type octet
};
Expected<Packet, std::string> parse(ByteView message);
Bytes encode(const Packet& p);
const char* type_name(Type t);
std::string describe(const Packet& p);  // "Request/MSCHAPv2 #5", for logs

// EAP-TLS with TLS 1.3: RFC 9190 (the MSK from the exporter "EXPORTER_EAP_TLS_Key_Material"
// with the type as context; the server's one-octet commitment message before
// EAP-Success), or what came before it, as strongSwan 5.9.2 to 5.9.9 (and FreeRADIUS
// 3.0) do it: the MSK from the exporter with TLS 1.2's label "client EAP encryption" and
// no context, and no commitment message (the server sends EAP-Success once the client's
// Finished is in, the client accepts it once its handshake is complete). TLS 1.2 is
// the same in both.
enum class Tls13Scheme : std::uint8_t { kRfc9190, kPreRfc9190 };

// Users and their passwords, by EAP identity (an eap_secrets file).
using Secrets = std::map<std::string, std::string, std::less<>>;

// What the methods authenticate with: passwords (MSCHAPv2), or our certificate and key
// and the anchors the other end's certificate must chain to (TLS). `peer_name`: the
// identity the other end's TLS certificate must hold (a client's check of the gateway;
// empty: any the anchors vouch for).
struct Credentials {
  Credentials() = default;
  Credentials(std::shared_ptr<const Secrets> s) : secrets(std::move(s)) {}  // NOLINT: implicit on purpose
  std::shared_ptr<const Secrets> secrets;
  std::shared_ptr<const crypto::PrivateKey> key;
  std::vector<std::shared_ptr<const crypto::Certificate>> certs;
  std::shared_ptr<const crypto::TrustStore> trust;
  std::function<Expected<bool, std::string>(const crypto::Certificate&)> check_peer;  // beyond the chain
  Tls13Scheme tls13 = Tls13Scheme::kRfc9190;
};

enum class Outcome : std::uint8_t { kContinue, kSuccess, kFailure };
struct Step {
  Outcome outcome = Outcome::kFailure;
  Bytes message;    // the EAP packet to send next; empty: none
  std::string why;  // failures: the reason, for the log
};

// One method, either end. A server method's process() gets a Response with the
// identifier of its last Request; a peer method's gets a Request of its type.
class ServerMethod {
 public:
  virtual ~ServerMethod() = default;
  virtual Type type() const = 0;
  virtual Bytes start(std::uint8_t identifier) = 0;
  // kContinue: `message` is the next Request, with `next_identifier`. kSuccess: the
  // method is done and the server may send EAP-Success.
  virtual Step process(const Packet& response, std::uint8_t next_identifier) = 0;
  virtual const Bytes& msk() const = 0;
  // The identity the method authenticated (MSCHAPv2: the Name of its Response).
  virtual const std::string& authenticated() const = 0;
  // What the method negotiated, for the log ("TLS 1.3 with TLS_AES_128_GCM_SHA256");
  // empty if nothing.
  virtual std::string negotiated() const { return {}; }
};
class PeerMethod {
 public:
  virtual ~PeerMethod() = default;
  virtual Type type() const = 0;
  // kContinue with the Response; kSuccess: the method's own success, answered and
  // waiting for EAP-Success.
  virtual Step process(const Packet& request) = 0;
  virtual bool done() const = 0;  // EAP-Success is acceptable only then
  virtual const Bytes& msk() const = 0;
  virtual std::string negotiated() const { return {}; }  // as ServerMethod's
};

// The gateway's side. Without a known identity it asks with EAP-Identity first.
class Server {
 public:
  Server(Type method, std::optional<std::string> identity, Credentials credentials, crypto::Random& random);
  ~Server();
  Bytes start();
  // kContinue: the next Request; kSuccess: EAP-Success; kFailure: EAP-Failure.
  Step process(ByteView response);
  const std::string& identity() const { return identity_; }
  const Bytes& msk() const;
  Type method_type() const { return method_type_; }
  std::string negotiated() const { return method_ ? method_->negotiated() : std::string(); }

 private:
  Bytes start_method();
  Step fail(std::string why);
  Type method_type_;
  std::string identity_;
  bool identity_known_;
  Credentials credentials_;
  crypto::Random& random_;
  std::unique_ptr<ServerMethod> method_;
  std::uint8_t identifier_;
};

// The client's side: answers EAP-Identity with `identity` and runs the one method.
class Peer {
 public:
  Peer(Type method, std::string identity, Credentials credentials, crypto::Random& random);
  ~Peer();
  // kContinue: the Response to send; kSuccess: EAP-Success after the method finished;
  // kFailure: EAP-Failure, a method failure or a request we cannot answer.
  Step process(ByteView request);
  const Bytes& msk() const;
  std::string negotiated() const { return method_ ? method_->negotiated() : std::string(); }

 private:
  Type method_type_;
  std::string identity_;
  Credentials credentials_;
  crypto::Random& random_;
  std::unique_ptr<PeerMethod> method_;
};

std::unique_ptr<ServerMethod> make_server_method(Type type, const std::string& identity, const Credentials& credentials,
                                                 crypto::Random& random);
std::unique_ptr<PeerMethod> make_peer_method(Type type, const std::string& identity, const Credentials& credentials,
                                             crypto::Random& random);

}  // namespace mobike::ike::eap
