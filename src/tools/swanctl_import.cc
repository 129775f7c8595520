#include "tools/swanctl_import.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <sstream>

#include "common/ip_address.h"
#include "crypto/certificate.h"
#include "crypto/signature.h"
#include "ike/address_pool.h"
#include "ike/connection.h"
#include "ike/proposal_string.h"

namespace mobike::tools::swanctl {
namespace {

namespace fs = std::filesystem;

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// A TOML basic string.
std::string q(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      case '\r': out += "\\r"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(static_cast<unsigned char>(c)));
          out += buf;
        } else {
          out.push_back(c);
        }
    }
  }
  return out + "\"";
}

std::string qlist(const std::vector<std::string>& items) {
  std::string out = "[";
  for (std::size_t i = 0; i < items.size(); ++i) out += (i ? ", " : "") + q(items[i]);
  return out + "]";
}

// A comment line's text: one line, whatever the value held.
std::string one_line(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c == '\n')
      out += "\\n";
    else if (static_cast<unsigned char>(c) < 0x20)
      out.push_back(' ');
    else
      out.push_back(c);
  }
  return out;
}

std::optional<bool> swan_bool(std::string_view v) {
  auto s = lower(v);
  if (s == "yes" || s == "true" || s == "enabled" || s == "1") return true;
  if (s == "no" || s == "false" || s == "disabled" || s == "0") return false;
  return std::nullopt;
}

// swanctl's time values: an integer with an optional s, m, h or d (mobiked's durations).
bool is_duration(std::string_view v) {
  if (v.empty()) return false;
  std::size_t i = 0;
  while (i < v.size() && std::isdigit(static_cast<unsigned char>(v[i]))) ++i;
  if (i == 0) return false;
  return i == v.size() || (i + 1 == v.size() && std::string_view("smhd").find(v[i]) != std::string_view::npos);
}

std::uint64_t duration_seconds(std::string_view v) {
  std::uint64_t n = 0;
  std::size_t i = 0;
  for (; i < v.size() && std::isdigit(static_cast<unsigned char>(v[i])); ++i) {
    if (n > (~std::uint64_t{0}) / 10 - 10) return ~std::uint64_t{0} / 100000;
    n = n * 10 + static_cast<std::uint64_t>(v[i] - '0');
  }
  std::uint64_t mult = 1;
  if (i < v.size()) mult = v[i] == 'm' ? 60 : v[i] == 'h' ? 3600 : v[i] == 'd' ? 86400 : 1;
  return n * mult;
}

std::string format_seconds(std::uint64_t s) {
  if (s && s % 86400 == 0) return std::to_string(s / 86400) + "d";
  if (s && s % 3600 == 0) return std::to_string(s / 3600) + "h";
  if (s && s % 60 == 0) return std::to_string(s / 60) + "m";
  return std::to_string(s) + "s";
}

bool valid_name(std::string_view s) {
  if (s.empty() || s.size() > 64) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-';
  });
}

std::string sanitize_name(std::string_view s) {
  std::string out;
  for (char c : s.substr(0, 64))
    out.push_back(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-' ? c : '_');
  return out.empty() ? std::string("unnamed") : out;
}

bool starts_with_word(std::string_view name, std::string_view prefix) { return name.starts_with(prefix); }

// --- proposals -------------------------------------------------------------------------

// strongSwan keywords mobiked knows, by strongSwan's spelling (aliases included).
struct Mapped {
  std::string_view swan;
  std::string_view ours;
};
constexpr std::array kSame = {
    Mapped{"aes128", "aes128"},         Mapped{"aes", "aes128"},
    Mapped{"aes256", "aes256"},         Mapped{"aes128gcm16", "aes128gcm16"},
    Mapped{"aes128gcm128", "aes128gcm16"}, Mapped{"aes128gcm", "aes128gcm16"},
    Mapped{"aes256gcm16", "aes256gcm16"}, Mapped{"aes256gcm128", "aes256gcm16"},
    Mapped{"aes256gcm", "aes256gcm16"}, Mapped{"chacha20poly1305", "chacha20poly1305"},
    Mapped{"sha256", "sha256"},         Mapped{"sha2_256", "sha256"},
    Mapped{"sha384", "sha384"},         Mapped{"sha2_384", "sha384"},
    Mapped{"sha512", "sha512"},         Mapped{"sha2_512", "sha512"},
    Mapped{"prfsha256", "prfsha256"},   Mapped{"prfsha2_256", "prfsha256"},
    Mapped{"prfsha384", "prfsha384"},   Mapped{"prfsha2_384", "prfsha384"},
    Mapped{"prfsha512", "prfsha512"},   Mapped{"prfsha2_512", "prfsha512"},
    Mapped{"modp2048", "modp2048"},     Mapped{"modp3072", "modp3072"},
    Mapped{"ecp256", "ecp256"},         Mapped{"ecp384", "ecp384"},
    Mapped{"x25519", "x25519"},         Mapped{"curve25519", "x25519"},
    Mapped{"esn", "esn"},               Mapped{"noesn", "noesn"},
};

bool is_integ(std::string_view ours) { return ours == "sha256" || ours == "sha384" || ours == "sha512"; }
bool is_aead(std::string_view ours) { return ours.find("gcm") != std::string_view::npos || ours == "chacha20poly1305"; }

}  // namespace

std::string convert_proposals(std::string_view swan, bool esp, std::vector<std::string>& why) {
  std::vector<std::string> kept;
  for (const auto& proposal : split_list(swan)) {
    std::string p = lower(proposal);
    if (!p.empty() && p.back() == '!') p.pop_back();  // ipsec.conf's "strict" mark
    if (p == "default") {
      why.push_back("'default' (strongSwan's default proposals) left to mobiked's default");
      continue;
    }
    std::vector<std::string> tokens;
    std::vector<std::string> dropped;
    std::size_t start = 0;
    while (start <= p.size()) {
      auto dash = p.find('-', start);
      if (dash == std::string::npos) dash = p.size();
      std::string tok = p.substr(start, dash - start);
      start = dash + 1;
      if (tok.empty()) continue;
      auto it = std::find_if(kSame.begin(), kSame.end(), [&](const Mapped& m) { return m.swan == tok; });
      if (it == kSame.end()) {
        dropped.push_back(tok);
        continue;
      }
      std::string ours(it->ours);
      if (std::find(tokens.begin(), tokens.end(), ours) == tokens.end()) tokens.push_back(ours);
    }
    // strongSwan reads an integrity keyword in an AEAD IKE proposal as the PRF.
    if (!esp && std::any_of(tokens.begin(), tokens.end(), [](const std::string& t) { return is_aead(t); }))
      for (auto& t : tokens)
        if (is_integ(t)) t = "prf" + t;
    std::string joined;
    for (const auto& t : tokens) joined += (joined.empty() ? "" : "-") + t;
    for (const auto& d : dropped)
      why.push_back("'" + d + "' in '" + proposal + "': mobiked does not support it");
    auto check = esp ? ike::parse_esp_proposals(joined) : ike::parse_ike_proposals(joined);
    if (joined.empty() || !check) {
      why.push_back("proposal '" + proposal + "' left out: " +
                    (joined.empty() ? std::string("no algorithm mobiked supports") : check.error()));
      continue;
    }
    if (std::find(kept.begin(), kept.end(), joined) == kept.end()) kept.push_back(joined);
  }
  std::string out;
  for (const auto& k : kept) out += (out.empty() ? "" : ", ") + k;
  return out;
}

std::string Omission::str() const {
  return where.str() + ": " + path + " = " + one_line(value) + ": not carried over: " + reason;
}

namespace {

// The secret of a swanctl secrets entry in mobiked's PSK form: "0x" hex, or text.
std::optional<std::string> psk_text(const std::string& secret) {
  if (secret.starts_with("0s")) {
    std::string b64 = secret.substr(2);
    std::string buf(b64.size() / 4 * 3 + 3, '\0');
    int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(buf.data()),
                            reinterpret_cast<const unsigned char*>(b64.data()), static_cast<int>(b64.size()));
    if (n < 0 || b64.size() % 4 != 0) return std::nullopt;
    // EVP_DecodeBlock counts the '=' padding as zero bytes.
    std::size_t len = static_cast<std::size_t>(n);
    for (auto it = b64.rbegin(); it != b64.rend() && *it == '=' && len; ++it) --len;
    static const char* kHex = "0123456789abcdef";
    std::string hex = "0x";
    for (std::size_t i = 0; i < len; ++i) {
      auto b = static_cast<unsigned char>(buf[i]);
      hex.push_back(kHex[b >> 4]);
      hex.push_back(kHex[b & 15]);
    }
    return hex;
  }
  if (secret.empty() || secret.find('\n') != std::string::npos) return std::nullopt;
  return secret;
}

struct SecretEntry {
  const Section* section;
  std::vector<std::string> ids;
  std::string secret;
  bool used = false;
};

// "fqdn:gw.example.org" -> "gw.example.org": mobiked infers the type from the text.
std::string strip_id_type(const std::string& id) {
  for (std::string_view prefix : {"fqdn:", "email:", "rfc822:", "userfqdn:", "ipv4:", "ipv6:", "asn1dn:", "dns:"})
    if (lower(id).starts_with(prefix)) return id.substr(prefix.size());
  return id;
}

std::optional<std::string> read_small_file(const fs::path& p) {
  std::error_code ec;
  if (!fs::is_regular_file(p, ec) || fs::file_size(p, ec) > (1u << 20)) return std::nullopt;
  std::ifstream in(p, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  if (!in && !in.eof()) return std::nullopt;
  return ss.str();
}

std::vector<fs::path> files_in(const fs::path& dir) {
  std::vector<fs::path> out;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec))
    if (it->is_regular_file(ec)) out.push_back(it->path());
  std::sort(out.begin(), out.end());
  return out;
}

// Settings of the form "key = value" mobiked does the same as when it is left out.
struct Harmless {
  std::string_view key;
  std::string_view value;  // lower case; "*": any value
};
constexpr std::array kHarmlessConn = {
    Harmless{"version", "0"},      Harmless{"version", "2"},     Harmless{"unique", "no"},
    Harmless{"aggressive", "no"},  Harmless{"pull", "yes"},      Harmless{"reauth_time", "0"},
    Harmless{"reauth_time", "0s"}, Harmless{"dpd_timeout", "*"},  // IKEv1 only
    Harmless{"local_port", "500"}, Harmless{"childless", "allow"}, Harmless{"keyingtries", "1"},
};
constexpr std::array kHarmlessChild = {
    Harmless{"mode", "tunnel"},       Harmless{"ipcomp", "no"},        Harmless{"hostaccess", "no"},
    Harmless{"policies", "yes"},      Harmless{"dpd_action", "clear"}, Harmless{"dpd_action", "none"},
    Harmless{"close_action", "none"}, Harmless{"start_action", "none"}, Harmless{"sha256_96", "no"},
    Harmless{"inactivity", "0"},      Harmless{"reqid", "0"},          Harmless{"priority", "0"},
    Harmless{"rand_time", "0"},       Harmless{"rand_bytes", "0"},     Harmless{"rand_packets", "0"},
};

template <std::size_t N>
bool harmless(const std::array<Harmless, N>& table, const Setting& s) {
  const std::string v = lower(s.value);
  return std::any_of(table.begin(), table.end(),
                     [&](const Harmless& h) { return h.key == s.key && (h.value == "*" || h.value == v); });
}

// One [[connection]] (or [[pool]]) being written: its lines, and what it could not take.
struct Block {
  Location where;
  std::string path;
  std::vector<std::string> lines;
  std::vector<Omission> omissions;
  bool skipped = false;
  std::string skip_reason;
};

class Importer {
 public:
  Importer(const Section& root, const ImportOptions& opt) : root_(root), opt_(opt) {}

  ImportResult run() {
    const Location top{root_.where.file, 0};
    collect_secrets();
    std::vector<Block> pools, conns;
    for (const auto& s : root_.settings)
      global_.push_back({s.where, s.key, s.value, "swanctl.conf has no top-level settings mobiked knows"});
    for (const auto& sec : root_.sections) {
      if (sec.name == "pools") {
        for (const auto& p : sec.sections) pools.push_back(pool(p));
        unknown_settings(sec, "pools", global_);
      } else if (sec.name == "connections" || sec.name == "secrets") {
        // below
      } else if (sec.name == "authorities") {
        for (const auto& a : sec.sections)
          global_.push_back({a.where, "authorities." + a.name, "{...}",
                             "mobiked has no authorities (CRL/OCSP URIs); trust anchors are each connection's cacerts"});
      } else {
        global_.push_back({sec.where, sec.name, "{...}", "not a section of swanctl.conf that mobiked knows"});
      }
    }
    if (const Section* cs = root_.section("connections")) {
      for (const auto& c : cs->sections) conns.push_back(connection(c));
      unknown_settings(*cs, "connections", global_);
    }
    // Secrets no connection took.
    auto unused = [&](std::vector<SecretEntry>& list, const std::string& why) {
      for (const auto& e : list)
        if (!e.used)
          global_.push_back({e.section->where, "secrets." + e.section->name, "{...}", why});
    };
    unused(ike_secrets_, "no converted connection authenticates by PSK with its identities");
    unused(eap_secrets_, "no converted connection uses EAP with a password");

    ImportResult r;
    std::ostringstream out;
    out << "# mobiked configuration converted from " << root_.where.file << " by mobikectl import-swanctl.\n";
    auto all = [&](const std::vector<Block>& blocks, std::vector<Omission>& into) {
      for (const auto& b : blocks) into.insert(into.end(), b.omissions.begin(), b.omissions.end());
    };
    // A block left out whole is itself an omission, after what made it so.
    for (auto* blocks : {&pools, &conns})
      for (auto& b : *blocks)
        if (b.skipped) b.omissions.push_back({b.where, b.path, "{...}", "left out: " + b.skip_reason});
    std::vector<Omission> every = global_;
    all(pools, every);
    all(conns, every);
    if (every.empty())
      out << "# Every setting was carried over.\n";
    else
      out << "# " << every.size() << " setting(s) could not be carried over; each is listed where it belonged.\n";
    for (const auto& o : global_) out << "# " << one_line(o.str()) << "\n";
    out << "\n[daemon]\n"
        << "dataplane = \"xfrm\"               # the kernel does ESP, as with strongSwan's kernel-netlink\n";
    auto emit = [&](const std::vector<Block>& blocks) {
      for (const auto& b : blocks) {
        out << "\n";
        for (const auto& o : b.omissions) out << "# " << one_line(o.str()) << "\n";
        if (b.skipped) continue;
        for (const auto& l : b.lines) out << l << "\n";
      }
    };
    emit(pools);
    emit(conns);
    r.toml = out.str();
    r.omissions = std::move(every);
    r.secret_files = std::move(files_);
    return r;
  }

 private:
  void collect_secrets() {
    const Section* s = root_.section("secrets");
    if (!s) return;
    unknown_settings(*s, "secrets", global_);
    for (const auto& e : s->sections) {
      SecretEntry entry{&e, {}, {}};
      for (const auto& st : e.settings) {
        if (st.key.starts_with("id"))
          entry.ids.push_back(strip_id_type(st.value));
        else if (st.key == "secret")
          entry.secret = st.value;
      }
      const std::string path = "secrets." + e.name;
      if (e.name.starts_with("ike")) {
        ike_secrets_.push_back(std::move(entry));
      } else if (e.name.starts_with("eap") || e.name.starts_with("xauth")) {
        if (e.name.starts_with("xauth"))
          global_.push_back({e.where, path, "{...}", "mobiked has no XAuth (IKEv1)"});
        else if (entry.ids.empty())
          global_.push_back({e.where, path, "{...}", "an EAP secret without id: mobiked looks passwords up by EAP identity"});
        else
          eap_secrets_.push_back(std::move(entry));
      } else if (e.name.starts_with("private") || e.name.starts_with("rsa") || e.name.starts_with("ecdsa") ||
                 e.name.starts_with("pkcs8") || e.name.starts_with("pkcs12")) {
        global_.push_back({e.where, path, "{...}",
                           "mobiked reads unencrypted PEM keys only (local_key): decrypt it, e.g. "
                           "`openssl pkey -in KEY -out KEY.pem`, and the converter finds it in private/"});
      } else {
        global_.push_back({e.where, path, "{...}", "mobiked has no such secret (ntlm, token, ppk are not supported)"});
      }
    }
  }

  void unknown_settings(const Section& s, const std::string& path, std::vector<Omission>& into) {
    for (const auto& st : s.settings)
      into.push_back({st.where, path + "." + st.key, st.value, "not a setting mobiked knows here"});
  }

  // --- pools ---------------------------------------------------------------------------

  Block pool(const Section& p) {
    Block b;
    const std::string path = "pools." + p.name;
    b.where = p.where;
    b.path = path;
    std::string name = p.name;
    if (!valid_name(name)) {
      name = sanitize_name(name);
      b.omissions.push_back({p.where, path, p.name, "name renamed to '" + name + "' (mobiked's names are letters, digits, '.', '_', '-')"});
    }
    b.lines.push_back("[[pool]]");
    b.lines.push_back("name = " + q(name));
    bool have_addrs = false;
    for (const auto& s : p.settings) {
      const std::string kp = path + "." + s.key;
      if (s.key == "addrs") {
        auto items = split_list(s.value);
        for (std::size_t i = 0; i < items.size(); ++i) {
          const auto& a = items[i];
          if (a == "dhcp" || a == "radius") {
            b.omissions.push_back({s.where, kp, s.value, "'" + a + "': mobiked's pools are address ranges it hands out itself"});
            continue;
          }
          if (have_addrs) {
            b.omissions.push_back({s.where, kp, s.value, "'" + a + "': a mobiked pool is one prefix or range; list a second [[pool]] in the connection's pools"});
            continue;
          }
          std::string err;
          if (!ike::PoolConfig::parse_range(name, a, err)) {
            b.omissions.push_back({s.where, kp, s.value, "'" + a + "': " + err});
            continue;
          }
          b.lines.push_back("addrs = " + q(a));
          have_addrs = true;
        }
      } else if (s.key == "dns") {
        std::vector<std::string> dns;
        for (const auto& a : split_list(s.value)) {
          if (IpAddress::parse(a))
            dns.push_back(a);
          else
            b.omissions.push_back({s.where, kp, s.value, "'" + a + "' is not an IP address"});
        }
        if (!dns.empty()) b.lines.push_back("dns = " + qlist(dns));
      } else {
        b.omissions.push_back({s.where, kp, s.value, "mobiked's pools carry addresses and DNS servers only"});
      }
    }
    for (const auto& sub : p.sections)
      b.omissions.push_back({sub.where, path + "." + sub.name, "{...}", "not a section of a pool"});
    if (!have_addrs) {
      b.skipped = true;
      b.skip_reason = "pool '" + p.name + "': no address range mobiked can hand out";
    } else {
      pools_.insert(p.name);
      pool_names_[p.name] = name;
    }
    return b;
  }

  // --- connections -----------------------------------------------------------------------

  struct Round {
    const Section* s = nullptr;
    std::string auth = "pubkey";  // swanctl's default
  };

  void skip(Block& b, const std::string& why) {
    if (!b.skipped) {
      b.skipped = true;
      b.skip_reason = why;
    }
  }

  std::string local_ts_item(const std::string& item, bool& ok) {
    ok = true;
    if (item == "dynamic") return item;
    if (item.find('[') != std::string::npos) {
      ok = false;
      return "a protocol/port restriction: mobiked's selectors are whole prefixes";
    }
    if (item.find('-') != std::string::npos && !IpPrefix::parse(item)) {
      ok = false;
      return "an address range: mobiked's selectors are prefixes";
    }
    if (auto p = IpPrefix::parse(item)) return p->to_string();
    if (auto a = IpAddress::parse(item)) return a->to_string() + (a->is_v4() ? "/32" : "/128");
    ok = false;
    return "not a prefix, an address or dynamic";
  }

  Block connection(const Section& c) {
    Block b;
    const std::string path = "connections." + c.name;
    b.where = c.where;
    b.path = path;
    std::string name = c.name;
    if (!valid_name(name)) {
      name = sanitize_name(name);
      b.omissions.push_back({c.where, path, c.name, "name renamed to '" + name + "' (mobiked's names are letters, digits, '.', '_', '-')"});
    }
    auto& L = b.lines;
    L.push_back("[[connection]]");
    L.push_back("name = " + q(name));
    auto omit = [&](const Setting& s, const std::string& why, const std::string& p = "") {
      b.omissions.push_back({s.where, p.empty() ? path + "." + s.key : p, s.value, why});
    };
    if (!c.refs.empty())
      b.omissions.push_back({c.where, path, ": " + c.refs.front() + " ...",
                             "section references (templates) are not followed; copy their settings in"});

    std::optional<std::string> rekey, over;
    const Setting* rekey_where = nullptr;
    bool dpd_set = false;
    std::vector<std::string> local_addrs, remote_addrs;
    bool remote_has_address = false;
    for (const auto& s : c.settings) {
      const std::string& k = s.key;
      if (k == "version") {
        if (s.value == "1") skip(b, "connection '" + c.name + "': IKEv1 (version = 1); mobiked speaks IKEv2 only");
        else if (!harmless(kHarmlessConn, s)) omit(s, "not an IKE version");
      } else if (k == "local_addrs") {
        for (const auto& a : split_list(s.value)) {
          if (a == "%any") continue;
          if (auto ip = IpAddress::parse(a))
            local_addrs.push_back(ip->to_string());
          else
            omit(s, "'" + a + "': mobiked's local_addrs are addresses (or %any), not prefixes, ranges or names");
        }
      } else if (k == "remote_addrs") {
        for (const auto& a : split_list(s.value)) {
          if (a == "%any") {
            remote_addrs.push_back(a);
          } else if (a == "%any4" || a == "%any6") {
            remote_addrs.push_back("%any");
            omit(s, "'" + a + "' carried as %any: mobiked does not restrict a peer's address family");
          } else if (auto ip = IpAddress::parse(a)) {
            remote_addrs.push_back(ip->to_string());
            remote_has_address = true;
          } else if (auto p = IpPrefix::parse(a)) {
            remote_addrs.push_back(p->to_string());
          } else if (a.find('-') != std::string::npos && std::isdigit(static_cast<unsigned char>(a[0])) &&
                     a.find_first_of(".:") < a.find('-')) {
            omit(s, "'" + a + "': an address range; mobiked takes addresses, prefixes, DNS names or %any");
          } else {
            remote_addrs.push_back(a);  // a DNS name; mobiked checks it
          }
        }
      } else if (k == "remote_port") {
        const bool digits = !s.value.empty() && s.value.size() <= 5 &&
                            std::all_of(s.value.begin(), s.value.end(), [](char ch) { return std::isdigit(static_cast<unsigned char>(ch)); });
        if (digits && std::stoi(s.value) >= 1 && std::stoi(s.value) <= 65535)
          L.push_back("remote_port = " + s.value);
        else
          omit(s, "not a port number");
      } else if (k == "proposals") {
        std::vector<std::string> why;
        std::string p = convert_proposals(s.value, false, why);
        for (const auto& w : why) {
          if (w.starts_with("'default'"))
            L.push_back("# proposals = default: mobiked's default IKE proposal (aes128gcm16-prfsha256-x25519)");
          else
            omit(s, w);
        }
        const bool only_default = std::all_of(why.begin(), why.end(), [](const std::string& w) { return w.starts_with("'default'"); });
        if (!p.empty()) L.push_back("ike_proposals = " + q(p));
        else if (!only_default) omit(s, "no proposal left: mobiked's default is used");
      } else if (k == "mobike" || k == "encap" || k == "send_certreq") {
        auto v = swan_bool(s.value);
        if (!v) omit(s, "not yes or no");
        else L.push_back(std::string(k == "mobike" ? "mobike" : k == "encap" ? "encap" : "send_certreq") + " = " + (*v ? "true" : "false"));
      } else if (k == "fragmentation") {
        auto v = lower(s.value);
        if (v == "yes" || v == "accept") L.push_back("fragmentation = true");
        else if (v == "no") L.push_back("fragmentation = false");
        else if (v == "force") {
          L.push_back("fragmentation = true");
          omit(s, "'force' carried as true: mobiked fragments only when the peer announced support");
        } else omit(s, "not yes, accept, force or no");
      } else if (k == "send_cert") {
        auto v = lower(s.value);
        if (v == "always" || v == "ifasked" || v == "never") L.push_back("send_cert = " + q(v));
        else omit(s, "not always, ifasked or never");
      } else if (k == "dpd_delay") {
        if (is_duration(s.value)) {
          L.push_back("dpd_delay = " + q(s.value));
          dpd_set = true;
        } else omit(s, "not a duration");
      } else if (k == "rekey_time") {
        if (is_duration(s.value)) {
          rekey = s.value;
          rekey_where = &s;
        } else omit(s, "not a duration");
      } else if (k == "over_time") {
        if (is_duration(s.value)) over = s.value;
        else omit(s, "not a duration");
      } else if (k == "reauth_time") {
        if (!harmless(kHarmlessConn, s))
          omit(s, "mobiked rekeys IKE SAs (rekey_time) and never reauthenticates them");
      } else if (k == "rand_time") {
        omit(s, "mobiked rekeys at rekey_time without random jitter");
      } else if (k == "pools") {
        std::vector<std::string> names;
        for (const auto& p : split_list(s.value)) {
          if (pools_.count(p))
            names.push_back(pool_names_[p]);
          else
            omit(s, "'" + p + "': no such pool was converted (see pools)");
        }
        if (!names.empty()) L.push_back("pools = " + qlist(names));
      } else if (k == "vips") {
        std::vector<std::string> v;
        for (const auto& a : split_list(s.value)) {
          if (auto ip = IpAddress::parse(a)) v.push_back(ip->to_string());
          else omit(s, "'" + a + "' is not an IP address");
        }
        if (!v.empty()) L.push_back("vips = " + qlist(v));
      } else if (harmless(kHarmlessConn, s)) {
        // what mobiked does anyway
      } else {
        omit(s, "mobiked has no such setting");
      }
    }
    if (!local_addrs.empty()) L.insert(L.begin() + 2, "local_addrs = " + qlist(local_addrs));
    if (!remote_addrs.empty()) L.insert(L.begin() + (local_addrs.empty() ? 2 : 3), "remote_addrs = " + qlist(remote_addrs));
    // strongSwan's DPD is off unless dpd_delay is set; mobiked's default is 30s.
    if (!dpd_set) L.push_back("dpd_delay = \"0s\"                # strongSwan's default: no DPD");
    if (rekey) L.push_back("rekey_time = " + q(*rekey));
    if (over && rekey_where) {
      std::uint64_t r = duration_seconds(*rekey);
      if (r) L.push_back("lifetime = " + q(format_seconds(r + duration_seconds(*over))) + "  # rekey_time + over_time");
    } else if (over) {
      // over_time on strongSwan's default rekey_time of 4h.
      L.push_back("lifetime = " + q(format_seconds(4 * 3600 + duration_seconds(*over))) + "  # 4h (rekey_time) + over_time");
    }

    // Authentication rounds: sections local*, remote*.
    std::vector<const Section*> locals, remotes;
    const Section* children = nullptr;
    for (const auto& sub : c.sections) {
      if (sub.name == "children")
        children = &sub;
      else if (starts_with_word(sub.name, "local"))
        locals.push_back(&sub);
      else if (starts_with_word(sub.name, "remote"))
        remotes.push_back(&sub);
      else
        b.omissions.push_back({sub.where, path + "." + sub.name, "{...}", "not a section of a connection"});
    }
    for (std::size_t i = 1; i < locals.size(); ++i)
      b.omissions.push_back({locals[i]->where, path + "." + locals[i]->name, "{...}",
                             "a second authentication round (RFC 4739): mobiked authenticates once per side"});
    for (std::size_t i = 1; i < remotes.size(); ++i)
      b.omissions.push_back({remotes[i]->where, path + "." + remotes[i]->name, "{...}",
                             "a second authentication round (RFC 4739): mobiked authenticates once per side"});
    const Section* local = locals.empty() ? nullptr : locals.front();
    const Section* remote = remotes.empty() ? nullptr : remotes.front();
    auth(b, c.name, path, local, remote, local_addrs);

    // Children.
    std::optional<std::string> start;
    std::string start_from;
    if (children) {
      unknown_settings(*children, path + ".children", b.omissions);
      std::size_t n = 0;
      for (const auto& ch : children->sections)
        if (child(b, path + ".children." + ch.name, ch, start, start_from)) ++n;
      if (n == 0) skip(b, "connection '" + c.name + "': no child could be converted");
    }
    if (start) {
      if (*start == "trap" && !remote_has_address)
        b.omissions.push_back({c.where, path, start_from, "start_action = trap needs an address in remote_addrs"});
      else if (*start == "initiate" && !remote_has_address &&
               std::none_of(remote_addrs.begin(), remote_addrs.end(), [](const std::string& a) {
                 return a != "%any" && !IpPrefix::parse(a);
               }))
        b.omissions.push_back({c.where, path, start_from, "start_action = start needs an address or a name in remote_addrs"});
      else
        // Before the children: a key after [[connection.child]] would belong to the child.
      {
        auto at = std::find(L.begin(), L.end(), std::string("  [[connection.child]]"));
        if (at != L.begin() && at != L.end() && (at - 1)->empty()) --at;  // above the child's blank line
        L.insert(at, "start = " + q(*start));
      }
    }
    return b;
  }

  std::optional<std::string> map_auth(const std::string& v, std::string& note) {
    auto a = lower(v);
    if (a == "psk" || a == "pubkey" || a == "eap-mschapv2" || a == "eap-tls" || a == "rsa/pss") return a;
    for (std::string_view p : {"pubkey-", "rsa-", "ecdsa-", "rsa/pss-", "ed25519", "ed448"}) {
      if (a.starts_with(p)) {
        note = "'" + v + "' carried as pubkey: mobiked does not restrict the signature scheme";
        return a.starts_with("rsa/pss") ? "rsa/pss" : "pubkey";
      }
    }
    if (a == "rsa" || a == "ecdsa") return std::string("pubkey");
    return std::nullopt;
  }

  std::optional<fs::path> find_key(const fs::path& cert_path) {
    auto text = read_small_file(cert_path);
    if (!text) return std::nullopt;
    auto certs = crypto::Certificate::from_pem(*text);
    if (!certs || certs->empty()) return std::nullopt;
    const Bytes want = certs->front()->public_key().der();
    for (const char* dir : {"private", "rsa", "ecdsa", "pkcs8"}) {
      for (const auto& f : files_in(fs::path(opt_.swanctl_dir) / dir)) {
        auto k = read_small_file(f);
        if (!k) continue;
        auto key = crypto::PrivateKey::from_pem(*k);
        if (key && (*key)->public_key_der() == want) return f;
      }
    }
    return std::nullopt;
  }

  fs::path resolve(const std::string& name, const char* dir) {
    fs::path p(name);
    if (p.is_relative()) p = fs::path(opt_.swanctl_dir) / dir / p;
    return p.lexically_normal();
  }

  void auth(Block& b, const std::string& cname, const std::string& path, const Section* local,
            const Section* remote, const std::vector<std::string>& local_addrs) {
    auto& L = b.lines;
    std::string local_auth = "pubkey", remote_auth = "pubkey";
    std::string local_id, remote_id, local_eap_id, remote_eap_id;
    std::vector<std::string> certs, cacerts;
    const Setting* local_auth_s = nullptr;
    auto side = [&](const Section* s, bool is_local) {
      if (!s) return;
      const std::string sp = path + "." + s->name;
      for (const auto& st : s->settings) {
        const std::string kp = sp + "." + st.key;
        if (st.key == "auth") {
          std::string note;
          auto a = map_auth(st.value, note);
          if (!a) {
            skip(b, "connection '" + cname + "': " + (is_local ? "local" : "remote") + " auth = " + st.value +
                        " (mobiked authenticates by psk, pubkey, rsa/pss, eap-mschapv2 or eap-tls)");
            b.omissions.push_back({st.where, kp, st.value, "mobiked has no such authentication method; the connection is left out"});
            continue;
          }
          if (!note.empty()) b.omissions.push_back({st.where, kp, st.value, note});
          (is_local ? local_auth : remote_auth) = *a;
          if (is_local) local_auth_s = &st;
        } else if (st.key == "id") {
          (is_local ? local_id : remote_id) = strip_id_type(st.value);
        } else if (st.key == "eap_id") {
          (is_local ? local_eap_id : remote_eap_id) = st.value;
        } else if (st.key == "certs" && is_local) {
          for (const auto& f : split_list(st.value)) certs.push_back(resolve(f, "x509").string());
        } else if (st.key == "cacerts" && !is_local) {
          for (const auto& f : split_list(st.value)) cacerts.push_back(resolve(f, "x509ca").string());
        } else if (st.key == "round") {
          // one round per side
        } else if (st.key == "revocation" && lower(st.value) == "relaxed") {
          // what mobiked does with crls
        } else {
          b.omissions.push_back({st.where, kp, st.value, "mobiked has no such setting for an authentication round"});
        }
      }
      for (const auto& sub : s->sections)
        b.omissions.push_back({sub.where, sp + "." + sub.name, "{...}", "not a section of an authentication round"});
    };
    side(local, true);
    side(remote, false);
    (void)local_auth_s;
    if (b.skipped) return;

    if (local_auth == remote_auth) {
      L.push_back("auth = " + q(local_auth));
    } else {
      L.push_back("local_auth = " + q(local_auth));
      L.push_back("remote_auth = " + q(remote_auth));
    }
    const bool local_eap = local_auth.starts_with("eap-"), remote_eap = remote_auth.starts_with("eap-");
    if (local_eap && remote_eap) {
      skip(b, "connection '" + cname + "': EAP on both sides; mobiked's gateway authenticates by pubkey or psk");
      return;
    }
    if (!local_id.empty() && local_id != "%any") {
      if (!ike::Identity::parse(local_id)) {
        skip(b, "connection '" + cname + "': local id '" + local_id + "' is not an identity mobiked understands");
        return;
      }
      L.push_back("local_id = " + q(local_id));
    } else if (certs.empty() && local_addrs.size() != 1) {
      skip(b, "connection '" + cname + "': no local id, and not exactly one local address to take it from "
              "(strongSwan takes the address it sends from; mobiked needs local_id)");
      return;
    }
    if (!remote_id.empty() && remote_id != "%any") {
      if (!ike::Identity::parse(remote_id)) {
        skip(b, "connection '" + cname + "': remote id '" + remote_id + "' is not an identity mobiked understands "
                "(leaving it out would accept any peer)");
        return;
      }
      L.push_back("remote_id = " + q(remote_id));
    }

    // Certificates and keys (pubkey and EAP-TLS).
    const bool local_cert = local_auth == "pubkey" || local_auth == "rsa/pss" || local_auth == "eap-tls";
    const bool remote_cert = remote_auth == "pubkey" || remote_auth == "rsa/pss" || remote_auth == "eap-tls";
    if (local_cert || (remote_auth == "eap-tls")) {
      if (certs.empty()) {
        skip(b, "connection '" + cname + "': we authenticate with a certificate, and local certs names none");
        return;
      }
      auto key = find_key(certs.front());
      if (!key) {
        skip(b, "connection '" + cname + "': no unencrypted private key for " + certs.front() + " in " +
                    opt_.swanctl_dir + "/{private,rsa,ecdsa,pkcs8}");
        return;
      }
      L.push_back("local_certs = " + qlist(certs));
      L.push_back("local_key = " + q(key->string()));
    }
    if (remote_cert || local_auth == "eap-tls") {
      if (cacerts.empty())  // swanctl trusts every CA it loaded from x509ca/
        for (const auto& f : files_in(fs::path(opt_.swanctl_dir) / "x509ca")) {
          auto text = read_small_file(f);
          auto parsed = text ? crypto::Certificate::from_pem(*text) : decltype(crypto::Certificate::from_pem("")){
                                                                           unexpected(std::string())};
          if (parsed && !parsed->empty()) cacerts.push_back(f.string());
          else
            b.omissions.push_back({Location{f.string(), 0}, path + ".remote.cacerts", f.filename().string(),
                                   "not a PEM certificate (mobiked reads PEM only)"});
        }
      if (cacerts.empty()) {
        skip(b, "connection '" + cname + "': the peer authenticates with a certificate, and there is no CA "
                "certificate (remote cacerts, or " + opt_.swanctl_dir + "/x509ca) to check it with");
        return;
      }
      L.push_back("cacerts = " + qlist(cacerts));
      std::vector<std::string> crls;
      for (const auto& f : files_in(fs::path(opt_.swanctl_dir) / "x509crl")) crls.push_back(f.string());
      if (!crls.empty()) L.push_back("crls = " + qlist(crls));
    }

    // Secrets, by reference.
    if (local_auth == "psk" || remote_auth == "psk") {
      // strongSwan's choice: the entry matching most of our two identities; one without
      // ids matches any.
      const std::string my_id = !local_id.empty() ? local_id : local_addrs.empty() ? "" : local_addrs.front();
      SecretEntry* best = nullptr;
      int best_score = -1;
      for (auto& e : ike_secrets_) {
        int score = 0;
        bool mismatch = false;
        for (const auto& id : e.ids) {
          if (id == my_id || (!remote_id.empty() && id == remote_id)) ++score;
          else if (id != "%any") mismatch = true;
        }
        if (mismatch && score == 0) continue;
        if (score > best_score) {
          best = &e;
          best_score = score;
        }
      }
      if (!best) {
        skip(b, "connection '" + cname + "': authenticates by PSK and no ike secret matches its identities");
        return;
      }
      auto text = psk_text(best->secret);
      if (!text) {
        skip(b, "connection '" + cname + "': the secret of secrets." + best->section->name + " is empty or not valid base64");
        return;
      }
      best->used = true;
      const std::string file = sanitize_name(cname) + ".psk";
      add_file(b, file, *text + "\n", best->section->where, "secrets." + best->section->name);
      L.push_back("psk_file = " + q(ref(file)));
    }
    if (local_eap || remote_eap) {
      const std::string& eap_id = local_eap ? local_eap_id : remote_eap_id;
      if (!eap_id.empty()) L.push_back("eap_id = " + q(eap_id));
      if (local_auth == "eap-mschapv2" || remote_auth == "eap-mschapv2") {
        if (eap_secrets_.empty()) {
          skip(b, "connection '" + cname + "': EAP-MSCHAPv2 and no eap secret to authenticate with");
          return;
        }
        std::string content;
        for (auto& e : eap_secrets_) {
          e.used = true;
          for (const auto& id : e.ids) {
            auto esc = [](const std::string& s) {
              std::string o;
              for (char ch : s) {
                if (ch == '"' || ch == '\\') o.push_back('\\');
                o.push_back(ch);
              }
              return "\"" + o + "\"";
            };
            content += esc(id) + " : EAP " + esc(e.secret) + "\n";
          }
        }
        add_file(b, "eap.secrets", content, root_.where, "secrets.eap*");
        L.push_back("eap_secrets = " + q(ref("eap.secrets")));
      }
    }
  }

  std::string ref(const std::string& file) {
    if (!opt_.secrets_ref_dir.empty()) return (fs::path(opt_.secrets_ref_dir) / file).string();
    if (!opt_.secrets_dir.empty()) return (fs::path(opt_.secrets_dir) / file).string();
    return file;
  }

  void add_file(Block& b, const std::string& name, const std::string& content, const Location& where,
                const std::string& path) {
    if (opt_.secrets_dir.empty())
      b.omissions.push_back({where, path, "<secret>", "not written: give -o or --secrets-dir to write " + name + " (mode 0600)"});
    for (const auto& f : files_)
      if (f.name == name) return;
    files_.push_back({name, content});
  }

  bool child(Block& b, const std::string& path, const Section& ch, std::optional<std::string>& start,
             std::string& start_from) {
    std::vector<std::string> lines;
    std::string name = ch.name;
    const std::size_t before = b.omissions.size();
    if (!valid_name(name)) {
      name = sanitize_name(name);
      b.omissions.push_back({ch.where, path, ch.name, "child renamed to '" + name + "'"});
    }
    lines.push_back("  [[connection.child]]");
    lines.push_back("  name = " + q(name));
    bool ok = true;
    auto omit = [&](const Setting& s, const std::string& why) { b.omissions.push_back({s.where, path + "." + s.key, s.value, why}); };
    std::optional<std::string> rekey, life;
    for (const auto& s : ch.settings) {
      const std::string& k = s.key;
      if (k == "local_ts" || k == "remote_ts") {
        std::vector<std::string> ts;
        auto items = split_list(s.value);
        for (const auto& item : items) {
          bool good = false;
          std::string r = local_ts_item(item, good);
          if (good) ts.push_back(r);
          else omit(s, "'" + item + "': " + r);
        }
        if (ts.empty() && !items.empty()) {
          omit(s, "no selector left; the child is left out rather than narrowed to the IKE addresses");
          ok = false;
        } else if (!ts.empty()) {
          lines.push_back("  " + k + " = " + qlist(ts));
        }
      } else if (k == "esp_proposals") {
        std::vector<std::string> why;
        std::string p = convert_proposals(s.value, true, why);
        for (const auto& w : why) {
          if (w.starts_with("'default'")) lines.push_back("  # esp_proposals = default: mobiked's default (aes128gcm16)");
          else omit(s, w);
        }
        if (!p.empty()) lines.push_back("  esp_proposals = " + q(p));
      } else if (k == "ah_proposals") {
        omit(s, "mobiked does ESP only, no AH; the child is left out");
        ok = false;
      } else if (k == "mode") {
        if (lower(s.value) != "tunnel") {
          omit(s, "mobiked makes tunnel mode SAs only; the child is left out");
          ok = false;
        }
      } else if (k == "rekey_time") {
        if (is_duration(s.value)) rekey = s.value; else omit(s, "not a duration");
      } else if (k == "life_time") {
        if (is_duration(s.value)) life = s.value; else omit(s, "not a duration");
      } else if (k == "rekey_bytes" || k == "life_bytes" || k == "rekey_packets" || k == "life_packets") {
        bool digits = !s.value.empty() && std::all_of(s.value.begin(), s.value.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)); });
        bool suffixed = !digits && s.value.size() > 1 && k.ends_with("bytes") &&
                        std::string_view("KkMG").find(s.value.back()) != std::string_view::npos &&
                        std::all_of(s.value.begin(), s.value.end() - 1, [](char c) { return std::isdigit(static_cast<unsigned char>(c)); });
        if (digits) lines.push_back("  " + k + " = " + s.value);
        else if (suffixed) lines.push_back("  " + k + " = " + q(s.value));
        else omit(s, "not a count");
      } else if (k == "start_action") {
        auto v = lower(s.value);
        std::optional<std::string> ours;
        if (v == "start") ours = "initiate";
        else if (v == "trap") ours = "trap";
        else if (v == "trap|start" || v == "start|trap") {
          ours = "initiate";
          omit(s, "carried as start = \"initiate\": mobiked starts a connection one way");
        } else if (v != "none") omit(s, "not none, trap or start");
        if (ours) {
          if (!start) {
            start = *ours;
            start_from = "start_action = " + s.value;
          } else if (*start != *ours) {
            omit(s, "mobiked starts a whole connection one way (start = \"" + *start + "\", from another child)");
          }
        }
      } else if (k == "dpd_action" || k == "close_action") {
        if (!harmless(kHarmlessChild, s))
          omit(s, "mobiked has no " + k + ": a dead or closed SA is deleted (strongSwan's 'clear'); "
                  "use start = \"trap\" to set it up again on traffic");
      } else if (harmless(kHarmlessChild, s)) {
        // what mobiked does anyway
      } else {
        omit(s, "mobiked has no such setting for a child");
      }
    }
    for (const auto& sub : ch.sections)
      b.omissions.push_back({sub.where, path + "." + sub.name, "{...}", "not a section of a child"});
    if (rekey) lines.push_back("  rekey_time = " + q(*rekey));
    if (life) {
      if (rekey && duration_seconds(*life) <= duration_seconds(*rekey) && duration_seconds(*rekey) != 0) {
        b.omissions.push_back({ch.where, path + ".life_time", *life, "not longer than rekey_time: mobiked's default (rekey_time + 10%) is used"});
      } else if (!rekey && duration_seconds(*life) <= 3600) {
        b.omissions.push_back({ch.where, path + ".life_time", *life, "not longer than the default rekey_time (1h): mobiked's default is used"});
      } else {
        lines.push_back("  lifetime = " + q(*life));
      }
    }
    if (!ok) {
      b.omissions.push_back({ch.where, path, "{...}", "child left out (see above)"});
      return false;
    }
    (void)before;
    b.lines.push_back("");
    b.lines.insert(b.lines.end(), lines.begin(), lines.end());
    return true;
  }

  const Section& root_;
  const ImportOptions& opt_;
  std::vector<Omission> global_;
  std::vector<SecretEntry> ike_secrets_, eap_secrets_;
  std::set<std::string> pools_;
  std::map<std::string, std::string> pool_names_;
  std::vector<SecretFile> files_;
};

}  // namespace

ImportResult import_config(const Section& root, const ImportOptions& options) {
  Importer imp(root, options);
  return imp.run();
}

Expected<bool, std::string> write_secret_files(const ImportResult& result, const std::string& dir) {
  for (const auto& f : result.secret_files) {
    const std::string path = (fs::path(dir) / f.name).string();
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) return unexpected(path + ": cannot write: " + std::strerror(errno));
    bool ok = ::fchmod(fd, 0600) == 0;
    std::size_t off = 0;
    while (ok && off < f.content.size()) {
      ssize_t n = ::write(fd, f.content.data() + off, f.content.size() - off);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) ok = false;
      else off += static_cast<std::size_t>(n);
    }
    int err = errno;
    if (::close(fd) != 0) ok = false;
    if (!ok) return unexpected(path + ": cannot write: " + std::strerror(err));
  }
  return true;
}

}  // namespace mobike::tools::swanctl
