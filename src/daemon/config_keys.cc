#include "daemon/config_keys.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <limits>
#include <optional>
#include <tuple>

#include "daemon/config_value.h"
#include "ike/authenticator.h"
#include "ike/proposal_string.h"
#include "platform/etcd_client.h"

namespace mobike::daemon::config {
namespace {

// sun_path holds 108 bytes including the terminating NUL.
constexpr std::size_t kMaxSocketPath = 107;
constexpr std::size_t kMaxSecretFileSize = 64 * 1024;

// --- value parsers of the rows below --------------------------------------------------

std::optional<std::uint16_t> port(const Value& v) {
  if (auto p = v.integer(1, 65535)) return static_cast<std::uint16_t>(*p);
  return std::nullopt;
}

bool valid_name(std::string_view s) {
  if (s.empty() || s.size() > 64) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '.' || c == '_' || c == '-';
  });
}

void name(const Value& v, std::string& out) {
  auto s = v.string();
  if (!s) return;
  if (valid_name(*s))
    out = *s;
  else
    v.fail("'" + *s + "' is not 1-64 letters, digits, '.', '_' or '-'");
}

// A byte count as swanctl writes it: an integer, or a string with a K, M or G suffix
// (powers of 1024).
void byte_count(const Value& v, std::uint64_t& out) {
  if (v.node().is_integer()) {
    if (auto n = v.integer(0, std::numeric_limits<std::int64_t>::max())) out = static_cast<std::uint64_t>(*n);
    return;
  }
  auto s = v.string();
  if (!s) return;
  std::uint64_t n = 0;
  auto [end, ec] = std::from_chars(s->data(), s->data() + s->size(), n);
  std::string_view rest(end, static_cast<std::size_t>(s->data() + s->size() - end));
  int shift = rest.empty() ? 0 : rest == "K" || rest == "k" ? 10 : rest == "M" ? 20 : rest == "G" ? 30 : -1;
  if (ec != std::errc() || end == s->data() || shift < 0 || (shift && n > (~std::uint64_t{0} >> shift))) {
    v.fail("'" + *s + "' is not a byte count (an integer, optionally with K, M or G)");
    return;
  }
  out = n << shift;
}

void packet_count(const Value& v, std::uint64_t& out) {
  if (auto n = v.integer(0, std::numeric_limits<std::int64_t>::max())) out = static_cast<std::uint64_t>(*n);
}

void interface_name(const Value& v, std::string& out) {
  auto s = v.string();
  if (!s) return;
  // IFNAMSIZ is 16 with the terminating NUL; '/' and spaces are not allowed in names.
  if (s->empty() || s->size() > 15 || s->find_first_of("/ \t:") != std::string::npos)
    v.fail("'" + *s + "' is not a valid interface name (1-15 characters, no '/', ':' or spaces)");
  else
    out = *s;
}

// At least one address, none twice.
void address_set(const Value& v, std::vector<IpAddress>& out) {
  auto list = v.strings();
  if (!list) return;
  std::vector<IpAddress> addrs;
  for (const auto& item : *list) {
    auto a = IpAddress::parse(item.text);
    if (!a)
      v.fail_at(*item.node, "'" + item.text + "' is not an IP address");
    else if (std::find(addrs.begin(), addrs.end(), *a) != addrs.end())
      v.fail_at(*item.node, "'" + item.text + "' is listed twice");
    else
      addrs.push_back(*a);
  }
  if (list->empty()) v.fail("needs at least one address");
  out = std::move(addrs);
}

void esp_proposals(const Value& v, std::vector<wire::Proposal>& out) {
  auto s = v.string();
  if (!s) return;
  if (auto ps = ike::parse_esp_proposals(*s))
    out = std::move(*ps);
  else
    v.fail(ps.error());
}

void traffic_selectors(const Value& v, std::vector<IpPrefix>& out) {
  auto list = v.strings();
  if (!list) return;
  bool dynamic = false;
  for (const auto& item : *list) {
    if (item.text == "dynamic")
      dynamic = true;
    else if (auto p = IpPrefix::parse(item.text))
      out.push_back(*p);
    else
      v.fail_at(*item.node, "'" + item.text + "' is not a prefix (e.g. 10.0.0.0/8) or dynamic");
  }
  // An empty list is how ChildConfig says "the IKE address"; it cannot hold both.
  if (dynamic && !out.empty()) v.fail("dynamic cannot be combined with prefixes");
}

std::optional<Bytes> decode_psk(const std::string& s, const Value& v) {
  if (s.starts_with("0x") || s.starts_with("0X")) {
    Bytes b = from_hex(std::string_view(s).substr(2));
    if (b.empty()) {
      v.fail("not valid hex after 0x");
      return std::nullopt;
    }
    return b;
  }
  if (s.empty()) {
    v.fail("must not be empty");
    return std::nullopt;
  }
  return to_bytes(s);
}

// A file holding a secret (psk_file, key_file), with where it was found.
struct SecretFile {
  std::string path;
  std::string content;
};

// Reads a secret file named by a key, refusing one that others could read or replace.
std::optional<SecretFile> read_secret_file(const std::string& name, const std::filesystem::path& config_dir,
                                           const Value& v) {
  if (name.empty()) {
    v.fail("must not be empty");
    return std::nullopt;
  }
  std::filesystem::path path(name);
  if (path.is_relative()) path = config_dir / path;
  const std::string p = path.string();
  // Check the mode of what was opened, not of whatever sits at the path a moment later.
  int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) {
    v.fail("cannot open " + p + ": " + std::strerror(errno));
    return std::nullopt;
  }
  struct FdCloser {
    int fd;
    ~FdCloser() { ::close(fd); }
  } closer{fd};
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    v.fail("cannot stat " + p + ": " + std::strerror(errno));
    return std::nullopt;
  }
  if (!S_ISREG(st.st_mode)) {
    v.fail(p + " is not a regular file");
    return std::nullopt;
  }
  if (st.st_mode & 077) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    v.fail(p + " is readable or writable by group or others (mode " + mode + "); chmod 600 it");
    return std::nullopt;
  }
  if (static_cast<std::uint64_t>(st.st_size) > kMaxSecretFileSize) {
    v.fail(p + " is larger than " + std::to_string(kMaxSecretFileSize) + " bytes");
    return std::nullopt;
  }
  std::string content;
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      v.fail("cannot read " + p + ": " + std::strerror(errno));
      return std::nullopt;
    }
    if (n == 0) break;
    content.append(buf, static_cast<std::size_t>(n));
    // The size fstat saw is no promise: the file may have grown since.
    if (content.size() > kMaxSecretFileSize) {
      v.fail(p + " is larger than " + std::to_string(kMaxSecretFileSize) + " bytes");
      return std::nullopt;
    }
  }
  return SecretFile{p, std::move(content)};
}

std::optional<Bytes> read_psk_file(const std::string& name, const std::filesystem::path& config_dir,
                                   const Value& v) {
  auto f = read_secret_file(name, config_dir, v);
  if (!f) return std::nullopt;
  std::string& content = f->content;
  while (!content.empty() && (content.back() == '\n' || content.back() == '\r')) content.pop_back();
  if (content.empty()) {
    v.fail(f->path + " is empty");
    return std::nullopt;
  }
  return decode_psk(content, v);
}

// EAP users as ipsec.secrets writes them, one per line: `carol : EAP "password"`; the
// identity may be quoted, the password too (with \" and \\ inside quotes); '#' starts a
// comment. Errors name the line, never a password.
std::optional<std::map<std::string, std::string, std::less<>>> read_eap_secrets(
    const std::string& name, const std::filesystem::path& config_dir, const Value& v) {
  auto f = read_secret_file(name, config_dir, v);
  if (!f) return std::nullopt;
  std::map<std::string, std::string, std::less<>> users;
  std::size_t line_no = 0;
  std::string_view rest = f->content;
  auto bad = [&](const std::string& why) {
    v.fail(f->path + " line " + std::to_string(line_no) + ": " + why);
    return std::nullopt;
  };
  while (!rest.empty()) {
    ++line_no;
    auto nl = rest.find('\n');
    std::string_view line = rest.substr(0, nl);
    rest = nl == std::string_view::npos ? std::string_view{} : rest.substr(nl + 1);
    std::size_t i = 0;
    auto skip_space = [&] {
      while (i < line.size() && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r')) ++i;
    };
    // A quoted string, or a bare token up to white space or one of `stops`.
    auto token = [&](std::string_view stops, std::string& out) -> bool {
      out.clear();
      if (i < line.size() && line[i] == '"') {
        for (++i; i < line.size() && line[i] != '"'; ++i) {
          if (line[i] == '\\' && i + 1 < line.size()) ++i;
          out.push_back(line[i]);
        }
        if (i >= line.size()) return false;
        ++i;
        return true;
      }
      while (i < line.size() && line[i] != ' ' && line[i] != '\t' && line[i] != '\r' &&
             stops.find(line[i]) == std::string_view::npos)
        out.push_back(line[i++]);
      return true;
    };
    skip_space();
    if (i == line.size() || line[i] == '#') continue;
    std::string id, kind, secret;
    if (!token(":", id)) return bad("unterminated quote in the identity");
    if (id.empty()) return bad("no identity before ':'");
    skip_space();
    if (i == line.size() || line[i] != ':') return bad("expected 'identity : EAP \"password\"'");
    ++i;
    skip_space();
    token("", kind);
    for (auto& ch : kind) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
    if (kind != "EAP") return bad("only EAP secrets belong here, not '" + kind + "'");
    skip_space();
    if (!token("#", secret)) return bad("unterminated quote in the password of '" + id + "'");
    if (secret.empty()) return bad("no password for '" + id + "'");
    skip_space();
    if (i < line.size() && line[i] != '#') return bad("text after the password of '" + id + "'");
    if (!users.emplace(id, std::move(secret)).second) return bad("'" + id + "' appears twice");
  }
  return users;
}

// A file that holds no secret (certificates, CRLs), relative to the config.
std::optional<std::string> read_public_file(const std::string& name, const std::filesystem::path& config_dir,
                                            const Value& v, const toml::node& where) {
  constexpr std::uintmax_t kMaxPublicFileSize = 1 << 20;
  if (name.empty()) {
    v.fail_at(where, "must not be empty");
    return std::nullopt;
  }
  std::filesystem::path path(name);
  if (path.is_relative()) path = config_dir / path;
  std::error_code ec;
  auto size = std::filesystem::file_size(path, ec);
  if (ec) {
    v.fail_at(where, "cannot read " + path.string() + ": " + ec.message());
    return std::nullopt;
  }
  if (size > kMaxPublicFileSize) {
    v.fail_at(where, path.string() + " is larger than 1 MiB");
    return std::nullopt;
  }
  std::ifstream in(path, std::ios::binary);
  std::string content((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (!in.good() && !in.eof()) {
    v.fail_at(where, "cannot read " + path.string());
    return std::nullopt;
  }
  return content;
}

std::vector<std::shared_ptr<const crypto::Certificate>> read_certificates(const std::string& name,
                                                                          const std::filesystem::path& config_dir,
                                                                          const Value& v, const toml::node& where) {
  auto text = read_public_file(name, config_dir, v, where);
  if (!text) return {};
  auto certs = crypto::Certificate::from_pem(*text);
  if (!certs) {
    v.fail_at(where, name + ": " + certs.error());
    return {};
  }
  return std::move(*certs);
}

void auth_class(const Value& v, ConnectionDraft& c, std::optional<ike::AuthClass>& out) {
  auto s = v.string();
  if (!s) return;
  if (*s == "rsa/pss") {
    out = ike::AuthClass::kPubkey;
    c.rsa_pss = true;
  } else if (auto a = ike::auth_class_from_string(*s)) {
    out = *a;
  } else {
    v.fail("unsupported method '" + *s + "' (\"psk\", \"pubkey\", \"rsa/pss\", \"eap-mschapv2\" or \"eap-tls\")");
  }
}

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// The messages describe what is wrong with the content without quoting it: even a key
// that is one digit short is nearly the whole key.
void read_key_file(const std::string& name, const Value& v, ClusterDraft& c) {
  const auto f = read_secret_file(name, c.config_dir, v);
  if (!f) return;
  constexpr std::size_t kDigits = 2 * std::tuple_size_v<decltype(c.cluster.key)>;
  constexpr std::string_view kSpace = " \t\r\n";
  std::string_view text = f->content;
  const auto first = text.find_first_not_of(kSpace);
  if (first == std::string_view::npos) {
    v.fail(f->path + " is empty; it must hold the key as " + std::to_string(kDigits) + " hex digits");
    return;
  }
  text = text.substr(first, text.find_last_not_of(kSpace) + 1 - first);
  if (text.size() != kDigits) {
    v.fail(f->path + " must hold the key as " + std::to_string(kDigits) + " hex digits, not " +
           std::to_string(text.size()) + " characters");
    return;
  }
  decltype(c.cluster.key) key{};
  for (std::size_t i = 0; i < kDigits; i += 2) {
    const int hi = hex_digit(text[i]), lo = hex_digit(text[i + 1]);
    if (hi < 0 || lo < 0) {
      v.fail(f->path + " must hold the key as " + std::to_string(kDigits) +
             " hex digits; it holds another character at offset " +
             std::to_string(first + i + (hi < 0 ? 0 : 1)));
      return;
    }
    key[i / 2] = static_cast<std::uint8_t>(hi << 4 | lo);
  }
  c.cluster.key = key;
  c.cluster.key_file = f->path;
}

// --- [daemon] ----------------------------------------------------------------------------

using D = DaemonConfig;

constexpr Key<D> kDaemonKeys[] = {
    {"socket", R"("/run/mobiked/mobiked.sock")", "the control socket (mobikectl)",
     [](const Value& v, D& d) {
       auto s = v.string();
       if (!s) return;
       if (s->empty())
         v.fail("must not be empty");
       else if (s->size() > kMaxSocketPath)
         v.fail("a Unix socket path has at most " + std::to_string(kMaxSocketPath) + " bytes");
       else
         d.socket = *s;
     }},
    {"listen", R"(["0.0.0.0", "::"])", "one UDP socket per address and port",
     [](const Value& v, D& d) { address_set(v, d.listen); }},
    {"ike_port", "500", "UDP port for IKE",
     [](const Value& v, D& d) {
       if (auto p = port(v)) d.ike_port = *p;
     }},
    {"natt_port", "4500", "UDP port for IKE and ESP once a NAT is detected; not ike_port",
     [](const Value& v, D& d) {
       if (auto p = port(v)) d.natt_port = *p;
     }},
    {"dataplane", R"("userspace")",
     R"(or "xfrm" (the kernel does ESP; IKE sockets bypass its policies) or "none" (negotiate only; the default))",
     [](const Value& v, D& d) {
       auto s = v.string();
       if (!s) return;
       if (*s == "none")
         d.dataplane = DataplaneKind::kNone;
       else if (*s == "userspace")
         d.dataplane = DataplaneKind::kUserspace;
       else if (*s == "xfrm")
         d.dataplane = DataplaneKind::kXfrm;
       else
         v.fail("unknown data plane '" + *s + "' (expected \"userspace\", \"xfrm\" or \"none\")");
     }},
    {"tun_name", R"("mobike0")", "userspace: the TUN device, routes to remote selectors go here",
     [](const Value& v, D& d) { interface_name(v, d.tun_name); }},
    {"tun_mtu", "1400", "userspace: the TUN device's MTU, 576..65000",
     [](const Value& v, D& d) {
       if (auto n = v.integer(576, 65000)) d.tun_mtu = static_cast<int>(*n);
     }},
    {"install_routes", "true",
     "xfrm: route each Child SA's remote selectors along the path to the peer, with a source "
     "inside the local selectors, in routing_table",
     [](const Value& v, D& d) {
       if (auto b = v.boolean()) d.install_routes = *b;
     }},
    {"routing_table", "220", "xfrm: the table of those routes (1..2147483647, not 253..255), looked up by a "
     "rule of the same priority",
     [](const Value& v, D& d) {
       auto n = v.integer(1, 2147483647);
       if (!n) return;
       if (*n >= 253 && *n <= 255)
         v.fail("tables 253..255 are the kernel's default, main and local tables");
       else
         d.routing_table = static_cast<std::uint32_t>(*n);
     }},
    {"replay_window", "1024", "packets, a power of two (32..1048576)",
     [](const Value& v, D& d) {
       auto n = v.integer(32, 1 << 20);
       if (!n) return;
       if ((*n & (*n - 1)) != 0)
         v.fail("must be a power of two");
       else
         d.replay_window = static_cast<std::uint32_t>(*n);
     }},
    {"cipher_idle_release", R"("30s")",
     "userspace: a Child SA direction idle this long (to twice this) frees its keyed cipher "
     "state, ~1 kB, rebuilt from the key by its next packet; \"0s\" keeps it",
     [](const Value& v, D& d) {
       if (auto dur = v.duration()) d.cipher_idle_release = *dur;
     }},
    {"log_level", R"("info")", "trace, debug, info, warn, error",
     [](const Value& v, D& d) {
       auto s = v.string();
       if (!s) return;
       static const std::map<std::string, spdlog::level::level_enum> kLevels = {
           {"trace", spdlog::level::trace}, {"debug", spdlog::level::debug},
           {"info", spdlog::level::info},   {"warn", spdlog::level::warn},
           {"error", spdlog::level::err}};
       auto it = kLevels.find(*s);
       if (it == kLevels.end())
         v.fail("unknown level '" + *s + "' (expected trace, debug, info, warn or error)");
       else
         d.log_level = it->second;
     }},
    {"half_open_threshold", "1000", "half-open SAs before COOKIEs are demanded",
     [](const Value& v, D& d) {
       if (auto n = v.integer(0, 100'000'000)) d.half_open_threshold = static_cast<std::size_t>(*n);
     }},
    {"half_open_timeout", R"("30s")", "how long a responder waits for IKE_AUTH after IKE_SA_INIT",
     [](const Value& v, D& d) {
       auto dur = v.duration();
       if (!dur) return;
       if (dur->count() == 0)
         v.fail("must be longer than 0");
       else
         d.half_open_timeout = *dur;
     }},
    {"retransmit_timeout", "2.0", "seconds; then x retransmit_base per try",
     [](const Value& v, D& d) {
       if (auto s = v.number(0.001, 3600.0)) d.retransmit_timeout = ike::Duration(std::llround(*s * 1000.0));
     }},
    {"retransmit_tries", "5", "retransmissions before a request (and its SA) is given up",
     [](const Value& v, D& d) {
       if (auto n = v.integer(0, 100)) d.retransmit_tries = static_cast<int>(*n);
     }},
    {"retransmit_base", "1.8", "back-off factor, 1..10",
     [](const Value& v, D& d) {
       if (auto b = v.number(1.0, 10.0)) d.retransmit_base = *b;
     }},
    {"keepalive_interval", R"("20s")", "NAT keepalives while we are behind a NAT",
     [](const Value& v, D& d) {
       if (auto dur = v.duration()) d.keepalive_interval = *dur;
     }},
    {"switch_notify_type", "61440", "the SWITCH_TO_IP_ADDRESS notify type, 40960..65535 (private use)",
     [](const Value& v, D& d) {
       // RFC 7296 §3.10.1: 40960-65535 is for private use, where an unregistered
       // notify may live without clashing with IANA values.
       if (auto n = v.integer(40960, 65535)) d.switch_notify_type = static_cast<std::uint16_t>(*n);
     }},
    {"mobike_path_timeout", R"("5m")", "how long an SA without a working path is kept",
     [](const Value& v, D& d) {
       if (auto dur = v.duration()) d.mobike_path_timeout = *dur;
     }},
    {"fragment_size", "1280", "octets of IP packet an IKE message may fill; larger protected ones leave as RFC 7383 fragments (strongSwan's charon.fragment_size), 576..65535",
     [](const Value& v, D& d) {
       // 576: every IPv4 host reassembles that much (RFC 791); less leaves a fragment
       // little room beside its headers, IV and ICV.
       if (auto n = v.integer(576, 65535)) d.fragment_size = static_cast<std::size_t>(*n);
     }},
    {"metrics", R"("127.0.0.1:9560")",
     "serve Prometheus metrics over HTTP at GET /metrics on this address and port (IPv6: \"[::1]:9560\"); "
     "absent: no endpoint. Unauthenticated: keep it on a loopback or management address",
     [](const Value& v, D& d) {
       auto s = v.string();
       if (!s) return;
       if (auto e = Endpoint::parse(*s))
         d.metrics = *e;
       else
         v.fail("'" + *s + "' is not ADDRESS:PORT (\"127.0.0.1:9560\", \"[::1]:9560\")");
     }},
};

// --- [cluster] ---------------------------------------------------------------------------

using L = ClusterDraft;

// etcd listens on 2379 (or wherever it was told), never on the 80 or 443 that a URL
// without a port means, so a missing port is a mistake rather than a default.
std::optional<std::string> etcd_port_problem(std::string_view url) {
  std::string_view authority = url.substr(url.find("://") + 3);
  const auto colon = authority.rfind(':');
  const std::string_view host = authority.substr(0, colon);
  const bool bracketed = host.starts_with('[') && host.ends_with(']');
  if (colon == std::string_view::npos || (host.starts_with('[') && !bracketed))
    return "has no port (e.g. :2379)";
  if (!bracketed && host.find(':') != std::string_view::npos)
    return "needs an IPv6 address in brackets, e.g. http://[2001:db8::1]:2379";
  const std::string_view digits = authority.substr(colon + 1);
  unsigned port = 0;
  const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), port);
  if (ec != std::errc() || end != digits.data() + digits.size() || port == 0 || port > 65535)
    return "has no valid port (1..65535)";
  return std::nullopt;
}

void etcd_endpoints(const Value& v, std::vector<std::string>& out) {
  auto list = v.strings();
  if (!list) return;
  std::vector<std::string> urls;
  for (const auto& item : *list) {
    auto url = platform::normalize_etcd_endpoint(item.text);
    if (!url) {
      v.fail_at(*item.node, url.error().message);
      continue;
    }
    if (auto problem = etcd_port_problem(*url))
      v.fail_at(*item.node, "endpoint '" + item.text + "' " + *problem);
    else if (std::find(urls.begin(), urls.end(), *url) != urls.end())
      v.fail_at(*item.node, "endpoint '" + item.text + "' is listed twice");
    else
      urls.push_back(std::move(*url));
  }
  if (list->empty()) v.fail("needs at least one endpoint");
  out = std::move(urls);
}

constexpr Key<L> kClusterKeys[] = {
    {"node", R"("gw1")", "required: this node's name, unique in the cluster",
     [](const Value& v, L& c) { name(v, c.cluster.node); }},
    {"addresses", R"(["192.0.2.11"])",
     "required: this node's own addresses; an SA it takes over is switched to the one of its family",
     [](const Value& v, L& c) { address_set(v, c.cluster.addresses); }},
    {"etcd", R"(["10.0.0.1:2379", "http://10.0.0.2:2379"])", "required: etcd endpoints, host:port or http(s)://host:port",
     [](const Value& v, L& c) { etcd_endpoints(v, c.cluster.etcd); }},
    {"key_file", R"("cluster.key")",
     "required: 64 hex digits sealing SA state in etcd; relative to the config, not group/world accessible",
     [](const Value& v, L& c) {
       if (auto s = v.string()) read_key_file(*s, v, c);
     }},
    {"prefix", R"("/mobiked/")", "where the cluster's keys live in etcd; starts and ends with '/'",
     [](const Value& v, L& c) {
       auto s = v.string();
       if (!s) return;
       if (!s->starts_with('/') || !s->ends_with('/'))
         v.fail("'" + *s + "' must start and end with '/'");
       else
         c.cluster.prefix = *s;
     }},
    {"lease_ttl", R"("10s")", "a node counts as gone this long after its last lease keepalive; 2s..300s",
     [](const Value& v, L& c) {
       auto d = v.duration();
       if (!d) return;
       // Below a few seconds etcd raises the TTL itself; far above, a dead node holds its
       // SAs for minutes.
       const auto s = std::chrono::duration_cast<std::chrono::seconds>(*d);
       if (s < std::chrono::seconds(2) || s > std::chrono::seconds(300))
         v.fail("must be in 2s..300s, not " + std::to_string(s.count()) + "s");
       else
         c.cluster.lease_ttl = s;
     }},
    {"rebalance_tolerance", "0", "SA-count difference between nodes that makes them move SAs; 0: only moves asked for",
     [](const Value& v, L& c) {
       if (auto n = v.integer(0, std::numeric_limits<std::uint32_t>::max()))
         c.cluster.rebalance_tolerance = static_cast<std::uint32_t>(*n);
     }},
    {"return_traffic", R"("proxy_arp")",
     R"(how the LAN's traffic to a client's inner addresses follows its SA: "proxy_arp", "hook" or "none" (the default))",
     [](const Value& v, L& c) {
       auto s = v.string();
       if (!s) return;
       if (*s == "none") {
         c.cluster.return_traffic = ReturnTraffic::kNone;
       } else if (*s == "proxy_arp") {
         c.cluster.return_traffic = ReturnTraffic::kProxyArp;
       } else if (*s == "hook") {
         c.cluster.return_traffic = ReturnTraffic::kHook;
       } else {
         v.fail("unknown mode '" + *s + "' (expected \"none\", \"proxy_arp\" or \"hook\")");
         return;
       }
       c.return_traffic_valid = true;
     }},
    {"lan_interface", R"("eth1")", "proxy_arp: the interface on the LAN the nodes share",
     [](const Value& v, L& c) { interface_name(v, c.cluster.lan_interface); }},
    {.name = "hook",
     .example = R"("/usr/local/sbin/mobiked-moved")",
     .doc = "hook: run by /bin/sh when a Child SA arrives or leaves (MOBIKED_VERB=take|release, MOBIKED_REMOTE_TS, ...)",
     .parse =
         [](const Value& v, L& c) {
           auto s = v.string();
           if (!s) return;
           if (s->empty())
             v.fail("must not be empty");
           else
             c.cluster.hook = *s;
         },
     .commented_out = true},
    {"switch_sender", R"("old")",
     R"(who asks the client to follow a move: "old" (the node the SA leaves, from its own address) or "new" (the new node, from the old node's address: an etcd round trip less; the network must not filter spoofed sources))",
     [](const Value& v, L& c) {
       auto s = v.string();
       if (!s) return;
       if (*s == "old")
         c.cluster.switch_sender = cluster::SwitchSender::kOldNode;
       else if (*s == "new")
         c.cluster.switch_sender = cluster::SwitchSender::kNewNode;
       else
         v.fail("unknown sender '" + *s + "' (expected \"old\" or \"new\")");
     }},
    {"announce_addresses", "true",
     "tell clients the other nodes' addresses (MOBIKE), so that they follow moves there without switch_allow",
     [](const Value& v, L& c) {
       if (auto b = v.boolean()) c.cluster.announce_addresses = *b;
     }},
    {"failover", "true",
     "checkpoint every SA into etcd and continue a dead node's SAs on the survivors (RFC 6311, with the switch where the client has it)",
     [](const Value& v, L& c) {
       if (auto b = v.boolean()) c.cluster.failover = *b;
     }},
    {"checkpoint_interval", R"("10s")",
     "failover: how often SAs that changed are written to etcd (new, rekeyed, moved and synchronised ones at once)",
     [](const Value& v, L& c) {
       auto d = v.duration();
       if (!d) return;
       if (d->count() < 1000)
         v.fail("must be at least 1s");
       else
         c.cluster.checkpoint_interval = *d;
     }},
    {"move_timeout", R"("60s")", "a cluster command answers by then with moves still under way as pending; etcd writes and waits give up after it",
     [](const Value& v, L& c) {
       auto d = v.duration();
       if (!d) return;
       if (d->count() == 0)
         v.fail("must be longer than 0");
       else
         c.cluster.move_timeout = *d;
     }},
};

// --- [[connection]] ----------------------------------------------------------------------

using C = ConnectionDraft;

constexpr Key<C> kConnectionKeys[] = {
    {"name", R"("office")", "required, unique",
     [](const Value& v, C& c) { name(v, c.conn.name); }},
    {"local_addrs", R"(["192.0.2.1"])",
     "in order of preference, also on lo; empty (or \"%any\"): the kernel's source address for the peer",
     [](const Value& v, C& c) {
       auto list = v.strings();
       if (!list) return;
       bool any = false;
       for (const auto& item : *list) {
         if (item.text == "%any")
           any = true;
         else if (auto a = IpAddress::parse(item.text))
           c.conn.local_addrs.push_back(*a);
         else
           v.fail_at(*item.node, "'" + item.text + "' is not an IP address or %any");
       }
       if (any && !c.conn.local_addrs.empty()) v.fail("%any cannot be combined with addresses");
     }},
    {"remote_addrs", R"(["198.51.100.10"])",
     R"(addresses, prefixes, "%any" (responder) or DNS names (resolved whenever we initiate and again once all their addresses failed, each address tried in turn; never matched against a peer initiating to us); empty: any)",
     [](const Value& v, C& c) {
       auto list = v.strings();
       if (!list) return;
       for (const auto& item : *list) {
         if (item.text == "%any")
           c.conn.remote_addrs.push_back(item.text);
         else if (auto a = IpAddress::parse(item.text))
           c.conn.remote_addrs.push_back(a->to_string());
         else if (auto p = IpPrefix::parse(item.text))
           c.conn.remote_addrs.push_back(p->to_string());
         else if (is_host_name(item.text))
           c.conn.remote_addrs.push_back(item.text);
         else
           v.fail_at(*item.node, "'" + item.text + "' is not an IP address, a prefix, a DNS name or %any");
       }
     }},
    {"remote_port", "500", "the peer's IKE port when we initiate",
     [](const Value& v, C& c) {
       if (auto p = port(v)) c.conn.remote_port = *p;
     }},
    {"local_id", R"("client@example.org")",
     "IPv4/IPv6 address, FQDN (or @fqdn), user@fqdn, keyid:...; default: the one local_addrs entry",
     [](const Value& v, C& c) {
       auto s = v.string();
       if (!s) return;
       if (*s == "%any")
         v.fail("must name our own identity, not %any");
       else if (auto id = ike::Identity::parse(*s))
         c.conn.local_id = *id;
       else
         v.fail("'" + *s + "' is not a valid identity");
     }},
    {"remote_id", R"("gw.example.org")", "omit (or \"%any\") to accept any authenticated peer",
     [](const Value& v, C& c) {
       auto s = v.string();
       if (!s) return;
       if (*s == "%any")
         c.conn.remote_id.reset();
       else if (auto id = ike::Identity::parse(*s))
         c.conn.remote_id = *id;
       else
         v.fail("'" + *s + "' is not a valid identity");
     }},
    {"auth", R"("psk")", R"(both sides: "psk", or "pubkey" (certificates; "rsa/pss" to sign with RSA-PSS); "eap-mschapv2" or "eap-tls" only as local_auth (client) or remote_auth (gateway))",
     [](const Value& v, C& c) { auth_class(v, c, c.auth); }},
    {.name = "local_auth",
     .example = R"("pubkey")",
     .doc = "how we authenticate, if not as auth says",
     .parse = [](const Value& v, C& c) { auth_class(v, c, c.local_auth); },
     .commented_out = true},
    {.name = "remote_auth",
     .example = R"("pubkey")",
     .doc = "how the peer must authenticate, if not as auth says",
     .parse = [](const Value& v, C& c) { auth_class(v, c, c.remote_auth); },
     .commented_out = true},
    {.name = "psk",
     .example = R"("0x00112233445566778899aabbccddeeff")",
     .doc = "the pre-shared key: text, or hex after 0x; or psk_file",
     .parse =
         [](const Value& v, C& c) {
           auto s = v.string();
           if (!s) return;
           if (auto b = decode_psk(*s, v)) c.conn.psk = std::move(*b);
         },
     .commented_out = true},
    {"psk_file", R"("office.psk")",
     "or psk from this file, relative to the config; it must not be group/world accessible",
     [](const Value& v, C& c) {
       auto s = v.string();
       if (!s) return;
       if (auto b = read_psk_file(*s, c.config_dir, v)) c.conn.psk = std::move(*b);
     }},
    {.name = "eap_id",
     .example = R"("%any")",
     .doc = "EAP: the client's EAP identity (default: local_id); on the gateway the client's (default: its IKE identity), %any to ask it by EAP-Identity",
     .parse =
         [](const Value& v, C& c) {
           auto s = v.string();
           if (!s) return;
           if (s->empty()) v.fail("must not be empty");
           c.conn.eap_id = *s;
         },
     .commented_out = true},
    {.name = "eap_secrets",
     .example = R"("eap.secrets")",
     .doc = R"(EAP passwords, lines of 'carol : EAP "password"', relative to the config; it must not be group/world accessible)",
     .parse =
         [](const Value& v, C& c) {
           auto s = v.string();
           if (!s) return;
           if (auto users = read_eap_secrets(*s, c.config_dir, v))
             c.conn.eap_secrets = std::make_shared<const std::map<std::string, std::string, std::less<>>>(std::move(*users));
         },
     .commented_out = true},
    {.name = "eap_tls13",
     .example = R"("pre-rfc9190")",
     .doc = R"(EAP-TLS over TLS 1.3: "rfc9190" (default), or "pre-rfc9190" with a peer from before it, as strongSwan 5.9.2 to 5.9.9 (MSK with TLS 1.2's exporter label, no commitment message))",
     .parse =
         [](const Value& v, C& c) {
           auto s = v.string();
           if (!s) return;
           if (*s == "rfc9190")
             c.conn.eap_tls13_pre_rfc9190 = false;
           else if (*s == "pre-rfc9190")
             c.conn.eap_tls13_pre_rfc9190 = true;
           else
             v.fail("unsupported value '" + *s + "' (\"rfc9190\" or \"pre-rfc9190\")");
         },
     .commented_out = true},
    {.name = "local_certs",
     .example = R"(["gw.crt", "intermediate.crt"])",
     .doc = "PEM files relative to the config: our certificate, then intermediates to send with it",
     .parse =
         [](const Value& v, C& c) {
           auto list = v.strings();
           if (!list) return;
           for (const auto& item : *list) {
             auto certs = read_certificates(item.text, c.config_dir, v, *item.node);
             c.conn.local_certs.insert(c.conn.local_certs.end(), certs.begin(), certs.end());
           }
           if (list->empty()) v.fail("must name at least our own certificate");
         },
     .commented_out = true},
    {.name = "local_key",
     .example = R"("gw.key")",
     .doc = "our private key (PEM, unencrypted), relative to the config; it must not be group/world accessible",
     .parse =
         [](const Value& v, C& c) {
           auto s = v.string();
           if (!s) return;
           auto f = read_secret_file(*s, c.config_dir, v);
           if (!f) return;
           auto key = crypto::PrivateKey::from_pem(f->content);
           if (!key)
             v.fail(f->path + ": " + key.error());
           else
             c.conn.private_key = std::move(*key);
         },
     .commented_out = true},
    {.name = "cacerts",
     .example = R"(["ca.crt"])",
     .doc = "trust anchors (PEM) for the peer's certificate, relative to the config",
     .parse =
         [](const Value& v, C& c) {
           auto list = v.strings();
           if (!list) return;
           auto trust = std::make_shared<crypto::TrustStore>(c.conn.trust ? *c.conn.trust : crypto::TrustStore{});
           for (const auto& item : *list)
             for (auto& cert : read_certificates(item.text, c.config_dir, v, *item.node)) {
               if (auto why = ike::not_a_trust_anchor(*cert)) v.fail_at(*item.node, item.text + ": " + *why);
               trust->add_anchor(std::move(cert));
             }
           c.conn.trust = std::move(trust);
         },
     .commented_out = true},
    {.name = "crls",
     .example = R"(["ca.crl"])",
     .doc = "certificate revocation lists (PEM or DER) of the peer's CAs, relative to the config",
     .parse =
         [](const Value& v, C& c) {
           auto list = v.strings();
           if (!list) return;
           auto trust = std::make_shared<crypto::TrustStore>(c.conn.trust ? *c.conn.trust : crypto::TrustStore{});
           for (const auto& item : *list) {
             auto text = read_public_file(item.text, c.config_dir, v, *item.node);
             if (!text) continue;
             auto crls = crypto::Crl::from_pem_or_der(*text);
             if (!crls) {
               v.fail_at(*item.node, item.text + ": " + crls.error());
               continue;
             }
             for (auto& crl : *crls) trust->add_crl(std::move(crl));
           }
           c.conn.trust = std::move(trust);
         },
     .commented_out = true},
    {"send_cert", R"("ifasked")", R"("always", "ifasked" (the peer sent CERTREQ) or "never")",
     [](const Value& v, C& c) {
       auto s = v.string();
       if (!s) return;
       if (*s == "always")
         c.conn.send_cert = ike::SendCert::kAlways;
       else if (*s == "ifasked")
         c.conn.send_cert = ike::SendCert::kIfAsked;
       else if (*s == "never")
         c.conn.send_cert = ike::SendCert::kNever;
       else
         v.fail("unknown value '" + *s + "' (expected \"always\", \"ifasked\" or \"never\")");
     }},
    {.name = "pools",
     .example = R"(["rw"])",
     .doc = "gateway: [[pool]] names that answer a client's request for a virtual IP, in order",
     .parse =
         [](const Value& v, C& c) {
           auto list = v.strings();
           if (!list) return;
           for (const auto& item : *list) {
             if (valid_name(item.text))
               c.conn.pools.push_back(item.text);
             else
               v.fail_at(*item.node, "'" + item.text + "' is not a pool name");
           }
         },
     },
    {.name = "vips",
     .example = R"(["0.0.0.0"])",
     .doc = "client: virtual IPs to ask the gateway for (0.0.0.0 / :: for any), put on the TUN device and used as the tunnel's source",
     .parse =
         [](const Value& v, C& c) {
           auto list = v.strings();
           if (!list) return;
           for (const auto& item : *list) {
             if (auto a = IpAddress::parse(item.text))
               c.conn.vips.push_back(*a);
             else
               v.fail_at(*item.node, "'" + item.text + "' is not an IP address (0.0.0.0 or :: for any)");
           }
         },
     .commented_out = true},
    {"send_certreq", "true", "ask for the peer's certificate (CERTREQ naming our cacerts)",
     [](const Value& v, C& c) {
       if (auto b = v.boolean()) c.conn.send_certreq = *b;
     }},
    {"ike_proposals", R"("aes128gcm16-prfsha256-x25519, aes256-sha384-ecp384")", "in order of preference",
     [](const Value& v, C& c) {
       auto s = v.string();
       if (!s) return;
       if (auto ps = ike::parse_ike_proposals(*s))
         c.conn.ike_proposals = std::move(*ps);
       else
         v.fail(ps.error());
     }},
    {"esp_proposals", R"("aes128gcm16")", "for the children; a DH group here means PFS on rekeys",
     [](const Value& v, C& c) { esp_proposals(v, c.esp_default); }},
    {"ha_sync", "true",
     "claim RFC 6311 (message ID and replay counter sync) so that a gateway cluster can fail this SA over; a gateway claims it only as a cluster member",
     [](const Value& v, C& c) {
       if (auto b = v.boolean()) c.conn.ha_sync = *b;
     }},
    {"dpd_delay", R"("30s")", "liveness check interval; 0: none",
     [](const Value& v, C& c) {
       if (auto d = v.duration()) c.conn.dpd_delay = *d;
     }},
    {"rekey_time", R"("4h")", "IKE SA; 0: never",
     [](const Value& v, C& c) {
       if (auto d = v.duration()) c.conn.rekey_time = *d;
     }},
    {"lifetime", R"("5h")", "hard limit; default (0): rekey_time + 10%",
     [](const Value& v, C& c) {
       if (auto d = v.duration()) c.conn.lifetime = *d;
     }},
    {"mobike", "true", "MOBIKE (RFC 4555)",
     [](const Value& v, C& c) {
       if (auto b = v.boolean()) c.conn.mobike = *b;
     }},
    {"encap", "false", "force UDP encapsulation",
     [](const Value& v, C& c) {
       if (auto b = v.boolean()) c.conn.encap_force = *b;
     }},
    {"nat_traversal", "true", "false: no NAT detection; MOBIKE updates carry NO_NATS_ALLOWED",
     [](const Value& v, C& c) {
       if (auto b = v.boolean()) c.conn.nat_traversal = *b;
     }},
    {"fragmentation", "true", "RFC 7383 IKE fragmentation: yes as strongSwan's `fragmentation = yes`",
     [](const Value& v, C& c) {
       if (auto b = v.boolean()) c.conn.fragmentation = *b;
     }},
    {"return_routability", R"("always")", R"(MOBIKE responder: "always", "unannounced" or "never")",
     [](const Value& v, C& c) {
       auto s = v.string();
       if (!s) return;
       if (*s == "always")
         c.conn.return_routability = ike::ReturnRoutability::kAlways;
       else if (*s == "unannounced")
         c.conn.return_routability = ike::ReturnRoutability::kUnannounced;
       else if (*s == "never")
         c.conn.return_routability = ike::ReturnRoutability::kNever;
       else
         v.fail("unknown policy '" + *s + "' (expected \"always\", \"unannounced\" or \"never\")");
     }},
    {"switch", "true", "initiator: announce and follow SWITCH_TO_IP_ADDRESS",
     [](const Value& v, C& c) {
       if (auto b = v.boolean()) c.conn.switch_enabled = *b;
     }},
    {.name = "responder_switch", .renamed_to = "switch"},
    {"switch_response_to", R"("new")", R"(initiator: answer a switch request towards the new address, or "old")",
     [](const Value& v, C& c) {
       auto s = v.string();
       if (!s) return;
       if (*s == "new" || *s == "old")
         c.conn.switch_response_to_new = *s == "new";
       else
         v.fail("unknown choice '" + *s + "' (expected \"new\" or \"old\")");
     }},
    {"switch_allow", "[]", "initiator: switch targets allowed besides those announced (prefixes)",
     [](const Value& v, C& c) {
       auto list = v.strings();
       if (!list) return;
       for (const auto& item : *list) {
         if (auto p = IpPrefix::parse(item.text))
           c.conn.switch_allow.push_back(*p);
         else if (auto a = IpAddress::parse(item.text))
           c.conn.switch_allow.push_back({*a, static_cast<std::uint8_t>(a->is_v4() ? 32 : 128)});
         else
           v.fail_at(*item.node, "'" + item.text + "' is not an address or a prefix");
       }
     }},
    {"switch_prefer", "[]", "responder: where SAs go when their address disappears, in order; a listed address that comes back takes them back",
     [](const Value& v, C& c) {
       auto list = v.strings();
       if (!list) return;
       for (const auto& item : *list) {
         if (auto a = IpAddress::parse(item.text))
           c.conn.switch_prefer.push_back(*a);
         else
           v.fail_at(*item.node, "'" + item.text + "' is not an IP address");
       }
     }},
    {"start", R"("none")", R"(or "initiate" (needs an address or a DNS name in remote_addrs), or "trap" (on traffic; needs an address there))",
     [](const Value& v, C& c) {
       auto s = v.string();
       if (!s) return;
       if (auto a = ike::start_action_from_string(*s))
         c.conn.start = *a;
       else
         v.fail("unknown action '" + *s + "' (expected \"none\", \"initiate\" or \"trap\")");
     }},
};

// --- [[connection.child]] ----------------------------------------------------------------

using K = ike::ChildConfig;

constexpr Key<K> kChildKeys[] = {
    {"name", R"("net")", "required, unique within the connection",
     [](const Value& v, K& k) { name(v, k.name); }},
    {"local_ts", R"(["10.1.0.0/16"])", R"(prefixes; empty or "dynamic": our IKE address)",
     [](const Value& v, K& k) { traffic_selectors(v, k.local_ts); }},
    {"remote_ts", R"(["10.2.0.0/16"])", R"(prefixes; empty or "dynamic": the peer's IKE address)",
     [](const Value& v, K& k) { traffic_selectors(v, k.remote_ts); }},
    {"esp_proposals", R"("aes256gcm16-x25519")", "default: the connection's esp_proposals",
     [](const Value& v, K& k) { esp_proposals(v, k.esp_proposals); }},
    {"rekey_time", R"("1h")", "Child SA; 0: never",
     [](const Value& v, K& k) {
       if (auto d = v.duration()) k.rekey_time = *d;
     }},
    {"lifetime", R"("66m")", "hard limit; default (0): rekey_time + 10%",
     [](const Value& v, K& k) {
       if (auto d = v.duration()) k.lifetime = *d;
     }},
    {"rekey_bytes", R"("4G")", "per direction, K/M/G suffixes; 0: no volume limit",
     [](const Value& v, K& k) { byte_count(v, k.rekey_bytes); }},
    {"life_bytes", R"("4400M")", "hard limit; default (0): rekey_bytes + 10%",
     [](const Value& v, K& k) { byte_count(v, k.life_bytes); }},
    {"rekey_packets", "0", "per direction; 0: no packet limit",
     [](const Value& v, K& k) { packet_count(v, k.rekey_packets); }},
    {"life_packets", "0", "hard limit; default (0): rekey_packets + 10%",
     [](const Value& v, K& k) { packet_count(v, k.life_packets); }},
};

// --- [[pool]] --------------------------------------------------------------------------

constexpr Key<ike::PoolConfig> kPoolKeys[] = {
    {"name", R"("rw")", "required, unique; connections name it in pools",
     [](const Value& v, ike::PoolConfig& p) { name(v, p.name); }},
    {"addrs", R"("10.3.0.0/24")", "required: a prefix (network and broadcast left out) or a range \"10.3.0.10-10.3.0.99\"; IPv6 within a /64",
     [](const Value& v, ike::PoolConfig& p) {
       auto s = v.string();
       if (!s) return;
       std::string error;
       auto parsed = ike::PoolConfig::parse_range(p.name, *s, error);
       if (!parsed) {
         v.fail(error);
         return;
       }
       p.first = parsed->first;
       p.last = parsed->last;
     }},
    {"dns", R"(["10.3.0.1"])", "DNS servers sent with an address of this pool (INTERNAL_IP4/6_DNS)",
     [](const Value& v, ike::PoolConfig& p) {
       auto list = v.strings();
       if (!list) return;
       for (const auto& item : *list) {
         if (auto a = IpAddress::parse(item.text))
           p.dns.push_back(*a);
         else
           v.fail_at(*item.node, "'" + item.text + "' is not an IP address");
       }
     }},
    {"split_dns", R"(["corp.example.org"])", "domains the client resolves through those servers (INTERNAL_DNS_DOMAIN, RFC 8598)",
     [](const Value& v, ike::PoolConfig& p) {
       auto list = v.strings();
       if (!list) return;
       for (const auto& item : *list) {
         std::string d = item.text;
         if (!d.empty() && d.back() == '.') d.pop_back();
         bool ok = !d.empty() && d.size() <= 253 && std::all_of(d.begin(), d.end(), [](char c) {
           return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.';
         });
         if (ok)
           p.dns_domains.push_back(d);
         else
           v.fail_at(*item.node, "'" + item.text + "' is not a domain name");
       }
     }},
};

}  // namespace

std::span<const Key<DaemonConfig>> daemon_keys() { return kDaemonKeys; }
std::span<const Key<ClusterDraft>> cluster_keys() { return kClusterKeys; }
std::span<const Key<ConnectionDraft>> connection_keys() { return kConnectionKeys; }
std::span<const Key<ike::ChildConfig>> child_keys() { return kChildKeys; }
std::span<const Key<ike::PoolConfig>> pool_keys() { return kPoolKeys; }

}  // namespace mobike::daemon::config
