#include "daemon/config.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <map>
#include <optional>
#include <sstream>
#include <toml++/toml.h>

#include "ike/proposal_string.h"

namespace mobike::daemon {
namespace {

using namespace std::chrono_literals;

// Anything longer is surely a typo, and keeps the arithmetic far from overflow.
constexpr std::uint64_t kMaxDurationSeconds = 10ull * 365 * 24 * 3600;
// sun_path holds 108 bytes including the terminating NUL.
constexpr std::size_t kMaxSocketPath = 107;
constexpr std::size_t kMaxPskFileSize = 64 * 1024;

std::string type_name(const toml::node& n) {
  switch (n.type()) {
    case toml::node_type::table: return "a table";
    case toml::node_type::array: return "an array";
    case toml::node_type::string: return "a string";
    case toml::node_type::integer: return "an integer";
    case toml::node_type::floating_point: return "a float";
    case toml::node_type::boolean: return "a boolean";
    case toml::node_type::date: return "a date";
    case toml::node_type::time: return "a time";
    case toml::node_type::date_time: return "a date-time";
    default: return "nothing";
  }
}

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

bool valid_name(std::string_view s) {
  if (s.empty() || s.size() > 64) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '.' || c == '_' || c == '-';
  });
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

// A string value together with where it was written, for per-element messages.
struct Located {
  std::string text;
  const toml::node* node;
};

class Loader {
 public:
  Loader(std::string file, std::filesystem::path base_dir)
      : file_(std::move(file)), base_dir_(std::move(base_dir)) {}

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
      const std::string key(k.str());
      if (key == "daemon") {
        if (auto* t = v.as_table())
          daemon(*t, config.daemon);
        else
          fail(v, "", key, "expected a [daemon] table, got " + type_name(v));
      } else if (key == "connection") {
        connections(v, config.connections);
      } else {
        unknown(k, "", {"daemon", "connection"});
      }
    }
    if (!errors_.empty()) {
      // Tables are visited in key order, not file order; users read top to bottom.
      std::stable_sort(errors_.begin(), errors_.end(),
                       [](const auto& a, const auto& b) { return a.first < b.first; });
      std::string all;
      for (const auto& e : errors_) all += (all.empty() ? "" : "\n") + e.second;
      return unexpected(std::move(all));
    }
    return config;
  }

 private:
  void fail_at(const toml::source_region& where, const std::string& ctx, std::string_view key,
               const std::string& msg) {
    errors_.emplace_back(where.begin.line, file_ + ":" + std::to_string(where.begin.line) + ": " +
                                               ctx + "key '" + std::string(key) + "': " + msg);
  }
  void fail(const toml::node& where, const std::string& ctx, std::string_view key,
            const std::string& msg) {
    fail_at(where.source(), ctx, key, msg);
  }

  void unknown(const toml::key& k, const std::string& ctx, std::initializer_list<std::string_view> known) {
    std::string msg = "unknown key";
    for (auto candidate : known)
      if (edit_distance(k.str(), candidate) <= 2) {
        msg += "; did you mean '" + std::string(candidate) + "'?";
        break;
      }
    fail_at(k.source(), ctx, k.str(), msg);
  }

  // --- typed values -----------------------------------------------------------------

  std::optional<std::string> string_value(const toml::node& n, const std::string& ctx,
                                          std::string_view key) {
    if (auto* s = n.as_string()) return s->get();
    fail(n, ctx, key, "expected a string, got " + type_name(n));
    return std::nullopt;
  }

  std::optional<bool> bool_value(const toml::node& n, const std::string& ctx, std::string_view key) {
    if (auto* b = n.as_boolean()) return b->get();
    fail(n, ctx, key, "expected true or false, got " + type_name(n));
    return std::nullopt;
  }

  std::optional<std::int64_t> int_value(const toml::node& n, const std::string& ctx,
                                        std::string_view key, std::int64_t min, std::int64_t max) {
    auto* i = n.as_integer();
    if (!i) {
      fail(n, ctx, key, "expected an integer, got " + type_name(n));
      return std::nullopt;
    }
    if (i->get() < min || i->get() > max) {
      fail(n, ctx, key,
           "must be in " + std::to_string(min) + ".." + std::to_string(max) + ", not " +
               std::to_string(i->get()));
      return std::nullopt;
    }
    return i->get();
  }

  std::optional<double> number_value(const toml::node& n, const std::string& ctx,
                                     std::string_view key, double min, double max) {
    double v;
    if (auto* f = n.as_floating_point())
      v = f->get();
    else if (auto* i = n.as_integer())
      v = static_cast<double>(i->get());
    else {
      fail(n, ctx, key, "expected a number, got " + type_name(n));
      return std::nullopt;
    }
    if (!(v >= min && v <= max)) {  // also catches NaN
      std::ostringstream os;
      os << "must be in " << min << ".." << max << ", not " << v;
      fail(n, ctx, key, os.str());
      return std::nullopt;
    }
    return v;
  }

  std::optional<ike::Duration> duration_value(const toml::node& n, const std::string& ctx,
                                              std::string_view key) {
    if (auto* i = n.as_integer()) {
      if (i->get() < 0 || static_cast<std::uint64_t>(i->get()) > kMaxDurationSeconds) {
        fail(n, ctx, key, "must be 0.." + std::to_string(kMaxDurationSeconds) + " seconds");
        return std::nullopt;
      }
      return std::chrono::seconds(i->get());
    }
    if (auto* s = n.as_string()) {
      auto d = parse_duration(s->get());
      if (!d) {
        fail(n, ctx, key, d.error());
        return std::nullopt;
      }
      return *d;
    }
    fail(n, ctx, key, "expected a duration (\"30s\", \"10m\", \"4h\", \"1d\" or seconds), got " +
                          type_name(n));
    return std::nullopt;
  }

  // A single string or an array of strings.
  std::optional<std::vector<Located>> string_list(const toml::node& n, const std::string& ctx,
                                                  std::string_view key) {
    std::vector<Located> out;
    if (auto* s = n.as_string()) {
      out.push_back({s->get(), &n});
      return out;
    }
    auto* a = n.as_array();
    if (!a) {
      fail(n, ctx, key, "expected a string or an array of strings, got " + type_name(n));
      return std::nullopt;
    }
    bool ok = true;
    for (const auto& e : *a) {
      if (auto* s = e.as_string()) {
        out.push_back({s->get(), &e});
      } else {
        fail(e, ctx, key, "expected a string in the array, got " + type_name(e));
        ok = false;
      }
    }
    if (!ok) return std::nullopt;
    return out;
  }

  // --- [daemon] --------------------------------------------------------------------

  void daemon(const toml::table& t, DaemonConfig& d) {
    const std::string ctx = "daemon: ";
    const toml::node* ike_port_node = nullptr;
    for (auto&& [k, v] : t) {
      const std::string key(k.str());
      if (key == "socket") {
        if (auto s = string_value(v, ctx, key)) {
          if (s->empty())
            fail(v, ctx, key, "must not be empty");
          else if (s->size() > kMaxSocketPath)
            fail(v, ctx, key, "a Unix socket path has at most " + std::to_string(kMaxSocketPath) +
                                  " bytes");
          else
            d.socket = *s;
        }
      } else if (key == "listen") {
        auto list = string_list(v, ctx, key);
        if (!list) continue;
        std::vector<IpAddress> addrs;
        for (const auto& item : *list) {
          auto a = IpAddress::parse(item.text);
          if (!a)
            fail(*item.node, ctx, key, "'" + item.text + "' is not an IP address");
          else if (std::find(addrs.begin(), addrs.end(), *a) != addrs.end())
            fail(*item.node, ctx, key, "'" + item.text + "' is listed twice");
          else
            addrs.push_back(*a);
        }
        if (list->empty()) fail(v, ctx, key, "needs at least one address");
        d.listen = std::move(addrs);
      } else if (key == "ike_port") {
        if (auto p = int_value(v, ctx, key, 1, 65535)) d.ike_port = static_cast<std::uint16_t>(*p);
        ike_port_node = &v;
      } else if (key == "natt_port") {
        if (auto p = int_value(v, ctx, key, 1, 65535)) d.natt_port = static_cast<std::uint16_t>(*p);
      } else if (key == "dataplane") {
        auto s = string_value(v, ctx, key);
        if (!s) continue;
        if (*s == "none")
          d.dataplane = DataplaneKind::kNone;
        else if (*s == "userspace")
          d.dataplane = DataplaneKind::kUserspace;
        else if (*s == "xfrm")
          d.dataplane = DataplaneKind::kXfrm;
        else
          fail(v, ctx, key, "unknown data plane '" + *s + "' (expected \"userspace\", \"xfrm\" or \"none\")");
      } else if (key == "tun_name") {
        if (auto s = string_value(v, ctx, key)) {
          // IFNAMSIZ is 16 with the terminating NUL; '/' and spaces are not allowed in names.
          if (s->empty() || s->size() > 15 || s->find_first_of("/ \t:") != std::string::npos)
            fail(v, ctx, key, "'" + *s + "' is not a valid interface name (1-15 characters, no '/', ':' or spaces)");
          else
            d.tun_name = *s;
        }
      } else if (key == "tun_mtu") {
        if (auto n = int_value(v, ctx, key, 576, 65000)) d.tun_mtu = static_cast<int>(*n);
      } else if (key == "replay_window") {
        if (auto n = int_value(v, ctx, key, 32, 1 << 20)) {
          if ((*n & (*n - 1)) != 0)
            fail(v, ctx, key, "must be a power of two");
          else
            d.replay_window = static_cast<std::uint32_t>(*n);
        }
      } else if (key == "log_level") {
        auto s = string_value(v, ctx, key);
        if (!s) continue;
        static const std::map<std::string, spdlog::level::level_enum> kLevels = {
            {"trace", spdlog::level::trace}, {"debug", spdlog::level::debug},
            {"info", spdlog::level::info},   {"warn", spdlog::level::warn},
            {"error", spdlog::level::err}};
        auto it = kLevels.find(*s);
        if (it == kLevels.end())
          fail(v, ctx, key, "unknown level '" + *s + "' (expected trace, debug, info, warn or error)");
        else
          d.log_level = it->second;
      } else if (key == "half_open_threshold") {
        if (auto n = int_value(v, ctx, key, 0, 100'000'000))
          d.half_open_threshold = static_cast<std::size_t>(*n);
      } else if (key == "half_open_timeout") {
        if (auto dur = duration_value(v, ctx, key)) {
          if (dur->count() == 0)
            fail(v, ctx, key, "must be longer than 0");
          else
            d.half_open_timeout = *dur;
        }
      } else if (key == "retransmit_timeout") {
        if (auto s = number_value(v, ctx, key, 0.001, 3600.0))
          d.retransmit_timeout = ike::Duration(std::llround(*s * 1000.0));
      } else if (key == "retransmit_tries") {
        if (auto n = int_value(v, ctx, key, 0, 100)) d.retransmit_tries = static_cast<int>(*n);
      } else if (key == "retransmit_base") {
        if (auto b = number_value(v, ctx, key, 1.0, 10.0)) d.retransmit_base = *b;
      } else if (key == "keepalive_interval") {
        if (auto dur = duration_value(v, ctx, key)) d.keepalive_interval = *dur;
      } else if (key == "switch_notify_type") {
        // RFC 7296 §3.10.1: 40960-65535 is for private use, where an unregistered
        // notify may live without clashing with IANA values.
        if (auto n = int_value(v, ctx, key, 40960, 65535))
          d.switch_notify_type = static_cast<std::uint16_t>(*n);
      } else if (key == "mobike_path_timeout") {
        if (auto dur = duration_value(v, ctx, key)) d.mobike_path_timeout = *dur;
      } else {
        unknown(k, ctx,
                {"socket", "listen", "ike_port", "natt_port", "dataplane", "tun_name", "tun_mtu",
                 "replay_window", "log_level",
                 "half_open_threshold", "half_open_timeout", "retransmit_timeout",
                 "retransmit_tries", "retransmit_base", "keepalive_interval",
                 "switch_notify_type", "mobike_path_timeout"});
      }
    }
    if (ike_port_node && d.ike_port == d.natt_port)
      fail(*ike_port_node, ctx, "ike_port", "must differ from natt_port");
    else if (d.ike_port == d.natt_port && t.get("natt_port"))
      fail(*t.get("natt_port"), ctx, "natt_port", "must differ from ike_port");
  }

  // --- [[connection]] ----------------------------------------------------------------

  void connections(const toml::node& v, std::vector<ike::ConnectionConfig>& out) {
    auto* a = v.as_array();
    if (!a) {
      fail(v, "", "connection", "expected [[connection]] tables, got " + type_name(v));
      return;
    }
    std::map<std::string, std::uint32_t> first_line;
    for (std::size_t i = 0; i < a->size(); ++i) {
      const toml::node& e = *a->get(i);
      auto* t = e.as_table();
      if (!t) {
        fail(e, "", "connection", "expected a table, got " + type_name(e));
        continue;
      }
      ike::ConnectionConfig c;
      const bool ok = connection(*t, i, c);
      if (c.name.empty()) continue;
      auto [it, inserted] = first_line.emplace(c.name, t->source().begin.line);
      if (!inserted) {
        fail(*t->get("name"), "connection '" + c.name + "': ", "name",
             "duplicate connection name '" + c.name + "' (first defined at line " +
                 std::to_string(it->second) + ")");
        continue;
      }
      if (ok) out.push_back(std::move(c));
    }
  }

  // Returns false when the connection has errors (already reported).
  bool connection(const toml::table& t, std::size_t index, ike::ConnectionConfig& c) {
    const std::size_t errors_before = errors_.size();
    std::string ctx = "connection #" + std::to_string(index + 1) + ": ";
    if (const toml::node* n = t.get("name")) {
      if (auto s = string_value(*n, ctx, "name")) {
        if (valid_name(*s)) {
          c.name = *s;
          ctx = "connection '" + *s + "': ";
        } else {
          fail(*n, ctx, "name",
               "'" + *s + "' is not 1-64 letters, digits, '.', '_' or '-'");
        }
      }
    } else {
      fail_at(t.source(), ctx, "name", "required");
    }

    std::string esp_text(kDefaultEspProposals);
    const toml::node* esp_node = nullptr;
    const toml::node* psk_node = nullptr;
    const toml::node* psk_file_node = nullptr;
    const toml::node* children_node = nullptr;
    const toml::node* start_node = nullptr;
    const toml::node* lifetime_node = nullptr;
    bool have_local_id = false;

    for (auto&& [k, v] : t) {
      const std::string key(k.str());
      if (key == "name") {
        continue;
      } else if (key == "local_addrs") {
        auto list = string_list(v, ctx, key);
        if (!list) continue;
        bool any = false;
        for (const auto& item : *list) {
          if (item.text == "%any") {
            any = true;
          } else if (auto a = IpAddress::parse(item.text)) {
            c.local_addrs.push_back(*a);
          } else {
            fail(*item.node, ctx, key, "'" + item.text + "' is not an IP address or %any");
          }
        }
        if (any && !c.local_addrs.empty())
          fail(v, ctx, key, "%any cannot be combined with addresses");
      } else if (key == "remote_addrs") {
        auto list = string_list(v, ctx, key);
        if (!list) continue;
        for (const auto& item : *list) {
          if (item.text == "%any") {
            c.remote_addrs.push_back(item.text);
          } else if (auto a = IpAddress::parse(item.text)) {
            c.remote_addrs.push_back(a->to_string());
          } else if (auto p = IpPrefix::parse(item.text)) {
            c.remote_addrs.push_back(p->to_string());
          } else {
            fail(*item.node, ctx, key,
                 "'" + item.text + "' is not an IP address, a prefix or %any");
          }
        }
      } else if (key == "remote_port") {
        if (auto p = int_value(v, ctx, key, 1, 65535)) c.remote_port = static_cast<std::uint16_t>(*p);
      } else if (key == "local_id") {
        have_local_id = true;
        auto s = string_value(v, ctx, key);
        if (!s) continue;
        if (*s == "%any")
          fail(v, ctx, key, "must name our own identity, not %any");
        else if (auto id = ike::Identity::parse(*s))
          c.local_id = *id;
        else
          fail(v, ctx, key, "'" + *s + "' is not a valid identity");
      } else if (key == "remote_id") {
        auto s = string_value(v, ctx, key);
        if (!s) continue;
        if (*s == "%any")
          c.remote_id.reset();
        else if (auto id = ike::Identity::parse(*s))
          c.remote_id = *id;
        else
          fail(v, ctx, key, "'" + *s + "' is not a valid identity");
      } else if (key == "auth") {
        auto s = string_value(v, ctx, key);
        if (s && *s != "psk") fail(v, ctx, key, "unsupported method '" + *s + "' (only \"psk\")");
      } else if (key == "psk") {
        psk_node = &v;
        auto s = string_value(v, ctx, key);
        if (!s) continue;
        if (auto b = decode_psk(*s, v, ctx, key)) c.psk = std::move(*b);
      } else if (key == "psk_file") {
        psk_file_node = &v;
        auto s = string_value(v, ctx, key);
        if (!s) continue;
        if (auto b = read_psk_file(*s, v, ctx)) c.psk = std::move(*b);
      } else if (key == "ike_proposals") {
        auto s = string_value(v, ctx, key);
        if (!s) continue;
        auto ps = ike::parse_ike_proposals(*s);
        if (ps)
          c.ike_proposals = std::move(*ps);
        else
          fail(v, ctx, key, ps.error());
      } else if (key == "esp_proposals") {
        esp_node = &v;
        if (auto s = string_value(v, ctx, key)) esp_text = *s;
      } else if (key == "dpd_delay") {
        if (auto d = duration_value(v, ctx, key)) c.dpd_delay = *d;
      } else if (key == "rekey_time") {
        if (auto d = duration_value(v, ctx, key)) c.rekey_time = *d;
      } else if (key == "lifetime") {
        lifetime_node = &v;
        if (auto d = duration_value(v, ctx, key)) c.lifetime = *d;
      } else if (key == "mobike") {
        if (auto b = bool_value(v, ctx, key)) c.mobike = *b;
      } else if (key == "encap") {
        if (auto b = bool_value(v, ctx, key)) c.encap_force = *b;
      } else if (key == "switch") {
        if (auto b = bool_value(v, ctx, key)) c.switch_enabled = *b;
      } else if (key == "switch_response_to") {
        auto s = string_value(v, ctx, key);
        if (!s) continue;
        if (*s == "new" || *s == "old")
          c.switch_response_to_new = *s == "new";
        else
          fail(v, ctx, key, "unknown choice '" + *s + "' (expected \"new\" or \"old\")");
      } else if (key == "switch_allow") {
        auto list = string_list(v, ctx, key);
        if (!list) continue;
        for (const auto& item : *list) {
          if (auto p = IpPrefix::parse(item.text))
            c.switch_allow.push_back(*p);
          else if (auto a = IpAddress::parse(item.text))
            c.switch_allow.push_back({*a, static_cast<std::uint8_t>(a->is_v4() ? 32 : 128)});
          else
            fail(*item.node, ctx, key, "'" + item.text + "' is not an address or a prefix");
        }
      } else if (key == "switch_prefer") {
        auto list = string_list(v, ctx, key);
        if (!list) continue;
        for (const auto& item : *list) {
          if (auto a = IpAddress::parse(item.text))
            c.switch_prefer.push_back(*a);
          else
            fail(*item.node, ctx, key, "'" + item.text + "' is not an IP address");
        }
      } else if (key == "nat_traversal") {
        if (auto b = bool_value(v, ctx, key)) c.nat_traversal = *b;
      } else if (key == "return_routability") {
        auto s = string_value(v, ctx, key);
        if (!s) continue;
        if (*s == "always")
          c.return_routability = ike::ReturnRoutability::kAlways;
        else if (*s == "unannounced")
          c.return_routability = ike::ReturnRoutability::kUnannounced;
        else if (*s == "never")
          c.return_routability = ike::ReturnRoutability::kNever;
        else
          fail(v, ctx, key, "unknown policy '" + *s + "' (expected \"always\", \"unannounced\" or \"never\")");
      } else if (key == "start") {
        start_node = &v;
        auto s = string_value(v, ctx, key);
        if (!s) continue;
        if (*s == "none")
          c.start = ike::StartAction::kNone;
        else if (*s == "initiate")
          c.start = ike::StartAction::kInitiate;
        else
          fail(v, ctx, key, "unknown action '" + *s + "' (expected \"none\" or \"initiate\")");
      } else if (key == "child") {
        children_node = &v;
      } else {
        unknown(k, ctx,
                {"name", "local_addrs", "remote_addrs", "remote_port", "local_id", "remote_id",
                 "auth", "psk", "psk_file", "ike_proposals", "esp_proposals", "dpd_delay",
                 "rekey_time", "lifetime", "mobike", "encap", "nat_traversal", "return_routability",
                 "switch", "switch_response_to", "switch_allow", "switch_prefer", "start", "child"});
      }
    }

    if (!t.get("ike_proposals")) c.ike_proposals = ike::parse_ike_proposals(kDefaultIkeProposals).value();
    if (psk_node && psk_file_node)
      fail(*psk_file_node, ctx, "psk_file", "psk and psk_file are mutually exclusive");
    else if (!psk_node && !psk_file_node)
      fail_at(t.source(), ctx, "psk", "required (psk or psk_file)");
    if (!have_local_id) {
      // Without a configured identity the only stable choice is the one address.
      if (c.local_addrs.size() == 1)
        c.local_id = ike::Identity::parse(c.local_addrs[0].to_string()).value();
      else
        fail_at(t.source(), ctx, "local_id",
                "required unless local_addrs holds exactly one address");
    }
    if (start_node && c.start == ike::StartAction::kInitiate &&
        std::none_of(c.remote_addrs.begin(), c.remote_addrs.end(),
                     [](const std::string& s) { return IpAddress::parse(s).has_value(); }))
      fail(*start_node, ctx, "start", "\"initiate\" needs an address in remote_addrs");
    if (lifetime_node) check_lifetime(*lifetime_node, ctx, c.rekey_time, c.lifetime);

    std::vector<wire::Proposal> esp_default;
    auto esp_parsed = ike::parse_esp_proposals(esp_text);
    const bool esp_ok = esp_parsed.has_value();
    if (esp_ok)
      esp_default = std::move(*esp_parsed);
    else if (esp_node)
      fail(*esp_node, ctx, "esp_proposals", esp_parsed.error());
    if (children_node) {
      children(*children_node, ctx, esp_default, esp_ok, c.children);
    } else {
      ike::ChildConfig child;
      child.name = c.name;
      child.esp_proposals = esp_default;
      c.children.push_back(std::move(child));
    }
    return errors_.size() == errors_before;
  }

  void check_lifetime(const toml::node& where, const std::string& ctx, ike::Duration rekey,
                      ike::Duration lifetime) {
    if (lifetime.count() && rekey.count() && lifetime <= rekey)
      fail(where, ctx, "lifetime",
           "must be longer than rekey_time (" + format_duration(lifetime) + " <= " +
               format_duration(rekey) + ")");
  }

  std::optional<Bytes> decode_psk(const std::string& s, const toml::node& where,
                                  const std::string& ctx, std::string_view key) {
    if (s.starts_with("0x") || s.starts_with("0X")) {
      Bytes b = from_hex(std::string_view(s).substr(2));
      if (b.empty()) {
        fail(where, ctx, key, "not valid hex after 0x");
        return std::nullopt;
      }
      return b;
    }
    if (s.empty()) {
      fail(where, ctx, key, "must not be empty");
      return std::nullopt;
    }
    return to_bytes(s);
  }

  std::optional<Bytes> read_psk_file(const std::string& name, const toml::node& where,
                                     const std::string& ctx) {
    const std::string_view key = "psk_file";
    if (name.empty()) {
      fail(where, ctx, key, "must not be empty");
      return std::nullopt;
    }
    std::filesystem::path path(name);
    if (path.is_relative()) path = base_dir_ / path;
    const std::string p = path.string();
    // Check the mode of what was opened, not of whatever sits at the path a moment later.
    int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
      fail(where, ctx, key, "cannot open " + p + ": " + std::strerror(errno));
      return std::nullopt;
    }
    struct FdCloser {
      int fd;
      ~FdCloser() { ::close(fd); }
    } closer{fd};
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
      fail(where, ctx, key, "cannot stat " + p + ": " + std::strerror(errno));
      return std::nullopt;
    }
    if (!S_ISREG(st.st_mode)) {
      fail(where, ctx, key, p + " is not a regular file");
      return std::nullopt;
    }
    if (st.st_mode & 077) {
      char mode[8];
      std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
      fail(where, ctx, key,
           p + " is readable or writable by group or others (mode " + mode +
               "); chmod 600 it");
      return std::nullopt;
    }
    if (static_cast<std::uint64_t>(st.st_size) > kMaxPskFileSize) {
      fail(where, ctx, key, p + " is larger than " + std::to_string(kMaxPskFileSize) + " bytes");
      return std::nullopt;
    }
    std::string content;
    char buf[4096];
    for (;;) {
      ssize_t n = ::read(fd, buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        fail(where, ctx, key, "cannot read " + p + ": " + std::strerror(errno));
        return std::nullopt;
      }
      if (n == 0) break;
      content.append(buf, static_cast<std::size_t>(n));
      if (content.size() > kMaxPskFileSize) {
        fail(where, ctx, key, p + " is larger than " + std::to_string(kMaxPskFileSize) + " bytes");
        return std::nullopt;
      }
    }
    while (!content.empty() && (content.back() == '\n' || content.back() == '\r')) content.pop_back();
    if (content.empty()) {
      fail(where, ctx, key, p + " is empty");
      return std::nullopt;
    }
    return decode_psk(content, where, ctx, key);
  }

  // --- [[connection.child]] ----------------------------------------------------------

  void children(const toml::node& v, const std::string& conn_ctx,
                const std::vector<wire::Proposal>& esp_default, bool esp_default_ok,
                std::vector<ike::ChildConfig>& out) {
    auto* a = v.as_array();
    if (!a) {
      fail(v, conn_ctx, "child", "expected [[connection.child]] tables, got " + type_name(v));
      return;
    }
    std::map<std::string, std::uint32_t> first_line;
    for (std::size_t i = 0; i < a->size(); ++i) {
      const toml::node& e = *a->get(i);
      auto* t = e.as_table();
      if (!t) {
        fail(e, conn_ctx, "child", "expected a table, got " + type_name(e));
        continue;
      }
      ike::ChildConfig c;
      c.esp_proposals = esp_default;
      const bool ok = child(*t, i, conn_ctx, esp_default_ok, c);
      if (c.name.empty()) continue;
      auto [it, inserted] = first_line.emplace(c.name, t->source().begin.line);
      if (!inserted) {
        fail(*t->get("name"), conn_ctx, "name",
             "duplicate child name '" + c.name + "' (first defined at line " +
                 std::to_string(it->second) + ")");
        continue;
      }
      if (ok) out.push_back(std::move(c));
    }
    if (a->empty()) fail(v, conn_ctx, "child", "needs at least one child");
  }

  bool child(const toml::table& t, std::size_t index, const std::string& conn_ctx,
             bool esp_default_ok, ike::ChildConfig& c) {
    const std::size_t errors_before = errors_.size();
    std::string ctx = conn_ctx + "child #" + std::to_string(index + 1) + ": ";
    if (const toml::node* n = t.get("name")) {
      if (auto s = string_value(*n, ctx, "name")) {
        if (valid_name(*s)) {
          c.name = *s;
          ctx = conn_ctx + "child '" + *s + "': ";
        } else {
          fail(*n, ctx, "name", "'" + *s + "' is not 1-64 letters, digits, '.', '_' or '-'");
        }
      }
    } else {
      fail_at(t.source(), ctx, "name", "required");
    }
    const toml::node* lifetime_node = nullptr;
    bool own_esp = false;
    for (auto&& [k, v] : t) {
      const std::string key(k.str());
      if (key == "name") {
        continue;
      } else if (key == "local_ts") {
        traffic_selectors(v, ctx, key, c.local_ts);
      } else if (key == "remote_ts") {
        traffic_selectors(v, ctx, key, c.remote_ts);
      } else if (key == "esp_proposals") {
        own_esp = true;
        auto s = string_value(v, ctx, key);
        if (!s) continue;
        auto ps = ike::parse_esp_proposals(*s);
        if (ps)
          c.esp_proposals = std::move(*ps);
        else
          fail(v, ctx, key, ps.error());
      } else if (key == "rekey_time") {
        if (auto d = duration_value(v, ctx, key)) c.rekey_time = *d;
      } else if (key == "lifetime") {
        lifetime_node = &v;
        if (auto d = duration_value(v, ctx, key)) c.lifetime = *d;
      } else {
        unknown(k, ctx, {"name", "local_ts", "remote_ts", "esp_proposals", "rekey_time", "lifetime"});
      }
    }
    if (lifetime_node) check_lifetime(*lifetime_node, ctx, c.rekey_time, c.lifetime);
    // The connection's esp_proposals error is already reported; only a child that relies
    // on it is incomplete.
    if (!own_esp && !esp_default_ok) return false;
    return errors_.size() == errors_before;
  }

  void traffic_selectors(const toml::node& v, const std::string& ctx, std::string_view key,
                         std::vector<IpPrefix>& out) {
    auto list = string_list(v, ctx, key);
    if (!list) return;
    bool dynamic = false;
    for (const auto& item : *list) {
      if (item.text == "dynamic")
        dynamic = true;
      else if (auto p = IpPrefix::parse(item.text))
        out.push_back(*p);
      else
        fail(*item.node, ctx, key, "'" + item.text + "' is not a prefix (e.g. 10.0.0.0/8) or dynamic");
    }
    // An empty list is how ChildConfig says "the IKE address"; it cannot hold both.
    if (dynamic && !out.empty()) fail(v, ctx, key, "dynamic cannot be combined with prefixes");
  }

  std::string file_;
  std::filesystem::path base_dir_;
  std::vector<std::pair<std::uint32_t, std::string>> errors_;  // (line, message)
};

}  // namespace

Expected<ike::Duration, std::string> parse_duration(std::string_view text) {
  std::uint64_t n = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
  if (ec == std::errc::result_out_of_range)
    return unexpected("duration '" + std::string(text) + "' is too long");
  if (ec != std::errc() || p == text.data())
    return unexpected("'" + std::string(text) + "' is not a duration (\"30s\", \"10m\", \"4h\", \"1d\" or seconds)");
  std::string_view unit(p, static_cast<std::size_t>(text.data() + text.size() - p));
  std::uint64_t mult;
  if (unit.empty() || unit == "s")
    mult = 1;
  else if (unit == "m")
    mult = 60;
  else if (unit == "h")
    mult = 3600;
  else if (unit == "d")
    mult = 86400;
  else
    return unexpected("unknown unit '" + std::string(unit) + "' in duration '" + std::string(text) +
                      "' (expected s, m, h or d)");
  if (n > kMaxDurationSeconds / mult)
    return unexpected("duration '" + std::string(text) + "' is too long");
  return ike::Duration(std::chrono::seconds(n * mult));
}

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
