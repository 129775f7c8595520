// IKE message fragmentation (RFC 7383): a protected message too large for the path
// leaves as Encrypted Fragment (SKF) messages, each sealed on its own, and the peer's
// fragments are authenticated one by one and put back together here before the engine
// processes the message as if it had arrived whole.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "common/bytes.h"
#include "common/expected.h"
#include "crypto/random.h"
#include "ike/protection.h"
#include "wire/payloads.h"

namespace mobike::ike {

// What one reassembly may hold: RFC 7383 §2.6 lets the receiver bound it. 32 fragments
// of even a 576-octet IPv4 path carry ~15 kB, several certificate chains; the octet
// bound is the largest message UDP could have carried unfragmented.
inline constexpr std::uint16_t kMaxFragments = 32;
inline constexpr std::size_t kMaxReassembledOctets = 65535;

// The largest IKE message (header to the end of SK/SKF) whose IP packet fits in
// `fragment_size` octets (RFC 7383 §2.5.1): less the IP header (20 octets for IPv4, 40
// for IPv6), UDP's 8 and, on the NAT-T port, the 4-octet non-ESP marker. 0 if nothing fits.
std::size_t ike_message_limit(std::size_t fragment_size, bool ipv6, bool non_esp_marker);

// `inner` (encoded inner payloads whose first type is `first_inner`) sealed as SKF
// messages of at most `limit` octets each, with `header`'s SPIs, exchange, flags and
// Message ID (§2.5). Empty if `limit` leaves no room for content or the message would
// need more than 65535 fragments.
std::vector<Bytes> seal_fragments(const crypto::SkCipher& out, const wire::Header& header, std::uint8_t first_inner,
                                  ByteView inner, std::size_t limit, crypto::Random& random);

// Verifies and decrypts one SKF message of an established SA: its piece of the inner
// payload octets (the ICV covers the IKE header and the SKF header, §2.5).
Expected<Bytes, OpenFailure> open_fragment(const IkeSa& sa, const wire::Message& message, ByteView datagram);

// One protected message being put together: the engine keeps one per SA and
// direction, since the window of either is one message (RFC 7296 §2.3).
struct Reassembly {
  std::uint32_t message_id = 0;
  wire::ExchangeType exchange{};
  std::uint16_t total = 0;
  std::uint16_t received = 0;
  std::size_t octets = 0;
  std::uint8_t first_inner = 0;
  // request_hash() of fragment 1 as received: a retransmission of the request is
  // recognised by its fragment 1 (RFC 7383 §2.6.1), bit-identical as every retransmission.
  std::uint64_t first_hash = 0;
  std::vector<std::optional<Bytes>> parts;  // decrypted, by Fragment Number - 1
};

enum class FragmentVerdict : std::uint8_t {
  kStored,      // authentic and kept; more are missing
  kComplete,    // authentic, and the message is whole: take it with reassemble()
  kDuplicate,   // a Fragment Number already held
  kStale,       // fewer Total Fragments than the reassembly under way (§2.6)
  kTooLarge,    // beyond kMaxFragments or kMaxReassembledOctets
  kIntegrity,   // failed its ICV (or there are no keys): never stored
  kMalformed,   // authentic but its padding or layout is wrong
};

// Authenticates the SKF message `m` (received as `datagram`) of `sa` and files it in
// `r`, which is created, or restarted for another message or a larger Total Fragments
// (§2.6: the sender re-fragmented its retransmission), as needed.
FragmentVerdict add_fragment(std::unique_ptr<Reassembly>& r, const IkeSa& sa, const wire::Message& m,
                             ByteView datagram);

// The inner payloads of a complete reassembly, decoded as those of an SK payload would
// be (the failures open_message() reports for an SK payload).
Expected<std::vector<wire::Payload>, OpenFailure> reassemble(const Reassembly& r);

}  // namespace mobike::ike
