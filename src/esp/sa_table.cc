#include "esp/sa_table.h"

#include <algorithm>
#include <tuple>

namespace mobike::esp {

namespace {

using wire::TrafficSelector;
using wire::TsType;

bool address_in(const TrafficSelector& ts, const IpAddress& a) {
  if ((ts.ts_type == TsType::kIpv4AddrRange) != a.is_v4()) return false;
  return !(a < ts.start_address) && !(ts.end_address < a);
}

bool covers(const TrafficSelector& ts, const IpAddress& a, const Flow& f, std::uint16_t port) {
  if (!address_in(ts, a)) return false;
  if (ts.ip_protocol != 0 && ts.ip_protocol != f.protocol) return false;
  // RFC 4301 §4.4.1.1: OPAQUE ports match only ANY.
  if (f.opaque_ports) return ts.start_port == 0 && ts.end_port == 65535;
  return ts.start_port <= port && port <= ts.end_port;
}

// Leading bits start and end share: the prefix length for a range that is a prefix.
int prefix_bits(const TrafficSelector& ts) {
  const ByteView s = ts.start_address.bytes(), e = ts.end_address.bytes();
  int bits = 0;
  for (std::size_t i = 0; i < s.size() && i < e.size(); ++i) {
    const std::uint8_t x = s[i] ^ e[i];
    if (x == 0) {
      bits += 8;
      continue;
    }
    for (int b = 7; b >= 0 && !(x >> b & 1); --b) ++bits;
    break;
  }
  return bits;
}

bool single_address(const TrafficSelector& ts) { return ts.start_address == ts.end_address; }

// How specifically a Child SA's selectors cover a flow: the narrowest covering remote
// range first, then local, then a named protocol; {-1, ...} when they do not cover it.
using Score = std::tuple<int, int, int>;

Score score(std::span<const TrafficSelector> local, std::span<const TrafficSelector> remote, const Flow& f, const IpAddress& local_addr,
            std::uint16_t local_port, const IpAddress& remote_addr, std::uint16_t remote_port) {
  int best_remote = -1, best_local = -1, proto = 0;
  for (const auto& r : remote)
    if (covers(r, remote_addr, f, remote_port)) {
      best_remote = std::max(best_remote, prefix_bits(r));
      proto |= r.ip_protocol != 0;
    }
  if (best_remote < 0) return {-1, -1, 0};
  for (const auto& l : local)
    if (covers(l, local_addr, f, local_port)) {
      best_local = std::max(best_local, prefix_bits(l));
      proto |= l.ip_protocol != 0;
    }
  if (best_local < 0) return {-1, -1, 0};
  return {best_remote, best_local, proto};
}

}  // namespace

ChildSaProgress ChildSaEntry::progress() const {
  ChildSaProgress p;
  p.out_seq = outbound_.last_seq();
  p.in = inbound_.replay_window().state();
  p.packets_in = inbound_.counters().packets;
  p.bytes_in = inbound_.counters().bytes;
  p.packets_out = outbound_.counters().packets;
  p.bytes_out = outbound_.counters().bytes;
  return p;
}

ChildSaEntry::ChildSaEntry(Key, const ChildSaSpec& spec, InboundEspSa in, OutboundEspSa out,
                           std::uint64_t serial)
    : child_sa_id_(spec.child_sa_id),
      ike_sa_id_(spec.ike_sa_id),
      serial_(serial),
      path_(spec.path),
      outbound_active_(spec.outbound_active),
      n_local_(static_cast<std::uint16_t>(spec.local_ts.size())),
      n_remote_(static_cast<std::uint16_t>(spec.remote_ts.size())),
      ts_(std::make_unique<TrafficSelector[]>(spec.local_ts.size() + spec.remote_ts.size())),
      inbound_(std::move(in)),
      outbound_(std::move(out)) {
  std::copy(spec.local_ts.begin(), spec.local_ts.end(), ts_.get());
  std::copy(spec.remote_ts.begin(), spec.remote_ts.end(), ts_.get() + n_local_);
  if (spec.limits.any()) limits_ = std::make_unique<LimitState>(LimitState{spec.limits});
}

std::optional<ExpireReport> ChildSaEntry::check_limits(const SaCounters& c) {
  // One test per packet for the Child SAs without limits.
  if (!limits_ || limits_->hard_reported) return std::nullopt;
  const VolumeLimits& l = limits_->limits;
  using Cause = ExpireReport::Cause;
  auto past = [&](std::uint64_t bytes_limit, std::uint64_t packets_limit) -> std::optional<Cause> {
    if (bytes_limit && c.bytes >= bytes_limit) return Cause::kBytes;
    if (packets_limit && c.packets >= packets_limit) return Cause::kPackets;
    return std::nullopt;
  };
  if (auto cause = past(l.hard_bytes, l.hard_packets)) {
    limits_->hard_reported = true;
    return ExpireReport{child_sa_id_, true, *cause};
  }
  if (limits_->soft_reported) return std::nullopt;
  if (auto cause = past(l.soft_bytes, l.soft_packets)) {
    limits_->soft_reported = true;
    return ExpireReport{child_sa_id_, false, *cause};
  }
  return std::nullopt;
}

bool ChildSaEntry::covers(const Flow& f, bool reversed) const {
  const Score s = reversed ? score(local_ts(), remote_ts(), f, f.dst, f.dst_port, f.src, f.src_port)
                           : score(local_ts(), remote_ts(), f, f.src, f.src_port, f.dst, f.dst_port);
  return std::get<0>(s) >= 0;
}

bool ChildSaEntry::allows(ByteView inner) const {
  // Inbound: the peer's side sent it (source in remote_ts) to ours (destination in
  // local_ts). A packet that tunnels in addresses its SA was not negotiated for is
  // exactly what this check exists to stop (RFC 4301 §5.2).
  const auto flow = parse_flow(inner);
  return flow && covers(*flow, true);
}

Expected<void, std::string> SaTable::install(const ChildSaSpec& spec) {
  if (by_id_.count(spec.child_sa_id))
    return unexpected("Child SA " + std::to_string(spec.child_sa_id) + " is already installed");
  if (by_spi_.count(spec.in.spi))
    return unexpected("inbound SPI " + std::to_string(spec.in.spi) + " is already installed");
  // SPI 0 is reserved (RFC 4303 §2.1); on the NAT-T port it is the non-ESP marker
  // that sets IKE apart from ESP.
  if (spec.in.spi == 0 || spec.out.spi == 0) return unexpected(std::string("SPI 0 is reserved"));
  if (spec.local_ts.empty() || spec.remote_ts.empty())
    return unexpected(std::string("a Child SA needs local and remote traffic selectors"));
  // Counted in 16 bits in the entry; an IKE message could not carry this many anyway.
  if (spec.local_ts.size() > 0xffff || spec.remote_ts.size() > 0xffff)
    return unexpected(std::string("too many traffic selectors"));
  auto in = InboundEspSa::create(spec.in);
  if (!in) return unexpected("inbound SA: " + in.error());
  auto out = OutboundEspSa::create(spec.out);
  if (!out) return unexpected("outbound SA: " + out.error());
  if (spec.resume) {
    in->resume(spec.resume->in, spec.resume->packets_in, spec.resume->bytes_in);
    out->resume(spec.resume->out_seq, spec.resume->packets_out, spec.resume->bytes_out);
  }
  ChildSaEntry* raw =
      &by_id_
           .try_emplace(spec.child_sa_id, ChildSaEntry::Key(), spec, std::move(*in), std::move(*out), next_serial_++)
           .first->second;
  by_spi_.emplace(spec.in.spi, raw);
  bool ranged = false;
  for (const auto& r : raw->remote_ts()) {
    if (!single_address(r)) {
      ranged = true;
      continue;
    }
    // Once per address, also when a list names it twice.
    AddressSlot& slot = by_remote_address_[r.start_address];
    const auto here = slot.entries();
    if (std::find(here.begin(), here.end(), raw) != here.end()) continue;
    if (here.empty()) {
      slot.one = raw;
    } else {
      if (!slot.many) slot.many = std::make_unique<std::vector<ChildSaEntry*>>(1, std::exchange(slot.one, nullptr));
      slot.many->push_back(raw);
    }
  }
  if (ranged) ranged_.push_back(raw);
  return {};
}

bool SaTable::remove(std::uint64_t child_sa_id) {
  auto it = by_id_.find(child_sa_id);
  if (it == by_id_.end()) return false;
  ChildSaEntry* e = &it->second;
  by_spi_.erase(e->spi_in());
  for (const auto& r : e->remote_ts()) {
    if (!single_address(r)) continue;
    auto m = by_remote_address_.find(r.start_address);
    if (m == by_remote_address_.end()) continue;
    AddressSlot& slot = m->second;
    if (slot.many) {
      std::erase(*slot.many, e);
      if (slot.many->size() == 1) {  // back into the node
        slot.one = slot.many->front();
        slot.many.reset();
      }
    } else if (slot.one == e) {
      slot.one = nullptr;
    }
    if (slot.entries().empty()) by_remote_address_.erase(m);
  }
  std::erase(ranged_, e);
  std::erase_if(expires_, [&](const ExpireReport& r) { return r.child_sa_id == child_sa_id; });
  by_id_.erase(it);
  return true;
}

bool SaTable::update_path(std::uint64_t child_sa_id, const EspPath& path) {
  auto it = by_id_.find(child_sa_id);
  if (it == by_id_.end()) return false;
  it->second.path_ = path;
  return true;
}

bool SaTable::suspend_outbound(std::uint64_t child_sa_id) {
  auto it = by_id_.find(child_sa_id);
  if (it == by_id_.end()) return false;
  it->second.outbound_active_ = false;
  return true;
}

bool SaTable::activate_outbound(std::uint64_t child_sa_id) {
  auto it = by_id_.find(child_sa_id);
  if (it == by_id_.end()) return false;
  it->second.outbound_active_ = true;
  it->second.serial_ = next_serial_++;
  return true;
}

bool SaTable::advance_outbound(std::uint64_t child_sa_id, std::uint64_t count) {
  auto it = by_id_.find(child_sa_id);
  if (it == by_id_.end()) return false;
  auto& out = it->second.outbound_;
  const std::uint64_t last = out.last_seq();
  out.skip_to(count > ~std::uint64_t{0} - last ? ~std::uint64_t{0} : last + count);
  return true;
}

std::size_t SaTable::update_ike_sa_path(std::uint64_t ike_sa_id, const EspPath& path) {
  std::size_t n = 0;
  for (auto& [id, e] : by_id_)
    if (e.ike_sa_id_ == ike_sa_id) {
      e.path_ = path;
      ++n;
    }
  return n;
}

SaTable::CipherSweep SaTable::release_idle_ciphers() {
  CipherSweep r;
  for (auto& [id, e] : by_id_) {
    r.released += e.inbound_.release_idle_cipher();
    r.released += e.outbound_.release_idle_cipher();
    r.keyed += e.inbound_.cipher_keyed();
    r.keyed += e.outbound_.cipher_keyed();
  }
  return r;
}

std::size_t SaTable::keyed_ciphers() const {
  std::size_t n = 0;
  for (const auto& [id, e] : by_id_) n += e.inbound_.cipher_keyed() + e.outbound_.cipher_keyed();
  return n;
}

const ChildSaEntry* SaTable::find(std::uint64_t child_sa_id) const {
  auto it = by_id_.find(child_sa_id);
  return it == by_id_.end() ? nullptr : &it->second;
}

const ChildSaEntry* SaTable::find_inbound(std::uint32_t spi) const {
  auto it = by_spi_.find(spi);
  return it == by_spi_.end() ? nullptr : it->second;
}

const ChildSaEntry* SaTable::find_outbound(const Flow& flow) const { return lookup_outbound(flow); }

ChildSaEntry* SaTable::lookup_outbound(const Flow& f) const {
  ChildSaEntry* best = nullptr;
  Score best_score{-1, -1, 0};
  auto consider = [&](ChildSaEntry* e) {
    if (!e->outbound_active_) return;
    const Score s = score(e->local_ts(), e->remote_ts(), f, f.src, f.src_port, f.dst, f.dst_port);
    if (std::get<0>(s) < 0) return;
    if (!best || s > best_score || (s == best_score && e->serial_ > best->serial_)) {
      best = e;
      best_score = s;
    }
  };
  if (auto it = by_remote_address_.find(f.dst); it != by_remote_address_.end())
    for (ChildSaEntry* e : it->second.entries()) consider(e);
  for (ChildSaEntry* e : ranged_) consider(e);
  return best;
}

Expected<SaTable::Protected, Drop> SaTable::protect(std::span<std::uint8_t> buf,
                                                    std::size_t inner_offset, std::size_t inner_len) {
  if (inner_offset > buf.size() || inner_len > buf.size() - inner_offset) {
    unattributed_out_.count(Drop::kBufferTooSmall);
    return unexpected(Drop::kBufferTooSmall);
  }
  const auto flow = parse_flow(ByteView(buf.data() + inner_offset, inner_len));
  if (!flow) {
    unattributed_out_.count(Drop::kMalformed);
    return unexpected(Drop::kMalformed);
  }
  ChildSaEntry* e = lookup_outbound(*flow);
  if (!e) {
    unattributed_out_.count(Drop::kNoPolicy);
    return unexpected(Drop::kNoPolicy);
  }
  if (e->expired()) {
    e->outbound_.count_drop(Drop::kExpired);
    return unexpected(Drop::kExpired);
  }
  auto r = e->outbound_.protect_in_place(buf, inner_offset, inner_len);
  // One comparison per packet; the request itself happens once per Child SA.
  if (!e->rekey_requested_ && e->outbound_.remaining() <= options_.rekey_margin) {
    e->rekey_requested_ = true;
    expires_.push_back({e->child_sa_id_, false, ExpireReport::Cause::kSequence});
  }
  if (!r) return unexpected(r.error());
  if (auto x = e->check_limits(e->outbound_.counters())) expires_.push_back(*x);
  return Protected{*r, e->child_sa_id_, e->path_};
}

Expected<SaTable::Delivered, Drop> SaTable::unprotect(std::span<std::uint8_t> esp_packet) {
  if (esp_packet.size() < 8) {
    unattributed_in_.count(Drop::kMalformed);
    return unexpected(Drop::kMalformed);
  }
  const std::uint32_t spi = std::uint32_t{esp_packet[0]} << 24 | std::uint32_t{esp_packet[1]} << 16 |
                            std::uint32_t{esp_packet[2]} << 8 | esp_packet[3];
  auto it = by_spi_.find(spi);
  if (it == by_spi_.end()) {
    unattributed_in_.count(Drop::kUnknownSpi);
    return unexpected(Drop::kUnknownSpi);
  }
  ChildSaEntry* e = it->second;
  if (e->expired()) {
    e->inbound_.count_drop(Drop::kExpired);
    return unexpected(Drop::kExpired);
  }
  auto r = e->inbound_.unprotect(esp_packet, static_cast<const InnerPolicy*>(e));
  if (!r) return unexpected(r.error());
  if (auto x = e->check_limits(e->inbound_.counters())) expires_.push_back(*x);
  return Delivered{r->inner, r->next_header, e->child_sa_id_};
}

}  // namespace mobike::esp
