// The ESP suites the ESP benchmarks (esp_bench, esp_memory) run: IANA transform IDs,
// key sizes and key material lengths.
#pragma once

#include <cstddef>
#include <cstdint>

namespace mobike::bench {

struct Suite {
  const char* name;
  std::uint16_t encr, bits, integ;
  std::size_t encr_len, integ_len;
};

inline constexpr Suite kSuites[] = {
    {"aes128gcm16", 20, 128, 0, 20, 0},    {"aes256gcm16", 20, 256, 0, 36, 0},
    {"chacha20poly1305", 28, 256, 0, 36, 0}, {"aes128-sha256", 12, 128, 12, 16, 32},
    {"aes256-sha256", 12, 256, 12, 32, 32}, {"aes256-sha512", 12, 256, 14, 32, 64},
};

}  // namespace mobike::bench
