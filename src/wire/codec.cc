#include "wire/codec.h"

#include <cassert>
#include <utility>

#include "wire/reader.h"
#include "wire/writer.h"

// Layout notes: every payload body has its decoder and encoder next to each other
// below, with the fixed-size parts named once, so that the two cannot drift apart.
// Decoders receive a Reader confined to exactly one payload body (the generic header's
// length already applied) and must consume all of it; encoders append to a Writer and
// leave every length to Writer::close. Reserved fields are written as zero and ignored
// on receipt (RFC 7296 §3.2).

namespace mobike::wire {
namespace {

constexpr std::size_t kGenericHeaderSize = 4;
constexpr std::uint8_t kCriticalBit = 0x80;

// Proposal and Transform substructures (RFC 7296 §3.3.1, §3.3.2).
constexpr std::size_t kProposalHeaderSize = 8;
constexpr std::size_t kTransformHeaderSize = 8;
constexpr std::uint8_t kMoreProposals = 2;
constexpr std::uint8_t kMoreTransforms = 3;
constexpr std::uint8_t kLastSubstructure = 0;
constexpr std::uint16_t kAttrFormatTv = 0x8000;
constexpr std::uint16_t kAttrTypeMask = 0x7fff;

constexpr std::size_t kNonceMin = 16;
constexpr std::size_t kNonceMax = 256;

// Traffic selector substructure sizes, selector header included (RFC 7296 §3.13.1).
constexpr std::size_t kTsIpv4Size = 16;
constexpr std::size_t kTsIpv6Size = 40;

constexpr std::uint16_t kCpTypeMask = 0x7fff;

Unexpected<DecodeError> invalid(std::string detail) {
  return unexpected(DecodeError{DecodeErrorKind::kInvalidSyntax, 0, std::move(detail)});
}

Unexpected<DecodeError> truncated(std::string detail) {
  return unexpected(DecodeError{DecodeErrorKind::kTruncated, 0, std::move(detail)});
}

std::string num(std::size_t v) { return std::to_string(v); }

bool is_known_payload(std::uint8_t t) {
  return t >= static_cast<std::uint8_t>(PayloadType::kSa) &&
         t <= static_cast<std::uint8_t>(PayloadType::kEap);
}

// The SPI sizes a protocol allows; for protocols this codec does not know, any size is
// syntactically fine and it is up to the engine to refuse them.
bool spi_size_ok(ProtocolId protocol, std::size_t size, bool allow_empty) {
  if (size == 0 && allow_empty) return true;
  switch (protocol) {
    case ProtocolId::kIke: return size == 8;
    case ProtocolId::kAh:
    case ProtocolId::kEsp: return size == 4;
    case ProtocolId::kNone: return false;
  }
  return true;
}

// ---------------------------------------------------------------- SA (§3.3)

DecodeResult<Transform> decode_transform(Reader& r, bool& is_last) {
  std::uint8_t last = 0;
  std::uint16_t length = 0;
  if (!r.read_u8(last) || !r.skip(1) || !r.read_u16(length))
    return invalid("transform header truncated");
  if (last != kLastSubstructure && last != kMoreTransforms)
    return invalid("transform last-substructure value " + num(last));
  if (length < kTransformHeaderSize) return invalid("transform length " + num(length));
  auto body = r.sub_reader(length - 4);
  if (!body) return invalid("transform length " + num(length) + " beyond its proposal");
  is_last = last == kLastSubstructure;

  Transform t;
  std::uint8_t type = 0;
  if (!body->read_u8(type) || !body->skip(1) || !body->read_u16(t.id))
    return invalid("transform header truncated");
  t.type = static_cast<TransformType>(type);
  while (!body->empty()) {
    std::uint16_t af_type = 0;
    if (!body->read_u16(af_type)) return invalid("transform attribute truncated");
    std::uint16_t attr_type = af_type & kAttrTypeMask;
    if (af_type & kAttrFormatTv) {
      std::uint16_t value = 0;
      if (!body->read_u16(value)) return invalid("TV attribute truncated");
      if (attr_type == kAttrKeyLength && !t.key_length) {
        t.key_length = value;
      } else {
        // A repeated Key Length is kept as an unknown attribute: it makes the transform
        // unacceptable rather than silently picking one of the two values.
        t.other_attributes.push_back(TransformAttribute{
            attr_type, true,
            Bytes{static_cast<std::uint8_t>(value >> 8), static_cast<std::uint8_t>(value)}});
      }
    } else {
      std::uint16_t alen = 0;
      TransformAttribute a{attr_type, false, {}};
      if (!body->read_u16(alen) || !body->read_bytes(alen, a.value))
        return invalid("TLV attribute length beyond its transform");
      t.other_attributes.push_back(std::move(a));
    }
  }
  return t;
}

void encode_transform(const Transform& t, bool last, Writer& w) {
  std::size_t start = w.size();
  w.u8(last ? kLastSubstructure : kMoreTransforms);
  w.u8(0);
  auto len = w.open_length16(start);
  w.u8(static_cast<std::uint8_t>(t.type));
  w.u8(0);
  w.u16(t.id);
  if (t.key_length) {
    w.u16(kAttrFormatTv | kAttrKeyLength);
    w.u16(*t.key_length);
  }
  for (const auto& a : t.other_attributes) {
    if (a.tv) {
      assert(a.value.size() == 2 && "a TV attribute value is two octets");
      w.u16(kAttrFormatTv | (a.type & kAttrTypeMask));
      std::uint16_t v = 0;
      for (std::size_t i = 0; i < 2 && i < a.value.size(); ++i)
        v = static_cast<std::uint16_t>(v | a.value[i] << (8 * (1 - i)));
      w.u16(v);
    } else {
      w.u16(a.type & kAttrTypeMask);
      w.u16(static_cast<std::uint16_t>(a.value.size()));
      w.bytes(a.value);
    }
  }
  w.close(len);
}

DecodeResult<Proposal> decode_proposal(Reader& r, bool& is_last) {
  std::uint8_t last = 0;
  std::uint16_t length = 0;
  if (!r.read_u8(last) || !r.skip(1) || !r.read_u16(length))
    return invalid("proposal header truncated");
  if (last != kLastSubstructure && last != kMoreProposals)
    return invalid("proposal last-substructure value " + num(last));
  if (length < kProposalHeaderSize) return invalid("proposal length " + num(length));
  auto body = r.sub_reader(length - 4);
  if (!body) return invalid("proposal length " + num(length) + " beyond the SA payload");
  is_last = last == kLastSubstructure;

  Proposal p;
  std::uint8_t protocol = 0, spi_size = 0, transform_count = 0;
  if (!body->read_u8(p.number) || !body->read_u8(protocol) || !body->read_u8(spi_size) ||
      !body->read_u8(transform_count))
    return invalid("proposal header truncated");
  p.protocol = static_cast<ProtocolId>(protocol);
  // IKE_SA_INIT proposals carry no SPI; IKE SA rekeying carries 8 octets.
  if (!spi_size_ok(p.protocol, spi_size, p.protocol == ProtocolId::kIke))
    return invalid("proposal " + num(p.number) + ": SPI size " + num(spi_size) +
                   " for protocol " + num(protocol));
  if (!body->read_bytes(spi_size, p.spi))
    return invalid("proposal " + num(p.number) + ": SPI beyond the proposal");

  bool last_transform = false;
  while (!body->empty()) {
    if (last_transform)
      return invalid("proposal " + num(p.number) + ": transform after the last one");
    auto t = decode_transform(*body, last_transform);
    if (!t) {
      DecodeError e = t.error();
      e.detail = "proposal " + num(p.number) + ": " + e.detail;
      return unexpected(std::move(e));
    }
    p.transforms.push_back(std::move(*t));
  }
  if (!p.transforms.empty() && !last_transform)
    return invalid("proposal " + num(p.number) + ": final transform not marked last");
  if (p.transforms.size() != transform_count)
    return invalid("proposal " + num(p.number) + ": " + num(p.transforms.size()) +
                   " transforms, header says " + num(transform_count));
  return p;
}

void encode_proposal(const Proposal& p, bool last, Writer& w) {
  assert(p.spi.size() <= 0xff && p.transforms.size() <= 0xff);
  std::size_t start = w.size();
  w.u8(last ? kLastSubstructure : kMoreProposals);
  w.u8(0);
  auto len = w.open_length16(start);
  w.u8(p.number);
  w.u8(static_cast<std::uint8_t>(p.protocol));
  w.u8(static_cast<std::uint8_t>(p.spi.size()));
  w.u8(static_cast<std::uint8_t>(p.transforms.size()));
  w.bytes(p.spi);
  for (std::size_t i = 0; i < p.transforms.size(); ++i)
    encode_transform(p.transforms[i], i + 1 == p.transforms.size(), w);
  w.close(len);
}

DecodeResult<SaPayload> decode_sa(Reader& r) {
  SaPayload sa;
  bool last = false;
  while (!r.empty()) {
    if (last) return invalid("proposal after the one marked last");
    auto p = decode_proposal(r, last);
    if (!p) return unexpected(p.error());
    // RFC 7296 §3.3.1: the first proposal is 1 and each next one is one more; a
    // response carries the single accepted proposal under its original number.
    if (sa.proposals.empty()) {
      if (p->number == 0) return invalid("proposal number 0");
    } else if (p->number != sa.proposals.back().number + 1) {
      return invalid("proposal number " + num(p->number) + " after " +
                     num(sa.proposals.back().number));
    }
    sa.proposals.push_back(std::move(*p));
  }
  if (sa.proposals.empty()) return invalid("no proposals");
  if (!last) return invalid("final proposal not marked last");
  if (sa.proposals.size() > 1 && sa.proposals.front().number != 1)
    return invalid("first of several proposals is not number 1");
  return sa;
}

void encode_sa(const SaPayload& sa, Writer& w) {
  for (std::size_t i = 0; i < sa.proposals.size(); ++i)
    encode_proposal(sa.proposals[i], i + 1 == sa.proposals.size(), w);
}

// ---------------------------------------------------------------- KE (§3.4)

DecodeResult<KePayload> decode_ke(Reader& r) {
  KePayload ke;
  if (!r.read_u16(ke.group) || !r.skip(2)) return invalid("shorter than its fixed part");
  ke.data = r.read_rest_bytes();
  return ke;
}

void encode_ke(const KePayload& ke, Writer& w) {
  w.u16(ke.group);
  w.u16(0);
  w.bytes(ke.data);
}

// ---------------------------------------------------------------- IDi/IDr (§3.5)

DecodeResult<IdPayload> decode_id(Reader& r) {
  IdPayload id;
  std::uint8_t type = 0;
  if (!r.read_u8(type) || !r.skip(3)) return invalid("shorter than its fixed part");
  id.id_type = static_cast<IdType>(type);
  id.data = r.read_rest_bytes();
  if (id.id_type == IdType::kIpv4Addr && id.data.size() != 4)
    return invalid("ID_IPV4_ADDR of " + num(id.data.size()) + " octets");
  if (id.id_type == IdType::kIpv6Addr && id.data.size() != 16)
    return invalid("ID_IPV6_ADDR of " + num(id.data.size()) + " octets");
  return id;
}

void encode_id(const IdPayload& id, Writer& w) {
  w.u8(static_cast<std::uint8_t>(id.id_type));
  w.zeros(3);
  w.bytes(id.data);
}

// ---------------------------------------------------------------- CERT/CERTREQ (§3.6, §3.7)

DecodeResult<CertPayload> decode_cert(Reader& r) {
  CertPayload c;
  if (!r.read_u8(c.encoding)) return invalid("no encoding octet");
  c.data = r.read_rest_bytes();
  return c;
}

void encode_cert(const CertPayload& c, Writer& w) {
  w.u8(c.encoding);
  w.bytes(c.data);
}

// ---------------------------------------------------------------- AUTH (§3.8)

DecodeResult<AuthPayload> decode_auth(Reader& r) {
  AuthPayload a;
  std::uint8_t method = 0;
  if (!r.read_u8(method) || !r.skip(3)) return invalid("shorter than its fixed part");
  a.method = static_cast<AuthMethod>(method);
  a.data = r.read_rest_bytes();
  return a;
}

void encode_auth(const AuthPayload& a, Writer& w) {
  w.u8(static_cast<std::uint8_t>(a.method));
  w.zeros(3);
  w.bytes(a.data);
}

// ---------------------------------------------------------------- Nonce (§3.9)

DecodeResult<NoncePayload> decode_nonce(Reader& r) {
  NoncePayload n;
  if (r.remaining() < kNonceMin || r.remaining() > kNonceMax)
    return invalid("nonce of " + num(r.remaining()) + " octets, not 16..256");
  n.data = r.read_rest_bytes();
  return n;
}

void encode_nonce(const NoncePayload& n, Writer& w) { w.bytes(n.data); }

// ---------------------------------------------------------------- Notify (§3.10)

DecodeResult<NotifyPayload> decode_notify(Reader& r) {
  NotifyPayload n;
  std::uint8_t protocol = 0, spi_size = 0;
  if (!r.read_u8(protocol) || !r.read_u8(spi_size) || !r.read_u16(n.type))
    return invalid("shorter than its fixed part");
  n.protocol = static_cast<ProtocolId>(protocol);
  // With no SPI the Protocol ID must be ignored on receipt (§3.10), so only a present
  // SPI is checked against it.
  if (!spi_size_ok(n.protocol, spi_size, true))
    return invalid("SPI size " + num(spi_size) + " for protocol " + num(protocol));
  if (!r.read_bytes(spi_size, n.spi)) return invalid("SPI beyond the payload");
  n.data = r.read_rest_bytes();
  return n;
}

void encode_notify(const NotifyPayload& n, Writer& w) {
  assert(n.spi.size() <= 0xff);
  w.u8(static_cast<std::uint8_t>(n.protocol));
  w.u8(static_cast<std::uint8_t>(n.spi.size()));
  w.u16(n.type);
  w.bytes(n.spi);
  w.bytes(n.data);
}

// ---------------------------------------------------------------- Delete (§3.11)

DecodeResult<DeletePayload> decode_delete(Reader& r) {
  DeletePayload d;
  std::uint8_t protocol = 0;
  std::uint16_t count = 0;
  if (!r.read_u8(protocol) || !r.read_u8(d.spi_size) || !r.read_u16(count))
    return invalid("shorter than its fixed part");
  d.protocol = static_cast<ProtocolId>(protocol);
  bool size_ok = d.protocol == ProtocolId::kIke ? d.spi_size == 0
                                                 : spi_size_ok(d.protocol, d.spi_size, false);
  if (!size_ok) return invalid("SPI size " + num(d.spi_size) + " for protocol " + num(protocol));
  if (std::size_t{d.spi_size} * count != r.remaining())
    return invalid(num(count) + " SPIs of " + num(d.spi_size) + " octets in " +
                   num(r.remaining()) + " octets");
  // With zero-sized SPIs (IKE) the count says nothing: there is nothing to delete
  // but the SA the message belongs to, so no empty SPIs are materialised for it.
  if (d.spi_size == 0) return d;
  d.spis.reserve(count);
  for (std::size_t i = 0; i < count; ++i) {
    Bytes spi;
    if (!r.read_bytes(d.spi_size, spi)) return invalid("SPI beyond the payload");
    d.spis.push_back(std::move(spi));
  }
  return d;
}

void encode_delete(const DeletePayload& d, Writer& w) {
  assert(d.spis.size() <= 0xffff);
  w.u8(static_cast<std::uint8_t>(d.protocol));
  w.u8(d.spi_size);
  w.u16(static_cast<std::uint16_t>(d.spis.size()));
  for (const auto& spi : d.spis) {
    assert(spi.size() == d.spi_size);
    w.bytes(spi);
  }
}

// ---------------------------------------------------------------- Vendor ID (§3.12)

DecodeResult<VendorIdPayload> decode_vendor_id(Reader& r) {
  return VendorIdPayload{r.read_rest_bytes()};
}

void encode_vendor_id(const VendorIdPayload& v, Writer& w) { w.bytes(v.data); }

// ---------------------------------------------------------------- TSi/TSr (§3.13)

DecodeResult<TrafficSelector> decode_selector(Reader& r) {
  TrafficSelector ts;
  std::uint8_t type = 0;
  std::uint16_t length = 0;
  if (!r.read_u8(type) || !r.read_u8(ts.ip_protocol) || !r.read_u16(length))
    return invalid("selector header truncated");
  ts.ts_type = static_cast<TsType>(type);
  std::size_t addr_size = 0;
  std::size_t expected = 0;
  switch (ts.ts_type) {
    case TsType::kIpv4AddrRange: addr_size = 4; expected = kTsIpv4Size; break;
    case TsType::kIpv6AddrRange: addr_size = 16; expected = kTsIpv6Size; break;
    default: return invalid("unsupported selector type " + num(type));
  }
  if (length != expected)
    return invalid("selector type " + num(type) + " of length " + num(length));
  auto body = r.sub_reader(length - 4);
  if (!body) return invalid("selector length " + num(length) + " beyond the payload");
  ByteView start, end;
  if (!body->read_u16(ts.start_port) || !body->read_u16(ts.end_port) ||
      !body->read_view(addr_size, start) || !body->read_view(addr_size, end))
    return invalid("selector truncated");
  // from_bytes cannot fail for 4 or 16 octets.
  ts.start_address = *IpAddress::from_bytes(start);
  ts.end_address = *IpAddress::from_bytes(end);
  return ts;
}

void encode_selector(const TrafficSelector& ts, Writer& w) {
  assert((ts.ts_type == TsType::kIpv4AddrRange) == ts.start_address.is_v4() &&
         ts.start_address.family() == ts.end_address.family() &&
         "selector addresses must match the selector type");
  std::size_t start = w.size();
  w.u8(static_cast<std::uint8_t>(ts.ts_type));
  w.u8(ts.ip_protocol);
  auto len = w.open_length16(start);
  w.u16(ts.start_port);
  w.u16(ts.end_port);
  w.bytes(ts.start_address.bytes());
  w.bytes(ts.end_address.bytes());
  w.close(len);
}

DecodeResult<TsPayload> decode_ts(Reader& r) {
  TsPayload ts;
  std::uint8_t count = 0;
  if (!r.read_u8(count) || !r.skip(3)) return invalid("shorter than its fixed part");
  while (!r.empty()) {
    auto s = decode_selector(r);
    if (!s) return unexpected(s.error());
    ts.selectors.push_back(std::move(*s));
  }
  if (ts.selectors.size() != count)
    return invalid(num(ts.selectors.size()) + " selectors, header says " + num(count));
  return ts;
}

void encode_ts(const TsPayload& ts, Writer& w) {
  assert(ts.selectors.size() <= 0xff);
  w.u8(static_cast<std::uint8_t>(ts.selectors.size()));
  w.zeros(3);
  for (const auto& s : ts.selectors) encode_selector(s, w);
}

// ---------------------------------------------------------------- CP (§3.15)

DecodeResult<CpPayload> decode_cp(Reader& r) {
  CpPayload cp;
  std::uint8_t type = 0;
  if (!r.read_u8(type) || !r.skip(3)) return invalid("shorter than its fixed part");
  cp.cfg_type = static_cast<CfgType>(type);
  while (!r.empty()) {
    std::uint16_t rtype = 0, length = 0;
    CpAttribute a;
    if (!r.read_u16(rtype) || !r.read_u16(length)) return invalid("attribute header truncated");
    a.type = rtype & kCpTypeMask;
    if (!r.read_bytes(length, a.value))
      return invalid("attribute " + num(a.type) + " length " + num(length) + " beyond the payload");
    cp.attributes.push_back(std::move(a));
  }
  return cp;
}

void encode_cp(const CpPayload& cp, Writer& w) {
  w.u8(static_cast<std::uint8_t>(cp.cfg_type));
  w.zeros(3);
  for (const auto& a : cp.attributes) {
    assert(a.value.size() <= 0xffff);
    w.u16(a.type & kCpTypeMask);
    w.u16(static_cast<std::uint16_t>(a.value.size()));
    w.bytes(a.value);
  }
}

// ---------------------------------------------------------------- EAP (§3.16)

DecodeResult<EapPayload> decode_eap(Reader& r) { return EapPayload{r.read_rest_bytes()}; }

void encode_eap(const EapPayload& e, Writer& w) { w.bytes(e.data); }

// ---------------------------------------------------------------- chain (§3.2)

// ---------------------------------------------------------------- SKF (RFC 7383 §2.5)

// After the generic header: Fragment Number, Total Fragments, then the protected body.
DecodeResult<SkfPayload> decode_skf(std::uint8_t next, Reader& r) {
  SkfPayload f;
  f.first_inner = next;
  if (!r.read_u16(f.fragment_number) || !r.read_u16(f.total_fragments))
    return invalid("SKF shorter than Fragment Number and Total Fragments");
  // §2.5: neither may be zero, and the number never exceeds the total.
  if (f.total_fragments == 0) return invalid("SKF Total Fragments 0");
  if (f.fragment_number == 0 || f.fragment_number > f.total_fragments)
    return invalid("SKF Fragment Number " + num(f.fragment_number) + " of " + num(f.total_fragments));
  f.body = r.read_rest_bytes();
  return f;
}

void encode_skf(const SkfPayload& f, Writer& w) {
  w.u16(f.fragment_number);
  w.u16(f.total_fragments);
  w.bytes(f.body);
}

template <class T>
DecodeResult<PayloadBody> lift(DecodeResult<T> r) {
  if (!r) return unexpected(r.error());
  return PayloadBody(std::move(*r));
}

DecodeResult<PayloadBody> decode_body(PayloadType type, Reader& r) {
  switch (type) {
    case PayloadType::kSa: return lift(decode_sa(r));
    case PayloadType::kKe: return lift(decode_ke(r));
    case PayloadType::kIdi:
    case PayloadType::kIdr: return lift(decode_id(r));
    case PayloadType::kCert:
    case PayloadType::kCertReq: return lift(decode_cert(r));
    case PayloadType::kAuth: return lift(decode_auth(r));
    case PayloadType::kNonce: return lift(decode_nonce(r));
    case PayloadType::kNotify: return lift(decode_notify(r));
    case PayloadType::kDelete: return lift(decode_delete(r));
    case PayloadType::kVendorId: return lift(decode_vendor_id(r));
    case PayloadType::kTsi:
    case PayloadType::kTsr: return lift(decode_ts(r));
    case PayloadType::kCp: return lift(decode_cp(r));
    case PayloadType::kEap: return lift(decode_eap(r));
    case PayloadType::kNone:
    case PayloadType::kSk:
    case PayloadType::kSkf: break;  // handled by the chain walker
  }
  return invalid("not a payload body type");
}

// Whether `body` is what Payload::type says; a mismatch is a bug in the caller.
[[maybe_unused]] bool body_matches(const Payload& p) {
  switch (p.type) {
    case PayloadType::kSa: return std::holds_alternative<SaPayload>(p.body);
    case PayloadType::kKe: return std::holds_alternative<KePayload>(p.body);
    case PayloadType::kIdi:
    case PayloadType::kIdr: return std::holds_alternative<IdPayload>(p.body);
    case PayloadType::kCert:
    case PayloadType::kCertReq: return std::holds_alternative<CertPayload>(p.body);
    case PayloadType::kAuth: return std::holds_alternative<AuthPayload>(p.body);
    case PayloadType::kNonce: return std::holds_alternative<NoncePayload>(p.body);
    case PayloadType::kNotify: return std::holds_alternative<NotifyPayload>(p.body);
    case PayloadType::kDelete: return std::holds_alternative<DeletePayload>(p.body);
    case PayloadType::kVendorId: return std::holds_alternative<VendorIdPayload>(p.body);
    case PayloadType::kTsi:
    case PayloadType::kTsr: return std::holds_alternative<TsPayload>(p.body);
    case PayloadType::kSk: return std::holds_alternative<SkPayload>(p.body);
    case PayloadType::kSkf: return std::holds_alternative<SkfPayload>(p.body);
    case PayloadType::kCp: return std::holds_alternative<CpPayload>(p.body);
    case PayloadType::kEap: return std::holds_alternative<EapPayload>(p.body);
    case PayloadType::kNone: return false;
  }
  auto* u = std::get_if<UnknownPayload>(&p.body);
  return u && u->type == static_cast<std::uint8_t>(p.type);
}

void encode_body(const PayloadBody& body, Writer& w) {
  std::visit(
      [&w](const auto& b) {
        using T = std::decay_t<decltype(b)>;
        if constexpr (std::is_same_v<T, SaPayload>) encode_sa(b, w);
        else if constexpr (std::is_same_v<T, KePayload>) encode_ke(b, w);
        else if constexpr (std::is_same_v<T, IdPayload>) encode_id(b, w);
        else if constexpr (std::is_same_v<T, CertPayload>) encode_cert(b, w);
        else if constexpr (std::is_same_v<T, AuthPayload>) encode_auth(b, w);
        else if constexpr (std::is_same_v<T, NoncePayload>) encode_nonce(b, w);
        else if constexpr (std::is_same_v<T, NotifyPayload>) encode_notify(b, w);
        else if constexpr (std::is_same_v<T, DeletePayload>) encode_delete(b, w);
        else if constexpr (std::is_same_v<T, VendorIdPayload>) encode_vendor_id(b, w);
        else if constexpr (std::is_same_v<T, TsPayload>) encode_ts(b, w);
        else if constexpr (std::is_same_v<T, CpPayload>) encode_cp(b, w);
        else if constexpr (std::is_same_v<T, EapPayload>) encode_eap(b, w);
        else if constexpr (std::is_same_v<T, SkPayload>) w.bytes(b.body);
        else if constexpr (std::is_same_v<T, SkfPayload>) encode_skf(b, w);
        else if constexpr (std::is_same_v<T, UnknownPayload>) w.bytes(b.data);
        else static_assert(!sizeof(T), "every payload body needs an encoder");
      },
      body);
}

DecodeResult<std::vector<Payload>> decode_chain(std::uint8_t first_type, Reader r) {
  std::vector<Payload> out;
  std::uint8_t type = first_type;
  while (type != static_cast<std::uint8_t>(PayloadType::kNone)) {
    // Built only on failure: the success path allocates nothing but the payloads.
    auto where = [&] { return std::string(payload_name(type)) + " payload #" + num(out.size() + 1); };
    std::uint8_t next = 0, flags = 0;
    std::uint16_t length = 0;
    if (!r.read_u8(next) || !r.read_u8(flags) || !r.read_u16(length))
      return invalid(where() + ": generic header beyond the end of the chain");
    if (length < kGenericHeaderSize) return invalid(where() + ": length " + num(length));
    auto body = r.sub_reader(length - kGenericHeaderSize);
    if (!body)
      return invalid(where() + ": length " + num(length) + " but " +
                     num(r.remaining() + kGenericHeaderSize) + " octets left");

    if (type == static_cast<std::uint8_t>(PayloadType::kSk)) {
      // The SK payload's Next Payload names the first payload inside it; nothing may
      // follow it in the clear (§3.14).
      if (!r.empty()) return invalid(where() + ": " + num(r.remaining()) + " octets after SK");
      out.push_back(Payload{PayloadType::kSk, SkPayload{next, body->read_rest_bytes()}});
      return out;
    }
    if (type == static_cast<std::uint8_t>(PayloadType::kSkf)) {
      // Like SK, SKF is the last payload and its Next Payload names what is inside.
      if (!r.empty()) return invalid(where() + ": " + num(r.remaining()) + " octets after SKF");
      auto f = decode_skf(next, *body);
      if (!f) {
        DecodeError e = f.error();
        e.detail = where() + ": " + e.detail;
        return unexpected(std::move(e));
      }
      out.push_back(Payload{PayloadType::kSkf, std::move(*f)});
      return out;
    }
    if (!is_known_payload(type)) {
      // §2.5: the critical bit decides whether an unknown payload may be skipped; for
      // payloads we know it is ignored.
      if (flags & kCriticalBit)
        return unexpected(DecodeError{DecodeErrorKind::kUnsupportedCriticalPayload, type,
                                      where() + ": unknown critical payload"});
      out.push_back(Payload{static_cast<PayloadType>(type),
                            UnknownPayload{type, false, body->read_rest_bytes()}});
    } else {
      auto decoded = decode_body(static_cast<PayloadType>(type), *body);
      if (!decoded) {
        DecodeError e = decoded.error();
        e.detail = where() + ": " + e.detail;
        return unexpected(std::move(e));
      }
      if (!body->empty())
        return invalid(where() + ": " + num(body->remaining()) + " trailing octets");
      out.push_back(Payload{static_cast<PayloadType>(type), std::move(*decoded)});
    }
    type = next;
  }
  if (!r.empty()) return invalid(num(r.remaining()) + " octets after the last payload");
  return out;
}

std::uint8_t encode_chain(const std::vector<Payload>& payloads, Writer& w) {
  for (std::size_t i = 0; i < payloads.size(); ++i) {
    const Payload& p = payloads[i];
    assert(body_matches(p) && "Payload::type does not match its body");
    std::uint8_t next = i + 1 < payloads.size()
                            ? static_cast<std::uint8_t>(payloads[i + 1].type)
                            : static_cast<std::uint8_t>(PayloadType::kNone);
    std::uint8_t flags = 0;
    if (auto* sk = std::get_if<SkPayload>(&p.body)) {
      assert(i + 1 == payloads.size() && "an SK payload must be last");
      next = sk->first_inner;
    } else if (auto* skf = std::get_if<SkfPayload>(&p.body)) {
      assert(i + 1 == payloads.size() && "an SKF payload must be last");
      next = skf->first_inner;
    } else if (auto* u = std::get_if<UnknownPayload>(&p.body)) {
      flags = u->critical ? kCriticalBit : 0;
    }
    std::size_t start = w.size();
    w.u8(next);
    w.u8(flags);
    auto len = w.open_length16(start);
    encode_body(p.body, w);
    w.close(len);
  }
  return payloads.empty() ? static_cast<std::uint8_t>(PayloadType::kNone)
                          : static_cast<std::uint8_t>(payloads.front().type);
}

void write_header(const Header& h, std::uint8_t next_payload, Writer& w) {
  w.u64(h.spi_i);
  w.u64(h.spi_r);
  w.u8(next_payload);
  w.u8(h.version);
  w.u8(static_cast<std::uint8_t>(h.exchange));
  w.u8(h.flags);
  w.u32(h.message_id);
}

}  // namespace

DecodeResult<Header> decode_header(ByteView datagram) {
  Reader r(datagram);
  Header h;
  std::uint8_t exchange = 0;
  if (!r.read_u64(h.spi_i) || !r.read_u64(h.spi_r) || !r.read_u8(h.next_payload) ||
      !r.read_u8(h.version) || !r.read_u8(exchange) || !r.read_u8(h.flags) ||
      !r.read_u32(h.message_id) || !r.read_u32(h.length))
    return truncated(num(datagram.size()) + " octets, shorter than the IKE header");
  h.exchange = static_cast<ExchangeType>(exchange);
  // The version is checked before anything else: a later major version may lay out
  // the rest differently, and its sender is owed INVALID_MAJOR_VERSION (§2.5).
  std::uint8_t major = h.version >> 4;
  if (major > 2)
    return unexpected(DecodeError{DecodeErrorKind::kInvalidMajorVersion, 0,
                                  "major version " + num(major)});
  if (major < 2) return invalid("major version " + num(major) + " (IKEv1 or older)");
  if (h.length < kHeaderSize) return invalid("length field " + num(h.length));
  if (h.length > datagram.size())
    return truncated("length field " + num(h.length) + ", datagram " + num(datagram.size()));
  if (h.length < datagram.size())
    return invalid("length field " + num(h.length) + ", datagram " + num(datagram.size()));
  return h;
}

DecodeResult<Message> decode_message(ByteView datagram) {
  auto header = decode_header(datagram);
  if (!header) return unexpected(header.error());
  auto payloads = decode_chain(header->next_payload, Reader(datagram.subspan(kHeaderSize)));
  if (!payloads) return unexpected(payloads.error());
  return Message{*header, std::move(*payloads)};
}

DecodeResult<std::vector<Payload>> decode_payloads(std::uint8_t first_type, ByteView bytes) {
  return decode_chain(first_type, Reader(bytes));
}

Bytes encode_payloads(const std::vector<Payload>& payloads, std::uint8_t* first_type) {
  Writer w;
  std::uint8_t first = encode_chain(payloads, w);
  if (first_type) *first_type = first;
  return std::move(w).take();
}

Bytes encode_message(const Message& message) {
  Writer w;
  std::uint8_t first = message.payloads.empty()
                           ? static_cast<std::uint8_t>(PayloadType::kNone)
                           : static_cast<std::uint8_t>(message.payloads.front().type);
  write_header(message.header, first, w);
  auto len = w.open_length32(0);
  encode_chain(message.payloads, w);
  w.close(len);
  return std::move(w).take();
}

Bytes encode_header(const Header& header, std::uint8_t next_payload, std::uint32_t length) {
  Writer w;
  write_header(header, next_payload, w);
  w.u32(length);
  return std::move(w).take();
}

}  // namespace mobike::wire
