// EAP-TLS (RFC 5216 with TLS 1.2, RFC 9190 with TLS 1.3): TLS records carried in EAP
// packets with a flags octet (L: the first fragment says the total length, M: more
// fragments follow, S: the server's start), fragmented at kFragmentSize octets and each
// fragment acknowledged by an empty packet. Both ends hold certificates; each checks the
// other's against its anchors once the handshake is complete. The MSK is the first 64
// octets of the TLS exporter's key material: "client EAP encryption" (TLS 1.2), or
// "EXPORTER_EAP_TLS_Key_Material" with the type 13 as context (TLS 1.3; or as TLS 1.2
// with Tls13Scheme::kPreRfc9190, see eap.h).
#pragma once

#include <memory>

#include "crypto/tls_session.h"
#include "ike/eap.h"

namespace mobike::ike::eap {

// Carries TLS over EAP-TLS packets in one direction and the other: fragmentation,
// reassembly and acknowledgements, the same at both ends.
class TlsFraming {
 public:
  static constexpr std::size_t kFragmentSize = 1000;
  static constexpr std::size_t kMaxMessage = 64 * 1024;
  // Queues records to send; next_fragment() gives them out one fragment at a time.
  void queue(Bytes records);
  bool sending() const { return sent_ < out_.size(); }
  Bytes next_fragment();  // the type data of one EAP-TLS packet
  static Bytes ack() { return Bytes{0}; }
  static Bytes start() { return Bytes{0x20}; }
  // One received packet's type data. kMore: an acknowledgement is due; kComplete: the
  // message is in `message`; kAck: an empty packet (the other end acknowledged).
  enum class Received : std::uint8_t { kAck, kMore, kComplete, kStart, kError };
  Received receive(ByteView data, Bytes& message, std::string& why);

 private:
  Bytes out_;
  std::size_t sent_ = 0;
  Bytes in_;
  std::uint32_t in_total_ = 0;
};

class TlsServer final : public ServerMethod {
 public:
  TlsServer(std::string identity, Credentials credentials);
  ~TlsServer() override;
  Type type() const override { return Type::kTls; }
  Bytes start(std::uint8_t identifier) override;
  Step process(const Packet& response, std::uint8_t next_identifier) override;
  const Bytes& msk() const override { return msk_; }
  const std::string& authenticated() const override { return identity_; }
  std::string negotiated() const override;

 private:
  Step request(std::uint8_t identifier, Bytes type_data);
  Step finish();
  std::string identity_;
  Credentials credentials_;
  std::unique_ptr<crypto::TlsSession> tls_;
  TlsFraming framing_;
  bool final_flight_sent_ = false;
  Bytes msk_;
};

class TlsPeer final : public PeerMethod {
 public:
  TlsPeer(std::string identity, Credentials credentials);
  ~TlsPeer() override;
  Type type() const override { return Type::kTls; }
  Step process(const Packet& request) override;
  bool done() const override { return done_; }
  const Bytes& msk() const override { return msk_; }
  std::string negotiated() const override;

 private:
  Step response(std::uint8_t identifier, Bytes type_data);
  std::string identity_;
  Credentials credentials_;
  std::unique_ptr<crypto::TlsSession> tls_;
  TlsFraming framing_;
  bool verified_ = false;
  bool done_ = false;
  Bytes msk_;
};

// The MSK of an established session (RFC 5216 §2.3, RFC 9190 §2.3; TLS 1.3 before
// RFC 9190 as `scheme` says).
Expected<Bytes, std::string> tls_msk(const crypto::TlsSession& tls, Tls13Scheme scheme = Tls13Scheme::kRfc9190);
// "TLS 1.3 with TLS_AES_128_GCM_SHA256" once the handshake is complete; empty before.
std::string tls_negotiated(const crypto::TlsSession* tls);

}  // namespace mobike::ike::eap
