#include "ike/fragmentation.h"

#include <algorithm>

#include "ike/ike_sa.h"
#include "wire/codec.h"

namespace mobike::ike {

namespace {

// The SKF payload's generic header, Fragment Number and Total Fragments (§2.5).
constexpr std::size_t kSkfHeaderSize = 8;

}  // namespace

std::size_t ike_message_limit(std::size_t fragment_size, bool ipv6, bool non_esp_marker) {
  std::size_t overhead = (ipv6 ? 40 : 20) + 8 + (non_esp_marker ? 4 : 0);
  return fragment_size > overhead ? fragment_size - overhead : 0;
}

std::vector<Bytes> seal_fragments(const crypto::SkCipher& out, const wire::Header& header, std::uint8_t first_inner,
                                  ByteView inner, std::size_t limit, crypto::Random& random) {
  const std::size_t fixed = wire::kHeaderSize + kSkfHeaderSize;
  if (limit <= fixed) return {};
  // The most inner octets one fragment carries. sealed_size() only grows with the
  // plaintext (padding to the block, IV and ICV on top), so walking down from the room
  // left finds it within a block and the overhead.
  std::size_t chunk = std::min<std::size_t>(limit - fixed, 0xffff);
  while (chunk > 0 && fixed + out.sealed_size(chunk) > limit) --chunk;
  if (chunk == 0) return {};
  std::size_t count = std::max<std::size_t>(1, (inner.size() + chunk - 1) / chunk);
  if (count > 0xffff) return {};
  std::vector<Bytes> fragments;
  fragments.reserve(count);
  for (std::size_t i = 0; i < count; ++i) {
    ByteView piece = inner.subspan(i * chunk, std::min(chunk, inner.size() - i * chunk));
    std::size_t body = out.sealed_size(piece.size());
    Bytes msg = wire::encode_header(header, static_cast<std::uint8_t>(wire::PayloadType::kSkf),
                                    static_cast<std::uint32_t>(fixed + body));
    // Only fragment 1 names the first inner payload; the others carry 0 (§2.5).
    msg.push_back(i == 0 ? first_inner : 0);
    msg.push_back(0);
    auto len = static_cast<std::uint16_t>(kSkfHeaderSize + body);
    auto number = static_cast<std::uint16_t>(i + 1);
    auto total = static_cast<std::uint16_t>(count);
    for (std::uint16_t v : {len, number, total}) {
      msg.push_back(static_cast<std::uint8_t>(v >> 8));
      msg.push_back(static_cast<std::uint8_t>(v));
    }
    // Everything up to the IV, Fragment Number and Total Fragments included, is the
    // AAD (or MAC input): a fragment cannot be renumbered without failing its ICV.
    append(msg, out.seal(msg, piece, random));
    fragments.push_back(std::move(msg));
  }
  return fragments;
}

Expected<Bytes, OpenFailure> open_fragment(const IkeSa& sa, const wire::Message& message, ByteView datagram) {
  if (message.payloads.empty() || !sa.crypto.in) return unexpected(OpenFailure{OpenError::kNotProtected});
  auto* f = std::get_if<wire::SkfPayload>(&message.payloads.back().body);
  if (!f) return unexpected(OpenFailure{OpenError::kNotProtected});
  if (f->body.size() > datagram.size()) return unexpected(OpenFailure{OpenError::kMalformed});
  ByteView prefix = datagram.first(datagram.size() - f->body.size());
  auto plain = sa.crypto.in->open(prefix, f->body);
  if (!plain) return unexpected(OpenFailure{OpenError::kIntegrity});
  return std::move(*plain);
}

FragmentVerdict add_fragment(std::unique_ptr<Reassembly>& r, const IkeSa& sa, const wire::Message& m,
                             ByteView datagram) {
  // §2.6: authenticate before believing anything the fragment says, so that a forged
  // one can neither be stored nor restart (and so discard) a reassembly.
  auto plain = open_fragment(sa, m, datagram);
  if (!plain)
    return plain.error().error == OpenError::kMalformed ? FragmentVerdict::kMalformed : FragmentVerdict::kIntegrity;
  const auto& f = std::get<wire::SkfPayload>(m.payloads.back().body);
  if (f.total_fragments > kMaxFragments) return FragmentVerdict::kTooLarge;
  const auto& h = m.header;
  // Another message, or a retransmission re-fragmented into more pieces (§2.6: a larger
  // Total Fragments restarts; a smaller one is a stale fragment of an earlier try).
  if (r && (r->message_id != h.message_id || r->exchange != h.exchange || r->total < f.total_fragments)) r.reset();
  if (!r) {
    r = std::make_unique<Reassembly>();
    r->message_id = h.message_id;
    r->exchange = h.exchange;
    r->total = f.total_fragments;
    r->parts.resize(f.total_fragments);
  } else if (f.total_fragments < r->total) {
    return FragmentVerdict::kStale;
  }
  auto& slot = r->parts[f.fragment_number - 1];
  if (slot) return FragmentVerdict::kDuplicate;
  if (r->octets + plain->size() > kMaxReassembledOctets) return FragmentVerdict::kTooLarge;
  if (f.fragment_number == 1) {
    r->first_inner = f.first_inner;
    r->first_hash = request_hash(datagram);
  }
  r->octets += plain->size();
  slot = std::move(*plain);
  return ++r->received == r->total ? FragmentVerdict::kComplete : FragmentVerdict::kStored;
}

Expected<std::vector<wire::Payload>, OpenFailure> reassemble(const Reassembly& r) {
  Bytes all;
  all.reserve(r.octets);
  for (const auto& p : r.parts) {
    if (!p) return unexpected(OpenFailure{OpenError::kMalformed});  // a caller's bug: not complete
    append(all, *p);
  }
  auto inner = wire::decode_payloads(r.first_inner, all);
  if (!inner) {
    if (inner.error().kind == wire::DecodeErrorKind::kUnsupportedCriticalPayload)
      return unexpected(OpenFailure{OpenError::kUnsupportedCritical, inner.error().payload_type});
    return unexpected(OpenFailure{OpenError::kMalformed});
  }
  return std::move(*inner);
}

}  // namespace mobike::ike
