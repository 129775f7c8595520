#include "control/protocol.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <cstdio>
#include <stdexcept>

namespace mobike::control {
namespace {

constexpr std::array<std::pair<Command, std::string_view>, 16> kCommands = {{
    {Command::kListSas, "list-sas"},
    {Command::kInitiate, "initiate"},
    {Command::kTerminate, "terminate"},
    {Command::kRekey, "rekey"},
    {Command::kStats, "stats"},
    {Command::kReload, "reload"},
    {Command::kUpdateAddresses, "update-addresses"},
    {Command::kListAddresses, "list-addresses"},
    {Command::kSwitch, "switch"},
    {Command::kSwitchCancel, "switch-cancel"},
    {Command::kClusterStatus, "cluster-status"},
    {Command::kClusterMove, "cluster-move"},
    {Command::kClusterDrain, "cluster-drain"},
    {Command::kClusterRebalance, "cluster-rebalance"},
    {Command::kListPools, "list-pools"},
    {Command::kListConns, "list-conns"},
}};

template <class... Fs>
struct Overloaded : Fs... {
  using Fs::operator()...;
};
template <class... Fs>
Overloaded(Fs...) -> Overloaded<Fs...>;

std::string hex_of(std::uint64_t v, int digits) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%0*llx", digits, static_cast<unsigned long long>(v));
  return buf;
}

// Exactly `digits` hex digits, as the protocol writes SPIs.
std::uint64_t hex_field(const json& j, const char* key, int digits) {
  const auto& s = j.at(key).get_ref<const std::string&>();
  std::uint64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v, 16);
  if (static_cast<int>(s.size()) != digits || ec != std::errc() || p != s.data() + s.size())
    throw std::invalid_argument(std::string("field '") + key + "' must be " +
                                std::to_string(digits) + " hex digits, not '" + s + "'");
  return v;
}

// nlohmann's get<unsigned>() casts silently: 70000 would become port 4464.
std::uint64_t unsigned_field(const json& j, const char* key, std::uint64_t max) {
  const auto& v = j.at(key);
  if (!v.is_number_unsigned() || v.get<std::uint64_t>() > max)
    throw std::invalid_argument(std::string("field '") + key + "' must be an integer in 0.." +
                                std::to_string(max));
  return v.get<std::uint64_t>();
}

json endpoint_json(const Endpoint& e) { return {{"addr", e.address.to_string()}, {"port", e.port}}; }

Endpoint endpoint_from(const json& j, const char* key) {
  const auto& o = j.at(key);
  const auto& addr = o.at("addr").get_ref<const std::string&>();
  auto a = IpAddress::parse(addr);
  if (!a) throw std::invalid_argument(std::string("field '") + key + ".addr': '" + addr + "' is not an IP address");
  return Endpoint{*a, static_cast<std::uint16_t>(unsigned_field(o, "port", 65535))};
}

template <class T>
T optional_field(const json& j, const char* key, T fallback) {
  auto it = j.find(key);
  return it == j.end() ? fallback : it->get<T>();
}

// Arguments of one command: every key besides "command" must be in `allowed`.
std::optional<std::string> unknown_argument(const json& j, std::string_view command,
                                            std::initializer_list<std::string_view> allowed) {
  for (const auto& [key, value] : j.items()) {
    if (key == "command" || key == "progress") continue;
    if (std::find(allowed.begin(), allowed.end(), key) == allowed.end())
      return "unknown argument '" + key + "' for " + std::string(command);
  }
  return std::nullopt;
}

std::optional<std::uint64_t> id_value(const json& v) {
  if (v.is_number_unsigned()) return v.get<std::uint64_t>();
  if (v.is_number_integer() && v.get<std::int64_t>() >= 0)
    return static_cast<std::uint64_t>(v.get<std::int64_t>());
  return std::nullopt;
}

}  // namespace

std::string_view command_name(Command c) {
  for (const auto& [cmd, name] : kCommands)
    if (cmd == c) return name;
  return "unknown";
}

std::optional<Command> command_from_name(std::string_view name) {
  for (const auto& [cmd, n] : kCommands)
    if (n == name) return cmd;
  return std::nullopt;
}

std::vector<std::string_view> command_names() {
  std::vector<std::string_view> names;
  for (const auto& [cmd, name] : kCommands) names.push_back(name);
  return names;
}

Command command_of(const Request& r) {
  return std::visit(Overloaded{
                        [](const ListSasRequest&) { return Command::kListSas; },
                        [](const InitiateRequest&) { return Command::kInitiate; },
                        [](const TerminateRequest&) { return Command::kTerminate; },
                        [](const RekeyRequest&) { return Command::kRekey; },
                        [](const StatsRequest&) { return Command::kStats; },
                        [](const ReloadRequest&) { return Command::kReload; },
                        [](const UpdateAddressesRequest&) { return Command::kUpdateAddresses; },
                        [](const ListAddressesRequest&) { return Command::kListAddresses; },
                        [](const SwitchRequest&) { return Command::kSwitch; },
                        [](const SwitchCancelRequest&) { return Command::kSwitchCancel; },
                        [](const ClusterStatusRequest&) { return Command::kClusterStatus; },
                        [](const ClusterMoveRequest&) { return Command::kClusterMove; },
                        [](const ClusterDrainRequest&) { return Command::kClusterDrain; },
                        [](const ClusterRebalanceRequest&) { return Command::kClusterRebalance; },
                        [](const ListPoolsRequest&) { return Command::kListPools; },
                        [](const ListConnsRequest&) { return Command::kListConns; },
                    },
                    r);
}

json request_to_json(const Request& r, bool progress) {
  json j = {{"command", command_name(command_of(r))}};
  if (progress) j["progress"] = true;
  std::visit(Overloaded{
                 [&](const InitiateRequest& i) { j["connection"] = i.connection; },
                 [&](const TerminateRequest& t) {
                   if (t.connection) j["connection"] = *t.connection;
                   if (t.sa) j["sa"] = *t.sa;
                 },
                 [&](const RekeyRequest& k) {
                   j[k.kind == RekeyRequest::Kind::kIke ? "ike" : "child"] = k.id;
                 },
                 [&](const UpdateAddressesRequest& u) {
                   j["sa"] = u.sa;
                   if (u.local) j["local"] = *u.local;
                 },
                 [&](const SwitchRequest& w) {
                   j["to"] = w.to;
                   if (w.sa) j["sa"] = *w.sa;
                   if (w.connection) j["connection"] = *w.connection;
                   if (w.all) j["all"] = true;
                   if (w.rate > 0) j["rate"] = w.rate;
                 },
                 [&](const ClusterMoveRequest& m) {
                   j["sa"] = m.sa;
                   j["to"] = m.to;
                 },
                 [&](const ClusterDrainRequest& d) {
                   if (d.node) j["node"] = *d.node;
                 },
                 [](const auto&) {},
             },
             r);
  return j;
}

Expected<Request, std::string> request_from_json(const json& j) {
  if (!j.is_object()) return unexpected(std::string("request must be a JSON object"));
  auto it = j.find("command");
  if (it == j.end() || !it->is_string())
    return unexpected(std::string("request needs a \"command\" string"));
  const auto& name = it->get_ref<const std::string&>();
  auto cmd = command_from_name(name);
  if (!cmd) return unexpected("unknown command '" + name + "'");
  if (auto p = j.find("progress"); p != j.end() && !p->is_boolean())
    return unexpected(std::string("\"progress\" must be true or false"));

  auto string_arg = [&](const char* key) -> std::optional<std::string> {
    auto a = j.find(key);
    if (a == j.end() || !a->is_string() || a->get_ref<const std::string&>().empty())
      return std::nullopt;
    return a->get<std::string>();
  };
  auto id_arg = [&](const char* key) -> std::optional<std::uint64_t> {
    auto a = j.find(key);
    if (a == j.end()) return std::nullopt;
    return id_value(*a);
  };

  switch (*cmd) {
    case Command::kListSas:
      if (auto e = unknown_argument(j, name, {})) return unexpected(*e);
      return Request{ListSasRequest{}};
    case Command::kStats:
      if (auto e = unknown_argument(j, name, {})) return unexpected(*e);
      return Request{StatsRequest{}};
    case Command::kReload:
      if (auto e = unknown_argument(j, name, {})) return unexpected(*e);
      return Request{ReloadRequest{}};
    case Command::kListAddresses:
      if (auto e = unknown_argument(j, name, {})) return unexpected(*e);
      return Request{ListAddressesRequest{}};
    case Command::kListPools:
      if (auto e = unknown_argument(j, name, {})) return unexpected(*e);
      return Request{ListPoolsRequest{}};
    case Command::kListConns:
      if (auto e = unknown_argument(j, name, {})) return unexpected(*e);
      return Request{ListConnsRequest{}};
    case Command::kSwitchCancel:
      if (auto e = unknown_argument(j, name, {})) return unexpected(*e);
      return Request{SwitchCancelRequest{}};
    case Command::kClusterStatus:
      if (auto e = unknown_argument(j, name, {})) return unexpected(*e);
      return Request{ClusterStatusRequest{}};
    case Command::kClusterRebalance:
      if (auto e = unknown_argument(j, name, {})) return unexpected(*e);
      return Request{ClusterRebalanceRequest{}};
    case Command::kClusterMove: {
      if (auto e = unknown_argument(j, name, {"sa", "to"})) return unexpected(*e);
      auto sa = id_arg("sa");
      auto to = string_arg("to");
      if (!sa || !to) return unexpected(std::string("cluster-move needs an \"sa\" id and a node name \"to\""));
      return Request{ClusterMoveRequest{*sa, *to}};
    }
    case Command::kClusterDrain: {
      if (auto e = unknown_argument(j, name, {"node"})) return unexpected(*e);
      ClusterDrainRequest d;
      if (j.contains("node")) {
        d.node = string_arg("node");
        if (!d.node) return unexpected(std::string("\"node\" must be a non-empty string"));
      }
      return Request{std::move(d)};
    }
    case Command::kSwitch: {
      if (auto e = unknown_argument(j, name, {"to", "sa", "connection", "all", "rate"})) return unexpected(*e);
      SwitchRequest w;
      auto to = string_arg("to");
      if (!to || !IpAddress::parse(*to)) return unexpected(std::string("switch needs \"to\": an IP address"));
      w.to = *to;
      if (j.contains("sa")) {
        w.sa = id_arg("sa");
        if (!w.sa) return unexpected(std::string("\"sa\" must be a non-negative integer"));
      }
      if (j.contains("connection")) {
        w.connection = string_arg("connection");
        if (!w.connection) return unexpected(std::string("\"connection\" must be a non-empty string"));
      }
      if (j.contains("all")) {
        if (!j["all"].is_boolean()) return unexpected(std::string("\"all\" must be true or false"));
        w.all = j["all"].get<bool>();
      }
      if (int(w.sa.has_value()) + int(w.connection.has_value()) + int(w.all) != 1)
        return unexpected(std::string("switch needs exactly one of \"sa\", \"connection\" or \"all\""));
      if (j.contains("rate")) {
        double rate = j["rate"].is_number() ? j["rate"].get<double>() : -1;
        if (rate != 0 && (rate < 0.01 || rate > 1e7))
          return unexpected(std::string("\"rate\" must be 0 (all at once) or 0.01 to 1e7 SAs per second"));
        w.rate = j["rate"].get<double>();
      }
      return Request{std::move(w)};
    }
    case Command::kUpdateAddresses: {
      if (auto e = unknown_argument(j, name, {"sa", "local"})) return unexpected(*e);
      auto sa = id_arg("sa");
      if (!sa) return unexpected(std::string("update-addresses needs an \"sa\" id"));
      UpdateAddressesRequest u{*sa, string_arg("local")};
      if (j.contains("local") && !u.local) return unexpected(std::string("\"local\" must be an address string"));
      return Request{u};
    }
    case Command::kInitiate: {
      if (auto e = unknown_argument(j, name, {"connection"})) return unexpected(*e);
      auto conn = string_arg("connection");
      if (!conn) return unexpected(std::string("initiate needs a \"connection\" name"));
      return Request{InitiateRequest{*conn}};
    }
    case Command::kTerminate: {
      if (auto e = unknown_argument(j, name, {"connection", "sa"})) return unexpected(*e);
      TerminateRequest t;
      if (j.contains("connection")) {
        t.connection = string_arg("connection");
        if (!t.connection) return unexpected(std::string("\"connection\" must be a non-empty string"));
      }
      if (j.contains("sa")) {
        t.sa = id_arg("sa");
        if (!t.sa) return unexpected(std::string("\"sa\" must be a non-negative integer"));
      }
      if (t.connection.has_value() == t.sa.has_value())
        return unexpected(std::string("terminate needs exactly one of \"connection\" or \"sa\""));
      return Request{std::move(t)};
    }
    case Command::kRekey: {
      if (auto e = unknown_argument(j, name, {"ike", "child"})) return unexpected(*e);
      const bool ike = j.contains("ike"), child = j.contains("child");
      if (ike == child) return unexpected(std::string("rekey needs exactly one of \"ike\" or \"child\""));
      auto id = id_arg(ike ? "ike" : "child");
      if (!id)
        return unexpected(std::string("\"") + (ike ? "ike" : "child") +
                          "\" must be a non-negative integer");
      return Request{RekeyRequest{ike ? RekeyRequest::Kind::kIke : RekeyRequest::Kind::kChild, *id}};
    }
  }
  return unexpected(std::string("unknown command"));
}

bool wants_progress(const json& request) {
  if (!request.is_object()) return false;
  auto p = request.find("progress");
  return p != request.end() && p->is_boolean() && p->get<bool>();
}

json progress_line(const Progress& p) {
  return {{"progress",
           {{"done", p.done},
            {"failed", p.failed},
            {"remaining", p.remaining},
            {"in_flight", p.in_flight},
            {"seconds", p.seconds}}}};
}

bool is_progress_line(const json& j) { return j.is_object() && j.contains("progress"); }

Expected<Progress, std::string> progress_from_json(const json& j) {
  if (!j.is_object()) return unexpected(std::string("progress line is not a JSON object"));
  for (const auto& [key, value] : j.items())
    if (key != "progress") return unexpected("progress line has an unknown field '" + key + "'");
  auto it = j.find("progress");
  if (it == j.end() || !it->is_object()) return unexpected(std::string("progress line has no \"progress\" object"));
  const json& o = *it;
  static constexpr std::array<std::string_view, 5> kFields = {"done", "failed", "remaining", "in_flight", "seconds"};
  for (const auto& [key, value] : o.items())
    if (std::find(kFields.begin(), kFields.end(), key) == kFields.end())
      return unexpected("progress has an unknown field '" + key + "'");
  Progress p;
  for (auto [key, field] : {std::pair{"done", &p.done}, std::pair{"failed", &p.failed},
                            std::pair{"remaining", &p.remaining}, std::pair{"in_flight", &p.in_flight}}) {
    auto f = o.find(key);
    if (f == o.end()) return unexpected(std::string("progress has no \"") + key + "\"");
    auto v = id_value(*f);
    if (!v) return unexpected(std::string("progress field \"") + key + "\" must be a non-negative integer");
    *field = *v;
  }
  auto s = o.find("seconds");
  if (s == o.end()) return unexpected(std::string("progress has no \"seconds\""));
  if (!s->is_number() || !(s->get<double>() >= 0))
    return unexpected(std::string("progress field \"seconds\" must be a non-negative number"));
  p.seconds = s->get<double>();
  if (p.failed > p.done) return unexpected(std::string("progress says more SAs failed than are done"));
  if (p.in_flight > p.remaining) return unexpected(std::string("progress says more SAs are in flight than remain"));
  return p;
}

json ok_response(json result) { return {{"ok", true}, {"result", std::move(result)}}; }

json error_response(std::string_view message) { return {{"ok", false}, {"error", message}}; }

Expected<Response, std::string> response_from_json(const json& j) {
  if (!j.is_object()) return unexpected(std::string("response is not a JSON object"));
  auto ok = j.find("ok");
  if (ok == j.end() || !ok->is_boolean())
    return unexpected(std::string("response has no \"ok\" boolean"));
  Response r;
  r.ok = ok->get<bool>();
  if (r.ok) {
    auto res = j.find("result");
    if (res != j.end()) r.result = *res;
  } else {
    auto err = j.find("error");
    if (err == j.end() || !err->is_string())
      return unexpected(std::string("error response has no \"error\" string"));
    r.error = err->get<std::string>();
  }
  return r;
}

std::string to_line(const json& j) {
  auto s = j.dump(-1, ' ', false, json::error_handler_t::replace);
  s.push_back('\n');
  return s;
}

Expected<json, std::string> from_line(std::string_view line) {
  if (!line.empty() && line.back() == '\n') line.remove_suffix(1);
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  json j = json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return unexpected(std::string("not valid JSON"));
  return j;
}

void to_json(json& j, const ChildSaInfo& c) {
  j = json{{"id", c.id},
           {"name", c.name},
           {"state", c.state},
           {"spi_in", hex_of(c.spi_in, 8)},
           {"spi_out", hex_of(c.spi_out, 8)},
           {"local_ts", c.local_ts},
           {"remote_ts", c.remote_ts},
           {"esp_proposal", c.esp_proposal}};
  if (c.bytes_in) j["bytes_in"] = *c.bytes_in;
  if (c.bytes_out) j["bytes_out"] = *c.bytes_out;
  if (c.packets_in) j["packets_in"] = *c.packets_in;
  if (c.packets_out) j["packets_out"] = *c.packets_out;
  if (!c.drops.empty()) j["drops"] = c.drops;
}

void from_json(const json& j, ChildSaInfo& c) {
  c.id = j.contains("id") ? unsigned_field(j, "id", UINT64_MAX) : 0;
  j.at("name").get_to(c.name);
  j.at("state").get_to(c.state);
  c.spi_in = static_cast<std::uint32_t>(hex_field(j, "spi_in", 8));
  c.spi_out = static_cast<std::uint32_t>(hex_field(j, "spi_out", 8));
  j.at("local_ts").get_to(c.local_ts);
  j.at("remote_ts").get_to(c.remote_ts);
  j.at("esp_proposal").get_to(c.esp_proposal);
  for (auto [key, field] : {std::pair{"bytes_in", &c.bytes_in}, std::pair{"bytes_out", &c.bytes_out},
                            std::pair{"packets_in", &c.packets_in}, std::pair{"packets_out", &c.packets_out}})
    if (j.contains(key)) *field = unsigned_field(j, key, UINT64_MAX);
  if (j.contains("drops")) j.at("drops").get_to(c.drops);
}

void to_json(json& j, const IkeSaInfo& s) {
  j = json{{"id", s.id},
           {"name", s.name},
           {"state", s.state},
           {"initiator", s.initiator},
           {"local", endpoint_json(s.local)},
           {"remote", endpoint_json(s.remote)},
           {"spi_i", hex_of(s.spi_i, 16)},
           {"spi_r", hex_of(s.spi_r, 16)},
           {"nat_local", s.nat_local},
           {"nat_remote", s.nat_remote},
           {"ike_proposal", s.ike_proposal},
           {"established_seconds", s.established_seconds},
           {"children", s.children}};
  if (!s.local_id.empty()) j["local_id"] = s.local_id;
  if (!s.remote_id.empty()) j["remote_id"] = s.remote_id;
  if (!s.remote_eap_id.empty()) j["remote_eap_id"] = s.remote_eap_id;
  j["mobike"] = s.mobike;
  j["peer_addresses"] = s.peer_addresses;
  j["path_probing"] = s.path_probing;
  j["rr_pending"] = s.rr_pending;
  j["moves"] = s.moves;
  j["switch"] = s.peer_switch;
  if (!s.switching_to.empty()) j["switching_to"] = s.switching_to;
  if (!s.owner.empty()) j["owner"] = s.owner;
  if (!s.moving_to.empty()) j["moving_to"] = s.moving_to;
  if (!s.ha_sync.empty()) j["ha_sync"] = s.ha_sync;
}

void from_json(const json& j, IkeSaInfo& s) {
  s.id = unsigned_field(j, "id", UINT64_MAX);
  j.at("name").get_to(s.name);
  j.at("state").get_to(s.state);
  j.at("initiator").get_to(s.initiator);
  s.local = endpoint_from(j, "local");
  s.remote = endpoint_from(j, "remote");
  s.local_id = optional_field<std::string>(j, "local_id", "");
  s.remote_id = optional_field<std::string>(j, "remote_id", "");
  s.remote_eap_id = optional_field<std::string>(j, "remote_eap_id", "");
  s.spi_i = hex_field(j, "spi_i", 16);
  s.spi_r = hex_field(j, "spi_r", 16);
  j.at("nat_local").get_to(s.nat_local);
  j.at("nat_remote").get_to(s.nat_remote);
  j.at("ike_proposal").get_to(s.ike_proposal);
  s.established_seconds = unsigned_field(j, "established_seconds", UINT64_MAX);
  j.at("children").get_to(s.children);
  s.mobike = optional_field<bool>(j, "mobike", false);
  s.peer_addresses = optional_field<std::vector<std::string>>(j, "peer_addresses", {});
  s.path_probing = optional_field<bool>(j, "path_probing", false);
  s.rr_pending = optional_field<bool>(j, "rr_pending", false);
  s.moves = j.contains("moves") ? unsigned_field(j, "moves", UINT64_MAX) : 0;
  s.peer_switch = optional_field<bool>(j, "switch", false);
  s.switching_to = optional_field<std::string>(j, "switching_to", "");
  s.owner = optional_field<std::string>(j, "owner", "");
  s.moving_to = optional_field<std::string>(j, "moving_to", "");
  s.ha_sync = optional_field<std::vector<std::string>>(j, "ha_sync", {});
}

Expected<std::vector<IkeSaInfo>, std::string> sa_list_from_json(const json& j) {
  if (!j.is_array()) return unexpected(std::string("list-sas result is not an array"));
  std::vector<IkeSaInfo> out;
  out.reserve(j.size());
  for (std::size_t i = 0; i < j.size(); ++i) {
    try {
      out.push_back(j[i].get<IkeSaInfo>());
    } catch (const std::exception& e) {
      return unexpected("IKE SA #" + std::to_string(i + 1) + " in list-sas: " + e.what());
    }
  }
  return out;
}

namespace {

std::string endpoint_text(const Endpoint& e) {
  return e.address.to_string() + "[" + std::to_string(e.port) + "]";
}

std::string peer_line(std::string_view label, const std::string& id, const Endpoint& e, bool nat) {
  std::string s = "  " + std::string(label) + " ";
  if (!id.empty()) s += "'" + id + "' @ ";
  s += endpoint_text(e);
  if (nat) s += " behind NAT";
  return s + "\n";
}

}  // namespace

std::string format_sa_list(const std::vector<IkeSaInfo>& sas) {
  if (sas.empty()) return "no IKE SAs\n";
  std::string out;
  for (const auto& s : sas) {
    out += s.name + ": #" + std::to_string(s.id) + ", " + s.state + ", IKEv2, " +
           hex_of(s.spi_i, 16) + "_i" + (s.initiator ? "*" : "") + " " + hex_of(s.spi_r, 16) +
           "_r" + (s.initiator ? "" : "*") + "\n";
    out += peer_line("local ", s.local_id, s.local, s.nat_local);
    out += peer_line("remote", s.remote_id, s.remote, s.nat_remote);
    if (!s.remote_eap_id.empty()) out += "  remote EAP identity '" + s.remote_eap_id + "'\n";
    if (s.mobike) {
      out += "  MOBIKE";
      if (!s.peer_addresses.empty()) {
        out += ", peer also at";
        for (const auto& a : s.peer_addresses) out += " " + a;
      }
      if (s.moves) out += ", moved " + std::to_string(s.moves) + "x";
      if (s.path_probing) out += ", probing paths";
      if (s.rr_pending) out += ", checking return routability";
      if (s.peer_switch) out += ", peer follows switch requests";
      if (!s.switching_to.empty()) out += ", switching to " + s.switching_to;
      out += "\n";
    }
    if (!s.ike_proposal.empty()) out += "  " + s.ike_proposal + "\n";
    if (!s.owner.empty())
      out += "  cluster node " + s.owner + (s.moving_to.empty() ? "" : ", being handed to " + s.moving_to) + "\n";
    if (s.established_seconds || s.state == "ESTABLISHED")
      out += "  established " + std::to_string(s.established_seconds) + "s ago\n";
    for (const auto& c : s.children) {
      out += "  " + c.name + ": #" + std::to_string(c.id) + ", " + c.state;
      if (!c.esp_proposal.empty()) out += ", ESP:" + c.esp_proposal;
      out += "\n";
      auto counts = [](std::optional<std::uint64_t> bytes, std::optional<std::uint64_t> packets) {
        if (!bytes) return std::string();
        std::string r = ", ";
        r += std::to_string(*bytes);
        r += " bytes, ";
        r += std::to_string(packets.value_or(0));
        r += " packets";
        return r;
      };
      out += "    in  " + hex_of(c.spi_in, 8) + counts(c.bytes_in, c.packets_in) + "\n";
      out += "    out " + hex_of(c.spi_out, 8) + counts(c.bytes_out, c.packets_out) + "\n";
      if (!c.drops.empty()) {
        out += "    dropped";
        for (const auto& [reason, n] : c.drops) out += " " + reason + "=" + std::to_string(n);
        out += "\n";
      }
      auto join = [](const std::vector<std::string>& v) {
        std::string r;
        for (const auto& x : v) r += (r.empty() ? "" : " ") + x;
        return r.empty() ? std::string("dynamic") : r;
      };
      out += "    local  " + join(c.local_ts) + "\n";
      out += "    remote " + join(c.remote_ts) + "\n";
    }
  }
  return out;
}

namespace {

void flatten(const json& j, const std::string& prefix,
             std::vector<std::pair<std::string, std::string>>& out) {
  if (j.is_object()) {
    for (const auto& [k, v] : j.items()) flatten(v, prefix.empty() ? k : prefix + "." + k, out);
    return;
  }
  std::string value = j.is_string() ? j.get<std::string>()
                                    : j.dump(-1, ' ', false, json::error_handler_t::replace);
  out.emplace_back(prefix.empty() ? "value" : prefix, std::move(value));
}

}  // namespace

std::string format_switch_result(const json& result) {
  std::string out;
  if (result.contains("sas") && result["sas"].is_array())
    for (const auto& r : result["sas"])
      out += "#" + std::to_string(r.value("sa", std::uint64_t{0})) + " " + r.value("result", "?") +
             (r.value("detail", "").empty() ? "" : ": " + r.value("detail", "")) + "\n";
  auto n = [&](const char* k) { return std::to_string(result.value(k, std::uint64_t{0})); };
  char secs[32];
  std::snprintf(secs, sizeof secs, "%.3f", result.value("seconds", 0.0));
  out += n("switched") + " switched, " + n("refused") + " refused, " + n("failed") + " failed, " +
         n("not_started") + " not started, in " + secs + " s\n";
  return out;
}

std::string format_cluster_moves(const json& result) {
  std::string out;
  if (result.contains("sas") && result["sas"].is_array())
    for (const auto& r : result["sas"])
      out += "#" + std::to_string(r.value("sa", std::uint64_t{0})) + " -> " + r.value("to", "?") + " " +
             r.value("result", "?") + (r.value("detail", "").empty() ? "" : ": " + r.value("detail", "")) + "\n";
  auto n = [&](const char* k) { return std::to_string(result.value(k, std::uint64_t{0})); };
  char secs[32];
  std::snprintf(secs, sizeof secs, "%.3f", result.value("seconds", 0.0));
  out += n("moved") + " moved, " + n("returned") + " returned, " + n("failed") + " failed, " + n("not_asked") +
         " not asked (no switch support), in " + secs + " s\n";
  return out;
}

std::string format_cluster_status(const json& st) {
  if (!st.is_object()) return "not a cluster status\n";
  std::string out = "node " + st.value("node", "?") + " (" + st.value("state", "?") + "), " +
                    std::to_string(st.value("sas", std::uint64_t{0})) + " IKE SAs\n";
  const json etcd = st.value("etcd", json::object());
  if (etcd.value("reachable", false))
    out += "etcd: reachable at " + etcd.value("endpoint", "?") + "\n";
  else
    out += "etcd: UNREACHABLE for " + std::to_string(etcd.value("unreachable_seconds", std::uint64_t{0})) +
           " s: " + etcd.value("error", "") + " (serving the SAs it has, starting no move)\n";
  if (st.contains("nodes") && st["nodes"].is_array())
    for (const auto& n : st["nodes"]) {
      out += "  " + n.value("name", "?") + ": " + n.value("state", "?") + ", " +
             std::to_string(n.value("sas", std::uint64_t{0})) + " SAs";
      if (n.contains("addresses") && n["addresses"].is_array()) {
        out += ", at";
        for (const auto& a : n["addresses"]) out += " " + (a.is_string() ? a.get<std::string>() : a.dump());
      }
      out += "\n";
    }
  if (st.contains("moving") && st["moving"].is_array() && !st["moving"].empty())
    out += std::to_string(st["moving"].size()) + " moves in flight\n";
  if (st.contains("counters") && st["counters"].is_object()) out += format_stats(st["counters"]);
  return out;
}

std::string format_address_list(const json& addresses) {
  if (!addresses.is_array() || addresses.empty()) return "no usable local addresses\n";
  std::string out;
  for (const auto& a : addresses) {
    out += a.value("addr", "?") + "/" + std::to_string(a.value("prefix", 0)) + " " + a.value("interface", "");
    if (a.value("deprecated", false)) out += " deprecated";
    if (a.value("on_loopback", false)) out += " (on a loopback device: used where a connection names it)";
    out += "\n";
  }
  return out;
}

std::string format_pool_list(const json& pools) {
  if (!pools.is_array() || pools.empty()) return "no pools\n";
  std::string out;
  for (const auto& p : pools) {
    out += p.value("name", "?") + "  " + p.value("first", "?") + " - " + p.value("last", "?") + "  " +
           std::to_string(p.value("online", 0)) + " online, " + std::to_string(p.value("offline", 0)) +
           " offline of " + std::to_string(p.value("size", std::uint64_t{0})) + "\n";
    if (auto it = p.find("leases"); it != p.end() && it->is_array())
      for (const auto& l : *it)
        out += "  " + l.value("address", "?") + "  " + (l.value("online", false) ? "online " : "offline") + "  " +
               l.value("identity", "") + "\n";
  }
  return out;
}

// swanctl --list-conns' shape: the connection, its addresses, each end's identity and
// authentication, then its children with their selectors.
std::string format_conn_list(const json& conns) {
  if (!conns.is_array() || conns.empty()) return "no connections\n";
  auto list = [](const json& j, const char* key, const char* none) {
    std::string out;
    if (auto it = j.find(key); it != j.end() && it->is_array())
      for (const auto& v : *it) out += (out.empty() ? "" : ", ") + (v.is_string() ? v.get<std::string>() : v.dump());
    return out.empty() ? std::string(none) : out;
  };
  std::string out;
  for (const auto& c : conns) {
    out += c.value("name", "?") + ": IKEv2, " + list(c, "local_addrs", "%any") + "...";
    out += list(c, "remote_addrs", "%any") + (c.value("mobike", false) ? ", MOBIKE" : "") + "\n";
    out += "  local:  " + c.value("local_auth", "?") + " " + c.value("local_id", "%any") + "\n";
    out += "  remote: " + c.value("remote_auth", "?") + " " + c.value("remote_id", "%any");
    if (auto it = c.find("eap_id"); it != c.end() && it->is_string()) out += ", EAP " + it->get<std::string>();
    out += "\n";
    if (c.contains("pools")) out += "  pools: " + list(c, "pools", "-") + "\n";
    if (c.contains("vips")) out += "  vips: " + list(c, "vips", "-") + "\n";
    out += "  start: " + c.value("start", "none") + ", proposals: " + c.value("ike_proposals", "?") + "\n";
    if (auto it = c.find("children"); it != c.end() && it->is_array())
      for (const auto& ch : *it)
        out += "  " + ch.value("name", "?") + ": TUNNEL, " + ch.value("esp_proposals", "?") + "\n    " +
               list(ch, "local_ts", "dynamic") + " === " + list(ch, "remote_ts", "dynamic") + "\n";
  }
  return out;
}

std::string format_stats(const json& stats) {
  std::vector<std::pair<std::string, std::string>> rows;
  flatten(stats, "", rows);
  std::sort(rows.begin(), rows.end());
  std::size_t width = 0;
  for (const auto& r : rows) width = std::max(width, r.first.size());
  std::string out;
  for (const auto& [k, v] : rows) out += k + ":" + std::string(width - k.size() + 1, ' ') + v + "\n";
  return out;
}

}  // namespace mobike::control
