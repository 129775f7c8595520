// A line-driven client of the project's XFRM code (XfrmSocket, the message builders,
// XfrmChildSas) for tests/netns/test_xfrm_kernel.py, which checks the kernel's view
// with ip(8). One answer line per command on stdout:
//
//   policy add DIR SRC/LEN DST/LEN TUN_SRC TUN_DST REQID PRIORITY
//   policy migrate DIR SRC/LEN DST/LEN OLD_SRC OLD_DST NEW_SRC NEW_DST REQID
//   policy delete DIR SRC/LEN DST/LEN
//   child install ID local=EP remote=EP spi_in=HEX spi_out=HEX encap=0|1
//                    esp=aes128-sha256|aes256-sha512|aes128gcm16|chacha20poly1305
//                    [esn=0|1] local_ts=CIDR remote_ts=CIDR
//   child update ID local=EP remote=EP encap=0|1
//                 -> "ok migrated=N replaced=N updated=N reinstalled=N"
//   child usage ID -> "ok in_bytes=N in_packets=N out_bytes=N out_packets=N"
//   child remove ID
//   quit
// Answers: "ok ..." or "error ERRNO NAME MESSAGE". DIR is in, out or fwd; endpoints are
// 192.0.2.1:4500 or [2001:db8::1]:4500. Keys are fixed test patterns.
#include <cerrno>
#include <charconv>
#include <cstdint>
#include <cstring>
#include <iostream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>

#include "common/bytes.h"
#include "common/ip_address.h"
#include "platform/xfrm.h"
#include "platform/xfrm_messages.h"

using namespace mobike;
using namespace mobike::platform;

namespace {

std::optional<Endpoint> parse_endpoint(std::string_view s) {
  std::string_view addr, port;
  if (!s.empty() && s.front() == '[') {
    auto close = s.find("]:");
    if (close == std::string_view::npos) return std::nullopt;
    addr = s.substr(1, close - 1);
    port = s.substr(close + 2);
  } else {
    auto colon = s.rfind(':');
    if (colon == std::string_view::npos) return std::nullopt;
    addr = s.substr(0, colon);
    port = s.substr(colon + 1);
  }
  auto ip = IpAddress::parse(addr);
  unsigned p = 0;
  auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), p);
  if (!ip || ec != std::errc() || end != port.data() + port.size() || p > 65535)
    return std::nullopt;
  return Endpoint{*ip, static_cast<std::uint16_t>(p)};
}

std::optional<std::uint64_t> parse_number(std::string_view s) {
  int base = 10;
  if (s.size() > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) s.remove_prefix(2), base = 16;
  std::uint64_t v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v, base);
  if (ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
  return v;
}

std::optional<XfrmDir> parse_dir(const std::string& s) {
  if (s == "in") return XfrmDir::kIn;
  if (s == "out") return XfrmDir::kOut;
  if (s == "fwd") return XfrmDir::kFwd;
  return std::nullopt;
}

std::string error_line(const SysError& e) {
  const char* name = strerrorname_np(e.code);
  return "error " + std::to_string(e.code) + " " + (name ? name : "?") + " " + e.message();
}

std::string answer(const Expected<void, SysError>& r) { return r ? "ok" : error_line(r.error()); }

Bytes pattern(std::size_t n, std::uint8_t seed) {
  Bytes b(n);
  for (std::size_t i = 0; i < n; ++i) b[i] = static_cast<std::uint8_t>(seed + i);
  return b;
}

std::optional<EspTransforms> transforms(const std::string& name, bool esn, std::uint8_t seed) {
  if (name == "aes128-sha256")
    return EspTransforms{12, 128, 12, esn, pattern(16, seed), pattern(32, seed + 1)};
  if (name == "aes256-sha512")
    return EspTransforms{12, 256, 14, esn, pattern(32, seed), pattern(64, seed + 1)};
  if (name == "aes128gcm16") return EspTransforms{20, 128, 0, esn, pattern(20, seed), {}};
  if (name == "chacha20poly1305") return EspTransforms{28, 256, 0, esn, pattern(36, seed), {}};
  return std::nullopt;
}

wire::TrafficSelector ts_of(const IpPrefix& p) {
  return wire::TrafficSelector{
      p.address.is_v4() ? wire::TsType::kIpv4AddrRange : wire::TsType::kIpv6AddrRange,
      0,
      0,
      65535,
      p.first(),
      p.last()};
}

std::map<std::string, std::string> key_values(std::istringstream& args) {
  std::map<std::string, std::string> kv;
  std::string item;
  while (args >> item) {
    auto eq = item.find('=');
    if (eq != std::string::npos) kv[item.substr(0, eq)] = item.substr(eq + 1);
  }
  return kv;
}

std::string do_policy(XfrmSocket& sock, std::istringstream& args) {
  std::string verb, dir_s, src_s, dst_s;
  args >> verb >> dir_s >> src_s >> dst_s;
  auto dir = parse_dir(dir_s);
  auto src = IpPrefix::parse(src_s);
  auto dst = IpPrefix::parse(dst_s);
  if (!dir || !src || !dst) return "error 22 EINVAL bad policy arguments";
  XfrmSelector sel{*src, *dst};
  if (verb == "add") {
    std::string ts, td;
    std::uint32_t reqid = 0, priority = 0;
    args >> ts >> td >> reqid >> priority;
    auto tsrc = IpAddress::parse(ts), tdst = IpAddress::parse(td);
    if (!tsrc || !tdst) return "error 22 EINVAL bad tunnel addresses";
    return answer(
        sock.request(build_policy_add(XfrmPolicy{sel, *dir, *tsrc, *tdst, reqid, priority})));
  }
  if (verb == "migrate") {
    std::string os, od, ns, nd;
    std::uint32_t reqid = 0;
    args >> os >> od >> ns >> nd >> reqid;
    auto a = IpAddress::parse(os), b = IpAddress::parse(od), c = IpAddress::parse(ns),
         d = IpAddress::parse(nd);
    if (!a || !b || !c || !d) return "error 22 EINVAL bad migrate addresses";
    return answer(
        sock.request(build_migrate(sel, *dir, XfrmMigration{*a, *b, *c, *d, reqid}, std::nullopt)));
  }
  if (verb == "delete") return answer(sock.request(build_policy_delete(sel, *dir)));
  return "error 22 EINVAL unknown policy command";
}

std::string do_child(XfrmChildSas& dp, std::istringstream& args) {
  std::string verb, id_s;
  args >> verb >> id_s;
  auto id = parse_number(id_s);
  if (!id) return "error 22 EINVAL bad child id";
  auto kv = key_values(args);
  if (verb == "install") {
    XfrmChild c;
    auto local = parse_endpoint(kv["local"]), remote = parse_endpoint(kv["remote"]);
    auto spi_in = parse_number(kv["spi_in"]), spi_out = parse_number(kv["spi_out"]);
    auto lts = IpPrefix::parse(kv["local_ts"]), rts = IpPrefix::parse(kv["remote_ts"]);
    bool esn = kv["esn"] == "1";
    auto in = transforms(kv["esp"], esn, 0x10), out = transforms(kv["esp"], esn, 0x80);
    if (!local || !remote || !spi_in || !spi_out || !lts || !rts || !in || !out)
      return "error 22 EINVAL bad install arguments";
    c.local = *local;
    c.remote = *remote;
    c.spi_in = static_cast<std::uint32_t>(*spi_in);
    c.spi_out = static_cast<std::uint32_t>(*spi_out);
    c.udp_encap = kv["encap"] == "1";
    c.local_ts = {ts_of(*lts)};
    c.remote_ts = {ts_of(*rts)};
    c.in = *in;
    c.out = *out;
    return answer(dp.install(*id, c));
  }
  if (verb == "update") {
    auto local = parse_endpoint(kv["local"]), remote = parse_endpoint(kv["remote"]);
    if (!local || !remote) return "error 22 EINVAL bad update arguments";
    auto r = dp.update_addresses(*id, *local, *remote, kv["encap"] == "1");
    if (!r) return error_line(r.error());
    return "ok migrated=" + std::to_string(r->policies_migrated) +
           " replaced=" + std::to_string(r->policies_replaced) +
           " updated=" + std::to_string(r->sas_updated) +
           " reinstalled=" + std::to_string(r->sas_reinstalled);
  }
  if (verb == "usage") {
    auto u = dp.usage(*id);
    if (!u) return error_line(u.error());
    return "ok in_bytes=" + std::to_string(u->in.bytes) +
           " in_packets=" + std::to_string(u->in.packets) +
           " out_bytes=" + std::to_string(u->out.bytes) +
           " out_packets=" + std::to_string(u->out.packets);
  }
  if (verb == "remove") return answer(dp.remove(*id));
  return "error 22 EINVAL unknown child command";
}

}  // namespace

int main() {
  auto sock = XfrmSocket::open();
  if (!sock) {
    std::cout << error_line(sock.error()) << std::endl;
    return 1;
  }
  XfrmChildSas dp(*sock);
  std::cout << "ready" << std::endl;
  std::string line;
  while (std::getline(std::cin, line)) {
    std::istringstream args(line);
    std::string cmd;
    args >> cmd;
    std::string out;
    if (cmd == "quit") break;
    if (cmd == "policy")
      out = do_policy(*sock, args);
    else if (cmd == "child")
      out = do_child(dp, args);
    else
      out = "error 22 EINVAL unknown command";
    std::cout << out << std::endl;
  }
  return 0;
}
