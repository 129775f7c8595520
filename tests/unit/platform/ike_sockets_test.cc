#include "platform/ike_sockets.h"

#include <gtest/gtest.h>

namespace mobike::platform {
namespace {

using Kind = NattDatagram::Kind;

TEST(NattFraming, TellsKeepalivesEspAndIkeApart) {
  Bytes keepalive{0xff};
  EXPECT_EQ(classify_natt(keepalive).kind, Kind::kKeepalive);
  Bytes esp{0x12, 0x34, 0x56, 0x78, 0, 0, 0, 1, 0xaa};
  auto e = classify_natt(esp);
  EXPECT_EQ(e.kind, Kind::kEsp);
  EXPECT_EQ(e.payload.size(), esp.size());  // from the SPI on
  Bytes ike{0, 0, 0, 0, 0x11, 0x22};
  auto i = classify_natt(ike);
  EXPECT_EQ(i.kind, Kind::kIke);
  ASSERT_EQ(i.payload.size(), 2u);
  EXPECT_EQ(i.payload[0], 0x11);
  // Too short for a marker: not IKE (the data plane counts it as bad ESP).
  Bytes short_one{0, 0, 0};
  EXPECT_EQ(classify_natt(short_one).kind, Kind::kEsp);
  Bytes empty;
  EXPECT_EQ(classify_natt(empty).kind, Kind::kEsp);
  // A lone 0xff is a keepalive; the same octet in a longer datagram is not.
  Bytes ff2{0xff, 0xff};
  EXPECT_EQ(classify_natt(ff2).kind, Kind::kEsp);
}

TEST(IkeSockets, FramesIkeOnTheNattPortOnly) {
  auto lo = IpAddress::parse("127.0.0.1").value();
  std::vector<std::string> warnings;
  auto a = IkeSockets::open(std::span(&lo, 1), 0, 0, 0, &warnings);
  auto b = IkeSockets::open(std::span(&lo, 1), 0, 0, 0, &warnings);
  ASSERT_TRUE(a) << a.error();
  ASSERT_TRUE(b) << b.error();
  ASSERT_EQ(a->sockets().size(), 2u);
  EXPECT_FALSE(a->sockets()[0].natt);
  EXPECT_TRUE(a->sockets()[1].natt);
  const Endpoint a_ike = a->sockets()[0].udp.local_endpoint(), a_natt = a->sockets()[1].udp.local_endpoint();
  const Endpoint b_ike = b->sockets()[0].udp.local_endpoint(), b_natt = b->sockets()[1].udp.local_endpoint();

  Bytes msg{1, 2, 3};
  ASSERT_TRUE(a->send_ike(a_ike, b_ike, msg)) << a->error();
  ASSERT_TRUE(a->send_ike(a_natt, b_natt, msg)) << a->error();
  ASSERT_TRUE(a->send_raw(a_natt, b_natt, Bytes{0xff})) << a->error();

  std::vector<std::uint8_t> buf(64);
  auto got = b->sockets()[0].udp.receive(buf);
  ASSERT_TRUE(got);
  EXPECT_EQ(Bytes(buf.begin(), buf.begin() + got->size), msg);  // no marker on the IKE port
  got = b->sockets()[1].udp.receive(buf);
  ASSERT_TRUE(got);
  EXPECT_EQ(Bytes(buf.begin(), buf.begin() + got->size), (Bytes{0, 0, 0, 0, 1, 2, 3}));
  EXPECT_EQ(got->remote, a_natt);
  got = b->sockets()[1].udp.receive(buf);
  ASSERT_TRUE(got);
  EXPECT_EQ(Bytes(buf.begin(), buf.begin() + got->size), Bytes{0xff});

  // No socket for a source of another port.
  EXPECT_FALSE(a->send_ike({lo, 1}, b_ike, msg));
  EXPECT_NE(a->error().find("no socket"), std::string::npos);
}

}  // namespace
}  // namespace mobike::platform
