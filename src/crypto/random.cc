#include "crypto/random.h"

#include <openssl/rand.h>

#include <algorithm>
#include <climits>

#include "crypto/openssl_util.h"

namespace mobike::crypto {

void SystemRandom::fill(std::span<std::uint8_t> out) {
  // Nonces, SPIs and IVs come from here: an unseeded or failing CSPRNG must stop the
  // daemon rather than hand out predictable values.
  while (!out.empty()) {
    const std::size_t n = std::min<std::size_t>(out.size(), INT_MAX);
    if (RAND_bytes(out.data(), static_cast<int>(n)) != 1) detail::fatal("RAND_bytes");
    out = out.subspan(n);
  }
}

void SeededRandom::fill(std::span<std::uint8_t> out) {
  // splitmix64: tiny, fast and good enough to give simulations varied but repeatable
  // SPIs and nonces; never used where secrecy matters.
  std::size_t i = 0;
  while (i < out.size()) {
    state_ += 0x9e3779b97f4a7c15ull;
    std::uint64_t z = state_;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    for (int b = 0; b < 8 && i < out.size(); ++b, ++i) {
      out[i] = static_cast<std::uint8_t>(z >> (8 * b));
    }
  }
}

}  // namespace mobike::crypto
