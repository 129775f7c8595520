// Overwrites key material before its memory is freed, in a way the compiler may not
// drop as a dead store (OPENSSL_cleanse).
#pragma once

#include <span>

#include "common/bytes.h"

namespace mobike::crypto {

void wipe(Bytes& secret);
void wipe(std::span<std::uint8_t> secret);

}  // namespace mobike::crypto
