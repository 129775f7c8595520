// Big-endian writer. Length fields are reserved where the layout puts them and patched
// once the contents are written, so no encoder computes a length by hand ahead of
// time (where it could disagree with what it then writes). Internal to wire/.
#pragma once

#include <cassert>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <utility>

#include "common/bytes.h"

namespace mobike::wire {

class Writer {
 public:
  Writer() = default;

  void u8(std::uint8_t v) { out_.push_back(v); }
  void u16(std::uint16_t v) { put_be(v); }
  void u32(std::uint32_t v) { put_be(v); }
  void u64(std::uint64_t v) { put_be(v); }
  void bytes(ByteView b) { append(out_, b); }
  void zeros(std::size_t n) { out_.insert(out_.end(), n, 0); }

  std::size_t size() const { return out_.size(); }

  // A 16-bit length field covering everything from `start` (an earlier size()) to the
  // point where it is closed.
  struct Length16 {
    std::size_t field;
    std::size_t start;
  };
  Length16 open_length16(std::size_t start) {
    Length16 l{out_.size(), start};
    u16(0);
    return l;
  }
  // Returns false if the covered region does not fit the field: the encoder's caller
  // built a payload no IKE message can carry.
  bool close(Length16 l) {
    std::size_t n = out_.size() - l.start;
    bool fits = n <= std::numeric_limits<std::uint16_t>::max();
    assert(fits && "payload longer than a 16-bit length field");
    patch_be(l.field, static_cast<std::uint16_t>(n));
    return fits;
  }

  struct Length32 {
    std::size_t field;
    std::size_t start;
  };
  Length32 open_length32(std::size_t start) {
    Length32 l{out_.size(), start};
    u32(0);
    return l;
  }
  void close(Length32 l) { patch_be(l.field, static_cast<std::uint32_t>(out_.size() - l.start)); }

  // Overwrites one octet already written (a Next Payload or "last" field whose value is
  // known only once the following item is).
  void patch_u8(std::size_t at, std::uint8_t v) {
    assert(at < out_.size());
    out_[at] = v;
  }

  Bytes take() && { return std::move(out_); }
  const Bytes& data() const { return out_; }

 private:
  template <class T>
  void put_be(T v) {
    for (std::size_t i = sizeof(T); i-- > 0;)
      out_.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
  }
  template <class T>
  void patch_be(std::size_t at, T v) {
    assert(at + sizeof(T) <= out_.size());
    for (std::size_t i = 0; i < sizeof(T); ++i)
      out_[at + i] = static_cast<std::uint8_t>(v >> (8 * (sizeof(T) - 1 - i)));
  }

  Bytes out_;
};

}  // namespace mobike::wire
