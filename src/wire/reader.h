// Bounds-checked big-endian reader over untrusted bytes. Every read either succeeds
// completely or fails and leaves the reader where it was, so no codec can run past the
// end of its input by forgetting a length check: the only way to reach bytes is
// through a call that checks first. Internal to wire/.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>

#include "common/bytes.h"

namespace mobike::wire {

class Reader {
 public:
  explicit Reader(ByteView data) : data_(data) {}

  std::size_t remaining() const { return data_.size() - pos_; }
  bool empty() const { return remaining() == 0; }
  std::size_t offset() const { return pos_; }

  [[nodiscard]] bool read_u8(std::uint8_t& out) { return read_be(out); }
  [[nodiscard]] bool read_u16(std::uint16_t& out) { return read_be(out); }
  [[nodiscard]] bool read_u32(std::uint32_t& out) { return read_be(out); }
  [[nodiscard]] bool read_u64(std::uint64_t& out) { return read_be(out); }

  // A view into the input (valid as long as the input is); no copy.
  [[nodiscard]] bool read_view(std::size_t n, ByteView& out) {
    if (n > remaining()) return false;
    out = data_.subspan(pos_, n);
    pos_ += n;
    return true;
  }

  [[nodiscard]] bool read_bytes(std::size_t n, Bytes& out) {
    ByteView v;
    if (!read_view(n, v)) return false;
    out.assign(v.begin(), v.end());
    return true;
  }

  [[nodiscard]] bool skip(std::size_t n) {
    if (n > remaining()) return false;
    pos_ += n;
    return true;
  }

  // Consumes the next n octets and returns a reader confined to them: a length field
  // bounds everything nested inside it, so a nested structure cannot reach its
  // neighbours even if its own fields lie.
  [[nodiscard]] std::optional<Reader> sub_reader(std::size_t n) {
    ByteView v;
    if (!read_view(n, v)) return std::nullopt;
    return Reader(v);
  }

  // Everything left; the reader is empty afterwards.
  ByteView read_rest() {
    ByteView v = data_.subspan(pos_);
    pos_ = data_.size();
    return v;
  }
  Bytes read_rest_bytes() {
    ByteView v = read_rest();
    return Bytes(v.begin(), v.end());
  }

  // What is left, without consuming it.
  ByteView peek_rest() const { return data_.subspan(pos_); }

 private:
  template <class T>
  bool read_be(T& out) {
    if (sizeof(T) > remaining()) return false;
    // For the 8- and 16-bit widths the shift happens in int after promotion, so it
    // is well defined at every width.
    T v = 0;
    for (std::size_t i = 0; i < sizeof(T); ++i)
      v = static_cast<T>((v << 8) | data_[pos_ + i]);
    pos_ += sizeof(T);
    out = v;
    return true;
  }

  ByteView data_;
  std::size_t pos_ = 0;
};

}  // namespace mobike::wire
