#include "common/ip_address.h"

#include <arpa/inet.h>

#include <charconv>
#include <cstring>

namespace mobike {

IpAddress IpAddress::v4(std::uint32_t h) {
  return v4({static_cast<std::uint8_t>(h >> 24), static_cast<std::uint8_t>(h >> 16),
             static_cast<std::uint8_t>(h >> 8), static_cast<std::uint8_t>(h)});
}

IpAddress IpAddress::v4(std::array<std::uint8_t, 4> o) {
  IpAddress a;
  a.family_ = AddressFamily::kV4;
  std::memcpy(a.octets_.data(), o.data(), 4);
  return a;
}

IpAddress IpAddress::v6(std::array<std::uint8_t, 16> o) {
  IpAddress a;
  a.family_ = AddressFamily::kV6;
  a.octets_ = o;
  return a;
}

std::optional<IpAddress> IpAddress::from_bytes(ByteView b) {
  if (b.size() == 4) return v4({b[0], b[1], b[2], b[3]});
  if (b.size() == 16) {
    std::array<std::uint8_t, 16> o;
    std::memcpy(o.data(), b.data(), 16);
    return v6(o);
  }
  return std::nullopt;
}

std::optional<IpAddress> IpAddress::parse(std::string_view text) {
  if (text.size() >= INET6_ADDRSTRLEN) return std::nullopt;
  char buf[INET6_ADDRSTRLEN];
  std::memcpy(buf, text.data(), text.size());
  buf[text.size()] = '\0';
  std::array<std::uint8_t, 16> o{};
  if (inet_pton(AF_INET, buf, o.data()) == 1) return v4({o[0], o[1], o[2], o[3]});
  if (inet_pton(AF_INET6, buf, o.data()) == 1) return v6(o);
  return std::nullopt;
}

bool IpAddress::is_unspecified() const {
  for (auto b : bytes())
    if (b) return false;
  return true;
}

bool IpAddress::is_loopback() const {
  if (is_v4()) return octets_[0] == 127;
  for (int i = 0; i < 15; ++i)
    if (octets_[i]) return false;
  return octets_[15] == 1;
}

bool IpAddress::is_multicast() const {
  if (is_v4()) return (octets_[0] & 0xf0) == 0xe0;
  return octets_[0] == 0xff;
}

std::string IpAddress::to_string() const {
  char buf[INET6_ADDRSTRLEN];
  inet_ntop(is_v4() ? AF_INET : AF_INET6, octets_.data(), buf, sizeof buf);
  return buf;
}

std::string Endpoint::to_string() const {
  // Built by appending: g++ 12 at -O3 misreports operator+ chains here (-Wrestrict).
  std::string s;
  s.reserve(INET6_ADDRSTRLEN + 8);
  if (address.is_v6()) s += '[';
  s += address.to_string();
  if (address.is_v6()) s += ']';
  s += ':';
  s += std::to_string(port);
  return s;
}

std::optional<Endpoint> Endpoint::parse(std::string_view text) {
  auto colon = text.rfind(':');
  if (colon == std::string_view::npos) return std::nullopt;
  std::string_view host = text.substr(0, colon), digits = text.substr(colon + 1);
  const bool bracketed = host.size() >= 2 && host.front() == '[' && host.back() == ']';
  if (bracketed) host = host.substr(1, host.size() - 2);
  auto addr = IpAddress::parse(host);
  // IPv6 only in brackets, IPv4 never: "::1:80" would be ambiguous.
  if (!addr || addr->is_v6() != bracketed) return std::nullopt;
  unsigned port = 0;
  auto [p, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), port);
  if (digits.empty() || ec != std::errc() || p != digits.data() + digits.size() || port == 0 || port > 65535)
    return std::nullopt;
  return Endpoint{*addr, static_cast<std::uint16_t>(port)};
}

std::optional<IpPrefix> IpPrefix::parse(std::string_view text) {
  auto slash = text.find('/');
  auto addr = IpAddress::parse(text.substr(0, slash));
  if (!addr) return std::nullopt;
  unsigned max = addr->is_v4() ? 32 : 128;
  unsigned len = max;
  if (slash != std::string_view::npos) {
    auto digits = text.substr(slash + 1);
    auto [p, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), len);
    if (ec != std::errc() || p != digits.data() + digits.size() || len > max) return std::nullopt;
  }
  return IpPrefix{*addr, static_cast<std::uint8_t>(len)};
}

static IpAddress masked(const IpAddress& a, unsigned len, bool set_host_bits) {
  auto v = a.bytes();
  std::array<std::uint8_t, 16> o{};
  for (std::size_t i = 0; i < v.size(); ++i) {
    unsigned bit = static_cast<unsigned>(i) * 8;
    std::uint8_t mask = bit >= len ? 0 : (len - bit >= 8 ? 0xff : static_cast<std::uint8_t>(0xff << (8 - (len - bit))));
    o[i] = set_host_bits ? static_cast<std::uint8_t>(v[i] | ~mask) : static_cast<std::uint8_t>(v[i] & mask);
  }
  if (a.is_v4()) return IpAddress::v4({o[0], o[1], o[2], o[3]});
  return IpAddress::v6(o);
}

IpAddress IpPrefix::first() const { return masked(address, length, false); }
IpAddress IpPrefix::last() const { return masked(address, length, true); }
std::string IpPrefix::to_string() const { return first().to_string() + "/" + std::to_string(length); }

bool is_host_name(std::string_view text) {
  if (!text.empty() && text.back() == '.') text.remove_suffix(1);
  if (text.empty() || text.size() > 253) return false;
  bool all_digits = true;
  std::size_t start = 0;
  while (start <= text.size()) {
    std::size_t end = text.find('.', start);
    if (end == std::string_view::npos) end = text.size();
    std::string_view label = text.substr(start, end - start);
    if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-') return false;
    all_digits = true;
    for (char c : label) {
      bool digit = c >= '0' && c <= '9';
      if (!digit && !(c >= 'a' && c <= 'z') && !(c >= 'A' && c <= 'Z') && c != '-') return false;
      all_digits = all_digits && digit;
    }
    start = end + 1;
  }
  return !all_digits;
}

}  // namespace mobike
