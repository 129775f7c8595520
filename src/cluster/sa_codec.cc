#include "cluster/sa_codec.h"

#include <limits>

#include "wire/reader.h"
#include "wire/writer.h"

namespace mobike::cluster {

namespace {

using ike::ChildSaSnapshot;
using ike::Duration;
using ike::IkeSaSnapshot;

// Bounds that no real SA comes near; they keep a corrupt length from allocating much.
constexpr std::size_t kMaxField = 4096;            // keys, identities, NAT-D hash, SPIs
constexpr std::size_t kMaxResponse = 1u << 17;     // one datagram of a cached IKE response
constexpr std::size_t kMaxList = 256;              // transforms, selectors, Child SAs
constexpr std::size_t kMaxWindowWords = (1u << 20) / 64;  // esp::ReplayWindow::kMaxSize

class Out {
 public:
  void u8(std::uint8_t v) { w_.u8(v); }
  void u16(std::uint16_t v) { w_.u16(v); }
  void u32(std::uint32_t v) { w_.u32(v); }
  void u64(std::uint64_t v) { w_.u64(v); }
  void flag(bool b) { w_.u8(b ? 1 : 0); }
  void bytes(ByteView b) {
    w_.u32(static_cast<std::uint32_t>(b.size()));
    w_.bytes(b);
  }
  void string(const std::string& s) { bytes(ByteView(reinterpret_cast<const std::uint8_t*>(s.data()), s.size())); }
  void duration(Duration d) { w_.u64(static_cast<std::uint64_t>(d.count())); }
  void opt_duration(const std::optional<Duration>& d) {
    flag(d.has_value());
    if (d) duration(*d);
  }
  void address(const IpAddress& a) {
    w_.u8(a.is_v4() ? 4 : 6);
    w_.bytes(a.bytes());
  }
  void endpoint(const Endpoint& e) {
    address(e.address);
    w_.u16(e.port);
  }
  void proposal(const wire::Proposal& p) {
    u8(p.number);
    u8(static_cast<std::uint8_t>(p.protocol));
    bytes(p.spi);
    u16(static_cast<std::uint16_t>(p.transforms.size()));
    for (const auto& t : p.transforms) {
      u8(static_cast<std::uint8_t>(t.type));
      u16(t.id);
      flag(t.key_length.has_value());
      if (t.key_length) u16(*t.key_length);
    }
  }
  void selectors(const std::vector<wire::TrafficSelector>& v) {
    u16(static_cast<std::uint16_t>(v.size()));
    for (const auto& t : v) {
      u8(static_cast<std::uint8_t>(t.ts_type));
      u8(t.ip_protocol);
      u16(t.start_port);
      u16(t.end_port);
      address(t.start_address);
      address(t.end_address);
    }
  }
  Bytes take() && { return std::move(w_).take(); }

 private:
  wire::Writer w_;
};

class In {
 public:
  explicit In(ByteView b) : r_(b) {}
  bool ok() const { return ok_; }
  bool at_end() const { return r_.empty(); }

  std::uint8_t u8() { return read(&wire::Reader::read_u8); }
  std::uint16_t u16() { return read(&wire::Reader::read_u16); }
  std::uint32_t u32() { return read(&wire::Reader::read_u32); }
  std::uint64_t u64() { return read(&wire::Reader::read_u64); }
  bool flag() {
    std::uint8_t v = u8();
    if (v > 1) ok_ = false;
    return v == 1;
  }
  Bytes bytes(std::size_t max = kMaxField) {
    Bytes out;
    std::uint32_t n = u32();
    ok_ = ok_ && n <= max && r_.read_bytes(n, out);
    return out;
  }
  std::string string() {
    Bytes b = bytes();
    return std::string(b.begin(), b.end());
  }
  Duration duration() { return Duration(static_cast<Duration::rep>(u64())); }
  std::optional<Duration> opt_duration() {
    if (!flag()) return std::nullopt;
    return duration();
  }
  std::size_t count(std::size_t max = kMaxList) {
    std::uint16_t n = u16();
    if (n > max) ok_ = false;
    return ok_ ? n : 0;
  }
  IpAddress address() {
    std::uint8_t family = u8();
    ByteView b;
    if (!ok_ || (family != 4 && family != 6) || !r_.read_view(family == 4 ? 4 : 16, b)) {
      ok_ = false;
      return {};
    }
    auto a = IpAddress::from_bytes(b);
    if (!a) ok_ = false;
    return a.value_or(IpAddress{});
  }
  Endpoint endpoint() {
    Endpoint e;
    e.address = address();
    e.port = u16();
    return e;
  }
  wire::Proposal proposal() {
    wire::Proposal p;
    p.number = u8();
    p.protocol = static_cast<wire::ProtocolId>(u8());
    p.spi = bytes();
    p.transforms.resize(count());
    for (auto& t : p.transforms) {
      t.type = static_cast<wire::TransformType>(u8());
      t.id = u16();
      if (flag()) t.key_length = u16();
    }
    return p;
  }
  std::vector<wire::TrafficSelector> selectors() {
    std::vector<wire::TrafficSelector> v(count());
    for (auto& t : v) {
      t.ts_type = static_cast<wire::TsType>(u8());
      t.ip_protocol = u8();
      t.start_port = u16();
      t.end_port = u16();
      t.start_address = address();
      t.end_address = address();
    }
    return v;
  }

 private:
  // Reads one integer unless an earlier read failed; 0 once anything failed.
  template <class T>
  T read(bool (wire::Reader::*f)(T&)) {
    T v = 0;
    ok_ = ok_ && (r_.*f)(v);
    return v;
  }

  wire::Reader r_;
  bool ok_ = true;
};

}  // namespace

Bytes encode_snapshot(const IkeSaSnapshot& s) {
  Out o;
  o.u8(kSnapshotVersion);
  o.string(s.connection);
  o.flag(s.initiator);
  o.flag(s.original_initiator);
  o.u64(s.spi_i);
  o.u64(s.spi_r);
  o.endpoint(s.local);
  o.endpoint(s.remote);
  o.flag(s.nat_local);
  o.flag(s.nat_remote);
  o.flag(s.peer_mobike);
  o.flag(s.peer_nat_d);
  o.flag(s.peer_mid_sync);
  o.flag(s.peer_replay_sync);
  o.flag(s.mid_sync);
  o.flag(s.replay_sync);
  o.flag(s.peer_fragmentation);
  o.flag(s.fragmentation);
  o.bytes(s.nat_d_dest_seen);
  o.flag(s.remote_id.has_value());
  if (s.remote_id) {
    o.u8(static_cast<std::uint8_t>(s.remote_id->type));
    o.bytes(s.remote_id->data);
  }
  o.proposal(s.ike_proposal);
  for (const Bytes* k : {&s.sk_d, &s.sk_ai, &s.sk_ar, &s.sk_ei, &s.sk_er}) o.bytes(*k);
  o.u32(s.next_request_mid);
  o.u32(s.expected_peer_mid);
  o.u16(static_cast<std::uint16_t>(s.last_response.size()));
  for (const auto& d : s.last_response) o.bytes(d);
  o.endpoint(s.last_response_to);
  o.flag(s.last_response_redirected);
  o.u64(s.last_request_hash);
  o.duration(s.age);
  o.duration(s.since_inbound);
  o.opt_duration(s.rekey_in);
  o.opt_duration(s.expire_in);
  o.bytes(s.mobility);
  o.u16(static_cast<std::uint16_t>(s.children.size()));
  for (const auto& c : s.children) {
    o.string(c.config_name);
    o.u32(c.spi_in);
    o.u32(c.spi_out);
    o.proposal(c.proposal);
    o.selectors(c.local_ts);
    o.selectors(c.remote_ts);
    o.u16(c.keys.encr_id);
    o.u16(c.keys.encr_key_bits);
    o.u16(c.keys.integ_id);
    o.flag(c.keys.esn);
    for (const Bytes* k : {&c.keys.encr_in, &c.keys.integ_in, &c.keys.encr_out, &c.keys.integ_out}) o.bytes(*k);
    o.duration(c.age);
    o.opt_duration(c.rekey_in);
    o.opt_duration(c.expire_in);
    o.flag(c.esp.has_value());
    if (c.esp) {
      const auto& e = *c.esp;
      o.u64(e.out_seq);
      o.u64(e.out_iv_mask);
      o.u64(e.in_top);
      o.u16(static_cast<std::uint16_t>(e.in_received.size()));
      for (auto w : e.in_received) o.u64(w);
      for (auto v : {e.bytes_in, e.bytes_out, e.packets_in, e.packets_out}) o.u64(v);
    }
  }
  // Version 5, at the end so that older versions differ only by its absence.
  o.string(s.remote_eap_id);
  o.u16(static_cast<std::uint16_t>(s.remote_vips.size()));
  for (const auto& a : s.remote_vips) o.address(a);
  return std::move(o).take();
}

Expected<IkeSaSnapshot, std::string> decode_snapshot(ByteView data) {
  In in(data);
  const std::uint8_t version = in.u8();
  if (!in.ok()) return unexpected(std::string("empty SA state"));
  if (version < 1 || version > kSnapshotVersion)
    return unexpected("SA state of version " + std::to_string(version) + "; this node reads versions 1 to " +
                      std::to_string(kSnapshotVersion));
  IkeSaSnapshot s;
  s.connection = in.string();
  s.initiator = in.flag();
  s.original_initiator = in.flag();
  s.spi_i = in.u64();
  s.spi_r = in.u64();
  s.local = in.endpoint();
  s.remote = in.endpoint();
  s.nat_local = in.flag();
  s.nat_remote = in.flag();
  s.peer_mobike = in.flag();
  s.peer_nat_d = in.flag();
  if (version >= 2) {
    s.peer_mid_sync = in.flag();
    s.peer_replay_sync = in.flag();
  }
  if (version >= 3) {
    s.mid_sync = in.flag();
    s.replay_sync = in.flag();
  }
  if (version >= 4) {
    s.peer_fragmentation = in.flag();
    s.fragmentation = in.flag();
  }
  s.nat_d_dest_seen = in.bytes();
  if (in.flag()) {
    ike::Identity id;
    id.type = static_cast<wire::IdType>(in.u8());
    id.data = in.bytes();
    s.remote_id = std::move(id);
  }
  s.ike_proposal = in.proposal();
  for (Bytes* k : {&s.sk_d, &s.sk_ai, &s.sk_ar, &s.sk_ei, &s.sk_er}) *k = in.bytes();
  s.next_request_mid = in.u32();
  s.expected_peer_mid = in.u32();
  if (version >= 4) {
    s.last_response.resize(in.count());
    for (auto& d : s.last_response) d = in.bytes(kMaxResponse);
  } else if (Bytes one = in.bytes(kMaxResponse); !one.empty()) {
    s.last_response.push_back(std::move(one));
  }
  s.last_response_to = in.endpoint();
  s.last_response_redirected = in.flag();
  s.last_request_hash = in.u64();
  s.age = in.duration();
  s.since_inbound = in.duration();
  s.rekey_in = in.opt_duration();
  s.expire_in = in.opt_duration();
  s.mobility = in.bytes();
  s.children.resize(in.count());
  for (auto& c : s.children) {
    c.config_name = in.string();
    c.spi_in = in.u32();
    c.spi_out = in.u32();
    c.proposal = in.proposal();
    c.local_ts = in.selectors();
    c.remote_ts = in.selectors();
    c.keys.encr_id = in.u16();
    c.keys.encr_key_bits = in.u16();
    c.keys.integ_id = in.u16();
    c.keys.esn = in.flag();
    for (Bytes* k : {&c.keys.encr_in, &c.keys.integ_in, &c.keys.encr_out, &c.keys.integ_out}) *k = in.bytes();
    c.age = in.duration();
    c.rekey_in = in.opt_duration();
    c.expire_in = in.opt_duration();
    if (in.flag()) {
      ike::EspState e;
      e.out_seq = in.u64();
      e.out_iv_mask = in.u64();
      e.in_top = in.u64();
      e.in_received.resize(in.count(kMaxWindowWords));
      for (auto& w : e.in_received) w = in.u64();
      for (auto* v : {&e.bytes_in, &e.bytes_out, &e.packets_in, &e.packets_out}) *v = in.u64();
      c.esp = std::move(e);
    }
    if (!in.ok()) break;
  }
  if (version >= 5 && in.ok()) {
    s.remote_eap_id = in.string();
    s.remote_vips.resize(in.count());
    for (auto& a : s.remote_vips) a = in.address();
  }
  if (!in.ok()) return unexpected(std::string("truncated or malformed SA state"));
  if (!in.at_end()) return unexpected(std::string("trailing octets after the SA state"));
  return s;
}

}  // namespace mobike::cluster
