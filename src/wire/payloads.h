// Typed IKEv2 payloads (RFC 7296 §3.3-§3.16) and messages. Plain values: the codec turns
// them into bytes and back; nothing here knows about IKE state.
#pragma once

#include <cstdint>
#include <optional>
#include <variant>
#include <vector>

#include "common/bytes.h"
#include "common/ip_address.h"
#include "wire/constants.h"

namespace mobike::wire {

// A transform attribute other than a TV-format Key Length (added by the wire codec).
// RFC 7296 §3.3.6: a transform carrying an attribute the responder does not understand
// is unacceptable (other transforms of its type still count), so the decoder keeps
// such attributes instead of dropping them or failing the whole message.
struct TransformAttribute {
  std::uint16_t type = 0;  // 15 bits, without the AF (format) bit
  bool tv = false;         // TV format: `value` is exactly the 2-octet value
  Bytes value;
  friend bool operator==(const TransformAttribute&, const TransformAttribute&) = default;
};

struct Transform {
  TransformType type = TransformType::kEncr;
  std::uint16_t id = 0;
  std::optional<std::uint16_t> key_length;  // the Key Length attribute, in bits
  // Added by the wire codec: attributes we do not understand. Non-empty means the
  // transform MUST NOT be selected (RFC 7296 §3.3.6). Encoded after Key Length.
  std::vector<TransformAttribute> other_attributes;
  friend bool operator==(const Transform&, const Transform&) = default;
};

struct Proposal {
  std::uint8_t number = 1;
  ProtocolId protocol = ProtocolId::kIke;
  Bytes spi;  // 0 octets (IKE_SA_INIT), 8 (IKE rekey) or 4 (ESP/AH)
  std::vector<Transform> transforms;
  friend bool operator==(const Proposal&, const Proposal&) = default;
};

struct SaPayload {
  std::vector<Proposal> proposals;
  friend bool operator==(const SaPayload&, const SaPayload&) = default;
};

struct KePayload {
  std::uint16_t group = 0;
  Bytes data;
  friend bool operator==(const KePayload&, const KePayload&) = default;
};

struct IdPayload {  // IDi or IDr, told apart by Payload::type
  IdType id_type = IdType::kFqdn;
  Bytes data;
  friend bool operator==(const IdPayload&, const IdPayload&) = default;
};

struct CertPayload {  // CERT and CERTREQ share the layout
  std::uint8_t encoding = 0;
  Bytes data;
  friend bool operator==(const CertPayload&, const CertPayload&) = default;
};

struct AuthPayload {
  AuthMethod method = AuthMethod::kSharedKeyMic;
  Bytes data;
  friend bool operator==(const AuthPayload&, const AuthPayload&) = default;
};

struct NoncePayload {
  Bytes data;  // 16..256 octets (checked by the codec)
  friend bool operator==(const NoncePayload&, const NoncePayload&) = default;
};

struct NotifyPayload {
  ProtocolId protocol = ProtocolId::kNone;
  Bytes spi;
  std::uint16_t type = 0;  // a NotifyType value, or one we do not know
  Bytes data;
  NotifyType notify_type() const { return static_cast<NotifyType>(type); }
  friend bool operator==(const NotifyPayload&, const NotifyPayload&) = default;
};

struct DeletePayload {
  ProtocolId protocol = ProtocolId::kIke;
  std::uint8_t spi_size = 0;  // 0 for IKE, 4 for ESP/AH
  std::vector<Bytes> spis;    // each exactly spi_size octets
  friend bool operator==(const DeletePayload&, const DeletePayload&) = default;
};

struct VendorIdPayload {
  Bytes data;
  friend bool operator==(const VendorIdPayload&, const VendorIdPayload&) = default;
};

struct TrafficSelector {
  TsType ts_type = TsType::kIpv4AddrRange;
  std::uint8_t ip_protocol = 0;  // 0 = any
  std::uint16_t start_port = 0;
  std::uint16_t end_port = 65535;
  IpAddress start_address;  // family matches ts_type (checked by the codec)
  IpAddress end_address;
  friend bool operator==(const TrafficSelector&, const TrafficSelector&) = default;
};

struct TsPayload {  // TSi or TSr, told apart by Payload::type
  std::vector<TrafficSelector> selectors;
  friend bool operator==(const TsPayload&, const TsPayload&) = default;
};

struct CpAttribute {
  std::uint16_t type = 0;  // 15 bits
  Bytes value;
  friend bool operator==(const CpAttribute&, const CpAttribute&) = default;
};

struct CpPayload {
  CfgType cfg_type = CfgType::kRequest;
  std::vector<CpAttribute> attributes;
  friend bool operator==(const CpPayload&, const CpPayload&) = default;
};

struct EapPayload {  // carried opaquely: the whole EAP message
  Bytes data;
  friend bool operator==(const EapPayload&, const EapPayload&) = default;
};

// The Encrypted and Authenticated payload as found on the wire: still protected.
// `body` is IV || ciphertext || ICV; `first_inner` is the Next Payload field of the SK
// payload (the type of the first protected payload).
struct SkPayload {
  std::uint8_t first_inner = 0;
  Bytes body;
  friend bool operator==(const SkPayload&, const SkPayload&) = default;
};

// The Encrypted Fragment payload of RFC 7383 §2.5 as found on the wire: one piece of
// an SK payload's inner payloads, protected on its own. Fragment Number counts from 1
// and is at most Total Fragments (the codec refuses anything else); `first_inner` is
// the first inner payload's type in fragment 1 and 0 in the others. `body` is
// IV || ciphertext || ICV, as in SK.
struct SkfPayload {
  std::uint8_t first_inner = 0;
  std::uint16_t fragment_number = 1;
  std::uint16_t total_fragments = 1;
  Bytes body;
  friend bool operator==(const SkfPayload&, const SkfPayload&) = default;
};

// A payload type we do not know and whose critical bit is clear: skipped, kept only
// so that logs can name it.
struct UnknownPayload {
  std::uint8_t type = 0;
  bool critical = false;
  Bytes data;
  friend bool operator==(const UnknownPayload&, const UnknownPayload&) = default;
};

using PayloadBody = std::variant<SaPayload, KePayload, IdPayload, CertPayload, AuthPayload,
                                 NoncePayload, NotifyPayload, DeletePayload, VendorIdPayload,
                                 TsPayload, CpPayload, EapPayload, SkPayload, SkfPayload,
                                 UnknownPayload>;

struct Payload {
  PayloadType type = PayloadType::kNone;  // for UnknownPayload: the raw type number
  PayloadBody body;
  friend bool operator==(const Payload&, const Payload&) = default;
};

struct Header {
  std::uint64_t spi_i = 0;
  std::uint64_t spi_r = 0;
  std::uint8_t next_payload = 0;
  std::uint8_t version = kIkeV2Version;
  ExchangeType exchange = ExchangeType::kIkeSaInit;
  std::uint8_t flags = 0;
  std::uint32_t message_id = 0;
  std::uint32_t length = 0;  // filled in by the encoder

  bool is_response() const { return flags & kFlagResponse; }
  bool from_original_initiator() const { return flags & kFlagInitiator; }
  friend bool operator==(const Header&, const Header&) = default;
};

struct Message {
  Header header;
  std::vector<Payload> payloads;  // in wire order; an SkPayload or SkfPayload, if any, is last
  friend bool operator==(const Message&, const Message&) = default;
};

// Typed accessors used by the engine.
template <class T>
const T* find_payload(const std::vector<Payload>& payloads, PayloadType type) {
  for (const auto& p : payloads)
    if (p.type == type)
      if (auto* b = std::get_if<T>(&p.body)) return b;
  return nullptr;
}
const NotifyPayload* find_notify(const std::vector<Payload>& payloads, std::uint16_t type);
inline const NotifyPayload* find_notify(const std::vector<Payload>& payloads, NotifyType type) {
  return find_notify(payloads, static_cast<std::uint16_t>(type));
}
std::vector<const NotifyPayload*> find_notifies(const std::vector<Payload>& payloads,
                                                std::uint16_t type);

// Convenience constructors.
Payload make_notify(NotifyType type, Bytes data = {}, ProtocolId protocol = ProtocolId::kNone,
                    Bytes spi = {});
Payload make_notify(std::uint16_t type, Bytes data);

}  // namespace mobike::wire
