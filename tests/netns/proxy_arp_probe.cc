// ProxyArp on the real kernel, one operation per run, for tests/netns/test_proxy_arp.py:
//
//   proxy_arp_probe add IFACE ADDR        proxy entry + one announcement
//   proxy_arp_probe remove IFACE ADDR     proxy entry deleted (absent is fine)
//   proxy_arp_probe announce IFACE ADDR   the announcement only
//   proxy_arp_probe sysctls IFACE 4|6     enable_sysctls() for that family
//
// Prints "ok mac=<the interface's MAC>" and exits 0; on an error prints the error on
// stderr and exits 1; a malformed command line exits 2.
#include <iostream>
#include <optional>
#include <string>
#include <string_view>

#include "platform/proxy_arp.h"

using namespace mobike;
using namespace mobike::platform;

namespace {

int usage() {
  std::cerr << "usage: proxy_arp_probe add|remove|announce IFACE ADDR\n"
               "       proxy_arp_probe sysctls IFACE 4|6\n";
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) return usage();
  std::string_view op = argv[1];
  std::string arg = argv[3];
  std::optional<IpAddress> address;
  if (op == "sysctls") {
    if (arg != "4" && arg != "6") return usage();
  } else if (op == "add" || op == "remove" || op == "announce") {
    address = IpAddress::parse(arg);
    if (!address) {
      std::cerr << "proxy_arp_probe: not an IP address: " << arg << "\n";
      return 2;
    }
  } else {
    return usage();
  }

  auto p = ProxyArp::open(argv[2]);
  if (!p) {
    std::cerr << "proxy_arp_probe: " << p.error().message() << "\n";
    return 1;
  }
  Expected<void, SysError> result =
      op == "sysctls"  ? p->enable_sysctls(arg == "4" ? AddressFamily::kV4 : AddressFamily::kV6)
      : op == "add"    ? p->add(*address)
      : op == "remove" ? p->remove(*address)
                       : p->announce(*address);
  if (!result) {
    std::cerr << "proxy_arp_probe: " << result.error().message() << "\n";
    return 1;
  }
  std::cout << "ok mac=" << to_string(p->mac()) << "\n";
  return 0;
}
