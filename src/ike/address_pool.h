// Virtual IP pools of a gateway (RFC 7296 §3.15, INTERNAL_IP4/6_ADDRESS): a range of
// addresses handed to clients, with the DNS servers and split-DNS domains that go with
// them. Leases belong to identities: a client that reconnects gets its address back
// while nobody else needed it (strongSwan's behaviour); an address is online while some
// IKE SA holds it (an IKE rekey holds it twice for a moment).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/ip_address.h"

namespace mobike::ike {

struct PoolConfig {
  std::string name;
  IpAddress first, last;  // inclusive; one family; an IPv6 range within one /64
  std::vector<IpAddress> dns;
  std::vector<std::string> dns_domains;  // INTERNAL_DNS_DOMAIN (RFC 8598)
  friend bool operator==(const PoolConfig&, const PoolConfig&) = default;

  // "10.3.0.0/24" (network and broadcast left out; IPv6: the subnet-router anycast
  // address), or "10.3.0.10-10.3.0.99". nullopt with a reason in `error`.
  static std::optional<PoolConfig> parse_range(const std::string& name, const std::string& text, std::string& error);
};

class AddressPool {
 public:
  explicit AddressPool(PoolConfig config);

  const PoolConfig& config() const { return config_; }
  bool is_v4() const { return config_.first.is_v4(); }
  std::uint64_t size() const { return size_; }

  // An address for `identity`: its own offline lease, else one never handed out, else
  // the longest offline lease of another identity; nullopt when all are online.
  std::optional<IpAddress> acquire(const std::string& identity);
  // One more holder of an online address (an IKE rekey's new SA).
  void retain(const IpAddress& address);
  // A holder let go; at zero the lease goes offline (kept for its identity).
  void release(const IpAddress& address);
  bool contains(const IpAddress& address) const;
  // An address another node leased, held by an SA that arrived here (a cluster move or
  // failover): online for `identity` from now on, so that it is not handed out twice.
  void claim(const IpAddress& address, const std::string& identity);

  struct LeaseView {
    IpAddress address;
    std::string identity;
    bool online = false;
  };
  std::vector<LeaseView> leases() const;
  std::size_t online() const;

  // Takes the leases of `old` whose addresses this pool also holds (reload).
  void adopt_leases(const AddressPool& old);

 private:
  struct Lease {
    std::string identity;
    std::uint32_t holders = 0;
    std::uint64_t offline_since = 0;  // order of going offline, for reuse of the oldest
  };
  std::optional<std::uint64_t> offset_of(const IpAddress& a) const;
  IpAddress address_at(std::uint64_t offset) const;

  PoolConfig config_;
  std::uint64_t size_ = 0;
  std::uint64_t next_unused_ = 0;
  std::uint64_t offline_counter_ = 0;
  std::map<std::uint64_t, Lease> leases_;  // by offset from `first`
};

}  // namespace mobike::ike
