// Overwrites key material before its memory is freed, in a way the compiler may not
// drop as a dead store (OPENSSL_cleanse).
#pragma once

#include "common/bytes.h"

namespace mobike::crypto {

void wipe(Bytes& secret);

}  // namespace mobike::crypto
