// RFC 7296 §2.23 for ESP: the kernel reports a Child SA's ESP from a new NAT mapping.
#include <cstdio>

#include "ike/child_sa.h"
#include "ike/engine.h"

namespace mobike::ike {

namespace {

std::string spi_text(std::uint32_t spi) {
  char buf[9];
  std::snprintf(buf, sizeof buf, "%08x", spi);
  return buf;
}

}  // namespace

bool Engine::on_esp_mapping(std::uint32_t spi_in, const Endpoint& from, TimePoint now) {
  now_ = now;
  IkeSa* sa = nullptr;
  for (auto& [id, candidate] : by_id_) {
    for (const auto& c : candidate->children)
      if (c.spi_in == spi_in) sa = candidate;
    if (sa) break;
  }
  if (!sa || sa->state != IkeState::kEstablished || sa->remote == from) return false;
  if (sa->original_initiator || !sa->nat_remote || sa->peer_mobike) {
    stats_.esp_mappings_ignored++;
    log(LogLevel::kDebug, sa,
        "ESP of Child SA " + spi_text(spi_in) + " came from " + from.to_string() + ": not followed (" +
            (sa->original_initiator ? "we initiated" : sa->peer_mobike ? "MOBIKE peer" : "no NAT at the peer") + ")");
    return false;
  }
  stats_.esp_mappings_followed++;
  const Endpoint was = sa->remote;
  sa->remote = from;
  for (const auto& c : sa->children) dataplane(dataplane_op(DataplaneOp::Kind::kUpdateAddresses, *sa, c));
  event(EventKind::kAddressesUpdated, *sa, 0,
        sa->local.to_string() + " <-> " + from.to_string() + " (NAT at peer; ESP came from there, was " +
            was.to_string() + ")");
  return true;
}

}  // namespace mobike::ike
