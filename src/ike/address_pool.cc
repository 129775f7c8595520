#include "ike/address_pool.h"

#include <algorithm>

namespace mobike::ike {
namespace {

// The low 64 bits of an address as a number, and the rest as bytes.
std::uint64_t low64(const IpAddress& a) {
  auto b = a.bytes();
  std::uint64_t v = 0;
  for (std::size_t i = b.size() > 8 ? b.size() - 8 : 0; i < b.size(); ++i) v = v << 8 | b[i];
  return v;
}

bool same_high(const IpAddress& a, const IpAddress& b) {
  if (a.is_v4() != b.is_v4()) return false;
  if (a.is_v4()) return true;
  return std::equal(a.bytes().begin(), a.bytes().begin() + 8, b.bytes().begin());
}

}  // namespace

std::optional<PoolConfig> PoolConfig::parse_range(const std::string& name, const std::string& text, std::string& error) {
  PoolConfig c;
  c.name = name;
  if (auto dash = text.find('-'); dash != std::string::npos) {
    auto a = IpAddress::parse(text.substr(0, dash));
    auto b = IpAddress::parse(text.substr(dash + 1));
    if (!a || !b) {
      error = "'" + text + "' is not a range of two addresses";
      return std::nullopt;
    }
    c.first = *a;
    c.last = *b;
  } else if (auto p = IpPrefix::parse(text)) {
    c.first = p->first();
    c.last = p->last();
    // Network and broadcast addresses are no host's; nor is IPv6's subnet-router anycast.
    const int host_bits = (p->address.is_v4() ? 32 : 128) - p->length;
    if (host_bits >= 2) {
      c.first = IpAddress::from_bytes([&] {
                  Bytes b = c.first.to_bytes();
                  for (std::size_t i = b.size(); i-- > 0;)
                    if (++b[i] != 0) break;
                  return b;
                }())
                    .value();
      if (p->address.is_v4()) {
        Bytes b = c.last.to_bytes();
        for (std::size_t i = b.size(); i-- > 0;)
          if (b[i]-- != 0) break;
        c.last = IpAddress::from_bytes(b).value();
      }
    }
  } else {
    error = "'" + text + "' is not a prefix (10.3.0.0/24) or a range (10.3.0.10-10.3.0.99)";
    return std::nullopt;
  }
  if (c.first.is_v4() != c.last.is_v4()) {
    error = "'" + text + "' mixes IPv4 and IPv6";
    return std::nullopt;
  }
  if (c.last < c.first) {
    error = "'" + text + "' ends before it starts";
    return std::nullopt;
  }
  if (!same_high(c.first, c.last)) {
    error = "'" + text + "' is larger than a /64";
    return std::nullopt;
  }
  return c;
}

AddressPool::AddressPool(PoolConfig config) : config_(std::move(config)) {
  std::uint64_t span = low64(config_.last) - low64(config_.first);
  size_ = span == ~std::uint64_t{0} ? span : span + 1;
}

std::optional<std::uint64_t> AddressPool::offset_of(const IpAddress& a) const {
  if (!same_high(a, config_.first) || a < config_.first || config_.last < a) return std::nullopt;
  return low64(a) - low64(config_.first);
}

IpAddress AddressPool::address_at(std::uint64_t offset) const {
  Bytes b = config_.first.to_bytes();
  std::uint64_t v = low64(config_.first) + offset;
  for (std::size_t i = b.size(); i-- > (b.size() > 8 ? b.size() - 8 : 0);) {
    b[i] = static_cast<std::uint8_t>(v);
    v >>= 8;
  }
  return IpAddress::from_bytes(b).value();
}

bool AddressPool::contains(const IpAddress& address) const { return offset_of(address).has_value(); }

std::optional<IpAddress> AddressPool::acquire(const std::string& identity) {
  for (auto& [offset, lease] : leases_)
    if (lease.identity == identity && lease.holders == 0) {
      lease.holders = 1;
      return address_at(offset);
    }
  // Offsets below next_unused_ have had a lease; those a reload adopted are skipped.
  while (next_unused_ < size_ && leases_.count(next_unused_)) ++next_unused_;
  if (next_unused_ < size_) {
    std::uint64_t offset = next_unused_++;
    leases_[offset] = Lease{identity, 1, 0};
    return address_at(offset);
  }
  Lease* oldest = nullptr;
  std::uint64_t oldest_offset = 0;
  for (auto& [offset, lease] : leases_)
    if (lease.holders == 0 && (!oldest || lease.offline_since < oldest->offline_since)) {
      oldest = &lease;
      oldest_offset = offset;
    }
  if (!oldest) return std::nullopt;
  *oldest = Lease{identity, 1, 0};
  return address_at(oldest_offset);
}

void AddressPool::retain(const IpAddress& address) {
  auto offset = offset_of(address);
  if (!offset) return;
  if (auto it = leases_.find(*offset); it != leases_.end()) it->second.holders++;
}

void AddressPool::claim(const IpAddress& address, const std::string& identity) {
  auto offset = offset_of(address);
  if (!offset) return;
  Lease& lease = leases_[*offset];
  if (lease.holders == 0 || lease.identity != identity) lease = Lease{identity, 0, 0};
  lease.holders++;
}

void AddressPool::release(const IpAddress& address) {
  auto offset = offset_of(address);
  if (!offset) return;
  auto it = leases_.find(*offset);
  if (it == leases_.end() || it->second.holders == 0) return;
  if (--it->second.holders == 0) it->second.offline_since = ++offline_counter_;
}

std::vector<AddressPool::LeaseView> AddressPool::leases() const {
  std::vector<LeaseView> out;
  for (const auto& [offset, lease] : leases_) out.push_back({address_at(offset), lease.identity, lease.holders > 0});
  return out;
}

std::size_t AddressPool::online() const {
  return static_cast<std::size_t>(
      std::count_if(leases_.begin(), leases_.end(), [](const auto& l) { return l.second.holders > 0; }));
}

void AddressPool::adopt_leases(const AddressPool& old) {
  for (const auto& [offset, lease] : old.leases_) {
    auto o = offset_of(old.address_at(offset));
    if (!o) continue;
    leases_[*o] = lease;
  }
  offline_counter_ = std::max(offline_counter_, old.offline_counter_);
}

}  // namespace mobike::ike
