// IKEv2 message codec (RFC 7296 §3). Decoders validate every length and count and
// return a typed error naming what the engine should answer; encoders compute every
// length and Next Payload field themselves.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/bytes.h"
#include "common/expected.h"
#include "wire/payloads.h"

namespace mobike::wire {

enum class DecodeErrorKind : std::uint8_t {
  kTruncated,                   // shorter than a header or a length says -> drop
  kInvalidSyntax,               // bad length/count/value -> INVALID_SYNTAX (if protected)
  kInvalidMajorVersion,         // major version > 2 -> INVALID_MAJOR_VERSION
  kUnsupportedCriticalPayload,  // unknown payload with C bit -> UNSUPPORTED_CRITICAL_PAYLOAD
};

struct DecodeError {
  DecodeErrorKind kind = DecodeErrorKind::kInvalidSyntax;
  std::uint8_t payload_type = 0;  // for kUnsupportedCriticalPayload: the unknown type
  std::string detail;             // for logs: which field was wrong
};

template <class T>
using DecodeResult = Expected<T, DecodeError>;

// Only the fixed header (for demultiplexing before any further work). Checks the
// length field against the datagram size.
DecodeResult<Header> decode_header(ByteView datagram);

// The whole message: header and the unprotected payload chain. An SK payload, if
// present, must be the last one and is returned still protected (SkPayload).
DecodeResult<Message> decode_message(ByteView datagram);

// A payload chain starting with `first_type` filling `bytes` exactly (e.g. the
// decrypted contents of an SK payload).
DecodeResult<std::vector<Payload>> decode_payloads(std::uint8_t first_type, ByteView bytes);

// Encodes payloads as a chain; returns the bytes and stores the type of the first
// payload in *first_type (kNone for an empty chain). An SkPayload must be last.
Bytes encode_payloads(const std::vector<Payload>& payloads, std::uint8_t* first_type);

// Encodes a whole message; header.next_payload and header.length are computed.
Bytes encode_message(const Message& message);

// Encodes just the 28-octet header with the given total length and first payload.
Bytes encode_header(const Header& header, std::uint8_t next_payload, std::uint32_t length);

}  // namespace mobike::wire
