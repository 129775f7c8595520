// The response an IKE SA keeps for a retransmitted request (RFC 7296 §2.1: until the
// peer's next request, which for an established SA may be hours away).
#pragma once

#include <cstdint>
#include <memory>
#include <variant>
#include <vector>

#include "common/bytes.h"
#include "crypto/certificate.h"
#include "crypto/random.h"
#include "wire/payloads.h"

namespace mobike::ike {

struct IkeSa;

// A gateway keeps one per client, and IKE_AUTH's carries our certificate chain, so a
// protected response is kept as its plaintext with our certificates cut out (they are
// the connection's, shared by all its SAs) and the random octets its sealing drew (the
// IVs), and is sealed again when a retransmission asks for it: the same key, IVs and
// plaintext give the same octets, so every copy of a response is bit-identical, RFC
// 7383 fragments included. What we cannot seal again is kept as sent.
class ResponseCache {
 public:
  bool empty() const;
  void clear() { kept_ = {}; }

  // Datagrams as sent: IKE_SA_INIT's (no keys to seal with) or an imported SA's.
  void keep_sealed(std::vector<Bytes> datagrams);
  // A protected response of `sa` (its keys exist), sealed with IVs from `random` and
  // split into datagrams of at most `fragment_limit` octets when that is not 0 (as
  // build_datagrams); returns those datagrams.
  std::vector<Bytes> keep_protected(const IkeSa& sa, wire::ExchangeType exchange, std::uint32_t message_id,
                                    const std::vector<wire::Payload>& payloads, std::size_t fragment_limit,
                                    crypto::Random& random);

  // The datagrams to send again: as kept, or sealed now with `sa`'s keys and the IVs
  // first drawn.
  std::vector<Bytes> datagrams(const IkeSa& sa) const;

  // Heap octets the response holds (shared certificates not counted).
  std::size_t octets() const;

 private:
  struct CertCut {
    std::uint32_t at = 0;  // where its DER goes back into the plaintext
    std::shared_ptr<const crypto::Certificate> cert;
  };
  struct Plaintext {
    // The IVs drawn (iv_octets), then the encoded inner payloads with our certificates
    // cut out: one allocation.
    Bytes octets;
    std::vector<CertCut> certs;
    std::uint32_t message_id = 0;
    std::uint32_t fragment_limit = 0;
    std::uint16_t iv_octets = 0;
    wire::ExchangeType exchange{};
    std::uint8_t first_inner = 0;
  };
  std::variant<std::vector<Bytes>, Plaintext> kept_;
};

}  // namespace mobike::ike
