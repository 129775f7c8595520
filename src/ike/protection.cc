#include "ike/protection.h"

#include "crypto/key_derivation.h"
#include "ike/fragmentation.h"

namespace mobike::ike {

using wire::ExchangeType;
using wire::Header;
using wire::Payload;
using wire::PayloadType;

namespace {

Header header_for(const IkeSa& sa, ExchangeType exchange, bool response, std::uint32_t mid) {
  Header h;
  h.spi_i = sa.spi_i;
  h.spi_r = sa.spi_r;
  h.exchange = exchange;
  h.message_id = mid;
  h.flags = static_cast<std::uint8_t>((sa.initiator ? wire::kFlagInitiator : 0) |
                                      (response ? wire::kFlagResponse : 0));
  return h;
}

void put_u64(Bytes& b, std::uint64_t v) {
  for (int i = 7; i >= 0; --i) b.push_back(static_cast<std::uint8_t>(v >> (i * 8)));
}

// The protected message as one datagram with an SK payload (RFC 7296 §3.14).
Bytes seal_whole(const IkeSa& sa, const Header& h, std::uint8_t first, ByteView inner, crypto::Random& random) {
  std::size_t body = sa.crypto.out->sealed_size(inner.size());
  auto total = static_cast<std::uint32_t>(wire::kHeaderSize + 4 + body);
  Bytes out = wire::encode_header(h, static_cast<std::uint8_t>(PayloadType::kSk), total);
  std::uint16_t sk_len = static_cast<std::uint16_t>(4 + body);
  out.push_back(first);
  out.push_back(0);
  out.push_back(static_cast<std::uint8_t>(sk_len >> 8));
  out.push_back(static_cast<std::uint8_t>(sk_len));
  Bytes sealed = sa.crypto.out->seal(out, inner, random);
  append(out, sealed);
  return out;
}

}  // namespace

Bytes build_message(const IkeSa& sa, ExchangeType exchange, bool response, std::uint32_t mid,
                    const std::vector<Payload>& payloads, crypto::Random& random) {
  Header h = header_for(sa, exchange, response, mid);
  if (exchange == ExchangeType::kIkeSaInit || !sa.crypto.out) {
    wire::Message m{h, payloads};
    return wire::encode_message(m);
  }
  std::uint8_t first = 0;
  Bytes inner = wire::encode_payloads(payloads, &first);
  return seal_whole(sa, h, first, inner, random);
}

std::vector<Bytes> build_datagrams(const IkeSa& sa, ExchangeType exchange, bool response, std::uint32_t mid,
                                   const std::vector<Payload>& payloads, crypto::Random& random,
                                   std::size_t fragment_limit) {
  // RFC 7383 §2.5: only messages with an SK payload are fragmented; IKE_SA_INIT never.
  if (exchange == ExchangeType::kIkeSaInit || !sa.crypto.out || fragment_limit == 0)
    return {build_message(sa, exchange, response, mid, payloads, random)};
  std::uint8_t first = 0;
  Bytes inner = wire::encode_payloads(payloads, &first);
  return seal_datagrams(sa, exchange, response, mid, first, inner, random, fragment_limit);
}

std::vector<Bytes> seal_datagrams(const IkeSa& sa, ExchangeType exchange, bool response, std::uint32_t mid,
                                  std::uint8_t first, ByteView inner, crypto::Random& random,
                                  std::size_t fragment_limit) {
  Header h = header_for(sa, exchange, response, mid);
  if (fragment_limit != 0 && wire::kHeaderSize + 4 + sa.crypto.out->sealed_size(inner.size()) > fragment_limit) {
    auto fragments = seal_fragments(*sa.crypto.out, h, first, inner, fragment_limit, random);
    // A limit too small for any content: the whole message, which IP may still fragment.
    if (!fragments.empty()) return fragments;
  }
  return {seal_whole(sa, h, first, inner, random)};
}

Expected<std::vector<Payload>, OpenFailure> open_message(const IkeSa& sa,
                                                         const wire::Message& message,
                                                         ByteView datagram) {
  if (message.payloads.empty() || !sa.crypto.in) return unexpected(OpenFailure{OpenError::kNotProtected});
  auto* sk = std::get_if<wire::SkPayload>(&message.payloads.back().body);
  if (!sk) return unexpected(OpenFailure{OpenError::kNotProtected});
  if (sk->body.size() > datagram.size()) return unexpected(OpenFailure{OpenError::kMalformed});
  ByteView prefix = datagram.first(datagram.size() - sk->body.size());
  auto plain = sa.crypto.in->open(prefix, sk->body);
  if (!plain) return unexpected(OpenFailure{OpenError::kIntegrity});
  auto inner = wire::decode_payloads(sk->first_inner, *plain);
  if (!inner) {
    if (inner.error().kind == wire::DecodeErrorKind::kUnsupportedCriticalPayload)
      return unexpected(OpenFailure{OpenError::kUnsupportedCritical, inner.error().payload_type});
    return unexpected(OpenFailure{OpenError::kMalformed});
  }
  // Unprotected payloads before SK are not expected after IKE_SA_INIT; keep the
  // protected ones only.
  return std::move(*inner);
}

Bytes nat_detection_hash(std::uint64_t spi_i, std::uint64_t spi_r, const Endpoint& ep) {
  Bytes in;
  put_u64(in, spi_i);
  put_u64(in, spi_r);
  append(in, ep.address.bytes());
  in.push_back(static_cast<std::uint8_t>(ep.port >> 8));
  in.push_back(static_cast<std::uint8_t>(ep.port));
  return crypto::sha1(in);
}

Bytes id_payload_body(const Identity& id) {
  Bytes b{static_cast<std::uint8_t>(id.type), 0, 0, 0};
  append(b, id.data);
  return b;
}

Bytes signed_octets(const IkeSa& sa, bool initiator_side, const Identity& id) {
  const auto& prf = *sa.crypto.prf;
  Bytes octets = initiator_side ? sa.setup().init_request : sa.setup().init_response;
  append(octets, initiator_side ? sa.setup().nonce_r : sa.setup().nonce_i);
  append(octets, prf.compute(initiator_side ? sa.setup().sk_pi : sa.setup().sk_pr, id_payload_body(id)));
  return octets;
}

Bytes psk_auth_value(const IkeSa& sa, bool initiator_side, ByteView psk, const Identity& id) {
  return crypto::psk_auth(*sa.crypto.prf, psk, signed_octets(sa, initiator_side, id));
}

}  // namespace mobike::ike
