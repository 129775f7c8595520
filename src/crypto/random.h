// Randomness is injected so that the protocol core stays deterministic under test.
#pragma once

#include <cstdint>
#include <span>

#include "common/bytes.h"

namespace mobike::crypto {

class Random {
 public:
  virtual ~Random() = default;
  virtual void fill(std::span<std::uint8_t> out) = 0;
  Bytes bytes(std::size_t n) {
    Bytes b(n);
    fill(b);
    return b;
  }
  std::uint64_t u64() {
    std::uint8_t b[8];
    fill(b);
    std::uint64_t v = 0;
    for (auto x : b) v = v << 8 | x;
    return v;
  }
};

// OpenSSL's CSPRNG (RAND_bytes).
class SystemRandom final : public Random {
 public:
  void fill(std::span<std::uint8_t> out) override;
};

// Deterministic stream for tests and simulations (not for keys in production).
class SeededRandom final : public Random {
 public:
  explicit SeededRandom(std::uint64_t seed) : state_(seed ? seed : 0x9e3779b97f4a7c15ull) {}
  void fill(std::span<std::uint8_t> out) override;

 private:
  std::uint64_t state_;
};

}  // namespace mobike::crypto
