#include "platform/udp_socket.h"

#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>

#include <array>
#include <chrono>
#include <cstdint>

#include "common/bytes.h"
#include "common/ip_address.h"
#include "platform/sockaddr.h"

namespace mobike::platform {
namespace {

IpAddress ip(const char* text) { return *IpAddress::parse(text); }

UdpSocket open_or_die(const Endpoint& e, const UdpSocketOptions& o = {}) {
  auto s = UdpSocket::open(e, o);
  if (!s) ADD_FAILURE() << "open " << e.to_string() << ": " << s.error().message();
  return s ? std::move(*s) : UdpSocket();
}

bool have_ipv6_loopback() {
  auto s = UdpSocket::open({ip("::1"), 0});
  return static_cast<bool>(s);
}

// Waits for a datagram the way the event loop will: poll, then receive.
std::optional<UdpSocket::Received> receive_within(UdpSocket& s, std::span<std::uint8_t> buf) {
  pollfd p{s.fd(), POLLIN, 0};
  if (::poll(&p, 1, 2000) != 1) return std::nullopt;
  return s.receive(buf);
}

TEST(UdpSocket, OpensOnEphemeralPortNonBlocking) {
  auto s = open_or_die({ip("127.0.0.1"), 0});
  ASSERT_TRUE(s.is_open());
  EXPECT_NE(s.local_endpoint().port, 0);
  EXPECT_EQ(s.local_endpoint().address, ip("127.0.0.1"));
  EXPECT_EQ(s.family(), AddressFamily::kV4);
  std::array<std::uint8_t, 64> buf;
  auto start = std::chrono::steady_clock::now();
  EXPECT_FALSE(s.receive(buf));
  EXPECT_FALSE(s.last_error()) << "EAGAIN must not be reported as an error";
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(1));
}

TEST(UdpSocket, SendsAndReceivesIpv4WithPktinfo) {
  // The receiver is bound to the wildcard address, so only pktinfo can tell that the
  // datagram was sent to 127.0.0.3 rather than 127.0.0.1.
  auto rx = open_or_die({ip("0.0.0.0"), 0});
  auto tx = open_or_die({ip("127.0.0.1"), 0});
  Bytes payload = to_bytes("hello v4");
  Endpoint to{ip("127.0.0.3"), rx.local_endpoint().port};
  ASSERT_TRUE(tx.send({ip("127.0.0.1"), 0}, to, payload)) << tx.last_error()->message();
  std::array<std::uint8_t, 64> buf;
  auto r = receive_within(rx, buf);
  ASSERT_TRUE(r);
  EXPECT_EQ(Bytes(buf.begin(), buf.begin() + r->size), payload);
  EXPECT_FALSE(r->truncated);
  EXPECT_EQ(r->local, to);
  EXPECT_EQ(r->remote, tx.local_endpoint());
  EXPECT_EQ(tx.nonlocal_sends(), 0u);
}

TEST(UdpSocket, SourceAddressFromPktinfoReachesReceiver) {
  // The sender is bound to the wildcard: the source must come from the pktinfo cmsg,
  // not from routing (which would pick 127.0.0.1).
  auto rx = open_or_die({ip("127.0.0.1"), 0});
  auto tx = open_or_die({ip("0.0.0.0"), 0});
  Bytes payload = to_bytes("from .2");
  ASSERT_TRUE(tx.send({ip("127.0.0.2"), tx.local_endpoint().port}, rx.local_endpoint(), payload))
      << tx.last_error()->message();
  std::array<std::uint8_t, 64> buf;
  auto r = receive_within(rx, buf);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->remote, (Endpoint{ip("127.0.0.2"), tx.local_endpoint().port}));
  EXPECT_EQ(r->local, rx.local_endpoint());

  // And a different source on the next datagram from the same socket.
  ASSERT_TRUE(tx.send({ip("127.0.0.7"), 0}, rx.local_endpoint(), payload));
  r = receive_within(rx, buf);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->remote.address, ip("127.0.0.7"));
}

TEST(UdpSocket, SendsAndReceivesIpv6WithPktinfo) {
  if (!have_ipv6_loopback()) GTEST_SKIP() << "no IPv6 loopback (::1) on this host";
  auto rx = open_or_die({ip("::"), 0});
  auto tx = open_or_die({ip("::"), 0});
  EXPECT_EQ(rx.family(), AddressFamily::kV6);
  Bytes payload = to_bytes("hello v6");
  Endpoint to{ip("::1"), rx.local_endpoint().port};
  ASSERT_TRUE(tx.send({ip("::1"), 0}, to, payload)) << tx.last_error()->message();
  std::array<std::uint8_t, 64> buf;
  auto r = receive_within(rx, buf);
  ASSERT_TRUE(r);
  EXPECT_EQ(Bytes(buf.begin(), buf.begin() + r->size), payload);
  EXPECT_EQ(r->local, to);
  EXPECT_EQ(r->remote, (Endpoint{ip("::1"), tx.local_endpoint().port}));
}

TEST(UdpSocket, Ipv6SocketIsV6Only) {
  if (!have_ipv6_loopback()) GTEST_SKIP() << "no IPv6 loopback (::1) on this host";
  // A v6 wildcard socket must not take IPv4 traffic (or block a v4 socket on the same
  // port): the daemon opens one socket per family.
  auto v6 = open_or_die({ip("::"), 0});
  auto v4 = UdpSocket::open({ip("0.0.0.0"), v6.local_endpoint().port});
  ASSERT_TRUE(v4) << v4.error().message();
  int only = 0;
  socklen_t len = sizeof only;
  ASSERT_EQ(::getsockopt(v6.fd(), IPPROTO_IPV6, IPV6_V6ONLY, &only, &len), 0);
  EXPECT_EQ(only, 1);
}

TEST(UdpSocket, SendFromNonlocalUsesTheSocketPortAndLeavesNoSocketBehind) {
  // 127.0.0.5 is local, so this only shows the transparent path's mechanics on loopback
  // (source port, coexistence with the wildcard socket); the truly non-local case is
  // tests/netns/test_nonlocal_send.py.
  auto tx = open_or_die({ip("0.0.0.0"), 0});
  auto rx = open_or_die({ip("127.0.0.1"), 0});
  Bytes payload = to_bytes("transparent");
  if (!tx.send_from_nonlocal({ip("127.0.0.5"), 0}, rx.local_endpoint(), payload)) {
    if (tx.last_error()->code == EPERM) GTEST_SKIP() << "needs CAP_NET_ADMIN";
    FAIL() << tx.last_error()->message();
  }
  EXPECT_EQ(tx.nonlocal_sends(), 1u);
  std::array<std::uint8_t, 64> buf;
  auto r = receive_within(rx, buf);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->remote, (Endpoint{ip("127.0.0.5"), tx.local_endpoint().port}));
  // A reply to that address reaches the long-lived socket: nothing else holds the port.
  ASSERT_TRUE(rx.send({}, r->remote, payload));
  r = receive_within(tx, buf);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->local, (Endpoint{ip("127.0.0.5"), tx.local_endpoint().port}));
}

TEST(UdpSocket, RefusesFamilyAndPortMismatch) {
  auto tx = open_or_die({ip("127.0.0.1"), 0});
  Bytes payload = to_bytes("x");
  EXPECT_FALSE(tx.send({}, {ip("::1"), 9}, payload));
  ASSERT_TRUE(tx.last_error());
  EXPECT_EQ(tx.last_error()->code, EAFNOSUPPORT);
  std::uint16_t other = tx.local_endpoint().port == 65535 ? 1 : tx.local_endpoint().port + 1;
  EXPECT_FALSE(tx.send({ip("127.0.0.1"), other}, {ip("127.0.0.1"), 9}, payload));
  ASSERT_TRUE(tx.last_error());
  EXPECT_EQ(tx.last_error()->code, EINVAL);
}

TEST(UdpSocket, ReportsTruncatedDatagram) {
  auto rx = open_or_die({ip("127.0.0.1"), 0});
  auto tx = open_or_die({ip("127.0.0.1"), 0});
  Bytes payload(100, 0xab);
  ASSERT_TRUE(tx.send({}, rx.local_endpoint(), payload));
  std::array<std::uint8_t, 10> small;
  auto r = receive_within(rx, small);
  ASSERT_TRUE(r);
  EXPECT_TRUE(r->truncated);
  EXPECT_EQ(r->size, small.size());
}

TEST(UdpSocket, BindConflictIsReportedWithContext) {
  // Two SO_REUSEADDR sockets may share a UDP port, so the port is held by a socket
  // without that option.
  int raw = ::socket(AF_INET, SOCK_DGRAM, 0);
  ASSERT_GE(raw, 0);
  UniqueFd holder(raw);
  SockAddr sa = to_sockaddr({ip("127.0.0.1"), 0});
  ASSERT_EQ(::bind(raw, sa.get(), sa.length), 0);
  SockAddr got;
  got.length = sizeof got.storage;
  ASSERT_EQ(::getsockname(raw, got.get(), &got.length), 0);
  auto held = from_sockaddr(got.get(), got.length);
  ASSERT_TRUE(held);
  auto b = UdpSocket::open(*held);
  ASSERT_FALSE(b);
  EXPECT_EQ(b.error().code, EADDRINUSE);
  EXPECT_NE(b.error().message().find("bind 127.0.0.1:"), std::string::npos) << b.error().message();
}

TEST(UdpSocket, ReusePortLetsTwoSocketsShareAPort) {
  auto a = UdpSocket::open_reuse_port({ip("127.0.0.1"), 0});
  ASSERT_TRUE(a) << a.error().message();
  auto b = UdpSocket::open_reuse_port(a->local_endpoint());
  ASSERT_TRUE(b) << b.error().message();
  EXPECT_EQ(b->local_endpoint(), a->local_endpoint());
}

TEST(UdpSocket, MoveTransfersOwnershipAndDestructorCloses) {
  auto a = open_or_die({ip("127.0.0.1"), 0});
  int fd = a.fd();
  Endpoint bound = a.local_endpoint();
  UdpSocket b = std::move(a);
  EXPECT_EQ(b.fd(), fd);
  EXPECT_FALSE(a.is_open());  // NOLINT(bugprone-use-after-move): checking the moved-from state
  {
    UdpSocket c = std::move(b);
  }
  // The port is free again once the owner is gone: a socket without SO_REUSEADDR can
  // bind it only if nothing holds it.
  int raw = ::socket(AF_INET, SOCK_DGRAM, 0);
  UniqueFd holder(raw);
  SockAddr sa = to_sockaddr(bound);
  EXPECT_EQ(::bind(raw, sa.get(), sa.length), 0);
}

TEST(UdpSocket, ReceiveOnClosedSocketIsAnError) {
  UdpSocket s;
  std::array<std::uint8_t, 8> buf;
  EXPECT_FALSE(s.receive(buf));
  ASSERT_TRUE(s.last_error());
  EXPECT_EQ(s.last_error()->code, EBADF);
}

TEST(SockAddr, RoundTripsBothFamilies) {
  for (const char* text : {"192.0.2.7", "2001:db8::9"}) {
    Endpoint e{ip(text), 4500};
    SockAddr sa = to_sockaddr(e);
    auto back = from_sockaddr(sa.get(), sa.length);
    ASSERT_TRUE(back);
    EXPECT_EQ(*back, e);
  }
  SockAddr sa = to_sockaddr({ip("192.0.2.7"), 1});
  EXPECT_FALSE(from_sockaddr(sa.get(), 4));
}

}  // namespace
}  // namespace mobike::platform
