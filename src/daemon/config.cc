#include "daemon/config.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <map>
#include <span>
#include <sstream>
#include <toml++/toml.h>

#include "daemon/config_keys.h"
#include "daemon/config_value.h"
#include "ike/authenticator.h"
#include "ike/proposal_string.h"

namespace mobike::daemon {
namespace {

using config::ConnectionDraft;
using config::Key;
using config::Value;

std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diag = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      std::size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

std::string format_duration(ike::Duration d) {
  auto ms = d.count();
  if (ms % 1000) return std::to_string(ms) + "ms";
  auto s = ms / 1000;
  if (s && s % 86400 == 0) return std::to_string(s / 86400) + "d";
  if (s && s % 3600 == 0) return std::to_string(s / 3600) + "h";
  if (s && s % 60 == 0) return std::to_string(s / 60) + "m";
  return std::to_string(s) + "s";
}

class Loader {
 public:
  Loader(std::string file, std::filesystem::path base_dir)
      : file_(file), base_dir_(std::move(base_dir)), diagnostics_(std::move(file)) {}

  Expected<Config, std::string> run(std::string_view text) {
    toml::table root;
    try {
      root = toml::parse(text, std::string_view(file_));
    } catch (const toml::parse_error& e) {
      return unexpected(file_ + ":" + std::to_string(e.source().begin.line) +
                        ": syntax error: " + std::string(e.description()));
    }
    Config config;
    for (auto&& [k, v] : root) {
      const std::string_view key = k.str();
      if (key == "daemon") {
        if (auto* t = v.as_table())
          daemon(*t, config.daemon);
        else
          fail(v, "", key, "expected a [daemon] table, got " + config::type_name(v));
      } else if (key == "cluster") {
        if (auto* t = v.as_table())
          config.cluster = cluster(*t);
        else
          fail(v, "", key, "expected a [cluster] table, got " + config::type_name(v));
      } else if (key == "connection") {
        connections(v, config.connections);
      } else if (key == "pool") {
        pools(v, config.pools);
      } else {
        unknown(k, "", {"daemon", "cluster", "connection", "pool"});
      }
    }
    check_pool_names(root, config);
    if (!diagnostics_.empty()) return unexpected(diagnostics_.report());
    return config;
  }

 private:
  void fail(const toml::node& where, std::string_view ctx, std::string_view key, std::string_view msg) {
    diagnostics_.fail(where.source(), ctx, key, msg);
  }

  void unknown(const toml::key& k, std::string_view ctx, const std::vector<std::string_view>& known) {
    std::string msg = "unknown key";
    for (auto candidate : known)
      if (edit_distance(k.str(), candidate) <= 2) {
        msg += "; did you mean '" + std::string(candidate) + "'?";
        break;
      }
    diagnostics_.fail(k.source(), ctx, k.str(), msg);
  }

  // --- the per-key pass, driven by the tables in config_keys.cc ---------------------

  // Hands every key of `t` to its row. `own` are keys the caller reads itself, though
  // they are just as known: the name (first, because the other messages carry it) and
  // nested sections.
  template <typename Target>
  void apply(const toml::table& t, std::span<const Key<Target>> keys, const std::string& ctx,
             Target& target, std::initializer_list<std::string_view> own) {
    for (auto&& [k, v] : t) {
      const std::string_view key = k.str();
      if (std::find(own.begin(), own.end(), key) != own.end()) continue;
      const Key<Target>* row = config::find_key(keys, key);
      if (!row)
        unknown(k, ctx, known_names(keys, own));
      else if (!row->renamed_to.empty())
        diagnostics_.fail(k.source(), ctx, key, "renamed to '" + std::string(row->renamed_to) + "'");
      else
        row->parse(Value(v, key, ctx, diagnostics_), target);
    }
  }

  // Suggestions come from these, in this order; former names are not suggested.
  template <typename Target>
  static std::vector<std::string_view> known_names(std::span<const Key<Target>> keys,
                                                   std::initializer_list<std::string_view> own) {
    std::vector<std::string_view> names;
    for (const auto& k : keys)
      if (k.renamed_to.empty()) names.push_back(k.name);
    for (auto name : own)
      if (!config::find_key(keys, name)) names.push_back(name);
    return names;
  }

  template <typename Target>
  void read_name(const toml::table& t, std::span<const Key<Target>> keys, const std::string& ctx,
                 Target& target) {
    if (const toml::node* n = t.get("name"))
      config::find_key(keys, "name")->parse(Value(*n, "name", ctx, diagnostics_), target);
    else
      diagnostics_.fail(t.source(), ctx, "name", "required");
  }

  // --- [daemon] --------------------------------------------------------------------

  void daemon(const toml::table& t, DaemonConfig& d) {
    const std::string ctx = "daemon: ";
    apply(t, config::daemon_keys(), ctx, d, {});
    if (t.get("ike_port") && d.ike_port == d.natt_port)
      fail(*t.get("ike_port"), ctx, "ike_port", "must differ from natt_port");
    else if (d.ike_port == d.natt_port && t.get("natt_port"))
      fail(*t.get("natt_port"), ctx, "natt_port", "must differ from ike_port");
  }

  // --- [cluster] --------------------------------------------------------------------

  ClusterConfig cluster(const toml::table& t) {
    const std::string ctx = "cluster: ";
    config::ClusterDraft c{.cluster = {}, .config_dir = base_dir_};
    apply(t, config::cluster_keys(), ctx, c, {});
    for (std::string_view key : {"node", "addresses", "etcd", "key_file"})
      if (!t.get(key)) diagnostics_.fail(t.source(), ctx, key, "required");

    // An unknown mode was reported already; whichever of these it needs is unknown too.
    const toml::node* mode = t.get("return_traffic");
    if (mode && !c.return_traffic_valid) return std::move(c.cluster);
    const toml::node* lan_interface = t.get("lan_interface");
    const toml::node* hook = t.get("hook");
    const bool proxy_arp = c.cluster.return_traffic == ReturnTraffic::kProxyArp;
    const bool run_hook = c.cluster.return_traffic == ReturnTraffic::kHook;
    if (proxy_arp && !lan_interface)
      fail(*mode, ctx, "lan_interface", "required with return_traffic = \"proxy_arp\"");
    if (run_hook && !hook) fail(*mode, ctx, "hook", "required with return_traffic = \"hook\"");
    // Set for another mode they would do nothing, which is surely not what was meant.
    if (lan_interface && !proxy_arp)
      fail(*lan_interface, ctx, "lan_interface", "only with return_traffic = \"proxy_arp\"");
    if (hook && !run_hook) fail(*hook, ctx, "hook", "only with return_traffic = \"hook\"");
    return std::move(c.cluster);
  }

  // The tables of an array of tables ([[pool]], [[connection]]) with their index; what
  // is not a table is reported.
  template <class F>
  void each_table(const toml::node& v, std::string_view key, F&& f) {
    auto* a = v.as_array();
    if (!a) {
      fail(v, "", key, "expected [[" + std::string(key) + "]] tables, got " + config::type_name(v));
      return;
    }
    for (std::size_t i = 0; i < a->size(); ++i) {
      const toml::node& e = *a->get(i);
      if (auto* t = e.as_table())
        f(*t, i);
      else
        fail(e, "", key, "expected a table, got " + config::type_name(e));
    }
  }

  // --- [[pool]] ----------------------------------------------------------------------

  void pools(const toml::node& v, std::vector<ike::PoolConfig>& out) {
    std::map<std::string, std::uint32_t> first_line;
    each_table(v, "pool", [&](const toml::table& t, std::size_t i) {
      ike::PoolConfig p;
      std::string ctx = "pool #" + std::to_string(i + 1) + ": ";
      read_name(t, config::pool_keys(), ctx, p);
      if (!p.name.empty()) ctx = "pool '" + p.name + "': ";
      apply(t, config::pool_keys(), ctx, p, {"name"});
      if (!t.get("addrs")) diagnostics_.fail(t.source(), ctx, "addrs", "required");
      if (p.name.empty()) return;
      auto [it, inserted] = first_line.emplace(p.name, t.source().begin.line);
      if (!inserted) {
        fail(*t.get("name"), ctx, "name",
             "duplicate pool name '" + p.name + "' (first defined at line " + std::to_string(it->second) + ")");
        return;
      }
      out.push_back(std::move(p));
    });
  }

  // A connection's pools must exist (a typo would leave clients without addresses).
  void check_pool_names(const toml::table& root, const Config& config) {
    auto* conns = root.get_as<toml::array>("connection");
    if (!conns) return;
    for (const auto& e : *conns) {
      auto* t = e.as_table();
      const toml::node* n = t ? t->get("pools") : nullptr;
      auto name = t ? t->get_as<std::string>("name") : nullptr;
      if (!n || !name) continue;
      for (const auto& c : config.connections) {
        if (c.name != name->get()) continue;
        for (const auto& pool : c.pools)
          if (std::none_of(config.pools.begin(), config.pools.end(), [&](const auto& p) { return p.name == pool; }))
            fail(*n, "connection '" + c.name + "': ", "pools", "no [[pool]] named '" + pool + "'");
      }
    }
  }

  // --- [[connection]] ----------------------------------------------------------------

  void connections(const toml::node& v, std::vector<ike::ConnectionConfig>& out) {
    std::map<std::string, std::uint32_t> first_line;
    each_table(v, "connection", [&](const toml::table& t, std::size_t i) {
      ConnectionDraft c{.conn = {}, .esp_default = default_esp_, .config_dir = base_dir_};
      c.conn.ike_proposals = default_ike_;
      connection(t, i, c);
      if (c.conn.name.empty()) return;
      auto [it, inserted] = first_line.emplace(c.conn.name, t.source().begin.line);
      if (!inserted) {
        fail(*t.get("name"), "connection '" + c.conn.name + "': ", "name",
             "duplicate connection name '" + c.conn.name + "' (first defined at line " +
                 std::to_string(it->second) + ")");
        return;
      }
      out.push_back(std::move(c.conn));
    });
  }

  void connection(const toml::table& t, std::size_t index, ConnectionDraft& c) {
    std::string ctx = "connection #" + std::to_string(index + 1) + ": ";
    const auto keys = config::connection_keys();
    read_name(t, keys, ctx, c);
    if (!c.conn.name.empty()) ctx = "connection '" + c.conn.name + "': ";
    apply(t, keys, ctx, c, {"name", "child"});

    c.conn.local_auth = c.local_auth.value_or(c.auth.value_or(ike::AuthClass::kPsk));
    c.conn.remote_auth = c.remote_auth.value_or(c.auth.value_or(ike::AuthClass::kPsk));
    c.conn.rsa_pss = c.rsa_pss;
    const bool psk_needed = c.conn.local_auth == ike::AuthClass::kPsk || c.conn.remote_auth == ike::AuthClass::kPsk;
    const toml::node* psk = t.get("psk");
    const toml::node* psk_file = t.get("psk_file");
    if (psk && psk_file)
      fail(*psk_file, ctx, "psk_file", "psk and psk_file are mutually exclusive");
    else if (!psk && !psk_file && psk_needed)
      diagnostics_.fail(t.source(), ctx, "psk", "required (psk or psk_file) when a side authenticates by PSK");
    check_certificates(t, ctx, c);
    if (!t.get("local_id") && !c.conn.local_certs.empty()) {
      // strongSwan's default with a certificate: its subject.
      c.conn.local_id = ike::Identity{wire::IdType::kDerAsn1Dn, c.conn.local_certs.front()->subject_der()};
    } else if (!t.get("local_id")) {
      // Without a configured identity the only stable choice is the one address.
      if (c.conn.local_addrs.size() == 1)
        c.conn.local_id = ike::Identity::parse(c.conn.local_addrs[0].to_string()).value();
      else
        diagnostics_.fail(t.source(), ctx, "local_id",
                          "required unless local_addrs holds exactly one address");
    }
    const toml::node* start = t.get("start");
    // A trap needs the peer's address before any traffic (its policies name it); an
    // initiation may resolve a name first.
    const bool trap = c.conn.start == ike::StartAction::kTrap;
    if (start && c.conn.start != ike::StartAction::kNone &&
        std::none_of(c.conn.remote_addrs.begin(), c.conn.remote_addrs.end(), [&](const std::string& s) {
          return IpAddress::parse(s).has_value() || (!trap && is_host_name(s));
        }))
      fail(*start, ctx, "start",
           trap ? "\"trap\" needs an address in remote_addrs"
                : "\"initiate\" needs an address or a DNS name in remote_addrs");
    if (const toml::node* lifetime = t.get("lifetime"))
      check_lifetime(*lifetime, ctx, c.conn.rekey_time, c.conn.lifetime);

    if (const toml::node* children_node = t.get("child")) {
      children(*children_node, ctx, c.esp_default, c.conn.children);
    } else {
      ike::ChildConfig child;
      child.name = c.conn.name;
      child.esp_proposals = c.esp_default;
      c.conn.children.push_back(std::move(child));
    }
  }

  // Public-key authentication needs its parts, and they must fit together: the key
  // belongs to the certificate, and our identity is in it (else every peer refuses us).
  void check_certificates(const toml::table& t, const std::string& ctx, ConnectionDraft& c) {
    auto& conn = c.conn;
    if (conn.local_auth == ike::AuthClass::kPubkey) {
      if (conn.local_certs.empty() && !t.get("local_certs"))
        diagnostics_.fail(t.source(), ctx, "local_certs", "required when we authenticate by public key");
      if (!conn.private_key && !t.get("local_key"))
        diagnostics_.fail(t.source(), ctx, "local_key", "required when we authenticate by public key");
      if (!conn.local_certs.empty() && conn.private_key) {
        const auto& cert = *conn.local_certs.front();
        if (auto why = ike::key_not_of_certificate(*conn.private_key, cert)) fail(*t.get("local_key"), ctx, "local_key", *why);
        if (const toml::node* id = t.get("local_id"))
          if (auto why = ike::identity_not_in_certificate(conn.local_id, cert)) fail(*id, ctx, "local_id", *why);
      }
    }
    if (conn.remote_auth == ike::AuthClass::kPubkey && (!conn.trust || conn.trust->empty()) && !t.get("cacerts"))
      diagnostics_.fail(t.source(), ctx, "cacerts", "required when the peer authenticates by public key");
    check_eap(t, ctx, c);
  }

  // EAP is how a client authenticates: a gateway never does, and a client never expects
  // it of its gateway. Passwords come from eap_secrets, the client's own among them.
  void check_eap(const toml::table& t, const std::string& ctx, ConnectionDraft& c) {
    auto& conn = c.conn;
    if (!ike::is_eap(conn.local_auth) && !ike::is_eap(conn.remote_auth)) return;
    const toml::node* where = t.get("remote_auth") ? t.get("remote_auth") : t.get("local_auth") ? t.get("local_auth") : t.get("auth");
    const std::string key = t.get("remote_auth") ? "remote_auth" : t.get("local_auth") ? "local_auth" : "auth";
    if (ike::is_eap(conn.local_auth) && ike::is_eap(conn.remote_auth)) {
      fail(*where, ctx, key, "EAP authenticates the client only: the gateway needs \"pubkey\" or \"psk\" (set local_auth or remote_auth)");
      return;
    }
    const bool tls = conn.local_auth == ike::AuthClass::kEapTls || conn.remote_auth == ike::AuthClass::kEapTls;
    if (tls) {
      // Both ends of EAP-TLS hold a certificate and check the other's.
      if (conn.local_certs.empty() && !t.get("local_certs"))
        diagnostics_.fail(t.source(), ctx, "local_certs", "required with EAP-TLS (our TLS certificate)");
      if (!conn.private_key && !t.get("local_key"))
        diagnostics_.fail(t.source(), ctx, "local_key", "required with EAP-TLS (our TLS certificate's key)");
      if ((!conn.trust || conn.trust->empty()) && !t.get("cacerts"))
        diagnostics_.fail(t.source(), ctx, "cacerts", "required with EAP-TLS (anchors for the other end's TLS certificate)");
      return;
    }
    if (!conn.eap_secrets) {
      if (!t.get("eap_secrets"))
        diagnostics_.fail(t.source(), ctx, "eap_secrets", "required with EAP (the passwords, by EAP identity)");
      return;
    }
    if (ike::is_eap(conn.local_auth)) {
      std::string id = conn.eap_id.value_or(std::string(conn.local_id.data.begin(), conn.local_id.data.end()));
      if (conn.local_id.type == wire::IdType::kIpv4Addr || conn.local_id.type == wire::IdType::kIpv6Addr)
        id = conn.eap_id.value_or(conn.local_id.to_string());
      if (!conn.eap_secrets->count(id))
        fail(*t.get("eap_secrets"), ctx, "eap_secrets", "holds no password for our EAP identity '" + id + "'");
      if (conn.eap_id == "%any") fail(*t.get("eap_id"), ctx, "eap_id", "a client needs its own identity, not %any");
    }
  }

  void check_lifetime(const toml::node& where, const std::string& ctx, ike::Duration rekey,
                      ike::Duration lifetime) {
    if (lifetime.count() && rekey.count() && lifetime <= rekey)
      fail(where, ctx, "lifetime",
           "must be longer than rekey_time (" + format_duration(lifetime) + " <= " +
               format_duration(rekey) + ")");
  }

  // --- [[connection.child]] ----------------------------------------------------------

  void children(const toml::node& v, const std::string& conn_ctx,
                const std::vector<wire::Proposal>& esp_default, std::vector<ike::ChildConfig>& out) {
    auto* a = v.as_array();
    if (!a) {
      fail(v, conn_ctx, "child", "expected [[connection.child]] tables, got " + config::type_name(v));
      return;
    }
    std::map<std::string, std::uint32_t> first_line;
    for (std::size_t i = 0; i < a->size(); ++i) {
      const toml::node& e = *a->get(i);
      auto* t = e.as_table();
      if (!t) {
        fail(e, conn_ctx, "child", "expected a table, got " + config::type_name(e));
        continue;
      }
      ike::ChildConfig c;
      c.esp_proposals = esp_default;
      child(*t, i, conn_ctx, c);
      if (c.name.empty()) continue;
      auto [it, inserted] = first_line.emplace(c.name, t->source().begin.line);
      if (!inserted) {
        fail(*t->get("name"), conn_ctx, "name",
             "duplicate child name '" + c.name + "' (first defined at line " +
                 std::to_string(it->second) + ")");
        continue;
      }
      out.push_back(std::move(c));
    }
    if (a->empty()) fail(v, conn_ctx, "child", "needs at least one child");
  }

  void child(const toml::table& t, std::size_t index, const std::string& conn_ctx, ike::ChildConfig& c) {
    std::string ctx = conn_ctx + "child #" + std::to_string(index + 1) + ": ";
    const auto keys = config::child_keys();
    read_name(t, keys, ctx, c);
    if (!c.name.empty()) ctx = conn_ctx + "child '" + c.name + "': ";
    apply(t, keys, ctx, c, {"name"});
    if (const toml::node* lifetime = t.get("lifetime"))
      check_lifetime(*lifetime, ctx, c.rekey_time, c.lifetime);
    if (const toml::node* life = t.get("life_bytes"); life && c.life_bytes && c.life_bytes <= c.rekey_bytes)
      fail(*life, ctx, "life_bytes",
           "must be above rekey_bytes (" + std::to_string(c.life_bytes) + " <= " + std::to_string(c.rekey_bytes) + ")");
    if (const toml::node* life = t.get("life_packets"); life && c.life_packets && c.life_packets <= c.rekey_packets)
      fail(*life, ctx, "life_packets",
           "must be above rekey_packets (" + std::to_string(c.life_packets) + " <= " +
               std::to_string(c.rekey_packets) + ")");
  }

  std::string file_;
  std::filesystem::path base_dir_;
  config::Diagnostics diagnostics_;
  const std::vector<wire::Proposal> default_ike_ =
      ike::parse_ike_proposals(kDefaultIkeProposals).value();
  const std::vector<wire::Proposal> default_esp_ =
      ike::parse_esp_proposals(kDefaultEspProposals).value();
};

}  // namespace

Expected<Config, std::string> parse_config(std::string_view text, const std::string& source_name) {
  try {
    return Loader(source_name, std::filesystem::path(source_name).parent_path()).run(text);
  } catch (const std::exception& e) {
    // Allocation failures and the like: the contract is no exceptions out of here.
    return unexpected(source_name + ": " + e.what());
  }
}

Expected<Config, std::string> load_config(const std::string& path) {
  // An ifstream opens a directory without complaint and reads it as empty.
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) return unexpected(path + ": is a directory");
  std::ifstream in(path, std::ios::binary);
  if (!in) return unexpected(path + ": cannot open: " + std::strerror(errno));
  std::ostringstream buf;
  buf << in.rdbuf();
  if (in.bad()) return unexpected(path + ": cannot read: " + std::strerror(errno));
  return parse_config(buf.str(), path);
}

}  // namespace mobike::daemon
