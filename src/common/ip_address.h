// IPv4/IPv6 addresses and (address, port) endpoints as plain values.
#pragma once

#include <array>
#include <compare>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "common/bytes.h"

namespace mobike {

enum class AddressFamily : std::uint8_t { kV4 = 4, kV6 = 6 };

class IpAddress {
 public:
  IpAddress() = default;  // 0.0.0.0
  static IpAddress v4(std::uint32_t host_order);
  static IpAddress v4(std::array<std::uint8_t, 4> octets);
  static IpAddress v6(std::array<std::uint8_t, 16> octets);
  // From raw network-order octets: 4 -> IPv4, 16 -> IPv6, else nullopt.
  static std::optional<IpAddress> from_bytes(ByteView b);
  static std::optional<IpAddress> parse(std::string_view text);

  AddressFamily family() const { return family_; }
  bool is_v4() const { return family_ == AddressFamily::kV4; }
  bool is_v6() const { return family_ == AddressFamily::kV6; }
  // Network-order octets: 4 for IPv4, 16 for IPv6.
  ByteView bytes() const { return ByteView(octets_.data(), is_v4() ? 4 : 16); }
  Bytes to_bytes() const { auto v = bytes(); return Bytes(v.begin(), v.end()); }
  bool is_unspecified() const;
  bool is_loopback() const;
  bool is_multicast() const;
  std::string to_string() const;

  friend auto operator<=>(const IpAddress&, const IpAddress&) = default;
  friend bool operator==(const IpAddress&, const IpAddress&) = default;

 private:
  AddressFamily family_ = AddressFamily::kV4;
  std::array<std::uint8_t, 16> octets_{};
};

struct Endpoint {
  IpAddress address;
  std::uint16_t port = 0;

  std::string to_string() const;  // 192.0.2.1:500, [2001:db8::1]:4500
  // The same notation back: "ADDRESS:PORT" for IPv4, "[ADDRESS]:PORT" for IPv6, port 1..65535.
  static std::optional<Endpoint> parse(std::string_view text);
  friend auto operator<=>(const Endpoint&, const Endpoint&) = default;
  friend bool operator==(const Endpoint&, const Endpoint&) = default;
};

// An address prefix (for traffic selectors in config): 10.0.0.0/8, 2001:db8::/32.
struct IpPrefix {
  IpAddress address;
  std::uint8_t length = 0;
  static std::optional<IpPrefix> parse(std::string_view text);
  IpAddress first() const;
  IpAddress last() const;
  bool contains(const IpAddress& a) const {
    return a.family() == address.family() && first() <= a && a <= last();
  }
  std::string to_string() const;
  friend bool operator==(const IpPrefix&, const IpPrefix&) = default;
};

// A DNS host name as a configuration may name a peer (RFC 1123 §2.1): labels of 1-63
// letters, digits and '-', none starting or ending with '-', at most 253 characters
// (a trailing '.' allowed), and a last label that is not all digits, so that no
// mistyped address ("192.0.2.300") passes for a name.
bool is_host_name(std::string_view text);

}  // namespace mobike

template <>
struct std::hash<mobike::IpAddress> {
  std::size_t operator()(const mobike::IpAddress& a) const noexcept {
    std::size_t h = static_cast<std::size_t>(a.family());
    for (auto b : a.bytes()) h = h * 131 + b;
    return h;
  }
};
template <>
struct std::hash<mobike::Endpoint> {
  std::size_t operator()(const mobike::Endpoint& e) const noexcept {
    return std::hash<mobike::IpAddress>()(e.address) * 65599 + e.port;
  }
};
