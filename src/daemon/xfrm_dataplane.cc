#include "daemon/xfrm_dataplane.h"

#include <linux/xfrm.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <spdlog/spdlog.h>

namespace mobike::daemon {

namespace {

const char* errno_name(int code) {
  const char* n = strerrorname_np(code);
  return n ? n : "?";
}

void wipe(Bytes& b) {
  if (!b.empty()) explicit_bzero(b.data(), b.size());
}

}  // namespace

Expected<std::unique_ptr<XfrmDataplane>, std::string> XfrmDataplane::create(
    const DaemonConfig& config) {
  auto s = platform::XfrmSocket::open();
  if (!s) return unexpected("xfrm data plane: " + s.error().message());
  auto socket = std::make_unique<platform::XfrmSocket>(std::move(*s));
  std::unique_ptr<XfrmDataplane> d(new XfrmDataplane(*socket, config));
  d->socket_ = std::move(socket);
  spdlog::info("xfrm data plane (kernel IPsec), replay window {}", d->replay_window_);
  return d;
}

XfrmDataplane::XfrmDataplane(platform::XfrmTransport& kernel, const DaemonConfig& config)
    : xfrm_(kernel),
      // The userspace backend allows windows the kernel does not: cap rather than have
      // every SA refused.
      replay_window_(std::min<std::uint32_t>(config.replay_window, XFRMA_REPLAY_ESN_MAX)) {
  if (replay_window_ != config.replay_window)
    spdlog::warn("xfrm: replay_window {} is above the kernel's maximum, using {}", config.replay_window,
                 replay_window_);
}

XfrmDataplane::~XfrmDataplane() {
  if (auto r = xfrm_.remove_all(); !r)
    spdlog::warn("xfrm: removing the remaining Child SAs on exit: {}", r.error().message());
}

platform::XfrmChild XfrmDataplane::child_of(const ike::DataplaneOp& op, std::uint32_t replay_window) {
  platform::XfrmChild c;
  c.local = op.local;
  c.remote = op.remote;
  c.spi_in = op.spi_in;
  c.spi_out = op.spi_out;
  c.udp_encap = op.udp_encap;
  c.local_ts = op.local_ts;
  c.remote_ts = op.remote_ts;
  const auto& k = op.keys;
  c.in = platform::EspTransforms{k.encr_id, k.encr_key_bits, k.integ_id, k.esn, k.encr_in, k.integ_in};
  c.out = platform::EspTransforms{k.encr_id, k.encr_key_bits, k.integ_id, k.esn, k.encr_out, k.integ_out};
  // No kernel lifetimes: the engine rekeys and expires Child SAs on its own clock, and a
  // hard expiry in the kernel would delete SAs behind its back.
  c.lifetime = {};
  c.replay_window = replay_window;
  return c;
}

void XfrmDataplane::record_error(const char* op, const platform::SysError& e) {
  spdlog::error("xfrm {} failed: {} ({})", op, e.message(), errno_name(e.code));
  // The usual cause on a new host, said once rather than with every Child SA.
  if ((e.code == EPROTONOSUPPORT || e.code == ENOSYS) && (!last_error_ || last_error_->code != e.code))
    spdlog::warn("xfrm: the kernel lacks ESP or this algorithm (esp4/esp6, crypto templates); "
                 "Child SAs are negotiated but carry no traffic");
  last_error_ = e;
}

void XfrmDataplane::apply(const ike::DataplaneOp& op) {
  using Kind = ike::DataplaneOp::Kind;
  switch (op.kind) {
    case Kind::kInstall: {
      if (op.resume) {
        // Installing it would restart the sequence numbers at 1 under the same key: a
        // nonce reuse. Continuing them (XFRMA_REPLAY_ESN_VAL) comes with the kernel ESP
        // tests; until then a moved SA is not installed here.
        stats_.install_errors++;
        spdlog::error("xfrm: Child SA {} (SPI {:08x}) continues another node's: not supported by this backend yet",
                      op.child_sa_id, op.spi_in);
        return;
      }
      platform::XfrmChild child = child_of(op, replay_window_);
      auto r = xfrm_.install(op.child_sa_id, child);
      // XfrmChildSas keeps (and later wipes) its own copy of the keys.
      for (Bytes* b : {&child.in.encr_key, &child.in.integ_key, &child.out.encr_key, &child.out.integ_key})
        wipe(*b);
      if (!r) {
        stats_.install_errors++;
        record_error("install", r.error());
        return;
      }
      stats_.installs++;
      spdlog::debug("xfrm: installed Child SA {} (reqid {}): in {:08x} out {:08x} via {} -> {}{}", op.child_sa_id,
                    xfrm_.reqid(op.child_sa_id).value_or(0), op.spi_in, op.spi_out, op.local.to_string(),
                    op.remote.to_string(), op.udp_encap ? " (UDP)" : "");
      break;
    }
    case Kind::kDelete: {
      // Not there: its install failed (already counted) or the op repeats.
      if (!xfrm_.contains(op.child_sa_id)) return;
      auto r = xfrm_.remove(op.child_sa_id);
      stats_.removals++;  // gone from the table either way; the kernel may have kept parts
      if (!r) {
        stats_.remove_errors++;
        record_error("remove", r.error());
      }
      break;
    }
    case Kind::kUpdateAddresses: {
      if (!xfrm_.contains(op.child_sa_id)) return;
      auto r = xfrm_.update_addresses(op.child_sa_id, op.local, op.remote, op.udp_encap);
      if (!r) {
        stats_.update_errors++;
        record_error("address update", r.error());
        return;
      }
      stats_.updates++;
      spdlog::info("xfrm: Child SA {} moved to {} -> {}{}: {} policies migrated, {} replaced, {} SAs updated, {} "
                   "re-created",
                   op.child_sa_id, op.local.to_string(), op.remote.to_string(), op.udp_encap ? " (UDP)" : "",
                   r->policies_migrated, r->policies_replaced, r->sas_updated, r->sas_reinstalled);
      if (r->migrate_error) spdlog::debug("xfrm: MIGRATE not used: {}", r->migrate_error->message());
      break;
    }
    case Kind::kActivateOutbound:
      // XfrmChildSas installs both SAs of a Child SA at once, so a rekey responder's
      // outbound SA is already live (the kernel sends on the newest SA of a reqid) and
      // the initiator may drop what arrives before it has processed our response.
      // Holding the outbound SA back needs a split install in platform/xfrm.
      spdlog::debug("xfrm: Child SA {} outbound already active", op.child_sa_id);
      break;
    case Kind::kSuspendOutbound:
      // Needs the split install too; until then a kernel-held SA cannot move
      // (esp_state() says so).
      spdlog::warn("xfrm: Child SA {}: suspending outbound ESP is not supported", op.child_sa_id);
      break;
    case Kind::kAdvanceOutbound:
      // Needs XFRM_MSG_NEWAE with the replay state (issue 12, under a kernel with ESP);
      // the Child SA is rekeyed soon after a failover anyway.
      spdlog::warn("xfrm: Child SA {}: advancing outbound sequence numbers by {} is not supported", op.child_sa_id,
                   op.advance);
      break;
  }
}

std::optional<ChildTraffic> XfrmDataplane::traffic(std::uint64_t child_sa_id) const {
  if (!xfrm_.contains(child_sa_id)) return std::nullopt;
  auto u = xfrm_.usage(child_sa_id);
  if (!u) {
    // Polled by every list-sas: a debug line, not an error per poll.
    usage_errors_++;
    spdlog::debug("{}", u.error().message());
    return std::nullopt;
  }
  // The kernel keeps no per-reason drop counters per SA (only the global
  // /proc/net/xfrm_stat): `drops` stays empty.
  return ChildTraffic{u->in.bytes, u->out.bytes, u->in.packets, u->out.packets, {}};
}

nlohmann::json XfrmDataplane::stats() const {
  nlohmann::json last = nullptr;
  if (last_error_)
    last = {{"errno", last_error_->code}, {"name", errno_name(last_error_->code)}, {"message", last_error_->message()}};
  return {{"backend", "xfrm"},
          {"child_sas", stats_.installs - stats_.removals},
          {"policies", xfrm_.policies().size()},
          {"installs", stats_.installs},
          {"removals", stats_.removals},
          {"updates", stats_.updates},
          {"install_errors", stats_.install_errors},
          {"remove_errors", stats_.remove_errors},
          {"update_errors", stats_.update_errors},
          {"usage_errors", usage_errors_},
          {"errors", stats_.install_errors + stats_.remove_errors + stats_.update_errors},
          {"last_error", last},
          {"esp_udp_dropped", stats_.esp_udp_dropped}};
}

void XfrmDataplane::on_udp_esp(std::span<std::uint8_t>, const Endpoint&, const Endpoint&) {
  // With UDP_ENCAP on the NAT-T socket the kernel takes ESP before the socket sees it;
  // what still arrives here is too short to be ESP for the kernel or came before the
  // option was set.
  stats_.esp_udp_dropped++;
}

Expected<void, std::string> prepare_ike_socket_for_xfrm(int fd, AddressFamily family, bool natt) {
  if (auto r = platform::xfrm_bypass_socket(fd, family); !r)
    return unexpected("xfrm: cannot exempt the IKE socket from IPsec policies: " + r.error().message());
  if (natt)
    if (auto r = platform::xfrm_enable_udp_encap(fd); !r)
      return unexpected("xfrm: cannot enable ESP-in-UDP on the NAT-T socket: " + r.error().message());
  return {};
}

}  // namespace mobike::daemon
