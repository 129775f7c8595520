// Byte buffers and helpers shared by every layer.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace mobike {

using Bytes = std::vector<std::uint8_t>;
using ByteView = std::span<const std::uint8_t>;

inline Bytes to_bytes(std::string_view s) { return Bytes(s.begin(), s.end()); }
inline ByteView as_view(const Bytes& b) { return ByteView(b.data(), b.size()); }

std::string to_hex(ByteView b);
// Accepts whitespace and ':' between digit pairs; returns empty on bad input.
Bytes from_hex(std::string_view hex);

// Constant-time comparison for ICVs, AUTH values and cookies.
bool equal_ct(ByteView a, ByteView b);

inline void append(Bytes& out, ByteView b) { out.insert(out.end(), b.begin(), b.end()); }

}  // namespace mobike
