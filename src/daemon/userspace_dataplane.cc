#include "daemon/userspace_dataplane.h"

#include <netinet/in.h>
#include <netinet/ip.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <spdlog/spdlog.h>

#include "esp/inner_packet.h"
#include "platform/sockaddr.h"
#include "platform/xfrm_messages.h"

namespace mobike::daemon {

namespace {

// Room in front of the inner packet for the ESP header (SPI, sequence, IV), and behind
// it for padding and ICV: the buffer is reused for every packet, nothing is copied.
constexpr std::size_t kHeadroom = 64;
constexpr std::size_t kTailroom = esp::OutboundEspSa::kMaxOverhead + 16;
constexpr int kBatch = 32;   // packets per sendmmsg
constexpr int kRounds = 4;   // batches per readiness event before yielding to the loop

esp::EspSaParams params(std::uint32_t spi, const ike::ChildSaKeys& k, ByteView encr, ByteView integ,
                        std::uint32_t window) {
  esp::EspSaParams p;
  p.spi = spi;
  p.encr_id = k.encr_id;
  p.encr_key_bits = k.encr_key_bits;
  p.integ_id = k.integ_id;
  p.esn = k.esn;
  p.encr_key = encr;
  p.integ_key = integ;
  p.replay_window = window;
  return p;
}

}  // namespace

Expected<std::unique_ptr<UserspaceDataplane>, std::string> UserspaceDataplane::create(asio::io_context& io,
                                                                                     const DaemonConfig& config,
                                                                                     UdpSender send_udp) {
  std::unique_ptr<UserspaceDataplane> d(new UserspaceDataplane(io, config, std::move(send_udp)));
  auto tun = platform::TunDevice::open(config.tun_name, config.tun_mtu);
  if (!tun) return unexpected("userspace data plane: " + tun.error().message());
  d->tun_ = std::move(*tun);
  auto routes = platform::RouteControl::open();
  if (!routes) return unexpected("userspace data plane: " + routes.error().message());
  d->routes_ = std::move(*routes);
  int families[2] = {AF_INET, AF_INET6};
  for (int i = 0; i < 2; ++i) {
    platform::UniqueFd fd(::socket(families[i], SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_ESP));
    if (!fd) {
      spdlog::warn("no raw ESP socket for IPv{}: {} (plain ESP unavailable, UDP encapsulation still works)",
                   i ? 6 : 4, std::strerror(errno));
      continue;
    }
    int bytes = 4 << 20;
    ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVBUFFORCE, &bytes, sizeof bytes);
    ::setsockopt(fd.get(), SOL_SOCKET, SO_SNDBUFFORCE, &bytes, sizeof bytes);
    d->raw_[i] = std::move(fd);
    d->raw_watch_[i] = std::make_unique<asio::posix::stream_descriptor>(io, d->raw_[i].get());
    d->watch_raw(i);
  }
  d->tun_watch_ = std::make_unique<asio::posix::stream_descriptor>(io, d->tun_.fd());
  d->watch_tun();
  if (config.cipher_idle_release.count() > 0) {
    d->cipher_sweep_ = std::make_unique<asio::steady_timer>(io);
    d->arm_cipher_sweep();
  }
  spdlog::info("userspace data plane on {} (mtu {}, replay window {})", d->tun_.name(), config.tun_mtu,
               config.replay_window);
  return d;
}

UserspaceDataplane::UserspaceDataplane(asio::io_context& io, const DaemonConfig& config, UdpSender send_udp)
    : io_(io), config_(config), send_udp_(std::move(send_udp)), buf_(kHeadroom + 65536 + kTailroom) {
  out_bufs_.assign(kBatch, std::vector<std::uint8_t>(kHeadroom + static_cast<std::size_t>(config.tun_mtu) + kTailroom));
  out_batch_.reserve(kBatch);
  gso_buf_.resize(kBatch * (static_cast<std::size_t>(config.tun_mtu) + kTailroom + 64));
}

void UserspaceDataplane::arm_cipher_sweep() {
  cipher_sweep_->expires_after(config_.cipher_idle_release);
  cipher_sweep_->async_wait([this](const std::error_code& ec) {
    if (ec) return;
    ciphers_released_ += table_.release_idle_ciphers().released;
    arm_cipher_sweep();
  });
}

UserspaceDataplane::~UserspaceDataplane() {
  if (cipher_sweep_) cipher_sweep_->cancel();
  // The descriptors belong to TunDevice / UniqueFd.
  if (tun_watch_) tun_watch_->release();
  for (auto& w : raw_watch_)
    if (w) w->release();
  for (auto& [prefix, n] : route_refs_) (void)routes_.del_route(IpPrefix{prefix.first, prefix.second}, tun_.ifindex());
}

void UserspaceDataplane::apply(const ike::DataplaneOp& op) {
  using Kind = ike::DataplaneOp::Kind;
  switch (op.kind) {
    case Kind::kInstall: {
      esp::ChildSaSpec spec;
      spec.child_sa_id = op.child_sa_id;
      spec.ike_sa_id = op.ike_sa_id;
      spec.in = params(op.spi_in, op.keys, op.keys.encr_in, op.keys.integ_in, config_.replay_window);
      spec.out = params(op.spi_out, op.keys, op.keys.encr_out, op.keys.integ_out, config_.replay_window);
      spec.path = {op.local, op.remote, op.udp_encap};
      spec.local_ts = op.local_ts;
      spec.remote_ts = op.remote_ts;
      spec.outbound_active = !op.outbound_deferred;
      // Time is the engine's (its timers); volume is counted here, per packet.
      spec.limits = {op.limits.soft_bytes, op.limits.hard_bytes, op.limits.soft_packets, op.limits.hard_packets};
      if (op.resume) {
        // A Child SA another node held (cluster move): continue its numbers.
        const auto& r = *op.resume;
        spec.out.iv_mask = r.out_iv_mask;
        spec.resume = esp::ChildSaProgress{r.out_seq, {r.in_top, r.in_received}, r.packets_in, r.bytes_in,
                                           r.packets_out, r.bytes_out};
      }
      if (auto r = table_.install(spec); !r) {
        stats_.install_errors++;
        spdlog::error("cannot install Child SA {} (SPI {:08x}): {}", op.child_sa_id, op.spi_in, r.error());
        return;
      }
      children_.insert(op.child_sa_id);
      add_virtual_ips(op.child_sa_id, op.virtual_ips);
      add_routes(op.local_ts, op.remote_ts);
      spdlog::debug("installed Child SA {}: in {:08x} out {:08x} via {} -> {}{}", op.child_sa_id, op.spi_in,
                    op.spi_out, op.local.to_string(), op.remote.to_string(), op.udp_encap ? " (UDP)" : "");
      break;
    }
    case Kind::kDelete:
      if (const auto* e = table_.find(op.child_sa_id)) {
        if (auto t = traffic(op.child_sa_id)) {
          retired_.bytes_in += t->bytes_in;
          retired_.bytes_out += t->bytes_out;
          retired_.packets_in += t->packets_in;
          retired_.packets_out += t->packets_out;
          for (const auto& [reason, n] : t->drops) retired_.drops[reason] += n;
        }
        children_.erase(op.child_sa_id);
        remove_routes(e->remote_ts());
        table_.remove(op.child_sa_id);
        remove_virtual_ips(op.child_sa_id);
      }
      break;
    case Kind::kUpdateAddresses:
      table_.update_path(op.child_sa_id, {op.local, op.remote, op.udp_encap});
      break;
    case Kind::kActivateOutbound:
      table_.activate_outbound(op.child_sa_id);
      break;
    case Kind::kSuspendOutbound:
      table_.suspend_outbound(op.child_sa_id);
      break;
    case Kind::kAdvanceOutbound:
      table_.advance_outbound(op.child_sa_id, op.advance);
      spdlog::info("Child SA {}: outbound sequence numbers advanced by {} (RFC 6311 sync)", op.child_sa_id,
                   op.advance);
      break;
  }
}

void UserspaceDataplane::add_virtual_ips(std::uint64_t child_sa_id, const std::vector<IpAddress>& vips) {
  if (vips.empty()) return;
  child_vips_[child_sa_id] = vips;
  for (const auto& v : vips) {
    if (vip_refs_[v]++ > 0) continue;
    if (auto r = routes_.add_address(v, tun_.ifindex()); !r) {
      stats_.route_errors++;
      spdlog::warn("virtual IP {} on {}: {}", v.to_string(), tun_.name(), r.error().message());
    } else {
      spdlog::info("virtual IP {} installed on {}", v.to_string(), tun_.name());
    }
  }
}

void UserspaceDataplane::remove_virtual_ips(std::uint64_t child_sa_id) {
  auto it = child_vips_.find(child_sa_id);
  if (it == child_vips_.end()) return;
  for (const auto& v : it->second) {
    auto ref = vip_refs_.find(v);
    if (ref == vip_refs_.end() || --ref->second > 0) continue;
    vip_refs_.erase(ref);
    if (auto r = routes_.del_address(v, tun_.ifindex()); !r) {
      stats_.route_errors++;
      spdlog::warn("remove virtual IP {}: {}", v.to_string(), r.error().message());
    } else {
      spdlog::info("virtual IP {} removed from {}", v.to_string(), tun_.name());
    }
  }
  child_vips_.erase(it);
}

void UserspaceDataplane::add_routes(const std::vector<wire::TrafficSelector>& local_ts,
                                    const std::vector<wire::TrafficSelector>& remote_ts) {
  // A preferred source inside our selectors makes locally originated traffic match the
  // Child SA (strongSwan does the same with its virtual/inner address).
  std::optional<IpAddress> src;
  for (const auto& t : local_ts)
    if (t.start_address == t.end_address) src = t.start_address;
  for (const auto& ts : remote_ts) {
    for (const auto& p : platform::range_to_prefixes(ts.start_address, ts.end_address)) {
      if (route_refs_[{p.address, p.length}]++ > 0) continue;
      std::optional<IpAddress> s = src && src->family() == p.address.family() ? src : std::nullopt;
      if (auto r = routes_.add_route(p, tun_.ifindex(), s); !r) {
        stats_.route_errors++;
        spdlog::warn("route {} via {}: {}", p.to_string(), tun_.name(), r.error().message());
      }
    }
  }
}

void UserspaceDataplane::remove_routes(std::span<const wire::TrafficSelector> remote_ts) {
  // The same prefixes add_routes() counted: the entry's remote selectors are the
  // install's, and range_to_prefixes() is a pure function.
  for (const auto& ts : remote_ts) {
    for (const auto& p : platform::range_to_prefixes(ts.start_address, ts.end_address)) {
      auto ref = route_refs_.find({p.address, p.length});
      if (ref == route_refs_.end() || --ref->second > 0) continue;
      route_refs_.erase(ref);
      if (auto r = routes_.del_route(p, tun_.ifindex()); !r) {
        stats_.route_errors++;
        spdlog::warn("delete route {}: {}", p.to_string(), r.error().message());
      }
    }
  }
}

void UserspaceDataplane::watch_tun() {
  tun_watch_->async_wait(asio::posix::stream_descriptor::wait_read, [this](const std::error_code& ec) {
    if (ec) return;
    on_tun_readable();
    watch_tun();
  });
}

void UserspaceDataplane::on_tun_readable() {
  for (int round = 0; round < kRounds; ++round) {
    out_batch_.clear();
    int read = 0;
    for (; read < kBatch; ++read) {
      auto& b = out_bufs_[static_cast<std::size_t>(read)];
      std::span<std::uint8_t> room(b.data() + kHeadroom, b.size() - kHeadroom - kTailroom);
      auto n = tun_.read(room);
      if (!n) break;
      stats_.tun_read++;
      auto p = table_.protect(b, kHeadroom, *n);
      if (!p) {  // counted by the table (no policy, sequence overflow, ...)
        if (p.error() == esp::Drop::kNoPolicy && !traps_.empty())
          check_traps(ByteView(b.data() + kHeadroom, *n));
        continue;
      }
      if (p->path.udp_encap)
        out_batch_.push_back({p->path.local, p->path.remote, ByteView(b.data() + p->esp.offset, p->esp.length)});
      else
        send_raw(*p, b);
    }
    if (!out_batch_.empty()) send_udp(out_batch_);
    if (read < kBatch) break;
  }
  report_expires();
}

namespace {

bool ts_covers(const wire::TrafficSelector& ts, const IpAddress& a, const esp::Flow& f, std::uint16_t port) {
  if (a.family() != ts.start_address.family() || a < ts.start_address || ts.end_address < a) return false;
  if (ts.ip_protocol != 0 && ts.ip_protocol != f.protocol) return false;
  if (ts.start_port == 0 && ts.end_port == 0xffff) return true;
  return !f.opaque_ports && ts.start_port <= port && port <= ts.end_port;
}

bool any_covers(const std::vector<wire::TrafficSelector>& list, const IpAddress& a, const esp::Flow& f,
                std::uint16_t port) {
  return std::any_of(list.begin(), list.end(), [&](const auto& ts) { return ts_covers(ts, a, f, port); });
}

}  // namespace

Expected<void, std::string> UserspaceDataplane::install_trap(std::uint64_t trap_id, const TrapSpec& spec) {
  if (spec.local_ts.empty() || spec.remote_ts.empty()) return unexpected(std::string("a trap needs selectors"));
  if (!traps_.emplace(trap_id, Trap{spec.local_ts, spec.remote_ts, {}}).second)
    return unexpected("trap " + std::to_string(trap_id) + " is already installed");
  // Traffic for the remote selectors comes to the TUN device before any Child SA exists.
  add_routes(spec.local_ts, spec.remote_ts);
  return {};
}

void UserspaceDataplane::remove_trap(std::uint64_t trap_id) {
  auto it = traps_.find(trap_id);
  if (it == traps_.end()) return;
  remove_routes(it->second.remote_ts);
  traps_.erase(it);
  std::erase(acquires_, trap_id);
}

void UserspaceDataplane::check_traps(ByteView inner) {
  auto f = esp::parse_flow(inner);
  if (!f) return;
  const auto now = std::chrono::steady_clock::now();
  for (auto& [id, trap] : traps_) {
    if (!any_covers(trap.local_ts, f->src, *f, f->src_port) || !any_covers(trap.remote_ts, f->dst, *f, f->dst_port))
      continue;
    stats_.trap_drops++;
    // Once a second at most, like the kernel's larval SA that holds back repeated
    // acquires for the same flow; the engine holds back repeats of its own.
    if (now - trap.last_acquire < std::chrono::seconds(1)) return;
    trap.last_acquire = now;
    stats_.acquires++;
    if (std::find(acquires_.begin(), acquires_.end(), id) == acquires_.end()) acquires_.push_back(id);
    if (!reported_ && report_) {
      reported_ = true;
      report_();
    }
    return;
  }
}

std::vector<std::uint64_t> UserspaceDataplane::take_acquires() {
  reported_ = false;
  return std::exchange(acquires_, {});
}

void UserspaceDataplane::report_expires() {
  if (reported_ || !report_ || !table_.has_expires()) return;
  reported_ = true;
  report_();
}

std::vector<ChildExpire> UserspaceDataplane::take_expires() {
  reported_ = false;
  std::vector<ChildExpire> out;
  for (const auto& r : table_.take_expires()) {
    using C = esp::ExpireReport::Cause;
    out.push_back({r.child_sa_id, r.hard,
                   r.cause == C::kBytes     ? ike::ExpireCause::kBytes
                   : r.cause == C::kPackets ? ike::ExpireCause::kPackets
                                            : ike::ExpireCause::kSequence});
  }
  return out;
}

void UserspaceDataplane::send_udp(std::span<const platform::UdpSocket::Outgoing> items) {
  if (!gso_) {
    stats_.send_errors += items.size() - send_udp_(items);
    return;
  }
  constexpr std::size_t kMaxGsoBytes = 65000, kMaxSegments = 64;
  gso_batch_.clear();
  std::size_t used = 0;
  for (std::size_t i = 0; i < items.size();) {
    const auto& first = items[i];
    std::size_t seg = first.data.size(), j = i + 1, bytes = seg;
    // Equal sizes to the same peer; a shorter one may end the run.
    while (j < items.size() && j - i < kMaxSegments && items[j].from == first.from && items[j].to == first.to &&
           items[j].data.size() <= seg && bytes + items[j].data.size() <= kMaxGsoBytes) {
      bytes += items[j].data.size();
      if (items[j++].data.size() < seg) break;
    }
    if (j - i == 1 || used + bytes > gso_buf_.size()) {
      gso_batch_.push_back(first);
      i += 1;
      continue;
    }
    std::uint8_t* at = gso_buf_.data() + used;
    for (std::size_t k = i; k < j; ++k) {
      std::memcpy(gso_buf_.data() + used, items[k].data.data(), items[k].data.size());
      used += items[k].data.size();
    }
    gso_batch_.push_back({first.from, first.to, ByteView(at, bytes), static_cast<std::uint16_t>(seg)});
    stats_.gso_sends++;
    i = j;
  }
  std::size_t sent = send_udp_(gso_batch_);
  if (sent < gso_batch_.size() && stats_.gso_sends > 0 && sent == 0) {
    // The path refused GSO (no UDP_SEGMENT support): plain datagrams from now on.
    spdlog::warn("UDP GSO refused; sending ESP datagrams one by one");
    gso_ = false;
    stats_.send_errors += items.size() - send_udp_(items);
    return;
  }
  for (std::size_t k = sent; k < gso_batch_.size(); ++k)
    stats_.send_errors += gso_batch_[k].segment_size ? gso_batch_[k].data.size() / gso_batch_[k].segment_size + 1 : 1;
}

void UserspaceDataplane::send_raw(const esp::SaTable::Protected& p, std::span<const std::uint8_t> buf) {
  ByteView esp(buf.data() + p.esp.offset, p.esp.length);
  int i = p.path.remote.address.is_v4() ? 0 : 1;
  if (!raw_[i]) {
    stats_.send_errors++;
    return;
  }
  platform::SockAddr to = platform::to_sockaddr(Endpoint{p.path.remote.address, 0});
  iovec iov{const_cast<std::uint8_t*>(esp.data()), esp.size()};
  msghdr msg{};
  msg.msg_name = to.get();
  msg.msg_namelen = to.length;
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  // The source address: the SA's, as IP_PKTINFO / IPV6_PKTINFO.
  alignas(cmsghdr) std::uint8_t control[CMSG_SPACE(sizeof(in6_pktinfo))]{};
  msg.msg_control = control;
  if (i == 0) {
    msg.msg_controllen = CMSG_SPACE(sizeof(in_pktinfo));
    auto* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = IPPROTO_IP;
    c->cmsg_type = IP_PKTINFO;
    c->cmsg_len = CMSG_LEN(sizeof(in_pktinfo));
    in_pktinfo pi{};
    std::memcpy(&pi.ipi_spec_dst, p.path.local.address.bytes().data(), 4);
    std::memcpy(CMSG_DATA(c), &pi, sizeof pi);
  } else {
    msg.msg_controllen = CMSG_SPACE(sizeof(in6_pktinfo));
    auto* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = IPPROTO_IPV6;
    c->cmsg_type = IPV6_PKTINFO;
    c->cmsg_len = CMSG_LEN(sizeof(in6_pktinfo));
    in6_pktinfo pi{};
    std::memcpy(&pi.ipi6_addr, p.path.local.address.bytes().data(), 16);
    std::memcpy(CMSG_DATA(c), &pi, sizeof pi);
  }
  if (::sendmsg(raw_[i].get(), &msg, 0) < 0) stats_.send_errors++;
}

void UserspaceDataplane::on_udp_esp(std::span<std::uint8_t> packet, const Endpoint&, const Endpoint&) {
  stats_.esp_in++;
  deliver(packet);
  report_expires();
}

void UserspaceDataplane::deliver(std::span<std::uint8_t> esp) {
  auto d = table_.unprotect(esp);
  if (!d) return;  // counted per SA (auth, replay, policy, ...) or unattributed
  if (!tun_.write(d->inner)) stats_.tun_write_errors++;
}

void UserspaceDataplane::watch_raw(int i) {
  raw_watch_[i]->async_wait(asio::posix::stream_descriptor::wait_read, [this, i](const std::error_code& ec) {
    if (ec) return;
    on_raw_readable(i);
    watch_raw(i);
  });
}

void UserspaceDataplane::on_raw_readable(int i) {
  for (int k = 0; k < kBatch; ++k) {
    ssize_t n = ::recv(raw_[i].get(), buf_.data(), buf_.size(), 0);
    if (n <= 0) break;
    stats_.raw_in++;
    std::span<std::uint8_t> pkt(buf_.data(), static_cast<std::size_t>(n));
    if (i == 0) {
      // IPv4 raw sockets deliver the IP header; IPv6 ones do not.
      if (pkt.size() < 20) continue;
      std::size_t ihl = (pkt[0] & 0x0f) * 4u;
      if (ihl < 20 || ihl > pkt.size()) continue;
      pkt = pkt.subspan(ihl);
    }
    deliver(pkt);
  }
  report_expires();
}

std::optional<ChildTraffic> UserspaceDataplane::traffic(std::uint64_t child_sa_id) const {
  const auto* e = table_.find(child_sa_id);
  if (!e) return std::nullopt;
  auto c = e->counters();
  ChildTraffic t{c.in.bytes, c.out.bytes, c.in.packets, c.out.packets, {}};
  for (std::size_t r = 0; r < esp::kDropReasons; ++r) {
    auto d = static_cast<esp::Drop>(r);
    if (auto n = c.in.dropped(d) + c.out.dropped(d)) t.drops[esp::to_string(d)] = n;
  }
  return t;
}

std::optional<ike::EspState> UserspaceDataplane::esp_state(std::uint64_t child_sa_id) const {
  const auto* e = table_.find(child_sa_id);
  if (!e) return std::nullopt;
  const esp::ChildSaProgress p = e->progress();
  return ike::EspState{p.out_seq,    e->outbound().iv_mask(), p.in.top,     p.in.received,
                       p.bytes_in,   p.bytes_out,             p.packets_in, p.packets_out};
}

std::optional<DataplaneTotals> UserspaceDataplane::totals() const {
  DataplaneTotals t = retired_;
  for (auto id : children_)
    if (auto c = traffic(id)) {
      t.bytes_in += c->bytes_in;
      t.bytes_out += c->bytes_out;
      t.packets_in += c->packets_in;
      t.packets_out += c->packets_out;
      for (const auto& [reason, n] : c->drops) t.drops[reason] += n;
    }
  for (std::size_t r = 0; r < esp::kDropReasons; ++r) {
    auto d = static_cast<esp::Drop>(r);
    if (auto n = table_.unattributed_in().dropped(d) + table_.unattributed_out().dropped(d))
      t.drops[std::string(esp::to_string(d))] += n;
  }
  if (stats_.trap_drops) t.drops["trap"] += stats_.trap_drops;
  return t;
}

nlohmann::json UserspaceDataplane::stats() const {
  nlohmann::json drops_in = nlohmann::json::object(), drops_out = nlohmann::json::object();
  for (std::size_t r = 0; r < esp::kDropReasons; ++r) {
    auto d = static_cast<esp::Drop>(r);
    if (auto n = table_.unattributed_in().dropped(d)) drops_in[esp::to_string(d)] = n;
    if (auto n = table_.unattributed_out().dropped(d)) drops_out[esp::to_string(d)] = n;
  }
  return {{"backend", "userspace"},
          {"tun", tun_.name()},
          {"child_sas", table_.size()},
          {"tun_packets_read", stats_.tun_read},
          {"tun_write_errors", stats_.tun_write_errors},
          {"esp_udp_in", stats_.esp_in},
          {"esp_raw_in", stats_.raw_in},
          {"send_errors", stats_.send_errors},
          {"udp_gso_sends", stats_.gso_sends},
          {"install_errors", stats_.install_errors},
          {"route_errors", stats_.route_errors},
          {"traps", traps_.size()},
          {"trap_drops", stats_.trap_drops},
          {"acquires", stats_.acquires},
          {"ciphers_keyed", table_.keyed_ciphers()},
          {"ciphers_released", ciphers_released_},
          {"unattributed_drops_in", drops_in},
          {"unattributed_drops_out", drops_out}};
}

}  // namespace mobike::daemon
