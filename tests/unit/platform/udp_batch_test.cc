// sendmmsg/recvmmsg batches of UdpSocket on loopback.
#include <gtest/gtest.h>

#include <thread>
#include <vector>

#include "platform/udp_socket.h"

namespace mobike::platform {
namespace {

IpAddress ip(const char* s) { return *IpAddress::parse(s); }

TEST(UdpBatch, SendsAndReceivesABatchWithSourcesAndDestinations) {
  auto rx = UdpSocket::open({ip("127.0.0.1"), 0});
  auto tx = UdpSocket::open({ip("0.0.0.0"), 0});
  ASSERT_TRUE(rx && tx);
  Endpoint to = rx->local_endpoint();
  std::vector<Bytes> payloads;
  std::vector<UdpSocket::Outgoing> out;
  for (int i = 0; i < 40; ++i) payloads.push_back(Bytes(static_cast<std::size_t>(10 + i), static_cast<std::uint8_t>(i)));
  for (int i = 0; i < 40; ++i)
    out.push_back({Endpoint{ip(i % 2 ? "127.0.0.2" : "127.0.0.3"), 0}, to, payloads[static_cast<std::size_t>(i)]});
  EXPECT_EQ(tx->send_batch(out), 40u);

  std::vector<Bytes> storage(UdpSocket::kMaxBatch, Bytes(2048));
  std::vector<std::span<std::uint8_t>> bufs(storage.begin(), storage.end());
  std::vector<UdpSocket::Received> got(UdpSocket::kMaxBatch);
  std::size_t total = 0;
  for (int tries = 0; tries < 100 && total < 40; ++tries) {
    std::size_t n = rx->receive_batch(bufs, got);
    for (std::size_t k = 0; k < n; ++k) {
      std::size_t i = total + k;
      ASSERT_EQ(got[k].size, payloads[i].size());
      EXPECT_TRUE(std::equal(payloads[i].begin(), payloads[i].end(), storage[k].begin()));
      EXPECT_EQ(got[k].remote.address, ip(i % 2 ? "127.0.0.2" : "127.0.0.3"));
      EXPECT_EQ(got[k].remote.port, tx->local_endpoint().port);
      EXPECT_EQ(got[k].local, to);
    }
    total += n;
    if (!n) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_EQ(total, 40u);
  EXPECT_EQ(rx->receive_batch(bufs, got), 0u);  // drained: EAGAIN is no error
  EXPECT_FALSE(rx->last_error());
}

TEST(UdpBatch, ReportsFailuresAndKeepsGoing) {
  auto tx = UdpSocket::open({ip("127.0.0.1"), 0});
  auto rx = UdpSocket::open({ip("127.0.0.1"), 0});
  ASSERT_TRUE(tx && rx);
  Bytes data{1, 2, 3};
  // The middle one has an IPv6 destination on an IPv4 socket: refused by the kernel.
  std::vector<UdpSocket::Outgoing> out{{{}, rx->local_endpoint(), data},
                                       {{}, {ip("::1"), 9}, data},
                                       {{}, rx->local_endpoint(), data}};
  EXPECT_EQ(tx->send_batch(out), 2u);
  EXPECT_TRUE(tx->last_error());
}

}  // namespace
}  // namespace mobike::platform

namespace mobike::platform {
namespace {

TEST(UdpBatch, GsoSendIsSplitIntoDatagramsOfTheSegmentSize) {
  auto rx = UdpSocket::open({*IpAddress::parse("127.0.0.1"), 0});
  auto tx = UdpSocket::open({*IpAddress::parse("127.0.0.1"), 0});
  ASSERT_TRUE(rx && tx);
  Bytes data(250);
  for (std::size_t i = 0; i < data.size(); ++i) data[i] = static_cast<std::uint8_t>(i / 100);  // segment number
  UdpSocket::Outgoing out{{}, rx->local_endpoint(), data, 100};
  ASSERT_EQ(tx->send_batch(std::span(&out, 1)), 1u) << (tx->last_error() ? tx->last_error()->message() : "");
  std::vector<Bytes> storage(4, Bytes(2048));
  std::vector<std::span<std::uint8_t>> bufs(storage.begin(), storage.end());
  std::vector<UdpSocket::Received> got(4);
  std::vector<std::size_t> sizes;
  for (int tries = 0; tries < 100 && sizes.size() < 3; ++tries) {
    std::size_t n = rx->receive_batch(bufs, got);
    for (std::size_t k = 0; k < n; ++k) {
      EXPECT_EQ(got[k].segment_size, 0);  // GRO is off: one datagram each
      EXPECT_EQ(storage[k][0], sizes.size());
      sizes.push_back(got[k].size);
    }
    if (!n) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_EQ(sizes, (std::vector<std::size_t>{100, 100, 50}));
}

TEST(UdpBatch, GroReceiverGetsEveryByteWithTheSegmentSize) {
  auto rx = UdpSocket::open({*IpAddress::parse("127.0.0.1"), 0});
  auto tx = UdpSocket::open({*IpAddress::parse("127.0.0.1"), 0});
  ASSERT_TRUE(rx && tx);
  ASSERT_TRUE(rx->enable_gro());
  Bytes data(300, 7);
  UdpSocket::Outgoing out{{}, rx->local_endpoint(), data, 100};
  ASSERT_EQ(tx->send_batch(std::span(&out, 1)), 1u);
  std::vector<Bytes> storage(4, Bytes(65536));
  std::vector<std::span<std::uint8_t>> bufs(storage.begin(), storage.end());
  std::vector<UdpSocket::Received> got(4);
  std::size_t bytes = 0;
  for (int tries = 0; tries < 100 && bytes < 300; ++tries) {
    std::size_t n = rx->receive_batch(bufs, got);
    for (std::size_t k = 0; k < n; ++k) {
      bytes += got[k].size;
      // Either the kernel kept them apart or it says how to split them.
      EXPECT_TRUE(got[k].size <= 100 || got[k].segment_size == 100) << got[k].size;
    }
    if (!n) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_EQ(bytes, 300u);
}

}  // namespace
}  // namespace mobike::platform
