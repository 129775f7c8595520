#include "mobility/sa_state_codec.h"

#include "wire/reader.h"
#include "wire/writer.h"

namespace mobike::mobility {

namespace {

constexpr std::uint8_t kVersion = 1;
constexpr std::size_t kMaxAddresses = 64;  // a peer's list is far shorter; bounds the reader

void put_address(wire::Writer& w, const IpAddress& a) {
  w.u8(a.is_v4() ? 4 : 6);
  w.bytes(a.bytes());
}

void put_endpoint(wire::Writer& w, const Endpoint& e) {
  put_address(w, e.address);
  w.u16(e.port);
}

void put_addresses(wire::Writer& w, const std::vector<IpAddress>& v) {
  w.u16(static_cast<std::uint16_t>(v.size()));
  for (const auto& a : v) put_address(w, a);
}

bool get_address(wire::Reader& r, IpAddress& out) {
  std::uint8_t family = 0;
  ByteView b;
  if (!r.read_u8(family) || (family != 4 && family != 6) || !r.read_view(family == 4 ? 4 : 16, b)) return false;
  auto a = IpAddress::from_bytes(b);
  if (!a) return false;
  out = *a;
  return true;
}

bool get_endpoint(wire::Reader& r, Endpoint& out) { return get_address(r, out.address) && r.read_u16(out.port); }

bool get_addresses(wire::Reader& r, std::vector<IpAddress>& out) {
  std::uint16_t n = 0;
  if (!r.read_u16(n) || n > kMaxAddresses) return false;
  out.resize(n);
  for (auto& a : out)
    if (!get_address(r, a)) return false;
  return true;
}

enum Flag : std::uint8_t {
  kAnnouncedOnce = 1,
  kPeerSwitch = 2,
  kListDue = 4,
  kUpdateDue = 8,
  kRrDue = 16,
};

}  // namespace

std::string busy(const SaState& st) {
  if (st.probing || st.deciding) return "MOBIKE is probing paths";
  if (st.rr_pending) return "a return-routability check is pending";
  if (st.switch_state != SaState::Switch::kIdle) return "a switch is under way";
  return {};
}

Bytes encode(const SaState& st) {
  wire::Writer w;
  w.u8(kVersion);
  std::uint8_t flags = 0;
  if (st.announced_once) flags |= kAnnouncedOnce;
  if (st.peer_switch) flags |= kPeerSwitch;
  if (st.list_due) flags |= kListDue;
  if (st.update_due) flags |= kUpdateDue;
  if (st.rr_due) flags |= kRrDue;
  w.u8(flags);
  put_addresses(w, st.peer_addresses);
  put_addresses(w, st.announced);
  put_endpoint(w, st.committed.local);
  put_endpoint(w, st.committed.remote);
  w.u64(st.updates);
  return std::move(w).take();
}

Expected<void, std::string> decode(ByteView in, SaState& st) {
  wire::Reader r(in);
  std::uint8_t version = 0, flags = 0;
  if (!r.read_u8(version)) return unexpected(std::string("empty MOBIKE state"));
  if (version != kVersion) return unexpected("MOBIKE state of unknown version " + std::to_string(version));
  if (!r.read_u8(flags) || !get_addresses(r, st.peer_addresses) || !get_addresses(r, st.announced) ||
      !get_endpoint(r, st.committed.local) || !get_endpoint(r, st.committed.remote) || !r.read_u64(st.updates))
    return unexpected(std::string("truncated or malformed MOBIKE state"));
  if (!r.empty()) return unexpected(std::string("trailing octets after the MOBIKE state"));
  st.announced_once = flags & kAnnouncedOnce;
  st.peer_switch = flags & kPeerSwitch;
  st.list_due = flags & kListDue;
  st.update_due = flags & kUpdateDue;
  st.rr_due = flags & kRrDue;
  return {};
}

}  // namespace mobike::mobility
