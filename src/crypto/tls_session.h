// A TLS endpoint over memory for EAP-TLS (RFC 5216 with TLS 1.2, RFC 9190 with TLS 1.3):
// handshake records in, records out, no socket. OpenSSL's libssl runs the protocol; the
// peer's certificate is accepted during the handshake and judged by the caller's
// TrustStore once it is complete, so that the same rules as for IKE certificates apply.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "common/bytes.h"
#include "common/expected.h"
#include "crypto/certificate.h"
#include "crypto/signature.h"

namespace mobike::crypto {

class TlsSession {
 public:
  struct Config {
    bool server = false;
    std::shared_ptr<const PrivateKey> key;                   // ours (a server needs one)
    std::vector<std::shared_ptr<const Certificate>> certs;   // ours first, then intermediates
    bool request_client_certificate = true;                  // server: EAP-TLS needs one
    int min_version = 0x0303;                                // TLS 1.2
    int max_version = 0x0304;                                // TLS 1.3
  };
  static Expected<std::unique_ptr<TlsSession>, std::string> create(const Config& config);
  ~TlsSession();
  TlsSession(const TlsSession&) = delete;
  TlsSession& operator=(const TlsSession&) = delete;

  // Client: the first flight (ClientHello). Server: nothing until the peer's records.
  Expected<void, std::string> start();
  // Records from the peer; what they make us send is in take_output().
  Expected<void, std::string> feed(ByteView records);
  Bytes take_output();
  bool established() const { return established_; }
  // "TLSv1.2", "TLSv1.3"; empty before the handshake ends.
  std::string version() const;
  // The negotiated cipher suite's IANA name ("TLS_AES_128_GCM_SHA256"); empty before.
  std::string cipher_suite() const;
  bool is_tls13() const;
  // The peer's certificate and the chain it sent after it (empty if none).
  std::shared_ptr<const Certificate> peer_certificate() const;
  std::vector<std::shared_ptr<const Certificate>> peer_chain() const;
  // RFC 5705 / RFC 8446 §7.5 exporter; `context` only when `use_context`.
  Expected<Bytes, std::string> export_keying_material(std::string_view label, std::size_t length,
                                                      ByteView context, bool use_context) const;
  // Application data (RFC 9190's one-octet commitment message after a TLS 1.3 handshake).
  Expected<void, std::string> write_application_data(ByteView data);
  Bytes take_application_data() { return std::exchange(app_in_, {}); }

 private:
  struct Impl;
  explicit TlsSession(std::unique_ptr<Impl> impl);
  Expected<void, std::string> drive();
  std::unique_ptr<Impl> impl_;
  bool established_ = false;
  Bytes app_in_;
};

}  // namespace mobike::crypto
