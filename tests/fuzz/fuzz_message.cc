// libFuzzer target for the IKEv2 message codec. Properties checked on every input:
// nothing crashes or reads out of bounds (ASan/UBSan), and whatever decodes re-encodes
// into octets that decode to the same value (so encoder and decoder agree on every
// layout the decoder accepts).
#include <cstdint>
#include <cstdlib>
#include <cstdio>

#include "wire/codec.h"

namespace {

using namespace mobike;
using namespace mobike::wire;

[[noreturn]] void fail(const char* what) {
  std::fprintf(stderr, "fuzz_message: %s\n", what);
  std::abort();
}

void check_message(ByteView in) {
  auto header = decode_header(in);
  auto m = decode_message(in);
  if (!m) {
    // Only the header decides kTruncated and kInvalidMajorVersion.
    if (header && m.error().kind != DecodeErrorKind::kInvalidSyntax &&
        m.error().kind != DecodeErrorKind::kUnsupportedCriticalPayload)
      fail("payload error of a header-only kind");
    return;
  }
  if (!header) fail("message decodes but its header does not");
  if (!(*header == m->header)) fail("decode_header and decode_message disagree");
  if (m->header.length != in.size()) fail("accepted a length field that is not the size");

  Bytes again = encode_message(*m);
  auto m2 = decode_message(again);
  if (!m2) fail("re-encoded message does not decode");
  if (!(*m2 == *m)) fail("re-encoded message decodes differently");
  if (!(encode_message(*m2) == again)) fail("encoding is not stable");
}

void check_chain(ByteView in) {
  if (in.empty()) return;
  auto p = decode_payloads(in[0], in.subspan(1));
  if (!p) return;
  std::uint8_t first = 0;
  Bytes again = encode_payloads(*p, &first);
  auto p2 = decode_payloads(first, again);
  if (!p2) fail("re-encoded chain does not decode");
  if (!(*p2 == *p)) fail("re-encoded chain decodes differently");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  ByteView in(data, size);
  check_message(in);
  check_chain(in);
  return 0;
}
