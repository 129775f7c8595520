#include "ike/ike_sa.h"

#include "ike/fragmentation.h"
#include "ike/ike_auth.h"
#include "ike/mobility.h"
#include "ike/task.h"
#include "crypto/wipe.h"

namespace mobike::ike {

const IkeSaExtras& IkeSa::extras() const {
  static const IkeSaExtras kNone;
  return extras_ ? *extras_ : kNone;
}

IkeSaExtras& IkeSa::edit_extras() {
  if (!extras_) extras_ = std::make_unique<IkeSaExtras>();
  return *extras_;
}

IkeSaSetup::~IkeSaSetup() {
  for (Bytes* b : {&nonce_i, &nonce_r, &sk_pi, &sk_pr}) crypto::wipe(*b);
}

IkeSaSetup& IkeSa::setup() {
  if (!setup_) setup_ = std::make_unique<IkeSaSetup>();
  return *setup_;
}

const IkeSaSetup& IkeSa::setup() const {
  static const IkeSaSetup kNone;
  return setup_ ? *setup_ : kNone;
}

void forget_auth_material(IkeSa& sa) { sa.setup_.reset(); }

std::uint64_t request_hash(ByteView request) {
  // FNV-1a: fixed by its definition, unlike std::hash, so equal on every node.
  std::uint64_t h = 0xcbf29ce484222325ull;
  for (std::uint8_t b : request) h = (h ^ b) * 0x100000001b3ull;
  return h;
}

IkeSa::IkeSa() = default;
IkeSa::~IkeSa() = default;

std::string_view to_string(IkeState s) {
  switch (s) {
    case IkeState::kConnecting: return "CONNECTING";
    case IkeState::kEstablished: return "ESTABLISHED";
    case IkeState::kRekeying: return "REKEYING";
    case IkeState::kDeleting: return "DELETING";
    case IkeState::kDead: return "DESTROYING";
  }
  return "UNKNOWN";
}

std::string_view to_string(ChildState s) {
  switch (s) {
    case ChildState::kCreating: return "CREATING";
    case ChildState::kInstalled: return "INSTALLED";
    case ChildState::kRekeying: return "REKEYING";
    case ChildState::kDeleting: return "DELETING";
  }
  return "UNKNOWN";
}

ChildSa* IkeSa::find_child_by_inbound(std::uint32_t spi) {
  for (auto& c : children)
    if (c.spi_in == spi) return &c;
  return nullptr;
}

ChildSa* IkeSa::find_child_by_outbound(std::uint32_t spi) {
  for (auto& c : children)
    if (c.spi_out == spi) return &c;
  return nullptr;
}

ChildSa* IkeSa::find_child(std::uint64_t id) {
  for (auto& c : children)
    if (c.id == id) return &c;
  return nullptr;
}

}  // namespace mobike::ike
