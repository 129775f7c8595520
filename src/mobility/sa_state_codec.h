// MOBIKE's per-SA state as octets, for cluster moves (ike::Mobility::export_state):
// what the node that continues the SA needs. Versioned; the reader is strict.
#pragma once

#include <string>

#include "common/bytes.h"
#include "common/expected.h"
#include "mobility/sa_state.h"

namespace mobike::mobility {

// Why `st` cannot move now (an exchange of MOBIKE is under way), or empty.
std::string busy(const SaState& st);
// Only the lasting part: address lists, the committed path, counts, switch support,
// and what was due at the next timer.
Bytes encode(const SaState& st);
Expected<void, std::string> decode(ByteView in, SaState& st);

}  // namespace mobike::mobility
