// dataplane = "userspace": ESP (RFC 4303) in tunnel mode over a TUN device. Packets the
// kernel routes into the TUN device are matched to a Child SA by its selectors,
// protected and sent UDP-encapsulated (RFC 3948, through the daemon's NAT-T socket) or
// as plain ESP (a raw IP protocol 50 socket); ESP arriving either way is verified,
// decrypted, checked against the SA's selectors and written back to the TUN device.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <set>
#include <memory>
#include <vector>

#include <asio/io_context.hpp>
#include <asio/posix/stream_descriptor.hpp>
#include <asio/steady_timer.hpp>

#include "common/expected.h"
#include "daemon/config.h"
#include "daemon/dataplane.h"
#include "esp/sa_table.h"
#include "platform/rtnetlink.h"
#include "platform/tun.h"
#include "platform/udp_socket.h"
#include "platform/unique_fd.h"

namespace mobike::daemon {

class UserspaceDataplane final : public Dataplane {
 public:
  // Sends UDP datagrams from their `from` (the NAT-T socket's port) in one batch;
  // returns how many left.
  using UdpSender = std::function<std::size_t(std::span<const platform::UdpSocket::Outgoing>)>;

  static Expected<std::unique_ptr<UserspaceDataplane>, std::string> create(asio::io_context& io,
                                                                          const DaemonConfig& config,
                                                                          UdpSender send_udp);
  ~UserspaceDataplane() override;

  void apply(const ike::DataplaneOp& op) override;
  std::optional<ChildTraffic> traffic(std::uint64_t child_sa_id) const override;
  std::optional<ike::EspState> esp_state(std::uint64_t child_sa_id) const override;
  nlohmann::json stats() const override;
  std::optional<DataplaneTotals> totals() const override;
  void on_udp_esp(std::span<std::uint8_t> packet, const Endpoint& local, const Endpoint& remote) override;
  std::vector<ChildExpire> take_expires() override;
  void set_report_callback(std::function<void()> f) override { report_ = std::move(f); }
  // Routes the remote selectors to the TUN device; what arrives there for them without
  // a Child SA is dropped and reported.
  Expected<void, std::string> install_trap(std::uint64_t trap_id, const TrapSpec& spec) override;
  void remove_trap(std::uint64_t trap_id) override;
  std::vector<std::uint64_t> take_acquires() override;

 private:
  UserspaceDataplane(asio::io_context& io, const DaemonConfig& config, UdpSender send_udp);
  void watch_tun();
  void on_tun_readable();
  void watch_raw(int index);
  void on_raw_readable(int index);
  void deliver(std::span<std::uint8_t> esp);
  void send_raw(const esp::SaTable::Protected& p, std::span<const std::uint8_t> buf);
  void add_routes(const std::vector<wire::TrafficSelector>& local_ts,
                  const std::vector<wire::TrafficSelector>& remote_ts);
  void check_traps(ByteView inner);
  // After a burst of packets: tells the daemon once that the table has reports.
  void report_expires();
  void remove_routes(std::span<const wire::TrafficSelector> remote_ts);
  void add_virtual_ips(std::uint64_t child_sa_id, const std::vector<IpAddress>& vips);
  void remove_virtual_ips(std::uint64_t child_sa_id);
  // Every cipher_idle_release: frees the cipher contexts of idle SA directions.
  void arm_cipher_sweep();

  asio::io_context& io_;
  DaemonConfig config_;
  UdpSender send_udp_;
  platform::TunDevice tun_;
  platform::RouteControl routes_;
  std::unique_ptr<asio::posix::stream_descriptor> tun_watch_;
  platform::UniqueFd raw_[2];  // plain ESP, IPv4 and IPv6
  std::unique_ptr<asio::posix::stream_descriptor> raw_watch_[2];
  esp::SaTable table_;
  std::unique_ptr<asio::steady_timer> cipher_sweep_;
  std::uint64_t ciphers_released_ = 0;
  std::function<void()> report_;
  struct Trap {
    std::vector<wire::TrafficSelector> local_ts, remote_ts;
    std::chrono::steady_clock::time_point last_acquire;
  };
  std::map<std::uint64_t, Trap> traps_;
  std::vector<std::uint64_t> acquires_;
  bool reported_ = false;  // report_ called, take_expires() not yet
  // Routes are shared by Child SAs with the same remote selectors (rekeys overlap). A
  // Child SA's own routes are not kept: they are its remote selectors as prefixes,
  // worked out again from its table entry when it goes.
  std::map<std::pair<IpAddress, std::uint8_t>, int> route_refs_;
  // Virtual IPs on the TUN device, shared by the Child SAs that use them.
  std::map<IpAddress, int> vip_refs_;
  std::map<std::uint64_t, std::vector<IpAddress>> child_vips_;
  // For totals(): the Child SAs in the table, and what the deleted ones carried.
  std::set<std::uint64_t> children_;
  DataplaneTotals retired_;
  std::vector<std::uint8_t> buf_;                    // inbound, one packet at a time
  std::vector<std::vector<std::uint8_t>> out_bufs_;  // outbound batch, one per packet
  std::vector<platform::UdpSocket::Outgoing> out_batch_;
  // UDP GSO: runs of equal-size ESP packets to one peer, copied back to back and sent
  // as one datagram the kernel splits (far fewer trips through the stack per packet).
  std::vector<std::uint8_t> gso_buf_;
  std::vector<platform::UdpSocket::Outgoing> gso_batch_;
  bool gso_ = true;  // off after the kernel refused it once
  void send_udp(std::span<const platform::UdpSocket::Outgoing> items);
  struct {
    std::uint64_t tun_read = 0, tun_write_errors = 0, esp_in = 0, send_errors = 0, install_errors = 0,
                  route_errors = 0, raw_in = 0, gso_sends = 0, trap_drops = 0, acquires = 0;
  } stats_;
};

}  // namespace mobike::daemon
