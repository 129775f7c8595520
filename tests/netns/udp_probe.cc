// A line-driven UDP endpoint for netns tests, built on the daemon's own UdpSocket so the
// tests exercise the real platform code (pktinfo source selection, the non-local send).
//
//   udp_probe ADDR:PORT [ADDR:PORT ...]     one socket per endpoint; prints "ready EP"
// then reads commands from stdin, one answer line each on stdout:
//   send FROM TO TEXT   -> "sent nonlocal=N" (N: datagrams so far through the
//                          IP_TRANSPARENT path) | "error MESSAGE"
//   send-nonlocal FROM TO TEXT -> the same through UdpSocket::send_from_nonlocal(),
//                          which also takes a source port other than the socket's
//   send-hex-nonlocal FROM TO HEX -> the same with the datagram given in hex (any octets:
//                          a captured IKE message replayed, say)
//   recv TIMEOUT_MS     -> "recv local=EP remote=EP data=TEXT" | "timeout" | "error ..."
//   quit
// Endpoints: 192.0.2.1:500 or [2001:db8::1]:500.
#include <poll.h>

#include <array>
#include <charconv>
#include <cstdint>
#include <iostream>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "common/bytes.h"
#include "common/ip_address.h"
#include "platform/udp_socket.h"

using mobike::AddressFamily;
using mobike::Endpoint;
using mobike::IpAddress;
using mobike::platform::UdpSocket;

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

std::string printable(const std::uint8_t* d, std::size_t n) {
  std::string out;
  for (std::size_t i = 0; i < n; ++i) out += (d[i] >= 0x21 && d[i] < 0x7f) ? char(d[i]) : '.';
  return out;
}

UdpSocket* socket_for(std::vector<UdpSocket>& sockets, AddressFamily f) {
  for (auto& s : sockets)
    if (s.family() == f) return &s;
  return nullptr;
}

std::optional<mobike::Bytes> from_hex(std::string_view hex) {
  if (hex.size() % 2) return std::nullopt;
  mobike::Bytes out;
  for (std::size_t i = 0; i < hex.size(); i += 2) {
    unsigned v = 0;
    for (char c : hex.substr(i, 2)) {
      int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
      if (d < 0) return std::nullopt;
      v = v * 16 + static_cast<unsigned>(d);
    }
    out.push_back(static_cast<std::uint8_t>(v));
  }
  return out;
}

std::string do_send(std::vector<UdpSocket>& sockets, std::istringstream& args, bool nonlocal, bool hex) {
  std::string from_s, to_s, text;
  args >> from_s >> to_s;
  std::getline(args >> std::ws, text);
  auto from = parse_endpoint(from_s);
  auto to = parse_endpoint(to_s);
  if (!from || !to) return "error bad endpoint";
  UdpSocket* s = socket_for(sockets, to->address.family());
  if (s == nullptr) return "error no socket of that family";
  auto data = hex ? from_hex(text) : std::optional<mobike::Bytes>(mobike::to_bytes(text));
  if (!data) return "error bad hex";
  bool ok = nonlocal ? s->send_from_nonlocal(*from, *to, *data) : s->send(*from, *to, *data);
  if (!ok) return "error " + s->last_error()->message();
  return "sent nonlocal=" + std::to_string(s->nonlocal_sends());
}

std::string do_recv(std::vector<UdpSocket>& sockets, std::istringstream& args) {
  int timeout_ms = 1000;
  args >> timeout_ms;
  std::vector<pollfd> fds;
  for (auto& s : sockets) fds.push_back({s.fd(), POLLIN, 0});
  int n = ::poll(fds.data(), fds.size(), timeout_ms);
  if (n < 0) return "error poll";
  if (n == 0) return "timeout";
  for (std::size_t i = 0; i < fds.size(); ++i) {
    if (!(fds[i].revents & POLLIN)) continue;
    std::array<std::uint8_t, 65536> buf;
    auto r = sockets[i].receive(buf);
    if (!r) {
      if (sockets[i].last_error()) return "error " + sockets[i].last_error()->message();
      continue;
    }
    return "recv local=" + r->local.to_string() + " remote=" + r->remote.to_string() +
           " data=" + printable(buf.data(), r->size);
  }
  return "timeout";
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << "usage: udp_probe ADDR:PORT [ADDR:PORT ...]\n";
    return 2;
  }
  std::vector<UdpSocket> sockets;
  for (int i = 1; i < argc; ++i) {
    auto ep = parse_endpoint(argv[i]);
    if (!ep) {
      std::cerr << "bad endpoint " << argv[i] << "\n";
      return 2;
    }
    auto s = UdpSocket::open(*ep);
    if (!s) {
      std::cout << "error " << s.error().message() << std::endl;
      return 1;
    }
    std::cout << "ready " << s->local_endpoint().to_string() << std::endl;
    sockets.push_back(std::move(*s));
  }
  std::string line;
  while (std::getline(std::cin, line)) {
    std::istringstream args(line);
    std::string cmd;
    args >> cmd;
    if (cmd == "quit") break;
    if (cmd == "send" || cmd == "send-nonlocal" || cmd == "send-hex-nonlocal")
      std::cout << do_send(sockets, args, cmd != "send", cmd == "send-hex-nonlocal") << std::endl;
    else if (cmd == "recv")
      std::cout << do_recv(sockets, args) << std::endl;
    else
      std::cout << "error unknown command" << std::endl;
  }
  return 0;
}
