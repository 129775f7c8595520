// Identity::parse / to_string. Beyond the rules in connection.h, a leading '@' forces
// an FQDN ("@vpn.example.org", "@user@example.org"), as strongSwan reads it; to_string
// uses that prefix whenever the plain text would parse back as another type, so
// parse(to_string(id)) == id for every printable FQDN or RFC822 value and every KEY_ID.
// Bytes a peer sent that are not printable ASCII come out as \xNN (FQDN, RFC822) or hex,
// so the text is always safe for logs and JSON.
#include "ike/connection.h"

#include <cctype>

namespace mobike::ike {
namespace {

constexpr std::string_view kKeyIdPrefix = "keyid:";

bool printable(ByteView b) {
  for (auto c : b)
    if (c < 0x20 || c > 0x7e) return false;
  return true;
}

// The peer chooses these bytes: escape what could corrupt a log line or a JSON string.
std::string escaped(ByteView b) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string s;
  for (auto c : b) {
    if (c >= 0x20 && c < 0x7f && c != '\\') {
      s.push_back(static_cast<char>(c));
    } else {
      s += "\\x";
      s.push_back(kDigits[c >> 4]);
      s.push_back(kDigits[c & 0xf]);
    }
  }
  return s;
}

std::string_view type_prefix(wire::IdType t) {
  switch (t) {
    case wire::IdType::kDerAsn1Dn: return "asn1dn:";
    case wire::IdType::kDerAsn1Gn: return "asn1gn:";
    default: return "";
  }
}

// A glob with '*' for any run of characters, ASCII case ignored.
bool glob_match(std::string_view text, std::string_view pattern) {
  std::size_t t = 0, p = 0, star = std::string_view::npos, mark = 0;
  auto eq = [](char a, char b) {
    return std::tolower(static_cast<unsigned char>(a)) == std::tolower(static_cast<unsigned char>(b));
  };
  while (t < text.size()) {
    if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      mark = t;
    } else if (p < pattern.size() && eq(pattern[p], text[t])) {
      ++p;
      ++t;
    } else if (star != std::string_view::npos) {
      p = star + 1;
      t = ++mark;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

std::string_view as_text(const Bytes& b) { return {reinterpret_cast<const char*>(b.data()), b.size()}; }

}  // namespace

bool Identity::is_pattern() const {
  switch (type) {
    case wire::IdType::kFqdn:
    case wire::IdType::kRfc822Addr: return as_text(data).find('*') != std::string_view::npos;
    case wire::IdType::kDerAsn1Dn: {
      auto text = crypto::dn_to_text(data);
      return text && (text->find("=*,") != std::string::npos || text->ends_with("=*"));
    }
    default: return false;
  }
}

bool identity_matches(const Identity& id, const Identity& pattern) {
  if (id.type != pattern.type) return false;
  switch (pattern.type) {
    case wire::IdType::kFqdn:
    case wire::IdType::kRfc822Addr: return glob_match(as_text(id.data), as_text(pattern.data));
    case wire::IdType::kDerAsn1Dn: return id.data == pattern.data || crypto::dn_matches(id.data, pattern.data);
    default: return id == pattern;
  }
}

std::optional<Identity> Identity::parse(const std::string& text) {
  if (text.empty()) return std::nullopt;
  if (text.starts_with(kKeyIdPrefix)) {
    std::string_view v = std::string_view(text).substr(kKeyIdPrefix.size());
    if (v.empty()) return std::nullopt;
    Bytes data;
    if (v.starts_with("0x") || v.starts_with("0X")) {
      data = from_hex(v.substr(2));
      if (data.empty()) return std::nullopt;
    } else {
      data = to_bytes(v);
    }
    return Identity{wire::IdType::kKeyId, std::move(data)};
  }
  if (text.front() == '@') {
    if (text.size() == 1) return std::nullopt;
    return Identity{wire::IdType::kFqdn, to_bytes(std::string_view(text).substr(1))};
  }
  // Only known attribute keys make a DN, so "a=b@example.org" stays an RFC822 name.
  if (text.find('=') != std::string::npos)
    if (auto dn = crypto::dn_from_text(text)) return Identity{wire::IdType::kDerAsn1Dn, std::move(*dn)};
  if (auto a = IpAddress::parse(text))
    return Identity{a->is_v4() ? wire::IdType::kIpv4Addr : wire::IdType::kIpv6Addr,
                    a->to_bytes()};
  if (text.find('@') != std::string::npos) return Identity{wire::IdType::kRfc822Addr, to_bytes(text)};
  return Identity{wire::IdType::kFqdn, to_bytes(text)};
}

std::string Identity::to_string() const {
  switch (type) {
    case wire::IdType::kIpv4Addr:
    case wire::IdType::kIpv6Addr:
      if (auto a = IpAddress::from_bytes(data);
          a && a->is_v4() == (type == wire::IdType::kIpv4Addr))
        return a->to_string();
      break;  // a malformed address from the wire: show its bytes instead
    case wire::IdType::kFqdn: {
      auto text = escaped(data);
      auto back = parse(text);
      if (back && *back == *this) return text;
      return "@" + text;
    }
    case wire::IdType::kRfc822Addr: {
      auto text = escaped(data);
      auto back = parse(text);
      if (back && *back == *this) return text;
      break;  // no '@' (or not printable): the typed hex form below is unambiguous
    }
    case wire::IdType::kKeyId: {
      std::string_view text(reinterpret_cast<const char*>(data.data()), data.size());
      if (!data.empty() && printable(data) && !text.starts_with("0x") && !text.starts_with("0X"))
        return std::string(kKeyIdPrefix) + std::string(text);
      return std::string(kKeyIdPrefix) + "0x" + to_hex(data);
    }
    case wire::IdType::kDerAsn1Dn:
      if (auto text = crypto::dn_to_text(data)) {
        auto back = parse(*text);
        if (back && back->type == type) return *text;
      }
      break;
    default:
      break;
  }
  auto prefix = type_prefix(type);
  if (prefix.empty()) return "id" + std::to_string(static_cast<unsigned>(type)) + ":0x" + to_hex(data);
  return std::string(prefix) + "0x" + to_hex(data);
}

}  // namespace mobike::ike
